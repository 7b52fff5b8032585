#!/usr/bin/env bash
# The nested test bed: for hosts whose /dev/kvm cannot boot a stock Linux
# kernel (PVM).  Boots Debian's cloud kernel as a first-level guest (L1) under
# QEMU TCG with an emulated AMD SVM CPU, loads kvm/kvm-amd there so L1 has a
# working /dev/kvm, runs CMD inside it (a shell command line, in /bed), relays
# its output to stdout and exits with CMD's exit status.
#
# Usage: scripts/testbed.sh [options] [--] CMD...
#   --add SRC[:DST]   put host file SRC into L1 at /bed/DST (default
#                     /bed/run/<basename>); dynamic ELF files bring their
#                     shared libraries.  Repeatable.
#   --strata PATH     the strata binary to carry to /bed/bin/strata (default:
#                     $STRATA_BUILD/vmm/strata, STRATA_BUILD=<repo>/build)
#   --timeout SEC     give up after SEC seconds (default 600, $STRATA_BED_TIMEOUT)
#   --memory MiB      L1 memory (default 2048)   --cpus N   L1 CPUs (default 1)
#   --shell           interactive, the console on this terminal: run CMD
#                     there and end the bed when it ends, with its exit
#                     status; without CMD, a shell in L1 (poweroff ends it)
#   --log FILE        keep L1's whole console output in FILE
# Exit status: CMD's, or 125 when the bed itself failed (boot, timeout, L1
# stopped).  L1 writes a heartbeat every 20 s; with none for
# $STRATA_BED_STALL s (default 120) L1 is taken to have stopped: its vCPU's
# registers (three samples, from QEMU's monitor) and the last heartbeats are
# printed and the bed ends then, not at the timeout.  A soft lockup in L1
# panics it (softlockup_panic=1), printing the stuck stack on the console.
# L1 runs without KASLR, so a kernel RIP names the same function in every
# bed (/proc/kallsyms in a --shell bed maps it).
#
# A fault of the bed itself, not of what runs in it (issue 11): with more
# than one L1 CPU, QEMU 7.2's multi-threaded TCG emulation of SVM with nested
# paging now and then runs L2 in a state no VMM gave it while L1's KVM
# write-protects L2's memory for dirty logging: a tiny guest then
# triple-faults fetching an instruction from its always-mapped code, or runs
# with L1's own registers (RIP at the VMRUN in kvm_amd), seconds to minutes
# into `mig-test --dirty-stress` (E2E_BED_CPUS=2 tests/e2e/run.sh --bed
# dirty_stress); natively, and with one L1 CPU, the same stress runs clean.
# The tests keep L1 at one CPU (the default; E2E_BED_CPUS); a guest lost
# with --cpus 2 does not by itself say anything about the VMM.
#
# In L1: /bed/bin/strata, /bed/guest/{bzImage,vmlinux,initramfs.cpio.gz} (the
# L2 artifacts from scripts/build-guest.sh), /bed/run/ (--add files), /tmp is
# RAM.  The environment has STRATA=/bed/bin/strata and GUEST_DIR=/bed/guest.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${STRATA_BUILD:-$REPO/build}
STRATA_BIN=$BUILD/vmm/strata
TIMEOUT=${STRATA_BED_TIMEOUT:-600}
STALL=${STRATA_BED_STALL:-120}
MEM=2048
CPUS=1
SHELL_MODE=0
LOG=
ADDS=()

die() { echo "testbed: $*" >&2; exit 125; }

while [ $# -gt 0 ]; do
  case "$1" in
    --add) ADDS+=("$2"); shift 2 ;;
    --strata) STRATA_BIN=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --memory) MEM=$2; shift 2 ;;
    --cpus) CPUS=$2; shift 2 ;;
    --shell) SHELL_MODE=1; shift ;;
    --log) LOG=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || [ "$SHELL_MODE" = 1 ] || die "no command given (usage: testbed.sh [options] [--] CMD...)"
case "$TIMEOUT" in ''|*[!0-9]*) die "--timeout '$TIMEOUT': not a number of seconds" ;; esac
case "$STALL" in ''|*[!0-9]*) die "STRATA_BED_STALL='$STALL': not a number of seconds" ;; esac

QEMU=$(command -v qemu-system-x86_64 || true)
[ -n "$QEMU" ] || die "qemu-system-x86_64 not found (run scripts/install-deps.sh)"
command -v cpio >/dev/null || die "cpio not found (run scripts/install-deps.sh)"

GUEST=$(bash "$REPO/scripts/build-guest.sh" --quiet) || die "scripts/build-guest.sh failed"

