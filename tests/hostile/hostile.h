/* SPDX-License-Identifier: MIT */
/*
 * The malicious guest's shared parts (guest.c: the driver, the rings, the
 * case table; guest-ring.c: the cases on the ring features).  The guest
 * has its own copy of the virtio-mmio ABI.
 */
#ifndef STRATA_TESTS_HOSTILE_HOSTILE_H
#define STRATA_TESTS_HOSTILE_HOSTILE_H

#include "guest.h"

#define BLK 0xfeb00000ull
#define RNG 0xfeb00200ull
#define VIRTIO_SLOTS 18
#define QN 16
#define RAM_END (256ull << 20) /* strata's default --memory */

/* virtio-mmio registers and bits (the guest has its own copy of the ABI) */
#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEV_FEAT 0x010
#define R_DEV_FEAT_SEL 0x014
#define R_DRV_FEAT 0x020
#define R_DRV_FEAT_SEL 0x024
#define R_QSEL 0x030
#define R_QNUM_MAX 0x034
#define R_QNUM 0x038
#define R_QREADY 0x044
#define R_NOTIFY 0x050
#define R_ISR 0x060
#define R_ACK 0x064
#define R_STATUS 0x070
#define R_DESC 0x080
#define R_AVAIL 0x090
#define R_USED 0x0a0
#define R_CONFIG 0x100
#define S_ACK 1u
#define S_DRIVER 2u
#define S_DRIVER_OK 4u
#define S_FEATURES_OK 8u
#define S_NEEDS_RESET 0x40u
#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4
#define RING_F_INDIRECT (1u << 28) /* low word of the features */
#define RING_F_EVENT_IDX (1u << 29)
#define VIRTQ_TABLE_MAX 256 /* strata's limit on an indirect table */
#define BLK_IN 0
#define BLK_OUT 1
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2

#define RAM_POLLS 400000000ull /* polls of guest RAM (no exit each) */
#define MMIO_POLLS 200000ull   /* polls of a device register (an exit each) */

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

/* the rings and buffers (one queue at a time) */
extern struct desc dtab[256];
extern volatile uint16_t avail[2048];
extern volatile uint8_t used[4096];
extern uint8_t hdrs[4096]; /* 64 bytes per request slot */
extern uint8_t data[64 * 1024];
extern uint16_t qnum, aidx;
/* low word of the driver features dev_init_q writes besides VERSION_1 */
extern uint32_t ring_features;

uint32_t r32(uint64_t dev, uint32_t off);
void w32(uint64_t dev, uint32_t off, uint32_t v);
void w64(uint64_t dev, uint32_t off, uint64_t v);
void mb(void);
uint16_t used_idx(void);
uint32_t used_len(uint16_t i);
bool broken(uint64_t dev);
void say(const char *s);
/* reset, features, one queue of num entries, DRIVER_OK; 0 or a code */
uint32_t dev_init_q(uint64_t dev, uint16_t num, bool driver_ok);
uint32_t dev_init(uint64_t dev);
/* puts head in the avail ring and publishes the index */
void publish(uint16_t head);
void kick(uint64_t dev);
bool wait_used(uint16_t target);
bool wait_broken(uint64_t dev);
/* request slot k: header at hdrs + 64k, status at +16, descriptors
 * 3k..3k+2; returns the head */
uint16_t blk_chain(unsigned k, uint32_t type, uint64_t sector, uint64_t buf, uint32_t len);
uint8_t blk_status(unsigned k);
uint8_t blk_rw(uint32_t type, uint64_t sector, uint64_t buf, uint32_t len);
/* queue 0 of BLK with ring register reg at addr, kicked: 0 if refused or
 * broken */
uint32_t ring_at(unsigned reg, uint64_t addr);
/* 0 if dev broke or failed request k with an error status */
uint32_t expect_break_or_error(uint64_t dev, unsigned k);

/* guest-ring.c */
uint32_t ind_read(void);
uint32_t ind_nested(void);
uint32_t ind_table_outside_ram(void);
uint32_t ind_table_straddles(void);
uint32_t ind_table_in_mmio(void);
uint32_t ind_len_zero(void);
uint32_t ind_len_not16(void);
uint32_t ind_too_long(void);
uint32_t ind_loop(void);
uint32_t ind_with_next(void);
uint32_t event_idx_garbage(void);
uint32_t event_idx_used_at_end(void);
uint32_t notify_bench_plain(void);
uint32_t notify_bench_event_idx(void);
uint32_t notify_bench_lazy(void);
uint32_t notify_bench_lazy_event_idx(void);

#endif /* STRATA_TESTS_HOSTILE_HOSTILE_H */
