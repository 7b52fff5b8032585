/* SPDX-License-Identifier: MIT */
/* Migration stream sections for CPU and VM state (see cpu.h). */
#include "vmm/migration/cpu.h"

#include <cpuid.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- field tables ------------------------------------------------------------ */

#define SEG(m) STATE_U8(struct kvm_segment, m)
static const StateField seg_fields[] = {
    STATE_U64(struct kvm_segment, base),
    STATE_U32(struct kvm_segment, limit),
    STATE_U16(struct kvm_segment, selector),
    SEG(type),
    SEG(present),
    SEG(dpl),
    SEG(db),
    SEG(s),
    SEG(l),
    SEG(g),
    SEG(avl),
    SEG(unusable),
};
static const StateTable seg_table = STATE_TABLE(struct kvm_segment, seg_fields);

static const StateField dtable_fields[] = {
    STATE_U64(struct kvm_dtable, base),
    STATE_U16(struct kvm_dtable, limit),
};
static const StateTable dtable_table = STATE_TABLE(struct kvm_dtable, dtable_fields);

#define REG(m) STATE_U64(struct kvm_regs, m)
static const StateField regs_fields[] = {
    REG(rax), REG(rbx), REG(rcx), REG(rdx), REG(rsi), REG(rdi), REG(rsp), REG(rbp), REG(r8),
    REG(r9),  REG(r10), REG(r11), REG(r12), REG(r13), REG(r14), REG(r15), REG(rip), REG(rflags),
};
static const StateTable regs_table = STATE_TABLE(struct kvm_regs, regs_fields);

#define SSEG(m) STATE_STRUCT(struct kvm_sregs, m, &seg_table)
#define SREG(m) STATE_U64(struct kvm_sregs, m)
static const StateField sregs_fields[] = {
    SSEG(cs),
    SSEG(ds),
    SSEG(es),
    SSEG(fs),
    SSEG(gs),
    SSEG(ss),
    SSEG(tr),
    SSEG(ldt),
    STATE_STRUCT(struct kvm_sregs, gdt, &dtable_table),
    STATE_STRUCT(struct kvm_sregs, idt, &dtable_table),
    SREG(cr0),
    SREG(cr2),
    SREG(cr3),
    SREG(cr4),
    SREG(cr8),
    SREG(efer),
    SREG(apic_base),
    STATE_U64_ARRAY(struct kvm_sregs, interrupt_bitmap),
};
static const StateTable sregs_table = STATE_TABLE(struct kvm_sregs, sregs_fields);

/* What every VCPU section has after index and flags. */
static const StateField core_fields[] = {
    STATE_STRUCT(KvmVcpuState, regs, &regs_table),
    STATE_STRUCT(KvmVcpuState, sregs, &sregs_table),
};
static const StateTable core_table = STATE_TABLE(KvmVcpuState, core_fields);

static const StateField fpu_fields[] = {
    STATE_BYTES(struct kvm_fpu, fpr),       STATE_U16(struct kvm_fpu, fcw),
    STATE_U16(struct kvm_fpu, fsw),         STATE_U8(struct kvm_fpu, ftwx),
    STATE_U16(struct kvm_fpu, last_opcode), STATE_U64(struct kvm_fpu, last_ip),
    STATE_U64(struct kvm_fpu, last_dp),     STATE_BYTES(struct kvm_fpu, xmm),
    STATE_U32(struct kvm_fpu, mxcsr),
};
static const StateTable fpu_table = STATE_TABLE(struct kvm_fpu, fpu_fields);

static const StateField xcr_fields[] = {
    STATE_U32(struct kvm_xcr, xcr),
    STATE_U64(struct kvm_xcr, value),
};
static const StateTable xcr_table = STATE_TABLE(struct kvm_xcr, xcr_fields);

static const StateField xcrs_fields[] = {
    STATE_U32(struct kvm_xcrs, nr_xcrs),
    STATE_U32(struct kvm_xcrs, flags),
    STATE_STRUCT_VARRAY(struct kvm_xcrs, xcrs, &xcr_table, nr_xcrs),
};
static const StateTable xcrs_table = STATE_TABLE(struct kvm_xcrs, xcrs_fields);

