/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon over fake guest memory (a real anonymous RAM mapping from
 * memory/, no /dev/kvm): config space target/actual, inflate (the host
 * pages really go: mincore says they are no longer resident and the guest
 * reads zeros), PFNs outside RAM, hostile buffers, deflate, reset, the
 * stats queue, free page reporting and the event-loop path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/evloop.h"
#include "devices/virtio-balloon.h"
#include "tests/virtio/vtest.h"

#define PFNS VT_BUFS              /* PFN arrays */
#define STATS (VT_BUFS + 0x80000) /* the stats buffer */
#define TARGET (2ull << 20)       /* pages inflated: [2 MiB, 3 MiB) */
#define TARGET_PAGES 256u
#define F_STATS (1ull << VIRTIO_BALLOON_F_STATS_VQ)
#define F_REPORTING (1ull << VIRTIO_BALLOON_F_REPORTING)
#define F_OOM (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM)

typedef struct Fix {
    Vt vt;
    VirtioBalloon *b;
    Evloop *loop;
} Fix;

static Fix *fix_new(const VirtioBalloonOptions *opt, bool with_loop)
{
    Fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    vt_setup(&f->vt);
    if (with_loop)
        assert_non_null(f->loop = evloop_new());
    f->b = calloc(1, sizeof(*f->b));
    assert_non_null(f->b);
    assert_int_equal(virtio_balloon_init(f->b, &(VirtioEnv){ f->vt.ctx, f->vt.as, f->loop }, opt),
                     0);
    virtio_mmio_connect_irq(&f->b->t, &f->vt.irq, VT_BASE);
    vt_map(&f->vt, virtio_mmio_region(&f->b->t));
    return f;
}

static void fix_free(Fix *f)
{
    vt_teardown(&f->vt);
    virtio_balloon_destroy(f->b);
    free(f->b);
    if (f->loop)
        evloop_free(f->loop);
    vt_free(&f->vt);
    free(f);
}

/* Resident 4 KiB pages of guest [gpa, gpa+len). */
static unsigned resident(Fix *f, uint64_t gpa, uint64_t len)
{
    unsigned char vec[1024];
    assert_true(len / 4096 <= sizeof(vec));
    assert_int_equal(mincore(vt_ptr(&f->vt, gpa), len, vec), 0);
    unsigned n = 0;
    for (uint64_t i = 0; i < len / 4096; i++)
        n += vec[i] & 1;
    return n;
}

/* Queues n PFNs (from pfns) as one buffer on queue q and kicks; returns
 * whether the device used it. */
static bool send_pfns(Fix *f, unsigned q, const uint32_t *pfns, unsigned n)
{
    memcpy(vt_ptr(&f->vt, PFNS), pfns, 4ull * n);
    vt_add(&f->vt, q, &(VtBuf){ PFNS, 4 * n, false }, 1);
    vt_kick(&f->vt, q);
    if (f->loop)
        evloop_run_once(f->loop, 1000);
    uint32_t id, len;
    return vt_used(&f->vt, q, &id, &len) == 1;
}

static VirtioBalloonInfo info(Fix *f)
{
    VirtioBalloonInfo i;
    virtio_balloon_info(f->b, &i);
    return i;
}

