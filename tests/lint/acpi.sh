#!/usr/bin/env bash
# lint.acpi: the ACPI tables strata builds (vmm/boot/acpi.c for the board
# of vmm/machine.h, dumped by acpi-dump for a minimal, a usual and a full
# machine, and with acpi.c's optional parts off) must disassemble with
# `iasl -d` without an error or a warning (a bad checksum is only a
# "Firmware Warning" there), and the disassembly must assemble again
# (`iasl -oa`: no optimisations) without an error or a warning into the
# same bytes: that also catches AML the disassembler reads past silently
# (a package shorter than its count, say).  The RSDP is not a table iasl
# 20200925 reads; acpi-dump follows its pointer and boot.unit.acpi checks
# its checksums.
# Usage: acpi.sh ACPI_DUMP_PROGRAM WORKDIR.  Exit 77 (skip) without iasl.
set -uo pipefail

dump=$1
work=$2

if ! command -v iasl >/dev/null 2>&1; then
  echo "SKIP: iasl not found (Debian package acpica-tools; scripts/install-deps.sh installs it)"
  exit 77
fi
iasl -v 2>&1 | grep -m1 -i 'version' || true

rm -rf "$work"
mkdir -p "$work" || exit 1
"$dump" "$work" || { echo "FAIL: $dump did not build the tables"; exit 1; }

fail=0
bad() {
  echo "FAIL: $*"
  fail=1
}
# cmp_range A B SKIP COUNT: bytes [SKIP, SKIP+COUNT) of A and B agree
# (COUNT empty: to the end; cmp also fails on a length difference then).
cmp_range() {
  if [ -n "$4" ]; then
    cmp -s -i "$3" -n "$4" "$1" "$2"
  else
    cmp -s -i "$3" "$1" "$2"
  fi
}

ntables=0
for dir in "$work"/*/; do
  for dat in "$dir"*.dat; do
    sig=$(basename "$dat" .dat)
    [ "$sig" = RSDP ] && continue
    name="$(basename "$dir")/$sig"
    ntables=$((ntables + 1))
    (
      cd "$dir" || exit 1
      iasl -d "$sig.dat" >"$sig.disasm.log" 2>&1
    )
    rc=$?
    if [ $rc -ne 0 ] || [ ! -s "$dir$sig.dsl" ] ||
       grep -Eiq 'error|warning|incorrect|invalid|does not contain|corrupt' "$dir$sig.disasm.log"; then
      bad "$name: iasl -d (exit $rc):"
      sed 's/^/    /' "$dir$sig.disasm.log"
      continue
    fi
    (
      cd "$dir" || exit 1
      iasl -oa -p "re-$sig" "$sig.dsl" >"$sig.asm.log" 2>&1
    )
    rc=$?
    if [ $rc -ne 0 ] || ! grep -q ' 0 Errors, 0 Warnings' "$dir$sig.asm.log"; then
      bad "$name: the disassembly does not assemble cleanly (iasl -oa, exit $rc):"
      sed 's/^/    /' "$dir$sig.asm.log"
      continue
    fi
    # Same signature, length and revision (0..8), OEM fields (10..27) and
    # body (36..); the checksum and compiler id/version are iasl's own.
    re="${dir}re-$sig.aml"
    if ! cmp_range "$dat" "$re" 0 9 || ! cmp_range "$dat" "$re" 10 18 ||
       ! cmp_range "$dat" "$re" 36 ""; then
      bad "$name: reassembled bytes differ from strata's:"
      cmp -l "$dat" "$re" 2>&1 | head -20 | sed 's/^/    /'
      continue
    fi
    echo "ok: $name ($(stat -c %s "$dat") bytes): disassembles and reassembles identically"
  done
done

if [ $ntables -eq 0 ]; then
  bad "no tables found under $work"
fi
exit $fail
