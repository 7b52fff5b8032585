/* SPDX-License-Identifier: MIT */
/* The board's device list (see devlist.h). */
#include "vmm/devlist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void release(DevRecord *d)
{
    while (d->nmapped) {
        const DevRegion *g = &d->regions[--d->nmapped];
        memory_region_del_subregion(g->container, g->mr);
    }
    if (d->ops->destroy)
        d->ops->destroy(d->dev);
    if (d->owned)
        free(d->dev);
    memset(d, 0, sizeof(*d));
}

int devlist_add(DevList *l, const char *name, const DeviceOps *ops, void *dev, bool owned,
                const DevRegion *regions, unsigned nregions, char *err, size_t errlen)
{
    if (!name)
        name = ops->name ? ops->name : "device";
    DevRecord tmp = { .ops = ops, .dev = dev, .owned = owned };
    if (l->n >= DEVLIST_MAX || nregions > DEVLIST_MAX_REGIONS) {
        snprintf(err, errlen, "%s: %s", name,
                 l->n >= DEVLIST_MAX ? "too many devices" : "too many regions");
        release(&tmp);
        return -ENOSPC;
    }
    DevRecord *d = &l->rec[l->n++];
    *d = tmp;
    snprintf(d->name, sizeof(d->name), "%s", name);
    if (nregions) /* regions may be NULL then */
        memcpy(d->regions, regions, nregions * sizeof(*regions));
    d->nregions = nregions;
    for (; d->nmapped < nregions; d->nmapped++) {
        const DevRegion *g = &d->regions[d->nmapped];
        int r = memory_region_add_subregion(g->container, g->addr, g->mr);
        if (r < 0) {
            snprintf(err, errlen, "mapping %s at 0x%llx", d->name, (unsigned long long)g->addr);
            return r;
        }
    }
    return 0;
}

void devlist_reset(DevList *l)
{
    for (unsigned i = 0; i < l->n; i++)
        if (l->rec[i].ops->reset)
            l->rec[i].ops->reset(l->rec[i].dev);
}

void devlist_destroy(DevList *l)
{
    while (l->n)
        release(&l->rec[--l->n]);
}

unsigned devlist_count(const DevList *l)
{
    return l->n;
}

DevRecord *devlist_get(DevList *l, unsigned i)
{
    return i < l->n ? &l->rec[i] : NULL;
}
