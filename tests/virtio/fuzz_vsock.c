/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the virtio-vsock packet protocol (devices/vsock-proto.h)
 * against its rules.  Input: 44 header bytes, then a 4-byte payload size
 * and a line for vsock_parse_connect (up to a 0xff byte), then connection
 * table operations (3 bytes each).  The oracle: decode/encode round-trips
 * byte for byte; a header vsock_hdr_check accepts has the guest's source
 * CID, the host as destination, the stream type, a known op, a payload only
 * on RW and within the buffer and VSOCK_MAX_PAYLOAD; credit never exceeds
 * buf_alloc; an accepted CONNECT line is `CONNECT <digits>\n` with that
 * port; the table agrees with a plain array model and never holds more than
 * VSOCK_MAX_CONNS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vsock-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GUEST_CID 3u

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_vsock: %s\n", what);
    abort();
}

static void header(const uint8_t *b, uint32_t payload)
{
    VsockHdr h;
    uint8_t again[VSOCK_HDR_LEN];
    vsock_hdr_decode(b, &h);
    vsock_hdr_encode(&h, again);
    if (memcmp(b, again, VSOCK_HDR_LEN))
        fail("decode/encode does not round-trip");
    if (!vsock_hdr_check(&h, GUEST_CID, payload)) {
        if (h.src_cid != GUEST_CID || h.dst_cid != VSOCK_HOST_CID || h.type != VSOCK_TYPE_STREAM)
            fail("accepted a wrong address or type");
        if (h.op < VSOCK_OP_REQUEST || h.op > VSOCK_OP_CREDIT_REQUEST)
            fail("accepted an unknown op");
        if (h.len > payload || h.len > VSOCK_MAX_PAYLOAD || (h.len && h.op != VSOCK_OP_RW))
            fail("accepted a bad len");
    }
    if (vsock_peer_credit(h.buf_alloc, h.fwd_cnt, h.len) > h.buf_alloc)
        fail("credit above buf_alloc");
}

static void line(const uint8_t *p, size_t n)
{
    uint32_t port = 0;
    int r = vsock_parse_connect((const char *)p, n, &port);
    if (r == 1) {
        char want[VSOCK_CONNECT_LINE_MAX + 1];
        if (n < 10 || n > VSOCK_CONNECT_LINE_MAX || memcmp(p, "CONNECT ", 8) || p[n - 1] != '\n')
            fail("accepted a line that is not CONNECT <port>");
        memcpy(want, p + 8, n - 9);
        want[n - 9] = 0;
        if (strspn(want, "0123456789") != n - 9 || strtoull(want, NULL, 10) != port)
            fail("the port is not the digits");
    }
}

static void table(const uint8_t *p, size_t n)
{
    static VsockTable t;
    bool used[VSOCK_MAX_CONNS] = { false };
    uint32_t key[VSOCK_MAX_CONNS][2];
    vsock_table_init(&t);
    for (size_t i = 0; i + 3 <= n; i += 3) {
        uint32_t local = p[i + 1] & 15, peer = p[i + 2] & 15;
        int model = -1;
        unsigned count = 0;
        for (unsigned k = 0; k < VSOCK_MAX_CONNS; k++) {
            count += used[k];
            if (used[k] && key[k][0] == local && key[k][1] == peer)
                model = (int)k;
        }
        int found = vsock_table_find(&t, local, peer);
        if (found != model || t.count != count)
            fail("the table disagrees with the model");
        if (p[i] & 1) {
            int s = vsock_table_insert(&t, local, peer);
            if ((s >= 0) != (model < 0 && count < VSOCK_MAX_CONNS))
                fail("insert succeeded or failed wrongly");
            if (s >= 0) {
                used[s] = true;
                key[s][0] = local;
                key[s][1] = peer;
            }
        } else if (model >= 0) {
            vsock_table_remove(&t, model);
            used[model] = false;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < VSOCK_HDR_LEN + 4)
        return 0;
    uint32_t payload = (uint32_t)data[44] | (uint32_t)data[45] << 8 | (uint32_t)data[46] << 16;
    header(data, payload);
    const uint8_t *p = data + 48;
    size_t rest = size - 48;
    const uint8_t *end = memchr(p, 0xff, rest);
    size_t ln = end ? (size_t)(end - p) : rest;
    line(p, ln);
    if (end)
        table(end + 1, rest - ln - 1);
    return 0;
}
