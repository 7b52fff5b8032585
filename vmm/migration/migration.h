/* SPDX-License-Identifier: MIT */
/*
 * Live migration: pre-copy of guest RAM driven by the memory API's dirty
 * logging (DIRTY_MEMORY_MIGRATION), then the vCPUs, the VM's in-kernel
 * state and every device, over a unix or TCP stream in the format of
 * docs/migration.md.
 *
 * Source: QMP `migrate` {"uri": "tcp:HOST:PORT" | "unix:PATH"} starts a
 * migration thread; the main thread keeps serving QMP (query-migrate,
 * migrate_cancel, ...) and emits MIGRATION events.  The thread sends all
 * of RAM, then rounds of the pages dirtied meanwhile until what is left
 * fits `downtime-limit` at the measured bandwidth (or the round limit /
 * a dirty set that stops shrinking forces it), then pauses the vCPUs and
 * the device loop, sends the last dirty pages and the state, and waits
 * (within the final phase's hard limit) for the destination's READY, sends
 * GO and waits for its ACK.  Only then does the source stop for good (and
 * strata exits 0); on any failure before GO, or an ERR! answer to it, the
 * VM is resumed exactly where it was and the status says why; with no
 * answer to GO it is held paused until `cont` (docs/migration.md,
 * Handover).
 *
 * Destination: `strata run <same machine options> --incoming URI` builds
 * the machine, waits for one connection, checks the configuration, loads
 * the stream and starts the guest only if all of it arrived intact.  With
 * `--incoming defer` it waits for QMP `migrate-incoming {"uri": URI}`
 * first.  Meanwhile the main loop serves QMP: query-migrate, the
 * parameters and capabilities, and MIGRATION events (setup: listening,
 * active: a source connected, completed / failed).
 *
 * Threading: the Migration object is owned by the main thread; the
 * migration thread only reads guest RAM, calls the dirty-bitmap functions
 * of the memory API (sync, get, reset) and pauses/resumes the VM.  The
 * region tree must not change while a migration runs (system_reset is
 * refused meanwhile).
 */
#ifndef STRATA_VMM_MIGRATION_H
#define STRATA_VMM_MIGRATION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/control/qmp.h"
#include "vmm/machine.h"

typedef struct Migration Migration;

typedef enum MigStatus {
    MIG_NONE = 0,
    MIG_SETUP,
    MIG_ACTIVE,
    MIG_DEVICE, /* vCPUs stopped, final round and state ("device") */
    MIG_COMPLETED,
    MIG_FAILED,
    MIG_CANCELLING,
    MIG_CANCELLED,
} MigStatus;

/* QEMU's name of a status ("setup", "active", "completed", ...). */
const char *mig_status_name(MigStatus s);

/* Tunables (migrate_set_parameters).  Defaults are QEMU 7.2's. */
typedef struct MigParams {
    uint64_t downtime_limit_ms;  /* "downtime-limit", default 300 */
    uint64_t max_bandwidth;      /* "max-bandwidth" bytes/s, default 128 MiB/s; 0 = no cap */
    unsigned max_rounds;         /* "x-max-rounds": forces the final round, default 30 */
    bool verify_ram;             /* "x-verify-ram": the destination checks a CRC-32
                                     * of all RAM at the final pause (costs downtime) */
    uint64_t final_limit_ms;     /* "x-final-phase-limit": the hard bound of the final
                                     * pause up to READY; 0 = derived (mig_final_limit_ms) */
    bool incremental;            /* "x-incremental-snapshot": dirty logging stays on
                                     * after a snapshot, and the next one to the same
                                     * file writes only what changed (docs/snapshot.md) */
    bool auto_converge;          /* the "auto-converge" capability: throttle the vCPUs
                                     * while rounds do not converge (policy.h) */
    unsigned throttle_initial;   /* "cpu-throttle-initial" percent, default 20 */
    unsigned throttle_increment; /* "cpu-throttle-increment" percent, default 10 */
    unsigned throttle_max;       /* "max-cpu-throttle" percent, default 99 */
    bool throttle_tailslow;      /* "cpu-throttle-tailslow": accepted and reported;
                                     * the increment is always the whole one */
    bool dirty_limit;            /* the "dirty-limit" capability (QEMU 8.1): where
                                     * auto-converge would throttle every vCPU, limit
                                     * each vCPU's dirty rate instead (needs the ring) */
    unsigned vcpu_dirty_limit;   /* "vcpu-dirty-limit" MB/s, default 1 */
    unsigned dirty_limit_period; /* "x-vcpu-dirty-limit-period" ms, default 1000 */
} MigParams;

/* Who may run the guest (query-migrate's "x-guest-owner"). */
typedef enum MigOwner {
    MIG_OWNER_SOURCE = 0,  /* this side: no handover happened, or it was refused */
    MIG_OWNER_DESTINATION, /* the destination acknowledged GO: it runs the guest */
    MIG_OWNER_UNKNOWN,     /* GO was sent, no answer came: this side holds the guest
                             * paused until `cont` (the operator checks the destination) */
} MigOwner;

