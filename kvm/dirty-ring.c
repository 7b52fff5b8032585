/* SPDX-License-Identifier: MIT */
/*
 * KVM's dirty ring (KVM_CAP_DIRTY_LOG_RING[_ACQ_REL]) as the source of the
 * dirty log: each vCPU's ring is mmap()ed from its fd; a harvest collects
 * the entries KVM published (flags DIRTY, read with acquire), hands each
 * back (flags RESET, stored with release), asks KVM to write-protect the
 * handed-back pages again (KVM_RESET_DIRTY_RINGS) and only then marks the
 * pages dirty in the regions' bitmaps.  That last order is what keeps a
 * page from being lost: a consumer that clears a bit and copies the page
 * does so after the page was protected again, so any later guest write
 * pushes a new entry.  Harvests are serialised by vm->dirty_lock (the
 * listener, a vCPU whose ring filled up, the dirty-rate measurement).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "kvm/kvm_internal.h"

size_t kvm_dirty_ring_collect(struct kvm_dirty_gfn *gfns, uint32_t entries, uint32_t *fetch,
                              KvmDirtyEntry *out, size_t max)
{
    size_t n = 0;
    uint32_t f = *fetch;
    while (n < max) {
        struct kvm_dirty_gfn *g = &gfns[f & (entries - 1)];
        /* acquire: slot and offset are read after KVM published them */
        uint32_t flags = __atomic_load_n(&g->flags, __ATOMIC_ACQUIRE);
        if (!(flags & KVM_DIRTY_GFN_F_DIRTY))
            break;
        out[n].slot = g->slot;
        out[n].offset = g->offset;
        n++;
        /* release: KVM may reuse the entry only after we read it */
        __atomic_store_n(&g->flags, (uint32_t)KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
        f++;
    }
    *fetch = f;
    return n;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int kvm_dirty_ring_enable(KvmVm *vm, unsigned want)
{
    int max_rel = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
    int max_plain = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING);
    long cap = max_rel > 0 ? KVM_CAP_DIRTY_LOG_RING_ACQ_REL : KVM_CAP_DIRTY_LOG_RING;
    int max_bytes = max_rel > 0 ? max_rel : max_plain;
    bool autosize = want == KVM_DIRTY_RING_AUTO;
    if (max_bytes <= 0) {
        if (autosize)
            return 0; /* the bitmap then */
        kvm_vm_error(vm, "dirty ring of %u entries: KVM_CAP_DIRTY_LOG_RING not offered by /dev/kvm",
                     want);
        return -ENOTSUP;
    }
    uint64_t max_entries = (uint64_t)max_bytes / sizeof(struct kvm_dirty_gfn);
    uint64_t entries = autosize ? KVM_DIRTY_RING_DEFAULT : want;
    if (autosize && entries > max_entries)
        entries = max_entries;
    if (entries & (entries - 1) || entries < KVM_DIRTY_RING_MIN || entries > max_entries) {
        kvm_vm_error(vm,
                     "dirty ring of %llu entries: a power of two from %u to %llu (this "
                     "host's /dev/kvm) is needed",
                     (unsigned long long)entries, KVM_DIRTY_RING_MIN,
                     (unsigned long long)max_entries);
        return -EINVAL;
    }
    struct kvm_enable_cap ec = { .cap = (uint32_t)cap };
    ec.args[0] = entries * sizeof(struct kvm_dirty_gfn);
    int r = kvm_ioctl(vm->vm_fd, KVM_ENABLE_CAP, &ec);
    if (r < 0) {
        if (autosize) { /* offered but refused: say so, use the bitmap */
            fprintf(stderr, "kvm: dirty ring of %llu entries refused (%s); using the bitmap\n",
                    (unsigned long long)entries, strerror(-r));
            return 0;
        }
        kvm_vm_error(vm, "%s: enable with %llu entries: %s",
                     cap == KVM_CAP_DIRTY_LOG_RING_ACQ_REL ? "KVM_CAP_DIRTY_LOG_RING_ACQ_REL"
                                                           : "KVM_CAP_DIRTY_LOG_RING",
                     (unsigned long long)entries, strerror(-r));
        return r;
    }
    vm->dirty_ring = (unsigned)entries;
    return 0;
}

