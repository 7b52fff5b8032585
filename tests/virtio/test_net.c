/* SPDX-License-Identifier: MIT */
/*
 * virtio-net over fake guest memory with a datagram socketpair standing in
 * for the TAP fd (same framing: 12-byte vnet header + frame per message):
 * transmit, receive, receive with no buffers then buffers added, too-small
 * buffers, malformed transmits, MAC in config, save/load.  No /dev/kvm.
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

#include "devices/evloop.h"
#include "devices/virtio-net.h"
#include "tests/virtio/vtest.h"

typedef struct Fix {
    Vt vt;
    VirtioNet *net;
    Evloop *loop;
    int peer; /* the "host side" of the TAP */
} Fix;

static const uint8_t MAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static Fix *fix_new(void)
{
    Fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    f->peer = sv[1];
    vt_setup(&f->vt);
    assert_non_null(f->loop = evloop_new());
    f->net = calloc(1, sizeof(*f->net));
    assert_non_null(f->net);
    char err[256];
    assert_int_equal(virtio_net_init(f->net, &(VirtioEnv){ f->vt.ctx, f->vt.as, f->loop }, sv[0],
                                     MAC, err, sizeof(err)),
                     0);
    virtio_mmio_connect_irq(&f->net->t, &f->vt.irq, VT_BASE);
    vt_map(&f->vt, virtio_mmio_region(&f->net->t));
    return f;
}

static void fix_free(Fix *f)
{
    vt_teardown(&f->vt);
    virtio_net_destroy(f->net);
    free(f->net);
    evloop_free(f->loop);
    vt_free(&f->vt);
    close(f->peer);
    free(f);
}

static void pump(Fix *f)
{
    while (evloop_run_once(f->loop, 0) > 0)
        ;
}

