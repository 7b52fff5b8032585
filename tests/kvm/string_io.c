/* SPDX-License-Identifier: MIT */
/*
 * Port I/O through the exit path: single OUT/IN, and the string forms
 * (REP OUTSB, REP OUTSW, REP INSB) whose one exit carries several elements:
 * the device sees every element, in order, with its width and data, and
 * REP INS stores what the device returned in guest memory.
 */
#define PORT 0x3f8
#define RB 0x5a /* recorder read_base: port offset a reads RB + a */

#ifdef STRATA_GUEST
#include "guest.h"

static const char out_bytes[4] = { 'w', 'x', 'y', 'z' };
static const uint16_t out_words[2] = { 0x1234, 0xabcd };
volatile uint8_t in_bytes[4];

int guest_main(void)
{
    const void *src;
    void *dst;
    uint64_t n;
    uint8_t v;

    outb(PORT, 'A');
    v = inb(PORT + 1);
    outb(PORT + 2, v);
    src = out_bytes;
    n = 4;
    __asm__ volatile("cld; rep outsb" : "+S"(src), "+c"(n) : "d"((uint16_t)(PORT + 3)) : "memory");
    src = out_words;
    n = 2;
    __asm__ volatile("cld; rep outsw" : "+S"(src), "+c"(n) : "d"((uint16_t)(PORT + 4)) : "memory");
    dst = (void *)in_bytes;
    n = 3;
    __asm__ volatile("cld; rep insb" : "+D"(dst), "+c"(n) : "d"((uint16_t)(PORT + 1)) : "memory");
    GUEST_ASSERT(in_bytes[0] == RB + 1 && in_bytes[1] == RB + 1 && in_bytes[2] == RB + 1);
    GUEST_ASSERT(in_bytes[3] == 0);
    return 0;
}

#else
#include "tests/guests/kit.h"

int main(void)
{
    Kit *k;
    KitResult r;
    static KitRecorder dev;
    KvmVmStats st;
    const KitAccess want[] = {
        { 0, 'A', 1, true },     { 1, RB + 1, 1, false }, { 2, RB + 1, 1, true },
        { 3, 'w', 1, true },     { 3, 'x', 1, true },     { 3, 'y', 1, true },
        { 3, 'z', 1, true },     { 4, 0x1234, 2, true },  { 4, 0xabcd, 2, true },
        { 1, RB + 1, 1, false }, { 1, RB + 1, 1, false }, { 1, RB + 1, 1, false },
    };
    const size_t nwant = sizeof(want) / sizeof(want[0]);
    volatile uint8_t *in;

    kit_require_kvm();
    k = kit_new(GUEST_ELF, NULL);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(kit_recorder_init(&dev, k, "ports", 8, 8) == 0, "recorder");
    dev.read_base = RB;
    TEST_ASSERT(memory_region_add_subregion(kit_iomem(k), PORT, &dev.mr) == 0, "add ports");

    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);

    TEST_ASSERT(kit_recorder_count(&dev) == nwant, "%zu port accesses, expected %zu",
                kit_recorder_count(&dev), nwant);
    for (size_t i = 0; i < nwant; i++) {
        KitAccess a = kit_recorder_get(&dev, i);

        TEST_ASSERT(a.addr == want[i].addr && a.data == want[i].data && a.size == want[i].size &&
                        a.write == want[i].write,
                    "access %zu: %s +%llu size %u data %#llx", i, a.write ? "out" : "in",
                    (unsigned long long)a.addr, a.size, (unsigned long long)a.data);
    }
    in = kit_guest_var(k, "in_bytes", 4);
    TEST_ASSERT(in[0] == RB + 1 && in[1] == RB + 1 && in[2] == RB + 1 && in[3] == 0,
                "REP INSB stored %02x %02x %02x %02x", in[0], in[1], in[2], in[3]);
    kvm_vm_get_stats(kit_vm(k), &st);
    printf("%llu IO exits for %zu port accesses (and the test device's)\n",
           (unsigned long long)st.exits_io, nwant);
    /* the vCPU's own exit counters (x-query-stats') agree with the VM's:
     * one vCPU, so every IO exit it took is one the VM handled (a REP
     * string instruction may move several elements in one) */
    KvmVcpuExitStats ex;
    kvm_vcpu_get_exit_stats(kit_vcpu(k), &ex);
    TEST_ASSERT(ex.exits[KVM_EXITS_IO] == st.exits_io && ex.exits[KVM_EXITS_IO] > 0,
                "vCPU exits io %llu, VM exits_io %llu", (unsigned long long)ex.exits[KVM_EXITS_IO],
                (unsigned long long)st.exits_io);
    TEST_ASSERT(ex.exits[KVM_EXITS_MMIO] == st.exits_mmio, "vCPU exits mmio %llu, VM %llu",
                (unsigned long long)ex.exits[KVM_EXITS_MMIO], (unsigned long long)st.exits_mmio);

    kit_recorder_destroy(&dev);
    kit_free(k);
    printf("PASS: OUT/IN and REP OUTS/INS elements reached the device in order\n");
    return 0;
}
#endif
