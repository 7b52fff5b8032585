/* SPDX-License-Identifier: MIT */
/* virtio-blk backed by a file through io_uring (see virtio-blk.h). */
#include "devices/virtio-blk.h"
#include "devices/report.h"
#include "devices/uring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(VIRTIO_BLK_MAX_QUEUES <= VIRTIO_MMIO_MAX_QUEUES,
               "a disk's queues fit the transport");

enum { OP_NONE = 0, OP_READ, OP_WRITE, OP_FLUSH };
#define RES_PENDING INT_MIN

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* Parses one popped chain into r; the status and the I/O to do. */
static void parse_req(VirtioBlk *d, const VirtqElem *e, VirtioBlkReq *r)
{
    uint8_t hdr[16];
    memset(r, 0, offsetof(VirtioBlkReq, data));
    r->type = -1;
    if (e->out_len < sizeof(hdr) || e->in_len < 1) {
        r->status_p = NULL; /* nowhere to report */
        return;
    }
    const struct iovec *last = &e->iov[e->out_num + e->in_num - 1];
    r->status_p = (uint8_t *)last->iov_base + last->iov_len - 1;
    r->status = VIRTIO_BLK_S_IOERR;
    r->used_len = 1;
    iov_to_buf(e->iov, e->out_num, 0, hdr, sizeof(hdr));
    uint32_t type;
    uint64_t sector;
    memcpy(&type, hdr, 4);
    memcpy(&sector, hdr + 8, 8);
    r->type = type > INT_MAX ? INT_MAX : (int)type;
    const struct iovec *in = e->iov + e->out_num;
    uint64_t in_data = e->in_len - 1;

    switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
        bool wr = type == VIRTIO_BLK_T_OUT;
        uint64_t len = wr ? e->out_len - sizeof(hdr) : in_data;
        if (wr && d->readonly)
            break;
        if (len % 512 || sector > d->capacity || len / 512 > d->capacity - sector)
            break;
        r->offset = sector * 512;
        r->len = len;
        if (wr)
            r->ndata = iov_slice(e->iov, e->out_num, sizeof(hdr), len, r->data, VIRTQ_MAX_SIZE);
        else
            r->ndata = iov_slice(in, e->in_num, 0, len, r->data, VIRTQ_MAX_SIZE);
        r->status = VIRTIO_BLK_S_OK;
        r->used_len = wr ? 1 : (uint32_t)len + 1;
        if (len)
            r->op = wr ? OP_WRITE : OP_READ;
        break;
    }
    case VIRTIO_BLK_T_FLUSH:
        r->status = VIRTIO_BLK_S_OK;
        if (!d->readonly)
            r->op = OP_FLUSH;
        break;
    case VIRTIO_BLK_T_GET_ID: {
        size_t n = in_data < VIRTIO_BLK_ID_BYTES ? (size_t)in_data : VIRTIO_BLK_ID_BYTES;
        iov_from_buf(in, e->in_num, 0, d->id, n);
        r->status = VIRTIO_BLK_S_OK;
        r->used_len = (uint32_t)n + 1;
        break;
    }
    default:
        r->status = VIRTIO_BLK_S_UNSUPP;
        break;
    }
}

static int do_sync(VirtioBlk *d, VirtioBlkReq *r)
{
    ssize_t n;
    switch (r->op) {
    case OP_READ:
        n = preadv(d->fd, r->data, (int)r->ndata, (off_t)r->offset);
        return n < 0 ? -errno : (int)n;
    case OP_WRITE:
        n = pwritev(d->fd, r->data, (int)r->ndata, (off_t)r->offset);
        return n < 0 ? -errno : (int)n;
    case OP_FLUSH:
        return fdatasync(d->fd) < 0 ? -errno : 0;
    }
    return 0;
}

