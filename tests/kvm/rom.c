/* SPDX-License-Identifier: MIT */
/*
 * ROM and rom_device.
 *  - ROM: a read-only slot (KVM_MEM_READONLY); the guest reads its
 *    contents, its writes are dropped.
 *  - rom_device: while readable, reads come from memory (a read-only slot)
 *    and writes go to ops; the host switches it to not-readable between two
 *    guest phases (at a SYNC handshake), then reads go to ops too (no slot),
 *    and back.
 */
#define ROM_BASE 0x40000000ull
#define ROM_SIZE 0x10000ull
#define ROMD_BASE 0x50000000ull
#define ROMD_SIZE 0x10000ull
#define ROMD_OPS 0x7e000000u /* recorder read_base */

#ifdef STRATA_GUEST
#include "guest.h"

int guest_main(void)
{
    /* ROM */
    GUEST_ASSERT(mmio_read32(ROM_BASE + 0x100) == 0xf00d0100);
    mmio_write32(ROM_BASE + 0x100, 0xdeadbeef);
    mmio_write64(ROM_BASE + 0x200, 0xdeadbeefdeadbeefull);
    mmio_write8(ROM_BASE + ROM_SIZE - 1, 0);
    GUEST_ASSERT(mmio_read32(ROM_BASE + 0x100) == 0xf00d0100);
    GUEST_ASSERT(mmio_read32(ROM_BASE + 0x200) == 0xf00d0200);
    GUEST_ASSERT(mmio_read32(ROM_BASE + ROM_SIZE - 4) == 0xf00dfffc);

    /* rom_device, readable: reads from memory, writes to ops */
    GUEST_ASSERT(mmio_read32(ROMD_BASE + 0x40) == 0xc0de0040);
    mmio_write32(ROMD_BASE + 0x80, 0x1234);
    GUEST_ASSERT(mmio_read32(ROMD_BASE + 0x80) == 0xc0de0080);
    GUEST_ASSERT(guest_sync(1) == 1); /* host: readable off */
    GUEST_ASSERT(mmio_read32(ROMD_BASE + 0x40) == ROMD_OPS + 0x40);
    GUEST_ASSERT(guest_sync(2) == 2); /* host: readable on */
    GUEST_ASSERT(mmio_read32(ROMD_BASE + 0x40) == 0xc0de0040);
    return 0;
}

#else
#include "tests/guests/kit.h"

struct ctx {
    MemoryRegion *rom;
    KitRecorder *romd;
};

static const KvmSlotInfo *find_slot(KvmSlotInfo *s, size_t n, uint64_t gpa)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].gpa == gpa)
            return &s[i];
    return NULL;
}

/* Checks whether the rom_device has a slot, read-only when present. */
static void check_romd_slot(Kit *k, bool want)
{
    KvmSlotInfo s[8];
    size_t n = kvm_vm_get_slots(kit_vm(k), s, 8);
    const KvmSlotInfo *r = find_slot(s, n, ROMD_BASE);

    kit_dump_slots(k, stdout);
    if (want)
        TEST_ASSERT(r && r->size == ROMD_SIZE && (r->flags & KVM_MEM_READONLY),
                    "readable rom_device: no read-only slot");
    else
        TEST_ASSERT(!r, "rom_device not readable but still has a slot");
}

static uint32_t on_sync(Kit *k, uint32_t phase, void *opaque)
{
    struct ctx *c = opaque;

    if (phase == 1) {
        /* Phase 1 wrote once through ops and read only from memory. */
        TEST_ASSERT(kit_recorder_count(c->romd) == 1, "%zu romd accesses",
                    kit_recorder_count(c->romd));
        memory_region_rom_device_set_readable(&c->romd->mr, false);
        TEST_ASSERT(!memory_region_is_romd(&c->romd->mr), "still romd");
        check_romd_slot(k, false);
    } else if (phase == 2) {
        memory_region_rom_device_set_readable(&c->romd->mr, true);
        check_romd_slot(k, true);
    }
    return phase;
}

int main(void)
{
    Kit *k;
    KitResult r;
    MemoryRegion rom;
    KitRecorder romd;
    struct ctx c = { &rom, &romd };
    KvmSlotInfo s[8];
    size_t n;
    const KvmSlotInfo *rs;
    uint32_t *p;

    kit_require_kvm();
    k = kit_new(GUEST_ELF, NULL);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(memory_region_init_rom(&rom, kit_ctx(k), "rom", "rom", ROM_SIZE) == 0, "rom");
    TEST_ASSERT(kit_recorder_init_romd(&romd, k, "romd", ROMD_SIZE) == 0, "romd");
    romd.read_base = ROMD_OPS;
    p = memory_region_get_ram_ptr(&rom);
    TEST_ASSERT(p, "ROM has no memory");
    for (uint32_t i = 0; i < ROM_SIZE / 4; i++)
        p[i] = 0xf00d0000 + i * 4;
    p = memory_region_get_ram_ptr(&romd.mr);
    TEST_ASSERT(p, "rom_device has no memory");
    for (uint32_t i = 0; i < ROMD_SIZE / 4; i++)
        p[i] = 0xc0de0000 + i * 4;

    memory_region_transaction_begin(kit_ctx(k));
    memory_region_add_subregion(kit_sysmem(k), ROM_BASE, &rom);
    memory_region_add_subregion(kit_sysmem(k), ROMD_BASE, &romd.mr);
    memory_region_transaction_commit(kit_ctx(k));

    n = kvm_vm_get_slots(kit_vm(k), s, 8);
    rs = find_slot(s, n, ROM_BASE);
    TEST_ASSERT(rs && rs->size == ROM_SIZE && (rs->flags & KVM_MEM_READONLY),
                "ROM: no read-only slot");
    check_romd_slot(k, true);

    kit_set_sync_handler(k, on_sync, &c);
    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);

    p = memory_region_get_ram_ptr(&rom);
    for (uint32_t i = 0; i < ROM_SIZE / 4; i++)
        TEST_ASSERT(p[i] == 0xf00d0000 + i * 4, "ROM word %u changed to %#x", i, p[i]);
    p = memory_region_get_ram_ptr(&romd.mr);
    TEST_ASSERT(p[0x80 / 4] == 0xc0de0080, "rom_device memory written by the guest");
    TEST_ASSERT(kit_recorder_count(&romd) == 2, "%zu romd accesses", kit_recorder_count(&romd));
    {
        KitAccess w = kit_recorder_get(&romd, 0), rd = kit_recorder_get(&romd, 1);

        TEST_ASSERT(w.write && w.addr == 0x80 && w.data == 0x1234 && w.size == 4,
                    "romd write: %#llx %#llx", (unsigned long long)w.addr,
                    (unsigned long long)w.data);
        TEST_ASSERT(!rd.write && rd.addr == 0x40 && rd.size == 4, "romd read: %#llx",
                    (unsigned long long)rd.addr);
    }

    kit_recorder_destroy(&romd);
    memory_region_del_subregion(kit_sysmem(k), &rom);
    memory_region_destroy(&rom);
    kit_free(k);
    printf("PASS: ROM writes dropped; rom_device reads switch between memory and ops\n");
    return 0;
}
#endif
