/* SPDX-License-Identifier: MIT */
/* virtio-net over a TAP device (see virtio-net.h). */
#include "devices/virtio-net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

int virtio_net_open_tap(const char *name, char *err, size_t errlen)
{
    struct ifreq ifr;
    if (strlen(name) >= IFNAMSIZ || !*name) {
        snprintf(err, errlen, "net tap=%s: interface name empty or longer than %d bytes", name,
                 IFNAMSIZ - 1);
        return -EINVAL;
    }
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "net tap=%s: /dev/net/tun: %s", name, strerror(e));
        return -e;
    }
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    memcpy(ifr.ifr_name, name, strlen(name));
    int hdr = VIRTIO_NET_HDR_LEN;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
        int e = errno;
        snprintf(err, errlen, "net tap=%s: %s", name, strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int virtio_net_parse_mac(const char *s, uint8_t mac[6])
{
    uint8_t m[6];
    if (strlen(s) != 17)
        return -1;
    for (int i = 0; i < 6; i++) {
        int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
            return -1;
        m[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(mac, m, 6);
    return 0;
}

/* Has the timer fire wait_ns from now unless it fires sooner (lock held). */
static void timer_at(VirtioNet *d, uint64_t now, uint64_t wait_ns)
{
    uint64_t due = now + (wait_ns ? wait_ns : 1);
    if (d->timer_due_ns && d->timer_due_ns <= due)
        return;
    d->timer_due_ns = due;
    evloop_timer_arm(d->rl_timer, due - now);
}

/* Whether `bytes` and a packet may go in direction l now (taking them if
 * charge); else starts a wait counted in *count (lock held). */
static bool admit(VirtioNet *d, VirtioNetLimit *l, uint64_t bytes, bool charge, uint64_t *count)
{
    if (!ratelimit_active(&l->rl))
        return true;
    uint64_t now = ratelimit_now_ns();
    uint64_t wait = ratelimit_wait_ns(&l->rl, bytes, now);
    if (!wait) {
        if (charge)
            ratelimit_charge(&l->rl, bytes, now);
        return true;
    }
    l->waiting = true;
    l->since_ns = now;
    virtio_stat_add(count, 1);
    timer_at(d, now, wait);
    return false;
}

/* Ends direction l's wait, if any, adding its time to *ns (lock held);
 * whether it was waiting. */
static bool unthrottle(VirtioNetLimit *l, uint64_t *ns)
{
    if (!l->waiting)
        return false;
    l->waiting = false;
    virtio_stat_add(ns, ratelimit_now_ns() - l->since_ns);
    return true;
}

static void set_polling(VirtioNet *d, bool on)
{
    if (d->rx_limit.waiting)
        on = false; /* the timer turns it back on */
    if (!d->fd_watched || d->rx_polling == on)
        return;
    if (evloop_mod(d->loop, d->fd, on ? EPOLLIN : 0) == 0)
        d->rx_polling = on;
}

/* Moves packets from the backend into receive buffers (lock held, fv set). */
static void rx_fn(VirtioMmio *t, void *arg)
{
    VirtioNet *d = t->dev;
    VirtQueue *vq = virtio_mmio_queue(t, VIRTIO_NET_RXQ);
    bool pushed = false;
    (void)arg;
    if (!vq || d->rx_limit.waiting) {
        set_polling(d, false);
        return;
    }
    for (unsigned budget = 0; budget < 1024; budget++) {
        if (!virtq_has_avail(vq)) {
            set_polling(d, false); /* until the driver adds buffers */
            break;
        }
        if (!admit(d, &d->rx_limit, 0, false, &d->stats.rx_throttled)) {
            set_polling(d, false);
            break;
        }
        ssize_t n = read(d->fd, d->buf, sizeof(d->buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break; /* EAGAIN, or a backend error: try later */
        }
        if (n < VIRTIO_NET_HDR_LEN) {
            virtio_stat_add(&d->stats.rx_dropped, 1);
            continue;
        }
        if (virtio_mmio_pop(t, VIRTIO_NET_RXQ, vq, &d->elem) <= 0)
            break;
        memset(d->buf, 0, VIRTIO_NET_HDR_LEN);
        d->buf[10] = 1; /* num_buffers */
        uint32_t len = 0;
        if ((uint64_t)n <= d->elem.in_len) {
            len = (uint32_t)iov_from_buf(d->elem.iov + d->elem.out_num, d->elem.in_num, 0, d->buf,
                                         (size_t)n);
            virtio_stat_add(&d->stats.rx_packets, 1);
            virtio_stat_add(&d->stats.rx_bytes, (uint64_t)n - VIRTIO_NET_HDR_LEN);
            if (ratelimit_active(&d->rx_limit.rl))
                ratelimit_charge(&d->rx_limit.rl, (uint64_t)n - VIRTIO_NET_HDR_LEN,
                                 ratelimit_now_ns());
        } else {
            virtio_stat_add(&d->stats.rx_dropped, 1); /* buffer too small: returned empty */
        }
        virtq_push(vq, &d->elem, len);
        pushed = true;
    }
    if (pushed)
        virtio_mmio_notify_used(t, VIRTIO_NET_RXQ);
}

static void tx(VirtioMmio *t, VirtQueue *vq)
{
    VirtioNet *d = t->dev;
    bool pushed = false;
    while (!d->tx_limit.waiting && virtio_mmio_pop(t, VIRTIO_NET_TXQ, vq, &d->elem) > 0) {
        VirtqElem *e = &d->elem;
        uint64_t bytes = e->out_len > VIRTIO_NET_HDR_LEN ? e->out_len - VIRTIO_NET_HDR_LEN : 0;
        if (bytes > VIRTIO_NET_MAX_FRAME)
            bytes = VIRTIO_NET_MAX_FRAME;
        if (!admit(d, &d->tx_limit, bytes, true, &d->stats.tx_throttled)) {
            virtq_unpop(vq);
            break;
        }
        if (e->out_len >= VIRTIO_NET_HDR_LEN &&
            e->out_len <= VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_FRAME) {
            size_t n = iov_to_buf(e->iov, e->out_num, 0, d->buf, (size_t)e->out_len);
            memset(d->buf, 0, VIRTIO_NET_HDR_LEN); /* no offloads were offered */
            ssize_t w;
            do {
                w = write(d->fd, d->buf, n);
            } while (w < 0 && errno == EINTR);
            if (w == (ssize_t)n) {
                virtio_stat_add(&d->stats.tx_packets, 1);
                virtio_stat_add(&d->stats.tx_bytes, n - VIRTIO_NET_HDR_LEN);
            } else {
                virtio_stat_add(&d->stats.tx_dropped, 1);
            }
        } else {
            virtio_stat_add(&d->stats.tx_dropped, 1);
        }
        virtq_push(vq, e, 0);
        pushed = true;
    }
    if (pushed)
        virtio_mmio_notify_used(t, VIRTIO_NET_TXQ);
}

static void net_notify(VirtioMmio *t, unsigned q)
{
    VirtioNet *d = t->dev;
    if (q == VIRTIO_NET_RXQ) {
        set_polling(d, true);
        rx_fn(t, NULL);
        return;
    }
    VirtQueue *vq = virtio_mmio_queue(t, q);
    if (vq)
        tx(t, vq);
}

static void net_fd_event(void *opaque, uint32_t events)
{
    VirtioNet *d = opaque;
    (void)events;
    virtio_mmio_run_locked(&d->t, rx_fn, NULL);
}

/* The rate-limit timer: the waiting directions look again (lock held). */
static void resume_fn(VirtioMmio *t, void *arg)
{
    VirtioNet *d = t->dev;
    (void)arg;
    d->timer_due_ns = 0;
    if (unthrottle(&d->tx_limit, &d->stats.tx_throttled_ns)) {
        VirtQueue *vq = virtio_mmio_queue(t, VIRTIO_NET_TXQ);
        if (vq)
            tx(t, vq);
    }
    if (unthrottle(&d->rx_limit, &d->stats.rx_throttled_ns) &&
        (t->r.status & VIRTIO_STATUS_DRIVER_OK) && !t->r.broken) {
        set_polling(d, true);
        rx_fn(t, NULL);
    }
}

static void net_timer(void *opaque)
{
    VirtioNet *d = opaque;
    virtio_mmio_run_locked(&d->t, resume_fn, NULL);
}

static void net_reset(VirtioMmio *t)
{
    VirtioNet *d = t->dev;
    unthrottle(&d->tx_limit, &d->stats.tx_throttled_ns);
    unthrottle(&d->rx_limit, &d->stats.rx_throttled_ns);
    /* (maybe a vCPU thread: the timer, if armed, finds nothing to do) */
    d->timer_due_ns = 0;
    set_polling(d, false);
}

int virtio_net_set_rate_limit(VirtioNet *d, const RateLimitConfig *cfg)
{
    if (!d->rl_timer)
        return -ENOTSUP;
    virtio_mmio_lock(&d->t);
    uint64_t now = ratelimit_now_ns();
    ratelimit_set(&d->rx_limit.rl, cfg, now);
    ratelimit_set(&d->tx_limit.rl, cfg, now);
    if (d->rx_limit.waiting || d->tx_limit.waiting) {
        d->timer_due_ns = 0;
        timer_at(d, now, 1);
    }
    virtio_mmio_unlock(&d->t);
    return 0;
}

void virtio_net_get_rate_limit(VirtioNet *d, RateLimitConfig *out)
{
    virtio_mmio_lock(&d->t);
    *out = d->tx_limit.rl.cfg;
    virtio_mmio_unlock(&d->t);
}

static void net_driver_ok(VirtioMmio *t)
{
    set_polling(t->dev, true);
}

static const StateField net_state_fields[] = {
    STATE_STRUCT(VirtioNetStateData, t, &virtio_mmio_state_table),
    STATE_BYTES(VirtioNetStateData, mac),
};
static const StateTable net_state_table = STATE_TABLE(VirtioNetStateData, net_state_fields);
const StateSection virtio_net_state_section = {
    "virtio-net",
    VIRTIO_NET_STATE_MAGIC,
    VIRTIO_NET_STATE_VERSION,
    &net_state_table,
};

static int net_save(VirtioMmio *t, uint8_t **buf, size_t *len)
{
    VirtioNet *d = t->dev;
    VirtioNetStateData st;
    memcpy(st.mac, d->mac, sizeof(st.mac));
    return virtio_mmio_save_state(t, &virtio_net_state_section, &st, buf, len);
}

static int net_load(VirtioMmio *t, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    VirtioNet *d = t->dev;
    VirtioNetStateData st;
    int ret = virtio_mmio_load_state(t, &virtio_net_state_section, buf, len, &st, err, errlen);
    if (ret < 0)
        return ret;
    virtio_mmio_lock(t);
    virtio_mmio_set_state(t, &st.t);
    memcpy(d->mac, st.mac, 6);
    memcpy(d->config, d->mac, 6);
    set_polling(d, (t->r.status & VIRTIO_STATUS_DRIVER_OK) && !t->r.broken);
    virtio_mmio_unlock(t);
    return 0;
}

static const VirtioDevOps net_ops = {
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .queue_notify = net_notify,
    .reset = net_reset,
    .driver_ok = net_driver_ok,
    .save = net_save,
    .load = net_load,
};

void virtio_net_get_stats(const VirtioNet *d, VirtioNetStats *out)
{
    virtio_stats_copy((uint64_t *)out, (const uint64_t *)&d->stats,
                      sizeof(VirtioNetStats) / sizeof(uint64_t));
}

int virtio_net_init(VirtioNet *d, const VirtioEnv *env, int fd, const uint8_t mac[6], char *err,
                    size_t errlen)
{
    Evloop *loop = env->loop;
    memset(d, 0, offsetof(VirtioNet, elem));
    d->fd = fd;
    d->loop = loop;
    memcpy(d->mac, mac, 6);
    memcpy(d->config, mac, 6);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = errno;
        snprintf(err, errlen, "virtio-net: backend fd: %s", strerror(e));
        close(fd);
        d->fd = -1;
        return -e;
    }
    int r = virtio_mmio_init(&d->t, env, &net_ops, d, 2, 1ull << VIRTIO_NET_F_MAC, d->config,
                             VIRTIO_NET_CONFIG_LEN);
    if (r == 0 && loop) {
        r = evloop_add(loop, fd, 0, net_fd_event, d);
        if (r == 0)
            d->fd_watched = true;
        if (r == 0 && !(d->rl_timer = evloop_timer_new(loop, net_timer, d))) {
            r = -errno;
            evloop_del(loop, fd);
            d->fd_watched = false;
        }
        if (r < 0)
            virtio_mmio_destroy(&d->t);
    }
    if (r < 0) {
        snprintf(err, errlen, "virtio-net: %s", strerror(-r));
        close(fd);
        d->fd = -1;
    }
    return r;
}

void virtio_net_destroy(VirtioNet *d)
{
    evloop_timer_free(d->rl_timer);
    d->rl_timer = NULL;
    if (d->fd_watched)
        evloop_del(d->loop, d->fd);
    d->fd_watched = false;
    virtio_mmio_destroy(&d->t);
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
}

VIRTIO_DEVICE_OPS_DEFINE(virtio_net, VirtioNet);
