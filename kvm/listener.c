/* SPDX-License-Identifier: MIT */
/*
 * The memory listeners: KVM memory slots, dirty logging, coalesced MMIO/PIO
 * zones and ioeventfds follow the FlatViews of the `memory` and `I/O`
 * address spaces.  Slot changes are collected between begin and commit and
 * applied as one batch at commit; when a batch deletes a mapped slot the
 * vCPUs are paused around it, so the guest never runs while RAM that is
 * only being re-created (flags changed) is missing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/kvm_internal.h"

static KvmListener *to_kl(MemoryListener *ml)
{
    return (KvmListener *)ml; /* ml is the first member */
}

/* Section size as 64 bits; 0 if it does not fit (2^64: never a slot). */
static uint64_t sec_size(const MemoryRegionSection *s)
{
    return s->size >= INT128_2_64 ? 0 : (uint64_t)s->size;
}

static void *grow(void *arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : 8;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(arr, ncap * elem);
    if (p)
        *cap = ncap;
    return p;
}

/* ---- slots ---------------------------------------------------------- */

static int slot_ioctl(KvmVm *vm, unsigned id, uint64_t gpa, uint64_t size, uint64_t hva,
                      uint32_t flags)
{
    struct kvm_userspace_memory_region r = {
        .slot = id,
        .flags = flags,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = hva,
    };
    STAT_ADD(vm, slot_ioctls, 1);
    return kvm_ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
}

static KvmSlot *slot_find(KvmVm *vm, uint64_t gpa, uint64_t size, unsigned *id)
{
    if (!size)
        return NULL;
    for (unsigned i = 0; i < vm->max_slots; i++) {
        KvmSlot *s = &vm->slots[i];
        if (s->used && s->gpa == gpa && s->size == size) {
            if (id)
                *id = i;
            return s;
        }
    }
    return NULL;
}

/* Pulls the slot's dirty bitmap from KVM into its region's bitmaps (with
 * the dirty ring: every vCPU's ring, which covers every slot). */
static void slot_sync_dirty(KvmVm *vm, unsigned id)
{
    KvmSlot *s = &vm->slots[id];
    if (!(s->flags & KVM_MEM_LOG_DIRTY_PAGES))
        return;
    if (vm->dirty_ring) {
        kvm_dirty_ring_harvest(vm, NULL);
        return;
    }
    uint64_t npages = s->size / KVM_PAGE_SIZE;
    size_t words = (size_t)((npages + 63) / 64);
    uint64_t *bitmap = calloc(words ? words : 1, sizeof(uint64_t));
    if (!bitmap) {
        kvm_vm_error(vm, "KVM_GET_DIRTY_LOG slot %u (%s): out of memory", id, s->name);
        return;
    }
    struct kvm_dirty_log log = { .slot = id };
    log.dirty_bitmap = bitmap;
    int r = kvm_ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log);
    if (r < 0) {
        kvm_vm_error(vm, "KVM_GET_DIRTY_LOG slot %u (%s): %s", id, s->name, strerror(-r));
        free(bitmap);
        return;
    }
    bool any = false;
    for (size_t i = 0; i < words; i++)
        any |= bitmap[i] != 0;
    if (any && vm->manual_dirty) {
        struct kvm_clear_dirty_log clr = {
            .slot = id,
            .num_pages = (uint32_t)npages,
            .first_page = 0,
        };
        clr.dirty_bitmap = bitmap;
        r = kvm_ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &clr);
        if (r < 0)
            kvm_vm_error(vm, "KVM_CLEAR_DIRTY_LOG slot %u (%s): %s", id, s->name, strerror(-r));
    }
    if (any) {
        memory_region_set_dirty_bitmap(s->mr, s->offset_in_region, bitmap, npages);
        uint64_t pages = 0;
        for (size_t i = 0; i < words; i++)
            pages += (uint64_t)__builtin_popcountll(bitmap[i]);
        STAT_ADD(vm, dirty_pages, pages);
    }
    free(bitmap);
}

/* The slot's KVM flags for a section of mr: read-only, or logging while a
 * client logs mr or kvm_vm_set_dirty_log_all is on. */
static uint32_t slot_flags_for(KvmVm *vm, MemoryRegion *mr, bool readonly)
{
    if (readonly)
        return KVM_MEM_READONLY;
    if (memory_region_get_dirty_log_mask(mr) || vm->log_all)
        return KVM_MEM_LOG_DIRTY_PAGES;
    return 0;
}

static bool section_is_readonly(const MemoryRegionSection *s)
{
    /* s->readonly covers read-only RAM and read-only aliases; a ROM device
     * is mapped read-only so that guest writes exit to its ops */
    return s->readonly || memory_region_is_rom_device(s->mr);
}

