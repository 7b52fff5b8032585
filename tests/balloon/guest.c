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
#include "tests/guests/vdrv.h"

#define DEV 0xfeb00000ull
#define TOUCH_BASE (64ull << 20)
#define TOUCH_MIB 64u
#define TOUCH_PAGES (TOUCH_MIB * 256u)
#define CHUNK 256u

volatile uint64_t spin_counter;

static VdrvQueue qs[2];
static uint32_t pfns[CHUNK] __attribute__((aligned(4096)));

static uint32_t r32(uint32_t off)
{
    return vdrv_r32(DEV, off);
}
static void w32(uint32_t off, uint32_t v)
{
    vdrv_w32(DEV, off, v);
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
    int r = vdrv_init(DEV, 5, qs, 2);
    if (r == 1) {
        say("no virtio-balloon at 0xfeb00000; idle, device id", r32(VDRV_DEVICE_ID));
        for (;;) { /* the host checks QMP without a balloon */
            spin_counter++;
            guest_pause_loop(100000);
        }
    }
    if (r == 2)
        fail(0x102, "FEATURES_OK refused", r32(VDRV_STATUS));
    if (r == 3)
        fail(0x103, "queue too small", 0);
}

/* Sends n PFNs on queue q and waits until the device used them. */
static void send(uint32_t q, uint32_t n)
{
    VdrvQueue *vq = &qs[q];
    vdrv_add(vq, vq->idx % VDRV_QN, pfns, 4 * n, false);
    vdrv_kick(DEV, q);
    uint32_t id, len;
    while (!vdrv_used(vq, &id, &len)) {
        if (vdrv_broken(DEV))
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
        uint32_t target = r32(VDRV_CONFIG);
        if (target > TOUCH_PAGES)
            target = TOUCH_PAGES; /* only the touched area is given up */
        if (target > actual) {
            uint32_t n = target - actual < CHUNK ? target - actual : CHUNK;
            for (uint32_t k = 0; k < n; k++)
                pfns[k] = (uint32_t)(page_addr(actual + k) >> 12);
            send(0, n);
            actual += n;
            w32(VDRV_CONFIG + 4, actual);
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
            w32(VDRV_CONFIG + 4, actual);
            if (actual == target)
                say("deflated to pages", actual);
        } else {
            spin_counter++;
            guest_pause_loop(100000);
        }
    }
}
