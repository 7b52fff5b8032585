/* SPDX-License-Identifier: MIT */
/* virtio-vsock (see virtio-vsock.h). */
#include "devices/virtio-vsock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { Q_RX, Q_TX, Q_EVENT, NQ };

/* Connection states. */
enum {
    C_HELLO = 1, /* host client accepted, its CONNECT line not read yet */
    C_REQUEST,   /* host-initiated: REQUEST sent or due, no RESPONSE yet */
    C_EST,       /* established */
    C_CLOSING,   /* the guest shut down both ways: flush, then RST */
};

#define PEND(op) (1u << (op))
#define FIRST_LOCAL_PORT (1u << 30)
#define ACCEPTS_PER_EVENT 16

static void conn_event(void *opaque, uint32_t events);

static void bad_packet(VirtioVsock *d, const VsockHdr *h, const char *why)
{
    uint64_t n = ++d->stats.bad_packets;
    if (n <= 8 || !(n & (n - 1)))
        fprintf(stderr,
                "strata: %s: packet op %u from port %u to port %u: %s; RST "
                "(%llu so far)\n",
                d->t.label, h->op, h->src_port, h->dst_port, why, (unsigned long long)n);
}

static void queue_rst(VirtioVsock *d, uint32_t local, uint32_t peer)
{
    if (d->nrst >= VIRTIO_VSOCK_PENDING_RST) {
        d->stats.pending_rst_dropped++;
        return;
    }
    d->rst[d->nrst].local = local;
    d->rst[d->nrst].peer = peer;
    d->nrst++;
}

static void update_watch(VirtioVsock *d, VsockConn *c)
{
    uint32_t want = 0;
    if (c->state == C_HELLO)
        want |= EPOLLIN;
    if ((c->state == C_EST || c->state == C_CLOSING) && !c->readable && !c->host_eof &&
        !(c->guest_shut & VSOCK_SHUTDOWN_RCV))
        want |= EPOLLIN;
    if (c->txlen)
        want |= EPOLLOUT;
    if (want != c->watched && evloop_mod(d->t.loop, c->fd, want) == 0)
        c->watched = want;
}

/* Closes c (and tells the guest with RST if `rst`); the slot is free again. */
static void conn_kill(VirtioVsock *d, VsockConn *c, bool rst)
{
    if (c->fd < 0)
        return;
    if (rst && c->state != C_HELLO) {
        queue_rst(d, c->local_port, c->peer_port);
        d->stats.rst_sent++;
    }
    evloop_del(d->t.loop, c->fd);
    close(c->fd);
    free(c->txbuf);
    vsock_table_remove(&d->table, (int)(c - d->conn));
    memset(c, 0, sizeof(*c));
    c->dev = d;
    c->fd = -1;
}

static void kill_all(VirtioVsock *d)
{
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        conn_kill(d, &d->conn[i], false);
    d->nrst = 0;
}

/* A header from the device about connection c (or ports local/peer). */
static void fill_hdr(VirtioVsock *d, VsockHdr *h, uint32_t local, uint32_t peer, uint16_t op)
{
    memset(h, 0, sizeof(*h));
    h->src_cid = VSOCK_HOST_CID;
    h->dst_cid = d->cid;
    h->src_port = local;
    h->dst_port = peer;
    h->type = VSOCK_TYPE_STREAM;
    h->op = op;
    h->buf_alloc = VSOCK_CONN_BUF;
}

static void conn_hdr(VirtioVsock *d, VsockConn *c, VsockHdr *h, uint16_t op)
{
    fill_hdr(d, h, c->local_port, c->peer_port, op);
    h->fwd_cnt = c->fwd_cnt;
    c->last_fwd_cnt_sent = c->fwd_cnt;
}

/* Asks for a CREDIT_UPDATE when the guest's view of our free space is down
 * to half and the host socket took bytes since it last heard. */
