/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk over fake guest memory and a temporary file: read, write,
 * flush, get_id, readonly refusal, malformed and out-of-range requests,
 * batches larger than the submission batch, the event-loop path,
 * save/load, and several request queues (num-queues: each served, one
 * rate limit and one set of counters for all, every queue saved, a state
 * with another count refused, a driver that sets up some queues or kicks
 * ones that do not exist).  No /dev/kvm.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/evloop.h"
#include "devices/virtio-blk.h"
#include "tests/virtio/vtest.h"

#define DISK_SECTORS 2048
#define HDR VT_BUFS              /* request header */
#define DATA (VT_BUFS + 0x1000)  /* data buffers */
#define STATUS (VT_BUFS + 0x800) /* status byte */

typedef struct Fix {
    Vt vt;
    VirtioBlk *blk;
    Evloop *loop;
    char path[64];
    int fd; /* the test's view of the disk */
} Fix;

static uint8_t pattern(uint64_t off)
{
    return (uint8_t)(off * 7 + (off >> 9));
}

static Fix *fix_new_mq(bool readonly, bool with_loop, unsigned nq)
{
    Fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->path, sizeof(f->path), "/tmp/strata-vblk-XXXXXX");
    f->fd = mkstemp(f->path);
    assert_true(f->fd >= 0);
    static uint8_t img[DISK_SECTORS * 512 + 100]; /* a partial last sector */
    for (size_t i = 0; i < sizeof(img); i++)
        img[i] = pattern(i);
    assert_int_equal(pwrite(f->fd, img, sizeof(img), 0), (ssize_t)sizeof(img));
    vt_setup(&f->vt);
    if (with_loop)
        assert_non_null(f->loop = evloop_new());
    f->blk = calloc(1, sizeof(*f->blk));
    assert_non_null(f->blk);
    char err[256];
    assert_int_equal(virtio_blk_init(f->blk, &(VirtioEnv){ f->vt.ctx, f->vt.as, f->loop }, f->path,
                                     readonly, nq, err, sizeof(err)),
                     0);
    virtio_mmio_connect_irq(&f->blk->t, &f->vt.irq, VT_BASE);
    vt_map(&f->vt, virtio_mmio_region(&f->blk->t));
    return f;
}

static Fix *fix_new(bool readonly, bool with_loop)
{
    return fix_new_mq(readonly, with_loop, 1);
}

static void fix_free(Fix *f)
{
    vt_teardown(&f->vt);
    virtio_blk_destroy(f->blk);
    free(f->blk);
    if (f->loop)
        evloop_free(f->loop);
    vt_free(&f->vt);
    close(f->fd);
    unlink(f->path);
    free(f);
}

static void put_hdr(Vt *vt, uint64_t at, uint32_t type, uint64_t sector)
{
    uint8_t h[16] = { 0 };
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
    memcpy(vt_ptr(vt, at), h, 16);
}

/* Submits header + data buffers + status, kicks, returns the used length
 * and the status byte. */
static uint32_t request(Fix *f, uint32_t type, uint64_t sector, const VtBuf *data, unsigned n,
                        uint8_t *status)
{
    Vt *vt = &f->vt;
    VtBuf b[8];
    put_hdr(vt, HDR, type, sector);
    *(uint8_t *)vt_ptr(vt, STATUS) = 0xee;
    b[0] = (VtBuf){ HDR, 16, false };
    for (unsigned i = 0; i < n; i++)
        b[1 + i] = data[i];
    b[1 + n] = (VtBuf){ STATUS, 1, true };
    vt_add(vt, 0, b, n + 2);
    vt_kick(vt, 0);
    if (f->loop)
        evloop_run_once(f->loop, 1000);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    *status = *(uint8_t *)vt_ptr(vt, STATUS);
    return len;
}