static void apply_add(KvmVm *vm, const MemoryRegionSection *s)
{
    MemoryRegion *mr = s->mr;
    if (!mr || !memory_region_is_ram(mr))
        return; /* I/O: exits to userspace */
    if (memory_region_is_rom_device(mr) && !s->romd_mode)
        return; /* reads must trap to ops->read */
    uint64_t size = sec_size(s);
    uint8_t *ptr = memory_region_get_ram_ptr(mr);
    if (!size || !ptr)
        return;
    uint64_t gpa = s->offset_within_address_space;
    uint64_t hva = (uint64_t)(uintptr_t)(ptr + s->offset_within_region);
    const char *name = memory_region_name(mr);
    if ((gpa | size | hva) & (KVM_PAGE_SIZE - 1)) {
        STAT_ADD(vm, unaligned_sections, 1);
        if (!vm->warned_unaligned) {
            vm->warned_unaligned = true;
            fprintf(stderr,
                    "kvm: RAM section '%s' at 0x%llx size 0x%llx is not page aligned: "
                    "left unmapped, its accesses trap to userspace (logged once)\n",
                    name ? name : "?", (unsigned long long)gpa, (unsigned long long)size);
        }
        return;
    }
    uint32_t flags = slot_flags_for(vm, mr, section_is_readonly(s));

    unsigned id;
    for (id = 0; id < vm->max_slots; id++)
        if (!vm->slots[id].used)
            break;
    if (id == vm->max_slots) {
        kvm_vm_error(vm,
                     "KVM memory slots: all %u in use; '%s' at 0x%llx size 0x%llx left "
                     "unmapped (its accesses trap to userspace)",
                     vm->max_slots, name ? name : "?", (unsigned long long)gpa,
                     (unsigned long long)size);
        return;
    }
    int r = slot_ioctl(vm, id, gpa, size, hva, flags);
    if (r < 0) {
        kvm_vm_error(vm, "KVM_SET_USER_MEMORY_REGION slot %u '%s' at 0x%llx size 0x%llx: %s", id,
                     name ? name : "?", (unsigned long long)gpa, (unsigned long long)size,
                     strerror(-r));
        return;
    }
    KvmSlot *sl = &vm->slots[id];
    pthread_mutex_lock(&vm->dirty_lock); /* a harvest reads the table */
    sl->used = true;
    sl->gpa = gpa;
    sl->size = size;
    sl->hva = hva;
    sl->flags = flags;
    sl->mr = mr;
    sl->offset_in_region = s->offset_within_region;
    snprintf(sl->name, sizeof(sl->name), "%s", name ? name : "");
    pthread_mutex_unlock(&vm->dirty_lock);
    vm->slots_used++;
    STAT_ADD(vm, slots_used, 1);
}

static void apply_del(KvmVm *vm, const MemoryRegionSection *s)
{
    unsigned id;
    KvmSlot *sl = slot_find(vm, s->offset_within_address_space, sec_size(s), &id);
    if (!sl)
        return;
    slot_sync_dirty(vm, id); /* keep pages dirtied before the slot goes */
    int r = slot_ioctl(vm, id, sl->gpa, 0, sl->hva, 0);
    if (r < 0)
        kvm_vm_error(vm, "KVM_SET_USER_MEMORY_REGION: deleting slot %u '%s' at 0x%llx: %s", id,
                     sl->name, (unsigned long long)sl->gpa, strerror(-r));
    pthread_mutex_lock(&vm->dirty_lock);
    memset(sl, 0, sizeof(*sl));
    pthread_mutex_unlock(&vm->dirty_lock);
    vm->slots_used--;
    STAT_SUB(vm, slots_used, 1);
}

/* Turns KVM's dirty logging of slot id on or off. */
static void slot_set_log(KvmVm *vm, unsigned id, bool on)
{
    KvmSlot *sl = &vm->slots[id];
    uint32_t flags = sl->flags & ~(uint32_t)KVM_MEM_LOG_DIRTY_PAGES;
    if (on)
        flags |= KVM_MEM_LOG_DIRTY_PAGES;
    if (flags == sl->flags)
        return;
    if (!on)
        slot_sync_dirty(vm, id);
    int r = slot_ioctl(vm, id, sl->gpa, sl->size, sl->hva, flags);
    if (r < 0) {
        kvm_vm_error(vm, "KVM_SET_USER_MEMORY_REGION: dirty logging %s on slot %u '%s': %s",
                     on ? "on" : "off", id, sl->name, strerror(-r));
        return;
    }
    pthread_mutex_lock(&vm->dirty_lock);
    sl->flags = flags;
    pthread_mutex_unlock(&vm->dirty_lock);
}

