#!/bin/sh
# /init of the L2 guest initramfs (busybox).  Conventions: scripts/guest/README.md.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
mkdir -p /dev/pts /tmp /mnt
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /tmp

CMDLINE=$(cat /proc/cmdline)
cmd_b64=
cmd_plain=
shell=0
mmio_params=
for w in $CMDLINE; do
	case "$w" in
	strata.cmd=*) cmd_b64=${w#strata.cmd=} ;;
	strata.run=*) cmd_plain=${w#strata.run=} ;;
	strata.shell=1) shell=1 ;;
	virtio_mmio.device=*) mmio_params="$mmio_params device=${w#virtio_mmio.device=}" ;;
	esac
done

# Load the virtio modules in dependency order (the list was written at build time).
while read -r mod; do
	[ -n "$mod" ] || continue
	f=/lib/modules/$mod.ko
	[ -f "$f" ] || continue
	case "$mod" in
	virtio_mmio)
		# shellcheck disable=SC2086
		if [ -n "$mmio_params" ] && ! insmod "$f" $mmio_params 2>/dev/null; then
			echo "STRATA-INIT-WARN: virtio_mmio refused '$mmio_params' (kernel built without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES?); loading it without parameters"
			insmod "$f"
		elif [ -z "$mmio_params" ]; then
			insmod "$f"
		fi ;;
	*) insmod "$f" 2>/dev/null || echo "STRATA-INIT-WARN: insmod $mod failed" ;;
	esac
done < /lib/modules/load-order

ip link set lo up 2>/dev/null

# The ACPI power button (the VMM's system_powerdown): the kernel's button
# driver only reports it as a KEY_POWER input event and does nothing else, so
# busybox acpid watches /dev/input/event* and runs /etc/acpi/PWRF/00000080,
# which powers off as a real machine's init would (no init system here to do
# it orderly: sync, then poweroff -f).
if [ -e /dev/input/event0 ] && command -v acpid >/dev/null; then
	mkdir -p /etc/acpi/PWRF
	printf '#!/bin/sh\necho STRATA-POWER-BUTTON > /dev/console\nsync\npoweroff -f\n' \
		> /etc/acpi/PWRF/00000080
	chmod 755 /etc/acpi/PWRF/00000080
	acpid -c /etc/acpi -l /tmp/acpid.log -p /tmp/acpid.pid ||
		echo "STRATA-INIT-WARN: acpid did not start: the power button does nothing"
fi
# busybox's poweroff and reboot without -f only signal PID 1 (this script,
# which cannot take the signal while it waits for the command or the shell):
# as shell functions (they come before busybox's applets) they end the
# machine as an init would, sync first.  The interactive shell reads them
# through $ENV, the guest command has them prepended.
printf 'poweroff() { sync; busybox poweroff -f; }\nreboot() { sync; busybox reboot -f; }\n' \
	> /etc/strata-profile
export ENV=/etc/strata-profile
echo "STRATA-INIT-OK cpus=$(grep -c ^processor /proc/cpuinfo)"

if [ -n "$cmd_b64" ] || [ -n "$cmd_plain" ]; then
	if [ -n "$cmd_b64" ]; then
		echo "$cmd_b64" | base64 -d > /tmp/strata-cmd.sh 2>/dev/null || {
			echo "STRATA-INIT-WARN: strata.cmd is not valid base64"; : > /tmp/strata-cmd.sh; }
	else
		# strata.run: a command without spaces on the command line; ',' stands for ' '
		echo "$cmd_plain" | tr ',' ' ' > /tmp/strata-cmd.sh
	fi
	cat /etc/strata-profile /tmp/strata-cmd.sh > /tmp/strata-main.sh
	sh /tmp/strata-main.sh
	rc=$?
	echo "STRATA-CMD-EXIT=$rc"
fi

if [ "$shell" = 1 ]; then
	echo "STRATA-SHELL"
	setsid cttyhack sh
fi
sync
poweroff -f
