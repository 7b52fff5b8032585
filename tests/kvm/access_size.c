/* SPDX-License-Identifier: MIT */
/*
 * A device with impl.max_access_size = 1 gets four 1-byte calls, in address
 * order with the right bytes, for one 4-byte guest write; a 4-byte read is
 * assembled from four 1-byte reads; an 8-byte write becomes eight calls.
 * MMIO and PIO.
 */
#define DEV_BASE 0x72000000ull
#define PIO_BASE 0x500
#define RB 0x60 /* recorder read_base: byte at offset a reads 0x60+a */

#ifdef STRATA_GUEST
#include "guest.h"

int guest_main(void)
{
    mmio_write32(DEV_BASE + 0x10, 0x44332211);
    GUEST_ASSERT(mmio_read32(DEV_BASE + 0x20) == 0x83828180);
    outl(PIO_BASE + 4, 0xddccbbaa);
    GUEST_ASSERT(inl(PIO_BASE + 8) == 0x6b6a6968);
    mmio_write64(DEV_BASE + 0x30, 0x0807060504030201ull);
    return 0;
}

#else
#include "tests/guests/kit.h"

static void expect(KitRecorder *rec, size_t i, bool write, uint64_t addr, uint64_t data,
                   const char *what)
{
    KitAccess a = kit_recorder_get(rec, i);

    TEST_ASSERT(a.write == write && a.addr == addr && a.data == data && a.size == 1,
                "%s: call %zu is %s %#llx size %u data %#llx; expected %s %#llx size 1 data %#llx",
                what, i, a.write ? "write" : "read", (unsigned long long)a.addr, a.size,
                (unsigned long long)a.data, write ? "write" : "read", (unsigned long long)addr,
                (unsigned long long)data);
}

int main(void)
{
    Kit *k;
    KitResult r;
    static KitRecorder mmio, pio;

    kit_require_kvm();
    k = kit_new(GUEST_ELF, NULL);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(kit_recorder_init(&mmio, k, "bytewise", 0x100, 1) == 0, "mmio dev");
    TEST_ASSERT(kit_recorder_init(&pio, k, "bytewise-pio", 0x10, 1) == 0, "pio dev");
    mmio.read_base = RB;
    pio.read_base = RB;
    memory_region_add_subregion(kit_sysmem(k), DEV_BASE, &mmio.mr);
    memory_region_add_subregion(kit_iomem(k), PIO_BASE, &pio.mr);

    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);

    TEST_ASSERT(kit_recorder_count(&mmio) == 16, "%zu MMIO calls, expected 16",
                kit_recorder_count(&mmio));
    for (unsigned i = 0; i < 4; i++)
        expect(&mmio, i, true, 0x10 + i, 0x11 * (i + 1), "MMIO write32");
    for (unsigned i = 0; i < 4; i++)
        expect(&mmio, 4 + i, false, 0x20 + i, RB + 0x20 + i, "MMIO read32");
    for (unsigned i = 0; i < 8; i++)
        expect(&mmio, 8 + i, true, 0x30 + i, i + 1, "MMIO write64");
    TEST_ASSERT(kit_recorder_count(&pio) == 8, "%zu PIO calls, expected 8",
                kit_recorder_count(&pio));
    for (unsigned i = 0; i < 4; i++)
        expect(&pio, i, true, 4 + i, 0xaa + 0x11 * i, "PIO outl");
    for (unsigned i = 0; i < 4; i++)
        expect(&pio, 4 + i, false, 8 + i, RB + 8 + i, "PIO inl");

    kit_recorder_destroy(&mmio);
    kit_recorder_destroy(&pio);
    kit_free(k);
    printf("PASS: 4-byte guest accesses reached a 1-byte device as four 1-byte calls\n");
    return 0;
}
#endif
