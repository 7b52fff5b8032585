/* SPDX-License-Identifier: MIT */
/*
 * Device-facing interrupt lines (kvm_vm_irq_line, host only, no guest).
 * With the in-kernel irqchip: a line can be driven; its eventfd is made
 * once (an irqfd) and handed out again; a level line's resampling irqfd
 * and resample eventfd likewise, distinct from the edge one; writes to
 * them are accepted; the VM counts both irqfds and no error.  Without an
 * irqchip a line is accepted and does nothing: no eventfds.
 */
#include <unistd.h>

#include "tests/guests/kit.h"

int main(void)
{
    KvmVmConfig cfg = KVM_VM_CONFIG_DEFAULT;
    KvmVm *vm = NULL;
    KvmVcpu *cpu = NULL;
    KvmVmStats st;
    IrqLine edge, level, none;
    uint64_t one = 1;
    int fd, lfd, rfd = -2, rfd2 = -2;

    kit_require_kvm();
    cfg.irqchip = true;
    cfg.pit = true;
    TEST_ASSERT(kvm_vm_create(&cfg, &vm) == 0, "irqchip VM");
    TEST_ASSERT(kvm_vcpu_create(vm, 0, &cpu) == 0, "vCPU"); /* interrupts need a CPU */

    TEST_ASSERT(kvm_vm_irq_line(vm, 4, &edge) == 0, "line 4");
    irq_line_raise(&edge);
    irq_line_lower(&edge);
    irq_line_pulse(&edge);
    fd = irq_line_eventfd(&edge);
    TEST_ASSERT(fd >= 0, "no eventfd for line 4");
    TEST_ASSERT(irq_line_eventfd(&edge) == fd, "line 4's eventfd made twice");
    TEST_ASSERT(write(fd, &one, 8) == 8, "write to line 4's eventfd");

    TEST_ASSERT(kvm_vm_irq_line(vm, 10, &level) == 0, "line 10");
    lfd = irq_line_level_eventfd(&level, &rfd);
    TEST_ASSERT(lfd >= 0 && rfd >= 0 && lfd != fd, "level eventfd %d, resample %d", lfd, rfd);
    TEST_ASSERT(irq_line_level_eventfd(&level, &rfd2) == lfd && rfd2 == rfd,
                "line 10's resampling irqfd made twice");
    TEST_ASSERT(write(lfd, &one, 8) == 8, "write to line 10's eventfd");

    kvm_vm_get_stats(vm, &st);
    TEST_ASSERT(st.irqfds == 2 && st.errors == 0, "%llu irqfds, %llu errors (%s)",
                (unsigned long long)st.irqfds, (unsigned long long)st.errors,
                kvm_vm_last_error(vm));
    kvm_vm_destroy(vm);

    /* Without an irqchip a line is accepted and does nothing. */
    vm = NULL;
    TEST_ASSERT(kvm_vm_create(NULL, &vm) == 0, "default VM");
    TEST_ASSERT(kvm_vm_irq_line(vm, 4, &none) == 0, "line without irqchip");
    irq_line_pulse(&none);
    TEST_ASSERT(irq_line_eventfd(&none) == -1, "eventfd without irqchip");
    TEST_ASSERT(irq_line_level_eventfd(&none, &rfd) == -1 && rfd == -1,
                "level eventfd without irqchip");
    kvm_vm_get_stats(vm, &st);
    TEST_ASSERT(st.errors == 0, "errors: %s", kvm_vm_last_error(vm));
    kvm_vm_destroy(vm);

    printf("PASS: irq lines, their irqfds (made once), and no-ops without an irqchip\n");
    return 0;
}
