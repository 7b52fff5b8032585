/* SPDX-License-Identifier: MIT */
/*
 * Dirty logging (kvm.dirty: kvm/'s default log, the ring where the host
 * has one; kvm.dirty_bitmap: KVM_GET_DIRTY_LOG): after guest writes, memory_region_sync_dirty_bitmap gives
 * the MIGRATION client exactly the pages written; the VGA client keeps its
 * own bits (resetting one client leaves the other); reset clears; the slot
 * carries KVM_MEM_LOG_DIRTY_PAGES only while some client logs.  Guest reads
 * dirty nothing.
 *
 * A dirty log is a superset of the pages the guest wrote, and the exact sets
 * below hold only because the logged region is kept off transparent huge
 * pages: where the host backs memory with THP (Debian's default
 * transparent_hugepage=always, as in the nested test bed's first level),
 * the guest's first write to any page of a 2 MiB-aligned block makes the
 * host allocate the whole block writable; a later guest *read* of another
 * page of that block then finds its host page writable, KVM maps it
 * writable on that read fault and, the slot being logged, reports it dirty
 * at once.  Seen in the bed: every page read after the first 2 MiB
 * boundary of the region's host mapping was dirty (the boundary moves with
 * the mapping's address, so the first false page looked random).
 */
#define LOG_BASE 0x80000000ull
#define LOG_PAGES 1024ull /* 4 MiB */
#define PAGE 4096ull

#ifdef STRATA_GUEST
#include "guest.h"

static const uint32_t first[] = { 0, 1, 5, 100, 511, 512, 1023 };

int guest_main(void)
{
    volatile uint64_t sum = 0;

    for (unsigned i = 0; i < sizeof(first) / sizeof(first[0]); i++)
        mmio_write32(LOG_BASE + first[i] * PAGE + 8 * i, 0xd1d1d100 + i);
    for (uint64_t p = 0; p < LOG_PAGES; p++) /* reads dirty nothing */
        sum += mmio_read8(LOG_BASE + p * PAGE + 100);
    guest_sync(1);
    mmio_write8(LOG_BASE + 7 * PAGE + PAGE - 1, 1); /* last byte of page 7 */
    mmio_write64(LOG_BASE + 300 * PAGE, 2);
    guest_sync(2);
    mmio_write64(LOG_BASE + 7 * PAGE, 3);
    guest_sync(3);
    return (int)(sum & 0);
}

#else
#include "tests/guests/kit.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

struct state {
    MemoryRegion ram;
};

/* Asserts that client's dirty pages are exactly want[0..n). */
static void expect_dirty(MemoryRegion *mr, unsigned client, const uint32_t *want, size_t n,
                         const char *when)
{
    size_t found = 0, wrong = 0;

    for (uint64_t p = 0; p < LOG_PAGES; p++) {
        bool expected = false;

        for (size_t i = 0; i < n; i++)
            expected |= want[i] == p;
        bool dirty = memory_region_get_dirty(mr, p * PAGE, PAGE, client);
        if (dirty != expected && wrong++ < 16)
            fprintf(stderr, "%s: client %u page %llu is %s\n", when, client, (unsigned long long)p,
                    dirty ? "dirty" : "clean");
        found += dirty;
    }
    TEST_ASSERT(!wrong, "%s: %zu pages not as expected (%zu dirty, %zu expected)", when, wrong,
                found, n);
    printf("%s: client %s: %zu dirty pages, as expected\n", when,
           client == DIRTY_MEMORY_MIGRATION ? "MIGRATION" : "VGA", found);
}

static uint32_t slot_flags(Kit *k)
{
    KvmSlotInfo s[8];
    size_t n = kvm_vm_get_slots(kit_vm(k), s, 8);

    for (size_t i = 0; i < n && i < 8; i++)
        if (s[i].gpa == LOG_BASE)
            return s[i].flags;
    TEST_ASSERT(0, "no slot at LOG_BASE");
    return 0;
}

