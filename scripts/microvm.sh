#!/usr/bin/env bash
# Boots a microVM: README's first command.
#
# On a fresh Debian 12 machine, as root: installs what strata needs, builds
# it (build/), builds the guest from Debian's packages (Debian's cloud kernel
# + a busybox initramfs, scripts/build-guest.sh), makes a small ext4 disk,
# and boots the guest with 2 vCPUs, a virtio disk, a virtio network card on
# a TAP device and a virtio-rng.  On a terminal you get a shell in the guest
# (`poweroff` ends it); without one a demo command runs and the guest powers
# off.  Where this host's KVM cannot boot Linux (PVM: docs/architecture.md, Hosts) the VM
# runs inside the nested test bed (scripts/testbed.sh), chosen automatically.
#
# Usage: scripts/microvm.sh [--demo] [--bed|--direct]
#   --demo     run the demo command even on a terminal
#   --bed      use the nested test bed even where KVM could boot Linux
#   --direct   run on this host's KVM whatever the detection says
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
MODE=auto
DEMO=0
[ -t 0 ] && [ -t 1 ] || DEMO=1
while [ $# -gt 0 ]; do
  case "$1" in
    --demo) DEMO=1 ;;
    --bed) MODE=bed ;;
    --direct) MODE=direct ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "microvm: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '\n== %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  echo "microvm: run as root (apt-get, /dev/kvm and a TAP device need it)" >&2
  exit 1
fi

say "installing build dependencies (only what is missing)"
bash scripts/install-deps.sh
say "building strata (build/)"
cmake -G Ninja -S . -B build -DSTRATA_WERROR=ON >/dev/null
ninja -C build -j2 strata
say "building the guest from Debian's packages (cached in .cache/guest)"
GUEST=$(bash scripts/build-guest.sh --quiet)

WORK=$REPO/.cache/demo
mkdir -p "$WORK/disk-root"
echo "hello from a virtio-blk disk made by scripts/microvm.sh" > "$WORK/disk-root/hello.txt"
mkfs.ext4 -q -F -d "$WORK/disk-root" "$WORK/disk.img" 64M

DEMO_CMD='echo "guest: Linux $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, $(free -m | awk "/Mem:/{print \$2}") MiB";
mount -t ext4 /dev/vda /mnt && cat /mnt/hello.txt && umount /mnt;
i=$(ls /sys/class/net | grep -v lo | head -n1); ip link set $i up && ip addr add 192.168.214.2/24 dev $i && ping -c 2 -W 5 192.168.214.1;
head -c 16 /dev/hwrng | od -An -tx1 | sed "s/^/hwrng:/"'
if [ "$DEMO" = 1 ]; then
  GUEST_CMD="console=ttyS0 quiet strata.cmd=$(printf '%s' "$DEMO_CMD" | base64 -w0)"
else
  GUEST_CMD="console=ttyS0 quiet strata.shell=1"
fi
TAP=strata-demo0
# the TAP's host side is 192.168.214.1; in the bed it lives inside the
# first-level guest, directly it is a host interface removed on exit
# (busybox in the bed has tunctl; Debian's iproute2 has ip tuntap)
SETUP_TAP="{ tunctl -t $TAP >/dev/null 2>&1 || ip tuntap add dev $TAP mode tap; } && ip addr add 192.168.214.1/24 dev $TAP && ip link set $TAP up"

if [ "$MODE" = auto ]; then
  if why=$(bash scripts/kvm-can-boot-linux.sh); then MODE=direct; else MODE=bed; fi
  say "can this host's KVM boot Linux? $why -> $MODE"
fi

if [ "$MODE" = direct ]; then
  say "booting the microVM (poweroff in the guest, or Ctrl-A x, ends it)"
  eval "$SETUP_TAP"
  trap 'ip link del '"$TAP"' 2>/dev/null || true' EXIT
  build/vmm/strata run --kernel "$GUEST/bzImage" --initrd "$GUEST/initramfs.cpio.gz" \
    --memory 256M --cpus 2 --disk "path=$WORK/disk.img" --net "tap=$TAP" --rng \
    --serial stdio --cmdline "$GUEST_CMD"
  exit $?
fi

RUN="$SETUP_TAP; \$STRATA run --kernel \$GUEST_DIR/bzImage --initrd \$GUEST_DIR/initramfs.cpio.gz \
--memory 256M --cpus 2 --disk path=/bed/disk.img --net tap=$TAP --rng --serial stdio \
--cmdline '$GUEST_CMD'"
if [ "$DEMO" = 1 ]; then
  say "booting the microVM inside the nested test bed (QEMU TCG + kvm-amd)"
  exec bash scripts/testbed.sh --strata build/vmm/strata --add "$WORK/disk.img:disk.img" -- "$RUN"
fi
say "booting the microVM inside the nested test bed; 'poweroff' in the guest (or Ctrl-A x) ends it and the bed"
exec bash scripts/testbed.sh --shell --strata build/vmm/strata --add "$WORK/disk.img:disk.img" -- "$RUN"
