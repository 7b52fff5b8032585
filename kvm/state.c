/* SPDX-License-Identifier: MIT */
/*
 * vCPU and VM state for migration (see state.h).
 *
 * Order on load follows what KVM's documentation (api.rst) requires of
 * each ioctl:
 *   - the CPUID table before anything else (when the state carries one):
 *     KVM checks MSR writes, XCR0 and the XSAVE features against it;
 *   - KVM_SET_SREGS next: CR0/CR4/EFER decide which MSRs and XCR0 values
 *     are valid, and it sets APIC_BASE, which KVM_SET_LAPIC interprets the
 *     LAPIC page with (xAPIC or x2APIC ids);
 *   - the MSRs before the LAPIC (APIC_BASE again), but TSC_DEADLINE after
 *     it: KVM_SET_LAPIC resets the LAPIC timer, which would drop a deadline
 *     armed earlier;
 *   - KVM_SET_VCPU_EVENTS and KVM_SET_MP_STATE last: loading registers
 *     may clear pending events, and the MP state decides whether the vCPU
 *     runs at all.
 * On save, a vCPU parked right after a PIO/MMIO exit has not completed the
 * instruction yet (KVM finishes it, e.g. advances RIP or writes RAX for an
 * IN, on the next KVM_RUN); api.rst's recipe is one KVM_RUN with
 * kvm_run.immediate_exit set, which completes it and returns -EINTR
 * without entering the guest.
 *
 * This file uses only kvm.h's public API (it does not include
 * kvm_internal.h), so errors are printed here rather than recorded as the
 * VM's last error.
 *
 * Every piece is probed, not assumed: tests/kvm/vcpu_state.c prints the
 * flags and the MSR list it got.  Measured so far:
 *   - KVM (kvm-amd) in the nested test bed (scripts/testbed.sh: Debian's
 *     cloud kernel under QEMU TCG with an emulated SVM CPU): every piece
 *     (XSAVE 4096 bytes via KVM_GET_XSAVE, XCRS, LAPIC, vCPU events, MP
 *     state, debug registers; irqchip, PIT2, kvmclock); of the 54 MSRs
 *     in msrs_wanted, all but IA32_XSS (53) with an irqchip, and without
 *     one also not ASYNC_PF_INT (52, see get_msrs).
 *     SYSENTER_ESP/EIP keep only 32 bits there (AMD semantics).
 *   - PVM (docs/architecture.md, Hosts): every piece (XSAVE 4096 bytes,
 *     XCRS, LAPIC, vCPU events, MP state, debug registers; irqchip,
 *     kvmclock); of the 54 MSRs, all but TSC_AUX, SPEC_CTRL and IA32_XSS
 *     (51) with an irqchip, and without one also not ASYNC_PF_INT (50).
 */
#include "kvm/state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* ---- helpers ------------------------------------------------------------ */

/* ioctl() retried on EINTR/EAGAIN; the result or -errno. */
static int xioctl(int fd, unsigned long req, void *arg)
{
    int r;

    do {
        r = ioctl(fd, req, arg);
    } while (r < 0 && (errno == EINTR || errno == EAGAIN));
    return r < 0 ? -errno : r;
}

/* A vCPU ioctl; prints "vCPU N: WHAT: reason" on failure. */
static int vcpu_op(KvmVcpu *v, unsigned long req, void *arg, const char *what)
{
    int r = xioctl(kvm_vcpu_fd(v), req, arg);

    if (r < 0)
        fprintf(stderr, "vCPU %u: %s: %s\n", kvm_vcpu_index(v), what, strerror(-r));
    return r < 0 ? r : 0;
}

/* A VM ioctl; prints "WHAT: reason" on failure. */
static int vm_op(KvmVm *vm, unsigned long req, void *arg, const char *what)
{
    int r = xioctl(kvm_vm_fd(vm), req, arg);

    if (r < 0)
        fprintf(stderr, "%s: %s\n", what, strerror(-r));
    return r < 0 ? r : 0;
}

static bool has_cap(KvmVcpu *v, long cap)
{
    return kvm_vm_check_extension(kvm_vcpu_vm(v), cap) > 0;
}

uint32_t kvm_vm_xsave_size(const KvmVm *vm)
{
    int n = kvm_vm_check_extension(vm, KVM_CAP_XSAVE2);

    if (n >= (int)KVM_STATE_XSAVE_LEGACY)
        return (uint32_t)n;
    return kvm_vm_check_extension(vm, KVM_CAP_XSAVE) > 0 ? KVM_STATE_XSAVE_LEGACY : 0;
}

/* ---- MSRs ---------------------------------------------------------------- */

