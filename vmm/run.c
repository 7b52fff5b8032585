/* SPDX-License-Identifier: MIT */
/* `strata run`: build the machine, run the main loop, report the end. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "vmm/control/commands.h"
#include "vmm/control/dirtyrate.h"
#include "vmm/control/stats.h"
#include "vmm/migration/stream.h"
#include "vmm/migration/migration.h"
#include "vmm/runstate.h"
#include "vmm/daemon.h"
#include "vmm/disk-lock.h"
#include "devices/report.h"
#include "vmm/version.h"
#include "vmm/log.h"
#include "vmm/vmm.h"
#include "vmm/migration/uri.h"

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
        log_msg(LOG_WARN, "terminating on signal %d (%s)", v->signo, strsignal(v->signo));
        v->exit_status = 128 + v->signo;
    } else {
        switch (e->reason) {
        case KVM_END_REQUESTED:
            if (__atomic_load_n(&v->m.guest_panicked, __ATOMIC_SEQ_CST)) {
                log_msg(LOG_WARN, "the guest kernel panicked (reported through pvpanic)");
                reason = "guest-panic";
                v->exit_status = EXIT_GUEST_CRASHED;
            } else if (e->code == 0) {
                v->exit_status = EXIT_CLEAN;
            } else {
                log_msg(LOG_WARN, "guest exited with code %d (0x%x)", e->code, (unsigned)e->code);
                v->exit_status = EXIT_GUEST_FAILED;
            }
            break;
        case KVM_END_HLT:
        case KVM_END_SYSTEM_SHUTDOWN:
            v->exit_status = EXIT_CLEAN;
            break;
        case KVM_END_SHUTDOWN:
        case KVM_END_SYSTEM_RESET:
            log_msg(LOG_WARN, "guest %s; strata does not reset on it, it exits",
                    e->reason == KVM_END_SHUTDOWN ? "crashed (triple fault)"
                                                  : "asked for a system reset");
            reason = "guest-reset";
            v->exit_status = EXIT_GUEST_CRASHED;
            break;
        default:
            log_msg(LOG_ERROR, "the VM failed: %s", e->text);
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
    if (!v->signo && v->state == RUN_STATE_INMIGRATE) {
        /* no guest ran: the incoming side gives up (the source hears ERR!
         * and keeps its guest) and strata says so with status 5 */
        v->signo = (int)si.ssi_signo;
        fprintf(stderr,
                "strata: incoming migration: interrupted by signal %d (%s); the guest is not "
                "started\n",
                v->signo, strsignal(v->signo));
        vmm_abandon_incoming(v, EXIT_INCOMING, "host-signal");
        return;
    }
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
        log_msg(LOG_ERROR, "event loop: %s", strerror(errno));
        return -1;
    }
    v->sig_src.handler = on_signal;
    v->end_src.handler = on_end;
    if (ev_add(v->epfd, v->sigfd, EPOLLIN, &v->sig_src) < 0 ||
        ev_add(v->epfd, v->endfd, EPOLLIN, &v->end_src) < 0) {
        log_msg(LOG_ERROR, "event loop: %s", strerror(errno));
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
    v->loop_break = false;
    while (!v->done && !v->loop_break) {
        int n = epoll_wait(v->epfd, evs, 64, postmigrate_check(v));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_msg(LOG_ERROR, "epoll_wait: %s", strerror(errno));
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

/* Locks every --disk image for this VM's life (vmm/disk-lock.h), before
 * anything starts and before the sandbox: no syscall is needed later.  An
 * live-migration destination (incoming tcp: or unix:, or defer until it
 * knows) takes none: its source, on the same image, runs until the
 * handover (QEMU keeps a destination's images inactive until then; strata
 * does not take the locks at the handover yet).  A snapshot restore
 * (file:, maybe through migrate-incoming) has no running source: it locks.
 * 0, or -1 with err (every lock taken let go again). */
static int take_disk_locks(Vmm *v, const char *incoming, char *err, size_t errlen)
{
    if (incoming && !mig_uri_is_file(incoming))
        return 0;
    for (unsigned i = 0; i < v->cfg.ndisks; i++) {
        bool unlocked;
        const VmDisk *d = &v->cfg.disks[i];
        if (v->disk_lock_fd[i] >= 0)
            continue;
        v->disk_lock_fd[i] = disk_lock(d->path, d->readonly, &unlocked, err, errlen);
        if (v->disk_lock_fd[i] < 0) {
            for (unsigned k = 0; k < i; k++) {
                close(v->disk_lock_fd[k]);
                v->disk_lock_fd[k] = -1;
            }
            return -1;
        }
        if (unlocked)
            log_msg(LOG_WARN, "disk path=%s: its file system has no OFD locks: not locked",
                    d->path);
    }
    return 0;
}

/* ---- the main thread's slice ---------------------------------------------
 *
 * The main thread answers the control socket and runs the devices' timers:
 * short bursts that should not wait behind a vCPU.  On a host whose cores
 * are all busy (vCPUs spinning), the kernel's EEVDF scheduler lets the
 * running vCPU thread finish its slice before a woken main thread runs:
 * 2-4 ms per wake-up, measured on 2 cores (a QMP round trip or a restore's
 * handshake).  A short slice request for the main thread alone (Linux 6.12+:
 * sched_setattr's sched_runtime under SCHED_OTHER; earlier kernels ignore
 * it) lets it in at once.  A slice sets how soon a thread runs and for how
 * long at a time, not its share of the CPU: threads started later (a
 * migration's) inherit it and still get their fair share.  Nothing changes
 * under another policy, and the nice value stays as it was. */
#define MAIN_SLICE_NS 100000ull /* the kernel's smallest */

static void set_main_slice(uint64_t ns)
{
    struct {
        uint32_t size, policy;
        uint64_t flags;
        int32_t nice;
        uint32_t prio;
        uint64_t runtime, deadline, period;
    } a = { 48, SCHED_OTHER, 0, 0, 0, ns, 0, 0 };
    if (sched_getscheduler(0) != SCHED_OTHER)
        return;
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, 0); /* this thread's */
    if (nice == -1 && errno)
        return;
    a.nice = nice;
    (void)syscall(SYS_sched_setattr, 0, &a, 0); /* a hint: no error matters */
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
    if (v->state == RUN_STATE_INMIGRATE)
        return "The VM is waiting for an incoming migration (inmigrate): it has no guest "
               "to send yet";
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

static int mig_incoming_prepare(void *o, const char *uri, char *err, size_t errlen)
{
    return take_disk_locks(o, uri, err, errlen);
}

/* The incoming side ended: leave the waiting loop (strata_run goes on). */
static void mig_incoming_done(void *o, bool ok, bool paused, const char *uri)
{
    Vmm *v = o;
    v->incoming_ok = ok;
    v->start_paused = paused;
    v->restored = mig_uri_is_file(uri);
    v->loop_break = true;
}

static int setup_migration(Vmm *v)
{
    v->mig_host = (MigHost){
        .m = &v->m,
        .epfd = v->epfd,
        .opaque = v,
        .enter_thread = mig_enter_thread,
        .event = mig_event,
        .refuse = mig_refuse,
        .running = mig_running,
        .held_paused = mig_held_paused,
        .migrated = mig_migrated,
        .crash_unlink = mig_crash_unlink,
        .open_snapshot = mig_open_snapshot,
        .incoming_prepare = mig_incoming_prepare,
        .incoming_done = mig_incoming_done,
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
        [BOARD_THREAD_SERIAL] = SANDBOX_ROLE_SERIAL,
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

/* The QMP server on --api-socket (none without): 0, or -1 after a message. */
static int setup_qmp(Vmm *v)
{
    char err[1024];
    if (!v->cfg.api_socket)
        return 0;
    size_t n = vmm_qmp_ncommands + mig_qmp_ncommands;
    v->cmds = calloc(n, sizeof(*v->cmds));
    if (!v->cmds) {
        log_msg(LOG_ERROR, "out of memory");
        return -1;
    }
    memcpy(v->cmds, vmm_qmp_commands, vmm_qmp_ncommands * sizeof(*v->cmds));
    memcpy(v->cmds + vmm_qmp_ncommands, mig_qmp_commands, mig_qmp_ncommands * sizeof(*v->cmds));
    v->ncmds = n;
    for (size_t i = vmm_qmp_ncommands; i < n; i++)
        v->cmds[i].opaque = v->mig; /* migration's commands act on it */
    v->qmp = qmp_server_new(v->cfg.api_socket, v->epfd, v->cmds, n, v, err, sizeof(err));
    if (!v->qmp) {
        log_msg(LOG_ERROR, "%s", err);
        return -1;
    }
    sandbox_fatal_unlink(v->cfg.api_socket); /* removed by a seccomp kill too */
    if (vmm_dirtyrate_init(v) < 0)
        return -1;
    return vmm_balloon_watch(v);
}

/* --incoming: runs the main loop (QMP answers, inmigrate) until the
 * incoming side has brought the guest in (-1: go on and start it) or
 * strata is to exit without one (the exit status). */
static int wait_incoming(Vmm *v)
{
    char err[1024];
    const char *uri = v->cfg.incoming;
    v->state = RUN_STATE_INMIGRATE;
    if (!strcmp(uri, "defer")) {
        mig_incoming_defer(v->mig);
        log_report("--incoming defer: waiting for QMP migrate-incoming on %s", v->cfg.api_socket);
    } else if (mig_incoming_start(v->mig, uri, v->cfg.restore_prefault, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s%s", mig_uri_is_file(uri) ? "restore: " : "--incoming ", err);
        return EXIT_INCOMING;
    }
    /* A restore's control socket is made while the loader works and takes
     * connections once the guest is there: a client that connects now
     * waits in its backlog and is greeted then. */
    if (v->cfg.restore) {
        if (setup_qmp(v) < 0)
            return EXIT_SETUP;
        int r = qmp_server_accepting(v->qmp, false);
        if (r < 0) {
            log_msg(LOG_ERROR, "--api-socket: event loop: %s", strerror(-r));
            return EXIT_SETUP;
        }
    }
    run_loop(v);
    if (v->done)
        return v->exit_status; /* quit or a signal while it waited */
    if (!v->incoming_ok)
        return EXIT_INCOMING; /* the loader said why */
    /* a snapshot restored: this VM is one of its clones (docs/snapshot.md) */
    if (v->restored && machine_new_generation(&v->m) < 0) {
        log_msg(LOG_ERROR, "restore: no random bytes for a new VM generation ID");
        return EXIT_INCOMING;
    }
    return -1;
}

/* Device faults (devices/report.h) go to the log. */
static void device_report(DevReportKind kind, const char *line)
{
    log_msg(kind == DEV_REPORT_FAULT ? LOG_WARN : LOG_INFO, "%s", line);
}

/* One info line saying what was built. */
static void log_machine(Vmm *v)
{
    if (!log_enabled(LOG_INFO))
        return;
    char devs[512];
    size_t off = 0;
    devs[0] = '\0';
    for (unsigned i = 0; i < devlist_count(&v->m.devices); i++) {
        const DevRecord *r = devlist_get(&v->m.devices, i);
        int n = snprintf(devs + off, sizeof(devs) - off, "%s%s", i ? ", " : "", r->name);
        if (n < 0 || (size_t)n >= sizeof(devs) - off)
            break;
        off += (size_t)n;
    }
    static const char *const serial[] = { [SERIAL_STDIO] = "stdio",
                                          [SERIAL_FILE] = "file",
                                          [SERIAL_NONE] = "none",
                                          [SERIAL_PTY] = "pty",
                                          [SERIAL_SOCKET] = "socket" };
    log_msg(LOG_INFO, "machine built: %s, memory %llu MiB, %u vCPU%s, serial %s, devices: %s",
            MACHINE_NAME, (unsigned long long)(v->cfg.memory >> 20), v->m.ncpus,
            v->m.ncpus == 1 ? "" : "s", serial[v->cfg.serial], devs);
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
        log_msg(LOG_ERROR, "%s", err);
        vm_config_free(&v->cfg);
        return EXIT_SETUP;
    }
    if (log_setup(v->cfg.log_level, v->cfg.log_level_set, v->cfg.log_file, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        vm_config_free(&v->cfg);
        return EXIT_SETUP;
    }
    const char *why = kvm_probe();
    if (why) {
        log_msg(LOG_ERROR, "/dev/kvm cannot run guests here: %s", why);
        log_teardown();
        vm_config_free(&v->cfg);
        return EXIT_SETUP;
    }
    int status = EXIT_SETUP;
    daemon_init(&v->daemon);
    /* before anything is built: KVM ties a VM to its creator (vmm/daemon.h) */
    if (v->cfg.daemonize && daemon_start(&v->daemon, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        goto out;
    }
    v->main_tid = gettid(); /* the daemon's, after the fork */
    if (v->cfg.pidfile) {
        if (daemon_pidfile(&v->daemon, v->cfg.pidfile, err, sizeof(err)) < 0) {
            log_msg(LOG_ERROR, "%s", err);
            goto out;
        }
        sandbox_fatal_unlink(v->cfg.pidfile); /* removed by a seccomp kill too */
    }
    log_msg(LOG_INFO, "strata %s starting (pid %d)", strata_version(), (int)getpid());
    dev_report_set_sink(device_report);
    if (take_disk_locks(v, v->cfg.incoming, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        goto out;
    }
    MigPremap premap = { .fd = -1 };
    if (setup_loop(v) < 0 || machine_create_begin(&v->m, &v->cfg) < 0)
        goto out;
    /* A snapshot's RAM is mapped before KVM sees the machine's memory
     * (mig_snapshot_premap; a file it cannot take is the restore's to
     * refuse, below). */
    if (v->cfg.restore && mig_uri_is_file(v->cfg.incoming))
        mig_snapshot_premap(&v->m, v->cfg.incoming + 5, v->cfg.restore_prefault, &premap);
    if (machine_create_finish(&v->m) < 0 || setup_migration(v) < 0) {
        if (premap.fd >= 0)
            close(premap.fd);
        goto out;
    }
    if (premap.fd >= 0)
        mig_incoming_premapped(v->mig, &premap); /* the fd is the restore's now */
    if (prepare_sandbox(v) < 0)
        goto out;
    log_machine(v);
    /* A restore from the command line (file:) answers QMP once its guest
     * is there (wait_incoming); a live destination while it waits
     * (inmigrate). */
    if (!v->cfg.restore && setup_qmp(v) < 0)
        goto out;
    if (v->cfg.incoming) {
        status = wait_incoming(v);
        if (status >= 0)
            goto out;
        status = EXIT_SETUP;
    }
    if (v->cfg.restore && (r = qmp_server_accepting(v->qmp, true)) < 0) {
        log_msg(LOG_ERROR, "--api-socket: event loop: %s", strerror(-r));
        goto out;
    }
    if (open_metrics(v) < 0 || enter_jail(v) < 0)
        goto out;
    if (v->start_paused)
        kvm_vm_pause(v->m.vm); /* the source was paused: stay so until `cont` */
    guest_started = 1;
    if (machine_start(&v->m) < 0)
        goto out;
    v->state = v->start_paused ? RUN_STATE_PAUSED : RUN_STATE_RUNNING;
    if (v->cfg.incoming && !v->start_paused) /* as QEMU's destination starts its guest */
        qmp_server_event(v->qmp, "RESUME", NULL);
    r = pthread_create(&v->waiter, NULL, waiter_main, v);
    if (r) {
        log_msg(LOG_ERROR, "cannot start a thread: %s", strerror(r));
        kvm_vm_request_end(v->m.vm, KVM_END_ERROR, 0, "set-up failed");
        goto out;
    }
    v->waiter_started = true;
    set_main_slice(MAIN_SLICE_NS); /* after the vCPU and device threads started */
    /* everything that can fail at start-up has: the parent may go */
    daemon_ready(&v->daemon);
    log_msg(LOG_INFO, "the VM runs%s", v->start_paused ? " (paused)" : "");
    if (sandbox_enter(&v->sandbox, SANDBOX_ROLE_MAIN) < 0) {
        kvm_vm_request_end(v->m.vm, KVM_END_ERROR, 0, "main thread: no sandbox");
        goto out;
    }
    /* The threads just started (the vCPU throttle's ticker, the waiter)
     * begin by loading their filters, on this core as often as not.  One
     * still runnable here when the loop wakes the first QMP client (a
     * restore's greeting, the client's first reply) makes the kernel put
     * that client back on its previous core, where a vCPU may now run a
     * guest that spins: `perf sched` shows it queued there until the next
     * tick (4 ms at HZ=250) while this core idled.  Let them run first. */
    sched_yield();
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
    vmm_dirtyrate_free(v);
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
    if (v->cfg.pidfile)
        sandbox_fatal_forget(v->cfg.pidfile);
    daemon_end(&v->daemon);
    log_msg(LOG_INFO, "strata exits with status %d", status);
    dev_report_set_sink(NULL);
    log_teardown();
    vm_config_free(&v->cfg);
    return status;
}
