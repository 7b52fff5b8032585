/* SPDX-License-Identifier: MIT */
/*
 * Unassigned space: guest reads of addresses and ports nothing claims
 * return all-ones at every width, writes are dropped (the VM goes on), and
 * the address spaces count those accesses.  An I/O region with no ops
 * behaves the same.
 */
#define NOWHERE 0xe0000000ull
#define NOPORT 0x600
#define NULLDEV 0x73000000ull /* I/O region with ops == NULL */

#ifdef STRATA_GUEST
#include "guest.h"

int guest_main(void)
{
    GUEST_ASSERT(mmio_read8(NOWHERE) == 0xff);
    GUEST_ASSERT(mmio_read16(NOWHERE + 2) == 0xffff);
    GUEST_ASSERT(mmio_read32(NOWHERE + 4) == 0xffffffffu);
    GUEST_ASSERT(mmio_read64(NOWHERE + 8) == ~0ull);
    mmio_write32(NOWHERE, 0x12345678);
    GUEST_ASSERT(mmio_read32(NOWHERE) == 0xffffffffu);
    GUEST_ASSERT(inb(NOPORT) == 0xff);
    GUEST_ASSERT(inw(NOPORT) == 0xffff);
    GUEST_ASSERT(inl(NOPORT) == 0xffffffffu);
    outl(NOPORT, 0);
    GUEST_ASSERT(mmio_read32(NULLDEV) == 0xffffffffu);
    mmio_write32(NULLDEV, 1);
    return 0;
}

#else
#include "tests/guests/kit.h"

int main(void)
{
    Kit *k;
    KitResult r;
    MemoryRegion nulldev;
    uint64_t mem0, io0, mem1, io1;

    kit_require_kvm();
    k = kit_new(GUEST_ELF, NULL);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(memory_region_init_io(&nulldev, kit_ctx(k), NULL, NULL, "nulldev", 0x1000) == 0,
                "nulldev");
    memory_region_add_subregion(kit_sysmem(k), NULLDEV, &nulldev);
    mem0 = address_space_unassigned_count(kit_memory_as(k));
    io0 = address_space_unassigned_count(kit_io_as(k));

    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);

    mem1 = address_space_unassigned_count(kit_memory_as(k));
    io1 = address_space_unassigned_count(kit_io_as(k));
    printf("unassigned accesses counted: memory %llu, I/O %llu\n",
           (unsigned long long)(mem1 - mem0), (unsigned long long)(io1 - io0));
    TEST_ASSERT(mem1 - mem0 == 6, "memory AS counted %llu unassigned accesses",
                (unsigned long long)(mem1 - mem0));
    TEST_ASSERT(io1 - io0 == 4, "I/O AS counted %llu unassigned accesses",
                (unsigned long long)(io1 - io0));

    memory_region_del_subregion(kit_sysmem(k), &nulldev);
    memory_region_destroy(&nulldev);
    kit_free(k);
    printf("PASS: unassigned reads return all-ones, writes are dropped\n");
    return 0;
}
#endif