#define MSR_IA32_TSC 0x00000010u
#define MSR_KVM_WALL_CLOCK 0x00000011u
#define MSR_KVM_SYSTEM_TIME 0x00000012u
#define MSR_IA32_APIC_BASE 0x0000001bu
#define MSR_IA32_TSC_ADJUST 0x0000003bu
#define MSR_IA32_SPEC_CTRL 0x00000048u
#define MSR_IA32_SYSENTER_CS 0x00000174u
#define MSR_IA32_SYSENTER_ESP 0x00000175u
#define MSR_IA32_SYSENTER_EIP 0x00000176u
#define MSR_IA32_MISC_ENABLE 0x000001a0u
#define MSR_MTRR_PHYS_BASE0 0x00000200u
#define MSR_MTRR_FIX64K 0x00000250u
#define MSR_MTRR_FIX16K_80000 0x00000258u
#define MSR_MTRR_FIX16K_A0000 0x00000259u
#define MSR_MTRR_FIX4K_C0000 0x00000268u
#define MSR_IA32_PAT 0x00000277u
#define MSR_MTRR_DEF_TYPE 0x000002ffu
#define MSR_IA32_TSC_DEADLINE 0x000006e0u
#define MSR_IA32_XSS 0x00000da0u
#define MSR_STAR 0xc0000081u
#define MSR_LSTAR 0xc0000082u
#define MSR_CSTAR 0xc0000083u
#define MSR_SFMASK 0xc0000084u
#define MSR_KERNEL_GS_BASE 0xc0000102u
#define MSR_TSC_AUX 0xc0000103u
#define MSR_KVM_WALL_CLOCK_NEW 0x4b564d00u
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01u
#define MSR_KVM_ASYNC_PF_EN 0x4b564d02u
#define MSR_KVM_STEAL_TIME 0x4b564d03u
#define MSR_KVM_PV_EOI_EN 0x4b564d04u
#define MSR_KVM_POLL_CONTROL 0x4b564d05u
#define MSR_KVM_ASYNC_PF_INT 0x4b564d06u

/* The MSRs worth saving.  `always`: KVM emulates it for every x86 vCPU
 * even though KVM_GET_MSR_INDEX_LIST does not name it (APIC_BASE, PAT,
 * MTRRs, SYSENTER_*...); the others are taken only if the index list has
 * them.  Either way an MSR is kept only if KVM_GET_MSRS reads it.  EFER
 * and FS/GS base are not here: KVM_GET_SREGS carries them. */
typedef struct {
    uint32_t index;
    bool always;
} MsrWanted;

static const MsrWanted msrs_wanted[] = {
    { MSR_IA32_APIC_BASE, true },
    { MSR_IA32_SYSENTER_CS, true },
    { MSR_IA32_SYSENTER_ESP, true },
    { MSR_IA32_SYSENTER_EIP, true },
    { MSR_IA32_PAT, true },
    { MSR_IA32_MISC_ENABLE, true },
    { MSR_IA32_TSC, true },
    { MSR_STAR, false },
    { MSR_LSTAR, false },
    { MSR_CSTAR, false },
    { MSR_SFMASK, false },
    { MSR_KERNEL_GS_BASE, false },
    { MSR_TSC_AUX, false },
    { MSR_IA32_TSC_ADJUST, false },
    { MSR_IA32_SPEC_CTRL, false },
    { MSR_IA32_XSS, false },
    { MSR_MTRR_DEF_TYPE, true },
    { MSR_MTRR_FIX64K, true },
    { MSR_MTRR_FIX16K_80000, true },
    { MSR_MTRR_FIX16K_A0000, true },
    { MSR_MTRR_FIX4K_C0000 + 0, true },
    { MSR_MTRR_FIX4K_C0000 + 1, true },
    { MSR_MTRR_FIX4K_C0000 + 2, true },
    { MSR_MTRR_FIX4K_C0000 + 3, true },
    { MSR_MTRR_FIX4K_C0000 + 4, true },
    { MSR_MTRR_FIX4K_C0000 + 5, true },
    { MSR_MTRR_FIX4K_C0000 + 6, true },
    { MSR_MTRR_FIX4K_C0000 + 7, true },
    { MSR_MTRR_PHYS_BASE0 + 0, true },
    { MSR_MTRR_PHYS_BASE0 + 1, true },
    { MSR_MTRR_PHYS_BASE0 + 2, true },
    { MSR_MTRR_PHYS_BASE0 + 3, true },
    { MSR_MTRR_PHYS_BASE0 + 4, true },
    { MSR_MTRR_PHYS_BASE0 + 5, true },
    { MSR_MTRR_PHYS_BASE0 + 6, true },
    { MSR_MTRR_PHYS_BASE0 + 7, true },
    { MSR_MTRR_PHYS_BASE0 + 8, true },
    { MSR_MTRR_PHYS_BASE0 + 9, true },
    { MSR_MTRR_PHYS_BASE0 + 10, true },
    { MSR_MTRR_PHYS_BASE0 + 11, true },
    { MSR_MTRR_PHYS_BASE0 + 12, true },
    { MSR_MTRR_PHYS_BASE0 + 13, true },
    { MSR_MTRR_PHYS_BASE0 + 14, true },
    { MSR_MTRR_PHYS_BASE0 + 15, true },
    { MSR_KVM_SYSTEM_TIME, false },
    { MSR_KVM_WALL_CLOCK, false },
    { MSR_KVM_SYSTEM_TIME_NEW, false },
    { MSR_KVM_WALL_CLOCK_NEW, false },
    { MSR_KVM_ASYNC_PF_EN, false },
    { MSR_KVM_ASYNC_PF_INT, false },
    { MSR_KVM_STEAL_TIME, false },
    { MSR_KVM_PV_EOI_EN, false },
    { MSR_KVM_POLL_CONTROL, false },
    /* Last: loaded after the LAPIC (see the top of this file). */
    { MSR_IA32_TSC_DEADLINE, false },
};

