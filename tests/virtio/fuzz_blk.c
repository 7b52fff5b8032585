/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: virtio-blk request parsing with well-formed rings and a
 * reference model of the disk.  The input is a list of 8-byte requests; each
 * becomes a chain (header, data split over 1-4 descriptors, status) in
 * one of the disk's NQ request queues, with its own buffers; a batch is
 * kicked every few requests (each queue that got some, and notifications
 * of queue indexes the device does not have, which must do nothing).  The
 * oracle: every request is completed once, with the status the virtio spec
 * asks for (OK / IOERR / UNSUPP), the used length it promises, read data
 * equal to the model's, writes applied to the model; or, for a chain whose
 * descriptors go the wrong way, the device ends in DEVICE_NEEDS_RESET.
 *
 * Request bytes: [0] bits 0-3 type (0 IN, 1 OUT, 2 FLUSH, 3 GET_ID, 4
 * unknown, else IN), bits 4-5 the queue, [1] sector (0..95, the disk has 64), [2] bits 0-3 data sectors,
 * bits 4-7 extra bytes (a length that is not a sector multiple), [3] bits
 * 0-1 data descriptors - 1, bit 2 header split in two, bit 3 status shares
 * the last data descriptor, bit 4 kick after this one, bit 5 first data
 * descriptor with the wrong direction, bits 6-7: 1 a 15-byte header alone,
 * 2 no status descriptor,
 * [4..7] fill pattern of written data.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/virtio-blk.h"
#include "tests/virtio/vtest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define QSIZE 64
#define PER_BATCH 8
#define SLOT 0x2000ull
#define DISK_SECTORS 64
#define NQ 4 /* request queues */

static Vt vt;
static VirtioBlk *blk;
static uint8_t model[DISK_SECTORS * 512];
/* Sectors two writes of one batch on different queues both wrote: the
 * spec orders nothing across queues, so either may have landed last; a
 * read does not compare them until a later write makes them known. */
static bool unknown[DISK_SECTORS];

typedef struct Req {
    uint8_t b[8];
    uint32_t type;
    uint64_t sector, len;
    uint64_t addr; /* slot base */
    unsigned q;    /* its queue */
    uint16_t head;
    bool expect_reset;
    uint64_t out_bytes, in_bytes; /* what the chain offers each way */
    uint64_t in_addr;             /* first writable byte (they are contiguous) */
    uint64_t dlen;                /* data bytes as the device must see them */
} Req;

static void fail(const char *what, const Req *r)
{
    fprintf(stderr, "fuzz_blk: %s (request %02x %02x %02x %02x)\n", what, r->b[0], r->b[1], r->b[2],
            r->b[3]);
    abort();
}

static void build(Req *r, unsigned slot)
{
    static const uint32_t types[5] = { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH,
                                       VIRTIO_BLK_T_GET_ID, 0x77 };
    r->type = (r->b[0] & 15) < 5 ? types[r->b[0] & 15] : VIRTIO_BLK_T_IN;
    r->q = (r->b[0] >> 4) % NQ;
    r->sector = r->b[1] % 96;
    r->len = 512ull * (r->b[2] & 15) + (r->b[2] >> 4);
    if (r->len > 8 * 512)
        r->len = 8 * 512 + (r->b[2] >> 4);
    r->addr = VT_BUFS + slot * SLOT;
    unsigned ndata = (r->b[3] & 3) + 1;
    bool split = r->b[3] & 4, shared = r->b[3] & 8, wrong = r->b[3] & 32;
    bool short_hdr = (r->b[3] >> 6) == 1, no_status = (r->b[3] >> 6) == 2;
    if (short_hdr)
        r->len = 0; /* a 15-byte header and nothing else */
    bool dev_writes = r->type != VIRTIO_BLK_T_OUT;

    uint8_t *p = vt_ptr(&vt, r->addr);
    memset(p, 0xee, SLOT);
    memcpy(p, &r->type, 4);
    memset(p + 4, 0, 4);
    memcpy(p + 8, &r->sector, 8);
    uint8_t *d = p + 16;
    for (uint64_t i = 0; i < r->len; i++)
        d[i] = (uint8_t)(r->b[4 + i % 4] + i / 512);

    VtBuf b[8];
    unsigned n = 0;
    uint32_t hlen = short_hdr ? 15 : 16;
    if (split && hlen > 1) {
        b[n++] = (VtBuf){ r->addr, 5, false };
        b[n++] = (VtBuf){ r->addr + 5, hlen - 5, false };
    } else {
        b[n++] = (VtBuf){ r->addr, hlen, false };
    }
    uint64_t off = 0;
    for (unsigned k = 0; k < ndata && r->len; k++) {
        uint64_t piece = k + 1 == ndata ? r->len - off : r->len / ndata;
        if (!piece)
            continue;
        b[n++] = (VtBuf){ r->addr + 16 + off, (uint32_t)piece, dev_writes != (wrong && k == 0) };
        off += piece;
    }
    /* status byte: its own descriptor, or the last data descriptor grows by one */
    if (!no_status) {
        if (shared && r->len && b[n - 1].write)
            b[n - 1].len++;
        else
            b[n++] = (VtBuf){ r->addr + 16 + r->len, 1, true };
    }
    /* a readable descriptor after a writable one breaks the protocol */
    r->expect_reset = false;
    r->out_bytes = r->in_bytes = 0;
    r->in_addr = 0;
    for (unsigned k = 0; k < n; k++) {
        if (k && b[k - 1].write && !b[k].write)
            r->expect_reset = true;
        if (b[k].write && !r->in_bytes)
            r->in_addr = b[k].addr;
        *(b[k].write ? &r->in_bytes : &r->out_bytes) += b[k].len;
    }
    r->dlen = 0;
    if (r->type == VIRTIO_BLK_T_OUT && r->out_bytes >= 16)
        r->dlen = r->out_bytes - 16;
    else if (r->in_bytes)
        r->dlen = r->in_bytes - 1;
    r->head = vt_add(&vt, r->q, b, n);
}

