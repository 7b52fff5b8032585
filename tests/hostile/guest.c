/* SPDX-License-Identifier: MIT */
/*
 * The malicious guest: one attack on strata's devices per run, chosen by
 * the kernel command line ("case=NAME", read from the PVH command line at
 * 0x7000).  strata runs it with --test-device --disk --rng, so virtio-blk
 * is at 0xfeb00000 and virtio-rng at 0xfeb00200.
 *
 * After the attack the guest checks the device ended in a defined state
 * (DEVICE_NEEDS_RESET in Status, or the request completed with an error
 * status), then resets both devices and proves they work again (a disk
 * read of sector 0 with the host's magic, 64 random bytes).  It prints
 * "hostile: NAME: PASS ..." or "hostile: NAME: FAIL ..." and then counts
 * forever, so the host can query the still-running VM and shut it down.
 */
#include "hostile.h"

volatile uint64_t spin_counter;

struct desc dtab[256] __attribute__((aligned(4096)));
volatile uint16_t avail[2048] __attribute__((aligned(4096)));
volatile uint8_t used[4096] __attribute__((aligned(4096)));
uint8_t hdrs[4096] __attribute__((aligned(4096))); /* 64 bytes per request slot */
uint8_t data[64 * 1024] __attribute__((aligned(4096)));
uint16_t qnum, aidx;
uint32_t ring_features;

uint32_t r32(uint64_t dev, uint32_t off)
{
    return mmio_read32(dev + off);
}
void w32(uint64_t dev, uint32_t off, uint32_t v)
{
    mmio_write32(dev + off, v);
}
void w64(uint64_t dev, uint32_t off, uint64_t v)
{
    w32(dev, off, (uint32_t)v);
    w32(dev, off + 4, (uint32_t)(v >> 32));
}
void mb(void)
{
    __asm__ volatile("mfence" ::: "memory");
}
uint16_t used_idx(void)
{
    return *(volatile uint16_t *)(used + 2);
}
uint32_t used_len(uint16_t i)
{
    return *(volatile uint32_t *)(used + 4 + 8 * (i % qnum) + 4);
}
bool broken(uint64_t dev)
{
    return r32(dev, R_STATUS) & S_NEEDS_RESET;
}

void say(const char *s)
{
    guest_puts(s);
}

/* reset, features (VERSION_1 and ring_features), one queue of num entries, DRIVER_OK;
 * 0 or a failure code */
