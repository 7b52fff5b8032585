/* SPDX-License-Identifier: MIT */
/* `strata run`: build the machine, run the main loop, report the end. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "vmm/control/commands.h"
#include "vmm/control/stats.h"
#include "vmm/migration/stream.h"
#include "vmm/migration/migration.h"
#include "vmm/runstate.h"
#include "vmm/disk-lock.h"
#include "vmm/vmm.h"

enum {
    EXIT_CLEAN = 0,
    EXIT_SETUP = 1,
    EXIT_GUEST_FAILED = 2,
    EXIT_GUEST_CRASHED = 3,
    EXIT_KVM_ERROR = 4,
    EXIT_INCOMING = 5, /* --incoming: no usable stream; the guest never ran */
};

static void *waiter_main(void *arg)
{
    Vmm *v = arg;
    __atomic_store_n(&v->waiter_tid, gettid(), __ATOMIC_SEQ_CST);
    if (sandbox_enter(&v->sandbox, SANDBOX_ROLE_WAITER) < 0)
        kvm_vm_request_end(v->m.vm, KVM_END_ERROR, 0, "waiter thread: no sandbox");
    kvm_vm_wait(v->m.vm, &v->end);
    uint64_t one = 1;
    while (write(v->endfd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
    return NULL;
}

/* The VM ended: decide the exit status, tell the clients, leave the loop. */
static void on_end(EvSource *src, uint32_t events)
{
    Vmm *v = (Vmm *)((char *)src - offsetof(Vmm, end_src));
    uint64_t n;
    if (read(v->endfd, &n, sizeof(n)) < 0 && errno == EAGAIN)
        return;
    pthread_join(v->waiter, NULL);
    v->waiter_started = false;
    v->state = RUN_STATE_SHUTDOWN;

    const KvmVmEnd *e = &v->end;
    const char *reason = "guest-shutdown";
    bool guest = true;
    if (v->quit) {
        reason = "host-qmp-quit";
        guest = false;
        v->exit_status = EXIT_CLEAN;
    } else if (v->signo) {
        reason = "host-signal";
        guest = false;
        fprintf(stderr, "strata: terminating on signal %d (%s)\n", v->signo, strsignal(v->signo));
        v->exit_status = 128 + v->signo;
    } else {
        switch (e->reason) {
        case KVM_END_REQUESTED:
            if (__atomic_load_n(&v->m.guest_panicked, __ATOMIC_SEQ_CST)) {
                fprintf(stderr, "strata: the guest kernel panicked (reported through pvpanic)\n");
                reason = "guest-panic";
                v->exit_status = EXIT_GUEST_CRASHED;
            } else if (e->code == 0) {
                v->exit_status = EXIT_CLEAN;
            } else {
                fprintf(stderr, "strata: guest exited with code %d (0x%x)\n", e->code,
                        (unsigned)e->code);
                v->exit_status = EXIT_GUEST_FAILED;
            }
            break;
        case KVM_END_HLT:
        case KVM_END_SYSTEM_SHUTDOWN:
            v->exit_status = EXIT_CLEAN;
            break;
        case KVM_END_SHUTDOWN:
        case KVM_END_SYSTEM_RESET:
            fprintf(stderr, "strata: guest %s; strata does not reset on it, it exits\n",
                    e->reason == KVM_END_SHUTDOWN ? "crashed (triple fault)"
                                                  : "asked for a system reset");
            reason = "guest-reset";
            v->exit_status = EXIT_GUEST_CRASHED;
            break;
        default:
            fprintf(stderr, "strata: the VM failed: %s\n", e->text);
            reason = "host-error";
            guest = false;
            v->exit_status = EXIT_KVM_ERROR;
            break;
        }
    }
    qmp_server_event(v->qmp, "SHUTDOWN", json_pack("{s:b,s:s}", "guest", guest, "reason", reason));
    v->done = true;
}

static void on_signal(EvSource *src, uint32_t events)
{
    Vmm *v = (Vmm *)((char *)src - offsetof(Vmm, sig_src));
    struct signalfd_siginfo si;
    ssize_t n = read(v->sigfd, &si, sizeof(si));
    if (n != sizeof(si))
        return;
    if (!v->signo && v->state != RUN_STATE_SHUTDOWN) {
        v->signo = (int)si.ssi_signo;
        kvm_vm_request_end(v->m.vm, KVM_END_REQUESTED, 0, "signal");
    }
}

/* Set once the guest may run: a SIGBUS before is a restore's failure. */
static volatile sig_atomic_t guest_started;

/* Guest RAM mapped from a snapshot file that shrank (docs/snapshot.md)
 * reads as SIGBUS wherever strata touches it (a device, a register dump):
 * one line and an exit status, never a silent death.  Async-signal-safe. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    static const char msg[] =
        "strata: SIGBUS: memory under strata is gone (guest RAM restored from a snapshot file "
        "that shrank?); ending\n";
    (void)sig;
    (void)si;
    (void)uc;
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(guest_started ? EXIT_KVM_ERROR : EXIT_INCOMING);
}

static int setup_loop(Vmm *v)
{
    struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    /* Blocked before any thread starts: every thread inherits the mask and
     * the signals are read from the signalfd by the main loop only. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    v->epfd = epoll_create1(EPOLL_CLOEXEC);
    v->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    v->endfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (v->epfd < 0 || v->sigfd < 0 || v->endfd < 0) {
        fprintf(stderr, "strata: event loop: %s\n", strerror(errno));
        return -1;
    }
    v->sig_src.handler = on_signal;
    v->end_src.handler = on_end;
    if (ev_add(v->epfd, v->sigfd, EPOLLIN, &v->sig_src) < 0 ||
        ev_add(v->epfd, v->endfd, EPOLLIN, &v->end_src) < 0) {
        fprintf(stderr, "strata: event loop: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/* A migrated-away source: leave once no QMP client has been connected for
 * VMM_POSTMIGRATE_GRACE_MS (a poller that connects per request still gets
 * to read the outcome), or when the linger time is over.  Returns the
 * epoll timeout until the next check (-1: none needed). */
static int postmigrate_check(Vmm *v)
{
    if (v->state != RUN_STATE_POSTMIGRATE || v->quit)
        return -1;
    uint64_t now = mig_now_ns();
    if (v->qmp && qmp_server_nr_clients(v->qmp) > 0)
        v->postmigrate_idle_ns = now;
    uint64_t grace = VMM_POSTMIGRATE_GRACE_MS * 1000000ull;
    if (!v->qmp || now >= v->postmigrate_until_ns || now - v->postmigrate_idle_ns >= grace) {
        vmm_request_quit(v);
        return -1;
    }
    return 100;
}

static void run_loop(Vmm *v)
{
    struct epoll_event evs[64];
    while (!v->done) {
        int n = epoll_wait(v->epfd, evs, 64, postmigrate_check(v));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "strata: epoll_wait: %s\n", strerror(errno));
            kvm_vm_request_end(v->m.vm, KVM_END_ERROR, 0, "main loop failed");
            break;
        }
        for (int i = 0; i < n; i++) {
            EvSource *src = evs[i].data.ptr;
            src->handler(src, evs[i].events);
        }
        qmp_server_reap(v->qmp);
    }
}