#define MIG_DEFAULT_DOWNTIME_MS 300u
#define MIG_DEFAULT_BANDWIDTH (128ull << 20)
#define MIG_DEFAULT_MAX_ROUNDS 30u
#define MIG_DEFAULT_THROTTLE_INITIAL 20u
#define MIG_DEFAULT_THROTTLE_INCREMENT 10u
#define MIG_DEFAULT_THROTTLE_MAX 99u
#define MIG_DEFAULT_VCPU_DIRTY_LIMIT 1u      /* MB/s, QEMU 8.1's */
#define MIG_DEFAULT_DIRTY_LIMIT_PERIOD 1000u /* ms, QEMU 8.1's */
/* The final pause's hard limit when x-final-phase-limit is 0:
 * max(MIG_FINAL_LIMIT_FACTOR x downtime-limit, MIG_FINAL_LIMIT_MIN_MS). */
#define MIG_FINAL_LIMIT_FACTOR 10u
#define MIG_FINAL_LIMIT_MIN_MS 2000u
/* After GO: how long the destination waits for GO, and the source for its
 * answer (longer, so that a GO lost in transit comes back as ERR!). */
#define MIG_GO_TIMEOUT_MS 5000u
#define MIG_ACK_TIMEOUT_MS 10000u

/* The final pause's hard limit in ms for these parameters. */
uint64_t mig_final_limit_ms(const MigParams *p);

/* The migration QMP commands (migrate, migrate_cancel, query-migrate,
 * migrate_set_parameters, query-migrate-parameters, migrate-incoming, ...),
 * for vmm's table. */
extern const QmpCommand mig_qmp_commands[];
extern const size_t mig_qmp_ncommands;

/*
 * What the vmm/ root hands migration: the machine it moves, the main loop
 * it reports to, and the run state and sandbox, which stay the root's.
 * Migration never reaches into the root otherwise.  The callbacks get
 * opaque; all but running() and enter_thread() are called on the main
 * thread.
 */
typedef struct MigHost {
    Machine *m;
    int epfd; /* the main loop: the migration's notification fd joins it */
    void *opaque;
    /* First thing on a migration thread: enter its restrictions (the
     * sandbox's migration role).  0, setting *strict when the thread must
     * not open files (then only numeric addresses resolve); -1 ends it. */
    int (*enter_thread)(void *opaque, bool *strict);
    /* Sends a QMP event to every client; steals data (NULL = {}). */
    void (*event)(void *opaque, const char *name, json_t *data);
    /* Why no migration may start now ("The VM has shut down"), or NULL. */
    const char *(*refuse)(void *opaque);
    /* True while the run state is running (any thread). */
    bool (*running)(void *opaque);
    /* A guest held after an unconfirmed handover counts as paused from now
     * on: a running run state becomes paused (with its STOP event). */
    void (*held_paused)(void *opaque);
    /* The migration completed: the guest runs at the destination now. */
    void (*migrated)(void *opaque);
    /* path (a listening unix socket) is to be removed if a seccomp kill
     * ends strata (on), or no longer (off). */
    void (*crash_unlink)(void *opaque, const char *path, bool on);
    /* Opens (creating it 0600) the snapshot file path for writing, on the
     * migration thread: the fd, or -1 with errno. */
    int (*open_snapshot)(void *opaque, const char *path);
    /* An incoming side is about to start on uri (a file: restore takes the
     * disk locks a live destination leaves to its source): 0, or -1 with
     * why in err. */
    int (*incoming_prepare)(void *opaque, const char *uri, char *err, size_t errlen);
    /* The incoming side ended: ok, the guest state is complete and this
     * side owns it (paused: the source had it paused); else it must never
     * run.  uri is the one it came from. */
    void (*incoming_done)(void *opaque, bool ok, bool paused, const char *uri);
} MigHost;

/* Creates an idle migration for host (kept by reference) and registers its
 * notification fd with host->epfd.  The QMP commands (mig_qmp_commands)
 * take it as their opaque.  The migration, or NULL after printing why. */
Migration *mig_init(const MigHost *host);
/* Cancels a running migration, joins its thread and frees everything;
 * NULL is a no-op. */
void mig_free(Migration *g);
/* True while a migration runs (setup .. cancelling); false for NULL. */
bool mig_active(Migration *g);
/* True while the MIGRATION client's dirty log is the migration's: a
 * migration runs, or the last snapshot is an incremental one's base (its
 * log stays on until the next save, which writes what it marked).  Its
 * marks must not be cleared, nor the log switched off, by anyone else. */
bool mig_dirty_log_held(Migration *g);
/* True from the final pause of a migration until it ends (QEMU's
 * "finish-migrate" run state). */
