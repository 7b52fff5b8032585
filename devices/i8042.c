/* SPDX-License-Identifier: MIT */
/* i8042 reset and ACPI sleep control (see i8042.h). */
#include "devices/i8042.h"

#include <string.h>

#define ST_OBF 0x01
#define ST_SYS 0x04 /* system flag: POST passed */
#define ST_CMD 0x08 /* last write was a command */
#define SLP_EN 0x20
#define WAK_STS 0x80

static void put_out(I8042State *s, uint8_t v)
{
    s->out = v;
    s->out_full = true;
}

static void fire(I8042State *s, PowerEvent ev)
{
    if (ev == POWER_RESET)
        s->resets++;
    else
        s->poweroffs++;
    PowerEventFn fn = s->fn;
    void *opaque = s->opaque;
    pthread_mutex_unlock(&s->lock);
    if (fn)
        fn(opaque, ev);
    pthread_mutex_lock(&s->lock);
}

static uint64_t data_read(void *opaque, uint64_t addr, unsigned size)
{
    I8042State *s = opaque;
    (void)addr;
    (void)size;
    pthread_mutex_lock(&s->lock);
    uint8_t v = s->out;
    s->out_full = false;
    pthread_mutex_unlock(&s->lock);
    return v;
}

static void data_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    I8042State *s = opaque;
    (void)addr;
    (void)size;
    uint8_t v = (uint8_t)data;
    pthread_mutex_lock(&s->lock);
    uint8_t cmd = s->pending;
    s->pending = 0;
    switch (cmd) {
    case 0x60: /* write the command byte */
        s->cmd_byte = v;
        break;
    case 0xd1: /* write the output port: bit 0 low = reset */
        if (!(v & 1))
            fire(s, POWER_RESET);
        break;
    case 0xd2: /* write the keyboard output buffer */
    case 0xd3: /* write the aux output buffer */
        put_out(s, v);
        break;
    default:              /* a byte for the (absent) keyboard */
        put_out(s, 0xfe); /* resend: nobody there */
        break;
    }
    pthread_mutex_unlock(&s->lock);
}

static uint64_t cmd_read(void *opaque, uint64_t addr, unsigned size)
{
    I8042State *s = opaque;
    (void)addr;
    (void)size;
    pthread_mutex_lock(&s->lock);
    uint8_t st = ST_SYS | (s->out_full ? ST_OBF : 0) | (s->pending ? ST_CMD : 0);
    pthread_mutex_unlock(&s->lock);
    return st;
}

static void cmd_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    I8042State *s = opaque;
    (void)addr;
    (void)size;
    uint8_t v = (uint8_t)data;
    pthread_mutex_lock(&s->lock);
    s->pending = 0;
    switch (v) {
    case 0x20: /* read the command byte */
        put_out(s, s->cmd_byte);
        break;
    case 0x60:
    case 0xd1:
    case 0xd2:
    case 0xd3:
        s->pending = v;
        break;
    case 0xa7: /* disable aux */
        s->cmd_byte |= 0x20;
        break;
    case 0xa8: /* enable aux */
        s->cmd_byte &= (uint8_t)~0x20;
        break;
    case 0xa9: /* aux interface test: fine */
    case 0xab: /* keyboard interface test: fine */
        put_out(s, 0x00);
        break;
    case 0xaa: /* controller self test: passed */
        put_out(s, 0x55);
        break;
    case 0xad: /* disable keyboard */
        s->cmd_byte |= 0x10;
        break;
    case 0xae: /* enable keyboard */
        s->cmd_byte &= (uint8_t)~0x10;
        break;
    case 0xd0: /* read the output port: A20 on, not in reset */
        put_out(s, 0x03);
        break;
    default:
        if ((v & 0xf0) == 0xf0 && !(v & 1)) /* pulse output bit 0: reset */
            fire(s, POWER_RESET);
        break;
    }
    pthread_mutex_unlock(&s->lock);
}

static uint64_t sleep_read(void *opaque, uint64_t addr, unsigned size)
{
    I8042State *s = opaque;
    (void)size;
    pthread_mutex_lock(&s->lock);
    uint8_t v = addr == 1 ? s->sleep_status : 0;
    pthread_mutex_unlock(&s->lock);
    return v;
}

static void sleep_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    I8042State *s = opaque;
    (void)size;
    uint8_t v = (uint8_t)data;
    pthread_mutex_lock(&s->lock);
    if (addr == 1) {
        s->sleep_status &= (uint8_t) ~(v & WAK_STS); /* write 1 to clear */
    } else if (addr == ACPI_RESET_REG_OFFSET) {
        if (v == ACPI_RESET_VALUE)
            fire(s, POWER_RESET);
    } else if ((v & SLP_EN) && ((v >> 2) & 7) == ACPI_SLEEP_TYPE_S5) {
        fire(s, POWER_OFF);
    }
    pthread_mutex_unlock(&s->lock);
}

