#!/usr/bin/env bash
# virtio-blk and virtio-vsock with a Linux guest: strata (with and without
# VIRTIO_F_EVENT_IDX on the disk) against QEMU 7.2 (-M microvm,
# virtio-blk-device without vhost; vhost-vsock-device where the kernel that
# runs QEMU has /dev/vhost-vsock), side by side in one run, the same guest
# (Debian's cloud kernel, the busybox initramfs of scripts/build-guest.sh
# plus vsock-echo), alternating.  Directly on this host where its KVM boots
# Linux (scripts/kvm-can-boot-linux.sh), else in the nested test bed, where
# both VMMs use the first-level guest's /dev/kvm.
#
# Per run the guest reads its 256 MiB disk 4 times through its page cache
# (dropped before each pass: Linux's readahead keeps several requests in
# flight, which is where EVENT_IDX can save notifications and interrupts),
# 1 GiB in all, timed by the guest's clock, then serves a vsock echo
# that the host side drives with one connection of VSOCK_MIB MiB each way.
# Printed per VMM: disk MiB/s, and for strata the disk queue's kicks
# (notifications) and interrupts and the vCPU exits strata saw, per GiB
# read (x-query-stats); vsock echo MiB/s (each way).  Medians of ROUNDS.
#
# Usage: scripts/bench-virtio.sh [ROUNDS]   (default 1; needs build/ with
#        tests/vsock/vsock-echo: bash scripts/test.sh, or ninja -C build)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
ROUNDS=${1:-1}
VSOCK_MIB=${VSOCK_MIB:-32}
for f in build/vmm/strata build/tests/vsock/vsock-echo; do
  [ -e "$f" ] || { echo "bench-virtio: $f missing (ninja -C build)" >&2; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null ||
  { echo "bench-virtio: qemu-system-x86_64 missing (scripts/install-deps.sh)" >&2; exit 1; }
GUEST=$(bash scripts/build-guest.sh --quiet) || { echo "bench-virtio: no guest (build-guest.sh)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/data/vx/bin" "$T/qshare"
for f in bios-microvm.bin pvh.bin linuxboot_dma.bin kvmvapic.bin; do
  cp -L "/usr/share/qemu/$f" "$T/qshare/" 2>/dev/null || true
done
cp build/tests/vsock/vsock-echo "$T/data/"
cp build/tests/vsock/vsock-echo "$T/data/vx/bin/"
(cd "$T/data/vx" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -n > "$T/vx.cpio.gz"
cat "$GUEST/initramfs.cpio.gz" "$T/vx.cpio.gz" > "$T/data/initrd.gz"
rm -rf "$T/data/vx"
WL='vsock-echo serve 5000 > /dev/null 2>&1 &
t0=$(cut -d" " -f1 /proc/uptime); i=0
while [ $i -lt 4 ]; do echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda of=/dev/null bs=1048576 count=256 2>/dev/null || echo DD-FAIL; i=$((i+1)); done
t1=$(cut -d" " -f1 /proc/uptime); echo BLKREAD $t0 $t1
echo BENCH-READY
vsock-echo wait 5001; echo BENCH-DONE'
WL_B64=$(printf '%s' "$WL" | base64 | tr -d '\n')

# Runs where the VMs run: one.sh VMM EVENT_IDX(on|off)
# prints "RESULT vmm mode blk_s kicks irqs exits vsock_s"
cat > "$T/one.sh" <<'INNER'
vmm=$1 ev=$2
W=/tmp/vb.$$
mkdir -p $W
dd if=/dev/zero of=$W/d.img bs=1048576 count=0 seek=256 2>/dev/null
up() { cut -d' ' -f1 /proc/uptime; }
CMD="console=ttyS0 quiet panic=-1 strata.cmd=$WL_B64"
vs=no
if [ "$vmm" = strata ]; then
  evopt=; [ "$ev" = on ] || evopt=,event_idx=off
  $STRATA run --kernel $GUEST/vmlinux --initrd $DATA/initrd.gz --memory 256M --cmdline "$CMD" \
    --disk path=$W/d.img$evopt --vsock cid=3,uds=$W/v.sock --serial file=$W/con \
    --api-socket $W/api > $W/out 2>&1 &
  pid=$!; vs=yes
else
  V=
  if [ -e /dev/vhost-vsock ]; then V="-device vhost-vsock-device,guest-cid=3"; vs=yes; fi
  $QEMU -L $QEMU_DATA -accel kvm -cpu host -M microvm,acpi=on,rtc=off -m 256M -nodefaults \
    -no-user-config -no-reboot -display none -monitor none -serial file:$W/con \
    -kernel $GUEST/vmlinux -initrd $DATA/initrd.gz -append "$CMD" \
    -drive id=d0,file=$W/d.img,format=raw,if=none,cache=writeback -device virtio-blk-device,drive=d0 \
    $V -qmp unix:$W/api,server=on,wait=off > $W/out 2>&1 &
  pid=$!
fi
i=0
while ! tr -d '\r' 2>/dev/null < $W/con | grep -q '^BENCH-READY'; do
  sleep 0.5; i=$((i+1))
  if [ $i -ge 900 ] || ! kill -0 $pid 2>/dev/null; then
    echo "RESULT $vmm $ev no-ready"; tail -n 20 $W/con $W/out; kill $pid 2>/dev/null; wait; rm -rf $W; exit 0
  fi
done
set -- $(tr -d '\r' < $W/con | sed -n 's/^BLKREAD //p')
blk=$(awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }')
tr -d '\r' < $W/con | grep -q DD-FAIL && blk=dd-failed
kicks=- irqs=- exits=-
if [ "$vmm" = strata ]; then
  s=$($STRATA ctl --api-socket $W/api qmp x-query-stats | tr -d ' \n')
  kicks=$(echo "$s" | sed -n 's/.*"device":"virtio-blk@[^"]*","queues":\[{"queue":0,"kicks":\([0-9]*\),.*/\1/p')
  irqs=$(echo "$s" | sed -n 's/.*"device":"virtio-blk@[^"]*","queues":\[{"queue":0,"kicks":[0-9]*,"interrupts":\([0-9]*\),.*/\1/p')
  exits=$(echo "$s" | sed -n 's/.*"exits-total":\([0-9]*\).*/\1/p')
fi
vst=-
if [ $vs = yes ]; then
  t0=$(up)
  if [ "$vmm" = strata ]; then
    $DATA/vsock-echo uds-connect $W/v.sock 5000 1 $((VSOCK_MIB * 1048576)) > $W/vs.out 2>&1
  else
    $DATA/vsock-echo connect 3 5000 1 $((VSOCK_MIB * 1048576)) > $W/vs.out 2>&1
  fi
  r=$?; t1=$(up)
  vst=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  [ $r = 0 ] || { vst=failed; cat $W/vs.out; }
  if [ "$vmm" = strata ]; then $DATA/vsock-echo uds-connect $W/v.sock 5001 1 0 > /dev/null 2>&1
  else $DATA/vsock-echo connect 3 5001 1 0 > /dev/null 2>&1; fi
fi
i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 120 ]; do sleep 0.5; i=$((i+1)); done
kill $pid 2>/dev/null; wait 2>/dev/null
echo "RESULT $vmm $ev $blk $kicks $irqs $exits $vst"
rm -rf $W
INNER
LIST=
for i in $(seq "$ROUNDS"); do
  LIST="$LIST sh \$RUNDIR/one.sh strata on; sh \$RUNDIR/one.sh strata off; sh \$RUNDIR/one.sh qemu on;"
done
if why=$(bash scripts/kvm-can-boot-linux.sh); then
  echo "bench-virtio: direct on this host's /dev/kvm" >&2
  out=$(RUNDIR=$T STRATA=build/vmm/strata GUEST=$GUEST DATA=$T/data QEMU=qemu-system-x86_64 \
        QEMU_DATA=/usr/share/qemu WL_B64=$WL_B64 VSOCK_MIB=$VSOCK_MIB sh -c "$LIST")
else
  echo "bench-virtio: inside the nested test bed ($why)" >&2
  out=$(bash scripts/testbed.sh --memory 2048 --cpus 2 --timeout 2400 --strata build/vmm/strata \
          --add "$T/one.sh:run/one.sh" --add "$T/data:data" \
          --add "$(command -v qemu-system-x86_64):bin/qemu-system-x86_64" --add "$T/qshare:qemu" \
          -- "export RUNDIR=/bed/run GUEST=/bed/guest DATA=/bed/data QEMU=/bed/bin/qemu-system-x86_64 QEMU_DATA=/bed/qemu WL_B64=$WL_B64 VSOCK_MIB=$VSOCK_MIB; [ -e /dev/vhost-vsock ] || echo 'bench-virtio: no /dev/vhost-vsock in the bed: QEMU runs without vsock'; $LIST")
fi
echo "$out" | grep -v '^RESULT' | tail -n 30 >&2 || true
echo "$out" | grep '^RESULT' | awk -v vmib="$VSOCK_MIB" '
  function med(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
  }
  { k = $2 " event_idx=" $3; if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
    printf "%-24s disk 1 GiB in %6s s  kicks %7s  interrupts %7s  exits %7s  vsock %s MiB each way in %s s\n",
           k, $4, $5, $6, $7, vmib, $8
    m = ++n[k]; B[k, m] = $4; K[k, m] = $5; I[k, m] = $6; E[k, m] = $7; V[k, m] = $8 }
  END {
    print ""
    print "medians (per GiB read; vsock: echo MiB/s each way):"
    for (r = 1; r <= nk; r++) {
      k = order[r]
      for (i = 1; i <= n[k]; i++) { a[i] = B[k, i] + 0; b[i] = K[k, i] + 0; ci[i] = I[k, i] + 0; d[i] = E[k, i] + 0; e[i] = V[k, i] + 0 }
      bm = med(a, n[k]); vm = med(e, n[k])
      printf "  %-24s disk %7.1f MiB/s", k, bm ? 1024 / bm : 0
      if (K[k, 1] != "-") printf "  kicks %6d  interrupts %6d  exits %6d", med(b, n[k]), med(ci, n[k]), med(d, n[k])
      else printf "  %42s", "(QEMU: no counters)"
      if (vm > 0) printf "  vsock %6.1f MiB/s\n", vmib / vm; else printf "  vsock -\n"
      if (k ~ /^strata event_idx=on/) sb = bm
      if (k ~ /^qemu/) { qb = bm; qv = vm }
      if (k ~ /^strata event_idx=on/) sv = vm
    }
    if (sb && qb) printf "strata/QEMU disk throughput %.2f", qb / sb
    if (sv && qv) printf ", vsock throughput %.2f", qv / sv
    print ""
  }'
