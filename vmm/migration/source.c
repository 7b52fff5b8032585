/* SPDX-License-Identifier: MIT */
/*
 * The source's migration thread: pre-copy rounds driven by the memory
 * API's dirty bitmaps, then the final stop-and-copy and the handover
 * (see migration.h for the protocol and docs/migration.md for the bytes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memory/state-stream.h"
#include "vmm/migration/internal.h"
#include "vmm/migration/snapfile.h"
#include "vmm/migration/policy.h"
#include "vmm/log.h"
#include "vmm/text.h"
#include "vmm/migration/uri.h"

#define BITS 64u

typedef struct Src {
    Migration *g;
    Machine *m;
    bool strict; /* the thread must not open files (enter_thread said so) */
    MigChannel ch;
    MigBlock blocks[4];
    unsigned nblocks;
    uint64_t *dirty[4];     /* pages still to send, per block */
    uint64_t *untouched[4]; /* round 0: pages never touched (zero, not read) */
    uint8_t *rec;           /* one RAM record being built */
    size_t rec_len;
    unsigned rec_pages;
    uint32_t rec_block;
    uint64_t zero_pages, normal_pages;
    bool verify_ram;                  /* x-verify-ram: END carries a RAM CRC-32 */
    uint64_t final_limit_ms;          /* the final pause's hard limit */
    uint64_t pause_ns;                /* when the final pause began */
    bool running_at_pause;            /* the run state END carries */
    bool unconfirmed;                 /* GO went out and no answer came back */
    uint64_t end_sent_ns, go_sent_ns; /* the handover's timeline */
    /* A snapshot (file:PATH, docs/snapshot.md): pages go to their homes
     * in the file, contiguous ones in one write (the run). */
    bool file;
    bool fresh;       /* round 0 of a new file: zero pages are holes already */
    bool incremental; /* the file holds the last snapshot: round 0 writes only
                       * what the dirty log says changed since */
    SnapHeader snap;
    uint64_t state_start; /* ch.bytes when the state records began */
    bool run_zero;
    unsigned run_block;
    uint64_t run_first, run_n;
    /* dirty-pages-rate, as QEMU's: pages the log newly marked (not those
     * still waiting from the round before) over a window of at least
     * MIG_RATE_WINDOW_NS */
    uint64_t rate_pages, rate_start_ns;
    char err[768];
} Src;

#define MIG_RATE_WINDOW_NS 100000000ull /* 100 ms: the guest's bursts average out */

static bool cancelled(const Src *s)
{
    return __atomic_load_n(&s->g->cancel, __ATOMIC_ACQUIRE) != 0;
}

static int flush_rec(Src *s)
{
    if (!s->rec_pages)
        return 0;
    int r = mig_send_record(&s->ch, MIG_REC_RAM, s->rec_block, s->rec, (uint32_t)s->rec_len);
    s->rec_len = 0;
    s->rec_pages = 0;
    if (r < 0)
        snprintf(s->err, sizeof(s->err), "%s", s->ch.err);
    return r;
}

/* Writes the run of pages (or punches the run of zero pages) into the
 * snapshot file. */
static int flush_run(Src *s)
{
    if (!s->run_n)
        return 0;
    const SnapBlock *k = &s->snap.blocks[s->run_block];
    off_t off = (off_t)(k->offset + s->run_first * MIG_PAGE_SIZE);
    size_t len = (size_t)(s->run_n * MIG_PAGE_SIZE);
    const uint8_t *src = s->blocks[s->run_block].host + s->run_first * MIG_PAGE_SIZE;
    bool zero = s->run_zero;
    s->run_n = 0;
    if (zero && s->fresh)
        return 0;
    if (zero &&
        fallocate(s->ch.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)len) == 0)
        return 0;
    static const uint8_t zeros[MIG_PAGE_SIZE];
    for (size_t done = 0; done < len;) {
        /* the guest may write the pages meanwhile: they are dirty again
         * then, and written again in the next round */
        const void *from = zero ? zeros : src + done;
        size_t n = zero ? (len - done < sizeof(zeros) ? len - done : sizeof(zeros)) : len - done;
        ssize_t w = pwrite(s->ch.fd, from, n, off + (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(s->err, sizeof(s->err), "writing the snapshot's RAM: %s",
                     w < 0 ? strerror(errno) : "no progress");
            return -1;
        }
        done += (size_t)w;
        if (!zero)
            s->ch.bytes += (uint64_t)w;
    }
    return 0;
}