static void test_config_mac(void **state)
{
    (void)state;
    Fix *f = fix_new();
    assert_int_equal(vt_r32(&f->vt, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_NET);
    for (int i = 0; i < 6; i++)
        assert_int_equal(vt_cfg(&f->vt, (uint64_t)i, 1), MAC[i]);
    vt_w32(&f->vt, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    assert_true(vt_r32(&f->vt, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << VIRTIO_NET_F_MAC));
    uint8_t m[6];
    assert_int_equal(virtio_net_parse_mac("02:00:00:aa:bb:cc", m), 0);
    assert_int_equal(m[3], 0xaa);
    assert_int_equal(virtio_net_parse_mac("02:00:00:aa:bb", m), -1);
    assert_int_equal(virtio_net_parse_mac("02:00:00:aa:bb:cc:dd", m), -1);
    assert_int_equal(virtio_net_parse_mac("02-00-00-aa-bb-cc", m), -1);
    assert_int_equal(virtio_net_parse_mac("0x:00:00:aa:bb:cc", m), -1);
    char err[128];
    assert_true(virtio_net_open_tap("a-name-much-too-long-for-ifnamsiz", err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "net tap="));
    fix_free(f);
}

static void test_tx(void **state)
{
    (void)state;
    Fix *f = fix_new();
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 2, 64);
    uint8_t *p = vt_ptr(vt, VT_BUFS);
    memset(p, 0x77, VIRTIO_NET_HDR_LEN); /* garbage flags/gso: must not go out */
    for (int i = 0; i < 60; i++)
        p[0x100 + i] = (uint8_t)i;
    VtBuf b[2] = { { VT_BUFS, VIRTIO_NET_HDR_LEN, false }, { VT_BUFS + 0x100, 60, false } };
    vt_add(vt, VIRTIO_NET_TXQ, b, 2);
    vt_kick(vt, VIRTIO_NET_TXQ);
    pump(f);
    uint8_t got[200];
    ssize_t n = recv(f->peer, got, sizeof(got), MSG_DONTWAIT);
    assert_int_equal(n, VIRTIO_NET_HDR_LEN + 60);
    for (int i = 0; i < VIRTIO_NET_HDR_LEN; i++)
        assert_int_equal(got[i], 0);
    for (int i = 0; i < 60; i++)
        assert_int_equal(got[VIRTIO_NET_HDR_LEN + i], i);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, VIRTIO_NET_TXQ, &id, &len), 1);
    /* too short for a header: dropped, not broken */
    vt_add(vt, VIRTIO_NET_TXQ, &(VtBuf){ VT_BUFS, 8, false }, 1);
    vt_kick(vt, VIRTIO_NET_TXQ);
    pump(f);
    assert_int_equal(vt_used(vt, VIRTIO_NET_TXQ, &id, &len), 1);
    assert_true(recv(f->peer, got, sizeof(got), MSG_DONTWAIT) < 0);
    VirtioNetStats ns;
    virtio_net_get_stats(f->net, &ns);
    assert_int_equal(ns.tx_packets, 1);
    assert_int_equal(ns.tx_bytes, 60);
    assert_int_equal(ns.tx_dropped, 1);
    assert_int_equal(ns.rx_packets, 0);
    assert_false(vt_r32(vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
    fix_free(f);
}

static void send_frame(Fix *f, size_t len, uint8_t seed)
{
    uint8_t pkt[2000];
    memset(pkt, 0x55, VIRTIO_NET_HDR_LEN); /* whatever the host put there */
    for (size_t i = 0; i < len; i++)
        pkt[VIRTIO_NET_HDR_LEN + i] = (uint8_t)(seed + i);
    assert_int_equal(send(f->peer, pkt, VIRTIO_NET_HDR_LEN + len, 0),
                     (ssize_t)(VIRTIO_NET_HDR_LEN + len));
}

static void test_rx(void **state)
{
    (void)state;
    Fix *f = fix_new();
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 2, 64);
    uint32_t id, len;
    /* a frame arrives before any buffer: it waits in the backend */
    send_frame(f, 100, 1);
    pump(f);
    assert_int_equal(vt_used(vt, VIRTIO_NET_RXQ, &id, &len), 0);
    assert_false(f->net->rx_polling);
    /* the driver adds a buffer (split in two) and notifies */
    memset(vt_ptr(vt, VT_BUFS), 0xee, 0x1000);
    VtBuf b[2] = { { VT_BUFS, 10, true }, { VT_BUFS + 0x100, 1516, true } };
    vt_add(vt, VIRTIO_NET_RXQ, b, 2);
    vt_kick(vt, VIRTIO_NET_RXQ);
    pump(f);
    assert_int_equal(vt_used(vt, VIRTIO_NET_RXQ, &id, &len), 1);
    assert_int_equal(len, VIRTIO_NET_HDR_LEN + 100);
    uint8_t *h = vt_ptr(vt, VT_BUFS);
    for (int i = 0; i < 10; i++)
        assert_int_equal(h[i], 0);
    uint8_t *p2 = vt_ptr(vt, VT_BUFS + 0x100);
    assert_int_equal(p2[0], 1); /* num_buffers = 1 */
    assert_int_equal(p2[1], 0);
    assert_int_equal(p2[2], 1); /* frame byte 0 = seed */
    assert_int_equal(p2[2 + 99], (uint8_t)(1 + 99));
    /* with buffers posted, frames flow as they arrive (event loop) */
    vt_add(vt, VIRTIO_NET_RXQ, &(VtBuf){ VT_BUFS + 0x1000, 1526, true }, 1);
    vt_kick(vt, VIRTIO_NET_RXQ);
    pump(f);
    send_frame(f, 60, 9);
    pump(f);
    assert_int_equal(vt_used(vt, VIRTIO_NET_RXQ, &id, &len), 1);
    assert_int_equal(len, VIRTIO_NET_HDR_LEN + 60);
    /* a buffer too small for the frame: returned empty, frame dropped */
    vt_add(vt, VIRTIO_NET_RXQ, &(VtBuf){ VT_BUFS + 0x2000, 20, true }, 1);
    vt_kick(vt, VIRTIO_NET_RXQ);
    send_frame(f, 200, 3);
    pump(f);
    assert_int_equal(vt_used(vt, VIRTIO_NET_RXQ, &id, &len), 1);
    assert_int_equal(len, 0);
    VirtioNetStats ns;
    virtio_net_get_stats(f->net, &ns);
    assert_int_equal(ns.rx_packets, 2);
    assert_int_equal(ns.rx_bytes, 100 + 60);
    assert_int_equal(ns.rx_dropped, 1);
    assert_int_equal(ns.tx_packets, 0);
    /* reset stops reception */
    vt_w32(vt, VIRTIO_MMIO_STATUS, 0);
    assert_false(f->net->rx_polling);
    fix_free(f);
}

