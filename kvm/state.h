/* SPDX-License-Identifier: MIT */
/*
 * strata KVM backend: the architectural state of a vCPU and of a VM's
 * in-kernel devices, as plain bounded structs, for live migration and
 * snapshots.
 *
 *     KvmVmState vs;  KvmVcpuState *cs = malloc(sizeof(*cs));   // ~21 KiB
 *     kvm_vm_pause(src);                           // or: not started yet
 *     kvm_vm_get_state(src, &vs);
 *     kvm_vcpu_get_state(kvm_vm_vcpu(src, 0), cs);
 *     ... carry them over (vmm/migration/cpu.h serialises them) ...
 *     // destination: same RAM contents, same irqchip/PIT configuration,
 *     // not running; its CPUID is the state's (set first), or, for a
 *     // state without one, the source's already set (kvm_vcpu_init_cpuid)
 *     kvm_vm_set_state(dst, &vs);                  // first: the VM's devices
 *     kvm_vcpu_set_state(kvm_vm_vcpu(dst, 0), cs); // then each vCPU
 *     kvm_vm_start(dst);
 *
 * Every piece KVM may lack is optional: it is probed (KVM_CHECK_EXTENSION,
 * or the ioctl's answer) and its bit in `flags` says whether the struct
 * holds it.  On set, a piece the state has but the destination cannot take
 * (a LAPIC for a VM without an in-kernel irqchip, an XSAVE area larger than
 * the destination's, ...) is an error with a one-line reason; a piece the
 * destination has but the state lacks is an error too where it would leave
 * the guest inconsistent (irqchip, PIT, LAPIC), else it is left as is.
 *
 * No pointers: the structs may be copied, compared and sent as they are
 * (vmm/migration/cpu.c still encodes every field explicitly).
 *
 * Errors: negative errno after one line on stderr naming the ioctl
 * ("vCPU 0: KVM_GET_XCRS: Invalid argument").  Call these only while the
 * VM is paused (kvm_vm_pause) or not started: the vCPU must not be in
 * KVM_RUN.
 *
 * What the ioctls do on the PVM /dev/kvm of the project's hosts is
 * recorded by tests/kvm/vcpu_state.c, which prints the flags it got; see
 * the comment at the top of kvm/state.c.
 */
#ifndef STRATA_KVM_STATE_H
#define STRATA_KVM_STATE_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm/kvm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of XSAVE area a KvmVcpuState can hold (KVM_CAP_XSAVE2 is 4096 on
 * hosts without AMX; AMX tiles need 11008). */
#define KVM_STATE_XSAVE_MAX 16384u
/* The legacy KVM_GET_XSAVE size (struct kvm_xsave without `extra`). */
#define KVM_STATE_XSAVE_LEGACY 4096u
/* MSRs a KvmVcpuState can hold (strata saves about 50 at most). */
#define KVM_STATE_MAX_MSRS 128u
/* CPUID entries a KvmVcpuState can hold (the kernel's KVM_MAX_CPUID_ENTRIES). */
#define KVM_STATE_MAX_CPUID 256u

/* KvmVcpuState.flags: which optional pieces the struct holds. */
#define KVM_VCPU_STATE_XSAVE (1u << 0)     /* xsave[0..xsave_len) (KVM_GET_XSAVE2/XSAVE) */
#define KVM_VCPU_STATE_FPU (1u << 1)       /* fpu (KVM_GET_FPU; only without XSAVE) */
#define KVM_VCPU_STATE_XCRS (1u << 2)      /* xcrs (KVM_GET_XCRS) */
#define KVM_VCPU_STATE_LAPIC (1u << 3)     /* lapic (KVM_GET_LAPIC; in-kernel irqchip) */
#define KVM_VCPU_STATE_EVENTS (1u << 4)    /* events (KVM_GET_VCPU_EVENTS) */
#define KVM_VCPU_STATE_MP_STATE (1u << 5)  /* mp_state (KVM_GET_MP_STATE) */
#define KVM_VCPU_STATE_DEBUGREGS (1u << 6) /* debugregs (KVM_GET_DEBUGREGS) */
#define KVM_VCPU_STATE_CPUID (1u << 7)     /* cpuid[0..ncpuid) (KVM_GET_CPUID2) */
#define KVM_VCPU_STATE_ALL_FLAGS 0xffu

/*
 * Everything needed to resume a vCPU on another VM (besides guest RAM):
 * the CPUID table the guest was given (so that it sees the same CPU after
 * a restore or a migration, whatever the destination would compute), general and segment registers (regs, sregs: they carry EFER,
 * APIC_BASE, FS/GS base), FPU/SSE/AVX (xsave, or fpu), XCR0, the MSRs in
 * msrs[] (SYSENTER_*, STAR/LSTAR/CSTAR/SFMASK, KERNEL_GS_BASE, TSC,
 * TSC_ADJUST, TSC_AUX, PAT, MISC_ENABLE, APIC_BASE, TSC_DEADLINE, MTRRs,
 * kvmclock / async PF / steal time / PV EOI / poll control, XSS,
 * SPEC_CTRL: those this KVM offers), the LAPIC page, pending events,
 * the MP state and the debug registers.
 */
