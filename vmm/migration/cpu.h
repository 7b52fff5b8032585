/* SPDX-License-Identifier: MIT */
/*
 * Migration stream sections for the CPU and VM state of kvm/state.h.
 *
 * Each call writes or reads one section of memory/state-stream.h (magic,
 * version, length, CRC-32), every field little endian through the field
 * tables of cpu.c (memory/state-table.h), so the stream does not
 * depend on the compiler's struct layout; the XSAVE area and the LAPIC
 * page, with their length words, are written explicitly.
 *
 *   "VCPU" (0x55504356) version 2 (version 1: the same without [CPUID]):
 *     u32 index | u32 flags | regs: 18 x u64 (rax..r15, rip, rflags) |
 *     sregs: 8 segments (cs ds es fs gs ss tr ldt: u64 base, u32 limit,
 *       u16 selector, u8 type present dpl db s l g avl unusable) |
 *       gdt, idt (u64 base, u16 limit) | cr0 cr2 cr3 cr4 cr8 efer apic_base
 *       (u64) | interrupt_bitmap 4 x u64 |
 *     [FPU]   8 x 16 bytes fpr | u16 fcw fsw | u8 ftwx | u16 last_opcode |
 *             u64 last_ip last_dp | 16 x 16 bytes xmm | u32 mxcsr |
 *     [XSAVE] u32 length | length bytes (the XSAVE layout, which is
 *             little endian already) |
 *     [XCRS]  u32 nr | u32 flags | nr x (u32 xcr, u64 value) |
 *     u32 nmsrs | nmsrs x (u32 index, u64 data) |
 *     [LAPIC] u32 length (1024) | the LAPIC register page |
 *     [EVENTS] exception (u8 injected nr has_error_code pending, u32
 *             error_code) | interrupt (u8 injected nr soft shadow) | nmi
 *             (u8 injected pending masked) | u32 sipi_vector | u32 flags |
 *             smi (u8 smm pending smm_inside_nmi latched_init) |
 *             u8 triple_fault.pending | u8 exception_has_payload |
 *             u64 exception_payload |
 *     [MP]    u32 mp_state |
 *     [DEBUGREGS] 4 x u64 db | u64 dr6 dr7 flags |
 *     [CPUID] u32 n (1..256) | n x (u32 function index flags eax ebx ecx
 *             edx): the table the guest was given (KVM_GET_CPUID2)
 *   "VMST" (0x54534d56) version 1:
 *     u32 flags |
 *     [IRQCHIP] 2 PICs x 16 u8 (last_irr irr imr isr priority_add irq_base
 *             read_reg_select poll special_mask init_state auto_eoi
 *             rotate_on_auto_eoi special_fully_nested_mode init4 elcr
 *             elcr_mask) | IOAPIC u64 base_address, u32 ioregsel id irr,
 *             24 x u64 redirection entries |
 *     [PIT]   3 channels x (u32 count, u16 latched_count, u8 count_latched
 *             status_latched status read_state write_state write_latch
 *             rw_mode mode bcd gate, u64 count_load_time) | u32 flags |
 *     [CLOCK] u64 clock | u32 clock_flags
 * ([X] = present only if flags has that piece.)
 *
 * Loading treats the stream as hostile: every count and length is checked
 * against the struct's bounds (nmsrs <= KVM_STATE_MAX_MSRS, 1 <= CPUID
 * entries <= KVM_STATE_MAX_CPUID, XSAVE length
 * in 4096..KVM_STATE_XSAVE_MAX, nr_xcrs <= KVM_MAX_XCRS, LAPIC length ==
 * 1024), unknown flags are refused, the section must be consumed exactly,
 * and *out is written only when everything was valid.  Whether the XSAVE
 * length suits the destination's KVM is checked by kvm_vcpu_set_state
 * (kvm_vm_xsave_size() says what it takes).
 */
#ifndef STRATA_VMM_MIGRATION_CPU_H
#define STRATA_VMM_MIGRATION_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "kvm/state.h"
#include "memory/state-table.h"

#define MIG_VCPU_MAGIC 0x55504356u /* "VCPU" */
#define MIG_VCPU_VERSION 2         /* 2 added [CPUID]; 1 is still read */
#define MIG_VM_MAGIC 0x54534d56u   /* "VMST" */
#define MIG_VM_VERSION 1

/* Appends a "VCPU" section for vCPU `index` (version 1 if *st has no
 * CPUID, which any destination since version 1 reads); -EINVAL (after one line on
 * stderr) if *st is out of bounds, -ENOMEM if the writer failed. */
int mig_put_vcpu_state(StateWriter *w, unsigned index, const KvmVcpuState *st);

/* Reads the next "VCPU" section: 0 and *index, *out filled, or a negative
 * errno (-ENODATA truncated, -EINVAL corrupt / out of bounds / newer
 * version) with a one-line reason in err (if not NULL); *out and *index
 * are untouched on error.  r advances past the section only on success. */
int mig_get_vcpu_state(StateReader *r, unsigned *index, KvmVcpuState *out, char *err,
                       size_t errlen);

/*
 * The host CPU a guest's CPUID table was made on: its vendor and the
 * feature words (CPUID.1 ECX EDX, 7.0 EBX ECX EDX, 0xd.1 EAX, 0x80000001
 * ECX EDX) as the CPUID instruction answers on the host.  The source puts
 * them in CONFIG ("host-cpu"); a destination that loads the guest's own
 * CPUID (VCPU version 2) refuses a guest feature the source's CPU had and
 * its own lacks.  A guest bit the source host did not have either is one
 * KVM emulates, which the destination's KVM does too; bits a guest has
 * whatever the host CPU says (hypervisor, HTT, x2APIC, TSC deadline,
 * OSXSAVE, ...: cpu.c lists them) are not checked.
 */
#define MIG_HOST_CPU_WORDS 8
typedef struct MigHostCpu {
    char vendor[13];
    uint32_t words[MIG_HOST_CPU_WORDS];
} MigHostCpu;

/* This host's (a handful of CPUID instructions). */
void mig_host_cpu_read(MigHostCpu *out);

/* "CPUID.7.0:EBX" for word w, "?" out of range. */
const char *mig_host_cpu_word_name(unsigned w);

/* 0 if vCPU idx's CPUID (st, with KVM_VCPU_STATE_CPUID) has none of the
 * features in lost[] (the source host had them, this one lacks them), else
 * -1 with "vCPU 0's CPUID has CPUID.7.0:EBX bit 5, which the source's CPU
 * had and this host's lacks" in err.  A state without CPUID passes. */
int mig_host_cpu_check(const uint32_t lost[MIG_HOST_CPU_WORDS], const KvmVcpuState *st,
                       unsigned idx, char *err, size_t errlen);

/* Appends a "VMST" section; -EINVAL if *st has unknown flags, -ENOMEM if
 * the writer failed. */
int mig_put_vm_state(StateWriter *w, const KvmVmState *st);

/* Reads the next "VMST" section like mig_get_vcpu_state. */
int mig_get_vm_state(StateReader *r, KvmVmState *out, char *err, size_t errlen);

#endif /* STRATA_VMM_MIGRATION_CPU_H */
