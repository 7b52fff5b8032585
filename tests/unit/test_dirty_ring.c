/* SPDX-License-Identifier: MIT */
/*
 * kvm/'s dirty-ring harvest index handling, on a fake ring in memory (no
 * /dev/kvm): which entries are taken, in what order, how the fetch index
 * wraps, and that every taken entry is handed back (RESET) while the
 * first unpublished one stops the harvest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kvm/kvm_internal.h"

#define N 8u

static struct kvm_dirty_gfn ring[N];

static void publish(uint32_t idx, uint32_t slot, uint64_t offset)
{
    struct kvm_dirty_gfn *g = &ring[idx & (N - 1)];
    g->slot = slot;
    g->offset = offset;
    __atomic_store_n(&g->flags, (uint32_t)KVM_DIRTY_GFN_F_DIRTY, __ATOMIC_RELEASE);
}

static int setup(void **state)
{
    (void)state;
    memset(ring, 0, sizeof(ring));
    return 0;
}

static void empty_ring(void **state)
{
    (void)state;
    KvmDirtyEntry out[N];
    uint32_t fetch = 5;
    assert_int_equal(kvm_dirty_ring_collect(ring, N, &fetch, out, N), 0);
    assert_int_equal(fetch, 5);
}

static void in_order_and_handed_back(void **state)
{
    (void)state;
    KvmDirtyEntry out[N];
    uint32_t fetch = 0;
    publish(0, 1, 10);
    publish(1, 2, 20);
    publish(2, 1 | (1u << 16), 30);
    publish(4, 3, 40); /* after a hole: not reached */
    assert_int_equal(kvm_dirty_ring_collect(ring, N, &fetch, out, N), 3);
    assert_int_equal(fetch, 3);
    assert_int_equal(out[0].slot, 1);
    assert_int_equal(out[0].offset, 10);
    assert_int_equal(out[1].slot, 2);
    assert_int_equal(out[1].offset, 20);
    assert_int_equal(out[2].slot, 1 | (1u << 16));
    assert_int_equal(out[2].offset, 30);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(ring[i].flags, KVM_DIRTY_GFN_F_RESET);
    assert_int_equal(ring[4].flags, KVM_DIRTY_GFN_F_DIRTY);
    /* handed back but not yet reset by KVM: never taken twice */
    assert_int_equal(kvm_dirty_ring_collect(ring, N, &fetch, out, N), 0);
    assert_int_equal(fetch, 3);
    /* the hole filled: the harvest goes on from there */
    publish(3, 5, 50);
    assert_int_equal(kvm_dirty_ring_collect(ring, N, &fetch, out, N), 2);
    assert_int_equal(out[0].offset, 50);
    assert_int_equal(out[1].offset, 40);
    assert_int_equal(fetch, 5);
}

static void wraps_around(void **state)
{
    (void)state;
    KvmDirtyEntry out[N];
    uint32_t fetch = 6;
    for (uint32_t i = 6; i < 10; i++) /* 6, 7, then 0, 1 of the array */
        publish(i, 0, i);
    assert_int_equal(kvm_dirty_ring_collect(ring, N, &fetch, out, N), 4);
    assert_int_equal(fetch, 10);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(out[i].offset, 6 + i);
    assert_int_equal(ring[0].flags, KVM_DIRTY_GFN_F_RESET);
    assert_int_equal(ring[1].flags, KVM_DIRTY_GFN_F_RESET);
    assert_int_equal(ring[2].flags, 0);
}

static void index_wraps_at_2_32(void **state)
{
    (void)state;
    KvmDirtyEntry out[N];
    uint32_t fetch = UINT32_MAX - 1; /* array index 6 */
    for (uint32_t i = 0; i < 4; i++)
        publish(UINT32_MAX - 1 + i, 0, 100 + i);
    assert_int_equal(kvm_dirty_ring_collect(ring, N, &fetch, out, N), 4);
    assert_int_equal(fetch, 2);
    assert_int_equal(out[3].offset, 103);
}

static void full_ring_and_max(void **state)
{
    (void)state;
    KvmDirtyEntry out[N];
    uint32_t fetch = 3;
    for (uint32_t i = 3; i < 3 + N; i++) /* every entry published */
        publish(i, 0, i);
    assert_int_equal(kvm_dirty_ring_collect(ring, N, &fetch, out, 5), 5); /* room for 5 */
    assert_int_equal(fetch, 8);
    assert_int_equal(ring[7].flags, KVM_DIRTY_GFN_F_RESET);
    assert_int_equal(ring[0].flags, KVM_DIRTY_GFN_F_DIRTY); /* left for the next one */
    assert_int_equal(kvm_dirty_ring_collect(ring, N, &fetch, out, N), 3);
    assert_int_equal(fetch, 3 + N);
    assert_int_equal(out[2].offset, 10);
    /* a whole lap: nothing is published until KVM writes again */
    assert_int_equal(kvm_dirty_ring_collect(ring, N, &fetch, out, N), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(empty_ring, setup),
        cmocka_unit_test_setup(in_order_and_handed_back, setup),
        cmocka_unit_test_setup(wraps_around, setup),
        cmocka_unit_test_setup(index_wraps_at_2_32, setup),
        cmocka_unit_test_setup(full_ring_and_max, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
