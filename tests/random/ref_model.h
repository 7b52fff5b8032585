/* SPDX-License-Identifier: MIT */
/*
 * A naive, independent model of the memory-region tree and of what an
 * address space shows, used by the randomized differential test.
 *
 * The model mirrors every successful API call.  Rendering enumerates each
 * terminal region's visible extent (clipped by every container and alias
 * window on the way down), orders them by visibility, and paints them from
 * the least visible up onto a coordinate-compressed map whose breakpoints are
 * the extents' ends.  Nothing here knows how memory/ renders.
 */
#ifndef STRATA_TESTS_RANDOM_REF_MODEL_H
#define STRATA_TESTS_RANDOM_REF_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memory/memory.h"

typedef __int128 s128;
#define S128_2_64 ((s128)1 << 64)

enum rkind {
    RK_CONTAINER,
    RK_RAM,     /* memory_region_init_ram */
    RK_RAM_PTR, /* memory_region_init_ram_ptr */
    RK_ROM,     /* memory_region_init_rom */
    RK_IO,      /* init_io with recording ops */
    RK_IO_NULL, /* init_io with NULL ops */
    RK_ROMDEV,  /* init_rom_device */
    RK_ALIAS,
};

struct Model;

typedef struct RNode RNode;
struct RNode {
    struct Model *model;
    MemoryRegion *mr;
    int id;
    enum rkind kind;
    s128 size;     /* 1 .. 2^64 */
    RNode *parent; /* container, NULL if detached */
    uint64_t addr; /* offset inside parent */
    int32_t priority;
    bool overlap; /* added with add_subregion_overlap */
    uint64_t seq; /* order of (re)insertion: newer wins ties */
    bool enabled;
    bool readonly;    /* set_readonly(true) on RAM or alias */
    bool nonvolatile; /* set_nonvolatile(true) */
    bool romd;        /* rom_device readable */
    RNode *target;    /* alias target */
    uint64_t alias_off;
    int alias_refs;  /* live aliases pointing here */
    uint8_t *shadow; /* expected memory contents (RAM/ROM/ROMDEV) */
    void *ptrbuf;    /* caller memory of RK_RAM_PTR */
    uint64_t legacy; /* memory_region_set_offset value */
    int ops_variant; /* 0: free-form ops, 1: impl 1..4 aligned */
    bool is_root;
};

/* One terminal region's visible extent [lo, hi); byte x shows term at
 * offset x - origin. */
typedef struct RItem {
    s128 lo, hi, origin;
    RNode *term;
    bool ro;   /* readonly along the path (or a ROM) */
    bool romd; /* term->romd when rendered */
    bool nv;   /* non-volatile along the path */
} RItem;

/* A piece of the painted map; it == NULL means unassigned. */
typedef struct RSeg {
    s128 lo, hi;
    const RItem *it;
} RSeg;

typedef struct RMap {
    RItem *items;
    size_t nitems, capitems;
    RSeg *segs; /* covers [0, 2^64) without gaps */
    size_t nsegs, capsegs;
    s128 *bps;
    size_t capbps;
} RMap;

/* Lists the live nodes for the renderer (children are found by scanning). */
typedef struct RNodeSet {
    RNode **nodes;
    size_t n;
} RNodeSet;

/* Renders what an address space rooted at root shows into map (reusing its
 * buffers).  Returns the number of painted items. */
size_t ref_render(const RNodeSet *set, RNode *root, RMap *map);
/* Frees the buffers of map. */
void ref_map_free(RMap *map);
/* The segment containing addr (always exists). */
const RSeg *ref_lookup(const RMap *map, uint64_t addr);
/* Compares fv with map: the address -> (region, offset, readonly, romd) map
 * must agree everywhere, flatview_lookup must agree, and if exact, the
 * ranges must be the map's pieces merged by QEMU's rule.  0 if equal, else
 * -1 with a description in err. */
int ref_compare(const RMap *map, FlatView *fv, bool exact, char *err, size_t errlen);
/* Formats a 128-bit value below 2^65 as hex (into a static ring buffer). */
const char *s128_str(s128 v);

#endif
