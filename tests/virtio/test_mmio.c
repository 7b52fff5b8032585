/* SPDX-License-Identifier: MIT */
/*
 * virtio-mmio transport and virtio-rng: register file, feature negotiation,
 * notifications (inline and through the ioeventfd + event loop), hostile
 * rings (loops, out-of-RAM buffers, 4 GiB lengths, avail index far ahead,
 * garbage in every register, queues reprogrammed while running) and
 * save/load.  No /dev/kvm.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/evloop.h"
#include "devices/virtio-rng.h"
#include "tests/virtio/vtest.h"

typedef struct Fix {
    Vt vt;
    VirtioRng rng;
    Evloop *loop;
} Fix;

static Fix *fix_new(bool with_loop)
{
    Fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    vt_setup(&f->vt);
    if (with_loop) {
        f->loop = evloop_new();
        assert_non_null(f->loop);
    }
    assert_int_equal(virtio_rng_init(&f->rng, &(VirtioEnv){ f->vt.ctx, f->vt.as, f->loop }), 0);
    virtio_mmio_connect_irq(&f->rng.t, &f->vt.irq, VT_BASE);
    vt_map(&f->vt, virtio_mmio_region(&f->rng.t));
    return f;
}

static void fix_free(Fix *f)
{
    vt_teardown(&f->vt);
    virtio_rng_destroy(&f->rng);
    if (f->loop)
        evloop_free(f->loop);
    vt_free(&f->vt);
    free(f);
}

static bool broken(Fix *f)
{
    return vt_r32(&f->vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET;
}

static void test_identity(void **state)
{
    (void)state;
    Fix *f = fix_new(false);
    Vt *vt = &f->vt;
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_VERSION), 2);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
    vt_w32(vt, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_DEVICE_FEATURES) & 1, 1); /* VERSION_1 */
    vt_w32(vt, VIRTIO_MMIO_QUEUE_SEL, 0);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_QUEUE_NUM_MAX), VIRTQ_MAX_SIZE);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_SEL, 1); /* rng has one queue */
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_STATUS), 0);
    /* a 2-byte register read is not a register access */
    uint16_t h = 0xffff;
    address_space_read(vt->as, VT_BASE, &h, 2);
    assert_int_equal(h, 0);
    fix_free(f);
}

static void test_features(void **state)
{
    (void)state;
    Fix *f = fix_new(false);
    Vt *vt = &f->vt;
    /* without VERSION_1: FEATURES_OK is refused */
    vt_w32(vt, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    vt_w32(vt, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    vt_w32(vt, VIRTIO_MMIO_DRIVER_FEATURES, 0);
    vt_w32(vt, VIRTIO_MMIO_STATUS, 0xb);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK, 0);
    /* a feature the device does not offer: refused */
    vt_w32(vt, VIRTIO_MMIO_DRIVER_FEATURES, 1 | (1u << 8));
    vt_w32(vt, VIRTIO_MMIO_STATUS, 0xb);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK, 0);
    /* DRIVER_OK without FEATURES_OK: refused */
    vt_w32(vt, VIRTIO_MMIO_STATUS, 0x7);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DRIVER_OK, 0);
    /* the proper sequence */
    assert_true(vt_negotiate(vt, 0) & VIRTIO_STATUS_FEATURES_OK);
    /* features are frozen after FEATURES_OK */
    vt_w32(vt, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    vt_w32(vt, VIRTIO_MMIO_DRIVER_FEATURES, 0);
    assert_true(f->rng.t.r.driver_features & VIRTIO_F_VERSION_1);
    /* queue sizes must be powers of two up to the maximum */
    vt_w32(vt, VIRTIO_MMIO_QUEUE_SEL, 0);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_NUM, 3);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_READY, 1);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_QUEUE_READY), 0);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_NUM, 512);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_READY, 1);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_QUEUE_READY), 0);
    assert_int_equal(vt_queue(vt, 0, 16), 1);
    /* reset clears everything */
    vt_w32(vt, VIRTIO_MMIO_STATUS, 0);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_STATUS), 0);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_QUEUE_READY), 0);
    fix_free(f);
}