static void maybe_credit_update(VsockConn *c)
{
    uint32_t view = c->fwd_cnt + c->txlen - c->last_fwd_cnt_sent;
    if (c->fwd_cnt != c->last_fwd_cnt_sent && view >= VSOCK_CONN_BUF / 2)
        c->pending |= PEND(VSOCK_OP_CREDIT_UPDATE);
}

/* The host side of c is done taking what the guest sent: act on the
 * guest's shutdown. */
static void after_drain(VirtioVsock *d, VsockConn *c)
{
    if (c->txlen)
        return;
    if (c->state == C_CLOSING)
        conn_kill(d, c, true);
    else if (c->guest_shut & VSOCK_SHUTDOWN_SEND)
        shutdown(c->fd, SHUT_WR);
}

/* Writes waiting bytes to the host socket (EPOLLOUT). */
static void conn_flush(VirtioVsock *d, VsockConn *c)
{
    while (c->txlen) {
        ssize_t w = write(c->fd, c->txbuf + c->txoff, c->txlen);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            break;
        if (w <= 0) {
            conn_kill(d, c, true);
            return;
        }
        c->txoff += (uint32_t)w;
        c->txlen -= (uint32_t)w;
        c->fwd_cnt += (uint32_t)w;
    }
    if (!c->txlen) {
        free(c->txbuf);
        c->txbuf = NULL;
        c->txoff = 0;
    }
    maybe_credit_update(c);
    after_drain(d, c);
}

/* An RW payload of len bytes (after the header of e) for the host. */
static void conn_write(VirtioVsock *d, VsockConn *c, const VirtqElem *e, uint32_t len)
{
    uint32_t done = 0;
    d->stats.tx_bytes += len;
    if (!c->txlen && len) {
        struct iovec sl[VIRTQ_MAX_SIZE];
        unsigned n = iov_slice(e->iov, e->out_num, VSOCK_HDR_LEN, len, sl, VIRTQ_MAX_SIZE);
        ssize_t w;
        do
            w = writev(c->fd, sl, (int)n);
        while (w < 0 && errno == EINTR);
        if (w < 0 && errno != EAGAIN) {
            conn_kill(d, c, true);
            return;
        }
        done = w > 0 ? (uint32_t)w : 0;
        c->fwd_cnt += done;
    }
    uint32_t rest = len - done;
    if (rest) {
        if (!c->txbuf && !(c->txbuf = malloc(VSOCK_CONN_BUF))) {
            conn_kill(d, c, true);
            return;
        }
        if (c->txoff + c->txlen + rest > VSOCK_CONN_BUF) {
            memmove(c->txbuf, c->txbuf + c->txoff, c->txlen);
            c->txoff = 0;
        }
        iov_to_buf(e->iov, e->out_num, VSOCK_HDR_LEN + done, c->txbuf + c->txoff + c->txlen, rest);
        c->txlen += rest;
    }
    maybe_credit_update(c);
    update_watch(d, c);
}