static const StateField msr_fields[] = {
    STATE_U32(struct kvm_msr_entry, index),
    STATE_U64(struct kvm_msr_entry, data),
};
static const StateTable msr_table = STATE_TABLE(struct kvm_msr_entry, msr_fields);

/* The MSR list: nmsrs, then that many entries (at most KVM_STATE_MAX_MSRS). */
static const StateField msrs_fields[] = {
    STATE_U32(KvmVcpuState, nmsrs),
    STATE_STRUCT_VARRAY(KvmVcpuState, msrs, &msr_table, nmsrs),
};
static const StateTable msrs_table = STATE_TABLE(KvmVcpuState, msrs_fields);

static const StateField cpuid_entry_fields[] = {
    STATE_U32(struct kvm_cpuid_entry2, function), STATE_U32(struct kvm_cpuid_entry2, index),
    STATE_U32(struct kvm_cpuid_entry2, flags),    STATE_U32(struct kvm_cpuid_entry2, eax),
    STATE_U32(struct kvm_cpuid_entry2, ebx),      STATE_U32(struct kvm_cpuid_entry2, ecx),
    STATE_U32(struct kvm_cpuid_entry2, edx),
};
static const StateTable cpuid_entry_table = STATE_TABLE(struct kvm_cpuid_entry2,
                                                        cpuid_entry_fields);

/* [CPUID] (version 2): ncpuid, then that many entries (1..KVM_STATE_MAX_CPUID). */
static const StateField cpuid_fields[] = {
    STATE_U32(KvmVcpuState, ncpuid),
    STATE_STRUCT_VARRAY(KvmVcpuState, cpuid, &cpuid_entry_table, ncpuid),
};
static const StateTable cpuid_table = STATE_TABLE(KvmVcpuState, cpuid_fields);

#define EV8(m) STATE_U8(struct kvm_vcpu_events, m)
static const StateField events_fields[] = {
    EV8(exception.injected),
    EV8(exception.nr),
    EV8(exception.has_error_code),
    EV8(exception.pending),
    STATE_U32(struct kvm_vcpu_events, exception.error_code),
    EV8(interrupt.injected),
    EV8(interrupt.nr),
    EV8(interrupt.soft),
    EV8(interrupt.shadow),
    EV8(nmi.injected),
    EV8(nmi.pending),
    EV8(nmi.masked),
    STATE_U32(struct kvm_vcpu_events, sipi_vector),
    STATE_U32(struct kvm_vcpu_events, flags),
    EV8(smi.smm),
    EV8(smi.pending),
    EV8(smi.smm_inside_nmi),
    EV8(smi.latched_init),
    EV8(triple_fault.pending),
    EV8(exception_has_payload),
    STATE_U64(struct kvm_vcpu_events, exception_payload),
};
static const StateTable events_table = STATE_TABLE(struct kvm_vcpu_events, events_fields);

static const StateField debugregs_fields[] = {
    STATE_U64_ARRAY(struct kvm_debugregs, db),
    STATE_U64(struct kvm_debugregs, dr6),
    STATE_U64(struct kvm_debugregs, dr7),
    STATE_U64(struct kvm_debugregs, flags),
};
static const StateTable debugregs_table = STATE_TABLE(struct kvm_debugregs, debugregs_fields);

#define PIC(m) STATE_U8(struct kvm_pic_state, m)
static const StateField pic_fields[] = {
    PIC(last_irr),
    PIC(irr),
    PIC(imr),
    PIC(isr),
    PIC(priority_add),
    PIC(irq_base),
    PIC(read_reg_select),
    PIC(poll),
    PIC(special_mask),
    PIC(init_state),
    PIC(auto_eoi),
    PIC(rotate_on_auto_eoi),
    PIC(special_fully_nested_mode),
    PIC(init4),
    PIC(elcr),
    PIC(elcr_mask),
};
static const StateTable pic_table = STATE_TABLE(struct kvm_pic_state, pic_fields);

