/* SPDX-License-Identifier: MIT */
/*
 * Pausing a VM with two running vCPUs, from the main thread and from a
 * vCPU's own thread.  The BSP counts in a loop; the AP counts and, each
 * round, writes a port whose handler (on the AP's thread) pauses and
 * resumes the whole VM.  Meanwhile the main thread pauses the VM 100
 * times: each time neither counter moves while paused.  Both go on after,
 * the port handler ran, and the guest finishes when told to stop.
 */
#define PAUSER_PORT 0x600

#ifdef STRATA_GUEST
#include "guest.h"

volatile uint64_t guest_count[2];
volatile uint32_t guest_stop;

void guest_ap_main(unsigned cpu)
{
    while (!guest_stop) {
        guest_count[1]++;
        outb(PAUSER_PORT, 0);
    }
}

int guest_main(void)
{
    GUEST_ASSERT(guest_start_aps(2) == 2);
    while (!guest_stop)
        guest_count[0]++;
    return 0;
}

#else
#include <time.h>
#include "tests/guests/kit.h"

typedef struct Pauser {
    KvmVm *vm;
    unsigned writes;
} Pauser;

static uint64_t pauser_read(void *opaque, uint64_t addr, unsigned size)
{
    return 0;
}

static void pauser_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    Pauser *p = opaque;

    kvm_vm_pause(p->vm);
    kvm_vm_resume(p->vm);
    __atomic_fetch_add(&p->writes, 1, __ATOMIC_RELAXED);
}

static const MemoryRegionOps pauser_ops = {
    .read = pauser_read,
    .write = pauser_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
};

static void sleep_us(unsigned us)
{
    struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000L };

    nanosleep(&ts, NULL);
}

int main(void)
{
    KitOptions opt = { .ncpus = 2 };
    Kit *k;
    KitResult r;
    MemoryRegion port;
    Pauser pauser = { NULL, 0 };
    volatile uint64_t *count;
    volatile uint32_t *stop;
    uint64_t a, b;
    unsigned stopped = 0;

    kit_require_kvm();
    k = kit_new(GUEST_ELF, &opt);
    TEST_ASSERT(k, "kit_new failed");
    pauser.vm = kit_vm(k);
    TEST_ASSERT(memory_region_init_io(&port, kit_ctx(k), &pauser_ops, &pauser, "pauser", 1) == 0,
                "pauser");
    TEST_ASSERT(memory_region_add_subregion(kit_iomem(k), PAUSER_PORT, &port) == 0, "add pauser");
    count = kit_guest_var(k, "guest_count", 16);
    stop = kit_guest_var(k, "guest_stop", 4);

    TEST_ASSERT(kit_start(k) == 0, "kit_start");
    while (count[0] == 0 || count[1] == 0 || __atomic_load_n(&pauser.writes, __ATOMIC_RELAXED) == 0)
        sleep_us(1000); /* no deadline: ctest's timeout catches a hang */

    for (int i = 0; i < 100; i++) {
        TEST_ASSERT(kvm_vm_pause(kit_vm(k)) == 0, "pause %d", i);
        a = count[0];
        b = count[1];
        sleep_us(200);
        stopped += a == count[0] && b == count[1];
        kvm_vm_resume(kit_vm(k));
    }
    TEST_ASSERT(stopped == 100, "the guest ran during %u of 100 pauses", 100 - stopped);
    a = count[0];
    b = count[1];
    while (count[0] == a || count[1] == b)
        sleep_us(1000);
    printf("counts %llu and %llu; the AP's thread paused the VM %u times\n",
           (unsigned long long)count[0], (unsigned long long)count[1],
           __atomic_load_n(&pauser.writes, __ATOMIC_RELAXED));

    *stop = 1;
    kit_wait(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);
    memory_region_del_subregion(kit_iomem(k), &port);
    memory_region_destroy(&port);
    kit_free(k);
    printf("PASS: two vCPUs paused from the main thread and from a vCPU thread\n");
    return 0;
}
#endif