/* What the device must have done with r (its chain is used). */
static void check(Req *r, uint32_t used_len)
{
    if (r->out_bytes < 16 || r->in_bytes < 1) {
        if (used_len != 0)
            fail("malformed request completed with a length", r);
        return; /* nowhere to report a status */
    }
    uint8_t *in = vt_ptr(&vt, r->in_addr);
    uint8_t st = in[r->in_bytes - 1];
    bool fits = r->dlen % 512 == 0 && r->sector <= DISK_SECTORS &&
                r->dlen / 512 <= DISK_SECTORS - r->sector;
    switch (r->type) {
    case VIRTIO_BLK_T_IN:
        if (!fits) {
            if (st != VIRTIO_BLK_S_IOERR || used_len != 1)
                fail("bad read not IOERR", r);
            break;
        }
        if (st != VIRTIO_BLK_S_OK || used_len != r->dlen + 1)
            fail("read failed", r);
        for (uint64_t k = 0; k < r->dlen / 512; k++)
            if (!unknown[r->sector + k] && memcmp(in + k * 512, model + (r->sector + k) * 512, 512))
                fail("read data differs from the model", r);
        break;
    case VIRTIO_BLK_T_OUT:
        if (!fits) {
            if (st != VIRTIO_BLK_S_IOERR || used_len != 1)
                fail("bad write not IOERR", r);
            break;
        }
        if (st != VIRTIO_BLK_S_OK || used_len != 1)
            fail("write failed", r);
        break;
    case VIRTIO_BLK_T_FLUSH:
        if (st != VIRTIO_BLK_S_OK || used_len != 1)
            fail("flush failed", r);
        break;
    case VIRTIO_BLK_T_GET_ID: {
        uint64_t n = r->dlen < VIRTIO_BLK_ID_BYTES ? r->dlen : VIRTIO_BLK_ID_BYTES;
        if (st != VIRTIO_BLK_S_OK || used_len != n + 1)
            fail("get_id failed", r);
        break;
    }
    default:
        if (st != VIRTIO_BLK_S_UNSUPP || used_len != 1)
            fail("unknown type not UNSUPP", r);
    }
}

