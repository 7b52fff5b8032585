/* SPDX-License-Identifier: MIT */
/*
 * A transaction of several changes (three regions added, one moved, one
 * added and removed again) issues its slot ioctls as one batch at the
 * outermost commit, and no more than the net change needs; the guest, at a
 * SYNC handshake, sees the whole new layout at once.  The same changes made
 * one by one, outside a transaction, cost more ioctls.
 */
#define R_SIZE 0x00100000ull
#define MOVE_FROM 0x60000000ull
#define MOVE_TO 0x61000000ull
#define NEW_BASE(i) (0x62000000ull + (uint64_t)(i)*0x00400000ull)
#define TEMP_BASE 0x63000000ull

#ifdef STRATA_GUEST
#include "guest.h"

int guest_main(void)
{
    mmio_write64(MOVE_FROM + 0x10, 0x5eed5eed5eedull);
    GUEST_ASSERT(guest_sync(1) == 0); /* host: one transaction */
    GUEST_ASSERT(mmio_read64(MOVE_TO + 0x10) == 0x5eed5eed5eedull);
    GUEST_ASSERT(mmio_read32(MOVE_FROM + 0x10) == 0xffffffffu); /* unassigned now */
    for (int i = 0; i < 3; i++) {
        mmio_write32(NEW_BASE(i) + R_SIZE - 4, 0x4e570000u + (uint32_t)i);
        GUEST_ASSERT(mmio_read32(NEW_BASE(i) + R_SIZE - 4) == 0x4e570000u + (uint32_t)i);
    }
    GUEST_ASSERT(mmio_read32(TEMP_BASE) == 0xffffffffu);
    GUEST_ASSERT(guest_sync(2) == 0); /* host: the same, piecemeal */
    GUEST_ASSERT(mmio_read64(MOVE_FROM + 0x10) == 0x5eed5eed5eedull);
    return 0;
}

#else
#include "tests/guests/kit.h"

struct state {
    MemoryRegion moved, fresh[3], temp;
    uint64_t batch_ioctls, piecemeal_ioctls;
};

static uint64_t ioctls(Kit *k)
{
    return kvm_vm_slot_ioctl_count(kit_vm(k));
}

/* The changes: move `moved` to `to`, add/remove the fresh ones, add+del temp. */
static void changes(Kit *k, struct state *st, uint64_t to, bool add, bool in_txn)
{
    uint64_t before = ioctls(k);

    TEST_ASSERT(memory_region_set_address(&st->moved, to) == 0, "move");
    for (int i = 0; i < 3; i++) {
        if (add)
            TEST_ASSERT(memory_region_add_subregion(kit_sysmem(k), NEW_BASE(i), &st->fresh[i]) == 0,
                        "add %d", i);
        else
            TEST_ASSERT(memory_region_del_subregion(kit_sysmem(k), &st->fresh[i]) == 0, "del %d",
                        i);
    }
    TEST_ASSERT(memory_region_add_subregion(kit_sysmem(k), TEMP_BASE, &st->temp) == 0, "temp");
    TEST_ASSERT(memory_region_del_subregion(kit_sysmem(k), &st->temp) == 0, "temp del");
    if (in_txn)
        TEST_ASSERT(ioctls(k) == before, "%llu slot ioctls issued inside the transaction",
                    (unsigned long long)(ioctls(k) - before));
}

static uint32_t on_sync(Kit *k, uint32_t phase, void *opaque)
{
    struct state *st = opaque;
    uint64_t before = ioctls(k);

    if (phase == 1) {
        memory_region_transaction_begin(kit_ctx(k));
        changes(k, st, MOVE_TO, true, true);
        memory_region_transaction_begin(kit_ctx(k)); /* nested: no effect */
        memory_region_transaction_commit(kit_ctx(k));
        TEST_ASSERT(ioctls(k) == before, "inner commit issued ioctls");
        memory_region_transaction_commit(kit_ctx(k));
        st->batch_ioctls = ioctls(k) - before;
        kit_dump_slots(k, stdout);
        TEST_ASSERT(kvm_vm_get_slots(kit_vm(k), NULL, 0) == 5, "slots after the batch");
    } else {
        /* Undo piecemeal: every change commits (and touches KVM) alone. */
        changes(k, st, MOVE_FROM, false, false);
        st->piecemeal_ioctls = ioctls(k) - before;
        TEST_ASSERT(kvm_vm_get_slots(kit_vm(k), NULL, 0) == 2, "slots after undoing");
    }
    return 0;
}

int main(void)
{
    Kit *k;
    KitResult r;
    struct state st;
    char name[16];

    kit_require_kvm();
    k = kit_new(GUEST_ELF, NULL);
    TEST_ASSERT(k, "kit_new failed");
    memset(&st, 0, sizeof(st));
    TEST_ASSERT(memory_region_init_ram(&st.moved, kit_ctx(k), "txn", "moved", R_SIZE) == 0,
                "setup");
    TEST_ASSERT(memory_region_init_ram(&st.temp, kit_ctx(k), "txn", "temp", R_SIZE) == 0, "setup");
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "fresh%d", i);
        TEST_ASSERT(memory_region_init_ram(&st.fresh[i], kit_ctx(k), "txn", name, R_SIZE) == 0,
                    "setup");
    }
    TEST_ASSERT(memory_region_add_subregion(kit_sysmem(k), MOVE_FROM, &st.moved) == 0, "setup");

    kit_set_sync_handler(k, on_sync, &st);
    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);

    /* Net change of the batch: moved = delete + create, 3 creates. */
    printf("batch: %llu slot ioctls for 3 adds + 1 move + add/del of a 4th; "
           "piecemeal undo: %llu\n",
           (unsigned long long)st.batch_ioctls, (unsigned long long)st.piecemeal_ioctls);
    TEST_ASSERT(st.batch_ioctls == 5, "batch issued %llu ioctls, expected 5",
                (unsigned long long)st.batch_ioctls);
    TEST_ASSERT(st.piecemeal_ioctls > st.batch_ioctls,
                "piecemeal (%llu) not dearer than the batch (%llu)",
                (unsigned long long)st.piecemeal_ioctls, (unsigned long long)st.batch_ioctls);

    memory_region_del_subregion(kit_sysmem(k), &st.moved);
    memory_region_destroy(&st.moved);
    memory_region_destroy(&st.temp);
    for (int i = 0; i < 3; i++)
        memory_region_destroy(&st.fresh[i]);
    kit_free(k);
    printf("PASS\n");
    return 0;
}
#endif
