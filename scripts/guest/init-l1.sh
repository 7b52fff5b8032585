#!/bin/sh
# /init of the nested test bed's first-level guest (busybox), see
# scripts/guest/README.md.  Loads kvm/kvm-amd so /dev/kvm appears, then runs
# /bed/run.sh (put there by scripts/testbed.sh) between two marker lines that
# carry the nonce from the kernel command line, and powers off.
export PATH=/bed/bin:/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
stty -onlcr 2>/dev/null

nonce=
shell=0
for w in $(cat /proc/cmdline); do
	case "$w" in
	strata.nonce=*) nonce=${w#strata.nonce=} ;;
	strata.shell=1) shell=1 ;;
	esac
done

while read -r mod; do
	[ -n "$mod" ] || continue
	insmod /lib/modules/$mod.ko 2>/dev/null || echo "STRATA-BED-WARN: insmod $mod failed"
done < /lib/modules/load-order
ip link set lo up 2>/dev/null
[ -e /dev/kvm ] || echo "STRATA-BED-WARN: no /dev/kvm after loading kvm-amd"
echo "STRATA-BED-UP uptime=$(cut -d' ' -f1 /proc/uptime)"

cd /bed || exit 1
if [ "$shell" = 1 ] && [ -f /bed/run.sh ]; then
	# an interactive command (scripts/microvm.sh): its end is the bed's end;
	# its exit status goes to the second serial port, where testbed.sh reads it
	sh /bed/run.sh
	rc=$?
	echo "STRATA-BED-EXIT-$nonce=$rc" > /dev/ttyS1
elif [ "$shell" = 1 ]; then
	# poweroff/reboot as shell functions: see init-l2.sh
	printf 'poweroff() { sync; busybox poweroff -f; }\nreboot() { sync; busybox reboot -f; }\n' \
		> /etc/strata-profile
	ENV=/etc/strata-profile setsid cttyhack sh
else
	echo "STRATA-BED-BEGIN-$nonce"
	sh /bed/run.sh < /dev/null
	rc=$?
	echo "STRATA-BED-EXIT-$nonce=$rc"
fi
sync
poweroff -f