/* Page p of block b into the snapshot file (docs/snapshot.md). */
static int file_page(Src *s, unsigned b, uint64_t p)
{
    const uint8_t *src = s->blocks[b].host + p * MIG_PAGE_SIZE;
    bool untouched = s->untouched[b] && (s->untouched[b][p / BITS] >> (p % BITS) & 1);
    bool zero = untouched || mig_page_is_zero(src);
    if (zero)
        s->zero_pages++;
    else
        s->normal_pages++;
    if (s->run_n && (s->run_zero != zero || s->run_block != b || s->run_first + s->run_n != p ||
                     s->run_n == MIG_PAGES_PER_RECORD))
        if (flush_run(s) < 0)
            return -1;
    if (!s->run_n) {
        s->run_zero = zero;
        s->run_block = b;
        s->run_first = p;
    }
    s->run_n++;
    return 0;
}

/* Appends page `p` of block b (a copy taken now) to the RAM record. */
static int send_page(Src *s, unsigned b, uint64_t p)
{
    if (s->file)
        return file_page(s, b, p);
    if (s->rec_pages && (s->rec_block != b || s->rec_pages == MIG_PAGES_PER_RECORD))
        if (flush_rec(s) < 0)
            return -1;
    s->rec_block = b;
    const uint8_t *src = s->blocks[b].host + p * MIG_PAGE_SIZE;
    uint8_t *e = s->rec + s->rec_len;
    bool untouched = s->untouched[b] && (s->untouched[b][p / BITS] >> (p % BITS) & 1);
    if (untouched || mig_page_is_zero(src)) {
        mig_put_le64(e, p * MIG_PAGE_SIZE | MIG_PAGE_ZERO);
        s->rec_len += 8;
        s->zero_pages++;
    } else {
        mig_put_le64(e, p * MIG_PAGE_SIZE | MIG_PAGE_NORMAL);
        /* A copy, so the record's CRC matches what is sent even while the
         * guest keeps writing (the page is dirty again then: sent again). */
        memcpy(e + 8, src, MIG_PAGE_SIZE);
        s->rec_len += 8 + MIG_PAGE_SIZE;
        s->normal_pages++;
    }
    s->rec_pages++;
    return 0;
}

/* Pulls KVM's dirty log into the memory API and moves the MIGRATION
 * client's dirty pages into s->dirty (clearing them there); the number
 * of pages now waiting to be sent. */
static uint64_t harvest(Src *s)
{
    uint64_t waiting = 0;
    for (unsigned b = 0; b < s->nblocks; b++) {
        MigBlock *k = &s->blocks[b];
        memory_region_sync_dirty_bitmap(k->mr);
        /* a word of 64 pages at a time (a page at a time cost 3.7 ms a
         * harvest at 4 GiB, in every round and in the final pause) */
        s->rate_pages += memory_region_take_dirty(k->mr, 0, k->pages, DIRTY_MEMORY_MIGRATION,
                                                  s->dirty[b]);
        for (uint64_t w = 0; w < (k->pages + BITS - 1) / BITS; w++)
            waiting += (uint64_t)__builtin_popcountll(s->dirty[b][w]);
    }
    return waiting;
}

static void publish(Src *s, uint64_t remaining_pages)
{
    Migration *g = s->g;
    pthread_mutex_lock(&g->lock);
    g->stats.transferred = s->ch.bytes;
    g->stats.remaining = remaining_pages * MIG_PAGE_SIZE;
    g->stats.duplicate = s->zero_pages;
    g->stats.normal = s->normal_pages;
    g->stats.normal_bytes = s->normal_pages * MIG_PAGE_SIZE;
    if (!g->stats.rounds && g->stats.setup_done_ns) {
        /* until the first round ends: the average rate so far */
        uint64_t dt = mig_now_ns() - g->stats.setup_done_ns;
        g->stats.mbps = dt ? (double)s->ch.bytes * 8e3 / (double)dt : 0;
    }
    pthread_mutex_unlock(&g->lock);
}

/* Sends the pages marked in s->dirty, clearing the marks, until `keep`
 * are left (0: all of them); those stay marked for the next round. */
static int send_dirty(Src *s, uint64_t waiting, uint64_t keep)
{
    unsigned since_publish = 0;
    for (unsigned b = 0; b < s->nblocks; b++) {
        MigBlock *k = &s->blocks[b];
        for (uint64_t w = 0; w < (k->pages + BITS - 1) / BITS; w++) {
            uint64_t bits = s->dirty[b][w];
            s->dirty[b][w] = 0;
            while (bits) {
                if (keep && waiting <= keep) { /* the rest waits for the next sync */
                    s->dirty[b][w] |= bits;
                    goto done;
                }
                uint64_t p = w * BITS + (uint64_t)__builtin_ctzll(bits);
                bits &= bits - 1;
                if (send_page(s, b, p) < 0)
                    return -1;
                if (waiting)
                    waiting--;
                if (++since_publish == 4096) {
                    since_publish = 0;
                    publish(s, waiting);
                    if (cancelled(s)) {
                        snprintf(s->err, sizeof(s->err), "cancelled");
                        return -1;
                    }
                }
            }
        }
    }
done:
    if ((s->file ? flush_run(s) : flush_rec(s)) < 0)
        return -1;
    publish(s, waiting);
    return 0;
}

