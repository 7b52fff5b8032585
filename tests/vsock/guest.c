/* SPDX-License-Identifier: MIT */
/*
 * A tiny vsock driver (tests/guests/vdrv.h underneath): strata runs it with
 * --test-device --vsock cid=3,uds=PATH, the vsock being the only virtio
 * device (0xfeb00000).  Each step says "vsock: ..." on the console; a
 * failed check exits with a code.  Steps (vsock_test.c plays the host):
 *   1. connect to host port 1234 from port 5000, send "hello", expect the
 *      host's "HELLO" back;
 *   2. connect to port 4321 (nothing listens): RST;
 *   3. a malformed packet (op 42) from port 6000: RST;
 *   4. on the first connection, send TOTAL bytes (byte i = i % 251) under
 *      the device's credit; when the credit runs out and no update comes
 *      for a while, say "stalled" once (the host is not reading) and wait;
 *   5. accept the host's connection to guest port 7000, receive "ping",
 *      answer "pong";
 *   6. the host snapshots the VM and restores it in a new strata: wait for
 *      VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event queue (the old
 *      connections are gone), connect to port 1234 again from port 5100 and
 *      send "again"; exit 0.
 */
#include "tests/guests/vdrv.h"

#define DEV 0xfeb00000ull
#define HDR 44
#define RXLEN (HDR + 4096)
#define TOTAL (4u << 20)
#define GUEST_CID 3u
#define BUF_ALLOC 65536u

enum {
    OP_REQUEST = 1,
    OP_RESPONSE,
    OP_RST,
    OP_SHUTDOWN,
    OP_RW,
    OP_CREDIT_UPDATE,
    OP_CREDIT_REQUEST
};

volatile uint64_t spin_counter;

static VdrvQueue qs[3];
static uint8_t rxbuf[VDRV_QN][RXLEN] __attribute__((aligned(64)));
static uint8_t txbuf[HDR + 4096] __attribute__((aligned(64)));
static uint8_t evbuf[4];

typedef struct Pkt {
    uint32_t src_port, dst_port, len, flags, buf_alloc, fwd_cnt;
    uint16_t op;
    const uint8_t *data;
} Pkt;

/* The first connection's credit (from the device's packets). */
static uint32_t peer_alloc, peer_fwd, sent;
static uint32_t got1; /* bytes received on it */

static void say(const char *what, uint64_t v)
{
    guest_puts("vsock: ");
    guest_puts(what);
    guest_puts(" 0x");
    guest_put_hex(v);
    guest_puts("\n");
}

static void fail(uint32_t code, const char *why, uint64_t v)
{
    say(why, v);
    guest_exit(code);
}

static void put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Sends one packet (and waits until the device used it). */
static void send(uint16_t op, uint32_t sport, uint32_t dport, const void *data, uint32_t len,
                 uint32_t fwd)
{
    memset(txbuf, 0, HDR);
    put(txbuf, GUEST_CID, 8);
    put(txbuf + 8, 2, 8);
    put(txbuf + 16, sport, 4);
    put(txbuf + 20, dport, 4);
    put(txbuf + 24, len, 4);
    put(txbuf + 28, 1, 2);
    put(txbuf + 30, op, 2);
    put(txbuf + 36, BUF_ALLOC, 4);
    put(txbuf + 40, fwd, 4);
    if (len)
        memcpy(txbuf + HDR, data, len);
    vdrv_add(&qs[1], 0, txbuf, HDR + len, false);
    vdrv_kick(DEV, 1);
    uint32_t id, l;
    for (uint32_t i = 1; !vdrv_used(&qs[1], &id, &l); i++) {
        if (!(i % 4096) && vdrv_broken(DEV))
            fail(0x110, "the device broke on tx", 0);
        guest_pause_loop(100);
    }
}

/* The next packet from the device (copied out of its rx buffer, which
 * goes back to the device); false if none within `polls` polls. */
static bool recv(Pkt *p, uint8_t *data, uint32_t cap, uint64_t polls)
{
    uint32_t id, len;
    for (uint64_t i = 1; !vdrv_used(&qs[0], &id, &len); i++) {
        if (!(i % 65536) && vdrv_broken(DEV))
            fail(0x111, "the device broke on rx", 0);
        if (i >= polls)
            return false;
        guest_pause_loop(100);
    }
    if (id >= VDRV_QN || len < HDR)
        fail(0x112, "bad used rx entry", id);
    const uint8_t *b = rxbuf[id];
    p->src_port = (uint32_t)get(b + 16, 4);
    p->dst_port = (uint32_t)get(b + 20, 4);
    p->len = (uint32_t)get(b + 24, 4);
    p->op = (uint16_t)get(b + 30, 2);
    p->flags = (uint32_t)get(b + 32, 4);
    p->buf_alloc = (uint32_t)get(b + 36, 4);
    p->fwd_cnt = (uint32_t)get(b + 40, 4);
    if (get(b, 8) != 2 || get(b + 8, 8) != GUEST_CID || p->len != len - HDR || p->len > cap)
        fail(0x113, "bad packet header, op", p->op);
    memcpy(data, b + HDR, p->len);
    p->data = data;
    if (p->src_port == 1234 && p->dst_port == 5000) {
        peer_alloc = p->buf_alloc;
        peer_fwd = p->fwd_cnt;
    }
    vdrv_add(&qs[0], (uint16_t)id, rxbuf[id], RXLEN, true);
    vdrv_kick(DEV, 0);
    return true;
}

