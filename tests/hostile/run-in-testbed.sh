#!/usr/bin/env bash
# Runs the hostile suites inside the nested test bed (scripts/testbed.sh),
# for hosts without a /dev/kvm that runs strata's tiny guests.
#   tests/hostile/run-in-testbed.sh [BUILD_DIR] [hostile|abuse|both] [CASE...]
# BUILD_DIR defaults to build/ (build-asan/ runs them against ASan strata).
# The test programs have the build's absolute paths compiled in, so the bed
# links strata and the guest ELF to those paths first.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(cd "${1:-$REPO/build}" && pwd)
WHAT=${2:-both}
shift $(( $# > 2 ? 2 : $# ))
H=$BUILD/tests/hostile
for f in "$BUILD/vmm/strata" "$H/hostile-test" "$H/abuse-test" "$H/hostile.elf"; do
  [ -e "$f" ] || { echo "run-in-testbed: $f missing (build it first)" >&2; exit 1; }
done
run=""
case "$WHAT" in
  hostile) run="/bed/run/hostile-test $*" ;;
  abuse) run="/bed/run/abuse-test" ;;
  both) run="/bed/run/hostile-test $* && /bed/run/abuse-test" ;;
  *) echo "run-in-testbed: '$WHAT': expected hostile, abuse or both" >&2; exit 1 ;;
esac
exec bash "$REPO/scripts/testbed.sh" --timeout 900 --strata "$BUILD/vmm/strata" \
  --add "$H/hostile-test" --add "$H/abuse-test" --add "$H/hostile.elf" -- \
  "mkdir -p '$BUILD/vmm' '$H' && ln -sf /bed/bin/strata '$BUILD/vmm/strata' &&" \
  "ln -sf /bed/run/hostile.elf '$H/hostile.elf' && $run"
