/* SPDX-License-Identifier: MIT */
/*
 * strata memory-region API.
 *
 * Modelled on QEMU's 2011 memory.h: a tree of RAM, ROM, I/O, alias and
 * container regions, flattened into a FlatView per address space at every
 * (outermost) transaction commit, with listeners that are told only what
 * changed (docs/architecture.md follows a commit through to KVM).
 * Differences from that API:
 *   - every region belongs to an explicit MemoryContext (one per VM); the
 *     transaction depth, address spaces and listeners hang off it, so there
 *     is no global state;
 *   - functions that can fail return 0 or a negative errno and leave the tree
 *     unchanged; memory_context_last_error() names the regions involved;
 *   - a size of UINT64_MAX passed to an init function means 2^64 (the whole
 *     64-bit space), as in QEMU; sizes reported back use Int128;
 *   - set_dirty/get_dirty take a size (as QEMU does after 2011);
 *   - a subregion placed at or past its container's end is refused (one
 *     that only reaches past the end, or past 2^64, is clipped);
 *   - an address space shows its root's byte 0 at address 0, and FlatViews
 *     are shared between address spaces by QEMU's root-sharing rule except
 *     through a read-only or non-volatile alias/container (whose flag QEMU
 *     would lose);
 *   - an access widened or split for ops->impl never reaches past the
 *     region's end when a smaller unit (down to impl.min) fits.
 *
 * Threading: all tree mutations, transactions and listener callbacks happen
 * on one thread (the VMM's main loop).  address_space_read/write and
 * address_space_lookup may run concurrently on other threads (vCPUs): they
 * work on an immutable, reference-counted FlatView.
 *
 * memory/ depends on libc only.
 */
#ifndef STRATA_MEMORY_H
#define STRATA_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef unsigned __int128 Int128; /* sizes up to and including 2^64 */
#define INT128_2_64 ((Int128)1 << 64)

typedef struct MemoryContext MemoryContext;
typedef struct MemoryRegion MemoryRegion;
typedef struct AddressSpace AddressSpace;
typedef struct FlatView FlatView;
typedef struct MemoryListener MemoryListener;

enum device_endian {
    DEVICE_NATIVE_ENDIAN = 0, /* the target's: little endian (x86) */
    DEVICE_BIG_ENDIAN,
    DEVICE_LITTLE_ENDIAN,
};

/* Dirty-log clients (bit numbers in a dirty mask). */
enum {
    DIRTY_MEMORY_VGA = 0,
    DIRTY_MEMORY_CODE = 1,
    DIRTY_MEMORY_MIGRATION = 3,
    DIRTY_MEMORY_NUM = 4,
};
#define MEMORY_PAGE_SIZE 4096u
#define MEMORY_PAGE_SHIFT 12

/* Result of a dispatched access. */
typedef enum {
    MEMTX_OK = 0,
    MEMTX_ERROR = 1,        /* rejected by ops->valid; device not called */
    MEMTX_DECODE_ERROR = 2, /* unassigned: reads all-ones, write dropped */
} MemTxResult;

typedef struct MemoryRegionOps {
    /* addr is relative to the region (plus the legacy offset); size in bytes */
    uint64_t (*read)(void *opaque, uint64_t addr, unsigned size);
    void (*write)(void *opaque, uint64_t addr, uint64_t data, unsigned size);
    enum device_endian endianness;
    struct {
        /* What the guest may do.  0 = 1 for min; 0 = no bound for max. */
        unsigned min_access_size;
        unsigned max_access_size;
        bool unaligned;
    } valid;
    struct {
        /* What the callbacks implement.  0 = 1 for min, 0 = 4 for max. */
        unsigned min_access_size;
        unsigned max_access_size;
        bool unaligned;
    } impl;
} MemoryRegionOps;

typedef struct CoalescedRange {
    uint64_t addr; /* offset inside the region */
    uint64_t size;
} CoalescedRange;

typedef struct MemoryRegionIoeventfd {
    uint64_t addr; /* offset inside the region */
    uint64_t size; /* access size in bytes; 0 = any */
    bool match_data;
    uint64_t data;
    int fd;
} MemoryRegionIoeventfd;