#define NR_WANTED (sizeof(msrs_wanted) / sizeof(msrs_wanted[0]))
_Static_assert(NR_WANTED <= KVM_STATE_MAX_MSRS, "KVM_STATE_MAX_MSRS too small");

/* A zeroed struct kvm_msrs with room for KVM_STATE_MAX_MSRS entries. */
static struct kvm_msrs *msrs_alloc(void)
{
    return calloc(1, sizeof(struct kvm_msrs) + KVM_STATE_MAX_MSRS * sizeof(struct kvm_msr_entry));
}

/* KVM_GET_MSR_INDEX_LIST (system ioctl) as a malloc()ed list, or NULL
 * (then only the `always` MSRs are tried). */
static struct kvm_msr_list *msr_index_list(KvmVm *vm)
{
    struct kvm_msr_list probe = { .nmsrs = 0 };
    struct kvm_msr_list *l;
    int r = xioctl(kvm_vm_kvm_fd(vm), KVM_GET_MSR_INDEX_LIST, &probe);

    if (r < 0 && r != -E2BIG)
        return NULL;
    if (probe.nmsrs == 0 || probe.nmsrs > 65536)
        return NULL;
    l = calloc(1, sizeof(*l) + (size_t)probe.nmsrs * sizeof(l->indices[0]));
    if (!l)
        return NULL;
    l->nmsrs = probe.nmsrs;
    if (xioctl(kvm_vm_kvm_fd(vm), KVM_GET_MSR_INDEX_LIST, l) < 0) {
        free(l);
        return NULL;
    }
    return l;
}

static bool in_list(const struct kvm_msr_list *l, uint32_t index)
{
    for (uint32_t i = 0; l && i < l->nmsrs; i++)
        if (l->indices[i] == index)
            return true;
    return false;
}

/* Reads the wanted MSRs KVM offers into st->msrs.  KVM_GET_MSRS stops at
 * the first MSR it refuses and returns how many it read: that one is
 * dropped and the rest read again. */
static int get_msrs(KvmVcpu *v, KvmVcpuState *st)
{
    KvmVm *vm = kvm_vcpu_vm(v);
    struct kvm_msr_list *list = msr_index_list(vm);
    struct kvm_msrs *b = msrs_alloc();
    uint32_t n = 0;
    int r = 0;

    if (!b) {
        free(list);
        fprintf(stderr, "vCPU %u: KVM_GET_MSRS: out of memory\n", kvm_vcpu_index(v));
        return -ENOMEM;
    }
    for (size_t i = 0; i < NR_WANTED; i++) {
        /* KVM reads ASYNC_PF_INT (as 0) without an in-kernel LAPIC but
         * refuses every write of it then. */
        if (msrs_wanted[i].index == MSR_KVM_ASYNC_PF_INT && !kvm_vm_has_irqchip(vm))
            continue;
        if (msrs_wanted[i].always || in_list(list, msrs_wanted[i].index))
            b->entries[n++].index = msrs_wanted[i].index;
    }
    free(list);
    for (;;) {
        b->nmsrs = n;
        r = xioctl(kvm_vcpu_fd(v), KVM_GET_MSRS, b);
        if (r < 0) {
            fprintf(stderr, "vCPU %u: KVM_GET_MSRS: %s\n", kvm_vcpu_index(v), strerror(-r));
            break;
        }
        if ((uint32_t)r >= n) {
            r = 0;
            break;
        }
        /* entry r was refused: drop it, keep the order of the others */
        memmove(&b->entries[r], &b->entries[r + 1], (n - (uint32_t)r - 1) * sizeof(b->entries[0]));
        n--;
        for (uint32_t i = 0; i < n; i++)
            b->entries[i].data = 0;
    }
    if (r == 0) {
        st->nmsrs = n;
        for (uint32_t i = 0; i < n; i++) {
            st->msrs[i].index = b->entries[i].index;
            st->msrs[i].data = b->entries[i].data;
        }
    }
    free(b);
    return r;
}