static void test_config(void **state)
{
    (void)state;
    Fix *f = fix_new(false, false);
    assert_int_equal(vt_r32(&f->vt, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
    assert_int_equal(vt_cfg(&f->vt, 0, 4), DISK_SECTORS); /* capacity, 4-byte halves */
    assert_int_equal(vt_cfg(&f->vt, 4, 4), 0);
    assert_int_equal(vt_cfg(&f->vt, 0, 1), DISK_SECTORS & 0xff);
    vt_w32(&f->vt, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    uint32_t feat = vt_r32(&f->vt, VIRTIO_MMIO_DEVICE_FEATURES);
    assert_true(feat & (1u << VIRTIO_BLK_F_FLUSH));
    assert_false(feat & (1u << VIRTIO_BLK_F_RO));
    fix_free(f);
}

static void test_read_write_flush_id(void **state)
{
    (void)state;
    Fix *f = fix_new(false, false);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 1, 64);
    uint8_t st;
    /* read 2 sectors from sector 3 into two buffers */
    VtBuf rd[2] = { { DATA, 512, true }, { DATA + 0x1000, 512, true } };
    memset(vt_ptr(vt, DATA), 0, 0x2000);
    assert_int_equal(request(f, VIRTIO_BLK_T_IN, 3, rd, 2, &st), 1025);
    assert_int_equal(st, VIRTIO_BLK_S_OK);
    for (unsigned i = 0; i < 1024; i++) {
        uint8_t *p = vt_ptr(vt, i < 512 ? DATA + i : DATA + 0x1000 + i - 512);
        assert_int_equal(*p, pattern(3 * 512 + i));
    }
    /* write sector 10 */
    memset(vt_ptr(vt, DATA), 0xa5, 512);
    VtBuf wr = { DATA, 512, false };
    assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 10, &wr, 1, &st), 1);
    assert_int_equal(st, VIRTIO_BLK_S_OK);
    uint8_t back[512];
    assert_int_equal(pread(f->fd, back, 512, 10 * 512), 512);
    for (int i = 0; i < 512; i++)
        assert_int_equal(back[i], 0xa5);
    /* flush */
    assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &st), 1);
    assert_int_equal(st, VIRTIO_BLK_S_OK);
    /* get_id */
    memset(vt_ptr(vt, DATA), 0, 64);
    VtBuf id = { DATA, 20, true };
    assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, &id, 1, &st), 21);
    assert_int_equal(st, VIRTIO_BLK_S_OK);
    assert_memory_equal(vt_ptr(vt, DATA), "strata", 6);
    /* the last sector is readable, the partial one after it is not */
    VtBuf last = { DATA, 512, true };
    assert_int_equal(request(f, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, &last, 1, &st), 513);
    assert_int_equal(st, VIRTIO_BLK_S_OK);
    VirtioBlkStats bs;
    virtio_blk_get_stats(f->blk, &bs);
    assert_int_equal(bs.rd_operations, 2);
    assert_int_equal(bs.rd_bytes, 1024 + 512);
    assert_int_equal(bs.wr_operations, 1);
    assert_int_equal(bs.wr_bytes, 512);
    assert_int_equal(bs.wr_highest_offset, 11 * 512);
    assert_int_equal(bs.flush_operations, 1);
    assert_int_equal(bs.get_id_operations, 1);
    assert_int_equal(bs.failed_rd_operations + bs.invalid_rd_operations + bs.failed_wr_operations +
                         bs.invalid_wr_operations + bs.failed_flush_operations +
                         bs.malformed_requests,
                     0);
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_INTERRUPT_STATUS) & 1, 1);
    fix_free(f);
}

static void test_bad_requests(void **state)
{
    (void)state;
    Fix *f = fix_new(false, false);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 1, 64);
    uint8_t st;
    VtBuf one = { DATA, 512, true };
    assert_int_equal(request(f, VIRTIO_BLK_T_IN, DISK_SECTORS, &one, 1, &st), 1);
    assert_int_equal(st, VIRTIO_BLK_S_IOERR);
    assert_int_equal(request(f, VIRTIO_BLK_T_IN, UINT64_MAX, &one, 1, &st), 1);
    assert_int_equal(st, VIRTIO_BLK_S_IOERR);
    assert_int_equal(request(f, VIRTIO_BLK_T_IN, UINT64_MAX / 512 + 1, &one, 1, &st), 1);
    assert_int_equal(st, VIRTIO_BLK_S_IOERR);
    VtBuf odd = { DATA, 100, true };
    assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, &odd, 1, &st), 1);
    assert_int_equal(st, VIRTIO_BLK_S_IOERR);
    VtBuf wodd = { DATA, 100, false };
    assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, &wodd, 1, &st), 1);
    assert_int_equal(st, VIRTIO_BLK_S_IOERR);
    assert_int_equal(request(f, 99, 0, NULL, 0, &st), 1);
    assert_int_equal(st, VIRTIO_BLK_S_UNSUPP);
    /* header only, no status byte: completed with 0 bytes, device fine */
    put_hdr(vt, HDR, VIRTIO_BLK_T_IN, 0);
    vt_add(vt, 0, &(VtBuf){ HDR, 16, false }, 1);
    vt_kick(vt, 0);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(len, 0);
    /* short header */
    vt_add(vt, 0, (VtBuf[]){ { HDR, 8, false }, { STATUS, 1, true } }, 2);
    vt_kick(vt, 0);
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(len, 0);
    /* header split over two descriptors is fine */
    put_hdr(vt, HDR, VIRTIO_BLK_T_IN, 1);
    vt_add(vt, 0,
           (VtBuf[]){ { HDR, 4, false },
                      { HDR + 4, 12, false },
                      { DATA, 512, true },
                      { STATUS, 1, true } },
           4);
    vt_kick(vt, 0);
    assert_int_equal(vt_used(vt, 0, &id, &len), 1);
    assert_int_equal(len, 513);
    assert_int_equal(*(uint8_t *)vt_ptr(vt, DATA + 5), pattern(512 + 5));
    /* none of these broke the device */
    assert_false(vt_r32(vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
    /* each refusal counted where it belongs; only the last read succeeded */
    VirtioBlkStats bs;
    virtio_blk_get_stats(f->blk, &bs);
    assert_int_equal(bs.invalid_rd_operations, 4);
    assert_int_equal(bs.invalid_wr_operations, 1);
    assert_int_equal(bs.unsupported_operations, 1);
    assert_int_equal(bs.malformed_requests, 2);
    assert_int_equal(bs.rd_operations, 1);
    assert_int_equal(bs.rd_bytes, 512);
    assert_int_equal(bs.failed_rd_operations + bs.wr_operations + bs.wr_bytes, 0);
    fix_free(f);
}

/* I/O that fails on the host (the image shrank under the VM): failed, not
 * invalid, and no bytes counted; a read-only disk's refused write is
 * invalid. */
static void test_stats_failed_io(void **state)
{
    (void)state;
    Fix *f = fix_new(false, false);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 1, 64);
    uint8_t st;
    VtBuf one = { DATA, 512, true };
    assert_int_equal(request(f, VIRTIO_BLK_T_IN, 7, &one, 1, &st), 513);
    assert_int_equal(st, VIRTIO_BLK_S_OK);
    assert_int_equal(ftruncate(f->fd, 512), 0);
    assert_int_equal(request(f, VIRTIO_BLK_T_IN, 7, &one, 1, &st), 1);
    assert_int_equal(st, VIRTIO_BLK_S_IOERR);
    VirtioBlkStats bs;
    virtio_blk_get_stats(f->blk, &bs);
    assert_int_equal(bs.rd_operations, 1);
    assert_int_equal(bs.rd_bytes, 512);
    assert_int_equal(bs.failed_rd_operations, 1);
    assert_int_equal(bs.invalid_rd_operations, 0);
    fix_free(f);

    f = fix_new(true, false);
    vt = &f->vt;
    vt_bringup(vt, ~0ull, 1, 64);
    VtBuf wr = { DATA, 512, false };
    assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, &wr, 1, &st), 1);
    assert_int_equal(st, VIRTIO_BLK_S_IOERR);
    virtio_blk_get_stats(f->blk, &bs);
    assert_int_equal(bs.invalid_wr_operations, 1);
    assert_int_equal(bs.failed_wr_operations + bs.wr_operations + bs.wr_highest_offset, 0);
    fix_free(f);
}