static uint8_t data[4096];

/* Waits for a packet with op to dst_port (others are counted away). */
static Pkt expect(uint16_t op, uint32_t dst_port, uint32_t code)
{
    Pkt p;
    for (;;) {
        if (!recv(&p, data, sizeof(data), 20000000))
            fail(code, "nothing came; wanted op", op);
        if (p.op == op && p.dst_port == dst_port)
            return p;
        if (p.op == OP_RST || p.op == OP_SHUTDOWN)
            fail(code, "unexpected RST/SHUTDOWN to port", p.dst_port);
    }
}

int guest_main(void)
{
    int r = vdrv_init(DEV, 19, qs, 3);
    if (r)
        fail(0x101, "no vsock device / init failed", (uint64_t)r);
    for (uint16_t i = 0; i < VDRV_QN; i++)
        vdrv_add(&qs[0], i, rxbuf[i], RXLEN, true);
    vdrv_kick(DEV, 0);
    vdrv_add(&qs[2], 0, evbuf, sizeof(evbuf), true);
    vdrv_kick(DEV, 2);
    say("ready, cid", mmio_read32(DEV + VDRV_CONFIG));

    /* 1. guest to host, echo */
    send(OP_REQUEST, 5000, 1234, NULL, 0, 0);
    expect(OP_RESPONSE, 5000, 0x120);
    send(OP_RW, 5000, 1234, "hello", 5, 0);
    Pkt p = expect(OP_RW, 5000, 0x121);
    if (p.len != 5 || memcmp(p.data, "HELLO", 5))
        fail(0x122, "the echo is wrong, len", p.len);
    got1 = 5;
    sent = 5; /* the device's fwd_cnt counts "hello" */
    say("echo ok", 5);

    /* 2. nothing listens on 4321 */
    send(OP_REQUEST, 5001, 4321, NULL, 0, 0);
    for (;;) {
        if (!recv(&p, data, sizeof(data), 20000000))
            fail(0x130, "no RST for port 4321", 0);
        if (p.dst_port == 5001)
            break;
    }
    if (p.op != OP_RST)
        fail(0x131, "port 4321: not RST but op", p.op);
    say("rst ok (no listener)", 4321);

    /* 3. a malformed packet */
    send(42, 6000, 1234, NULL, 0, 0);
    for (;;) {
        if (!recv(&p, data, sizeof(data), 20000000))
            fail(0x140, "no RST for a malformed packet", 0);
        if (p.dst_port == 6000)
            break;
    }
    if (p.op != OP_RST)
        fail(0x141, "malformed: not RST but op", p.op);
    say("rst ok (malformed)", 42);

    /* 4. bulk to the host under credit; it stops reading for a while */
    bool stalled = false;
    static uint8_t chunk[4096];
    while (sent - 5 < TOTAL) {
        uint32_t in_flight = sent - peer_fwd;
        uint32_t credit = in_flight > peer_alloc ? 0 : peer_alloc - in_flight;
        if (credit >= sizeof(chunk)) {
            for (uint32_t i = 0; i < sizeof(chunk); i++)
                chunk[i] = (uint8_t)((sent - 5 + i) % 251);
            send(OP_RW, 5000, 1234, chunk, sizeof(chunk), got1);
            sent += sizeof(chunk);
            continue;
        }
        /* out of credit: wait for an update */
        if (!recv(&p, data, sizeof(data), stalled ? 40000000 : 250000)) {
            if (stalled)
                fail(0x150, "no credit came back; sent", sent);
            stalled = true;
            say("stalled, sent", sent);
        } else if (p.op == OP_RST || p.op == OP_SHUTDOWN) {
            fail(0x151, "the bulk connection ended, op", p.op);
        }
    }
    if (!stalled)
        fail(0x152, "never ran out of credit", sent);
    say("sent all", sent - 5);

    /* 5. the host connects to guest port 7000 */
    p = expect(OP_REQUEST, 7000, 0x160);
    uint32_t hport = p.src_port;
    send(OP_RESPONSE, 7000, hport, NULL, 0, 0);
    p = expect(OP_RW, 7000, 0x161);
    if (p.len != 4 || memcmp(p.data, "ping", 4))
        fail(0x162, "not ping, len", p.len);
    send(OP_RW, 7000, hport, "pong", 4, 4);
    say("host connect ok, port", hport);

    /* 6. after a restore: the transport reset, then a new connection */
    uint32_t id, len;
    while (!vdrv_used(&qs[2], &id, &len))
        guest_pause_loop(1000);
    if (len != 4 || get(evbuf, 4) != 0)
        fail(0x170, "not a transport reset event, len", len);
    say("transport reset, cid", mmio_read32(DEV + VDRV_CONFIG));
    send(OP_REQUEST, 5100, 1234, NULL, 0, 0);
    expect(OP_RESPONSE, 5100, 0x171);
    send(OP_RW, 5100, 1234, "again", 5, 0);
    say("reconnected", 5100);
    for (int i = 0; i < 100; i++) /* let the host read it */
        guest_pause_loop(1000000);
    return 0;
}