/*
 * Round 0 reads every page to tell zero ones apart; a page the guest never
 * touched is zero, and reading it would fault in a page per 4 KiB (most of
 * an idle guest's round 0).  /proc/self/pagemap says which pages are
 * neither present nor swapped: those are sent as zero without a read.
 * Dirty logging is already on, so a page the guest writes after this
 * look is sent again in round 1.  No pagemap, or a short read: every page
 * is read as before.
 */
static void find_untouched(Src *s)
{
    for (unsigned b = 0; b < s->nblocks; b++)
        s->untouched[b] = mig_untouched_pages(s->g->pagemap_fd, s->blocks[b].host,
                                              s->blocks[b].pages);
}

static void forget_untouched(Src *s)
{
    for (unsigned b = 0; b < s->nblocks; b++) {
        free(s->untouched[b]);
        s->untouched[b] = NULL;
    }
}

static void mark_all(Src *s)
{
    for (unsigned b = 0; b < s->nblocks; b++) {
        MigBlock *k = &s->blocks[b];
        for (uint64_t p = 0; p < k->pages; p++)
            s->dirty[b][p / BITS] |= 1ull << (p % BITS);
    }
}

static int send_devices(Src *s)
{
    MigDevice d[MIG_MAX_DEVICES];
    Machine *m = s->m;
    unsigned n = mig_devices(m, d, MIG_MAX_DEVICES);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *blob = NULL;
        size_t len = 0;
        if (d[i].save(m, d[i].idx, &blob, &len) < 0) {
            snprintf(s->err, sizeof(s->err), "saving device %s: out of memory", d[i].name);
            return -1;
        }
        size_t nl = strlen(d[i].name);
        uint8_t *rec = malloc(2 + nl + len);
        if (!rec) {
            free(blob);
            snprintf(s->err, sizeof(s->err), "saving device %s: out of memory", d[i].name);
            return -1;
        }
        rec[0] = (uint8_t)nl;
        rec[1] = (uint8_t)(nl >> 8);
        memcpy(rec + 2, d[i].name, nl);
        memcpy(rec + 2 + nl, blob, len);
        free(blob);
        int r = mig_send_record(&s->ch, MIG_REC_DEVICE, i, rec, (uint32_t)(2 + nl + len));
        free(rec);
        if (r < 0) {
            snprintf(s->err, sizeof(s->err), "%s", s->ch.err);
            return -1;
        }
    }
    return 0;
}

/* After an ERR! answer: its length and reason, into s->err. */
static void take_refusal(Src *s)
{
    uint32_t len;
    char text[1024], safe[480];
    /* the peer's text: escaped, NULs and all */
    if (mig_recv_u32(&s->ch, &len) == 0 && len < sizeof(text) &&
        mig_recv_bytes(&s->ch, text, len) == 0)
        text_escape(safe, sizeof(safe), text, len);
    else
        safe[0] = 0;
    snprintf(s->err, sizeof(s->err), "the destination refused the stream: %s",
             safe[0] ? safe : "(no reason given)");
}

/* After a send failed: the destination may have said why before closing
 * (waits a second for it). */
static void read_refusal(Src *s)
{
    uint32_t tag;
    unsigned t = s->ch.timeout_ms;
    s->ch.timeout_ms = 1000;
    if (mig_recv_u32(&s->ch, &tag) == 0 && tag == MIG_REPLY_ERROR)
        take_refusal(s);
    s->ch.timeout_ms = t;
}

/* A failure of the final phase: past its hard limit, says so (whatever
 * the step was doing then), else what went wrong. */
static int final_fail(Src *s, const char *step, const char *why)
{
    char w[600];
    snprintf(w, sizeof(w), "%s", why); /* why may be s->err itself */
    uint64_t now = mig_now_ns();
    if (s->ch.deadline_ns && now >= s->ch.deadline_ns)
        snprintf(s->err, sizeof(s->err),
                 "the final phase passed its hard limit of %llu ms "
                 "(%llu ms after the pause) while %s",
                 (unsigned long long)s->final_limit_ms,
                 (unsigned long long)((now - s->pause_ns) / 1000000), step);
    else
        snprintf(s->err, sizeof(s->err), "%.100s: %s", step, w);
    return -1;
}

