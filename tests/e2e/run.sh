#!/usr/bin/env bash
# The e2e tier's driver: boots a real Linux guest with strata, directly on a
# host whose KVM can boot Linux (scripts/kvm-can-boot-linux.sh), otherwise
# inside the nested test bed (scripts/testbed.sh), where one first-level boot
# serves all the cases given.
#
# Usage: tests/e2e/run.sh [--build DIR] [--bed|--direct] [--vmm qemu] [CASE...]
#   --build DIR   the build folder holding vmm/strata (default $STRATA_BUILD or build/)
#   --bed         use the nested test bed even where KVM could boot Linux
#   --direct      run on this host's KVM whatever the detection says
#   --vmm qemu    run the cases against QEMU (tests/e2e/qemu-as-strata.sh, a
#                 stand-in speaking strata's CLI): checks the cases themselves
# Cases: see tests/e2e/cases.sh (all by default).
# Exit status: 0 every case passed or skipped with at least one pass; 77 every
# case skipped (each says why); 1 a case failed or the bed broke.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${STRATA_BUILD:-$REPO/build}
MODE=auto
VMM=strata
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --bed) MODE=bed; shift ;;
    --direct) MODE=direct; shift ;;
    --vmm) VMM=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "e2e: unknown option '$1'" >&2; exit 2 ;;
    *) break ;;
  esac
done
CASES=("$@")
# QEMU's microvm has no panic device the guest finds, so the panic case only
# hangs there, and the qmp case asks for strata's own query-mtree: the
# stand-in run leaves them out unless asked for by name.
if [ "$VMM" = qemu ] && [ ${#CASES[@]} -eq 0 ]; then
  mapfile -t CASES < <(sed -n 's/^ALL="\(.*\)"$/\1/p' "$REPO/tests/e2e/cases.sh" | tr ' ' '\n' | grep -vxE 'panic|qmp')
fi
skip() { echo "e2e: SKIP: $*"; exit 77; }

BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || skip "build folder not found"
STRATA_BIN=$BUILD/vmm/strata
[ -x "$STRATA_BIN" ] || skip "$STRATA_BIN not built"
case "$VMM" in strata|qemu) ;; *) echo "e2e: --vmm '$VMM': strata or qemu" >&2; exit 2 ;; esac

if [ "$MODE" = auto ]; then
  if why=$(bash "$REPO/scripts/kvm-can-boot-linux.sh"); then MODE=direct; else MODE=bed; fi
  echo "e2e: host KVM boots Linux? $why -> $MODE"
fi
if [ "$MODE" = bed ]; then
  command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing: no nested test bed (scripts/install-deps.sh)"
  [ -e /dev/kvm ] || true   # the bed needs no host KVM: it is TCG
else
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "/dev/kvm not usable"
fi
for t in mkfs.ext4 cpio lz4; do
  command -v $t >/dev/null || skip "$t missing (scripts/install-deps.sh)"
done
GUEST=$(bash "$REPO/scripts/build-guest.sh" --quiet) ||
  skip "scripts/build-guest.sh could not build the guest (no Debian mirror?)"

T=$(mktemp -d "${TMPDIR:-/tmp}/strata-e2e.XXXXXX")
trap 'rm -rf "$T"' EXIT
# The disk image: ext4 built from a folder, nothing mounted.
mkdir -p "$T/data/root"
echo "strata-e2e-seed" > "$T/data/root/seed.txt"
truncate -s 32M "$T/data/disk.img"
mkfs.ext4 -q -F -b 4096 -d "$T/data/root" "$T/data/disk.img" ||
  { echo "e2e: mkfs.ext4 -d failed" >&2; exit 1; }
rm -rf "$T/data/root"
for f in tests/kvm/kvm-vm_create tests/kvm/kvm-irq_lines tests/guests/hello.elf tests/qmp/qmp-linux tests/qmp/serial-attach \
         tests/migration/mig-test tests/migration/mig-dirty.elf tests/migration/mig-idle.elf tests/migration/mig-pio.elf \
         tests/migration/mig-smp.elf; do
  [ -f "$BUILD/$f" ] && cp "$BUILD/$f" "$T/data/"
