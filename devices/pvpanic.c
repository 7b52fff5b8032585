/* SPDX-License-Identifier: MIT */
/* The pvpanic device (see pvpanic.h). */
#include "devices/pvpanic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory/state-stream.h"

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

int pvpanic_save(PvpanicState *s, uint8_t **buf, size_t *len)
{
    StateWriter w;
    state_writer_init(&w);
    size_t sec = state_section_begin(&w, PVPANIC_STATE_MAGIC, PVPANIC_STATE_VERSION);
    state_put_u8(&w, __atomic_load_n(&s->events, __ATOMIC_SEQ_CST));
    state_section_end(&w, sec);
    return state_writer_finish(&w, buf, len);
}

int pvpanic_load(PvpanicState *s, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    StateReader r, p;
    uint16_t version;
    char why[160];
    state_reader_init(&r, buf, len);
    int ret = state_section_open(&r, PVPANIC_STATE_MAGIC, PVPANIC_STATE_VERSION, &version, &p,
                                 why, sizeof(why));
    if (ret < 0) {
        snprintf(err, errlen, "pvpanic state: %s", why);
        return ret;
    }
    uint8_t events = state_get_u8(&p);
    if (!state_reader_done(&p) || !state_reader_done(&r) ||
        (events & ~(PVPANIC_PANICKED | PVPANIC_CRASH_LOADED))) {
        snprintf(err, errlen, "pvpanic state: malformed payload");
        return -EINVAL;
    }
    __atomic_store_n(&s->events, events, __ATOMIC_SEQ_CST);
    return 0;
}

DEVICE_OPS_DEFINE(pvpanic, PvpanicState, "pvpanic");
