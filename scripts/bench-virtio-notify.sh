#!/usr/bin/env bash
# Notifications per request with and without VIRTIO_F_EVENT_IDX on the host's
# KVM, side by side in one run: the hostile guest's `notify-bench` workload
# (tests/hostile/guest-ring.c: 4000 virtio-blk reads, up to 8 in flight,
# batches of 1..4, kicks decided as Linux does) against the real strata,
# without and with EVENT_IDX, for a guest that takes each interrupt at once
# and for a busy one that looks only when it cannot submit more; the counts
# come from the device (`info virtio`).  The guest runs with interrupts off
# and reads InterruptStatus instead, so "interrupts" are the device's
# decisions to raise one, which is what EVENT_IDX changes.  Counts
# vary a little from run to run (the device runs on its own thread); the
# wall time is printed for information only.  The unit-level model of the
# same question is bench/virtio-notify (deterministic).
#
# Usage: scripts/bench-virtio-notify.sh [BUILD_DIR]   (default build; needs
#        /dev/kvm that runs strata's tiny guests)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$REPO/build}
STRATA=$BUILD/vmm/strata
ELF=$BUILD/tests/hostile/hostile.elf
for f in "$STRATA" "$ELF"; do
  [ -e "$f" ] || { echo "bench-virtio-notify: $f missing (cmake --build $BUILD)" >&2; exit 1; }
done
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "bench-virtio-notify: no usable /dev/kvm" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# the disk: sector 0 holds the magic the guest's recovery checks
{ printf 'STRATA-HOSTILE-DISK'; head -c $((1024 * 1024 - 19)) /dev/zero; } > "$T/disk.img"

run() { # $1 = case; prints "kicks interrupts suppressed seconds"
  local sock=$T/$1.sock log=$T/$1.log t0 t1 line
  t0=$(date +%s.%N)
  "$STRATA" run --test-device --kernel "$ELF" --disk "path=$T/disk.img" --rng \
    --api-socket "$sock" --serial none --cmdline "case=$1" 2> "$log" &
  local pid=$!
  for _ in $(seq 600); do
    grep -q "hostile: $1: " "$log" 2>/dev/null && break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  if ! grep -q "hostile: $1: PASS" "$log"; then
    kill "$pid" 2>/dev/null || true
    echo "bench-virtio-notify: $1 did not pass:" >&2
    cat "$log" >&2
    exit 1
  fi
  line=$("$STRATA" ctl --api-socket "$sock" hmp 'info virtio' |
         sed -n '/virtio-blk/,/queue 0/p' | grep 'queue 0')
  "$STRATA" ctl --api-socket "$sock" quit > /dev/null || true
  wait "$pid" || true
  # "  queue 0: kicks K, interrupts I, suppressed S"
  echo "$line" | sed -E 's/.*kicks ([0-9]+), interrupts ([0-9]+), suppressed ([0-9]+).*/\1 \2 \3/' |
    tr '\n' ' '
  echo "$t1 - $t0" | bc
}

# the counters include the guest's recovery afterwards (2 requests, 2 kicks)
echo "virtio-notify (kvm): 4000 virtio-blk reads, up to 8 in flight, this host's /dev/kvm"
printf '%-40s %6s %11s %11s %7s\n' "" kicks interrupts suppressed "wall s"
for mode in "" -lazy; do
  for ev in "" -event-idx; do
    read -r k i s w <<< "$(run "notify-bench$mode$ev")"
    what="guest handles at once"
    [ -n "$mode" ] && what="busy guest (handles when full)"
    printf '%-40s %6s %11s %11s %7.2f\n' "$what${ev:+, EVENT_IDX}" "$k" "$i" "$s" "$w"
  done
done