/* Kicks, then checks the batch; false if the device (rightly) broke. */
static bool run_batch(Req *reqs, unsigned n)
{
    bool want_reset = false;
    for (unsigned i = 0; i < n; i++)
        want_reset |= reqs[i].expect_reset;
    for (unsigned q = 0; q < NQ; q++)
        for (unsigned i = 0; i < n; i++)
            if (reqs[i].q == q) {
                vt_kick(&vt, q);
                break;
            }
    static const uint32_t no_queue[] = { NQ, VIRTIO_MMIO_MAX_QUEUES, 0xffff, 0xffffffffu };
    for (unsigned i = 0; i < sizeof(no_queue) / sizeof(no_queue[0]); i++) {
        vt_kick(&vt, no_queue[i]);
        vt_w32(&vt, VIRTIO_MMIO_QUEUE_SEL, no_queue[i]);
        if (vt_r32(&vt, VIRTIO_MMIO_QUEUE_NUM_MAX) || vt_r32(&vt, VIRTIO_MMIO_QUEUE_READY))
            fail("a queue index past the device's has a queue", &reqs[0]);
    }
    uint32_t status = vt_r32(&vt, VIRTIO_MMIO_STATUS);
    if (want_reset) {
        if (!(status & VIRTIO_STATUS_NEEDS_RESET))
            fail("a wrong-way chain did not break the device", &reqs[0]);
        return false;
    }
    if (status & VIRTIO_STATUS_NEEDS_RESET)
        fail("well-formed requests broke the device", &reqs[0]);
    /* reads in a batch may run before or after its writes: a read is
     * checked against the model only if no write of the batch overlaps it */
    for (unsigned i = 0; i < n; i++) {
        uint32_t id, len;
        if (!vt_used(&vt, reqs[i].q, &id, &len))
            fail("request not completed", &reqs[i]);
        Req *r = NULL;
        for (unsigned k = 0; k < n; k++)
            if (reqs[k].q == reqs[i].q && reqs[k].head == id)
                r = &reqs[k];
        if (!r)
            fail("used id is no request's head", &reqs[i]);
        bool racy = false;
        for (unsigned k = 0; k < n && r->type == VIRTIO_BLK_T_IN; k++)
            if (reqs[k].type == VIRTIO_BLK_T_OUT &&
                reqs[k].sector * 512 < r->sector * 512 + r->dlen &&
                r->sector * 512 < reqs[k].sector * 512 + reqs[k].dlen)
                racy = true;
        if (!racy)
            check(r, len);
    }
    /* writes land in the model even when a racing read skipped its check */
    bool landed[PER_BATCH] = { false };
    for (unsigned i = 0; i < n; i++) {
        Req *r = &reqs[i];
        if (r->type == VIRTIO_BLK_T_OUT && r->out_bytes >= 16 && r->in_bytes &&
            *(uint8_t *)vt_ptr(&vt, r->in_addr + r->in_bytes - 1) == VIRTIO_BLK_S_OK) {
            memcpy(model + r->sector * 512, vt_ptr(&vt, r->addr + 16), r->dlen);
            memset(unknown + r->sector, 0, r->dlen / 512);
            landed[i] = true;
        }
    }
    for (unsigned i = 0; i < n; i++)
        for (unsigned k = i + 1; k < n; k++)
            if (landed[i] && landed[k] && reqs[i].q != reqs[k].q) {
                uint64_t a = reqs[i].sector > reqs[k].sector ? reqs[i].sector : reqs[k].sector;
                uint64_t ei = reqs[i].sector + reqs[i].dlen / 512;
                uint64_t ek = reqs[k].sector + reqs[k].dlen / 512;
                for (uint64_t sct = a; sct < (ei < ek ? ei : ek); sct++)
                    unknown[sct] = true;
            }
    uint32_t id, len;
    for (unsigned q = 0; q < NQ; q++)
        if (vt_used(&vt, q, &id, &len))
            fail("more completions than requests", &reqs[0]);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!blk) {
        vt_setup(&vt);
        blk = vt_blk_new_mq(&vt, NQ);
    }
    /* a fresh, zeroed disk and model for every input */
    memset(model, 0, sizeof(model));
    memset(unknown, 0, sizeof(unknown));
    if (pwrite(blk->fd, model, sizeof(model), 0) != (ssize_t)sizeof(model))
        abort();
    vt_bringup(&vt, ~0ull, NQ, QSIZE);
    Req reqs[PER_BATCH];
    unsigned n = 0;
    for (size_t pos = 0; pos + 8 <= size && pos < 64 * 8; pos += 8) {
        Req *r = &reqs[n];
        memset(r, 0, sizeof(*r));
        memcpy(r->b, data + pos, 8);
        build(r, n);
        n++;
        if (n == PER_BATCH || (r->b[3] & 16) || pos + 16 > size) {
            if (!run_batch(reqs, n))
                return 0;
            n = 0;
        }
    }
    if (n)
        run_batch(reqs, n);
    return 0;
}
