/* SPDX-License-Identifier: MIT */
/*
 * Regions and the tree: initialisation, attributes, subregions, aliases,
 * transactions and the bookkeeping of what changed since the last commit.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "memory/memory-internal.h"

#define MAX_WINDOWS 1024
#define MAX_NOTE_DEPTH 64

int mem_error(MemoryContext *ctx, int err, const char *fmt, ...)
{
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
        va_end(ap);
    }
    return err;
}

static const char *nm(const MemoryRegion *mr)
{
    return mr && mr->name ? mr->name : "(null)";
}

/* ---- Context ---------------------------------------------------------- */

MemoryContext *memory_context_new(void)
{
    return calloc(1, sizeof(MemoryContext));
}

void memory_context_free(MemoryContext *ctx)
{
    if (!ctx) {
        return;
    }
    while (ctx->nr_as) {
        address_space_destroy(ctx->as[ctx->nr_as - 1]);
    }
    free(ctx->as);
    free(ctx->windows);
    free(ctx);
}

const char *memory_context_last_error(const MemoryContext *ctx)
{
    return ctx ? ctx->err : "no memory context";
}

uint64_t memory_context_render_count(const MemoryContext *ctx)
{
    return ctx->render_count;
}

/* ---- Change windows --------------------------------------------------- */

static bool is_as_root(MemoryContext *ctx, const MemoryRegion *mr)
{
    for (size_t i = 0; i < ctx->nr_as; i++) {
        if (ctx->as[i]->root == mr) {
            return true;
        }
    }
    return false;
}

static void add_window(MemoryContext *ctx, MemoryRegion *key, Int128 lo, Int128 hi)
{
    if (ctx->all_full) {
        return;
    }
    if (ctx->nr_windows) {
        Window *w = &ctx->windows[ctx->nr_windows - 1];
        if (w->key == key && lo <= w->hi && hi >= w->lo) {
            w->lo = i128_min(w->lo, lo);
            w->hi = i128_max(w->hi, hi);
            return;
        }
    }
    if (ctx->nr_windows >= MAX_WINDOWS) {
        ctx->all_full = true;
        return;
    }
    if (ctx->nr_windows == ctx->cap_windows) {
        size_t cap = ctx->cap_windows ? ctx->cap_windows * 2 : 16;
        Window *w = realloc(ctx->windows, cap * sizeof(*w));
        if (!w) {
            ctx->all_full = true;
            return;
        }
        ctx->windows = w;
        ctx->cap_windows = cap;
    }
    ctx->windows[ctx->nr_windows++] = (Window){ key, lo, hi };
}

static void note_rec(MemoryContext *ctx, MemoryRegion *mr, Int128 lo, Int128 hi, int depth)
{
    hi = i128_min(hi, mr->size);
    if (lo >= hi || ctx->all_full) {
        return;
    }
    if (depth > MAX_NOTE_DEPTH) {
        ctx->all_full = true;
        return;
    }
    if (is_as_root(ctx, mr)) {
        add_window(ctx, mr, lo, hi); /* an AS shows its root's byte 0 at 0 */
    }
    if (mr->container) {
        note_rec(ctx, mr->container, lo + mr->addr, hi + mr->addr, depth + 1);
    }
    for (unsigned i = 0; i < mr->alias_refs; i++) {
        MemoryRegion *a = mr->aliased_by[i];
        Int128 wlo = i128_max(lo, a->alias_offset);
        Int128 whi = i128_min(hi, (Int128)a->alias_offset + a->size);
        if (wlo < whi) {
            note_rec(ctx, a, wlo - a->alias_offset, whi - a->alias_offset, depth + 1);
        }
    }
}

void mem_note_change(MemoryRegion *mr, Int128 lo, Int128 hi)
{
    MemoryContext *ctx = mr->ctx;
    note_rec(ctx, mr, lo, hi, 0);
    ctx->pending = true;
}

void mem_note_region(MemoryRegion *mr)
{
    mem_note_change(mr, 0, mr->size);
}

void mem_schedule_commit(MemoryContext *ctx)
{
    ctx->pending = true;
    if (ctx->depth == 0) {
        memory_commit_all(ctx);
    }
}

/* ---- Building regions ------------------------------------------------- */

