/* SPDX-License-Identifier: MIT */
/*
 * Naive reference renderer for the randomized differential test (see
 * ref_model.h).  Deliberately simple: list every terminal's clipped extent in
 * visibility order, then paint from the bottom up.
 */
#include "tests/random/ref_model.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return q;
}

const char *s128_str(s128 v)
{
    static char ring[8][48];
    static unsigned next;
    char *b = ring[next++ % 8];
    if (v < 0) {
        snprintf(b, 48, "-(%s)", s128_str(-v));
        return b;
    }
    uint64_t hi = (uint64_t)(v >> 64), lo = (uint64_t)v;
    if (hi)
        snprintf(b, 48, "0x%" PRIx64 "%016" PRIx64, hi, lo);
    else
        snprintf(b, 48, "0x%" PRIx64, lo);
    return b;
}

static void push_item(RMap *map, s128 lo, s128 hi, s128 origin, RNode *term, bool ro, bool nv)
{
    if (map->nitems == map->capitems) {
        map->capitems = map->capitems ? map->capitems * 2 : 64;
        map->items = xrealloc(map->items, map->capitems * sizeof(*map->items));
    }
    map->items[map->nitems++] = (RItem){
        .lo = lo, .hi = hi, .origin = origin, .term = term, .ro = ro, .romd = term->romd, .nv = nv
    };
}

/* Visibility order among siblings: higher priority first, then the most
 * recently (re)inserted first. */
static int cmp_children(const void *a, const void *b)
{
    const RNode *x = *(RNode *const *)a, *y = *(RNode *const *)b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq > y->seq ? -1 : 1;
    return 0;
}

/* Lists n's terminal extents, most visible first, clipped to [clo, chi);
 * n's byte 0 sits at absolute address origin. */
static void visit(const RNodeSet *set, RMap *map, RNode *n, s128 origin, s128 clo, s128 chi,
                  bool ro, bool nv, int depth)
{
    if (depth > 64) {
        fprintf(stderr, "reference: tree deeper than 64 (cycle?)\n");
        abort();
    }
    if (!n->enabled)
        return;
    s128 lo = origin > clo ? origin : clo;
    s128 hi = origin + n->size < chi ? origin + n->size : chi;
    if (lo >= hi)
        return;
    ro = ro || n->readonly || n->kind == RK_ROM;
    nv = nv || n->nonvolatile;
    if (n->kind == RK_ALIAS) {
        visit(set, map, n->target, origin - (s128)n->alias_off, lo, hi, ro, nv, depth + 1);
        return;
    }
    size_t nk = 0;
    RNode **kids = NULL;
    for (size_t i = 0; i < set->n; i++) {
        if (set->nodes[i]->parent == n) {
            kids = xrealloc(kids, (nk + 1) * sizeof(*kids));
            kids[nk++] = set->nodes[i];
        }
    }
    if (nk > 1)
        qsort(kids, nk, sizeof(*kids), cmp_children);
    for (size_t i = 0; i < nk; i++)
        visit(set, map, kids[i], origin + (s128)kids[i]->addr, lo, hi, ro, nv, depth + 1);
    free(kids);
    if (n->kind != RK_CONTAINER)
        push_item(map, lo, hi, origin, n, ro, nv);
}

static int cmp_s128(const void *a, const void *b)
{
    s128 x = *(const s128 *)a, y = *(const s128 *)b;
    return x < y ? -1 : x > y;
}

