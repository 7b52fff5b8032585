/* SPDX-License-Identifier: MIT */
/*
 * The fuzz target's checking listener: it tracks the sections it was given
 * (region_add adds one, region_del must remove one it has, region_nop must
 * name one it has) and check_listener() compares them with the FlatView.
 */
#include "tests/fuzz/fuzz_memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Listener *lis_of(MemoryListener *l)
{
    return (Listener *)l;
}

static bool same_section(const Section *a, const MemoryRegionSection *s)
{
    return a->start == s->offset_within_address_space && a->size == s->size && a->mr == s->mr &&
           a->offset == s->offset_within_region && a->readonly == s->readonly;
}

static void check_section(const MemoryRegionSection *s)
{
    if (!s->mr || s->size == 0 || (Int128)s->offset_within_address_space + s->size > INT128_2_64)
        abort();
}

static void on_add(MemoryListener *l, MemoryRegionSection *s)
{
    Listener *L = lis_of(l);
    check_section(s);
    for (size_t i = 0; i < L->nlive; i++)
        if (same_section(&L->live[i], s))
            abort(); /* added twice */
    if (L->nlive == MAX_SECTIONS)
        abort();
    L->live[L->nlive++] = (Section){ s->offset_within_address_space, s->size, s->mr,
                                     s->offset_within_region, s->readonly };
}

static void on_del(MemoryListener *l, MemoryRegionSection *s)
{
    Listener *L = lis_of(l);
    check_section(s);
    for (size_t i = 0; i < L->nlive; i++) {
        if (same_section(&L->live[i], s)) {
            L->live[i] = L->live[--L->nlive];
            return;
        }
    }
    abort(); /* deleting a section it never added */
}

static void on_nop(MemoryListener *l, MemoryRegionSection *s)
{
    Listener *L = lis_of(l);
    check_section(s);
    for (size_t i = 0; i < L->nlive; i++)
        if (same_section(&L->live[i], s))
            return;
    abort(); /* "unchanged" section it does not know */
}

static void on_begin(MemoryListener *l)
{
    lis_of(l)->depth++;
}

static void on_commit(MemoryListener *l)
{
    Listener *L = lis_of(l);
    if (L->depth == 0)
        abort();
    L->depth--;
}

static void on_log(MemoryListener *l, MemoryRegionSection *s, int old_mask, int new_mask)
{
    (void)l;
    (void)old_mask;
    (void)new_mask;
    check_section(s);
}

static void on_sync(MemoryListener *l, MemoryRegionSection *s)
{
    (void)l;
    check_section(s);
}

static void on_eventfd(MemoryListener *l, MemoryRegionSection *s, bool match, uint64_t data, int fd)
{
    (void)l;
    (void)match;
    (void)data;
    if (fd < 0 || !s)
        abort();
}

static void on_coalesced(MemoryListener *l, MemoryRegionSection *s, uint64_t addr, uint64_t len)
{
    (void)l;
    check_section(s);
    /* len is a uint64_t: a coalesced range of 2^64 arrives as 0 */
    Int128 l128 = len ? (Int128)len : INT128_2_64;
    if (addr < s->offset_within_address_space ||
        (Int128)addr + l128 > (Int128)s->offset_within_address_space + s->size) {
        fprintf(stderr, "coalesced range 0x%llx+0x%llx outside its section 0x%llx+0x%llx (%s)\n",
                (unsigned long long)addr, (unsigned long long)len,
                (unsigned long long)s->offset_within_address_space, (unsigned long long)s->size,
                memory_region_name(s->mr));
        abort();
    }
}

static void sort_sections(Section *a, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && a[j - 1].start > a[j].start; j--) {
            Section t = a[j];
            a[j] = a[j - 1];
            a[j - 1] = t;
        }
}

FlatView *fuzz_get_flatview(AddressSpace *as)
{
    FlatView *fv = address_space_get_flatview(as);
    if (!fv && !g_skip_known) {
        /* known: an AS created inside a transaction has none until commit */
        fprintf(stderr, "address_space_get_flatview(%s) returned NULL\n", address_space_name(as));
        abort();
    }
    return fv;
}

void check_listener(Listener *L, AddressSpace *as)
{
    if (!L->registered || !as)
        return;
    FlatView *fv = fuzz_get_flatview(as);
    if (!fv)
        return;
    size_t n = flatview_nr_ranges(fv);
    if (n != L->nlive) {
        fprintf(stderr, "listener knows %zu sections, FlatView has %zu ranges\n", L->nlive, n);
        abort();
    }
    sort_sections(L->live, L->nlive);
    for (size_t k = 0; k < n; k++) {
        const FlatRange *fr = flatview_range(fv, k);
        const Section *s = &L->live[k];
        if (s->start != fr->start || s->size != fr->size || s->mr != fr->mr ||
            s->offset != fr->offset_in_region || s->readonly != fr->readonly) {
            fprintf(stderr, "listener section %zu differs from FlatView range\n", k);
            abort();
        }
    }
    flatview_unref(fv);
}

void listener_init(Listener *L)
{
    memset(L, 0, sizeof(*L));
    L->l.begin = on_begin;
    L->l.commit = on_commit;
    L->l.region_add = on_add;
    L->l.region_del = on_del;
    L->l.region_nop = on_nop;
    L->l.log_start = on_log;
    L->l.log_stop = on_log;
    L->l.log_sync = on_sync;
    L->l.eventfd_add = on_eventfd;
    L->l.eventfd_del = on_eventfd;
    L->l.coalesced_add = on_coalesced;
    L->l.coalesced_del = on_coalesced;
}
