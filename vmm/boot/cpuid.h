/* SPDX-License-Identifier: MIT */
/*
 * Guest CPUID: KVM_GET_SUPPORTED_CPUID adjusted to a consistent topology
 * for N vCPUs (one package, N cores, one thread per core): APIC ids (leaf
 * 1, 0xb, 0x1f, 0x8000001e), logical counts (leaf 1, 4, 0x80000008), the
 * hypervisor bit.  Pure (no ioctl), unit tested with made-up tables.
 */
#ifndef STRATA_VMM_BOOT_CPUID_H
#define STRATA_VMM_BOOT_CPUID_H

#include <linux/kvm.h>
#include <stdint.h>

/*
 * Returns a malloc()ed table for vCPU `index` (its APIC id) of `ncpus`,
 * built from `supported`: entries adjusted, leaf 0xb (and 0x1f where the
 * supported table has it) replaced by subleaves 0 (SMT), 1 (core) and 2
 * (end).  NULL if out of memory or index >= ncpus.
 */
struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *supported, unsigned index,
                                  unsigned ncpus);

/* Bits of an x2APIC id that select the core: ceil(log2(ncpus)). */
unsigned cpuid_core_shift(unsigned ncpus);

/* The entry for function/index in c, or NULL (index ignored unless the
 * entry has KVM_CPUID_FLAG_SIGNIFCANT_INDEX). */
const struct kvm_cpuid_entry2 *cpuid_find(const struct kvm_cpuid2 *c, uint32_t function,
                                          uint32_t index);

#endif /* STRATA_VMM_BOOT_CPUID_H */
