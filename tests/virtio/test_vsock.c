/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock: the packet protocol (header, checks, credit, connection
 * table, CONNECT line) and the device over fake guest memory with real Unix
 * sockets and the event loop run by hand (label unit, no /dev/kvm): the
 * test plays the guest driver on the rx/tx/event queues.  Guest connect to
 * a listener (echo both ways), to a port nobody listens on (RST), host
 * CONNECT (OK line, data), credit stalls both ways with bounded buffering
 * and every byte in order after the resume, RST for malformed packets,
 * connection cap, save/load with TRANSPORT_RESET.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/evloop.h"
#include "devices/virtio-vsock.h"
#include "tests/virtio/vtest.h"

#define CID 3u
#define QN 64
#define RXB VT_BUFS /* rx buffers: RXB + i * RXSZ */
#define RXSZ (VSOCK_HDR_LEN + 4096)
#define TXB (VT_BUFS + 0x100000) /* one tx packet at a time */
#define EVB (VT_BUFS + 0x1f0000) /* event buffer */
#define GPORT 5000u

/* ---- the pure protocol ---------------------------------------------------- */

static void test_header(void **state)
{
    (void)state;
    VsockHdr h = { 3, 2, 5000, 1234, 5, 1, VSOCK_OP_RW, 0, 65536, 7 }, g;
    uint8_t b[VSOCK_HDR_LEN];
    vsock_hdr_encode(&h, b);
    assert_int_equal(b[0], 3);
    assert_int_equal(b[8], 2);
    assert_int_equal(b[30], VSOCK_OP_RW);
    vsock_hdr_decode(b, &g);
    uint8_t b2[VSOCK_HDR_LEN];
    vsock_hdr_encode(&g, b2);
    assert_memory_equal(b, b2, sizeof(b));
    assert_int_equal(g.fwd_cnt, 7);
    assert_int_equal(g.buf_alloc, 65536);
    assert_null(vsock_hdr_check(&h, 3, 5));
    assert_non_null(vsock_hdr_check(&h, 3, 4)); /* len past the buffer */
    assert_non_null(vsock_hdr_check(&h, 4, 5)); /* not the guest's CID */
    g = h, g.dst_cid = 7;
    assert_non_null(vsock_hdr_check(&g, 3, 5));
    g = h, g.type = 2;
    assert_non_null(vsock_hdr_check(&g, 3, 5));
    g = h, g.op = 0;
    assert_non_null(vsock_hdr_check(&g, 3, 5));
    g = h, g.op = 8;
    assert_non_null(vsock_hdr_check(&g, 3, 5));
    g = h, g.op = VSOCK_OP_REQUEST;
    assert_non_null(vsock_hdr_check(&g, 3, 5)); /* a payload on a control packet */
    g = h, g.len = VSOCK_MAX_PAYLOAD + 1;
    assert_non_null(vsock_hdr_check(&g, 3, 1u << 20));
    g = h, g.op = VSOCK_OP_SHUTDOWN, g.len = 0, g.flags = 4;
    assert_non_null(vsock_hdr_check(&g, 3, 0));
    g.flags = 3;
    assert_null(vsock_hdr_check(&g, 3, 0));
}

static void test_credit(void **state)
{
    (void)state;
    assert_int_equal(vsock_peer_credit(65536, 0, 0), 65536);
    assert_int_equal(vsock_peer_credit(65536, 0, 65536), 0);
    assert_int_equal(vsock_peer_credit(65536, 1000, 4000), 65536 - 3000);
    /* counters wrap */
    assert_int_equal(vsock_peer_credit(100, 0xfffffff0u, 0x10), 100 - 0x20);
    /* a hostile fwd_cnt ahead of what was sent gives nothing, not 4 GiB */
    assert_int_equal(vsock_peer_credit(100, 500, 10), 0);
}