/* event_idx=off / indirect_desc=off: the bit is gone from DeviceFeatures
 * and a driver that asks for it anyway gets no FEATURES_OK. */
static void test_withdraw_features(void **state)
{
    (void)state;
    Fix *f = fix_new(false);
    Vt *vt = &f->vt;
    vt_w32(vt, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    uint32_t lo = vt_r32(vt, VIRTIO_MMIO_DEVICE_FEATURES);
    assert_true(lo & (uint32_t)VIRTIO_F_EVENT_IDX);
    assert_true(lo & (uint32_t)VIRTIO_F_INDIRECT_DESC);
    virtio_mmio_withdraw_features(&f->rng.t, VIRTIO_F_EVENT_IDX | VIRTIO_F_VERSION_1);
    lo = vt_r32(vt, VIRTIO_MMIO_DEVICE_FEATURES);
    assert_false(lo & (uint32_t)VIRTIO_F_EVENT_IDX);
    assert_true(lo & (uint32_t)VIRTIO_F_INDIRECT_DESC);
    vt_w32(vt, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_DEVICE_FEATURES) & 1, 1); /* VERSION_1 stays */
    vt_w32(vt, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    vt_w32(vt, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    vt_w32(vt, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)VIRTIO_F_EVENT_IDX);
    vt_w32(vt, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    vt_w32(vt, VIRTIO_MMIO_DRIVER_FEATURES, 1);
    vt_w32(vt, VIRTIO_MMIO_STATUS, 0xb);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK, 0);
    fix_free(f);
}

static bool nonzero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return true;
    return false;
}

static void test_rng_fill(void **state)
{
    (void)state;
    Fix *f = fix_new(false);
    Vt *vt = &f->vt;
    vt_bringup(vt, 0, 1, 16);
    memset(vt_ptr(vt, VT_BUFS), 0, 256);
    VtBuf b[2] = { { VT_BUFS, 64, true }, { VT_BUFS + 128, 64, true } };
    uint16_t head = vt_add(vt, 0, b, 2);
    vt_kick(vt, 0);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(id, head);
    assert_int_equal(len, 128);
    assert_true(nonzero(vt_ptr(vt, VT_BUFS), 64));
    assert_true(nonzero(vt_ptr(vt, VT_BUFS + 128), 64));
    assert_false(nonzero(vt_ptr(vt, VT_BUFS + 64), 64)); /* between: untouched */
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_USED);
    assert_int_equal(vt->irq_state.level, 1);
    vt_w32(vt, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    assert_int_equal(vt->irq_state.level, 0);
    /* a readable-only chain gets 0 bytes; NO_INTERRUPT suppresses the irq */
    uint16_t flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    memcpy(vt_ptr(vt, vt->q[0].avail), &flags, 2);
    VtBuf r = { VT_BUFS, 16, false };
    vt_add(vt, 0, &r, 1);
    int raises = vt->irq_state.raises;
    vt_kick(vt, 0);
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(len, 0);
    assert_int_equal(vt->irq_state.raises, raises);
    assert_false(broken(f));
    fix_free(f);
}

static void test_ioeventfd_loop(void **state)
{
    (void)state;
    Fix *f = fix_new(true);
    Vt *vt = &f->vt;
    vt_bringup(vt, 0, 1, 8);
    VtBuf b = { VT_BUFS, 32, true };
    vt_add(vt, 0, &b, 1);
    vt_kick(vt, 0); /* goes to the eventfd, not the device */
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 0, &id, &len), 0);
    assert_true(evloop_run_once(f->loop, 1000) >= 1);
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(len, 32);
    /* a 2-byte notify write misses the ioeventfd: the fallback signals it */
    vt_add(vt, 0, &b, 1);
    uint16_t q = 0;
    address_space_write(vt->as, VT_BASE + VIRTIO_MMIO_QUEUE_NOTIFY, &q, 2);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    assert_true(evloop_run_once(f->loop, 1000) >= 1);
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    /* and in a thread */
    assert_int_equal(evloop_start(f->loop, "vt-loop"), 0);
    vt_add(vt, 0, &b, 1);
    vt_kick(vt, 0);
    evloop_stop(f->loop); /* joins; the kick may or may not be done */
    evloop_run_once(f->loop, 0);
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    fix_free(f);
}

