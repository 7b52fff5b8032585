/* SPDX-License-Identifier: MIT */
/*
 * The sandbox: a seccomp allowlist per thread role (built with libseccomp)
 * and the optional jail (chroot, then drop to an unprivileged uid/gid).
 *
 * Each strata thread installs its role's filter itself, before it touches
 * guest-controlled data:
 *
 *   SANDBOX_ROLE_MAIN       the main thread: epoll loop, QMP clients,
 *                           region-tree commits (KVM slot/ioeventfd/irqfd
 *                           ioctls on the VM fd), pause/resume, reset,
 *                           dirty log, the exit path; it may start
 *                           threads (clone with CLONE_THREAD only) and open
 *                           migration sockets
 *   SANDBOX_ROLE_VCPU       a vCPU thread: KVM_RUN, register/state ioctls
 *                           on vCPU fds, IRQ/MSI injection and dirty log on
 *                           the VM fd, device writes (UART, eventfds)
 *   SANDBOX_ROLE_IO         the device event loop: io_uring_enter (the
 *                           only role with it: this thread alone drives
 *                           the rings; no role has io_uring_setup or
 *                           io_uring_register), disk
 *                           preadv/pwritev/fdatasync, TAP read/write,
 *                           eventfds, getrandom, IRQ ioctls on the VM fd
 *   SANDBOX_ROLE_STDIN      the --serial stdio input thread: poll, read
 *   SANDBOX_ROLE_WAITER     the thread that waits for the VM's end
 *   SANDBOX_ROLE_SERIAL     the --serial pty / socket=PATH thread
 *                           (vmm/chardev.h): poll, read, accept4 on its
 *                           listening socket (no socket, connect or
 *                           bind), IRQ ioctls (the UART's input)
 *   SANDBOX_ROLE_MIGRATION  a migration thread: sockets (AF_UNIX, AF_INET,
 *                           AF_INET6; socket/connect/bind/listen/accept4,
 *                           send/recv/sendmsg/recvmsg, shutdown,
 *                           get/setsockopt), read/write, poll/ppoll,
 *                           KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG, the
 *                           state save/restore ioctls on VM and vCPU fds,
 *                           KVM_RUN (kvm_vcpu_get_state completes a parked
 *                           vCPU's pending exit), slot/ioeventfd/irqfd
 *                           ioctls, epoll, eventfds.
 *
 * Both migration threads do so: the source's (migration/source.c, started by
 * QMP migrate) and the destination's stream loader (migration/destination.c: the
 * stream is parsed on its own thread under this role, main being still
 * unfiltered while a destination waits: the main loop serves QMP in the
 * inmigrate state and listens, and enters MAIN once the guest is in).
 *
 * THE MIGRATION THREAD: call, as the first thing the new thread does,
 *
 *     if (sandbox_enter(&vmm->sandbox, SANDBOX_ROLE_MIGRATION) < 0) { fail }
 *
 * (vmm->sandbox is the Vmm's Sandbox, see vmm/vmm.h).  A thread created by
 * the main thread after it entered SANDBOX_ROLE_MAIN also inherits MAIN's
 * filter (seccomp filters stack; the stricter action wins), so MAIN's
 * allowlist includes all of MIGRATION's by construction (sandbox.c: the
 * role table's `includes`): add what migration needs to MIGRATION only.  Opening files is not in either:
 * a tcp: URI needs an IP address there (the resolver opens /etc files and
 * may load NSS modules; migration/stream.c says so instead of dying).
 *
 * Modes (--seccomp):
 *   kill  a syscall outside the role's list raises SIGSYS (SCMP_ACT_TRAP);
 *         the handler writes "strata: seccomp: <role> thread made a
 *         forbidden syscall <name> (nr N)" to stderr (write(2) only: it is
 *         async-signal-safe; names were resolved before any filter) and
 *         ends the process with exit status 159 (128 + SIGSYS).  Before
 *         that the main thread restores the terminal saved with
 *         sandbox_fatal_save_tty and removes the paths given to
 *         sandbox_fatal_unlink (both in MAIN's list; another thread's
 *         handler passes the job to the main thread with tgkill, which
 *         every list allows, and exits by itself if main has not within
 *         2 s), so a kill leaves no raw terminal and no stale socket.
 *   log   SCMP_ACT_LOG: the syscall is let through and the kernel logs it
 *         (audit type=1326 in dmesg / journalctl -k, with syscall=N and
 *         comm=); strata itself cannot see these, so nothing is printed.
 *         Used to find what a new code path needs without breaking it.
 *   off   no filter.
 * In an AddressSanitizer build the mode is forced to off (the sanitizer
 * runtime makes syscalls no allowlist predicts), with a notice.
 *
 * Test-only: with --test-device, the environment variable
 * STRATA_TEST_SECCOMP_VIOLATE=<role name> makes that role's thread call a
 * syscall no role allows (personality(0xffffffff), a harmless query) right
 * after its filter is installed; tests/sandbox uses it to check the report.
 */