/* The guest asks for host port h->dst_port: connect to PATH_<port>. */
static void guest_connect(VirtioVsock *d, const VsockHdr *h)
{
    int i = vsock_table_insert(&d->table, h->dst_port, h->src_port);
    if (i < 0) {
        d->stats.refused++;
        queue_rst(d, h->dst_port, h->src_port);
        return;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", d->uds.sun_path, h->dst_port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    VsockConn *c = &d->conn[i];
    if (fd < 0 || n < 0 || (size_t)n >= sizeof(sa.sun_path) ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        evloop_add(d->t.loop, fd, EPOLLIN, conn_event, c) < 0) {
        if (fd >= 0)
            close(fd);
        vsock_table_remove(&d->table, i);
        d->stats.refused++;
        queue_rst(d, h->dst_port, h->src_port);
        return;
    }
    c->fd = fd;
    c->watched = EPOLLIN;
    c->state = C_EST;
    c->local_port = h->dst_port;
    c->peer_port = h->src_port;
    c->pending = PEND(VSOCK_OP_RESPONSE);
    d->stats.conns_guest++;
}

/* The guest accepted a host-initiated connection: tell the client. */
static void host_established(VirtioVsock *d, VsockConn *c)
{
    char line[24];
    int n = snprintf(line, sizeof(line), "OK %u\n", c->local_port);
    if (write(c->fd, line, (size_t)n) != n) {
        conn_kill(d, c, true);
        return;
    }
    c->state = C_EST;
    update_watch(d, c);
}

/* One packet from the guest (the chain e, out_len >= header). */
static void tx_packet(VirtioVsock *d, const VirtqElem *e)
{
    uint8_t b[VSOCK_HDR_LEN];
    VsockHdr h;
    iov_to_buf(e->iov, e->out_num, 0, b, sizeof(b));
    vsock_hdr_decode(b, &h);
    const char *why = vsock_hdr_check(&h, d->cid, e->out_len - VSOCK_HDR_LEN);
    int i = vsock_table_find(&d->table, h.dst_port, h.src_port);
    VsockConn *c = i >= 0 ? &d->conn[i] : NULL;
    if (!why && !c && h.op != VSOCK_OP_REQUEST && h.op != VSOCK_OP_RST)
        why = "no such connection";
    if (!why && c && h.op == VSOCK_OP_REQUEST)
        why = "REQUEST for an open connection";
    if (!why && c && h.op == VSOCK_OP_RESPONSE && c->state != C_REQUEST)
        why = "RESPONSE not awaited";
    if (!why && c && c->state != C_EST &&
        (h.op == VSOCK_OP_RW || h.op == VSOCK_OP_SHUTDOWN || h.op == VSOCK_OP_CREDIT_UPDATE ||
         h.op == VSOCK_OP_CREDIT_REQUEST))
        why = "connection not established";
    if (!why && c && h.op == VSOCK_OP_RW && (c->guest_shut & VSOCK_SHUTDOWN_SEND))
        why = "data after SHUTDOWN";
    if (!why && c && h.op == VSOCK_OP_RW && h.len > VSOCK_CONN_BUF - c->txlen)
        why = "data past the credit";
    if (why) {
        bad_packet(d, &h, why);
        if (c)
            conn_kill(d, c, true);
        else if (h.op != VSOCK_OP_RST && d->cid == h.src_cid) {
            d->stats.rst_sent++;
            queue_rst(d, h.dst_port, h.src_port);
        }
        return;
    }
    if (!c) {
        if (h.op == VSOCK_OP_REQUEST)
            guest_connect(d, &h);
        if (h.op == VSOCK_OP_REQUEST &&
            (i = vsock_table_find(&d->table, h.dst_port, h.src_port)) >= 0) {
            d->conn[i].peer_buf_alloc = h.buf_alloc;
            d->conn[i].peer_fwd_cnt = h.fwd_cnt;
        }
        return;
    }
    c->peer_buf_alloc = h.buf_alloc;
    c->peer_fwd_cnt = h.fwd_cnt;
    switch (h.op) {
    case VSOCK_OP_RESPONSE:
        host_established(d, c);
        break;
    case VSOCK_OP_RST:
        conn_kill(d, c, false);
        return;
    case VSOCK_OP_SHUTDOWN:
        c->guest_shut |= (uint8_t)h.flags;
        if (c->guest_shut == (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND))
            c->state = C_CLOSING;
        if (c->guest_shut & VSOCK_SHUTDOWN_RCV)
            c->readable = false;
        after_drain(d, c);
        if (c->fd >= 0)
            update_watch(d, c);
        return;
    case VSOCK_OP_RW:
        conn_write(d, c, e, h.len);
        break;
    case VSOCK_OP_CREDIT_REQUEST:
        c->pending |= PEND(VSOCK_OP_CREDIT_UPDATE);
        break;
    default: /* CREDIT_UPDATE: the credit itself, above */
        break;
    }
    if (c->fd >= 0 && vsock_peer_credit(c->peer_buf_alloc, c->peer_fwd_cnt, c->rx_cnt))
        c->pending &= ~PEND(VSOCK_OP_CREDIT_REQUEST);
}

static void process_tx(VirtioVsock *d)
{
    VirtioMmio *t = &d->t;
    VirtQueue *vq = virtio_mmio_queue(t, Q_TX);
    bool pushed = false;
    while (vq) {
        VirtqElem *e = &d->elem;
        if (virtio_mmio_pop(t, Q_TX, vq, e) <= 0)
            break;
        if (e->in_num) {
            virtio_mmio_break(t, "queue 1: tx buffer is device-writable");
            break;
        }
        if (e->out_len < VSOCK_HDR_LEN)
            d->stats.bad_packets++; /* no header to answer: dropped */
        else
            tx_packet(d, e);
        virtq_push(vq, e, 0);
        pushed = true;
    }
    if (pushed)
        virtio_mmio_notify_used(t, Q_TX);
}

/* Whether c has a packet for the guest now: a control packet (h filled,
 * *data false) or input on its socket (*data true, h filled but len). */
static bool conn_next(VirtioVsock *d, VsockConn *c, VsockHdr *h, bool *data)
{
    static const uint16_t order[] = { VSOCK_OP_REQUEST, VSOCK_OP_RESPONSE, VSOCK_OP_CREDIT_UPDATE,
                                      VSOCK_OP_CREDIT_REQUEST, VSOCK_OP_SHUTDOWN };
    *data = false;
    if (c->fd < 0 || c->state == C_HELLO)
        return false;
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
        if (c->pending & PEND(order[k])) {
            c->pending &= ~PEND(order[k]);
            conn_hdr(d, c, h, order[k]);
            if (order[k] == VSOCK_OP_SHUTDOWN)
                h->flags = c->shutdown_flags;
            return true;
        }
    }
    if (!c->readable || c->state != C_EST || (c->guest_shut & VSOCK_SHUTDOWN_RCV))
        return false;
    if (!vsock_peer_credit(c->peer_buf_alloc, c->peer_fwd_cnt, c->rx_cnt))
        return false; /* CREDIT_REQUEST was sent when it ran out */
    char byte;
    ssize_t r = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        c->readable = false;
        update_watch(d, c);
        return false;
    }
    if (r < 0) {
        conn_kill(d, c, true);
        return false;
    }
    if (r == 0) { /* the host sends no more */
        c->readable = false;
        c->host_eof = true;
        update_watch(d, c);
        conn_hdr(d, c, h, VSOCK_OP_SHUTDOWN);
        h->flags = VSOCK_SHUTDOWN_SEND;
        return true;
    }
    conn_hdr(d, c, h, VSOCK_OP_RW);
    *data = true;
    return true;
}

