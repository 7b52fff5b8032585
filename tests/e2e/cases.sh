#!/bin/sh
# The e2e cases: a real Linux guest (Debian's cloud kernel + the busybox
# initramfs from scripts/build-guest.sh) booted by `strata run`.  POSIX sh, so
# it runs in the nested test bed's busybox (L1) and on a host whose KVM boots
# Linux alike.  Driven by tests/e2e/run.sh, which sets:
#   STRATA     the strata program (or a stand-in speaking its CLI)
#   GUEST_DIR  bzImage, vmlinux, initramfs.cpio.gz
#   DATA       files the driver prepared (disk.img, the kvm-tier binaries)
#   WORK       a scratch folder
# Usage: cases.sh CASE...   Prints one line per case:
#   E2E-RESULT <case> PASS|FAIL|SKIP <why>
# A case whose feature strata rejects as not implemented is a SKIP naming it.
set -u
: "${STRATA:?}" "${GUEST_DIR:?}" "${DATA:?}" "${WORK:?}"
VM_TIMEOUT=${E2E_VM_TIMEOUT:-120}
PANIC_TIMEOUT=${E2E_PANIC_TIMEOUT:-90}
BASE="console=ttyS0 quiet panic=-1"
INITRD=$GUEST_DIR/initramfs.cpio.gz
KERNEL=$GUEST_DIR/vmlinux
MEM=256M
mkdir -p "$WORK"

result() { echo "E2E-RESULT $1 $2 $3"; }
b64() { printf '%s' "$1" | base64 | tr -d '\n'; }
show() { sed 's/^/    | /' "$1" | tail -n 40; }

# vm NAME ARGS...: runs strata (with a control socket, $WORK/NAME.api) under
# guard_wait: past the guard it reports the VM's state; output in $WORK/NAME.out,
# exit status in VM_RC.
vm() {
	name=$1; shift
	echo "  [$name] strata run $*" | cut -c1-300
	# a control socket of its own, so a VM stuck past the guard can say why
	rm -f "$WORK/$name.api"
	timeout -k 10 $((${GUARD:-$VM_TIMEOUT} + 60)) "$STRATA" run "$@" --api-socket "$WORK/$name.api" \
		> "$WORK/$name.raw" 2>&1 < /dev/null &
	guard_wait $! "${GUARD:-$VM_TIMEOUT}" "$WORK/$name.api"
	VM_RC=$WAIT_RC
	tr -d '\r' < "$WORK/$name.raw" > "$WORK/$name.out"   # the guest's tty writes CR LF
	echo "  [$name] exit status $VM_RC"
}
# unsupported NAME: true (with the reason in WHY) when strata refused an option
# it does not implement yet.
unsupported() {
	WHY=$(grep -iE 'not implemented|not supported|only 1 is supported|unknown option|unrecognized option' \
		"$WORK/$1.out" | head -n1)
	[ "$VM_RC" != 0 ] && [ "$VM_RC" != 124 ] && [ -n "$WHY" ]
}
# booted CASE NAME: turns the usual outcomes into SKIP/FAIL; true when the
# case should go on judging the output.
booted() {
	c=$1 n=$2
	if unsupported "$n"; then result "$c" SKIP "strata: $WHY"; return 1; fi
	if [ "$VM_RC" = 124 ]; then
		show "$WORK/$n.out"; result "$c" FAIL "strata still running after ${GUARD:-$VM_TIMEOUT}s (guard)"; return 1
	fi
	if ! grep -q '^STRATA-INIT-OK' "$WORK/$n.out"; then
		show "$WORK/$n.out"; result "$c" FAIL "no STRATA-INIT-OK from the guest (exit status $VM_RC)"; return 1
	fi
	return 0
}
linux() { # NAME CMD [more strata options]: boots the guest running CMD
	n=$1 cmd=$2; shift 2
	vm "$n" --kernel "$KERNEL" --initrd "$INITRD" --memory "$MEM" --serial stdio \
		--cmdline "$BASE strata.cmd=$(b64 "$cmd")" "$@"
}
cmd_ok() { # NAME: the guest command ended with status 0 and strata with 0
	grep -q '^STRATA-CMD-EXIT=0' "$WORK/$1.out" && [ "$VM_RC" = 0 ]
}
fail_out() { show "$WORK/$2.out"; result "$1" FAIL "$3"; }
# strata_of PID: the strata process a `timeout` (PID) runs: PID itself
# under busybox's timeout (it execs the program and watches from a child),
# its child under coreutils'
strata_of() {
	if [ "$(cat "/proc/$1/comm" 2>/dev/null)" = strata ]; then echo "$1"; return 0; fi
	for d in /proc/[0-9]*; do
		read -r _ _ _ pp _ < "$d/stat" 2>/dev/null || continue
		if [ "$pp" = "$1" ]; then echo "${d#/proc/}"; return 0; fi
	done
	return 1
}
# threads PID: where each thread of PID is in the kernel
threads() {
	for t in /proc/"$1"/task/*; do
		echo "      thread $(cat "$t/comm" 2>/dev/null) state=$(sed -n 's/^State:[[:space:]]*//p' "$t/status" 2>/dev/null)" \
			"wchan=$(cat "$t/wchan" 2>/dev/null) syscall=$(cut -d' ' -f1 "$t/syscall" 2>/dev/null)"
		sed 's/^/        /' "$t/stack" 2>/dev/null | head -n 12
	done
}
# guard_wait TPID SECS SOCK: waits for the `timeout ... strata` TPID; past
# SECS it reports what the VM and strata were doing (run state, vCPU
# registers, threads), then ends it (SIGTERM, 15 s, SIGKILL: what each did
# is said).  Sets WAIT_RC: the exit status, or 124 past the guard.
guard_wait() {
	gp=$1 gs=$2 gsock=$3 gt=0
	while kill -0 "$gp" 2>/dev/null && [ "$gt" -lt $((gs * 5)) ]; do sleep 0.2; gt=$((gt+1)); done
	if kill -0 "$gp" 2>/dev/null; then
		sp=$(strata_of "$gp")
		echo "    guard: strata ${sp:-?} still running after ${gs}s; what it was doing:"
		timeout 10 "$STRATA" ctl --api-socket "$gsock" status 2>&1 | sed 's/^/      status: /'
		timeout 10 "$STRATA" ctl --api-socket "$gsock" qmp query-migrate 2>&1 | tr -d '\n ' | sed 's/^/      query-migrate: /'; echo
		timeout 20 "$STRATA" ctl --api-socket "$gsock" hmp 'info registers' 2>&1 | sed 's/^/      /'
		[ -z "$sp" ] || threads "$sp"
		[ -z "$sp" ] || kill -TERM "$sp" 2>/dev/null
		gt=0; while kill -0 "$gp" 2>/dev/null && [ "$gt" -lt 15 ]; do sleep 1; gt=$((gt+1)); done
		if kill -0 "$gp" 2>/dev/null; then
			echo "    guard: strata did not end within 15 s of SIGTERM; its threads now:"
			[ -z "$sp" ] || threads "$sp"
			kill -KILL "$sp" "$gp" 2>/dev/null
		else
			echo "    guard: strata ended on SIGTERM"
		fi
		wait "$gp"
		WAIT_RC=124
		return
	fi
	wait "$gp"; WAIT_RC=$?
}
help_has() { "$STRATA" run --help 2>&1 | grep -q -- "$1"; }
md5() { md5sum "$1" | cut -d' ' -f1; }

# --- the bed itself: a VMM works in this KVM (kvm-tier binaries) ---
# kvm/'s host API (VM creation, irqchip, irq lines and irqfds: the kvm tier's
# guest-free tests, which need no build folder), then a tiny guest through
# strata itself.  e2e.kvm-tier runs the whole kvm tier in the bed.
case_kvm() {
	if [ ! -x "$DATA/kvm-vm_create" ] || [ ! -x "$DATA/kvm-irq_lines" ] ||
	   [ ! -f "$DATA/hello.elf" ]; then
		result kvm SKIP "kvm-tier binaries not built (kvm-vm_create, kvm-irq_lines, hello.elf)"; return
	fi
	ls -l /dev/kvm
	for t in kvm-vm_create kvm-irq_lines; do
		"$DATA/$t" > "$WORK/$t.out" 2>&1
		rc=$?
		[ "$rc" = 0 ] || { fail_out kvm $t "$t exit status $rc"; return; }
	done
	saved=$STRATA; STRATA=${STRATA_REAL:-$STRATA}
	vm hello --test-device --kernel "$DATA/hello.elf"
	STRATA=$saved
	if [ "$VM_RC" = 0 ] && grep -q 'hello' "$WORK/hello.out"; then
		result kvm PASS "kvm-vm_create, kvm-irq_lines and strata run --test-device hello.elf"
	else
		fail_out kvm hello "strata run --test-device hello.elf: exit status $VM_RC"
	fi
}

