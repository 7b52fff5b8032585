/* SPDX-License-Identifier: MIT */
/*
 * SMP for tiny guests: guest_start_aps() (see guest.h).  The BSP, at CPL3,
 * copies entry.S's real-mode trampoline below 1 MiB and starts one AP at a
 * time with INIT + SIPI through its local APIC; the AP runs the trampoline
 * (emulated on PVM), reaches CPL3 through ap_iret_frame on its own stack,
 * checks in (guest_ap_start) and calls the guest's guest_ap_main(cpu).
 */
#include "guest.h"

#define LAPIC_ID 0xfee00020u
#define LAPIC_SVR 0xfee000f0u
#define LAPIC_ICR_LO 0xfee00300u
#define LAPIC_ICR_HI 0xfee00310u
#define ICR_INIT 0x00000500u
#define ICR_STARTUP 0x00000600u
#define ICR_ASSERT 0x00004000u

/* How long the BSP waits for an AP to check in: 2^33 TSC cycles (about 3 s
 * at 2.5 GHz); an AP normally checks in within a few milliseconds. */
#define AP_TIMEOUT_TSC (1ull << 33)

enum { AP_IDLE, AP_WAITING, AP_RUNNING, AP_CANCELLED };

extern const char ap_trampoline[], ap_trampoline_end[];
extern uint64_t ap_iret_frame[5]; /* RIP, CS, RFLAGS, RSP, SS */

/* The APs' CPL3 stacks (CPU 1 uses the first). */
uint8_t guest_ap_stacks[GUEST_MAX_CPUS - 1][GUEST_AP_STACK_SIZE] __attribute__((aligned(4096)));

/* Hand-over between the BSP and the AP being started (one at a time). */
static struct {
    volatile uint32_t cpu; /* index of the AP being started */
    uint32_t state;        /* AP_*; atomics only */
} ap_boot;

__attribute__((weak)) void guest_ap_main(unsigned cpu);

__attribute__((noreturn)) void guest_ap_start(void);

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static void send_ipi(unsigned apic_id, uint32_t icr)
{
    mmio_write32(LAPIC_ICR_HI, (uint32_t)apic_id << 24);
    mmio_write32(LAPIC_ICR_LO, icr);
}

unsigned guest_apic_id(void)
{
    return mmio_read32(LAPIC_ID) >> 24;
}

/* An INIT to itself: the CPU goes back to wait-for-SIPI (KVM keeps its
 * thread asleep in KVM_RUN) and may be started again. */
static __attribute__((noreturn)) void ap_park(void)
{
    send_ipi(guest_apic_id(), ICR_INIT | ICR_ASSERT);
    for (;;)
        __asm__ volatile("pause" ::: "memory");
}

/* The AP's first code at CPL3 (ap_iret_frame's RIP): check in, run the
 * guest's code, park.  An AP the BSP has given up on parks at once. */
void guest_ap_start(void)
{
    unsigned cpu = ap_boot.cpu;
    uint32_t expect = AP_WAITING;

    if (__atomic_compare_exchange_n(&ap_boot.state, &expect, AP_RUNNING, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST))
        guest_ap_main(cpu);
    ap_park();
}

unsigned guest_start_aps(unsigned ncpus)
{
    size_t len = (size_t)(ap_trampoline_end - ap_trampoline);
    unsigned cpu;

    GUEST_ASSERT(guest_ap_main);
    GUEST_ASSERT(len <= 4096);
    if (ncpus > GUEST_MAX_CPUS)
        ncpus = GUEST_MAX_CPUS;
    if (ncpus <= 1)
        return 1;
    memcpy((void *)(uintptr_t)GUEST_AP_TRAMPOLINE, ap_trampoline, len);
    /* Software-enable the BSP's local APIC (spurious vector 0xff).  Besides
     * being what the SDM's start-up sequence does, on KVM this rebuilds the
     * APIC-ID map: on some hosts vCPUs created after vCPU 0 are missing from
     * it until then, and an INIT to them reaches nobody. */
    mmio_write32(LAPIC_SVR, 0x1ff);

    for (cpu = 1; cpu < ncpus; cpu++) {
        uint64_t t0;
        uint32_t st;

        /* The stack's top, less a slot where a return address would be. */
        ap_iret_frame[3] = (uint64_t)(uintptr_t)(guest_ap_stacks[cpu - 1] + GUEST_AP_STACK_SIZE) -
                           8;
        ap_boot.cpu = cpu;
        __atomic_store_n(&ap_boot.state, AP_WAITING, __ATOMIC_SEQ_CST);
        send_ipi(cpu, ICR_INIT | ICR_ASSERT);
        send_ipi(cpu, ICR_STARTUP | ICR_ASSERT | (GUEST_AP_TRAMPOLINE >> 12));
        t0 = rdtsc();
        while ((st = __atomic_load_n(&ap_boot.state, __ATOMIC_SEQ_CST)) == AP_WAITING &&
               rdtsc() - t0 < AP_TIMEOUT_TSC)
            __asm__ volatile("pause" ::: "memory");
        if (st == AP_WAITING) {
            uint32_t expect = AP_WAITING;

            /* Too late from now on: a straggler parks without running. */
            if (__atomic_compare_exchange_n(&ap_boot.state, &expect, AP_CANCELLED, false,
                                            __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
                break;
        }
    }
    return cpu;
}
