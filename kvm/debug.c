/* SPDX-License-Identifier: MIT */
/* Guest page-table walks and register dumps for error reports. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "kvm/kvm_internal.h"

#define CR0_PE (1ull << 0)
#define CR0_PG (1ull << 31)
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LMA (1ull << 10)
#define PTE_P (1ull << 0)
#define PTE_PS (1ull << 7)
#define PTE_ADDR 0x000ffffffffff000ull

static int read_phys(AddressSpace *as, uint64_t gpa, void *buf, unsigned len)
{
    memset(buf, 0, len);
    return address_space_read(as, gpa, buf, len) == MEMTX_OK ? 0 : -EFAULT;
}

/* Walks 64-bit-entry tables (long mode: levels 4/5; PAE: 3 with a 4-entry
 * top level). */
static int walk64(AddressSpace *as, uint64_t table, uint64_t gva, int levels, bool pae,
                  uint64_t *gpa)
{
    for (int level = levels; level >= 1; level--) {
        unsigned shift = 12 + 9 * (unsigned)(level - 1);
        uint64_t idx = (gva >> shift) & (pae && level == 3 ? 3 : 511);
        uint64_t e;
        if (read_phys(as, table + idx * 8, &e, 8) < 0 || !(e & PTE_P))
            return -EFAULT;
        if (pae && level == 3) { /* PDPTE: no PS bit */
            table = e & PTE_ADDR;
            continue;
        }
        if (level == 1 || ((level == 2 || level == 3) && (e & PTE_PS))) {
            uint64_t psize = 1ull << shift;
            *gpa = ((e & PTE_ADDR) & ~(psize - 1)) | (gva & (psize - 1));
            return 0;
        }
        table = e & PTE_ADDR;
    }
    return -EFAULT;
}

int kvm_vcpu_translate(KvmVcpu *vcpu, uint64_t gva, uint64_t *gpa)
{
    AddressSpace *as = vcpu->vm->memory_as;
    struct kvm_sregs sr;
    if (!as)
        return -ENODEV;
    int r = kvm_ioctl(vcpu->fd, KVM_GET_SREGS, &sr);
    if (r < 0)
        return r;
    if (!(sr.cr0 & CR0_PG)) {
        *gpa = (sr.efer & EFER_LMA) ? gva : (gva & 0xffffffffull);
        return 0;
    }
    if (sr.efer & EFER_LMA)
        return walk64(as, sr.cr3 & PTE_ADDR, gva, (sr.cr4 & CR4_LA57) ? 5 : 4, false, gpa);
    gva &= 0xffffffffull;
    if (sr.cr4 & CR4_PAE)
        return walk64(as, sr.cr3 & 0xffffffe0ull, gva, 3, true, gpa);
    /* 32-bit paging */
    uint32_t pde, pte;
    if (read_phys(as, (sr.cr3 & 0xfffff000ull) + (gva >> 22) * 4, &pde, 4) < 0 || !(pde & PTE_P))
        return -EFAULT;
    if ((pde & PTE_PS) && (sr.cr4 & CR4_PSE)) {
        *gpa = (pde & 0xffc00000ull) | ((uint64_t)((pde >> 13) & 0xff) << 32) | (gva & 0x3fffffull);
        return 0;
    }
    if (read_phys(as, (pde & 0xfffff000ull) + ((gva >> 12) & 1023) * 4, &pte, 4) < 0 ||
        !(pte & PTE_P))
        return -EFAULT;
    *gpa = (pte & 0xfffff000ull) | (gva & 0xfff);
    return 0;
}

static void dump_seg(FILE *f, const char *name, const struct kvm_segment *s)
{
    fprintf(f,
            "  %-3s sel=%04x base=%016llx limit=%08x type=%x dpl=%u p=%u s=%u l=%u db=%u g=%u%s\n",
            name, s->selector, (unsigned long long)s->base, s->limit, s->type, s->dpl, s->present,
            s->s, s->l, s->db, s->g, s->unusable ? " unusable" : "");
}

static const char *mp_state_name(uint32_t s)
{
    switch (s) {
    case KVM_MP_STATE_RUNNABLE:
        return "runnable";
    case KVM_MP_STATE_UNINITIALIZED:
        return "uninitialized";
    case KVM_MP_STATE_INIT_RECEIVED:
        return "init-received";
    case KVM_MP_STATE_HALTED:
        return "halted";
    case KVM_MP_STATE_SIPI_RECEIVED:
        return "sipi-received";
    default:
        return "other";
    }
}

