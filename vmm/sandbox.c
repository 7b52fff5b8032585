/* SPDX-License-Identifier: MIT */
/* Per-thread seccomp allowlists and the jail (see sandbox.h). */
#include "vmm/sandbox.h"
#include "vmm/sandbox-bpf.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif

#define VIOLATE_NR SYS_personality /* in no role's list */
#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1 /* si_code of a seccomp trap (linux/signal.h) */
#endif

/* The role is per thread, read by the SIGSYS handler; syscall names come
 * from the table made at build time (sandbox_syscall_names). */
static __thread int tls_role = -1;
static __thread bool tls_strict; /* a kill-mode filter is on this thread */

bool sandbox_thread_strict(void)
{
    return tls_strict;
}

bool sandbox_forced_off(void)
{
#ifdef SANDBOX_ASAN
    return true;
#else
    return false;
#endif
}

/* ---- the SIGSYS report -------------------------------------------------- */

/*
 * What a seccomp kill undoes before the process ends: the terminal's
 * settings (kernel layout, from TCGETS: restored with one TCSETS) and the
 * socket paths strata created.  Written by the main thread (fd / count
 * published last), read by the SIGSYS handler on the main thread.
 */
#define FATAL_PATHS 4
static unsigned char fatal_termios[64] __attribute__((aligned(8)));
static int fatal_tty_fd = -1;
static char fatal_paths[FATAL_PATHS][108];
static int fatal_npaths;
static pid_t fatal_pid; /* the main thread (its tid is the pid) */

void sandbox_fatal_save_tty(int fd)
{
    if (ioctl(fd, TCGETS, fatal_termios) == 0)
        __atomic_store_n(&fatal_tty_fd, fd, __ATOMIC_RELEASE);
}

void sandbox_fatal_unlink(const char *path)
{
    int n = __atomic_load_n(&fatal_npaths, __ATOMIC_ACQUIRE);
    if (!path || n >= FATAL_PATHS || strlen(path) >= sizeof(fatal_paths[0]))
        return;
    /* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): length checked above */
    strcpy(fatal_paths[n], path);
    __atomic_store_n(&fatal_npaths, n + 1, __ATOMIC_RELEASE);
}

void sandbox_fatal_forget(const char *path)
{
    int n = __atomic_load_n(&fatal_npaths, __ATOMIC_ACQUIRE);
    for (int i = 0; path && i < n; i++)
        if (!strcmp(fatal_paths[i], path))
            __atomic_store_n(&fatal_paths[i][0], 0, __ATOMIC_RELEASE); /* skipped */
}

static size_t put(char *buf, size_t n, size_t cap, const char *s)
{
    while (*s && n < cap)
        buf[n++] = *s++;
    return n;
}

