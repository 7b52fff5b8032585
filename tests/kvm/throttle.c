/* SPDX-License-Identifier: MIT */
/*
 * Throttling (kvm_vm_set_throttle): a guest spinning at CPL3 (no exits of
 * its own) on a vCPU thread counts far less while throttled at 90% than
 * before, and as fast as before once the throttle is back at 0; a
 * throttled (often sleeping) vCPU still pauses at once; a percentage over
 * KVM_THROTTLE_MAX is taken as the maximum.  Counts over equal windows are
 * compared with a factor-2 margin (90% should slow it 10 times); the rates
 * are printed.
 */
#ifdef STRATA_GUEST
#include "guest.h"

volatile uint64_t guest_counter;
volatile uint32_t guest_stop;

int guest_main(void)
{
    guest_report(1);
    while (!guest_stop)
        guest_counter++;
    guest_report(2);
    return 0;
}

#else
#include "tests/guests/kit.h"

/* How far the guest counts in ms milliseconds. */
static uint64_t counted(volatile uint64_t *counter, unsigned ms)
{
    uint64_t c0 = *counter;
    kit_sleep_ms(ms);
    return *counter - c0;
}

int main(void)
{
    Kit *k;
    KitResult r;
    kit_require_kvm();
    k = kit_new(GUEST_ELF, NULL);
    TEST_ASSERT(k, "kit_new failed");
    volatile uint64_t *counter = kit_guest_var(k, "guest_counter", 8);
    volatile uint32_t *stop = kit_guest_var(k, "guest_stop", 4);
    KvmVm *vm = kit_vm(k);
    TEST_ASSERT(kvm_vm_throttle(vm) == 0, "a new VM is throttled");
    TEST_ASSERT(kit_start(k) == 0, "kit_start");
    kit_wait_above(counter, 1000000);

    uint64_t full = counted(counter, 400);
    kvm_vm_set_throttle(vm, 90);
    TEST_ASSERT(kvm_vm_throttle(vm) == 90, "throttle %u, set 90", kvm_vm_throttle(vm));
    kit_sleep_ms(50); /* the throttle takes hold within a period */
    uint64_t slow = counted(counter, 400);

    /* a throttled vCPU, mostly asleep, pauses at once and stays paused */
    TEST_ASSERT(kvm_vm_pause(vm) == 0, "pause");
    uint64_t c1 = *counter;
    kit_sleep_ms(50);
    TEST_ASSERT(*counter == c1, "the guest ran while paused");
    kvm_vm_resume(vm);

    kvm_vm_set_throttle(vm, 150);
    TEST_ASSERT(kvm_vm_throttle(vm) == KVM_THROTTLE_MAX, "150%% became %u", kvm_vm_throttle(vm));
    uint64_t max = counted(counter, 400);
    kvm_vm_set_throttle(vm, 0);
    kit_sleep_ms(50);
    uint64_t again = counted(counter, 400);
    printf("counts per 400 ms: %llu full speed, %llu at 90%%, %llu at %u%%, %llu back at 0\n",
           (unsigned long long)full, (unsigned long long)slow, (unsigned long long)max,
           KVM_THROTTLE_MAX, (unsigned long long)again);
    TEST_ASSERT(slow * 2 < full, "90%% did not slow the guest down: %llu vs %llu",
                (unsigned long long)slow, (unsigned long long)full);
    TEST_ASSERT(max * 2 < slow, "%u%% is not slower than 90%%", KVM_THROTTLE_MAX);
    TEST_ASSERT(again * 2 > full, "the guest is still slow after the throttle ended");

    *stop = 1;
    kit_wait(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);
    kit_free(k);
    printf("PASS\n");
    return 0;
}
#endif
