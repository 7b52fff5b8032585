#!/bin/sh
# The sandbox with real guests (label kvm): `strata run` with tiny guests
# under --seccomp=kill (the default), log and off; a forbidden syscall made
# on purpose in each thread role (the test-only STRATA_TEST_SECCOMP_VIOLATE
# hook, honoured with --test-device) must end strata with status 159 and
# the role + syscall message; the jail (--jail-uid/--jail-gid/--chroot) as
# root, read from /proc/PID/status of the running strata (uids, groups,
# NoNewPrivs, an empty CapBnd on every thread).  POSIX sh, so it also runs in the nested test bed's busybox.
# Usage: guests.sh STRATA HELLO_ELF SPIN_ELF
# Exit status: 0 all passed, 1 a case failed, 77 no usable /dev/kvm.
set -u
STRATA=$1 HELLO=$2 SPIN=$3
if [ ! -c /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "SKIP: /dev/kvm is absent or not usable here: the sandbox's kvm tests need it"
	exit 77
fi
T=$(mktemp -d /tmp/strata-sandbox.XXXXXX)
trap 'rm -rf "$T"' EXIT
# every strata started here dies with this script (util-linux setpriv where
# the system has it; in the nested bed everything dies with the bed's QEMU)
# (busybox's setpriv, in the bed, has no --pdeathsig)
PD=
if setpriv --pdeathsig KILL true > /dev/null 2>&1; then PD="setpriv --pdeathsig KILL"; fi
fails=0 passes=0

pass() { echo "PASS $1"; passes=$((passes + 1)); }
fail() { echo "FAIL $1: $2"; sed 's/^/    | /' "$T/out" | tail -n 30; fails=$((fails + 1)); }
# run NAME ARGS...: strata run with a 60 s guard, output in $T/out, status in RC
run() {
	$PD timeout "${GUARD:-60}" $PD "$STRATA" run "$@" > "$T/out" 2>&1 < /dev/null
	RC=$?
}
has() { grep -q -- "$1" "$T/out"; }

# --- guests complete under the default (kill) and explicit modes ---
for mode in default kill log off; do
	opt=; [ $mode = default ] || opt=--seccomp=$mode
	run --test-device --kernel "$HELLO" $opt
	if [ $RC = 0 ] && has 'hello' && ! has 'seccomp'; then
		pass "hello.elf completes with seccomp $mode"
	else
		fail "hello.elf with seccomp $mode" "exit status $RC"
	fi
done
# with the virtio devices, so the device event loop runs under its filter
dd if=/dev/zero of="$T/disk.img" bs=1024 count=1024 2>/dev/null
run --test-device --kernel "$HELLO" --rng --disk "path=$T/disk.img" --cpus 2
if [ $RC = 0 ] && has 'hello' && ! has 'seccomp'; then
	pass "hello.elf with virtio-rng, virtio-blk and 2 vCPUs under kill"
else
	fail "hello.elf with virtio devices under kill" "exit status $RC"
fi

# --- a running guest driven through the control socket under kill ---
sock=$T/qmp.sock
$PD "$STRATA" run --kernel "$SPIN" --serial none --api-socket "$sock" --rng > "$T/out" 2>&1 < /dev/null &
pid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# the main thread asks for the shortest slice, the others keep the default
# (vmm/run.c, set_main_slice): custom slices exist from Linux 6.12 on
kv=$(uname -r | sed 's/^\([0-9]*\)\.\([0-9]*\).*/\1 \2/')
set -- $kv
if [ "${1:-0}" -gt 6 ] || { [ "${1:-0}" = 6 ] && [ "${2:-0}" -ge 12 ]; }; then
	slice() { sed -n 's/^se\.slice[[:space:]]*:[[:space:]]*//p' "$1" 2>/dev/null; }
	main_slice=$(slice /proc/$pid/sched) others=
	for t in /proc/$pid/task/*; do
		[ "${t##*/}" = "$pid" ] || others="$others $(slice "$t/sched")"
	done
	if [ "$main_slice" != 100000 ]; then
		fail "main thread's slice" "main ${main_slice:-unknown} ns (want 100000), others:$others"
	elif [ -z "$others" ] || case "$others " in *" 100000 "*) true ;; *) false ;; esac; then
		fail "main thread's slice" "main $main_slice ns, others:${others:- none} (want the default)"
	else
		pass "the main thread runs with a 0.1 ms slice, the others ($others ) with the default"
	fi
else
	echo "SKIP the main thread's slice: kernel $(uname -r) has no custom slices (Linux 6.12+)"
fi
ok=1
for c in status pause status resume mtree 'qmp query-dirty-log' reset status; do
	# shellcheck disable=SC2086
	if ! "$STRATA" ctl --api-socket "$sock" $c > "$T/ctl" 2>&1; then
		ok=0; echo "    ctl $c failed: $(head -c 300 "$T/ctl")"
	fi