/* Writes the MSRs of st for which deadline_only matches (whether the
 * index is TSC_DEADLINE).  An MSR KVM refuses is an error unless it holds
 * 0 (its reset value, e.g. steal time where the destination host lacks
 * schedstats): that one is skipped with a note. */
static int set_msrs(KvmVcpu *v, const KvmVcpuState *st, bool deadline_only)
{
    struct kvm_msrs *b = msrs_alloc();
    uint32_t n = 0;
    int r = 0;

    if (!b) {
        fprintf(stderr, "vCPU %u: KVM_SET_MSRS: out of memory\n", kvm_vcpu_index(v));
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < st->nmsrs && i < KVM_STATE_MAX_MSRS; i++) {
        if ((st->msrs[i].index == MSR_IA32_TSC_DEADLINE) != deadline_only)
            continue;
        b->entries[n].index = st->msrs[i].index;
        b->entries[n].data = st->msrs[i].data;
        n++;
    }
    /* KVM_SET_MSRS stops at the first MSR it refuses and returns how many
     * it wrote: skip a refused 0 and write the rest. */
    while (n > 0) {
        uint32_t ok;

        b->nmsrs = n;
        r = xioctl(kvm_vcpu_fd(v), KVM_SET_MSRS, b);
        if (r < 0) {
            fprintf(stderr, "vCPU %u: KVM_SET_MSRS: %s\n", kvm_vcpu_index(v), strerror(-r));
            break;
        }
        ok = (uint32_t)r;
        r = 0;
        if (ok >= n)
            break;
        if (b->entries[ok].data != 0) {
            fprintf(stderr, "vCPU %u: KVM_SET_MSRS: MSR 0x%x = 0x%llx refused by this KVM\n",
                    kvm_vcpu_index(v), b->entries[ok].index,
                    (unsigned long long)b->entries[ok].data);
            r = -EINVAL;
            break;
        }
        fprintf(stderr, "vCPU %u: note: MSR 0x%x (value 0) not taken by this KVM, skipped\n",
                kvm_vcpu_index(v), b->entries[ok].index);
        memmove(&b->entries[0], &b->entries[ok + 1], (n - ok - 1) * sizeof(b->entries[0]));
        n -= ok + 1;
    }
    free(b);
    return r;
}

/* ---- vCPU ---------------------------------------------------------------- */

/* Finishes a PIO/MMIO exit the run loop handled but KVM has not completed
 * (see the top of this file). */
static int complete_pending_io(KvmVcpu *v)
{
    struct kvm_run *run = kvm_vcpu_run_struct(v);
    int r;

    if (!run || (run->exit_reason != KVM_EXIT_IO && run->exit_reason != KVM_EXIT_MMIO))
        return 0;
    run->immediate_exit = 1;
    r = ioctl(kvm_vcpu_fd(v), KVM_RUN, 0);
    r = r < 0 ? -errno : 0;
    run->immediate_exit = 0;
    if (r == -EINTR || r == -EAGAIN || r == 0)
        return 0;
    fprintf(stderr, "vCPU %u: KVM_RUN (immediate_exit, to complete I/O): %s\n", kvm_vcpu_index(v),
            strerror(-r));
    return r;
}

/* The vCPU's CPUID as KVM holds it (what was set, with the bits KVM keeps
 * up to date from CR4/XCR0/APIC_BASE: those it recomputes when the
 * destination's sregs, XCRs and MSRs are loaded after it).  A vCPU that
 * was never given one has none to carry: no flag. */
static int get_cpuid(KvmVcpu *v, KvmVcpuState *out)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) +
                                         KVM_STATE_MAX_CPUID * sizeof(struct kvm_cpuid_entry2));
    if (!c) {
        fprintf(stderr, "vCPU %u: KVM_GET_CPUID2: out of memory\n", kvm_vcpu_index(v));
        return -ENOMEM;
    }
    /* Kernels before 6.4 (Debian 12's 6.1 among them) leave nent as it was
     * passed when KVM_GET_CPUID2 succeeds: the count is then where the
     * entries KVM did not write begin, each still all 0xff (no real entry
     * is: its flags use 3 bits). */
    memset(c->entries, 0xff, KVM_STATE_MAX_CPUID * sizeof(c->entries[0]));
    c->nent = KVM_STATE_MAX_CPUID;
    int r = vcpu_op(v, KVM_GET_CPUID2, c, "KVM_GET_CPUID2");
    if (r == 0 && c->nent > KVM_STATE_MAX_CPUID) { /* the kernel never says more than it took */
        fprintf(stderr, "vCPU %u: KVM_GET_CPUID2: %u entries\n", kvm_vcpu_index(v), c->nent);
        r = -EIO;
    }
    for (uint32_t i = 0; r == 0 && i < c->nent; i++)
        if (c->entries[i].function == UINT32_MAX && c->entries[i].index == UINT32_MAX &&
            c->entries[i].flags == UINT32_MAX && c->entries[i].eax == UINT32_MAX) {
            c->nent = i;
            break;
        }
    if (r == 0 && c->nent) {
        out->ncpuid = c->nent;
        memcpy(out->cpuid, c->entries, c->nent * sizeof(c->entries[0]));
        out->flags |= KVM_VCPU_STATE_CPUID;
    }
    free(c);
    return r;
}

