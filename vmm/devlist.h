/* SPDX-License-Identifier: MIT */
/*
 * The board's device list: one record per device (its name, its regions and
 * where they are mapped, its DeviceOps), in the order the devices were
 * added.  That order is the migration stream's (docs/migration.md: the
 * CONFIG "devices" list and DEVICE record n); reset walks it forwards,
 * teardown backwards.  Knows memory/ and devices/device.h only, so a board
 * without KVM (tests/fuzz/fake_mig.c) keeps the same list.
 */
#ifndef STRATA_VMM_DEVLIST_H
#define STRATA_VMM_DEVLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"
#include "memory/memory.h"

#define DEVLIST_MAX 32 /* 5 platform devices + 18 virtio slots fit */
#define DEVLIST_MAX_REGIONS 4
#define DEVLIST_NAME_MAX 64

/* One region of a device and where the board maps it. */
typedef struct DevRegion {
    MemoryRegion *container; /* the board's "io" or "system" */
    uint64_t addr;
    MemoryRegion *mr;
} DevRegion;

/* DEV_REGIONS({ &m->io, 0x505, &s->io }, ...): an array and its length, for
 * devlist_add's / machine_add_device's last two arguments. */
#define DEV_REGIONS(...) \
    (const DevRegion[]){ __VA_ARGS__ }, \
        (unsigned)(sizeof((const DevRegion[]){ __VA_ARGS__ }) / sizeof(DevRegion))

typedef struct DevRecord {
    char name[DEVLIST_NAME_MAX];
    const DeviceOps *ops;
    void *dev;
    bool owned; /* dev is malloc()ed: freed after ops->destroy */
    DevRegion regions[DEVLIST_MAX_REGIONS];
    unsigned nregions;
    unsigned nmapped; /* regions[0..nmapped) are mapped */
} DevRecord;

typedef struct DevList {
    DevRecord rec[DEVLIST_MAX];
    unsigned n;
} DevList;

/*
 * Appends device dev (name: ops->name when NULL) and maps its regions.  The
 * list owns the device from this call on, also when it fails: teardown
 * unmaps what was mapped and destroys it (or, when the list is full, this
 * call does at once).  0, or a negative errno with what failed, naming the
 * device, in err.
 */
int devlist_add(DevList *l, const char *name, const DeviceOps *ops, void *dev, bool owned,
                const DevRegion *regions, unsigned nregions, char *err, size_t errlen);
/* Resets every device, in list order. */
void devlist_reset(DevList *l);
/* Unmaps and destroys every device, last added first; the list is empty after. */
void devlist_destroy(DevList *l);
/* The number of devices. */
unsigned devlist_count(const DevList *l);
/* Device i (i < devlist_count), or NULL. */
DevRecord *devlist_get(DevList *l, unsigned i);

#endif /* STRATA_VMM_DEVLIST_H */