static int init_common(MemoryRegion *mr, MemoryContext *ctx, const char *name, uint64_t size)
{
    if (!mr || !ctx) {
        return mem_error(ctx, -EINVAL, "memory_region_init: NULL region or context");
    }
    memset(mr, 0, sizeof(*mr));
    mr->ctx = ctx;
    mr->name = strdup(name ? name : "");
    if (!mr->name) {
        return mem_error(ctx, -ENOMEM, "region '%s': out of memory", name);
    }
    mr->size = size == UINT64_MAX ? INT128_2_64 : (Int128)size;
    mr->enabled = true;
    mr->initialized = true;
    return 0;
}

int memory_region_init(MemoryRegion *mr, MemoryContext *ctx, const char *name, uint64_t size)
{
    return init_common(mr, ctx, name, size);
}

int memory_region_init_io(MemoryRegion *mr, MemoryContext *ctx, const MemoryRegionOps *ops,
                          void *opaque, const char *name, uint64_t size)
{
    int r = init_common(mr, ctx, name, size);
    if (r == 0) {
        mr->ops = ops;
        mr->opaque = opaque;
        mr->terminates = true;
    }
    return r;
}

static int alloc_ram(MemoryRegion *mr, const char *owner)
{
    if (mr->size == 0 || mr->size >= INT128_2_64) {
        int r = mem_error(mr->ctx, -EINVAL, "RAM region '%s': invalid size", mr->name);
        free(mr->name);
        mr->name = NULL;
        mr->initialized = false;
        return r;
    }
    if (owner && !(mr->owner = strdup(owner))) {
        int r = mem_error(mr->ctx, -ENOMEM, "RAM region '%s': out of memory", mr->name);
        free(mr->name);
        mr->name = NULL;
        mr->initialized = false;
        return r;
    }
    mr->dirty_pages = (uint64_t)((mr->size + MEMORY_PAGE_SIZE - 1) >> MEMORY_PAGE_SHIFT);
    return 0;
}

static int mmap_ram(MemoryRegion *mr, const char *owner)
{
    int r = alloc_ram(mr, owner);
    if (r) {
        return r;
    }
    size_t len = (size_t)((mr->size + MEMORY_PAGE_SIZE - 1) & ~(Int128)(MEMORY_PAGE_SIZE - 1));
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        int e = -errno;
        mem_error(mr->ctx, e, "RAM region '%s': cannot allocate %zu bytes: %s", mr->name, len,
                  strerror(errno));
        free(mr->name);
        free(mr->owner);
        mr->initialized = false;
        return e;
    }
    mr->ram_block = p;
    mr->ram_owned = true;
    return 0;
}

int memory_region_init_ram(MemoryRegion *mr, MemoryContext *ctx, const char *owner,
                           const char *name, uint64_t size)
{
    int r = init_common(mr, ctx, name, size);
    if (r == 0 && (r = mmap_ram(mr, owner)) == 0) {
        mr->ram = true;
        mr->terminates = true;
    }
    return r;
}

int memory_region_init_ram_ptr(MemoryRegion *mr, MemoryContext *ctx, const char *owner,
                               const char *name, uint64_t size, void *ptr)
{
    if (!ptr) {
        return mem_error(ctx, -EINVAL, "RAM region '%s': NULL backing pointer", name);
    }
    int r = init_common(mr, ctx, name, size);
    if (r == 0 && (r = alloc_ram(mr, owner)) == 0) {
        mr->ram_block = ptr;
        mr->ram = true;
        mr->terminates = true;
    }
    return r;
}

int memory_region_init_rom(MemoryRegion *mr, MemoryContext *ctx, const char *owner,
                           const char *name, uint64_t size)
{
    int r = memory_region_init_ram(mr, ctx, owner, name, size);
    if (r == 0) {
        mr->readonly = true;
    }
    return r;
}

int memory_region_init_rom_device(MemoryRegion *mr, MemoryContext *ctx, const MemoryRegionOps *ops,
                                  void *opaque, const char *owner, const char *name, uint64_t size)
{
    int r = init_common(mr, ctx, name, size);
    if (r == 0 && (r = mmap_ram(mr, owner)) == 0) {
        mr->ops = ops;
        mr->opaque = opaque;
        mr->rom_device = true;
        mr->romd_mode = true;
        mr->terminates = true;
    }
    return r;
}

