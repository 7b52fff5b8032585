/* SPDX-License-Identifier: MIT */
/*
 * RAM that gets no KVM slot, and slot reuse.  With max_slots = 3 (the kit's
 * RAM takes one): two regions added in one transaction cost two ioctls; a
 * third finds every slot in use (an error naming the limit) and stays
 * unmapped; a RAM region that is not page aligned is left unmapped too.
 * The guest's accesses to both still reach their RAM (through exits).  At a
 * SYNC handshake the host makes a mapped region read-only (its slot is
 * deleted and re-added under the same number, vCPUs paused once), frees a
 * slot, and re-adds the third region, which now gets one: the guest's next
 * accesses to it land in the same RAM.
 */
#define X0 0x10000000ull
#define X1 0x10100000ull
#define X2 0x10200000ull
#define XSZ 0x10000ull
#define ODD 0x10300800ull /* 2 KiB of RAM at a half page */
#define ODDSZ 0x800ull

#ifdef STRATA_GUEST
#include "guest.h"

int guest_main(void)
{
    mmio_write8(X2 + 0x10, 0x77);
    GUEST_ASSERT(mmio_read8(X2 + 0x10) == 0x77);
    mmio_write8(ODD + 0x10, 0x66);
    GUEST_ASSERT(mmio_read8(ODD + 0x10) == 0x66);
    GUEST_ASSERT(guest_sync(1) == 1);
    mmio_write8(X2 + 0x20, 0x55);
    GUEST_ASSERT(mmio_read8(X2 + 0x20) == 0x55);
    GUEST_ASSERT(mmio_read8(X2 + 0x10) == 0x77);
    return 0;
}

#else
#include "tests/guests/kit.h"

static MemoryRegion x[3], odd;
static const uint64_t xaddr[3] = { X0, X1, X2 };

static const KvmSlotInfo *slot_at(const KvmSlotInfo *si, size_t n, uint64_t gpa)
{
    for (size_t i = 0; i < n; i++)
        if (si[i].gpa == gpa)
            return &si[i];
    return NULL;
}

static uint32_t on_sync(Kit *k, uint32_t phase, void *opaque)
{
    KvmVm *vm = kit_vm(k);
    KvmSlotInfo si[8];
    KvmVmStats st0, st;
    const KvmSlotInfo *s1;
    uint32_t slot1;
    size_t n;

    TEST_ASSERT(((uint8_t *)memory_region_get_ram_ptr(&x[2]))[0x10] == 0x77,
                "the guest's write to the slotless region missed its RAM");
    TEST_ASSERT(((uint8_t *)memory_region_get_ram_ptr(&odd))[0x10] == 0x66,
                "the guest's write to the unaligned region missed its RAM");

    /* Read-only toggled: the slot is deleted and re-added with the vCPUs
     * paused, under the same number. */
    n = kvm_vm_get_slots(vm, si, 8);
    s1 = slot_at(si, n, X1);
    TEST_ASSERT(s1, "no slot for x1");
    slot1 = s1->slot;
    kvm_vm_get_stats(vm, &st0);
    memory_region_set_readonly(&x[1], true);
    kvm_vm_get_stats(vm, &st);
    TEST_ASSERT(st.slot_ioctls == st0.slot_ioctls + 2, "%llu slot ioctls for a read-only toggle",
                (unsigned long long)(st.slot_ioctls - st0.slot_ioctls));
    TEST_ASSERT(st.slot_pauses == st0.slot_pauses + 1, "%llu pauses for a read-only toggle",
                (unsigned long long)(st.slot_pauses - st0.slot_pauses));
    n = kvm_vm_get_slots(vm, si, 8);
    s1 = slot_at(si, n, X1);
    TEST_ASSERT(s1 && s1->slot == slot1 && s1->flags == KVM_MEM_READONLY,
                "x1 after the toggle: slot %d flags %#x (was slot %u)", s1 ? (int)s1->slot : -1,
                s1 ? s1->flags : 0, slot1);

    /* Freeing a slot lets the next region in. */
    memory_region_del_subregion(kit_sysmem(k), &x[0]);
    memory_region_del_subregion(kit_sysmem(k), &x[2]);
    memory_region_add_subregion(kit_sysmem(k), X2, &x[2]);
    n = kvm_vm_get_slots(vm, si, 8);
    TEST_ASSERT(n == 3 && slot_at(si, n, X2), "%zu slots, x2 %s", n,
                slot_at(si, n, X2) ? "mapped" : "unmapped");
    return phase;
}

int main(void)
{
    KitOptions opt = { .max_slots = 3 };
    Kit *k;
    KitResult r;
    KvmVmStats st;
    uint64_t c0;
    char name[16];

    kit_require_kvm();
    k = kit_new(GUEST_ELF, &opt);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(kvm_vm_max_slots(kit_vm(k)) == 3, "max_slots %u", kvm_vm_max_slots(kit_vm(k)));
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "x%d", i);
        TEST_ASSERT(memory_region_init_ram(&x[i], kit_ctx(k), "slot_limit", name, XSZ) == 0, "%s",
                    name);
    }
    TEST_ASSERT(memory_region_init_ram(&odd, kit_ctx(k), "slot_limit", "odd", ODDSZ) == 0, "odd");

    c0 = kvm_vm_slot_ioctl_count(kit_vm(k));
    memory_region_transaction_begin(kit_ctx(k));
    memory_region_add_subregion(kit_sysmem(k), xaddr[0], &x[0]);
    memory_region_add_subregion(kit_sysmem(k), xaddr[1], &x[1]);
    memory_region_transaction_commit(kit_ctx(k));
    TEST_ASSERT(kvm_vm_slot_ioctl_count(kit_vm(k)) == c0 + 2, "%llu ioctls for two regions",
                (unsigned long long)(kvm_vm_slot_ioctl_count(kit_vm(k)) - c0));
    memory_region_add_subregion(kit_sysmem(k), xaddr[2], &x[2]); /* no slot left */
    TEST_ASSERT(strstr(kvm_vm_last_error(kit_vm(k)), "all 3 in use"), "last error: '%s'",
                kvm_vm_last_error(kit_vm(k)));
    memory_region_add_subregion(kit_sysmem(k), ODD, &odd);
    kvm_vm_get_stats(kit_vm(k), &st);
    TEST_ASSERT(st.unaligned_sections == 1 && st.slots_used == 3,
                "%llu unaligned sections, %llu slots used",
                (unsigned long long)st.unaligned_sections, (unsigned long long)st.slots_used);
    kit_dump_slots(k, stdout);

    kit_set_sync_handler(k, on_sync, NULL);
    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);
    TEST_ASSERT(kit_sync_count(k) == 1, "%u syncs", kit_sync_count(k));
    TEST_ASSERT(((uint8_t *)memory_region_get_ram_ptr(&x[2]))[0x20] == 0x55,
                "the guest's write through the new slot missed its RAM");

    memory_region_transaction_begin(kit_ctx(k));
    memory_region_del_subregion(kit_sysmem(k), &x[1]);
    memory_region_del_subregion(kit_sysmem(k), &x[2]);
    memory_region_del_subregion(kit_sysmem(k), &odd);
    memory_region_transaction_commit(kit_ctx(k));
    for (int i = 0; i < 3; i++)
        memory_region_destroy(&x[i]);
    memory_region_destroy(&odd);
    kit_free(k);
    printf("PASS: slotless and unaligned RAM reached through exits; slots reused\n");
    return 0;
}
#endif
