#!/bin/sh
# A stand-in for `strata` that runs QEMU's microvm instead, for the e2e
# options only: lets tests/e2e/run.sh --vmm qemu check the e2e cases (and the
# guest image) against a VMM known to work.  `ctl` goes to the real strata
# ($STRATA_REAL): it speaks QMP, which QEMU serves on --api-socket.
set -u
if [ "${1:-}" = ctl ]; then shift; exec "${STRATA_REAL:?}" ctl "$@"; fi
if [ "${1:-}" != run ]; then echo "qemu-as-strata: only run and ctl" >&2; exit 1; fi
shift
[ "${1:-}" = --help ] && { echo "qemu-as-strata: strata's run options, on QEMU microvm"; exit 0; }
set -- "$@" --end
kernel='' initrd='' cmdline='' mem=256M cpus=1 ndisk=0 nnet=0
while [ "$1" != --end ]; do
	o=$1; shift
	case "$o" in
	--kernel) kernel=$1; shift ;;
	--initrd) initrd=$1; shift ;;
	--cmdline) cmdline=$1; shift ;;
	--memory) mem=$1; shift ;;
	--cpus) cpus=$1; shift ;;
	--serial) [ "$1" = stdio ] || { echo "qemu-as-strata: --serial $1: only stdio" >&2; exit 1; }; shift ;;
	--api-socket) set -- "$@" -qmp "unix:$1,server=on,wait=off"; shift ;;
	--disk)
		path='' ro=''
		for kv in $(echo "$1" | tr ',' ' '); do
			case "$kv" in path=*) path=${kv#path=} ;; readonly=on) ro=,readonly=on ;; esac
		done
		set -- "$@" -drive "id=d$ndisk,file=$path,format=raw,if=none$ro" -device "virtio-blk-device,drive=d$ndisk"
		ndisk=$((ndisk + 1)); shift ;;
	--net)
		tap='' mac=''
		for kv in $(echo "$1" | tr ',' ' '); do
			case "$kv" in tap=*) tap=${kv#tap=} ;; mac=*) mac=,mac=${kv#mac=} ;; esac
		done
		set -- "$@" -netdev "tap,id=n$nnet,ifname=$tap,script=no,downscript=no" -device "virtio-net-device,netdev=n$nnet$mac"
		nnet=$((nnet + 1)); shift ;;
	*) echo "qemu-as-strata: $o: not supported by the stand-in" >&2; exit 1 ;;
	esac
done
shift
[ -n "$kernel" ] || { echo "qemu-as-strata: --kernel missing" >&2; exit 1; }
set -- "$@" -kernel "$kernel" -append "$cmdline"
[ -z "$initrd" ] || set -- "$@" -initrd "$initrd"
L=
[ -z "${QEMU_DATA:-}" ] || L="-L $QEMU_DATA"
# shellcheck disable=SC2086
exec qemu-system-x86_64 $L -accel kvm -cpu host -M microvm,acpi=on,rtc=off -m "$mem" -smp "$cpus" \
	-nodefaults -no-user-config -no-reboot -display none -monitor none -serial stdio \
	-device virtio-rng-device "$@"
