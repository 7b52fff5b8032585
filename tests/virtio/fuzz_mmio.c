/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the virtio-mmio register file (of a virtio-blk device
 * with four request queues, which has a config space and several QueueSel
 * values) driven by arbitrary sequences of accesses, with
 * queue notifications processed inline.  Records of 7 bytes:
 *   op (1) | offset (2, little endian, taken modulo 0x200) | value (4)
 * op & 3: 0 read 4 bytes, 1 write 4 bytes, 2 write, 3 read, of 1 << ((op >> 2)
 * & 3) bytes; op == 0xff: a proper driver bring-up of one queue.
 * Each input starts from a reset device.
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
    blk = vt_blk_new_mq(&vt, 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!blk)
        setup();
    vt_w32(&vt, VIRTIO_MMIO_STATUS, 0);
    for (; size >= 7; data += 7, size -= 7) {
        uint8_t op = data[0];
        uint16_t off;
        uint32_t val;
        memcpy(&off, data + 1, 2);
        memcpy(&val, data + 3, 4);
        off %= VIRTIO_MMIO_SIZE;
        if (op == 0xff) {
            vt_bringup(&vt, val, 1, 16);
            continue;
        }
        unsigned sz = (op & 3) < 2 ? 4 : 1u << ((op >> 2) & 3);
        uint64_t v = val;
        if (op & 1)
            address_space_write(vt.as, VT_BASE + off, &v, sz);
        else
            address_space_read(vt.as, VT_BASE + off, &v, sz);
    }
    return 0;
}