/*
 * A region.  Callers allocate it (usually embedded in a device struct) and
 * initialise it with one of the memory_region_init* functions; every field is
 * private to memory/ and must be read through the accessors below.
 */
struct MemoryRegion {
    MemoryContext *ctx;
    const MemoryRegionOps *ops;
    void *opaque;
    MemoryRegion *container;
    Int128 size;
    uint64_t addr;   /* offset inside the container */
    uint64_t offset; /* legacy: added to addresses passed to ops */
    void *ram_block; /* host memory of RAM / ROM / rom_device */
    bool ram_owned;  /* ram_block was mmap()ed by us */
    bool initialized;
    bool ram;
    bool rom_device;
    bool romd_mode; /* rom_device: reads served from memory */
    bool readonly;
    bool terminates; /* has ops or memory (not a pure container) */
    bool enabled;
    bool may_overlap;
    bool nonvolatile;
    MemoryRegion *alias;
    uint64_t alias_offset;
    unsigned alias_refs;       /* aliases currently pointing here */
    MemoryRegion **aliased_by; /* those aliases (for change windows) */
    unsigned aliased_by_cap;
    int32_t priority;
    MemoryRegion **subregions; /* highest priority first; newest first on ties */
    unsigned nr_subregions, subregions_cap;
    CoalescedRange *coalesced;
    unsigned nr_coalesced;
    MemoryRegionIoeventfd *ioeventfds;
    unsigned nr_ioeventfds;
    char *name;
    char *owner; /* migration identity: owner/name */
    uint8_t dirty_log_mask;
    unsigned long *dirty[DIRTY_MEMORY_NUM];
    uint64_t dirty_pages; /* bits per dirty bitmap */
    unsigned nr_mappings; /* FlatView ranges (over all ASes) showing mr */
};

/* One piece of a FlatView: [start, start+size) shows mr at offset_in_region. */
typedef struct FlatRange {
    uint64_t start;
    Int128 size;
    MemoryRegion *mr;
    uint64_t offset_in_region;
    uint8_t dirty_log_mask;
    bool romd_mode;
    bool readonly;
    bool nonvolatile;
} FlatRange;

/* What a listener is told about: a part of a region mapped into an AS. */
typedef struct MemoryRegionSection {
    MemoryRegion *mr;
    AddressSpace *as;
    uint64_t offset_within_region;
    uint64_t offset_within_address_space;
    Int128 size;
    bool readonly;
    bool romd_mode;
} MemoryRegionSection;

/*
 * A listener of one address space.  Callbacks may be NULL.  At each commit
 * that changes the AS, it gets begin, then region_del for ranges that went
 * away, then region_add for new ones and region_nop / log_start / log_stop
 * for ranges that stayed (nop only if nothing about them changed), eventfd
 * and coalesced changes, then commit.
 */
struct MemoryListener {
    void (*begin)(MemoryListener *l);
    void (*commit)(MemoryListener *l);
    void (*region_add)(MemoryListener *l, MemoryRegionSection *s);
    void (*region_del)(MemoryListener *l, MemoryRegionSection *s);
    void (*region_nop)(MemoryListener *l, MemoryRegionSection *s);
    void (*log_start)(MemoryListener *l, MemoryRegionSection *s, int old_mask, int new_mask);
    void (*log_stop)(MemoryListener *l, MemoryRegionSection *s, int old_mask, int new_mask);
    /* asked by memory_region_sync_dirty_bitmap(): pull dirty pages of s */
    void (*log_sync)(MemoryListener *l, MemoryRegionSection *s);
    /* s->offset_within_address_space is the absolute address, s->size the
     * access size (0 = any) */
    void (*eventfd_add)(MemoryListener *l, MemoryRegionSection *s, bool match_data, uint64_t data,
                        int fd);
    void (*eventfd_del)(MemoryListener *l, MemoryRegionSection *s, bool match_data, uint64_t data,
                        int fd);
    /* addr/len: an absolute coalesced range inside section s.  A del covers
     * the whole section: drop every zone inside [addr, addr+len). */
    void (*coalesced_add)(MemoryListener *l, MemoryRegionSection *s, uint64_t addr, uint64_t len);
    void (*coalesced_del)(MemoryListener *l, MemoryRegionSection *s, uint64_t addr, uint64_t len);
    /* private */
    AddressSpace *as;
    MemoryListener *next;
};