bool mig_in_final_phase(Migration *g);
/* True while the guest is held paused after an unconfirmed handover. */
bool mig_holds_guest(Migration *g);

/*
 * stop and cont go through these so that the run state the final phase
 * sends (END's `running`) is the one the last acknowledged command asked
 * for: mig_run_state_lock() refuses (-1, err set) during the final phase,
 * else returns 0 with the migration's lock held until
 * mig_run_state_unlock().  mig_release_hold() (under that lock) lets go
 * of a guest held after an unconfirmed handover; true when that hold was
 * the only thing keeping it paused.  All NULL-safe.
 */
int mig_run_state_lock(Migration *g, QmpError *err);
void mig_run_state_unlock(Migration *g);
bool mig_release_hold(Migration *g);

/* Where a destination is with its incoming side (migrate-incoming). */
typedef enum MigIncomingMode {
    MIG_INCOMING_NONE = 0, /* not a destination: no --incoming */
    MIG_INCOMING_DEFERRED, /* --incoming defer: waits for migrate-incoming */
    MIG_INCOMING_STARTED,  /* listening, loading or over: there is one per process */
} MigIncomingMode;

/* Why QMP migrate-incoming {"uri": uri} cannot start in mode (the error's
 * text, maybe written into buf), or NULL if it may.  Pure. */
const char *mig_incoming_refusal(MigIncomingMode mode, const char *uri, char *buf, size_t len);

/* A snapshot's RAM mapped before the machine's memory reaches KVM
 * (mig_snapshot_premap): the file, still open, and where each block was
 * mapped from. */
typedef struct MigPremap {
    int fd; /* -1: nothing premapped */
    unsigned nblocks;
    uint64_t offset[4];
    uint64_t ns; /* what the mapping took (restore's report counts it) */
} MigPremap;

/*
 * For a restore from the command line (main thread, before any filter, m's
 * memory built but not yet attached to KVM): opens the snapshot at path,
 * checks its header against m's RAM blocks as mig_restore_fd does and maps
 * each block from it (MAP_POPULATE with prefault).  Mapping a file over
 * RAM that already has its KVM memory slots makes KVM walk every page of
 * them (2 ms for 4 GiB on a PVM host); over RAM KVM has not seen it costs
 * nothing.  True with *out filled (hand it to mig_incoming_premapped);
 * false with nothing kept when anything is amiss: the restore then opens
 * and checks the file itself and says what is wrong.
 */
bool mig_snapshot_premap(Machine *m, const char *path, bool prefault, MigPremap *out);
/* The next mig_incoming_start of a file: URI uses p's fd (owned from now
 * on) and the RAM already mapped from it, once its header still says so. */
void mig_incoming_premapped(Migration *g, const MigPremap *p);

/*
 * The destination side, driven by the main loop (call on the main thread
 * before it is sandboxed: host names resolve, files open).  For
 * "tcp:HOST:PORT" or "unix:PATH": listens now (status setup), takes the
 * first connection from the main loop (active) and loads the stream into
 * the host's machine (created, not started) on a thread of its own under
 * the migration role, confirming the handover; for "file:PATH": restores
 * the snapshot there (mig_restore_fd; prefault: read all of its RAM in
 * now).  The end (completed / failed) reaches host->incoming_done from
 * the main loop.  0, or -1 with why in err (nothing started: a deferred
 * side may be tried again).
 */
int mig_incoming_start(Migration *g, const char *uri, bool prefault, char *err, size_t errlen);
/* --incoming defer: migrate-incoming may start the incoming side. */
void mig_incoming_defer(Migration *g);
/* Makes a running incoming side give up at its next wait (a signal, quit):
 * the source hears ERR! if it can, the guest never starts here. */
void mig_incoming_abort(Migration *g);

/* The loading part of mig_incoming on a connected fd (not closed here)
 * into m: abort_fd (-1: none) readable gives up; pagemap_fd (-1: none) is
 * /proc/self/pagemap, to skip clearing pages never touched.  0, or -1
 * after printing why. */
int mig_load_fd(Machine *m, int fd, int abort_fd, int pagemap_fd, bool *start_paused);

/* Restores the snapshot file fd (docs/snapshot.md) into m: its header
 * checked against m's RAM, each RAM block mapped from the file
 * copy-on-write over m's (MAP_POPULATE with prefault) unless premap says
 * they are already (mig_snapshot_premap; the header must still give each
 * block the offset it had), then its state records loaded as a migration
 * stream's.  0, or -1 after printing why. */
int mig_restore_fd(Machine *m, int fd, bool prefault, const MigPremap *premap, bool *start_paused);

/* Checks an --incoming / migrate URI; NULL if fine, else why not. */
const char *mig_check_uri(const char *uri);

#endif /* STRATA_VMM_MIGRATION_H */
