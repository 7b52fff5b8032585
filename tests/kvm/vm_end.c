/* SPDX-License-Identifier: MIT */
/*
 * How a VM ends: HLT (resumable, synchronous run), a triple fault
 * (KVM_EXIT_SHUTDOWN) and instructions PVM's CPL0 emulator cannot handle
 * (KVM_EXIT_INTERNAL_ERROR), each with the right reason and message.  On a
 * KVM that runs CPL0 natively those instructions fault or succeed instead,
 * and the test checks that.  The
 * host picks the scenario through the SYNC port before the CPL0 part runs.
 */
#define MODE_HLT 1        /* hlt at CPL0, then carry on */
#define MODE_UD2_CPL3 2   /* #UD at CPL3 with no IDT: triple fault */
#define MODE_UD2_CPL0 3   /* #UD at CPL0: triple fault */
#define MODE_INT3_CPL0 4  /* int3 at CPL0 */
#define MODE_XRSTOR 5     /* xrstor at CPL0 */
#define MODE_CMPXCHG16B 6 /* cmpxchg16b at CPL0 */

#ifdef STRATA_GUEST
#include "guest.h"

static uint32_t mode;
static uint8_t area[1024] __attribute__((aligned(64)));

void guest_kernel_main(void)
{
    mode = guest_sync(0);
    switch (mode) {
    case MODE_HLT:
        __asm__ volatile("hlt");
        guest_report(0x4a17); /* resumed after HLT */
        break;
    case MODE_UD2_CPL0:
        __asm__ volatile("ud2");
        break;
    case MODE_INT3_CPL0:
        __asm__ volatile("int3");
        break;
    case MODE_XRSTOR:
        __asm__ volatile("xrstor %0" : : "m"(area), "a"(-1), "d"(-1) : "memory");
        break;
    case MODE_CMPXCHG16B:
        __asm__ volatile("lock cmpxchg16b %0"
                         : "+m"(*(unsigned __int128 *)area)
                         : "a"(0), "d"(0), "b"(1), "c"(1)
                         : "memory", "cc");
        break;
    }
}

int guest_main(void)
{
    if (mode == MODE_UD2_CPL3)
        __asm__ volatile("ud2");
    guest_report(0xc93); /* reached CPL3 */
    return 0;
}

#else
#include <string.h>
#include "tests/guests/kit.h"

static uint32_t pick_mode(Kit *k, uint32_t phase, void *opaque)
{
    return *(uint32_t *)opaque;
}

static Kit *make(uint32_t *mode)
{
    Kit *k = kit_new(GUEST_ELF, NULL);

    TEST_ASSERT(k, "kit_new failed");
    kit_set_sync_handler(k, pick_mode, mode);
    return k;
}

static void expect_reports(Kit *k, size_t want_n, const uint32_t *want)
{
    size_t n;
    const uint32_t *rep = kit_reports(k, &n);

    TEST_ASSERT(n == want_n, "%zu reports, expected %zu", n, want_n);
    for (size_t i = 0; i < n; i++)
        TEST_ASSERT(rep[i] == want[i], "report %zu: %#x, expected %#x", i, rep[i], want[i]);
}

static void test_hlt(void)
{
    uint32_t mode = MODE_HLT;
    Kit *k = make(&mode);
    KitResult r;
    struct kvm_regs regs;

    kit_run(k, &r);
    TEST_ASSERT(r.reason == KVM_END_HLT && !r.exited, "HLT: end %d \"%s\"", r.reason, r.text);
    TEST_ASSERT(!strcmp(r.text, "hlt"), "HLT: text \"%s\"", r.text);
    TEST_ASSERT(kvm_vcpu_get_regs(kit_vcpu(k), &regs) == 0, "get_regs");
    expect_reports(k, 0, NULL);
    /* HLT is resumable: run again, the guest carries on to CPL3. */
    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);
    expect_reports(k, 2, (const uint32_t[]){ 0x4a17, 0xc93 });
    kit_free(k);
    printf("ok: hlt ends a run (\"hlt\") and the guest resumes after it\n");
}

/* Runs the scenario on a vCPU thread, as the VMM does, and checks how the
 * VM ended. */
static void test_end(uint32_t mode, const char *what, KvmEndReason want, const char *text)
{
    Kit *k = make(&mode);
    KitResult r;

    TEST_ASSERT(kit_start(k) == 0, "kit_start");
    kit_wait(k, &r);
    TEST_ASSERT(r.reason == want && !r.exited, "%s: end %d (%s), \"%s\"", what, r.reason,
                kvm_end_reason_str(r.reason), r.text);
    TEST_ASSERT(strstr(r.text, text), "%s: text \"%s\" lacks \"%s\"", what, r.text, text);
    TEST_ASSERT(kvm_vm_ended(kit_vm(k)), "%s: VM not marked ended", what);
    expect_reports(k, 0, NULL);
    kit_free(k);
    printf("ok: %s ends the VM: \"%s\"\n", what, r.text);
}

/* True if this KVM emulates CPL0 code (PVM: int3 there is an emulation
 * failure), false if it runs it natively (int3 with no IDT: triple fault). */
static bool cpl0_is_emulated(void)
{
    uint32_t mode = MODE_INT3_CPL0;
    Kit *k = make(&mode);
    KitResult r;

    TEST_ASSERT(kit_start(k) == 0, "kit_start");
    kit_wait(k, &r);
    kit_free(k);
    TEST_ASSERT(r.reason == KVM_END_ERROR || r.reason == KVM_END_SHUTDOWN,
                "int3 at CPL0: end %d (%s), \"%s\"", r.reason, kvm_end_reason_str(r.reason),
                r.text);
    return r.reason == KVM_END_ERROR;
}

/* The scenario runs to the guest's EXIT with code 0. */
static void test_guest_passes(uint32_t mode, const char *what)
{
    Kit *k = make(&mode);
    KitResult r;

    TEST_ASSERT(kit_start(k) == 0, "kit_start");
    kit_wait(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);
    kit_free(k);
    printf("ok: %s runs and the guest passes\n", what);
}

int main(void)
{
    kit_require_kvm();
    test_hlt();
    test_end(MODE_UD2_CPL3, "#UD at CPL3 (no IDT)", KVM_END_SHUTDOWN, "shutdown (triple fault)");
    test_end(MODE_UD2_CPL0, "#UD at CPL0 (no IDT)", KVM_END_SHUTDOWN, "shutdown (triple fault)");
    if (cpl0_is_emulated()) {
        test_end(MODE_INT3_CPL0, "int3 at CPL0", KVM_END_ERROR, "internal error");
        test_end(MODE_XRSTOR, "xrstor at CPL0", KVM_END_ERROR, "internal error");
        test_end(MODE_CMPXCHG16B, "cmpxchg16b at CPL0", KVM_END_ERROR, "internal error");
    } else {
        /* CPL0 runs natively (VMX/SVM, the nested bed): nothing fails to
         * emulate, so KVM_EXIT_INTERNAL_ERROR cannot be provoked this way. */
        printf("note: this KVM runs CPL0 natively; the emulation-failure cases become: "
               "int3 and xrstor fault (no IDT), cmpxchg16b succeeds\n");
        test_end(MODE_INT3_CPL0, "int3 at CPL0", KVM_END_SHUTDOWN, "shutdown (triple fault)");
        test_end(MODE_XRSTOR, "xrstor at CPL0", KVM_END_SHUTDOWN, "shutdown (triple fault)");
        test_guest_passes(MODE_CMPXCHG16B, "cmpxchg16b at CPL0");
    }
    printf("PASS\n");
    return 0;
}
#endif
