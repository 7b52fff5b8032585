/* SPDX-License-Identifier: MIT */
/*
 * What each thread role may do (the lists), and the one place that turns a
 * role into a seccomp filter with libseccomp.  strata itself loads the
 * programs that vmm/sandbox-gen.c made from these rules at build time
 * (sandbox-bpf.h); the rules are compiled at run time only where a program
 * is missing, and by the tests that compare the two.
 */
#include "vmm/sandbox-bpf.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

static const char *const role_names[SANDBOX_NROLES] = {
    [SANDBOX_ROLE_MAIN] = "main",     [SANDBOX_ROLE_VCPU] = "vcpu",
    [SANDBOX_ROLE_IO] = "io",         [SANDBOX_ROLE_STDIN] = "stdin",
    [SANDBOX_ROLE_WAITER] = "waiter", [SANDBOX_ROLE_MIGRATION] = "migration",
    [SANDBOX_ROLE_SERIAL] = "serial",
};

/* ---- names -------------------------------------------------------------- */

const char *sandbox_role_name(SandboxRole role)
{
    return (unsigned)role < SANDBOX_NROLES ? role_names[role] : "?";
}

int sandbox_role_from_name(const char *s)
{
    for (int i = 0; s && i < SANDBOX_NROLES; i++)
        if (!strcmp(s, role_names[i]))
            return i;
    return -1;
}

/* ---- the lists ---------------------------------------------------------- */

/* Every thread: memory (no PROT_EXEC: see add_rules), locks, time, its own
 * signals and exit, writing to fds it holds (stderr, eventfds, the UART). */
static const int sys_common[] = {
    SCMP_SYS(brk),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
    SCMP_SYS(futex),
    SCMP_SYS(sched_yield),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    SCMP_SYS(write),
    SCMP_SYS(writev),
    SCMP_SYS(close),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
};
static const int sys_vcpu[] = {
    SCMP_SYS(read),
};
/* io_uring: rings are made before any filter (io_uring_setup and
 * io_uring_register are in no list) and restricted (devices/uring.h); only
 * the device event loop, which drives them all, may enter one. */
static const int sys_io[] = {
    SCMP_SYS(read),
    SCMP_SYS(readv),
    SCMP_SYS(pread64),
    SCMP_SYS(preadv),
    SCMP_SYS(pwrite64),
    SCMP_SYS(pwritev),
    SCMP_SYS(fdatasync),
    SCMP_SYS(fsync),
    SCMP_SYS(io_uring_enter),
    SCMP_SYS(getrandom),
    /* virtio-vsock (devices/virtio-vsock.c): accept host clients on the
     * socket made before the filter, connect to PATH_<port> (socket() only
     * as F_UNIX_STREAM), peek at input, half-close */
    SCMP_SYS(accept4),
    SCMP_SYS(connect),
    SCMP_SYS(shutdown),
    SCMP_SYS(recvfrom),
    /* rate limits (devices/ratelimit.h): a device re-arms its timerfd
     * (made before any filter, devices/evloop.h) when it runs out of tokens */
    SCMP_SYS(timerfd_settime),
};
static const int sys_stdin[] = {
    SCMP_SYS(read),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
};
/* --serial pty / socket=PATH (vmm/chardev.h): the pipe from the UART, the
 * reader's fd, accepting the next client on the socket made before */