/*
 * The handover (docs/migration.md): READY (or ERR!) from the destination
 * within the final phase's limit, then GO, then the destination's answer
 * to GO: ACK! (it runs the guest now) or ERR! (it will not: the guest
 * resumes here).  With no answer to GO, nobody can know whether GO
 * arrived: s->unconfirmed, and the guest is held here until `cont`.
 */
static int handover(Src *s)
{
    uint32_t tag;
    if (mig_recv_u32(&s->ch, &tag) < 0)
        return final_fail(s, "waiting for the destination's READY", s->ch.err);
    if (tag == MIG_REPLY_ERROR) {
        take_refusal(s);
        return -1;
    }
    if (tag != MIG_REPLY_READY) {
        snprintf(s->err, sizeof(s->err), "the destination answered 0x%08x, not READY", tag);
        return -1;
    }
    if (mig_now_ns() >= s->ch.deadline_ns)
        return final_fail(s, "waiting for the destination's READY", "READY came too late");
    /* GO cannot be taken back: no deadline or cancel from here on. */
    s->ch.deadline_ns = 0;
    s->ch.cancel = NULL;
    s->go_sent_ns = mig_now_ns();
    if (mig_send_u32(&s->ch, MIG_REPLY_GO) < 0) {
        /* nothing of GO left this host: the destination cannot have it */
        snprintf(s->err, sizeof(s->err), "sending GO: %s", s->ch.err);
        return -1;
    }
    s->ch.timeout_ms = MIG_ACK_TIMEOUT_MS;
    if (mig_recv_u32(&s->ch, &tag) < 0) {
        s->unconfirmed = true;
        snprintf(s->err, sizeof(s->err), "no answer to GO (%s)", s->ch.err);
        return -1;
    }
    if (tag == MIG_REPLY_ERROR) {
        /* the destination did not take GO (a signal, its GO timeout): it
         * exits without running the guest */
        take_refusal(s);
        return -1;
    }
    if (tag != MIG_REPLY_ACK) {
        s->unconfirmed = true;
        snprintf(s->err, sizeof(s->err), "the destination answered GO with 0x%08x, not ACK", tag);
        return -1;
    }
    return 0;
}

static void params(Src *s, MigParams *p)
{
    pthread_mutex_lock(&s->g->lock);
    *p = s->g->params;
    pthread_mutex_unlock(&s->g->lock);
    s->ch.max_bandwidth = p->max_bandwidth;
    s->verify_ram = p->verify_ram;
    s->final_limit_ms = mig_final_limit_ms(p);
}

/* Slows the vCPUs down to pct percent less (auto-converge; 0: full speed
 * again) and says so in query-migrate. */
static void throttle(Src *s, unsigned pct)
{
    Migration *g = s->g;
    MigParams p;
    params(s, &p);
    if (p.dirty_limit) { /* each vCPU dirtying faster than the limit, not all */
        pthread_mutex_lock(&g->lock);
        bool was = g->stats.dirty_limit_on;
        g->stats.dirty_limit_on = pct != 0;
        pthread_mutex_unlock(&g->lock);
        if (was == (pct != 0))
            return;
        kvm_vm_set_dirty_limit(s->m->vm, pct ? p.vcpu_dirty_limit : 0, p.dirty_limit_period);
        if (pct)
            log_msg(LOG_INFO, "migration: dirty-limit: vCPUs dirtying over %u MB/s are slowed",
                    p.vcpu_dirty_limit);
        else
            log_msg(LOG_INFO, "migration: dirty-limit: the vCPUs run at full speed again");
        return;
    }
    pthread_mutex_lock(&g->lock);
    unsigned old = g->stats.throttle_pct;
    g->stats.throttle_pct = pct;
    if (pct > g->stats.throttle_peak)
        g->stats.throttle_peak = pct;
    pthread_mutex_unlock(&g->lock);
    if (old == pct)
        return;
    kvm_vm_set_throttle(s->m->vm, pct);
    if (pct)
        log_msg(LOG_INFO, "migration: auto-converge: the vCPUs sleep %u%% of the time", pct);
    else
        log_msg(LOG_INFO, "migration: auto-converge: the vCPUs run at full speed again");
}

