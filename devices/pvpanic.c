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

static const StateField pvpanic_fields[] = {
    STATE_U8(PvpanicStateData, events),
};
static const StateTable pvpanic_table = STATE_TABLE(PvpanicStateData, pvpanic_fields);
const StateSection pvpanic_state_section = {
    "pvpanic",
    PVPANIC_STATE_MAGIC,
    PVPANIC_STATE_VERSION,
    &pvpanic_table,
};

int pvpanic_save(PvpanicState *s, uint8_t **buf, size_t *len)
{
    PvpanicStateData st = { .events = __atomic_load_n(&s->events, __ATOMIC_SEQ_CST) };
    return state_save_section(&pvpanic_state_section, &st, buf, len);
}

int pvpanic_load(PvpanicState *s, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    PvpanicStateData st;
    int ret = state_load_section(&pvpanic_state_section, buf, len, &st, err, errlen);
    if (ret < 0)
        return ret;
    if (st.events & ~(PVPANIC_PANICKED | PVPANIC_CRASH_LOADED))
        return state_refuse(&pvpanic_state_section, err, errlen, "malformed payload");
    __atomic_store_n(&s->events, st.events, __ATOMIC_SEQ_CST);
    return 0;
}

DEVICE_OPS_DEFINE(pvpanic, PvpanicState, "pvpanic");