static unsigned drain_used(Vt *vt, unsigned q)
{
    uint32_t id, len;
    unsigned n = 0;
    while (vt_used(vt, q, &id, &len) > 0)
        n++;
    return n;
}

/* A pps limit: the burst goes at once, both ways; the rest waits (transmit:
 * in the avail ring; receive: in the backend, not read), nothing is
 * dropped, the timer lets it through, the waits are counted. */
static void test_rate_limit(void **state)
{
    (void)state;
    Fix *f = fix_new();
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 2, 64);
    RateLimitConfig cfg = { .ops = 20, .ops_burst = 2 };
    assert_int_equal(virtio_net_set_rate_limit(f->net, &cfg), 0);
    RateLimitConfig got;
    virtio_net_get_rate_limit(f->net, &got);
    assert_int_equal(got.ops, 20);
    /* transmit 5 frames */
    for (int i = 0; i < 5; i++) {
        uint64_t at = VT_BUFS + 0x4000 + (uint64_t)i * 0x100;
        memset(vt_ptr(vt, at), 0, 0x100);
        vt_add(vt, VIRTIO_NET_TXQ, &(VtBuf){ at, VIRTIO_NET_HDR_LEN + 60, false }, 1);
    }
    vt_kick(vt, VIRTIO_NET_TXQ);
    pump(f);
    assert_int_equal(drain_used(vt, VIRTIO_NET_TXQ), 2);
    assert_int_equal(f->net->t.r.vq[VIRTIO_NET_TXQ].last_avail_idx, 2);
    /* receive: 5 frames arrive, buffers for all */
    for (int i = 0; i < 5; i++)
        vt_add(vt, VIRTIO_NET_RXQ, &(VtBuf){ VT_BUFS + (uint64_t)i * 0x800, 1526, true }, 1);
    for (int i = 0; i < 5; i++)
        send_frame(f, 60, (uint8_t)i);
    vt_kick(vt, VIRTIO_NET_RXQ);
    pump(f);
    assert_int_equal(drain_used(vt, VIRTIO_NET_RXQ), 2);
    VirtioNetStats ns;
    virtio_net_get_stats(f->net, &ns);
    assert_int_equal(ns.tx_throttled, 1);
    assert_int_equal(ns.rx_throttled, 1);
    double t0 = (double)ratelimit_now_ns() / 1e9;
    unsigned tx = 2, rx = 2;
    for (int i = 0; i < 100 && (tx < 5 || rx < 5); i++) {
        evloop_run_once(f->loop, 1000);
        tx += drain_used(vt, VIRTIO_NET_TXQ);
        rx += drain_used(vt, VIRTIO_NET_RXQ);
    }
    double dt = (double)ratelimit_now_ns() / 1e9 - t0;
    virtio_net_get_stats(f->net, &ns);
    printf("# 3 frames each way over the burst at 20/s took %.3f s; waits tx %llu rx %llu\n", dt,
           (unsigned long long)ns.tx_throttled, (unsigned long long)ns.rx_throttled);
    assert_int_equal(tx, 5);
    assert_int_equal(rx, 5);
    assert_true(dt >= 0.1); /* 3 tokens at 20/s: 0.15 s, never sooner */
    assert_int_equal(ns.tx_packets, 5);
    assert_int_equal(ns.rx_packets, 5);
    assert_int_equal(ns.rx_dropped + ns.tx_dropped, 0);
    assert_true(ns.tx_throttled_ns > 0 && ns.rx_throttled_ns > 0);
    uint8_t buf[200];
    for (int i = 0; i < 5; i++)
        assert_int_equal(recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT), VIRTIO_NET_HDR_LEN + 60);
    fix_free(f);
}

