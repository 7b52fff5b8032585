/* SPDX-License-Identifier: MIT */
/*
 * Valid migration streams for the fake destination (see fake_mig.h):
 * framing per docs/migration.md, the payloads from the real producers
 * (mig_config_json, mig_put_vm_state, mig_put_vcpu_state, each device's
 * save function), and the CRC fix-up the fuzz target applies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory/state-stream.h"
#include "tests/fuzz/fake_mig.h"
#include "vmm/migration/cpu.h"
#include "vmm/migration/internal.h"

void mig_sb_init(MigStreamBuf *sb)
{
    memset(sb, 0, sizeof(*sb));
}

void mig_sb_free(MigStreamBuf *sb)
{
    free(sb->p);
    mig_sb_init(sb);
}

void mig_sb_bytes(MigStreamBuf *sb, const void *p, size_t n)
{
    if (sb->failed || !n)
        return;
    if (sb->len + n > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 4096;
        while (cap < sb->len + n)
            cap *= 2;
        uint8_t *nb = realloc(sb->p, cap);
        if (!nb) {
            sb->failed = true;
            return;
        }
        sb->p = nb;
        sb->cap = cap;
    }
    memcpy(sb->p + sb->len, p, n);
    sb->len += n;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void mig_sb_u32(MigStreamBuf *sb, uint32_t v)
{
    uint8_t b[4];
    put32(b, v);
    mig_sb_bytes(sb, b, 4);
}

void mig_sb_u64(MigStreamBuf *sb, uint64_t v)
{
    mig_sb_u32(sb, (uint32_t)v);
    mig_sb_u32(sb, (uint32_t)(v >> 32));
}

void mig_sb_header(MigStreamBuf *sb)
{
    mig_sb_bytes(sb, MIG_MAGIC, 8);
    mig_sb_u32(sb, MIG_VERSION);
    mig_sb_u32(sb, 0);
}

void mig_sb_record(MigStreamBuf *sb, uint32_t type, uint32_t id, const void *payload, uint32_t len)
{
    uint8_t h[12], c[4];
    put32(h, type);
    put32(h + 4, id);
    put32(h + 8, len);
    put32(c, state_crc32_update(state_crc32(h, sizeof(h)), payload, len));
    if (sb->nrec < FAKE_MIG_MAX_RECORDS) {
        sb->rec_off[sb->nrec] = sb->len;
        sb->rec_type[sb->nrec] = type;
        sb->nrec++;
    }
    mig_sb_bytes(sb, h, sizeof(h));
    mig_sb_bytes(sb, payload, len);
    mig_sb_bytes(sb, c, sizeof(c));
}

MigRec mig_sb_rec(const MigStreamBuf *sb, unsigned i)
{
    const uint8_t *h = sb->p + sb->rec_off[i];
    MigRec r = { get32(h), get32(h + 4), get32(h + 8), h + 12 };
    return r;
}

void mig_sb_put(MigStreamBuf *sb, MigRec r)
{
    mig_sb_record(sb, r.type, r.id, r.payload, r.len);
}

/* ---- the source's state ------------------------------------------------------ */

/* Pages of the fake source that hold data (the others are zero). */
static const unsigned data_pages[] = { 1, 6, FAKE_MIG_RAM_SIZE / MIG_PAGE_SIZE - 1 };

void fake_mig_dirty_source(void)
{
    Machine *m = &fake_mig.v->m;
    memset(fake_mig.ram, 0, FAKE_MIG_RAM_SIZE);
    for (unsigned k = 0; k < sizeof(data_pages) / sizeof(data_pages[0]); k++) {
        uint8_t *pg = fake_mig.ram + (size_t)data_pages[k] * MIG_PAGE_SIZE;
        for (unsigned j = 0; j < MIG_PAGE_SIZE; j++)
            pg[j] = (uint8_t)(data_pages[k] * 7 + j * 13 + 1);
    }
    m->serial.scr = 0x5a;
    m->serial.divider = 12;
    m->i8042.cmd_byte = 0x47;
    m->pvpanic.events = PVPANIC_PANICKED;
    m->ged.pending = GED_EVENT_POWER_BUTTON; /* a press the guest has not seen */
    m->testdev.nr_reports = 3;
    m->testdev.reports[0] = 0x11;
    m->testdev.reports[1] = 0x22;
    m->testdev.reports[2] = 0x33;
    m->testdev.sync_answer = 7;
}

void fake_mig_vm_state(KvmVmState *st)
{
    memset(st, 0, sizeof(*st));
    st->flags = KVM_VM_STATE_IRQCHIP | KVM_VM_STATE_PIT | KVM_VM_STATE_CLOCK;
    st->pic[0].irq_base = 0x20;
    st->pic[0].imr = 0xfb;
    st->pic[1].irq_base = 0x28;
    st->pic[1].imr = 0xff;
    st->ioapic.base_address = 0xfec00000;
    for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
        st->ioapic.redirtbl[i].bits = 1ull << 16; /* masked */
    for (unsigned i = 0; i < 3; i++) {
        st->pit.channels[i].count = 0x10000;
        st->pit.channels[i].mode = 3;
        st->pit.channels[i].rw_mode = 3;
    }
    st->clock = 123456789;
}