int memory_region_init_alias(MemoryRegion *mr, MemoryContext *ctx, const char *name,
                             MemoryRegion *orig, uint64_t offset, uint64_t size)
{
    if (!orig || !orig->initialized || orig == mr) {
        return mem_error(ctx, -EINVAL, "alias '%s': target is %s", name ? name : "",
                         orig == mr && orig ? "the alias itself" : "not an initialised region");
    }
    if (orig->ctx != ctx) {
        return mem_error(ctx, -EINVAL, "alias '%s': target '%s' belongs to another context",
                         name ? name : "", nm(orig));
    }
    Int128 sz = size == UINT64_MAX ? INT128_2_64 : (Int128)size;
    if ((Int128)offset + sz > orig->size) {
        return mem_error(ctx, -EINVAL,
                         "alias '%s': window 0x%" PRIx64 "+0x%" PRIx64 " is past the end of '%s'",
                         name ? name : "", offset, size, nm(orig));
    }
    if (orig->alias_refs == orig->aliased_by_cap) {
        unsigned cap = orig->aliased_by_cap ? orig->aliased_by_cap * 2 : 4;
        MemoryRegion **a = realloc(orig->aliased_by, cap * sizeof(*a));
        if (!a) {
            return mem_error(ctx, -ENOMEM, "alias '%s': out of memory", name ? name : "");
        }
        orig->aliased_by = a;
        orig->aliased_by_cap = cap;
    }
    int r = init_common(mr, ctx, name, size);
    if (r) {
        return r;
    }
    mr->alias = orig;
    mr->alias_offset = offset;
    orig->aliased_by[orig->alias_refs++] = mr;
    return 0;
}

int memory_region_destroy(MemoryRegion *mr)
{
    if (!mr || !mr->initialized) {
        return -EINVAL;
    }
    MemoryContext *ctx = mr->ctx;
    if (mr->container) {
        return mem_error(ctx, -EBUSY, "destroy '%s': still a subregion of '%s'", nm(mr),
                         nm(mr->container));
    }
    if (is_as_root(ctx, mr)) {
        return mem_error(ctx, -EBUSY, "destroy '%s': still the root of an address space", nm(mr));
    }
    if (mr->alias_refs) {
        return mem_error(ctx, -EBUSY, "destroy '%s': still aliased by '%s'", nm(mr),
                         nm(mr->aliased_by[0]));
    }
    if (mr->nr_subregions) {
        return mem_error(ctx, -EBUSY, "destroy '%s': still contains '%s'", nm(mr),
                         nm(mr->subregions[0]));
    }
    for (size_t i = 0; i < ctx->nr_as; i++) {
        if (ctx->as[i]->current && ctx->as[i]->current->root == mr) {
            return mem_error(ctx, -EBUSY,
                             "destroy '%s': address space '%s' is still rendered"
                             " from it until the open transaction commits",
                             nm(mr), ctx->as[i]->name);
        }
    }
    if (mr->nr_mappings) {
        return mem_error(ctx, -EBUSY,
                         "destroy '%s': still visible until the open transaction commits", nm(mr));
    }
    if (mr->alias) {
        MemoryRegion *t = mr->alias;
        for (unsigned i = 0; i < t->alias_refs; i++) {
            if (t->aliased_by[i] == mr) {
                t->aliased_by[i] = t->aliased_by[--t->alias_refs];
                break;
            }
        }
    }
    if (mr->ram_owned) {
        size_t len = (size_t)((mr->size + MEMORY_PAGE_SIZE - 1) & ~(Int128)(MEMORY_PAGE_SIZE - 1));
        munmap(mr->ram_block, len);
    }
    if (mr->nr_ioeventfds) {
        ctx->nr_ioeventfds -= mr->nr_ioeventfds;
    }
    memory_region_dirty_free(mr);
    free(mr->subregions);
    free(mr->aliased_by);
    free(mr->coalesced);
    free(mr->ioeventfds);
    free(mr->name);
    free(mr->owner);
    memset(mr, 0, sizeof(*mr));
    return 0;
}

