/* SPDX-License-Identifier: MIT */
/*
 * A stand-in for the KVM VM and the machine reset, so that
 * vmm/control/commands.c, vmm/control/hmp.c and vmm/runstate.c (the real
 * QMP/HMP command handlers and the run-state actions they call) run in a
 * fuzz target without /dev/kvm: two vCPUs, one memory slot, counters for
 * what was asked.
 */
#include "tests/fuzz/fake_vm.h"

#include <stdio.h>
#include <string.h>

FakeVm fake_vm;

void fake_vm_reset_counters(void)
{
    memset(&fake_vm, 0, sizeof(fake_vm));
}

int kvm_vm_pause(KvmVm *vm)
{
    fake_vm.pauses++;
    return 0;
}

void kvm_vm_resume(KvmVm *vm)
{
    fake_vm.resumes++;
}

void kvm_vm_request_end(KvmVm *vm, KvmEndReason reason, int code, const char *text)
{
    fake_vm.end_requests++;
}

KvmVcpu *kvm_vm_vcpu(const KvmVm *vm, unsigned index)
{
    return index < FAKE_VM_VCPUS ? (KvmVcpu *)&fake_vm : NULL;
}

unsigned kvm_vm_nr_vcpus(const KvmVm *vm)
{
    return FAKE_VM_VCPUS;
}

int kvm_vcpu_thread_id(const KvmVcpu *vcpu)
{
    return 4242;
}

void kvm_vcpu_dump(KvmVcpu *vcpu, FILE *f)
{
    fprintf(f, "vCPU registers (fake)\n");
}

size_t kvm_vm_get_slots(KvmVm *vm, KvmSlotInfo *out, size_t max)
{
    if (out && max) {
        memset(out, 0, sizeof(*out));
        out->size = 0x10000;
        out->flags = KVM_MEM_LOG_DIRTY_PAGES;
        snprintf(out->name, sizeof(out->name), "%s", "fake.ram");
    }
    return 1;
}

unsigned kvm_vm_max_slots(const KvmVm *vm)
{
    return 32;
}

void kvm_vm_get_stats(KvmVm *vm, KvmVmStats *out)
{
    memset(out, 0, sizeof(*out));
    out->exits_io = 7;
}

/* every vCPU: k+1 exits of kind k */
void kvm_vcpu_get_exit_stats(const KvmVcpu *vcpu, KvmVcpuExitStats *out)
{
    (void)vcpu;
    for (unsigned k = 0; k < KVM_EXITS_NR; k++)
        out->exits[k] = k + 1;
}

/* the bitmap log, never synced */
unsigned kvm_vm_dirty_ring_size(const KvmVm *vm)
{
    return 0;
}

uint64_t kvm_vcpu_dirty_pages(const KvmVcpu *vcpu)
{
    return 0;
}

uint64_t kvm_vm_dirty_log_sync(KvmVm *vm)
{
    return 0;
}

void kvm_vm_set_dirty_log_all(KvmVm *vm, bool on)
{
}

const char *kvm_exit_kind_name(KvmExitKind k)
{
    return k == KVM_EXITS_IO ? "io" : "fake";
}

int machine_reset(Machine *m, char *err, size_t errlen)
{
    /* every other reset fails, so both paths of system_reset run */
    if (fake_vm.resets++ & 1) {
        snprintf(err, errlen, "fake reset failure");
        return -1;
    }
    return 0;
}

int machine_powerdown(Machine *m)
{
    (void)m;
    return 0;
}

bool mig_active(Migration *g)
{
    (void)g;
    return false; /* the fuzzed command table has no migration commands */
}

bool mig_dirty_log_held(Migration *g)
{
    (void)g;
    return false;
}

bool mig_in_final_phase(Migration *g)
{
    (void)g;
    return false;
}

bool mig_holds_guest(Migration *g)
{
    (void)g;
    return false;
}

int mig_run_state_lock(Migration *g, QmpError *err)
{
    (void)g;
    (void)err;
    return 0;
}

void mig_run_state_unlock(Migration *g)
{
    (void)g;
}

bool mig_release_hold(Migration *g)
{
    (void)g;
    return false;
}

void mig_incoming_abort(Migration *g)
{
    (void)g; /* the fake VM is never a waiting destination */
}