/* Runs the I/O of reqs[0..n) and fills in their results. */
static void run_io(VirtioBlk *d, unsigned n)
{
    unsigned queued = 0;
    if (d->have_ring) {
        for (unsigned i = 0; i < n; i++) {
            VirtioBlkReq *r = &d->reqs[i];
            if (!r->op)
                continue;
            r->res = RES_PENDING;
            struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
            if (!sqe) {
                r->res = do_sync(d, r);
                continue;
            }
            /* the disk is the ring's fixed file 0 (see open_ring) */
            if (r->op == OP_READ)
                io_uring_prep_readv(sqe, 0, r->data, r->ndata, r->offset);
            else if (r->op == OP_WRITE)
                io_uring_prep_writev(sqe, 0, r->data, r->ndata, r->offset);
            else
                io_uring_prep_fsync(sqe, 0, IORING_FSYNC_DATASYNC);
            sqe->flags |= IOSQE_FIXED_FILE;
            io_uring_sqe_set_data64(sqe, i);
            queued++;
        }
        if (queued) {
            int s = io_uring_submit_and_wait(&d->ring, queued);
            unsigned expect = s < 0 ? 0 : (unsigned)s;
            for (unsigned got = 0; got < expect;) {
                struct io_uring_cqe *cqe;
                int w = io_uring_wait_cqe(&d->ring, &cqe);
                if (w == -EINTR)
                    continue;
                if (w < 0)
                    break;
                uint64_t i = io_uring_cqe_get_data64(cqe);
                if (i < n && d->reqs[i].res == RES_PENDING)
                    d->reqs[i].res = cqe->res;
                io_uring_cqe_seen(&d->ring, cqe);
                got++;
            }
            if (expect != queued) {
                /* Not all went in: drop the ring (and what is left in it)
                 * and do the rest synchronously from now on. */
                dev_report(DEV_REPORT_NOTICE, "%s: io_uring submit: %s; using preadv/pwritev",
                           d->t.label, s < 0 ? strerror(-s) : "short submission");
                io_uring_queue_exit(&d->ring);
                d->have_ring = false;
            }
            for (unsigned i = 0; i < n; i++)
                if (d->reqs[i].op && d->reqs[i].res == RES_PENDING)
                    d->reqs[i].res = do_sync(d, &d->reqs[i]);
        }
    } else {
        for (unsigned i = 0; i < n; i++)
            if (d->reqs[i].op)
                d->reqs[i].res = do_sync(d, &d->reqs[i]);
    }
}

/* Counts request r, completed with status st (VirtioBlkStats). */
static void account(VirtioBlk *d, const VirtioBlkReq *r, uint8_t st)
{
    VirtioBlkStats *s = &d->stats;
    switch (r->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
        bool wr = r->type == VIRTIO_BLK_T_OUT;
        if (r->status != VIRTIO_BLK_S_OK) { /* refused by parse_req: no I/O */
            virtio_stat_add(wr ? &s->invalid_wr_operations : &s->invalid_rd_operations, 1);
        } else if (st != VIRTIO_BLK_S_OK) {
            virtio_stat_add(wr ? &s->failed_wr_operations : &s->failed_rd_operations, 1);
        } else {
            virtio_stat_add(wr ? &s->wr_operations : &s->rd_operations, 1);
            virtio_stat_add(wr ? &s->wr_bytes : &s->rd_bytes, r->len);
            if (wr && r->offset + r->len > s->wr_highest_offset) /* the only writer */
                __atomic_store_n(&s->wr_highest_offset, r->offset + r->len, __ATOMIC_RELAXED);
        }
        break;
    }
    case VIRTIO_BLK_T_FLUSH:
        virtio_stat_add(st == VIRTIO_BLK_S_OK ? &s->flush_operations : &s->failed_flush_operations,
                        1);
        break;
    case VIRTIO_BLK_T_GET_ID:
        virtio_stat_add(&s->get_id_operations, 1);
        break;
    case -1:
        virtio_stat_add(&s->malformed_requests, 1);
        break;
    default:
        virtio_stat_add(&s->unsupported_operations, 1);
        break;
    }
}

void virtio_blk_get_stats(const VirtioBlk *d, VirtioBlkStats *out)
{
    virtio_stats_copy((uint64_t *)out, (const uint64_t *)&d->stats,
                      sizeof(VirtioBlkStats) / sizeof(uint64_t));
}

static void finish(VirtioBlk *d, VirtQueue *vq, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        VirtioBlkReq *r = &d->reqs[i];
        uint32_t used = 0;
        uint8_t st = r->status;
        if (r->status_p) {
            used = r->used_len;
            if (r->op == OP_READ || r->op == OP_WRITE) {
                if (r->res < 0 || (uint64_t)r->res != r->len) {
                    st = VIRTIO_BLK_S_IOERR;
                    used = 1;
                }
            } else if (r->op == OP_FLUSH && r->res < 0) {
                st = VIRTIO_BLK_S_IOERR;
            }
            *r->status_p = st;
        }
        account(d, r, st);
        virtq_push(vq, &d->elems[i], used);
    }
}

/* Whether request r may go now under the rate limit; if not, the queue
 * waits for the timer (lock held). */
static bool admit(VirtioBlk *d, const VirtioBlkReq *r)
{
    if (!ratelimit_active(&d->rl))
        return true;
    uint64_t now = ratelimit_now_ns(), wait = 0;
    uint64_t bytes = r->op == OP_READ || r->op == OP_WRITE ? r->len : 0;
    if (ratelimit_consume(&d->rl, bytes, now, &wait))
        return true;
    d->throttled = true;
    d->throttled_since_ns = now;
    virtio_stat_add(&d->stats.throttled, 1);
    evloop_timer_arm(d->rl_timer, wait ? wait : 1);
    return false;
}