static const StateField ioapic_fields[] = {
    STATE_U64(struct kvm_ioapic_state, base_address),
    STATE_U32(struct kvm_ioapic_state, ioregsel),
    STATE_U32(struct kvm_ioapic_state, id),
    STATE_U32(struct kvm_ioapic_state, irr),
    STATE_U64_ARRAY(struct kvm_ioapic_state, redirtbl),
};
static const StateTable ioapic_table = STATE_TABLE(struct kvm_ioapic_state, ioapic_fields);

/* [IRQCHIP]: the two PICs, then the IOAPIC. */
static const StateField irqchip_fields[] = {
    STATE_STRUCT_ARRAY(KvmVmState, pic, &pic_table),
    STATE_STRUCT(KvmVmState, ioapic, &ioapic_table),
};
static const StateTable irqchip_table = STATE_TABLE(KvmVmState, irqchip_fields);

#define PIT8(m) STATE_U8(struct kvm_pit_channel_state, m)
static const StateField pit_channel_fields[] = {
    STATE_U32(struct kvm_pit_channel_state, count),
    STATE_U16(struct kvm_pit_channel_state, latched_count),
    PIT8(count_latched),
    PIT8(status_latched),
    PIT8(status),
    PIT8(read_state),
    PIT8(write_state),
    PIT8(write_latch),
    PIT8(rw_mode),
    PIT8(mode),
    PIT8(bcd),
    PIT8(gate),
    STATE_U64(struct kvm_pit_channel_state, count_load_time),
};
static const StateTable pit_channel_table = STATE_TABLE(struct kvm_pit_channel_state,
                                                        pit_channel_fields);

static const StateField pit_fields[] = {
    STATE_STRUCT_ARRAY(struct kvm_pit_state2, channels, &pit_channel_table),
    STATE_U32(struct kvm_pit_state2, flags),
};
static const StateTable pit_table = STATE_TABLE(struct kvm_pit_state2, pit_fields);

static const StateField clock_fields[] = {
    STATE_U64(KvmVmState, clock),
    STATE_U32(KvmVmState, clock_flags),
};
static const StateTable clock_table = STATE_TABLE(KvmVmState, clock_fields);

/* ---- encoding ------------------------------------------------------------- */

static int put_fail(const char *what)
{
    fprintf(stderr, "migration: vCPU state: %s\n", what);
    return -EINVAL;
}

/* The bounds the decoder enforces, so that no section is written that a
 * destination would refuse. */
static int check_vcpu_bounds(const KvmVcpuState *st)
{
    if (st->flags & ~KVM_VCPU_STATE_ALL_FLAGS)
        return put_fail("unknown flags");
    if (st->nmsrs > KVM_STATE_MAX_MSRS)
        return put_fail("more than KVM_STATE_MAX_MSRS MSRs");
    if ((st->flags & KVM_VCPU_STATE_XSAVE) &&
        (st->xsave_len < KVM_STATE_XSAVE_LEGACY || st->xsave_len > KVM_STATE_XSAVE_MAX))
        return put_fail("XSAVE length out of bounds");
    if ((st->flags & KVM_VCPU_STATE_XCRS) && st->xcrs.nr_xcrs > KVM_MAX_XCRS)
        return put_fail("more than KVM_MAX_XCRS XCRs");
    if ((st->flags & KVM_VCPU_STATE_CPUID) && (!st->ncpuid || st->ncpuid > KVM_STATE_MAX_CPUID))
        return put_fail("a CPUID table of 0 or more than KVM_STATE_MAX_CPUID entries");
    return 0;
}

