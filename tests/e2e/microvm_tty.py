#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The README's first command as a person runs it: `bash scripts/microvm.sh`
on a terminal (a pty here).  The guest's shell must answer a command, and one
`poweroff` typed there must end the whole session (strata, and the nested
bed where the host's KVM cannot boot Linux) with exit status 0.  Then the
same with strata's Ctrl-A x instead of poweroff.

Usage: microvm_tty.py REPO    (as root; exit 0 pass, 1 fail, 77 skip)
Everything it starts is in the pty's session and is killed when it ends.
"""
import os
import pty
import select
import signal
import sys
import time

BOOT_S = 600  # the bed boots two kernels under TCG
END_S = 120


def run(repo, how):
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(repo)
        os.execvp("bash", ["bash", "scripts/microvm.sh"])
    out = bytearray()

    def wait_for(what, secs):
        end = time.monotonic() + secs
        while what not in out:
            left = end - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([fd], [], [], min(left, 1.0))
            if r:
                try:
                    b = os.read(fd, 65536)
                except OSError:
                    return what in out
                if not b:
                    return what in out
                out.extend(b)
        return True

    def ended(secs):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            try:
                r, _, _ = select.select([fd], [], [], 0.5)
                if r:
                    out.extend(os.read(fd, 65536))
            except OSError:
                pass
            p, st = os.waitpid(pid, os.WNOHANG)
            if p == pid:
                return os.waitstatus_to_exitcode(st)
        return None

    def tail():
        return out[-1500:].decode("utf-8", "replace").replace("\r", "")

    try:
        if not wait_for(b"STRATA-SHELL", BOOT_S):
            return f"{how}: no guest shell within {BOOT_S} s:\n{tail()}"
        time.sleep(1)
        os.write(fd, b"echo HELLO-$((6*7))\r")
        if not wait_for(b"HELLO-42", 60):
            return f"{how}: the guest shell did not answer:\n{tail()}"
        t0 = time.monotonic()
        os.write(fd, b"poweroff\r" if how == "poweroff" else b"\x01x")
        rc = ended(END_S)
        if rc is None:
            return f"{how}: the session still runs {END_S} s later:\n{tail()}"
        if rc != 0:
            return f"{how}: the session ended with exit status {rc}:\n{tail()}"
        print(f"ok: {how} in the guest's shell ended the session in "
              f"{time.monotonic() - t0:.1f} s, exit status 0")
        return None
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        os.close(fd)


def main():
    repo = sys.argv[1]
    if os.geteuid() != 0:
        print("SKIP: scripts/microvm.sh needs root (apt-get, a TAP device)")
        return 77
    for how in ("poweroff", "ctrl-a-x"):
        err = run(repo, how)
        if err:
            print("FAIL " + err)
            return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