static const int sys_serial[] = {
    SCMP_SYS(read),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(accept4),
};
static const int sys_waiter[] = { SCMP_SYS(write) }; /* the common list is enough */
static const int sys_migration[] = {
    SCMP_SYS(read),
    SCMP_SYS(readv),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(pread64), /* /proc/self/pagemap (opened before any filter) */
    /* snapshots (docs/snapshot.md): the file's RAM, holes, its size */
    SCMP_SYS(pwrite64),
    SCMP_SYS(fallocate),
    SCMP_SYS(ftruncate),
    SCMP_SYS(lseek),
    SCMP_SYS(connect),
    SCMP_SYS(bind),
    SCMP_SYS(listen),
    SCMP_SYS(accept4),
    SCMP_SYS(sendto),
    SCMP_SYS(recvfrom),
    SCMP_SYS(sendmsg),
    SCMP_SYS(recvmsg),
    SCMP_SYS(shutdown),
    SCMP_SYS(getsockopt),
    SCMP_SYS(setsockopt),
    SCMP_SYS(getsockname),
    SCMP_SYS(getpeername),
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(eventfd2),
};
/* The main thread: everything the migration role may do (a migration
 * thread it starts inherits its filter: see `includes`) plus these. */
static const int sys_main[] = {
    SCMP_SYS(accept),
    SCMP_SYS(unlink),
    SCMP_SYS(unlinkat),
    SCMP_SYS(getrandom),
    /* what a thread it starts does before its own filter (glibc's start) */
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(rt_sigaction), /* glibc's first pthread_create sets up its signals */
    /* block_set_io_throttle, x-net-set-rate-limit: a device waiting for
     * tokens looks again at once (its timerfd, devices/evloop.h) */
    SCMP_SYS(timerfd_settime),
};

/* ioctl requests, by group */
static const unsigned long ioc_vcpu_state[] = {
    KVM_GET_REGS,   KVM_SET_REGS,      KVM_GET_SREGS,       KVM_SET_SREGS,       KVM_GET_FPU,
    KVM_SET_FPU,    KVM_GET_MSRS,      KVM_SET_MSRS,        KVM_GET_MP_STATE,    KVM_SET_MP_STATE,
    KVM_GET_LAPIC,  KVM_SET_LAPIC,     KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, KVM_GET_XSAVE,
    KVM_SET_XSAVE,
#ifdef KVM_GET_XSAVE2
    KVM_GET_XSAVE2,
#endif
    KVM_GET_XCRS,   KVM_SET_XCRS,      KVM_GET_DEBUGREGS,   KVM_SET_DEBUGREGS,   KVM_GET_CPUID2,
    KVM_SET_CPUID2, KVM_KVMCLOCK_CTRL, KVM_GET_TSC_KHZ,     KVM_SET_TSC_KHZ,
};
static const unsigned long ioc_irq[] = { KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS };
/* a restore of a snapshot whose vCPUs carry no CPUID (VCPU version 1)
 * gives them this host's (vmm/migration/destination.c) */
static const unsigned long ioc_cpuid_host[] = { KVM_GET_SUPPORTED_CPUID };
static const unsigned long ioc_dirty[] = {
    KVM_GET_DIRTY_LOG,
    KVM_CLEAR_DIRTY_LOG,
    KVM_CHECK_EXTENSION,
    KVM_RESET_DIRTY_RINGS,
};
static const unsigned long ioc_vm_state[] = {
    KVM_GET_CLOCK, KVM_SET_CLOCK, KVM_GET_IRQCHIP,        KVM_SET_IRQCHIP,
    KVM_GET_PIT2,  KVM_SET_PIT2,  KVM_GET_MSR_INDEX_LIST,
};
static const unsigned long ioc_vm_map[] = {
    KVM_SET_USER_MEMORY_REGION,    KVM_IOEVENTFD, KVM_IRQFD, KVM_REGISTER_COALESCED_MMIO,
    KVM_UNREGISTER_COALESCED_MMIO,
};
static const unsigned long ioc_run[] = { KVM_RUN };
static const unsigned long ioc_tty[] = { TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ };

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define LIST(a) \
    { \
        a, N(a) \
    }

typedef struct SysList {
    const int *nr;
    size_t n;
} SysList;

typedef struct IocList {
    const unsigned long *req;
    size_t n;
} IocList;