typedef struct KvmVcpuState {
    uint32_t flags;                 /* KVM_VCPU_STATE_* */
    struct kvm_regs regs;           /* always */
    struct kvm_sregs sregs;         /* always */
    struct kvm_fpu fpu;             /* KVM_VCPU_STATE_FPU */
    struct kvm_xcrs xcrs;           /* KVM_VCPU_STATE_XCRS */
    struct kvm_lapic_state lapic;   /* KVM_VCPU_STATE_LAPIC */
    struct kvm_vcpu_events events;  /* KVM_VCPU_STATE_EVENTS */
    struct kvm_mp_state mp_state;   /* KVM_VCPU_STATE_MP_STATE */
    struct kvm_debugregs debugregs; /* KVM_VCPU_STATE_DEBUGREGS */
    uint32_t nmsrs;                 /* <= KVM_STATE_MAX_MSRS; always */
    struct kvm_msr_entry msrs[KVM_STATE_MAX_MSRS];
    uint32_t xsave_len;                 /* bytes used in xsave[] (KVM_VCPU_STATE_XSAVE) */
    uint8_t xsave[KVM_STATE_XSAVE_MAX]; /* struct kvm_xsave's bytes (XSAVE layout) */
    uint32_t ncpuid;                    /* <= KVM_STATE_MAX_CPUID (KVM_VCPU_STATE_CPUID) */
    struct kvm_cpuid_entry2 cpuid[KVM_STATE_MAX_CPUID];
} KvmVcpuState;

/* KvmVmState.flags: which optional pieces the struct holds. */
#define KVM_VM_STATE_IRQCHIP (1u << 0) /* pic[], ioapic (KVM_GET_IRQCHIP) */
#define KVM_VM_STATE_PIT (1u << 1)     /* pit (KVM_GET_PIT2) */
#define KVM_VM_STATE_CLOCK (1u << 2)   /* clock, clock_flags (KVM_GET_CLOCK) */
#define KVM_VM_STATE_ALL_FLAGS 0x7u

/*
 * The VM-wide in-kernel state: the two 8259 PICs and the IOAPIC (with an
 * in-kernel irqchip), the 8254 PIT (with KVM_CREATE_PIT2) and kvmclock.
 * pit.channels[].count_load_time is the source host's ktime: KVM restarts
 * each channel's count when it is loaded (KVM_SET_PIT2), so it is carried
 * but not meaningful on the destination.
 */
typedef struct KvmVmState {
    uint32_t flags;              /* KVM_VM_STATE_* */
    struct kvm_pic_state pic[2]; /* master, slave */
    struct kvm_ioapic_state ioapic;
    struct kvm_pit_state2 pit;
    uint64_t clock;       /* kvmclock ns (KVM_GET_CLOCK) */
    uint32_t clock_flags; /* what KVM_GET_CLOCK said (KVM_CLOCK_*) */
} KvmVmState;

/* Reads vCPU `vcpu`'s whole state into *out (every byte of *out is
 * written; absent pieces are zero).  A pending PIO/MMIO completion is
 * finished first (KVM_RUN with immediate_exit), so the registers are
 * consistent.  The VM must be paused or not started. */
int kvm_vcpu_get_state(KvmVcpu *vcpu, KvmVcpuState *out);

/* Loads *st into vCPU `vcpu` (CPUID, sregs, regs, XCRs, XSAVE/FPU, MSRs,
 * LAPIC, TSC deadline, debug registers, events, MP state, in that order).
 * A state without CPUID needs the source's already set on the vCPU; guest
 * RAM must already hold the source's contents (paging state is read from
 * it).  The vCPU must not have run (KVM takes a new CPUID only before).  On error the
 * vCPU is partly loaded: do not run it. */
int kvm_vcpu_set_state(KvmVcpu *vcpu, const KvmVcpuState *st);

/* Reads the VM's PIC/IOAPIC (if it has an irqchip), PIT (if it has one)
 * and kvmclock (if KVM_CAP_ADJUST_CLOCK) into *out (zeroed first). */
int kvm_vm_get_state(KvmVm *vm, KvmVmState *out);

/* Loads *st into the VM (irqchip, PIT, clock); the VM's configuration must
 * match (an irqchip/PIT present on one side only is -EINVAL with a line
 * saying which).  Call before kvm_vcpu_set_state, with no vCPU running. */
int kvm_vm_set_state(KvmVm *vm, const KvmVmState *st);

/* Bytes of XSAVE area this VM's vCPUs use (KVM_CAP_XSAVE2's answer, 4096
 * with only KVM_CAP_XSAVE, 0 without XSAVE: then the FPU is saved). */
uint32_t kvm_vm_xsave_size(const KvmVm *vm);

/* The KVM_VCPU_STATE_* flags as text ("xsave xcrs events ..."), into buf. */
const char *kvm_vcpu_state_flags_str(uint32_t flags, char *buf, size_t len);

/* The KVM_VM_STATE_* flags as text ("irqchip pit clock"), into buf. */
const char *kvm_vm_state_flags_str(uint32_t flags, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* STRATA_KVM_STATE_H */
