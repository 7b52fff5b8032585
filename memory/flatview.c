/* SPDX-License-Identifier: MIT */
/*
 * FlatViews: rendering the region tree, updating it incrementally at commit,
 * and telling listeners what changed.
 *
 * Rendering.  Walking the tree in QEMU's order (subregions by priority, a
 * terminal region after its own subregions, aliases into their targets) gives
 * every terminal region a rank and a clip window; the region is visible
 * wherever no region of lower rank covers.  Instead of inserting each region
 * into the gaps of a growing array (quadratic), we collect the painted
 * intervals and sweep their endpoints once with a min-heap of ranks:
 * O(n log n) for n regions.
 *
 * Incremental commits.  Every mutation records, in its address spaces'
 * coordinates, the window(s) where what the guest sees may change (the
 * region's extent, followed up through containers and aliases).  At commit
 * only those windows are re-rendered and spliced into a copy of the old
 * view; the splice also tells which ranges were dropped and which are new, so
 * listeners are told only about those.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memory/memory-internal.h"

/* ---- FlatView objects ------------------------------------------------- */

FlatView *flatview_new(MemoryRegion *root)
{
    FlatView *fv = calloc(1, sizeof(*fv));
    if (fv) {
        fv->refcount = 1;
        fv->root = root;
    }
    return fv;
}

void flatview_ref(FlatView *fv)
{
    __atomic_fetch_add(&fv->refcount, 1, __ATOMIC_RELAXED);
}

void flatview_unref(FlatView *fv)
{
    if (fv && __atomic_sub_fetch(&fv->refcount, 1, __ATOMIC_ACQ_REL) == 0) {
        free(fv->ranges);
        free(fv);
    }
}

size_t flatview_nr_ranges(const FlatView *fv)
{
    return fv->nr;
}

const FlatRange *flatview_range(const FlatView *fv, size_t i)
{
    return i < fv->nr ? &fv->ranges[i] : NULL;
}

MemoryRegion *flatview_root(const FlatView *fv)
{
    return fv->root;
}

static inline Int128 fr_end(const FlatRange *fr)
{
    return (Int128)fr->start + fr->size;
}