static void test_readonly(void **state)
{
    (void)state;
    Fix *f = fix_new(true, false);
    Vt *vt = &f->vt;
    vt_w32(vt, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    assert_true(vt_r32(vt, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << VIRTIO_BLK_F_RO));
    vt_bringup(vt, ~0ull, 1, 64);
    uint8_t st;
    memset(vt_ptr(vt, DATA), 0x11, 512);
    VtBuf wr = { DATA, 512, false };
    assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, &wr, 1, &st), 1);
    assert_int_equal(st, VIRTIO_BLK_S_IOERR);
    uint8_t back[512];
    assert_int_equal(pread(f->fd, back, 512, 0), 512);
    for (int i = 0; i < 512; i++)
        assert_int_equal(back[i], pattern((uint64_t)i));
    VtBuf rd = { DATA, 512, true };
    assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, &rd, 1, &st), 513);
    assert_int_equal(st, VIRTIO_BLK_S_OK);
    assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &st), 1);
    assert_int_equal(st, VIRTIO_BLK_S_OK);
    fix_free(f);
}

static void test_batch_and_loop(void **state)
{
    (void)state;
    Fix *f = fix_new(false, true);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 1, 128);
    /* 40 reads (more than one submission batch), 2 descriptors... each */
    enum { N = 40 };
    for (unsigned i = 0; i < N; i++) {
        uint64_t h = VT_BUFS + 0x10000 + i * 0x1000;
        put_hdr(vt, h, VIRTIO_BLK_T_IN, i);
        VtBuf b[3] = { { h, 16, false }, { h + 0x200, 512, true }, { h + 0x100, 1, true } };
        vt_add(vt, 0, b, 3);
    }
    vt_kick(vt, 0);
    assert_true(evloop_run_once(f->loop, 1000) >= 1);
    for (unsigned i = 0; i < N; i++) {
        uint32_t id, len;
        assert_true(vt_used(vt, 0, &id, &len) >= 1);
        assert_int_equal(len, 513);
    }
    for (unsigned i = 0; i < N; i++) {
        uint64_t h = VT_BUFS + 0x10000 + i * 0x1000;
        assert_int_equal(*(uint8_t *)vt_ptr(vt, h + 0x100), VIRTIO_BLK_S_OK);
        assert_int_equal(*(uint8_t *)vt_ptr(vt, h + 0x200 + 7), pattern(i * 512 + 7));
    }
    fix_free(f);
}

/* Adds n one-sector reads (not kicked), the i-th at VT_BUFS + 0x10000 +
 * (first + i) * 0x1000. */
static void add_reads(Vt *vt, unsigned first, unsigned n)
{
    for (unsigned i = first; i < first + n; i++) {
        uint64_t h = VT_BUFS + 0x10000 + i * 0x1000;
        put_hdr(vt, h, VIRTIO_BLK_T_IN, i);
        VtBuf b[3] = { { h, 16, false }, { h + 0x200, 512, true }, { h + 0x100, 1, true } };
        vt_add(vt, 0, b, 3);
    }
}

