#!/usr/bin/env bash
# Boot-time benchmark: strata against QEMU's microvm booting the same Debian
# kernel (bzImage) and initramfs, side by side in one run on the same path
# (inside the nested test bed on hosts whose KVM cannot boot Linux, where
# both VMMs use the first-level guest's /dev/kvm; directly otherwise).
#
# For each of N rounds (alternating strata and QEMU) it prints the time from
# starting the VMM to the guest's init marker and to the VMM's exit (the guest
# powers off right after the marker).
#
# Usage: scripts/bench-boot.sh [ROUNDS]   (default 3; needs build/vmm/strata)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
ROUNDS=${1:-3}
[ -x build/vmm/strata ] || { echo "bench-boot: build/vmm/strata missing (bash scripts/test.sh)" >&2; exit 1; }
GUEST=$(bash scripts/build-guest.sh --quiet)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/qshare"
for f in bios-microvm.bin pvh.bin linuxboot_dma.bin kvmvapic.bin; do
  cp -L "/usr/share/qemu/$f" "$T/qshare/" 2>/dev/null || true
done

# runs inside L1 (or here): $1 = strata|qemu; prints "VMM marker_s exit_s"
cat > "$T/one.sh" <<'EOF'
vmm=$1
now() { cut -d' ' -f1 /proc/uptime; }
CMD="console=ttyS0 quiet strata.run=true"
t0=$(now)
if [ "$vmm" = strata ]; then
  $STRATA run --kernel $GUEST_DIR/bzImage --initrd $GUEST_DIR/initramfs.cpio.gz \
    --memory 256M --cpus 1 --serial stdio --cmdline "$CMD"
else
  $QEMU -M microvm,rtc=off -accel kvm -cpu host -m 256M -smp 1 -nodefaults -no-user-config \
    -display none -serial stdio -L $QEMU_DATA -kernel $GUEST_DIR/bzImage \
    -initrd $GUEST_DIR/initramfs.cpio.gz -append "$CMD"
fi | while IFS= read -r line; do
  case "$line" in *STRATA-INIT-OK*) echo "MARK $(now)" ;; esac
done > /tmp/mark.$vmm
t2=$(now)
t1=$(sed -n 's/^MARK //p' /tmp/mark.$vmm)
awk -v v=$vmm -v a=$t0 -v b=${t1:-0} -v c=$t2 'BEGIN { printf "RESULT %s %.2f %.2f\n", v, (b>0?b-a:-1), c-a }'
EOF
RUN='for i in $(seq '"$ROUNDS"'); do sh /bed/run/one.sh strata; sh /bed/run/one.sh qemu; done'
if why=$(bash scripts/kvm-can-boot-linux.sh); then
  echo "bench-boot: direct ($why)" >&2
  out=$(for i in $(seq "$ROUNDS"); do
          STRATA=build/vmm/strata GUEST_DIR=$GUEST QEMU=qemu-system-x86_64 QEMU_DATA=/usr/share/qemu sh "$T/one.sh" strata
          STRATA=build/vmm/strata GUEST_DIR=$GUEST QEMU=qemu-system-x86_64 QEMU_DATA=/usr/share/qemu sh "$T/one.sh" qemu
        done)
else
  echo "bench-boot: inside the nested test bed ($why)" >&2
  out=$(bash scripts/testbed.sh --strata build/vmm/strata --add "$T/one.sh:run/one.sh" \
          --add "$(command -v qemu-system-x86_64):bin/qemu-system-x86_64" --add "$T/qshare:qemu" \
          -- "export QEMU=/bed/bin/qemu-system-x86_64 QEMU_DATA=/bed/qemu; $RUN")
fi
echo "$out" | grep '^RESULT' | awk '
  { m[$2] += $3; e[$2] += $4; n[$2]++; printf "%-7s to init marker %6.2f s   to exit %6.2f s\n", $2, $3, $4 }
  END { if (n["strata"] && n["qemu"]) {
          printf "mean: strata %.2f s / QEMU %.2f s to the marker (ratio %.2f); exit %.2f / %.2f s\n",
            m["strata"]/n["strata"], m["qemu"]/n["qemu"], (m["strata"]/n["strata"])/(m["qemu"]/n["qemu"]),
            e["strata"]/n["strata"], e["qemu"]/n["qemu"] } }'
