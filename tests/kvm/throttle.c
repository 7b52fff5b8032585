/* SPDX-License-Identifier: MIT */
/*
 * Throttling (kvm_vm_set_throttle): a guest spinning at CPL3 (no exits of
 * its own) on a vCPU thread counts far less while throttled at 90% than
 * before, and as fast as before once the throttle is back at 0; a
 * throttled (often sleeping) vCPU still pauses at once; a percentage over
 * KVM_THROTTLE_MAX is taken as the maximum.  What is asserted is the
 * mechanism's own accounting (the vCPU's throttle sleeps and their share of
 * the wall clock), not the guest's speed, which a loaded host also changes:
 * the guest's counts over equal windows are printed.
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

typedef struct {
    uint64_t count;     /* how far the guest counted */
    uint64_t sleeps;    /* throttle sleeps of its vCPU */
    double slept_share; /* their length / the window */
} Window;

static uint64_t mono_ns_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The guest's count and its vCPU's throttle sleeps over ms milliseconds. */
static Window window(Kit *k, volatile uint64_t *counter, unsigned ms)
{
    KvmVcpuExitStats a, b;
    kvm_vcpu_get_exit_stats(kit_vcpu(k), &a);
    uint64_t c0 = *counter, t0 = mono_ns_now();
    kit_sleep_ms(ms);
    kvm_vcpu_get_exit_stats(kit_vcpu(k), &b);
    uint64_t t1 = mono_ns_now();
    return (Window){ *counter - c0, b.throttle_sleeps - a.throttle_sleeps,
                     (double)(b.throttled_ns - a.throttled_ns) / (double)(t1 - t0) };
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

    Window full = window(k, counter, 400);
    kvm_vm_set_throttle(vm, 90);
    TEST_ASSERT(kvm_vm_throttle(vm) == 90, "throttle %u, set 90", kvm_vm_throttle(vm));
    kit_sleep_ms(50); /* the throttle takes hold within a period */
    Window slow = window(k, counter, 400);

    /* a throttled vCPU, mostly asleep, pauses at once and stays paused */
    TEST_ASSERT(kvm_vm_pause(vm) == 0, "pause");
    uint64_t c1 = *counter;
    kit_sleep_ms(50);
    TEST_ASSERT(*counter == c1, "the guest ran while paused");
    kvm_vm_resume(vm);

    kvm_vm_set_throttle(vm, 150);
    TEST_ASSERT(kvm_vm_throttle(vm) == KVM_THROTTLE_MAX, "150%% became %u", kvm_vm_throttle(vm));
    Window max = window(k, counter, 400);
    kvm_vm_set_throttle(vm, 0);
    kit_sleep_ms(50);
    Window again = window(k, counter, 400);
    printf("per 400 ms: full speed %llu counts; at 90%% %llu counts, %llu sleeps, %.0f%% "
           "asleep; at %u%% %llu counts, %llu sleeps, %.0f%% asleep; back at 0 %llu counts, "
           "%llu sleeps\n",
           (unsigned long long)full.count, (unsigned long long)slow.count,
           (unsigned long long)slow.sleeps, slow.slept_share * 100, KVM_THROTTLE_MAX,
           (unsigned long long)max.count, (unsigned long long)max.sleeps, max.slept_share * 100,
           (unsigned long long)again.count, (unsigned long long)again.sleeps);
    TEST_ASSERT(full.sleeps == 0, "the vCPU slept for a throttle before one was set");
    TEST_ASSERT(slow.sleeps > 0 && slow.slept_share > 0.5,
                "at 90%%: %llu sleeps, %.0f%% of the window asleep (want > 50%%)",
                (unsigned long long)slow.sleeps, slow.slept_share * 100);
    TEST_ASSERT(max.slept_share > 0.8, "at %u%%: %.0f%% of the window asleep (want > 80%%)",
                KVM_THROTTLE_MAX, max.slept_share * 100);
    TEST_ASSERT(again.sleeps == 0, "still %llu throttle sleeps after the throttle ended",
                (unsigned long long)again.sleeps);
    TEST_ASSERT(again.count > 0, "the guest does not run after the throttle ended");

    *stop = 1;
    kit_wait(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);
    kit_free(k);
    printf("PASS\n");
    return 0;
}
#endif