done
# vsock_linux: vsock-echo on both sides; the guest's copy in an initramfs of
# its own (the base one plus a second archive: Linux unpacks both)
if [ -x "$BUILD/tests/vsock/vsock-echo" ]; then
  cp "$BUILD/tests/vsock/vsock-echo" "$T/data/"
  mkdir -p "$T/vx/bin"
  cp "$BUILD/tests/vsock/vsock-echo" "$T/vx/bin/"
  (cd "$T/vx" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -n > "$T/vx.cpio.gz"
  cat "$GUEST/initramfs.cpio.gz" "$T/vx.cpio.gz" > "$T/data/initramfs-vsock.cpio.gz"
  rm -rf "$T/vx" "$T/vx.cpio.gz"
fi

START=$(date +%s)
if [ "$MODE" = direct ]; then
  stand_in=$STRATA_BIN
  if [ "$VMM" = qemu ]; then
    stand_in=$REPO/tests/e2e/qemu-as-strata.sh
    export STRATA_REAL=$STRATA_BIN
  fi
  # The cases run in a session of their own, ended as a whole when this
  # script ends however it ends (a case's strata never outlives the test).
  # (`timeout` moves each strata to a process group of its own, so the
  # whole session is ended; cases.sh itself also dies with this script.)
  : > "$T/out"
  STRATA=$stand_in GUEST_DIR=$GUEST DATA=$T/data WORK=$T/work \
    setsid setpriv --pdeathsig KILL sh "$REPO/tests/e2e/cases.sh" "${CASES[@]}" \
    > "$T/out" 2>&1 < /dev/null &
  cases_pid=$!
  trap 'pkill -KILL -s "$cases_pid" 2>/dev/null; rm -rf "$T"' EXIT
  trap 'exit 130' INT TERM
  tail -n +1 -f --pid="$cases_pid" "$T/out" &
  wait "$cases_pid"
  wait
else
  ADD=(--add "$REPO/tests/e2e/cases.sh:run/cases.sh" --add "$T/data:data")
  ENVS="GUEST_DIR=/bed/guest DATA=/bed/data WORK=/tmp/e2e STRATA=/bed/bin/strata"
  # Where this host has a /dev/kvm of its own, the kvm tier ran the
  # tiny-guest suites on it; a case that only repeats one of them in the
  # bed may skip (E2E_BED_ALL=1 runs them all the same).
  if [ -e /dev/kvm ] && [ "${E2E_BED_ALL:-0}" != 1 ]; then ENVS="$ENVS E2E_HOST_KVM=1"; fi
  for v in E2E_VM_TIMEOUT E2E_PANIC_TIMEOUT E2E_RNG_ARGS E2E_MIG_ITERS E2E_MIG_CPUS E2E_MIG_HOPS E2E_SOAK_HOPS E2E_STRESS_SECS E2E_VSOCK_CONNS E2E_VSOCK_BYTES; do   # the cases' knobs
    if [ -n "${!v+x}" ]; then ENVS="$ENVS $v='${!v}'"; fi
  done
  if [ "$VMM" = qemu ]; then
    mkdir -p "$T/qshare"
    for f in bios-microvm.bin pvh.bin linuxboot_dma.bin kvmvapic.bin; do
      cp -L "/usr/share/qemu/$f" "$T/qshare/" 2>/dev/null || true
    done
    ADD+=(--add "$(command -v qemu-system-x86_64):bin/qemu-system-x86_64"
          --add "$T/qshare:qemu" --add "$REPO/tests/e2e/qemu-as-strata.sh:bin/qemu-as-strata")
    ENVS="$ENVS STRATA=/bed/bin/qemu-as-strata STRATA_REAL=/bed/bin/strata QEMU_DATA=/bed/qemu"
  fi
  bash "$REPO/scripts/testbed.sh" --timeout "${E2E_BED_TIMEOUT:-840}" --cpus "${E2E_BED_CPUS:-1}" --memory "${E2E_BED_MEMORY:-3072}" --strata "$STRATA_BIN" "${ADD[@]}" -- \
    "$ENVS sh /bed/run/cases.sh ${CASES[*]}" 2>&1 | tee "$T/out"
  bed_rc=${PIPESTATUS[0]}
  if [ "$bed_rc" = 125 ]; then echo "e2e: FAIL: the nested test bed broke (see above)"; exit 1; fi
fi
END=$(date +%s)

pass=$(grep -c '^E2E-RESULT [^ ]* PASS' "$T/out")
fail=$(grep -c '^E2E-RESULT [^ ]* FAIL' "$T/out")
skipped=$(grep -c '^E2E-RESULT [^ ]* SKIP' "$T/out")
want=${#CASES[@]}
[ "$want" -gt 0 ] || want=$(sed -n 's/^ALL="\(.*\)"$/\1/p' "$REPO/tests/e2e/cases.sh" | wc -w)
echo "e2e: $MODE, $VMM: $pass passed, $fail failed, $skipped skipped of $want in $((END - START)) s"
if [ $((pass + fail + skipped)) -lt "$want" ]; then
  echo "e2e: FAIL: only $((pass + fail + skipped)) of $want cases reported a result"; exit 1
fi
[ "$fail" = 0 ] || exit 1
[ "$pass" -gt 0 ] || exit 77
exit 0
