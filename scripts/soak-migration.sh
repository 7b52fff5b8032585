#!/usr/bin/env bash
# The long migration soak: a tiny guest whose 2 vCPUs rewrite and check
# every word of 32 MiB is migrated from strata to strata HOPS times (default
# 100); each hop must complete with the destination's RAM verified against
# the source's CRC (x-verify-ram) and the guest's own page checks passing on
# (tests/migration/mig_test.c, soak()).  CI runs the short one (ctest
# migration.soak: 10 hops; e2e.migration's migrate_soak in the bed).
#
# Usage: scripts/soak-migration.sh [HOPS] [--bed] [--linux]
#   On this host's /dev/kvm where it runs tiny guests, else (or with --bed)
#   inside the nested test bed (scripts/testbed.sh).  Needs build/ (cmake
#   --build build).  Prints each hop and a summary; exits with mig-test's
#   status.
#   --linux: Debian's Linux guest (2 vCPUs, a RAM and virtio-disk workload)
#   instead, HOPS (default 10) hops, through the e2e tier's migrate_linux
#   case (tests/e2e/run.sh: directly where KVM boots Linux, else the bed).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${STRATA_BUILD:-$REPO/build}
HOPS=
BED=0
LINUX=0
for a in "$@"; do
  case "$a" in
    --bed) BED=1 ;;
    --linux) LINUX=1 ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *[!0-9]*|'') echo "soak-migration: '$a': HOPS is a number (see --help)" >&2; exit 2 ;;
    *) HOPS=$a ;;
  esac
done
if [ "$LINUX" = 1 ]; then
  HOPS=${HOPS:-10}
  mode=; [ "$BED" = 0 ] || mode=--bed
  echo "soak-migration: a Linux guest, $HOPS hops"
  E2E_MIG_HOPS=$HOPS E2E_MIG_ITERS=$((HOPS * 10 + 20)) E2E_BED_TIMEOUT=$((840 + HOPS * 60)) \
    exec bash "$REPO/tests/e2e/run.sh" --build "$BUILD" $mode migrate_linux
fi
HOPS=${HOPS:-100}
MT=$BUILD/tests/migration/mig-test
ELF=$BUILD/tests/migration/mig-smp.elf
[ -x "$MT" ] && [ -f "$ELF" ] || { echo "soak-migration: build first: $MT, $ELF missing" >&2; exit 2; }
if [ "$BED" = 0 ] && [ -e /dev/kvm ]; then
  echo "soak-migration: $HOPS hops on this host's /dev/kvm"
  exec "$MT" --soak "$HOPS"
fi
echo "soak-migration: $HOPS hops in the nested test bed"
# (the bed's own guard: about 30 s a hop under TCG, at least 10 minutes)
exec bash "$REPO/scripts/testbed.sh" --timeout $((600 + HOPS * 30)) --strata "$BUILD/vmm/strata" \
  --add "$MT:run/mig-test" --add "$ELF:run/mig-smp.elf" -- \
  "MIG_SMP_ELF=/bed/run/mig-smp.elf /bed/run/mig-test --soak $HOPS"