/* Picks the next packet for the guest; false if there is none. */
static bool next_packet(VirtioVsock *d, VsockHdr *h, VsockConn **cp, bool *data)
{
    *cp = NULL;
    *data = false;
    for (;;) {
        if (d->nrst) {
            d->nrst--;
            fill_hdr(d, h, d->rst[d->nrst].local, d->rst[d->nrst].peer, VSOCK_OP_RST);
            return true;
        }
        bool found = false;
        for (unsigned k = 0; k < VSOCK_MAX_CONNS && !found; k++) {
            unsigned i = (d->rr + k) % VSOCK_MAX_CONNS;
            if (conn_next(d, &d->conn[i], h, data)) {
                *cp = &d->conn[i];
                d->rr = (i + 1) % VSOCK_MAX_CONNS;
                found = true;
            }
        }
        if (found)
            return true;
        if (!d->nrst) /* (a connection that failed queued an RST) */
            return false;
    }
}

/* Sends what is waiting for the guest while it has rx buffers. */
static void pump_rx(VirtioVsock *d)
{
    VirtioMmio *t = &d->t;
    VirtQueue *vq = virtio_mmio_queue(t, Q_RX);
    bool pushed = false;
    while (vq && virtq_has_avail(vq)) {
        VsockHdr h;
        VsockConn *c;
        bool data;
        if (!next_packet(d, &h, &c, &data))
            break;
        VirtqElem *e = &d->elem;
        if (virtio_mmio_pop(t, Q_RX, vq, e) <= 0)
            break;
        if (e->out_num || e->in_len < VSOCK_HDR_LEN) {
            virtio_mmio_break(t, "queue 0: rx buffer is device-readable or shorter than a header");
            break;
        }
        const struct iovec *in = e->iov + e->out_num;
        if (data) {
            uint32_t want = vsock_peer_credit(c->peer_buf_alloc, c->peer_fwd_cnt, c->rx_cnt);
            if (want > e->in_len - VSOCK_HDR_LEN)
                want = (uint32_t)(e->in_len - VSOCK_HDR_LEN);
            if (want > VSOCK_MAX_PAYLOAD)
                want = VSOCK_MAX_PAYLOAD;
            struct iovec sl[VIRTQ_MAX_SIZE];
            unsigned n = iov_slice(in, e->in_num, VSOCK_HDR_LEN, want, sl, VIRTQ_MAX_SIZE);
            ssize_t r;
            do
                r = n ? readv(c->fd, sl, (int)n) : 0;
            while (r < 0 && errno == EINTR);
            if (r <= 0) { /* cannot happen after the peek: end it */
                conn_kill(d, c, false);
                h.op = VSOCK_OP_RST;
                d->stats.rst_sent++;
            } else {
                h.len = (uint32_t)r;
                c->rx_cnt += (uint32_t)r;
                d->stats.rx_bytes += (uint64_t)r;
                if (!vsock_peer_credit(c->peer_buf_alloc, c->peer_fwd_cnt, c->rx_cnt))
                    c->pending |= PEND(VSOCK_OP_CREDIT_REQUEST);
            }
        }
        uint8_t b[VSOCK_HDR_LEN];
        vsock_hdr_encode(&h, b);
        iov_from_buf(in, e->in_num, 0, b, sizeof(b));
        virtq_push(vq, e, VSOCK_HDR_LEN + h.len);
        pushed = true;
    }
    if (pushed)
        virtio_mmio_notify_used(t, Q_RX);
}

