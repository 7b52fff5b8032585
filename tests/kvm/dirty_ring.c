/* SPDX-License-Identifier: MIT */
/*
 * The dirty ring and the dirty bitmap report the same pages: one guest
 * writes known page sets into a logged region, and the test runs it twice,
 * once with KVM's dirty ring (a small one: 256 entries, so KVM stops the
 * vCPU with KVM_EXIT_DIRTY_RING_FULL several times per phase) and once
 * with KVM_GET_DIRTY_LOG.  After each phase the MIGRATION client must hold
 * exactly the pages written, in both runs: a ring-full exit that lost an
 * entry, or a harvest that reset a page before reporting it, fails here.
 * Skipped (77) where the host has no dirty ring.  The region is kept off
 * transparent huge pages, as in kvm.dirty (see there why).
 */
#define LOG_BASE 0x80000000ull
#define LOG_PAGES 1024ull /* 4 MiB: four times the small ring */
#define PAGE 4096ull
#define SMALL_RING 256u

/* Phase 1: a sparse set (about 350 pages, more than the ring holds). */
static int in_phase1(unsigned long long p)
{
    return p % 5 == 0 || p % 7 == 3;
}

/* Phase 3: a few pages, page 7 written twice. */
static int in_phase3(unsigned long long p)
{
    return p < 4 || p == 7;
}

#ifdef STRATA_GUEST
#include "guest.h"

int guest_main(void)
{
    for (uint64_t p = 0; p < LOG_PAGES; p++)
        if (in_phase1(p))
            mmio_write32(LOG_BASE + p * PAGE + 16, 0x10000 + (uint32_t)p);
    guest_sync(1);
    for (uint64_t p = 0; p < LOG_PAGES; p++) /* every page: 4 rings' worth */
        mmio_write64(LOG_BASE + p * PAGE + 8 * (p % 512), p);
    guest_sync(2);
    for (uint64_t p = 0; p < LOG_PAGES; p++)
        if (in_phase3(p))
            mmio_write8(LOG_BASE + p * PAGE + PAGE - 1, 3);
    mmio_write8(LOG_BASE + 7 * PAGE, 4);
    guest_sync(3);
    return 0;
}

#else
#include "tests/guests/kit.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

struct state {
    MemoryRegion ram;
    uint64_t found[4]; /* dirty pages per phase */
};

/* Asserts the MIGRATION client's dirty pages are exactly those of want. */
static size_t expect_set(MemoryRegion *mr, int (*want)(unsigned long long), const char *mode,
                         uint32_t phase)
{
    size_t found = 0, wrong = 0;
    for (uint64_t p = 0; p < LOG_PAGES; p++) {
        bool expected = want ? want(p) : true;
        bool dirty = memory_region_get_dirty(mr, p * PAGE, PAGE, DIRTY_MEMORY_MIGRATION);
        if (dirty != expected && wrong++ < 16)
            fprintf(stderr, "%s phase %u: page %llu is %s\n", mode, phase, (unsigned long long)p,
                    dirty ? "dirty (not written)" : "clean (written)");
        found += dirty;
    }
    TEST_ASSERT(!wrong, "%s phase %u: %zu pages not as written (%zu dirty)", mode, phase, wrong,
                found);
    return found;
}

static const char *mode_name(Kit *k)
{
    return kvm_vm_dirty_ring_size(kit_vm(k)) ? "ring" : "bitmap";
}

static uint32_t on_sync(Kit *k, uint32_t phase, void *opaque)
{
    struct state *st = opaque;
    MemoryRegion *mr = &st->ram;
    memory_region_sync_dirty_bitmap(mr);
    int (*want)(unsigned long long) = phase == 1 ? in_phase1 : phase == 3 ? in_phase3 : NULL;
    if (phase >= 1 && phase <= 3)
        st->found[phase] = expect_set(mr, want, mode_name(k), phase);
    memory_region_reset_dirty(mr, 0, LOG_PAGES * PAGE, DIRTY_MEMORY_MIGRATION);
    return 0;
}