static uint32_t on_sync(Kit *k, uint32_t phase, void *opaque)
{
    struct state *st = opaque;
    MemoryRegion *mr = &st->ram;
    static const uint32_t p1[] = { 0, 1, 5, 100, 511, 512, 1023 };
    static const uint32_t p2_mig[] = { 7, 300 };
    static const uint32_t p2_vga[] = { 0, 1, 5, 100, 511, 512, 1023, 7, 300 };
    static const uint32_t p3[] = { 7 };

    memory_region_sync_dirty_bitmap(mr);
    switch (phase) {
    case 1:
        expect_dirty(mr, DIRTY_MEMORY_MIGRATION, p1, 7, "phase 1");
        expect_dirty(mr, DIRTY_MEMORY_VGA, p1, 7, "phase 1");
        memory_region_reset_dirty(mr, 0, LOG_PAGES * PAGE, DIRTY_MEMORY_MIGRATION);
        expect_dirty(mr, DIRTY_MEMORY_MIGRATION, NULL, 0, "after MIGRATION reset");
        expect_dirty(mr, DIRTY_MEMORY_VGA, p1, 7, "after MIGRATION reset");
        /* A second sync with no guest writes in between adds nothing. */
        memory_region_sync_dirty_bitmap(mr);
        expect_dirty(mr, DIRTY_MEMORY_MIGRATION, NULL, 0, "re-sync");
        break;
    case 2:
        expect_dirty(mr, DIRTY_MEMORY_MIGRATION, p2_mig, 2, "phase 2");
        expect_dirty(mr, DIRTY_MEMORY_VGA, p2_vga, 9, "phase 2");
        memory_region_reset_dirty(mr, 0, LOG_PAGES * PAGE, DIRTY_MEMORY_MIGRATION);
        memory_region_reset_dirty(mr, 0, LOG_PAGES * PAGE, DIRTY_MEMORY_VGA);
        /* The VGA client stops logging: the slot keeps logging for MIGRATION. */
        TEST_ASSERT(memory_region_set_log(mr, false, DIRTY_MEMORY_VGA) == 0, "VGA log off");
        TEST_ASSERT(slot_flags(k) & KVM_MEM_LOG_DIRTY_PAGES, "slot stopped logging");
        break;
    case 3:
        expect_dirty(mr, DIRTY_MEMORY_MIGRATION, p3, 1, "phase 3");
        TEST_ASSERT(memory_region_set_log(mr, false, DIRTY_MEMORY_MIGRATION) == 0, "log off");
        TEST_ASSERT(!(slot_flags(k) & KVM_MEM_LOG_DIRTY_PAGES), "slot still logging");
        break;
    }
    return 0;
}

/* argv[1] "bitmap": KVM_GET_DIRTY_LOG (kvm.dirty_bitmap); else kvm/'s
 * default, the dirty ring where the host offers it. */
int main(int argc, char **argv)
{
    Kit *k;
    KitResult r;
    static struct state st;
    KitOptions opt = { .dirty_bitmap = argc > 1 && !strcmp(argv[1], "bitmap") };

    kit_require_kvm();
    k = kit_new(GUEST_ELF, &opt);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(memory_region_init_ram(&st.ram, kit_ctx(k), "dirty", "logged", LOG_PAGES * PAGE) ==
                    0,
                "ram");
    /* no THP under the logged pages (see the top of this file) */
    TEST_ASSERT(madvise(memory_region_get_ram_ptr(&st.ram), LOG_PAGES * PAGE, MADV_NOHUGEPAGE) == 0,
                "madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
    memory_region_add_subregion(kit_sysmem(k), LOG_BASE, &st.ram);
    TEST_ASSERT(!(slot_flags(k) & KVM_MEM_LOG_DIRTY_PAGES), "slot logs before set_log");
    TEST_ASSERT(memory_region_set_log(&st.ram, true, DIRTY_MEMORY_MIGRATION) == 0, "log on");
    TEST_ASSERT(memory_region_set_log(&st.ram, true, DIRTY_MEMORY_VGA) == 0, "VGA log on");
    TEST_ASSERT(slot_flags(k) & KVM_MEM_LOG_DIRTY_PAGES, "slot does not log");
    TEST_ASSERT(memory_region_set_log(kit_sysmem(k), true, DIRTY_MEMORY_MIGRATION) < 0,
                "set_log on a container accepted");
    /* Start from clean bitmaps whatever the initial state is. */
    memory_region_sync_dirty_bitmap(&st.ram);
    memory_region_reset_dirty(&st.ram, 0, LOG_PAGES * PAGE, DIRTY_MEMORY_MIGRATION);
    memory_region_reset_dirty(&st.ram, 0, LOG_PAGES * PAGE, DIRTY_MEMORY_VGA);

    printf("dirty log: %s\n", kvm_vm_dirty_ring_size(kit_vm(k)) ? "ring" : "bitmap");
    kit_set_sync_handler(k, on_sync, &st);
    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);
    TEST_ASSERT(kit_sync_count(k) == 3, "the guest did not reach every phase");

    memory_region_del_subregion(kit_sysmem(k), &st.ram);
    memory_region_destroy(&st.ram);
    kit_free(k);
    printf("PASS\n");
    return 0;
}
#endif
