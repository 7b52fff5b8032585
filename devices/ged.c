/* SPDX-License-Identifier: MIT */
/* The ACPI Generic Event Device register (see ged.h). */
#include "devices/ged.h"

#include <string.h>

/* Drives the line to match pending; called with the lock held. */
static void update_line(GedState *s)
{
    bool level = s->pending != 0;
    if (level != s->level) {
        s->level = level;
        irq_line_set(&s->irq, level);
    }
}

static uint64_t ged_read(void *opaque, uint64_t addr, unsigned size)
{
    GedState *s = opaque;
    if (addr >= GED_REG_SIZE || size > GED_REG_SIZE - addr)
        return 0;
    pthread_mutex_lock(&s->lock);
    uint32_t v = s->pending;
    pthread_mutex_unlock(&s->lock);
    v >>= 8 * addr;
    return size >= 4 ? v : v & ((1u << (8 * size)) - 1);
}

static void ged_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    GedState *s = opaque;
    if (addr >= GED_REG_SIZE || size > GED_REG_SIZE - addr)
        return;
    uint32_t mask = size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
    uint32_t ack = ((uint32_t)data & mask) << (8 * addr);
    pthread_mutex_lock(&s->lock);
    uint32_t cleared = s->pending & ack;
    if (cleared) {
        s->pending &= ~cleared;
        s->acked += (uint64_t)__builtin_popcount(cleared);
        update_line(s);
    }
    pthread_mutex_unlock(&s->lock);
}

static const MemoryRegionOps ged_ops = {
    .read = ged_read,
    .write = ged_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 4 },
    .impl = { .min_access_size = 1, .max_access_size = 4 },
};

int ged_init(GedState *s, MemoryContext *ctx, const IrqLine *irq)
{
    memset(s, 0, sizeof(*s));
    if (irq)
        s->irq = *irq;
    int r = pthread_mutex_init(&s->lock, NULL);
    if (r)
        return -r;
    r = memory_region_init_io(&s->io, ctx, &ged_ops, s, "acpi-ged", GED_REG_SIZE);
    if (r < 0) {
        pthread_mutex_destroy(&s->lock);
        return r;
    }
    s->initialized = true;
    return 0;
}

void ged_destroy(GedState *s)
{
    if (!s->initialized)
        return;
    memory_region_destroy(&s->io);
    pthread_mutex_destroy(&s->lock);
    s->initialized = false;
}

uint32_t ged_raise(GedState *s, uint32_t events)
{
    events &= GED_EVENTS_ALL;
    pthread_mutex_lock(&s->lock);
    s->raised += (uint64_t)__builtin_popcount(events & ~s->pending);
    s->pending |= events;
    update_line(s);
    uint32_t now = s->pending;
    pthread_mutex_unlock(&s->lock);
    return now;
}

uint32_t ged_pending(GedState *s)
{
    pthread_mutex_lock(&s->lock);
    uint32_t v = s->pending;
    pthread_mutex_unlock(&s->lock);
    return v;
}

void ged_reset(GedState *s)
{
    pthread_mutex_lock(&s->lock);
    s->pending = 0;
    update_line(s);
    pthread_mutex_unlock(&s->lock);
}

static const StateField ged_fields[] = {
    STATE_U32(GedStateData, pending),
};
static const StateTable ged_table = STATE_TABLE(GedStateData, ged_fields);
const StateSection ged_state_section = {
    "acpi-ged",
    GED_STATE_MAGIC,
    GED_STATE_VERSION,
    &ged_table,
};

int ged_save(GedState *s, uint8_t **buf, size_t *len)
{
    GedStateData st = { .pending = ged_pending(s) };
    return state_save_section(&ged_state_section, &st, buf, len);
}

int ged_load(GedState *s, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    GedStateData st;
    int ret = state_load_section(&ged_state_section, buf, len, &st, err, errlen);
    if (ret < 0)
        return ret;
    if (st.pending & ~GED_EVENTS_ALL)
        return state_refuse(&ged_state_section, err, errlen, "malformed payload");
    pthread_mutex_lock(&s->lock);
    s->pending = st.pending;
    update_line(s);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

DEVICE_OPS_DEFINE(ged, GedState, "acpi-ged");