static void apply_log(KvmVm *vm, const MemoryRegionSection *s, int new_mask)
{
    unsigned id;
    KvmSlot *sl = slot_find(vm, s->offset_within_address_space, sec_size(s), &id);
    if (!sl || sl->mr != s->mr || sl->offset_in_region != s->offset_within_region ||
        (sl->flags & KVM_MEM_READONLY))
        return;
    slot_set_log(vm, id, new_mask || vm->log_all);
}

/* Applies the collected batch: deletions (vCPUs paused), flag changes, adds. */
static void apply_pending(KvmListener *l)
{
    KvmVm *vm = l->vm;
    bool pause = false;
    for (size_t i = 0; i < l->npend && !pause; i++) {
        KvmPending *p = &l->pend[i];
        if (p->kind == PEND_DEL &&
            slot_find(vm, p->s.offset_within_address_space, sec_size(&p->s), NULL))
            pause = true;
    }
    if (pause) {
        kvm_vm_pause(vm);
        STAT_ADD(vm, slot_pauses, 1);
    }
    /* Deletions first (they free slot numbers), then adds and log changes
     * in the order memory/ reported them: a log_stop that came with a del
     * then finds no slot, and a log_start after an add finds the flag set. */
    for (size_t i = 0; i < l->npend; i++)
        if (l->pend[i].kind == PEND_DEL)
            apply_del(vm, &l->pend[i].s);
    for (size_t i = 0; i < l->npend; i++) {
        KvmPending *p = &l->pend[i];
        if (p->kind == PEND_ADD)
            apply_add(vm, &p->s);
        else if (p->kind == PEND_LOG)
            apply_log(vm, &p->s, p->new_mask);
    }
    if (pause)
        kvm_vm_resume(vm);
    l->npend = 0;
}

static void queue(KvmListener *l, KvmPendKind kind, const MemoryRegionSection *s, int new_mask)
{
    KvmVm *vm = l->vm;
    if (vm->destroying || l->is_io)
        return; /* the I/O AS has no slots */
    KvmPending *np = grow(l->pend, &l->pend_cap, l->npend + 1, sizeof(*l->pend));
    if (!np) {
        kvm_vm_error(vm, "kvm memory listener: out of memory queueing a change");
        return;
    }
    l->pend = np;
    KvmPending *p = &l->pend[l->npend++];
    p->kind = kind;
    p->s = *s;
    p->new_mask = new_mask;
    if (!l->in_txn) /* outside begin/commit (e.g. a replay): apply now */
        apply_pending(l);
}

static void kl_begin(MemoryListener *ml)
{
    KvmListener *l = to_kl(ml);
    l->in_txn = true;
    if (!l->vm->destroying)
        kvm_drain_coalesced(l->vm);
}

static void kl_commit(MemoryListener *ml)
{
    KvmListener *l = to_kl(ml);
    l->in_txn = false;
    if (l->vm->destroying) {
        l->npend = 0;
        return;
    }
    kvm_drain_coalesced(l->vm);
    if (l->npend)
        apply_pending(l);
}

static void kl_region_add(MemoryListener *ml, MemoryRegionSection *s)
{
    queue(to_kl(ml), PEND_ADD, s, 0);
}

static void kl_region_del(MemoryListener *ml, MemoryRegionSection *s)
{
    queue(to_kl(ml), PEND_DEL, s, 0);
}

static void kl_log_start(MemoryListener *ml, MemoryRegionSection *s, int old_mask, int new_mask)
{
    (void)old_mask;
    queue(to_kl(ml), PEND_LOG, s, new_mask);
}

static void kl_log_stop(MemoryListener *ml, MemoryRegionSection *s, int old_mask, int new_mask)
{
    (void)old_mask;
    queue(to_kl(ml), PEND_LOG, s, new_mask);
}

static void kl_log_sync(MemoryListener *ml, MemoryRegionSection *s)
{
    KvmListener *l = to_kl(ml);
    KvmVm *vm = l->vm;
    if (l->is_io || vm->destroying)
        return;
    if (vm->dirty_ring) { /* the rings cover every slot */
        kvm_dirty_ring_harvest(vm, NULL);
        return;
    }
    uint64_t t0 = kvm_now_ns();
    uint64_t start = s->offset_within_address_space;
    uint64_t size = sec_size(s);
    if (!size)
        size = UINT64_MAX - start;
    for (unsigned i = 0; i < vm->max_slots; i++) {
        KvmSlot *sl = &vm->slots[i];
        if (!sl->used || !(sl->flags & KVM_MEM_LOG_DIRTY_PAGES))
            continue;
        if (sl->gpa + sl->size <= start || sl->gpa >= start + size)
            continue;
        slot_sync_dirty(vm, i);
    }
    STAT_ADD(vm, dirty_syncs, 1);
    STAT_ADD(vm, dirty_sync_ns, kvm_now_ns() - t0);
}

