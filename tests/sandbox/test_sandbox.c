/* SPDX-License-Identifier: MIT */
/*
 * The sandbox without /dev/kvm (label unit): each case runs in a forked
 * child that installs a role's filter and then does allowed or forbidden
 * things; the parent checks the child's exit status and its stderr (the
 * SIGSYS report names the role and the syscall).  The jail cases need root
 * and say so when skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/sandbox.h"

static int failures, passes, skips;
static pid_t parent_pid; /* the target of the forbidden tgkill */

typedef int (*CaseFn)(void *arg);

/* Runs fn in a child with stderr captured; fills out (NUL-terminated).
 * Returns the child's exit status, or 1000 + signal number. */
static int in_child(CaseFn fn, void *arg, char *out, size_t outlen)
{
    int p[2];
    if (pipe(p) < 0) {
        perror("pipe");
        exit(1);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        close(p[1]);
        _exit(fn(arg));
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < outlen && (r = read(p[0], out + n, outlen - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = 0;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

static void check(bool ok, const char *name, const char *detail)
{
    printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name, ok ? "" : ": ", ok ? "" : detail);
    if (ok)
        passes++;
    else
        failures++;
}

/* Expects status `want` and (if non-NULL) `text` in the child's stderr. */
static void expect(const char *name, CaseFn fn, void *arg, int want, const char *text)
{
    char out[4096], detail[4600];
    int st = in_child(fn, arg, out, sizeof(out));
    bool ok = st == want && (!text || strstr(out, text));
    snprintf(detail, sizeof(detail), "status %d (want %d), stderr: %s", st, want,
             *out ? out : "(empty)\n");
    check(ok, name, detail);
}

typedef struct Arg {
    SandboxMode mode;
    SandboxRole role;
    int what;
} Arg;

enum {
    DO_NOTHING,
    DO_EVERYDAY,
    DO_VIOLATE,
    DO_IOCTL_RUN,
    DO_IOCTL_CREATE_VM,
    DO_OPEN,
    DO_SOCKET_INET,
    DO_SOCKET_UNIX, /* what virtio-vsock makes: a non-blocking AF_UNIX stream, connected */
    DO_SOCKET_UNIX_BLOCKING,
    DO_SOCKET_NETLINK,
    DO_MMAP_EXEC,
    DO_TGKILL_OTHER,
    DO_THREAD,
    DO_CLONE_PROCESS,
    DO_URING_SETUP,
    DO_URING_REGISTER,
    DO_URING_ENTER,
};

static void *thread_main(void *arg)
{
    const Sandbox *sb = arg;
    if (sandbox_enter(sb, SANDBOX_ROLE_MIGRATION) < 0)
        return (void *)1;
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0)
        return (void *)2;
    close(s);
    /* what the migration role allows passes main's inherited filter too */
    if (ioctl(-1, KVM_RUN, 0) == 0 || errno != EBADF || ioctl(-1, KVM_GET_DIRTY_LOG, 0) == 0)
        return (void *)3;
    return NULL;
}

/* What everyday glibc use needs on any thread: malloc (small and mmap'ed),
 * stdio to stderr, time, locks, a signal to itself. */
static int everyday(void)
{
    char *small = malloc(100), *big = malloc(8 << 20);
    if (!small || !big)
        return 2;
    memset(big, 1, 8 << 20);
    free(big);
    free(small);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    pthread_mutex_unlock(&mu);
    struct timespec d = { 0, 1000000 };
    nanosleep(&d, NULL);
    fprintf(stderr, "everyday ok %ld\n", (long)ts.tv_sec);
    return 0;
}

static int run_case(void *p)
{
    const Arg *a = p;
    Sandbox sb;
    if (sandbox_init(&sb, a->mode, a->what == DO_VIOLATE) < 0 || sandbox_enter(&sb, a->role) < 0)
        return 3;
    switch (a->what) {
    case DO_NOTHING:
        return 0;
    case DO_EVERYDAY:
        return everyday();
    case DO_VIOLATE:
        return 0;      /* the hook in sandbox_enter did it */
    case DO_IOCTL_RUN: /* allowed: fails with EBADF */
        return ioctl(-1, KVM_RUN, 0) < 0 && errno == EBADF ? 0 : 4;
    case DO_IOCTL_CREATE_VM:
        ioctl(-1, KVM_CREATE_VM, 0);
        return 0;
    case DO_OPEN: { /* refused with EACCES, and the thread goes on */
        int fd = open("/etc/hostname", O_RDONLY);
        int e = errno;
        fprintf(stderr, "open: %s\n", fd >= 0 ? "opened" : strerror(e));
        return fd < 0 && e == EACCES ? 0 : 6;
    }
    case DO_SOCKET_INET: {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        return s >= 0 ? 0 : 5;
    }
    case DO_SOCKET_UNIX: {
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "\0strata-sandbox-none" };
        if (s < 0)
            return 5;
        /* refused (nothing listens), but allowed */
        return connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EPERM ? 0 : 6;
    }
    case DO_SOCKET_UNIX_BLOCKING:
        socket(AF_UNIX, SOCK_STREAM, 0);
        return 0;
    case DO_SOCKET_NETLINK:
        socket(AF_NETLINK, SOCK_RAW, 0);
        return 0;
    case DO_MMAP_EXEC:
        mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return 0;
    case DO_TGKILL_OTHER:
        syscall(SYS_tgkill, parent_pid, parent_pid, 0);
        return 0;
    case DO_THREAD: {
        pthread_t t;
        void *ret = (void *)9;
        if (pthread_create(&t, NULL, thread_main, &sb) || pthread_join(t, &ret))
            return 6;
        return (int)(long)ret;
    }
    case DO_CLONE_PROCESS:
        fork();
        return 0;
    case DO_URING_SETUP: {        /* a new, unrestricted ring */
        char params[120] = { 0 }; /* struct io_uring_params */
        syscall(SYS_io_uring_setup, 4, params);
        return 0;
    }
    case DO_URING_REGISTER:
        syscall(SYS_io_uring_register, -1, 0, NULL, 0);
        return 0;
    case DO_URING_ENTER: /* allowed: fails with EBADF */
        return syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0) < 0 && errno == EBADF ? 0 : 8;
    }
    return 7;
}