/* The pieces after the core, in stream order (see cpu.h). */
static void put_vcpu_pieces(StateWriter *w, const KvmVcpuState *st)
{
    if (st->flags & KVM_VCPU_STATE_FPU)
        state_encode(w, &fpu_table, &st->fpu);
    if (st->flags & KVM_VCPU_STATE_XSAVE) {
        state_put_u32(w, st->xsave_len);
        state_put_bytes(w, st->xsave, st->xsave_len);
    }
    if (st->flags & KVM_VCPU_STATE_XCRS)
        state_encode(w, &xcrs_table, &st->xcrs);
    state_encode(w, &msrs_table, st);
    if (st->flags & KVM_VCPU_STATE_LAPIC) {
        state_put_u32(w, (uint32_t)sizeof(st->lapic.regs));
        state_put_bytes(w, st->lapic.regs, sizeof(st->lapic.regs));
    }
    if (st->flags & KVM_VCPU_STATE_EVENTS)
        state_encode(w, &events_table, &st->events);
    if (st->flags & KVM_VCPU_STATE_MP_STATE)
        state_put_u32(w, st->mp_state.mp_state);
    if (st->flags & KVM_VCPU_STATE_DEBUGREGS)
        state_encode(w, &debugregs_table, &st->debugregs);
    if (st->flags & KVM_VCPU_STATE_CPUID)
        state_encode(w, &cpuid_table, st);
}

int mig_put_vcpu_state(StateWriter *w, unsigned index, const KvmVcpuState *st)
{
    if (check_vcpu_bounds(st) < 0)
        return -EINVAL;
    /* the oldest version that holds it: a destination built before [CPUID]
     * still takes a live migration's vCPUs, which carry none */
    size_t sec = state_section_begin(w, MIG_VCPU_MAGIC,
                                     (st->flags & KVM_VCPU_STATE_CPUID) ? MIG_VCPU_VERSION : 1);
    state_put_u32(w, index);
    state_put_u32(w, st->flags);
    state_encode(w, &core_table, st);
    put_vcpu_pieces(w, st);
    state_section_end(w, sec);
    if (w->failed) {
        fprintf(stderr, "migration: vCPU %u state: out of memory\n", index);
        return -ENOMEM;
    }
    return 0;
}

/* ---- decoding ------------------------------------------------------------- */

/* Decodes one piece of vCPU idx's section with its table. */
static int get_piece(StateReader *p, const StateTable *t, void *obj, unsigned idx, char *err,
                     size_t errlen)
{
    char why[160];

    if (state_decode(p, t, obj, why, sizeof(why)) == 0)
        return 0;
    return state_fail(err, errlen, -EINVAL, "vCPU %u state: %s", idx, why);
}

static int check_vcpu_flags(uint32_t flags, uint16_t version, unsigned idx, char *err,
                            size_t errlen)
{
    /* version 1 had no CPUID piece: its bit there is an unknown flag */
    uint32_t known = version >= 2 ? KVM_VCPU_STATE_ALL_FLAGS
                                  : KVM_VCPU_STATE_ALL_FLAGS & ~KVM_VCPU_STATE_CPUID;
    if (flags & ~known)
        return state_fail(err, errlen, -EINVAL, "vCPU %u state: unknown flags 0x%x", idx,
                          flags & ~known);
    if ((flags & KVM_VCPU_STATE_FPU) && (flags & KVM_VCPU_STATE_XSAVE))
        return state_fail(err, errlen, -EINVAL, "vCPU %u state: both FPU and XSAVE", idx);
    if (!(flags & (KVM_VCPU_STATE_FPU | KVM_VCPU_STATE_XSAVE)))
        return state_fail(err, errlen, -EINVAL, "vCPU %u state: neither FPU nor XSAVE", idx);
    return 0;
}

/* [XSAVE]: u32 length, checked before the area is read. */
static int get_xsave(StateReader *p, KvmVcpuState *st, unsigned idx, char *err, size_t errlen)
{
    uint32_t len = state_get_u32(p);

    if (p->failed)
        return state_fail(err, errlen, -EINVAL, "vCPU %u state: truncated", idx);
    if (len < KVM_STATE_XSAVE_LEGACY || len > KVM_STATE_XSAVE_MAX)
        return state_fail(err, errlen, -EINVAL,
                          "vCPU %u state: XSAVE area of %u bytes (must be %u..%u)", idx, len,
                          KVM_STATE_XSAVE_LEGACY, KVM_STATE_XSAVE_MAX);
    st->xsave_len = len;
    if (!state_get_bytes(p, st->xsave, len))
        return state_fail(err, errlen, -EINVAL, "vCPU %u state: truncated XSAVE area", idx);
    return 0;
}