/* ---- Queries and attributes ------------------------------------------ */

uint64_t memory_region_size(const MemoryRegion *mr)
{
    return mr->size >= INT128_2_64 ? UINT64_MAX : (uint64_t)mr->size;
}

Int128 memory_region_size128(const MemoryRegion *mr)
{
    return mr->size;
}

const char *memory_region_name(const MemoryRegion *mr)
{
    return nm(mr);
}

void *memory_region_get_ram_ptr(MemoryRegion *mr)
{
    uint64_t off = 0;
    while (mr && mr->alias) {
        off += mr->alias_offset;
        mr = mr->alias;
    }
    if (!mr || !mr->ram_block) {
        return NULL;
    }
    return (uint8_t *)mr->ram_block + off;
}

bool memory_region_is_ram(const MemoryRegion *mr)
{
    while (mr && mr->alias) {
        mr = mr->alias;
    }
    return mr && (mr->ram || mr->rom_device);
}

bool memory_region_is_rom_device(const MemoryRegion *mr)
{
    return mr->rom_device;
}

bool memory_region_is_romd(const MemoryRegion *mr)
{
    return mr->rom_device && mr->romd_mode;
}

MemoryRegion *memory_region_get_container(const MemoryRegion *mr)
{
    return mr->container;
}

void memory_region_set_offset(MemoryRegion *mr, uint64_t offset)
{
    mr->offset = offset;
}

void memory_region_set_readonly(MemoryRegion *mr, bool readonly)
{
    if (mr->readonly == readonly) {
        return;
    }
    mem_note_region(mr);
    mr->readonly = readonly;
    mem_schedule_commit(mr->ctx);
}

void memory_region_rom_device_set_readable(MemoryRegion *mr, bool readable)
{
    if (!mr->rom_device) {
        mem_error(mr->ctx, -EINVAL, "'%s' is not a rom_device", nm(mr));
        return;
    }
    if (mr->romd_mode == readable) {
        return;
    }
    mem_note_region(mr);
    mr->romd_mode = readable;
    mem_schedule_commit(mr->ctx);
}

void memory_region_set_nonvolatile(MemoryRegion *mr, bool nonvolatile)
{
    if (mr->nonvolatile == nonvolatile) {
        return;
    }
    mem_note_region(mr);
    mr->nonvolatile = nonvolatile;
    mem_schedule_commit(mr->ctx);
}

void memory_region_set_enabled(MemoryRegion *mr, bool enabled)
{
    if (mr->enabled == enabled) {
        return;
    }
    mem_note_region(mr);
    mr->enabled = enabled;
    mem_schedule_commit(mr->ctx);
}

/* Does any non-overlapping sibling of sub (in mr) intersect [addr, addr+size)? */
static MemoryRegion *find_overlap(MemoryRegion *mr, MemoryRegion *sub, uint64_t addr)
{
    if (sub->may_overlap) {
        return NULL;
    }
    Int128 lo = addr, hi = (Int128)addr + sub->size;
    for (unsigned i = 0; i < mr->nr_subregions; i++) {
        MemoryRegion *o = mr->subregions[i];
        if (o == sub || o->may_overlap) {
            continue;
        }
        Int128 olo = o->addr, ohi = (Int128)o->addr + o->size;
        if (lo < ohi && olo < hi) {
            return o;
        }
    }
    return NULL;
}

static void insert_sorted(MemoryRegion *mr, MemoryRegion *sub)
{
    unsigned i;
    for (i = 0; i < mr->nr_subregions; i++) {
        if (sub->priority >= mr->subregions[i]->priority) {
            break;
        }
    }
    memmove(&mr->subregions[i + 1], &mr->subregions[i],
            (mr->nr_subregions - i) * sizeof(mr->subregions[0]));
    mr->subregions[i] = sub;
    mr->nr_subregions++;
}

static void remove_child(MemoryRegion *mr, MemoryRegion *sub)
{
    for (unsigned i = 0; i < mr->nr_subregions; i++) {
        if (mr->subregions[i] == sub) {
            memmove(&mr->subregions[i], &mr->subregions[i + 1],
                    (mr->nr_subregions - i - 1) * sizeof(mr->subregions[0]));
            mr->nr_subregions--;
            return;
        }
    }
}