static const MemoryRegionOps data_ops = {
    .read = data_read,
    .write = data_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 1 },
    .impl = { .min_access_size = 1, .max_access_size = 1 },
};
static const MemoryRegionOps cmd_ops = {
    .read = cmd_read,
    .write = cmd_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 1 },
    .impl = { .min_access_size = 1, .max_access_size = 1 },
};
static const MemoryRegionOps sleep_ops = {
    .read = sleep_read,
    .write = sleep_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 1 },
    .impl = { .min_access_size = 1, .max_access_size = 1 },
};

int i8042_init(I8042State *s, MemoryContext *ctx, PowerEventFn fn, void *opaque)
{
    memset(s, 0, sizeof(*s));
    s->fn = fn;
    s->opaque = opaque;
    int r = pthread_mutex_init(&s->lock, NULL);
    if (r)
        return -r;
    if ((r = memory_region_init_io(&s->data_io, ctx, &data_ops, s, "i8042-data", 1)) < 0)
        goto fail0;
    if ((r = memory_region_init_io(&s->cmd_io, ctx, &cmd_ops, s, "i8042-cmd", 1)) < 0)
        goto fail1;
    if ((r = memory_region_init_io(&s->sleep_io, ctx, &sleep_ops, s, "acpi-sleep", 3)) < 0)
        goto fail2;
    s->initialized = true;
    i8042_reset(s);
    return 0;
fail2:
    memory_region_destroy(&s->cmd_io);
fail1:
    memory_region_destroy(&s->data_io);
fail0:
    pthread_mutex_destroy(&s->lock);
    return r;
}

void i8042_destroy(I8042State *s)
{
    if (!s->initialized)
        return;
    memory_region_destroy(&s->sleep_io);
    memory_region_destroy(&s->cmd_io);
    memory_region_destroy(&s->data_io);
    pthread_mutex_destroy(&s->lock);
    s->initialized = false;
}

void i8042_reset(I8042State *s)
{
    pthread_mutex_lock(&s->lock);
    s->cmd_byte = 0x30; /* keyboard and aux disabled, no interrupts */
    s->pending = 0;
    s->out = 0;
    s->out_full = false;
    s->sleep_status = 0;
    pthread_mutex_unlock(&s->lock);
}

MemoryRegion *i8042_data_region(I8042State *s)
{
    return &s->data_io;
}

MemoryRegion *i8042_cmd_region(I8042State *s)
{
    return &s->cmd_io;
}

MemoryRegion *i8042_sleep_region(I8042State *s)
{
    return &s->sleep_io;
}

static const StateField i8042_fields[] = {
    STATE_U8(I8042StateData, cmd_byte),     STATE_U8(I8042StateData, pending),
    STATE_U8(I8042StateData, out),          STATE_U8(I8042StateData, out_full),
    STATE_U8(I8042StateData, sleep_status),
};
static const StateTable i8042_table = STATE_TABLE(I8042StateData, i8042_fields);
const StateSection i8042_state_section = {
    "i8042",
    I8042_STATE_MAGIC,
    I8042_STATE_VERSION,
    &i8042_table,
};

int i8042_save(I8042State *s, uint8_t **buf, size_t *len)
{
    pthread_mutex_lock(&s->lock);
    I8042StateData st = {
        .cmd_byte = s->cmd_byte,
        .pending = s->pending,
        .out = s->out,
        .out_full = s->out_full,
        .sleep_status = s->sleep_status,
    };
    pthread_mutex_unlock(&s->lock);
    return state_save_section(&i8042_state_section, &st, buf, len);
}

static bool pending_valid(uint8_t pending)
{
    return !pending || pending == 0x60 || pending == 0xd1 || pending == 0xd2 || pending == 0xd3;
}

int i8042_load(I8042State *s, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    I8042StateData st;
    int ret = state_load_section(&i8042_state_section, buf, len, &st, err, errlen);
    if (ret < 0)
        return ret;
    if (st.out_full > 1 || !pending_valid(st.pending))
        return state_refuse(&i8042_state_section, err, errlen, "malformed payload");
    pthread_mutex_lock(&s->lock);
    s->cmd_byte = st.cmd_byte;
    s->pending = st.pending;
    s->out = st.out;
    s->out_full = st.out_full;
    s->sleep_status = st.sleep_status;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

DEVICE_OPS_DEFINE(i8042, I8042State, "i8042");