int kvm_vcpu_get_state(KvmVcpu *vcpu, KvmVcpuState *out)
{
    KvmVm *vm = kvm_vcpu_vm(vcpu);
    uint32_t xsize = kvm_vm_xsave_size(vm);
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = complete_pending_io(vcpu)) < 0)
        return r;
    if ((r = vcpu_op(vcpu, KVM_GET_REGS, &out->regs, "KVM_GET_REGS")) < 0 ||
        (r = vcpu_op(vcpu, KVM_GET_SREGS, &out->sregs, "KVM_GET_SREGS")) < 0)
        return r;

    if (xsize > KVM_STATE_XSAVE_MAX) {
        fprintf(stderr, "vCPU %u: KVM_GET_XSAVE2: needs %u bytes, KvmVcpuState holds %u\n",
                kvm_vcpu_index(vcpu), xsize, KVM_STATE_XSAVE_MAX);
        return -E2BIG;
    }
    if (xsize) {
        bool v2 = xsize > KVM_STATE_XSAVE_LEGACY;

        r = xioctl(kvm_vcpu_fd(vcpu), v2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, out->xsave);
        if (r < 0) /* offered but refused: the FPU/SSE part is still there */
            fprintf(stderr, "vCPU %u: note: %s: %s; saving KVM_GET_FPU instead\n",
                    kvm_vcpu_index(vcpu), v2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE", strerror(-r));
    }
    if (xsize && r >= 0) {
        out->xsave_len = xsize;
        out->flags |= KVM_VCPU_STATE_XSAVE;
    } else {
        /* no XSAVE: the FPU/SSE state is all there is */
        memset(out->xsave, 0, sizeof(out->xsave));
        if ((r = vcpu_op(vcpu, KVM_GET_FPU, &out->fpu, "KVM_GET_FPU")) < 0)
            return r;
        out->flags |= KVM_VCPU_STATE_FPU;
    }

    if (has_cap(vcpu, KVM_CAP_XCRS)) {
        if ((r = vcpu_op(vcpu, KVM_GET_XCRS, &out->xcrs, "KVM_GET_XCRS")) < 0)
            return r;
        if (out->xcrs.nr_xcrs > KVM_MAX_XCRS) {
            fprintf(stderr, "vCPU %u: KVM_GET_XCRS: %u XCRs (at most %u)\n", kvm_vcpu_index(vcpu),
                    out->xcrs.nr_xcrs, KVM_MAX_XCRS);
            return -EIO;
        }
        out->flags |= KVM_VCPU_STATE_XCRS;
    }

    if ((r = get_msrs(vcpu, out)) < 0)
        return r;

    if (kvm_vm_has_irqchip(vm)) {
        if ((r = vcpu_op(vcpu, KVM_GET_LAPIC, &out->lapic, "KVM_GET_LAPIC")) < 0)
            return r;
        out->flags |= KVM_VCPU_STATE_LAPIC;
    }
    if (has_cap(vcpu, KVM_CAP_VCPU_EVENTS)) {
        if ((r = vcpu_op(vcpu, KVM_GET_VCPU_EVENTS, &out->events, "KVM_GET_VCPU_EVENTS")) < 0)
            return r;
        out->flags |= KVM_VCPU_STATE_EVENTS;
    }
    if (has_cap(vcpu, KVM_CAP_MP_STATE)) {
        if ((r = vcpu_op(vcpu, KVM_GET_MP_STATE, &out->mp_state, "KVM_GET_MP_STATE")) < 0)
            return r;
        out->flags |= KVM_VCPU_STATE_MP_STATE;
    }
    if (has_cap(vcpu, KVM_CAP_DEBUGREGS)) {
        if ((r = vcpu_op(vcpu, KVM_GET_DEBUGREGS, &out->debugregs, "KVM_GET_DEBUGREGS")) < 0)
            return r;
        out->flags |= KVM_VCPU_STATE_DEBUGREGS;
    }
    return get_cpuid(vcpu, out);
}

