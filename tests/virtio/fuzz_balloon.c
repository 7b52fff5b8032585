/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the virtio-balloon request parser (inflate, deflate,
 * stats, free page reporting, the config space) against a model.  The input
 * is a list of 8-byte operations on a device with every feature negotiated
 * (queues 0 inflate, 1 deflate, 2 stats, 3 reporting).  The oracle: a
 * well-formed buffer is used (stats: held) and its PFNs are counted the way
 * the model counts them (in guest RAM or skipped as bad), inflated and
 * reported pages read back as zeros; a malformed one (device-writable PFNs
 * or stats, device-readable reports, a length that is no whole number of
 * PFNs) leaves the device in DEVICE_NEEDS_RESET; nothing crashes.
 *
 * Operation bytes: [0] % 6: 0 inflate, 1 deflate, 2 stats, 3 report,
 * 4 guest writes `actual`, 5 host sets the target; [1] count (PFNs 1..64,
 * stats entries 0..7, report pages 0..15); [2] bit 0 wrong direction, bit 1
 * two stray bytes (PFNs), bit 2 split over two descriptors, bit 3 ragged
 * report edges; [3] bit pattern: PFN i is in RAM when bit i%8 is set;
 * [4..7] a seed for PFNs, values and addresses.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio-balloon.h"
#include "tests/virtio/vtest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define QSIZE 64
#define BUF VT_BUFS          /* PFN arrays, stats */
#define SAFE_LO (2ull << 20) /* in-RAM PFNs and reports land here */
#define SAFE_PAGES ((VT_RAM_SIZE - SAFE_LO) / 4096)
#define ALL_FEATURES ~0ull

static Vt vt;
static VirtioBalloon *dev;

typedef struct Model {
    uint64_t inflated, bad, reported;
    uint32_t actual, target;
    uint32_t stats_valid;
    uint64_t stats[VIRTIO_BALLOON_S_NR];
} Model;

static Model m;

static void fail(const char *what, const uint8_t *op)
{
    fprintf(stderr, "fuzz_balloon: %s (operation %02x %02x %02x %02x)\n", what, op[0], op[1], op[2],
            op[3]);
    abort();
}