/* ---- what migration is handed (MigHost): the root keeps the run state
 * and the sandbox ---------------------------------------------------------- */

static int mig_enter_thread(void *o, bool *strict)
{
    Vmm *v = o;
    if (sandbox_enter(&v->sandbox, SANDBOX_ROLE_MIGRATION) < 0)
        return -1;
    *strict = sandbox_thread_strict();
    return 0;
}

static void mig_event(void *o, const char *name, json_t *data)
{
    Vmm *v = o;
    qmp_server_event(v->qmp, name, data);
}

static const char *mig_refuse(void *o)
{
    Vmm *v = o;
    if (v->state == RUN_STATE_SHUTDOWN)
        return "The VM has shut down";
    if (v->state == RUN_STATE_POSTMIGRATE)
        return "The VM was migrated away already";
    return NULL;
}

static bool mig_running(void *o)
{
    Vmm *v = o;
    return __atomic_load_n(&v->state, __ATOMIC_ACQUIRE) == RUN_STATE_RUNNING;
}

static void mig_held_paused(void *o)
{
    Vmm *v = o;
    if (v->state != RUN_STATE_RUNNING)
        return;
    v->state = RUN_STATE_PAUSED;
    qmp_server_event(v->qmp, "STOP", NULL);
}

static void mig_migrated(void *o)
{
    Vmm *v = o;
    /* strata leaves once its QMP clients have read the outcome
     * (postmigrate_check) */
    v->state = RUN_STATE_POSTMIGRATE;
    v->postmigrate_idle_ns = mig_now_ns();
    v->postmigrate_until_ns = v->postmigrate_idle_ns + VMM_POSTMIGRATE_LINGER_MS * 1000000ull;
}

static void mig_crash_unlink(void *o, const char *path, bool on)
{
    (void)o;
    if (on)
        sandbox_fatal_unlink(path);
    else
        sandbox_fatal_forget(path);
}

static int mig_open_snapshot(void *o, const char *path)
{
    (void)o;
    return open(path, SANDBOX_SNAPSHOT_FLAGS, 0600);
}