/* Ends a wait for tokens, counting its time (lock held). */
static void unthrottle(VirtioBlk *d)
{
    if (!d->throttled)
        return;
    d->throttled = false;
    uint64_t now = ratelimit_now_ns();
    virtio_stat_add(&d->stats.throttled_ns, now - d->throttled_since_ns);
}

static void blk_notify(VirtioMmio *t, unsigned q)
{
    VirtioBlk *d = t->dev;
    if (d->throttled)
        return; /* the timer takes it up */
    VirtQueue *vq = virtio_mmio_queue(t, q);
    bool pushed = false;
    while (vq) {
        unsigned n = 0;
        int r = 0;
        while (n < VIRTIO_BLK_BATCH && (r = virtio_mmio_pop(t, q, vq, &d->elems[n])) > 0) {
            parse_req(d, &d->elems[n], &d->reqs[n]);
            if (!admit(d, &d->reqs[n])) {
                virtq_unpop(vq);
                r = 0;
                break;
            }
            n++;
        }
        if (n) {
            run_io(d, n);
            finish(d, vq, n);
            pushed = true;
        }
        if (r <= 0)
            break;
    }
    if (pushed)
        virtio_mmio_notify_used(t, q);
}

/* The tokens are there: every queue is looked at (kicks that came while
 * waiting were not acted on), the first one a different queue each time so
 * that a busy queue cannot keep the others waiting, until the queues are
 * empty or the buckets say no again. */
static void blk_resume_fn(VirtioMmio *t, void *arg)
{
    VirtioBlk *d = t->dev;
    (void)arg;
    if (!d->throttled)
        return;
    unthrottle(d);
    unsigned n = t->num_queues, first = d->resume_next % n;
    d->resume_next = (first + 1) % n;
    for (unsigned k = 0; k < n && !d->throttled; k++)
        blk_notify(t, (first + k) % n);
}

/* The rate-limit timer: the tokens should be there now. */
static void blk_timer(void *opaque)
{
    VirtioBlk *d = opaque;
    virtio_mmio_run_locked(&d->t, blk_resume_fn, NULL);
}

static void blk_reset(VirtioMmio *t)
{
    VirtioBlk *d = t->dev;
    d->resume_next = 0;
    unthrottle(d); /* (a vCPU thread: the timer, if armed, finds nothing to do) */
}

int virtio_blk_set_rate_limit(VirtioBlk *d, const RateLimitConfig *cfg)
{
    if (!d->rl_timer)
        return -ENOTSUP;
    virtio_mmio_lock(&d->t);
    ratelimit_set(&d->rl, cfg, ratelimit_now_ns());
    if (d->throttled)
        evloop_timer_arm(d->rl_timer, 1);
    virtio_mmio_unlock(&d->t);
    return 0;
}

void virtio_blk_get_rate_limit(VirtioBlk *d, RateLimitConfig *out)
{
    virtio_mmio_lock(&d->t);
    *out = d->rl.cfg;
    virtio_mmio_unlock(&d->t);
}

static const StateField blk_state_fields[] = {
    STATE_STRUCT(VirtioBlkStateData, t, &virtio_mmio_state_table),
    STATE_U64(VirtioBlkStateData, capacity),
    STATE_U8(VirtioBlkStateData, readonly),
};
static const StateTable blk_state_table = STATE_TABLE(VirtioBlkStateData, blk_state_fields);
const StateSection virtio_blk_state_section = {
    "virtio-blk",
    VIRTIO_BLK_STATE_MAGIC,
    VIRTIO_BLK_STATE_VERSION,
    &blk_state_table,
};

static int blk_save(VirtioMmio *t, uint8_t **buf, size_t *len)
{
    VirtioBlk *d = t->dev;
    VirtioBlkStateData st = { .capacity = d->capacity, .readonly = d->readonly };
    return virtio_mmio_save_state(t, &virtio_blk_state_section, &st, buf, len);
}

static int blk_load(VirtioMmio *t, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    VirtioBlk *d = t->dev;
    VirtioBlkStateData st;
    int ret = virtio_mmio_load_state(t, &virtio_blk_state_section, buf, len, &st, err, errlen);
    if (ret < 0)
        return ret;
    if (st.capacity != d->capacity || st.readonly != d->readonly)
        return state_refuse(&virtio_blk_state_section, err, errlen,
                            "disk differs (capacity %llu sectors%s, here %llu%s)",
                            (unsigned long long)st.capacity, st.readonly ? " readonly" : "",
                            (unsigned long long)d->capacity, d->readonly ? " readonly" : "");
    virtio_mmio_install_state(t, &st.t);
    return 0;
}

