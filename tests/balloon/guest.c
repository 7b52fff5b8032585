/* SPDX-License-Identifier: MIT */
/*
 * A tiny balloon driver: strata runs it with --test-device --balloon (the
 * balloon is the only virtio device, at 0xfeb00000) and 256 MiB of RAM.
 * (Without a balloon it says so and idles.)  It touches TOUCH_MIB MiB at TOUCH_BASE and says so, then follows the
 * host's target (num_pages) for ever, polling the config space (no
 * interrupts: there is no IDT): it inflates pages of the touched area, or
 * deflates them, in chunks of CHUNK PFNs, writes `actual` after each
 * chunk, and after a deflate checks that every page it got back reads as
 * zeros (the host dropped it) before touching it again.  Lines on the
 * console ("balloon: ...") tell the host where it is; a failed check
 * exits with a code.
 */
#include "guest.h"

#define DEV 0xfeb00000ull
#define TOUCH_BASE (64ull << 20)
#define TOUCH_MIB 64u
#define TOUCH_PAGES (TOUCH_MIB * 256u)
#define CHUNK 256u
#define QN 16

#define R_MAGIC 0x000
#define R_DEVICE_ID 0x008
#define R_DRV_FEAT 0x020
#define R_DRV_FEAT_SEL 0x024
#define R_QSEL 0x030
#define R_QNUM_MAX 0x034
#define R_QNUM 0x038
#define R_QREADY 0x044
#define R_NOTIFY 0x050
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

volatile uint64_t spin_counter;

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

struct queue {
    struct desc d[QN] __attribute__((aligned(4096)));
    volatile uint16_t avail[2 + QN] __attribute__((aligned(4096)));
    volatile uint8_t used[4 + 8 * QN] __attribute__((aligned(4096)));
    uint16_t idx;
};

static struct queue qs[2];
static uint32_t pfns[CHUNK] __attribute__((aligned(4096)));

static uint32_t r32(uint32_t off)
{
    return mmio_read32(DEV + off);
}
static void w32(uint32_t off, uint32_t v)
{
    mmio_write32(DEV + off, v);
}
static void w64(uint32_t off, uint64_t v)
{
    w32(off, (uint32_t)v);
    w32(off + 4, (uint32_t)(v >> 32));
}

static void say(const char *what, uint64_t v)
{
    guest_puts("balloon: ");
    guest_puts(what);
    guest_puts(" 0x");
    guest_put_hex(v);
    guest_puts("\n");
}

static void fail(uint32_t code, const char *why, uint64_t v)
{
    say(why, v);
    guest_exit(code);
}

static void init(void)
{
    if (r32(R_MAGIC) != 0x74726976u || r32(R_DEVICE_ID) != 5) {
        say("no virtio-balloon at 0xfeb00000; idle, device id", r32(R_DEVICE_ID));
        for (;;) { /* the host checks QMP without a balloon */
            spin_counter++;
            guest_pause_loop(100000);
        }
    }
    w32(R_STATUS, 0);
    w32(R_STATUS, S_ACK);
    w32(R_STATUS, S_ACK | S_DRIVER);
    w32(R_DRV_FEAT_SEL, 0);
    w32(R_DRV_FEAT, 0);
    w32(R_DRV_FEAT_SEL, 1);
    w32(R_DRV_FEAT, 1); /* VIRTIO_F_VERSION_1 only */
    w32(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    if (!(r32(R_STATUS) & S_FEATURES_OK))
        fail(0x102, "FEATURES_OK refused", r32(R_STATUS));
    for (uint32_t q = 0; q < 2; q++) {
        w32(R_QSEL, q);
        if (r32(R_QNUM_MAX) < QN)
            fail(0x103, "queue too small", r32(R_QNUM_MAX));
        w32(R_QNUM, QN);
        w64(R_DESC, (uint64_t)qs[q].d);
        w64(R_AVAIL, (uint64_t)qs[q].avail);
        w64(R_USED, (uint64_t)qs[q].used);
        w32(R_QREADY, 1);
    }
    w32(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

/* Sends n PFNs on queue q and waits until the device used them. */
static void send(uint32_t q, uint32_t n)
{
    struct queue *vq = &qs[q];
    uint16_t slot = vq->idx % QN;
    vq->d[slot] = (struct desc){ (uint64_t)pfns, 4 * n, 0, 0 };
    vq->avail[2 + slot] = slot;
    __asm__ volatile("mfence" ::: "memory");
    vq->avail[1] = (uint16_t)(vq->idx + 1);
    __asm__ volatile("mfence" ::: "memory");
    w32(R_NOTIFY, q);
    vq->idx++;
    while (*(volatile uint16_t *)(vq->used + 2) != vq->idx) {
        if (r32(R_STATUS) & S_NEEDS_RESET)
            fail(0x104, "the device broke on queue", q);
        guest_pause_loop(1000);
    }
}

static uint64_t page_addr(uint32_t i)
{
    return TOUCH_BASE + 4096ull * i;
}

int guest_main(void)
{
    init();
    for (uint32_t i = 0; i < TOUCH_PAGES; i++)
        *(volatile uint64_t *)page_addr(i) = 0x5a5a5a5a00000000ull | i;
    say("touched MiB", TOUCH_MIB);
    uint32_t actual = 0;
    for (;;) {
        uint32_t target = r32(R_CONFIG);
        if (target > TOUCH_PAGES)
            target = TOUCH_PAGES; /* only the touched area is given up */
        if (target > actual) {
            uint32_t n = target - actual < CHUNK ? target - actual : CHUNK;
            for (uint32_t k = 0; k < n; k++)
                pfns[k] = (uint32_t)(page_addr(actual + k) >> 12);
            send(0, n);
            actual += n;
            w32(R_CONFIG + 4, actual);
            if (actual == target)
                say("inflated to pages", actual);
        } else if (target < actual) {
            uint32_t n = actual - target < CHUNK ? actual - target : CHUNK;
            uint32_t first = actual - n;
            for (uint32_t k = 0; k < n; k++)
                pfns[k] = (uint32_t)(page_addr(first + k) >> 12);
            send(1, n);
            /* the host dropped these pages: they read as zeros, then are ours */
            for (uint32_t k = 0; k < n; k++) {
                volatile uint64_t *p = (volatile uint64_t *)page_addr(first + k);
                if (p[0] != 0 || p[511] != 0)
                    fail(0x105, "a page given back kept its content; page", first + k);
                p[0] = 0x5a5a5a5a00000000ull | (first + k);
            }
            actual = first;
            w32(R_CONFIG + 4, actual);
            if (actual == target)
                say("deflated to pages", actual);
        } else {
            spin_counter++;
            guest_pause_loop(100000);
        }
    }
}
