/* SPDX-License-Identifier: MIT */
/* The strata test device (see testdev.h). */
#include "devices/testdev.h"

#include <errno.h>
#include <string.h>

#include "memory/state-stream.h"

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
            if (d->line_len)            /* flush a partial console line */
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
    r = memory_region_init_io(&d->io, ctx, &testdev_ops, d, "strata-testdev",
                              TESTDEV_PORT_SIZE);
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

int testdev_save(TestDev *d, uint8_t **buf, size_t *len)
{
    StateWriter w;
    state_writer_init(&w);
    pthread_mutex_lock(&d->lock);
    size_t sec = state_section_begin(&w, TESTDEV_STATE_MAGIC, TESTDEV_STATE_VERSION);
    state_put_u64(&w, d->nr_reports);
    for (unsigned i = 0; i < TESTDEV_KEEP_REPORTS; i++)
        state_put_u32(&w, d->reports[i]);
    state_put_u8(&w, d->exited);
    state_put_u32(&w, d->exit_code);
    state_put_u32(&w, d->sync_answer);
    state_put_u64(&w, d->sync_count);
    pthread_mutex_unlock(&d->lock);
    state_section_end(&w, sec);
    return state_writer_finish(&w, buf, len);
}

int testdev_load(TestDev *d, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    StateReader r, p;
    uint16_t version;
    char why[160];
    state_reader_init(&r, buf, len);
    int ret = state_section_open(&r, TESTDEV_STATE_MAGIC, TESTDEV_STATE_VERSION, &version, &p,
                                 why, sizeof(why));
    if (ret < 0) {
        snprintf(err, errlen, "testdev state: %s", why);
        return ret;
    }
    uint64_t nr = state_get_u64(&p);
    uint32_t reports[TESTDEV_KEEP_REPORTS];
    for (unsigned i = 0; i < TESTDEV_KEEP_REPORTS; i++)
        reports[i] = state_get_u32(&p);
    uint8_t exited = state_get_u8(&p);
    uint32_t code = state_get_u32(&p);
    uint32_t answer = state_get_u32(&p);
    uint64_t syncs = state_get_u64(&p);
    if (!state_reader_done(&p) || !state_reader_done(&r) || exited > 1) {
        snprintf(err, errlen, "testdev state: malformed payload");
        return -EINVAL;
    }
    pthread_mutex_lock(&d->lock);
    d->nr_reports = nr;
    memcpy(d->reports, reports, sizeof(reports));
    d->exited = exited;
    d->exit_code = code;
    d->sync_answer = answer;
    d->sync_count = syncs;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

DEVICE_OPS_DEFINE(testdev, TestDev, "testdev");
