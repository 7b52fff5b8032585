/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: virtqueue chain walking and virtio-blk request parsing
 * against fake guest memory.  The input becomes queue 0's descriptor table,
 * its available ring and the data area; the device is kicked and must
 * either complete requests or mark itself broken, never crash or touch
 * memory outside guest RAM.
 *
 * Input: [256 bytes: 16 descriptors][36 bytes: avail flags, idx, ring[16]]
 *        [rest: copied to the buffer area].  A descriptor address with bit
 * 63 clear is taken modulo 8 MiB (so half of them land in the 4 MiB of
 * RAM); with bit 63 set it is used as is.
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
    vt_bringup(&vt, ~0ull, 1, 16);
    uint8_t desc[256] = { 0 }, avail[36] = { 0 };
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
    /* invariant: the device never completes a chain it did not take, nor
     * holds more than the queue size (its own indices, which the reset at
     * bring-up zeroed).  The rings in guest memory are no oracle: a
     * device-writable buffer may alias them (the guest's own choice), and
     * the disk data read into it persists from earlier inputs. */
    const VirtQueue *q = &blk->t.r.vq[0];
    if ((uint16_t)(q->last_avail_idx - q->used_idx) > q->num)
        abort();
    return 0;
}