/* ---- Context ---------------------------------------------------------- */

/* A fresh per-VM memory context, or NULL on allocation failure. */
MemoryContext *memory_context_new(void);
/* Frees the context; address spaces must have been destroyed first. */
void memory_context_free(MemoryContext *ctx);
/* The message of the last failed call on ctx ("" if none). */
const char *memory_context_last_error(const MemoryContext *ctx);
/* Number of commits that actually re-rendered some FlatView (statistics). */
uint64_t memory_context_render_count(const MemoryContext *ctx);

/* ---- Building regions ------------------------------------------------- */

/* A pure container of `size` bytes (UINT64_MAX = 2^64). */
int memory_region_init(MemoryRegion *mr, MemoryContext *ctx, const char *name, uint64_t size);
/* An I/O region whose accesses call ops (ops may be NULL: reads all-ones). */
int memory_region_init_io(MemoryRegion *mr, MemoryContext *ctx, const MemoryRegionOps *ops,
                          void *opaque, const char *name, uint64_t size);
/* RAM allocated by the region (zeroed, page aligned). owner may be NULL. */
int memory_region_init_ram(MemoryRegion *mr, MemoryContext *ctx, const char *owner,
                           const char *name, uint64_t size);
/* RAM backed by caller memory of at least `size` bytes. */
int memory_region_init_ram_ptr(MemoryRegion *mr, MemoryContext *ctx, const char *owner,
                               const char *name, uint64_t size, void *ptr);
/* Read-only RAM: guest writes are dropped. */
int memory_region_init_rom(MemoryRegion *mr, MemoryContext *ctx, const char *owner,
                           const char *name, uint64_t size);
/* A window of `size` bytes onto orig, starting at orig's byte `offset`. */
int memory_region_init_alias(MemoryRegion *mr, MemoryContext *ctx, const char *name,
                             MemoryRegion *orig, uint64_t offset, uint64_t size);
/* ROM whose reads come from memory while readable (the default) and whose
 * writes call ops. */
int memory_region_init_rom_device(MemoryRegion *mr, MemoryContext *ctx, const MemoryRegionOps *ops,
                                  void *opaque, const char *owner, const char *name, uint64_t size);
/* Frees mr's resources; fails (-EBUSY) while it is mapped, has subregions,
 * or is the target of an alias. */
int memory_region_destroy(MemoryRegion *mr);

/* ---- Queries and attributes ------------------------------------------ */

/* Size in bytes; UINT64_MAX for a 2^64 region. */
uint64_t memory_region_size(const MemoryRegion *mr);
/* Exact size (2^64 representable). */
Int128 memory_region_size128(const MemoryRegion *mr);
/* Region name as given at init. */
const char *memory_region_name(const MemoryRegion *mr);
/* Host pointer of a RAM/ROM/rom_device region (resolving aliases), else NULL. */
void *memory_region_get_ram_ptr(MemoryRegion *mr);
/* True for RAM, ROM and rom_device regions. */
bool memory_region_is_ram(const MemoryRegion *mr);
/* True for a region made with memory_region_init_rom_device. */
bool memory_region_is_rom_device(const MemoryRegion *mr);
/* True for a rom_device currently serving reads from memory. */
bool memory_region_is_romd(const MemoryRegion *mr);
/* Deprecated: constant added to the address passed to ops. */
void memory_region_set_offset(MemoryRegion *mr, uint64_t offset);
/* RAM becomes ROM (guest writes dropped) or back; also valid on aliases. */
void memory_region_set_readonly(MemoryRegion *mr, bool readonly);
/* rom_device: reads from memory (true) or through ops->read (false). */
void memory_region_rom_device_set_readable(MemoryRegion *mr, bool readable);
/* Mark a region non-volatile (printed `nv-` in info mtree, as QEMU's nvdimm). */
void memory_region_set_nonvolatile(MemoryRegion *mr, bool nonvolatile);
/* Show or hide a region without removing it from its container. */
void memory_region_set_enabled(MemoryRegion *mr, bool enabled);
/* Move a region inside its container; -EINVAL (tree unchanged) if that
 * would overlap a non-overlapping sibling or leave the container. */