int memory_region_set_address(MemoryRegion *mr, uint64_t addr)
{
    MemoryRegion *c = mr->container;
    if (addr == mr->addr) {
        return 0; /* as QEMU: not re-added, keeps its place */
    }
    if (!c) {
        mr->addr = addr; /* not visible anywhere until it is placed */
        return 0;
    }
    if (addr >= c->size) {
        return mem_error(mr->ctx, -EINVAL,
                         "set_address '%s' to 0x%" PRIx64 ": outside its container '%s'", nm(mr),
                         addr, nm(c));
    }
    MemoryRegion *o = find_overlap(c, mr, addr);
    if (o) {
        return mem_error(mr->ctx, -EINVAL,
                         "set_address '%s' to 0x%" PRIx64 ": would overlap '%s' in '%s'", nm(mr),
                         addr, nm(o), nm(c));
    }
    mem_note_region(mr);
    /* like QEMU: re-added, so it goes first among equal priorities */
    remove_child(c, mr);
    mr->addr = addr;
    insert_sorted(c, mr);
    mem_note_region(mr);
    mem_schedule_commit(mr->ctx);
    return 0;
}

int memory_region_set_alias_offset(MemoryRegion *mr, uint64_t offset)
{
    if (!mr->alias) {
        return mem_error(mr->ctx, -EINVAL, "set_alias_offset: '%s' is not an alias", nm(mr));
    }
    if ((Int128)offset + mr->size > mr->alias->size) {
        return mem_error(mr->ctx, -EINVAL,
                         "set_alias_offset '%s': window 0x%" PRIx64 " is past the end of '%s'",
                         nm(mr), offset, nm(mr->alias));
    }
    if (offset == mr->alias_offset) {
        return 0;
    }
    mem_note_region(mr);
    mr->alias_offset = offset;
    mem_schedule_commit(mr->ctx);
    return 0;
}

/* ---- Coalescing and ioeventfds --------------------------------------- */

int memory_region_set_coalescing(MemoryRegion *mr)
{
    memory_region_clear_coalescing(mr);
    return memory_region_add_coalescing(mr, 0, memory_region_size(mr));
}

int memory_region_add_coalescing(MemoryRegion *mr, uint64_t offset, uint64_t size)
{
    if (!mr->terminates || mr->ram) {
        return mem_error(mr->ctx, -EINVAL, "coalescing on '%s': not an I/O region", nm(mr));
    }
    if (size == 0 || (Int128)offset + size > mr->size) {
        return mem_error(mr->ctx, -EINVAL,
                         "coalescing on '%s': range 0x%" PRIx64 "+0x%" PRIx64 " outside the region",
                         nm(mr), offset, size);
    }
    CoalescedRange *c = realloc(mr->coalesced, (mr->nr_coalesced + 1) * sizeof(*c));
    if (!c) {
        return mem_error(mr->ctx, -ENOMEM, "coalescing on '%s': out of memory", nm(mr));
    }
    mr->coalesced = c;
    c[mr->nr_coalesced++] = (CoalescedRange){ offset, size };
    memory_region_update_coalesced(mr);
    return 0;
}

void memory_region_clear_coalescing(MemoryRegion *mr)
{
    if (!mr->nr_coalesced) {
        return;
    }
    mr->nr_coalesced = 0;
    memory_region_update_coalesced(mr);
}

static long find_eventfd(MemoryRegion *mr, uint64_t addr, unsigned size, bool match_data,
                         uint64_t data, int fd)
{
    for (unsigned i = 0; i < mr->nr_ioeventfds; i++) {
        MemoryRegionIoeventfd *e = &mr->ioeventfds[i];
        if (e->addr == addr && e->size == size && e->match_data == match_data &&
            (!match_data || e->data == data) && e->fd == fd) {
            return i;
        }
    }
    return -1;
}

