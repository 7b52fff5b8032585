/* SPDX-License-Identifier: MIT */
/* Migration stream sections for CPU and VM state (see migration-cpu.h). */
#include "vmm/migration-cpu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoding ------------------------------------------------------------- */

static void put_seg(StateWriter *w, const struct kvm_segment *s)
{
    state_put_u64(w, s->base);
    state_put_u32(w, s->limit);
    state_put_u16(w, s->selector);
    state_put_u8(w, s->type);
    state_put_u8(w, s->present);
    state_put_u8(w, s->dpl);
    state_put_u8(w, s->db);
    state_put_u8(w, s->s);
    state_put_u8(w, s->l);
    state_put_u8(w, s->g);
    state_put_u8(w, s->avl);
    state_put_u8(w, s->unusable);
}

static void put_dtable(StateWriter *w, const struct kvm_dtable *d)
{
    state_put_u64(w, d->base);
    state_put_u16(w, d->limit);
}

static void put_regs(StateWriter *w, const struct kvm_regs *g)
{
    const uint64_t v[18] = { g->rax, g->rbx, g->rcx, g->rdx, g->rsi, g->rdi, g->rsp, g->rbp,
                             g->r8,  g->r9,  g->r10, g->r11, g->r12, g->r13, g->r14, g->r15,
                             g->rip, g->rflags };

    for (unsigned i = 0; i < 18; i++)
        state_put_u64(w, v[i]);
}

static void put_sregs(StateWriter *w, const struct kvm_sregs *s)
{
    const struct kvm_segment *segs[8] = { &s->cs, &s->ds, &s->es, &s->fs,
                                          &s->gs, &s->ss, &s->tr, &s->ldt };

    for (unsigned i = 0; i < 8; i++)
        put_seg(w, segs[i]);
    put_dtable(w, &s->gdt);
    put_dtable(w, &s->idt);
    state_put_u64(w, s->cr0);
    state_put_u64(w, s->cr2);
    state_put_u64(w, s->cr3);
    state_put_u64(w, s->cr4);
    state_put_u64(w, s->cr8);
    state_put_u64(w, s->efer);
    state_put_u64(w, s->apic_base);
    for (unsigned i = 0; i < 4; i++)
        state_put_u64(w, s->interrupt_bitmap[i]);
}

static void put_fpu(StateWriter *w, const struct kvm_fpu *f)
{
    state_put_bytes(w, f->fpr, sizeof(f->fpr));
    state_put_u16(w, f->fcw);
    state_put_u16(w, f->fsw);
    state_put_u8(w, f->ftwx);
    state_put_u16(w, f->last_opcode);
    state_put_u64(w, f->last_ip);
    state_put_u64(w, f->last_dp);
    state_put_bytes(w, f->xmm, sizeof(f->xmm));
    state_put_u32(w, f->mxcsr);
}

static void put_events(StateWriter *w, const struct kvm_vcpu_events *e)
{
    state_put_u8(w, e->exception.injected);
    state_put_u8(w, e->exception.nr);
    state_put_u8(w, e->exception.has_error_code);
    state_put_u8(w, e->exception.pending);
    state_put_u32(w, e->exception.error_code);
    state_put_u8(w, e->interrupt.injected);
    state_put_u8(w, e->interrupt.nr);
    state_put_u8(w, e->interrupt.soft);
    state_put_u8(w, e->interrupt.shadow);
    state_put_u8(w, e->nmi.injected);
    state_put_u8(w, e->nmi.pending);
    state_put_u8(w, e->nmi.masked);
    state_put_u32(w, e->sipi_vector);
    state_put_u32(w, e->flags);
    state_put_u8(w, e->smi.smm);
    state_put_u8(w, e->smi.pending);
    state_put_u8(w, e->smi.smm_inside_nmi);
    state_put_u8(w, e->smi.latched_init);
    state_put_u8(w, e->triple_fault.pending);
    state_put_u8(w, e->exception_has_payload);
    state_put_u64(w, e->exception_payload);
}

static int put_fail(const char *what)
{
    fprintf(stderr, "migration: vCPU state: %s\n", what);
    return -EINVAL;
}