static unsigned count_used(Vt *vt)
{
    uint32_t id, len;
    unsigned n = 0;
    while (vt_used(vt, 0, &id, &len) > 0)
        n++;
    return n;
}

static double now_s(void)
{
    return (double)ratelimit_now_ns() / 1e9;
}

/* An iops limit: the burst goes at once, the rest stays in the avail ring
 * (a kick changes nothing) until the timer has the tokens; counted. */
static void test_rate_limit(void **state)
{
    (void)state;
    Fix *f = fix_new(false, true);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 1, 128);
    RateLimitConfig cfg = { .ops = 20, .ops_burst = 3 };
    double t0 = now_s();
    assert_int_equal(virtio_blk_set_rate_limit(f->blk, &cfg), 0);
    add_reads(vt, 0, 8);
    vt_kick(vt, 0);
    assert_true(evloop_run_once(f->loop, 1000) >= 1);
    assert_int_equal(count_used(vt), 3);
    assert_int_equal(f->blk->t.r.vq[0].last_avail_idx, 3); /* the rest not taken */
    VirtioBlkStats st;
    virtio_blk_get_stats(f->blk, &st);
    assert_int_equal(st.throttled, 1);
    assert_int_equal(st.rd_operations, 3);
    vt_kick(vt, 0); /* while waiting: nothing */
    evloop_run_once(f->loop, 0);
    assert_int_equal(count_used(vt), 0);
    unsigned done = 3;
    for (int i = 0; i < 100 && done < 8; i++) {
        evloop_run_once(f->loop, 1000);
        done += count_used(vt);
    }
    double dt = now_s() - t0;
    assert_int_equal(done, 8);
    virtio_blk_get_stats(f->blk, &st);
    printf("# 5 requests over the burst at 20/s took %.3f s (at least 0.25 s expected); "
           "throttled %llu times, %.3f s\n",
           dt, (unsigned long long)st.throttled, (double)st.throttled_ns / 1e9);
    assert_true(dt >= 0.2); /* the limit never lets them through sooner */
    assert_true(st.throttled >= 2);
    assert_true(st.throttled_ns >= 100000000ull);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(*(uint8_t *)vt_ptr(vt, VT_BUFS + 0x10000 + i * 0x1000 + 0x100),
                         VIRTIO_BLK_S_OK);
    /* a slow limit, then lifted: the waiting requests go at once */
    RateLimitConfig slow = { .ops = 1, .ops_burst = 1 };
    assert_int_equal(virtio_blk_set_rate_limit(f->blk, &slow), 0);
    add_reads(vt, 8, 4);
    vt_kick(vt, 0);
    evloop_run_once(f->loop, 1000);
    assert_int_equal(count_used(vt), 1);
    RateLimitConfig none = { 0 };
    assert_int_equal(virtio_blk_set_rate_limit(f->blk, &none), 0);
    t0 = now_s();
    done = 0;
    for (int i = 0; i < 10 && done < 3; i++) {
        evloop_run_once(f->loop, 1000);
        done += count_used(vt);
    }
    assert_int_equal(done, 3);
    assert_true(now_s() - t0 < 0.9); /* not the 1/s limit's 2 s */
    RateLimitConfig got;
    virtio_blk_get_rate_limit(f->blk, &got);
    assert_int_equal(got.ops, 0);
    fix_free(f);
}

/* A bytes limit with a request larger than the burst: it passes on a full
 * bucket, and the debt holds the next one back. */
static void test_rate_limit_large_request(void **state)
{
    (void)state;
    Fix *f = fix_new(false, true);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 1, 128);
    RateLimitConfig cfg = { .bw = 8192, .bw_burst = 512 };
    assert_int_equal(virtio_blk_set_rate_limit(f->blk, &cfg), 0);
    put_hdr(vt, HDR, VIRTIO_BLK_T_IN, 0);
    VtBuf big[3] = { { HDR, 16, false }, { DATA, 4096, true }, { STATUS, 1, true } };
    vt_add(vt, 0, big, 3);
    add_reads(vt, 0, 1);
    vt_kick(vt, 0);
    evloop_run_once(f->loop, 1000);
    assert_int_equal(count_used(vt), 1); /* the 4 KiB one */
    VirtioBlkStats st;
    virtio_blk_get_stats(f->blk, &st);
    assert_int_equal(st.rd_bytes, 4096);
    assert_int_equal(st.throttled, 1);
    unsigned done = 0;
    for (int i = 0; i < 10 && !done; i++) {
        evloop_run_once(f->loop, 2000);
        done += count_used(vt);
    }
    assert_int_equal(done, 1);
    fix_free(f);
}

/* Without an event loop there is no timer, so no limit. */
static void test_rate_limit_needs_loop(void **state)
{
    (void)state;
    Fix *f = fix_new(false, false);
    RateLimitConfig cfg = { .ops = 1 };
    assert_int_equal(virtio_blk_set_rate_limit(f->blk, &cfg), -ENOTSUP);
    fix_free(f);
}