/* v in decimal at the end of num[24]; returns where it starts. */
static const char *fmt_int(char *num, long v)
{
    int i = 23;
    unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
    num[i] = 0;
    do {
        num[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u && i > 1);
    if (v < 0)
        num[--i] = '-';
    return num + i;
}

/*
 * Async-signal-safe, and only syscalls the thread's own filter allows: on
 * any thread the report (write), then on the main thread the clean-up
 * (TCSETS and unlink: in MAIN's list, and main is unfiltered before it
 * enters MAIN); another thread hands the clean-up to the main thread with
 * tgkill (every list allows it for this process) and ends the process
 * itself if that has not happened within 2 s.  Exit status 159.
 */
static void sigsys_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    char buf[256], num[24];
    size_t n = 0;
    if (si->si_code == SYS_SECCOMP) {
        int nr = si->si_syscall;
        const char *name = nr >= 0 && nr < SANDBOX_MAX_NR && sandbox_syscall_names[nr]
                               ? sandbox_syscall_names[nr]
                               : "(unknown)";
        int role = tls_role;
        n = put(buf, n, sizeof(buf), "strata: seccomp: ");
        n = put(buf, n, sizeof(buf), sandbox_role_name((SandboxRole)role));
        n = put(buf, n, sizeof(buf), " thread made a forbidden syscall ");
        n = put(buf, n, sizeof(buf), name);
        n = put(buf, n, sizeof(buf), " (nr ");
        n = put(buf, n, sizeof(buf), fmt_int(num, nr));
        n = put(buf, n, sizeof(buf), ")\n");
    } else if (si->si_pid != fatal_pid) {
        n = put(buf, n, sizeof(buf), "strata: SIGSYS sent by pid ");
        n = put(buf, n, sizeof(buf), fmt_int(num, si->si_pid));
        n = put(buf, n, sizeof(buf), ": exiting\n");
    } /* else handed over: reported already */
    if (n) {
        ssize_t w = write(STDERR_FILENO, buf, n);
        (void)w;
    }
    if (fatal_pid && syscall(SYS_gettid) != fatal_pid) {
        syscall(SYS_tgkill, fatal_pid, fatal_pid, SIGSYS);
        struct timespec ts = { 2, 0 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    } else {
        int fd = __atomic_load_n(&fatal_tty_fd, __ATOMIC_ACQUIRE);
        if (fd >= 0)
            (void)ioctl(fd, TCSETS, fatal_termios);
        int np = __atomic_load_n(&fatal_npaths, __ATOMIC_ACQUIRE);
        for (int i = 0; i < np; i++)
            if (__atomic_load_n(&fatal_paths[i][0], __ATOMIC_ACQUIRE))
                (void)unlink(fatal_paths[i]);
    }
    _exit(128 + SIGSYS);
}

int sandbox_init(Sandbox *sb, SandboxMode mode, bool test_hooks)
{
    memset(sb, 0, sizeof(*sb));
    sb->violate_role = -1;
    sb->pid = getpid();
    fatal_pid = sb->pid;
    if (mode != SANDBOX_OFF && sandbox_forced_off()) {
        fprintf(stderr,
                "strata: --seccomp=%s: off in this AddressSanitizer build "
                "(the sanitizer's own syscalls are not in the allowlists)\n",
                mode == SANDBOX_KILL ? "kill" : "log");
        mode = SANDBOX_OFF;
    }
    sb->mode = mode;
    if (mode == SANDBOX_OFF)
        return 0;
    /* no_new_privs once for the process (threads started later inherit
     * it), so loading a filter needs no prctl: a filtered thread may start
     * another that adds its own.  The API level is probed now, too. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        int e = errno;
        fprintf(stderr, "strata: seccomp: PR_SET_NO_NEW_PRIVS: %s\n", strerror(e));
        return -e;
    }
    unsigned api = mode == SANDBOX_LOG ? seccomp_api_get() : 0; /* probes the kernel */
    if (mode == SANDBOX_LOG && api < 3) {
        fprintf(stderr,
                "strata: --seccomp=log: the kernel cannot log seccomp actions "
                "(libseccomp API level %u)\n",
                api);
        return -ENOSYS;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = sigsys_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) < 0) {
        int e = errno;
        fprintf(stderr, "strata: seccomp: SIGSYS handler: %s\n", strerror(e));
        return -e;
    }
    if (test_hooks) {
        const char *v = getenv("STRATA_TEST_SECCOMP_VIOLATE");
        if (v && *v) {
            sb->violate_role = sandbox_role_from_name(v);
            if (sb->violate_role < 0) {
                fprintf(stderr, "strata: STRATA_TEST_SECCOMP_VIOLATE=%s: not a role\n", v);
                return -EINVAL;
            }
        }
    }
    return 0;
}

/* ---- loading a filter --------------------------------------------------- */

int sandbox_program(SandboxRole role, SandboxMode mode, pid_t pid, struct sock_filter *out,
                    size_t cap)
{
    if ((unsigned)role >= SANDBOX_NROLES || (mode != SANDBOX_KILL && mode != SANDBOX_LOG))
        return -EINVAL;
    const SandboxProgram *p = &sandbox_programs[role][mode == SANDBOX_LOG];
    if (p->len == 0)
        return 0;
    if (p->len > cap)
        return -E2BIG;
    memcpy(out, p->insn, p->len * sizeof(*out));
    for (unsigned i = 0; i < p->npid; i++)
        out[p->pid_at[i]].k = (uint32_t)pid;
    return p->len;
}

