#!/usr/bin/env bash
# Generates an `info mtree -D` + `info mtree -f -D` fixture from QEMU 7.2
# (Debian's qemu-system-x86, TCG), the way ../shared/fixtures/qemu-mtree/
# README.md describes.
#   gen-fixture.sh OUT.txt SECONDS QEMU-ARGS...
# SECONDS = 0: stop before the firmware runs (-S); otherwise let the
# firmware run that long, then `stop` and dump.
set -euo pipefail
out=$1; secs=$2; shift 2
qemu=${QEMU:-qemu-system-x86_64}
if [ "$secs" = 0 ]; then
  printf 'info mtree -D\ninfo mtree -f -D\nquit\n' |
    "$qemu" -accel tcg -display none -nodefaults -monitor stdio -S "$@"
else
  { sleep "$secs"; printf 'stop\ninfo mtree -D\ninfo mtree -f -D\nquit\n'; } |
    "$qemu" -accel tcg -display none -nodefaults -monitor stdio "$@"
fi | sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g' -e '/^(qemu)/d' -e '/^QEMU .* monitor/d' \
         -e 's/\r$//' > "$out.tmp"
mv "$out.tmp" "$out"
