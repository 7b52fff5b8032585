/* SPDX-License-Identifier: MIT */
/*
 * The ring features of the common virtqueue code (virtqueue.h): indirect
 * descriptors that work (alone, after direct ones, at the size limit) and
 * every hostile indirect table (nested, too long, outside RAM, across its
 * end, in MMIO, length 0 or not a multiple of 16, loops, next past the
 * table, INDIRECT with NEXT, too many buffers, wrong order, over 2 GiB),
 * each breaking the device; and EVENT_IDX: the event arithmetic across
 * 2^16, avail_event, used_event suppression, the flag it replaces, a
 * full wrap of the used index, a load (which interrupts once), and the
 * notification counts of the same work with and without it.  No /dev/kvm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/virtio-blk.h"
#include "devices/virtio-net.h"
#include "devices/virtio-rng.h"
#include "tests/virtio/vnotify.h"
#include "tests/virtio/vtest.h"

#define TABLE (VT_BUFS + 0x10000) /* indirect tables */
#define RING_F (VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX)

typedef struct Fix {
    Vt vt;
    VirtioRng rng;
} Fix;

static Fix *fix_new(void)
{
    Fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    vt_setup(&f->vt);
    assert_int_equal(virtio_rng_init(&f->rng, &(VirtioEnv){ f->vt.ctx, f->vt.as, NULL }), 0);
    virtio_mmio_connect_irq(&f->rng.t, &f->vt.irq, VT_BASE);
    vt_map(&f->vt, virtio_mmio_region(&f->rng.t));
    return f;
}

static void fix_free(Fix *f)
{
    vt_teardown(&f->vt);
    virtio_rng_destroy(&f->rng);
    vt_free(&f->vt);
    free(f);
}