/* Marks the collected pages dirty in their slots' regions. */
static void publish(KvmVm *vm, const KvmDirtyEntry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t as_id = e[i].slot >> 16, id = e[i].slot & 0xffffu;
        if (as_id != 0 || id >= vm->max_slots)
            continue;
        KvmSlot *s = &vm->slots[id];
        if (!s->used || e[i].offset >= s->size / KVM_PAGE_SIZE)
            continue; /* a slot gone since (its pages were harvested before) */
        memory_region_set_dirty(s->mr, s->offset_in_region + e[i].offset * KVM_PAGE_SIZE,
                                KVM_PAGE_SIZE);
    }
}

/* Grows vm->dirty_buf to hold `need` entries; false if out of memory. */
static bool buf_reserve(KvmVm *vm, size_t need)
{
    if (need <= vm->dirty_buf_cap)
        return true;
    KvmDirtyEntry *b = realloc(vm->dirty_buf, need * sizeof(*b));
    if (!b)
        return false;
    vm->dirty_buf = b;
    vm->dirty_buf_cap = need;
    return true;
}

uint64_t kvm_dirty_ring_harvest(KvmVm *vm, KvmVcpu *only)
{
    if (!vm->dirty_ring)
        return 0;
    uint64_t t0 = now_ns();
    pthread_mutex_lock(&vm->lock);
    unsigned nv = vm->nvcpus;
    pthread_mutex_unlock(&vm->lock);
    pthread_mutex_lock(&vm->dirty_lock);
    size_t n = 0;
    for (unsigned i = 0; i < nv; i++) {
        KvmVcpu *v = vm->vcpus[i];
        if ((only && v != only) || !v->dirty_gfns)
            continue;
        if (!buf_reserve(vm, n + vm->dirty_ring)) {
            kvm_vm_error(vm, "dirty ring: out of memory harvesting vCPU %u", v->index);
            break;
        }
        size_t got = kvm_dirty_ring_collect(v->dirty_gfns, vm->dirty_ring, &v->dirty_fetch,
                                            vm->dirty_buf + n, vm->dirty_ring);
        __atomic_fetch_add(&v->dirty_pages, (uint64_t)got, __ATOMIC_RELAXED);
        n += got;
    }
    if (n) {
        /* Protect the handed-back pages again, then tell the bitmaps.  No
         * signal may be pending meanwhile: a kernel that stops a reset
         * early for one (-EINTR) may have advanced past entries whose pages
         * it did not protect yet, and a page left writable without an entry
         * is a write lost (a vCPU thread here gets the throttle's kicks). */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int r = kvm_ioctl(vm->vm_fd, KVM_RESET_DIRTY_RINGS, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0)
            kvm_vm_error(vm, "KVM_RESET_DIRTY_RINGS: %s", strerror(-r));
        else if ((size_t)r != n)
            STAT_ADD(vm, dirty_ring_short_resets, 1);
        STAT_ADD(vm, dirty_ring_resets, 1);
        publish(vm, vm->dirty_buf, n);
        STAT_ADD(vm, dirty_pages, n);
    }
    pthread_mutex_unlock(&vm->dirty_lock);
    if (!only) {
        STAT_ADD(vm, dirty_syncs, 1);
        STAT_ADD(vm, dirty_sync_ns, now_ns() - t0);
    } else {
        STAT_ADD(vm, dirty_ring_full_ns, now_ns() - t0);
    }
    return n;
}

unsigned kvm_vm_dirty_ring_size(const KvmVm *vm)
{
    return vm->dirty_ring;
}

uint64_t kvm_vcpu_dirty_pages(const KvmVcpu *vcpu)
{
    return __atomic_load_n(&vcpu->dirty_pages, __ATOMIC_RELAXED);
}