#ifndef STRATA_VMM_SANDBOX_H
#define STRATA_VMM_SANDBOX_H

#include <fcntl.h>
#include <stdbool.h>
#include <sys/types.h>

typedef enum SandboxRole {
    SANDBOX_ROLE_MAIN = 0,
    SANDBOX_ROLE_VCPU,
    SANDBOX_ROLE_IO,
    SANDBOX_ROLE_STDIN,
    SANDBOX_ROLE_WAITER,
    SANDBOX_ROLE_MIGRATION,
    SANDBOX_ROLE_SERIAL,
    SANDBOX_NROLES
} SandboxRole;

typedef enum SandboxMode { SANDBOX_KILL = 0, SANDBOX_LOG, SANDBOX_OFF } SandboxMode;

typedef struct Sandbox {
    SandboxMode mode; /* as asked for (after the ASan override) */
    pid_t pid;        /* tgkill may only target this process */
    int violate_role; /* test-only (see above); -1 = none */
} Sandbox;

typedef struct SandboxJail {
    long uid, gid;          /* -1 = keep */
    const char *chroot_dir; /* NULL = none */
} SandboxJail;

/*
 * Prepares the process for sandbox_enter: resolves every syscall name for
 * the SIGSYS report, installs the SIGSYS handler (process-wide) and fills
 * *sb.  Call on the main thread before any filtered thread starts.
 * test_hooks: honour STRATA_TEST_SECCOMP_VIOLATE.  0, or a negative errno
 * after printing one line.
 */
int sandbox_init(Sandbox *sb, SandboxMode mode, bool test_hooks);
/*
 * Installs role's filter on the calling thread (and unblocks SIGSYS there).
 * Permanent for the thread and the threads it creates later.  No-op with
 * mode off.  0, or a negative errno after printing one line naming the role.
 */
int sandbox_enter(const Sandbox *sb, SandboxRole role);
/* Saves fd's terminal settings (fd a tty about to be put in raw mode): a
 * seccomp kill restores them.  Call on the main thread. */
void sandbox_fatal_save_tty(int fd);
/* Registers a path strata created (a unix socket) for a seccomp kill to
 * remove (up to 4, each under 108 bytes).  Call on the main thread. */
void sandbox_fatal_unlink(const char *path);
/* Undoes sandbox_fatal_unlink(path) (strata removed it itself). */
void sandbox_fatal_forget(const char *path);
/* The role's name as printed in reports ("vcpu", "io", ...), or "?". */
const char *sandbox_role_name(SandboxRole role);
/* The role named s, or -1. */
int sandbox_role_from_name(const char *s);
/* The flags of the one open(2) a filtered thread may make: a snapshot file
 * (the migration role and main, which includes it). */
#define SANDBOX_SNAPSHOT_FLAGS (O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW)

/* True if the calling thread runs under a kill-mode filter: then it must
 * not call what opens files or unlisted sockets (getaddrinfo on a host
 * name, for one). */
bool sandbox_thread_strict(void);
/* True if this build forces the mode to off (AddressSanitizer). */
bool sandbox_forced_off(void);

/*
 * The jail: chroot(dir) (then chdir("/")), every capability dropped from
 * the bounding set, setgroups to {gid},
 * setresgid(gid), setresuid(uid), PR_SET_NO_NEW_PRIVS, and a check that
 * root cannot be regained.  Call after every file, device and socket is
 * open and before any other thread exists (the uid change is per thread in
 * the kernel).  Nothing to do: 0.  0, or a negative errno after printing
 * one line naming the step.
 */
int sandbox_jail(const SandboxJail *j);

#endif /* STRATA_VMM_SANDBOX_H */