int memory_region_set_address(MemoryRegion *mr, uint64_t addr);
/* Change the window of an alias; -EINVAL if not an alias. */
int memory_region_set_alias_offset(MemoryRegion *mr, uint64_t offset);
/* Container of mr, or NULL. */
MemoryRegion *memory_region_get_container(const MemoryRegion *mr);

/* ---- Dirty logging (RAM regions, 4 KiB pages) ------------------------- */

/* Start/stop logging for one client; -EINVAL if mr is not RAM. */
int memory_region_set_log(MemoryRegion *mr, bool log, unsigned client);
/* Was any page in [addr, addr+size) written since the last reset for client? */
bool memory_region_get_dirty(MemoryRegion *mr, uint64_t addr, uint64_t size, unsigned client);
/* Mark [addr, addr+size) dirty for every client that logs mr. */
void memory_region_set_dirty(MemoryRegion *mr, uint64_t addr, uint64_t size);
/* Merge a little-endian page bitmap (bit i = page at offset+i*4K) into every
 * logging client's bitmap; used by accelerators' log_sync. */
void memory_region_set_dirty_bitmap(MemoryRegion *mr, uint64_t offset, const uint64_t *bitmap,
                                    uint64_t npages);
/* Ask listeners (log_sync) to pull dirty pages of mr into its bitmaps. */
void memory_region_sync_dirty_bitmap(MemoryRegion *mr);
/* Mark [addr, addr+size) clean for one client. */
void memory_region_reset_dirty(MemoryRegion *mr, uint64_t addr, uint64_t size, unsigned client);
/* Moves one client's marks of the npages pages from addr's page into
 * bitmap (bit i, 64 to a word: page addr/4K + i), clearing them in mr:
 * the get and reset of every page at once, a word at a time (atomic
 * exchanges) where the first page is a multiple of 64.  Pages past mr's
 * end are left alone.  Returns how many bits it newly set in bitmap. */
uint64_t memory_region_take_dirty(MemoryRegion *mr, uint64_t addr, uint64_t npages, unsigned client,
                                  uint64_t *bitmap);
/* Current client mask of mr (bit n = client n logs it). */
uint8_t memory_region_get_dirty_log_mask(const MemoryRegion *mr);

/* ---- Coalescing and ioeventfds --------------------------------------- */

/* All writes to the region may be coalesced. */
int memory_region_set_coalescing(MemoryRegion *mr);
/* Writes to [offset, offset+size) of the region may be coalesced. */
int memory_region_add_coalescing(MemoryRegion *mr, uint64_t offset, uint64_t size);
/* Undo set/add_coalescing. */
void memory_region_clear_coalescing(MemoryRegion *mr);
/* Guest writes of `size` bytes at addr (matching data if match_data) signal
 * fd instead of calling ops->write.  -EEXIST if already there. */
int memory_region_add_eventfd(MemoryRegion *mr, uint64_t addr, unsigned size, bool match_data,
                              uint64_t data, int fd);
/* Remove what add_eventfd added with the same arguments; -ENOENT if absent. */
int memory_region_del_eventfd(MemoryRegion *mr, uint64_t addr, unsigned size, bool match_data,
                              uint64_t data, int fd);

/* ---- The tree ------------------------------------------------------- */

/* Place sub at offset in container mr; must not overlap non-overlap siblings. */
int memory_region_add_subregion(MemoryRegion *mr, uint64_t offset, MemoryRegion *sub);
/* Place sub at offset with a priority; may overlap siblings. */
int memory_region_add_subregion_overlap(MemoryRegion *mr, uint64_t offset, MemoryRegion *sub,
                                        int priority);