static bool broken(Vt *vt)
{
    return vt_r32(vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET;
}

static void put_desc(Vt *vt, uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    uint8_t *d = vt_ptr(vt, gpa);
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static uint64_t dev_features(Vt *vt)
{
    uint64_t f = 0;
    for (uint32_t sel = 0; sel < 2; sel++) {
        vt_w32(vt, VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
        f |= (uint64_t)vt_r32(vt, VIRTIO_MMIO_DEVICE_FEATURES) << (32 * sel);
    }
    return f;
}

static void test_need_event(void **state)
{
    (void)state;
    /* event in [old, new) modulo 2^16 */
    assert_true(vring_need_event(5, 6, 5));
    assert_false(vring_need_event(6, 6, 5));
    assert_false(vring_need_event(4, 6, 5));
    assert_true(vring_need_event(0, 10, 0));
    assert_true(vring_need_event(9, 10, 0));
    assert_false(vring_need_event(10, 10, 0));
    assert_false(vring_need_event(5, 5, 5)); /* nothing new */
    /* across the wrap */
    assert_true(vring_need_event(0xffff, 1, 0xfffe));
    assert_true(vring_need_event(0, 1, 0xfffe));
    assert_false(vring_need_event(1, 1, 0xfffe));
    assert_false(vring_need_event(0xfffd, 1, 0xfffe));
    assert_true(vring_need_event(0xfff0, 0x10, 0xfff0));
    assert_false(vring_need_event(0x10, 0x10, 0xfff0));
}

/* Every device offers both ring features, through the transport. */
static void test_offered(void **state)
{
    (void)state;
    Fix *f = fix_new();
    assert_int_equal(dev_features(&f->vt) & RING_F, RING_F);
    fix_free(f);

    Vt vt;
    vt_setup(&vt);
    VirtioBlk *blk = vt_blk_new(&vt);
    assert_int_equal(dev_features(&vt) & RING_F, RING_F);
    vt_teardown(&vt);
    virtio_blk_destroy(blk);
    free(blk);

    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    VirtioNet *net = calloc(1, sizeof(*net));
    assert_non_null(net);
    char err[200];
    static const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
    assert_int_equal(virtio_net_init(net, &(VirtioEnv){ vt.ctx, vt.as, NULL }, sv[0], mac, err,
                                     sizeof(err)),
                     0);
    vt_map(&vt, virtio_mmio_region(&net->t));
    assert_int_equal(dev_features(&vt) & RING_F, RING_F);
    vt_teardown(&vt);
    virtio_net_destroy(net);
    free(net);
    close(sv[1]);
    vt_free(&vt);
}

static bool nonzero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return true;
    return false;
}

/* An indirect table of three buffers, and the WRITE flag of the indirect
 * descriptor itself ignored (virtio 1.2, 2.7.5.3.2). */
static void test_indirect_rng(void **state)
{
    (void)state;
    Fix *f = fix_new();
    Vt *vt = &f->vt;
    vt_bringup(vt, VIRTIO_F_INDIRECT_DESC, 1, 16);
    memset(vt_ptr(vt, VT_BUFS), 0, 0x1000);
    VtBuf b[3] = { { VT_BUFS, 16, true },
                   { VT_BUFS + 0x100, 32, true },
                   { VT_BUFS + 0x200, 8, true } };
    uint16_t head = vt_add_indirect(vt, 0, TABLE, b, 3);
    vt_kick(vt, 0);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(id, head);
    assert_int_equal(len, 56);
    assert_true(nonzero(vt_ptr(vt, VT_BUFS), 16));
    assert_true(nonzero(vt_ptr(vt, VT_BUFS + 0x100), 32));
    assert_true(nonzero(vt_ptr(vt, VT_BUFS + 0x200), 8));
    assert_false(nonzero(vt_ptr(vt, VT_BUFS + 0x10), 0xf0));

    head = vt_add_indirect(vt, 0, TABLE + 0x100, b, 1);
    vt_write_desc(vt, 0, head, TABLE + 0x100, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
    vt_kick(vt, 0);
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(len, 16);
    assert_false(broken(vt));
    fix_free(f);
}

/* Exactly VIRTQ_MAX_INDIRECT descriptors in a table: taken. */
static void test_indirect_max(void **state)
{
    (void)state;
    Fix *f = fix_new();
    Vt *vt = &f->vt;
    vt_bringup(vt, VIRTIO_F_INDIRECT_DESC, 1, 16); /* a table bigger than the ring */
    VtBuf b[VIRTQ_MAX_INDIRECT];
    for (unsigned i = 0; i < VIRTQ_MAX_INDIRECT; i++)
        b[i] = (VtBuf){ VT_BUFS + 2 * i, 1, true };
    vt_add_indirect(vt, 0, TABLE, b, VIRTQ_MAX_INDIRECT);
    vt_kick(vt, 0);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(len, VIRTQ_MAX_INDIRECT);
    assert_false(broken(vt));
    fix_free(f);
}

static void blk_hdr(Vt *vt, uint64_t at, uint32_t type, uint64_t sector)
{
    uint8_t *h = vt_ptr(vt, at);
    memset(h, 0, 16);
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
}

/* virtio-blk: a direct header followed by an indirect table (data and
 * status), then the whole request indirect; the data goes to the disk
 * and back. */
static void test_indirect_blk(void **state)
{
    (void)state;
    Vt vt;
    vt_setup(&vt);
    VirtioBlk *blk = vt_blk_new(&vt);
    vt_bringup(&vt, VIRTIO_F_INDIRECT_DESC, 1, 16);
    uint8_t *data = vt_ptr(&vt, VT_BUFS + 0x1000), *st = vt_ptr(&vt, VT_BUFS + 0x800);
    for (int i = 0; i < 1024; i++)
        data[i] = (uint8_t)(i * 13 + 1);
    blk_hdr(&vt, VT_BUFS, VIRTIO_BLK_T_OUT, 3);
    *st = 0xff;
    /* header direct (NEXT), then the indirect descriptor ends the chain */
    VtBuf hdr = { VT_BUFS, 16, false };
    uint16_t head = vt_add(&vt, 0, (VtBuf[]){ hdr, hdr }, 2);
    vt_write_desc(&vt, 0, head, VT_BUFS, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(head + 1));
    put_desc(&vt, TABLE, VT_BUFS + 0x1000, 512, VIRTQ_DESC_F_NEXT, 1);
    put_desc(&vt, TABLE + 16, VT_BUFS + 0x1200, 512, VIRTQ_DESC_F_NEXT, 2);
    put_desc(&vt, TABLE + 32, VT_BUFS + 0x800, 1, VIRTQ_DESC_F_WRITE, 0);
    vt_write_desc(&vt, 0, (uint16_t)(head + 1), TABLE, 48, VIRTQ_DESC_F_INDIRECT, 0);
    vt_kick(&vt, 0);
    uint32_t id, len;
    assert_int_equal(vt_used(&vt, 0, &id, &len), 1);
    assert_int_equal(id, head);
    assert_int_equal(*st, VIRTIO_BLK_S_OK);
    assert_false(broken(&vt));

    /* read it back, the whole request in one table */
    blk_hdr(&vt, VT_BUFS, VIRTIO_BLK_T_IN, 3);
    memset(vt_ptr(&vt, VT_BUFS + 0x2000), 0, 1024);
    *st = 0xff;
    VtBuf rd[3] = { { VT_BUFS, 16, false },
                    { VT_BUFS + 0x2000, 1024, true },
                    { VT_BUFS + 0x800, 1, true } };
    vt_add_indirect(&vt, 0, TABLE + 0x100, rd, 3);
    vt_kick(&vt, 0);
    assert_int_equal(vt_used(&vt, 0, &id, &len), 1);
    assert_int_equal(len, 1025);
    assert_int_equal(*st, VIRTIO_BLK_S_OK);
    assert_memory_equal(vt_ptr(&vt, VT_BUFS + 0x2000), data, 1024);
    vt_teardown(&vt);
    virtio_blk_destroy(blk);
    free(blk);
    vt_free(&vt);
}

/* ---- hostile indirect tables: each breaks the device ---- */

/* An indirect head whose table entry 0..n-1 the case then spoils. */
static uint16_t ind(Vt *vt, unsigned n)
{
    VtBuf b[4];
    for (unsigned i = 0; i < n && i < 4; i++)
        b[i] = (VtBuf){ VT_BUFS + 0x100 * i, 8, true };
    return vt_add_indirect(vt, 0, TABLE, b, n);
}

static void h_nested(Vt *vt)
{
    ind(vt, 2);
    put_desc(vt, TABLE + 16, TABLE + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
    put_desc(vt, TABLE + 0x100, VT_BUFS, 8, VIRTQ_DESC_F_WRITE, 0);
}

static void h_too_long(Vt *vt)
{
    uint16_t h = ind(vt, 1);
    vt_write_desc(vt, 0, h, TABLE, 16 * (VIRTQ_MAX_INDIRECT + 1), VIRTQ_DESC_F_INDIRECT, 0);
}

static void h_huge(Vt *vt)
{
    uint16_t h = ind(vt, 1);
    vt_write_desc(vt, 0, h, TABLE, 0xfffffff0u, VIRTQ_DESC_F_INDIRECT, 0);
}

static void h_outside(Vt *vt)
{
    uint16_t h = ind(vt, 1);
    vt_write_desc(vt, 0, h, 0x80000000ull, 32, VIRTQ_DESC_F_INDIRECT, 0);
}

static void h_straddle(Vt *vt)
{
    uint16_t h = ind(vt, 1);
    vt_write_desc(vt, 0, h, VT_RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
}

static void h_in_mmio(Vt *vt)
{
    uint16_t h = ind(vt, 1);
    vt_write_desc(vt, 0, h, VT_BASE, 32, VIRTQ_DESC_F_INDIRECT, 0);
}

static void h_wraps(Vt *vt)
{
    uint16_t h = ind(vt, 1);
    vt_write_desc(vt, 0, h, 0xfffffffffffffff0ull, 32, VIRTQ_DESC_F_INDIRECT, 0);
}

static void h_zero(Vt *vt)
{
    uint16_t h = ind(vt, 1);
    vt_write_desc(vt, 0, h, TABLE, 0, VIRTQ_DESC_F_INDIRECT, 0);
}

static void h_not16(Vt *vt)
{
    uint16_t h = ind(vt, 2);
    vt_write_desc(vt, 0, h, TABLE, 24, VIRTQ_DESC_F_INDIRECT, 0);
}

static void h_loop(Vt *vt)
{
    ind(vt, 2);
    put_desc(vt, TABLE + 16, VT_BUFS + 0x100, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
}

static void h_self_loop(Vt *vt)
{
    ind(vt, 1);
    put_desc(vt, TABLE, VT_BUFS, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
}

static void h_next_past(Vt *vt)
{
    ind(vt, 2);
    put_desc(vt, TABLE + 16, VT_BUFS + 0x100, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
}

/* next 1 would be the queue's descriptor 1 if the device chained out of
 * the table; inside the table it is past its end */
static void h_next_into_ring(Vt *vt)
{
    vt_write_desc(vt, 0, 1, VT_BUFS + 0x100, 8, VIRTQ_DESC_F_WRITE, 0);
    ind(vt, 1);
    put_desc(vt, TABLE, VT_BUFS, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
}

static void h_with_next(Vt *vt)
{
    uint16_t h = ind(vt, 1);
    vt_write_desc(vt, 0, (uint16_t)(h + 1), VT_BUFS + 0x100, 8, VIRTQ_DESC_F_WRITE, 0);
    vt_write_desc(vt, 0, h, TABLE, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT,
                  (uint16_t)(h + 1));
}

static void h_order(Vt *vt)
{
    ind(vt, 2);
    put_desc(vt, TABLE + 16, VT_BUFS + 0x100, 8, 0, 0); /* readable after writable */
}

/* a writable direct descriptor, then a table starting readable */
static void h_order_across(Vt *vt)
{
    VtBuf b[2] = { { VT_BUFS, 8, true }, { TABLE, 16, false } };
    uint16_t h = vt_add(vt, 0, b, 2);
    vt_write_desc(vt, 0, (uint16_t)(h + 1), TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
    put_desc(vt, TABLE, VT_BUFS + 0x100, 8, 0, 0);
}

/* two direct buffers and a full table: 258 buffers */
static void h_too_many(Vt *vt)
{
    VtBuf b[3] = { { VT_BUFS, 1, true }, { VT_BUFS + 1, 1, true }, { TABLE, 16, false } };
    uint16_t h = vt_add(vt, 0, b, 3);
    for (unsigned i = 0; i < VIRTQ_MAX_INDIRECT; i++)
        put_desc(vt, TABLE + 16ull * i, VT_BUFS + 0x100 + i, 1,
                 VIRTQ_DESC_F_WRITE | (i + 1 < VIRTQ_MAX_INDIRECT ? VIRTQ_DESC_F_NEXT : 0),
                 (uint16_t)(i + 1));
    vt_write_desc(vt, 0, (uint16_t)(h + 2), TABLE, 16 * VIRTQ_MAX_INDIRECT, VIRTQ_DESC_F_INDIRECT,
                  0);
}

static void h_4g(Vt *vt)
{
    ind(vt, 2);
    put_desc(vt, TABLE + 16, VT_BUFS + 0x100, 0xffffffffu, VIRTQ_DESC_F_WRITE, 0);
}

static void h_buf_outside(Vt *vt)
{
    ind(vt, 2);
    put_desc(vt, TABLE + 16, 0x80000000ull, 8, VIRTQ_DESC_F_WRITE, 0);
}

/* Brings the rng up with indirect descriptors, lets `hostile` spoil queue
 * 0, kicks: the device is broken (one log line), raised a config
 * interrupt, used nothing; after a reset it works again. */
static void expect_break(void (*hostile)(Vt *vt))
{
    Fix *f = fix_new();
    Vt *vt = &f->vt;
    vt_bringup(vt, VIRTIO_F_INDIRECT_DESC, 1, 16);
    memset(vt_ptr(vt, TABLE), 0, 16 * (VIRTQ_MAX_INDIRECT + 1));
    hostile(vt);
    uint64_t breaks = f->rng.t.broken_count;
    vt_kick(vt, 0);
    vt_kick(vt, 0);
    assert_true(broken(vt));
    assert_int_equal(f->rng.t.broken_count, breaks + 1);
    assert_true(vt_r32(vt, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 0, &id, &len), 0);
    vt_bringup(vt, VIRTIO_F_INDIRECT_DESC, 1, 16);
    assert_false(broken(vt));
    VtBuf b = { VT_BUFS, 8, true };
    vt_add_indirect(vt, 0, TABLE, &b, 1);
    vt_kick(vt, 0);
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(len, 8);
    fix_free(f);
}

#define HOSTILE(name) \
    static void test_break_##name(void **s) \
    { \
        (void)s; \
        expect_break(h_##name); \
    }
HOSTILE(nested)
HOSTILE(too_long)
HOSTILE(huge)
HOSTILE(outside)
HOSTILE(straddle)
HOSTILE(in_mmio)
HOSTILE(wraps)
HOSTILE(zero)
HOSTILE(not16)
HOSTILE(loop)
HOSTILE(self_loop)
HOSTILE(next_past)
HOSTILE(next_into_ring)
HOSTILE(with_next)
HOSTILE(order)
HOSTILE(order_across)
HOSTILE(too_many)
HOSTILE(4g)
HOSTILE(buf_outside)

/* ---- EVENT_IDX ---- */

static VirtioQueueStats stats(Fix *f)
{
    return virtio_mmio_queue_stats(&f->rng.t, 0);
}

/* One request, kicked and completed inline; true if it interrupted. */
static bool one(Fix *f)
{
    uint64_t before = stats(f).interrupts;
    vt_add(&f->vt, 0, &(VtBuf){ VT_BUFS, 8, true }, 1);
    vt_kick(&f->vt, 0);
    uint32_t id, len;
    assert_int_equal(vt_used(&f->vt, 0, &id, &len), 1);
    vt_w32(&f->vt, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
    return stats(f).interrupts != before;
}

/* The device asks for a kick on the next entry once it found the queue
 * empty. */
static void test_avail_event(void **state)
{
    (void)state;
    Fix *f = fix_new();
    Vt *vt = &f->vt;
    vt_bringup(vt, VIRTIO_F_EVENT_IDX, 1, 16);
    for (int i = 0; i < 3; i++)
        vt_add(vt, 0, &(VtBuf){ VT_BUFS + 16 * i, 8, true }, 1);
    assert_true(vt_kick_prepare(vt, 0));
    vt_kick(vt, 0);
    assert_int_equal(vt_avail_event(vt, 0), 3);
    /* the next add is due a kick; a second one before the device ran not */
    vt_add(vt, 0, &(VtBuf){ VT_BUFS, 8, true }, 1);
    assert_true(vt_kick_prepare(vt, 0));
    vt_add(vt, 0, &(VtBuf){ VT_BUFS, 8, true }, 1);
    assert_false(vt_kick_prepare(vt, 0));
    vt_kick(vt, 0);
    assert_int_equal(vt_avail_event(vt, 0), 5);
    assert_int_equal(stats(f).kicks, 2);
    assert_false(broken(vt));
    fix_free(f);
}

/* used_event decides; the first decision after bring-up interrupts; the
 * NO_INTERRUPT flag is ignored. */
static void test_used_event(void **state)
{
    (void)state;
    Fix *f = fix_new();
    Vt *vt = &f->vt;
    vt_bringup(vt, VIRTIO_F_EVENT_IDX, 1, 16);
    vt_set_used_event(vt, 0, 5);
    uint16_t flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    memcpy(vt_ptr(vt, vt->q[0].avail), &flags, 2);
    assert_true(one(f)); /* entry 0: no decision yet, so yes */
    for (int i = 1; i < 5; i++)
        assert_false(one(f)); /* entries 1..4 */
    assert_true(one(f));      /* entry 5 */
    assert_false(one(f));     /* 6: used_event is behind */
    vt_set_used_event(vt, 0, 7);
    assert_true(one(f));
    VirtioQueueStats s = stats(f);
    assert_int_equal(s.interrupts, 3);
    assert_int_equal(s.suppressed, 5);
    assert_int_equal(s.kicks, 8);
    /* without EVENT_IDX the flag rules again and used_event is ignored */
    vt_bringup(vt, 0, 1, 16);
    vt_set_used_event(vt, 0, 1000);
    assert_true(one(f));
    memcpy(vt_ptr(vt, vt->q[0].avail), &flags, 2);
    assert_false(one(f));
    fix_free(f);
}

/* 2^16 + 10 requests, the driver re-arming used_event after each: every
 * one interrupts, across the wraps of both indices. */
static void test_event_wrap(void **state)
{
    (void)state;
    Fix *f = fix_new();
    Vt *vt = &f->vt;
    vt_bringup(vt, VIRTIO_F_EVENT_IDX, 1, 4);
    unsigned n = 65536 + 10;
    for (unsigned i = 0; i < n; i++) {
        vt_set_used_event(vt, 0, vt->q[0].used_seen);
        if (!one(f))
            fail_msg("request %u did not interrupt", i);
    }
    assert_int_equal(stats(f).interrupts, n);
    assert_int_equal(stats(f).suppressed, 0);
    assert_int_equal(f->rng.t.r.vq[0].used_idx, (uint16_t)n);
    fix_free(f);
}

/* After a load the first decision interrupts, whatever used_event says
 * (the last signalled index is not in the stream). */
static void test_event_load(void **state)
{
    (void)state;
    Fix *a = fix_new();
    Vt *vt = &a->vt;
    vt_bringup(vt, VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC, 1, 16);
    vt_set_used_event(vt, 0, 0);
    assert_true(one(a));
    assert_false(one(a));
    uint8_t *buf;
    size_t len;
    assert_int_equal(virtio_mmio_save(&a->rng.t, &buf, &len), 0);
    VirtioRng *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    assert_int_equal(virtio_rng_init(b, &(VirtioEnv){ vt->ctx, vt->as, NULL }), 0);
    virtio_mmio_connect_irq(&b->t, &vt->irq, VT_BASE + 0x1000);
    char err[200];
    assert_int_equal(virtio_mmio_load(&b->t, buf, len, err, sizeof(err)), 0);
    free(buf);
    assert_int_equal(b->t.r.driver_features & RING_F, RING_F);
    vt_teardown(vt);
    vt_map(vt, virtio_mmio_region(&b->t));
    vt_add(vt, 0, &(VtBuf){ VT_BUFS, 8, true }, 1);
    vt_kick(vt, 0);
    uint32_t id, l;
    assert_int_equal(vt_used(vt, 0, &id, &l), 1);
    VirtioQueueStats s = virtio_mmio_queue_stats(&b->t, 0);
    assert_int_equal(s.interrupts, 1);
    /* then used_event rules again */
    vt_add(vt, 0, &(VtBuf){ VT_BUFS, 8, true }, 1);
    vt_kick(vt, 0);
    assert_int_equal(vt_used(vt, 0, &id, &l), 1);
    s = virtio_mmio_queue_stats(&b->t, 0);
    assert_int_equal(s.interrupts, 1);
    assert_int_equal(s.suppressed, 1);
    vt_teardown(vt);
    virtio_rng_destroy(b);
    free(b);
    virtio_rng_destroy(&a->rng);
    vt_free(vt);
    free(a);
}

/* The same schedule of work with and without EVENT_IDX: fewer kicks and
 * fewer interrupts with it, all requests done, nothing broken. */
static void test_event_counts(void **state)
{
    (void)state;
    VnParams p = { .requests = 2000,
                   .queue_num = 64,
                   .max_batch = 4,
                   .p_device = 30,
                   .p_irq = 30,
                   .seed = 0x5eed };
    for (int ind_on = 0; ind_on < 2; ind_on++) {
        VnResult without, with;
        p.indirect = ind_on;
        p.event_idx = false;
        if (vn_run(&p, &without) < 0)
            skip(); /* no event loop here (io_uring) */
        p.event_idx = true;
        assert_int_equal(vn_run(&p, &with), 0);
        printf("notifications for %u requests%s: kicks %llu vs %llu, interrupts %llu vs %llu "
               "(without vs with EVENT_IDX)\n",
               p.requests, ind_on ? " (indirect)" : "", (unsigned long long)without.kicks,
               (unsigned long long)with.kicks, (unsigned long long)without.interrupts,
               (unsigned long long)with.interrupts);
        assert_int_equal(without.completed, p.requests);
        assert_int_equal(with.completed, p.requests);
        assert_true(with.kicks < without.kicks);
        assert_true(with.interrupts < without.interrupts);
        assert_int_equal(without.suppressed, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_need_event),         cmocka_unit_test(test_offered),
        cmocka_unit_test(test_indirect_rng),       cmocka_unit_test(test_indirect_max),
        cmocka_unit_test(test_indirect_blk),       cmocka_unit_test(test_break_nested),
        cmocka_unit_test(test_break_too_long),     cmocka_unit_test(test_break_huge),
        cmocka_unit_test(test_break_outside),      cmocka_unit_test(test_break_straddle),
        cmocka_unit_test(test_break_in_mmio),      cmocka_unit_test(test_break_wraps),
        cmocka_unit_test(test_break_zero),         cmocka_unit_test(test_break_not16),
        cmocka_unit_test(test_break_loop),         cmocka_unit_test(test_break_self_loop),
        cmocka_unit_test(test_break_next_past),    cmocka_unit_test(test_break_next_into_ring),
        cmocka_unit_test(test_break_with_next),    cmocka_unit_test(test_break_order),
        cmocka_unit_test(test_break_order_across), cmocka_unit_test(test_break_too_many),
        cmocka_unit_test(test_break_4g),           cmocka_unit_test(test_break_buf_outside),
        cmocka_unit_test(test_avail_event),        cmocka_unit_test(test_used_event),
        cmocka_unit_test(test_event_wrap),         cmocka_unit_test(test_event_load),
        cmocka_unit_test(test_event_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
