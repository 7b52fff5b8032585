/* SPDX-License-Identifier: MIT */
/*
 * Coalesced MMIO and PIO: guest writes to a coalesced range do not exit one
 * by one (the exit counters barely move), and they reach the device's ops
 * all, in guest order, before the next non-coalesced access to it.
 */
#define DEV_BASE 0x70000000ull
#define DEV_SIZE 0x1000ull
#define FIFO_SIZE 0x100ull /* coalesced: [0, 0x100) */
#define STATUS 0x800ull    /* not coalesced */
#define PIO_BASE 0x300
#define PIO_FIFO 0x4 /* coalesced: ports 0x300..0x303 */
#define PIO_STATUS 0x8
#define N_SMALL 100 /* fits in KVM's ring */
#define N_BIG 1000  /* overflows it several times */
#define N_PIO 50

#ifdef STRATA_GUEST
#include "guest.h"

static void burst(uint32_t n, uint32_t tag)
{
    for (uint32_t i = 0; i < n; i++)
        mmio_write32(DEV_BASE + (i * 4) % FIFO_SIZE, tag + i);
}

int guest_main(void)
{
    guest_sync(1);
    burst(N_SMALL, 0xc0a10000);
    mmio_read32(DEV_BASE + STATUS);
    guest_sync(2);
    for (uint32_t i = 0; i < N_PIO; i++)
        outl(PIO_BASE, 0x9e000000 + i);
    inl(PIO_BASE + PIO_STATUS);
    guest_sync(3);
    burst(N_BIG, 0xb1600000);
    mmio_read32(DEV_BASE + STATUS);
    guest_sync(4);
    return 0;
}

#else
#include "tests/guests/kit.h"

struct state {
    KitRecorder mmio, pio;
    KvmVmStats base;
};

/* Checks that rec saw n writes tagged tag+i at the FIFO, then one read. */
static void check_log(KitRecorder *rec, uint32_t n, uint32_t tag, uint64_t fifo_mod,
                      uint64_t status, const char *what)
{
    TEST_ASSERT(kit_recorder_count(rec) == n + 1, "%s: %zu accesses, expected %u", what,
                kit_recorder_count(rec), n + 1);
    for (uint32_t i = 0; i < n; i++) {
        KitAccess a = kit_recorder_get(rec, i);

        TEST_ASSERT(a.write && a.size == 4 && a.data == tag + i &&
                        a.addr == (fifo_mod ? (i * 4) % fifo_mod : 0),
                    "%s: access %u is %s %#llx=%#llx, expected write %#x", what, i,
                    a.write ? "write" : "read", (unsigned long long)a.addr,
                    (unsigned long long)a.data, tag + i);
    }
    KitAccess last = kit_recorder_get(rec, n);
    TEST_ASSERT(!last.write && last.addr == status, "%s: the last access is not the status read",
                what);
}

static uint32_t on_sync(Kit *k, uint32_t phase, void *opaque)
{
    struct state *st = opaque;
    KvmVmStats now;

    kvm_vm_get_stats(kit_vm(k), &now);
    switch (phase) {
    case 2:
        check_log(&st->mmio, N_SMALL, 0xc0a10000, FIFO_SIZE, STATUS, "MMIO");
        printf("MMIO: %u coalesced writes + 1 read: %llu MMIO exits, %llu ring entries\n", N_SMALL,
               (unsigned long long)(now.exits_mmio - st->base.exits_mmio),
               (unsigned long long)(now.coalesced_drained - st->base.coalesced_drained));
        /* One exit: the status read.  Under nested SVM KVM lets the very
         * first write to the page exit too (before it knows the page is
         * MMIO); every write must still arrive once: by exit or by ring. */
        TEST_ASSERT(now.exits_mmio - st->base.exits_mmio <= 2,
                    "%llu MMIO exits for %u coalesced writes and one read",
                    (unsigned long long)(now.exits_mmio - st->base.exits_mmio), N_SMALL);
        TEST_ASSERT(now.coalesced_drained - st->base.coalesced_drained +
                            (now.exits_mmio - st->base.exits_mmio - 1) ==
                        N_SMALL,
                    "ring delivered %llu entries besides %llu exits",
                    (unsigned long long)(now.coalesced_drained - st->base.coalesced_drained),
                    (unsigned long long)(now.exits_mmio - st->base.exits_mmio));
        break;
    case 3:
        check_log(&st->pio, N_PIO, 0x9e000000, 0, PIO_STATUS, "PIO");
        /* Between this sync and the last: the last sync's IN, the status
         * IN, this OUT; the 50 OUTs must not have exited. */
        printf("PIO: %u coalesced OUTs + 1 IN: %llu PIO exits (2 of them the SYNC handshake)\n",
               N_PIO, (unsigned long long)(now.exits_io - st->base.exits_io));
        TEST_ASSERT(now.exits_io - st->base.exits_io <= 3, "%llu PIO exits for %u coalesced OUTs",
                    (unsigned long long)(now.exits_io - st->base.exits_io), N_PIO);
        kit_recorder_reset(&st->mmio);
        break;
    case 4:
        check_log(&st->mmio, N_BIG, 0xb1600000, FIFO_SIZE, STATUS, "MMIO overflow");
        printf("MMIO: %u coalesced writes + 1 read: %llu MMIO exits (ring full)\n", N_BIG,
               (unsigned long long)(now.exits_mmio - st->base.exits_mmio));
        TEST_ASSERT(now.exits_mmio - st->base.exits_mmio < N_BIG / 10,
                    "%llu MMIO exits for %u coalesced writes",
                    (unsigned long long)(now.exits_mmio - st->base.exits_mmio), N_BIG);
        break;
    }
    kvm_vm_get_stats(kit_vm(k), &st->base);
    return 0;
}

int main(void)
{
    Kit *k;
    KitResult r;
    static struct state st;
    KvmVmStats s;

    kit_require_kvm();
    k = kit_new(GUEST_ELF, NULL);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(kit_recorder_init(&st.mmio, k, "fifo", DEV_SIZE, 4) == 0, "mmio dev");
    TEST_ASSERT(kit_recorder_init(&st.pio, k, "piofifo", 0x10, 4) == 0, "pio dev");
    TEST_ASSERT(memory_region_add_coalescing(&st.mmio.mr, 0, FIFO_SIZE) == 0, "coalescing");
    TEST_ASSERT(memory_region_add_coalescing(&st.pio.mr, 0, PIO_FIFO) == 0, "pio coalescing");
    memory_region_add_subregion(kit_sysmem(k), DEV_BASE, &st.mmio.mr);
    memory_region_add_subregion(kit_iomem(k), PIO_BASE, &st.pio.mr);
    kvm_vm_get_stats(kit_vm(k), &s);
    TEST_ASSERT(s.coalesced_zones == 2, "%llu coalesced zones registered",
                (unsigned long long)s.coalesced_zones);

    kit_set_sync_handler(k, on_sync, &st);
    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);
    TEST_ASSERT(kit_sync_count(k) == 4, "the guest did not reach every phase");

    memory_region_clear_coalescing(&st.mmio.mr);
    kvm_vm_get_stats(kit_vm(k), &s);
    TEST_ASSERT(s.coalesced_zones == 1, "clear_coalescing left %llu zones",
                (unsigned long long)s.coalesced_zones);
    kit_recorder_destroy(&st.mmio);
    kit_recorder_destroy(&st.pio);
    kit_free(k);
    printf("PASS\n");
    return 0;
}
#endif
