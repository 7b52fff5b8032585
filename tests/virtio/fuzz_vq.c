/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: virtqueue chain walking and virtio-blk request parsing
 * against fake guest memory.  The input becomes queue 0's descriptor table,
 * its available ring and the data area; the device is kicked and must
 * either complete requests or mark itself broken, never crash or touch
 * memory outside guest RAM.
 *
 * Input: [1 byte: ring features: bit 0 VIRTIO_F_INDIRECT_DESC, bit 1
 *         VIRTIO_F_EVENT_IDX, bit 2 a third kick after the used ring was
 *         cleared again]
 *        [256 bytes: 16 descriptors]
 *        [38 bytes: avail flags, idx, ring[16], used_event]
 *        [rest: copied to the buffer area, VT_BUFS, where indirect tables
 *         go].  A descriptor address with bit 63 clear is taken modulo
 * 8 MiB (so half of them land in the 4 MiB of RAM); with bit 63 set it is
 * used as is.  Addresses inside indirect tables are the input's own.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/virtio-blk.h"
#include "tests/virtio/vtest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Vt vt;
static VirtioBlk *blk;

static void setup(void)
{
    vt_setup(&vt);
    blk = vt_blk_new(&vt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!blk)
        setup();
    uint8_t ctl = size ? data[0] : 0;
    if (size)
        data++, size--;
    uint64_t ring_f = ((ctl & 1) ? VIRTIO_F_INDIRECT_DESC : 0) |
                      ((ctl & 2) ? VIRTIO_F_EVENT_IDX : 0);
    vt_bringup(&vt, ~(VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX) | ring_f, 1, 16);
    uint8_t desc[256] = { 0 }, avail[38] = { 0 };
    size_t n = size < sizeof(desc) ? size : sizeof(desc);
    memcpy(desc, data, n);
    data += n, size -= n;
    n = size < sizeof(avail) ? size : sizeof(avail);
    memcpy(avail, data, n);
    data += n, size -= n;
    for (int i = 0; i < 16; i++) {
        uint64_t a;
        memcpy(&a, desc + 16 * i, 8);
        if (!(a >> 63))
            a %= 8ull << 20;
        memcpy(desc + 16 * i, &a, 8);
    }
    memcpy(vt_ptr(&vt, vt.q[0].desc), desc, sizeof(desc));
    memcpy(vt_ptr(&vt, vt.q[0].avail), avail, sizeof(avail));
    /* the used ring starts clean for every input: what an earlier input left
     * there must not be read as this one's result */
    memset(vt_ptr(&vt, vt.q[0].used), 0, 4 + 8 * 16 + 2);
    if (size > 0x10000)
        size = 0x10000;
    memcpy(vt_ptr(&vt, VT_BUFS), data, size);
    vt_kick(&vt, 0);
    vt_kick(&vt, 0);
    if (ctl & 4) {
        memset(vt_ptr(&vt, vt.q[0].used), 0, 4 + 8 * 16 + 2);
        vt_kick(&vt, 0);
    }
    /* invariant: the device never completes a chain it did not take, nor
     * holds more than the queue size (its own indices, which the reset at
     * bring-up zeroed).  The rings in guest memory are no oracle: a
     * device-writable buffer may alias them (the guest's own choice), and
     * the disk data read into it persists from earlier inputs. */
    const VirtQueue *q = &blk->t.r.vq[0];
    if ((uint16_t)(q->last_avail_idx - q->used_idx) > q->num)
        abort();
    if (getenv("FUZZ_VQ_SHOW"))
        printf("fuzz-vq: features %#llx, used %u, avail_event %u, broken %d\n",
               (unsigned long long)ring_f, q->used_idx, vt_avail_event(&vt, 0), blk->t.r.broken);
    /* the ring features are what the input asked for */
    if ((blk->t.r.driver_features & (VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX)) != ring_f)
        abort();
    return 0;
}