uint32_t dev_init_q(uint64_t dev, uint16_t num, bool driver_ok)
{
    if (r32(dev, R_MAGIC) != 0x74726976u || r32(dev, R_VERSION) != 2)
        return 0x101;
    w32(dev, R_STATUS, 0);
    if (r32(dev, R_STATUS) != 0)
        return 0x102;
    w32(dev, R_STATUS, S_ACK);
    w32(dev, R_STATUS, S_ACK | S_DRIVER);
    w32(dev, R_DRV_FEAT_SEL, 0);
    w32(dev, R_DRV_FEAT, ring_features);
    w32(dev, R_DRV_FEAT_SEL, 1);
    w32(dev, R_DRV_FEAT, 1); /* VIRTIO_F_VERSION_1 */
    w32(dev, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    if (!(r32(dev, R_STATUS) & S_FEATURES_OK))
        return 0x103;
    memset(dtab, 0, sizeof(dtab));
    memset((void *)avail, 0, sizeof(avail));
    memset((void *)used, 0, sizeof(used));
    w32(dev, R_QSEL, 0);
    if (r32(dev, R_QNUM_MAX) < num)
        return 0x104;
    w32(dev, R_QNUM, num);
    w64(dev, R_DESC, (uint64_t)dtab);
    w64(dev, R_AVAIL, (uint64_t)avail);
    w64(dev, R_USED, (uint64_t)used);
    w32(dev, R_QREADY, 1);
    if (r32(dev, R_QREADY) != 1)
        return 0x105;
    qnum = num;
    aidx = 0;
    if (driver_ok)
        w32(dev, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    return 0;
}

uint32_t dev_init(uint64_t dev)
{
    return dev_init_q(dev, QN, true);
}

void publish(uint16_t head)
{
    avail[2 + aidx % qnum] = head;
    mb();
    aidx++;
    avail[1] = aidx;
    mb();
}

void kick(uint64_t dev)
{
    w32(dev, R_NOTIFY, 0);
}

bool wait_used(uint16_t target)
{
    for (uint64_t i = 0; i < RAM_POLLS; i++) {
        if (used_idx() == target)
            return true;
        __asm__ volatile("pause" ::: "memory");
    }
    return false;
}

bool wait_broken(uint64_t dev)
{
    for (uint64_t i = 0; i < MMIO_POLLS; i++)
        if (broken(dev))
            return true;
    return false;
}

/* Request slot k: header at hdrs + 64k, status byte at +16; descriptors
 * 3k..3k+2.  Returns the head. */
uint16_t blk_chain(unsigned k, uint32_t type, uint64_t sector, uint64_t buf, uint32_t len)
{
    uint8_t *h = hdrs + 64 * k;
    memset(h, 0, 64);
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
    h[16] = 0xee;
    uint16_t d = (uint16_t)(3 * k);
    dtab[d] = (struct desc){ (uint64_t)h, 16, F_NEXT, (uint16_t)(d + 1) };
    dtab[d + 1] = (struct desc){ buf, len, (uint16_t)(F_NEXT | (type == BLK_OUT ? 0 : F_WRITE)),
                                 (uint16_t)(d + 2) };
    dtab[d + 2] = (struct desc){ (uint64_t)(h + 16), 1, F_WRITE, 0 };
    return d;
}

uint8_t blk_status(unsigned k)
{
    return *(volatile uint8_t *)(hdrs + 64 * k + 16);
}

/* One request on BLK, waited for; its status byte, 0xfe if never used,
 * 0xfd if the device broke instead. */
uint8_t blk_rw(uint32_t type, uint64_t sector, uint64_t buf, uint32_t len)
{
    uint16_t target = (uint16_t)(used_idx() + 1);
    publish(blk_chain(0, type, sector, buf, len));
    kick(BLK);
    if (!wait_used(target))
        return broken(BLK) ? 0xfd : 0xfe;
    return blk_status(0);
}

static uint64_t blk_capacity(void)
{
    return r32(BLK, R_CONFIG) | (uint64_t)r32(BLK, R_CONFIG + 4) << 32;
}

/* Both devices reset and shown to work; 0 or a failure code. */
static uint32_t recover(void)
{
    ring_features = 0;
    uint32_t r = dev_init(BLK);
    if (r)
        return 0x1000 | r;
    memset(data, 0, 512);
    uint8_t st = blk_rw(BLK_IN, 0, (uint64_t)data, 512);
    if (st != BLK_S_OK)
        return 0x1100 | st;
    if (memcmp(data, "STRATA-HOSTILE-DISK", 19))
        return 0x1200;
    if (broken(BLK))
        return 0x1300;
    r = dev_init(RNG);
    if (r)
        return 0x2000 | r;
    dtab[0] = (struct desc){ (uint64_t)data, 64, F_WRITE, 0 };
    publish(0);
    kick(RNG);
    if (!wait_used(1))
        return 0x2100;
    if (used_len(0) != 64)
        return 0x2200;
    if (broken(RNG))
        return 0x2300;
    return 0;
}

/* ---- the attacks: 0 = the device ended in a defined state --------------- */

/* The device must break (DEVICE_NEEDS_RESET) or fail the request with an
 * error status; it must never report success. */
uint32_t expect_break_or_error(uint64_t dev, unsigned k)
{
    for (uint64_t i = 0; i < MMIO_POLLS; i++) {
        if (broken(dev))
            return 0;
        if (used_idx() != 0)
            return dev == BLK && blk_status(k) != BLK_S_OK && blk_status(k) != 0xee ? 0 : 0x11;
    }
    return 0x10; /* neither: the device hung */
}

static uint32_t chain_loop(void)
{
    dev_init(BLK);
    blk_chain(0, BLK_IN, 0, (uint64_t)data, 512);
    dtab[1].next = 0; /* data -> header -> data ... */
    publish(0);
    kick(BLK);
    return wait_broken(BLK) && used_idx() == 0 ? 0 : 1;
}

static uint32_t chain_self_loop(void)
{
    dev_init(BLK);
    dtab[0] = (struct desc){ (uint64_t)hdrs, 16, F_NEXT, 0 };
    publish(0);
    kick(BLK);
    return wait_broken(BLK) ? 0 : 1;
}

static uint32_t chain_next_out_of_range(void)
{
    dev_init(BLK);
    blk_chain(0, BLK_IN, 0, (uint64_t)data, 512);
    dtab[1].next = 200;
    publish(0);
    kick(BLK);
    return wait_broken(BLK) ? 0 : 1;
}

static uint32_t chain_longer_than_ring(void)
{
    dev_init(BLK);
    for (unsigned i = 0; i < QN; i++) /* a chain through every entry, ending nowhere */
        dtab[i] = (struct desc){ (uint64_t)data + 16 * i, 16, F_NEXT | (i ? F_WRITE : 0),
                                 (uint16_t)((i + 1) % QN) };
    publish(0);
    kick(BLK);
    return wait_broken(BLK) ? 0 : 1;
}

static uint32_t bad_buffer(uint64_t addr, uint32_t len)
{
    dev_init(BLK);
    blk_chain(0, BLK_IN, 0, addr, len);
    publish(0);
    kick(BLK);
    return expect_break_or_error(BLK, 0);
}

static uint32_t buf_outside_ram(void)
{
    return bad_buffer(RAM_END + 0x1000, 512);
}
static uint32_t buf_straddles_ram_end(void)
{
    return bad_buffer(RAM_END - 256, 512);
}
static uint32_t buf_in_mmio(void)
{
    return bad_buffer(BLK + 0x100, 512);
}
static uint32_t buf_wraps(void)
{
    return bad_buffer(0xfffffffffffff000ull, 0x2000);
}
static uint32_t len_4gib(void)
{
    return bad_buffer((uint64_t)data, 0xffffffffu);
}
/* A 0-byte data descriptor: a read of nothing may succeed, fail or break
 * the device; it must not hang. */
static uint32_t len_zero(void)
{
    dev_init(BLK);
    publish(blk_chain(0, BLK_IN, 0, (uint64_t)data, 0));
    kick(BLK);
    for (uint64_t i = 0; i < MMIO_POLLS; i++) {
        if (broken(BLK))
            return 0;
        if (used_idx())
            return blk_status(0) <= BLK_S_IOERR ? 0 : 0x12;
    }
    return 0x10;
}

static uint32_t header_outside_ram(void)
{
    dev_init(BLK);
    blk_chain(0, BLK_IN, 0, (uint64_t)data, 512);
    dtab[0].addr = 0xc0000000ull;
    publish(0);
    kick(BLK);
    return expect_break_or_error(BLK, 0);
}

/* A read whose data lands on the rings themselves: the device may do it
 * (it is guest RAM) or refuse; either way it must finish or break. */
static uint32_t overlap(uint64_t target)
{
    dev_init(BLK);
    blk_chain(0, BLK_IN, 0, target, 4096);
    publish(0);
    kick(BLK);
    for (uint64_t i = 0; i < MMIO_POLLS; i++) {
        if (broken(BLK))
            return 0;
        if (blk_status(0) != 0xee)
            return 0; /* completed (the used ring may be trampled) */
    }
    return 1;
}

static uint32_t overlap_desc(void)
{
    return overlap((uint64_t)dtab);
}
static uint32_t overlap_used(void)
{
    return overlap((uint64_t)used);
}
static uint32_t overlap_avail(void)
{
    return overlap((uint64_t)avail);
}

static uint32_t avail_idx_far(void)
{
    dev_init(BLK);
    blk_chain(0, BLK_IN, 0, (uint64_t)data, 512);
    avail[2] = 0;
    mb();
    avail[1] = 1000; /* the ring has 16 entries */
    kick(BLK);
    return wait_broken(BLK) ? 0 : 1;
}

static uint32_t avail_head_out_of_range(void)
{
    dev_init(BLK);
    publish(500);
    kick(BLK);
    return wait_broken(BLK) ? 0 : 1;
}

static uint32_t queue_bad_size(void)
{
    static const uint32_t sizes[] = { 3, 1024, 0, 0xffffffffu };
    for (unsigned i = 0; i < 4; i++) {
        dev_init_q(BLK, QN, false);
        w32(BLK, R_QREADY, 0);
        w32(BLK, R_QNUM, sizes[i]);
        w32(BLK, R_QREADY, 1);
        if (r32(BLK, R_QREADY) == 0)
            continue; /* refused: defined */
        w32(BLK, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
        publish(blk_chain(0, BLK_IN, 0, (uint64_t)data, 512));
        kick(BLK);
        if (!wait_broken(BLK))
            return 0x20 + i;
    }
    return 0;
}

uint32_t ring_at(unsigned reg, uint64_t addr)
{
    dev_init_q(BLK, QN, false);
    w32(BLK, R_QREADY, 0);
    w64(BLK, reg, addr);
    w32(BLK, R_QREADY, 1);
    if (r32(BLK, R_QREADY) == 0)
        return 0; /* refused */
    w32(BLK, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    if (r32(BLK, R_STATUS) & S_NEEDS_RESET)
        return 0;
    kick(BLK);
    return wait_broken(BLK) ? 0 : 1;
}

static uint32_t desc_ring_outside_ram(void)
{
    return ring_at(R_DESC, RAM_END + 0x10000);
}
static uint32_t used_ring_in_mmio(void)
{
    return ring_at(R_USED, BLK);
}
static uint32_t avail_ring_unaligned(void)
{
    return ring_at(R_AVAIL, (uint64_t)avail + 1);
}

static uint32_t notify_storm(void)
{
    dev_init(BLK);
    publish(blk_chain(0, BLK_IN, 1, (uint64_t)data, 512));
    static const uint32_t qs[4] = { 0, 1, 7, 0xffffffffu };
    for (uint32_t i = 0; i < 40000; i++)
        w32(BLK, R_NOTIFY, qs[i & 3]);
    if (!wait_used(1))
        return 1;
    for (uint32_t i = 0; i < 1000; i++)
        kick(BLK);
    guest_pause_loop(1000000);
    if (used_idx() != 1)
        return 2; /* completed more than once */
    return blk_status(0) == BLK_S_OK && !broken(BLK) ? 0 : 3;
}

/* Eight reads in flight, then the queue is reprogrammed under them. */
static uint32_t reprogram_running(void)
{
    dev_init_q(BLK, 64, true);
    for (unsigned k = 0; k < 8; k++)
        publish(blk_chain(k, BLK_IN, 8 * k, (uint64_t)data + 4096 * k, 4096));
    kick(BLK);
    w32(BLK, R_QREADY, 0);
    w64(BLK, R_DESC, RAM_END + 0x100000);
    w32(BLK, R_QNUM, 7);
    w32(BLK, R_QREADY, 1);
    kick(BLK);
    w32(BLK, R_QSEL, 3);
    w32(BLK, R_QNUM, 256);
    w32(BLK, R_QREADY, 1);
    w32(BLK, R_NOTIFY, 3);
    w32(BLK, R_STATUS, S_ACK); /* DRIVER_OK taken back */
    kick(BLK);
    (void)r32(BLK, R_STATUS);
    return 0; /* defined = recover() works afterwards */
}

/* Eight reads in flight, then a device reset; the old rings must not be
 * written after the reset completes. */
static uint32_t reset_running(void)
{
    dev_init_q(BLK, 64, true);
    for (unsigned k = 0; k < 8; k++)
        publish(blk_chain(k, BLK_IN, 8 * k, (uint64_t)data + 4096 * k, 4096));
    kick(BLK);
    w32(BLK, R_STATUS, 0);
    if (r32(BLK, R_STATUS) != 0)
        return 1;
    uint16_t seen = used_idx();
    guest_pause_loop(2000000);
    return used_idx() == seen ? 0 : 2; /* nothing completed after the reset */
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* Every byte offset of a window, every access size, garbage written, then
 * read back. */
static void garbage_window(uint64_t base, uint64_t len)
{
    for (uint64_t off = 0; off < len; off++) {
        uint64_t v = rnd();
        uint64_t a = base + off;
        switch (off & 3) {
        case 0:
            mmio_write32(a, (uint32_t)v);
            break;
        case 1:
            mmio_write8(a, (uint8_t)v);
            break;
        case 2:
            mmio_write16(a, (uint16_t)v);
            break;
        default:
            if (!(a & 7))
                mmio_write64(a, v);
            else
                mmio_write8(a, (uint8_t)v);
            break;
        }
    }
    for (uint64_t off = 0; off < len; off += 4)
        (void)mmio_read32(base + off);
    for (uint64_t off = 0; off < len; off++)
        (void)mmio_read8(base + off);
    for (uint64_t off = 0; off < len; off += 2)
        (void)mmio_read16(base + off);
    for (uint64_t off = 0; off < len; off += 8)
        (void)mmio_read64(base + off);
}

static uint32_t garbage_registers(void)
{
    for (int round = 0; round < 3; round++) {
        dev_init(round ? RNG : BLK);
        garbage_window(BLK, 0x200);
        garbage_window(RNG, 0x200);
        /* aligned 32-bit garbage on every register, the way a driver would */
        for (uint32_t off = 0; off < 0x200; off += 4) {
            w32(BLK, off, (uint32_t)rnd());
            w32(RNG, off, (uint32_t)rnd());
        }
    }
    return 0;
}

static uint32_t empty_slots(void)
{
    for (unsigned s = 2; s < VIRTIO_SLOTS; s++)
        garbage_window(BLK + 0x200ull * s, 0x200);
    /* an unassigned read reads as all ones */
    return mmio_read32(BLK + 0x200ull * 5) == 0xffffffffu ? 0 : 1;
}

static void touch(uint64_t a)
{
    (void)mmio_read8(a);
    (void)mmio_read16(a);
    (void)mmio_read32(a);
    (void)mmio_read64(a);
    mmio_write8(a, 0xa5);
    mmio_write16(a, 0xa5a5);
    mmio_write32(a, 0xa5a5a5a5u);
    mmio_write64(a, 0xa5a5a5a5a5a5a5a5ull);
}

/* Unassigned guest-physical space below 4 GiB with every access size (the
 * in-kernel IOAPIC and LAPIC pages are left alone: KVM, not strata, owns
 * them). */
static uint32_t mmio_sweep(void)
{
    for (uint64_t a = RAM_END; a < BLK; a += 0x800000)
        touch(a + (a >> 20) % 0x1000);
    for (uint64_t a = BLK + 0x200 * VIRTIO_SLOTS; a < 0xfec00000ull; a += 0x4000)
        touch(a);
    for (uint64_t a = 0xfec01000ull; a < 0xfee00000ull; a += 0x10000)
        touch(a);
    for (uint64_t a = 0xfee01000ull; a < 0x100000000ull - 8; a += 0x40000)
        touch(a);
    touch(0x100000000ull - 8);
    return 0;
}

/* Ports whose writes end or reset the VM by design, or that KVM's
 * in-kernel PIC/PIT own (they never reach strata). */
static bool port_skipped_for_write(uint32_t p)
{
    return (p >= 0xf1 && p <= 0xf7) ||   /* test device PUTC/EXIT */
           p == 0x60 || p == 0x64 ||     /* i8042: reset */
           (p >= 0x600 && p <= 0x63f) || /* ACPI sleep/PM */
           p == 0x505 ||                 /* pvpanic */
           p == 0x20 || p == 0x21 || p == 0xa0 || p == 0xa1 || p == 0x4d0 || p == 0x4d1 ||
           (p >= 0x40 && p <= 0x43) || p == 0x61 || p == 0xcf9;
}

static bool range_skipped(uint32_t p, unsigned size)
{
    for (unsigned i = 0; i < size; i++)
        if (port_skipped_for_write(p + i))
            return true;
    return false;
}

/* Every port read with every size, then written (except the ports above). */
static uint32_t pio_sweep(void)
{
    for (uint32_t p = 0; p < 0x10000; p++) {
        (void)inb((uint16_t)p);
        (void)inw((uint16_t)p);
        (void)inl((uint16_t)p);
    }
    for (uint32_t p = 0; p < 0x10000; p++) {
        if (!range_skipped(p, 1))
            outb((uint16_t)p, (uint8_t)rnd());
        if (!range_skipped(p, 2))
            outw((uint16_t)p, (uint16_t)rnd());
        if (!range_skipped(p, 4))
            outl((uint16_t)p, (uint32_t)rnd());
    }
    /* the test device still answers */
    return inl(TESTDEV_PORT_REPORT) == TESTDEV_MAGIC ? 0 : 1;
}

static uint32_t sector_beyond_disk(void)
{
    dev_init(BLK);
    uint64_t cap = blk_capacity();
    uint8_t a = blk_rw(BLK_IN, cap + 5, (uint64_t)data, 512);
    uint8_t b = blk_rw(BLK_OUT, cap - 1, (uint64_t)data, 1024);
    uint8_t c = blk_rw(BLK_IN, 0xffffffffffffffffull, (uint64_t)data, 512);
    uint8_t d = blk_rw(BLK_IN, 0, (uint64_t)data, 100); /* not a sector multiple */
    if (a != BLK_S_IOERR || b != BLK_S_IOERR || c != BLK_S_IOERR || d != BLK_S_IOERR)
        return 0x100 | a << 4 | b;
    return broken(BLK) ? 2 : 0;
}

static uint32_t bad_request_type(void)
{
    dev_init(BLK);
    uint8_t s = blk_rw(0x55, 0, (uint64_t)data, 512);
    return s == BLK_S_UNSUPP && !broken(BLK) ? 0 : 1;
}

static uint32_t rng_chain_loop(void)
{
    dev_init(RNG);
    dtab[0] = (struct desc){ (uint64_t)data, 64, F_NEXT | F_WRITE, 1 };
    dtab[1] = (struct desc){ (uint64_t)data + 64, 64, F_NEXT | F_WRITE, 0 };
    publish(0);
    kick(RNG);
    return wait_broken(RNG) ? 0 : 1;
}

static uint32_t rng_4gib(void)
{
    dev_init(RNG);
    dtab[0] = (struct desc){ (uint64_t)data, 0xffffffffu, F_WRITE, 0 };
    publish(0);
    kick(RNG);
    for (uint64_t i = 0; i < MMIO_POLLS; i++) {
        if (broken(RNG))
            return 0;
        if (used_idx()) /* filled what fits: never more than RAM */
            return used_len(0) <= RAM_END ? 0 : 2;
    }
    return 1;
}

static uint32_t features_garbage(void)
{
    w32(BLK, R_STATUS, 0);
    w32(BLK, R_STATUS, S_ACK | S_DRIVER);
    for (uint32_t sel = 0; sel < 4; sel++) {
        w32(BLK, R_DRV_FEAT_SEL, sel);
        w32(BLK, R_DRV_FEAT, 0xffffffffu);
    }
    w32(BLK, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    /* features the device never offered: FEATURES_OK must not stick */
    if (r32(BLK, R_STATUS) & S_FEATURES_OK)
        return 1;
    /* DRIVER_OK without FEATURES_OK, then a notify */
    w32(BLK, R_STATUS, S_ACK | S_DRIVER | S_DRIVER_OK);
    kick(BLK);
    (void)r32(BLK, R_STATUS);
    return 0;
}

/* No attack: a known set of disk requests for tests/stats, which checks
 * query-blockstats against it: 3 reads of 4 KiB (sectors 0, 8, 16), 2
 * writes of 1 KiB (sectors 100 and 200, bytes 0x5a), 1 flush, 1 read past
 * the end (refused: invalid).  Then (see guest_main) a PIO exit every 2^20
 * spins, so the exit counters keep growing. */
static uint32_t stats_io(void)
{
    uint32_t r = dev_init(BLK);
    if (r)
        return 0x100 | r;
    for (unsigned i = 0; i < 3; i++)
        if (blk_rw(BLK_IN, 8 * i, (uint64_t)data, 4096) != BLK_S_OK)
            return 0x200 | i;
    memset(data, 0x5a, 1024);
    if (blk_rw(BLK_OUT, 100, (uint64_t)data, 1024) != BLK_S_OK ||
        blk_rw(BLK_OUT, 200, (uint64_t)data, 1024) != BLK_S_OK)
        return 0x300;
    /* a flush: header and status byte only */
    uint16_t target = (uint16_t)(used_idx() + 1);
    uint32_t type = 4; /* VIRTIO_BLK_T_FLUSH */
    memset(hdrs, 0, 64);
    memcpy(hdrs, &type, 4);
    hdrs[16] = 0xee;
    dtab[0] = (struct desc){ (uint64_t)hdrs, 16, F_NEXT, 1 };
    dtab[1] = (struct desc){ (uint64_t)hdrs + 16, 1, F_WRITE, 0 };
    publish(0);
    kick(BLK);
    if (!wait_used(target) || blk_status(0) != BLK_S_OK)
        return 0x400;
    if (blk_rw(BLK_IN, blk_capacity() + 1, (uint64_t)data, 512) != BLK_S_IOERR)
        return 0x500;
    return broken(BLK) ? 0x600 : 0;
}

/* Queue 3's rings for mq-io (queue 0 uses dtab, avail, used). */
static struct desc dtab3[QN] __attribute__((aligned(4096)));
static volatile uint16_t avail3[2 + QN + 1] __attribute__((aligned(4096)));
static volatile uint8_t used3[4 + 8 * QN + 2] __attribute__((aligned(4096)));

/* One request in slot k (header at hdrs + 64k, status byte at +16) as
 * descriptors d..d+2 of tab. */
static void chain_in(struct desc *tab, uint16_t d, unsigned k, uint32_t type, uint64_t sector,
                     uint64_t buf, uint32_t len)
{
    uint8_t *h = hdrs + 64 * k;
    memset(h, 0, 64);
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
    h[16] = 0xee;
    tab[d] = (struct desc){ (uint64_t)h, 16, F_NEXT, (uint16_t)(d + 1) };
    tab[d + 1] = (struct desc){ buf, len, (uint16_t)(F_NEXT | (type == BLK_OUT ? 0 : F_WRITE)),
                                (uint16_t)(d + 2) };
    tab[d + 2] = (struct desc){ (uint64_t)(h + 16), 1, F_WRITE, 0 };
}

/* No attack: a multi-queue disk (strata --disk ...,num-queues=4) for
 * tests/stats.  The guest takes VIRTIO_BLK_F_MQ, finds num_queues 4 in the
 * config space, sets up queues 0 and 3 only (1 and 2 stay unset; QueueSel
 * 4 has no queue), and submits 2 reads of 4 KiB on queue 0 (sectors 0, 8)
 * and, on queue 3, 1 read of 4 KiB (sector 16) and 1 write of 1 KiB at
 * sector 300 (bytes 0x3c); it kicks each queue once, queues 1 and 2 too,
 * and indexes 4 and 0xffff that no queue has.  Every request completes on
 * its own queue with VIRTIO_BLK_S_OK and the device does not break. */
static uint32_t mq_io(void)
{
    w32(BLK, R_DEV_FEAT_SEL, 0);
    if (!(r32(BLK, R_DEV_FEAT) & (1u << 12)))
        return 0x10; /* no VIRTIO_BLK_F_MQ */
    if (r32(BLK, R_CONFIG + 32) >> 16 != 4)
        return 0x11; /* num_queues (u16 at 34) */
    ring_features = 1u << 12;
    uint32_t r = dev_init_q(BLK, QN, false);
    ring_features = 0;
    if (r)
        return 0x100 | r;
    memset(dtab3, 0, sizeof(dtab3));
    memset((void *)avail3, 0, sizeof(avail3));
    memset((void *)used3, 0, sizeof(used3));
    w32(BLK, R_QSEL, 3);
    if (r32(BLK, R_QNUM_MAX) < QN)
        return 0x12;
    w32(BLK, R_QNUM, QN);
    w64(BLK, R_DESC, (uint64_t)dtab3);
    w64(BLK, R_AVAIL, (uint64_t)avail3);
    w64(BLK, R_USED, (uint64_t)used3);
    w32(BLK, R_QREADY, 1);
    if (r32(BLK, R_QREADY) != 1)
        return 0x13;
    w32(BLK, R_QSEL, 4);
    w32(BLK, R_QNUM, QN);
    w32(BLK, R_QREADY, 1);
    if (r32(BLK, R_QNUM_MAX) != 0 || r32(BLK, R_QREADY) != 0)
        return 0x14; /* a queue past the device's */
    w32(BLK, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);

    publish(blk_chain(0, BLK_IN, 0, (uint64_t)data, 4096));
    publish(blk_chain(1, BLK_IN, 8, (uint64_t)data + 4096, 4096));
    memset(data + 3 * 4096, 0x3c, 1024);
    chain_in(dtab3, 0, 2, BLK_IN, 16, (uint64_t)data + 2 * 4096, 4096);
    chain_in(dtab3, 3, 3, BLK_OUT, 300, (uint64_t)data + 3 * 4096, 1024);
    avail3[2] = 0;
    avail3[3] = 3;
    mb();
    avail3[1] = 2;
    mb();
    w32(BLK, R_NOTIFY, 1);
    w32(BLK, R_NOTIFY, 2);
    w32(BLK, R_NOTIFY, 4);
    w32(BLK, R_NOTIFY, 0xffff);
    w32(BLK, R_NOTIFY, 3);
    kick(BLK);
    if (!wait_used(2))
        return broken(BLK) ? 0x20 : 0x21;
    for (uint64_t i = 0; *(volatile uint16_t *)(used3 + 2) != 2; i++) {
        if (i == RAM_POLLS)
            return broken(BLK) ? 0x22 : 0x23;
        __asm__ volatile("pause" ::: "memory");
    }
    for (unsigned k = 0; k < 4; k++)
        if (blk_status(k) != BLK_S_OK)
            return 0x30 | k;
    return broken(BLK) ? 0x40 : 0;
}

/* No attack: 64 KiB reads, one after another, for ever (wrapping round
 * the disk), for tests/stats' rate-limit test, which measures the rate
 * from query-blockstats; a request that fails ends the loop with a FAIL
 * line. */
static uint32_t read_loop(void)
{
    uint32_t r = dev_init(BLK);
    if (r)
        return 0x100 | r;
    uint64_t secs = sizeof(data) / 512, cap = blk_capacity();
    if (cap < secs)
        return 0x200;
    say("hostile: read-loop: reading\n");
    for (uint64_t sector = 0;; sector += secs) {
        if (sector + secs > cap)
            sector = 0;
        if (blk_rw(BLK_IN, sector, (uint64_t)data, sizeof(data)) != BLK_S_OK)
            return 0x300;
    }
}

/* No attack: the VM for the control-socket abuse test. */
static uint32_t idle(void)
{
    return 0;
}

typedef struct Case {
    const char *name;
    uint32_t (*fn)(void);
} Case;

static const Case cases[] = {
    { "chain-loop", chain_loop },
    { "chain-self-loop", chain_self_loop },
    { "chain-next-out-of-range", chain_next_out_of_range },
    { "chain-longer-than-ring", chain_longer_than_ring },
    { "buf-outside-ram", buf_outside_ram },
    { "buf-straddles-ram-end", buf_straddles_ram_end },
    { "buf-in-mmio", buf_in_mmio },
    { "buf-wraps-2^64", buf_wraps },
    { "len-4gib", len_4gib },
    { "len-zero", len_zero },
    { "header-outside-ram", header_outside_ram },
    { "overlap-desc-ring", overlap_desc },
    { "overlap-avail-ring", overlap_avail },
    { "overlap-used-ring", overlap_used },
    { "avail-idx-far", avail_idx_far },
    { "avail-head-out-of-range", avail_head_out_of_range },
    { "queue-bad-size", queue_bad_size },
    { "desc-ring-outside-ram", desc_ring_outside_ram },
    { "used-ring-in-mmio", used_ring_in_mmio },
    { "avail-ring-unaligned", avail_ring_unaligned },
    { "notify-storm", notify_storm },
    { "reprogram-running", reprogram_running },
    { "reset-running", reset_running },
    { "garbage-registers", garbage_registers },
    { "empty-slots", empty_slots },
    { "mmio-sweep", mmio_sweep },
    { "pio-sweep", pio_sweep },
    { "sector-beyond-disk", sector_beyond_disk },
    { "bad-request-type", bad_request_type },
    { "rng-chain-loop", rng_chain_loop },
    { "rng-4gib", rng_4gib },
    { "features-garbage", features_garbage },
    { "ind-read", ind_read },
    { "ind-nested", ind_nested },
    { "ind-table-outside-ram", ind_table_outside_ram },
    { "ind-table-straddles-ram-end", ind_table_straddles },
    { "ind-table-in-mmio", ind_table_in_mmio },
    { "ind-len-zero", ind_len_zero },
    { "ind-len-not-16", ind_len_not16 },
    { "ind-too-long", ind_too_long },
    { "ind-loop", ind_loop },
    { "ind-with-next", ind_with_next },
    { "event-idx-garbage", event_idx_garbage },
    { "event-idx-used-ring-at-ram-end", event_idx_used_at_end },
    /* not attacks: scripts/bench-virtio-notify.sh (not in the suite) */
    { "notify-bench", notify_bench_plain },
    { "notify-bench-event-idx", notify_bench_event_idx },
    { "notify-bench-lazy", notify_bench_lazy },
    { "notify-bench-lazy-event-idx", notify_bench_lazy_event_idx },
    { "idle", idle },
    { "stats-io", stats_io },
    { "mq-io", mq_io },
    { "read-loop", read_loop },
};

static bool word_is(const char *s, const char *name)
{
    while (*name && *s == *name)
        s++, name++;
    return !*name && (*s == 0 || *s == ' ');
}

int guest_main(void)
{
    const char *cmd = (const char *)0x7000; /* PVH command line */
    const char *arg = NULL;
    for (const char *p = cmd; *p; p++)
        if (p[0] == 'c' && p[1] == 'a' && p[2] == 's' && p[3] == 'e' && p[4] == '=')
            arg = p + 5;
    const Case *c = NULL;
    for (unsigned i = 0; arg && i < sizeof(cases) / sizeof(cases[0]); i++)
        if (word_is(arg, cases[i].name))
            c = &cases[i];
    if (!c) {
        say("hostile: no such case\n");
        return 1;
    }
    uint32_t r = c->fn();
    /* no attack to recover from */
    bool plain = c->fn == idle || c->fn == stats_io || c->fn == read_loop || c->fn == mq_io;
    uint32_t rec = plain ? 0 : recover();
    say("hostile: ");
    say(c->name);
    if (r || rec) {
        say(": FAIL attack=");
        guest_put_hex(r);
        say(" recover=");
        guest_put_hex(rec);
        say("\n");
    } else {
        say(": PASS\n");
    }
    for (;;)
        if ((++spin_counter & 0xfffff) == 0 && c->fn == stats_io)
            (void)inl(TESTDEV_PORT_REPORT);
    return 0;
}