/* Fails with "vCPU N: state has X, but this VM Y". */
static int mismatch(KvmVcpu *v, const char *what)
{
    fprintf(stderr, "vCPU %u: cannot load the state: %s\n", kvm_vcpu_index(v), what);
    return -EINVAL;
}

static int set_xsave(KvmVcpu *v, const KvmVcpuState *st, uint32_t xsize)
{
    uint8_t *buf;
    int r;

    /* (the length was checked against xsize by kvm_vcpu_set_state) */
    if (st->xsave_len == xsize)
        return vcpu_op(v, KVM_SET_XSAVE, (void *)st->xsave, "KVM_SET_XSAVE");
    /* KVM reads xsize bytes: pad a smaller (older, fewer-feature) area with
     * zeros; its XSAVE header says which components it holds. */
    /* xsize is not 0 here: a state with XSAVE was refused above without it */
    buf = calloc(1, xsize); /* NOLINT(clang-analyzer-optin.portability.UnixAPI) */
    if (!buf) {
        fprintf(stderr, "vCPU %u: KVM_SET_XSAVE: out of memory\n", kvm_vcpu_index(v));
        return -ENOMEM;
    }
    memcpy(buf, st->xsave, st->xsave_len);
    r = vcpu_op(v, KVM_SET_XSAVE, buf, "KVM_SET_XSAVE");
    free(buf);
    return r;
}

static int set_cpuid(KvmVcpu *v, const KvmVcpuState *st)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + st->ncpuid * sizeof(struct kvm_cpuid_entry2));
    if (!c) {
        fprintf(stderr, "vCPU %u: KVM_SET_CPUID2: out of memory\n", kvm_vcpu_index(v));
        return -ENOMEM;
    }
    c->nent = st->ncpuid;
    memcpy(c->entries, st->cpuid, st->ncpuid * sizeof(c->entries[0]));
    int r = vcpu_op(v, KVM_SET_CPUID2, c, "KVM_SET_CPUID2");
    free(c);
    return r;
}