void kvm_vcpu_dump(KvmVcpu *vcpu, FILE *f)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    if (kvm_ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || kvm_ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
        fprintf(f, "vCPU %u: registers unavailable\n", vcpu->index);
        return;
    }
    fprintf(f, "vCPU %u registers:\n", vcpu->index);
    if (vcpu->run && vcpu->run->exit_reason == KVM_EXIT_SHUTDOWN && r.rip == 0xfff0 &&
        s.cs.selector == 0xf000 && s.cs.base == 0xffff0000)
        fprintf(f, "  (the reset state: this KVM re-initialised the vCPU when it reported the "
                   "shutdown, as KVM on AMD SVM does, so these registers do not say where the "
                   "guest faulted; the kvm:kvm_exit tracepoint's intr_info names the exception)\n");
    fprintf(f, "  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx\n", (unsigned long long)r.rax,
            (unsigned long long)r.rbx, (unsigned long long)r.rcx, (unsigned long long)r.rdx);
    fprintf(f, "  rsi=%016llx rdi=%016llx rbp=%016llx rsp=%016llx\n", (unsigned long long)r.rsi,
            (unsigned long long)r.rdi, (unsigned long long)r.rbp, (unsigned long long)r.rsp);
    fprintf(f, "  r8 =%016llx r9 =%016llx r10=%016llx r11=%016llx\n", (unsigned long long)r.r8,
            (unsigned long long)r.r9, (unsigned long long)r.r10, (unsigned long long)r.r11);
    fprintf(f, "  r12=%016llx r13=%016llx r14=%016llx r15=%016llx\n", (unsigned long long)r.r12,
            (unsigned long long)r.r13, (unsigned long long)r.r14, (unsigned long long)r.r15);
    fprintf(f, "  rip=%016llx rflags=%08llx\n", (unsigned long long)r.rip,
            (unsigned long long)r.rflags);
    dump_seg(f, "cs", &s.cs);
    dump_seg(f, "ss", &s.ss);
    dump_seg(f, "ds", &s.ds);
    dump_seg(f, "es", &s.es);
    dump_seg(f, "fs", &s.fs);
    dump_seg(f, "gs", &s.gs);
    dump_seg(f, "tr", &s.tr);
    fprintf(f, "  gdt=%016llx/%04x idt=%016llx/%04x\n", (unsigned long long)s.gdt.base, s.gdt.limit,
            (unsigned long long)s.idt.base, s.idt.limit);
    fprintf(f, "  cr0=%016llx cr2=%016llx cr3=%016llx cr4=%016llx efer=%llx\n",
            (unsigned long long)s.cr0, (unsigned long long)s.cr2, (unsigned long long)s.cr3,
            (unsigned long long)s.cr4, (unsigned long long)s.efer);
    fprintf(f, "  apic_base=%llx interrupt_bitmap=%016llx%016llx%016llx%016llx\n",
            (unsigned long long)s.apic_base, (unsigned long long)s.interrupt_bitmap[3],
            (unsigned long long)s.interrupt_bitmap[2], (unsigned long long)s.interrupt_bitmap[1],
            (unsigned long long)s.interrupt_bitmap[0]);
    /* What a stuck vCPU waits for: halted or not, interrupts pending. */
    struct kvm_mp_state mp;
    if (kvm_ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) == 0)
        fprintf(f, "  mp_state=%s", mp_state_name(mp.mp_state));
    else
        fprintf(f, "  mp_state=?");
    struct kvm_vcpu_events ev;
    if (kvm_ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) == 0)
        fprintf(f, " exception=%s%u interrupt=%s%u nmi=%s%s shadow=%u\n",
                ev.exception.injected || ev.exception.pending ? "" : "-", ev.exception.nr,
                ev.interrupt.injected ? "" : "-", ev.interrupt.nr,
                ev.nmi.injected  ? "injected"
                : ev.nmi.pending ? "pending"
                                 : "none",
                ev.nmi.masked ? ",masked" : "", ev.interrupt.shadow);
    else
        fprintf(f, " events=?\n");

    uint64_t lin;
    if (s.efer & EFER_LMA && s.cs.l)
        lin = r.rip;
    else if (s.cr0 & CR0_PE)
        lin = (s.cs.base + r.rip) & 0xffffffffull;
    else
        lin = (s.cs.base + (r.rip & 0xffff)) & 0xfffffull;
    fprintf(f, "  code at %016llx:", (unsigned long long)lin);
    AddressSpace *as = vcpu->vm->memory_as;
    for (unsigned i = 0; i < 16; i++) {
        uint64_t gpa;
        uint8_t b;
        if (!as || kvm_vcpu_translate(vcpu, lin + i, &gpa) < 0 || read_phys(as, gpa, &b, 1) < 0)
            fprintf(f, " ??");
        else
            fprintf(f, " %02x", b);
    }
    fprintf(f, "\n");
}