done
# every thread has the process's affinity again: a vCPU thread starts away
# from the main thread's core and takes back its whole mask before its
# first KVM_RUN (kvm/run.c, vcpu_place_away), under its filter
aff() { sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$1" 2>/dev/null; }
want=$(aff /proc/$pid/status) bad= n=0
for t in /proc/$pid/task/*; do
	a=$(aff "$t/status")
	n=$((n + 1))
	[ "$a" = "$want" ] || bad="$bad ${t##*/}:$a"
done
if [ -n "$want" ] && [ -z "$bad" ]; then
	pass "all $n threads have the process's CPU affinity ($want) once the guest runs"
else
	fail "thread affinity" "want ${want:-unknown} on every thread; differ:${bad:- none read}"
fi
"$STRATA" ctl --api-socket "$sock" quit > /dev/null 2>&1 || ok=0
wait $pid
RC=$?
if [ $ok = 1 ] && [ $RC = 0 ] && ! has 'seccomp'; then
	pass "spin.elf: status, pause, resume, mtree, dirty log, reset, quit under kill"
else
	fail "control socket under kill" "ctl ok=$ok, strata exit status $RC"
fi

# --- a forbidden syscall in each role: reported, fatal under kill ---
for role in vcpu io stdin waiter main; do
	STRATA_TEST_SECCOMP_VIOLATE=$role run --test-device --kernel "$HELLO" --rng
	want="strata: seccomp: $role thread made a forbidden syscall personality (nr 135)"
	if [ $RC = 159 ] && has "$want"; then
		pass "$role: forbidden syscall killed with '$want'"
	else
		fail "$role: forbidden syscall" "exit status $RC (want 159 and '$want')"
	fi
done
# the migration thread: started by QMP migrate, it enters its role first
rm -f "$sock"
STRATA_TEST_SECCOMP_VIOLATE=migration $PD "$STRATA" run --test-device --kernel "$SPIN" \
	--serial none --api-socket "$sock" > "$T/out" 2>&1 < /dev/null &
pid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
"$STRATA" ctl --api-socket "$sock" qmp migrate "{\"uri\":\"unix:$T/nobody.sock\"}" > "$T/ctl" 2>&1
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill $pid 2>/dev/null
wait $pid
RC=$?
want="strata: seccomp: migration thread made a forbidden syscall personality (nr 135)"
if [ $RC = 159 ] && has "$want"; then
	pass "migration: forbidden syscall killed with '$want'"
else
	fail "migration: forbidden syscall" "exit status $RC (want 159 and '$want'); ctl: $(head -c 200 "$T/ctl")"
fi
# the incoming migration's loader thread (the stream is hostile input)
rm -f "$sock" "$T/in.sock"
STRATA_TEST_SECCOMP_VIOLATE=migration $PD "$STRATA" run --test-device --kernel "$SPIN" \
	--serial none --incoming "unix:$T/in.sock" > "$T/out" 2>&1 < /dev/null &
dpid=$!
$PD "$STRATA" run --kernel "$SPIN" --serial none --api-socket "$sock" > "$T/src.out" 2>&1 < /dev/null &
spid=$!
i=0
while { [ ! -S "$sock" ] || [ ! -S "$T/in.sock" ]; } && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
"$STRATA" ctl --api-socket "$sock" qmp migrate "{\"uri\":\"unix:$T/in.sock\"}" > "$T/ctl" 2>&1
i=0
while kill -0 $dpid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill $dpid 2>/dev/null
wait $dpid
RC=$?
"$STRATA" ctl --api-socket "$sock" quit > /dev/null 2>&1 || kill $spid
wait $spid
src_rc=$?
if [ $RC = 159 ] && has "$want" && [ $src_rc = 0 ]; then
	pass "incoming migration: the loader thread's forbidden syscall killed the destination; the source went on"
else
	fail "incoming migration loader" "destination exit $RC (want 159 and '$want'), source exit $src_rc"
fi
# without --test-device the hook is ignored (and hello.elf cannot end: the
# guard stops it; GNU timeout says 124, busybox passes on strata's 143)
STRATA_TEST_SECCOMP_VIOLATE=vcpu GUARD=5 run --kernel "$HELLO" --serial none
if { [ $RC = 124 ] || [ $RC = 143 ]; } && ! has 'forbidden'; then
	pass "the violation hook is ignored without --test-device"
else
	fail "violation hook without --test-device" "exit status $RC"
fi

