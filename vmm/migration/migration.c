/* SPDX-License-Identifier: MIT */
/* Live migration: the main thread's side and the QMP commands (see migration.h). */
#include "vmm/migration/internal.h"
#include "vmm/log.h"
#include "vmm/text.h"
#include "vmm/migration/uri.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

const char *mig_status_name(MigStatus s)
{
    switch (s) {
    case MIG_NONE:
        return "none";
    case MIG_SETUP:
        return "setup";
    case MIG_ACTIVE:
        return "active";
    case MIG_DEVICE:
        return "device";
    case MIG_COMPLETED:
        return "completed";
    case MIG_FAILED:
        return "failed";
    case MIG_CANCELLING:
        return "cancelling";
    case MIG_CANCELLED:
        return "cancelled";
    }
    return "?";
}

static bool status_running(MigStatus s)
{
    return s == MIG_SETUP || s == MIG_ACTIVE || s == MIG_DEVICE || s == MIG_CANCELLING;
}

void mig_notify(Migration *g)
{
    uint64_t one = 1;
    while (write(g->notify_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

void mig_set_status(Migration *g, MigStatus s)
{
    pthread_mutex_lock(&g->lock);
    /* cancelling only ends as cancelled; the ends are final */
    bool ok = g->status != s && !(g->status == MIG_CANCELLING && s != MIG_CANCELLED &&
                                  s != MIG_COMPLETED && s != MIG_FAILED);
    if (ok) {
        g->status = s;
        if (g->nevents < MIG_MAX_EVENTS)
            g->events[g->nevents++] = s;
    }
    pthread_mutex_unlock(&g->lock);
    if (ok)
        mig_notify(g);
}

void mig_set_error(Migration *g, const char *fmt, ...)
{
    pthread_mutex_lock(&g->lock);
    if (!g->error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->error, sizeof(g->error), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&g->lock);
}

uint64_t mig_final_limit_ms(const MigParams *p)
{
    if (p->final_limit_ms)
        return p->final_limit_ms;
    uint64_t l = p->downtime_limit_ms * MIG_FINAL_LIMIT_FACTOR;
    return l > MIG_FINAL_LIMIT_MIN_MS ? l : MIG_FINAL_LIMIT_MIN_MS;
}

/* g's final_phase and held flags, read under its lock. */
static void phase_flags(Migration *g, bool *final_phase, bool *held)
{
    *final_phase = *held = false;
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    *final_phase = g->final_phase;
    *held = g->held;
    pthread_mutex_unlock(&g->lock);
}

bool mig_in_final_phase(Migration *g)
{
    bool f, h;
    phase_flags(g, &f, &h);
    return f;
}

bool mig_holds_guest(Migration *g)
{
    bool f, h;
    phase_flags(g, &f, &h);
    return h;
}

int mig_run_state_lock(Migration *g, QmpError *err)
{
    if (!g)
        return 0;
    pthread_mutex_lock(&g->lock);
    if (g->final_phase) {
        pthread_mutex_unlock(&g->lock);
        qmp_error_set(err, "The VM is in the final phase of a migration (finish-migrate): its "
                           "run state is on its way to the destination; stop and cont are refused "
                           "until the migration ends");
        return -1;
    }
    return 0;
}

void mig_run_state_unlock(Migration *g)
{
    if (g)
        pthread_mutex_unlock(&g->lock);
}

bool mig_release_hold(Migration *g)
{
    if (!g || !g->held)
        return false;
    g->held = false;
    g->owner = MIG_OWNER_SOURCE;
    char uri[sizeof(g->uri) * 4]; /* the client's text */
    log_report("cont: the guest held since the unconfirmed handover to %s runs "
               "here again",
               text_escape(uri, sizeof(uri), g->uri, strlen(g->uri)));
    machine_virtio_resume(g->host->m);
    kvm_vm_resume(g->host->m->vm);
    return g->held_was_running;
}

bool mig_active(Migration *g)
{
    if (!g)
        return false;
    pthread_mutex_lock(&g->lock);
    bool r = status_running(g->status) || g->thread_running;
    pthread_mutex_unlock(&g->lock);
    return r;
}

bool mig_dirty_log_held(Migration *g)
{
    if (!g)
        return false;
    pthread_mutex_lock(&g->lock);
    bool r = status_running(g->status) || g->thread_running || g->logging;
    pthread_mutex_unlock(&g->lock);
    return r;
}

/* Dirty logging for the MIGRATION client on every RAM block, on or off. */
static int set_logging(Migration *g, bool on, char *err, size_t errlen)
{
    Machine *m = g->host->m;
    MigBlock b[4];
    unsigned n = mig_blocks(m, b, 4);
    memory_region_transaction_begin(m->ctx);
    int r = 0;
    for (unsigned i = 0; i < n && r == 0; i++)
        r = memory_region_set_log(b[i].mr, on, DIRTY_MEMORY_MIGRATION);
    memory_region_transaction_commit(m->ctx);
    if (r < 0)
        snprintf(err, errlen, "dirty logging: %s", memory_context_last_error(m->ctx));
    return r;
}

/* The thread has ended: join it, stop logging, act on how it ended. */
static void reap(Migration *g)
{
    const MigHost *h = g->host;
    if (g->incoming) {
        mig_incoming_reap(g);
        return;
    }
    pthread_join(g->thread, NULL);
    pthread_mutex_lock(&g->lock);
    g->thread_running = false;
    MigStatus s = g->status;
    /* a guest held after an unconfirmed handover is paused, as far as
     * anyone can tell (a `cont` may have released it already) */
    bool held_running = g->held && g->held_was_running;
    pthread_mutex_unlock(&g->lock);
    if (held_running)
        h->held_paused(h->opaque);
    char err[256], uri[sizeof(g->uri) * 4];
    text_escape(uri, sizeof(uri), g->uri, strlen(g->uri)); /* the client's text */
    /* an incremental snapshot's base: logging stays on until the next */
    bool base = s == MIG_COMPLETED && g->to_file && g->params.incremental &&
                strlen(g->uri + 5) < sizeof(g->snap_path);
    g->snap_base = base;
    if (base)
        snprintf(g->snap_path, sizeof(g->snap_path), "%s", g->uri + 5);
    if (g->logging && !base && (s != MIG_COMPLETED || g->to_file)) {
        if (set_logging(g, false, err, sizeof(err)) < 0)
            log_msg(LOG_ERROR, "migration: %s", err);
        g->logging = false;
    }
    if (s == MIG_COMPLETED && g->to_file) {
        log_report("%ssnapshot saved to %s (downtime %llu ms, %.1f MiB of RAM written); "
                   "the VM goes on here",
                   g->incremental_run ? "incremental " : "", uri + 5,
                   (unsigned long long)g->stats.downtime_ms,
                   (double)g->stats.transferred / (1 << 20));
    } else if (s == MIG_COMPLETED) {
        log_report("migration to %s completed (downtime %llu ms); the guest runs "
                   "there now",
                   uri, (unsigned long long)g->stats.downtime_ms);
        h->migrated(h->opaque);
    } else if (s == MIG_FAILED && mig_holds_guest(g)) {
        log_msg(LOG_WARN, "migration to %s failed: %s", uri, g->error);
    } else if (s == MIG_FAILED) {
        log_msg(LOG_WARN, "migration to %s failed: %s; the VM goes on here", uri, g->error);
    } else if (s == MIG_CANCELLED) {
        log_report("migration to %s cancelled; the VM goes on here", uri);
    }
}

/* Sends the events of the status changes the migration thread made since
 * the last call and reaps the thread if it has ended.  Called from the event
 * loop when the thread notifies, and before every QMP command that reads or
 * acts on the status, so that a client never sees a status (say `failed` in
 * query-migrate) before the MIGRATION event that announces it, as in QEMU. */
static void mig_flush(Migration *g)
{
    const MigHost *h = g->host;
    uint64_t n;
    if (read(g->notify_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        return;
    MigStatus ev[MIG_MAX_EVENTS];
    uint64_t passes[MIG_MAX_EVENTS];
    pthread_mutex_lock(&g->lock);
    unsigned ne = g->nevents, np = g->npasses;
    memcpy(ev, g->events, ne * sizeof(ev[0]));
    memcpy(passes, g->passes, np * sizeof(passes[0]));
    g->nevents = g->npasses = 0;
    bool ended = (g->thread_running || g->inc_pending) && !status_running(g->status);
    pthread_mutex_unlock(&g->lock);
    for (unsigned i = 0; i < np; i++)
        h->event(h->opaque, "MIGRATION_PASS", json_pack("{s:I}", "pass", (json_int_t)passes[i]));
    for (unsigned i = 0; i < ne; i++)
        h->event(h->opaque, "MIGRATION", json_pack("{s:s}", "status", mig_status_name(ev[i])));
    if (ended)
        reap(g);
}

static void on_notify(EvSource *src, uint32_t events)
{
    Migration *g = (Migration *)((char *)src - offsetof(Migration, src));
    (void)events;
    mig_flush(g);
}

Migration *mig_init(const MigHost *host)
{
    Migration *g = calloc(1, sizeof(*g));
    if (!g) {
        log_msg(LOG_ERROR, "migration: out of memory");
        return NULL;
    }
    g->host = host;
    g->params = (MigParams){ .downtime_limit_ms = MIG_DEFAULT_DOWNTIME_MS,
                             .max_bandwidth = MIG_DEFAULT_BANDWIDTH,
                             .max_rounds = MIG_DEFAULT_MAX_ROUNDS,
                             .throttle_initial = MIG_DEFAULT_THROTTLE_INITIAL,
                             .throttle_increment = MIG_DEFAULT_THROTTLE_INCREMENT,
                             .throttle_max = MIG_DEFAULT_THROTTLE_MAX,
                             .vcpu_dirty_limit = MIG_DEFAULT_VCPU_DIRTY_LIMIT,
                             .dirty_limit_period = MIG_DEFAULT_DIRTY_LIMIT_PERIOD };
    pthread_mutex_init(&g->lock, NULL);
    g->inc_fd = g->listen_fd = -1;
    g->inc_premap.fd = -1;
    g->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    g->inc_abort_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    g->src.handler = on_notify;
    if (g->notify_fd < 0 || g->inc_abort_fd < 0 ||
        ev_add(host->epfd, g->notify_fd, EPOLLIN, &g->src) < 0) {
        log_msg(LOG_ERROR, "migration: eventfd: %s", strerror(errno));
        if (g->notify_fd >= 0)
            close(g->notify_fd);
        if (g->inc_abort_fd >= 0)
            close(g->inc_abort_fd);
        pthread_mutex_destroy(&g->lock);
        free(g);
        return NULL;
    }
    /* Opened now: the sandbox and the jail allow no open later. */
    g->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    return g;
}

void mig_free(Migration *g)
{
    if (!g)
        return;
    mig_incoming_free(g);
    if (g->thread_running) {
        __atomic_store_n(&g->cancel, 1, __ATOMIC_RELEASE);
        pthread_join(g->thread, NULL);
        g->thread_running = false;
    }
    ev_del(g->host->epfd, g->notify_fd);
    close(g->notify_fd);
    close(g->inc_abort_fd);
    if (g->pagemap_fd >= 0)
        close(g->pagemap_fd);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* ---- QMP commands ---------------------------------------------------------- */

static json_t *q_migrate(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Migration *g = o;
    const MigHost *h = g->host;
    const char *uri = json_string_value(json_object_get(a, "uri"));
    (void)c;
    mig_flush(g);
    const char *refused = h->refuse(h->opaque);
    if (refused) {
        qmp_error_set(err, "%s", refused);
        return NULL;
    }
    if (mig_active(g)) {
        qmp_error_set(err, "There's a migration process in progress");
        return NULL;
    }
    if (mig_holds_guest(g)) {
        qmp_error_set(err, "The guest is held after an unconfirmed handover (query-migrate "
                           "says why): check the destination, and `cont` here first");
        return NULL;
    }
    const char *why = mig_check_uri(uri);
    if (why) {
        qmp_error_set(err, "Parameter 'uri': %s: %s", uri, why);
        return NULL;
    }
    if (json_is_true(json_object_get(a, "blk")) || json_is_true(json_object_get(a, "inc"))) {
        qmp_error_set(err, "block migration is not supported (disks are shared files)");
        return NULL;
    }
    char e[256];
    uint64_t t0 = mig_now_ns();
    if (!g->logging) {
        if (set_logging(g, true, e, sizeof(e)) < 0) {
            qmp_error_set(err, "migrate: %s", e);
            return NULL;
        }
        g->logging = true;
    }
    pthread_mutex_lock(&g->lock);
    snprintf(g->uri, sizeof(g->uri), "%s", uri);
    memset(&g->stats, 0, sizeof(g->stats));
    g->stats.start_ns = t0;
    g->stats.log_us = (mig_now_ns() - t0) / 1000;
    KvmVmStats ks;
    kvm_vm_get_stats(g->host->m->vm, &ks);
    g->stats.log_syncs0 = ks.dirty_syncs;
    g->stats.log_sync_ns0 = ks.dirty_sync_ns;
    g->stats.log_pages0 = ks.dirty_pages;
    g->stats.log_ring_full0 = ks.dirty_ring_full;
    g->stats.log_ring_full_ns0 = ks.dirty_ring_full_ns;
    g->error[0] = 0;
    g->cancel = 0;
    g->status = MIG_NONE;
    g->owner = MIG_OWNER_SOURCE;
    g->incoming = false;
    g->to_file = mig_uri_is_file(uri);
    g->incremental_run = g->to_file && g->params.incremental && g->snap_base && g->logging &&
                         !strcmp(g->snap_path, uri + 5);
    g->snap_base = false; /* until this one completes */
    pthread_mutex_unlock(&g->lock);
    mig_set_status(g, MIG_SETUP);
    int r = pthread_create(&g->thread, NULL, mig_source_thread, g);
    if (r) {
        mig_set_error(g, "cannot start the migration thread: %s", strerror(r));
        mig_set_status(g, MIG_FAILED);
        set_logging(g, false, e, sizeof(e));
        g->logging = false;
        qmp_error_set(err, "migrate: cannot start a thread: %s", strerror(r));
        return NULL;
    }
    pthread_mutex_lock(&g->lock);
    g->thread_running = true;
    pthread_mutex_unlock(&g->lock);
    return json_object();
}

static json_t *q_cancel(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Migration *g = o;
    (void)c;
    (void)a;
    (void)err;
    mig_flush(g);
    if (mig_active(g)) {
        pthread_mutex_lock(&g->lock);
        bool can = g->status == MIG_SETUP || g->status == MIG_ACTIVE || g->status == MIG_DEVICE;
        pthread_mutex_unlock(&g->lock);
        if (can) {
            __atomic_store_n(&g->cancel, 1, __ATOMIC_RELEASE);
            mig_set_status(g, MIG_CANCELLING);
        }
    }
    return json_object(); /* QEMU: a no-op without a migration */
}

/* Where the time went, in microseconds: the fixed costs and each round
 * (docs/migration.md, "Timeline"). */
static json_t *timeline_json(const MigStats *st)
{
    json_t *rounds = json_array();
    uint64_t n = st->rounds < MIG_TIMELINE_ROUNDS ? st->rounds : MIG_TIMELINE_ROUNDS;
    for (uint64_t i = 0; i < n; i++)
        json_array_append_new(rounds, json_integer((json_int_t)st->round_us[i]));
    return json_pack("{s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:I}", "dirty-log-start", (json_int_t)st->log_us,
                     "setup", (json_int_t)st->setup_us, "rounds", rounds, "final-pages",
                     (json_int_t)st->final_pages_us, "cpu-state", (json_int_t)st->cpu_us,
                     "device-state", (json_int_t)st->devices_us, "destination-load",
                     (json_int_t)st->ready_us, "handover", (json_int_t)st->ack_us);
}

/* query-migrate's x-dirty-log: which dirty log kvm/ reads (the ring, of
 * ring-size entries per vCPU, or the slot bitmaps) and what it cost since
 * the migration began: syncs, their total time, pages reported, ring-full
 * exits. */
static json_t *dirty_log_json(Migration *g, const MigStats *st)
{
    KvmVm *vm = g->host->m->vm;
    KvmVmStats ks;
    kvm_vm_get_stats(vm, &ks);
    unsigned ring = kvm_vm_dirty_ring_size(vm);
    json_t *d = json_pack("{s:s}", "mode", ring ? "ring" : "bitmap");
    if (ring)
        json_object_set_new(d, "ring-size", json_integer(ring));
    json_object_set_new(d, "syncs", json_integer((json_int_t)(ks.dirty_syncs - st->log_syncs0)));
    json_object_set_new(d, "sync-us",
                        json_integer((json_int_t)((ks.dirty_sync_ns - st->log_sync_ns0) / 1000)));
    json_object_set_new(d, "pages", json_integer((json_int_t)(ks.dirty_pages - st->log_pages0)));
    if (ring) {
        json_object_set_new(d, "ring-full",
                            json_integer((json_int_t)(ks.dirty_ring_full - st->log_ring_full0)));
        json_object_set_new(d, "ring-full-us",
                            json_integer(
                                (json_int_t)((ks.dirty_ring_full_ns - st->log_ring_full_ns0) /
                                             1000)));
    }
    return d;
}

static json_t *q_query(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Migration *g = o;
    (void)c;
    (void)a;
    (void)err;
    mig_flush(g); /* an ended thread is reaped: its figures are final */
    pthread_mutex_lock(&g->lock);
    MigStatus s = g->status;
    MigStats st = g->stats;
    MigParams p = g->params;
    MigOwner owner = g->owner;
    bool incoming = g->incoming;
    char error[sizeof(g->error)];
    memcpy(error, g->error, sizeof(error));
    pthread_mutex_unlock(&g->lock);
    /* The status read above may be newer than the first flush (the thread
     * sets it and queues its MIGRATION event under g->lock): flushed again,
     * its event goes out before this reply reports it, as QMP clients
     * (libvirt, tests/migration's harness) expect. */
    mig_flush(g);
    if (s == MIG_NONE)
        return json_object();
    if (incoming) { /* this side is the destination */
        json_t *r = json_pack("{s:s,s:b,s:s}", "status", mig_status_name(s), "x-incoming", 1,
                              "x-guest-owner",
                              owner == MIG_OWNER_DESTINATION ? "destination" : "source");
        if (s == MIG_FAILED && error[0])
            json_object_set_new(r, "error-desc", json_string(error));
        return r;
    }
    uint64_t now = mig_now_ns();
    uint64_t end = st.end_ns ? st.end_ns : now;
    json_t *r = json_pack("{s:s}", "status", mig_status_name(s));
    json_object_set_new(r, "total-time", json_integer((json_int_t)((end - st.start_ns) / 1000000)));
    if (st.setup_done_ns)
        json_object_set_new(r, "setup-time",
                            json_integer((json_int_t)((st.setup_done_ns - st.start_ns) / 1000000)));
    if (s == MIG_COMPLETED) {
        json_object_set_new(r, "downtime", json_integer((json_int_t)st.downtime_ms));
        /* what the policy expected when it chose the final round, to set
         * against the measured downtime (scripts/bench-migration.sh) */
        json_object_set_new(r, "x-expected-downtime",
                            json_integer((json_int_t)st.expected_downtime_ms));
    } else if (status_running(s))
        json_object_set_new(r, "expected-downtime",
                            json_integer((json_int_t)st.expected_downtime_ms));
    json_t *ram = json_object();
    json_object_set_new(ram, "transferred", json_integer((json_int_t)st.transferred));
    json_object_set_new(ram, "remaining", json_integer((json_int_t)st.remaining));
    json_object_set_new(ram, "total", json_integer((json_int_t)st.total));
    json_object_set_new(ram, "duplicate", json_integer((json_int_t)st.duplicate));
    json_object_set_new(ram, "normal", json_integer((json_int_t)st.normal));
    json_object_set_new(ram, "normal-bytes", json_integer((json_int_t)st.normal_bytes));
    json_object_set_new(ram, "page-size", json_integer(MIG_PAGE_SIZE));
    json_object_set_new(ram, "dirty-sync-count", json_integer((json_int_t)st.dirty_sync_count));
    json_object_set_new(ram, "dirty-pages-rate", json_integer((json_int_t)st.dirty_pages_rate));
    json_object_set_new(ram, "mbps", json_real(st.mbps));
    json_object_set_new(r, "ram", ram);
    json_object_set_new(r, "x-rounds", json_integer((json_int_t)st.rounds));
    json_object_set_new(r, "x-forced-final-round", json_boolean(st.forced));
    if (status_running(s) && st.throttle_pct) /* QEMU's field, while throttling */
        json_object_set_new(r, "cpu-throttle-percentage", json_integer(st.throttle_pct));
    if (st.throttle_peak)
        json_object_set_new(r, "x-cpu-throttle-peak", json_integer(st.throttle_peak));
    json_object_set_new(r, "x-downtime-limit", json_integer((json_int_t)p.downtime_limit_ms));
    if (st.pause_ns && !status_running(s))
        json_object_set_new(r, "x-final-pause", json_integer((json_int_t)st.final_pause_ms));
    json_object_set_new(r, "x-final-phase-limit", json_integer((json_int_t)mig_final_limit_ms(&p)));
    json_object_set_new(r, "x-guest-owner",
                        json_string(owner == MIG_OWNER_DESTINATION ? "destination"
                                    : owner == MIG_OWNER_UNKNOWN   ? "unknown"
                                                                   : "source"));
    json_object_set_new(r, "x-timeline", timeline_json(&st));
    json_object_set_new(r, "x-dirty-log", dirty_log_json(g, &st));
    if (status_running(s) && st.dirty_limit_on) { /* dirty-limit in force: per vCPU */
        KvmVm *vm = g->host->m->vm;
        json_t *vs = json_array();
        for (unsigned i = 0; i < kvm_vm_nr_vcpus(vm); i++) {
            KvmVcpu *cpu = kvm_vm_vcpu(vm, i);
            if (cpu)
                json_array_append_new(vs, json_pack("{s:i,s:I,s:i}", "id", (int)i, "dirty-rate",
                                                    (json_int_t)kvm_vcpu_dirty_rate(cpu),
                                                    "throttle-percentage",
                                                    (int)kvm_vcpu_dirty_limit_pct(cpu)));
        }
        json_object_set_new(r, "x-dirty-limit",
                            json_pack("{s:i,s:o}", "vcpu-dirty-limit", (int)kvm_vm_dirty_limit(vm),
                                      "vcpus", vs));
    }
    if ((s == MIG_FAILED || s == MIG_CANCELLED) && error[0])
        json_object_set_new(r, "error-desc", json_string(error));
    return r;
}

static json_t *params_json(const MigParams *p)
{
    json_t *r = json_pack("{s:I,s:I,s:I,s:b,s:I,s:b,s:I,s:I,s:I,s:b}", "downtime-limit",
                          (json_int_t)p->downtime_limit_ms, "max-bandwidth",
                          (json_int_t)p->max_bandwidth, "x-max-rounds", (json_int_t)p->max_rounds,
                          "x-verify-ram", p->verify_ram, "x-final-phase-limit",
                          (json_int_t)p->final_limit_ms, "x-incremental-snapshot", p->incremental,
                          "cpu-throttle-initial", (json_int_t)p->throttle_initial,
                          "cpu-throttle-increment", (json_int_t)p->throttle_increment,
                          "max-cpu-throttle", (json_int_t)p->throttle_max, "cpu-throttle-tailslow",
                          p->throttle_tailslow);
    json_object_set_new(r, "vcpu-dirty-limit", json_integer(p->vcpu_dirty_limit));
    json_object_set_new(r, "x-vcpu-dirty-limit-period", json_integer(p->dirty_limit_period));
    return r;
}

static json_t *q_query_params(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Migration *g = o;
    (void)c;
    (void)a;
    (void)err;
    pthread_mutex_lock(&g->lock);
    MigParams p = g->params;
    pthread_mutex_unlock(&g->lock);
    return params_json(&p);
}

/* Reads an optional integer argument in [lo, hi]; false with err set. */
static bool int_arg(json_t *a, const char *name, uint64_t lo, uint64_t hi, uint64_t *out,
                    bool *given, QmpError *err)
{
    json_t *j = json_object_get(a, name);
    *given = false;
    if (!j)
        return true;
    if (!json_is_integer(j) || json_integer_value(j) < (json_int_t)lo ||
        (uint64_t)json_integer_value(j) > hi) {
        qmp_error_set(err, "Parameter '%s' expects an integer in %llu..%llu", name,
                      (unsigned long long)lo, (unsigned long long)hi);
        return false;
    }
    *out = (uint64_t)json_integer_value(j);
    *given = true;
    return true;
}

static json_t *q_set_params(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Migration *g = o;
    (void)c;
    uint64_t dl = 0, bw = 0, mr = 0, fl = 0, ti = 0, tinc = 0, tmax = 0, vdl = 0, vdp = 0;
    bool gdl, gbw, gmr, gfl, gti, gtinc, gtmax, gvdl, gvdp;
    if (!int_arg(a, "downtime-limit", 0, 2000000, &dl, &gdl, err) ||
        !int_arg(a, "max-bandwidth", 0, (uint64_t)INT64_MAX, &bw, &gbw, err) ||
        !int_arg(a, "x-max-rounds", 1, 100000, &mr, &gmr, err) ||
        !int_arg(a, "x-final-phase-limit", 0, 3600000, &fl, &gfl, err) ||
        !int_arg(a, "cpu-throttle-initial", 1, 99, &ti, &gti, err) ||
        !int_arg(a, "cpu-throttle-increment", 1, 99, &tinc, &gtinc, err) ||
        !int_arg(a, "max-cpu-throttle", 1, 99, &tmax, &gtmax, err) ||
        !int_arg(a, "vcpu-dirty-limit", 1, UINT32_MAX, &vdl, &gvdl, err) ||
        !int_arg(a, "x-vcpu-dirty-limit-period", 1, 1000, &vdp, &gvdp, err))
        return NULL;
    /* unknown keys never get here: the server checks them against param_args */
    json_t *vr = json_object_get(a, "x-verify-ram");
    json_t *inc = json_object_get(a, "x-incremental-snapshot");
    json_t *tail = json_object_get(a, "cpu-throttle-tailslow");
    pthread_mutex_lock(&g->lock);
    if (gti)
        g->params.throttle_initial = (unsigned)ti;
    if (gtinc)
        g->params.throttle_increment = (unsigned)tinc;
    if (gtmax)
        g->params.throttle_max = (unsigned)tmax;
    if (tail)
        g->params.throttle_tailslow = json_is_true(tail);
    if (gvdl)
        g->params.vcpu_dirty_limit = (unsigned)vdl;
    if (gvdp)
        g->params.dirty_limit_period = (unsigned)vdp;
    if (gdl)
        g->params.downtime_limit_ms = dl;
    if (gbw)
        g->params.max_bandwidth = bw;
    if (gmr)
        g->params.max_rounds = (unsigned)mr;
    if (gfl)
        g->params.final_limit_ms = fl;
    if (vr)
        g->params.verify_ram = json_is_true(vr);
    if (inc)
        g->params.incremental = json_is_true(inc);
    pthread_mutex_unlock(&g->lock);
    return json_object();
}

/* QEMU's migration capabilities (QEMU 7.2's MigrationCapability) and
 * whether strata has each: "events" is always on (MIGRATION and
 * MIGRATION_PASS events are always sent), "auto-converge" may be switched
 * either way (MigParams.auto_converge; its state here is unused), the
 * others are not implemented, so always off.  Setting a fixed one to the
 * state it has is accepted, as QEMU accepts it; asking for the other is
 * refused naming the capability. */
static const struct {
    const char *name;
    bool state;
} capabilities[] = {
    { "xbzrle", false },
    { "rdma-pin-all", false },
    { "auto-converge", false },
    { "zero-blocks", false },
    { "compress", false },
    { "events", true },
    { "postcopy-ram", false },
    { "x-colo", false },
    { "release-ram", false },
    { "block", false },
    { "return-path", false },
    { "pause-before-switchover", false },
    { "multifd", false },
    { "dirty-bitmaps", false },
    { "postcopy-blocktime", false },
    { "late-block-activate", false },
    { "x-ignore-shared", false },
    { "validate-uuid", false },
    { "background-snapshot", false },
    { "zero-copy-send", false },
    { "postcopy-preempt", false },
    { "dirty-limit", false },
};
#define NR_CAPABILITIES (sizeof(capabilities) / sizeof(capabilities[0]))

/* The flag behind a capability that can be switched, or NULL. */
static bool *cap_flag(MigParams *p, const char *name)
{
    return !strcmp(name, "auto-converge") ? &p->auto_converge
           : !strcmp(name, "dirty-limit") ? &p->dirty_limit
                                          : NULL;
}

static json_t *q_query_caps(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Migration *g = o;
    pthread_mutex_lock(&g->lock);
    MigParams p = g->params;
    pthread_mutex_unlock(&g->lock);
    json_t *r = json_array();
    for (size_t i = 0; i < NR_CAPABILITIES; i++) {
        bool *flag = cap_flag(&p, capabilities[i].name);
        json_array_append_new(r, json_pack("{s:s,s:b}", "capability", capabilities[i].name, "state",
                                           flag ? *flag : capabilities[i].state));
    }
    return r;
}

/* {"capabilities": [{"capability": NAME, "state": BOOL}, ...]}: every entry
 * is checked before anything is taken. */
static json_t *q_set_caps(void *o, QmpClient *c, json_t *a, QmpError *err)
{
    Migration *g = o;
    json_t *list = json_object_get(a, "capabilities");
    size_t i;
    json_t *e;
    pthread_mutex_lock(&g->lock);
    MigParams np = g->params; /* the capabilities as they will be */
    pthread_mutex_unlock(&g->lock);
    json_array_foreach(list, i, e)
    {
        json_t *jn = json_object_get(e, "capability"), *js = json_object_get(e, "state");
        if (!json_is_object(e) || !json_is_string(jn) || !json_is_boolean(js) ||
            json_object_size(e) != 2) {
            qmp_error_set(err,
                          "Parameter 'capabilities[%zu]' expects an object "
                          "{\"capability\": NAME, \"state\": BOOL}",
                          i);
            return NULL;
        }
        const char *name = json_string_value(jn);
        size_t k = 0;
        while (k < NR_CAPABILITIES && strcmp(capabilities[k].name, name))
            k++;
        if (k == NR_CAPABILITIES) {
            qmp_error_set(err,
                          "Parameter 'capabilities[%zu].capability' does not accept value '%.64s'",
                          i, name);
            return NULL;
        }
        if (!cap_flag(&np, name) && json_is_true(js) != capabilities[k].state) {
            qmp_error_set(err, "Migration capability '%s' cannot be %s: strata %s", name,
                          json_is_true(js) ? "enabled" : "disabled",
                          capabilities[k].state ? "always has it" : "does not implement it");
            return NULL;
        }
    }
    /* dirty-limit (QEMU 8.1's rules): the dirty ring, and not with
     * auto-converge (either as it would be after this command) */
    json_array_foreach(list, i, e)
    {
        bool *flag = cap_flag(&np, json_string_value(json_object_get(e, "capability")));
        if (flag)
            *flag = json_is_true(json_object_get(e, "state"));
    }
    if (np.dirty_limit && np.auto_converge) {
        qmp_error_set(err, "dirty-limit conflicts with auto-converge either of then available "
                           "currently");
        return NULL;
    }
    if (np.dirty_limit && !kvm_vm_dirty_ring_size(g->host->m->vm)) {
        qmp_error_set(err, "dirty-limit requires KVM with accelerator property "
                           "'dirty-ring-size' set (strata: --dirty-ring auto or ENTRIES, on a "
                           "host with the dirty ring)");
        return NULL;
    }
    /* a destination takes them before and while its incoming side runs
     * (libvirt sets the same ones on both ends) */
    if (mig_active(g) && !g->incoming) {
        qmp_error_set(err, "There's a migration process in progress");
        return NULL;
    }
    pthread_mutex_lock(&g->lock);
    json_array_foreach(list, i, e)
    {
        bool *flag = cap_flag(&g->params, json_string_value(json_object_get(e, "capability")));
        if (flag)
            *flag = json_is_true(json_object_get(e, "state"));
    }
    pthread_mutex_unlock(&g->lock);
    return json_object();
}

static const QmpArg caps_args[] = { { "capabilities", QMP_ARG_ARRAY, false }, { NULL, 0, false } };
static const QmpArg migrate_args[] = {
    { "uri", QMP_ARG_STRING, false }, { "blk", QMP_ARG_BOOL, true },
    { "inc", QMP_ARG_BOOL, true },    { "detach", QMP_ARG_BOOL, true },
    { "resume", QMP_ARG_BOOL, true }, { NULL, 0, false },
};
static const QmpArg incoming_args[] = { { "uri", QMP_ARG_STRING, false }, { NULL, 0, false } };
static const QmpArg param_args[] = {
    { "downtime-limit", QMP_ARG_INT, true },
    { "max-bandwidth", QMP_ARG_INT, true },
    { "x-max-rounds", QMP_ARG_INT, true },
    { "x-verify-ram", QMP_ARG_BOOL, true },
    { "x-final-phase-limit", QMP_ARG_INT, true },
    { "x-incremental-snapshot", QMP_ARG_BOOL, true },
    { "cpu-throttle-initial", QMP_ARG_INT, true },
    { "cpu-throttle-increment", QMP_ARG_INT, true },
    { "max-cpu-throttle", QMP_ARG_INT, true },
    { "cpu-throttle-tailslow", QMP_ARG_BOOL, true },
    { "vcpu-dirty-limit", QMP_ARG_INT, true },
    { "x-vcpu-dirty-limit-period", QMP_ARG_INT, true },
    { NULL, 0, false },
};

const QmpCommand mig_qmp_commands[] = {
    { "migrate", q_migrate, migrate_args, NULL },
    { "migrate_cancel", q_cancel, NULL, NULL },
    { "query-migrate", q_query, NULL, NULL },
    { "migrate-set-parameters", q_set_params, param_args, NULL },
    { "migrate_set_parameters", q_set_params, param_args, NULL },
    { "query-migrate-parameters", q_query_params, NULL, NULL },
    { "migrate-set-capabilities", q_set_caps, caps_args, NULL },
    { "query-migrate-capabilities", q_query_caps, NULL, NULL },
    { "migrate-incoming", mig_q_incoming, incoming_args, NULL },
};
const size_t mig_qmp_ncommands = sizeof(mig_qmp_commands) / sizeof(mig_qmp_commands[0]);