enum {
    F_SOCKETS = 1,       /* socket(AF_UNIX|AF_INET|AF_INET6, ...) */
    F_THREADS = 2,       /* clone(CLONE_THREAD...); clone3 answers ENOSYS */
    F_FCNTL = 4,         /* fcntl F_GETFD/F_GETFL/F_SETFL/F_SETFD */
    F_STACK = 8,         /* seccomp(SET_MODE_FILTER): a thread started
                             * later adds its own (stricter) filter */
    F_SNAPSHOT = 16,     /* openat(..., SANDBOX_SNAPSHOT_FLAGS): a snapshot file */
    F_UNIX_STREAM = 32,  /* socket(AF_UNIX, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0) only */
    F_OWN_AFFINITY = 64, /* sched_setaffinity(0, ...): a vCPU thread takes back
                             * its own mask after starting away (kvm/run.c) */
};

typedef struct RoleDef {
    SysList sys[2];
    IocList ioc[8];
    unsigned flags;
    unsigned long hot_ioctl; /* checked first (once per guest exit) */
    int includes;            /* a role whose whole list this one adds, or 0 */
} RoleDef;

static const RoleDef roles[SANDBOX_NROLES] = {
    [SANDBOX_ROLE_MAIN] = {
        .sys = { LIST(sys_main) },
        .ioc = { LIST(ioc_vcpu_state), LIST(ioc_irq), LIST(ioc_dirty), LIST(ioc_vm_state),
                 LIST(ioc_vm_map), LIST(ioc_tty) },
        .flags = F_SOCKETS | F_THREADS | F_FCNTL | F_STACK,
        .includes = SANDBOX_ROLE_MIGRATION,     /* kept a superset by construction */
    },
    [SANDBOX_ROLE_VCPU] = {
        .sys = { LIST(sys_vcpu) },
        .ioc = { LIST(ioc_run), LIST(ioc_vcpu_state), LIST(ioc_irq), LIST(ioc_dirty) },
        .flags = F_FCNTL | F_OWN_AFFINITY,
        .hot_ioctl = KVM_RUN,
    },
    [SANDBOX_ROLE_IO] = { .sys = { LIST(sys_io) }, .ioc = { LIST(ioc_irq) },
                          .flags = F_FCNTL | F_UNIX_STREAM },
    [SANDBOX_ROLE_STDIN] = { .sys = { LIST(sys_stdin) }, .ioc = { LIST(ioc_irq) } },
    [SANDBOX_ROLE_WAITER] = { .sys = { LIST(sys_waiter) } },
    [SANDBOX_ROLE_SERIAL] = { .sys = { LIST(sys_serial) }, .ioc = { LIST(ioc_irq) } },
    [SANDBOX_ROLE_MIGRATION] = {
        .sys = { LIST(sys_migration) },
        /* KVM_RUN: kvm_vcpu_get_state completes a vCPU's pending PIO/MMIO
         * exit with one immediate_exit run (kvm/state.c) */
        .ioc = { LIST(ioc_vcpu_state), LIST(ioc_irq), LIST(ioc_dirty), LIST(ioc_vm_state),
                 LIST(ioc_vm_map), LIST(ioc_run), LIST(ioc_cpuid_host) },
        .flags = F_SOCKETS | F_FCNTL | F_SNAPSHOT,
    },
};

/* ---- building a filter ------------------------------------------------- */

/* One argument comparison (b is the value for SCMP_CMP_MASKED_EQ, a its mask). */
static struct scmp_arg_cmp cmp(unsigned arg, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
    return (struct scmp_arg_cmp){ .arg = arg, .op = op, .datum_a = a, .datum_b = b };
}

static int add(scmp_filter_ctx ctx, int nr, unsigned nargs, const struct scmp_arg_cmp *a)
{
    int r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, nargs, a);
    return r == -EEXIST ? 0 : r;
}

static int add_list(scmp_filter_ctx ctx, const int *nr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int r = add(ctx, nr[i], 0, NULL);
        if (r < 0)
            return r;
    }
    return 0;
}

