/* SPDX-License-Identifier: MIT */
/* CPUID topology for N vCPUs built from a made-up supported table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/boot/cpuid.h"

static struct kvm_cpuid2 *supported(bool with_1f)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 16 * sizeof(struct kvm_cpuid_entry2));
    unsigned n = 0;
    struct kvm_cpuid_entry2 *e = c->entries;
    e[n++] = (struct kvm_cpuid_entry2){ .function = 0, .eax = with_1f ? 0x1f : 0xd };
    e[n++] = (struct kvm_cpuid_entry2){
        .function = 1, .ebx = 0x00000800, .ecx = 0x01000000, .edx = 0x178bfbff
    };
    for (uint32_t l = 0; l < 3; l++) { /* L1d, L2, L3 */
        uint32_t level = l == 0 ? 1 : l + 1;
        e[n++] = (struct kvm_cpuid_entry2){ .function = 4,
                                            .index = l,
                                            .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                                            .eax = (level << 5) | 1 | 0xfc004000u };
    }
    e[n++] = (struct kvm_cpuid_entry2){
        .function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .edx = 77
    };
    if (with_1f)
        e[n++] = (struct kvm_cpuid_entry2){ .function = 0x1f,
                                            .index = 0,
                                            .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
    e[n++] =
        (struct kvm_cpuid_entry2){ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b };
    e[n++] = (struct kvm_cpuid_entry2){ .function = 0x80000008, .eax = 0x3030, .ecx = 0x0000f00f };
    e[n++] = (struct kvm_cpuid_entry2){ .function = 0x8000001e, .eax = 9, .ebx = 0x100 };
    c->nent = n;
    return c;
}

static void check_vcpu(const struct kvm_cpuid2 *sup, unsigned i, unsigned n, bool with_1f)
{
    struct kvm_cpuid2 *c = cpuid_for_vcpu(sup, i, n);
    assert_non_null(c);
    const struct kvm_cpuid_entry2 *e = cpuid_find(c, 1, 0);
    assert_non_null(e);
    assert_int_equal(e->ebx >> 24, i);                /* initial APIC id */
    assert_int_equal((e->ebx >> 16) & 0xff, n);       /* logical processors */
    assert_int_equal(e->ebx & 0xffff, 0x0800);        /* CLFLUSH size kept */
    assert_true(e->ecx & (1u << 31));                 /* hypervisor */
    assert_true(e->ecx & (1u << 24));                 /* TSC deadline kept */
    assert_int_equal(!!(e->edx & (1u << 28)), n > 1); /* HTT */
    uint32_t leaves[] = { 0xb, 0x1f };
    for (int l = 0; l < (with_1f ? 2 : 1); l++) {
        const struct kvm_cpuid_entry2 *s0 = cpuid_find(c, leaves[l], 0);
        const struct kvm_cpuid_entry2 *s1 = cpuid_find(c, leaves[l], 1);
        const struct kvm_cpuid_entry2 *s2 = cpuid_find(c, leaves[l], 2);
        assert_non_null(s0);
        assert_non_null(s1);
        assert_non_null(s2);
        assert_int_equal(s0->edx, i);
        assert_int_equal(s1->edx, i);
        assert_int_equal((s0->ecx >> 8) & 0xff, 1); /* SMT */
        assert_int_equal(s0->ebx, 1);
        assert_int_equal(s0->eax, 0);
        assert_int_equal((s1->ecx >> 8) & 0xff, 2); /* core */
        assert_int_equal(s1->ebx, n);
        assert_true((1u << s1->eax) >= n); /* shift covers every id */
        assert_true(s1->eax == 0 || (1u << (s1->eax - 1)) < n);
        assert_int_equal((s2->ecx >> 8) & 0xff, 0); /* end */
    }
    if (!with_1f)
        assert_null(cpuid_find(c, 0x1f, 0));
    for (uint32_t sub = 0; sub < 3; sub++) {
        e = cpuid_find(c, 4, sub);
        assert_non_null(e);
        assert_int_equal(e->eax >> 26, n - 1);
        uint32_t level = (e->eax >> 5) & 7;
        assert_int_equal((e->eax >> 14) & 0xfff, level >= 3 ? n - 1 : 0);
        assert_int_equal(e->eax & 0x3fff, (level << 5) | 1);
    }
    e = cpuid_find(c, 0x80000008, 0);
    assert_int_equal(e->ecx & 0xff, n - 1);
    assert_int_equal((e->ecx >> 12) & 0xf, cpuid_core_shift(n));
    e = cpuid_find(c, 0x8000001e, 0);
    assert_int_equal(e->eax, i);
    assert_int_equal(e->ebx & 0xff, i);
    assert_non_null(cpuid_find(c, 0x40000000, 0)); /* KVM leaves kept */
    free(c);
}

static void test_topology(void **state)
{
    (void)state;
    for (int f = 0; f < 2; f++) {
        struct kvm_cpuid2 *sup = supported(f);
        unsigned counts[] = { 1, 2, 3, 4, 8, 64 };
        for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++)
            for (unsigned i = 0; i < counts[k]; i++)
                check_vcpu(sup, i, counts[k], f);
        assert_null(cpuid_for_vcpu(sup, 4, 4)); /* index out of range */
        assert_null(cpuid_for_vcpu(sup, 0, 0));
        free(sup);
    }
}

static void test_shift(void **state)
{
    (void)state;
    assert_int_equal(cpuid_core_shift(1), 0);
    assert_int_equal(cpuid_core_shift(2), 1);
    assert_int_equal(cpuid_core_shift(3), 2);
    assert_int_equal(cpuid_core_shift(4), 2);
    assert_int_equal(cpuid_core_shift(5), 3);
    assert_int_equal(cpuid_core_shift(64), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topology),
        cmocka_unit_test(test_shift),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