# --- boot to the init marker, PVH vmlinux and bzImage ---
case_boot_vmlinux() {
	linux boot_vmlinux 'echo hello-from-l2; uname -r'
	booted boot_vmlinux boot_vmlinux || return
	if cmd_ok boot_vmlinux && grep -q '^hello-from-l2' "$WORK/boot_vmlinux.out"; then
		result boot_vmlinux PASS "PVH vmlinux + initrd: init marker, command ran, exit 0"
	else
		fail_out boot_vmlinux boot_vmlinux "command output or exit status wrong (strata $VM_RC)"
	fi
}
case_boot_bzimage() {
	n=boot_bzimage
	vm $n --kernel "$GUEST_DIR/bzImage" --initrd "$INITRD" --memory "$MEM" --serial stdio \
		--cmdline "$BASE strata.cmd=$(b64 'echo hello-from-bzimage')"
	booted $n $n || return
	if cmd_ok $n && grep -q '^hello-from-bzimage' "$WORK/$n.out"; then
		result $n PASS "bzImage + initrd: init marker, command ran, exit 0"
	else
		fail_out $n $n "command output or exit status wrong (strata $VM_RC)"
	fi
}

# --- --cpus 2: two processors in /proc/cpuinfo ---
case_cpus2() {
	linux cpus2 'grep -c ^processor /proc/cpuinfo' --cpus 2
	booted cpus2 cpus2 || return
	if grep -q '^STRATA-INIT-OK cpus=2' "$WORK/cpus2.out" && cmd_ok cpus2; then
		result cpus2 PASS "/proc/cpuinfo lists 2 processors"
	else
		fail_out cpus2 cpus2 "$(grep '^STRATA-INIT-OK' "$WORK/cpus2.out") (expected cpus=2)"
	fi
}

# --- virtio-blk: write, power off, boot again, read back the same bytes ---
case_blk_persist() {
	img=$WORK/persist.img
	cp "$DATA/disk.img" "$img"
	before=$(md5 "$img")
	linux blk1 'mount -t ext4 /dev/vda /mnt && cat /mnt/seed.txt &&
dd if=/dev/urandom of=/mnt/data.bin bs=4096 count=256 2>/dev/null &&
md5sum /mnt/data.bin && umount /mnt && echo WROTE-OK' --disk "path=$img"
	booted blk_persist blk1 || return
	if ! cmd_ok blk1 || ! grep -q '^WROTE-OK' "$WORK/blk1.out"; then
		fail_out blk_persist blk1 "first boot could not mount/write /dev/vda"; return
	fi
	grep -q '^strata-e2e-seed' "$WORK/blk1.out" ||
		{ fail_out blk_persist blk1 "seed.txt from mkfs.ext4 -d not read back"; return; }
	sum1=$(sed -n 's|^\([0-9a-f]\{32\}\)  /mnt/data.bin$|\1|p' "$WORK/blk1.out")
	[ "$(md5 "$img")" != "$before" ] ||
		{ result blk_persist FAIL "the image file did not change after the guest wrote"; return; }
	linux blk2 'mount -t ext4 -o ro /dev/vda /mnt && md5sum /mnt/data.bin' --disk "path=$img"
	booted blk_persist blk2 || return
	sum2=$(sed -n 's|^\([0-9a-f]\{32\}\)  /mnt/data.bin$|\1|p' "$WORK/blk2.out")
	if [ -n "$sum1" ] && [ "$sum1" = "$sum2" ] && cmd_ok blk2; then
		result blk_persist PASS "1 MiB written, powered off, read back after a new boot: md5 $sum1"
	else
		fail_out blk_persist blk2 "md5 after reboot '$sum2' != written '$sum1'"
	fi
}

# --- virtio-blk readonly=on: the guest cannot change the image ---
case_blk_readonly() {
	img=$WORK/ro.img
	cp "$DATA/disk.img" "$img"
	before=$(md5 "$img")
	linux blkro 'echo RO=$(cat /sys/block/vda/ro); mount -t ext4 -o ro /dev/vda /mnt && cat /mnt/seed.txt; umount /mnt
if dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>/dev/null; then echo RAW-WRITE-ACCEPTED; else echo RAW-WRITE-REFUSED; fi' \
		--disk "path=$img,readonly=on"
	booted blk_readonly blkro || return
	after=$(md5 "$img")
	if ! grep -q '^strata-e2e-seed' "$WORK/blkro.out"; then
		fail_out blk_readonly blkro "the read-only disk could not be read"
	elif [ "$after" != "$before" ]; then
		fail_out blk_readonly blkro "the image changed under readonly=on"
	elif ! grep -q '^RAW-WRITE-REFUSED' "$WORK/blkro.out"; then
		fail_out blk_readonly blkro "a raw write to /dev/vda was accepted"
	else
		result blk_readonly PASS "writes refused ($(grep '^RO=' "$WORK/blkro.out")), image unchanged"
	fi
}