typedef struct ResampleFds {
    int irqfd, resample_fd;
} ResampleFds;

static int fake_level_eventfd(void *opaque, int *resample_fd)
{
    ResampleFds *r = opaque;
    *resample_fd = r->resample_fd;
    return r->irqfd;
}

static void fake_set(void *opaque, int level)
{
    (void)opaque;
    (void)level;
    fail_msg("set() used although a resampling irqfd was offered");
}

/* Counter of eventfd fd (0 if it was not written). */
static uint64_t drain(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

/* A line offering a resampling irqfd: the used interrupt writes the irqfd,
 * a resample event (the guest's EOI) asserts it again only while
 * InterruptStatus is not 0, and set() is never called. */
static void test_resample_irqfd(void **state)
{
    (void)state;
    Fix *f = fix_new(true);
    Vt *vt = &f->vt;
    ResampleFds fds = { eventfd(0, EFD_NONBLOCK), eventfd(0, EFD_NONBLOCK) };
    assert_true(fds.irqfd >= 0 && fds.resample_fd >= 0);
    IrqLine line = { .set = fake_set, .level_eventfd = fake_level_eventfd, .opaque = &fds };
    virtio_mmio_connect_irq(&f->rng.t, &line, VT_BASE);
    vt_bringup(vt, 0, 1, 8);
    VtBuf b = { VT_BUFS, 32, true };
    vt_add(vt, 0, &b, 1);
    vt_kick(vt, 0);
    assert_true(evloop_run_once(f->loop, 1000) >= 1);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_USED);
    assert_int_equal(drain(fds.irqfd), 1);
    /* EOI before the ACK: still pending, so asserted again */
    uint64_t one = 1;
    assert_int_equal(write(fds.resample_fd, &one, sizeof(one)), sizeof(one));
    assert_int_equal(evloop_run_once(f->loop, 1000), 1);
    assert_int_equal(drain(fds.irqfd), 1);
    assert_int_equal(drain(fds.resample_fd), 0);
    /* ACK then EOI: nothing pending, the line stays deasserted */
    vt_w32(vt, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    assert_int_equal(drain(fds.irqfd), 0);
    assert_int_equal(write(fds.resample_fd, &one, sizeof(one)), sizeof(one));
    assert_int_equal(evloop_run_once(f->loop, 1000), 1);
    assert_int_equal(drain(fds.irqfd), 0);
    assert_int_equal(vt->irq_state.raises, 0);
    fix_free(f);
    close(fds.irqfd);
    close(fds.resample_fd);
}

static void count_event(void *opaque, uint32_t events)
{
    int *n = opaque;
    if (events & EPOLLIN)
        (*n)++;
}

/* The loop is level triggered (an unread eventfd fires again), mod(0)
 * silences an fd without dropping it, mod(EPOLLIN) brings it back, and a
 * deleted fd's handler is not called again. */
static void test_evloop_mod_del(void **state)
{
    (void)state;
    Evloop *l = evloop_new();
    assert_non_null(l);
    int fd = eventfd(0, EFD_NONBLOCK);
    assert_true(fd >= 0);
    int n = 0;
    assert_int_equal(evloop_add(l, fd, EPOLLIN, count_event, &n), 0);
    assert_int_equal(evloop_add(l, fd, EPOLLIN, count_event, &n), -EEXIST);
    assert_int_equal(evloop_add(l, -1, EPOLLIN, count_event, &n), -EBADF);
    uint64_t one = 1;
    assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
    assert_int_equal(evloop_run_once(l, 1000), 1);
    assert_int_equal(evloop_run_once(l, 1000), 1); /* still readable */
    assert_int_equal(n, 2);
    assert_int_equal(evloop_mod(l, fd, 0), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(evloop_run_once(l, 0), 0);
    assert_int_equal(n, 2);
    assert_int_equal(evloop_mod(l, fd, EPOLLIN), 0);
    assert_int_equal(evloop_run_once(l, 1000), 1);
    assert_int_equal(n, 3);
    assert_int_equal(evloop_del(l, fd), 0);
    assert_int_equal(evloop_del(l, fd), -ENOENT);
    assert_int_equal(evloop_mod(l, fd, EPOLLIN), -ENOENT);
    for (int i = 0; i < 3; i++)
        assert_int_equal(evloop_run_once(l, 0), 0);
    assert_int_equal(n, 3);
    evloop_free(l);
    close(fd);
}

/* Brings the device up, lets `hostile` spoil queue 0, kicks, and checks
 * that the device is broken with a config interrupt and nothing used. */
static void expect_break(void (*hostile)(Vt *vt))
{
    Fix *f = fix_new(false);
    Vt *vt = &f->vt;
    vt_bringup(vt, 0, 1, 16);
    hostile(vt);
    vt_kick(vt, 0);
    assert_true(broken(f));
    assert_true(vt_r32(vt, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 0, &id, &len), 0);
    /* the driver writing Status does not clear NEEDS_RESET; a reset does,
     * and the device then works again */
    vt_w32(vt, VIRTIO_MMIO_STATUS, 0xf);
    assert_true(broken(f));
    vt_bringup(vt, 0, 1, 16);
    assert_false(broken(f));
    VtBuf b = { VT_BUFS, 8, true };
    vt_add(vt, 0, &b, 1);
    vt_kick(vt, 0);
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(len, 8);
    fix_free(f);
}

static void h_loop(Vt *vt)
{
    VtBuf b[2] = { { VT_BUFS, 8, true }, { VT_BUFS + 8, 8, true } };
    vt_add(vt, 0, b, 2);
    vt_write_desc(vt, 0, 1, VT_BUFS + 8, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
}

static void h_outside(Vt *vt)
{
    VtBuf b = { 0x80000000ull, 64, true };
    vt_add(vt, 0, &b, 1);
}

static void h_straddle(Vt *vt)
{
    VtBuf b = { VT_RAM_SIZE - 16, 64, true }; /* ends past RAM */
    vt_add(vt, 0, &b, 1);
}

static void h_4g(Vt *vt)
{
    VtBuf b = { VT_BUFS, 0xffffffffu, true };
    vt_add(vt, 0, &b, 1);
}

static void h_wrap(Vt *vt)
{
    VtBuf b = { 0xffffffffffffff00ull, 0x200, true };
    vt_add(vt, 0, &b, 1);
}

static void h_avail_ahead(Vt *vt)
{
    vt_set_avail_idx(vt, 0, 1000);
}

static void h_head_past(Vt *vt)
{
    VtBuf b = { VT_BUFS, 8, true };
    vt_add(vt, 0, &b, 1);
    uint16_t bad = 500;
    memcpy(vt_ptr(vt, vt->q[0].avail + 4), &bad, 2);
}

static void h_next_past(Vt *vt)
{
    vt_add(vt, 0, &(VtBuf){ VT_BUFS, 8, true }, 1);
    vt_write_desc(vt, 0, 0, VT_BUFS, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 16);
}

static void h_indirect(Vt *vt)
{
    vt_add(vt, 0, &(VtBuf){ VT_BUFS, 32, false }, 1);
    vt_write_desc(vt, 0, 0, VT_BUFS, 32, VIRTQ_DESC_F_INDIRECT, 0);
}

static void h_order(Vt *vt)
{
    VtBuf b[2] = { { VT_BUFS, 8, true }, { VT_BUFS + 8, 8, false } };
    vt_add(vt, 0, b, 2);
}

static void h_rings_outside(Vt *vt)
{
    vt_w32(vt, VIRTIO_MMIO_QUEUE_SEL, 0);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_READY, 0);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_DESC_LOW, 0xdead0000u);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_READY, 1);
}

