/* SPDX-License-Identifier: MIT */
/* Internals shared by migration*.c (not for other files). */
#ifndef STRATA_VMM_MIGRATION_INT_H
#define STRATA_VMM_MIGRATION_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/loop.h"
#include "vmm/migration/cpu.h"
#include "vmm/migration/stream.h"
#include "vmm/migration/migration.h"

#define MIG_MAX_DEVICES 32
#define MIG_MAX_EVENTS 16

/* One migratable RAM region ("block"): block n of the stream. */
typedef struct MigBlock {
    MemoryRegion *mr;
    const char *name;
    uint8_t *host;
    uint64_t size;
    uint64_t pages;
} MigBlock;

/* One device of the machine, in stream order. */
typedef struct MigDevice {
    char name[64];
    int (*save)(Machine *m, unsigned idx, uint8_t **buf, size_t *len);
    int (*load)(Machine *m, unsigned idx, const uint8_t *buf, size_t len, char *err, size_t errlen);
    unsigned idx;
} MigDevice;

/* Counters of one migration (query-migrate's "ram" and times). */
#define MIG_TIMELINE_ROUNDS 32u /* rounds the timeline keeps (the first ones) */

typedef struct MigStats {
    uint64_t start_ns, setup_done_ns, end_ns, pause_ns;
    uint64_t downtime_ms, expected_downtime_ms;
    uint64_t final_pause_ms; /* how long the final phase held the guest (any end) */
    uint64_t transferred, remaining, total;
    uint64_t duplicate, normal, normal_bytes;
    uint64_t dirty_sync_count, dirty_pages_rate;
    uint64_t rounds;
    double mbps;
    bool forced;            /* the final round was forced (no convergence) */
    unsigned throttle_pct;  /* auto-converge's throttle of the vCPUs now (0: none) */
    unsigned throttle_peak; /* ...the highest it reached in this migration */
    bool dirty_limit_on;    /* dirty-limit's limit is in force now */
    /* The timeline (query-migrate's x-timeline), microseconds: */
    uint64_t log_us;                        /* dirty logging switched on (before the thread) */
    uint64_t setup_us;                      /* connect, header, CONFIG */
    uint64_t round_us[MIG_TIMELINE_ROUNDS]; /* each pre-copy round: send + harvest */
    uint64_t final_pages_us;                /* the final pause: the last dirty pages */
    uint64_t cpu_us;                        /* ... VMSTATE and VCPU records */
    uint64_t devices_us;                    /* ... DEVICE records and END */
    uint64_t ready_us;                      /* ... END sent until READY (the destination's load) */
    uint64_t ack_us;                        /* ... GO sent until ACK */
    /* kvm/'s dirty-log counters when the migration began (x-dirty-log) */
    uint64_t log_syncs0, log_sync_ns0, log_pages0, log_ring_full0, log_ring_full_ns0;
} MigStats;

struct Migration {
    const MigHost *host;
    pthread_mutex_t lock; /* status, params, stats, error, events */
    MigStatus status;
    MigParams params;
    MigStats stats;
    char error[512];
    MigStatus events[MIG_MAX_EVENTS]; /* status changes not yet announced */
    unsigned nevents;
    uint64_t passes[MIG_MAX_EVENTS]; /* MIGRATION_PASS not yet announced */
    unsigned npasses;
    int notify_fd;  /* eventfd: the thread has news for the main loop */
    int pagemap_fd; /* /proc/self/pagemap (-1: none): round 0 skips reading
                                 * RAM the guest never touched */
    EvSource src;
    pthread_t thread;
    bool thread_running;
    volatile int cancel;
    char uri[256];
    bool logging; /* dirty logging enabled for MIGRATION */
    /* Under lock: */
    bool final_phase;      /* the thread paused the guest for the final phase */
    bool held;             /* handover unconfirmed: the thread's pause of the vCPUs
                                 * and devices is kept until `cont` */
    bool held_was_running; /* ...and the guest was running before that pause */
    MigOwner owner;
    bool incoming; /* the last migration came in (--incoming) */
    bool to_file;  /* the last one is a snapshot (file:PATH): the guest stays */
    /* The last snapshot, when it can be the base of an incremental one:
     * complete, saved with x-incremental-snapshot, dirty logging on since. */
    bool snap_base;
    char snap_path[256];
    uint64_t snap_dev, snap_ino; /* the file it was written to (the thread sets) */
    bool incremental_run;        /* this save writes only what changed since */
    /* The incoming side (incoming.c); main thread, but inc_paused under lock: */
    MigIncomingMode inc_mode;
    bool inc_pending;      /* started, its end not yet handed to the host */
    bool inc_file;         /* a snapshot restore (file:), not a stream */
    bool inc_prefault;     /* ...reading all of its RAM in first */
    bool inc_paused;       /* the guest that came in was paused (the thread sets) */
    int inc_fd;            /* the connection or the snapshot file (-1: none) */
    MigPremap inc_premap;  /* a snapshot's RAM mapped already (fd -1: none) */
    int inc_abort_fd;      /* eventfd: readable makes the loader give up */
    int listen_fd;         /* waiting for the source's connection (-1: not) */
    EvSource listen_src;   /* ...in the main loop */
    char listen_path[108]; /* a unix: socket to remove once it is closed */
};

/* The machine's RAM blocks (at most max); their number. */
unsigned mig_blocks(Machine *m, MigBlock *out, unsigned max);
/* The machine's devices in stream order (at most max); their number. */
unsigned mig_devices(Machine *m, MigDevice *out, unsigned max);
/* The CONFIG record's JSON text (malloc()ed), or NULL. */
char *mig_config_json(Machine *m);
/* The same with "disks" (each --disk's path and size): a snapshot's CONFIG,
 * whose restore must find the same disks. */
char *mig_config_json_disks(Machine *m);
/* Compares a source's CONFIG text with this machine: 0, or -1 with what
 * differs in err.  lost[]: the source host's CPU features this host's CPU
 * lacks (cpu.h: mig_host_cpu_check applies them to the vCPUs' CPUID). */
int mig_config_check(Machine *m, const char *text, size_t len, uint32_t lost[MIG_HOST_CPU_WORDS],
                     char *err, size_t errlen);

/* Sets the status (and queues its MIGRATION event); lock not held. */
void mig_set_status(Migration *g, MigStatus s);
/* Records the failure reason (first one wins); lock not held. */
void mig_set_error(Migration *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Wakes the main loop (events, the thread's end). */
void mig_notify(Migration *g);

/* The incoming side ended (status final): joins its thread, closes what
 * it held and tells the host (incoming.c; main thread). */
void mig_incoming_reap(Migration *g);
/* Its resources at mig_free: the thread aborted and joined, fds closed. */
void mig_incoming_free(Migration *g);
/* QMP migrate-incoming (incoming.c). */
json_t *mig_q_incoming(void *o, QmpClient *c, json_t *a, QmpError *err);

/* The source's thread (source.c). */
void *mig_source_thread(void *arg);

/* Saves the VM and every vCPU into records (source.c's final
 * stage); 0 or -1 with err.  cpuid: the vCPUs carry their CPUID (a
 * snapshot: its restore gives the guest the same CPU; a live migration
 * does not yet, so that a destination built before VCPU version 2 still
 * takes it, and gives the vCPUs its own as it always did). */
int mig_send_cpu_state(Machine *m, MigChannel *ch, bool cpuid, char *err, size_t errlen);

#endif /* STRATA_VMM_MIGRATION_INT_H */
