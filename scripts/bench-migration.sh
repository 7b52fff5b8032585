#!/usr/bin/env bash
# Live-migration benchmark: strata against QEMU (Debian's qemu-system-x86,
# -M microvm) migrating the same tiny PVH guest (tests/migration/dirty.c)
# over the same unix socket, side by side in one run, alternating, with the
# same settings (downtime-limit 300 ms, max-bandwidth 128 MiB/s: QEMU 7.2's
# defaults).  Directly on this host's /dev/kvm where QEMU runs the guest
# there (PVM included), else inside the nested test bed (both VMMs then use
# the first-level guest's /dev/kvm).
#
# Cases: guest RAM 256M and 1G, each idle (a counter) and dirtying 64 MiB at
# a fixed pace (mig-paced.elf: 2 pages per TSC millisecond, ~8 MiB/s
# nominal; the measured dirty-pages-rate is printed).  For each: total time,
# downtime, bytes sent, rounds (dirty-sync-count), and strata/QEMU ratios.
#
# Usage: scripts/bench-migration.sh [ROUNDS]   (default 1; needs build/ with
# tests/migration built: bash scripts/test.sh, or ninja -C build)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
ROUNDS=${1:-1}
B=build/tests/migration
for f in build/vmm/strata $B/mig-idle.elf $B/mig-paced.elf; do
  [ -e "$f" ] || { echo "bench-migration: $f missing (ninja -C build)" >&2; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null || { echo "bench-migration: qemu-system-x86_64 missing (scripts/install-deps.sh)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/qshare" "$T/elf"
for f in bios-microvm.bin pvh.bin linuxboot_dma.bin kvmvapic.bin; do
  cp -L "/usr/share/qemu/$f" "$T/qshare/" 2>/dev/null || true
done
cp $B/mig-idle.elf $B/mig-paced.elf "$T/elf/"

# Runs where the VMs run (L1's busybox sh or here): one.sh VMM MEM MODE
# prints "RESULT vmm mem mode status total_ms downtime_ms bytes rounds dirty_pages_per_s"
cat > "$T/one.sh" <<'INNER'
vmm=$1 mem=$2 mode=$3
elf=$ELF_DIR/mig-$mode.elf
W=/tmp/bm.$$
mkdir -p $W
q() { $STRATA ctl --api-socket "$1" qmp "$2" "${3:-{\}}"; }
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" | head -n1; }
if [ "$vmm" = strata ]; then
  $STRATA run --kernel $elf --test-device --serial none --memory $mem --api-socket $W/src.qmp > $W/src.log 2>&1 &
  src=$!
  $STRATA run --kernel $elf --test-device --serial none --memory $mem --api-socket $W/dst.qmp \
    --incoming unix:$W/in.sock > $W/dst.log 2>&1 &
  dst=$!
else
  QO="-accel kvm -cpu $QEMU_CPU -M microvm -m $mem -nodefaults -no-user-config -display none -L $QEMU_DATA -kernel $elf"
  $QEMU $QO -qmp unix:$W/src.qmp,server=on,wait=off > $W/src.log 2>&1 &
  src=$!
  $QEMU $QO -qmp unix:$W/dst.qmp,server=on,wait=off -incoming unix:$W/in.sock > $W/dst.log 2>&1 &
  dst=$!
fi
i=0
# strata's destination opens its QMP socket once the guest has arrived;
# QEMU's at once (and its --incoming socket is bound at start-up too)
ready() {
  [ -S $W/src.qmp ] || return 1
  if [ "$vmm" = strata ]; then [ -S $W/in.sock ]; else [ -S $W/dst.qmp ]; fi
}
while ! ready; do
  sleep 0.1; i=$((i+1)); [ $i -lt 300 ] || { echo "RESULT $vmm $mem $mode no-start"; cat $W/*.log; exit 0; }
done
sleep 2                                 # the guest runs a while first
q $W/src.qmp migrate-set-parameters '{"downtime-limit": 300, "max-bandwidth": 134217728}' > /dev/null
q $W/src.qmp migrate "{\"uri\": \"unix:$W/in.sock\"}" > /dev/null
st=
i=0
t0=$(cut -d' ' -f1 /proc/uptime)
while :; do
  out=$(q $W/src.qmp query-migrate 2>&1) || { st=lost; break; }
  st=$(echo "$out" | sed -n 's/.*"status": "\([a-z-]*\)".*/\1/p' | head -n1)
  case "$st" in completed|failed|cancelled) break ;; esac
  sleep 0.1
  awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { exit !(b - a > 240) }' &&
    { st="timeout:$st"; break; }
done
echo "RESULT $vmm $mem $mode $st $(echo "$out" | field total-time) $(echo "$out" | field downtime) \
$(echo "$out" | field transferred) $(echo "$out" | field dirty-sync-count) $(echo "$out" | field dirty-pages-rate)"
i=0
while [ ! -S $W/dst.qmp ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
q $W/dst.qmp quit > /dev/null 2>&1 || kill $dst 2>/dev/null
q $W/src.qmp quit > /dev/null 2>&1 || true
sleep 0.5; kill $src $dst 2>/dev/null
wait 2>/dev/null
rm -rf $W
INNER
LIST=
for i in $(seq "$ROUNDS"); do
  for mem in 256M 1G; do for mode in idle paced; do for vmm in strata qemu; do
    LIST="$LIST sh \$RUNDIR/one.sh $vmm $mem $mode;"
  done; done; done
done
# The guests are tiny PVH ELFs: any /dev/kvm that runs them will do, PVM
# included (there QEMU needs -cpu host,-arch-capabilities: PVM refuses MSR
# 0x10a, and QEMU 7.2 aborts on that with -cpu host).
QEMU_CPU=${QEMU_CPU:-host,-arch-capabilities}
qemu_runs_here() {
  [ -w /dev/kvm ] || return 1
  timeout 5 qemu-system-x86_64 -accel kvm -cpu "$QEMU_CPU" -M microvm -m 64M -nodefaults \
    -no-user-config -display none -kernel "$T/elf/mig-idle.elf" -device isa-debug-exit \
    > "$T/qemu-probe.log" 2>&1
  [ $? = 124 ]   # still running after 5 s: it runs guests here
}
if qemu_runs_here || why=$(bash scripts/kvm-can-boot-linux.sh); then
  echo "bench-migration: direct on this host's /dev/kvm (QEMU -cpu $QEMU_CPU)" >&2
  out=$(RUNDIR=$T STRATA=build/vmm/strata ELF_DIR=$T/elf QEMU=qemu-system-x86_64 \
        QEMU_DATA=/usr/share/qemu QEMU_CPU=$QEMU_CPU sh -c "$LIST")
else
  echo "bench-migration: inside the nested test bed ($why)" >&2
  out=$(bash scripts/testbed.sh --memory 4096 --cpus 2 --timeout 1500 --strata build/vmm/strata \
          --add "$T/one.sh:run/one.sh" --add "$T/elf:elf" \
          --add "$(command -v qemu-system-x86_64):bin/qemu-system-x86_64" --add "$T/qshare:qemu" \
          -- "export RUNDIR=/bed/run ELF_DIR=/bed/elf QEMU=/bed/bin/qemu-system-x86_64 QEMU_DATA=/bed/qemu QEMU_CPU=host; $LIST")
fi
echo "$out" | grep -v '^RESULT' | tail -n 20 >&2 || true
echo "$out" | grep '^RESULT' | awk '
  { k = $3 " " $4; printf "%-6s %-4s %-5s %-9s total %7s ms  downtime %6s ms  sent %11s B  rounds %3s  dirty %8s pages/s\n",
           $2, $3, $4, $5, $6, $7, $8, $9, $10
    if ($5 == "completed") { t[$2, k] += $6; d[$2, k] += $7; b[$2, k] += $8; n[$2, k]++; keys[k] = 1 } }
  END {
    print ""
    print "strata / QEMU (means over rounds; < 1 is strata better):"
    for (k in keys) if (n["strata", k] && n["qemu", k]) {
      qt = t["qemu", k] / n["qemu", k]; qd = d["qemu", k] / n["qemu", k]; qb = b["qemu", k] / n["qemu", k]
      st = t["strata", k] / n["strata", k]; sd = d["strata", k] / n["strata", k]; sb = b["strata", k] / n["strata", k]
      printf "  %-10s total-time %5.2f  downtime %5.2f  bytes %5.2f\n", k, (qt ? st / qt : 0), (qd ? sd / qd : 0), (qb ? sb / qb : 0)
    }
  }'