static bool broken(Fix *f)
{
    return vt_r32(&f->vt, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET;
}

static void test_config(void **state)
{
    (void)state;
    Fix *f = fix_new(NULL, false);
    Vt *vt = &f->vt;
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BALLOON);
    vt_w32(vt, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    /* nothing optional of its own; the ring features every device offers */
    assert_int_equal(vt_r32(vt, VIRTIO_MMIO_DEVICE_FEATURES),
                     (uint32_t)(VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX));
    assert_int_equal(vt_cfg(vt, 0, 4), 0);
    assert_int_equal(vt_cfg(vt, 4, 4), 0);
    vt_bringup(vt, ~0ull, 2, 16);
    uint32_t gen = vt_r32(vt, VIRTIO_MMIO_CONFIG_GENERATION);
    int raises = vt->irq_state.raises;
    virtio_balloon_set_target(f->b, 1234);
    assert_int_equal(vt_cfg(vt, 0, 4), 1234);
    assert_int_equal(vt_cfg(vt, 1, 1), 1234 >> 8);
    assert_int_not_equal(vt_r32(vt, VIRTIO_MMIO_CONFIG_GENERATION), gen);
    assert_true(vt_r32(vt, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
    assert_true(vt->irq_state.raises > raises);
    /* the guest cannot move the target; it writes actual, byte or word */
    address_space_write(vt->as, VT_BASE + VIRTIO_MMIO_CONFIG, &(uint32_t){ 7 }, 4);
    assert_int_equal(vt_cfg(vt, 0, 4), 1234);
    uint64_t n;
    while (read(virtio_balloon_change_fd(f->b), &n, sizeof(n)) > 0) /* drain */
        ;
    address_space_write(vt->as, VT_BASE + VIRTIO_MMIO_CONFIG + 4, &(uint32_t){ 1000 }, 4);
    assert_int_equal(vt_cfg(vt, 4, 4), 1000);
    assert_int_equal(info(f).actual, 1000);
    assert_int_equal(read(virtio_balloon_change_fd(f->b), &n, sizeof(n)), (ssize_t)sizeof(n));
    address_space_write(vt->as, VT_BASE + VIRTIO_MMIO_CONFIG + 5, &(uint8_t){ 0 }, 1);
    assert_int_equal(info(f).actual, 1000 & 0xff);
    /* the same value again: no event */
    address_space_write(vt->as, VT_BASE + VIRTIO_MMIO_CONFIG + 4, &(uint32_t){ 1000 & 0xff }, 4);
    assert_int_equal(read(virtio_balloon_change_fd(f->b), &n, sizeof(n)), (ssize_t)sizeof(n));
    assert_int_equal(read(virtio_balloon_change_fd(f->b), &n, sizeof(n)), -1);
    fix_free(f);
}

static void test_features(void **state)
{
    (void)state;
    VirtioBalloonOptions o = { .deflate_on_oom = true,
                               .free_page_reporting = true,
                               .stats_interval_s = 5 };
    Fix *f = fix_new(&o, false);
    vt_w32(&f->vt, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    uint32_t feat = vt_r32(&f->vt, VIRTIO_MMIO_DEVICE_FEATURES);
    assert_int_equal(feat, F_STATS | F_REPORTING | F_OOM |
                               (uint32_t)(VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX));
    assert_true(vt_negotiate(&f->vt, ~0ull) & VIRTIO_STATUS_FEATURES_OK);
    for (unsigned q = 0; q < 4; q++)
        assert_int_equal(vt_queue(&f->vt, q, 16), 1);
    vt_w32(&f->vt, VIRTIO_MMIO_QUEUE_SEL, 4); /* four queues, no more */
    assert_int_equal(vt_r32(&f->vt, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
    fix_free(f);
}

static void test_inflate_deflate(void **state)
{
    (void)state;
    Fix *f = fix_new(NULL, false);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 2, 16);
    memset(vt_ptr(vt, TARGET), 0x5a, TARGET_PAGES * 4096ull);
    assert_int_equal(resident(f, TARGET, TARGET_PAGES * 4096ull), TARGET_PAGES);
    uint32_t pfns[TARGET_PAGES];
    /* in two buffers, the second in reverse order (not one host run) */
    for (unsigned i = 0; i < TARGET_PAGES; i++)
        pfns[i] = (uint32_t)(TARGET / 4096 + (i < 128 ? i : 383 - i));
    assert_true(send_pfns(f, 0, pfns, 128));
    assert_true(send_pfns(f, 0, pfns + 128, 128));
    assert_false(broken(f));
    assert_int_equal(info(f).inflated_pages, TARGET_PAGES);
    assert_int_equal(resident(f, TARGET, TARGET_PAGES * 4096ull), 0);
    /* the guest touching a page again gets a zeroed one */
    assert_int_equal(*(uint8_t *)vt_ptr(vt, TARGET + 4096 * 7 + 3), 0);
    /* pages around were left alone */
    *(uint8_t *)vt_ptr(vt, TARGET - 4096) = 1;
    assert_int_equal(resident(f, TARGET - 4096, 4096), 1);
    /* deflate: bookkeeping only */
    assert_true(send_pfns(f, 1, pfns, 100));
    assert_int_equal(info(f).inflated_pages, TARGET_PAGES - 100);
    assert_true(send_pfns(f, 1, pfns, TARGET_PAGES)); /* more than held: floor at 0 */
    assert_int_equal(info(f).inflated_pages, 0);
    assert_false(broken(f));
    assert_true(vt_r32(vt, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_USED);
    fix_free(f);
}

static void test_pfns_outside_ram(void **state)
{
    (void)state;
    Fix *f = fix_new(NULL, false);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 2, 16);
    *(uint8_t *)vt_ptr(vt, TARGET) = 9;
    uint32_t pfns[] = {
        VT_RAM_SIZE / 4096,         /* just past RAM */
        (uint32_t)(VT_BASE / 4096), /* the device's own registers */
        0xffffffffu,                /* the last PFN there is */
        (uint32_t)(TARGET / 4096),  /* a good one */
        (uint32_t)(1ull << 20),     /* 4 GiB */
    };
    assert_true(send_pfns(f, 0, pfns, 5));
    assert_false(broken(f));
    VirtioBalloonInfo i = info(f);
    assert_int_equal(i.inflated_pages, 1);
    assert_int_equal(i.bad_pfns, 4);
    assert_int_equal(*(uint8_t *)vt_ptr(vt, TARGET), 0);
    /* the device still works */
    assert_true(send_pfns(f, 1, pfns, 5));
    assert_int_equal(info(f).bad_pfns, 8);
    assert_int_equal(info(f).inflated_pages, 0);
    fix_free(f);
}

static void test_hostile_buffers(void **state)
{
    (void)state;
    Fix *f = fix_new(NULL, false);
    Vt *vt = &f->vt;
    /* a length that is no whole number of PFNs */
    vt_bringup(vt, ~0ull, 2, 16);
    uint32_t pfn = TARGET / 4096;
    memcpy(vt_ptr(vt, PFNS), &pfn, 4);
    vt_add(vt, 0, &(VtBuf){ PFNS, 6, false }, 1);
    vt_kick(vt, 0);
    assert_true(broken(f));
    /* a device-writable inflate buffer */
    vt_bringup(vt, ~0ull, 2, 16);
    assert_false(broken(f));
    vt_add(vt, 0, &(VtBuf){ PFNS, 4, true }, 1);
    vt_kick(vt, 0);
    assert_true(broken(f));
    /* a huge count: one past the limit */
    vt_bringup(vt, ~0ull, 2, 16);
    uint32_t n = VIRTIO_BALLOON_MAX_PFNS + 1;
    memset(vt_ptr(vt, PFNS), 0, 4ull * n);
    vt_add(vt, 1, &(VtBuf){ PFNS, 4 * n, false }, 1);
    vt_kick(vt, 1);
    assert_true(broken(f));
    /* the limit itself is fine (PFN 0, 65536 times, deflated) */
    vt_bringup(vt, ~0ull, 2, 16);
    vt_add(vt, 1, &(VtBuf){ PFNS, 4 * (n - 1), false }, 1);
    vt_kick(vt, 1);
    assert_false(broken(f));
    /* a notify on a queue the features do not give a role */
    vt_kick(vt, 3);
    assert_false(broken(f));
    fix_free(f);
}

static void test_reset(void **state)
{
    (void)state;
    Fix *f = fix_new(NULL, false);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 2, 16);
    virtio_balloon_set_target(f->b, 50);
    uint32_t pfns[3] = { 600, 601, 602 };
    assert_true(send_pfns(f, 0, pfns, 3));
    address_space_write(vt->as, VT_BASE + VIRTIO_MMIO_CONFIG + 4, &(uint32_t){ 3 }, 4);
    assert_int_equal(info(f).actual, 3);
    vt_w32(vt, VIRTIO_MMIO_STATUS, 0);
    VirtioBalloonInfo i = info(f);
    assert_int_equal(i.actual, 0);
    assert_int_equal(i.inflated_pages, 0);
    assert_int_equal(i.num_pages, 50); /* the host's target stays */
    assert_int_equal(vt_cfg(vt, 0, 4), 50);
    assert_int_equal(vt_cfg(vt, 4, 4), 0);
    fix_free(f);
}

static void put_stat(uint8_t *p, uint16_t tag, uint64_t v)
{
    memcpy(p, &tag, 2);
    memcpy(p + 2, &v, 8);
}

static void test_stats(void **state)
{
    (void)state;
    VirtioBalloonOptions o = { .stats_interval_s = 1 };
    Fix *f = fix_new(&o, false);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 3, 16);
    assert_false(virtio_balloon_request_stats(f->b)); /* nothing held yet */
    uint8_t *p = vt_ptr(vt, STATS);
    put_stat(p, 4, 111 << 20);      /* free memory */
    put_stat(p + 10, 5, 256 << 20); /* total */
    put_stat(p + 20, 99, 7);        /* unknown: ignored */
    vt_add(vt, 2, &(VtBuf){ STATS, 30, false }, 1);
    vt_kick(vt, 2);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 2, &id, &len), 0); /* held */
    VirtioBalloonInfo i = info(f);
    assert_int_equal(i.stats_valid, (1u << 4) | (1u << 5));
    assert_int_equal(i.stats[4], 111ull << 20);
    assert_int_equal(i.stats[5], 256ull << 20);
    assert_true(i.stats_updated > 0);
    assert_string_equal(virtio_balloon_stat_name(4), "stat-free-memory");
    assert_true(virtio_balloon_request_stats(f->b));
    assert_int_equal(vt_used(vt, 2, &id, &len), 1);
    assert_int_equal(len, 0);
    assert_false(virtio_balloon_request_stats(f->b));
    /* a device-writable stats buffer breaks it */
    vt_add(vt, 2, &(VtBuf){ STATS, 30, true }, 1);
    vt_kick(vt, 2);
    assert_true(broken(f));
    fix_free(f);
}

/* With the event loop: the stats timer hands the buffer back by itself. */
static void test_stats_timer(void **state)
{
    (void)state;
    VirtioBalloonOptions o = { .stats_interval_s = 1 };
    Fix *f = fix_new(&o, true);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 3, 16);
    put_stat(vt_ptr(vt, STATS), 4, 42);
    vt_add(vt, 2, &(VtBuf){ STATS, 10, false }, 1);
    vt_kick(vt, 2);
    evloop_run_once(f->loop, 1000); /* the notify */
    assert_int_equal(info(f).stats[4], 42);
    uint32_t id, len;
    for (int i = 0; i < 30 && !vt_used(vt, 2, &id, &len); i++)
        evloop_run_once(f->loop, 200);
    assert_int_equal(id, 0);
    fix_free(f);
}