static const VirtioDevOps blk_ops = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .queue_notify = blk_notify,
    .reset = blk_reset,
    .save = blk_save,
    .load = blk_load,
};

/*
 * One ring for the disk, whatever its queue count: queues are served one
 * at a time under the transport's lock, and run_io submits a batch and
 * reaps all of it before the lock is dropped, so a ring per queue would
 * add file descriptors, locked memory and restriction set-ups without ever
 * having two batches in flight.  (Rings per queue pay off only with a
 * thread per queue, which strata does not have.)
 *
 * The disk's ring does exactly what run_io submits: IORING_OP_READV,
 * WRITEV and FSYNC (a read-only disk: READV only), on the disk alone, as
 * fixed file 0 (IOSQE_FIXED_FILE required); no io_uring_register after it
 * is enabled.  Whoever reaches io_uring_enter on it can thus only read or
 * write the guest's own disk, as the device does.  0 or a negative errno
 * (*what: the step refused); then there is no ring.
 */
static int open_ring(VirtioBlk *d, const char **what)
{
    static const uint8_t rw_ops[] = { IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC };
    static const uint8_t ro_ops[] = { IORING_OP_READV };
    UringRules rules = {
        .ops = d->readonly ? ro_ops : rw_ops,
        .nops = d->readonly ? 1 : 3,
        .files = &d->fd,
        .nfiles = 1,
    };
    return uring_init_restricted(&d->ring, VIRTIO_BLK_BATCH, &rules, what);
}

int virtio_blk_init(VirtioBlk *d, const VirtioEnv *env, const char *path, bool readonly,
                    unsigned num_queues, char *err, size_t errlen)
{
    memset(d, 0, offsetof(VirtioBlk, elems));
    d->fd = -1;
    if (num_queues < 1 || num_queues > VIRTIO_BLK_MAX_QUEUES) {
        snprintf(err, errlen, "disk path=%s: num-queues=%u: expected 1 to %u", path, num_queues,
                 VIRTIO_BLK_MAX_QUEUES);
        return -EINVAL;
    }
    /* O_NONBLOCK: opening a FIFO would wait for its other end */
    d->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_NONBLOCK | O_CLOEXEC);
    if (d->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "disk path=%s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(d->fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        /* a directory opens read-only and seeks to a huge "size" */
        snprintf(err, errlen, "disk path=%s: not a regular file or a block device", path);
        close(d->fd);
        return -EINVAL;
    }
    fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) & ~O_NONBLOCK);
    off_t size = lseek(d->fd, 0, SEEK_END);
    if (size < 0 || fstat(d->fd, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "disk path=%s: %s", path, strerror(e));
        close(d->fd);
        return -e;
    }
    d->readonly = readonly;
    d->capacity = (uint64_t)size / 512;
    snprintf(d->id, sizeof(d->id), "strata%llx",
             (unsigned long long)(st.st_ino ^ ((uint64_t)st.st_dev << 40)));
    put64(d->config, d->capacity);
    put32(d->config + 12, VIRTQ_MAX_SIZE - 2); /* seg_max */
    uint64_t features = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_FLUSH);
    if (readonly)
        features |= 1ull << VIRTIO_BLK_F_RO;
    if (num_queues > 1) {
        features |= 1ull << VIRTIO_BLK_F_MQ;
        uint16_t nq = (uint16_t)num_queues;
        memcpy(d->config + VIRTIO_BLK_CONFIG_NUM_QUEUES, &nq, 2);
    }
    const char *what;
    int r = open_ring(d, &what);
    if (r == 0)
        d->have_ring = true;
    else
        dev_report(DEV_REPORT_NOTICE,
                   "disk path=%s: no restricted io_uring (%s: %s); "
                   "using preadv/pwritev",
                   path, what, strerror(-r));
    r = virtio_mmio_init(&d->t, env, &blk_ops, d, num_queues, features, d->config,
                         VIRTIO_BLK_CONFIG_LEN);
    if (r == 0 && env->loop && !(d->rl_timer = evloop_timer_new(env->loop, blk_timer, d))) {
        r = -errno;
        virtio_mmio_destroy(&d->t);
    }
    if (r < 0) {
        snprintf(err, errlen, "disk path=%s: virtio-mmio: %s", path, strerror(-r));
        if (d->have_ring)
            io_uring_queue_exit(&d->ring);
        close(d->fd);
        return r;
    }
    return 0;
}

void virtio_blk_destroy(VirtioBlk *d)
{
    evloop_timer_free(d->rl_timer);
    d->rl_timer = NULL;
    virtio_mmio_destroy(&d->t);
    if (d->have_ring)
        io_uring_queue_exit(&d->ring);
    d->have_ring = false;
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
}

VIRTIO_DEVICE_OPS_DEFINE(virtio_blk, VirtioBlk);