/* The policy's limits and auto-converge settings from the parameters. */
static void policy_params(MigPolicy *pol, const MigParams *p)
{
    pol->downtime_limit_ms = p->downtime_limit_ms;
    pol->max_rounds = p->max_rounds;
    pol->auto_converge = p->auto_converge || p->dirty_limit; /* the same trigger */
    pol->throttle_initial = p->throttle_initial;
    pol->throttle_increment = p->throttle_increment;
    pol->throttle_max = p->throttle_max;
}

/* The pre-copy rounds: 0 when the final round should start (the rule is
 * policy.h's). */
static int precopy(Src *s)
{
    Migration *g = s->g;
    MigParams p;
    params(s, &p);
    MigPolicy pol;
    mig_policy_init(&pol, p.downtime_limit_ms, p.max_rounds);
    /* round 0: everything (the dirty log starts now), or for an
     * incremental snapshot what changed since the last (logged since) */
    uint64_t waiting = harvest(s);
    s->rate_pages = 0; /* the rate counts from the start of the log */
    s->rate_start_ns = mig_now_ns();
    if (!s->incremental) {
        find_untouched(s);
        mark_all(s);
        waiting = 0;
        for (unsigned b = 0; b < s->nblocks; b++)
            waiting += s->blocks[b].pages;
    }
    uint64_t keep = 0;
    for (uint64_t round = 0;; round++) {
        uint64_t t0 = mig_now_ns(), b0 = s->ch.bytes, sent = waiting;
        if (send_dirty(s, waiting, keep) < 0)
            return -1;
        if (!s->file && mig_send_record(&s->ch, MIG_REC_ROUND, (uint32_t)round, NULL, 0) < 0) {
            snprintf(s->err, sizeof(s->err), "%s", s->ch.err);
            return -1;
        }
        s->fresh = false;
        forget_untouched(s);
        uint64_t dt = mig_now_ns() - t0, db = s->ch.bytes - b0;
        params(s, &p);
        policy_params(&pol, &p);
        waiting = harvest(s);
        MigDecision next = mig_policy_after_round(&pol, sent, db, dt, waiting, MIG_PAGE_SIZE);
        if (next == MIG_NEXT_ROUND)
            throttle(s, pol.throttle_pct);
        /* Over the limit, the next round ends (and the log is read again)
         * once what is left of it would fit the limit: the decision then
         * sees the pages left plus only what the guest dirtied meanwhile,
         * not a whole round's worth (docs/migration.md). */
        keep = 0;
        /* Not while a throttle works (auto-converge, dirty-limit): whole
         * rounds let it bring the set down to almost nothing (2-3 ms
         * pauses against 35-48 ms with early reads, measured) */
        if (next == MIG_NEXT_ROUND && pol.expected_ms > pol.downtime_limit_ms && !pol.auto_converge)
            keep = (uint64_t)(mig_policy_rate(db, dt) * (double)pol.downtime_limit_ms / 1000.0 /
                              MIG_PAGE_SIZE);
        pthread_mutex_lock(&g->lock);
        if (round < MIG_TIMELINE_ROUNDS)
            g->stats.round_us[round] = (mig_now_ns() - t0) / 1000;
        g->stats.rounds = round + 1;
        g->stats.dirty_sync_count++;
        g->stats.mbps = mig_policy_rate(db, dt) * 8 / 1e6;
        g->stats.expected_downtime_ms = pol.expected_ms;
        g->stats.remaining = waiting * MIG_PAGE_SIZE;
        uint64_t now = mig_now_ns();
        if (now - s->rate_start_ns >= MIG_RATE_WINDOW_NS) {
            g->stats.dirty_pages_rate = s->rate_pages * 1000000000ull / (now - s->rate_start_ns);
            s->rate_pages = 0;
            s->rate_start_ns = now;
        }
        g->stats.forced = next == MIG_FINAL_FORCED;
        if (g->npasses < MIG_MAX_EVENTS)
            g->passes[g->npasses++] = round + 1;
        pthread_mutex_unlock(&g->lock);
        mig_notify(g);
        if (cancelled(s)) {
            snprintf(s->err, sizeof(s->err), "cancelled");
            return -1;
        }
        if (next != MIG_NEXT_ROUND)
            return 0;
    }
}

/* A snapshot's state records (after its RAM): the stream's header and
 * CONFIG, as a migration starts with. */
static int file_state_start(Src *s)
{
    if (lseek(s->ch.fd, (off_t)s->snap.state_off, SEEK_SET) < 0) {
        snprintf(s->err, sizeof(s->err), "lseek: %s", strerror(errno));
        return -1;
    }
    s->state_start = s->ch.bytes;
    char *cfg = mig_config_json_disks(s->m);
    if (!cfg) {
        snprintf(s->err, sizeof(s->err), "out of memory");
        return -1;
    }
    int r = mig_send_header(&s->ch);
    if (r == 0)
        r = mig_send_record(&s->ch, MIG_REC_CONFIG, 0, cfg, (uint32_t)strlen(cfg));
    free(cfg);
    if (r < 0)
        snprintf(s->err, sizeof(s->err), "%s", s->ch.err);
    return r;
}