/* [LAPIC]: u32 length, which must be the page's. */
static int get_lapic(StateReader *p, KvmVcpuState *st, unsigned idx, char *err, size_t errlen)
{
    uint32_t len = state_get_u32(p);

    if (p->failed)
        return state_fail(err, errlen, -EINVAL, "vCPU %u state: truncated", idx);
    if (len != sizeof(st->lapic.regs))
        return state_fail(err, errlen, -EINVAL,
                          "vCPU %u state: LAPIC page of %u bytes (must be %zu)", idx, len,
                          sizeof(st->lapic.regs));
    state_get_bytes(p, st->lapic.regs, len);
    return 0;
}

/* The pieces after the core, as put_vcpu_pieces wrote them. */
static int get_vcpu_pieces(StateReader *p, KvmVcpuState *st, unsigned idx, char *err, size_t errlen)
{
    int r = 0;

    if (st->flags & KVM_VCPU_STATE_FPU)
        r = get_piece(p, &fpu_table, &st->fpu, idx, err, errlen);
    if (r == 0 && (st->flags & KVM_VCPU_STATE_XSAVE))
        r = get_xsave(p, st, idx, err, errlen);
    if (r == 0 && (st->flags & KVM_VCPU_STATE_XCRS))
        r = get_piece(p, &xcrs_table, &st->xcrs, idx, err, errlen);
    if (r == 0)
        r = get_piece(p, &msrs_table, st, idx, err, errlen);
    if (r == 0 && (st->flags & KVM_VCPU_STATE_LAPIC))
        r = get_lapic(p, st, idx, err, errlen);
    if (r == 0 && (st->flags & KVM_VCPU_STATE_EVENTS))
        r = get_piece(p, &events_table, &st->events, idx, err, errlen);
    if (r == 0 && (st->flags & KVM_VCPU_STATE_MP_STATE))
        st->mp_state.mp_state = state_get_u32(p);
    if (r == 0 && (st->flags & KVM_VCPU_STATE_DEBUGREGS))
        r = get_piece(p, &debugregs_table, &st->debugregs, idx, err, errlen);
    if (r == 0 && (st->flags & KVM_VCPU_STATE_CPUID)) {
        r = get_piece(p, &cpuid_table, st, idx, err, errlen);
        if (r == 0 && !st->ncpuid)
            r = state_fail(err, errlen, -EINVAL, "vCPU %u state: an empty CPUID table", idx);
    }
    return r;
}

/* Decodes a VCPU payload into *st (zeroed by the caller). */
static int decode_vcpu(StateReader *p, uint16_t version, unsigned *index, KvmVcpuState *st,
                       char *err, size_t errlen)
{
    uint32_t idx = state_get_u32(p);

    st->flags = state_get_u32(p);
    if (p->failed)
        return state_fail(err, errlen, -EINVAL, "vCPU state: truncated header");
    if (check_vcpu_flags(st->flags, version, idx, err, errlen) < 0 ||
        get_piece(p, &core_table, st, idx, err, errlen) < 0 ||
        get_vcpu_pieces(p, st, idx, err, errlen) < 0)
        return -EINVAL;
    if (p->failed)
        return state_fail(err, errlen, -EINVAL, "vCPU %u state: truncated", idx);
    if (!state_reader_done(p))
        return state_fail(err, errlen, -EINVAL, "vCPU %u state: %zu trailing bytes", idx,
                          p->len - p->pos);
    *index = idx;
    return 0;
}