static int add_rules(scmp_filter_ctx ctx, const RoleDef *d, pid_t pid)
{
    int r = d->includes ? add_rules(ctx, &roles[d->includes], pid) : 0;
    if (r == 0)
        r = add_list(ctx, sys_common, N(sys_common));
    for (size_t i = 0; r == 0 && i < N(d->sys); i++)
        r = add_list(ctx, d->sys[i].nr, d->sys[i].n);
    /* memory may never become executable */
    struct scmp_arg_cmp noexec = cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
    if (r == 0)
        r = add(ctx, SCMP_SYS(mmap), 1, &noexec);
    if (r == 0)
        r = add(ctx, SCMP_SYS(mprotect), 1, &noexec);
    /* signals only to this process's threads (kicks, pause, abort) */
    struct scmp_arg_cmp self = cmp(0, SCMP_CMP_EQ, (scmp_datum_t)pid, 0);
    if (r == 0)
        r = add(ctx, SCMP_SYS(tgkill), 1, &self);
    if (r == 0 && d->hot_ioctl) {
        /* libseccomp sorts same-kind comparisons by value (KVM_RUN, the
         * smallest, would come last); a full 64-bit compare is a node of
         * its own that it emits first, and ioctl is tested before every
         * other syscall (the unconditional ones the kernel caches anyway). */
        struct scmp_arg_cmp req = cmp(1, SCMP_CMP_EQ, (scmp_datum_t)d->hot_ioctl, 0);
        r = add(ctx, SCMP_SYS(ioctl), 1, &req);
        if (r == 0)
            r = seccomp_syscall_priority(ctx, SCMP_SYS(ioctl), 255);
    }
    for (size_t g = 0; r == 0 && g < N(d->ioc); g++) {
        for (size_t i = 0; r == 0 && i < d->ioc[g].n; i++) {
            struct scmp_arg_cmp req = cmp(1, SCMP_CMP_MASKED_EQ, 0xffffffffu, d->ioc[g].req[i]);
            r = add(ctx, SCMP_SYS(ioctl), 1, &req);
        }
    }
    if (r == 0 && (d->flags & F_SOCKETS)) {
        static const int domains[] = { AF_UNIX, AF_INET, AF_INET6 };
        for (size_t i = 0; r == 0 && i < N(domains); i++) {
            struct scmp_arg_cmp dom = cmp(0, SCMP_CMP_EQ, (scmp_datum_t)domains[i], 0);
            r = add(ctx, SCMP_SYS(socket), 1, &dom);
        }
    }
    if (r == 0 && (d->flags & F_UNIX_STREAM)) {
        struct scmp_arg_cmp a[3] = {
            cmp(0, SCMP_CMP_EQ, AF_UNIX, 0),
            cmp(1, SCMP_CMP_EQ, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
            cmp(2, SCMP_CMP_EQ, 0, 0),
        };
        r = add(ctx, SCMP_SYS(socket), 3, a);
    }
    if (r == 0 && (d->flags & F_OWN_AFFINITY)) {
        struct scmp_arg_cmp own = cmp(0, SCMP_CMP_EQ, 0, 0);
        r = add(ctx, SCMP_SYS(sched_setaffinity), 1, &own);
    }
    if (r == 0 && (d->flags & F_THREADS)) {
        struct scmp_arg_cmp thr = cmp(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
        r = add(ctx, SCMP_SYS(clone), 1, &thr);
        /* clone3's flags live in memory BPF cannot read: glibc falls back */
        if (r == 0)
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    }
    /* Opening a file: refused, EACCES, in every role, never fatal.  No
     * strata thread opens anything once filtered, but glibc does: the
     * first trim of a thread's malloc arena reads
     * /proc/sys/vm/overcommit_memory, and copes with a failure.  Killing
     * the VM over that would lose a guest to an allocator's whim. */
    bool snapshot = (d->flags & F_SNAPSHOT) ||
                    (d->includes && (roles[d->includes].flags & F_SNAPSHOT));
    if (r == 0 && snapshot) {
        /* A snapshot's file (vmm/migration/source.c) is the one open a
         * filtered thread makes: allowed with exactly its flags; any other
         * open without O_CREAT is refused as above; one with O_CREAT and
         * other flags is outside the list. */
        struct scmp_arg_cmp snap = cmp(2, SCMP_CMP_MASKED_EQ, 0xffffffffu, SANDBOX_SNAPSHOT_FLAGS);
        struct scmp_arg_cmp nocreat = cmp(2, SCMP_CMP_MASKED_EQ, O_CREAT, 0);
        r = add(ctx, SCMP_SYS(openat), 1, &snap);
        if (r == 0)
            r = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 1, &nocreat);
        if (r == -EEXIST)
            r = 0;
    } else if (r == 0) {
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0);
    }
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open), 0);
    if (r == 0 && (d->flags & F_STACK)) {
        struct scmp_arg_cmp op = cmp(0, SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER, 0);
        r = add(ctx, SCMP_SYS(seccomp), 1, &op);
    }
    if (r == 0 && (d->flags & F_FCNTL)) {
        static const int cmds[] = { F_GETFD, F_SETFD, F_GETFL, F_SETFL };
        for (size_t i = 0; r == 0 && i < N(cmds); i++) {
            struct scmp_arg_cmp c = cmp(1, SCMP_CMP_EQ, (scmp_datum_t)cmds[i], 0);
            r = add(ctx, SCMP_SYS(fcntl), 1, &c);
        }
    }
    return r;
}