void fake_mig_vcpu_state(unsigned i, KvmVcpuState *st)
{
    memset(st, 0, sizeof(*st));
    st->flags = KVM_VCPU_STATE_XSAVE | KVM_VCPU_STATE_XCRS | KVM_VCPU_STATE_LAPIC |
                KVM_VCPU_STATE_EVENTS | KVM_VCPU_STATE_MP_STATE | KVM_VCPU_STATE_DEBUGREGS;
    st->regs.rip = 0x1000 + i;
    st->regs.rsp = 0x8000;
    st->regs.rflags = 2;
    st->sregs.cr0 = 0x80000011;
    st->sregs.efer = 0x500;
    st->sregs.cs.l = 1;
    st->sregs.cs.present = 1;
    if (i == 0) {
        st->xsave_len = KVM_STATE_XSAVE_LEGACY;
        st->xsave[24] = 0x80; /* MXCSR 0x1f80 */
        st->xsave[25] = 0x1f;
        st->xcrs.nr_xcrs = 1;
        st->xcrs.xcrs[0].value = 7;
    } else { /* the others as from a KVM without XSAVE: FPU, no XCRs */
        st->flags &= ~(KVM_VCPU_STATE_XSAVE | KVM_VCPU_STATE_XCRS);
        st->flags |= KVM_VCPU_STATE_FPU;
        st->fpu.fcw = 0x37f;
        st->fpu.mxcsr = 0x1f80;
    }
    st->nmsrs = 2;
    st->msrs[0].index = 0xc0000080;
    st->msrs[0].data = 0x500;
    st->msrs[1].index = 0x10;
    st->msrs[1].data = 1000 + i;
    st->lapic.regs[0x23] = (char)i; /* APIC ID */
    if (i == 0) {                   /* vCPU 0 carries its CPUID (VCPU version 2), the others not */
        st->flags |= KVM_VCPU_STATE_CPUID;
        st->ncpuid = 2;
        st->cpuid[0] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0xd };
        /* ECX bit 16: reserved, on no host CPU (test_loader's lost-feature case) */
        st->cpuid[1] =
            (struct kvm_cpuid_entry2){ .function = 1, .ecx = 1u << 31 | 1u << 16, .edx = 1 };
    }
    st->mp_state.mp_state = i ? 1 : 0;
    st->debugregs.dr6 = 0xffff0ff0;
    st->debugregs.dr7 = 0x400;
}

/* ---- a whole stream ------------------------------------------------------------ */

/* Appends a RAM record for pages [first, last) of block 0; counts them. */
static void ram_record(MigStreamBuf *sb, unsigned first, unsigned last, uint64_t *normal,
                       uint64_t *zero)
{
    MigStreamBuf p;
    mig_sb_init(&p);
    for (unsigned i = first; i < last; i++) {
        const uint8_t *pg = fake_mig.ram + (size_t)i * MIG_PAGE_SIZE;
        uint64_t off = (uint64_t)i * MIG_PAGE_SIZE;
        if (mig_page_is_zero(pg)) {
            mig_sb_u64(&p, off | MIG_PAGE_ZERO);
            (*zero)++;
        } else {
            mig_sb_u64(&p, off | MIG_PAGE_NORMAL);
            mig_sb_bytes(&p, pg, MIG_PAGE_SIZE);
            (*normal)++;
        }
    }
    if (p.failed)
        sb->failed = true;
    mig_sb_record(sb, MIG_REC_RAM, 0, p.p, (uint32_t)p.len);
    mig_sb_free(&p);
}

/* Appends a record whose payload a StateWriter holds; -1 if it failed. */
static int writer_record(MigStreamBuf *sb, uint32_t type, uint32_t id, StateWriter *w)
{
    uint8_t *buf;
    size_t len;
    if (state_writer_finish(w, &buf, &len) < 0)
        return -1;
    mig_sb_record(sb, type, id, buf, (uint32_t)len);
    free(buf);
    return 0;
}

/* Appends a record of what put() writes; -1 if it failed. */
static int section_record(MigStreamBuf *sb, uint32_t type, uint32_t id, int put, StateWriter *w)
{
    if (put < 0) {
        state_writer_free(w);
        return -1;
    }
    return writer_record(sb, type, id, w);
}