int mig_get_vcpu_state(StateReader *r, unsigned *index, KvmVcpuState *out, char *err, size_t errlen)
{
    StateReader p;
    uint16_t version;
    size_t pos = r->pos;
    unsigned idx = 0;
    KvmVcpuState *st;
    int ret;

    ret = state_section_open(r, MIG_VCPU_MAGIC, MIG_VCPU_VERSION, &version, &p, err, errlen);
    if (ret < 0)
        return ret;
    st = calloc(1, sizeof(*st));
    if (!st) {
        r->pos = pos;
        return state_fail(err, errlen, -ENOMEM, "vCPU state: out of memory");
    }
    ret = decode_vcpu(&p, version, &idx, st, err, errlen);
    if (ret == 0) {
        *out = *st;
        *index = idx;
    } else {
        r->pos = pos;
    }
    free(st);
    return ret;
}

/* ---- VM ------------------------------------------------------------------- */

int mig_put_vm_state(StateWriter *w, const KvmVmState *st)
{
    size_t sec;

    if (st->flags & ~KVM_VM_STATE_ALL_FLAGS) {
        fprintf(stderr, "migration: VM state: unknown flags 0x%x\n", st->flags);
        return -EINVAL;
    }
    sec = state_section_begin(w, MIG_VM_MAGIC, MIG_VM_VERSION);
    state_put_u32(w, st->flags);
    if (st->flags & KVM_VM_STATE_IRQCHIP)
        state_encode(w, &irqchip_table, st);
    if (st->flags & KVM_VM_STATE_PIT)
        state_encode(w, &pit_table, &st->pit);
    if (st->flags & KVM_VM_STATE_CLOCK)
        state_encode(w, &clock_table, st);
    state_section_end(w, sec);
    if (w->failed) {
        fprintf(stderr, "migration: VM state: out of memory\n");
        return -ENOMEM;
    }
    return 0;
}

/* Decodes a VMST payload into *st (zeroed by the caller). */
static int decode_vm(StateReader *p, KvmVmState *st, char *err, size_t errlen)
{
    char why[160];
    int r = 0;

    st->flags = state_get_u32(p);
    if (p->failed)
        return state_fail(err, errlen, -EINVAL, "VM state: truncated header");
    if (st->flags & ~KVM_VM_STATE_ALL_FLAGS)
        return state_fail(err, errlen, -EINVAL, "VM state: unknown flags 0x%x",
                          st->flags & ~KVM_VM_STATE_ALL_FLAGS);
    if ((st->flags & KVM_VM_STATE_PIT) && !(st->flags & KVM_VM_STATE_IRQCHIP))
        return state_fail(err, errlen, -EINVAL, "VM state: a PIT without an irqchip");
    if (st->flags & KVM_VM_STATE_IRQCHIP)
        r = state_decode(p, &irqchip_table, st, why, sizeof(why));
    if (r == 0 && (st->flags & KVM_VM_STATE_PIT))
        r = state_decode(p, &pit_table, &st->pit, why, sizeof(why));
    if (r == 0 && (st->flags & KVM_VM_STATE_CLOCK))
        r = state_decode(p, &clock_table, st, why, sizeof(why));
    if (r < 0)
        return state_fail(err, errlen, -EINVAL, "VM state: %s", why);
    if (!state_reader_done(p))
        return state_fail(err, errlen, -EINVAL, "VM state: %zu trailing bytes", p->len - p->pos);
    return 0;
}

int mig_get_vm_state(StateReader *r, KvmVmState *out, char *err, size_t errlen)
{
    StateReader p;
    uint16_t version;
    size_t pos = r->pos;
    KvmVmState st;
    int ret;

    ret = state_section_open(r, MIG_VM_MAGIC, MIG_VM_VERSION, &version, &p, err, errlen);
    if (ret < 0)
        return ret;
    memset(&st, 0, sizeof(st));
    ret = decode_vm(&p, &st, err, errlen);
    if (ret < 0) {
        r->pos = pos;
        return ret;
    }
    *out = st;
    return 0;
}

/* ---- the host CPU ------------------------------------------------------------ */

enum { R_EAX, R_EBX, R_ECX, R_EDX };
/* synthesized: bits a guest has whatever the host's CPU says, which the
 * check leaves out: what the VMM sets (hypervisor, HTT), what KVM emulates
 * (x2APIC, TSC deadline, the APIC, TSC_ADJUST, ARCH_CAPABILITIES, and the
 * SPEC_CTRL/STIBP/SSBD bits it derives from AMD's leaf 0x80000008) and
 * what reflects the OS's CR4 (OSXSAVE, OSPKE). */
