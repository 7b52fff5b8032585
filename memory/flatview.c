/* SPDX-License-Identifier: MIT */
/*
 * FlatViews: the objects (reference counted, one per distinct root, read by
 * other threads through address_space_get_flatview), root sharing, and the
 * outermost commit that brings every address space up to date.
 *
 * At commit each address space's view is either kept (nothing changed in
 * its windows), spliced (only the changed windows re-rendered: splice.c),
 * or rendered from scratch (render.c); the difference between old and new
 * goes to its listeners (listeners.c) before the new view is published.
 * docs/architecture.md follows a commit from a region change to KVM.
 */
#include <stdlib.h>
#include <string.h>

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

size_t flatview_first_ending_after(const FlatView *fv, Int128 addr)
{
    size_t lo = 0, hi = fv->nr;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (flatrange_end(&fv->ranges[mid]) <= addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

const FlatRange *flatview_lookup(const FlatView *fv, uint64_t addr)
{
    size_t i = flatview_first_ending_after(fv, addr);
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
    FlatViewDelta *deltas = calloc(n + 1, sizeof(*deltas));
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
                    FlatViewDelta *src = &deltas[twin];
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
                deltas[i] = flatview_full_delta(old, nvs[i]);
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
            nvs[i] = flatview_splice(old, w, nw, &deltas[i]);
        } else {
            nvs[i] = flatview_render_full(roots[i]);
            deltas[i] = flatview_full_delta(old, nvs[i]);
        }
        changed[i] = true;
        ctx->render_count++;
    }

    bool do_eventfds = ctx->ioeventfd_pending || (topo && ctx->nr_ioeventfds);
    for (size_t i = 0; i < n; i++) {
        AddressSpace *as = ctx->as[i];
        if (!changed[i] && !do_eventfds && !(topo && as->needs_full)) {
            if (nvs[i]) {
                /* each nvs[i] holds a reference of its own (flatview_ref above);
                 * the analyzer does not follow the count */
                flatview_unref(nvs[i]); /* NOLINT(clang-analyzer-unix.Malloc) */
            }
            continue;
        }
        listeners_begin(as);
        if (changed[i]) {
            listeners_apply_delta(as, &deltas[i]);
        }
        if (nvs[i]) {
            publish(as, nvs[i]); /* NOLINT(clang-analyzer-unix.Malloc): a reference of its own */
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

int memory_context_check_flatviews(MemoryContext *ctx)
{
    for (size_t i = 0; i < ctx->nr_as; i++) {
        AddressSpace *as = ctx->as[i];
        MemoryRegion *root = memory_region_flatview_root(as->root);
        FlatView *ref = flatview_render_full(root);
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
                if (!flatrange_equal(a, b) || a->dirty_log_mask != b->dirty_log_mask) {
                    break;
                }
            }
            bad = j < ref->nr || j < cur->nr;
        }
        flatview_unref(ref);
        if (bad) {
            return mem_error(ctx, -1,
                             "address space '%s': incremental FlatView differs from a"
                             " full render at range #%zu",
                             as->name, j);
        }
    }
    return 0;
}
