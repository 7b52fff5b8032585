/* SPDX-License-Identifier: MIT */
/*
 * vmm/migration-cpu: the VCPU and VMST stream sections.  Round trips are
 * exact (every field, every optional piece); every truncation, every
 * single-bit flip, every out-of-bounds count or length, unknown flags,
 * trailing bytes, a wrong magic and an unsupported version are refused
 * with a reason, leaving the output and the reader's position untouched.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/state/golden.h"
#include "vmm/migration/cpu.h"

/* ---- building states -------------------------------------------------------- */

/* xorshift64: a deterministic fill, no global state. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill_bytes(uint64_t *s, void *p, size_t n)
{
    uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)rnd(s);
}

static void fill_seg(uint64_t *s, struct kvm_segment *g)
{
    g->base = rnd(s);
    g->limit = (uint32_t)rnd(s);
    g->selector = (uint16_t)rnd(s);
    g->type = (uint8_t)rnd(s);
    g->present = (uint8_t)rnd(s);
    g->dpl = (uint8_t)rnd(s);
    g->db = (uint8_t)rnd(s);
    g->s = (uint8_t)rnd(s);
    g->l = (uint8_t)rnd(s);
    g->g = (uint8_t)rnd(s);
    g->avl = (uint8_t)rnd(s);
    g->unusable = (uint8_t)rnd(s);
}

/* A state with every encoded field random and every padding byte zero (so
 * a decoded copy compares equal with memcmp). */
static KvmVcpuState *make_vcpu(uint64_t seed, uint32_t flags, uint32_t nmsrs)
{
    KvmVcpuState *st = calloc(1, sizeof(*st));
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    struct kvm_segment *segs[8];

    assert_non_null(st);
    st->flags = flags;
    __u64 *r = &st->regs.rax;
    for (unsigned i = 0; i < 18; i++)
        r[i] = rnd(&s);
    segs[0] = &st->sregs.cs;
    segs[1] = &st->sregs.ds;
    segs[2] = &st->sregs.es;
    segs[3] = &st->sregs.fs;
    segs[4] = &st->sregs.gs;
    segs[5] = &st->sregs.ss;
    segs[6] = &st->sregs.tr;
    segs[7] = &st->sregs.ldt;
    for (unsigned i = 0; i < 8; i++)
        fill_seg(&s, segs[i]);
    st->sregs.gdt.base = rnd(&s);
    st->sregs.gdt.limit = (uint16_t)rnd(&s);
    st->sregs.idt.base = rnd(&s);
    st->sregs.idt.limit = (uint16_t)rnd(&s);
    st->sregs.cr0 = rnd(&s);
    st->sregs.cr2 = rnd(&s);
    st->sregs.cr3 = rnd(&s);
    st->sregs.cr4 = rnd(&s);
    st->sregs.cr8 = rnd(&s);
    st->sregs.efer = rnd(&s);
    st->sregs.apic_base = rnd(&s);
    for (unsigned i = 0; i < 4; i++)
        st->sregs.interrupt_bitmap[i] = rnd(&s);
    if (flags & KVM_VCPU_STATE_FPU) {
        fill_bytes(&s, st->fpu.fpr, sizeof(st->fpu.fpr));
        st->fpu.fcw = (uint16_t)rnd(&s);
        st->fpu.fsw = (uint16_t)rnd(&s);
        st->fpu.ftwx = (uint8_t)rnd(&s);
        st->fpu.last_opcode = (uint16_t)rnd(&s);
        st->fpu.last_ip = rnd(&s);
        st->fpu.last_dp = rnd(&s);
        fill_bytes(&s, st->fpu.xmm, sizeof(st->fpu.xmm));
        st->fpu.mxcsr = (uint32_t)rnd(&s);
    }
    if (flags & KVM_VCPU_STATE_XSAVE) {
        st->xsave_len = KVM_STATE_XSAVE_LEGACY + (uint32_t)(seed % 3) * 1024;
        fill_bytes(&s, st->xsave, st->xsave_len);
    }
    if (flags & KVM_VCPU_STATE_XCRS) {
        st->xcrs.nr_xcrs = 1 + (uint32_t)(seed % KVM_MAX_XCRS);
        st->xcrs.flags = (uint32_t)rnd(&s);
        for (uint32_t i = 0; i < st->xcrs.nr_xcrs; i++) {
            st->xcrs.xcrs[i].xcr = (uint32_t)rnd(&s);
            st->xcrs.xcrs[i].value = rnd(&s);
        }
    }
    st->nmsrs = nmsrs;
    for (uint32_t i = 0; i < nmsrs; i++) {
        st->msrs[i].index = (uint32_t)rnd(&s);
        st->msrs[i].data = rnd(&s);
    }
    if (flags & KVM_VCPU_STATE_LAPIC)
        fill_bytes(&s, st->lapic.regs, sizeof(st->lapic.regs));
    if (flags & KVM_VCPU_STATE_EVENTS) {
        struct kvm_vcpu_events *e = &st->events;

        e->exception.injected = (uint8_t)rnd(&s);
        e->exception.nr = (uint8_t)rnd(&s);
        e->exception.has_error_code = (uint8_t)rnd(&s);
        e->exception.pending = (uint8_t)rnd(&s);
        e->exception.error_code = (uint32_t)rnd(&s);
        e->interrupt.injected = (uint8_t)rnd(&s);
        e->interrupt.nr = (uint8_t)rnd(&s);
        e->interrupt.soft = (uint8_t)rnd(&s);
        e->interrupt.shadow = (uint8_t)rnd(&s);
        e->nmi.injected = (uint8_t)rnd(&s);
        e->nmi.pending = (uint8_t)rnd(&s);
        e->nmi.masked = (uint8_t)rnd(&s);
        e->sipi_vector = (uint32_t)rnd(&s);
        e->flags = (uint32_t)rnd(&s);
        e->smi.smm = (uint8_t)rnd(&s);
        e->smi.pending = (uint8_t)rnd(&s);
        e->smi.smm_inside_nmi = (uint8_t)rnd(&s);
        e->smi.latched_init = (uint8_t)rnd(&s);
        e->triple_fault.pending = (uint8_t)rnd(&s);
        e->exception_has_payload = (uint8_t)rnd(&s);
        e->exception_payload = rnd(&s);
    }
    if (flags & KVM_VCPU_STATE_MP_STATE)
        st->mp_state.mp_state = (uint32_t)rnd(&s);
    if (flags & KVM_VCPU_STATE_DEBUGREGS) {
        for (unsigned i = 0; i < 4; i++)
            st->debugregs.db[i] = rnd(&s);
        st->debugregs.dr6 = rnd(&s);
        st->debugregs.dr7 = rnd(&s);
        st->debugregs.flags = rnd(&s);
    }
    if (flags & KVM_VCPU_STATE_CPUID) {
        st->ncpuid = 1 + (uint32_t)(seed % KVM_STATE_MAX_CPUID);
        for (uint32_t i = 0; i < st->ncpuid; i++) {
            struct kvm_cpuid_entry2 *e = &st->cpuid[i];
            e->function = (uint32_t)rnd(&s);
            e->index = (uint32_t)rnd(&s);
            e->flags = (uint32_t)rnd(&s);
            e->eax = (uint32_t)rnd(&s);
            e->ebx = (uint32_t)rnd(&s);
            e->ecx = (uint32_t)rnd(&s);
            e->edx = (uint32_t)rnd(&s);
        }
    }
    return st;
}

