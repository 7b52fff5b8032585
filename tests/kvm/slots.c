/* SPDX-License-Identifier: MIT */
/*
 * A RAM region split by a higher-priority I/O region: KVM gets two slots
 * around the hole, guest accesses on either side reach RAM, and accesses in
 * the hole reach the I/O region's ops (not the RAM underneath).
 */
#define BIG_BASE 0x10000000ull /* 16 MiB of RAM */
#define BIG_SIZE 0x01000000ull
#define HOLE_OFF 0x00800000ull /* 64 KiB I/O window in the middle */
#define HOLE_SIZE 0x00010000ull

#ifdef STRATA_GUEST
#include "guest.h"

int guest_main(void)
{
    uint64_t below = BIG_BASE + HOLE_OFF - 8, above = BIG_BASE + HOLE_OFF + HOLE_SIZE;
    uint64_t hole = BIG_BASE + HOLE_OFF;

    mmio_write64(BIG_BASE, 0x1111111111111111ull);
    mmio_write64(below, 0x2222222222222222ull);
    mmio_write64(above, 0x3333333333333333ull);
    mmio_write64(BIG_BASE + BIG_SIZE - 8, 0x4444444444444444ull);
    GUEST_ASSERT(mmio_read64(below) == 0x2222222222222222ull);
    GUEST_ASSERT(mmio_read64(above) == 0x3333333333333333ull);

    /* The hole: ops, in order: write4 @0x10, read4 @0x20, write1 @HOLE-1, read8 @0x100. */
    mmio_write32(hole + 0x10, 0xabcd1234);
    GUEST_ASSERT(mmio_read32(hole + 0x20) == 0x5a000020);
    mmio_write8(hole + HOLE_SIZE - 1, 0x77);
    GUEST_ASSERT(mmio_read64(hole + 0x100) == 0x5a000100ull);
    return 0;
}

#else
#include "tests/guests/kit.h"

int main(void)
{
    Kit *k;
    KitResult r;
    MemoryRegion big;
    KitRecorder hole;
    KvmSlotInfo s[16];
    size_t n, want_n = 4;
    uint8_t *ram;
    uint64_t v;
    const KitAccess want[] = {
        { 0x10, 0xabcd1234, 4, true },
        { 0x20, 0x5a000020, 4, false },
        { HOLE_SIZE - 1, 0x77, 1, true },
        { 0x100, 0x5a000100, 8, false },
    };

    kit_require_kvm();
    k = kit_new(GUEST_ELF, NULL);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(memory_region_init_ram(&big, kit_ctx(k), "slots", "big", BIG_SIZE) == 0, "ram");
    TEST_ASSERT(kit_recorder_init(&hole, k, "hole", HOLE_SIZE, 8) == 0, "hole");
    hole.read_base = 0x5a000000;
    ram = memory_region_get_ram_ptr(&big);
    memset(ram + HOLE_OFF, 0xee, HOLE_SIZE); /* what the guest must not see */

    memory_region_transaction_begin(kit_ctx(k));
    TEST_ASSERT(memory_region_add_subregion(kit_sysmem(k), BIG_BASE, &big) == 0, "add big");
    TEST_ASSERT(memory_region_add_subregion_overlap(kit_sysmem(k), BIG_BASE + HOLE_OFF, &hole.mr,
                                                    1) == 0,
                "add hole");
    memory_region_transaction_commit(kit_ctx(k));

    kit_dump_slots(k, stdout);
    n = kvm_vm_get_slots(kit_vm(k), s, 16);
    TEST_ASSERT(n == 3, "%zu slots, expected 3 (kit RAM + two around the hole)", n);
    TEST_ASSERT(s[0].gpa == 0, "slot 0 at %#llx", (unsigned long long)s[0].gpa);
    TEST_ASSERT(s[1].gpa == BIG_BASE && s[1].size == HOLE_OFF && s[1].hva == (uintptr_t)ram &&
                    s[1].flags == 0,
                "low slot %#llx+%#llx", (unsigned long long)s[1].gpa,
                (unsigned long long)s[1].size);
    TEST_ASSERT(s[2].gpa == BIG_BASE + HOLE_OFF + HOLE_SIZE &&
                    s[2].size == BIG_SIZE - HOLE_OFF - HOLE_SIZE &&
                    s[2].hva == (uintptr_t)ram + HOLE_OFF + HOLE_SIZE && s[2].flags == 0,
                "high slot %#llx+%#llx", (unsigned long long)s[2].gpa,
                (unsigned long long)s[2].size);

    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);

    memcpy(&v, ram, 8);
    TEST_ASSERT(v == 0x1111111111111111ull, "RAM start %#llx", (unsigned long long)v);
    memcpy(&v, ram + HOLE_OFF - 8, 8);
    TEST_ASSERT(v == 0x2222222222222222ull, "below hole %#llx", (unsigned long long)v);
    memcpy(&v, ram + HOLE_OFF + HOLE_SIZE, 8);
    TEST_ASSERT(v == 0x3333333333333333ull, "above hole %#llx", (unsigned long long)v);
    memcpy(&v, ram + BIG_SIZE - 8, 8);
    TEST_ASSERT(v == 0x4444444444444444ull, "RAM end %#llx", (unsigned long long)v);
    for (uint64_t i = 0; i < HOLE_SIZE; i++)
        TEST_ASSERT(ram[HOLE_OFF + i] == 0xee, "RAM under the hole written at +%#llx",
                    (unsigned long long)i);

    TEST_ASSERT(kit_recorder_count(&hole) == want_n, "%zu hole accesses, expected %zu",
                kit_recorder_count(&hole), want_n);
    for (size_t i = 0; i < want_n; i++) {
        KitAccess a = kit_recorder_get(&hole, i);

        TEST_ASSERT(a.addr == want[i].addr && a.data == want[i].data && a.size == want[i].size &&
                        a.write == want[i].write,
                    "hole access %zu: %s %#llx size %u data %#llx", i, a.write ? "W" : "R",
                    (unsigned long long)a.addr, a.size, (unsigned long long)a.data);
    }

    kit_recorder_destroy(&hole);
    memory_region_del_subregion(kit_sysmem(k), &big);
    memory_region_destroy(&big);
    kit_free(k);
    printf("PASS: two slots around the hole; RAM on both sides, ops inside\n");
    return 0;
}
#endif