void kvm_vm_set_dirty_log_all(KvmVm *vm, bool on)
{
    if (vm->log_all == on)
        return;
    vm->log_all = on;
    for (unsigned i = 0; i < vm->max_slots; i++) {
        KvmSlot *sl = &vm->slots[i];
        if (!sl->used || (sl->flags & KVM_MEM_READONLY))
            continue;
        slot_set_log(vm, i, on || memory_region_get_dirty_log_mask(sl->mr));
    }
}

uint64_t kvm_vm_dirty_log_sync(KvmVm *vm)
{
    if (vm->dirty_ring)
        return kvm_dirty_ring_harvest(vm, NULL);
    uint64_t before = __atomic_load_n(&vm->stats.dirty_pages, __ATOMIC_RELAXED);
    uint64_t t0 = kvm_now_ns();
    for (unsigned i = 0; i < vm->max_slots; i++)
        if (vm->slots[i].used && (vm->slots[i].flags & KVM_MEM_LOG_DIRTY_PAGES))
            slot_sync_dirty(vm, i);
    STAT_ADD(vm, dirty_syncs, 1);
    STAT_ADD(vm, dirty_sync_ns, kvm_now_ns() - t0);
    return __atomic_load_n(&vm->stats.dirty_pages, __ATOMIC_RELAXED) - before;
}

/* ---- coalesced zones ------------------------------------------------- */

static void kl_coalesced_add(MemoryListener *ml, MemoryRegionSection *s, uint64_t addr,
                             uint64_t len)
{
    KvmListener *l = to_kl(ml);
    KvmVm *vm = l->vm;
    (void)s;
    if (vm->destroying || !len)
        return;
    if (l->is_io && !vm->coalesced_pio)
        return; /* KVM_CAP_COALESCED_PIO missing: writes simply exit */
    KvmZone *nz = grow(l->zones, &l->zones_cap, l->nzones + 1, sizeof(*l->zones));
    if (!nz) {
        kvm_vm_error(vm, "KVM_REGISTER_COALESCED_MMIO: out of memory");
        return;
    }
    l->zones = nz;
    struct kvm_coalesced_mmio_zone z = { .addr = addr, .size = (uint32_t)len };
    z.pio = l->is_io ? 1 : 0;
    if (len > UINT32_MAX) {
        kvm_vm_error(vm, "KVM_REGISTER_COALESCED_MMIO 0x%llx size 0x%llx: zone too large",
                     (unsigned long long)addr, (unsigned long long)len);
        return;
    }
    int r = kvm_ioctl(vm->vm_fd, KVM_REGISTER_COALESCED_MMIO, &z);
    if (r < 0) {
        kvm_vm_error(vm, "KVM_REGISTER_COALESCED_MMIO %s 0x%llx size 0x%llx: %s",
                     l->is_io ? "pio" : "mmio", (unsigned long long)addr, (unsigned long long)len,
                     strerror(-r));
        return;
    }
    l->zones[l->nzones++] = (KvmZone){ .addr = addr, .size = len, .pio = l->is_io };
    STAT_ADD(vm, coalesced_zones, 1);
}

static void kl_coalesced_del(MemoryListener *ml, MemoryRegionSection *s, uint64_t addr,
                             uint64_t len)
{
    KvmListener *l = to_kl(ml);
    KvmVm *vm = l->vm;
    (void)s;
    if (vm->destroying)
        return;
    kvm_drain_coalesced(vm); /* writes queued for the zone go first */
    uint64_t end = addr + len;
    for (size_t i = 0; i < l->nzones;) {
        KvmZone *z = &l->zones[i];
        if (z->addr >= addr && z->addr + z->size <= end) {
            struct kvm_coalesced_mmio_zone kz = { .addr = z->addr, .size = (uint32_t)z->size };
            kz.pio = z->pio ? 1 : 0;
            int r = kvm_ioctl(vm->vm_fd, KVM_UNREGISTER_COALESCED_MMIO, &kz);
            if (r < 0)
                kvm_vm_error(vm, "KVM_UNREGISTER_COALESCED_MMIO %s 0x%llx size 0x%llx: %s",
                             z->pio ? "pio" : "mmio", (unsigned long long)z->addr,
                             (unsigned long long)z->size, strerror(-r));
            l->zones[i] = l->zones[--l->nzones];
            STAT_SUB(vm, coalesced_zones, 1);
        } else {
            i++;
        }
    }
}

