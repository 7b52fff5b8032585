/* SPDX-License-Identifier: MIT */
/*
 * Slot changes under a running vCPU thread.  The guest runs a counting loop
 * (at CPL3, no exits) from code the host put in a RAM region of its own.
 * While it runs, the host adds a region, makes it read-only and removes it
 * (a commit that deletes a slot pauses and resumes the vCPU), then
 * re-creates the slot of the very RAM the guest executes from 50 times
 * (read-only toggled): each one pauses the vCPU once, no fetch ever misses
 * (no error, the VM does not end) and the loop goes on counting.  A second
 * kvm_vm_start is refused; kvm_vm_request_end ends the VM with its code and
 * text.
 */
#define CODE 0x20000000ull /* the loop's own RAM region */

#ifdef STRATA_GUEST
#include "guest.h"

volatile uint64_t guest_counter;

int guest_main(void)
{
    void (*loop)(volatile uint64_t *) = (void (*)(volatile uint64_t *))CODE;

    guest_report(1);
    loop(&guest_counter); /* never returns: the host ends the VM */
    return 1;
}

#else
#include <errno.h>
#include <time.h>
#include "tests/guests/kit.h"

int main(void)
{
    /* 1: incq (%rdi) ; jmp 1b */
    static const uint8_t loop[] = { 0x48, 0xff, 0x07, 0xeb, 0xfb };
    Kit *k;
    KvmVmEnd end;
    MemoryRegion code, extra;
    KvmVmStats st0, st;
    volatile uint64_t *counter;
    uint64_t c;

    kit_require_kvm();
    k = kit_new(GUEST_ELF, NULL);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(memory_region_init_ram(&code, kit_ctx(k), "live_slots", "code", 0x10000) == 0,
                "code");
    TEST_ASSERT(memory_region_init_ram(&extra, kit_ctx(k), "live_slots", "extra", 0x10000) == 0,
                "extra");
    memcpy(memory_region_get_ram_ptr(&code), loop, sizeof(loop));
    TEST_ASSERT(memory_region_add_subregion(kit_sysmem(k), CODE, &code) == 0, "add code");
    counter = kit_guest_var(k, "guest_counter", 8);

    TEST_ASSERT(kit_start(k) == 0, "kit_start");
    TEST_ASSERT(kvm_vm_start(kit_vm(k)) == -EALREADY, "a second start was not refused");
    c = kit_wait_above(counter, 1000);

    /* A commit that deletes a slot pauses and resumes the running vCPU. */
    kvm_vm_get_stats(kit_vm(k), &st0);
    memory_region_add_subregion(kit_sysmem(k), 0x30000000, &extra);
    memory_region_set_readonly(&extra, true);
    memory_region_del_subregion(kit_sysmem(k), &extra);
    kvm_vm_get_stats(kit_vm(k), &st);
    TEST_ASSERT(st.slot_pauses == st0.slot_pauses + 2, "%llu pauses for a toggle and a removal",
                (unsigned long long)(st.slot_pauses - st0.slot_pauses));
    c = kit_wait_above(counter, c);

    /* The slot of the RAM the guest runs from, re-created 50 times while
     * it runs. */
    kvm_vm_get_stats(kit_vm(k), &st0);
    for (int i = 0; i < 50; i++) {
        struct timespec ts = { 0, 300000 };

        memory_region_set_readonly(&code, i % 2 == 0);
        nanosleep(&ts, NULL);
    }
    kvm_vm_get_stats(kit_vm(k), &st);
    TEST_ASSERT(st.errors == st0.errors, "errors: %s", kvm_vm_last_error(kit_vm(k)));
    TEST_ASSERT(st.slot_pauses == st0.slot_pauses + 50, "%llu pauses for 50 toggles",
                (unsigned long long)(st.slot_pauses - st0.slot_pauses));
    TEST_ASSERT(!kvm_vm_ended(kit_vm(k)), "the VM ended while its code's slot changed");
    kit_wait_above(counter, *counter);

    kvm_vm_request_end(kit_vm(k), KVM_END_REQUESTED, 3, "test over");
    TEST_ASSERT(kvm_vm_wait(kit_vm(k), &end) == KVM_END_REQUESTED, "end: %s", end.text);
    TEST_ASSERT(end.code == 3 && !strcmp(end.text, "test over"), "end code %d text '%s'", end.code,
                end.text);
    TEST_ASSERT(kvm_vm_ended(kit_vm(k)), "not ended");
    printf("the guest counted to %llu\n", (unsigned long long)*counter);

    memory_region_del_subregion(kit_sysmem(k), &code);
    memory_region_destroy(&code);
    memory_region_destroy(&extra);
    kit_free(k);
    printf("PASS: slots deleted and re-created under a running vCPU; the guest went on\n");
    return 0;
}
#endif