int mig_put_vcpu_state(StateWriter *w, unsigned index, const KvmVcpuState *st)
{
    size_t sec;

    if (st->flags & ~KVM_VCPU_STATE_ALL_FLAGS)
        return put_fail("unknown flags");
    if (st->nmsrs > KVM_STATE_MAX_MSRS)
        return put_fail("more than KVM_STATE_MAX_MSRS MSRs");
    if ((st->flags & KVM_VCPU_STATE_XSAVE) &&
        (st->xsave_len < KVM_STATE_XSAVE_LEGACY || st->xsave_len > KVM_STATE_XSAVE_MAX))
        return put_fail("XSAVE length out of bounds");
    if ((st->flags & KVM_VCPU_STATE_XCRS) && st->xcrs.nr_xcrs > KVM_MAX_XCRS)
        return put_fail("more than KVM_MAX_XCRS XCRs");

    sec = state_section_begin(w, MIG_VCPU_MAGIC, MIG_VCPU_VERSION);
    state_put_u32(w, index);
    state_put_u32(w, st->flags);
    put_regs(w, &st->regs);
    put_sregs(w, &st->sregs);
    if (st->flags & KVM_VCPU_STATE_FPU)
        put_fpu(w, &st->fpu);
    if (st->flags & KVM_VCPU_STATE_XSAVE) {
        state_put_u32(w, st->xsave_len);
        state_put_bytes(w, st->xsave, st->xsave_len);
    }
    if (st->flags & KVM_VCPU_STATE_XCRS) {
        state_put_u32(w, st->xcrs.nr_xcrs);
        state_put_u32(w, st->xcrs.flags);
        for (uint32_t i = 0; i < st->xcrs.nr_xcrs; i++) {
            state_put_u32(w, st->xcrs.xcrs[i].xcr);
            state_put_u64(w, st->xcrs.xcrs[i].value);
        }
    }
    state_put_u32(w, st->nmsrs);
    for (uint32_t i = 0; i < st->nmsrs; i++) {
        state_put_u32(w, st->msrs[i].index);
        state_put_u64(w, st->msrs[i].data);
    }
    if (st->flags & KVM_VCPU_STATE_LAPIC) {
        state_put_u32(w, (uint32_t)sizeof(st->lapic.regs));
        state_put_bytes(w, st->lapic.regs, sizeof(st->lapic.regs));
    }
    if (st->flags & KVM_VCPU_STATE_EVENTS)
        put_events(w, &st->events);
    if (st->flags & KVM_VCPU_STATE_MP_STATE)
        state_put_u32(w, st->mp_state.mp_state);
    if (st->flags & KVM_VCPU_STATE_DEBUGREGS) {
        for (unsigned i = 0; i < 4; i++)
            state_put_u64(w, st->debugregs.db[i]);
        state_put_u64(w, st->debugregs.dr6);
        state_put_u64(w, st->debugregs.dr7);
        state_put_u64(w, st->debugregs.flags);
    }
    state_section_end(w, sec);
    if (w->failed) {
        fprintf(stderr, "migration: vCPU %u state: out of memory\n", index);
        return -ENOMEM;
    }
    return 0;
}

/* ---- decoding ------------------------------------------------------------- */

static int get_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int get_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static void get_seg(StateReader *r, struct kvm_segment *s)
{
    s->base = state_get_u64(r);
    s->limit = state_get_u32(r);
    s->selector = state_get_u16(r);
    s->type = state_get_u8(r);
    s->present = state_get_u8(r);
    s->dpl = state_get_u8(r);
    s->db = state_get_u8(r);
    s->s = state_get_u8(r);
    s->l = state_get_u8(r);
    s->g = state_get_u8(r);
    s->avl = state_get_u8(r);
    s->unusable = state_get_u8(r);
}

static void get_dtable(StateReader *r, struct kvm_dtable *d)
{
    d->base = state_get_u64(r);
    d->limit = state_get_u16(r);
}

static void get_regs(StateReader *r, struct kvm_regs *g)
{
    __u64 *v[18] = { &g->rax, &g->rbx, &g->rcx, &g->rdx, &g->rsi, &g->rdi,
                     &g->rsp, &g->rbp, &g->r8,  &g->r9,  &g->r10, &g->r11,
                     &g->r12, &g->r13, &g->r14, &g->r15, &g->rip, &g->rflags };

    for (unsigned i = 0; i < 18; i++)
        *v[i] = state_get_u64(r);
}