static int setup_migration(Vmm *v)
{
    v->mig_host = (MigHost){
        .m = &v->m,
        .epfd = v->epfd,
        .abort_fd = v->sigfd,
        .opaque = v,
        .enter_thread = mig_enter_thread,
        .event = mig_event,
        .refuse = mig_refuse,
        .running = mig_running,
        .held_paused = mig_held_paused,
        .migrated = mig_migrated,
        .crash_unlink = mig_crash_unlink,
        .open_snapshot = mig_open_snapshot,
    };
    v->mig = mig_init(&v->mig_host);
    return v->mig ? 0 : -1;
}

/* ---- what the board is handed (BoardHooks) ------------------------------ */

static int board_enter_thread(void *o, BoardThread t)
{
    static const SandboxRole roles[] = {
        [BOARD_THREAD_VCPU] = SANDBOX_ROLE_VCPU,
        [BOARD_THREAD_IO] = SANDBOX_ROLE_IO,
        [BOARD_THREAD_STDIN] = SANDBOX_ROLE_STDIN,
    };
    Vmm *v = o;
    return sandbox_enter(&v->sandbox, roles[t]) < 0 ? -1 : 0;
}

static void board_save_tty(void *o, int fd)
{
    (void)o;
    sandbox_fatal_save_tty(fd);
}

/* Prepares the filters (before the first filtered thread: the incoming
 * migration's loader). */
static int prepare_sandbox(Vmm *v)
{
    static const SandboxMode modes[] = {
        [VM_SECCOMP_KILL] = SANDBOX_KILL,
        [VM_SECCOMP_LOG] = SANDBOX_LOG,
        [VM_SECCOMP_OFF] = SANDBOX_OFF,
    };
    json_object_seed(0); /* jansson reads /dev/urandom once: not later */
    if (sandbox_init(&v->sandbox, modes[v->cfg.seccomp], v->cfg.test_device) < 0)
        return -1;
    v->m.hooks = (BoardHooks){ board_enter_thread, board_save_tty, v };
    return 0;
}

static json_t *metrics_collect(void *o)
{
    return vmm_query_stats(o);
}

/* --metrics: the file and its timer, made now (before the jail and the
 * sandbox); the main loop writes the lines.  0 or -1 after printing why. */
static int open_metrics(Vmm *v)
{
    if (!v->cfg.metrics_path)
        return 0;
    v->metrics = metrics_open(v->cfg.metrics_path, v->cfg.metrics_interval, v->epfd,
                              metrics_collect, v);
    return v->metrics ? 0 : -1;
}

/* Everything is open: chroot and drop privileges while this is the only
 * thread (machine_start starts the others). */
static int enter_jail(Vmm *v)
{
    SandboxJail j = { v->cfg.jail_uid, v->cfg.jail_gid, v->cfg.chroot_dir };
    return sandbox_jail(&j) < 0 ? -1 : 0;
}

/* Locks every --disk image for this VM's life (vmm/disk-lock.h), before
 * anything starts and before the sandbox: no syscall is needed later.  An
 * live-migration destination (--incoming tcp: or unix:) takes none: its
 * source, on the same image, runs until the handover (QEMU keeps a
 * destination's images inactive until then; strata does not take the
 * locks at the handover yet).  A snapshot restore (file:) has no running
 * source: it locks. */
static int take_disk_locks(Vmm *v)
{
    if (v->cfg.incoming && strncmp(v->cfg.incoming, "file:", 5))
        return 0;
    for (unsigned i = 0; i < v->cfg.ndisks; i++) {
        char err[1024];
        bool unlocked;
        const VmDisk *d = &v->cfg.disks[i];
        v->disk_lock_fd[i] = disk_lock(d->path, d->readonly, &unlocked, err, sizeof(err));
        if (v->disk_lock_fd[i] < 0) {
            fprintf(stderr, "strata: %s\n", err);
            return -1;
        }
        if (unlocked)
            fprintf(stderr, "strata: disk path=%s: its file system has no OFD locks: not locked\n",
                    d->path);
    }
    return 0;
}

