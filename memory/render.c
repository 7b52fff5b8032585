/* SPDX-License-Identifier: MIT */
/*
 * Rendering a region tree into FlatRanges.
 *
 * Walking the tree in QEMU's order (subregions by priority, a terminal
 * region after its own subregions, aliases into their targets) gives every
 * terminal region a rank and a clip window; the region is visible wherever
 * no region of lower rank covers.  Instead of inserting each region into the
 * gaps of a growing array (quadratic), we collect the painted intervals and
 * sweep their endpoints once with a min-heap of ranks: O(n log n) for n
 * regions.
 */
#include <stdlib.h>
#include <string.h>

#include "memory/memory-internal.h"

/* Append fr, merging with the last range where QEMU's simplify would.
 * Returns true if it merged.  Aborts only on allocation failure. */
static bool fv_push(FlatView *fv, const FlatRange *fr)
{
    if (fv->nr && flatrange_can_merge(&fv->ranges[fv->nr - 1], fr)) {
        fv->ranges[fv->nr - 1].size += fr->size;
        return true;
    }
    if (fv->nr == fv->cap) {
        size_t cap = fv->cap ? fv->cap * 2 : 16;
        FlatRange *r = realloc(fv->ranges, cap * sizeof(*r));
        if (!r) {
            abort();
        }
        fv->ranges = r;
        fv->cap = cap;
    }
    fv->ranges[fv->nr++] = *fr;
    return false;
}

typedef struct Paint {
    Int128 lo, hi;
    SInt128 base; /* absolute address of the region's offset 0 */
    MemoryRegion *mr;
    bool readonly, nonvolatile;
} Paint;

typedef struct Render {
    Paint *p;
    size_t n, cap;
} Render;

static void collect(Render *r, MemoryRegion *mr, SInt128 base, Int128 clo, Int128 chi,
                    bool readonly, bool nonvolatile)
{
    if (!mr->enabled) {
        return;
    }
    base += mr->addr;
    readonly |= mr->readonly;
    nonvolatile |= mr->nonvolatile;
    SInt128 rlo = base, rhi = base + (SInt128)mr->size;
    Int128 lo = rlo > (SInt128)clo ? (Int128)rlo : clo;
    Int128 hi = rhi < (SInt128)chi ? (Int128)(rhi < 0 ? 0 : rhi) : chi;
    if (lo >= hi) {
        return;
    }
    if (mr->alias) {
        base -= mr->alias->addr;
        base -= mr->alias_offset;
        collect(r, mr->alias, base, lo, hi, readonly, nonvolatile);
        return;
    }
    for (unsigned i = 0; i < mr->nr_subregions; i++) {
        collect(r, mr->subregions[i], base, lo, hi, readonly, nonvolatile);
    }
    if (!mr->terminates) {
        return;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        Paint *p = realloc(r->p, cap * sizeof(*p));
        if (!p) {
            abort();
        }
        r->p = p;
        r->cap = cap;
    }
    r->p[r->n++] = (Paint){ lo, hi, base, mr, readonly, nonvolatile };
}

typedef struct Event {
    Int128 x;
    uint32_t idx;
    bool start;
} Event;

static int event_cmp(const void *a, const void *b)
{
    const Event *x = a, *y = b;
    return x->x < y->x ? -1 : x->x > y->x ? 1 : 0;
}

static void heap_push(uint32_t *h, size_t *n, uint32_t v)
{
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) {
            break;
        }
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static void heap_pop(uint32_t *h, size_t *n)
{
    uint32_t v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) {
            break;
        }
        if (c + 1 < *n && h[c + 1] < h[c]) {
            c++;
        }
        if (v <= h[c]) {
            break;
        }
        h[i] = h[c];
        i = c;
    }
    if (*n) {
        h[i] = v;
    }
}

static void emit(FlatView *fv, const Paint *p, Int128 lo, Int128 hi)
{
    FlatRange fr = {
        .start = (uint64_t)lo,
        .size = hi - lo,
        .mr = p->mr,
        .offset_in_region = (uint64_t)((SInt128)lo - p->base),
        .dirty_log_mask = p->mr->dirty_log_mask,
        .romd_mode = p->mr->romd_mode,
        .readonly = p->readonly,
        .nonvolatile = p->nonvolatile,
    };
    fv_push(fv, &fr);
}

void flatview_render_window(FlatView *fv, MemoryRegion *root, Int128 lo, Int128 hi)
{
    Render r = { 0 };
    if (root) {
        /* an address space shows its root's byte 0 at address 0, wherever
         * the root itself may be placed in another container */
        collect(&r, root, -(SInt128)root->addr, lo, hi, false, false);
    }
    if (r.n == 0) {
        free(r.p);
        return;
    }
    Event *ev = malloc(2 * r.n * sizeof(*ev));
    uint32_t *heap = malloc(r.n * sizeof(*heap));
    bool *ended = calloc(r.n, sizeof(*ended));
    if (!ev || !heap || !ended) {
        abort();
    }
    for (size_t i = 0; i < r.n; i++) {
        ev[2 * i] = (Event){ r.p[i].lo, (uint32_t)i, true };
        ev[2 * i + 1] = (Event){ r.p[i].hi, (uint32_t)i, false };
    }
    qsort(ev, 2 * r.n, sizeof(*ev), event_cmp);
    size_t nh = 0;
    Int128 prev = ev[0].x;
    for (size_t e = 0; e < 2 * r.n;) {
        Int128 x = ev[e].x;
        while (nh && ended[heap[0]]) {
            heap_pop(heap, &nh);
        }
        if (nh && prev < x) {
            emit(fv, &r.p[heap[0]], prev, x);
        }
        for (; e < 2 * r.n && ev[e].x == x; e++) {
            if (ev[e].start) {
                heap_push(heap, &nh, ev[e].idx);
            } else {
                ended[ev[e].idx] = true;
            }
        }
        prev = x;
    }
    free(ev);
    free(heap);
    free(ended);
    free(r.p);
}

FlatView *flatview_render_full(MemoryRegion *root)
{
    FlatView *fv = flatview_new(root);
    if (!fv) {
        abort();
    }
    flatview_render_window(fv, root, 0, INT128_2_64);
    return fv;
}
