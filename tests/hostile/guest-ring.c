/* SPDX-License-Identifier: MIT */
/*
 * The malicious guest's cases on the ring features (VIRTIO_F_INDIRECT_DESC,
 * VIRTIO_F_EVENT_IDX), which the driver takes through ring_features: an
 * indirect read that must work, hostile indirect tables that must break
 * the device, and EVENT_IDX with garbage in the driver's fields.
 */
#include "hostile.h"

static struct desc itab[VIRTQ_TABLE_MAX + 4] __attribute__((aligned(4096)));

/* An indirect virtio-blk read of sector 0 into data: header, data, status
 * in itab, one descriptor in the ring.  Returns the head. */
static uint16_t ind_chain(void)
{
    uint8_t *h = hdrs;
    memset(h, 0, 64);
    h[16] = 0xee;
    itab[0] = (struct desc){ (uint64_t)h, 16, F_NEXT, 1 };
    itab[1] = (struct desc){ (uint64_t)data, 512, F_NEXT | F_WRITE, 2 };
    itab[2] = (struct desc){ (uint64_t)(h + 16), 1, F_WRITE, 0 };
    dtab[0] = (struct desc){ (uint64_t)itab, 3 * 16, F_INDIRECT, 0 };
    return 0;
}

/* The device offers the feature and reads through the table. */
uint32_t ind_read(void)
{
    ring_features = RING_F_INDIRECT;
    uint32_t r = dev_init(BLK);
    if (r)
        return 0x100 | r;
    memset(data, 0, 512);
    publish(ind_chain());
    kick(BLK);
    if (!wait_used(1))
        return broken(BLK) ? 2 : 3;
    if (blk_status(0) != BLK_S_OK || used_len(0) != 513)
        return 4;
    return memcmp(data, "STRATA-HOSTILE-DISK", 19) ? 5 : 0;
}

/* The table as ind_chain wrote it, spoiled by the case, then kicked: the
 * device must break and use nothing. */
static uint32_t ind_attack(void (*spoil)(void))
{
    ring_features = RING_F_INDIRECT;
    if (dev_init(BLK))
        return 0x100;
    publish(ind_chain());
    spoil();
    mb();
    kick(BLK);
    return wait_broken(BLK) && used_idx() == 0 ? 0 : 1;
}

static void nested(void)
{
    itab[1] = (struct desc){ (uint64_t)(itab + 8), 16, F_INDIRECT, 0 };
    itab[8] = (struct desc){ (uint64_t)data, 512, F_WRITE, 0 };
}
static void outside(void)
{
    dtab[0].addr = RAM_END + 0x1000;
}
static void straddles(void)
{
    dtab[0].addr = RAM_END - 16;
}
static void in_mmio(void)
{
    dtab[0].addr = BLK; /* the device's own registers */
}
static void len_zero(void)
{
    dtab[0].len = 0;
}
static void len_not16(void)
{
    dtab[0].len = 40;
}
static void too_long(void)
{
    dtab[0].len = 16 * (VIRTQ_TABLE_MAX + 1);
}
static void loop(void)
{
    itab[2] = (struct desc){ (uint64_t)(hdrs + 16), 1, F_NEXT | F_WRITE, 1 };
}
static void with_next(void)
{
    dtab[0].flags = F_INDIRECT | F_NEXT;
    dtab[0].next = 1;
    dtab[1] = (struct desc){ (uint64_t)data, 1, F_WRITE, 0 };
}

uint32_t ind_nested(void)
{
    return ind_attack(nested);
}
uint32_t ind_table_outside_ram(void)
{
    return ind_attack(outside);
}
uint32_t ind_table_straddles(void)
{
    return ind_attack(straddles);
}
uint32_t ind_table_in_mmio(void)
{
    return ind_attack(in_mmio);
}
uint32_t ind_len_zero(void)
{
    return ind_attack(len_zero);
}
uint32_t ind_len_not16(void)
{
    return ind_attack(len_not16);
}
uint32_t ind_too_long(void)
{
    return ind_attack(too_long);
}
uint32_t ind_loop(void)
{
    return ind_attack(loop);
}
uint32_t ind_with_next(void)
{
    return ind_attack(with_next);
}

/* EVENT_IDX with garbage in used_event and the avail flags before every
 * request: each one still completes (the guest polls), and after each the
 * device asks for a kick on the next entry (avail_event). */