scmp_filter_ctx sandbox_rules_ctx(SandboxRole role, SandboxMode mode, pid_t pid, int *err)
{
    *err = -EINVAL;
    if ((unsigned)role >= SANDBOX_NROLES || (mode != SANDBOX_KILL && mode != SANDBOX_LOG))
        return NULL;
    scmp_filter_ctx ctx = seccomp_init(mode == SANDBOX_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
    *err = -ENOMEM;
    if (!ctx)
        return NULL;
    int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0); /* set by sandbox_init */
    /* A binary tree of syscall numbers rather than a list: the kernel
     * evaluates a filter for every syscall number when it loads it (the
     * seccomp action cache), and at each call the cache cannot answer
     * (those with argument checks, ioctl among them).  Measured here: the
     * main thread's filter loads in 44 us instead of 116, a vCPU's in 38
     * instead of 70 (a fork per load, 200 loads). */
    if (r == 0)
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (r == 0)
        r = add_rules(ctx, &roles[role], pid);
    if (r < 0) {
        *err = r;
        seccomp_release(ctx);
        return NULL;
    }
    *err = 0;
    return ctx;
}

int sandbox_rules_bpf(SandboxRole role, SandboxMode mode, pid_t pid, struct sock_filter **prog,
                      size_t *len)
{
    *prog = NULL;
    *len = 0;
    int r;
    scmp_filter_ctx ctx = sandbox_rules_ctx(role, mode, pid, &r);
    if (!ctx)
        return r;
    /* libseccomp 2.5 exports to a file descriptor only */
    int fd = memfd_create("strata-bpf", MFD_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        seccomp_release(ctx);
        return r;
    }
    r = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    struct stat st;
    if (r == 0 && fstat(fd, &st) < 0)
        r = -errno;
    if (r == 0 && (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
                   st.st_size / sizeof(struct sock_filter) > SANDBOX_BPF_MAX))
        r = -E2BIG;
    if (r == 0) {
        *prog = malloc((size_t)st.st_size);
        if (!*prog)
            r = -ENOMEM;
        else if (pread(fd, *prog, (size_t)st.st_size, 0) != st.st_size)
            r = -EIO;
        if (r < 0) {
            free(*prog);
            *prog = NULL;
        }
    }
    close(fd);
    if (r == 0)
        *len = (size_t)st.st_size / sizeof(struct sock_filter);
    return r;
}