int strata_run(int argc, char *const argv[])
{
    static Vmm vmm; /* big (devices, regions); one per process */
    Vmm *v = &vmm;
    char err[1024];

    memset(v, 0, sizeof(*v));
    v->epfd = v->sigfd = v->endfd = -1;
    for (unsigned i = 0; i < VM_MAX_DISKS; i++)
        v->disk_lock_fd[i] = -1;
    v->main_tid = gettid();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    v->start_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    vm_config_init(&v->cfg);
    int r = vm_config_parse_args(&v->cfg, argc, argv, err, sizeof(err));
    if (r == CONFIG_HELP) {
        fputs(vm_config_usage(), stdout);
        vm_config_free(&v->cfg);
        return 0;
    }
    if (r != CONFIG_OK) {
        fprintf(stderr, "strata: %s\n", err);
        vm_config_free(&v->cfg);
        return EXIT_SETUP;
    }
    const char *why = kvm_probe();
    if (why) {
        fprintf(stderr, "strata: /dev/kvm cannot run guests here: %s\n", why);
        vm_config_free(&v->cfg);
        return EXIT_SETUP;
    }
    int status = EXIT_SETUP;
    if (take_disk_locks(v) < 0 || setup_loop(v) < 0 || machine_create(&v->m, &v->cfg) < 0 ||
        setup_migration(v) < 0 || prepare_sandbox(v) < 0)
        goto out;
    bool start_paused = false;
    if (v->cfg.incoming &&
        mig_incoming(v->mig, v->cfg.incoming, v->cfg.restore_prefault, &start_paused) < 0) {
        status = EXIT_INCOMING;
        goto out;
    }
    /* a snapshot restored: this VM is one of its clones (docs/snapshot.md) */
    if (v->cfg.incoming && !strncmp(v->cfg.incoming, "file:", 5) &&
        machine_new_generation(&v->m) < 0) {
        fprintf(stderr, "strata: restore: no random bytes for a new VM generation ID\n");
        status = EXIT_INCOMING;
        goto out;
    }
    if (v->cfg.api_socket) {
        size_t n = vmm_qmp_ncommands + mig_qmp_ncommands;
        v->cmds = calloc(n, sizeof(*v->cmds));
        if (!v->cmds) {
            fprintf(stderr, "strata: out of memory\n");
            goto out;
        }
        memcpy(v->cmds, vmm_qmp_commands, vmm_qmp_ncommands * sizeof(*v->cmds));
        memcpy(v->cmds + vmm_qmp_ncommands, mig_qmp_commands, mig_qmp_ncommands * sizeof(*v->cmds));
        v->ncmds = n;
        for (size_t i = vmm_qmp_ncommands; i < n; i++)
            v->cmds[i].opaque = v->mig; /* migration's commands act on it */
        v->qmp = qmp_server_new(v->cfg.api_socket, v->epfd, v->cmds, n, v, err, sizeof(err));
        if (!v->qmp) {
            fprintf(stderr, "strata: %s\n", err);
            goto out;
        }
        sandbox_fatal_unlink(v->cfg.api_socket); /* removed by a seccomp kill too */
        if (vmm_balloon_watch(v) < 0)
            goto out;
    }
    if (open_metrics(v) < 0 || enter_jail(v) < 0)
        goto out;
    if (start_paused)
        kvm_vm_pause(v->m.vm); /* the source was paused: stay so until `cont` */
    guest_started = 1;
    if (machine_start(&v->m) < 0)
        goto out;
    v->state = start_paused ? RUN_STATE_PAUSED : RUN_STATE_RUNNING;
    r = pthread_create(&v->waiter, NULL, waiter_main, v);
    if (r) {
        fprintf(stderr, "strata: cannot start a thread: %s\n", strerror(r));
        kvm_vm_request_end(v->m.vm, KVM_END_ERROR, 0, "set-up failed");
        goto out;
    }
    v->waiter_started = true;
    if (sandbox_enter(&v->sandbox, SANDBOX_ROLE_MAIN) < 0) {
        kvm_vm_request_end(v->m.vm, KVM_END_ERROR, 0, "main thread: no sandbox");
        goto out;
    }
    run_loop(v);
    status = v->exit_status;
    if (v->metrics)
        metrics_write(v->metrics); /* the last figures, as the VM ended */
out:
    if (v->waiter_started) {
        kvm_vm_request_end(v->m.vm, KVM_END_ERROR, 0, "strata is exiting");
        pthread_join(v->waiter, NULL);
    }
    metrics_close(v->metrics);
    v->metrics = NULL;
    mig_free(v->mig);
    v->mig = NULL;
    sandbox_fatal_forget(v->cfg.api_socket); /* qmp_server_free removes it */
    qmp_server_free(v->qmp);
    free(v->cmds);
    machine_destroy(&v->m);
    if (v->epfd >= 0)
        close(v->epfd);
    if (v->sigfd >= 0)
        close(v->sigfd);
    if (v->endfd >= 0)
        close(v->endfd);
    for (unsigned i = 0; i < VM_MAX_DISKS; i++)
        if (v->disk_lock_fd[i] >= 0)
            close(v->disk_lock_fd[i]); /* releases the lock */
    vm_config_free(&v->cfg);
    return status;
}