int memory_region_add_eventfd(MemoryRegion *mr, uint64_t addr, unsigned size, bool match_data,
                              uint64_t data, int fd)
{
    if (fd < 0 || (size != 0 && size != 1 && size != 2 && size != 4 && size != 8)) {
        return mem_error(mr->ctx, -EINVAL, "ioeventfd on '%s': bad fd %d or size %u", nm(mr), fd,
                         size);
    }
    if (!mr->terminates || mr->ram || (Int128)addr + (size ? size : 1) > mr->size) {
        return mem_error(mr->ctx, -EINVAL,
                         "ioeventfd on '%s' at 0x%" PRIx64 ": not inside an I/O region", nm(mr),
                         addr);
    }
    if (find_eventfd(mr, addr, size, match_data, data, fd) >= 0) {
        return mem_error(mr->ctx, -EEXIST, "ioeventfd on '%s' at 0x%" PRIx64 ": already there",
                         nm(mr), addr);
    }
    MemoryRegionIoeventfd *e = realloc(mr->ioeventfds, (mr->nr_ioeventfds + 1) * sizeof(*e));
    if (!e) {
        return mem_error(mr->ctx, -ENOMEM, "ioeventfd on '%s': out of memory", nm(mr));
    }
    mr->ioeventfds = e;
    e[mr->nr_ioeventfds++] = (MemoryRegionIoeventfd){ addr, size, match_data, match_data ? data : 0,
                                                      fd };
    mr->ctx->nr_ioeventfds++;
    mr->ctx->ioeventfd_pending = true;
    mem_schedule_commit(mr->ctx);
    return 0;
}

int memory_region_del_eventfd(MemoryRegion *mr, uint64_t addr, unsigned size, bool match_data,
                              uint64_t data, int fd)
{
    long i = find_eventfd(mr, addr, size, match_data, data, fd);
    if (i < 0) {
        return mem_error(mr->ctx, -ENOENT, "ioeventfd on '%s' at 0x%" PRIx64 ": not found", nm(mr),
                         addr);
    }
    mr->ioeventfds[i] = mr->ioeventfds[--mr->nr_ioeventfds];
    mr->ctx->nr_ioeventfds--;
    mr->ctx->ioeventfd_pending = true;
    mem_schedule_commit(mr->ctx);
    return 0;
}

/* ---- The tree ------------------------------------------------------- */

/* Can `target` be reached from `from` through subregions and alias targets? */
static bool reaches(const MemoryRegion *from, const MemoryRegion *target, int depth)
{
    if (from == target) {
        return true;
    }
    if (depth > 4096) {
        return true; /* absurdly deep: treat as a cycle rather than recurse on */
    }
    if (from->alias && reaches(from->alias, target, depth + 1)) {
        return true;
    }
    for (unsigned i = 0; i < from->nr_subregions; i++) {
        if (reaches(from->subregions[i], target, depth + 1)) {
            return true;
        }
    }
    return false;
}

static int add_subregion_common(MemoryRegion *mr, uint64_t offset, MemoryRegion *sub,
                                bool may_overlap, int priority)
{
    if (!mr || !sub || !mr->initialized || !sub->initialized) {
        return mem_error(mr ? mr->ctx : NULL, -EINVAL, "add_subregion: uninitialised region");
    }
    MemoryContext *ctx = mr->ctx;
    if (sub->ctx != ctx) {
        return mem_error(ctx, -EINVAL, "add_subregion '%s' to '%s': different contexts", nm(sub),
                         nm(mr));
    }
    if (mr->alias) {
        return mem_error(ctx, -EINVAL, "add_subregion '%s': '%s' is an alias, not a container",
                         nm(sub), nm(mr));
    }
    if (sub->container) {
        return mem_error(ctx, -EBUSY, "add_subregion '%s' to '%s': already a subregion of '%s'",
                         nm(sub), nm(mr), nm(sub->container));
    }
    /* starting past the end is an error; reaching past it (or past 2^64)
     * is clipped when rendering (memory.h, "Differences") */
    if (offset >= mr->size) {
        return mem_error(ctx, -EINVAL, "add_subregion '%s' at 0x%" PRIx64 ": past the end of '%s'",
                         nm(sub), offset, nm(mr));
    }
    if (reaches(sub, mr, 0)) {
        return mem_error(ctx, -ELOOP, "add_subregion '%s' to '%s': would create a cycle", nm(sub),
                         nm(mr));
    }
    if (mr->nr_subregions == mr->subregions_cap) {
        unsigned cap = mr->subregions_cap ? mr->subregions_cap * 2 : 4;
        MemoryRegion **s = realloc(mr->subregions, cap * sizeof(*s));
        if (!s) {
            return mem_error(ctx, -ENOMEM, "add_subregion '%s': out of memory", nm(sub));
        }
        mr->subregions = s;
        mr->subregions_cap = cap;
    }
    bool old_overlap = sub->may_overlap;
    sub->may_overlap = may_overlap;
    MemoryRegion *o = find_overlap(mr, sub, offset);
    if (o) {
        sub->may_overlap = old_overlap;
        return mem_error(ctx, -EBUSY,
                         "add_subregion '%s' at 0x%" PRIx64 " in '%s': overlaps '%s'"
                         " (0x%" PRIx64 ", size 0x%" PRIx64 ")",
                         nm(sub), offset, nm(mr), nm(o), o->addr, memory_region_size(o));
    }
    sub->container = mr;
    sub->addr = offset;
    sub->priority = priority;
    insert_sorted(mr, sub);
    mem_note_region(sub);
    mem_schedule_commit(ctx);
    return 0;
}