static void test_open_error(void **state)
{
    (void)state;
    Vt vt;
    vt_setup(&vt);
    VirtioBlk *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    char err[256] = "";
    assert_true(virtio_blk_init(b, &(VirtioEnv){ vt.ctx, vt.as, NULL }, "/nonexistent/disk.img",
                                false, 1, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "disk path=/nonexistent/disk.img"));
    free(b);
    vt_free(&vt);
}

/* Anything but a regular file or a block device is refused, in every mode,
 * and a FIFO without blocking (the alarm ends a test that hangs). */
static void test_not_a_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/strata-blk-XXXXXX", fifo[64];
    assert_non_null(mkdtemp(dir));
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const char *paths[] = { dir, fifo, "/dev/null" };
    alarm(20);
    for (unsigned i = 0; i < 3; i++) {
        for (int ro = 0; ro < 2; ro++) {
            Vt vt;
            vt_setup(&vt);
            VirtioBlk *b = calloc(1, sizeof(*b));
            assert_non_null(b);
            char err[256] = "", want[128];
            int r = virtio_blk_init(b, &(VirtioEnv){ vt.ctx, vt.as, NULL }, paths[i], ro, 1, err,
                                    sizeof(err));
            if (r == 0)
                virtio_blk_destroy(b);
            assert_true(r < 0);
            snprintf(want, sizeof(want), "disk path=%s: ", paths[i]);
            assert_non_null(strstr(err, want));
            if (i != 0 || ro) /* a directory opened read-write: EISDIR */
                assert_non_null(strstr(err, "not a regular file or a block device"));
            free(b);
            vt_free(&vt);
        }
    }
    alarm(0);
    unlink(fifo);
    rmdir(dir);
}

static void test_save_load(void **state)
{
    (void)state;
    Fix *f = fix_new(false, false);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 1, 64);
    uint8_t st;
    VtBuf rd = { DATA, 512, true };
    request(f, VIRTIO_BLK_T_IN, 0, &rd, 1, &st);
    uint8_t *buf;
    size_t len;
    assert_int_equal(virtio_mmio_save(&f->blk->t, &buf, &len), 0);
    /* same disk: accepted; a different capacity: refused */
    Fix *g = fix_new(false, false);
    char err[256];
    assert_int_equal(virtio_mmio_load(&g->blk->t, buf, len, err, sizeof(err)), 0);
    assert_int_equal(g->blk->t.r.vq[0].last_avail_idx, 1);
    g->blk->capacity++;
    assert_true(virtio_mmio_load(&g->blk->t, buf, len, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "disk differs"));
    g->blk->capacity--;
    free(buf);
    fix_free(g);
    fix_free(f);
}

/* Multi-queue requests: slot k's header, data sector and status byte live
 * at MQ_SLOT(k), apart from every other slot's. */
#define MQ_SLOT(k) (VT_BUFS + 0x80000 + (uint64_t)(k)*0x1000)

/* Adds to queue q (not kicked) a one-sector read of `sector` (or a write of
 * it, filled with `fill`) in slot k. */
static void mq_add(Vt *vt, unsigned q, unsigned k, bool write, uint64_t sector, uint8_t fill)
{
    uint64_t h = MQ_SLOT(k);
    put_hdr(vt, h, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, sector);
    *(uint8_t *)vt_ptr(vt, h + 0x100) = 0xee;
    if (write)
        memset(vt_ptr(vt, h + 0x200), fill, 512);
    VtBuf b[3] = { { h, 16, false }, { h + 0x200, 512, !write }, { h + 0x100, 1, true } };
    vt_add(vt, q, b, 3);
}

static uint8_t mq_status(Vt *vt, unsigned k)
{
    return *(uint8_t *)vt_ptr(vt, MQ_SLOT(k) + 0x100);
}

static unsigned count_used_q(Vt *vt, unsigned q)
{
    uint32_t id, len;
    unsigned n = 0;
    while (vt_used(vt, q, &id, &len) > 0)
        n++;
    return n;
}