/* EVENT_IDX on the receive queue, which is woken by its backend rather
 * than by kicks: when it runs out of buffers it asks for a kick on the
 * next one; while it holds buffers the driver's additions need none. */
static void test_rx_event_idx(void **state)
{
    (void)state;
    Fix *f = fix_new();
    Vt *vt = &f->vt;
    vt_bringup(vt, VIRTIO_F_EVENT_IDX, 2, 64);
    uint32_t id, len;
    send_frame(f, 100, 1);
    pump(f);
    assert_false(f->net->rx_polling);
    vt_add(vt, VIRTIO_NET_RXQ, &(VtBuf){ VT_BUFS, 1526, true }, 1);
    assert_true(vt_kick_prepare(vt, VIRTIO_NET_RXQ));
    vt_kick(vt, VIRTIO_NET_RXQ);
    pump(f);
    assert_int_equal(vt_used(vt, VIRTIO_NET_RXQ, &id, &len), 1);
    assert_false(f->net->rx_polling); /* out of buffers again */
    assert_int_equal(vt_avail_event(vt, VIRTIO_NET_RXQ), 1);
    /* a buffer: kick due; a second while the device holds one: none */
    vt_add(vt, VIRTIO_NET_RXQ, &(VtBuf){ VT_BUFS + 0x1000, 1526, true }, 1);
    assert_true(vt_kick_prepare(vt, VIRTIO_NET_RXQ));
    vt_kick(vt, VIRTIO_NET_RXQ);
    pump(f);
    assert_true(f->net->rx_polling);
    vt_add(vt, VIRTIO_NET_RXQ, &(VtBuf){ VT_BUFS + 0x2000, 1526, true }, 1);
    assert_false(vt_kick_prepare(vt, VIRTIO_NET_RXQ));
    /* both are filled as frames arrive, without another kick */
    send_frame(f, 60, 2);
    pump(f);
    send_frame(f, 70, 3);
    pump(f);
    assert_int_equal(vt_used(vt, VIRTIO_NET_RXQ, &id, &len), 2);
    assert_int_equal(len, VIRTIO_NET_HDR_LEN + 60);
    assert_int_equal(vt_used(vt, VIRTIO_NET_RXQ, &id, &len), 1);
    assert_int_equal(len, VIRTIO_NET_HDR_LEN + 70);
    assert_false(f->net->rx_polling);
    assert_int_equal(vt_avail_event(vt, VIRTIO_NET_RXQ), 3);
    assert_int_equal(virtio_mmio_queue_stats(&f->net->t, VIRTIO_NET_RXQ).kicks, 2);
    assert_int_equal(f->net->stats.rx_packets, 3);
    fix_free(f);
}

static void test_save_load(void **state)
{
    (void)state;
    Fix *f = fix_new();
    vt_bringup(&f->vt, ~0ull, 2, 64);
    uint8_t *buf;
    size_t len;
    assert_int_equal(virtio_mmio_save(&f->net->t, &buf, &len), 0);
    Fix *g = fix_new();
    char err[256];
    assert_int_equal(virtio_mmio_load(&g->net->t, buf, len - 1, err, sizeof(err)) < 0, 1);
    assert_false(g->net->rx_polling);
    assert_int_equal(virtio_mmio_load(&g->net->t, buf, len, err, sizeof(err)), 0);
    assert_true(g->net->rx_polling);
    assert_int_equal(g->net->t.r.vq[1].num, 64);
    assert_memory_equal(g->net->config, MAC, 6);
    free(buf);
    fix_free(g);
    fix_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_mac), cmocka_unit_test(test_tx),
        cmocka_unit_test(test_rx),         cmocka_unit_test(test_rx_event_idx),
        cmocka_unit_test(test_save_load),  cmocka_unit_test(test_rate_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