static void fill_pic(uint64_t *s, struct kvm_pic_state *p)
{
    uint8_t v[16];

    fill_bytes(s, v, sizeof(v));
    p->last_irr = v[0];
    p->irr = v[1];
    p->imr = v[2];
    p->isr = v[3];
    p->priority_add = v[4];
    p->irq_base = v[5];
    p->read_reg_select = v[6];
    p->poll = v[7];
    p->special_mask = v[8];
    p->init_state = v[9];
    p->auto_eoi = v[10];
    p->rotate_on_auto_eoi = v[11];
    p->special_fully_nested_mode = v[12];
    p->init4 = v[13];
    p->elcr = v[14];
    p->elcr_mask = v[15];
}

static void make_vm(uint64_t seed, uint32_t flags, KvmVmState *st)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 7;

    memset(st, 0, sizeof(*st));
    st->flags = flags;
    if (flags & KVM_VM_STATE_IRQCHIP) {
        fill_pic(&s, &st->pic[0]);
        fill_pic(&s, &st->pic[1]);
        st->ioapic.base_address = rnd(&s);
        st->ioapic.ioregsel = (uint32_t)rnd(&s);
        st->ioapic.id = (uint32_t)rnd(&s);
        st->ioapic.irr = (uint32_t)rnd(&s);
        for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
            st->ioapic.redirtbl[i].bits = rnd(&s);
    }
    if (flags & KVM_VM_STATE_PIT) {
        for (unsigned i = 0; i < 3; i++) {
            struct kvm_pit_channel_state *c = &st->pit.channels[i];

            c->count = (uint32_t)rnd(&s);
            c->latched_count = (uint16_t)rnd(&s);
            c->count_latched = (uint8_t)rnd(&s);
            c->status_latched = (uint8_t)rnd(&s);
            c->status = (uint8_t)rnd(&s);
            c->read_state = (uint8_t)rnd(&s);
            c->write_state = (uint8_t)rnd(&s);
            c->write_latch = (uint8_t)rnd(&s);
            c->rw_mode = (uint8_t)rnd(&s);
            c->mode = (uint8_t)rnd(&s);
            c->bcd = (uint8_t)rnd(&s);
            c->gate = (uint8_t)rnd(&s);
            c->count_load_time = (int64_t)rnd(&s);
        }
        st->pit.flags = (uint32_t)rnd(&s);
    }
    if (flags & KVM_VM_STATE_CLOCK) {
        st->clock = rnd(&s);
        st->clock_flags = (uint32_t)rnd(&s);
    }
}