RUN=$(mktemp -d "${TMPDIR:-/tmp}/strata-bed.XXXXXX")
QPID=
WATCH=
cleanup() {
  [ -z "$QPID" ] || kill "$QPID" 2>/dev/null || true
  [ -z "$WATCH" ] || kill "$WATCH" 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ST=$RUN/stage
mkdir -p "$ST/bed/bin" "$ST/bed/run"

# copy_elf FILE: its shared libraries and loader, at the paths ldd names
copy_libs() {
  local f=$1 lib
  file_is_dyn "$f" || return 0
  while IFS= read -r lib; do
    [ -n "$lib" ] && [ -e "$lib" ] || continue
    if [ ! -e "$ST$lib" ]; then
      mkdir -p "$ST$(dirname "$lib")"
      cp -L "$lib" "$ST$lib"
    fi
  done < <(ldd "$f" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p')
}
file_is_dyn() { # a dynamically linked ELF?
  [ "$(head -c4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] || return 1
  ldd "$1" >/dev/null 2>&1
}

if [ -x "$STRATA_BIN" ]; then
  cp "$STRATA_BIN" "$ST/bed/bin/strata"
  copy_libs "$STRATA_BIN"
else
  echo "testbed: note: no strata binary at $STRATA_BIN (L1 has none)" >&2
fi
for a in ${ADDS[@]+"${ADDS[@]}"}; do
  src=${a%%:*}
  if [ "$src" = "$a" ]; then dst=run/$(basename "$src"); else dst=${a#*:}; fi
  dst=${dst#/bed/}
  dst=${dst#/}
  [ -e "$src" ] || die "--add $a: $src: No such file or directory"
  mkdir -p "$ST/bed/$(dirname "$dst")"
  cp -rL "$src" "$ST/bed/$dst"
  [ -d "$src" ] || copy_libs "$src"
done

# (--shell without CMD: no run.sh, L1 gives its shell)
[ $# -eq 0 ] || {
  echo 'export STRATA=/bed/bin/strata GUEST_DIR=/bed/guest HOME=/root'
  echo 'cd /bed'
  # A heartbeat on L1's second serial port (the host keeps it in heart.log):
  # after a timeout it tells whether L1 itself still ran, and what used its
  # CPU (each strata/mig-test: state and CPU ticks).
  cat <<'HEART'
( while :; do
    sleep 20
    l="HEART up=$(cut -d' ' -f1 /proc/uptime) load=$(cut -d' ' -f1-3 /proc/loadavg) free=$(sed -n 's/^MemFree: *//p' /proc/meminfo | tr -d ' ')"
    for p in /proc/[0-9]*; do
      read -r pid comm st _ _ _ _ _ _ _ _ _ _ ut kt _ < "$p/stat" 2>/dev/null || continue
      case "$comm" in "(strata)"|"(mig-test)"|"(timeout)") l="$l | $pid$comm $st cpu=$((ut + kt))" ;; esac
    done
    echo "$l"
  done > /dev/ttyS1 2>/dev/null ) &
HEART
  printf '%s\n' "$*"
} > "$ST/bed/run.sh"

(cd "$ST" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) > "$RUN/run.cpio"
cat "$GUEST/l1-base.cpio" "$RUN/run.cpio" > "$RUN/initrd.cpio"

NONCE=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
# lpj= skips the delay-loop calibration (udelay uses the TSC); mitigations=off
# and the PVH entry of vmlinux (no LZ4 inflate) save about a second under TCG.
# nohz=off highres=off: a periodic tick.  With the one-shot timer L1 stopped
# in 8 of 14 runs of e2e snapshot_tiny (and once in e2e.boot's panic case):
# the timer's vector pending in L1's local APIC, never taken by the emulated
# CPU, in L2 or in L1's own idle HLT, and a one-shot timer never fires again
# to raise it anew.  A periodic tick raises it every 4 ms: 0 stops in 6 runs.
APPEND="console=ttyS0 quiet loglevel=1 panic=-1 softlockup_panic=1 nokaslr nohz=off highres=off rdinit=/init tsc=reliable no_timer_check i8042.noaux mitigations=off lpj=4890000 strata.nonce=$NONCE"
QEMU_ARGS=(-accel tcg,thread=multi -cpu EPYC,+svm -m "$MEM" -smp "$CPUS"
           -M pc,hpet=off -nodefaults -no-user-config -no-reboot
           -kernel "$GUEST/vmlinux" -initrd "$RUN/initrd.cpio")

if [ "$SHELL_MODE" = 1 ]; then
  # the console is this terminal, every key for L1 (Ctrl-C and strata's
  # Ctrl-A x included: no QEMU monitor on it); the command's exit status (if
  # one was given) comes back on L1's second serial port
  qrc=0
  setpriv --pdeathsig KILL "$QEMU" "${QEMU_ARGS[@]}" -display none -monitor none \
       -chardev stdio,id=con,signal=off -serial chardev:con -serial "file:$RUN/heart.log" \
       -append "$APPEND strata.shell=1" || qrc=$?
  rc=$(sed -n "s/^STRATA-BED-EXIT-$NONCE=\([0-9]*\).*/\1/p" "$RUN/heart.log" 2>/dev/null | tail -n1)
  [ -n "$rc" ] || rc=$qrc
  exit "$rc"
fi

[ -n "$LOG" ] || LOG=$RUN/console.log
: > "$LOG"
START=$(date +%s.%N)
mkfifo "$RUN/out"
# QEMU (and timeout) get SIGKILL when their parent dies, however this
# script ends (ctest's kill, a crash): no bed outlives its test.
setpriv --pdeathsig KILL timeout -k 5 "$TIMEOUT" setpriv --pdeathsig KILL \
  "$QEMU" "${QEMU_ARGS[@]}" -display none -monitor "unix:$RUN/mon.sock,server=on,wait=off" \
  -serial stdio -serial "file:$RUN/heart.log" -append "$APPEND" < /dev/null > "$RUN/out" 2>"$RUN/qemu.err" &
QPID=$!

# HMP commands to QEMU's monitor, their output on stdout.
monitor() {
  python3 - "$RUN/mon.sock" "$@" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
def until_prompt():
    b = b""
    while not b.endswith(b"(qemu) "):
        c = s.recv(65536)
        if not c:
            break
        b += c
    return b.decode(errors="replace")
until_prompt()
for cmd in sys.argv[2:]:
    if cmd.startswith("sleep "):
        time.sleep(float(cmd[6:]))
        continue
    s.sendall(cmd.encode() + b"\n")
    out = until_prompt()
    out = out[out.find("\n") + 1:].replace("(qemu) ", "").replace("\r", "")
    print("== " + cmd + "\n" + out.rstrip())
PY
}

# The heartbeat watch: L1 silent on ttyS1 for $STALL s has stopped (its
# heartbeat runs every 20 s of L1 time, which is the host's).  Where its
# vCPU is goes to $RUN/stalled (L2 code, L1's kernel, or L1 user space:
# RIP, CS and CR3 say which), then QEMU quits.
(
  while kill -0 "$QPID" 2>/dev/null; do
    sleep 5
    age=$(( $(date +%s) - $(stat -c %Y "$RUN/heart.log" 2>/dev/null || date +%s) ))
    [ "$age" -ge "$STALL" ] || continue
    {
      echo "no heartbeat from L1 for ${age} s"
      monitor "info cpus" "info registers" "x/6i \$pc" "sleep 0.5" "info registers" "sleep 0.5" \
        "info registers" "info lapic" "info irq" "info pic"
    } > "$RUN/stalled.tmp" 2>&1
    mv "$RUN/stalled.tmp" "$RUN/stalled" # whole before QEMU goes
    monitor quit > /dev/null 2>&1 || kill "$QPID" 2>/dev/null
    exit 0
  done
) &
WATCH=$!

state=boot
rc=
up=
while IFS= read -r line || [ -n "$line" ]; do
  line=${line%$'\r'}
  printf '%s\n' "$line" >> "$LOG"
  case "$state:$line" in
    boot:STRATA-BED-UP*) up=$line ;;
    boot:STRATA-BED-BEGIN-"$NONCE") state=run ;;
    run:STRATA-BED-EXIT-"$NONCE"=*)
      rc=${line##*=}; state=finished
      # L1 only powers off now (minutes on a loaded host): not a stall
      kill "$WATCH" 2>/dev/null || true ;;
    run:*) printf '%s\n' "$line" ;;
  esac
done < "$RUN/out"
qrc=0
wait "$QPID" || qrc=$?
QPID=
kill "$WATCH" 2>/dev/null || true
wait "$WATCH" 2>/dev/null || true
END=$(date +%s.%N)

if [ -n "$rc" ]; then
  if [ -n "${STRATA_BED_VERBOSE:-}" ]; then
    echo "testbed: L1 ${up#STRATA-BED-UP }, total $(awk "BEGIN{printf \"%.2f\", $END - $START}") s" >&2
  fi
  exit "$rc"
fi
if [ -s "$RUN/stalled" ]; then
  echo "testbed: L1 stopped (state: $state): $(head -n1 "$RUN/stalled"); last L1 console lines:" >&2
elif [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  echo "testbed: timed out after ${TIMEOUT}s (state: $state); last L1 console lines:" >&2
else
  echo "testbed: L1 ended without the exit marker (qemu exit status $qrc, state: $state); last console lines:" >&2
fi
tail -n 25 "$LOG" | sed 's/^/  | /' >&2
if [ -s "$RUN/heart.log" ]; then
  echo "testbed: L1's last heartbeats (every 20 s; cpu = utime+stime ticks):" >&2
  tail -n 6 "$RUN/heart.log" | tr -d '\r' | sed 's/^/  heart: /' >&2
else
  echo "testbed: no heartbeat from L1 (it never reached run.sh, or ttyS1 is missing)" >&2
fi
if [ -s "$RUN/stalled" ]; then
  echo "testbed: where L1's vCPU was (QEMU monitor; a RIP below 0xffff800000000000 with CPL 3"\
       "is user code, L1's or, if CR3 is not L1's, an L2 guest's):" >&2
  tail -n +2 "$RUN/stalled" | grep -v -E '^(FPR|YMM|XMM|DR[0-7]|FCW|$)' | sed 's/^/  mon: /' >&2
fi
[ -s "$RUN/qemu.err" ] && sed 's/^/  qemu: /' "$RUN/qemu.err" >&2
exit 125