static void get_sregs(StateReader *r, struct kvm_sregs *s)
{
    struct kvm_segment *segs[8] = { &s->cs, &s->ds, &s->es, &s->fs,
                                    &s->gs, &s->ss, &s->tr, &s->ldt };

    for (unsigned i = 0; i < 8; i++)
        get_seg(r, segs[i]);
    get_dtable(r, &s->gdt);
    get_dtable(r, &s->idt);
    s->cr0 = state_get_u64(r);
    s->cr2 = state_get_u64(r);
    s->cr3 = state_get_u64(r);
    s->cr4 = state_get_u64(r);
    s->cr8 = state_get_u64(r);
    s->efer = state_get_u64(r);
    s->apic_base = state_get_u64(r);
    for (unsigned i = 0; i < 4; i++)
        s->interrupt_bitmap[i] = state_get_u64(r);
}

static void get_fpu(StateReader *r, struct kvm_fpu *f)
{
    state_get_bytes(r, f->fpr, sizeof(f->fpr));
    f->fcw = state_get_u16(r);
    f->fsw = state_get_u16(r);
    f->ftwx = state_get_u8(r);
    f->last_opcode = state_get_u16(r);
    f->last_ip = state_get_u64(r);
    f->last_dp = state_get_u64(r);
    state_get_bytes(r, f->xmm, sizeof(f->xmm));
    f->mxcsr = state_get_u32(r);
}

static void get_events(StateReader *r, struct kvm_vcpu_events *e)
{
    e->exception.injected = state_get_u8(r);
    e->exception.nr = state_get_u8(r);
    e->exception.has_error_code = state_get_u8(r);
    e->exception.pending = state_get_u8(r);
    e->exception.error_code = state_get_u32(r);
    e->interrupt.injected = state_get_u8(r);
    e->interrupt.nr = state_get_u8(r);
    e->interrupt.soft = state_get_u8(r);
    e->interrupt.shadow = state_get_u8(r);
    e->nmi.injected = state_get_u8(r);
    e->nmi.pending = state_get_u8(r);
    e->nmi.masked = state_get_u8(r);
    e->sipi_vector = state_get_u32(r);
    e->flags = state_get_u32(r);
    e->smi.smm = state_get_u8(r);
    e->smi.pending = state_get_u8(r);
    e->smi.smm_inside_nmi = state_get_u8(r);
    e->smi.latched_init = state_get_u8(r);
    e->triple_fault.pending = state_get_u8(r);
    e->exception_has_payload = state_get_u8(r);
    e->exception_payload = state_get_u64(r);
}