int kvm_vcpu_set_state(KvmVcpu *vcpu, const KvmVcpuState *st)
{
    KvmVm *vm = kvm_vcpu_vm(vcpu);
    uint32_t xsize = kvm_vm_xsave_size(vm);
    bool irqchip = kvm_vm_has_irqchip(vm);
    struct kvm_sregs sregs;
    struct kvm_vcpu_events ev;
    int r;

    /* Check everything that can be checked before changing anything. */
    if (st->flags & ~KVM_VCPU_STATE_ALL_FLAGS)
        return mismatch(vcpu, "unknown state flags");
    if (st->nmsrs > KVM_STATE_MAX_MSRS)
        return mismatch(vcpu, "more MSRs than KVM_STATE_MAX_MSRS");
    if ((st->flags & KVM_VCPU_STATE_LAPIC) && !irqchip)
        return mismatch(vcpu, "the state has a LAPIC, this VM has no in-kernel irqchip");
    if (!(st->flags & KVM_VCPU_STATE_LAPIC) && irqchip)
        return mismatch(vcpu, "this VM has an in-kernel irqchip, the state has no LAPIC");
    if ((st->flags & KVM_VCPU_STATE_XSAVE) && !xsize)
        return mismatch(vcpu, "the state has an XSAVE area, this KVM has no KVM_CAP_XSAVE");
    if ((st->flags & KVM_VCPU_STATE_XSAVE) &&
        (st->xsave_len < KVM_STATE_XSAVE_LEGACY || st->xsave_len > xsize)) {
        fprintf(stderr,
                "vCPU %u: KVM_SET_XSAVE: the state's XSAVE area has %u bytes, "
                "this KVM takes %u..%u\n",
                kvm_vcpu_index(vcpu), st->xsave_len, KVM_STATE_XSAVE_LEGACY, xsize);
        return -EINVAL;
    }
    if (!(st->flags & (KVM_VCPU_STATE_XSAVE | KVM_VCPU_STATE_FPU)))
        return mismatch(vcpu, "the state has neither an XSAVE area nor the FPU");
    if ((st->flags & KVM_VCPU_STATE_CPUID) && (!st->ncpuid || st->ncpuid > KVM_STATE_MAX_CPUID))
        return mismatch(vcpu, "a CPUID table of 0 or more than KVM_STATE_MAX_CPUID entries");
    if ((st->flags & KVM_VCPU_STATE_XCRS) && !has_cap(vcpu, KVM_CAP_XCRS))
        return mismatch(vcpu, "the state has XCRs, this KVM has no KVM_CAP_XCRS");
    if ((st->flags & KVM_VCPU_STATE_XCRS) && st->xcrs.nr_xcrs > KVM_MAX_XCRS)
        return mismatch(vcpu, "more than KVM_MAX_XCRS XCRs");
    if ((st->flags & KVM_VCPU_STATE_EVENTS) && !has_cap(vcpu, KVM_CAP_VCPU_EVENTS))
        return mismatch(vcpu, "the state has vCPU events, this KVM has no KVM_CAP_VCPU_EVENTS");
    if ((st->flags & KVM_VCPU_STATE_MP_STATE) && !has_cap(vcpu, KVM_CAP_MP_STATE))
        return mismatch(vcpu, "the state has an MP state, this KVM has no KVM_CAP_MP_STATE");
    if ((st->flags & KVM_VCPU_STATE_DEBUGREGS) && !has_cap(vcpu, KVM_CAP_DEBUGREGS))
        return mismatch(vcpu, "the state has debug registers, this KVM has no KVM_CAP_DEBUGREGS");

    /* CPUID first: which MSRs and XSAVE features KVM takes depends on it */
    if ((st->flags & KVM_VCPU_STATE_CPUID) && (r = set_cpuid(vcpu, st)) < 0)
        return r;
    sregs = st->sregs;
    if ((r = vcpu_op(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS")) < 0 ||
        (r = vcpu_op(vcpu, KVM_SET_REGS, (void *)&st->regs, "KVM_SET_REGS")) < 0)
        return r;
    if ((st->flags & KVM_VCPU_STATE_XCRS) &&
        (r = vcpu_op(vcpu, KVM_SET_XCRS, (void *)&st->xcrs, "KVM_SET_XCRS")) < 0)
        return r;
    if (st->flags & KVM_VCPU_STATE_XSAVE)
        r = set_xsave(vcpu, st, xsize);
    else
        r = vcpu_op(vcpu, KVM_SET_FPU, (void *)&st->fpu, "KVM_SET_FPU");
    if (r < 0)
        return r;
    if ((r = set_msrs(vcpu, st, false)) < 0)
        return r;
    if ((st->flags & KVM_VCPU_STATE_LAPIC) &&
        (r = vcpu_op(vcpu, KVM_SET_LAPIC, (void *)&st->lapic, "KVM_SET_LAPIC")) < 0)
        return r;
    if ((r = set_msrs(vcpu, st, true)) < 0)
        return r;
    if ((st->flags & KVM_VCPU_STATE_DEBUGREGS) &&
        (r = vcpu_op(vcpu, KVM_SET_DEBUGREGS, (void *)&st->debugregs, "KVM_SET_DEBUGREGS")) < 0)
        return r;
    if (st->flags & KVM_VCPU_STATE_EVENTS) {
        /* GET reports SHADOW/SMM (and PAYLOAD/TRIPLE_FAULT when enabled);
         * the NMI-pending and SIPI-vector fields are always filled in by
         * GET, so say they are valid too. */
        ev = st->events;
        ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
        if ((r = vcpu_op(vcpu, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS")) < 0)
            return r;
    }
    if ((st->flags & KVM_VCPU_STATE_MP_STATE) &&
        (r = vcpu_op(vcpu, KVM_SET_MP_STATE, (void *)&st->mp_state, "KVM_SET_MP_STATE")) < 0)
        return r;
    return 0;
}

/* ---- VM ------------------------------------------------------------------ */

int kvm_vm_get_state(KvmVm *vm, KvmVmState *out)
{
    struct kvm_irqchip chip;
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = kvm_vm_realize_irqchip(vm)) < 0)
        return r;
    if (kvm_vm_has_irqchip(vm)) {
        for (unsigned id = 0; id < 3; id++) {
            memset(&chip, 0, sizeof(chip));
            chip.chip_id = id;
            if ((r = vm_op(vm, KVM_GET_IRQCHIP, &chip, "KVM_GET_IRQCHIP")) < 0)
                return r;
            if (id < 2)
                out->pic[id] = chip.chip.pic;
            else
                out->ioapic = chip.chip.ioapic;
        }
        out->flags |= KVM_VM_STATE_IRQCHIP;

        /* kvm.h does not say whether the VM has a PIT: KVM answers ENXIO
         * if it has none. */
        r = xioctl(kvm_vm_fd(vm), KVM_GET_PIT2, &out->pit);
        if (r == 0) {
            out->flags |= KVM_VM_STATE_PIT;
        } else if (r != -ENXIO) {
            fprintf(stderr, "KVM_GET_PIT2: %s\n", strerror(-r));
            return r;
        } else {
            memset(&out->pit, 0, sizeof(out->pit));
        }
    }
    if (kvm_vm_check_extension(vm, KVM_CAP_ADJUST_CLOCK) > 0) {
        struct kvm_clock_data c;

        memset(&c, 0, sizeof(c));
        if ((r = vm_op(vm, KVM_GET_CLOCK, &c, "KVM_GET_CLOCK")) < 0)
            return r;
        out->clock = c.clock;
        out->clock_flags = c.flags;
        out->flags |= KVM_VM_STATE_CLOCK;
    }
    return 0;
}

int kvm_vm_set_state(KvmVm *vm, const KvmVmState *st)
{
    struct kvm_irqchip chip;
    struct kvm_pit_state2 pit;
    bool irqchip = kvm_vm_has_irqchip(vm);
    int r;

    if (st->flags & ~KVM_VM_STATE_ALL_FLAGS) {
        fprintf(stderr, "VM state: unknown flags 0x%x\n", st->flags);
        return -EINVAL;
    }
    if ((st->flags & KVM_VM_STATE_IRQCHIP) && !irqchip) {
        fprintf(stderr, "VM state: the state has an in-kernel irqchip (PIC, IOAPIC), "
                        "this VM has none\n");
        return -EINVAL;
    }
    if (!(st->flags & KVM_VM_STATE_IRQCHIP) && irqchip) {
        fprintf(stderr, "VM state: this VM has an in-kernel irqchip, the state has none\n");
        return -EINVAL;
    }
    if ((st->flags & KVM_VM_STATE_PIT) && !(st->flags & KVM_VM_STATE_IRQCHIP)) {
        fprintf(stderr, "VM state: a PIT without an irqchip\n");
        return -EINVAL;
    }
    if (irqchip) {
        if ((r = kvm_vm_realize_irqchip(vm)) < 0)
            return r;
        /* Whether this VM has a PIT, before anything is changed. */
        r = xioctl(kvm_vm_fd(vm), KVM_GET_PIT2, &pit);
        if (r < 0 && r != -ENXIO) {
            fprintf(stderr, "KVM_GET_PIT2: %s\n", strerror(-r));
            return r;
        }
        if ((st->flags & KVM_VM_STATE_PIT) && r == -ENXIO) {
            fprintf(stderr, "VM state: the state has a PIT (8254), this VM has none\n");
            return -EINVAL;
        }
        if (!(st->flags & KVM_VM_STATE_PIT) && r == 0) {
            fprintf(stderr, "VM state: this VM has a PIT (8254), the state has none\n");
            return -EINVAL;
        }
        for (unsigned id = 0; id < 3; id++) {
            memset(&chip, 0, sizeof(chip));
            chip.chip_id = id;
            if (id < 2)
                chip.chip.pic = st->pic[id];
            else
                chip.chip.ioapic = st->ioapic;
            if ((r = vm_op(vm, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP")) < 0)
                return r;
        }
        if (st->flags & KVM_VM_STATE_PIT) {
            pit = st->pit;
            if ((r = vm_op(vm, KVM_SET_PIT2, &pit, "KVM_SET_PIT2")) < 0)
                return r;
        }
    }
    if (st->flags & KVM_VM_STATE_CLOCK) {
        struct kvm_clock_data c;

        if (kvm_vm_check_extension(vm, KVM_CAP_ADJUST_CLOCK) <= 0) {
            fprintf(stderr, "KVM_SET_CLOCK: not supported by this KVM (KVM_CAP_ADJUST_CLOCK)\n");
            return -EOPNOTSUPP;
        }
        /* flags 0: the clock resumes at the saved value (it stood still
         * while the VM was paused, like the TSC it is loaded with). */
        memset(&c, 0, sizeof(c));
        c.clock = st->clock;
        if ((r = vm_op(vm, KVM_SET_CLOCK, &c, "KVM_SET_CLOCK")) < 0)
            return r;
    }
    return 0;
}

/* ---- names --------------------------------------------------------------- */

static const char *flags_str(uint32_t flags, const char *const *names, unsigned n, char *buf,
                             size_t len)
{
    size_t used = 0;

    if (!len)
        return buf;
    buf[0] = 0;
    for (unsigned i = 0; i < 32; i++) {
        if (!(flags & (1u << i)))
            continue;
        int w = snprintf(buf + used, len - used, "%s%s", used ? " " : "", i < n ? names[i] : "?");
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
    if (!used)
        snprintf(buf, len, "none");
    return buf;
}

const char *kvm_vcpu_state_flags_str(uint32_t flags, char *buf, size_t len)
{
    static const char *const names[] = { "xsave",  "fpu",      "xcrs",      "lapic",
                                         "events", "mp_state", "debugregs", "cpuid" };

    return flags_str(flags, names, 8, buf, len);
}

const char *kvm_vm_state_flags_str(uint32_t flags, char *buf, size_t len)
{
    static const char *const names[] = { "irqchip", "pit", "clock" };

    return flags_str(flags, names, 3, buf, len);
}
