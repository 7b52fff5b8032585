#!/usr/bin/env bash
# Live migration between this build and strata built from an older revision,
# both ways: `mig-test --soak` with STRATA_PEER set, so hop 1 goes from this
# build to the old one, hop 2 back, and so on; every hop verifies RAM
# (x-verify-ram) and the guest's own page checks, and the devices' and
# vCPUs' state sections cross between the two encoders.
#
# Usage: tests/migration/compat.sh BUILD_DIR [HOPS]
#   STRATA_COMPAT_REV  the older revision (default c3ec480: stream version 2,
#                      the last before the typed device state of issue 13)
# Exit 77 (a skip, with the reason) without /dev/kvm or without that
# revision in this clone's history.
set -euo pipefail
BUILD=$(cd "$1" && pwd)
HOPS=${2:-4}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REV=${STRATA_COMPAT_REV:-c3ec480}
skip() { echo "SKIP: $*"; exit 77; }

[ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "no usable /dev/kvm"
[ -x "$BUILD/tests/migration/mig-test" ] || skip "mig-test not built in $BUILD"
git -C "$REPO" rev-parse -q --verify "$REV^{commit}" >/dev/null 2>&1 ||
  skip "revision $REV is not in this clone's history (a shallow clone or a source tarball)"

T=$(mktemp -d "${TMPDIR:-/tmp}/strata-compat.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/src"
git -C "$REPO" archive "$REV" | tar -x -C "$T/src"
echo "compat: building strata at $(git -C "$REPO" rev-parse --short "$REV") ..."
cmake -S "$T/src" -B "$T/build" -DCMAKE_BUILD_TYPE=Release -DSTRATA_WERROR=OFF > "$T/cmake.log" 2>&1 ||
  { tail -n 20 "$T/cmake.log"; echo "compat: FAIL: configuring $REV"; exit 1; }
cmake --build "$T/build" --target strata -j "$(nproc)" > "$T/build.log" 2>&1 ||
  { tail -n 20 "$T/build.log"; echo "compat: FAIL: building $REV"; exit 1; }
OLD=$T/build/vmm/strata
echo "compat: $HOPS hops alternating $BUILD/vmm/strata (this build) and strata $REV"
STRATA_PEER=$OLD "$BUILD/tests/migration/mig-test" --soak "$HOPS"