/* Decodes a VCPU payload into *st (zeroed by the caller). */
static int decode_vcpu(StateReader *p, unsigned *index, KvmVcpuState *st, char *err,
                       size_t errlen)
{
    uint32_t idx = state_get_u32(p);

    st->flags = state_get_u32(p);
    if (p->failed)
        return get_fail(err, errlen, -EINVAL, "vCPU state: truncated header");
    if (st->flags & ~KVM_VCPU_STATE_ALL_FLAGS)
        return get_fail(err, errlen, -EINVAL, "vCPU %u state: unknown flags 0x%x", idx,
                        st->flags & ~KVM_VCPU_STATE_ALL_FLAGS);
    if ((st->flags & KVM_VCPU_STATE_FPU) && (st->flags & KVM_VCPU_STATE_XSAVE))
        return get_fail(err, errlen, -EINVAL, "vCPU %u state: both FPU and XSAVE", idx);
    if (!(st->flags & (KVM_VCPU_STATE_FPU | KVM_VCPU_STATE_XSAVE)))
        return get_fail(err, errlen, -EINVAL, "vCPU %u state: neither FPU nor XSAVE", idx);
    get_regs(p, &st->regs);
    get_sregs(p, &st->sregs);
    if (st->flags & KVM_VCPU_STATE_FPU)
        get_fpu(p, &st->fpu);
    if (st->flags & KVM_VCPU_STATE_XSAVE) {
        uint32_t len = state_get_u32(p);

        if (p->failed)
            return get_fail(err, errlen, -EINVAL, "vCPU %u state: truncated", idx);
        if (len < KVM_STATE_XSAVE_LEGACY || len > KVM_STATE_XSAVE_MAX)
            return get_fail(err, errlen, -EINVAL,
                            "vCPU %u state: XSAVE area of %u bytes (must be %u..%u)", idx, len,
                            KVM_STATE_XSAVE_LEGACY, KVM_STATE_XSAVE_MAX);
        st->xsave_len = len;
        if (!state_get_bytes(p, st->xsave, len))
            return get_fail(err, errlen, -EINVAL, "vCPU %u state: truncated XSAVE area", idx);
    }
    if (st->flags & KVM_VCPU_STATE_XCRS) {
        uint32_t nr = state_get_u32(p);

        st->xcrs.flags = state_get_u32(p);
        if (p->failed)
            return get_fail(err, errlen, -EINVAL, "vCPU %u state: truncated", idx);
        if (nr > KVM_MAX_XCRS)
            return get_fail(err, errlen, -EINVAL, "vCPU %u state: %u XCRs (at most %u)", idx,
                            nr, KVM_MAX_XCRS);
        st->xcrs.nr_xcrs = nr;
        for (uint32_t i = 0; i < nr; i++) {
            st->xcrs.xcrs[i].xcr = state_get_u32(p);
            st->xcrs.xcrs[i].value = state_get_u64(p);
        }
    }
    st->nmsrs = state_get_u32(p);
    if (p->failed)
        return get_fail(err, errlen, -EINVAL, "vCPU %u state: truncated", idx);
    if (st->nmsrs > KVM_STATE_MAX_MSRS)
        return get_fail(err, errlen, -EINVAL, "vCPU %u state: %u MSRs (at most %u)", idx,
                        st->nmsrs, KVM_STATE_MAX_MSRS);
    for (uint32_t i = 0; i < st->nmsrs; i++) {
        st->msrs[i].index = state_get_u32(p);
        st->msrs[i].data = state_get_u64(p);
    }
    if (st->flags & KVM_VCPU_STATE_LAPIC) {
        uint32_t len = state_get_u32(p);

        if (p->failed)
            return get_fail(err, errlen, -EINVAL, "vCPU %u state: truncated", idx);
        if (len != sizeof(st->lapic.regs))
            return get_fail(err, errlen, -EINVAL,
                            "vCPU %u state: LAPIC page of %u bytes (must be %zu)", idx, len,
                            sizeof(st->lapic.regs));
        state_get_bytes(p, st->lapic.regs, len);
    }
    if (st->flags & KVM_VCPU_STATE_EVENTS)
        get_events(p, &st->events);
    if (st->flags & KVM_VCPU_STATE_MP_STATE)
        st->mp_state.mp_state = state_get_u32(p);
    if (st->flags & KVM_VCPU_STATE_DEBUGREGS) {
        for (unsigned i = 0; i < 4; i++)
            st->debugregs.db[i] = state_get_u64(p);
        st->debugregs.dr6 = state_get_u64(p);
        st->debugregs.dr7 = state_get_u64(p);
        st->debugregs.flags = state_get_u64(p);
    }
    if (p->failed)
        return get_fail(err, errlen, -EINVAL, "vCPU %u state: truncated", idx);
    if (!state_reader_done(p))
        return get_fail(err, errlen, -EINVAL, "vCPU %u state: %zu trailing bytes", idx,
                        p->len - p->pos);
    *index = idx;
    return 0;
}

int mig_get_vcpu_state(StateReader *r, unsigned *index, KvmVcpuState *out, char *err,
                       size_t errlen)
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
        return get_fail(err, errlen, -ENOMEM, "vCPU state: out of memory");
    }
    ret = decode_vcpu(&p, &idx, st, err, errlen);
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

static void put_pic(StateWriter *w, const struct kvm_pic_state *c)
{
    const uint8_t v[16] = { c->last_irr, c->irr, c->imr, c->isr, c->priority_add,
                            c->irq_base, c->read_reg_select, c->poll, c->special_mask,
                            c->init_state, c->auto_eoi, c->rotate_on_auto_eoi,
                            c->special_fully_nested_mode, c->init4, c->elcr, c->elcr_mask };

    state_put_bytes(w, v, sizeof(v));
}

static void get_pic(StateReader *r, struct kvm_pic_state *c)
{
    uint8_t v[16];

    state_get_bytes(r, v, sizeof(v));
    c->last_irr = v[0];
    c->irr = v[1];
    c->imr = v[2];
    c->isr = v[3];
    c->priority_add = v[4];
    c->irq_base = v[5];
    c->read_reg_select = v[6];
    c->poll = v[7];
    c->special_mask = v[8];
    c->init_state = v[9];
    c->auto_eoi = v[10];
    c->rotate_on_auto_eoi = v[11];
    c->special_fully_nested_mode = v[12];
    c->init4 = v[13];
    c->elcr = v[14];
    c->elcr_mask = v[15];
}