static void test_table(void **state)
{
    (void)state;
    static VsockTable t;
    vsock_table_init(&t);
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        assert_true(vsock_table_insert(&t, 1234, i) >= 0);
    assert_int_equal(t.count, VSOCK_MAX_CONNS);
    assert_int_equal(vsock_table_insert(&t, 1, 1), -1); /* full */
    assert_int_equal(vsock_table_reserve(&t), -1);
    int s = vsock_table_find(&t, 1234, 77);
    assert_true(s >= 0);
    vsock_table_remove(&t, s);
    assert_int_equal(vsock_table_find(&t, 1234, 77), -1);
    assert_int_equal(vsock_table_insert(&t, 1234, 78), -1); /* already there */
    int r = vsock_table_reserve(&t);
    assert_int_equal(r, s);
    assert_int_equal(vsock_table_set_key(&t, r, 1234, 78), -1); /* another has it */
    assert_int_equal(vsock_table_set_key(&t, r, 9, 9), r);
    assert_int_equal(vsock_table_find(&t, 9, 9), r);
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        vsock_table_remove(&t, (int)i);
    assert_int_equal(t.count, 0);
    assert_int_equal(vsock_table_find(&t, 9, 9), -1);
}

static void test_connect_line(void **state)
{
    (void)state;
    uint32_t port = 0;
    assert_int_equal(vsock_parse_connect("CONN", 4, &port), 0);
    assert_int_equal(vsock_parse_connect("CONNECT 12", 10, &port), 0);
    assert_int_equal(vsock_parse_connect("CONNECT 1234\n", 13, &port), 1);
    assert_int_equal(port, 1234);
    assert_int_equal(vsock_parse_connect("CONNECT 4294967295\n", 19, &port), 1);
    assert_int_equal(port, 4294967295u);
    assert_int_equal(vsock_parse_connect("CONNECT 4294967296", 18, &port), -1);
    assert_int_equal(vsock_parse_connect("CONNECT \n", 9, &port), -1);
    assert_int_equal(vsock_parse_connect("CONNECT -1\n", 11, &port), -1);
    assert_int_equal(vsock_parse_connect("GET / HTTP", 10, &port), -1);
    assert_int_equal(vsock_parse_connect("CONNECT 1x", 10, &port), -1);
}

/* ---- the device ----------------------------------------------------------- */

typedef struct Fix {
    Vt vt;
    VirtioVsock *d;
    Evloop *loop;
    char dir[64], path[108];
    int lfd;                       /* a host service listening on PATH_1234 */
    uint64_t gpa_of[QN];           /* rx buffer of each descriptor head */
    uint32_t peer_fwd, peer_alloc; /* what the device last said */
} Fix;

static int listen_on(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    return fd;
}