# --- log mode: the syscall goes through, the kernel logs it ---
# The newest audit record before the run (counting lines is no good: a
# full kernel ring buffer drops an old line for each new one).
before=$(dmesg 2>/dev/null | grep 'type=1326' | tail -n 1)
STRATA_TEST_SECCOMP_VIOLATE=vcpu run --test-device --kernel "$HELLO" --seccomp=log
# The record reaches the kernel log through kauditd, a moment after the
# syscall: wait for a newer one (5 s at most) instead of reading dmesg once.
newest=$before
for _ in $(seq 50); do
	newest=$(dmesg 2>/dev/null | grep 'type=1326' | tail -n 1)
	[ "$newest" != "$before" ] && break
	sleep 0.1
done
if [ $RC = 0 ] && has 'hello' && ! has 'thread made a forbidden'; then
	pass "log: the forbidden syscall went through, the guest completed"
	if dmesg > /dev/null 2>&1; then
		if [ "$newest" != "$before" ] && dmesg | grep 'type=1326' | tail -n 3 | grep -q 'syscall=135'; then
			pass "log: the kernel logged it ($(echo "$newest" | sed 's/.*\(syscall=[0-9]*\).*/\1/'))"
		else
			fail "log: kernel log" "no new audit type=1326 line with syscall=135 in dmesg"
		fi
	else
		echo "SKIP log: dmesg not readable here, the kernel's log line is not checked"
	fi
else
	fail "log mode" "exit status $RC"
fi
STRATA_TEST_SECCOMP_VIOLATE=vcpu run --test-device --kernel "$HELLO" --seccomp=off
if [ $RC = 0 ] && ! has 'thread made a forbidden'; then pass "off: no filter"; else fail "off" "exit status $RC"; fi

# --- the jail (root only) ---
if [ "$(id -u)" != 0 ]; then
	echo "SKIP jail: needs root"
else
	mkdir -p "$T/jail"
	rm -f "$sock"
	$PD "$STRATA" run --kernel "$SPIN" --serial none --api-socket "$sock" --rng \
		--disk "path=$T/disk.img" --jail-uid 65534 --jail-gid 65534 --chroot "$T/jail" \
		> "$T/out" 2>&1 < /dev/null &
	pid=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	sleep 0.5
	uids=$(sed -n 's/^Uid:[[:space:]]*//p' /proc/$pid/status 2>/dev/null | tr -s ' \t' ' ')
	gids=$(sed -n 's/^Gid:[[:space:]]*//p' /proc/$pid/status 2>/dev/null | tr -s ' \t' ' ')
	groups=$(sed -n 's/^Groups:[[:space:]]*//p' /proc/$pid/status 2>/dev/null | tr -d ' \t')
	nnp=$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/$pid/status 2>/dev/null)
	capbnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/$pid/status 2>/dev/null)
	root=$(readlink /proc/$pid/root 2>/dev/null)
	# every thread, not only the main one
	bad=0
	for t in /proc/$pid/task/*; do
		u=$(sed -n 's/^Uid:[[:space:]]*//p' "$t/status" | tr -s ' \t' ' ')
		[ "$u" = "65534 65534 65534 65534" ] || bad=1
		[ "$(sed -n 's/^CapBnd:[[:space:]]*//p' "$t/status")" = 0000000000000000 ] || bad=1
	done
	st=$("$STRATA" ctl --api-socket "$sock" status 2>&1)
	"$STRATA" ctl --api-socket "$sock" quit > /dev/null 2>&1 || kill $pid
	wait $pid
	RC=$?
	want_root=$(cd "$T/jail" && pwd -P)
	if [ "$uids" = "65534 65534 65534 65534" ] && [ "$gids" = "65534 65534 65534 65534" ] &&
	   [ "$groups" = 65534 ] && [ "$nnp" = 1 ] && [ "$capbnd" = 0000000000000000 ] &&
	   [ "$root" = "$want_root" ] && [ $bad = 0 ] && [ "$st" = running ] && [ $RC = 0 ]; then
		pass "jail: uid/gid/groups 65534 and an empty CapBnd on every thread, no_new_privs, root $root, QMP works, exit 0"
	else
		fail "jail" "Uid '$uids' Gid '$gids' Groups '$groups' NoNewPrivs '$nnp' CapBnd '$capbnd' root '$root' threads-bad $bad status '$st' exit $RC"
	fi
	run --test-device --kernel "$HELLO" --jail-uid 65534
	if [ $RC = 1 ] && has 'needs --jail-gid'; then
		pass "jail: --jail-uid without --jail-gid refused"
	else
		fail "jail: uid without gid" "exit status $RC"
	fi
	run --test-device --kernel "$HELLO" --chroot "$T/no-such-dir"
	if [ $RC = 1 ] && has "chroot $T/no-such-dir: No such file"; then
		pass "jail: a missing --chroot folder is an error naming it"
	else
		fail "jail: missing chroot dir" "exit status $RC"
	fi
fi

echo "sandbox guests: $passes passed, $fails failed"
[ $fails = 0 ]