static size_t seg_index(const RMap *map, s128 addr)
{
    size_t lo = 0, hi = map->nsegs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (map->segs[mid].lo <= addr)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

size_t ref_render(const RNodeSet *set, RNode *root, RMap *map)
{
    map->nitems = 0;
    /* The root's byte 0 is address 0 (whatever its own addr).  FlatView root
     * sharing (header) must not change anything visible, so the reference
     * ignores it. */
    visit(set, map, root, 0, 0, S128_2_64, false, false, 0);

    size_t nb = 0, need = 2 * map->nitems + 2;
    if (need > map->capbps) {
        map->capbps = need;
        map->bps = xrealloc(map->bps, need * sizeof(*map->bps));
    }
    map->bps[nb++] = 0;
    map->bps[nb++] = S128_2_64;
    for (size_t i = 0; i < map->nitems; i++) {
        map->bps[nb++] = map->items[i].lo;
        map->bps[nb++] = map->items[i].hi;
    }
    qsort(map->bps, nb, sizeof(*map->bps), cmp_s128);
    size_t u = 0;
    for (size_t i = 0; i < nb; i++)
        if (u == 0 || map->bps[u - 1] != map->bps[i])
            map->bps[u++] = map->bps[i];

    map->nsegs = u - 1;
    if (map->nsegs > map->capsegs) {
        map->capsegs = map->nsegs;
        map->segs = xrealloc(map->segs, map->capsegs * sizeof(*map->segs));
    }
    for (size_t i = 0; i + 1 < u; i++)
        map->segs[i] = (RSeg){ .lo = map->bps[i], .hi = map->bps[i + 1], .it = NULL };

    /* Paint from the least visible item up; later paint covers earlier. */
    for (size_t k = map->nitems; k-- > 0;) {
        const RItem *it = &map->items[k];
        for (size_t i = seg_index(map, it->lo); i < map->nsegs && map->segs[i].lo < it->hi; i++)
            map->segs[i].it = it;
    }
    return map->nitems;
}

void ref_map_free(RMap *map)
{
    free(map->items);
    free(map->segs);
    free(map->bps);
    memset(map, 0, sizeof(*map));
}

const RSeg *ref_lookup(const RMap *map, uint64_t addr)
{
    return &map->segs[seg_index(map, (s128)addr)];
}

static const char *term_name(const RItem *it)
{
    return it ? memory_region_name(it->term->mr) : "(unassigned)";
}

/* Does fv's range fr say the same as the map's item it at address x? */
static bool same_at(const FlatRange *fr, const RItem *it, s128 x)
{
    if (!fr || !it)
        return !fr && !it;
    if (fr->mr != it->term->mr)
        return false;
    uint64_t off_fv = fr->offset_in_region + (uint64_t)(x - (s128)fr->start);
    uint64_t off_ref = (uint64_t)(x - it->origin);
    if (off_fv != off_ref || fr->readonly != it->ro || fr->nonvolatile != it->nv)
        return false;
    if (it->term->kind == RK_ROMDEV && fr->romd_mode != it->romd)
        return false;
    return true;
}

static int check_exact(const RMap *map, FlatView *fv, char *err, size_t errlen)
{
    size_t n = flatview_nr_ranges(fv), k = 0;
    for (size_t i = 0; i < map->nsegs;) {
        const RSeg *s = &map->segs[i];
        if (!s->it) {
            i++;
            continue;
        }
        size_t j = i + 1;
        /* QEMU's merge rule: same region, contiguous offset, same flags. */
        while (j < map->nsegs && map->segs[j].it && map->segs[j].it->term == s->it->term &&
               map->segs[j].it->origin == s->it->origin && map->segs[j].it->ro == s->it->ro &&
               map->segs[j].it->nv == s->it->nv)
            j++;
        s128 lo = s->lo, hi = map->segs[j - 1].hi;
        if (k >= n) {
            snprintf(err, errlen,
                     "exact split: FlatView has %zu ranges, reference has more "
                     "(next [%s, %s) %s)",
                     n, s128_str(lo), s128_str(hi), term_name(s->it));
            return -1;
        }
        const FlatRange *fr = flatview_range(fv, k);
        if ((s128)fr->start != lo || (s128)fr->size != hi - lo) {
            snprintf(err, errlen,
                     "exact split: range %zu is [%s, +%s) %s, reference merges to "
                     "[%s, %s) %s",
                     k, s128_str((s128)fr->start), s128_str((s128)fr->size),
                     memory_region_name(fr->mr), s128_str(lo), s128_str(hi), term_name(s->it));
            return -1;
        }
        k++;
        i = j;
    }
    if (k != n) {
        snprintf(err, errlen, "exact split: FlatView has %zu ranges, reference %zu", n, k);
        return -1;
    }
    return 0;
}

int ref_compare(const RMap *map, FlatView *fv, bool exact, char *err, size_t errlen)
{
    size_t n = flatview_nr_ranges(fv);
    s128 prev_end = 0;
    for (size_t i = 0; i < n; i++) {
        const FlatRange *fr = flatview_range(fv, i);
        s128 start = (s128)fr->start, size = (s128)fr->size;
        if (size <= 0 || start + size > S128_2_64 || start < prev_end || !fr->mr) {
            snprintf(err, errlen,
                     "FlatView range %zu [%s, +%s) is empty, unsorted, overlapping "
                     "or past 2^64",
                     i, s128_str(start), s128_str(size));
            return -1;
        }
        prev_end = start + size;
    }

    size_t i = 0, j = 0;
    s128 x = 0;
    while (x < S128_2_64) {
        while (map->segs[j].hi <= x)
            j++;
        while (i < n && (s128)flatview_range(fv, i)->start + (s128)flatview_range(fv, i)->size <= x)
            i++;
        const FlatRange *fr = NULL;
        s128 next = map->segs[j].hi;
        if (i < n) {
            const FlatRange *c = flatview_range(fv, i);
            if ((s128)c->start <= x) {
                fr = c;
                if ((s128)c->start + (s128)c->size < next)
                    next = (s128)c->start + (s128)c->size;
            } else if ((s128)c->start < next) {
                next = (s128)c->start;
            }
        }
        const RItem *it = map->segs[j].it;
        if (!same_at(fr, it, x)) {
            snprintf(err, errlen,
                     "at %s: FlatView says %s off %s ro %d nv %d romd %d; reference says %s off "
                     "%s ro %d nv %d romd %d",
                     s128_str(x), fr ? memory_region_name(fr->mr) : "(unassigned)",
                     fr ? s128_str((s128)fr->offset_in_region + (x - (s128)fr->start)) : "-",
                     fr ? fr->readonly : 0, fr ? fr->nonvolatile : 0, fr ? fr->romd_mode : 0,
                     term_name(it), it ? s128_str(x - it->origin) : "-", it ? it->ro : 0,
                     it ? it->nv : 0, it ? it->romd : 0);
            return -1;
        }
        /* flatview_lookup must find the same range at both ends. */
        const FlatRange *l1 = flatview_lookup(fv, (uint64_t)x);
        const FlatRange *l2 = flatview_lookup(fv, (uint64_t)(next - 1));
        if ((fr == NULL) != (l1 == NULL) || (fr == NULL) != (l2 == NULL) ||
            (fr && (l1->start != fr->start || l2->start != fr->start))) {
            snprintf(err, errlen, "flatview_lookup(%s or %s) disagrees with the range list",
                     s128_str(x), s128_str(next - 1));
            return -1;
        }
        x = next;
    }
    if (exact)
        return check_exact(map, fv, err, errlen);
    return 0;
}