static void put_pit_channel(StateWriter *w, const struct kvm_pit_channel_state *c)
{
    state_put_u32(w, c->count);
    state_put_u16(w, c->latched_count);
    state_put_u8(w, c->count_latched);
    state_put_u8(w, c->status_latched);
    state_put_u8(w, c->status);
    state_put_u8(w, c->read_state);
    state_put_u8(w, c->write_state);
    state_put_u8(w, c->write_latch);
    state_put_u8(w, c->rw_mode);
    state_put_u8(w, c->mode);
    state_put_u8(w, c->bcd);
    state_put_u8(w, c->gate);
    state_put_u64(w, (uint64_t)c->count_load_time);
}

static void get_pit_channel(StateReader *r, struct kvm_pit_channel_state *c)
{
    c->count = state_get_u32(r);
    c->latched_count = state_get_u16(r);
    c->count_latched = state_get_u8(r);
    c->status_latched = state_get_u8(r);
    c->status = state_get_u8(r);
    c->read_state = state_get_u8(r);
    c->write_state = state_get_u8(r);
    c->write_latch = state_get_u8(r);
    c->rw_mode = state_get_u8(r);
    c->mode = state_get_u8(r);
    c->bcd = state_get_u8(r);
    c->gate = state_get_u8(r);
    c->count_load_time = (int64_t)state_get_u64(r);
}

int mig_put_vm_state(StateWriter *w, const KvmVmState *st)
{
    size_t sec;

    if (st->flags & ~KVM_VM_STATE_ALL_FLAGS) {
        fprintf(stderr, "migration: VM state: unknown flags 0x%x\n", st->flags);
        return -EINVAL;
    }
    sec = state_section_begin(w, MIG_VM_MAGIC, MIG_VM_VERSION);
    state_put_u32(w, st->flags);
    if (st->flags & KVM_VM_STATE_IRQCHIP) {
        put_pic(w, &st->pic[0]);
        put_pic(w, &st->pic[1]);
        state_put_u64(w, st->ioapic.base_address);
        state_put_u32(w, st->ioapic.ioregsel);
        state_put_u32(w, st->ioapic.id);
        state_put_u32(w, st->ioapic.irr);
        for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
            state_put_u64(w, st->ioapic.redirtbl[i].bits);
    }
    if (st->flags & KVM_VM_STATE_PIT) {
        for (unsigned i = 0; i < 3; i++)
            put_pit_channel(w, &st->pit.channels[i]);
        state_put_u32(w, st->pit.flags);
    }
    if (st->flags & KVM_VM_STATE_CLOCK) {
        state_put_u64(w, st->clock);
        state_put_u32(w, st->clock_flags);
    }
    state_section_end(w, sec);
    if (w->failed) {
        fprintf(stderr, "migration: VM state: out of memory\n");
        return -ENOMEM;
    }
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
    st.flags = state_get_u32(&p);
    ret = -EINVAL;
    if (p.failed) {
        get_fail(err, errlen, ret, "VM state: truncated header");
        goto bad;
    }
    if (st.flags & ~KVM_VM_STATE_ALL_FLAGS) {
        get_fail(err, errlen, ret, "VM state: unknown flags 0x%x",
                 st.flags & ~KVM_VM_STATE_ALL_FLAGS);
        goto bad;
    }
    if ((st.flags & KVM_VM_STATE_PIT) && !(st.flags & KVM_VM_STATE_IRQCHIP)) {
        get_fail(err, errlen, ret, "VM state: a PIT without an irqchip");
        goto bad;
    }
    if (st.flags & KVM_VM_STATE_IRQCHIP) {
        get_pic(&p, &st.pic[0]);
        get_pic(&p, &st.pic[1]);
        st.ioapic.base_address = state_get_u64(&p);
        st.ioapic.ioregsel = state_get_u32(&p);
        st.ioapic.id = state_get_u32(&p);
        st.ioapic.irr = state_get_u32(&p);
        for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
            st.ioapic.redirtbl[i].bits = state_get_u64(&p);
    }
    if (st.flags & KVM_VM_STATE_PIT) {
        for (unsigned i = 0; i < 3; i++)
            get_pit_channel(&p, &st.pit.channels[i]);
        st.pit.flags = state_get_u32(&p);
    }
    if (st.flags & KVM_VM_STATE_CLOCK) {
        st.clock = state_get_u64(&p);
        st.clock_flags = state_get_u32(&p);
    }
    if (p.failed) {
        get_fail(err, errlen, ret, "VM state: truncated");
        goto bad;
    }
    if (!state_reader_done(&p)) {
        get_fail(err, errlen, ret, "VM state: %zu trailing bytes", p.len - p.pos);
        goto bad;
    }
    *out = st;
    return 0;
bad:
    r->pos = pos;
    return ret;
}