/* Index of the first range whose end is above addr (nr if none). */
static size_t first_ending_after(const FlatView *fv, Int128 addr)
{
    size_t lo = 0, hi = fv->nr;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (fr_end(&fv->ranges[mid]) <= addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

const FlatRange *flatview_lookup(const FlatView *fv, uint64_t addr)
{
    size_t i = first_ending_after(fv, addr);
    if (i < fv->nr && fv->ranges[i].start <= addr) {
        return &fv->ranges[i];
    }
    return NULL;
}

FlatView *address_space_get_flatview(AddressSpace *as)
{
    pthread_mutex_lock(&as->lock);
    FlatView *fv = as->current;
    if (fv) {
        flatview_ref(fv);
    }
    pthread_mutex_unlock(&as->lock);
    return fv;
}

static bool can_merge(const FlatRange *a, const FlatRange *b)
{
    return fr_end(a) == b->start && a->mr == b->mr &&
           (Int128)a->offset_in_region + a->size == b->offset_in_region &&
           a->dirty_log_mask == b->dirty_log_mask && a->romd_mode == b->romd_mode &&
           a->readonly == b->readonly && a->nonvolatile == b->nonvolatile;
}

static bool ranges_equal(const FlatRange *a, const FlatRange *b)
{
    return a->start == b->start && a->size == b->size && a->mr == b->mr &&
           a->offset_in_region == b->offset_in_region && a->romd_mode == b->romd_mode &&
           a->readonly == b->readonly && a->nonvolatile == b->nonvolatile;
}

/* Append fr, merging with the last range where QEMU's simplify would.
 * Returns true if it merged.  Aborts only on allocation failure. */
static bool fv_push(FlatView *fv, const FlatRange *fr)
{
    if (fv->nr && can_merge(&fv->ranges[fv->nr - 1], fr)) {
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

/* ---- Root sharing (QEMU's memory_region_get_flatview_root) ----------- */

MemoryRegion *memory_region_flatview_root(MemoryRegion *mr)
{
    /*
     * As QEMU, but a read-only or non-volatile alias or container is not
     * skipped: its flag would be lost from every range below it.
     */
    while (mr && mr->enabled) {
        if (mr->readonly || mr->nonvolatile) {
            return mr;
        }
        if (mr->alias) {
            if (!mr->alias_offset && mr->size >= mr->alias->size) {
                mr = mr->alias;
                continue;
            }
        } else if (!mr->terminates) {
            unsigned found = 0;
            MemoryRegion *next = NULL;
            for (unsigned i = 0; i < mr->nr_subregions; i++) {
                MemoryRegion *c = mr->subregions[i];
                if (c->enabled) {
                    if (++found > 1) {
                        next = NULL;
                        break;
                    }
                    if (!c->addr && mr->size >= c->size) {
                        next = c;
                    }
                }
            }
            if (found == 0) {
                return NULL;
            }
            if (next) {
                mr = next;
                continue;
            }
        }
        return mr;
    }
    return NULL;
}

/* ---- Rendering ------------------------------------------------------- */

typedef struct Paint {
    Int128 lo, hi;
    SInt128 base;       /* absolute address of the region's offset 0 */
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

static FlatView *render_full(MemoryRegion *root)
{
    FlatView *fv = flatview_new(root);
    if (!fv) {
        abort();
    }
    flatview_render_window(fv, root, 0, INT128_2_64);
    return fv;
}

/* ---- Splicing windows into an old view -------------------------------- */

typedef struct Delta {
    FlatRange *del, *add;
    size_t nr_del, nr_add;
} Delta;

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
        size_t i = first_ending_after(old, w[k].lo);
        if (i < old->nr && old->ranges[i].start < w[k].lo) {
            w[k].lo = old->ranges[i].start;
        }
        if (w[k].hi > 0) {
            i = first_ending_after(old, w[k].hi - 1);
            if (i < old->nr && old->ranges[i].start < w[k].hi) {
                w[k].hi = fr_end(&old->ranges[i]);
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
 * New view = old outside the windows, fresh render inside.  Also fills d with
 * the old ranges that are gone and the new ranges that were not there.  Runs
 * of untouched old ranges are copied wholesale; old ranges never merge with
 * each other (the old view is already simplified), so only the edges of the
 * windows need merge checks.
 */
static FlatView *splice(FlatView *old, Window *w, size_t nw, Delta *d)
{
    FlatView *nv = flatview_new(old->root);
    FlatView tmp = { 0 };
    IdxList dels = { 0 }, fresh = { 0 };
    if (!nv) {
        abort();
    }
    nw = normalize_windows(old, w, nw);
    reserve(nv, old->nr + 16);
    bool last_fresh = false;     /* is nv's last range fresh? */
    size_t last_old = 0;         /* else: the old index it copies */
    size_t i = 0;

    for (size_t k = 0; k <= nw; k++) {
        Int128 lo = k < nw ? w[k].lo : INT128_2_64;
        size_t a = i;
        while (a < old->nr && fr_end(&old->ranges[a]) <= lo) {
            a++;
        }
        /* copy old[i, a) verbatim; only old[i] can merge with a fresh tail */
        if (i < a) {
            if (nv->nr && last_fresh && can_merge(&nv->ranges[nv->nr - 1], &old->ranges[i])) {
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
            if (nv->nr && can_merge(&nv->ranges[nv->nr - 1], &tmp.ranges[j])) {
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

static Delta full_delta(const FlatView *old, const FlatView *nv)
{
    Delta d;
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

/* ---- Telling listeners ------------------------------------------------ */

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

/* QEMU's two-pass topology update over the changed ranges only. */
static void apply_delta(AddressSpace *as, const Delta *d)
{
    for (int adding = 0; adding < 2; adding++) {
        size_t i = 0, j = 0;
        while (i < d->nr_del || j < d->nr_add) {
            const FlatRange *o = i < d->nr_del ? &d->del[i] : NULL;
            const FlatRange *n = j < d->nr_add ? &d->add[j] : NULL;
            if (o && (!n || o->start < n->start ||
                      (o->start == n->start && !ranges_equal(o, n)))) {
                if (!adding) {
                    o->mr->nr_mappings--;
                    notify_del(as, o);
                }
                i++;
            } else if (o && n && ranges_equal(o, n)) {
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

static void listeners_begin(AddressSpace *as)
{
    for (MemoryListener *l = as->listeners; l; l = l->next) {
        if (l->begin) {
            l->begin(l);
        }
    }
}

static void listeners_commit(AddressSpace *as)
{
    for (MemoryListener *l = as->listeners; l; l = l->next) {
        if (l->commit) {
            l->commit(l);
        }
    }
}

/* ---- ioeventfds ------------------------------------------------------- */

static int ioeventfd_cmp(const void *a, const void *b)
{
    const ASIoeventfd *x = a, *y = b;
#define CMP(f) if (x->f != y->f) return x->f < y->f ? -1 : 1
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
                .size = e->size, .match_data = e->match_data, .data = e->data,
                .fd = e->fd, .mr = mr, .offset_in_region = e->addr,
            };
        }
    }
    if (n > 1) {
        qsort(nl, n, sizeof(*nl), ioeventfd_cmp);
    }
    size_t i = 0, j = 0;
    while (i < as->nr_ioeventfds || j < n) {
        int c = i >= as->nr_ioeventfds ? 1 : j >= n ? -1
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

/* ---- Commit ----------------------------------------------------------- */

static void publish(AddressSpace *as, FlatView *nv)
{
    pthread_mutex_lock(&as->lock);
    FlatView *old = as->current;
    as->current = nv;
    pthread_mutex_unlock(&as->lock);
    flatview_unref(old);
}

void memory_commit_all(MemoryContext *ctx)
{
    size_t n = ctx->nr_as;
    bool topo = ctx->pending;
    ctx->pending = false;
    MemoryRegion **roots = calloc(n + 1, sizeof(*roots));
    FlatView **nvs = calloc(n + 1, sizeof(*nvs));
    Delta *deltas = calloc(n + 1, sizeof(*deltas));
    bool *changed = calloc(n + 1, sizeof(*changed));
    Window *w = malloc((ctx->nr_windows + 1) * sizeof(*w));
    if (!roots || !nvs || !deltas || !changed || !w) {
        abort();
    }

    for (size_t i = 0; topo && i < n; i++) {
        roots[i] = memory_region_flatview_root(ctx->as[i]->root);
    }
    for (size_t i = 0; topo && i < n; i++) {
        AddressSpace *as = ctx->as[i];
        FlatView *old = as->current;
        size_t twin = i;
        for (size_t j = 0; j < i; j++) {
            if (roots[j] == roots[i]) {
                twin = j;
                break;
            }
        }
        if (twin != i) {
            /* share the FlatView rendered for an earlier address space */
            nvs[i] = nvs[twin];
            flatview_ref(nvs[i]);
            if (ctx->as[twin]->current == old && !as->needs_full) {
                changed[i] = changed[twin];
                if (changed[i]) {
                    Delta *src = &deltas[twin];
                    deltas[i].nr_del = src->nr_del;
                    deltas[i].nr_add = src->nr_add;
                    deltas[i].del = malloc((src->nr_del + 1) * sizeof(FlatRange));
                    deltas[i].add = malloc((src->nr_add + 1) * sizeof(FlatRange));
                    if (!deltas[i].del || !deltas[i].add) {
                        abort();
                    }
                    memcpy(deltas[i].del, src->del, src->nr_del * sizeof(FlatRange));
                    memcpy(deltas[i].add, src->add, src->nr_add * sizeof(FlatRange));
                }
            } else if (old != nvs[i]) {
                deltas[i] = full_delta(old, nvs[i]);
                changed[i] = true;
            }
            continue;
        }
        if (old && old->root == roots[i] && !as->needs_full && !ctx->all_full) {
            size_t nw = 0;
            for (size_t k = 0; k < ctx->nr_windows; k++) {
                for (size_t j = 0; j < n; j++) {
                    if (roots[j] == roots[i] && ctx->windows[k].key == ctx->as[j]->root) {
                        w[nw++] = ctx->windows[k];
                        break;
                    }
                }
            }
            if (nw == 0) {
                nvs[i] = old;
                flatview_ref(old);
                continue;
            }
            nvs[i] = splice(old, w, nw, &deltas[i]);
        } else {
            nvs[i] = render_full(roots[i]);
            deltas[i] = full_delta(old, nvs[i]);
        }
        changed[i] = true;
        ctx->render_count++;
    }

    bool do_eventfds = ctx->ioeventfd_pending || (topo && ctx->nr_ioeventfds);
    for (size_t i = 0; i < n; i++) {
        AddressSpace *as = ctx->as[i];
        if (!changed[i] && !do_eventfds && !(topo && as->needs_full)) {
            if (nvs[i]) {
                flatview_unref(nvs[i]);
            }
            continue;
        }
        listeners_begin(as);
        if (changed[i]) {
            apply_delta(as, &deltas[i]);
        }
        if (nvs[i]) {
            publish(as, nvs[i]);
        }
        if (do_eventfds || (topo && as->needs_full)) {
            address_space_update_ioeventfds(as);
        }
        listeners_commit(as);
        as->needs_full = false;
    }
    for (size_t i = 0; i < n; i++) {
        free(deltas[i].del);
        free(deltas[i].add);
    }
    ctx->ioeventfd_pending = false;
    ctx->nr_windows = 0;
    ctx->all_full = false;
    free(roots);
    free(nvs);
    free(deltas);
    free(changed);
    free(w);
}

/* ---- Listeners -------------------------------------------------------- */

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

void address_space_destroy(AddressSpace *as)
{
    if (!as) {
        return;
    }
    MemoryContext *ctx = as->ctx;
    while (as->listeners) {
        memory_listener_unregister(as->listeners);
    }
    FlatView *fv = as->current;
    for (size_t i = 0; fv && i < fv->nr; i++) {
        fv->ranges[i].mr->nr_mappings--;
    }
    for (size_t i = 0; i < ctx->nr_as; i++) {
        if (ctx->as[i] == as) {
            memmove(&ctx->as[i], &ctx->as[i + 1], (ctx->nr_as - i - 1) * sizeof(ctx->as[0]));
            ctx->nr_as--;
            break;
        }
    }
    /* pending windows keyed by its root stay: another address space may
     * share that root, and unmatched windows are ignored at commit */
    flatview_unref(as->current);
    pthread_mutex_destroy(&as->lock);
    free(as->ioeventfds);
    free(as->name);
    free(as);
}

/* ---- Helpers for other files ----------------------------------------- */

void memory_foreach_range_of(MemoryContext *ctx, MemoryRegion *mr,
                             void (*fn)(AddressSpace *as, const FlatRange *fr, void *opaque),
                             void *opaque)
{
    for (size_t i = 0; i < ctx->nr_as; i++) {
        AddressSpace *as = ctx->as[i];
        FlatView *fv = as->current;
        for (size_t j = 0; fv && j < fv->nr; j++) {
            if (fv->ranges[j].mr == mr) {
                fn(as, &fv->ranges[j], opaque);
            }
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

int memory_context_check_flatviews(MemoryContext *ctx)
{
    for (size_t i = 0; i < ctx->nr_as; i++) {
        AddressSpace *as = ctx->as[i];
        MemoryRegion *root = memory_region_flatview_root(as->root);
        FlatView *ref = render_full(root);
        FlatView *cur = as->current;
        int bad = 0;
        size_t j = 0;
        if (!cur) {
            bad = ref->nr != 0;
        } else if (cur->root != root) {
            bad = 1;
        } else {
            for (j = 0; j < ref->nr && j < cur->nr; j++) {
                const FlatRange *a = &ref->ranges[j], *b = &cur->ranges[j];
                if (!ranges_equal(a, b) || a->dirty_log_mask != b->dirty_log_mask) {
                    break;
                }
            }
            bad = j < ref->nr || j < cur->nr;
        }
        flatview_unref(ref);
        if (bad) {
            return mem_error(ctx, -1, "address space '%s': incremental FlatView differs from a"
                             " full render at range #%zu", as->name, j) < 0 ? -1 : -1;
        }
    }
    return 0;
}
