/* SPDX-License-Identifier: MIT */
/*
 * Creating a VM (host only, no guest): a missing device node and a file
 * that is not KVM are refused with an error and no VM; a PIT without the
 * in-kernel irqchip is refused as invalid; an irqchip + PIT VM is made and
 * says it has the irqchip, a default one says it has none.
 */
#include <errno.h>

#include "tests/guests/kit.h"

int main(void)
{
    KvmVmConfig cfg;
    KvmVm *vm = NULL;
    int r;

    kit_require_kvm();

    cfg = KVM_VM_CONFIG_DEFAULT;
    cfg.dev_path = "/nonexistent/kvm";
    r = kvm_vm_create(&cfg, &vm);
    TEST_ASSERT(r == -ENOENT && !vm, "missing device node: %d", r);

    cfg.dev_path = "/dev/null";
    r = kvm_vm_create(&cfg, &vm);
    TEST_ASSERT(r < 0 && !vm, "/dev/null as KVM: %d", r);

    cfg = KVM_VM_CONFIG_DEFAULT;
    cfg.pit = true; /* a PIT needs the irqchip */
    r = kvm_vm_create(&cfg, &vm);
    TEST_ASSERT(r == -EINVAL && !vm, "PIT without irqchip: %d", r);

    cfg.irqchip = true;
    r = kvm_vm_create(&cfg, &vm);
    TEST_ASSERT(r == 0 && vm, "irqchip + PIT: %d", r);
    TEST_ASSERT(kvm_vm_has_irqchip(vm), "no irqchip reported");
    kvm_vm_destroy(vm);

    vm = NULL;
    r = kvm_vm_create(NULL, &vm);
    TEST_ASSERT(r == 0 && vm, "default VM: %d", r);
    TEST_ASSERT(!kvm_vm_has_irqchip(vm), "irqchip reported without one");
    kvm_vm_destroy(vm);

    printf("PASS: bad device nodes and a PIT without irqchip refused; VMs made\n");
    return 0;
}