static void h_ring_into_mmio(Vt *vt)
{
    vt_w32(vt, VIRTIO_MMIO_QUEUE_SEL, 0);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_READY, 0);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)VT_BASE);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_READY, 1);
}

static void test_break_loop(void **s)
{
    (void)s;
    expect_break(h_loop);
}
static void test_break_outside(void **s)
{
    (void)s;
    expect_break(h_outside);
}
static void test_break_straddle(void **s)
{
    (void)s;
    expect_break(h_straddle);
}
static void test_break_4g(void **s)
{
    (void)s;
    expect_break(h_4g);
}
static void test_break_wrap(void **s)
{
    (void)s;
    expect_break(h_wrap);
}
static void test_break_avail_ahead(void **s)
{
    (void)s;
    expect_break(h_avail_ahead);
}
static void test_break_head_past(void **s)
{
    (void)s;
    expect_break(h_head_past);
}
static void test_break_next_past(void **s)
{
    (void)s;
    expect_break(h_next_past);
}
static void test_break_indirect(void **s)
{
    (void)s;
    expect_break(h_indirect);
}
static void test_break_order(void **s)
{
    (void)s;
    expect_break(h_order);
}
static void test_break_rings_outside(void **s)
{
    (void)s;
    expect_break(h_rings_outside);
}
static void test_break_ring_into_mmio(void **s)
{
    (void)s;
    expect_break(h_ring_into_mmio);
}