static void send_reset_event(VirtioVsock *d)
{
    VirtioMmio *t = &d->t;
    VirtQueue *vq = d->reset_event ? virtio_mmio_queue(t, Q_EVENT) : NULL;
    VirtqElem *e = &d->elem;
    if (!vq || virtio_mmio_pop(t, Q_EVENT, vq, e) <= 0)
        return;
    if (e->out_num || e->in_len < 4) {
        virtio_mmio_break(t, "queue 2: event buffer is device-readable or shorter than 4 bytes");
        return;
    }
    static const uint8_t ev[4] = { VSOCK_EVENT_TRANSPORT_RESET, 0, 0, 0 };
    iov_from_buf(e->iov, e->in_num, 0, ev, sizeof(ev));
    virtq_push(vq, e, sizeof(ev));
    d->reset_event = false;
    virtio_mmio_notify_used(t, Q_EVENT);
}

static void vsock_notify(VirtioMmio *t, unsigned q)
{
    VirtioVsock *d = t->dev;
    if (q == Q_TX)
        process_tx(d);
    if (q == Q_EVENT)
        send_reset_event(d);
    else
        pump_rx(d);
}

/* Reads the host client's CONNECT line, a byte at a time (what follows
 * the line is the connection's data). */
static void read_hello(VirtioVsock *d, VsockConn *c)
{
    for (;;) {
        char ch;
        ssize_t r = read(c->fd, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return;
        if (r <= 0 || c->line_len >= sizeof(c->line)) {
            conn_kill(d, c, false);
            return;
        }
        c->line[c->line_len++] = ch;
        uint32_t port;
        int p = vsock_parse_connect(c->line, c->line_len, &port);
        if (p < 0) {
            conn_kill(d, c, false);
            return;
        }
        if (p == 0)
            continue;
        int i = (int)(c - d->conn);
        for (unsigned tries = 0; tries < 2 * VSOCK_MAX_CONNS; tries++) {
            uint32_t local = d->next_local_port++;
            if (d->next_local_port < FIRST_LOCAL_PORT)
                d->next_local_port = FIRST_LOCAL_PORT;
            if (vsock_table_set_key(&d->table, i, local, port) == i) {
                c->local_port = local;
                c->peer_port = port;
                c->state = C_REQUEST;
                c->pending = PEND(VSOCK_OP_REQUEST);
                d->stats.conns_host++;
                update_watch(d, c);
                return;
            }
        }
        conn_kill(d, c, false);
        return;
    }
}

typedef struct ConnEvent {
    VsockConn *c;
    uint32_t events;
} ConnEvent;

static void conn_event_fn(VirtioMmio *t, void *arg)
{
    const ConnEvent *ev = arg;
    VsockConn *c = ev->c;
    VirtioVsock *d = t->dev;
    if (c->fd < 0) /* closed since (a late event for a free slot) */
        return;
    if (c->state == C_HELLO) {
        read_hello(d, c);
    } else {
        if ((ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (c->watched & EPOLLIN))
            c->readable = true;
        if ((ev->events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && c->txlen)
            conn_flush(d, c);
        if (c->fd >= 0)
            update_watch(d, c);
    }
    pump_rx(d);
}

static void conn_event(void *opaque, uint32_t events)
{
    ConnEvent ev = { opaque, events };
    virtio_mmio_run_locked(&ev.c->dev->t, conn_event_fn, &ev);
}

static void accept_fn(VirtioMmio *t, void *arg)
{
    VirtioVsock *d = t->dev;
    (void)arg;
    for (int k = 0; k < ACCEPTS_PER_EVENT; k++) {
        int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int i = vsock_table_reserve(&d->table);
        VsockConn *c = i >= 0 ? &d->conn[i] : NULL;
        if (!c || evloop_add(t->loop, fd, EPOLLIN, conn_event, c) < 0) {
            d->stats.refused++;
            if (i >= 0)
                vsock_table_remove(&d->table, i);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->state = C_HELLO;
        c->watched = EPOLLIN;
    }
}

static void listen_event(void *opaque, uint32_t events)
{
    VirtioVsock *d = opaque;
    (void)events;
    virtio_mmio_run_locked(&d->t, accept_fn, NULL);
}

static void vsock_reset(VirtioMmio *t)
{
    VirtioVsock *d = t->dev;
    kill_all(d);
    d->reset_event = false;
}

static const StateField vsock_state_fields[] = {
    STATE_STRUCT(VirtioVsockStateData, t, &virtio_mmio_state_table),
    STATE_U64(VirtioVsockStateData, cid),
};
static const StateTable vsock_state_table = STATE_TABLE(VirtioVsockStateData, vsock_state_fields);
const StateSection virtio_vsock_state_section = {
    "virtio-vsock",
    VIRTIO_VSOCK_STATE_MAGIC,
    VIRTIO_VSOCK_STATE_VERSION,
    &vsock_state_table,
};

static int vsock_save(VirtioMmio *t, uint8_t **buf, size_t *len)
{
    VirtioVsockStateData st;
    memset(&st, 0, sizeof(st));
    st.cid = ((VirtioVsock *)t->dev)->cid;
    return virtio_mmio_save_state(t, &virtio_vsock_state_section, &st, buf, len);
}

static int vsock_load(VirtioMmio *t, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    VirtioVsock *d = t->dev;
    const StateSection *sec = &virtio_vsock_state_section;
    VirtioVsockStateData st;
    int ret = virtio_mmio_load_state(t, sec, buf, len, &st, err, errlen);
    if (ret < 0)
        return ret;
    if (st.cid < VSOCK_MIN_GUEST_CID || st.cid > VSOCK_MAX_GUEST_CID)
        return state_refuse(sec, err, errlen, "invalid guest CID");
    if (st.cid != d->cid)
        fprintf(stderr,
                "strata: %s: the guest had CID %llu, now %llu (it reads it again at the "
                "transport reset)\n",
                t->label, (unsigned long long)st.cid, (unsigned long long)d->cid);
    virtio_mmio_lock(t);
    kill_all(d); /* connections are not migrated */
    d->reset_event = (st.t.status & VIRTIO_STATUS_DRIVER_OK) != 0;
    virtio_mmio_set_state(t, &st.t); /* kicks the event queue: the reset goes out */
    virtio_mmio_unlock(t);
    return 0;
}

static const VirtioDevOps vsock_ops = {
    .name = "virtio-vsock",
    .device_id = VIRTIO_ID_VSOCK,
    .queue_notify = vsock_notify,
    .reset = vsock_reset,
    .save = vsock_save,
    .load = vsock_load,
};

int virtio_vsock_init(VirtioVsock *d, const VirtioEnv *env, uint64_t cid, const char *uds,
                      int listen_fd)
{
    memset(d, 0, sizeof(*d));
    d->listen_fd = -1;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        d->conn[i].dev = d;
        d->conn[i].fd = -1;
    }
    vsock_table_init(&d->table);
    d->next_local_port = FIRST_LOCAL_PORT;
    d->uds.sun_family = AF_UNIX;
    if (!env->loop || cid < VSOCK_MIN_GUEST_CID || cid > VSOCK_MAX_GUEST_CID || !uds ||
        strlen(uds) + 12 > sizeof(d->uds.sun_path)) {
        if (listen_fd >= 0)
            close(listen_fd);
        return -EINVAL;
    }
    memcpy(d->uds.sun_path, uds, strlen(uds) + 1);
    d->cid = cid;
    for (int i = 0; i < 8; i++)
        d->config[i] = (uint8_t)(cid >> (8 * i));
    int r = virtio_mmio_init(&d->t, env, &vsock_ops, d, NQ, 0, d->config, VIRTIO_VSOCK_CONFIG_LEN);
    if (r < 0) {
        if (listen_fd >= 0)
            close(listen_fd);
        return r;
    }
    if (listen_fd >= 0) {
        d->listen_fd = listen_fd;
        if ((r = evloop_add(env->loop, listen_fd, EPOLLIN, listen_event, d)) < 0) {
            virtio_vsock_destroy(d);
            return r;
        }
    }
    return 0;
}

void virtio_vsock_destroy(VirtioVsock *d)
{
    if (d->t.loop) {
        kill_all(d);
        if (d->listen_fd >= 0)
            evloop_del(d->t.loop, d->listen_fd);
    }
    if (d->listen_fd >= 0)
        close(d->listen_fd);
    d->listen_fd = -1;
    virtio_mmio_destroy(&d->t);
}

VirtioVsockStats virtio_vsock_stats(VirtioVsock *d)
{
    virtio_mmio_lock(&d->t);
    VirtioVsockStats s = d->stats;
    virtio_mmio_unlock(&d->t);
    return s;
}

unsigned virtio_vsock_conn_count(VirtioVsock *d)
{
    virtio_mmio_lock(&d->t);
    unsigned n = d->table.count;
    virtio_mmio_unlock(&d->t);
    return n;
}

VIRTIO_DEVICE_OPS_DEFINE(virtio_vsock, VirtioVsock);
