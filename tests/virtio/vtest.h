/* SPDX-License-Identifier: MIT */
/*
 * Test harness for the virtio devices: fake guest memory (a RAM region in a
 * MemoryContext + AddressSpace, no /dev/kvm), the device's register window
 * mapped at VT_BASE, and a small "driver" that programs the registers and
 * fills split rings the way Linux's virtio_mmio/virtio_ring would.
 */
#ifndef STRATA_TESTS_VIRTIO_VTEST_H
#define STRATA_TESTS_VIRTIO_VTEST_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio-mmio.h"

#define VT_RAM_SIZE (4u << 20)
#define VT_BASE 0xfeb00000ull
#define VT_RINGS 0x10000ull /* queue q: +q*0x4000: desc, +0x1000 avail, +0x2000 used */
#define VT_BUFS 0x100000ull /* free-for-all buffer area */

typedef struct VtIrq {
    int raises, lowers, level;
} VtIrq;

typedef struct VtQueue {
    uint16_t num;
    uint64_t desc, avail, used;
    uint16_t next_desc; /* next free descriptor (wraps) */
    uint16_t avail_idx;
    uint16_t used_seen;
    uint16_t kicked_idx; /* avail_idx at the last vt_kick_prepare */
} VtQueue;

typedef struct Vt {
    MemoryContext *ctx;
    MemoryRegion system, ram;
    AddressSpace *as;
    uint8_t *ram_p;
    VtIrq irq_state;
    IrqLine irq;
    MemoryRegion *dev_mr; /* mapped at VT_BASE */
    VtQueue q[VIRTIO_MMIO_MAX_QUEUES];
    uint64_t features; /* what vt_negotiate wrote */
} Vt;

typedef struct VtBuf {
    uint64_t addr;
    uint32_t len;
    bool write; /* device-writable */
} VtBuf;

/* Builds memory (system container + RAM at 0) and the address space. */
void vt_setup(Vt *vt);
/* Maps the device region at VT_BASE (call after the device's init). */
void vt_map(Vt *vt, MemoryRegion *mr);
/* Unmaps the device region (before destroying the device). */
void vt_teardown(Vt *vt);
/* A virtio-blk on a fresh 32 KiB temporary file (already unlinked), made
 * and mapped at VT_BASE; aborts on failure (for fuzz harnesses). */
struct VirtioBlk *vt_blk_new(Vt *vt);
/* The same with nq request queues (1 to VIRTIO_BLK_MAX_QUEUES). */
struct VirtioBlk *vt_blk_new_mq(Vt *vt, unsigned nq);
/* Frees the memory and context (after destroying the device). */
void vt_free(Vt *vt);

uint32_t vt_r32(Vt *vt, uint64_t off);
void vt_w32(Vt *vt, uint64_t off, uint32_t v);
/* Reads size bytes of config space at off. */
uint64_t vt_cfg(Vt *vt, uint64_t off, unsigned size);

/* reset, ACK, DRIVER, features (device's & want | VERSION_1), FEATURES_OK;
 * returns the status read back. */
uint32_t vt_negotiate(Vt *vt, uint64_t want);
/* Programs queue q with num entries at the default ring addresses and sets
 * it ready; returns QueueReady read back. */
uint32_t vt_queue(Vt *vt, unsigned q, uint16_t num);
/* Sets DRIVER_OK. */
void vt_driver_ok(Vt *vt);
/* Full bring-up: negotiate(want), nq queues of size num, DRIVER_OK. */
void vt_bringup(Vt *vt, uint64_t want, unsigned nq, uint16_t num);

/* Writes a chain of n buffers into q's descriptor table and the avail ring
 * (not notified); returns the head. */
uint16_t vt_add(Vt *vt, unsigned q, const VtBuf *b, unsigned n);
/* Writes n descriptors for b at table_gpa (an indirect table, chained
 * 0 -> 1 -> ...) and adds one chain to q whose only descriptor points at
 * it (not notified); returns the head. */
uint16_t vt_add_indirect(Vt *vt, unsigned q, uint64_t table_gpa, const VtBuf *b, unsigned n);
/* Writes QueueNotify for q. */
void vt_kick(Vt *vt, unsigned q);
/* Whether the driver must kick q for what it added since the last call,
 * as Linux decides: with EVENT_IDX by the device's avail_event, without
 * by VIRTQ_USED_F_NO_NOTIFY. */
bool vt_kick_prepare(Vt *vt, unsigned q);
/* EVENT_IDX fields: the driver's used_event (after the avail ring) and
 * the device's avail_event (after the used ring). */
void vt_set_used_event(Vt *vt, unsigned q, uint16_t idx);
uint16_t vt_avail_event(Vt *vt, unsigned q);
/* Used entries not yet seen; 0 if none, else fills id and len of the next. */
int vt_used(Vt *vt, unsigned q, uint32_t *id, uint32_t *len);

/* Guest memory helpers. */
void *vt_ptr(Vt *vt, uint64_t gpa);
void vt_write_desc(Vt *vt, unsigned q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                   uint16_t next);
void vt_set_avail_idx(Vt *vt, unsigned q, uint16_t idx);

#endif /* STRATA_TESTS_VIRTIO_VTEST_H */