int sandbox_enter(const Sandbox *sb, SandboxRole role)
{
    if ((unsigned)role >= SANDBOX_NROLES) {
        fprintf(stderr, "strata: seccomp: role %d: no such role\n", (int)role);
        return -EINVAL;
    }
    if (!sb || sb->mode == SANDBOX_OFF)
        return 0;
    const char *name = sandbox_role_name(role);
    /* the program made at build time, else libseccomp now (sandbox-bpf.h) */
    struct sock_filter prog[SANDBOX_BPF_MAX];
    int n = sandbox_program(role, sb->mode, sb->pid, prog, SANDBOX_BPF_MAX);
    scmp_filter_ctx ctx = NULL;
    int r = n < 0 ? n : 0;
    if (n == 0)
        ctx = sandbox_rules_ctx(role, sb->mode, sb->pid, &r);
    if (r < 0) {
        fprintf(stderr, "strata: seccomp: %s thread: building the filter: %s\n", name,
                strerror(-r));
        return r;
    }
    /* The trap must reach the handler: a blocked SIGSYS would kill silently. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    tls_role = (int)role;
    if (ctx) {
        r = seccomp_load(ctx);
        seccomp_release(ctx);
    } else {
        /* as seccomp_load would: no flags (no_new_privs is set already) */
        struct sock_fprog fp = { .len = (unsigned short)n, .filter = prog };
        r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) < 0 ? -errno : 0;
    }
    if (r < 0) {
        fprintf(stderr, "strata: seccomp: %s thread: loading the filter: %s\n", name, strerror(-r));
        tls_role = -1;
        return r;
    }
    tls_strict = sb->mode == SANDBOX_KILL;
    if (sb->violate_role == (int)role) {
        static const char msg[] = "strata: test: making a forbidden syscall (personality)\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        syscall(VIOLATE_NR, 0xffffffffUL);
    }
    return 0;
}

/* ---- the jail ----------------------------------------------------------- */

int sandbox_jail(const SandboxJail *j)
{
    if (j->chroot_dir) {
        if (chdir(j->chroot_dir) < 0 || chroot(".") < 0 || chdir("/") < 0) {
            int e = errno;
            fprintf(stderr, "strata: --chroot %s: %s\n", j->chroot_dir, strerror(e));
            return -e;
        }
    }
    if (j->uid >= 0 || j->gid >= 0 || j->chroot_dir) {
        /* An empty bounding set: no capability can come back (execve of a
         * file with capabilities, a root uid regained).  Before the uid
         * change, while CAP_SETPCAP is still effective.  READ fails with
         * EINVAL past the kernel's last capability. */
        int r;
        for (int cap = 0; (r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0)) >= 0; cap++) {
            if (r == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
                int e = errno;
                fprintf(stderr,
                        "strata: jail: dropping capability %d from the bounding "
                        "set: %s\n",
                        cap, strerror(e));
                return -e;
            }
        }
    }
    if (j->gid >= 0) {
        gid_t g = (gid_t)j->gid;
        if (setgroups(1, &g) < 0 || setresgid(g, g, g) < 0) {
            int e = errno;
            fprintf(stderr, "strata: --jail-gid %ld: %s\n", j->gid, strerror(e));
            return -e;
        }
    }
    if (j->uid >= 0) {
        uid_t u = (uid_t)j->uid;
        if (setresuid(u, u, u) < 0) {
            int e = errno;
            fprintf(stderr, "strata: --jail-uid %ld: %s\n", j->uid, strerror(e));
            return -e;
        }
        if (u != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
            fprintf(stderr, "strata: --jail-uid %ld: root could be regained\n", j->uid);
            return -EPERM;
        }
    }
    if ((j->uid >= 0 || j->gid >= 0 || j->chroot_dir) &&
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        int e = errno;
        fprintf(stderr, "strata: jail: PR_SET_NO_NEW_PRIVS: %s\n", strerror(e));
        return -e;
    }
    return 0;
}