int memory_region_add_subregion(MemoryRegion *mr, uint64_t offset, MemoryRegion *sub)
{
    return add_subregion_common(mr, offset, sub, false, 0);
}

int memory_region_add_subregion_overlap(MemoryRegion *mr, uint64_t offset, MemoryRegion *sub,
                                        int priority)
{
    return add_subregion_common(mr, offset, sub, true, priority);
}

int memory_region_del_subregion(MemoryRegion *mr, MemoryRegion *sub)
{
    if (!mr || !sub || sub->container != mr) {
        return mem_error(mr ? mr->ctx : NULL, -ENOENT,
                         "del_subregion '%s': not a subregion of '%s'", nm(sub), nm(mr));
    }
    mem_note_region(sub);
    remove_child(mr, sub);
    sub->container = NULL;
    mem_schedule_commit(mr->ctx);
    return 0;
}

void memory_region_transaction_begin(MemoryContext *ctx)
{
    ctx->depth++;
}

void memory_region_transaction_commit(MemoryContext *ctx)
{
    if (ctx->depth == 0) {
        mem_error(ctx, -EINVAL, "transaction_commit without begin");
        return;
    }
    if (--ctx->depth == 0 && (ctx->pending || ctx->ioeventfd_pending)) {
        memory_commit_all(ctx);
    }
}

/* ---- Address spaces --------------------------------------------------- */

AddressSpace *address_space_new(MemoryContext *ctx, MemoryRegion *root, const char *name)
{
    if (!ctx || !root || !root->initialized) {
        mem_error(ctx, -EINVAL, "address space '%s': no root region", name ? name : "");
        return NULL;
    }
    if (ctx->nr_as == ctx->cap_as) {
        size_t cap = ctx->cap_as ? ctx->cap_as * 2 : 4;
        AddressSpace **a = realloc(ctx->as, cap * sizeof(*a));
        if (!a) {
            return NULL;
        }
        ctx->as = a;
        ctx->cap_as = cap;
    }
    AddressSpace *as = calloc(1, sizeof(*as));
    if (!as || !(as->name = strdup(name ? name : ""))) {
        free(as);
        mem_error(ctx, -ENOMEM, "address space '%s': out of memory", name ? name : "");
        return NULL;
    }
    as->ctx = ctx;
    as->root = root;
    pthread_mutex_init(&as->lock, NULL);
    as->needs_full = true;
    /* empty until the (outermost) commit renders it */
    if (!(as->current = flatview_new(NULL))) {
        pthread_mutex_destroy(&as->lock);
        free(as->name);
        free(as);
        mem_error(ctx, -ENOMEM, "address space '%s': out of memory", name ? name : "");
        return NULL;
    }
    ctx->as[ctx->nr_as++] = as;
    mem_schedule_commit(ctx);
    return as;
}

const char *address_space_name(const AddressSpace *as)
{
    return as->name;
}

MemoryRegion *address_space_root(const AddressSpace *as)
{
    return as->root;
}

uint64_t address_space_unassigned_count(const AddressSpace *as)
{
    return __atomic_load_n(&as->unassigned, __ATOMIC_RELAXED);
}
