/* SPDX-License-Identifier: MIT */
/* The running VMM: machine + main loop + control socket state. */
#ifndef STRATA_VMM_VMM_H
#define STRATA_VMM_VMM_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "vmm/config.h"
#include "vmm/daemon.h"
#include "vmm/loop.h"
#include "vmm/machine.h"
#include "vmm/control/metrics.h"
#include "vmm/control/qmp.h"
#include "vmm/migration/migration.h"
#include "vmm/sandbox.h"

typedef struct Vmm Vmm;

typedef enum RunState {
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,
    RUN_STATE_SHUTDOWN,
    RUN_STATE_POSTMIGRATE, /* migrated away: paused for good, QMP still answers */
    RUN_STATE_INMIGRATE,   /* a destination waiting for (or loading) its guest:
                            * no vCPU has run, the main thread is not sandboxed yet */
} RunState;

/* How long a migrated-away source lingers for its QMP clients at most; it
 * leaves once none has been connected for the grace time. */
#define VMM_POSTMIGRATE_LINGER_MS 10000
#define VMM_POSTMIGRATE_GRACE_MS 1000

struct Vmm {
    VmConfig cfg;
    Machine m;
    int epfd;
    EvSource sig_src, end_src;
    int sigfd, endfd;
    QmpServer *qmp;
    RunState state;
    pthread_t waiter;
    bool waiter_started;
    pid_t main_tid, waiter_tid, vcpu_tid;
    KvmVmEnd end;
    bool done;                                /* leave the main loop */
    bool loop_break;                          /* leave it for now: the incoming side ended */
    bool incoming_ok, start_paused, restored; /* how it ended (MigHost incoming_done) */
    bool quit;                                /* QMP quit asked for the end */
    int signo;                                /* signal that asked for the end, or 0 */
    int exit_status;
    Sandbox sandbox;                /* --seccomp: sandbox_enter(&v->sandbox, role) per thread */
    Migration *mig;                 /* live migration (vmm/migration/migration.h) */
    MigHost mig_host;               /* what mig was handed: the machine, the loop, ... */
    uint64_t postmigrate_until_ns;  /* RUN_STATE_POSTMIGRATE: quit by then */
    uint64_t postmigrate_idle_ns;   /* ... or when no client since then + grace */
    QmpCommand *cmds;               /* the served table: vmm's + migration's */
    size_t ncmds;                   /* its length */
    uint64_t start_ns;              /* CLOCK_MONOTONIC when strata_run began */
    Metrics *metrics;               /* --metrics (vmm/control/metrics.h), or NULL */
    int disk_lock_fd[VM_MAX_DISKS]; /* vmm/disk-lock.h: held for the VM's life, -1 = none */
    Daemon daemon;                  /* --daemonize, --pidfile */
    EvSource balloon_src;           /* the balloon's change eventfd (BALLOON_CHANGE) */
    uint64_t balloon_actual_sent;   /* the last BALLOON_CHANGE's "actual" */
    struct DirtyRate *dirtyrate;    /* calc-dirty-rate's measurement (control/dirtyrate.h) */
};

/* `strata run` (args after "run"); returns the exit status. */
int strata_run(int argc, char *const argv[]);

#endif /* STRATA_VMM_VMM_H */