/* Runs the guest with the dirty log of opt; fills st->found. */
static void run_mode(const KitOptions *opt, struct state *st, KvmVmStats *stats,
                     KvmVcpuExitStats *vstats)
{
    Kit *k = kit_new(GUEST_ELF, opt);
    TEST_ASSERT(k, "kit_new failed");
    memset(&st->ram, 0, sizeof(st->ram));
    TEST_ASSERT(memory_region_init_ram(&st->ram, kit_ctx(k), "dirty", "logged", LOG_PAGES * PAGE) ==
                    0,
                "ram");
    TEST_ASSERT(madvise(memory_region_get_ram_ptr(&st->ram), LOG_PAGES * PAGE, MADV_NOHUGEPAGE) ==
                    0,
                "madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
    memory_region_add_subregion(kit_sysmem(k), LOG_BASE, &st->ram);
    TEST_ASSERT(memory_region_set_log(&st->ram, true, DIRTY_MEMORY_MIGRATION) == 0, "log on");
    memory_region_sync_dirty_bitmap(&st->ram);
    memory_region_reset_dirty(&st->ram, 0, LOG_PAGES * PAGE, DIRTY_MEMORY_MIGRATION);

    kit_set_sync_handler(k, on_sync, st);
    KitResult r;
    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);
    TEST_ASSERT(kit_sync_count(k) == 3, "the guest did not reach every phase");
    kvm_vm_get_stats(kit_vm(k), stats);
    kvm_vcpu_get_exit_stats(kit_vcpu(k), vstats);
    printf("%s: phases %llu/%llu/%llu pages; %llu syncs in %llu us, %llu pages reported, "
           "%llu ring-full exits, %llu ring resets\n",
           mode_name(k), (unsigned long long)st->found[1], (unsigned long long)st->found[2],
           (unsigned long long)st->found[3], (unsigned long long)stats->dirty_syncs,
           (unsigned long long)stats->dirty_sync_ns / 1000, (unsigned long long)stats->dirty_pages,
           (unsigned long long)stats->dirty_ring_full,
           (unsigned long long)stats->dirty_ring_resets);

    memory_region_set_log(&st->ram, false, DIRTY_MEMORY_MIGRATION);
    memory_region_del_subregion(kit_sysmem(k), &st->ram);
    memory_region_destroy(&st->ram);
    kit_free(k);
}

int main(void)
{
    static struct state ring, bitmap;
    KvmVmStats rs, bs;
    KvmVcpuExitStats rv, bv;

    kit_require_kvm();
    {
        /* the host's offer, on a throwaway VM */
        KvmVm *vm;
        KvmVmConfig cfg = KVM_VM_CONFIG_DEFAULT;
        TEST_ASSERT(kvm_vm_create(&cfg, &vm) == 0, "kvm_vm_create");
        bool have = kvm_vm_check_extension(vm, KVM_CAP_DIRTY_LOG_RING) > 0 ||
                    kvm_vm_check_extension(vm, KVM_CAP_DIRTY_LOG_RING_ACQ_REL) > 0;
        TEST_ASSERT(kvm_vm_dirty_ring_size(vm) == (have ? KVM_DIRTY_RING_DEFAULT : 0),
                    "the default config chose %u ring entries (host offers the ring: %d)",
                    kvm_vm_dirty_ring_size(vm), have);
        kvm_vm_destroy(vm);
        if (!have) {
            printf("SKIP: /dev/kvm offers no dirty ring\n");
            return 77;
        }
    }
    KitOptions ro = { .dirty_ring = SMALL_RING };
    run_mode(&ro, &ring, &rs, &rv);
    KitOptions bo = { .dirty_bitmap = true };
    run_mode(&bo, &bitmap, &bs, &bv);

    for (int p = 1; p <= 3; p++)
        TEST_ASSERT(ring.found[p] == bitmap.found[p], "phase %d: ring %llu pages, bitmap %llu", p,
                    (unsigned long long)ring.found[p], (unsigned long long)bitmap.found[p]);
    /* phase 2 alone wrote 4 rings' worth: the vCPU must have exited full */
    TEST_ASSERT(rs.dirty_ring_full >= LOG_PAGES / SMALL_RING, "only %llu ring-full exits",
                (unsigned long long)rs.dirty_ring_full);
    TEST_ASSERT(rv.exits[KVM_EXITS_DIRTY_RING_FULL] == rs.dirty_ring_full,
                "the vCPU counted %llu ring-full exits, the VM %llu",
                (unsigned long long)rv.exits[KVM_EXITS_DIRTY_RING_FULL],
                (unsigned long long)rs.dirty_ring_full);
    TEST_ASSERT(bs.dirty_ring_full == 0 && bs.dirty_ring_resets == 0,
                "the bitmap run touched a ring");
    TEST_ASSERT(rs.dirty_pages >= ring.found[1] + ring.found[2] + ring.found[3],
                "the ring reported %llu pages in all", (unsigned long long)rs.dirty_pages);
    printf("PASS\n");
    return 0;
}
#endif