/* The header, written last: a file without one was never finished. */
static int file_finish(Src *s)
{
    uint8_t hdr[SNAP_HEADER_LEN];
    s->snap.state_len = s->ch.bytes - s->state_start;
    snap_header_encode(&s->snap, hdr);
    if (ftruncate(s->ch.fd, (off_t)(s->snap.state_off + s->snap.state_len)) < 0 ||
        pwrite(s->ch.fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr)) {
        snprintf(s->err, sizeof(s->err), "writing the snapshot's header: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Opens the snapshot file (created 0600, or overwritten: it has no
 * header until the save completes) and lays it out. */
static int file_open(Src *s, const char *path)
{
    s->snap.nblocks = s->nblocks;
    for (unsigned b = 0; b < s->nblocks; b++) {
        snprintf(s->snap.blocks[b].name, sizeof(s->snap.blocks[b].name), "%s", s->blocks[b].name);
        s->snap.blocks[b].size = s->blocks[b].size;
    }
    if (snap_layout(&s->snap) < 0) {
        snprintf(s->err, sizeof(s->err), "this machine's RAM does not fit a snapshot file");
        return -1;
    }
    /* the program opens it: the one open its sandbox lets through */
    const MigHost *h = s->g->host;
    int fd = h->open_snapshot ? h->open_snapshot(h->opaque, path) : -1;
    if (!h->open_snapshot)
        errno = ENOTSUP;
    if (fd < 0) {
        snprintf(s->err, sizeof(s->err), "%s: %s", path, strerror(errno));
        return -1;
    }
    mig_channel_init_file(&s->ch, fd);
    s->ch.cancel = &s->g->cancel;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(s->err, sizeof(s->err), "%s: not a regular file", path);
        return -1;
    }
    Migration *g = s->g;
    pthread_mutex_lock(&g->lock);
    s->incremental = g->incremental_run && g->snap_dev == (uint64_t)st.st_dev &&
                     g->snap_ino == (uint64_t)st.st_ino &&
                     (uint64_t)st.st_size >= s->snap.state_off;
    g->incremental_run = s->incremental; /* another file there now: a full save */
    g->snap_dev = (uint64_t)st.st_dev;
    g->snap_ino = (uint64_t)st.st_ino;
    pthread_mutex_unlock(&g->lock);
    if (s->incremental) {
        /* its header goes first: until the new one is written, the file is
         * an unfinished save, never a mix of two passed off as one */
        static const uint8_t zeros[SNAP_HEADER_LEN];
        if (pwrite(fd, zeros, sizeof(zeros), 0) != (ssize_t)sizeof(zeros)) {
            snprintf(s->err, sizeof(s->err), "%s: %s", path, strerror(errno));
            return -1;
        }
        return 0;
    }
    /* the old contents go: every page is a hole until written */
    if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)s->snap.state_off) < 0) {
        snprintf(s->err, sizeof(s->err), "%s: %s", path, strerror(errno));
        return -1;
    }
    s->fresh = true;
    return 0;
}

/* The stop-and-copy: vCPUs and devices held, last pages, state, END and
 * the handover, all within the final phase's hard limit. */
