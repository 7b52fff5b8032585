/* SPDX-License-Identifier: MIT */
/* virtio-balloon (see virtio-balloon.h). */
#include "devices/virtio-balloon.h"
#include "devices/report.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PAGE VIRTIO_BALLOON_PAGE_SIZE
#define STAT_ENTRY 10 /* le16 tag, le64 value, packed */
#define STATS_MAX_ENTRIES 64

static const char *const stat_names[VIRTIO_BALLOON_S_NR] = {
    "stat-swap-in",      "stat-swap-out",     "stat-major-faults",     "stat-minor-faults",
    "stat-free-memory",  "stat-total-memory", "stat-available-memory", "stat-disk-caches",
    "stat-htlb-pgalloc", "stat-htlb-pgfail",  "stat-oom-kills",        "stat-alloc-stalls",
    "stat-async-scans",  "stat-direct-scans", "stat-async-reclaims",   "stat-direct-reclaims",
};

const char *virtio_balloon_stat_name(unsigned n)
{
    return n < VIRTIO_BALLOON_S_NR ? stat_names[n] : NULL;
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void sync_config(VirtioBalloon *d)
{
    put_le32(d->config, d->num_pages);
    put_le32(d->config + 4, d->actual);
}

static void signal_change(VirtioBalloon *d)
{
    uint64_t one = 1;
    ssize_t r = write(d->change_fd, &one, sizeof(one));
    (void)r;
}

/* The role of queue q under the negotiated features (compact numbering). */
static unsigned queue_role(const VirtioMmio *t, unsigned q)
{
    uint64_t f = t->r.driver_features;
    bool stats = f & (1ull << VIRTIO_BALLOON_F_STATS_VQ);
    bool rep = f & (1ull << VIRTIO_BALLOON_F_REPORTING);
    if (q < 2)
        return q == 0 ? BALLOON_Q_INFLATE : BALLOON_Q_DEFLATE;
    if (q == 2 && stats)
        return BALLOON_Q_STATS;
    if (rep && q == (stats ? 3u : 2u))
        return BALLOON_Q_REPORTING;
    return BALLOON_Q_NONE;
}

/* The index of role `role`, or -1 if it has no queue now. */
static int queue_of(const VirtioMmio *t, unsigned role)
{
    for (unsigned q = 0; q < t->num_queues; q++)
        if (queue_role(t, q) == role)
            return (int)q;
    return -1;
}

/* Gives the host pages behind [p, p+len) back (page aligned). */
static void discard(VirtioBalloon *d, uint8_t *p, size_t len)
{
    if (!len)
        return;
    if (madvise(p, len, MADV_DONTNEED) < 0) {
        static bool said;
        if (!said)
            dev_report(DEV_REPORT_FAULT, "%s: madvise(MADV_DONTNEED) of %zu bytes: %s", d->t.label,
                       len, strerror(errno));
        said = true;
    }
}

static void bad_pfn(VirtioBalloon *d, uint32_t pfn, bool inflate)
{
    d->bad_pfns++;
    uint64_t n = d->bad_pfns;
    if (n <= 8 || !(n & (n - 1)))
        dev_report(DEV_REPORT_FAULT,
                   "%s: %s: PFN 0x%x (guest-physical 0x%llx) is not guest RAM; "
                   "skipped (%llu so far)",
                   d->t.label, inflate ? "inflate" : "deflate", pfn,
                   (unsigned long long)pfn << VIRTIO_BALLOON_PFN_SHIFT, (unsigned long long)n);
}

/* One inflate or deflate chain; false if the device broke. */
static bool do_pfns(VirtioBalloon *d, unsigned q, const VirtqElem *e, bool inflate)
{
    VirtioMmio *t = &d->t;
    char msg[96];
    if (e->in_num) {
        snprintf(msg, sizeof(msg), "queue %u: %s buffer is device-writable", q,
                 inflate ? "inflate" : "deflate");
        virtio_mmio_break(t, msg);
        return false;
    }
    if (e->out_len % 4 || e->out_len / 4 > VIRTIO_BALLOON_MAX_PFNS) {
        snprintf(msg, sizeof(msg),
                 "queue %u: %s buffer of %llu bytes (not 4-byte PFNs, or more than %u)", q,
                 inflate ? "inflate" : "deflate", (unsigned long long)e->out_len,
                 VIRTIO_BALLOON_MAX_PFNS);
        virtio_mmio_break(t, msg);
        return false;
    }
    uint8_t buf[1024];
    uint8_t *run = NULL; /* pages to discard, contiguous on the host */
    size_t run_len = 0;
    uint64_t good = 0;
    for (size_t off = 0; off < e->out_len;) {
        size_t want = e->out_len - off < sizeof(buf) ? e->out_len - off : sizeof(buf);
        size_t n = iov_to_buf(e->iov, e->out_num, off, buf, want);
        if (n != want)
            break; /* cannot happen: out_len is the sum of the iovs */
        for (size_t i = 0; i + 4 <= n; i += 4) {
            uint32_t pfn = get_le32(buf + i);
            uint64_t gpa = (uint64_t)pfn << VIRTIO_BALLOON_PFN_SHIFT;
            MemoryRegion *mr;
            uint64_t moff;
            /* inflate: writable RAM only (never ROM); marks it dirty, which
             * its new content (zeros) is */
            uint8_t *p = guest_mem_map_region(t->fv, gpa, PAGE, inflate, &mr, &moff);
            if (!p || ((uintptr_t)p & (PAGE - 1))) {
                bad_pfn(d, pfn, inflate);
                continue;
            }
            good++;
            if (!inflate)
                continue;
            if (run && run + run_len == p) {
                run_len += PAGE;
            } else {
                discard(d, run, run_len);
                run = p;
                run_len = PAGE;
            }
        }
        off += n;
    }
    discard(d, run, run_len);
    if (inflate)
        d->inflated_pages += good;
    else
        d->inflated_pages -= good < d->inflated_pages ? good : d->inflated_pages;
    return true;
}

/* Free page reporting: each device-writable buffer is free guest memory
 * to drop; the buffers go back at once. */
static bool do_report(VirtioBalloon *d, unsigned q, const VirtqElem *e)
{
    if (e->out_num) {
        char msg[80];
        snprintf(msg, sizeof(msg), "queue %u: free page report buffer is device-readable", q);
        virtio_mmio_break(&d->t, msg);
        return false;
    }
    for (unsigned i = 0; i < e->in_num; i++) {
        uintptr_t a = (uintptr_t)e->iov[i].iov_base;
        uintptr_t end = (a + e->iov[i].iov_len) & ~(uintptr_t)(PAGE - 1);
        a = (a + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
        if (end > a) {
            discard(d, (uint8_t *)a, end - a);
            d->reported_bytes += end - a;
        }
    }
    return true;
}

/* Hands the held stats buffer back (lock held, t->fv set). */
static bool return_stats(VirtioBalloon *d)
{
    int q = queue_of(&d->t, BALLOON_Q_STATS);
    if (!d->stats_held || q < 0)
        return false;
    VirtQueue *vq = virtio_mmio_queue(&d->t, (unsigned)q);
    if (!vq)
        return false;
    VirtqElem *e = &d->elem;
    e->head = d->stats_head;
    e->out_num = e->in_num = 0;
    e->out_len = e->in_len = 0;
    virtq_push(vq, e, 0);
    d->stats_held = false;
    virtio_mmio_notify_used(&d->t, (unsigned)q);
    return true;
}

/* A stats buffer from the guest: record it and keep it. */
static bool do_stats(VirtioBalloon *d, unsigned q, VirtQueue *vq, const VirtqElem *e)
{
    if (e->in_num) {
        char msg[80];
        snprintf(msg, sizeof(msg), "queue %u: stats buffer is device-writable", q);
        virtio_mmio_break(&d->t, msg);
        return false;
    }
    if (d->stats_held) { /* a second buffer: the first goes back */
        VirtqElem old = { .head = d->stats_head };
        virtq_push(vq, &old, 0);
        virtio_mmio_notify_used(&d->t, q);
    }
    uint8_t buf[STAT_ENTRY * STATS_MAX_ENTRIES];
    size_t n = iov_to_buf(e->iov, e->out_num, 0, buf, sizeof(buf));
    for (size_t i = 0; i + STAT_ENTRY <= n; i += STAT_ENTRY) {
        unsigned tag = (unsigned)buf[i] | (unsigned)buf[i + 1] << 8;
        uint64_t v = 0;
        for (int k = 7; k >= 0; k--)
            v = v << 8 | buf[i + 2 + k];
        if (tag < VIRTIO_BALLOON_S_NR) {
            d->stats[tag] = v;
            d->stats_valid |= 1u << tag;
        }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    d->stats_updated = (uint64_t)ts.tv_sec;
    d->stats_held = true;
    d->stats_head = e->head;
    return true;
}

static void balloon_notify(VirtioMmio *t, unsigned q)
{
    VirtioBalloon *d = t->dev;
    unsigned role = queue_role(t, q);
    VirtQueue *vq = role == BALLOON_Q_NONE ? NULL : virtio_mmio_queue(t, q);
    bool pushed = false;
    while (vq) {
        VirtqElem *e = &d->elem;
        if (virtio_mmio_pop(t, q, vq, e) <= 0)
            break;
        bool ok;
        if (role == BALLOON_Q_STATS) {
            if (!do_stats(d, q, vq, e))
                break;
            continue; /* held, not pushed */
        }
        ok = role == BALLOON_Q_REPORTING ? do_report(d, q, e)
                                         : do_pfns(d, q, e, role == BALLOON_Q_INFLATE);
        if (!ok)
            break;
        virtq_push(vq, e, 0);
        pushed = true;
    }
    if (pushed)
        virtio_mmio_notify_used(t, q);
}

static void balloon_config_write(VirtioMmio *t, uint32_t off, const uint8_t *buf, unsigned len)
{
    VirtioBalloon *d = t->dev;
    for (unsigned i = 0; i < len; i++)
        if (off + i >= 4 && off + i < VIRTIO_BALLOON_CONFIG_LEN)
            d->config[off + i] = buf[i]; /* actual; num_pages is the host's */
    uint32_t actual = get_le32(d->config + 4);
    if (actual != d->actual) {
        d->actual = actual;
        signal_change(d);
    }
}

static void balloon_reset(VirtioMmio *t)
{
    VirtioBalloon *d = t->dev;
    /* the target is the host's and stays; the guest holds nothing now */
    bool changed = d->actual != 0;
    d->actual = 0;
    d->inflated_pages = 0;
    d->stats_held = false;
    sync_config(d);
    if (changed)
        signal_change(d);
}

static const StateField balloon_state_fields[] = {
    STATE_STRUCT(VirtioBalloonStateData, t, &virtio_mmio_state_table),
    STATE_U32(VirtioBalloonStateData, num_pages),
    STATE_U32(VirtioBalloonStateData, actual),
    STATE_U64(VirtioBalloonStateData, inflated_pages),
    STATE_U8(VirtioBalloonStateData, stats_held),
    STATE_U16(VirtioBalloonStateData, stats_head),
    STATE_U32(VirtioBalloonStateData, stats_valid),
    STATE_U64_ARRAY(VirtioBalloonStateData, stats),
};
static const StateTable balloon_state_table = STATE_TABLE(VirtioBalloonStateData,
                                                          balloon_state_fields);
const StateSection virtio_balloon_state_section = {
    "virtio-balloon",
    VIRTIO_BALLOON_STATE_MAGIC,
    VIRTIO_BALLOON_STATE_VERSION,
    &balloon_state_table,
};

static int balloon_save(VirtioMmio *t, uint8_t **buf, size_t *len)
{
    VirtioBalloon *d = t->dev;
    VirtioBalloonStateData st;
    memset(&st, 0, sizeof(st));
    virtio_mmio_lock(t);
    st.num_pages = d->num_pages;
    st.actual = d->actual;
    st.inflated_pages = d->inflated_pages;
    st.stats_held = d->stats_held;
    st.stats_head = d->stats_head;
    st.stats_valid = d->stats_valid;
    memcpy(st.stats, d->stats, sizeof(st.stats));
    virtio_mmio_unlock(t);
    return virtio_mmio_save_state(t, &virtio_balloon_state_section, &st, buf, len);
}

static int balloon_load(VirtioMmio *t, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    VirtioBalloon *d = t->dev;
    const StateSection *sec = &virtio_balloon_state_section;
    VirtioBalloonStateData st;
    int ret = virtio_mmio_load_state(t, sec, buf, len, &st, err, errlen);
    if (ret < 0)
        return ret;
    if (st.stats_held > 1)
        return state_refuse(sec, err, errlen, "invalid stats_held flag");
    if (st.stats_valid >> VIRTIO_BALLOON_S_NR)
        return state_refuse(sec, err, errlen, "unknown stats tags");
    if (st.stats_held) {
        bool negotiated = st.t.driver_features & (1ull << VIRTIO_BALLOON_F_STATS_VQ);
        if (!negotiated || st.t.num_queues < 3 || st.stats_head >= st.t.vq[2].num)
            return state_refuse(sec, err, errlen, "a held stats buffer without a stats queue");
    }
    virtio_mmio_lock(t);
    bool changed = d->actual != st.actual;
    d->num_pages = st.num_pages;
    d->actual = st.actual;
    d->inflated_pages = st.inflated_pages;
    d->stats_held = st.stats_held;
    d->stats_head = st.stats_head;
    d->stats_valid = st.stats_valid;
    memcpy(d->stats, st.stats, sizeof(d->stats));
    if (st.stats_valid) { /* when the guest reported them is not saved: now */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        d->stats_updated = (uint64_t)ts.tv_sec;
    }
    sync_config(d);
    virtio_mmio_set_state(t, &st.t);
    if (changed)
        signal_change(d);
    virtio_mmio_unlock(t);
    return 0;
}

static const VirtioDevOps balloon_ops = {
    .name = "virtio-balloon",
    .device_id = VIRTIO_ID_BALLOON,
    .queue_notify = balloon_notify,
    .reset = balloon_reset,
    .config_write = balloon_config_write,
    .save = balloon_save,
    .load = balloon_load,
};

static void stats_fn(VirtioMmio *t, void *arg)
{
    (void)arg;
    return_stats(t->dev);
}

static void stats_tick(void *opaque, uint32_t events)
{
    VirtioBalloon *d = opaque;
    uint64_t n;
    (void)events;
    ssize_t r = read(d->stats_timer, &n, sizeof(n));
    (void)r;
    virtio_mmio_run_locked(&d->t, stats_fn, NULL);
}

typedef struct StatsReq {
    bool done;
} StatsReq;

static void request_fn(VirtioMmio *t, void *arg)
{
    ((StatsReq *)arg)->done = return_stats(t->dev);
}

bool virtio_balloon_request_stats(VirtioBalloon *d)
{
    StatsReq req = { false };
    virtio_mmio_run_locked(&d->t, request_fn, &req);
    return req.done;
}

int virtio_balloon_init(VirtioBalloon *d, const VirtioEnv *env, const VirtioBalloonOptions *opt)
{
    static const VirtioBalloonOptions none;
    memset(d, 0, sizeof(*d));
    d->opt = opt ? *opt : none;
    d->change_fd = d->stats_timer = -1;
    uint64_t features = 0;
    unsigned nq = 2;
    if (d->opt.deflate_on_oom)
        features |= 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
    if (d->opt.stats_interval_s) {
        features |= 1ull << VIRTIO_BALLOON_F_STATS_VQ;
        nq++;
    }
    if (d->opt.free_page_reporting) {
        features |= 1ull << VIRTIO_BALLOON_F_REPORTING;
        nq++;
    }
    sync_config(d);
    d->change_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->change_fd < 0)
        return -errno;
    int r = virtio_mmio_init(&d->t, env, &balloon_ops, d, nq, features, d->config,
                             VIRTIO_BALLOON_CONFIG_LEN);
    if (r < 0) {
        close(d->change_fd);
        d->change_fd = -1;
        return r;
    }
    if (d->opt.stats_interval_s && env->loop) {
        struct itimerspec its = { { (time_t)d->opt.stats_interval_s, 0 },
                                  { (time_t)d->opt.stats_interval_s, 0 } };
        d->stats_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (d->stats_timer < 0 || timerfd_settime(d->stats_timer, 0, &its, NULL) < 0 ||
            (r = evloop_add(env->loop, d->stats_timer, EPOLLIN, stats_tick, d)) < 0) {
            r = r < 0 ? r : -errno;
            virtio_balloon_destroy(d);
            return r;
        }
    }
    return 0;
}

void virtio_balloon_destroy(VirtioBalloon *d)
{
    if (d->stats_timer >= 0) {
        if (d->t.loop)
            evloop_del(d->t.loop, d->stats_timer);
        close(d->stats_timer);
        d->stats_timer = -1;
    }
    virtio_mmio_destroy(&d->t);
    if (d->change_fd >= 0)
        close(d->change_fd);
    d->change_fd = -1;
}

void virtio_balloon_set_target(VirtioBalloon *d, uint32_t num_pages)
{
    virtio_mmio_lock(&d->t);
    if (num_pages != d->num_pages) {
        d->num_pages = num_pages;
        sync_config(d);
        virtio_mmio_config_changed(&d->t);
    }
    virtio_mmio_unlock(&d->t);
}

void virtio_balloon_info(VirtioBalloon *d, VirtioBalloonInfo *out)
{
    virtio_mmio_lock(&d->t);
    out->num_pages = d->num_pages;
    out->actual = d->actual;
    out->inflated_pages = d->inflated_pages;
    out->bad_pfns = d->bad_pfns;
    out->reported_bytes = d->reported_bytes;
    out->stats_valid = d->stats_valid;
    memcpy(out->stats, d->stats, sizeof(out->stats));
    out->stats_updated = d->stats_updated;
    virtio_mmio_unlock(&d->t);
}

int virtio_balloon_change_fd(const VirtioBalloon *d)
{
    return d->change_fd;
}

VIRTIO_DEVICE_OPS_DEFINE(virtio_balloon, VirtioBalloon);