static int jail_case(void *p)
{
    const char *dir = p;
    SandboxJail j = { 65534, 65534, dir };
    if (sandbox_jail(&j) < 0)
        return 2;
    if (getuid() != 65534 || geteuid() != 65534 || getgid() != 65534 || getegid() != 65534)
        return 3;
    gid_t groups[4];
    int ng = getgroups(4, groups);
    if (ng != 1 || groups[0] != 65534)
        return 4;
    if (setuid(0) == 0 || setgid(0) == 0)
        return 5;
    if (access("/marker", F_OK) < 0) /* the chroot's own file */
        return 6;
    if (access("/etc/passwd", F_OK) == 0) /* the host's is out of reach */
        return 7;
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        return 8;
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 0)
            return 9; /* the bounding set must be empty */
    return 0;
}

static int jail_uid_only_refused(void *p)
{
    (void)p;
    /* a uid the kernel cannot take is an error naming the option */
    SandboxJail j = { 4294967295L, -1, NULL };
    return sandbox_jail(&j) < 0 ? 0 : 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    parent_pid = getpid();
    if (sandbox_forced_off()) {
        printf("SKIP: AddressSanitizer build: the sandbox is forced off here\n");
        return 77;
    }
    char name[128], text[160];
    for (int r = 0; r < SANDBOX_NROLES; r++) {
        const char *rn = sandbox_role_name((SandboxRole)r);
        Arg a = { SANDBOX_KILL, (SandboxRole)r, DO_EVERYDAY };
        snprintf(name, sizeof(name), "%s: malloc, stdio, time, locks allowed", rn);
        expect(name, run_case, &a, 0, "everyday ok");
        a.what = DO_VIOLATE;
        setenv("STRATA_TEST_SECCOMP_VIOLATE", rn, 1);
        snprintf(name, sizeof(name), "%s: forbidden syscall reported and fatal", rn);
        snprintf(text, sizeof(text),
                 "strata: seccomp: %s thread made a forbidden syscall personality (nr %d)", rn,
                 (int)SYS_personality);
        expect(name, run_case, &a, 159, text);
        a.what = DO_OPEN;
        snprintf(name, sizeof(name), "%s: open refused (EACCES), not fatal", rn);
        expect(name, run_case, &a, 0, "open: Permission denied");
        a.what = DO_MMAP_EXEC;
        snprintf(name, sizeof(name), "%s: executable mmap refused", rn);
        snprintf(text, sizeof(text), "%s thread made a forbidden syscall mmap", rn);
        expect(name, run_case, &a, 159, text);
        a.what = DO_TGKILL_OTHER;
        snprintf(name, sizeof(name), "%s: signal to another process refused", rn);
        snprintf(text, sizeof(text), "%s thread made a forbidden syscall tgkill", rn);
        expect(name, run_case, &a, 159, text);
        a.what = DO_IOCTL_CREATE_VM;
        snprintf(name, sizeof(name), "%s: KVM_CREATE_VM refused", rn);
        snprintf(text, sizeof(text), "%s thread made a forbidden syscall ioctl", rn);
        expect(name, run_case, &a, 159, text);
        a.what = DO_CLONE_PROCESS;
        snprintf(name, sizeof(name), "%s: fork refused", rn);
        snprintf(text, sizeof(text), "%s thread made a forbidden syscall clone", rn);
        expect(name, run_case, &a, 159, text);
        /* rings are made before any filter; what a ring does, seccomp never
         * sees: no role may make or re-register one, and only the device
         * event loop, which drives the rings, may enter one */
        a.what = DO_URING_SETUP;
        snprintf(name, sizeof(name), "%s: io_uring_setup refused", rn);
        snprintf(text, sizeof(text), "%s thread made a forbidden syscall io_uring_setup", rn);
        expect(name, run_case, &a, 159, text);
        a.what = DO_URING_REGISTER;
        snprintf(name, sizeof(name), "%s: io_uring_register refused", rn);
        snprintf(text, sizeof(text), "%s thread made a forbidden syscall io_uring_register", rn);
        expect(name, run_case, &a, 159, text);
        a.what = DO_URING_ENTER;
        if (r == SANDBOX_ROLE_IO) {
            snprintf(name, sizeof(name), "%s: io_uring_enter allowed", rn);
            expect(name, run_case, &a, 0, NULL);
        } else {
            snprintf(name, sizeof(name), "%s: io_uring_enter refused", rn);
            snprintf(text, sizeof(text), "%s thread made a forbidden syscall io_uring_enter", rn);
            expect(name, run_case, &a, 159, text);
        }
    }
    unsetenv("STRATA_TEST_SECCOMP_VIOLATE");

    Arg a = { SANDBOX_KILL, SANDBOX_ROLE_VCPU, DO_IOCTL_RUN };
    expect("vcpu: KVM_RUN allowed", run_case, &a, 0, NULL);
    a.role = SANDBOX_ROLE_IO;
    expect("io: KVM_RUN refused", run_case, &a, 159, "io thread made a forbidden syscall ioctl");
    a.role = SANDBOX_ROLE_STDIN;
    expect("stdin: KVM_RUN refused", run_case, &a, 159,
           "stdin thread made a forbidden syscall ioctl");
    a.role = SANDBOX_ROLE_MIGRATION; /* completes a parked vCPU's exit */
    expect("migration: KVM_RUN allowed", run_case, &a, 0, NULL);
    a = (Arg){ SANDBOX_KILL, SANDBOX_ROLE_MIGRATION, DO_SOCKET_INET };
    expect("migration: socket(AF_INET) allowed", run_case, &a, 0, NULL);
    a.what = DO_SOCKET_NETLINK;
    expect("migration: socket(AF_NETLINK) refused", run_case, &a, 159,
           "migration thread made a forbidden syscall socket");
    a = (Arg){ SANDBOX_KILL, SANDBOX_ROLE_IO, DO_SOCKET_UNIX };
    expect("io: a non-blocking AF_UNIX stream socket and connect allowed (vsock)", run_case, &a, 0,
           NULL);
    a.what = DO_SOCKET_UNIX_BLOCKING;
    expect("io: another AF_UNIX socket refused", run_case, &a, 159,
           "io thread made a forbidden syscall socket");
    a.what = DO_SOCKET_INET;
    expect("io: socket(AF_INET) refused", run_case, &a, 159,
           "io thread made a forbidden syscall socket");
    a.role = SANDBOX_ROLE_VCPU;
    a.what = DO_SOCKET_INET;
    expect("vcpu: socket refused", run_case, &a, 159,
           "vcpu thread made a forbidden syscall socket");
    a = (Arg){ SANDBOX_KILL, SANDBOX_ROLE_MAIN, DO_THREAD };
    expect("main: starts a thread that enters migration: socket, KVM_RUN, dirty log pass both",
           run_case, &a, 0, NULL);
    a = (Arg){ SANDBOX_LOG, SANDBOX_ROLE_VCPU, DO_SOCKET_NETLINK };
    expect("log mode: a forbidden socket goes through, not fatal", run_case, &a, 0, NULL);
    a = (Arg){ SANDBOX_OFF, SANDBOX_ROLE_VCPU, DO_SOCKET_INET };
    expect("off: no filter", run_case, &a, 0, NULL);
    setenv("STRATA_TEST_SECCOMP_VIOLATE", "nosuchrole", 1);
    a = (Arg){ SANDBOX_KILL, SANDBOX_ROLE_VCPU, DO_VIOLATE };
    expect("test hook: an unknown role name is refused", run_case, &a, 3, "not a role");
    unsetenv("STRATA_TEST_SECCOMP_VIOLATE");

    if (geteuid() != 0) {
        printf("SKIP jail: needs root (chroot, setresuid)\n");
        skips++;
    } else {
        char dir[] = "/tmp/strata-jail.XXXXXX";
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        char marker[64];
        snprintf(marker, sizeof(marker), "%s/marker", dir);
        fclose(fopen(marker, "w"));
        chmod(dir, 0755); /* the jailed uid must reach its root */
        expect("jail: chroot + uid/gid 65534 + groups, root not regained, no_new_privs, "
               "empty capability bounding set",
               jail_case, dir, 0, NULL);
        expect("jail: an impossible uid is an error", jail_uid_only_refused, NULL, 0,
               "--jail-uid 4294967295");
        unlink(marker);
        rmdir(dir);
    }
    printf("%d passed, %d failed, %d skipped\n", passes, failures, skips);
    return failures ? 1 : 0;
}