/* ---- ioeventfds ------------------------------------------------------ */

static int ioeventfd_ioctl(KvmListener *l, const KvmIoeventfd *e, bool assign)
{
    struct kvm_ioeventfd io = {
        .datamatch = e->match ? e->data : 0,
        .addr = e->addr,
        .len = e->len,
        .fd = e->fd,
        .flags = (e->match ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
                 (e->pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };
    return kvm_ioctl(l->vm->vm_fd, KVM_IOEVENTFD, &io);
}

static void kl_eventfd_add(MemoryListener *ml, MemoryRegionSection *s, bool match_data,
                           uint64_t data, int fd)
{
    KvmListener *l = to_kl(ml);
    KvmVm *vm = l->vm;
    if (vm->destroying)
        return;
    uint64_t len = (uint64_t)s->size;
    KvmIoeventfd e = { .addr = s->offset_within_address_space,
                       .len = (uint32_t)len,
                       .pio = l->is_io,
                       .match = match_data,
                       .data = data,
                       .fd = fd };
    const char *kind = l->is_io ? "pio" : "mmio";
    if (s->size > 8 || (len & (len - 1)) ||
        (len == 0 && (match_data || !vm->any_length_ioeventfd))) {
        kvm_vm_error(vm,
                     "KVM_IOEVENTFD %s 0x%llx len %llu%s: unsupported length; the device "
                     "callback handles these writes",
                     kind, (unsigned long long)e.addr, (unsigned long long)len,
                     match_data ? " datamatch" : "");
        return;
    }
    KvmIoeventfd *n = grow(l->iofds, &l->iofds_cap, l->niofds + 1, sizeof(*l->iofds));
    if (!n) {
        kvm_vm_error(vm, "KVM_IOEVENTFD: out of memory");
        return;
    }
    l->iofds = n;
    int r = ioeventfd_ioctl(l, &e, true);
    if (r < 0) {
        kvm_vm_error(vm, "KVM_IOEVENTFD %s 0x%llx len %u fd %d: %s", kind,
                     (unsigned long long)e.addr, e.len, fd, strerror(-r));
        return;
    }
    l->iofds[l->niofds++] = e;
    STAT_ADD(vm, ioeventfds, 1);
}

static void kl_eventfd_del(MemoryListener *ml, MemoryRegionSection *s, bool match_data,
                           uint64_t data, int fd)
{
    KvmListener *l = to_kl(ml);
    KvmVm *vm = l->vm;
    if (vm->destroying)
        return;
    uint64_t addr = s->offset_within_address_space;
    uint32_t len = (uint32_t)(uint64_t)s->size;
    for (size_t i = 0; i < l->niofds; i++) {
        KvmIoeventfd *e = &l->iofds[i];
        if (e->addr != addr || e->len != len || e->fd != fd || e->match != match_data ||
            (match_data && e->data != data))
            continue;
        int r = ioeventfd_ioctl(l, e, false);
        if (r < 0)
            kvm_vm_error(vm, "KVM_IOEVENTFD deassign %s 0x%llx len %u fd %d: %s",
                         l->is_io ? "pio" : "mmio", (unsigned long long)addr, len, fd,
                         strerror(-r));
        l->iofds[i] = l->iofds[--l->niofds];
        STAT_SUB(vm, ioeventfds, 1);
        return;
    }
}

/* ---- set-up ---------------------------------------------------------- */

void kvm_listener_init(KvmVm *vm, KvmListener *l, bool is_io)
{
    memset(l, 0, sizeof(*l));
    l->vm = vm;
    l->is_io = is_io;
    l->ml.begin = kl_begin;
    l->ml.commit = kl_commit;
    l->ml.region_add = kl_region_add;
    l->ml.region_del = kl_region_del;
    l->ml.region_nop = NULL;
    l->ml.log_start = kl_log_start;
    l->ml.log_stop = kl_log_stop;
    l->ml.log_sync = kl_log_sync;
    l->ml.eventfd_add = kl_eventfd_add;
    l->ml.eventfd_del = kl_eventfd_del;
    l->ml.coalesced_add = kl_coalesced_add;
    l->ml.coalesced_del = kl_coalesced_del;
}

void kvm_listener_fini(KvmListener *l)
{
    free(l->pend);
    free(l->zones);
    free(l->iofds);
    l->pend = NULL;
    l->zones = NULL;
    l->iofds = NULL;
    l->npend = l->nzones = l->niofds = 0;
}