static bool needs_reset(Vt *vt)
{
    return vt_r32(vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET;
}

/* num-queues=4: VIRTIO_BLK_F_MQ and num_queues in the config space, four
 * QueueSel values with a QueueNumMax and none past them; one queue offers
 * no F_MQ (as before the feature); a count out of 1..16 is refused with a
 * message naming the disk. */
static void test_mq_config(void **state)
{
    (void)state;
    Fix *f = fix_new_mq(false, false, 4);
    Vt *vt = &f->vt;
    vt_w32(vt, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    assert_true(vt_r32(vt, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << VIRTIO_BLK_F_MQ));
    assert_int_equal(vt_cfg(vt, VIRTIO_BLK_CONFIG_NUM_QUEUES, 2), 4);
    for (unsigned q = 0; q < 4; q++) {
        vt_w32(vt, VIRTIO_MMIO_QUEUE_SEL, q);
        assert_int_equal(vt_r32(vt, VIRTIO_MMIO_QUEUE_NUM_MAX), VIRTQ_MAX_SIZE);
    }
    uint32_t past[] = { 4, 16, 0xffff, 0xffffffffu };
    for (unsigned i = 0; i < 4; i++) {
        vt_w32(vt, VIRTIO_MMIO_QUEUE_SEL, past[i]);
        assert_int_equal(vt_r32(vt, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
    }
    fix_free(f);

    f = fix_new_mq(false, false, 1);
    vt_w32(&f->vt, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    assert_false(vt_r32(&f->vt, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << VIRTIO_BLK_F_MQ));
    assert_int_equal(vt_cfg(&f->vt, VIRTIO_BLK_CONFIG_NUM_QUEUES, 2), 0);
    fix_free(f);

    f = fix_new_mq(true, false, VIRTIO_BLK_MAX_QUEUES);
    assert_int_equal(vt_cfg(&f->vt, VIRTIO_BLK_CONFIG_NUM_QUEUES, 2), VIRTIO_BLK_MAX_QUEUES);
    fix_free(f);

    unsigned bad[] = { 0, VIRTIO_BLK_MAX_QUEUES + 1, 1000 };
    for (unsigned i = 0; i < 3; i++) {
        Vt v;
        vt_setup(&v);
        VirtioBlk *b = calloc(1, sizeof(*b));
        assert_non_null(b);
        char err[256] = "", want[64];
        assert_int_equal(virtio_blk_init(b, &(VirtioEnv){ v.ctx, v.as, NULL }, "/nonexistent",
                                         false, bad[i], err, sizeof(err)),
                         -EINVAL);
        snprintf(want, sizeof(want), "disk path=/nonexistent: num-queues=%u: expected 1 to 16",
                 bad[i]);
        assert_string_equal(err, want);
        free(b);
        vt_free(&v);
    }
}

/* Requests on the first and the last of four queues both complete, each
 * on its own queue, inline and through the event loop; the disk's counters
 * count them all, the transport counts each queue's kicks. */
static void test_mq_requests(void **state)
{
    (void)state;
    for (int loop = 0; loop < 2; loop++) {
        Fix *f = fix_new_mq(false, loop, 4);
        Vt *vt = &f->vt;
        vt_bringup(vt, ~0ull, 4, 64);
        assert_true(vt->features & (1ull << VIRTIO_BLK_F_MQ));
        mq_add(vt, 0, 0, false, 5, 0);
        mq_add(vt, 3, 1, true, 9, 0x3c);
        mq_add(vt, 3, 2, false, 6, 0);
        vt_kick(vt, 3);
        vt_kick(vt, 0);
        if (f->loop) { /* both eventfds were written before the loop runs */
            assert_int_equal(evloop_run_once(f->loop, 1000), 2);
            assert_int_equal(evloop_run_once(f->loop, 0), 0);
        }
        assert_int_equal(f->blk->t.r.vq[0].used_idx, 1);
        assert_int_equal(f->blk->t.r.vq[3].used_idx, 2);
        assert_int_equal(f->blk->t.r.vq[1].used_idx + f->blk->t.r.vq[2].used_idx, 0);
        for (unsigned k = 0; k < 3; k++)
            assert_int_equal(mq_status(vt, k), VIRTIO_BLK_S_OK);
        assert_int_equal(*(uint8_t *)vt_ptr(vt, MQ_SLOT(0) + 0x200 + 7), pattern(5 * 512 + 7));
        assert_int_equal(*(uint8_t *)vt_ptr(vt, MQ_SLOT(2) + 0x200 + 7), pattern(6 * 512 + 7));
        uint8_t back[512];
        assert_int_equal(pread(f->fd, back, 512, 9 * 512), 512);
        assert_int_equal(back[0], 0x3c);
        assert_int_equal(back[511], 0x3c);
        VirtioBlkStats bs;
        virtio_blk_get_stats(f->blk, &bs);
        assert_int_equal(bs.rd_operations, 2);
        assert_int_equal(bs.wr_operations, 1);
        assert_int_equal(bs.rd_bytes + bs.wr_bytes, 3 * 512);
        assert_int_equal(virtio_mmio_queue_stats(&f->blk->t, 0).kicks, 1);
        assert_int_equal(virtio_mmio_queue_stats(&f->blk->t, 3).kicks, 1);
        assert_int_equal(virtio_mmio_queue_stats(&f->blk->t, 1).kicks, 0);
        assert_int_equal(virtio_mmio_queue_stats(&f->blk->t, 99).kicks, 0);
        assert_false(needs_reset(vt));
        fix_free(f);
    }
}

/* A driver that sets up only some queues, selects and programs queues
 * that do not exist, and notifies indexes out of range: nothing breaks,
 * nothing is processed where no queue is, and the queues it did set up
 * work. */
static void test_mq_hostile(void **state)
{
    (void)state;
    for (int loop = 0; loop < 2; loop++) {
        Fix *f = fix_new_mq(false, loop, 4);
        Vt *vt = &f->vt;
        assert_true(vt_negotiate(vt, ~0ull) & VIRTIO_STATUS_FEATURES_OK);
        assert_int_equal(vt_queue(vt, 2, 32), 1); /* only queue 2 */
        /* a queue past the device's: every register ignored, reads 0 */
        vt_w32(vt, VIRTIO_MMIO_QUEUE_SEL, 4);
        vt_w32(vt, VIRTIO_MMIO_QUEUE_NUM, 32);
        vt_w32(vt, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x20000);
        vt_w32(vt, VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x21000);
        vt_w32(vt, VIRTIO_MMIO_QUEUE_USED_LOW, 0x22000);
        vt_w32(vt, VIRTIO_MMIO_QUEUE_READY, 1);
        assert_int_equal(vt_r32(vt, VIRTIO_MMIO_QUEUE_READY), 0);
        vt_driver_ok(vt);
        assert_true(vt_r32(vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DRIVER_OK);
        /* queue 0: rings the driver never told the device of, a request in
         * them; its notification finds the queue not ready */
        vt->q[0] = (VtQueue){
            .num = 32, .desc = VT_RINGS, .avail = VT_RINGS + 0x1000, .used = VT_RINGS + 0x2000
        };
        memset(vt_ptr(vt, VT_RINGS), 0, 0x3000);
        mq_add(vt, 0, 0, false, 1, 0);
        mq_add(vt, 2, 1, false, 2, 0);
        vt_kick(vt, 0);
        uint32_t past[] = { 4, 15, 16, 17, 0xffff, 0x10002, 0xffffffffu };
        for (unsigned i = 0; i < sizeof(past) / sizeof(past[0]); i++)
            vt_kick(vt, past[i]);
        vt_kick(vt, 2);
        if (f->loop)
            evloop_run_once(f->loop, 1000);
        if (f->loop)
            evloop_run_once(f->loop, 0);
        assert_int_equal(count_used_q(vt, 2), 1);
        assert_int_equal(mq_status(vt, 1), VIRTIO_BLK_S_OK);
        assert_int_equal(f->blk->t.r.vq[0].last_avail_idx, 0); /* never taken */
        assert_int_equal(mq_status(vt, 0), 0xee);
        assert_false(needs_reset(vt));
        VirtioBlkStats bs;
        virtio_blk_get_stats(f->blk, &bs);
        assert_int_equal(bs.rd_operations, 1);
        fix_free(f);
    }
}

/* Four queues in different states (two used, one set up and idle, one
 * not set up) saved and loaded into another four-queue disk: every queue
 * comes back, and both used queues go on where they were.  A disk with
 * another queue count refuses the state, naming both counts, and stays as
 * it was; so does a four-queue disk given a one-queue state. */
static void test_mq_save_load(void **state)
{
    (void)state;
    Fix *f = fix_new_mq(false, false, 4);
    Vt *vt = &f->vt;
    assert_true(vt_negotiate(vt, ~0ull) & VIRTIO_STATUS_FEATURES_OK);
    for (unsigned q = 0; q < 3; q++)
        assert_int_equal(vt_queue(vt, q, 16 << q), 1);
    vt_driver_ok(vt);
    mq_add(vt, 0, 0, false, 1, 0);
    vt_kick(vt, 0);
    for (unsigned k = 1; k < 4; k++)
        mq_add(vt, 2, k, false, k, 0);
    vt_kick(vt, 2);
    assert_int_equal(count_used_q(vt, 0), 1);
    assert_int_equal(count_used_q(vt, 2), 3);
    uint8_t *buf;
    size_t len;
    assert_int_equal(virtio_mmio_save(&f->blk->t, &buf, &len), 0);

    Fix *g = fix_new_mq(false, false, 4);
    char err[256];
    assert_int_equal(virtio_mmio_load(&g->blk->t, buf, len, err, sizeof(err)), 0);
    for (unsigned q = 0; q < 4; q++) {
        const VirtQueue *a = &f->blk->t.r.vq[q], *b = &g->blk->t.r.vq[q];
        assert_int_equal(b->ready, q < 3);
        assert_int_equal(b->num, a->num);
        assert_int_equal(b->desc, a->desc);
        assert_int_equal(b->avail, a->avail);
        assert_int_equal(b->used, a->used);
        assert_int_equal(b->last_avail_idx, a->last_avail_idx);
        assert_int_equal(b->used_idx, a->used_idx);
    }
    assert_int_equal(g->blk->t.r.vq[2].last_avail_idx, 3);
    assert_int_equal(g->blk->t.r.status, f->blk->t.r.status);
    /* g's guest memory is its own: give it f's rings and driver view */
    memcpy(g->vt.ram_p, f->vt.ram_p, VT_RAM_SIZE);
    memcpy(g->vt.q, f->vt.q, sizeof(g->vt.q));
    mq_add(&g->vt, 2, 4, true, 20, 0x5a);
    mq_add(&g->vt, 0, 5, false, 20, 0);
    vt_kick(&g->vt, 2);
    vt_kick(&g->vt, 0);
    assert_int_equal(count_used_q(&g->vt, 2), 1);
    assert_int_equal(count_used_q(&g->vt, 0), 1);
    assert_int_equal(g->blk->t.r.vq[2].used_idx, 4);
    assert_int_equal(mq_status(&g->vt, 5), VIRTIO_BLK_S_OK);
    assert_int_equal(*(uint8_t *)vt_ptr(&g->vt, MQ_SLOT(5) + 0x200), 0x5a);

    /* another queue count: refused, unchanged */
    unsigned other[] = { 1, 2, VIRTIO_BLK_MAX_QUEUES };
    for (unsigned i = 0; i < 3; i++) {
        Fix *h = fix_new_mq(false, false, other[i]);
        vt_bringup(&h->vt, ~0ull, 1, 8);
        VirtioMmioRegs before = h->blk->t.r;
        assert_int_equal(virtio_mmio_load(&h->blk->t, buf, len, err, sizeof(err)), -EINVAL);
        char want[128];
        snprintf(want, sizeof(want),
                 "virtio-blk state: 4 queues, the device here has %u (the queue count must match)",
                 other[i]);
        assert_string_equal(err, want);
        assert_memory_equal(&h->blk->t.r, &before, sizeof(before));
        fix_free(h);
    }
    free(buf);
    Fix *one = fix_new_mq(false, false, 1);
    vt_bringup(&one->vt, ~0ull, 1, 8);
    assert_int_equal(virtio_mmio_save(&one->blk->t, &buf, &len), 0);
    VirtioMmioRegs before = g->blk->t.r;
    assert_int_equal(virtio_mmio_load(&g->blk->t, buf, len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "1 queues, the device here has 4"));
    assert_memory_equal(&g->blk->t.r, &before, sizeof(before));
    free(buf);
    fix_free(one);
    fix_free(g);
    fix_free(f);
}

/* The rate limit is the disk's: requests on two queues draw on one bucket,
 * a kick on the other queue while waiting changes nothing, and the end of
 * the wait serves every queue, starting from a different one each time.
 * (At 1 request/s the bucket gains nothing measurable meanwhile; each
 * change of the limit fills it and ends the wait at once.) */
static void test_mq_rate_limit(void **state)
{
    (void)state;
    Fix *f = fix_new_mq(false, true, 2);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 2, 64);
    RateLimitConfig cfg = { .ops = 1, .ops_burst = 3 };
    assert_int_equal(virtio_blk_set_rate_limit(f->blk, &cfg), 0);
    for (unsigned k = 0; k < 6; k++)
        mq_add(vt, 0, k, false, k, 0);
    for (unsigned k = 6; k < 12; k++)
        mq_add(vt, 1, k, false, k, 0);
    vt_kick(vt, 0);
    assert_true(evloop_run_once(f->loop, 1000) >= 1);
    assert_int_equal(count_used_q(vt, 0), 3); /* the burst */
    vt_kick(vt, 1);
    assert_true(evloop_run_once(f->loop, 1000) >= 1); /* its kick: waits too */
    assert_int_equal(count_used_q(vt, 1), 0);
    VirtioBlkStats st;
    virtio_blk_get_stats(f->blk, &st);
    assert_int_equal(st.throttled, 1);
    assert_int_equal(st.rd_operations, 3);
    /* a fresh bucket of 2: the wait ends at queue 0 (first look) */
    RateLimitConfig two = { .ops = 1, .ops_burst = 2 };
    assert_int_equal(virtio_blk_set_rate_limit(f->blk, &two), 0);
    assert_true(evloop_run_once(f->loop, 1000) >= 1);
    assert_int_equal(count_used_q(vt, 0), 2);
    assert_int_equal(count_used_q(vt, 1), 0);
    /* again: now queue 1 is looked at first */
    assert_int_equal(virtio_blk_set_rate_limit(f->blk, &two), 0);
    assert_true(evloop_run_once(f->loop, 1000) >= 1);
    assert_int_equal(count_used_q(vt, 1), 2);
    assert_int_equal(count_used_q(vt, 0), 0);
    /* lifted: the rest of both queues at once, with no kick */
    RateLimitConfig none = { 0 };
    assert_int_equal(virtio_blk_set_rate_limit(f->blk, &none), 0);
    assert_true(evloop_run_once(f->loop, 1000) >= 1);
    assert_int_equal(count_used_q(vt, 0), 1);
    assert_int_equal(count_used_q(vt, 1), 4);
    for (unsigned k = 0; k < 12; k++)
        assert_int_equal(mq_status(vt, k), VIRTIO_BLK_S_OK);
    virtio_blk_get_stats(f->blk, &st);
    assert_int_equal(st.rd_operations, 12);
    assert_int_equal(st.throttled, 3);
    fix_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_read_write_flush_id),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_readonly),
        cmocka_unit_test(test_stats_failed_io),
        cmocka_unit_test(test_batch_and_loop),
        cmocka_unit_test(test_open_error),
        cmocka_unit_test(test_not_a_file),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_rate_limit_large_request),
        cmocka_unit_test(test_rate_limit_needs_loop),
        cmocka_unit_test(test_mq_config),
        cmocka_unit_test(test_mq_requests),
        cmocka_unit_test(test_mq_hostile),
        cmocka_unit_test(test_mq_save_load),
        cmocka_unit_test(test_mq_rate_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