uint32_t event_idx_garbage(void)
{
    ring_features = RING_F_EVENT_IDX | RING_F_INDIRECT;
    uint32_t r = dev_init(BLK);
    if (r)
        return 0x100 | r;
    uint64_t x = 0x2545f4914f6cdd1dull;
    volatile uint16_t *avail_event = (volatile uint16_t *)(used + 4 + 8 * qnum);
    for (unsigned i = 0; i < 300; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        avail[0] = (uint16_t)x;                /* flags */
        avail[2 + qnum] = (uint16_t)(x >> 16); /* used_event */
        memset(data, 0, 512);
        uint8_t st = blk_rw(BLK_IN, 0, (uint64_t)data, 512);
        if (st != BLK_S_OK)
            return 0x200 | st;
        if (memcmp(data, "STRATA-HOSTILE-DISK", 19))
            return 0x300;
        uint64_t n = 0;
        while (*avail_event != aidx && n++ < 100000000ull)
            __asm__ volatile("pause" ::: "memory");
        if (*avail_event != aidx)
            return 0x400;
        w32(BLK, R_ACK, r32(BLK, R_ISR));
    }
    return broken(BLK) ? 0x500 : 0;
}

/* With EVENT_IDX the used ring is 2 bytes longer (avail_event): one that
 * fits RAM only without them is refused, never written past RAM. */
uint32_t event_idx_used_at_end(void)
{
    ring_features = RING_F_EVENT_IDX;
    return ring_at(R_USED, RAM_END - (4 + 8 * QN));
}

/* ---- not attacks: the workload of scripts/bench-virtio-notify.sh ---- */

#define BENCH_REQUESTS 4000
#define BENCH_INFLIGHT 8 /* request slots 0..7: descriptors 0..23 */

/* BENCH_REQUESTS disk reads, up to BENCH_INFLIGHT in flight, added in
 * batches of 1..4 and kicked when Linux would (by avail_event with
 * EVENT_IDX, else unless the device set VIRTQ_USED_F_NO_NOTIFY);
 * completions are taken when InterruptStatus says an interrupt was raised
 * (the guest runs with interrupts off) and, with EVENT_IDX, used_event is
 * re-armed after each sweep as Linux's virtblk_done does.  The host reads
 * the device's counters with `info virtio`. */
static uint32_t notify_bench(bool event_idx, bool lazy)
{
    ring_features = event_idx ? RING_F_EVENT_IDX : 0;
    uint32_t r = dev_init_q(BLK, 32, true);
    if (r)
        return 0x100 | r;
    volatile uint16_t *avail_event = (volatile uint16_t *)(used + 4 + 8 * qnum);
    volatile uint16_t *used_event = &avail[2 + qnum];
    volatile uint16_t *used_flags = (volatile uint16_t *)used;
    uint16_t seen = 0, kicked = 0;
    unsigned submitted = 0, done = 0, free_mask = (1u << BENCH_INFLIGHT) - 1, batch = 0;
    uint64_t kicks = 0;
    while (done < BENCH_REQUESTS) {
        unsigned want = 1 + batch++ % 4;
        for (unsigned i = 0; i < want && submitted < BENCH_REQUESTS && free_mask; i++) {
            unsigned k = (unsigned)__builtin_ctz(free_mask);
            free_mask &= ~(1u << k);
            avail[2 + aidx % qnum] = blk_chain(k, BLK_IN, submitted % 64, (uint64_t)data + 512 * k,
                                               512);
            mb();
            aidx++;
            avail[1] = aidx;
            submitted++;
        }
        mb();
        bool need = event_idx ? (uint16_t)(aidx - *avail_event - 1) < (uint16_t)(aidx - kicked)
                              : !(*used_flags & 1);
        if (need && aidx != kicked) {
            kick(BLK);
            kicks++;
        }
        kicked = aidx;
        /* completions only when "interrupted" (InterruptStatus, read as a
         * guest with interrupts would take one): take them all, re-arm
         * used_event, look again (Linux's virtblk_done) */
        for (uint64_t spin = 0; spin < MMIO_POLLS; spin++) {
            /* lazy: a busy guest that sees to its interrupts only when it
             * cannot submit more */
            if (lazy && free_mask && submitted < BENCH_REQUESTS)
                break;
            if (r32(BLK, R_ISR) & 1) {
                w32(BLK, R_ACK, 1);
                for (;;) {
                    while (seen != used_idx()) {
                        uint32_t id = *(volatile uint32_t *)(used + 4 + 8 * (seen % qnum));
                        if (id % 3 || id / 3 >= BENCH_INFLIGHT || blk_status(id / 3) != BLK_S_OK)
                            return 0x200;
                        free_mask |= 1u << (id / 3);
                        seen++;
                        done++;
                    }
                    if (event_idx)
                        *used_event = seen;
                    mb();
                    if (seen == used_idx())
                        break;
                }
            }
            if ((free_mask && submitted < BENCH_REQUESTS) || done == BENCH_REQUESTS)
                break;
        }
        if (broken(BLK))
            return 0x300;
    }
    say("hostile: notify-bench: guest kicks 0x");
    guest_put_hex(kicks);
    say("\n");
    return 0;
}

uint32_t notify_bench_plain(void)
{
    return notify_bench(false, false);
}
uint32_t notify_bench_event_idx(void)
{
    return notify_bench(true, false);
}
uint32_t notify_bench_lazy(void)
{
    return notify_bench(false, true);
}
uint32_t notify_bench_lazy_event_idx(void)
{
    return notify_bench(true, true);
}
