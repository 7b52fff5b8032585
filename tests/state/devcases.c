/* SPDX-License-Identifier: MIT */
/* Every saving device in a fixed scenario (see devcases.h). */
#include "tests/state/devcases.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/ged.h"
#include "devices/i8042.h"
#include "devices/pvpanic.h"
#include "devices/serial.h"
#include "devices/testdev.h"
#include "devices/virtio-balloon.h"
#include "devices/virtio-blk.h"
#include "devices/virtio-net.h"
#include "devices/virtio-rng.h"
#include "tests/common/check.h"

static const uint8_t MAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static void *alloc(size_t n)
{
    void *p = calloc(1, n);
    CHECK(p, "out of memory");
    return p;
}

static void out(MemoryRegion *mr, uint64_t off, uint64_t v, unsigned size)
{
    CHECK(memory_region_dispatch_write(mr, off, v, size) == MEMTX_OK, "write at 0x%llx",
          (unsigned long long)off);
}

static uint64_t in(MemoryRegion *mr, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    CHECK(memory_region_dispatch_read(mr, off, &v, size) == MEMTX_OK, "read at 0x%llx",
          (unsigned long long)off);
    return v;
}

/* ---- port I/O devices ------------------------------------------------------ */

static void serial_make(DevInst *d, bool scenario)
{
    SerialState *s = alloc(sizeof(*s));
    CHECK(serial_init(s, d->vt.ctx, -1, NULL) == 0, "serial_init");
    d->ops = &serial_device_ops;
    d->dev = s;
    if (!scenario)
        return;
    MemoryRegion *mr = serial_region(s);
    out(mr, 3, 0x80, 1); /* DLAB: divider 0x1234 */
    out(mr, 0, 0x34, 1);
    out(mr, 1, 0x12, 1);
    out(mr, 3, 0x1b, 1);
    out(mr, 2, 0x41, 1); /* FIFO on */
    out(mr, 1, 0x07, 1);
    out(mr, 4, 0x0b, 1);
    out(mr, 7, 0xa5, 1);
    CHECK(serial_receive(s, (const uint8_t *)"xyz", 3) == 3, "receive");
    (void)in(mr, 0, 1); /* FIFO "yz", its head not at 0 */
}

static void serial_free(DevInst *d)
{
    serial_destroy(d->dev);
}

static void i8042_make(DevInst *d, bool scenario)
{
    I8042State *s = alloc(sizeof(*s));
    CHECK(i8042_init(s, d->vt.ctx, NULL, NULL) == 0, "i8042_init");
    d->ops = &i8042_device_ops;
    d->dev = s;
    if (!scenario)
        return;
    out(i8042_cmd_region(s), 0, 0x60, 1); /* command byte 0x47 */
    out(i8042_data_region(s), 0, 0x47, 1);
    out(i8042_cmd_region(s), 0, 0xaa, 1); /* self test: 0x55 waits */
    out(i8042_cmd_region(s), 0, 0xd1, 1); /* output port write pending */
}

static void i8042_free(DevInst *d)
{
    i8042_destroy(d->dev);
}

static void pvpanic_make(DevInst *d, bool scenario)
{
    PvpanicState *s = alloc(sizeof(*s));
    CHECK(pvpanic_init(s, d->vt.ctx, NULL, NULL) == 0, "pvpanic_init");
    d->ops = &pvpanic_device_ops;
    d->dev = s;
    if (scenario)
        out(&s->io, 0, PVPANIC_CRASH_LOADED, 1);
}

static void pvpanic_free(DevInst *d)
{
    pvpanic_destroy(d->dev);
}

static void ged_make(DevInst *d, bool scenario)
{
    GedState *s = alloc(sizeof(*s));
    CHECK(ged_init(s, d->vt.ctx, NULL) == 0, "ged_init");
    d->ops = &ged_device_ops;
    d->dev = s;
    if (scenario)
        ged_raise(s, GED_EVENT_POWER_BUTTON);
}

static void ged_free(DevInst *d)
{
    ged_destroy(d->dev);
}

