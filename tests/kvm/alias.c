/* SPDX-License-Identifier: MIT */
/*
 * One RAM region shown at two guest addresses through aliases (the second
 * one with an alias offset): the guest writes through one and reads the
 * same bytes through the other; KVM gets two slots onto the same host RAM.
 */
#define SHARED_SIZE 0x00200000ull /* 2 MiB */
#define A_BASE 0x20000000ull      /* alias A: shared[0, 2 MiB) */
#define B_BASE 0x30000000ull      /* alias B: shared[1 MiB, 2 MiB) */
#define B_OFFSET 0x00100000ull
#define B_SIZE (SHARED_SIZE - B_OFFSET)

#ifdef STRATA_GUEST
#include "guest.h"

int guest_main(void)
{
    /* Write through A, read through B (B's byte 0 is A's byte B_OFFSET). */
    for (uint64_t i = 0; i < B_SIZE; i += 4096)
        mmio_write64(A_BASE + B_OFFSET + i, 0xa11a5000000000ull + i);
    for (uint64_t i = 0; i < B_SIZE; i += 4096)
        GUEST_ASSERT(mmio_read64(B_BASE + i) == 0xa11a5000000000ull + i);
    /* And the other way round. */
    mmio_write32(B_BASE + 0x1234, 0xb0b0b0b0);
    GUEST_ASSERT(mmio_read32(A_BASE + B_OFFSET + 0x1234) == 0xb0b0b0b0);
    /* The part of A that B does not show is separate. */
    mmio_write32(A_BASE, 0x0a0a0a0a);
    GUEST_ASSERT(mmio_read32(A_BASE) == 0x0a0a0a0a);
    GUEST_ASSERT(mmio_read64(B_BASE) == 0xa11a5000000000ull);
    return 0;
}

#else
#include "tests/guests/kit.h"

int main(void)
{
    Kit *k;
    KitResult r;
    MemoryRegion shared, a, b;
    KvmSlotInfo s[8];
    size_t n;
    uint8_t *ram;
    uint32_t v;

    kit_require_kvm();
    k = kit_new(GUEST_ELF, NULL);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(memory_region_init_ram(&shared, kit_ctx(k), "alias", "shared", SHARED_SIZE) == 0,
                "ram");
    TEST_ASSERT(memory_region_init_alias(&a, kit_ctx(k), "alias-a", &shared, 0, SHARED_SIZE) == 0,
                "alias a");
    TEST_ASSERT(memory_region_init_alias(&b, kit_ctx(k), "alias-b", &shared, B_OFFSET, B_SIZE) == 0,
                "alias b");
    ram = memory_region_get_ram_ptr(&shared);
    TEST_ASSERT(memory_region_get_ram_ptr(&b) == ram + B_OFFSET, "alias ram ptr");
    memory_region_transaction_begin(kit_ctx(k));
    memory_region_add_subregion(kit_sysmem(k), A_BASE, &a);
    memory_region_add_subregion(kit_sysmem(k), B_BASE, &b);
    memory_region_transaction_commit(kit_ctx(k));

    kit_dump_slots(k, stdout);
    n = kvm_vm_get_slots(kit_vm(k), s, 8);
    TEST_ASSERT(n == 3, "%zu slots, expected 3", n);
    TEST_ASSERT(s[1].gpa == A_BASE && s[1].size == SHARED_SIZE && s[1].hva == (uintptr_t)ram,
                "slot A");
    TEST_ASSERT(s[2].gpa == B_BASE && s[2].size == B_SIZE && s[2].hva == (uintptr_t)ram + B_OFFSET,
                "slot B");

    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);
    memcpy(&v, ram + B_OFFSET + 0x1234, 4);
    TEST_ASSERT(v == 0xb0b0b0b0, "shared RAM holds %#x", v);
    memcpy(&v, ram, 4);
    TEST_ASSERT(v == 0x0a0a0a0a, "shared RAM start holds %#x", v);

    memory_region_transaction_begin(kit_ctx(k));
    memory_region_del_subregion(kit_sysmem(k), &a);
    memory_region_del_subregion(kit_sysmem(k), &b);
    memory_region_transaction_commit(kit_ctx(k));
    TEST_ASSERT(kvm_vm_get_slots(kit_vm(k), s, 8) == 1, "slots left after removing the aliases");
    memory_region_destroy(&a);
    memory_region_destroy(&b);
    memory_region_destroy(&shared);
    kit_free(k);
    printf("PASS: writes through one alias are read through the other\n");
    return 0;
}
#endif
