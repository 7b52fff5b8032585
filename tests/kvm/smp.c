/* SPDX-License-Identifier: MIT */
/*
 * SMP in the tiny-guest kit: the BSP starts the APs with guest_start_aps()
 * (INIT + SIPI to a real-mode trampoline) and every CPU ends up at CPL3 in
 * long mode with IOPL 3, its own stack and the shared TSS, and runs at the
 * same time as the others.
 *
 * Each CPU records what it sees (APIC ID, CPL, PUSHF's IOPL, a port read of the
 * test device, a stack address) in its own page of smp_region, waits for
 * the BSP's go, then increments its own counter and a shared one (LOCK
 * ADD).  Meanwhile the host pauses the VM once and reads every vCPU's
 * registers (CPL3 code and stack segments, long mode on the kit's page
 * tables, TR = the guest's TSS, the BSP's IOPL, RSP inside that CPU's stack); at the end it checks each AP went back to
 * wait-for-SIPI (parked).  Runs with 2 and 4 vCPUs, then asks for 3 CPUs
 * on a 2-vCPU VM: guest_start_aps must return 2.
 */
#define N_OWN 200000u   /* increments of each CPU's own counter */
#define N_SHARED 20000u /* LOCK ADDs to the shared counter, per CPU */

#define AP_STACK 16384   /* GUEST_AP_STACK_SIZE */
#define REGION_SIZE 4096 /* one page of smp_region per CPU */

#define SYNC_REQUEST 1 /* answer: how many CPUs to ask guest_start_aps for */
#define SYNC_INSPECT 2 /* every CPU waits for go: the host reads the vCPUs */
#define SYNC_PARKED 3  /* answer: 1 once every AP is in wait-for-SIPI */

#ifdef STRATA_GUEST
#include "guest.h"

struct cpu_region {
    volatile uint64_t count; /* N_OWN at the end */
    volatile uint64_t stack; /* address of a local variable */
    volatile uint32_t cpu, apic_id, cpl, iopl, port, done;
} __attribute__((aligned(4096)));

_Static_assert(sizeof(struct cpu_region) == REGION_SIZE, "region layout");
_Static_assert(GUEST_AP_STACK_SIZE == AP_STACK, "AP stack size");

struct cpu_region smp_region[GUEST_MAX_CPUS];
volatile uint64_t smp_shared;
static volatile uint32_t arrived, go;

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

/* Spins until *p == v; fails the test after about 2^35 TSC cycles. */
static void wait_for(volatile uint32_t *p, uint32_t v)
{
    uint64_t t0 = rdtsc();

    while (*p != v) {
        GUEST_ASSERT(rdtsc() - t0 < (1ull << 35));
        __asm__ volatile("pause" ::: "memory");
    }
}

static void record(unsigned cpu)
{
    struct cpu_region *r = &smp_region[cpu];
    volatile uint32_t local = 0;
    uint64_t flags;
    uint16_t cs;

    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    __asm__ volatile("pushfq; popq %0" : "=r"(flags));
    r->cpu = cpu;
    r->apic_id = guest_apic_id();
    r->cpl = cs & 3;
    r->iopl = (uint32_t)(flags >> 12) & 3; /* as PUSHF shows it */
    r->port = inl(TESTDEV_PORT_REPORT);    /* through the TSS I/O bitmap on PVM */
    r->stack = (uint64_t)(uintptr_t)&local;
}

