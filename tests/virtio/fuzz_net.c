/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: virtio-net's header and frame handling, with a datagram
 * socketpair standing in for the TAP fd.  The input is a list of 4-byte
 * operations:
 *   TX ([0] bit 0 set): the guest sends a chain of L = [1] | [2] << 8 |
 *      ([3] & 63) << 16 bytes (a 12-byte vnet header, then the frame) over
 *      ([3] >> 6) + 1 descriptors.  The TAP side must get exactly those
 *      bytes with the header zeroed when 12 <= L <= 12 + 65550, else
 *      nothing; the chain is used with length 0.
 *   RX ([0] bit 0 clear): the guest posts a receive chain of [3] * 300 + 1
 *      writable bytes over ([0] >> 1 & 3) + 1 descriptors, the TAP side
 *      sends a datagram of n = [1] | [2] << 8 bytes and the queue is kicked.
 *      n < 12 is dropped (the buffer stays posted); else the oldest posted
 *      buffer is used: with length n and the frame (header rewritten to "no
 *      checksum, no GSO, 1 buffer") if it fits, with length 0 if not.
 * The device must never break (every chain is well formed).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/evloop.h"
#include "devices/virtio-net.h"
#include "tests/virtio/vtest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define QSIZE 64
#define MAX_POSTED 8
#define RX_SLOT 0x12000ull /* > 255 * 300 + 1 */
#define TX_AREA (VT_BUFS + MAX_POSTED * RX_SLOT)
#define MAX_TX (12u + VIRTIO_NET_MAX_FRAME + 64)

static Vt vt;
static VirtioNet *net;
static Evloop *loop;
static int peer = -1;
static uint8_t pkt[1 << 17];

typedef struct Posted {
    uint16_t head;
    uint64_t addr;
    uint32_t len;
} Posted;

static void die(const char *what, const uint8_t *op)
{
    fprintf(stderr, "fuzz_net: %s (op %02x %02x %02x %02x)\n", what, op[0], op[1], op[2], op[3]);
    abort();
}

static void setup(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    int sz = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    peer = sv[1];
    vt_setup(&vt);
    loop = evloop_new();
    net = calloc(1, sizeof(*net));
    static const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
    char err[256];
    if (!loop || !net ||
        virtio_net_init(net, &(VirtioEnv){ vt.ctx, vt.as, loop }, sv[0], mac, err, sizeof(err)) <
            0) {
        fprintf(stderr, "fuzz_net: %s\n", err);
        abort();
    }
    virtio_mmio_connect_irq(&net->t, &vt.irq, VT_BASE);
    vt_map(&vt, virtio_mmio_region(&net->t));
}

/* Runs the device's event loop until it has nothing left to do. */
static void pump(void)
{
    while (evloop_run_once(loop, 0) > 0)
        ;
}

static void drain(int fd)
{
    while (recv(fd, pkt, sizeof(pkt), MSG_DONTWAIT) >= 0)
        ;
}

static void do_tx(const uint8_t *op)
{
    uint32_t len = op[1] | op[2] << 8 | (uint32_t)(op[3] & 63) << 16;
    if (len > MAX_TX)
        len = MAX_TX;
    unsigned nd = (op[3] >> 6) + 1;
    uint8_t *p = vt_ptr(&vt, TX_AREA);
    for (uint32_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 13 + op[0]);
    VtBuf b[4];
    unsigned n = 0;
    uint32_t off = 0;
    for (unsigned k = 0; k < nd; k++) {
        uint32_t piece = k + 1 == nd ? len - off : len / nd;
        if (piece)
            b[n++] = (VtBuf){ TX_AREA + off, piece, false };
        off += piece;
    }
    if (!n)
        b[n++] = (VtBuf){ TX_AREA, 0, false };
    uint16_t head = vt_add(&vt, VIRTIO_NET_TXQ, b, n);
    vt_kick(&vt, VIRTIO_NET_TXQ);
    pump();
    uint32_t id, ulen;
    if (!vt_used(&vt, VIRTIO_NET_TXQ, &id, &ulen) || id != head || ulen != 0)
        die("tx chain not used once with length 0", op);
    ssize_t got = recv(peer, pkt, sizeof(pkt), MSG_DONTWAIT);
    bool valid = len >= VIRTIO_NET_HDR_LEN && len <= VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_FRAME;
    if (!valid) {
        if (got >= 0)
            die("an invalid tx length reached the tap", op);
        return;
    }
    if (got != (ssize_t)len)
        die("tx frame lost or resized", op);
    static const uint8_t zero[VIRTIO_NET_HDR_LEN];
    if (memcmp(pkt, zero, VIRTIO_NET_HDR_LEN) ||
        memcmp(pkt + VIRTIO_NET_HDR_LEN, p + VIRTIO_NET_HDR_LEN, len - VIRTIO_NET_HDR_LEN))
        die("tx frame differs", op);
}

static void do_rx(const uint8_t *op, Posted *posted, unsigned *nposted, unsigned *next_slot)
{
    uint32_t n = op[1] | op[2] << 8;
    uint32_t blen = op[3] * 300u + 1;
    unsigned nd = ((op[0] >> 1) & 3) + 1;
    if (*nposted < MAX_POSTED) {
        uint64_t addr = VT_BUFS + (*next_slot % MAX_POSTED) * RX_SLOT;
        ++*next_slot;
        memset(vt_ptr(&vt, addr), 0xcc, blen);
        VtBuf b[4];
        unsigned k = 0;
        uint32_t off = 0;
        for (unsigned i = 0; i < nd; i++) {
            uint32_t piece = i + 1 == nd ? blen - off : blen / nd;
            if (piece)
                b[k++] = (VtBuf){ addr + off, piece, true };
            off += piece;
        }
        posted[*nposted] = (Posted){ vt_add(&vt, VIRTIO_NET_RXQ, b, k), addr, blen };
        ++*nposted;
    }
    for (uint32_t i = 0; i < n; i++)
        pkt[i] = (uint8_t)(i * 7 + op[1]);
    if (send(peer, pkt, n, MSG_DONTWAIT) != (ssize_t)n)
        die("peer send", op);
    vt_kick(&vt, VIRTIO_NET_RXQ);
    pump();
    uint32_t id, ulen;
    int used = vt_used(&vt, VIRTIO_NET_RXQ, &id, &ulen);
    if (n < VIRTIO_NET_HDR_LEN) {
        if (used)
            die("a runt frame used a receive buffer", op);
        return;
    }
    if (!used)
        die("a frame was not received", op);
    Posted b = posted[0];
    memmove(posted, posted + 1, (*nposted - 1) * sizeof(*posted));
    --*nposted;
    if (id != b.head)
        die("receive buffers used out of order", op);
    if (n > b.len) {
        if (ulen != 0)
            die("an oversized frame was received with a length", op);
        return;
    }
    const uint8_t *g = vt_ptr(&vt, b.addr);
    static const uint8_t hdr[VIRTIO_NET_HDR_LEN] = { [10] = 1 };
    if (ulen != n || memcmp(g, hdr, sizeof(hdr)) ||
        memcmp(g + VIRTIO_NET_HDR_LEN, pkt + VIRTIO_NET_HDR_LEN, n - VIRTIO_NET_HDR_LEN))
        die("received frame differs", op);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (peer < 0)
        setup();
    drain(peer);
    drain(net->fd);
    vt_bringup(&vt, ~0ull, 2, QSIZE);
    pump();
    Posted posted[MAX_POSTED];
    unsigned nposted = 0, next_slot = 0;
    for (size_t pos = 0; pos + 4 <= size && pos < 4 * 48; pos += 4) {
        const uint8_t *op = data + pos;
        if (op[0] & 1)
            do_tx(op);
        else
            do_rx(op, posted, &nposted, &next_slot);
        if (vt_r32(&vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET)
            die("well-formed chains broke the device", op);
    }
    return 0;
}