/* ---- stream helpers ----------------------------------------------------------- */

typedef struct Buf {
    uint8_t *p;
    size_t len;
} Buf;

static Buf put_vcpu(unsigned index, const KvmVcpuState *st)
{
    StateWriter w;
    Buf b;

    state_writer_init(&w);
    assert_int_equal(mig_put_vcpu_state(&w, index, st), 0);
    assert_int_equal(state_writer_finish(&w, &b.p, &b.len), 0);
    return b;
}

static Buf put_vm(const KvmVmState *st)
{
    StateWriter w;
    Buf b;

    state_writer_init(&w);
    assert_int_equal(mig_put_vm_state(&w, st), 0);
    assert_int_equal(state_writer_finish(&w, &b.p, &b.len), 0);
    return b;
}

/* Re-wraps a section's payload after `patch` changed it, with a valid CRC:
 * what a hostile but well-formed stream looks like. */
static Buf rewrap(const Buf *sec, uint32_t magic, uint16_t version, const uint8_t *payload,
                  size_t plen)
{
    StateWriter w;
    Buf b;
    size_t c;

    (void)sec;
    state_writer_init(&w);
    c = state_section_begin(&w, magic, version);
    state_put_bytes(&w, payload, plen);
    state_section_end(&w, c);
    assert_int_equal(state_writer_finish(&w, &b.p, &b.len), 0);
    return b;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Expects mig_get_vcpu_state to refuse buf: error code, a reason, *out
 * and the reader untouched. */
static void expect_vcpu_refused(const uint8_t *buf, size_t len, const char *why)
{
    KvmVcpuState *out = malloc(sizeof(*out));
    KvmVcpuState *ref = malloc(sizeof(*ref));
    StateReader r;
    unsigned index = 12345;
    char err[160] = "";
    int ret;

    assert_non_null(out);
    assert_non_null(ref);
    memset(out, 0xa5, sizeof(*out));
    memcpy(ref, out, sizeof(*ref));
    state_reader_init(&r, buf, len);
    ret = mig_get_vcpu_state(&r, &index, out, err, sizeof(err));
    if (ret >= 0)
        fail_msg("%s: accepted (len %zu)", why, len);
    assert_true(ret == -EINVAL || ret == -ENODATA);
    assert_true(err[0] != 0);
    assert_int_equal(index, 12345);
    assert_int_equal(r.pos, 0);
    assert_memory_equal(out, ref, sizeof(*out));
    free(out);
    free(ref);
}

static void expect_vm_refused(const uint8_t *buf, size_t len, const char *why)
{
    KvmVmState out, ref;
    StateReader r;
    char err[160] = "";
    int ret;

    memset(&out, 0x5a, sizeof(out));
    ref = out;
    state_reader_init(&r, buf, len);
    ret = mig_get_vm_state(&r, &out, err, sizeof(err));
    if (ret >= 0)
        fail_msg("%s: accepted (len %zu)", why, len);
    assert_true(ret == -EINVAL || ret == -ENODATA);
    assert_true(err[0] != 0);
    assert_int_equal(r.pos, 0);
    assert_memory_equal(&out, &ref, sizeof(out));
}

#define ALLV \
    (KVM_VCPU_STATE_XSAVE | KVM_VCPU_STATE_XCRS | KVM_VCPU_STATE_LAPIC | KVM_VCPU_STATE_EVENTS | \
     KVM_VCPU_STATE_MP_STATE | KVM_VCPU_STATE_DEBUGREGS)

/* Payload offsets (after the 12-byte section header) fixed by the format:
 * index 0, flags 4, regs 8 (144 bytes), sregs 152 (8 x 23 + 2 x 10 + 7 x 8
 * + 32 = 292 bytes), then the optional pieces from 444. */
#define OFF_FLAGS 4u
#define OFF_AFTER_SREGS 444u
#define FPU_BYTES 411u
#define HDR 12u

/* ---- tests ---------------------------------------------------------------- */

static void test_vcpu_round_trip(void **unused)
{
    static const uint32_t combos[] = {
        ALLV,
        KVM_VCPU_STATE_FPU,
        KVM_VCPU_STATE_FPU | KVM_VCPU_STATE_XCRS | KVM_VCPU_STATE_EVENTS,
        KVM_VCPU_STATE_XSAVE | KVM_VCPU_STATE_MP_STATE,
        KVM_VCPU_STATE_FPU | KVM_VCPU_STATE_LAPIC | KVM_VCPU_STATE_DEBUGREGS,
    };
    (void)unused;

    for (unsigned c = 0; c < sizeof(combos) / sizeof(combos[0]); c++) {
        static const uint32_t counts[] = { 0, 1, 37, KVM_STATE_MAX_MSRS - 1, KVM_STATE_MAX_MSRS };

        for (unsigned k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
            uint32_t nmsrs = counts[k];
            KvmVcpuState *st = make_vcpu(c * 1000 + nmsrs, combos[c], nmsrs);
            KvmVcpuState *out = calloc(1, sizeof(*out));
            Buf b = put_vcpu(c + 3, st);
            StateReader r;
            unsigned index = 0;
            char err[160] = "";

            assert_non_null(out);
            state_reader_init(&r, b.p, b.len);
            if (mig_get_vcpu_state(&r, &index, out, err, sizeof(err)) != 0)
                fail_msg("combo %u nmsrs %u: %s", c, nmsrs, err);
            assert_true(state_reader_done(&r));
            assert_int_equal(index, c + 3);
            assert_memory_equal(out, st, sizeof(*st));
            free(b.p);
            free(st);
            free(out);
        }
    }
}

static void test_vcpu_multi_sections(void **unused)
{
    KvmVcpuState *a = make_vcpu(1, ALLV, 20), *b = make_vcpu(2, KVM_VCPU_STATE_FPU, 5);
    KvmVcpuState *out = calloc(1, sizeof(*out));
    KvmVmState vm, vout;
    StateWriter w;
    StateReader r;
    uint8_t *buf;
    size_t len;
    unsigned idx;
    char err[160];
    (void)unused;

    make_vm(3, KVM_VM_STATE_ALL_FLAGS, &vm);
    state_writer_init(&w);
    assert_int_equal(mig_put_vm_state(&w, &vm), 0);
    assert_int_equal(mig_put_vcpu_state(&w, 0, a), 0);
    assert_int_equal(mig_put_vcpu_state(&w, 1, b), 0);
    assert_int_equal(state_writer_finish(&w, &buf, &len), 0);
    state_reader_init(&r, buf, len);
    /* a VCPU reader refuses the VMST section first, without consuming it */
    assert_int_equal(mig_get_vcpu_state(&r, &idx, out, err, sizeof(err)), -EINVAL);
    assert_int_equal(r.pos, 0);
    assert_int_equal(mig_get_vm_state(&r, &vout, err, sizeof(err)), 0);
    assert_memory_equal(&vout, &vm, sizeof(vm));
    assert_int_equal(mig_get_vcpu_state(&r, &idx, out, err, sizeof(err)), 0);
    assert_int_equal(idx, 0);
    assert_memory_equal(out, a, sizeof(*a));
    assert_int_equal(mig_get_vcpu_state(&r, &idx, out, err, sizeof(err)), 0);
    assert_int_equal(idx, 1);
    assert_memory_equal(out, b, sizeof(*b));
    assert_true(state_reader_done(&r));
    assert_int_equal(mig_get_vcpu_state(&r, &idx, out, err, sizeof(err)), -ENODATA);
    free(buf);
    free(a);
    free(b);
    free(out);
}

static void test_vcpu_truncated(void **unused)
{
    KvmVcpuState *st = make_vcpu(9, ALLV, 40);
    Buf b = put_vcpu(0, st);
    (void)unused;

    for (size_t len = 0; len < b.len; len++)
        expect_vcpu_refused(b.p, len, "truncated stream");
    free(b.p);
    free(st);
}

static void test_vcpu_bit_flips(void **unused)
{
    KvmVcpuState *st = make_vcpu(11, ALLV, 30);
    Buf b = put_vcpu(0, st);
    (void)unused;

    /* one bit per byte (rotating which), every byte of the section */
    for (size_t i = 0; i < b.len; i++) {
        uint8_t bit = (uint8_t)(1u << (i % 8));

        b.p[i] ^= bit;
        expect_vcpu_refused(b.p, b.len, "bit flip");
        b.p[i] ^= bit;
    }
    free(b.p);
    free(st);
}

/* A well-formed section (valid CRC) whose u32 at payload offset `off` was
 * `expect` and is now `val`, with `extra` more payload bytes inserted at
 * `at` (so that an oversized count finds data behind it). */
static void expect_patched_grown_refused(const KvmVcpuState *st, size_t off, uint32_t expect,
                                         uint32_t val, size_t at, size_t extra, const char *why)
{
    Buf b = put_vcpu(0, st);
    size_t plen = b.len - HDR - 4;
    uint8_t *payload = calloc(1, plen + extra);
    Buf bad;

    assert_non_null(payload);
    assert_true(off + 4 <= plen && at <= plen);
    memcpy(payload, b.p + HDR, at);
    memset(payload + at, 0x3c, extra);
    memcpy(payload + at + extra, b.p + HDR + at, plen - at);
    assert_int_equal(rd32(payload + off), expect); /* the offset is right */
    wr32(payload + off, val);
    bad = rewrap(&b, MIG_VCPU_MAGIC, MIG_VCPU_VERSION, payload, plen + extra);
    expect_vcpu_refused(bad.p, bad.len, why);
    free(bad.p);
    free(payload);
    free(b.p);
}

static void expect_patched_refused(const KvmVcpuState *st, size_t off, uint32_t expect,
                                   uint32_t val, const char *why)
{
    expect_patched_grown_refused(st, off, expect, val, 0, 0, why);
}

static void test_vcpu_oversize(void **unused)
{
    KvmVcpuState *fpu = make_vcpu(5, KVM_VCPU_STATE_FPU, 3);
    KvmVcpuState *xs = make_vcpu(6, KVM_VCPU_STATE_XSAVE, 0); /* xsave_len 4096 */
    KvmVcpuState *xcr = make_vcpu(16, KVM_VCPU_STATE_FPU | KVM_VCPU_STATE_XCRS, 0);
    KvmVcpuState *lapic = make_vcpu(7, KVM_VCPU_STATE_FPU | KVM_VCPU_STATE_LAPIC, 0);
    const uint32_t msr_off = OFF_AFTER_SREGS + FPU_BYTES;
    (void)unused;

    assert_int_equal(xs->xsave_len, KVM_STATE_XSAVE_LEGACY);
    expect_patched_refused(fpu, msr_off, 3, KVM_STATE_MAX_MSRS + 1, "nmsrs = max + 1");
    expect_patched_refused(fpu, msr_off, 3, UINT32_MAX, "nmsrs = 2^32 - 1");
    expect_patched_refused(fpu, msr_off, 3, 4, "nmsrs one more than present");
    expect_patched_refused(fpu, msr_off, 3, 2, "nmsrs one less (trailing bytes)");
    expect_patched_refused(xs, OFF_AFTER_SREGS, 4096, KVM_STATE_XSAVE_MAX + 1,
                           "xsave length = max + 1");
    expect_patched_refused(xs, OFF_AFTER_SREGS, 4096, UINT32_MAX, "xsave length = 2^32 - 1");
    expect_patched_refused(xs, OFF_AFTER_SREGS, 4096, 512, "xsave length below 4096");
    expect_patched_refused(xs, OFF_AFTER_SREGS, 4096, 4100, "xsave length past the data");
    expect_patched_refused(xcr, msr_off, 1, KVM_MAX_XCRS + 1, "nr_xcrs = max + 1");
    expect_patched_refused(lapic, msr_off + 4, 1024, 1023, "LAPIC length 1023");
    expect_patched_refused(lapic, msr_off + 4, 1024, 1025, "LAPIC length 1025");
    expect_patched_refused(fpu, OFF_FLAGS, KVM_VCPU_STATE_FPU, KVM_VCPU_STATE_FPU | 0x80,
                           "unknown flag");
    expect_patched_refused(fpu, OFF_FLAGS, KVM_VCPU_STATE_FPU,
                           KVM_VCPU_STATE_FPU | KVM_VCPU_STATE_XSAVE, "both FPU and XSAVE");
    expect_patched_refused(fpu, OFF_FLAGS, KVM_VCPU_STATE_FPU, 0, "neither FPU nor XSAVE");

    /* counts one past the bounds, with the data for them present */
    {
        KvmVcpuState *full = make_vcpu(8, KVM_VCPU_STATE_FPU, KVM_STATE_MAX_MSRS);
        KvmVcpuState *big = make_vcpu(9, KVM_VCPU_STATE_XSAVE, 0);
        size_t msrs_end = msr_off + 4 + 12u * KVM_STATE_MAX_MSRS;

        expect_patched_grown_refused(full, msr_off, KVM_STATE_MAX_MSRS, KVM_STATE_MAX_MSRS + 1,
                                     msrs_end, 12, "nmsrs = max + 1 with its data");
        big->xsave_len = KVM_STATE_XSAVE_MAX;
        expect_patched_grown_refused(big, OFF_AFTER_SREGS, KVM_STATE_XSAVE_MAX,
                                     KVM_STATE_XSAVE_MAX + 1,
                                     OFF_AFTER_SREGS + 4 + KVM_STATE_XSAVE_MAX, 1,
                                     "xsave length = max + 1 with its data");
        xcr->xcrs.nr_xcrs = KVM_MAX_XCRS;
        expect_patched_grown_refused(xcr, msr_off, KVM_MAX_XCRS, KVM_MAX_XCRS + 1,
                                     msr_off + 8 + 12u * KVM_MAX_XCRS, 12,
                                     "nr_xcrs = max + 1 with its data");
        xcr->xcrs.nr_xcrs = 1;
        expect_patched_grown_refused(lapic, msr_off + 4, 1024, 1025, msr_off + 8 + 1024, 1,
                                     "LAPIC length 1025 with its data");
        free(full);
        free(big);
    }

    /* one trailing byte */
    {
        Buf b = put_vcpu(0, fpu);
        size_t plen = b.len - HDR - 4;
        uint8_t *p = calloc(1, plen + 1);
        Buf bad;

        memcpy(p, b.p + HDR, plen);
        bad = rewrap(&b, MIG_VCPU_MAGIC, MIG_VCPU_VERSION, p, plen + 1);
        expect_vcpu_refused(bad.p, bad.len, "trailing byte");
        free(bad.p);
        free(p);
        free(b.p);
    }

    /* the writer refuses out-of-bounds states and writes nothing */
    {
        StateWriter w;

        state_writer_init(&w);
        fpu->nmsrs = KVM_STATE_MAX_MSRS + 1;
        assert_int_equal(mig_put_vcpu_state(&w, 0, fpu), -EINVAL);
        fpu->nmsrs = 3;
        xs->xsave_len = KVM_STATE_XSAVE_MAX + 1;
        assert_int_equal(mig_put_vcpu_state(&w, 0, xs), -EINVAL);
        xs->xsave_len = 100;
        assert_int_equal(mig_put_vcpu_state(&w, 0, xs), -EINVAL);
        xcr->xcrs.nr_xcrs = KVM_MAX_XCRS + 1;
        assert_int_equal(mig_put_vcpu_state(&w, 0, xcr), -EINVAL);
        fpu->flags |= 0x100;
        assert_int_equal(mig_put_vcpu_state(&w, 0, fpu), -EINVAL);
        assert_int_equal(w.len, 0);
        state_writer_free(&w);
    }
    free(fpu);
    free(xs);
    free(xcr);
    free(lapic);
}

static void test_vcpu_version_magic(void **unused)
{
    KvmVcpuState *st = make_vcpu(21, ALLV | KVM_VCPU_STATE_CPUID, 10);
    Buf b = put_vcpu(0, st);
    size_t plen = b.len - HDR - 4;
    Buf v2 = rewrap(&b, MIG_VCPU_MAGIC, MIG_VCPU_VERSION + 1, b.p + HDR, plen);
    Buf v0 = rewrap(&b, MIG_VCPU_MAGIC, 0, b.p + HDR, plen);
    Buf vm = rewrap(&b, MIG_VM_MAGIC, MIG_VCPU_VERSION, b.p + HDR, plen);
    Buf same = rewrap(&b, MIG_VCPU_MAGIC, MIG_VCPU_VERSION, b.p + HDR, plen);
    (void)unused;

    /* the re-wrapping itself is faithful */
    assert_int_equal(same.len, b.len);
    assert_memory_equal(same.p, b.p, b.len);
    expect_vcpu_refused(v2.p, v2.len, "newer version");
    expect_vcpu_refused(v0.p, v0.len, "version 0");
    expect_vcpu_refused(vm.p, vm.len, "VMST magic");
    free(v2.p);
    free(v0.p);
    free(vm.p);
    free(same.p);
    free(b.p);
    free(st);
}

/* [CPUID] (version 2): round trips at 1..KVM_STATE_MAX_CPUID entries; a
 * state without it is written as version 1 (what destinations built before
 * it read), one with it as version 2; version 1 with the CPUID flag, an
 * empty table and one over the bound are refused. */
static void test_vcpu_cpuid(void **unused)
{
    static const uint32_t counts[] = { 0, 1, 36, KVM_STATE_MAX_CPUID - 1 }; /* seed % 256 + 1 */
    (void)unused;

    for (unsigned k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
        KvmVcpuState *st = make_vcpu(counts[k], ALLV | KVM_VCPU_STATE_CPUID, 3);
        KvmVcpuState *out = calloc(1, sizeof(*out));
        Buf b = put_vcpu(1, st);
        StateReader r;
        unsigned index = 0;
        char err[160] = "";

        assert_non_null(out);
        assert_int_equal(st->ncpuid, counts[k] + 1);
        assert_int_equal(b.p[4], 2); /* the section's version, little endian */
        state_reader_init(&r, b.p, b.len);
        if (mig_get_vcpu_state(&r, &index, out, err, sizeof(err)) != 0)
            fail_msg("%u entries: %s", st->ncpuid, err);
        assert_memory_equal(out, st, sizeof(*st));
        free(out);

        /* the same content as version 1: the flag is unknown there */
        size_t plen = b.len - HDR - 4;
        Buf v1 = rewrap(&b, MIG_VCPU_MAGIC, 1, b.p + HDR, plen);
        expect_vcpu_refused(v1.p, v1.len, "CPUID in version 1");
        free(v1.p);
        free(b.p);

        /* without the piece: version 1, byte for byte what it was */
        st->flags &= ~KVM_VCPU_STATE_CPUID;
        b = put_vcpu(1, st);
        assert_int_equal(b.p[4], 1);
        free(b.p);
        free(st);
    }

    /* one entry, then its count rewritten to 0 (entry dropped) and to 257 */
    KvmVcpuState *st = make_vcpu(0, ALLV | KVM_VCPU_STATE_CPUID, 3);
    Buf b = put_vcpu(1, st);
    size_t plen = b.len - HDR - 4;
    uint8_t *p = malloc(plen);
    assert_non_null(p);
    memcpy(p, b.p + HDR, plen);
    size_t count_at = plen - 4 - 7 * 4; /* u32 n, then 7 x u32 per entry */
    memset(p + count_at, 0, 4);
    Buf empty = rewrap(&b, MIG_VCPU_MAGIC, 2, p, count_at + 4);
    expect_vcpu_refused(empty.p, empty.len, "empty CPUID table");
    p[count_at] = (uint8_t)((KVM_STATE_MAX_CPUID + 1) & 0xff);
    p[count_at + 1] = (uint8_t)((KVM_STATE_MAX_CPUID + 1) >> 8);
    Buf over = rewrap(&b, MIG_VCPU_MAGIC, 2, p, plen);
    expect_vcpu_refused(over.p, over.len, "257 CPUID entries");
    free(empty.p);
    free(over.p);
    free(p);
    free(b.p);

    /* the encoder refuses what the decoder would */
    StateWriter w;
    st->ncpuid = 0;
    state_writer_init(&w);
    assert_int_equal(mig_put_vcpu_state(&w, 0, st), -EINVAL);
    st->ncpuid = KVM_STATE_MAX_CPUID + 1;
    assert_int_equal(mig_put_vcpu_state(&w, 0, st), -EINVAL);
    uint8_t *junk;
    size_t jlen;
    if (state_writer_finish(&w, &junk, &jlen) == 0)
        free(junk);
    free(st);
}

/* mig_host_cpu_check: a guest feature the source host had and this one
 * lacks is refused, by name; other bits, other subleaves and a state
 * without CPUID pass. */
static void test_host_cpu_check(void **unused)
{
    KvmVcpuState *st = calloc(1, sizeof(*st));
    uint32_t lost[MIG_HOST_CPU_WORDS] = { 0 };
    char err[200] = "";
    (void)unused;

    assert_non_null(st);
    assert_int_equal(mig_host_cpu_check(lost, st, 0, err, sizeof(err)), 0); /* no CPUID */
    st->flags = KVM_VCPU_STATE_CPUID;
    st->ncpuid = 3;
    st->cpuid[0] = (struct kvm_cpuid_entry2){ .function = 1, .ecx = 1u << 31 };
    st->cpuid[1] = (struct kvm_cpuid_entry2){
        .function = 7, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ebx = 1u << 5
    };
    st->cpuid[2] = (struct kvm_cpuid_entry2){
        .function = 7, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ebx = 1u << 3
    };
    lost[2] = 1u << 5;             /* CPUID.7.0:EBX bit 5: the guest has it only in subleaf 1 */
    lost[0] = 1u << 30 | 1u << 31; /* 30: not the guest's; 31 (hypervisor): the VMM's */
    assert_int_equal(mig_host_cpu_check(lost, st, 0, err, sizeof(err)), 0);
    lost[2] |= 1u << 3; /* now one the guest was given */
    assert_int_equal(mig_host_cpu_check(lost, st, 2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "vCPU 2's CPUID has CPUID.7.0:EBX bit 3"));
    assert_string_equal(mig_host_cpu_word_name(2), "CPUID.7.0:EBX");
    assert_string_equal(mig_host_cpu_word_name(MIG_HOST_CPU_WORDS), "?");

    /* this host against itself: its vendor is one of the known twelve-byte names */
    MigHostCpu h;
    mig_host_cpu_read(&h);
    assert_int_equal(strlen(h.vendor), 12);
    assert_true(h.words[1] & 1u); /* CPUID.1:EDX FPU: every x86-64 CPU */
    free(st);
}

static void test_vm_round_trip(void **unused)
{
    static const uint32_t combos[] = {
        0,
        KVM_VM_STATE_CLOCK,
        KVM_VM_STATE_IRQCHIP,
        KVM_VM_STATE_IRQCHIP | KVM_VM_STATE_PIT,
        KVM_VM_STATE_ALL_FLAGS,
    };
    (void)unused;

    for (unsigned c = 0; c < sizeof(combos) / sizeof(combos[0]); c++) {
        KvmVmState st, out;
        Buf b;
        StateReader r;
        char err[160] = "";

        make_vm(c + 1, combos[c], &st);
        b = put_vm(&st);
        memset(&out, 0xee, sizeof(out));
        state_reader_init(&r, b.p, b.len);
        if (mig_get_vm_state(&r, &out, err, sizeof(err)) != 0)
            fail_msg("combo %u: %s", c, err);
        assert_true(state_reader_done(&r));
        assert_memory_equal(&out, &st, sizeof(st));
        free(b.p);
    }
}

static void test_vm_refused(void **unused)
{
    KvmVmState st;
    Buf b, bad;
    size_t plen;
    uint8_t *p;
    (void)unused;

    make_vm(77, KVM_VM_STATE_ALL_FLAGS, &st);
    b = put_vm(&st);
    for (size_t len = 0; len < b.len; len++)
        expect_vm_refused(b.p, len, "truncated");
    for (size_t i = 0; i < b.len; i++) {
        uint8_t bit = (uint8_t)(0x80u >> (i % 8));

        b.p[i] ^= bit;
        expect_vm_refused(b.p, b.len, "bit flip");
        b.p[i] ^= bit;
    }
    plen = b.len - HDR - 4;
    p = calloc(1, plen + 1);
    assert_non_null(p);
    memcpy(p, b.p + HDR, plen);

    wr32(p, KVM_VM_STATE_ALL_FLAGS | 0x10);
    bad = rewrap(&b, MIG_VM_MAGIC, MIG_VM_VERSION, p, plen);
    expect_vm_refused(bad.p, bad.len, "unknown flag");
    free(bad.p);

    wr32(p, KVM_VM_STATE_PIT | KVM_VM_STATE_CLOCK);
    bad = rewrap(&b, MIG_VM_MAGIC, MIG_VM_VERSION, p, plen);
    expect_vm_refused(bad.p, bad.len, "PIT without irqchip");
    free(bad.p);

    wr32(p, KVM_VM_STATE_ALL_FLAGS);
    bad = rewrap(&b, MIG_VM_MAGIC, MIG_VM_VERSION, p, plen + 1);
    expect_vm_refused(bad.p, bad.len, "trailing byte");
    free(bad.p);

    bad = rewrap(&b, MIG_VM_MAGIC, MIG_VM_VERSION + 1, p, plen);
    expect_vm_refused(bad.p, bad.len, "newer version");
    free(bad.p);

    bad = rewrap(&b, MIG_VCPU_MAGIC, MIG_VM_VERSION, p, plen);
    expect_vm_refused(bad.p, bad.len, "VCPU magic");
    free(bad.p);

    {
        StateWriter w;

        state_writer_init(&w);
        st.flags |= 0x100;
        assert_int_equal(mig_put_vm_state(&w, &st), -EINVAL);
        assert_int_equal(w.len, 0);
        state_writer_free(&w);
    }
    free(p);
    free(b.p);
}

/* The sections of tests/state/golden/, written by the encoders of commit
 * 4607e10 (before field tables): today's encoder writes the same states to
 * the same bytes, and its decoder reads them back to the same structs. */
static void test_golden(void **unused)
{
    static const struct {
        const char *name;
        uint32_t flags, nmsrs;
    } vcpus[] = {
        { "vcpu-xsave", ALLV, 20 },
        { "vcpu-fpu",
          KVM_VCPU_STATE_FPU | KVM_VCPU_STATE_XCRS | KVM_VCPU_STATE_LAPIC | KVM_VCPU_STATE_EVENTS |
              KVM_VCPU_STATE_MP_STATE | KVM_VCPU_STATE_DEBUGREGS,
          5 },
    };
    static const struct {
        const char *name;
        uint32_t flags;
    } vms[] = { { "vmst-all", KVM_VM_STATE_ALL_FLAGS }, { "vmst-clock", KVM_VM_STATE_CLOCK } };
    (void)unused;

    for (unsigned i = 0; i < 2; i++) {
        KvmVcpuState *st = make_vcpu(100 + i, vcpus[i].flags, vcpus[i].nmsrs);
        KvmVcpuState *out = calloc(1, sizeof(*out));
        Buf b = put_vcpu(i, st);
        StateReader r;
        unsigned index = 99;
        char err[160] = "";

        assert_non_null(out);
        if (!golden_matches(vcpus[i].name, b.p, b.len))
            fail_msg("%s: encoded differently", vcpus[i].name);
        state_reader_init(&r, b.p, b.len);
        if (mig_get_vcpu_state(&r, &index, out, err, sizeof(err)) != 0)
            fail_msg("%s: %s", vcpus[i].name, err);
        assert_int_equal(index, i);
        assert_memory_equal(out, st, sizeof(*st));
        free(b.p);
        free(st);
        free(out);
    }
    for (unsigned i = 0; i < 2; i++) {
        KvmVmState st, out;
        Buf b;
        StateReader r;
        char err[160] = "";

        make_vm(200 + i, vms[i].flags, &st);
        b = put_vm(&st);
        if (!golden_matches(vms[i].name, b.p, b.len))
            fail_msg("%s: encoded differently", vms[i].name);
        memset(&out, 0, sizeof(out));
        state_reader_init(&r, b.p, b.len);
        if (mig_get_vm_state(&r, &out, err, sizeof(err)) != 0)
            fail_msg("%s: %s", vms[i].name, err);
        assert_memory_equal(&out, &st, sizeof(st));
        free(b.p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vcpu_round_trip), cmocka_unit_test(test_vcpu_multi_sections),
        cmocka_unit_test(test_vcpu_truncated),  cmocka_unit_test(test_vcpu_bit_flips),
        cmocka_unit_test(test_vcpu_oversize),   cmocka_unit_test(test_vcpu_version_magic),
        cmocka_unit_test(test_vm_round_trip),   cmocka_unit_test(test_vm_refused),
        cmocka_unit_test(test_golden),          cmocka_unit_test(test_vcpu_cpuid),
        cmocka_unit_test(test_host_cpu_check),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