static void test_reprogram_running(void **state)
{
    (void)state;
    Fix *f = fix_new(false);
    Vt *vt = &f->vt;
    vt_bringup(vt, 0, 1, 16);
    /* layout writes to a live queue are ignored: the old rings stay in use */
    vt_w32(vt, VIRTIO_MMIO_QUEUE_SEL, 0);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_DESC_LOW, 0xdead0000u);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_NUM, 2);
    VtBuf b = { VT_BUFS, 8, true };
    vt_add(vt, 0, &b, 1);
    vt_kick(vt, 0);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_false(broken(f));
    /* disabled, moved and re-enabled to garbage: broken, not crashed */
    vt_w32(vt, VIRTIO_MMIO_QUEUE_READY, 0);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0x7fffffffu);
    vt_w32(vt, VIRTIO_MMIO_QUEUE_READY, 1);
    vt_kick(vt, 0);
    assert_true(broken(f));
    fix_free(f);
}

static void test_garbage_registers(void **state)
{
    (void)state;
    Fix *f = fix_new(false);
    Vt *vt = &f->vt;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 200; round++) {
        for (uint64_t off = 0; off < VIRTIO_MMIO_SIZE; off += 4) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            unsigned size = 1u << (x >> 62); /* 1, 2, 4, 8 */
            uint64_t v = x;
            if ((x >> 8) % 7 == 0)
                v = off == VIRTIO_MMIO_STATUS ? 0xf : (x >> 16) % 4;
            address_space_write(vt->as, VT_BASE + off + ((x >> 20) & 3), &v, size);
            uint64_t r;
            address_space_read(vt->as, VT_BASE + off, &r, size);
        }
        /* sometimes a sane ring so that work really happens */
        if (round % 10 == 0) {
            vt_bringup(vt, 0, 1, 16);
            vt_add(vt, 0, &(VtBuf){ VT_BUFS, 64, true }, 1);
        }
        vt_kick(vt, 0);
    }
    vt_bringup(vt, 0, 1, 16);
    assert_false(broken(f));
    vt_add(vt, 0, &(VtBuf){ VT_BUFS, 64, true }, 1);
    vt_kick(vt, 0);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(len, 64);
    fix_free(f);
}