static int final_stage(Src *s, bool *paused)
{
    Migration *g = s->g;
    Machine *m = s->m;
    MigParams p;
    params(s, &p);
    kvm_vm_pause(m->vm);
    machine_virtio_pause(m);
    *paused = true;
    uint64_t t0 = mig_now_ns();
    s->pause_ns = t0;
    s->ch.deadline_ns = t0 + s->final_limit_ms * 1000000ull;
    pthread_mutex_lock(&g->lock);
    g->stats.pause_ns = t0;
    /* From here stop and cont are refused (mig_run_state_lock): END
     * carries the run state the last acknowledged one asked for. */
    g->final_phase = true;
    s->running_at_pause = g->host->running(g->host->opaque);
    pthread_mutex_unlock(&g->lock);
    mig_set_status(g, MIG_DEVICE);
    kvm_vm_flush_coalesced(m->vm); /* pending device writes land first */
    s->ch.max_bandwidth = 0;       /* the guest is stopped: no cap now */
    uint64_t waiting = harvest(s);
    if (send_dirty(s, waiting, 0) < 0)
        return final_fail(s, "sending the last dirty pages", s->err);
    uint64_t t1 = mig_now_ns();
    char e[400];
    if (s->file && file_state_start(s) < 0)
        return final_fail(s, "starting the snapshot's state records", s->err);
    if (mig_send_cpu_state(m, &s->ch, s->file, e, sizeof(e)) < 0)
        return final_fail(s, "sending the CPU state", e);
    uint64_t t2 = mig_now_ns();
    if (send_devices(s) < 0)
        return final_fail(s, "sending the device state", s->err);
    uint8_t end[40];
    /* a snapshot's state records carry no RAM: its pages are in place */
    mig_put_le64(end, s->file ? 0 : s->normal_pages);
    mig_put_le64(end + 8, s->file ? 0 : s->zero_pages);
    mig_put_le64(end + 16, m->ncpus);
    mig_put_le64(end + 24, s->running_at_pause ? 1 : 0);
    uint32_t end_len = 32;
    if (s->verify_ram) {
        /* the guest and the devices are held: RAM is what the destination
         * must end up with */
        uint32_t crc = 0;
        for (unsigned b = 0; b < s->nblocks; b++)
            crc = state_crc32_update(crc, s->blocks[b].host, s->blocks[b].size);
        mig_put_le64(end + 32, 1ull << 32 | crc);
        end_len = 40;
    }
    if (mig_send_record(&s->ch, MIG_REC_END, 0, end, end_len) < 0)
        return final_fail(s, "sending END", s->ch.err);
    s->end_sent_ns = mig_now_ns();
    pthread_mutex_lock(&g->lock);
    g->stats.final_pages_us = (t1 - t0) / 1000;
    g->stats.cpu_us = (t2 - t1) / 1000;
    g->stats.devices_us = (s->end_sent_ns - t2) / 1000;
    pthread_mutex_unlock(&g->lock);
    if (s->file) {
        if (file_finish(s) < 0)
            return final_fail(s, "finishing the snapshot", s->err);
        pthread_mutex_lock(&g->lock);
        g->stats.downtime_ms = (mig_now_ns() - t0) / 1000000;
        g->stats.final_pause_ms = g->stats.downtime_ms;
        pthread_mutex_unlock(&g->lock);
        return 0;
    }
    if (handover(s) < 0)
        return -1;
    pthread_mutex_lock(&g->lock);
    g->stats.ready_us = (s->go_sent_ns - s->end_sent_ns) / 1000;
    g->stats.ack_us = (mig_now_ns() - s->go_sent_ns) / 1000;
    g->stats.downtime_ms = (mig_now_ns() - t0) / 1000000;
    g->stats.final_pause_ms = g->stats.downtime_ms;
    g->owner = MIG_OWNER_DESTINATION;
    pthread_mutex_unlock(&g->lock);
    return 0;
}

/* The source's buffers, the connection, the header and CONFIG: 0, or -1
 * with s->err set (*fd: the connection, once there is one). */
static int setup(Src *s, int *fd)
{
    Migration *g = s->g;
    s->nblocks = mig_blocks(s->m, s->blocks, 4);
    s->rec = malloc(MIG_RAM_RECORD_MAX);
    bool ok = s->rec != NULL;
    uint64_t total = 0;
    for (unsigned b = 0; b < s->nblocks && ok; b++) {
        s->dirty[b] = calloc((s->blocks[b].pages + BITS - 1) / BITS + 1, sizeof(uint64_t));
        ok = s->dirty[b] != NULL;
        total += s->blocks[b].size;
    }
    pthread_mutex_lock(&g->lock);
    g->stats.total = total;
    pthread_mutex_unlock(&g->lock);
    if (!ok) {
        snprintf(s->err, sizeof(s->err), "out of memory");
        return -1;
    }
    /* Under a kill-mode seccomp filter the resolver would die (it opens
     * files): only numeric addresses there. */
    if (s->file) {
        int r = file_open(s, g->uri + 5);
        *fd = s->ch.fd;
        return r;
    }
    *fd = mig_connect(g->uri, s->strict, s->err, sizeof(s->err));
    if (*fd < 0)
        return -1;
    mig_channel_init(&s->ch, *fd);
    s->ch.cancel = &g->cancel;
    char *cfg = mig_config_json(s->m);
    if (!cfg) {
        snprintf(s->err, sizeof(s->err), "out of memory");
        return -1;
    }
    int r = mig_send_header(&s->ch);
    if (r == 0)
        r = mig_send_record(&s->ch, MIG_REC_CONFIG, 0, cfg, (uint32_t)strlen(cfg));
    free(cfg);
    if (r < 0) {
        snprintf(s->err, sizeof(s->err), "%s", s->ch.err);
        return -1;
    }
    return 0;
}

