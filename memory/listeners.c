/* SPDX-License-Identifier: MIT */
/*
 * Telling listeners: a commit's difference (QEMU's two passes: deletions,
 * then additions and log changes), coalesced ranges, the address space's
 * ioeventfds, and replaying the whole state to one listener when it
 * registers (or tearing it down when it goes).
 */
#include <stdlib.h>
#include <string.h>

#include "memory/memory-internal.h"

MemoryRegionSection section_from_range(AddressSpace *as, const FlatRange *fr)
{
    return (MemoryRegionSection){
        .mr = fr->mr,
        .as = as,
        .offset_within_region = fr->offset_in_region,
        .offset_within_address_space = fr->start,
        .size = fr->size,
        .readonly = fr->readonly,
        .romd_mode = fr->romd_mode,
    };
}

static void coalesced_add_for(MemoryListener *l, AddressSpace *as, const FlatRange *fr)
{
    MemoryRegion *mr = fr->mr;
    if (!l->coalesced_add || !mr->nr_coalesced) {
        return;
    }
    MemoryRegionSection s = section_from_range(as, fr);
    for (unsigned i = 0; i < mr->nr_coalesced; i++) {
        Int128 lo = i128_max(mr->coalesced[i].addr, fr->offset_in_region);
        Int128 hi = i128_min((Int128)mr->coalesced[i].addr + mr->coalesced[i].size,
                             (Int128)fr->offset_in_region + fr->size);
        if (lo < hi) {
            l->coalesced_add(l, &s, fr->start + (uint64_t)(lo - fr->offset_in_region),
                             (uint64_t)(hi - lo));
        }
    }
}

static void coalesced_del_for(MemoryListener *l, AddressSpace *as, const FlatRange *fr)
{
    if (!l->coalesced_del || !fr->mr->nr_coalesced) {
        return;
    }
    MemoryRegionSection s = section_from_range(as, fr);
    l->coalesced_del(l, &s, fr->start, (uint64_t)fr->size);
}

static void notify_del(AddressSpace *as, const FlatRange *fr)
{
    MemoryRegionSection s = section_from_range(as, fr);
    for (MemoryListener *l = as->listeners; l; l = l->next) {
        coalesced_del_for(l, as, fr);
        if (fr->dirty_log_mask && l->log_stop) {
            l->log_stop(l, &s, fr->dirty_log_mask, 0);
        }
        if (l->region_del) {
            l->region_del(l, &s);
        }
    }
}

static void notify_add(AddressSpace *as, const FlatRange *fr)
{
    MemoryRegionSection s = section_from_range(as, fr);
    for (MemoryListener *l = as->listeners; l; l = l->next) {
        if (l->region_add) {
            l->region_add(l, &s);
        }
        if (fr->dirty_log_mask && l->log_start) {
            l->log_start(l, &s, 0, fr->dirty_log_mask);
        }
        coalesced_add_for(l, as, fr);
    }
}

static void notify_nop(AddressSpace *as, const FlatRange *o, const FlatRange *n)
{
    MemoryRegionSection s = section_from_range(as, n);
    for (MemoryListener *l = as->listeners; l; l = l->next) {
        if (l->region_nop && n->dirty_log_mask == o->dirty_log_mask) {
            l->region_nop(l, &s);
        }
        if (n->dirty_log_mask & ~o->dirty_log_mask && l->log_start) {
            l->log_start(l, &s, o->dirty_log_mask, n->dirty_log_mask);
        }
        if (o->dirty_log_mask & ~n->dirty_log_mask && l->log_stop) {
            l->log_stop(l, &s, o->dirty_log_mask, n->dirty_log_mask);
        }
    }
}

void listeners_apply_delta(AddressSpace *as, const FlatViewDelta *d)
{
    for (int adding = 0; adding < 2; adding++) {
        size_t i = 0, j = 0;
        while (i < d->nr_del || j < d->nr_add) {
            const FlatRange *o = i < d->nr_del ? &d->del[i] : NULL;
            const FlatRange *n = j < d->nr_add ? &d->add[j] : NULL;
            if (o &&
                (!n || o->start < n->start || (o->start == n->start && !flatrange_equal(o, n)))) {
                if (!adding) {
                    o->mr->nr_mappings--;
                    notify_del(as, o);
                }
                i++;
            } else if (o && n && flatrange_equal(o, n)) {
                if (adding) {
                    notify_nop(as, o, n);
                }
                i++;
                j++;
            } else {
                if (adding) {
                    n->mr->nr_mappings++;
                    notify_add(as, n);
                }
                j++;
            }
        }
    }
}

void listeners_begin(AddressSpace *as)
{
    for (MemoryListener *l = as->listeners; l; l = l->next) {
        if (l->begin) {
            l->begin(l);
        }
    }
}

void listeners_commit(AddressSpace *as)
{
    for (MemoryListener *l = as->listeners; l; l = l->next) {
        if (l->commit) {
            l->commit(l);
        }
    }
}