static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static bool is_broken(void)
{
    return vt_r32(&vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET;
}

static void bringup(void)
{
    vt_bringup(&vt, ALL_FEATURES, 4, QSIZE);
    m.inflated = 0;
    m.actual = 0;
}

/* Adds [addr, addr+len) as one or two descriptors on q and kicks. */
static void submit(unsigned q, uint64_t addr, uint32_t len, bool write, bool split)
{
    VtBuf b[2] = { { addr, len, write }, { 0, 0, write } };
    unsigned n = 1;
    if (split && len > 1) {
        b[0].len = len / 2;
        b[1] = (VtBuf){ addr + len / 2, len - len / 2, write };
        n = 2;
    }
    vt_add(&vt, q, b, n);
    vt_kick(&vt, q);
}

static void check_counts(const uint8_t *op)
{
    VirtioBalloonInfo i;
    virtio_balloon_info(dev, &i);
    if (i.inflated_pages != m.inflated)
        fail("pages inflated differ from the model", op);
    if (i.bad_pfns != m.bad)
        fail("bad PFNs differ from the model", op);
    if (i.reported_bytes != m.reported)
        fail("reported bytes differ from the model", op);
    if (i.actual != m.actual || i.num_pages != m.target)
        fail("config differs from the model", op);
    if (i.stats_valid != m.stats_valid || memcmp(i.stats, m.stats, sizeof(m.stats)))
        fail("stats differ from the model", op);
}

/* The device used exactly one buffer on q (or, broken, none). */
static void expect_used(unsigned q, bool bad, const uint8_t *op)
{
    uint32_t id, len;
    if (bad) {
        if (!is_broken())
            fail("a malformed buffer did not break the device", op);
        while (vt_used(&vt, q, &id, &len))
            ;
        bringup();
        return;
    }
    if (is_broken())
        fail("a well-formed buffer broke the device", op);
    if (!vt_used(&vt, q, &id, &len) || len != 0)
        fail("buffer not used (or with a length)", op);
    if (vt_used(&vt, q, &id, &len))
        fail("more used than given", op);
}

static void op_pfns(const uint8_t *op, bool inflate)
{
    unsigned n = op[1] % 64 + 1;
    bool wrong = op[2] & 1, stray = op[2] & 2, split = op[2] & 4;
    uint32_t seed = 0;
    memcpy(&seed, op + 4, 4);
    seed |= 1;
    uint32_t pfns[64];
    uint64_t good = 0, bad = 0;
    for (unsigned i = 0; i < n; i++) {
        uint32_t r = next(&seed);
        if (op[3] & (1u << (i % 8))) {
            pfns[i] = (uint32_t)(SAFE_LO / 4096 + r % SAFE_PAGES);
            good++;
            if (inflate)
                memset(vt_ptr(&vt, (uint64_t)pfns[i] * 4096), 0xa5, 4096);
        } else {
            pfns[i] = r < VT_RAM_SIZE / 4096 ? r + VT_RAM_SIZE / 4096 : r;
            bad++;
        }
    }
    memcpy(vt_ptr(&vt, BUF), pfns, 4ull * n);
    uint32_t len = 4 * n + (stray ? 2 : 0);
    bool malformed = wrong || stray;
    submit(inflate ? 0 : 1, BUF, len, wrong, split);
    expect_used(inflate ? 0 : 1, malformed, op);
    if (malformed)
        return;
    m.bad += bad;
    if (inflate) {
        m.inflated += good;
        for (unsigned i = 0; i < n; i++)
            if (pfns[i] < VT_RAM_SIZE / 4096 && *(uint8_t *)vt_ptr(&vt, pfns[i] * 4096ull) != 0)
                fail("an inflated page kept its content", op);
    } else {
        m.inflated -= good < m.inflated ? good : m.inflated;
    }
}

static void op_stats(const uint8_t *op)
{
    unsigned n = op[1] % 8;
    bool wrong = op[2] & 1;
    uint32_t seed = 0;
    memcpy(&seed, op + 4, 4);
    seed |= 1;
    uint8_t *p = vt_ptr(&vt, BUF);
    Model after = m;
    for (unsigned i = 0; i < n; i++) {
        uint16_t tag = (uint16_t)(next(&seed) % 20);
        uint64_t v = next(&seed);
        memcpy(p + 10 * i, &tag, 2);
        memcpy(p + 10 * i + 2, &v, 8);
        if (tag < VIRTIO_BALLOON_S_NR) {
            after.stats[tag] = v;
            after.stats_valid |= 1u << tag;
        }
    }
    submit(2, BUF, n ? 10 * n : 1, wrong, false);
    if (wrong) {
        expect_used(2, true, op);
        return;
    }
    if (is_broken())
        fail("a stats buffer broke the device", op);
    /* held; the one before (if any) came back */
    uint32_t id, len;
    while (vt_used(&vt, 2, &id, &len))
        ;
    memcpy(m.stats, after.stats, sizeof(m.stats));
    m.stats_valid = after.stats_valid;
    if (!virtio_balloon_request_stats(dev))
        fail("the stats buffer was not held", op);
    if (!vt_used(&vt, 2, &id, &len))
        fail("the stats buffer did not come back", op);
}

static void op_report(const uint8_t *op)
{
    unsigned pages = op[1] % 16 + 1;
    bool wrong = op[2] & 1, split = op[2] & 4, ragged = op[2] & 8;
    uint32_t seed = 0;
    memcpy(&seed, op + 4, 4);
    seed |= 1;
    uint64_t start = SAFE_LO + 4096ull * (next(&seed) % (SAFE_PAGES - 17));
    uint64_t addr = start + (ragged ? 100 : 0);
    uint32_t len = pages * 4096u;
    memset(vt_ptr(&vt, start), 0x5a, len + 4096ull);
    submit(3, addr, len, !wrong, split);
    expect_used(3, wrong, op);
    if (wrong)
        return;
    /* what a page-aligned report frees; a split reports two parts */
    uint64_t freed = 0;
    uint64_t parts[2][2] = { { addr, addr + len }, { 0, 0 } };
    if (split) {
        parts[0][1] = addr + len / 2;
        parts[1][0] = addr + len / 2;
        parts[1][1] = addr + len;
    }
    for (int k = 0; k < (split ? 2 : 1); k++) {
        uint64_t a = (parts[k][0] + 4095) & ~4095ull, e = parts[k][1] & ~4095ull;
        for (; a < e; a += 4096, freed += 4096)
            if (*(uint8_t *)vt_ptr(&vt, a) != 0)
                fail("a reported page kept its content", op);
    }
    m.reported += freed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dev) {
        vt_setup(&vt);
        dev = calloc(1, sizeof(*dev));
        VirtioBalloonOptions o = { .deflate_on_oom = true,
                                   .free_page_reporting = true,
                                   .stats_interval_s = 60 };
        if (!dev || virtio_balloon_init(dev, &(VirtioEnv){ vt.ctx, vt.as, NULL }, &o) < 0)
            abort();
        virtio_mmio_connect_irq(&dev->t, &vt.irq, VT_BASE);
        vt_map(&vt, virtio_mmio_region(&dev->t));
    }
    VirtioBalloonInfo i;
    virtio_balloon_set_target(dev, 0);
    bringup();
    virtio_balloon_info(dev, &i);
    memset(&m, 0, sizeof(m));
    m.bad = i.bad_pfns;
    m.reported = i.reported_bytes;
    m.stats_valid = i.stats_valid;
    memcpy(m.stats, i.stats, sizeof(m.stats));
    for (size_t pos = 0; pos + 8 <= size && pos < 256 * 8; pos += 8) {
        const uint8_t *op = data + pos;
        uint32_t v;
        memcpy(&v, op + 4, 4);
        switch (op[0] % 6) {
        case 0:
        case 1:
            op_pfns(op, op[0] % 6 == 0);
            break;
        case 2:
            op_stats(op);
            break;
        case 3:
            op_report(op);
            break;
        case 4:
            address_space_write(vt.as, VT_BASE + VIRTIO_MMIO_CONFIG + 4, &v, 4);
            m.actual = v;
            break;
        default:
            virtio_balloon_set_target(dev, v);
            m.target = v;
            if (vt_cfg(&vt, 0, 4) != v)
                fail("the target is not in the config space", op);
        }
        check_counts(op);
    }
    return 0;
}