static int cpu_records(MigStreamBuf *sb, Machine *m)
{
    StateWriter w;
    KvmVmState vs;
    KvmVcpuState *cs = malloc(sizeof(*cs));
    int ret = -1;
    if (!cs)
        return -1;
    fake_mig_vm_state(&vs);
    state_writer_init(&w);
    if (section_record(sb, MIG_REC_VMSTATE, 0, mig_put_vm_state(&w, &vs), &w) < 0)
        goto out;
    for (unsigned i = 0; i < m->ncpus; i++) {
        fake_mig_vcpu_state(i, cs);
        state_writer_init(&w);
        if (section_record(sb, MIG_REC_VCPU, i, mig_put_vcpu_state(&w, i, cs), &w) < 0)
            goto out;
    }
    ret = 0;
out:
    free(cs);
    return ret;
}

static int device_records(MigStreamBuf *sb, Machine *m)
{
    MigDevice devs[MIG_MAX_DEVICES];
    unsigned n = mig_devices(m, devs, MIG_MAX_DEVICES);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if (devs[i].save(m, devs[i].idx, &buf, &len) < 0) {
            fprintf(stderr, "fake_mig: saving %s failed\n", devs[i].name);
            return -1;
        }
        StateWriter w;
        size_t nl = strlen(devs[i].name);
        state_writer_init(&w);
        state_put_u16(&w, (uint16_t)nl);
        state_put_bytes(&w, devs[i].name, nl);
        state_put_bytes(&w, buf, len);
        free(buf);
        if (writer_record(sb, MIG_REC_DEVICE, i, &w) < 0)
            return -1;
    }
    return 0;
}

int fake_mig_build(MigStreamBuf *sb, const FakeMigBuild *opt)
{
    Machine *m = &fake_mig.v->m;
    uint64_t normal = 0, zero = 0;
    unsigned pages = FAKE_MIG_RAM_SIZE / MIG_PAGE_SIZE;
    char *config = mig_config_json(m);
    if (!config) {
        fprintf(stderr, "fake_mig: mig_config_json failed\n");
        return -1;
    }
    mig_sb_header(sb);
    mig_sb_record(sb, MIG_REC_CONFIG, 0, config, (uint32_t)strlen(config));
    free(config);
    ram_record(sb, 0, pages / 2, &normal, &zero); /* round 0: everything */
    ram_record(sb, pages / 2, pages, &normal, &zero);
    mig_sb_record(sb, MIG_REC_ROUND, 0, NULL, 0);
    ram_record(sb, 5, 6, &normal, &zero); /* round 1: "dirtied" again */
    ram_record(sb, 2, 3, &normal, &zero);
    mig_sb_record(sb, MIG_REC_ROUND, 1, NULL, 0);
    ram_record(sb, 1, 2, &normal, &zero); /* stop-and-copy */
    if (cpu_records(sb, m) < 0 || device_records(sb, m) < 0) {
        fprintf(stderr, "fake_mig: building the state records failed\n");
        return -1;
    }
    MigStreamBuf end;
    mig_sb_init(&end);
    mig_sb_u64(&end, normal);
    mig_sb_u64(&end, zero);
    mig_sb_u64(&end, m->ncpus);
    mig_sb_u64(&end, opt && opt->paused ? 0 : 1);
    bool end_failed = end.failed;
    mig_sb_record(sb, MIG_REC_END, 0, end.p, (uint32_t)end.len);
    mig_sb_free(&end);
    if (opt && opt->go)
        mig_sb_u32(sb, MIG_REPLY_GO);
    if (sb->failed || end_failed) {
        fprintf(stderr, "fake_mig: out of memory building a stream\n");
        return -1;
    }
    return 0;
}

/* ---- CRC fix-up ------------------------------------------------------------------ */

/* Recomputes the CRC of the memory/state-stream.h section at s (n bytes there). */
static void fix_section(uint8_t *s, size_t n)
{
    if (n < 16)
        return;
    uint32_t plen = get32(s + 8);
    if (plen > n - 16)
        return;
    put32(s + 12 + plen, state_crc32(s, 12 + (size_t)plen));
}

void mig_fix_crcs(uint8_t *p, size_t len, bool fix_sections)
{
    size_t pos = MIG_HEADER_LEN;
    while (pos <= len && len - pos >= 16) {
        uint8_t *h = p + pos, *pl = h + 12;
        uint32_t type = get32(h), n = get32(h + 8);
        if (n > len - pos - 16)
            return;
        if (fix_sections && (type == MIG_REC_VMSTATE || type == MIG_REC_VCPU))
            fix_section(pl, n);
        if (fix_sections && type == MIG_REC_DEVICE && n >= 2) {
            uint32_t nl = (uint32_t)pl[0] | (uint32_t)pl[1] << 8;
            if (nl <= n - 2)
                fix_section(pl + 2 + nl, n - 2 - nl);
        }
        put32(pl + n, state_crc32_update(state_crc32(h, 12), pl, n));
        pos += 16 + (size_t)n;
    }
}