static void testdev_make(DevInst *d, bool scenario)
{
    TestDev *s = alloc(sizeof(*s));
    d->console = fopen("/dev/null", "w");
    CHECK(d->console, "/dev/null");
    CHECK(testdev_init(s, d->vt.ctx, NULL, NULL, d->console) == 0, "testdev_init");
    d->ops = &testdev_device_ops;
    d->dev = s;
    if (!scenario)
        return;
    MemoryRegion *mr = testdev_region(s);
    for (uint32_t i = 0; i < TESTDEV_KEEP_REPORTS + 6; i++) /* the log wraps */
        out(mr, TESTDEV_PORT_REPORT - TESTDEV_PORT_BASE, 0x1000 + i * 0x10001u, 4);
    out(mr, TESTDEV_PORT_PUTC - TESTDEV_PORT_BASE, 'h', 1);
    out(mr, TESTDEV_PORT_SYNC - TESTDEV_PORT_BASE, 7, 4);
    out(mr, TESTDEV_PORT_SYNC - TESTDEV_PORT_BASE, 8, 4);
    out(mr, TESTDEV_PORT_EXIT - TESTDEV_PORT_BASE, 0x2a, 4);
}

static void testdev_free(DevInst *d)
{
    testdev_destroy(d->dev);
    fclose(d->console);
}

/* ---- virtio ---------------------------------------------------------------- */

static void rng_make_dev(DevInst *d)
{
    VirtioRng *s = alloc(sizeof(*s));
    CHECK(virtio_rng_init(s, &(VirtioEnv){ d->vt.ctx, d->vt.as, NULL }) == 0, "rng init");
    virtio_mmio_connect_irq(&s->t, &d->vt.irq, VT_BASE);
    vt_map(&d->vt, virtio_mmio_region(&s->t));
    d->ops = &virtio_rng_device_ops;
    d->dev = s;
}

static void rng_make(DevInst *d, bool scenario)
{
    rng_make_dev(d);
    if (!scenario)
        return;
    vt_bringup(&d->vt, 0, 1, 16);
    for (int i = 0; i < 3; i++) {
        vt_add(&d->vt, 0, &(VtBuf){ VT_BUFS, 16, true }, 1);
        vt_kick(&d->vt, 0);
    }
}

/* A driver that announces 100 buffers in a 16-entry ring: the device
 * breaks (NEEDS_RESET, config interrupt). */
