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
#include <linux/audit.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/sandbox-bpf.h"
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

/* A classic-BPF interpreter over seccomp_data, enough for libseccomp's
 * output (loads, ALU, jumps, returns); an unknown instruction is ~0u. */
static uint32_t bpf_run(const struct sock_filter *f, size_t n, const struct seccomp_data *d)
{
    uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = { 0 };
    const unsigned char *data = (const unsigned char *)d;
    for (size_t pc = 0; pc < n; pc++) {
        const struct sock_filter *i = &f[pc];
        uint32_t src = BPF_SRC(i->code) == BPF_X ? x : i->k;
        switch (BPF_CLASS(i->code)) {
        case BPF_LD:
            if (BPF_MODE(i->code) == BPF_ABS && BPF_SIZE(i->code) == BPF_W &&
                i->k + 4 <= sizeof(*d))
                memcpy(&a, data + i->k, 4);
            else if (BPF_MODE(i->code) == BPF_IMM)
                a = i->k;
            else if (BPF_MODE(i->code) == BPF_MEM && i->k < BPF_MEMWORDS)
                a = mem[i->k];
            else
                return ~0u;
            break;
        case BPF_LDX:
            if (BPF_MODE(i->code) == BPF_IMM)
                x = i->k;
            else if (BPF_MODE(i->code) == BPF_MEM && i->k < BPF_MEMWORDS)
                x = mem[i->k];
            else
                return ~0u;
            break;
        case BPF_ST:
        case BPF_STX:
            if (i->k >= BPF_MEMWORDS)
                return ~0u;
            mem[i->k] = BPF_CLASS(i->code) == BPF_ST ? a : x;
            break;
        case BPF_ALU:
            switch (BPF_OP(i->code)) {
            case BPF_AND:
                a &= src;
                break;
            case BPF_OR:
                a |= src;
                break;
            case BPF_ADD:
                a += src;
                break;
            case BPF_SUB:
                a -= src;
                break;
            case BPF_RSH:
                a = src < 32 ? a >> src : 0;
                break;
            case BPF_LSH:
                a = src < 32 ? a << src : 0;
                break;
            default:
                return ~0u;
            }
            break;
        case BPF_JMP: {
            bool t;
            switch (BPF_OP(i->code)) {
            case BPF_JA:
                pc += i->k;
                continue;
            case BPF_JEQ:
                t = a == src;
                break;
            case BPF_JGT:
                t = a > src;
                break;
            case BPF_JGE:
                t = a >= src;
                break;
            case BPF_JSET:
                t = (a & src) != 0;
                break;
            default:
                return ~0u;
            }
            pc += t ? i->jt : i->jf;
            break;
        }
        case BPF_RET:
            return BPF_RVAL(i->code) == BPF_A ? a : i->k;
        case BPF_MISC:
            if (BPF_MISCOP(i->code) == BPF_TAX)
                x = a;
            else
                a = x;
            break;
        default:
            return ~0u;
        }
    }
    return ~0u; /* fell off the end */
}

/* Whether two programs answer alike: every syscall number (and a few of
 * another ABI and arch), its first three arguments from values that matter
 * to some rule (the pid, flags, ioctl numbers, with and without a high word). */
static bool bpf_same(const struct sock_filter *p, size_t np, const struct sock_filter *q, size_t nq,
                     pid_t pid, char *why, size_t whylen)
{
    const uint64_t v[] = { 0,
                           1,
                           2,
                           4,
                           (uint64_t)pid,
                           (uint64_t)pid + 1,
                           (uint64_t)pid | 1ull << 32,
                           CLONE_THREAD,
                           KVM_RUN,
                           KVM_RUN | 1ull << 32,
                           KVM_CREATE_VM,
                           KVM_SET_USER_MEMORY_REGION,
                           TCGETS,
                           SANDBOX_SNAPSHOT_FLAGS,
                           O_RDONLY | O_CLOEXEC };
    const size_t nv = sizeof(v) / sizeof(v[0]);
    struct seccomp_data d = { .arch = AUDIT_ARCH_X86_64 };
    for (int nr = -1; nr < 470; nr++) {
        for (int abi = 0; abi < 3; abi++) {
            d.nr = abi == 1 ? nr | 0x40000000 : nr; /* x32 */
            d.arch = abi == 2 ? AUDIT_ARCH_I386 : AUDIT_ARCH_X86_64;
            for (size_t i = 0; i < nv * nv * nv; i++) {
                d.args[0] = v[i % nv];
                d.args[1] = v[i / nv % nv];
                d.args[2] = v[i / nv / nv];
                uint32_t rp = bpf_run(p, np, &d), rq = bpf_run(q, nq, &d);
                if (rp != rq || rp == ~0u) {
                    snprintf(why, whylen,
                             "nr %d (abi %d) args %#llx %#llx %#llx: 0x%08x against 0x%08x", nr,
                             abi, (unsigned long long)d.args[0], (unsigned long long)d.args[1],
                             (unsigned long long)d.args[2], rp, rq);
                    return false;
                }
                if (abi && i > 0)
                    break; /* another ABI or arch: one set of arguments is enough */
            }
        }
    }
    return true;
}