static const struct {
    uint32_t leaf, sub;
    unsigned reg;
    const char *name;
    uint32_t synthesized;
} host_words[MIG_HOST_CPU_WORDS] = {
    { 0x1, 0, R_ECX, "CPUID.1:ECX", 1u << 31 | 1u << 27 | 1u << 24 | 1u << 21 },
    { 0x1, 0, R_EDX, "CPUID.1:EDX", 1u << 28 | 1u << 9 },
    { 0x7, 0, R_EBX, "CPUID.7.0:EBX", 1u << 1 },
    { 0x7, 0, R_ECX, "CPUID.7.0:ECX", 1u << 4 },
    { 0x7, 0, R_EDX, "CPUID.7.0:EDX", 1u << 31 | 1u << 29 | 1u << 27 | 1u << 26 },
    { 0xd, 1, R_EAX, "CPUID.0xd.1:EAX", 0 },
    { 0x80000001, 0, R_ECX, "CPUID.0x80000001:ECX", 0 },
    { 0x80000001, 0, R_EDX, "CPUID.0x80000001:EDX", 0 },
};

void mig_host_cpu_read(MigHostCpu *out)
{
    memset(out, 0, sizeof(*out));
    unsigned a, b, c, d;
    __cpuid(0, a, b, c, d);
    unsigned max = a;
    memcpy(out->vendor, &b, 4);
    memcpy(out->vendor + 4, &d, 4);
    memcpy(out->vendor + 8, &c, 4);
    __cpuid(0x80000000, a, b, c, d);
    unsigned max_ext = a;
    uint32_t r[4] = { 0 };
    for (unsigned w = 0; w < MIG_HOST_CPU_WORDS; w++) {
        uint32_t leaf = host_words[w].leaf;
        if (leaf < 0x80000000 ? leaf > max : leaf > max_ext)
            continue; /* a leaf this CPU lacks: no features there */
        /* host_words is in leaf order: one CPUID per (leaf, subleaf), each
         * traps on a PVM host */
        bool same = w > 0 && host_words[w - 1].leaf == leaf &&
                    host_words[w - 1].sub == host_words[w].sub;
        if (!same)
            __cpuid_count(leaf, host_words[w].sub, r[0], r[1], r[2], r[3]);
        out->words[w] = r[host_words[w].reg];
    }
}

const char *mig_host_cpu_word_name(unsigned w)
{
    return w < MIG_HOST_CPU_WORDS ? host_words[w].name : "?";
}

/* Guest register `reg` of (leaf, sub) in st's table; 0 if it has no such leaf. */
static uint32_t guest_word(const KvmVcpuState *st, uint32_t leaf, uint32_t sub, unsigned reg)
{
    for (uint32_t i = 0; i < st->ncpuid && i < KVM_STATE_MAX_CPUID; i++) {
        const struct kvm_cpuid_entry2 *e = &st->cpuid[i];
        if (e->function != leaf)
            continue;
        if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != sub)
            continue;
        const uint32_t v[4] = { e->eax, e->ebx, e->ecx, e->edx };
        return v[reg];
    }
    return 0;
}

int mig_host_cpu_check(const uint32_t lost[MIG_HOST_CPU_WORDS], const KvmVcpuState *st,
                       unsigned idx, char *err, size_t errlen)
{
    if (!(st->flags & KVM_VCPU_STATE_CPUID))
        return 0;
    for (unsigned w = 0; w < MIG_HOST_CPU_WORDS; w++) {
        uint32_t bad = lost[w] & ~host_words[w].synthesized &
                       guest_word(st, host_words[w].leaf, host_words[w].sub, host_words[w].reg);
        if (bad) {
            snprintf(err, errlen,
                     "vCPU %u's CPUID has %s bit %d, which the source's CPU had and this "
                     "host's lacks",
                     idx, host_words[w].name, __builtin_ctz(bad));
            return -1;
        }
    }
    return 0;
}