# --- a disk held to 4 MiB/s: dd in the guest measures it ---
case_blk_limit() {
	n=blk_limit
	img=$WORK/lim.img
	cp "$DATA/disk.img" "$img"
	# 16 MiB read once (a fresh boot's page cache is empty), timed by the
	# guest's own clock; a 256 KiB burst
	linux blklim 't0=$(cut -d" " -f1 /proc/uptime); dd if=/dev/vda of=/dev/null bs=65536 count=256 2>/dev/null; t1=$(cut -d" " -f1 /proc/uptime); echo READ16M $t0 $t1' \
		--disk "path=$img,bw=4M,bw_burst=256K"
	booted blk_limit blklim || return
	set -- $(sed -n 's/^READ16M //p' "$WORK/blklim.out")
	if [ $# != 2 ]; then
		fail_out blk_limit blklim "the guest did not time its read"; return
	fi
	# MiB/s to 3 decimals, and the verdict: at most 10% over the limit (the
	# burst and readahead included), and not under half of it
	rate=$(awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", 16 / (b - a) }')
	if awk -v r="$rate" 'BEGIN { exit !(r > 4.4) }'; then
		result blk_limit FAIL "16 MiB read at $rate MiB/s under a 4 MiB/s limit (over 10% above it)"
	elif awk -v r="$rate" 'BEGIN { exit !(r < 2) }'; then
		result blk_limit FAIL "16 MiB read at $rate MiB/s under a 4 MiB/s limit (under half of it)"
	else
		result blk_limit PASS "16 MiB read by dd at $rate MiB/s under --disk ...,bw=4M,bw_burst=256K"
	fi
}

# --- virtio-net: ping the host side of a TAP ---
case_net_ping() {
	tap=strata-e2e0
	mac=52:54:00:e2:e2:01
	if command -v tunctl >/dev/null 2>&1; then
		tunctl -t $tap >/dev/null 2>&1
	else
		ip tuntap add dev $tap mode tap 2>/dev/null
	fi
	if ! ip link show $tap >/dev/null 2>&1; then
		result net_ping SKIP "cannot create TAP $tap here (root and /dev/net/tun needed)"; return
	fi
	ip addr add 192.168.213.1/24 dev $tap && ip link set $tap up
	linux net 'i=$(ls /sys/class/net | grep -v "^lo$" | head -n1); echo IF=$i MAC=$(cat /sys/class/net/$i/address)
ip link set $i up && ip addr add 192.168.213.2/24 dev $i && ping -c 3 -W 10 192.168.213.1; echo PING-RC=$?' \
		--net "tap=$tap,mac=$mac"
	if command -v tunctl >/dev/null 2>&1; then tunctl -d $tap >/dev/null 2>&1; else ip link del $tap; fi
	booted net_ping net || return
	if ! grep -q "^IF=.* MAC=$mac" "$WORK/net.out"; then
		fail_out net_ping net "no guest interface with MAC $mac"
	elif grep -q '^PING-RC=0' "$WORK/net.out"; then
		result net_ping PASS "guest pinged 192.168.213.1 on the TAP ($(grep 'packets received' "$WORK/net.out"))"
	else
		fail_out net_ping net "ping to the host side of the TAP failed"
	fi
}

# --- virtio-rng feeds /dev/hwrng ---
case_rng() {
	extra=${E2E_RNG_ARGS-}
	if [ -z "${E2E_RNG_ARGS+x}" ] && help_has '--rng'; then extra=--rng; fi
	# shellcheck disable=SC2086
	linux rng 'echo CUR=$(cat /sys/class/misc/hw_random/rng_current)
echo HEX=$(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | od -An -tx1 | tr -d " \n")' $extra
	booted rng rng || return
	hex=$(sed -n 's/^HEX=//p' "$WORK/rng.out")
	if grep -q '^CUR=virtio_rng' "$WORK/rng.out" && [ ${#hex} = 64 ] &&
	   [ "$hex" != 0000000000000000000000000000000000000000000000000000000000000000 ]; then
		result rng PASS "/dev/hwrng is virtio_rng, 32 bytes read"
	elif ! grep -q '^CUR=virtio_rng' "$WORK/rng.out" && [ -z "$extra" ]; then
		result rng SKIP "no virtio-rng in the guest and 'strata run --help' names no --rng option"
	else
		fail_out rng rng "$(grep '^CUR=' "$WORK/rng.out"), HEX=$hex"
	fi
}

# --- reboot ends strata with status 0 ---
# --- virtio-balloon in a Linux guest: the guest dirties 128 MiB (a file in
# its RAM, then deleted: free pages the host has backed), the host inflates
# the balloon by 128 MiB (QMP balloon): the guest's MemTotal falls and so must
# strata's RSS (the pages go back to the host); deflated, MemTotal is back and
# the guest fills 128 MiB again ---
case_balloon_linux() {
	n=balloon_linux
	help_has '--balloon' || { result $n SKIP "strata has no --balloon"; return; }
	G=${GUARD:-300}
	wl='mt() { sed -n "s/^MemTotal: *\([0-9]*\) kB/\1/p" /proc/meminfo; }
t0=$(mt); echo MEMTOTAL $t0
mkdir -p /fill && mount -t tmpfs -o size=200m fill /fill
dd if=/dev/zero of=/fill/f bs=1M count=128 2>/dev/null && echo FILL-OK; rm -f /fill/f
echo FILLED
i=0; while [ $(mt) -gt $((t0 - 100 * 1024)) ] && [ $i -lt 900 ]; do sleep 0.2; i=$((i + 1)); done
echo INFLATED $(mt)
i=0; while [ $(mt) -lt $((t0 - 4 * 1024)) ] && [ $i -lt 900 ]; do sleep 0.2; i=$((i + 1)); done
echo DEFLATED $(mt)
dd if=/dev/zero of=/fill/f bs=1M count=128 2>/dev/null && echo REFILL-OK; rm -f /fill/f'
	rm -f "$WORK/bal.qmp" "$WORK/bal.console"
	timeout -k 10 "$G" "$STRATA" run --kernel "$KERNEL" --initrd "$INITRD" --memory "$MEM" \
		--cmdline "$BASE strata.cmd=$(b64 "$wl")" --balloon \
		--serial "file=$WORK/bal.console" --api-socket "$WORK/bal.qmp" > "$WORK/bal.out" 2>&1 < /dev/null &
	tp=$!
	# console_wait WORD: until the guest printed a line starting with WORD
	console_wait() {
		t=0
		while ! tr -d '\r' 2>/dev/null < "$WORK/bal.console" | grep -q "^$1"; do
			sleep 0.5; t=$((t + 1))
			if [ $t -ge 360 ] || ! kill -0 $tp 2>/dev/null; then return 1; fi
		done
	}
	rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$(strata_of $tp)/status" 2>/dev/null; }
	actual() { "$STRATA" ctl --api-socket "$WORK/bal.qmp" qmp query-balloon 2>/dev/null | sed -n 's/.*"actual": *\([0-9]*\).*/\1/p'; }
	if ! console_wait FILLED; then
		kill $tp 2>/dev/null; wait
		show "$WORK/bal.console"; result $n FAIL "the guest never said FILLED"; return
	fi
	r0=$(rss)
	"$STRATA" ctl --api-socket "$WORK/bal.qmp" qmp balloon '{"value": 134217728}' > "$WORK/bal-ctl.out" 2>&1
	if ! console_wait INFLATED; then
		kill $tp 2>/dev/null; wait
		show "$WORK/bal.console"; result $n FAIL "the guest never said INFLATED"; return
	fi
	# the guest says INFLATED at 100 MiB; the balloon goes on to 128 MiB
	t=0; while [ "$(actual)" != 134217728 ] && [ $t -lt 240 ]; do sleep 0.5; t=$((t + 1)); done
	r1=$(rss) a1=$(actual)
	"$STRATA" ctl --api-socket "$WORK/bal.qmp" qmp balloon '{"value": 268435456}' >> "$WORK/bal-ctl.out" 2>&1
	console_wait REFILL-OK
	guard_wait $tp 120 "$WORK/bal.qmp"; rc=$WAIT_RC
	tr -d '\r' < "$WORK/bal.console" > "$WORK/bal.txt"
	echo "    guest: $(grep -E '^(MEMTOTAL|INFLATED|DEFLATED)' "$WORK/bal.txt" | tr '\n' ' ')"
	echo "    strata RSS ${r0:-?} kB filled, ${r1:-?} kB inflated (query-balloon actual ${a1:-?})"
	t0=$(sed -n 's/^MEMTOTAL //p' "$WORK/bal.txt")
	inf=$(sed -n 's/^INFLATED //p' "$WORK/bal.txt")
	def=$(sed -n 's/^DEFLATED //p' "$WORK/bal.txt")
	if [ "$rc" != 0 ]; then
		show "$WORK/bal.txt"; result $n FAIL "strata exited $rc (expected 0 after the guest's poweroff)"
	elif ! grep -q '^FILL-OK' "$WORK/bal.txt"; then
		show "$WORK/bal.txt"; result $n FAIL "the guest could not fill 128 MiB of its RAM before the balloon"
	elif [ -z "$inf" ] || [ "$inf" -gt $((t0 - 100 * 1024)) ]; then
		show "$WORK/bal.txt"; result $n FAIL "inflated by 128 MiB, the guest's MemTotal went from $t0 to ${inf:-?} kB only"
	elif [ -z "$r0" ] || [ -z "$r1" ] || [ "$r1" -gt $((r0 - 96 * 1024)) ]; then
		result $n FAIL "strata's RSS went from ${r0:-?} to ${r1:-?} kB: under 96 MiB given back for a 128 MiB balloon"
	elif [ "$a1" != 134217728 ]; then
		result $n FAIL "query-balloon actual ${a1:-?} after inflating (expected 134217728)"
	elif [ -z "$def" ] || [ "$def" -lt $((t0 - 4 * 1024)) ] || ! grep -q '^REFILL-OK' "$WORK/bal.txt" ||
		! grep -q '^STRATA-CMD-EXIT=0' "$WORK/bal.txt"; then
		show "$WORK/bal.txt"; result $n FAIL "after deflating: MemTotal ${def:-?} kB (was $t0), or the guest could not use its RAM again"
	else
		result $n PASS "MemTotal $t0 -> $inf -> $def kB; strata RSS $((r0 / 1024)) -> $((r1 / 1024)) MiB with 128 MiB inflated; deflated, the guest filled 128 MiB again"
	fi
}

case_vsock_linux() {
	n=vsock_linux
	help_has '--vsock' || { result $n SKIP "strata has no --vsock"; return; }
	if [ ! -x "$DATA/vsock-echo" ] || [ ! -f "$DATA/initramfs-vsock.cpio.gz" ]; then
		result $n SKIP "vsock-echo not built (no static libc on the build host)"; return
	fi
	N=${E2E_VSOCK_CONNS:-100} BYTES=${E2E_VSOCK_BYTES:-65536}
	G=${GUARD:-400}
	U=$WORK/vs.sock
	rm -f "$U" "${U}_6000" "$WORK/vs.qmp" "$WORK/vs.console"
	# the host's end of guest connections to port 6000: strata connects them to ${U}_6000
	"$DATA/vsock-echo" uds-serve "${U}_6000" > "$WORK/vs-hs.out" 2>&1 &
	hs=$!
	# the guest: an echo server on 5000, then N connections of its own to
	# the host's port 6000 (both directions at once), then it waits for the
	# host's "done" (a connection to 5001) and powers off
	wl="vsock-echo serve 5000 > /dev/null 2>&1 &
sleep 1; echo VSOCK-READY
vsock-echo connect 2 6000 $N $BYTES; echo GUEST-CLIENT-RC=\$?
vsock-echo wait 5001; echo GUEST-DONE"
	timeout -k 10 "$G" "$STRATA" run --kernel "$KERNEL" --initrd "$DATA/initramfs-vsock.cpio.gz" \
		--memory "$MEM" --cmdline "$BASE strata.cmd=$(b64 "$wl")" --vsock "cid=3,uds=$U" \
		--serial "file=$WORK/vs.console" --api-socket "$WORK/vs.qmp" > "$WORK/vs.out" 2>&1 < /dev/null &
	tp=$!
	vs_wait() { # WORD: until the guest printed a line starting with WORD
		t=0
		while ! tr -d '\r' 2>/dev/null < "$WORK/vs.console" | grep -q "^$1"; do
			sleep 0.5; t=$((t + 1))
			if [ $t -ge 600 ] || ! kill -0 $tp 2>/dev/null; then return 1; fi
		done
	}
	if ! vs_wait VSOCK-READY; then
		kill $hs $tp 2>/dev/null; wait
		show "$WORK/vs.console"; show "$WORK/vs.out"; result $n FAIL "the guest never said VSOCK-READY"; return
	fi
	"$DATA/vsock-echo" uds-connect "$U" 5000 "$N" "$BYTES" > "$WORK/vs-hc.out" 2>&1
	hrc=$?
	vs_wait GUEST-CLIENT-RC
	"$DATA/vsock-echo" uds-connect "$U" 5001 1 0 > /dev/null 2>&1
	guard_wait $tp 120 "$WORK/vs.qmp"; rc=$WAIT_RC
	kill $hs 2>/dev/null; wait $hs 2>/dev/null
	tr -d '\r' < "$WORK/vs.console" > "$WORK/vs.txt"
	echo "    host->guest: $(cat "$WORK/vs-hc.out")"
	echo "    guest->host: $(grep '^vsock-echo' "$WORK/vs.txt" | tr '\n' ' ')"
	if [ "$hrc" != 0 ]; then
		show "$WORK/vs.txt"; result $n FAIL "host->guest: $(tail -n1 "$WORK/vs-hc.out")"
	elif ! grep -q '^GUEST-CLIENT-RC=0' "$WORK/vs.txt"; then
		show "$WORK/vs.txt"; result $n FAIL "guest->host: the guest's $N connections to the host failed"
	elif ! grep -q '^GUEST-DONE' "$WORK/vs.txt" || [ "$rc" != 0 ]; then
		show "$WORK/vs.txt"; show "$WORK/vs.out"; result $n FAIL "the guest did not end cleanly (strata exit $rc)"
	else
		result $n PASS "$N connections each way at once, $BYTES bytes each echoed intact (host->guest through strata's socket, guest->host to ${U##*/}_6000)"
	fi
}

# --- vsock, balloon and a disk limit across a live migration ---
case_devices_migrate() {
	n=devices_migrate
	for o in '--vsock' '--balloon' '--incoming URI'; do
		help_has "$o" || { result $n SKIP "strata has no $o"; return; }
	done
	if [ ! -x "$DATA/vsock-echo" ] || [ ! -f "$DATA/initramfs-vsock.cpio.gz" ]; then
		result $n SKIP "vsock-echo not built (no static libc on the build host)"; return
	fi
	G=${GUARD:-500}
	img=$WORK/dm.img
	cp "$DATA/disk.img" "$img"
	Us=$WORK/dms.sock Ud=$WORK/dmd.sock
	rm -f "$Us" "$Ud" "${Ud}_6000" "$WORK"/dm-*.qmp "$WORK"/dm-*.console "$WORK/dm.in"
	"$DATA/vsock-echo" uds-serve "${Ud}_6000" > "$WORK/dm-hs.out" 2>&1 &
	hs=$!
	wl='vsock-echo serve 5000 > /dev/null 2>&1 &
sleep 1; echo DEVMIG-READY
vsock-echo wait 5001; echo AFTER-MIGRATION
t0=$(cut -d" " -f1 /proc/uptime); dd if=/dev/vda of=/dev/null bs=65536 count=256 2>/dev/null; t1=$(cut -d" " -f1 /proc/uptime); echo READ16M $t0 $t1
vsock-echo connect 2 6000 10 65536; echo GUEST-CLIENT-RC=$?
vsock-echo wait 5002; echo GUEST-DONE'
	dm_vm() { # K SOCKET [options]: strata K (0 the source, 1 the destination)
		k=$1 u=$2; shift 2
		timeout -k 10 "$G" "$STRATA" run --kernel "$KERNEL" --initrd "$DATA/initramfs-vsock.cpio.gz" \
			--memory "$MEM" --cmdline "$BASE strata.cmd=$(b64 "$wl")" --vsock "cid=3,uds=$u" --balloon \
			--disk "path=$img,bw=4M,bw_burst=256K" --serial "file=$WORK/dm-$k.console" \
			--api-socket "$WORK/dm-$k.qmp" "$@" > "$WORK/dm-$k.out" 2>&1 < /dev/null &
	}
	dm_wait() { # CONSOLE WORD PID: until the guest printed a line starting with WORD
		t=0
		while ! tr -d '\r' 2>/dev/null < "$1" | grep -q "^$2"; do
			sleep 0.5; t=$((t + 1))
			if [ $t -ge 600 ] || ! kill -0 "$3" 2>/dev/null; then return 1; fi
		done
	}
	actual() { "$STRATA" ctl --api-socket "$1" qmp query-balloon 2>/dev/null | sed -n 's/.*"actual": *\([0-9]*\).*/\1/p'; }
	dm_fail() { kill $hs $src $dst 2>/dev/null; wait; result $n FAIL "$1"; }
	src= dst=
	dm_vm 0 "$Us"; src=$!
	if ! dm_wait "$WORK/dm-0.console" DEVMIG-READY $src; then
		show "$WORK/dm-0.console"; dm_fail "the guest never said DEVMIG-READY"; return
	fi
	if ! "$DATA/vsock-echo" uds-connect "$Us" 5000 10 65536 > "$WORK/dm-c0.out" 2>&1; then
		dm_fail "before the migration, host->guest: $(tail -n1 "$WORK/dm-c0.out")"; return
	fi
	"$STRATA" ctl --api-socket "$WORK/dm-0.qmp" qmp balloon '{"value": 201326592}' > /dev/null 2>&1
	t=0; while [ "$(actual "$WORK/dm-0.qmp")" != 201326592 ] && [ $t -lt 240 ]; do sleep 0.5; t=$((t + 1)); done
	a0=$(actual "$WORK/dm-0.qmp")
	[ "$a0" = 201326592 ] || { dm_fail "the balloon did not reach 64 MiB inflated before the migration (actual ${a0:-?})"; return; }
	dm_vm 1 "$Ud" --incoming "unix:$WORK/dm.in"; dst=$!
	i=0; while ! grep -q 'waiting for an incoming migration' "$WORK/dm-1.out" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
	"$STRATA" ctl --api-socket "$WORK/dm-0.qmp" migrate "unix:$WORK/dm.in" > "$WORK/dm-ctl.out" 2>&1
	crc=$?
	guard_wait $src 60 "$WORK/dm-0.qmp"; src_rc=$WAIT_RC; src=
	if [ "$crc" != 0 ] || [ "$src_rc" != 0 ]; then
		show "$WORK/dm-ctl.out"; dm_fail "the migration: ctl exit $crc, source exit $src_rc"; return
	fi
	echo "    $(grep '^migration completed' "$WORK/dm-ctl.out")"
	a1=$(actual "$WORK/dm-1.qmp")
	# the guest's listener came back after the transport reset
	"$DATA/vsock-echo" uds-connect "$Ud" 5000 10 65536 > "$WORK/dm-c1.out" 2>&1; c1=$?
	"$DATA/vsock-echo" uds-connect "$Ud" 5001 1 0 > /dev/null 2>&1
	dm_wait "$WORK/dm-1.console" GUEST-CLIENT-RC $dst
	"$DATA/vsock-echo" uds-connect "$Ud" 5002 1 0 > /dev/null 2>&1
	guard_wait $dst 120 "$WORK/dm-1.qmp"; dst_rc=$WAIT_RC
	kill $hs 2>/dev/null; wait $hs 2>/dev/null
	tr -d '\r' < "$WORK/dm-1.console" > "$WORK/dm-1.txt"
	set -- $(sed -n 's/^READ16M //p' "$WORK/dm-1.txt")
	rate=
	[ $# != 2 ] || rate=$(awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", 16 / (b - a) }')
	if [ "$a1" != 201326592 ]; then
		dm_fail "the destination's balloon: actual ${a1:-?} (the source had 201326592)"
	elif [ "$c1" != 0 ]; then
		show "$WORK/dm-1.txt"; dm_fail "after the migration, host->guest: $(tail -n1 "$WORK/dm-c1.out")"
	elif ! grep -q '^GUEST-CLIENT-RC=0' "$WORK/dm-1.txt"; then
		show "$WORK/dm-1.txt"; dm_fail "after the migration, the guest's connections to the host failed"
	elif [ -z "$rate" ] || awk -v r="$rate" 'BEGIN { exit !(r > 4.4) }'; then
		show "$WORK/dm-1.txt"; dm_fail "after the migration, the disk read at ${rate:-?} MiB/s under its 4 MiB/s limit"
	elif ! grep -q '^GUEST-DONE' "$WORK/dm-1.txt" || [ "$dst_rc" != 0 ]; then
		show "$WORK/dm-1.txt"; dm_fail "the guest did not end cleanly on the destination (strata exit $dst_rc)"
	else
		result $n PASS "across a migration: the balloon stayed at 64 MiB, vsock echoed both ways before and after (10 connections, 64 KiB each), the disk read at $rate MiB/s under 4 MiB/s"
	fi
}

case_reboot() {
	linux reboot 'echo rebooting; reboot -f'
	booted reboot reboot || return
	if [ "$VM_RC" = 0 ] && grep -q '^rebooting' "$WORK/reboot.out"; then
		result reboot PASS "guest reboot: strata exit status 0"
	else
		fail_out reboot reboot "guest reboot: strata exit status $VM_RC (expected 0)"
	fi
}

# --- a guest panic ends strata non-zero, saying so ---
# --- busybox's poweroff (no -f) ends the guest at once, as on a machine
# with an init: the guest command never goes on past it ---
case_poweroff() {
	linux poweroff 'echo BEFORE-POWEROFF; poweroff; sleep 5; echo AFTER-POWEROFF'
	booted poweroff poweroff || return
	if ! grep -q '^BEFORE-POWEROFF' "$WORK/poweroff.out"; then
		fail_out poweroff poweroff "the guest command did not run"
	elif grep -q -e '^AFTER-POWEROFF' -e '^STRATA-CMD-EXIT' "$WORK/poweroff.out"; then
		fail_out poweroff poweroff "poweroff returned and the guest went on"
	elif [ "$VM_RC" != 0 ]; then
		fail_out poweroff poweroff "strata exit status $VM_RC after the guest's poweroff (expected 0)"
	else
		result poweroff PASS "poweroff in the guest ended it at once; strata exit 0"
	fi
}

case_panic() {
	n=panic
	GUARD=$PANIC_TIMEOUT
	vm $n --kernel "$KERNEL" --initrd "$INITRD" --memory "$MEM" --serial stdio \
		--cmdline "console=ttyS0 quiet strata.cmd=$(b64 'echo c > /proc/sysrq-trigger')"
	unset GUARD
	booted panic $n || return
	if [ "$VM_RC" = 124 ]; then
		fail_out panic $n "strata still running ${PANIC_TIMEOUT}s after the guest panicked"
	elif [ "$VM_RC" != 0 ] && grep -v '^\[' "$WORK/$n.out" | grep -qi 'panic'; then
		result panic PASS "exit status $VM_RC: $(grep -v '^\[' "$WORK/$n.out" | grep -i panic | head -n1)"
	else
		fail_out panic $n "guest panic: strata exit status $VM_RC, no message of its own naming the panic"
	fi
}

# --- info mtree of the running machine: RAM, virtio-mmio, serial ---
case_mtree() {
	n=mtree sock=$WORK/qmp.sock
	rm -f "$sock"
	cp "$DATA/disk.img" "$WORK/mtree.img"
	: > "$WORK/$n.out"
	timeout "$VM_TIMEOUT" "$STRATA" run --kernel "$KERNEL" --initrd "$INITRD" --memory "$MEM" \
		--serial stdio --api-socket "$sock" --disk "path=$WORK/mtree.img,readonly=on" \
		--cmdline "$BASE strata.cmd=$(b64 'sleep 600')" > "$WORK/$n.out" 2>&1 < /dev/null &
	pid=$!
	i=0
	while [ $i -lt "$VM_TIMEOUT" ] && kill -0 $pid 2>/dev/null &&
	      ! grep -q '^STRATA-INIT-OK' "$WORK/$n.out"; do
		sleep 1; i=$((i + 1))
	done
	if ! kill -0 $pid 2>/dev/null; then
		wait $pid; VM_RC=$?
		booted mtree $n || return
		fail_out mtree $n "strata ended (status $VM_RC) before info mtree"; return
	fi
	"$STRATA" ctl --api-socket "$sock" hmp 'info mtree' > "$WORK/mtree-info.txt" 2>&1
	crc=$?
	"$STRATA" ctl --api-socket "$sock" quit > /dev/null 2>&1 || kill $pid
	wait $pid
	VM_RC=$?
	tr -d '\r' < "$WORK/$n.out" > "$WORK/$n.txt" && mv "$WORK/$n.txt" "$WORK/$n.out"
	booted mtree $n || return
	sed 's/^/    /' "$WORK/mtree-info.txt" | head -n 60
	miss=
	grep -qiE '\(prio [0-9-]+, ram\)' "$WORK/mtree-info.txt" || miss="$miss RAM"
	grep -qi 'virtio' "$WORK/mtree-info.txt" || miss="$miss virtio-mmio"
	grep -qiE 'serial|uart|03f8-' "$WORK/mtree-info.txt" || miss="$miss serial"
	if [ "$crc" != 0 ]; then
		result mtree FAIL "strata ctl hmp 'info mtree' exit status $crc"
	elif [ -n "$miss" ]; then
		result mtree FAIL "info mtree lacks:$miss"
	else
		result mtree PASS "info mtree shows RAM, virtio-mmio regions and the serial port"
	fi
}

# mig_test CASE OUT SECONDS [ARGS...]: tests/migration's mig-test in this KVM
# with its guests from $DATA, output in $WORK/OUT.out, exit status in MT_RC;
# returns 1 (the case reported SKIP) where they were not built.
mig_test() {
	c=$1 out=$2 secs=$3; shift 3
	for f in mig-test mig-dirty.elf mig-idle.elf mig-pio.elf mig-smp.elf; do
		[ -e "$DATA/$f" ] || { result "$c" SKIP "tests/migration not built ($f)"; return 1; }
	done
	STRATA=${STRATA_REAL:-$STRATA} MIG_DIRTY_ELF=$DATA/mig-dirty.elf \
		MIG_IDLE_ELF=$DATA/mig-idle.elf MIG_PIO_ELF=$DATA/mig-pio.elf \
		MIG_SMP_ELF=$DATA/mig-smp.elf \
		timeout "$secs" "$DATA/mig-test" "$@" > "$WORK/$out.out" 2>&1
	MT_RC=$?
}

# --- live migration: the tiny-guest suite (tests/migration) inside this KVM ---
case_migrate_tiny() {
	mig_test migrate_tiny mig-test 300 || return
	grep -v '^strata: ' "$WORK/mig-test.out" | sed 's/^/    /' | tail -n 40
	if [ "$MT_RC" = 0 ] && grep -q '^PASS: migration' "$WORK/mig-test.out"; then
		result migrate_tiny PASS "$(grep '^PASS: migration' "$WORK/mig-test.out" | cut -c7-)"
	else
		fail_out migrate_tiny mig-test "mig-test exit status $MT_RC"
	fi
}

# --- the handover under faults (tests/migration/handover.c): READY, GO and
# the answer to GO delayed, dropped, cut; the destination signalled; the
# final phase's hard limit; stop/cont storms ---
case_migrate_handover() {
	mig_test migrate_handover mig-handover 600 --handover || return
	grep -v '^strata: ' "$WORK/mig-handover.out" | sed 's/^/    /' | tail -n 30
	if [ "$MT_RC" = 0 ] && grep -q '^PASS: handover' "$WORK/mig-handover.out"; then
		result migrate_handover PASS "$(grep '^PASS: handover' "$WORK/mig-handover.out" | cut -c7-)"
	else
		fail_out migrate_handover mig-handover "mig-test --handover exit status $MT_RC"
	fi
}

# --- the migration soak (tests/migration, soak()): a 2-vCPU tiny guest that
# rewrites and checks every word of 32 MiB, migrated E2E_SOAK_HOPS times ---
case_migrate_soak() {
	hops=${E2E_SOAK_HOPS:-10}
	mig_test migrate_soak mig-soak $((120 + hops * 30)) --soak "$hops" || return
	grep -E '^(hop|soak|PASS)' "$WORK/mig-soak.out" | sed 's/^/    /' | tail -n 8
	if [ "$MT_RC" = 0 ] && grep -q '^PASS: migration soak' "$WORK/mig-soak.out"; then
		result migrate_soak PASS "$(grep '^soak:' "$WORK/mig-soak.out" | cut -c7-)"
	else
		fail_out migrate_soak mig-soak "mig-test --soak $hops exit status $MT_RC"
	fi
}

# --- the dirty-log stress (tests/migration/stress.c): a self-checking
# dirtying tiny guest while the log is switched on, taken 8 times and off,
# and the guest stopped and continued, in a loop for E2E_STRESS_SECS; under
# the bed's nested SVM this is where issue 11's old triple fault was seen ---
case_dirty_stress() {
	stress_secs=${E2E_STRESS_SECS:-60}
	mig_test dirty_stress mig-stress $((120 + stress_secs * 2)) --dirty-stress "$stress_secs" || return
	grep -E '^(stress|PASS)' "$WORK/mig-stress.out" | sed 's/^/    /'
	if [ "$MT_RC" = 0 ] && grep -q '^PASS: dirty-log stress' "$WORK/mig-stress.out"; then
		result dirty_stress PASS "$stress_secs s: $(grep -c '^stress' "$WORK/mig-stress.out") guests, no triple fault, every page check passed"
	else
		fail_out dirty_stress mig-stress "mig-test --dirty-stress $stress_secs exit status $MT_RC"
	fi
}

# disk_workload ITERS: the guest script of the migration and snapshot cases:
# ITERS times a file written to RAM (/tmp) and to the virtio disk, the two
# compared ("ITER i OK|BAD"); then, page cache dropped, every file re-read
# from the device and from RAM ("DISK-CHECK bad=N").
disk_workload() {
	iters=$1
	printf '%s' "mount -t ext4 /dev/vda /mnt || exit 9
i=1; while [ \$i -le $iters ]; do
  seq \$i 20000 > /tmp/r\$i; cp /tmp/r\$i /mnt/d\$i; sync
  a=\$(md5sum < /tmp/r\$i); b=\$(md5sum < /mnt/d\$i)
  if [ \"\$a\" = \"\$b\" ]; then echo \"ITER \$i OK\"; else echo \"ITER \$i BAD\"; fi
  i=\$((i+1))
done
sync; echo 3 > /proc/sys/vm/drop_caches
bad=0; i=1; while [ \$i -le $iters ]; do
  [ \"\$(seq \$i 20000 | md5sum)\" = \"\$(md5sum < /mnt/d\$i)\" ] || bad=\$((bad+1))
  [ \"\$(seq \$i 20000 | md5sum)\" = \"\$(md5sum < /tmp/r\$i)\" ] || bad=\$((bad+1))
  i=\$((i+1))
done
umount /mnt; echo DISK-CHECK bad=\$bad"
}

# --- live migration of a Linux guest writing to RAM and its virtio disk ---
# The workload writes a file per iteration to RAM and to the disk, compares
# them, and at the end re-reads every disk file from the device.  It is
# migrated mid-way with `strata ctl migrate`, E2E_MIG_HOPS times (default 1)
# from strata to strata, each hop once the workload has gone on by an
# iteration; the console must go on at each destination and every checksum
# must match on the last one.
# workload_vm NAME K [strata options]: strata (under the guard $G) running
# the guest command $cmdline with the disk $img; console $WORK/NAME-K.console,
# control socket $WORK/NAME-K.qmp, output $WORK/NAME-K.out
workload_vm() {
	wv_p=$1 wv_k=$2; shift 2
	rm -f "$WORK/$wv_p-$wv_k.qmp" "$WORK/$wv_p-$wv_k.console"
	timeout -k 10 "$G" "$STRATA" run --kernel "$KERNEL" --initrd "$INITRD" --memory "$MEM" \
		--cmdline "$cmdline" --disk "path=$img" \
		--serial "file=$WORK/$wv_p-$wv_k.console" --api-socket "$WORK/$wv_p-$wv_k.qmp" "$@" \
		> "$WORK/$wv_p-$wv_k.out" 2>&1 < /dev/null &
}

# iter_on CONSOLE: the last ITER number the workload printed there (0 if none)
iter_on() {
	v=$(tr -d '\r' 2>/dev/null < "$1" | sed -n 's/^ITER \([0-9]*\) .*/\1/p' | tail -n1)
	echo "${v:-0}"
}

case_migrate_linux() {
	n=migrate_linux
	help_has '--incoming URI' || { result $n SKIP "strata has no --incoming"; return; }
	img=$WORK/mig.img
	cp "$DATA/disk.img" "$img"
	iters=${E2E_MIG_ITERS:-60}
	wl="$(disk_workload "$iters"); echo CPUS-ONLINE \$(cat /sys/devices/system/cpu/online)"
	cmdline="$BASE strata.cmd=$(b64 "$wl")"
	hops=${E2E_MIG_HOPS:-1}
	G=${GUARD:-$((300 + hops * 60))}
	cpus=${E2E_MIG_CPUS:-2}
	# vm_at K: strata number K (0 the first source; K>0 waits for hop K)
	vm_at() {
		inc=
		[ "$1" = 0 ] || inc="--incoming unix:$WORK/mig-$1.in"
		rm -f "$WORK/mig-$1.in"
		workload_vm mig "$1" --cpus "$cpus" $inc
	}
	iter_of() { iter_on "$WORK/mig-$1.console"; }
	vm_at 0; src=$!
	k=0 want=3 downs=
	while [ $k -lt "$hops" ]; do
		# the guest on strata k runs its workload on (at least one more ITER)
		t=0
		while [ "$(iter_of $k)" -lt "$want" ]; do
			sleep 1; t=$((t+1))
			if [ $t -ge 180 ] || ! kill -0 $src 2>/dev/null || grep -q '^DISK-CHECK' "$WORK/mig-$k.console" 2>/dev/null; then
				kill $src 2>/dev/null; wait
				show "$WORK/mig-$k.console"
				result $n FAIL "hop $((k+1)): the guest on strata $k never reached ITER $want (workload over or stuck)"; return
			fi
		done
		vm_at $((k+1)); dst=$!
		# ready once it says it waits (that line follows listen(); the
		# socket's path exists from bind() on, when a connect is refused)
		i=0; while ! grep -q 'waiting for an incoming migration' "$WORK/mig-$((k+1)).out" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
		"$STRATA" ctl --api-socket "$WORK/mig-$k.qmp" migrate "unix:$WORK/mig-$((k+1)).in" > "$WORK/mig-ctl.out" 2>&1
		crc=$?
		sed "s/^/    hop $((k+1)) ctl: /" "$WORK/mig-ctl.out" | tail -n 2
		guard_wait $src 60 "$WORK/mig-$k.qmp"; src_rc=$WAIT_RC
		if [ "$crc" != 0 ] || ! grep -q '^migration completed' "$WORK/mig-ctl.out"; then
			kill $dst 2>/dev/null; wait
			result $n FAIL "hop $((k+1)): strata ctl migrate exit status $crc"; return
		elif [ "$src_rc" != 0 ]; then
			kill $dst 2>/dev/null; wait
			result $n FAIL "hop $((k+1)): the source exited $src_rc after the migration (expected 0)"; return
		fi
		downs="$downs $(grep '^migration completed' "$WORK/mig-ctl.out" | grep -o 'downtime [0-9]*' | cut -d' ' -f2)"
		echo "    hop $((k+1)): the source left at ITER $(iter_of $k)"
		want=$(( $(iter_of $k) + 1 ))
		k=$((k+1)) src=$dst
	done
	# the rest of the workload: about a minute in the bed
	guard_wait $src 240 "$WORK/mig-$hops.qmp"; dst_rc=$WAIT_RC
	for j in $(seq 0 "$hops"); do tr -d '\r' < "$WORK/mig-$j.console" > "$WORK/mig-$j.txt"; done
	last=$WORK/mig-$hops.txt
	first_dst=$(grep '^ITER ' "$WORK/mig-1.txt" | head -n1)
	echo "    the first source's console ends at '$(grep '^ITER ' "$WORK/mig-0.txt" | tail -n1)'; the first destination's starts at '$first_dst'"
	sed 's/^/    last: /' "$WORK/mig-$hops.out" | tail -n 3
	if [ "$dst_rc" = 124 ]; then
		show "$last"; result $n FAIL "the workload did not end within 240 s of the last hop (guard report above)"
	elif [ "$dst_rc" != 0 ]; then
		show "$last"; result $n FAIL "the last destination exited $dst_rc (expected 0)"
	elif [ -z "$first_dst" ]; then
		show "$WORK/mig-1.txt"; result $n FAIL "no workload output on the destination's console"
	elif grep -q 'BAD' "$WORK"/mig-[0-9]*.txt; then
		result $n FAIL "a RAM/disk checksum differed during the workload"
	elif ! grep -q '^DISK-CHECK bad=0' "$last" || ! grep -q '^STRATA-CMD-EXIT=0' "$last"; then
		show "$last"; result $n FAIL "the final RAM/disk check failed on the last destination"
	elif [ "$cpus" = 2 ] && ! grep -q '^CPUS-ONLINE 0-1' "$last"; then
		show "$last"; result $n FAIL "not both vCPUs online on the last destination"
	else
		result $n PASS "$cpus vCPUs, $hops hop(s) (downtime ms:$downs), the workload went on to DISK-CHECK bad=0"
	fi
}

# --- snapshots: the tiny-guest suite (tests/migration/snapshot.c) inside this KVM ---
case_snapshot_tiny() {
	# mig-test --snapshot is migration.snapshot of the kvm tier: where the
	# host ran the kvm tier itself, the bed would only repeat it (as for
	# e2e.hostile and e2e.kvm-tier).  It is also the case that stopped L1
	# most often before the bed's periodic tick (scripts/testbed.sh).
	if [ "${E2E_HOST_KVM:-0}" = 1 ]; then
		result snapshot_tiny SKIP "this host has /dev/kvm: the kvm tier ran mig-test --snapshot (migration.snapshot) on it"
		return
	fi
	mig_test snapshot_tiny mig-snapshot 600 --snapshot || return
	grep -v '^strata: ' "$WORK/mig-snapshot.out" | sed 's/^/    /' | tail -n 30
	if [ "$MT_RC" = 0 ] && grep -q '^snapshot: all cases passed' "$WORK/mig-snapshot.out"; then
		result snapshot_tiny PASS "save stopped/live, restore, 5 clones, incremental, every bad file"
	else
		fail_out snapshot_tiny mig-snapshot "mig-test --snapshot exit status $MT_RC"
	fi
}

# --- a snapshot of a Linux guest mid-workload (RAM and virtio disk), restored
# twice: the workload writes a file per iteration to RAM and to the disk; the
# VM is saved (`strata ctl snapshot`, stop and save) at ITER >= 3 and quit; the
# disk image is copied as it was then; each restore (the image put back first)
# must go on from the saved iteration to DISK-CHECK bad=0 ---
case_snapshot_linux() {
	n=snapshot_linux
	help_has '--restore PATH' || { result $n SKIP "strata has no --restore"; return; }
	img=$WORK/snap.img
	cp "$DATA/disk.img" "$img"
	iters=${E2E_SNAP_ITERS:-30}
	# then: did Linux enumerate the VM generation ID device from the DSDT
	# (its ACPI path), is a vmgenid driver bound to it (Debian's cloud
	# kernel has none: CONFIG_VIRT_DRIVERS is off), and 16 bytes of
	# /dev/urandom (each restore's must differ)
	wl="$(disk_workload "$iters"); echo VMGENID-PATH \$(cat /sys/bus/acpi/devices/STRA0002:00/path 2>/dev/null); echo VMGENID-DRIVER \$(test -d /sys/bus/acpi/drivers/vmgenid && echo yes || echo no) VMGENID-BOUND \$(ls /sys/bus/acpi/drivers/vmgenid 2>/dev/null | grep -c :); echo URANDOM \$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n')"
	cmdline="$BASE strata.cmd=$(b64 "$wl")"
	G=${GUARD:-300}
	iter_of() { iter_on "$WORK/snap-$1.console"; }
	workload_vm snap 0; src=$!
	t=0
	while [ "$(iter_of 0)" -lt 3 ]; do
		sleep 1; t=$((t+1))
		if [ $t -ge 180 ] || ! kill -0 $src 2>/dev/null; then
			kill $src 2>/dev/null; wait
			show "$WORK/snap-0.console"; result $n FAIL "the guest never reached ITER 3"; return
		fi
	done
	"$STRATA" ctl --api-socket "$WORK/snap-0.qmp" snapshot "$WORK/linux.snap" > "$WORK/snap-ctl.out" 2>&1
	crc=$?
	sed 's/^/    ctl: /' "$WORK/snap-ctl.out" | tail -n 2
	saved=$(iter_of 0)
	"$STRATA" ctl --api-socket "$WORK/snap-0.qmp" quit > /dev/null 2>&1
	guard_wait $src 30 "$WORK/snap-0.qmp"
	if [ "$crc" != 0 ] || ! grep -q '^snapshot saved' "$WORK/snap-ctl.out"; then
		result $n FAIL "strata ctl snapshot exit status $crc"; return
	fi
	cp "$img" "$WORK/snap.img.saved"
	echo "    saved at ITER $saved: $(du -b "$WORK/linux.snap" | cut -f1) bytes, $(du -k "$WORK/linux.snap" | cut -f1) KiB allocated"
	for r in 1 2; do
		cp "$WORK/snap.img.saved" "$img"
		workload_vm snap $r --restore "$WORK/linux.snap"; dst=$!
		i=0; while [ ! -S "$WORK/snap-$r.qmp" ] && kill -0 $dst 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
		st=$("$STRATA" ctl --api-socket "$WORK/snap-$r.qmp" status 2>&1)
		"$STRATA" ctl --api-socket "$WORK/snap-$r.qmp" resume > /dev/null 2>&1
		guard_wait $dst 240 "$WORK/snap-$r.qmp"; rc=$WAIT_RC
		tr -d '\r' < "$WORK/snap-$r.console" > "$WORK/snap-$r.txt"
		first=$(grep '^ITER ' "$WORK/snap-$r.txt" | head -n1)
		sed "s/^/    restore $r: /" "$WORK/snap-$r.out" | grep -v '^    restore.*ITER' | tail -n 2
		echo "    restore $r: started $st, console starts at '$first'"
		if [ "$rc" != 0 ]; then
			show "$WORK/snap-$r.txt"; result $n FAIL "restore $r: strata exited $rc (expected 0)"; return
		elif [ "$st" != paused ]; then
			result $n FAIL "restore $r: a stopped save should restore paused, not '$st'"; return
		elif [ -z "$first" ] || [ "${first#ITER }" = "${first}" ]; then
			show "$WORK/snap-$r.txt"; result $n FAIL "restore $r: no workload output after the restore"; return
		elif [ "$(echo "$first" | cut -d' ' -f2)" -lt "$saved" ]; then
			result $n FAIL "restore $r: the console starts at '$first', before the saved ITER $saved"; return
		elif grep -q BAD "$WORK/snap-$r.txt" || ! grep -q '^DISK-CHECK bad=0' "$WORK/snap-$r.txt" || \
			! grep -q '^STRATA-CMD-EXIT=0' "$WORK/snap-$r.txt"; then
			show "$WORK/snap-$r.txt"; result $n FAIL "restore $r: the RAM/disk check failed"; return
		fi
	done
	r1=$(grep '^URANDOM' "$WORK/snap-1.txt") r2=$(grep '^URANDOM' "$WORK/snap-2.txt")
	for r in 1 2; do
		echo "    restore $r: $(grep '^URANDOM' "$WORK/snap-$r.txt"), $(grep '^VMGENID-PATH' "$WORK/snap-$r.txt"), $(grep '^VMGENID-DRIVER' "$WORK/snap-$r.txt")"
	done
	# the binding is checked where the guest kernel has the driver
	bound="the guest kernel has no vmgenid driver (CONFIG_VMGENID unset), binding not checked"
	if grep -q '^VMGENID-DRIVER yes' "$WORK/snap-1.txt"; then
		bound="vmgenid bound"
		if ! grep -q 'VMGENID-BOUND [1-9]' "$WORK/snap-1.txt"; then
			result $n FAIL "the guest's vmgenid driver did not bind to strata's VM generation ID device"; return
		fi
	fi
	echo "    $bound"
	if ! grep -q '^VMGENID-PATH \\_SB_.VGEN' "$WORK/snap-1.txt"; then
		result $n FAIL "Linux did not enumerate the VM generation ID device (STRA0002) at \\_SB_.VGEN"; return
	elif [ -z "$r1" ] || [ "$r1" = "$r2" ]; then
		result $n FAIL "two restores of one snapshot read the same /dev/urandom bytes ('$r1')"; return
	fi
	result $n PASS "saved at ITER $saved, restored twice: each went on to DISK-CHECK bad=0; \\_SB_.VGEN enumerated, $bound; the two restores' urandom differ"
}

# --- a detached Linux VM, as a service runs one: --daemonize --pidfile
# --serial socket=PATH.  The foreground exits 0 once the VM runs; a client
# attaches to the console and runs a command in the guest's shell, leaves,
# comes back (the console kept what it missed) and runs another; a second
# VM on the same disk image is refused naming it; QMP system_powerdown ends
# the guest and strata, whose pidfile and sockets go with it ---
case_daemon() {
	n=daemon
	help_has '--daemonize' || { result $n SKIP "strata has no --daemonize"; return; }
	[ -x "$DATA/serial-attach" ] || { result $n SKIP "tests/qmp/serial-attach not built"; return; }
	img=$WORK/daemon.img pidf=$WORK/daemon.pid ser=$WORK/daemon.serial q=$WORK/daemon.qmp
	cp "$DATA/disk.img" "$img"
	rm -f "$pidf" "$ser" "$q"
	timeout 120 "$STRATA" run --kernel "$KERNEL" --initrd "$INITRD" --memory "$MEM" \
		--cmdline "$BASE strata.shell=1" --disk "path=$img" --daemonize --pidfile "$pidf" \
		--serial "socket=$ser" --api-socket "$q" > "$WORK/daemon.out" 2>&1 < /dev/null
	rc=$?
	dp=$(cat "$pidf" 2>/dev/null)
	# daemon_fail WHY: ends the detached strata (not this script's child) and fails
	daemon_fail() {
		[ -z "$dp" ] || kill -KILL "$dp" 2>/dev/null
		result $n FAIL "$1"
	}
	if [ "$rc" != 0 ] || [ -z "$dp" ] || ! kill -0 "$dp" 2>/dev/null; then
		show "$WORK/daemon.out"; daemon_fail "--daemonize: the foreground exited $rc, pidfile '${dp:-none}'"; return
	fi
	echo "    detached: strata pid $dp (the foreground exited 0)"
	if ! "$DATA/serial-attach" "$ser" 240 'HELLO-42' 'echo HELLO-$((6*7))' STRATA-SHELL \
		> "$WORK/daemon-att1.txt" 2>&1; then
		show "$WORK/daemon-att1.txt"; daemon_fail "first attach: the guest's shell did not answer"; return
	fi
	# detached now; the guest prints while nobody is attached
	"$STRATA" ctl --api-socket "$q" status > /dev/null 2>&1
	sleep 2
	if ! "$DATA/serial-attach" "$ser" 60 'AGAIN-49' 'echo AGAIN-$((7*7))' \
		> "$WORK/daemon-att2.txt" 2>&1; then
		show "$WORK/daemon-att2.txt"; daemon_fail "second attach: the guest's shell did not answer"; return
	fi
	timeout 60 "$STRATA" run --kernel "$KERNEL" --initrd "$INITRD" --memory "$MEM" \
		--disk "path=$img" --serial none > "$WORK/daemon-second.out" 2>&1 < /dev/null
	rc2=$?
	if [ "$rc2" = 0 ] || ! grep -q "Failed to get \"write\" lock" "$WORK/daemon-second.out" ||
		! grep -q "$img" "$WORK/daemon-second.out"; then
		show "$WORK/daemon-second.out"; daemon_fail "a second VM on the same image: exit $rc2, not refused naming it"; return
	fi
	echo "    a second VM on the image: $(head -n1 "$WORK/daemon-second.out")"
	"$STRATA" ctl --api-socket "$q" powerdown > /dev/null 2>&1
	t=0; while kill -0 "$dp" 2>/dev/null && [ $t -lt 300 ]; do sleep 0.2; t=$((t + 1)); done
	if kill -0 "$dp" 2>/dev/null; then
		daemon_fail "system_powerdown: strata still runs 60 s later"; return
	elif [ -e "$pidf" ] || [ -e "$ser" ] || [ -e "$q" ]; then
		result $n FAIL "after the poweroff: left behind $(ls "$pidf" "$ser" "$q" 2>/dev/null | tr '\n' ' ')"; return
	fi
	result $n PASS "detached (foreground exit 0), console attached, left, re-attached; second VM on the image refused; powerdown ended it, pidfile and sockets removed"
}

# --- a whole raw-QMP session against the running Linux guest (qmp-linux) ---
case_qmp() {
	n=qmp sock=$WORK/qmp-linux.sock
	if [ ! -x "$DATA/qmp-linux" ]; then
		result qmp SKIP "tests/qmp/qmp-linux not built"; return
	fi
	rm -f "$sock"
	cp "$DATA/disk.img" "$WORK/qmp.img"
	extra=
	if help_has '--rng'; then extra=--rng; fi
	# The guest prints a heartbeat the client watches (frozen while paused,
	# going on through bad requests); system_powerdown must end it.
	hb='while :; do echo "TICK $(cut -d" " -f1 /proc/uptime)"; sleep 1; done'
	: > "$WORK/$n.out"
	# shellcheck disable=SC2086
	timeout "$VM_TIMEOUT" "$STRATA" run --kernel "$KERNEL" --initrd "$INITRD" --memory "$MEM" \
		--serial stdio --api-socket "$sock" --disk "path=$WORK/qmp.img,readonly=on" $extra \
		--cmdline "$BASE strata.cmd=$(b64 "$hb")" > "$WORK/$n.out" 2>&1 < /dev/null &
	pid=$!
	i=0
	while [ $i -lt "$VM_TIMEOUT" ] && kill -0 $pid 2>/dev/null &&
	      ! grep -q '^TICK' "$WORK/$n.out"; do
		sleep 1; i=$((i + 1))
	done
	if ! kill -0 $pid 2>/dev/null; then
		wait $pid; VM_RC=$?
		booted qmp $n || return
		fail_out qmp $n "strata ended (status $VM_RC) before the QMP session"; return
	fi
	timeout 90 "$DATA/qmp-linux" session "$sock" "$WORK/$n.out" > "$WORK/qmp-client.txt" 2>&1
	crc=$?
	sed 's/^/    /' "$WORK/qmp-client.txt"
	if [ "$crc" != 0 ]; then
		"$STRATA" ctl --api-socket "$sock" quit > /dev/null 2>&1 || kill $pid
	fi
	wait $pid
	VM_RC=$?
	tr -d '\r' < "$WORK/$n.out" > "$WORK/$n.txt" && mv "$WORK/$n.txt" "$WORK/$n.out"
	booted qmp $n || return
	if [ "$crc" != 0 ]; then
		fail_out qmp $n "$(grep -m1 -A1 ': check failed: ' "$WORK/qmp-client.txt" | tr -s '\n ' ' ' | grep . || echo "qmp-linux exit status $crc")"
	elif ! grep -q '^STRATA-POWER-BUTTON' "$WORK/$n.out"; then
		fail_out qmp $n "the guest never ran its power-button action"
	elif [ "$VM_RC" != 0 ]; then
		fail_out qmp $n "strata exit status $VM_RC after the guest powered off (expected 0)"
	else
		result qmp PASS "raw QMP session: negotiation, stop/cont with events, query-mtree, info mtree, bad requests, system_powerdown -> guest poweroff, exit 0"
	fi
}

ALL="kvm boot_vmlinux boot_bzimage cpus2 blk_persist blk_readonly blk_limit net_ping rng balloon_linux vsock_linux devices_migrate reboot poweroff panic mtree qmp daemon migrate_tiny migrate_handover migrate_soak dirty_stress migrate_linux snapshot_tiny snapshot_linux"
[ $# -gt 0 ] || set -- $ALL
for c in "$@"; do
	case " $ALL " in
	*" $c "*) echo "== e2e case $c"; "case_$c" ;;
	*) result "$c" FAIL "no such case (cases: $ALL)" ;;
	esac
done