static void rng_broken_make(DevInst *d, bool scenario)
{
    rng_make_dev(d);
    if (!scenario)
        return;
    vt_bringup(&d->vt, 0, 1, 16);
    vt_set_avail_idx(&d->vt, 0, 100);
    vt_kick(&d->vt, 0);
    CHECK(vt_r32(&d->vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET, "not broken");
}

static void rng_free(DevInst *d)
{
    vt_teardown(&d->vt);
    virtio_rng_destroy(d->dev);
}

static void blk_make(DevInst *d, bool scenario)
{
    d->dev = vt_blk_new(&d->vt); /* 64 sectors */
    d->ops = &virtio_blk_device_ops;
    if (!scenario)
        return;
    vt_bringup(&d->vt, 0, 1, 32);
    uint8_t *hdr = vt_ptr(&d->vt, VT_BUFS);
    memset(hdr, 0, 16);
    hdr[0] = VIRTIO_BLK_T_GET_ID;
    VtBuf b[3] = { { VT_BUFS, 16, false },
                   { VT_BUFS + 0x100, VIRTIO_BLK_ID_BYTES, true },
                   { VT_BUFS + 0x200, 1, true } };
    vt_add(&d->vt, 0, b, 3);
    vt_kick(&d->vt, 0);
}

static void blk_free(DevInst *d)
{
    vt_teardown(&d->vt);
    virtio_blk_destroy(d->dev);
}

static void net_make(DevInst *d, bool scenario)
{
    VirtioNet *s = alloc(sizeof(*s));
    int sv[2];
    char err[256];
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    d->peer = sv[1];
    CHECK(virtio_net_init(s, &(VirtioEnv){ d->vt.ctx, d->vt.as, NULL }, sv[0], MAC, err,
                          sizeof(err)) == 0,
          "%s", err);
    virtio_mmio_connect_irq(&s->t, &d->vt.irq, VT_BASE);
    vt_map(&d->vt, virtio_mmio_region(&s->t));
    d->ops = &virtio_net_device_ops;
    d->dev = s;
    if (!scenario)
        return;
    /* every feature the device offered when the fixture was written; the
     * ring features came later (the fixture's bytes hold driver_features) */
    vt_bringup(&d->vt, ~(VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX), 2, 64);
    uint8_t *p = vt_ptr(&d->vt, VT_BUFS);
    memset(p, 0, 0x100 + 60);
    VtBuf b[2] = { { VT_BUFS, VIRTIO_NET_HDR_LEN, false }, { VT_BUFS + 0x100, 60, false } };
    vt_add(&d->vt, VIRTIO_NET_TXQ, b, 2);
    vt_kick(&d->vt, VIRTIO_NET_TXQ);
    vt_add(&d->vt, VIRTIO_NET_RXQ, &(VtBuf){ VT_BUFS + 0x1000, 1526, true }, 1);
}

static void net_free(DevInst *d)
{
    vt_teardown(&d->vt);
    virtio_net_destroy(d->dev);
    close(d->peer);
}

/* Everything offered, a target set, two pages inflated and `actual`
 * written, the stats buffer held with three figures. */
static void balloon_make(DevInst *d, bool scenario)
{
    VirtioBalloon *s = alloc(sizeof(*s));
    VirtioBalloonOptions o = { .deflate_on_oom = true,
                               .free_page_reporting = true,
                               .stats_interval_s = 10 };
    CHECK(virtio_balloon_init(s, &(VirtioEnv){ d->vt.ctx, d->vt.as, NULL }, &o) == 0,
          "balloon init");
    virtio_mmio_connect_irq(&s->t, &d->vt.irq, VT_BASE);
    vt_map(&d->vt, virtio_mmio_region(&s->t));
    d->ops = &virtio_balloon_device_ops;
    d->dev = s;
    if (!scenario)
        return;
    vt_bringup(&d->vt, ~0ull, 4, 16);
    virtio_balloon_set_target(s, 1000);
    uint32_t pfns[2] = { 0x300, 0x301 };
    memcpy(vt_ptr(&d->vt, VT_BUFS), pfns, sizeof(pfns));
    vt_add(&d->vt, 0, &(VtBuf){ VT_BUFS, sizeof(pfns), false }, 1);
    vt_kick(&d->vt, 0);
    uint32_t actual = 2;
    address_space_write(d->vt.as, VT_BASE + VIRTIO_MMIO_CONFIG + 4, &actual, 4);
    uint8_t *st = vt_ptr(&d->vt, VT_BUFS + 0x1000);
    static const uint16_t tags[3] = { 4, 5, 6 };
    for (int i = 0; i < 3; i++) {
        uint64_t v = (uint64_t)(i + 1) << 20;
        memcpy(st + 10 * i, &tags[i], 2);
        memcpy(st + 10 * i + 2, &v, 8);
    }
    vt_add(&d->vt, 2, &(VtBuf){ VT_BUFS + 0x1000, 30, false }, 1);
    vt_kick(&d->vt, 2);
}

static void balloon_free(DevInst *d)
{
    vt_teardown(&d->vt);
    virtio_balloon_destroy(d->dev);
}

const DevCase dev_cases[] = {
    { "serial", &serial_state_section, serial_make, serial_free },
    { "i8042", &i8042_state_section, i8042_make, i8042_free },
    { "pvpanic", &pvpanic_state_section, pvpanic_make, pvpanic_free },
    { "acpi-ged", &ged_state_section, ged_make, ged_free },
    { "testdev", &testdev_state_section, testdev_make, testdev_free },
    { "virtio-rng", &virtio_rng_state_section, rng_make, rng_free },
    { "virtio-rng-broken", &virtio_rng_state_section, rng_broken_make, rng_free },
    { "virtio-blk", &virtio_blk_state_section, blk_make, blk_free },
    { "virtio-net", &virtio_net_state_section, net_make, net_free },
    { "virtio-balloon", &virtio_balloon_state_section, balloon_make, balloon_free },
};
const unsigned dev_ncases = sizeof(dev_cases) / sizeof(dev_cases[0]);

uint8_t *dev_save(DevInst *d, size_t *len)
{
    uint8_t *buf = NULL;
    CHECK(d->ops->save(d->dev, &buf, len) == 0, "save");
    return buf;
}

void dev_open(DevInst *d, const DevCase *c, bool scenario)
{
    memset(d, 0, sizeof(*d));
    d->peer = -1;
    vt_setup(&d->vt);
    c->make(d, scenario);
}

void dev_close(DevInst *d, const DevCase *c)
{
    c->free(d);
    free(d->dev);
    vt_free(&d->vt);
}
