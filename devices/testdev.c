/* SPDX-License-Identifier: MIT */
/* The strata test device (see testdev.h). */
#include "devices/testdev.h"

#include <string.h>

static void putc_locked(TestDev *d, char c)
{
    if (c == '\n' || d->line_len == sizeof(d->line) - 1) {
        d->line[d->line_len] = 0;
        fprintf(d->console, "guest: %s\n", d->line);
        fflush(d->console);
        d->line_len = 0;
        if (c == '\n')
            return;
    }
    d->line[d->line_len++] = c;
}

static uint64_t testdev_read(void *opaque, uint64_t addr, unsigned size)
{
    TestDev *d = opaque;
    pthread_mutex_lock(&d->lock);
    uint32_t v = addr + TESTDEV_PORT_BASE == TESTDEV_PORT_SYNC ? d->sync_answer : TESTDEV_MAGIC;
    pthread_mutex_unlock(&d->lock);
    return v;
}

static void testdev_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    TestDev *d = opaque;
    uint32_t v = (uint32_t)data;
    bool do_exit = false;

    pthread_mutex_lock(&d->lock);
    switch (addr + TESTDEV_PORT_BASE) {
    case TESTDEV_PORT_REPORT:
        d->reports[d->nr_reports % TESTDEV_KEEP_REPORTS] = v;
        d->nr_reports++;
        break;
    case TESTDEV_PORT_PUTC:
        putc_locked(d, (char)v);
        break;
    case TESTDEV_PORT_EXIT:
        if (!d->exited) {
            d->exited = true;
            d->exit_code = v;
            do_exit = true;
            if (d->line_len) /* flush a partial console line */
                putc_locked(d, '\n');
        }
        break;
    case TESTDEV_PORT_SYNC:
        d->sync_count++;
        d->sync_answer = 0;
        break;
    default:
        break;
    }
    TestDevExitFn fn = d->exit_fn;
    void *fn_opaque = d->exit_opaque;
    pthread_mutex_unlock(&d->lock);
    if (do_exit && fn)
        fn(fn_opaque, v);
}

static const MemoryRegionOps testdev_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 4 },
    .impl = { .min_access_size = 1, .max_access_size = 4 },
};

int testdev_init(TestDev *d, MemoryContext *ctx, TestDevExitFn fn, void *opaque, FILE *console)
{
    memset(d, 0, sizeof(*d));
    d->exit_fn = fn;
    d->exit_opaque = opaque;
    d->console = console ? console : stderr;
    int r = pthread_mutex_init(&d->lock, NULL);
    if (r)
        return -r;
    r = memory_region_init_io(&d->io, ctx, &testdev_ops, d, "strata-testdev", TESTDEV_PORT_SIZE);
    if (r < 0) {
        pthread_mutex_destroy(&d->lock);
        return r;
    }
    d->io_initialized = true;
    return 0;
}

void testdev_destroy(TestDev *d)
{
    if (!d->io_initialized)
        return;
    memory_region_destroy(&d->io);
    pthread_mutex_destroy(&d->lock);
    d->io_initialized = false;
}

void testdev_reset(TestDev *d)
{
    pthread_mutex_lock(&d->lock);
    d->nr_reports = 0;
    d->exited = false;
    d->exit_code = 0;
    d->sync_answer = 0;
    d->sync_count = 0;
    d->line_len = 0;
    pthread_mutex_unlock(&d->lock);
}

MemoryRegion *testdev_region(TestDev *d)
{
    return &d->io;
}

static const StateField testdev_fields[] = {
    STATE_U64(TestDevStateData, nr_reports),  STATE_U32_ARRAY(TestDevStateData, reports),
    STATE_U8(TestDevStateData, exited),       STATE_U32(TestDevStateData, exit_code),
    STATE_U32(TestDevStateData, sync_answer), STATE_U64(TestDevStateData, sync_count),
};
static const StateTable testdev_table = STATE_TABLE(TestDevStateData, testdev_fields);
const StateSection testdev_state_section = {
    "testdev",
    TESTDEV_STATE_MAGIC,
    TESTDEV_STATE_VERSION,
    &testdev_table,
};

int testdev_save(TestDev *d, uint8_t **buf, size_t *len)
{
    TestDevStateData st;
    pthread_mutex_lock(&d->lock);
    st.nr_reports = d->nr_reports;
    memcpy(st.reports, d->reports, sizeof(st.reports));
    st.exited = d->exited;
    st.exit_code = d->exit_code;
    st.sync_answer = d->sync_answer;
    st.sync_count = d->sync_count;
    pthread_mutex_unlock(&d->lock);
    return state_save_section(&testdev_state_section, &st, buf, len);
}

int testdev_load(TestDev *d, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    TestDevStateData st;
    int ret = state_load_section(&testdev_state_section, buf, len, &st, err, errlen);
    if (ret < 0)
        return ret;
    if (st.exited > 1)
        return state_refuse(&testdev_state_section, err, errlen, "malformed payload");
    pthread_mutex_lock(&d->lock);
    d->nr_reports = st.nr_reports;
    memcpy(d->reports, st.reports, sizeof(st.reports));
    d->exited = st.exited;
    d->exit_code = st.exit_code;
    d->sync_answer = st.sync_answer;
    d->sync_count = st.sync_count;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

DEVICE_OPS_DEFINE(testdev, TestDev, "testdev");
