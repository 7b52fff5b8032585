/* SPDX-License-Identifier: MIT */
/* The pvpanic device (see pvpanic.h). */
#include "devices/pvpanic.h"

#include <string.h>

static uint64_t pvpanic_read(void *opaque, uint64_t addr, unsigned size)
{
    (void)opaque;
    (void)addr;
    (void)size;
    return PVPANIC_PANICKED | PVPANIC_CRASH_LOADED;
}

static void pvpanic_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    PvpanicState *s = opaque;
    (void)addr;
    (void)size;
    uint8_t ev = (uint8_t)data & (PVPANIC_PANICKED | PVPANIC_CRASH_LOADED);
    if (!ev)
        return;
    __atomic_fetch_or(&s->events, ev, __ATOMIC_SEQ_CST);
    if (s->fn)
        s->fn(s->opaque, ev);
}

static const MemoryRegionOps pvpanic_ops = {
    .read = pvpanic_read,
    .write = pvpanic_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 1 },
    .impl = { .min_access_size = 1, .max_access_size = 1 },
};

int pvpanic_init(PvpanicState *s, MemoryContext *ctx, PvpanicFn fn, void *opaque)
{
    memset(s, 0, sizeof(*s));
    s->fn = fn;
    s->opaque = opaque;
    return memory_region_init_io(&s->io, ctx, &pvpanic_ops, s, "pvpanic", 1);
}

void pvpanic_destroy(PvpanicState *s)
{
    memory_region_destroy(&s->io);
}

void pvpanic_reset(PvpanicState *s)
{
    __atomic_store_n(&s->events, 0, __ATOMIC_SEQ_CST);
}