/* The programs made at build time (vmm/sandbox-gen.c), a pid written in,
 * answer every call as what libseccomp makes here at run time for that
 * pid, and are the same instructions unless libseccomp merged the pid's
 * test with an identical one (a pid equal to another rule's constant):
 * every role, both modes, pids of every size. */
static void check_build_time_programs(void)
{
    const pid_t pids[] = { 1, 2, 300, 4242, 0x12345, 0x2a6b7, 4194303, getpid() };
    const size_t npids = sizeof(pids) / sizeof(pids[0]);
    static const SandboxMode modes[] = { SANDBOX_KILL, SANDBOX_LOG };
    for (int role = 0; role < SANDBOX_NROLES; role++) {
        for (size_t m = 0; m < 2; m++) {
            char name[160], detail[512] = "";
            bool ok = true;
            unsigned same = 0;
            for (size_t i = 0; ok && i < npids; i++) {
                static struct sock_filter built[SANDBOX_BPF_MAX];
                int n = sandbox_program((SandboxRole)role, modes[m], pids[i], built,
                                        SANDBOX_BPF_MAX);
                struct sock_filter *ref = NULL;
                size_t nref = 0;
                int r = sandbox_rules_bpf((SandboxRole)role, modes[m], pids[i], &ref, &nref);
                char why[256] = "";
                ok = n > 0 && r == 0;
                if (ok && (size_t)n == nref && !memcmp(built, ref, nref * sizeof(*ref)))
                    same++;
                else if (ok)
                    ok = bpf_same(built, (size_t)n, ref, nref, pids[i], why, sizeof(why));
                if (!ok)
                    snprintf(detail, sizeof(detail),
                             "pid %d: build time %d instructions, libseccomp %zu (%s): %s",
                             (int)pids[i], n, nref, r ? strerror(-r) : "ok", why);
                free(ref);
            }
            snprintf(name, sizeof(name),
                     "%s, %s: the build-time program answers as libseccomp's (identical for %u "
                     "of %zu pids)",
                     sandbox_role_name((SandboxRole)role), m ? "log" : "kill", same, npids);
            check(ok && same > 0, name, detail);
        }
    }
    /* and the comparison sees a difference where there is one: the
     * programs of two pids differ at tgkill */
    static struct sock_filter p1[SANDBOX_BPF_MAX], p2[SANDBOX_BPF_MAX];
    int n1 = sandbox_program(SANDBOX_ROLE_VCPU, SANDBOX_KILL, 4242, p1, SANDBOX_BPF_MAX);
    int n2 = sandbox_program(SANDBOX_ROLE_VCPU, SANDBOX_KILL, 4243, p2, SANDBOX_BPF_MAX);
    char why[256] = "";
    bool same = n1 > 0 && n2 > 0 &&
                bpf_same(p1, (size_t)n1, p2, (size_t)n2, 4242, why, sizeof(why));
    check(!same && strstr(why, "nr 234 "),
          "the comparison of programs tells pids 4242 and 4243 apart (tgkill)", why);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    parent_pid = getpid();
    if (sandbox_forced_off()) {
        printf("SKIP: AddressSanitizer build: the sandbox is forced off here\n");
        return 77;
    }
    check_build_time_programs();
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