static int connect_to(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void add_rx_at(Fix *f, uint64_t gpa)
{
    f->gpa_of[vt_add(&f->vt, 0, &(VtBuf){ gpa, RXSZ, true }, 1)] = gpa;
}

static void add_rx(Fix *f, unsigned i)
{
    add_rx_at(f, RXB + i * RXSZ);
}

static void run(Fix *f)
{
    /* until the loop is idle (a handler may arm another fd: look again) */
    for (int i = 0, idle = 0; i < 50 && idle < 2; i++)
        idle = evloop_run_once(f->loop, idle ? 2 : 10) > 0 ? 0 : idle + 1;
}

static Fix *fix_new(void)
{
    Fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/strata-vsock-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/v.sock", f->dir);
    char svc[128];
    snprintf(svc, sizeof(svc), "%s_1234", f->path);
    f->lfd = listen_on(svc);
    vt_setup(&f->vt);
    assert_non_null(f->loop = evloop_new());
    f->d = calloc(1, sizeof(*f->d));
    assert_non_null(f->d);
    int hl = listen_on(f->path);
    fcntl(hl, F_SETFL, O_NONBLOCK);
    assert_int_equal(virtio_vsock_init(f->d, &(VirtioEnv){ f->vt.ctx, f->vt.as, f->loop }, CID,
                                       f->path, hl),
                     0);
    virtio_mmio_connect_irq(&f->d->t, &f->vt.irq, VT_BASE);
    vt_map(&f->vt, virtio_mmio_region(&f->d->t));
    vt_bringup(&f->vt, ~0ull, 3, QN);
    for (unsigned i = 0; i < 32; i++)
        add_rx(f, i);
    vt_kick(&f->vt, 0);
    run(f);
    return f;
}

static void fix_free(Fix *f)
{
    vt_teardown(&f->vt);
    virtio_vsock_destroy(f->d);
    free(f->d);
    evloop_free(f->loop);
    vt_free(&f->vt);
    char svc[128];
    snprintf(svc, sizeof(svc), "%s_1234", f->path);
    close(f->lfd);
    unlink(svc);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
}

/* The guest sends header h and len bytes of data; the device uses it. */
static void send_hdr(Fix *f, const VsockHdr *h, const void *data, uint32_t len)
{
    uint8_t *p = vt_ptr(&f->vt, TXB);
    vsock_hdr_encode(h, p);
    if (len)
        memcpy(p + VSOCK_HDR_LEN, data, len);
    vt_add(&f->vt, 1, &(VtBuf){ TXB, VSOCK_HDR_LEN + len, false }, 1);
    vt_kick(&f->vt, 1);
    run(f);
    uint32_t id, l;
    assert_true(vt_used(&f->vt, 1, &id, &l) > 0);
}

/* The guest sends one packet (buf_alloc 64 KiB). */
static void send_pkt(Fix *f, uint16_t op, uint32_t sport, uint32_t dport, uint32_t flags,
                     const void *data, uint32_t len, uint32_t fwd)
{
    VsockHdr h = { CID, VSOCK_HOST_CID, sport,          dport, len, VSOCK_TYPE_STREAM,
                   op,  flags,          VSOCK_CONN_BUF, fwd };
    send_hdr(f, &h, data, len);
}

/* The next packet the device sent the guest (payload copied to data);
 * false if none.  The rx buffer goes back to the queue. */
static bool recv_pkt(Fix *f, VsockHdr *h, void *data, size_t cap)
{
    uint32_t id, len;
    if (vt_used(&f->vt, 0, &id, &len) == 0)
        return false;
    assert_true(id < QN);
    uint64_t gpa = f->gpa_of[id];
    assert_true(len >= VSOCK_HDR_LEN);
    vsock_hdr_decode(vt_ptr(&f->vt, gpa), h);
    assert_int_equal(h->len, len - VSOCK_HDR_LEN);
    assert_true(h->len <= cap);
    if (h->len)
        memcpy(data, (uint8_t *)vt_ptr(&f->vt, gpa) + VSOCK_HDR_LEN, h->len);
    assert_int_equal(h->src_cid, VSOCK_HOST_CID);
    assert_int_equal(h->dst_cid, CID);
    f->peer_fwd = h->fwd_cnt;
    f->peer_alloc = h->buf_alloc;
    add_rx_at(f, gpa);
    vt_kick(&f->vt, 0);
    return true;
}

static VsockHdr expect_pkt(Fix *f, uint16_t op)
{
    VsockHdr h;
    static uint8_t buf[4096];
    assert_true(recv_pkt(f, &h, buf, sizeof(buf)));
    if (h.op != op)
        fail_msg("expected op %u, got op %u", op, h.op);
    return h;
}

/* A guest connection to host port 1234, accepted by the test's service. */
static int guest_connect(Fix *f, uint32_t gport)
{
    send_pkt(f, VSOCK_OP_REQUEST, gport, 1234, 0, NULL, 0, 0);
    VsockHdr h = expect_pkt(f, VSOCK_OP_RESPONSE);
    assert_int_equal(h.src_port, 1234);
    assert_int_equal(h.dst_port, gport);
    int s = accept(f->lfd, NULL, NULL);
    assert_true(s >= 0);
    return s;
}

static void test_guest_connect_echo(void **state)
{
    (void)state;
    Fix *f = fix_new();
    assert_int_equal(vt_cfg(&f->vt, 0, 4), CID);
    assert_int_equal(vt_r32(&f->vt, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_VSOCK);
    int s = guest_connect(f, GPORT);
    send_pkt(f, VSOCK_OP_RW, GPORT, 1234, 0, "hello", 5, 0);
    char buf[16] = { 0 };
    assert_int_equal(read(s, buf, sizeof(buf)), 5);
    assert_string_equal(buf, "hello");
    assert_int_equal(write(s, "world!", 6), 6); /* the echo back */
    run(f);
    VsockHdr h;
    assert_true(recv_pkt(f, &h, buf, sizeof(buf)));
    assert_int_equal(h.op, VSOCK_OP_RW);
    assert_int_equal(h.len, 6);
    assert_memory_equal(buf, "world!", 6);
    /* the host closes: SHUTDOWN; the guest closes: RST, gone */
    close(s);
    run(f);
    h = expect_pkt(f, VSOCK_OP_SHUTDOWN);
    assert_true(h.flags & VSOCK_SHUTDOWN_SEND);
    send_pkt(f, VSOCK_OP_SHUTDOWN, GPORT, 1234, 3, NULL, 0, 0);
    expect_pkt(f, VSOCK_OP_RST);
    assert_int_equal(virtio_vsock_conn_count(f->d), 0);
    fix_free(f);
}

static void test_no_listener_rst(void **state)
{
    (void)state;
    Fix *f = fix_new();
    send_pkt(f, VSOCK_OP_REQUEST, GPORT, 4321, 0, NULL, 0, 0);
    VsockHdr h = expect_pkt(f, VSOCK_OP_RST);
    assert_int_equal(h.src_port, 4321);
    assert_int_equal(h.dst_port, GPORT);
    assert_int_equal(virtio_vsock_conn_count(f->d), 0);
    fix_free(f);
}

static void test_host_connect(void **state)
{
    (void)state;
    Fix *f = fix_new();
    int c = connect_to(f->path);
    assert_int_equal(write(c, "CONNECT 7000\n", 13), 13);
    run(f);
    VsockHdr h = expect_pkt(f, VSOCK_OP_REQUEST);
    assert_int_equal(h.dst_port, 7000);
    assert_true(h.src_port >= (1u << 30));
    send_pkt(f, VSOCK_OP_RESPONSE, 7000, h.src_port, 0, NULL, 0, 0);
    char line[32] = { 0 }, want[32];
    snprintf(want, sizeof(want), "OK %u\n", h.src_port);
    assert_int_equal(read(c, line, sizeof(line) - 1), (ssize_t)strlen(want));
    assert_string_equal(line, want);
    assert_int_equal(write(c, "ping", 4), 4);
    run(f);
    char buf[16];
    VsockHdr d;
    assert_true(recv_pkt(f, &d, buf, sizeof(buf)));
    assert_int_equal(d.op, VSOCK_OP_RW);
    assert_memory_equal(buf, "ping", 4);
    send_pkt(f, VSOCK_OP_RW, 7000, h.src_port, 0, "pong", 4, 4);
    assert_int_equal(read(c, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "pong", 4);
    close(c);
    /* a second client whose connection the guest refuses is closed */
    c = connect_to(f->path);
    assert_int_equal(write(c, "CONNECT 7001\n", 13), 13);
    run(f);
    expect_pkt(f, VSOCK_OP_SHUTDOWN); /* the first client closed */
    h = expect_pkt(f, VSOCK_OP_REQUEST);
    send_pkt(f, VSOCK_OP_RST, 7001, h.src_port, 0, NULL, 0, 0);
    assert_int_equal(read(c, buf, sizeof(buf)), 0);
    close(c);
    /* a client that says something else is closed */
    c = connect_to(f->path);
    assert_int_equal(write(c, "GET / HTTP/1.0\n", 15), 15);
    run(f);
    assert_true(read(c, buf, sizeof(buf)) <= 0);
    close(c);
    fix_free(f);
}

/* Guest to host: the host stops reading; the device stops giving credit,
 * holds at most VSOCK_CONN_BUF bytes; the host reads again and every byte
 * arrives in order. */
static void test_credit_stall_guest_to_host(void **state)
{
    (void)state;
    Fix *f = fix_new();
    int s = guest_connect(f, GPORT);
    fcntl(s, F_SETFL, O_NONBLOCK);
    const uint32_t total = 1u << 20;
    uint32_t sent = 0, got = 0;
    uint8_t chunk[4096], rbuf[8192];
    bool stalled = false;
    VsockHdr h;
    while (got < total) {
        /* the guest sends while it has credit */
        uint32_t credit = vsock_peer_credit(f->peer_alloc, f->peer_fwd, sent);
        while (sent < total && credit >= sizeof(chunk)) {
            for (unsigned i = 0; i < sizeof(chunk); i++)
                chunk[i] = (uint8_t)((sent + i) % 251);
            send_pkt(f, VSOCK_OP_RW, GPORT, 1234, 0, chunk, sizeof(chunk), 0);
            sent += sizeof(chunk);
            while (recv_pkt(f, &h, rbuf, sizeof(rbuf)))
                assert_int_equal(h.op, VSOCK_OP_CREDIT_UPDATE);
            credit = vsock_peer_credit(f->peer_alloc, f->peer_fwd, sent);
            /* what the device holds stays bounded */
            assert_true(f->d->conn[vsock_table_find(&f->d->table, 1234, GPORT)].txlen <=
                        VSOCK_CONN_BUF);
        }
        if (!stalled && sent < total) {
            stalled = true; /* out of credit with the host not reading */
            assert_true(sent - got <= (8u << 20));
        }
        /* the host reads some */
        ssize_t r = read(s, rbuf, sizeof(rbuf));
        if (r > 0) {
            for (ssize_t i = 0; i < r; i++)
                if (rbuf[i] != (uint8_t)((got + i) % 251))
                    fail_msg("byte %u out of order", got + (unsigned)i);
            got += (uint32_t)r;
        }
        run(f);
        while (recv_pkt(f, &h, rbuf, sizeof(rbuf)))
            assert_int_equal(h.op, VSOCK_OP_CREDIT_UPDATE);
    }
    assert_true(stalled);
    assert_int_equal(got, total);
    close(s);
    fix_free(f);
}

/* Host to guest: the guest's small buf_alloc limits what the device reads
 * from the host socket; CREDIT_REQUEST when it runs out; the guest's
 * CREDIT_UPDATE resumes it; all bytes in order. */
static void test_credit_stall_host_to_guest(void **state)
{
    (void)state;
    Fix *f = fix_new();
    send_pkt(f, VSOCK_OP_REQUEST, GPORT, 1234, 0, NULL, 0, 0);
    /* the REQUEST above said buf_alloc 64 KiB; shrink it to 8 KiB */
    expect_pkt(f, VSOCK_OP_RESPONSE);
    int s = accept(f->lfd, NULL, NULL);
    VsockHdr h = { CID, VSOCK_HOST_CID, GPORT, 1234, 0, VSOCK_TYPE_STREAM, VSOCK_OP_CREDIT_UPDATE,
                   0,   8192,           0 };
    send_hdr(f, &h, NULL, 0);
    const uint32_t total = 64 * 1024;
    static uint8_t src[64 * 1024];
    for (uint32_t i = 0; i < total; i++)
        src[i] = (uint8_t)(i % 253);
    fcntl(s, F_SETFL, O_NONBLOCK);
    assert_int_equal(write(s, src, total), total);
    uint32_t got = 0, fwd = 0;
    uint8_t buf[4096];
    for (int round = 0; got < total && round < 100; round++) {
        run(f);
        uint32_t before = got;
        bool asked = false;
        VsockHdr r;
        while (recv_pkt(f, &r, buf, sizeof(buf))) {
            if (r.op == VSOCK_OP_CREDIT_REQUEST) {
                asked = true;
                continue;
            }
            assert_int_equal(r.op, VSOCK_OP_RW);
            assert_memory_equal(buf, src + got, r.len);
            got += r.len;
        }
        assert_true(got - fwd <= 8192); /* never past the guest's credit */
        if (got < total) {
            assert_true(asked);
            assert_true(got > before);
        }
        fwd = got; /* the guest's application read it all */
        h.fwd_cnt = fwd;
        send_hdr(f, &h, NULL, 0);
    }
    assert_int_equal(got, total);
    close(s);
    fix_free(f);
}

static void test_rst_malformed(void **state)
{
    (void)state;
    Fix *f = fix_new();
    int s = guest_connect(f, GPORT);
    /* data for a connection that does not exist */
    send_pkt(f, VSOCK_OP_RW, GPORT + 1, 1234, 0, "x", 1, 0);
    expect_pkt(f, VSOCK_OP_RST);
    /* unknown op, wrong type, wrong destination, len too big */
    VsockHdr bad[] = {
        { CID, VSOCK_HOST_CID, 9, 9, 0, VSOCK_TYPE_STREAM, 42, 0, 0, 0 },
        { CID, VSOCK_HOST_CID, 9, 9, 0, 2, VSOCK_OP_REQUEST, 0, 0, 0 },
        { CID, 77, 9, 9, 0, VSOCK_TYPE_STREAM, VSOCK_OP_REQUEST, 0, 0, 0 },
        { CID, VSOCK_HOST_CID, 9, 9, 1u << 20, VSOCK_TYPE_STREAM, VSOCK_OP_RW, 0, 0, 0 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        send_hdr(f, &bad[i], NULL, 0);
        VsockHdr h = expect_pkt(f, VSOCK_OP_RST);
        assert_int_equal(h.dst_port, 9);
    }
    /* a malformed packet on the open connection ends it: RST, host sees EOF */
    VsockHdr h = { CID, VSOCK_HOST_CID, GPORT, 1234, 0, VSOCK_TYPE_STREAM, 42, 0, 0, 0 };
    send_hdr(f, &h, NULL, 0);
    expect_pkt(f, VSOCK_OP_RST);
    char c;
    assert_int_equal(read(s, &c, 1), 0);
    close(s);
    /* data past the credit: RST */
    s = guest_connect(f, GPORT + 2);
    static uint8_t big[VSOCK_MAX_PAYLOAD];
    /* fill the device's buffer: the host does not read, so after the kernel
     * buffer fills the device holds bytes; then one packet too many */
    for (int i = 0; i < 400; i++) {
        VsockHdr r;
        send_pkt(f, VSOCK_OP_RW, GPORT + 2, 1234, 0, big, 32768, 0);
        bool rst = false;
        while (recv_pkt(f, &r, big, sizeof(big)))
            rst |= r.op == VSOCK_OP_RST;
        if (rst)
            break;
        assert_true(i < 399);
    }
    assert_int_equal(virtio_vsock_conn_count(f->d), 0);
    assert_true(virtio_vsock_stats(f->d).bad_packets >= 6);
    close(s);
    fix_free(f);
}

static void test_conn_cap(void **state)
{
    (void)state;
    /* two fds per connection here (the device's and the accepted one) */
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * VSOCK_MAX_CONNS + 64 && rl.rlim_max >= 2 * VSOCK_MAX_CONNS + 64) {
        rl.rlim_cur = 2 * VSOCK_MAX_CONNS + 64;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < 2 * VSOCK_MAX_CONNS + 64) {
        printf("SKIP test_conn_cap: RLIMIT_NOFILE %llu < %u fds needed\n",
               (unsigned long long)rl.rlim_cur, 2 * VSOCK_MAX_CONNS + 64);
        skip();
    }
    Fix *f = fix_new();
    int s[VSOCK_MAX_CONNS];
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        send_pkt(f, VSOCK_OP_REQUEST, 10000 + i, 1234, 0, NULL, 0, 0);
        expect_pkt(f, VSOCK_OP_RESPONSE);
        s[i] = accept(f->lfd, NULL, NULL);
        assert_true(s[i] >= 0);
    }
    send_pkt(f, VSOCK_OP_REQUEST, 20000, 1234, 0, NULL, 0, 0);
    expect_pkt(f, VSOCK_OP_RST);
    /* a host client is refused too (closed at once) */
    int c = connect_to(f->path);
    run(f);
    char b;
    assert_true(read(c, &b, 1) <= 0);
    close(c);
    assert_int_equal(virtio_vsock_conn_count(f->d), VSOCK_MAX_CONNS);
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        close(s[i]);
    fix_free(f);
}

/* Save, load into a new device: the guest gets TRANSPORT_RESET and the
 * old connections are gone. */
static void test_save_load(void **state)
{
    (void)state;
    Fix *f = fix_new();
    vt_add(&f->vt, 2, &(VtBuf){ EVB, 4, true }, 1);
    vt_kick(&f->vt, 2);
    int s = guest_connect(f, GPORT);
    uint8_t *buf;
    size_t len;
    assert_int_equal(virtio_mmio_save(&f->d->t, &buf, &len), 0);
    uint32_t id, l;
    assert_int_equal(vt_used(&f->vt, 2, &id, &l), 0); /* no event yet */
    char err[256];
    /* a corrupt stream is refused, the device unchanged */
    buf[len / 2] ^= 0xff;
    assert_true(virtio_mmio_load(&f->d->t, buf, len, err, sizeof(err)) < 0);
    buf[len / 2] ^= 0xff;
    assert_int_equal(virtio_mmio_load(&f->d->t, buf, len, err, sizeof(err)), 0);
    free(buf);
    run(f);
    assert_int_equal(vt_used(&f->vt, 2, &id, &l), 1);
    assert_int_equal(l, 4);
    assert_int_equal(*(uint32_t *)vt_ptr(&f->vt, EVB), VSOCK_EVENT_TRANSPORT_RESET);
    char c;
    assert_int_equal(read(s, &c, 1), 0); /* closed */
    assert_int_equal(virtio_vsock_conn_count(f->d), 0);
    close(s);
    /* and the device still works */
    s = guest_connect(f, GPORT + 9);
    close(s);
    fix_free(f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_credit),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_connect_line),
        cmocka_unit_test(test_guest_connect_echo),
        cmocka_unit_test(test_no_listener_rst),
        cmocka_unit_test(test_host_connect),
        cmocka_unit_test(test_credit_stall_guest_to_host),
        cmocka_unit_test(test_credit_stall_host_to_guest),
        cmocka_unit_test(test_rst_malformed),
        cmocka_unit_test(test_conn_cap),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