static void recoalesce(AddressSpace *as, const FlatRange *fr, void *opaque)
{
    for (MemoryListener *l = as->listeners; l; l = l->next) {
        if (l->coalesced_del) {
            MemoryRegionSection s = section_from_range(as, fr);
            l->coalesced_del(l, &s, fr->start, (uint64_t)fr->size);
        }
        coalesced_add_for(l, as, fr);
    }
}

void memory_region_update_coalesced(MemoryRegion *mr)
{
    if (mr->nr_mappings) {
        memory_foreach_range_of(mr->ctx, mr, recoalesce, NULL);
    }
}

/* ---- ioeventfds ------------------------------------------------------- */

static int ioeventfd_cmp(const void *a, const void *b)
{
    const ASIoeventfd *x = a, *y = b;
#define CMP(f) \
    if (x->f != y->f) \
    return x->f < y->f ? -1 : 1
    CMP(addr);
    CMP(size);
    CMP(match_data);
    CMP(data);
    CMP(fd);
#undef CMP
    return 0;
}

static MemoryRegionSection ioeventfd_section(AddressSpace *as, const ASIoeventfd *e)
{
    return (MemoryRegionSection){
        .mr = e->mr,
        .as = as,
        .offset_within_region = e->offset_in_region,
        .offset_within_address_space = e->addr,
        .size = e->size,
    };
}

static void eventfd_notify(AddressSpace *as, const ASIoeventfd *e, bool add)
{
    MemoryRegionSection s = ioeventfd_section(as, e);
    for (MemoryListener *l = as->listeners; l; l = l->next) {
        if (add && l->eventfd_add) {
            l->eventfd_add(l, &s, e->match_data, e->data, e->fd);
        } else if (!add && l->eventfd_del) {
            l->eventfd_del(l, &s, e->match_data, e->data, e->fd);
        }
    }
}

void address_space_update_ioeventfds(AddressSpace *as)
{
    ASIoeventfd *nl = NULL;
    size_t n = 0, cap = 0;
    FlatView *fv = as->current;
    for (size_t i = 0; fv && i < fv->nr; i++) {
        const FlatRange *fr = &fv->ranges[i];
        MemoryRegion *mr = fr->mr;
        for (unsigned k = 0; k < mr->nr_ioeventfds; k++) {
            const MemoryRegionIoeventfd *e = &mr->ioeventfds[k];
            if (e->addr < fr->offset_in_region ||
                (Int128)e->addr >= (Int128)fr->offset_in_region + fr->size) {
                continue;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                if (!(nl = realloc(nl, cap * sizeof(*nl)))) {
                    abort();
                }
            }
            nl[n++] = (ASIoeventfd){
                .addr = fr->start + (e->addr - fr->offset_in_region),
                .size = e->size,
                .match_data = e->match_data,
                .data = e->data,
                .fd = e->fd,
                .mr = mr,
                .offset_in_region = e->addr,
            };
        }
    }
    if (n > 1) {
        qsort(nl, n, sizeof(*nl), ioeventfd_cmp);
    }
    size_t i = 0, j = 0;
    while (i < as->nr_ioeventfds || j < n) {
        int c = i >= as->nr_ioeventfds ? 1
                : j >= n               ? -1
                                       : ioeventfd_cmp(&as->ioeventfds[i], &nl[j]);
        if (c < 0) {
            eventfd_notify(as, &as->ioeventfds[i++], false);
        } else if (c > 0) {
            eventfd_notify(as, &nl[j++], true);
        } else {
            i++;
            j++;
        }
    }
    free(as->ioeventfds);
    as->ioeventfds = nl;
    as->nr_ioeventfds = n;
}

/* ---- Replay to one listener, registration ----------------------------- */

void listener_replay(MemoryListener *l, bool add)
{
    AddressSpace *as = l->as;
    FlatView *fv = as->current;
    MemoryListener *saved = l->next;
    MemoryListener *head = as->listeners;
    /* talk to this listener alone */
    l->next = NULL;
    as->listeners = l;
    listeners_begin(as);
    if (add) {
        for (size_t i = 0; fv && i < fv->nr; i++) {
            notify_add(as, &fv->ranges[i]);
        }
        for (size_t i = 0; i < as->nr_ioeventfds; i++) {
            eventfd_notify(as, &as->ioeventfds[i], true);
        }
    } else {
        for (size_t i = 0; i < as->nr_ioeventfds; i++) {
            eventfd_notify(as, &as->ioeventfds[i], false);
        }
        for (size_t i = 0; fv && i < fv->nr; i++) {
            notify_del(as, &fv->ranges[i]);
        }
    }
    listeners_commit(as);
    as->listeners = head;
    l->next = saved;
}

void memory_listener_register(MemoryListener *l, AddressSpace *as)
{
    l->as = as;
    l->next = NULL;
    MemoryListener **p = &as->listeners;
    while (*p) {
        p = &(*p)->next;
    }
    *p = l;
    listener_replay(l, true);
}

void memory_listener_unregister(MemoryListener *l)
{
    AddressSpace *as = l->as;
    if (!as) {
        return;
    }
    listener_replay(l, false);
    for (MemoryListener **p = &as->listeners; *p; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            break;
        }
    }
    l->as = NULL;
    l->next = NULL;
}