static void test_reporting(void **state)
{
    (void)state;
    VirtioBalloonOptions o = { .free_page_reporting = true, .stats_interval_s = 1 };
    Fix *f = fix_new(&o, false);
    Vt *vt = &f->vt;
    /* stats not negotiated: reporting is queue 2 */
    vt_bringup(vt, F_REPORTING, 3, 16);
    memset(vt_ptr(vt, TARGET), 0x33, 64 * 4096);
    /* 64 pages, and a ragged piece whose two inner pages only go */
    VtBuf b[2] = { { TARGET, 64 * 4096, true }, { TARGET + 0x80000 - 100, 8192 + 200, true } };
    memset(vt_ptr(vt, TARGET + 0x80000 - 4096), 0x44, 4 * 4096);
    vt_add(vt, 2, b, 2);
    vt_kick(vt, 2);
    uint32_t id, len;
    assert_int_equal(vt_used(vt, 2, &id, &len), 1);
    assert_false(broken(f));
    assert_int_equal(resident(f, TARGET, 64 * 4096), 0);
    assert_int_equal(*(uint8_t *)vt_ptr(vt, TARGET + 0x80000 - 1), 0x44);
    assert_int_equal(*(uint8_t *)vt_ptr(vt, TARGET + 0x80000), 0);
    assert_int_equal(*(uint8_t *)vt_ptr(vt, TARGET + 0x80000 + 4096), 0);
    assert_int_equal(*(uint8_t *)vt_ptr(vt, TARGET + 0x80000 + 8192), 0x44);
    assert_int_equal(info(f).reported_bytes, 66 * 4096);
    assert_int_equal(info(f).inflated_pages, 0); /* reported pages stay the guest's */
    /* a device-readable report breaks it */
    vt_add(vt, 2, &(VtBuf){ TARGET, 4096, false }, 1);
    vt_kick(vt, 2);
    assert_true(broken(f));
    fix_free(f);
}

