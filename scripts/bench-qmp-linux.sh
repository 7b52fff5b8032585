#!/usr/bin/env bash
# QMP figures for the Linux microVM: boots Debian's guest under strata with
# --api-socket (a virtio-blk disk and a virtio-rng, as the e2e tier), waits for
# its init, and runs `qmp-linux bench` against the socket while the guest runs:
# round-trip latency of query-status and query-mtree (one request in flight),
# and query-status requests/s with 1 and 16 concurrent clients (separate
# processes).  Then presses the power button (system_powerdown) and checks
# that strata exits 0.  Directly on a host whose KVM boots Linux
# (scripts/kvm-can-boot-linux.sh), otherwise inside the nested test bed.
#
# Usage: scripts/bench-qmp-linux.sh [--build DIR] [--requests N] [--busy]
#                                   [--tiny] [--bed-cpus N] [--bed|--direct]
#   --requests N  query-status round trips per figure (default 2000; query-mtree
#                 and each of the 16 clients do N/4)
#   --busy        the guest spins a shell loop instead of sleeping
#   --tiny        a reference run: the tiny counting guest (tests/qmp/spin.c)
#                 instead of Linux, same place, same client
#   --bed-cpus N  CPUs of the bed's first-level guest (default 1, as the e2e tier)
# Prints "QMP-BENCH ..." lines and a summary; exit status 0 if all ran.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${STRATA_BUILD:-$REPO/build}
REQ=2000
BUSY=0
TINY=0
BED_CPUS=1
MODE=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --requests) REQ=$2; shift 2 ;;
    --busy) BUSY=1; shift ;;
    --tiny) TINY=1; shift ;;
    --bed-cpus) BED_CPUS=$2; shift 2 ;;
    --bed) MODE=bed; shift ;;
    --direct) MODE=direct; shift ;;
    -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench-qmp-linux: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$REQ" in ''|*[!0-9]*) echo "bench-qmp-linux: --requests '$REQ': not a number" >&2; exit 2 ;; esac
BUILD=$(cd "$BUILD" && pwd)
for f in vmm/strata tests/qmp/qmp-linux $([ "$TINY" = 1 ] && echo tests/qmp/qmp-spin.elf || true); do
  [ -x "$BUILD/$f" ] || { echo "bench-qmp-linux: $BUILD/$f not built (ninja -C $BUILD)" >&2; exit 1; }
done
if [ "$MODE" = auto ]; then
  if bash "$REPO/scripts/kvm-can-boot-linux.sh" >/dev/null; then MODE=direct; else MODE=bed; fi
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-qmp.XXXXXX")
trap 'rm -rf "$T"' EXIT
truncate -s 32M "$T/disk.img"
mkfs.ext4 -q -F "$T/disk.img"
cp "$BUILD/tests/qmp/qmp-linux" "$T/qmp-linux"
[ "$TINY" = 0 ] || cp "$BUILD/tests/qmp/qmp-spin.elf" "$T/qmp-spin.elf"

# The part that runs where the VM runs (POSIX sh: busybox in the bed).
cat > "$T/bench.sh" <<'EOF'
set -u
W=${WORK:-/tmp/bench-qmp}
mkdir -p "$W"
rm -f "$W/console.txt" "$W/qmp.sock"
sock=$W/qmp.sock
if [ "$BUSY" = 1 ]; then
  gcmd='echo BENCH-GUEST-UP; while :; do :; done'
else
  gcmd='echo BENCH-GUEST-UP; while :; do sleep 1; done'
fi
rng=
if "$STRATA" run --help 2>&1 | grep -q -- --rng; then rng=--rng; fi
if [ "$TINY" = 1 ]; then
  printf 'BENCH-GUEST-UP\n' > "$W/console.txt"
  "$STRATA" run --test-device --kernel "$DATA/qmp-spin.elf" --serial none --api-socket "$sock" \
    > "$W/strata.txt" 2>&1 < /dev/null &
  pid=$!
  sleep 1
