/* SPDX-License-Identifier: MIT */
/* Guest CPUID topology (see cpuid.h). */
#include "vmm/boot/cpuid.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

unsigned cpuid_core_shift(unsigned ncpus)
{
    unsigned s = 0;
    while ((1u << s) < ncpus && s < 31)
        s++;
    return s;
}

const struct kvm_cpuid_entry2 *cpuid_find(const struct kvm_cpuid2 *c, uint32_t function,
                                          uint32_t index)
{
    for (uint32_t i = 0; i < c->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function != function)
            continue;
        if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
            continue;
        return e;
    }
    return NULL;
}

static void topo_leaf(struct kvm_cpuid_entry2 *out, uint32_t function, unsigned index,
                      unsigned ncpus)
{
    /* subleaf 0: SMT (1 thread, shift 0); 1: core; 2: end of the list */
    for (uint32_t sub = 0; sub < 3; sub++) {
        struct kvm_cpuid_entry2 *e = &out[sub];
        memset(e, 0, sizeof(*e));
        e->function = function;
        e->index = sub;
        e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
        e->edx = index;
        if (sub == 0) {
            e->eax = 0;
            e->ebx = 1;
            e->ecx = (1u << 8) | 0;
        } else if (sub == 1) {
            e->eax = cpuid_core_shift(ncpus);
            e->ebx = ncpus;
            e->ecx = (2u << 8) | 1;
        } else {
            e->ecx = sub; /* level type 0: invalid, ends the enumeration */
        }
    }
}

struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *sup, unsigned index, unsigned ncpus)
{
    if (index >= ncpus || ncpus > 255)
        return NULL;
    bool has_1f = cpuid_find(sup, 0x1f, 0) != NULL;
    const struct kvm_cpuid_entry2 *l0 = cpuid_find(sup, 0, 0);
    bool has_b = l0 && l0->eax >= 0xb;
    size_t cap = (size_t)sup->nent + 6;
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + cap * sizeof(struct kvm_cpuid_entry2));
    if (!c)
        return NULL;
    unsigned shift = cpuid_core_shift(ncpus);
    uint32_t n = 0;
    for (uint32_t i = 0; i < sup->nent; i++) {
        struct kvm_cpuid_entry2 e = sup->entries[i];
        switch (e.function) {
        case 0x1:
            e.ebx = (e.ebx & 0x0000ffffu) | (index << 24) | ((ncpus & 0xffu) << 16);
            if (ncpus > 1)
                e.edx |= 1u << 28; /* HTT: the count is valid */
            else
                e.edx &= ~(1u << 28);
            e.ecx |= 1u << 31; /* hypervisor */
            break;
        case 0x4:
            if ((e.eax & 0x1f) != 0) { /* a cache: sharing and cores */
                uint32_t level = (e.eax >> 5) & 7;
                uint32_t sharing = level >= 3 ? ncpus - 1 : 0;
                e.eax = (e.eax & 0x3fffu) | (sharing << 14) | ((ncpus - 1) << 26);
            }
            break;
        case 0xb:
        case 0x1f:
            continue; /* rebuilt below */
        case 0x80000008:
            e.ecx = (e.ecx & ~0xf0ffu) | (shift << 12) | ((ncpus - 1) & 0xff);
            break;
        case 0x8000001e:
            e.eax = index;        /* extended APIC id */
            e.ebx = index & 0xff; /* core id, one thread per core */
            e.ecx = 0;            /* node 0, one node */
            break;
        case 0x8000001d:
            if ((e.eax & 0x1f) != 0) {
                uint32_t level = (e.eax >> 5) & 7;
                uint32_t sharing = level >= 3 ? ncpus - 1 : 0;
                e.eax = (e.eax & ~(0xfffu << 14)) | (sharing << 14);
            }
            break;
        default:
            break;
        }
        c->entries[n++] = e;
    }
    if (has_b) {
        topo_leaf(&c->entries[n], 0xb, index, ncpus);
        n += 3;
    }
    if (has_1f) {
        topo_leaf(&c->entries[n], 0x1f, index, ncpus);
        n += 3;
    }
    c->nent = n;
    return c;
}
