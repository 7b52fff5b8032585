/* SPDX-License-Identifier: MIT */
/*
 * Incremental commits: splicing re-rendered windows into an old FlatView.
 *
 * Every mutation records, in its address spaces' coordinates, the window(s)
 * where what the guest sees may change (the region's extent, followed up
 * through containers and aliases).  At commit only those windows are
 * re-rendered and spliced into a copy of the old view; the splice also tells
 * which ranges were dropped and which are new, so listeners are told only
 * about those.
 */
#include <stdlib.h>
#include <string.h>

#include "memory/memory-internal.h"

static int window_cmp(const void *a, const void *b)
{
    const Window *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo ? 1 : 0;
}

/*
 * Grow each window to whole old ranges (no old range straddles a window edge
 * afterwards), then sort and merge them.  Returns the new count.
 */
static size_t normalize_windows(const FlatView *old, Window *w, size_t nw)
{
    for (size_t k = 0; k < nw; k++) {
        size_t i = flatview_first_ending_after(old, w[k].lo);
        if (i < old->nr && old->ranges[i].start < w[k].lo) {
            w[k].lo = old->ranges[i].start;
        }
        if (w[k].hi > 0) {
            i = flatview_first_ending_after(old, w[k].hi - 1);
            if (i < old->nr && old->ranges[i].start < w[k].hi) {
                w[k].hi = flatrange_end(&old->ranges[i]);
            }
        }
    }
    qsort(w, nw, sizeof(*w), window_cmp);
    size_t n = 0;
    for (size_t k = 0; k < nw; k++) {
        if (w[k].lo >= w[k].hi) {
            continue;
        }
        if (n && w[k].lo <= w[n - 1].hi) {
            w[n - 1].hi = i128_max(w[n - 1].hi, w[k].hi);
        } else {
            w[n++] = w[k];
        }
    }
    return n;
}

static void reserve(FlatView *fv, size_t n)
{
    if (n > fv->cap) {
        FlatRange *r = realloc(fv->ranges, n * sizeof(*r));
        if (!r) {
            abort();
        }
        fv->ranges = r;
        fv->cap = n;
    }
}

typedef struct IdxList {
    size_t *v;
    size_t n, cap;
} IdxList;

static void idx_add(IdxList *l, size_t x)
{
    if (l->n && l->v[l->n - 1] == x) {
        return;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        if (!(l->v = realloc(l->v, l->cap * sizeof(*l->v)))) {
            abort();
        }
    }
    l->v[l->n++] = x;
}

/*
 * Runs of untouched old ranges are copied wholesale; old ranges never merge
 * with each other (the old view is already simplified), so only the edges of
 * the windows need merge checks.
 */
FlatView *flatview_splice(FlatView *old, Window *w, size_t nw, FlatViewDelta *d)
{
    FlatView *nv = flatview_new(old->root);
    FlatView tmp = { 0 };
    IdxList dels = { 0 }, fresh = { 0 };
    if (!nv) {
        abort();
    }
    nw = normalize_windows(old, w, nw);
    reserve(nv, old->nr + 16);
    bool last_fresh = false; /* is nv's last range fresh? */
    size_t last_old = 0;     /* else: the old index it copies */
    size_t i = 0;

    for (size_t k = 0; k <= nw; k++) {
        Int128 lo = k < nw ? w[k].lo : INT128_2_64;
        size_t a = i;
        while (a < old->nr && flatrange_end(&old->ranges[a]) <= lo) {
            a++;
        }
        /* copy old[i, a) verbatim; only old[i] can merge with a fresh tail */
        if (i < a) {
            if (nv->nr && last_fresh &&
                flatrange_can_merge(&nv->ranges[nv->nr - 1], &old->ranges[i])) {
                nv->ranges[nv->nr - 1].size += old->ranges[i].size;
                idx_add(&dels, i);
                i++;
            }
            if (i < a) {
                reserve(nv, nv->nr + (a - i) + 16);
                memcpy(&nv->ranges[nv->nr], &old->ranges[i], (a - i) * sizeof(FlatRange));
                nv->nr += a - i;
                last_fresh = false;
                last_old = a - 1;
            }
            i = a;
        }
        if (k == nw) {
            break;
        }
        size_t b = i;
        while (b < old->nr && old->ranges[b].start < w[k].hi) {
            b++;
        }
        tmp.nr = 0;
        flatview_render_window(&tmp, old->root, w[k].lo, w[k].hi);
        for (size_t j = 0; j < tmp.nr; j++) {
            if (nv->nr && flatrange_can_merge(&nv->ranges[nv->nr - 1], &tmp.ranges[j])) {
                nv->ranges[nv->nr - 1].size += tmp.ranges[j].size;
                if (!last_fresh) {
                    idx_add(&dels, last_old);
                    idx_add(&fresh, nv->nr - 1);
                    last_fresh = true;
                }
            } else {
                reserve(nv, nv->nr + 16 + (nv->nr >> 3));
                nv->ranges[nv->nr++] = tmp.ranges[j];
                idx_add(&fresh, nv->nr - 1);
                last_fresh = true;
            }
        }
        for (; i < b; i++) {
            idx_add(&dels, i);
        }
    }
    free(tmp.ranges);

    d->del = malloc((dels.n + 1) * sizeof(FlatRange));
    d->add = malloc((fresh.n + 1) * sizeof(FlatRange));
    if (!d->del || !d->add) {
        abort();
    }
    for (size_t j = 0; j < dels.n; j++) {
        d->del[j] = old->ranges[dels.v[j]];
    }
    for (size_t j = 0; j < fresh.n; j++) {
        d->add[j] = nv->ranges[fresh.v[j]];
    }
    d->nr_del = dels.n;
    d->nr_add = fresh.n;
    free(dels.v);
    free(fresh.v);
    return nv;
}

FlatViewDelta flatview_full_delta(const FlatView *old, const FlatView *nv)
{
    FlatViewDelta d;
    size_t no = old ? old->nr : 0, nn = nv ? nv->nr : 0;
    d.del = malloc((no + 1) * sizeof(FlatRange));
    d.add = malloc((nn + 1) * sizeof(FlatRange));
    if (!d.del || !d.add) {
        abort();
    }
    if (no) {
        memcpy(d.del, old->ranges, no * sizeof(FlatRange));
    }
    if (nn) {
        memcpy(d.add, nv->ranges, nn * sizeof(FlatRange));
    }
    d.nr_del = no;
    d.nr_add = nn;
    return d;
}