static void test_save_load(void **state)
{
    (void)state;
    VirtioBalloonOptions o = { .stats_interval_s = 1 };
    Fix *f = fix_new(&o, false);
    Vt *vt = &f->vt;
    vt_bringup(vt, ~0ull, 3, 16);
    virtio_balloon_set_target(f->b, 77);
    uint32_t pfns[2] = { 600, 601 };
    assert_true(send_pfns(f, 0, pfns, 2));
    address_space_write(vt->as, VT_BASE + VIRTIO_MMIO_CONFIG + 4, &(uint32_t){ 2 }, 4);
    put_stat(vt_ptr(vt, STATS), 7, 1234);
    vt_add(vt, 2, &(VtBuf){ STATS, 10, false }, 1);
    vt_kick(vt, 2);
    uint8_t *buf;
    size_t len;
    assert_int_equal(virtio_balloon_device_ops.save(f->b, &buf, &len), 0);
    Fix *g = fix_new(&o, false);
    char err[256];
    assert_int_equal(virtio_balloon_device_ops.load(g->b, buf, len, err, sizeof(err)), 0);
    VirtioBalloonInfo i = info(g);
    assert_int_equal(i.num_pages, 77);
    assert_int_equal(i.actual, 2);
    assert_int_equal(i.inflated_pages, 2);
    assert_int_equal(i.stats[7], 1234);
    assert_int_equal(vt_cfg(&g->vt, 0, 4), 77);
    assert_int_equal(vt_cfg(&g->vt, 4, 4), 2);
    /* the held stats buffer goes back from the new device (its rings are
     * the same guest addresses in g's own memory) */
    assert_true(virtio_balloon_request_stats(g->b));
    /* a device without the stats queue refuses the state */
    Fix *h = fix_new(NULL, false);
    assert_true(virtio_balloon_device_ops.load(h->b, buf, len, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "virtio-balloon"));
    free(buf);
    fix_free(h);
    fix_free(g);
    fix_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),          cmocka_unit_test(test_features),
        cmocka_unit_test(test_inflate_deflate), cmocka_unit_test(test_pfns_outside_ram),
        cmocka_unit_test(test_hostile_buffers), cmocka_unit_test(test_reset),
        cmocka_unit_test(test_stats),           cmocka_unit_test(test_stats_timer),
        cmocka_unit_test(test_reporting),       cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
