/* SPDX-License-Identifier: MIT */
/* Internals shared by the files of memory/.  Not for use outside memory/. */
#ifndef STRATA_MEMORY_INTERNAL_H
#define STRATA_MEMORY_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include "memory/memory.h"

typedef __int128 SInt128;

struct FlatView {
    int refcount;       /* atomic */
    MemoryRegion *root; /* region rendered (after root sharing) */
    FlatRange *ranges;
    size_t nr, cap;
};

/* An ioeventfd as seen in an address space (absolute address). */
typedef struct ASIoeventfd {
    uint64_t addr;
    uint64_t size;
    bool match_data;
    uint64_t data;
    int fd;
    MemoryRegion *mr;
    uint64_t offset_in_region;
} ASIoeventfd;

struct AddressSpace {
    MemoryContext *ctx;
    char *name;
    MemoryRegion *root;
    pthread_mutex_t lock; /* guards `current` for readers on other threads */
    FlatView *current;
    ASIoeventfd *ioeventfds;
    size_t nr_ioeventfds;
    MemoryListener *listeners; /* singly linked, registration order */
    uint64_t unassigned;       /* atomic */
    bool needs_full;           /* root changed: render from scratch */
};

/* A window of an address space's coordinates to re-render at commit. */
typedef struct Window {
    MemoryRegion *key; /* an AS root */
    Int128 lo, hi;
} Window;

struct MemoryContext {
    unsigned depth; /* transaction nesting */
    bool pending;   /* something to do at the outermost commit */
    bool ioeventfd_pending;
    bool all_full; /* too many windows: render everything */
    AddressSpace **as;
    size_t nr_as, cap_as;
    Window *windows;
    size_t nr_windows, cap_windows;
    uint64_t render_count;
    unsigned nr_ioeventfds; /* over all regions */
    char err[512];
};

/* Set ctx's last error message; returns err (a negative errno). */
int mem_error(MemoryContext *ctx, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record that what `mr` shows (bytes [lo, hi) of mr's own space) may change. */
void mem_note_change(MemoryRegion *mr, Int128 lo, Int128 hi);
/* The same for the whole of mr. */
void mem_note_region(MemoryRegion *mr);
/* Mark the context dirty and commit now if no transaction is open. */
void mem_schedule_commit(MemoryContext *ctx);

/* The end of a flat range (exclusive). */
static inline Int128 flatrange_end(const FlatRange *fr)
{
    return (Int128)fr->start + fr->size;
}

/* True if b continues a seamlessly (QEMU's simplify merges them). */
static inline bool flatrange_can_merge(const FlatRange *a, const FlatRange *b)
{
    return flatrange_end(a) == b->start && a->mr == b->mr &&
           (Int128)a->offset_in_region + a->size == b->offset_in_region &&
           a->dirty_log_mask == b->dirty_log_mask && a->romd_mode == b->romd_mode &&
           a->readonly == b->readonly && a->nonvolatile == b->nonvolatile;
}

/* True if a and b map the same thing the same way (the dirty-log mask aside). */
static inline bool flatrange_equal(const FlatRange *a, const FlatRange *b)
{
    return a->start == b->start && a->size == b->size && a->mr == b->mr &&
           a->offset_in_region == b->offset_in_region && a->romd_mode == b->romd_mode &&
           a->readonly == b->readonly && a->nonvolatile == b->nonvolatile;
}

/* What a commit changed in one view: the old ranges that are gone and the
 * new ranges that were not there, each sorted by address. */
typedef struct FlatViewDelta {
    FlatRange *del, *add;
    size_t nr_del, nr_add;
} FlatViewDelta;

/* flatview.c */
FlatView *flatview_new(MemoryRegion *root);
/* Index of the first range of fv whose end is above addr (fv's count if none). */
size_t flatview_first_ending_after(const FlatView *fv, Int128 addr);
/* QEMU's memory_region_get_flatview_root(). */
MemoryRegion *memory_region_flatview_root(MemoryRegion *mr);
/* The outermost commit: update every AS and tell listeners. */
void memory_commit_all(MemoryContext *ctx);
/* Call fn on every range of every AS showing mr. */
void memory_foreach_range_of(MemoryContext *ctx, MemoryRegion *mr,
                             void (*fn)(AddressSpace *as, const FlatRange *fr, void *opaque),
                             void *opaque);

/* render.c */
/* Render [lo, hi) of root's space from scratch into fv (appending). */
void flatview_render_window(FlatView *fv, MemoryRegion *root, Int128 lo, Int128 hi);
/* A new view of the whole of root's space (aborts only when out of memory). */
FlatView *flatview_render_full(MemoryRegion *root);

/* splice.c */
/* A new view: old outside the windows w[0..nw) (of old's root's space; they
 * are sorted and merged in place), a fresh render inside; fills d. */
FlatView *flatview_splice(FlatView *old, Window *w, size_t nw, FlatViewDelta *d);
/* The delta that takes every range of old (may be NULL) to every range of nv. */
FlatViewDelta flatview_full_delta(const FlatView *old, const FlatView *nv);

/* listeners.c */
/* Make a section from a flat range. */
MemoryRegionSection section_from_range(AddressSpace *as, const FlatRange *fr);
/* Tells the AS's listeners a commit begins / ends. */
void listeners_begin(AddressSpace *as);
void listeners_commit(AddressSpace *as);
/* Tells the AS's listeners what d says changed (deletions first). */
void listeners_apply_delta(AddressSpace *as, const FlatViewDelta *d);
/* Rebuild as->ioeventfds and tell listeners what changed. */
void address_space_update_ioeventfds(AddressSpace *as);
/* Replay the AS's state to one listener (add) or tear it down (del). */
void listener_replay(MemoryListener *l, bool add);
/* Re-announce mr's coalesced ranges to listeners (after a change). */
void memory_region_update_coalesced(MemoryRegion *mr);

/* dispatch.c */
bool mem_region_ram_readable(const MemoryRegion *mr);

/* dirty.c */
void memory_region_dirty_free(MemoryRegion *mr);

static inline Int128 i128_min(Int128 a, Int128 b)
{
    return a < b ? a : b;
}
static inline Int128 i128_max(Int128 a, Int128 b)
{
    return a > b ? a : b;
}

#endif
