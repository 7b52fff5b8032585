/* SPDX-License-Identifier: MIT */
/*
 * A minimal virtio-mmio (version 2) driver for tiny guests: bring a device
 * up with VIRTIO_F_VERSION_1 only, program split queues from the guest's
 * own (identity-mapped) memory, add chains and poll the used ring.  No
 * interrupts (tiny guests have no IDT): everything is polled.  Header-only
 * so each guest compiles in just what it uses.
 */
#ifndef STRATA_TESTS_GUESTS_VDRV_H
#define STRATA_TESTS_GUESTS_VDRV_H

#include "guest.h"

#define VDRV_QN 16 /* entries per queue */

enum {
    VDRV_MAGIC = 0x000,
    VDRV_DEVICE_ID = 0x008,
    VDRV_DRV_FEAT = 0x020,
    VDRV_DRV_FEAT_SEL = 0x024,
    VDRV_QSEL = 0x030,
    VDRV_QNUM_MAX = 0x034,
    VDRV_QNUM = 0x038,
    VDRV_QREADY = 0x044,
    VDRV_NOTIFY = 0x050,
    VDRV_STATUS = 0x070,
    VDRV_DESC = 0x080,
    VDRV_AVAIL = 0x090,
    VDRV_USED = 0x0a0,
    VDRV_CONFIG = 0x100,
};
#define VDRV_S_ACK 1u
#define VDRV_S_DRIVER 2u
#define VDRV_S_DRIVER_OK 4u
#define VDRV_S_FEATURES_OK 8u
#define VDRV_S_NEEDS_RESET 0x40u
#define VDRV_F_WRITE 2u

typedef struct VdrvDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
} VdrvDesc;

/* One queue: rings (page aligned), where the driver stands. */
typedef struct VdrvQueue {
    VdrvDesc d[VDRV_QN] __attribute__((aligned(4096)));
    volatile uint16_t avail[2 + VDRV_QN] __attribute__((aligned(4096)));
    volatile uint8_t used[4 + 8 * VDRV_QN] __attribute__((aligned(4096)));
    uint16_t idx;       /* next avail index */
    uint16_t used_seen; /* used entries taken */
} VdrvQueue;

static inline uint32_t vdrv_r32(uint64_t base, uint32_t off)
{
    return mmio_read32(base + off);
}

static inline void vdrv_w32(uint64_t base, uint32_t off, uint32_t v)
{
    mmio_write32(base + off, v);
}

static inline void vdrv_w64(uint64_t base, uint32_t off, uint64_t v)
{
    vdrv_w32(base, off, (uint32_t)v);
    vdrv_w32(base, off + 4, (uint32_t)(v >> 32));
}

/* Brings up the device at base as device `id` with nq queues from qs:
 * 0 on success, else 1 no such device, 2 FEATURES_OK refused, 3 a queue
 * too small. */
static inline int vdrv_init(uint64_t base, uint32_t id, VdrvQueue *qs, unsigned nq)
{
    if (vdrv_r32(base, VDRV_MAGIC) != 0x74726976u || vdrv_r32(base, VDRV_DEVICE_ID) != id)
        return 1;
    vdrv_w32(base, VDRV_STATUS, 0);
    vdrv_w32(base, VDRV_STATUS, VDRV_S_ACK);
    vdrv_w32(base, VDRV_STATUS, VDRV_S_ACK | VDRV_S_DRIVER);
    vdrv_w32(base, VDRV_DRV_FEAT_SEL, 0);
    vdrv_w32(base, VDRV_DRV_FEAT, 0);
    vdrv_w32(base, VDRV_DRV_FEAT_SEL, 1);
    vdrv_w32(base, VDRV_DRV_FEAT, 1); /* VIRTIO_F_VERSION_1 only */
    vdrv_w32(base, VDRV_STATUS, VDRV_S_ACK | VDRV_S_DRIVER | VDRV_S_FEATURES_OK);
    if (!(vdrv_r32(base, VDRV_STATUS) & VDRV_S_FEATURES_OK))
        return 2;
    for (uint32_t q = 0; q < nq; q++) {
        vdrv_w32(base, VDRV_QSEL, q);
        if (vdrv_r32(base, VDRV_QNUM_MAX) < VDRV_QN)
            return 3;
        vdrv_w32(base, VDRV_QNUM, VDRV_QN);
        vdrv_w64(base, VDRV_DESC, (uint64_t)qs[q].d);
        vdrv_w64(base, VDRV_AVAIL, (uint64_t)qs[q].avail);
        vdrv_w64(base, VDRV_USED, (uint64_t)qs[q].used);
        vdrv_w32(base, VDRV_QREADY, 1);
    }
    vdrv_w32(base, VDRV_STATUS, VDRV_S_ACK | VDRV_S_DRIVER | VDRV_S_FEATURES_OK | VDRV_S_DRIVER_OK);
    return 0;
}

/* Makes one buffer available in descriptor `slot` (not notified). */
static inline void vdrv_add(VdrvQueue *vq, uint16_t slot, const void *buf, uint32_t len,
                            bool writable)
{
    vq->d[slot] = (VdrvDesc){ (uint64_t)buf, len, writable ? VDRV_F_WRITE : 0, 0 };
    vq->avail[2 + vq->idx % VDRV_QN] = slot;
    __asm__ volatile("mfence" ::: "memory");
    vq->avail[1] = (uint16_t)(vq->idx + 1);
    __asm__ volatile("mfence" ::: "memory");
    vq->idx++;
}

/* Tells the device about queue q. */
static inline void vdrv_kick(uint64_t base, uint32_t q)
{
    vdrv_w32(base, VDRV_NOTIFY, q);
}

/* The next used entry (1, with *id and *len), or 0 if none yet. */
static inline int vdrv_used(VdrvQueue *vq, uint32_t *id, uint32_t *len)
{
    __asm__ volatile("mfence" ::: "memory");
    if (*(volatile uint16_t *)(vq->used + 2) == vq->used_seen)
        return 0;
    const volatile uint8_t *e = vq->used + 4 + 8 * (vq->used_seen % VDRV_QN);
    *id = *(const volatile uint32_t *)e;
    *len = *(const volatile uint32_t *)(e + 4);
    vq->used_seen++;
    return 1;
}

/* Whether the device at base says DEVICE_NEEDS_RESET. */
static inline bool vdrv_broken(uint64_t base)
{
    return vdrv_r32(base, VDRV_STATUS) & VDRV_S_NEEDS_RESET;
}

#endif /* STRATA_TESTS_GUESTS_VDRV_H */
