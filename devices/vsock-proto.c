/* SPDX-License-Identifier: MIT */
/* The virtio-vsock packet protocol (see vsock-proto.h). */
#include "devices/vsock-proto.h"

#include <string.h>

static uint64_t get_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void vsock_hdr_decode(const uint8_t *b, VsockHdr *h)
{
    h->src_cid = get_le(b, 8);
    h->dst_cid = get_le(b + 8, 8);
    h->src_port = (uint32_t)get_le(b + 16, 4);
    h->dst_port = (uint32_t)get_le(b + 20, 4);
    h->len = (uint32_t)get_le(b + 24, 4);
    h->type = (uint16_t)get_le(b + 28, 2);
    h->op = (uint16_t)get_le(b + 30, 2);
    h->flags = (uint32_t)get_le(b + 32, 4);
    h->buf_alloc = (uint32_t)get_le(b + 36, 4);
    h->fwd_cnt = (uint32_t)get_le(b + 40, 4);
}

void vsock_hdr_encode(const VsockHdr *h, uint8_t *b)
{
    put_le(b, h->src_cid, 8);
    put_le(b + 8, h->dst_cid, 8);
    put_le(b + 16, h->src_port, 4);
    put_le(b + 20, h->dst_port, 4);
    put_le(b + 24, h->len, 4);
    put_le(b + 28, h->type, 2);
    put_le(b + 30, h->op, 2);
    put_le(b + 32, h->flags, 4);
    put_le(b + 36, h->buf_alloc, 4);
    put_le(b + 40, h->fwd_cnt, 4);
}

const char *vsock_hdr_check(const VsockHdr *h, uint64_t guest_cid, uint64_t payload)
{
    if (h->src_cid != guest_cid)
        return "source CID is not the guest's";
    if (h->dst_cid != VSOCK_HOST_CID)
        return "destination CID is not the host (2)";
    if (h->type != VSOCK_TYPE_STREAM)
        return "not a stream packet";
    if (h->op == VSOCK_OP_INVALID || h->op > VSOCK_OP_CREDIT_REQUEST)
        return "unknown op";
    if (h->len > VSOCK_MAX_PAYLOAD)
        return "len too big";
    if (h->len > payload)
        return "len past the buffer";
    if (h->len && h->op != VSOCK_OP_RW)
        return "payload on a control packet";
    if (h->op == VSOCK_OP_SHUTDOWN && (h->flags & ~(VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)))
        return "unknown shutdown flags";
    return NULL;
}

uint32_t vsock_peer_credit(uint32_t buf_alloc, uint32_t fwd_cnt, uint32_t sent)
{
    uint32_t in_flight = sent - fwd_cnt;
    return in_flight > buf_alloc ? 0 : buf_alloc - in_flight;
}

static unsigned bucket_of(uint32_t local, uint32_t peer)
{
    uint32_t h = local * 0x9e3779b1u ^ peer * 0x85ebca6bu;
    return (h ^ h >> 16) % VSOCK_BUCKETS;
}

void vsock_table_init(VsockTable *t)
{
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < VSOCK_BUCKETS; i++)
        t->bucket[i] = -1;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        t->ent[i].next = -2; /* -2: in no bucket */
}

int vsock_table_find(const VsockTable *t, uint32_t local, uint32_t peer)
{
    for (int i = t->bucket[bucket_of(local, peer)]; i >= 0; i = t->ent[i].next)
        if (t->ent[i].local == local && t->ent[i].peer == peer)
            return i;
    return -1;
}

int vsock_table_reserve(VsockTable *t)
{
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        if (!t->ent[i].used) {
            t->ent[i].used = true;
            t->ent[i].next = -2;
            t->count++;
            return (int)i;
        }
    }
    return -1;
}

/* Takes slot i out of its bucket, if it is in one. */
static void unlink_slot(VsockTable *t, int i)
{
    if (t->ent[i].next == -2)
        return;
    int16_t *p = &t->bucket[bucket_of(t->ent[i].local, t->ent[i].peer)];
    while (*p >= 0 && *p != i)
        p = &t->ent[*p].next;
    if (*p == i)
        *p = t->ent[i].next;
    t->ent[i].next = -2;
}

int vsock_table_set_key(VsockTable *t, int i, uint32_t local, uint32_t peer)
{
    int other = vsock_table_find(t, local, peer);
    if (other >= 0)
        return other == i ? i : -1;
    unlink_slot(t, i);
    unsigned b = bucket_of(local, peer);
    t->ent[i].local = local;
    t->ent[i].peer = peer;
    t->ent[i].next = t->bucket[b];
    t->bucket[b] = (int16_t)i;
    return i;
}

int vsock_table_insert(VsockTable *t, uint32_t local, uint32_t peer)
{
    if (vsock_table_find(t, local, peer) >= 0)
        return -1;
    int i = vsock_table_reserve(t);
    return i < 0 ? -1 : vsock_table_set_key(t, i, local, peer);
}

void vsock_table_remove(VsockTable *t, int i)
{
    if (i < 0 || (unsigned)i >= VSOCK_MAX_CONNS || !t->ent[i].used)
        return;
    unlink_slot(t, i);
    t->ent[i].used = false;
    t->count--;
}

int vsock_parse_connect(const char *buf, size_t len, uint32_t *port)
{
    static const char word[] = "CONNECT ";
    size_t wl = sizeof(word) - 1;
    if (memcmp(buf, word, len < wl ? len : wl) != 0)
        return -1;
    if (len <= wl)
        return 0;
    uint64_t v = 0;
    size_t i = wl;
    for (; i < len && buf[i] >= '0' && buf[i] <= '9'; i++) {
        v = v * 10 + (uint64_t)(buf[i] - '0');
        if (v > 0xffffffffu || i - wl >= 10)
            return -1;
    }
    if (i == len)
        return len >= VSOCK_CONNECT_LINE_MAX ? -1 : 0;
    if (i == wl || buf[i] != '\n' || i + 1 != len)
        return -1;
    *port = (uint32_t)v;
    return 1;
}