static void test_save_load(void **state)
{
    (void)state;
    Fix *a = fix_new(false);
    Vt *vt = &a->vt;
    vt_bringup(vt, 0, 1, 16);
    for (int i = 0; i < 3; i++) {
        vt_add(vt, 0, &(VtBuf){ VT_BUFS, 16, true }, 1);
        vt_kick(vt, 0);
    }
    uint8_t *buf;
    size_t len;
    assert_int_equal(virtio_mmio_save(&a->rng.t, &buf, &len), 0);

    /* a second device over the same guest memory takes over */
    VirtioRng *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    assert_int_equal(virtio_rng_init(b, &(VirtioEnv){ vt->ctx, vt->as, NULL }), 0);
    virtio_mmio_connect_irq(&b->t, &vt->irq, VT_BASE + 0x1000);
    char err[200] = "";
    /* every truncation and every flipped byte is refused, state unchanged */
    for (size_t n = 0; n < len; n++) {
        assert_true(virtio_mmio_load(&b->t, buf, n, err, sizeof(err)) < 0);
        buf[n] ^= 0x20;
        assert_true(virtio_mmio_load(&b->t, buf, len, err, sizeof(err)) < 0);
        buf[n] ^= 0x20;
        assert_int_equal(b->t.r.status, 0);
        assert_false(b->t.r.vq[0].ready);
    }
    assert_int_equal(virtio_mmio_load(&b->t, buf, len, err, sizeof(err)), 0);
    assert_int_equal(b->t.r.status, a->rng.t.r.status);
    assert_int_equal(b->t.r.vq[0].desc, a->rng.t.r.vq[0].desc);
    assert_int_equal(b->t.r.vq[0].last_avail_idx, 3);
    assert_int_equal(b->t.r.driver_features, VIRTIO_F_VERSION_1);
    /* the loaded device carries on where the first stopped */
    vt_teardown(vt);
    vt_map(vt, virtio_mmio_region(&b->t));
    uint32_t id, l;
    while (vt_used(vt, 0, &id, &l))
        ;
    vt_add(vt, 0, &(VtBuf){ VT_BUFS, 16, true }, 1);
    vt_kick(vt, 0);
    assert_int_equal(vt_used(vt, 0, &id, &l), 1);
    assert_int_equal(l, 16);
    free(buf);

    /* consistent CRC, inconsistent content */
    struct {
        const char *what;
        uint32_t status;
        uint64_t feat;
        uint16_t num;
        uint8_t nq;
    } bad[] = {
        { "unknown status bits", 0x10f, VIRTIO_F_VERSION_1, 16, 1 },
        { "unoffered feature", 0xf, VIRTIO_F_VERSION_1 | 1, 16, 1 },
        { "non-power-of-2 ready queue", 0xf, VIRTIO_F_VERSION_1, 3, 1 },
        { "queue count", 0xf, VIRTIO_F_VERSION_1, 16, 2 },
        { "FEATURES_OK without VERSION_1", 0xf, 0, 16, 1 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        StateWriter w;
        state_writer_init(&w);
        size_t sec = state_section_begin(&w, VIRTIO_RNG_STATE_MAGIC, 1);
        state_put_u32(&w, bad[i].status);
        state_put_u32(&w, 0);
        state_put_u32(&w, 0);
        state_put_u64(&w, bad[i].feat);
        state_put_u32(&w, 0);
        state_put_u32(&w, 0);
        state_put_u32(&w, 0);
        state_put_u8(&w, 0);
        state_put_u8(&w, bad[i].nq);
        for (unsigned q = 0; q < bad[i].nq; q++) {
            state_put_u16(&w, bad[i].num);
            state_put_u8(&w, 1);
            state_put_u64(&w, 0x10000);
            state_put_u64(&w, 0x11000);
            state_put_u64(&w, 0x12000);
            state_put_u16(&w, 0);
            state_put_u16(&w, 0);
        }
        state_section_end(&w, sec);
        uint32_t before = b->t.r.status;
        assert_true(virtio_mmio_load(&b->t, w.buf, w.len, err, sizeof(err)) < 0);
        assert_int_equal(b->t.r.status, before);
        state_writer_free(&w);
    }
    vt_teardown(vt);
    virtio_rng_destroy(b);
    free(b);
    virtio_rng_destroy(&a->rng);
    vt_free(vt);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_withdraw_features),
        cmocka_unit_test(test_rng_fill),
        cmocka_unit_test(test_ioeventfd_loop),
        cmocka_unit_test(test_resample_irqfd),
        cmocka_unit_test(test_evloop_mod_del),
        cmocka_unit_test(test_break_loop),
        cmocka_unit_test(test_break_outside),
        cmocka_unit_test(test_break_straddle),
        cmocka_unit_test(test_break_4g),
        cmocka_unit_test(test_break_wrap),
        cmocka_unit_test(test_break_avail_ahead),
        cmocka_unit_test(test_break_head_past),
        cmocka_unit_test(test_break_next_past),
        cmocka_unit_test(test_break_indirect),
        cmocka_unit_test(test_break_order),
        cmocka_unit_test(test_break_rings_outside),
        cmocka_unit_test(test_break_ring_into_mmio),
        cmocka_unit_test(test_reprogram_running),
        cmocka_unit_test(test_garbage_registers),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
