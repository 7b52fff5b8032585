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
 * for the destination to confirm that it loaded everything.  Only then
 * does the source stop for good (and strata exits 0); on any failure
 * before that (connection lost, destination refusal, cancel) the VM is
 * resumed exactly where it was and the status says why.
 *
 * Destination: `strata run <same machine options> --incoming URI` builds
 * the machine, waits for one connection, checks the configuration, loads
 * the stream and starts the guest only if all of it arrived intact.
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
#include <stdint.h>

#include "vmm/qmp.h"

typedef struct Vmm Vmm;
typedef struct Migration Migration;

typedef enum MigStatus {
    MIG_NONE = 0,
    MIG_SETUP,
    MIG_ACTIVE,
    MIG_DEVICE,         /* vCPUs stopped, final round and state ("device") */
    MIG_COMPLETED,
    MIG_FAILED,
    MIG_CANCELLING,
    MIG_CANCELLED,
} MigStatus;

/* QEMU's name of a status ("setup", "active", "completed", ...). */
const char *mig_status_name(MigStatus s);

/* Tunables (migrate_set_parameters).  Defaults are QEMU 7.2's. */
typedef struct MigParams {
    uint64_t downtime_limit_ms;     /* "downtime-limit", default 300 */
    uint64_t max_bandwidth;         /* "max-bandwidth" bytes/s, default 128 MiB/s; 0 = no cap */
    unsigned max_rounds;            /* "x-max-rounds": forces the final round, default 30 */
} MigParams;

#define MIG_DEFAULT_DOWNTIME_MS 300u
#define MIG_DEFAULT_BANDWIDTH (128ull << 20)
#define MIG_DEFAULT_MAX_ROUNDS 30u

/* The migration QMP commands (migrate, migrate_cancel, query-migrate,
 * migrate_set_parameters, query-migrate-parameters), for vmm's table. */
extern const QmpCommand mig_qmp_commands[];
extern const size_t mig_qmp_ncommands;

/* Creates v's (idle) migration state and registers its notification fd
 * with v->epfd.  0 or -1 after printing why. */
int mig_init(Vmm *v);
/* Cancels a running migration, joins its thread and frees everything. */
void mig_free(Vmm *v);
/* True while a migration runs (setup .. cancelling). */
bool mig_active(const Vmm *v);

/*
 * The destination side: listens on uri ("tcp:HOST:PORT" or "unix:PATH"),
 * accepts one connection, loads the stream into v's machine (created, not
 * started) and confirms the handover.  On 0 the guest state is complete:
 * *start_paused says whether the source was paused.  On -1 a message was
 * printed and the machine must not be started.
 */
int mig_incoming(Vmm *v, const char *uri, bool *start_paused);

/* The loading part of mig_incoming on a connected fd (not closed here):
 * abort_fd (-1: none) readable gives up.  0, or -1 after printing why. */
int mig_load_fd(Vmm *v, int fd, int abort_fd, bool *start_paused);

/* Checks an --incoming / migrate URI; NULL if fine, else why not. */
const char *mig_check_uri(const char *uri);

#endif /* STRATA_VMM_MIGRATION_H */