static void count(unsigned cpu)
{
    struct cpu_region *r = &smp_region[cpu];

    for (uint32_t i = 0; i < N_OWN; i++)
        r->count++;
    for (uint32_t i = 0; i < N_SHARED; i++)
        __atomic_fetch_add(&smp_shared, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
}

void guest_ap_main(unsigned cpu)
{
    record(cpu);
    __atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
    wait_for(&go, 1);
    count(cpu);
}

int guest_main(void)
{
    unsigned want = guest_sync(SYNC_REQUEST);
    unsigned up = guest_start_aps(want);
    unsigned tries;

    guest_report(up);
    record(0);
    wait_for(&arrived, up - 1);
    guest_sync(SYNC_INSPECT); /* every AP spins at CPL3 now */
    __atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
    count(0);
    for (unsigned i = 1; i < up; i++)
        wait_for(&smp_region[i].done, 1);

    for (unsigned i = 0; i < up; i++) {
        GUEST_ASSERT(smp_region[i].count == N_OWN);
        guest_report((uint32_t)smp_region[i].count);
    }
    GUEST_ASSERT(smp_shared == (uint64_t)up * N_SHARED);
    guest_report((uint32_t)smp_shared);

    /* The APs return from guest_ap_main and park. */
    for (tries = 0; tries < 1000 && guest_sync(SYNC_PARKED) != 1; tries++)
        guest_pause_loop(100000);
    GUEST_ASSERT(tries < 1000);
    return 0;
}

#else
#include <sys/ioctl.h>

#include "tests/guests/kit.h"

#define MAX_CPUS 8

typedef struct Snap {
    struct kvm_sregs sregs;
    struct kvm_regs regs;
    int ok;
} Snap;

typedef struct Ctx {
    unsigned request; /* what the guest asks guest_start_aps for */
    unsigned inspects;
    Snap snap[MAX_CPUS];
    unsigned parked_calls;
} Ctx;

/* Host copy of the guest's struct cpu_region. */
typedef struct Region {
    uint64_t count, stack;
    uint32_t cpu, apic_id, cpl, iopl, port, done;
} Region;

static int mp_state(Kit *k, unsigned i)
{
    struct kvm_mp_state mp = { 0 };

    if (ioctl(kvm_vcpu_fd(kvm_vm_vcpu(kit_vm(k), i)), KVM_GET_MP_STATE, &mp) < 0)
        return -1;
    return (int)mp.mp_state;
}

static uint32_t on_sync(Kit *k, uint32_t phase, void *opaque)
{
    Ctx *c = opaque;
    size_t nrep;
    const uint32_t *rep = kit_reports(k, &nrep);
    unsigned up = nrep ? rep[0] : 1;
    uint32_t answer = 0;

    switch (phase) {
    case SYNC_REQUEST:
        return c->request;
    case SYNC_INSPECT:
        /* Out of KVM_RUN, every vCPU's registers can be read from here. */
        kvm_vm_pause(kit_vm(k));
        for (unsigned i = 0; i < kit_ncpus(k) && i < MAX_CPUS; i++) {
            KvmVcpu *v = kvm_vm_vcpu(kit_vm(k), i);

            c->snap[i].ok = kvm_vcpu_get_sregs(v, &c->snap[i].sregs) == 0 &&
                            kvm_vcpu_get_regs(v, &c->snap[i].regs) == 0;
        }
        kvm_vm_resume(kit_vm(k));
        c->inspects++;
        return 0;
    case SYNC_PARKED:
        c->parked_calls++;
        kvm_vm_pause(kit_vm(k));
        answer = 1;
        for (unsigned i = 1; i < up; i++)
            if (mp_state(k, i) != KVM_MP_STATE_INIT_RECEIVED)
                answer = 0;
        kvm_vm_resume(kit_vm(k));
        return answer;
    default:
        return 0;
    }
}

/* Runs the guest on `ncpus` vCPUs asking for `request` CPUs; checks that
 * `expect` came up and did their work. */
static void run(unsigned ncpus, unsigned request, unsigned expect)
{
    KitOptions o = { .ncpus = ncpus };
    Ctx c = { .request = request };
    KitResult r;
    Kit *k;
    const uint32_t *rep;
    size_t n;
    uint64_t tss, pml4, stacks;
    const Region *reg;
    const uint64_t *shared;
    uint64_t bsp_iopl;

    printf("-- %u vCPUs, guest asks for %u CPUs\n", ncpus, request);
    k = kit_new(GUEST_ELF, &o);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(kit_ncpus(k) == ncpus && kvm_vm_nr_vcpus(kit_vm(k)) == ncpus,
                "%u vCPUs made, %u asked", kvm_vm_nr_vcpus(kit_vm(k)), ncpus);
    TEST_ASSERT(kvm_vm_has_irqchip(kit_vm(k)), "no in-kernel irqchip with %u vCPUs", ncpus);
    for (unsigned i = 1; i < ncpus; i++)
        TEST_ASSERT(mp_state(k, i) == KVM_MP_STATE_UNINITIALIZED,
                    "AP %u does not wait for INIT/SIPI before the run (mp_state %d)", i,
                    mp_state(k, i));
    tss = kit_symbol(k, "tss");
    pml4 = kit_symbol(k, "pml4");
    stacks = kit_symbol(k, "guest_ap_stacks");
    TEST_ASSERT(tss && pml4 && stacks, "guest symbols tss/pml4/guest_ap_stacks missing");

    kit_set_sync_handler(k, on_sync, &c);
    TEST_ASSERT(kit_start(k) == 0, "kit_start failed");
    kit_wait(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);

    rep = kit_reports(k, &n);
    TEST_ASSERT(n >= 1 && rep[0] == expect,
                "guest_start_aps(%u) on %u vCPUs returned %u, expected %u", request, ncpus,
                n ? rep[0] : 0, expect);
    TEST_ASSERT(n == expect + 2, "%zu reports, expected %u", n, expect + 2);
    TEST_ASSERT(c.inspects == 1, "%u inspections", c.inspects);
    TEST_ASSERT(c.parked_calls >= 1, "the guest never asked whether the APs parked");

    reg = kit_guest_var(k, "smp_region", (uint64_t)expect * REGION_SIZE);
    shared = kit_guest_var(k, "smp_shared", 8);
    TEST_ASSERT(*shared == (uint64_t)expect * N_SHARED, "shared counter %llu, expected %llu",
                (unsigned long long)*shared, (unsigned long long)expect * N_SHARED);
    bsp_iopl = (c.snap[0].regs.rflags >> 12) & 3;
    for (unsigned i = 0; i < expect; i++) {
        const Region *base = reg;
        const Region *g = (const Region *)((const uint8_t *)reg + (size_t)i * REGION_SIZE);
        const Snap *s = &c.snap[i];
        uint64_t iopl = (s->regs.rflags >> 12) & 3;

        TEST_ASSERT(g->cpu == i && g->apic_id == i, "CPU %u: region says cpu %u APIC ID %u", i,
                    g->cpu, g->apic_id);
        /* PUSHF at CPL3 shows the real IOPL (0 on PVM, whose IOPL 3 is
         * virtual; KVM's RFLAGS below is the guest's): the APs see what the
         * BSP sees. */
        TEST_ASSERT(g->cpl == 3 && g->iopl == base->iopl,
                    "CPU %u ran at CPL%u with PUSHF IOPL %u (the BSP's: %u)", i, g->cpl, g->iopl,
                    base->iopl);
        TEST_ASSERT(g->port == TESTDEV_MAGIC, "CPU %u: inl(0xf0) = %#x", i, g->port);
        TEST_ASSERT(g->count == N_OWN, "CPU %u: own counter %llu", i, (unsigned long long)g->count);
        TEST_ASSERT(g->done == 1, "CPU %u did not finish", i);
        if (i > 0) {
            uint64_t lo = stacks + (uint64_t)(i - 1) * AP_STACK, hi = lo + AP_STACK;

            TEST_ASSERT(g->stack >= lo && g->stack < hi,
                        "AP %u: stack address %#llx outside its stack [%#llx, %#llx)", i,
                        (unsigned long long)g->stack, (unsigned long long)lo,
                        (unsigned long long)hi);
            TEST_ASSERT(s->regs.rsp >= lo && s->regs.rsp < hi,
                        "AP %u: RSP %#llx outside its stack [%#llx, %#llx)", i,
                        (unsigned long long)s->regs.rsp, (unsigned long long)lo,
                        (unsigned long long)hi);
            TEST_ASSERT(mp_state(k, i) == KVM_MP_STATE_INIT_RECEIVED,
                        "AP %u did not park in wait-for-SIPI (mp_state %d)", i, mp_state(k, i));
        }
        /* What KVM says about the vCPU while it spun at CPL3. */
        TEST_ASSERT(s->ok, "CPU %u: registers not read", i);
        TEST_ASSERT(s->sregs.cs.selector == 0x2b && s->sregs.cs.l && s->sregs.cs.dpl == 3 &&
                        s->sregs.ss.selector == 0x23,
                    "CPU %u: cs %#x (l=%u dpl=%u) ss %#x, not the CPL3 64-bit segments", i,
                    s->sregs.cs.selector, s->sregs.cs.l, s->sregs.cs.dpl, s->sregs.ss.selector);
        TEST_ASSERT((s->sregs.efer & 0x500) == 0x500 && (s->sregs.cr0 & 0x80000001) == 0x80000001 &&
                        (s->sregs.cr3 & ~0xfffull) == pml4,
                    "CPU %u: efer %#llx cr0 %#llx cr3 %#llx: not long mode on the kit's tables", i,
                    (unsigned long long)s->sregs.efer, (unsigned long long)s->sregs.cr0,
                    (unsigned long long)s->sregs.cr3);
        TEST_ASSERT(s->sregs.tr.selector == 0x30 && s->sregs.tr.base == tss &&
                        s->sregs.tr.limit == 0x2069,
                    "CPU %u: TR %#x base %#llx limit %#x, not the kit's TSS at %#llx", i,
                    s->sregs.tr.selector, (unsigned long long)s->sregs.tr.base, s->sregs.tr.limit,
                    (unsigned long long)tss);
        /* The iretq frames ask for IOPL 3; PVM keeps IOPL 0 at CPL3 (its
         * port checks use the TSS bitmap, which inl above went through), so
         * what must hold is: every AP like the BSP. */
        TEST_ASSERT(iopl == bsp_iopl, "CPU %u: IOPL %llu, the BSP's is %llu", i,
                    (unsigned long long)iopl, (unsigned long long)bsp_iopl);
        printf("CPU %u: APIC ID %u, CPL3, RFLAGS %#llx, TR %#x, rsp %#llx, %llu own increments\n",
               i, g->apic_id, (unsigned long long)s->regs.rflags, s->sregs.tr.selector,
               (unsigned long long)s->regs.rsp, (unsigned long long)g->count);
    }
    kit_free(k);
}

int main(void)
{
    KitOptions o = { .ncpus = 2 };
    KitResult r;
    Kit *k;

    kit_require_kvm();

    /* kit_run runs vCPU 0 alone: refused with APs. */
    k = kit_new(GUEST_ELF, &o);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(kit_run(k, &r) == KVM_END_ERROR && !r.exited,
                "kit_run with 2 vCPUs: reason %d exited %d", r.reason, r.exited);
    kit_free(k);

    run(2, 2, 2);
    run(4, 4, 4);
    run(2, 3, 2); /* APIC ID 2 does not exist: times out (a few seconds) */
    printf("PASS: APs started by INIT/SIPI ran at CPL3 with their own stacks, counted, parked\n");
    return 0;
}
#endif