/* Remove sub from its container mr; -ENOENT if it is not mr's child. */
int memory_region_del_subregion(MemoryRegion *mr, MemoryRegion *sub);
/* Start a (nestable) transaction. */
void memory_region_transaction_begin(MemoryContext *ctx);
/* End one; the outermost commit updates FlatViews and tells listeners. */
void memory_region_transaction_commit(MemoryContext *ctx);

/* ---- Address spaces --------------------------------------------------- */

/* A new address space rooted at root (rendered at once), or NULL. */
AddressSpace *address_space_new(MemoryContext *ctx, MemoryRegion *root, const char *name);
/* Remove and free an address space (listeners get region_del for all). */
void address_space_destroy(AddressSpace *as);
/* Name given at creation. */
const char *address_space_name(const AddressSpace *as);
/* Root region. */
MemoryRegion *address_space_root(const AddressSpace *as);
/* Count of accesses that hit unassigned space. */
uint64_t address_space_unassigned_count(const AddressSpace *as);

/* Current FlatView with a reference held (thread safe); release with unref. */
FlatView *address_space_get_flatview(AddressSpace *as);
/* Take/drop a reference. */
void flatview_ref(FlatView *fv);
void flatview_unref(FlatView *fv);
/* Number of ranges, and range i (sorted by address, non-overlapping). */
size_t flatview_nr_ranges(const FlatView *fv);
const FlatRange *flatview_range(const FlatView *fv, size_t i);
/* The region the FlatView was rendered from (may differ from the AS root
 * when QEMU's root-sharing rules apply), or NULL if nothing is visible. */
MemoryRegion *flatview_root(const FlatView *fv);
/* Range containing addr, or NULL (O(log n), no allocation). */
const FlatRange *flatview_lookup(const FlatView *fv, uint64_t addr);

/* Listener registration; the listener is replayed the current state. */
void memory_listener_register(MemoryListener *l, AddressSpace *as);
void memory_listener_unregister(MemoryListener *l);

/* ---- Dispatch -------------------------------------------------------- */

/* Guest-visible access of len bytes (any length; 1/2/4/8 are single
 * accesses, longer buffers are split) in little-endian byte order. */
MemTxResult address_space_read(AddressSpace *as, uint64_t addr, void *buf, uint64_t len);
MemTxResult address_space_write(AddressSpace *as, uint64_t addr, const void *buf, uint64_t len);
/* The same against an explicit FlatView (no reference taken). */
MemTxResult flatview_read(FlatView *fv, AddressSpace *as, uint64_t addr, void *buf, uint64_t len);
MemTxResult flatview_write(FlatView *fv, AddressSpace *as, uint64_t addr, const void *buf,
                           uint64_t len);
/* One access of size 1/2/4/8 to a terminal region at offset addr
 * (honours valid/impl/endianness/eventfds).  Value is the guest's. */
MemTxResult memory_region_dispatch_read(MemoryRegion *mr, uint64_t addr, uint64_t *data,
                                        unsigned size);
MemTxResult memory_region_dispatch_write(MemoryRegion *mr, uint64_t addr, uint64_t data,
                                         unsigned size);

/* ---- info mtree ------------------------------------------------------ */

enum {
    MTREE_FLATVIEW = 1 << 0, /* info mtree -f */
    MTREE_DISABLED = 1 << 1, /* -D: include disabled regions */
};
/* QEMU 7.2's `info mtree` text for ctx; returns a malloc()ed string. */
char *mtree_info_str(MemoryContext *ctx, unsigned flags);
/* The same, written to f. */
void mtree_info(MemoryContext *ctx, unsigned flags, FILE *f);
/* The tree, the FlatViews (and nothing else) as a JSON object; malloc()ed. */
char *mtree_info_json(MemoryContext *ctx);

/* ---- Testing aids ---------------------------------------------------- */

/* Re-render every FlatView from scratch and compare with the incrementally
 * maintained ones; 0 if identical, -1 (and last_error says where) if not. */
int memory_context_check_flatviews(MemoryContext *ctx);

#ifdef __cplusplus
}
#endif
#endif /* STRATA_MEMORY_H */