void *mig_source_thread(void *arg)
{
    Migration *g = arg;
    const MigHost *h = g->host;
    bool strict = false;
    if (h->enter_thread && h->enter_thread(h->opaque, &strict) < 0) {
        mig_set_error(g, "the migration thread's seccomp filter could not be installed");
        mig_set_status(g, MIG_FAILED);
        return NULL;
    }
    Src *s = calloc(1, sizeof(*s));
    bool paused = false;
    int fd = -1;
    if (!s) {
        mig_set_error(g, "out of memory");
        mig_set_status(g, MIG_FAILED);
        return NULL;
    }
    s->g = g;
    s->m = h->m;
    s->strict = strict;
    s->file = mig_uri_is_file(g->uri);
    s->ch.fd = -1;
    if (setup(s, &fd) < 0)
        goto fail;
    pthread_mutex_lock(&g->lock);
    g->stats.setup_done_ns = mig_now_ns();
    g->stats.setup_us = (g->stats.setup_done_ns - g->stats.start_ns) / 1000 - g->stats.log_us;
    pthread_mutex_unlock(&g->lock);
    mig_set_status(g, MIG_ACTIVE);
    int pre = precopy(s);
    /* The throttle ends with the pre-copy: the final stage pauses the
     * vCPUs, and whoever runs the guest after it runs it at full speed. */
    throttle(s, 0);
    if (pre < 0 || final_stage(s, &paused) < 0)
        goto fail;
    publish(s, 0);
    pthread_mutex_lock(&g->lock);
    g->stats.end_ns = mig_now_ns();
    g->stats.transferred = s->ch.bytes;
    pthread_mutex_unlock(&g->lock);
    if (s->file) {
        /* A snapshot: the guest goes on here as it was (a paused one
         * stays paused until `cont`). */
        machine_virtio_resume(s->m);
        kvm_vm_resume(s->m->vm);
        pthread_mutex_lock(&g->lock);
        g->final_phase = false;
        pthread_mutex_unlock(&g->lock);
        mig_set_status(g, MIG_COMPLETED);
        goto out;
    }
    /* The guest now runs at the destination: this side's vCPUs stay
     * paused and its devices never run again (no disk write after GO). */
    machine_virtio_halt(s->m);
    mig_set_status(g, MIG_COMPLETED);
    goto out;
fail:
    if (s->unconfirmed) {
        /* The destination may run the guest: never resume it here on our
         * own; keep it paused (vCPUs and devices) until the operator
         * says `cont` (mig_release_hold). */
        char why[sizeof(s->err)];
        memcpy(why, s->err, sizeof(why));
        snprintf(s->err, sizeof(s->err),
                 "the handover was not confirmed: %.500s; the "
                 "destination may be running the guest, so it stays paused here "
                 "(x-guest-owner: unknown): check the destination, and `cont` here only "
                 "if it does not run it",
                 why);
        pthread_mutex_lock(&g->lock);
        g->final_phase = false;
        g->held = true;
        g->held_was_running = s->running_at_pause;
        g->owner = MIG_OWNER_UNKNOWN;
        g->stats.final_pause_ms = (mig_now_ns() - s->pause_ns) / 1000000;
        pthread_mutex_unlock(&g->lock);
        paused = false;
    }
    if (paused) {
        /* the destination never got GO (or refused it): the guest goes on */
        machine_virtio_resume(s->m);
        kvm_vm_resume(s->m->vm);
        pthread_mutex_lock(&g->lock);
        g->final_phase = false;
        g->stats.final_pause_ms = (mig_now_ns() - s->pause_ns) / 1000000;
        pthread_mutex_unlock(&g->lock);
    }
    if (!s->unconfirmed && cancelled(s)) {
        snprintf(s->err, sizeof(s->err), "cancelled by migrate_cancel");
    } else if (!s->unconfirmed && fd >= 0 && !s->file) {
        s->ch.deadline_ns = 0;
        read_refusal(s);
    }
    publish(s, 0);
    pthread_mutex_lock(&g->lock);
    g->stats.end_ns = mig_now_ns();
    pthread_mutex_unlock(&g->lock);
    mig_set_error(g, "%s", s->err);
    mig_set_status(g, cancelled(s) && !s->unconfirmed ? MIG_CANCELLED : MIG_FAILED);
out:
    if (fd >= 0)
        close(fd);
    forget_untouched(s);
    for (unsigned b = 0; b < s->nblocks; b++)
        free(s->dirty[b]);
    free(s->rec);
    free(s);
    mig_notify(g);
    return NULL;
}