else
  # shellcheck disable=SC2086
  "$STRATA" run --kernel "$GUEST_DIR/vmlinux" --initrd "$GUEST_DIR/initramfs.cpio.gz" \
    --memory 256M --serial "file=$W/console.txt" --api-socket "$sock" \
    --disk "path=$DATA/disk.img,readonly=on" $rng \
    --cmdline "console=ttyS0 quiet panic=-1 strata.cmd=$(printf '%s' "$gcmd" | base64 | tr -d '\n')" \
    > "$W/strata.txt" 2>&1 < /dev/null &
  pid=$!
fi
i=0
while [ $i -lt 120 ] && kill -0 $pid 2>/dev/null && ! grep -q BENCH-GUEST-UP "$W/console.txt" 2>/dev/null; do
  sleep 1; i=$((i + 1))
done
grep -q BENCH-GUEST-UP "$W/console.txt" 2>/dev/null || { echo "BENCH-FAIL: the guest did not come up"; cat "$W/strata.txt"; exit 1; }
echo "BENCH-INFO guest up after ${i}s; $(grep -c ^processor /proc/cpuinfo) CPU(s) where strata runs; guest busy=$BUSY"
"$DATA/qmp-linux" bench "$sock" "$REQUESTS"
brc=$?
if [ "$TINY" = 1 ]; then "$STRATA" ctl --api-socket "$sock" quit > /dev/null; fi
"$STRATA" ctl --api-socket "$sock" powerdown > /dev/null 2>&1
i=0
while [ $i -lt 60 ] && kill -0 $pid 2>/dev/null; do sleep 1; i=$((i + 1)); done
kill -0 $pid 2>/dev/null && { "$STRATA" ctl --api-socket "$sock" quit > /dev/null 2>&1; }
wait $pid
src=$?
echo "BENCH-INFO $([ "$TINY" = 1 ] && echo quit || echo system_powerdown): strata exit status $src after ${i}s"
[ "$brc" = 0 ] && [ "$src" = 0 ]
EOF

ENVS="BUSY=$BUSY TINY=$TINY REQUESTS=$REQ"
set +e
if [ "$MODE" = direct ]; then
  env $ENVS STRATA="$BUILD/vmm/strata" GUEST_DIR="$(bash "$REPO/scripts/build-guest.sh" --quiet)" \
    DATA="$T" WORK="$T/work" sh "$T/bench.sh" | tee "$T/out"
else
  bash "$REPO/scripts/testbed.sh" --timeout 900 --cpus "$BED_CPUS" --strata "$BUILD/vmm/strata" \
    --add "$T/bench.sh:run/bench.sh" --add "$T/qmp-linux:data/qmp-linux" \
    --add "$T/disk.img:data/disk.img" \
    $([ "$TINY" = 1 ] && echo "--add $T/qmp-spin.elf:data/qmp-spin.elf" || true) -- \
    "$ENVS DATA=/bed/data WORK=/tmp/bench-qmp sh /bed/run/bench.sh" | tee "$T/out"
fi
rc=${PIPESTATUS[0]}
echo
echo "bench-qmp-linux: $MODE$([ "$MODE" = bed ] && echo " (L1: QEMU TCG, $BED_CPUS CPU(s))"), $([ "$TINY" = 1 ] && echo "tiny counting guest (reference)" || echo "Linux guest $([ "$BUSY" = 1 ] && echo spinning || echo idle)"), $REQ requests:"
awk '/^QMP-BENCH latency/ { n = split($0, f, /[ =]/); for (i = 1; i < n; i++) v[f[i]] = f[i+1];
       printf "  %-13s round trip: mean %8s us  median %8s us  p99 %8s us  (n=%s, reply %s bytes)\n", v["cmd"], v["mean_us"], v["median_us"], v["p99_us"], v["n"], v["reply_bytes"] }
     /^QMP-BENCH throughput/ { n = split($0, f, /[ =]/); for (i = 1; i < n; i++) v[f[i]] = f[i+1];
       printf "  query-status, %2s client(s): %8s requests/s  (%s requests in %s s)\n", v["clients"], v["req_per_s"], v["requests"], v["seconds"] }' "$T/out"
exit "$rc"
