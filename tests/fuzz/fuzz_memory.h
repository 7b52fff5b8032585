/* SPDX-License-Identifier: MIT */
/*
 * Shared parts of the memory/ fuzz target: the checking listener (its view,
 * region_add minus region_del, must equal the FlatView) and helpers.
 */
#ifndef STRATA_TESTS_FUZZ_FUZZ_MEMORY_H
#define STRATA_TESTS_FUZZ_FUZZ_MEMORY_H

#include "memory/memory.h"

#define MAX_SECTIONS 1024

/* FUZZ_SKIP_KNOWN=1: steer around bugs listed in known-bugs/. */
extern bool g_skip_known;

typedef struct Section {
    uint64_t start;
    Int128 size;
    MemoryRegion *mr;
    uint64_t offset;
    bool readonly;
} Section;

typedef struct Listener {
    MemoryListener l; /* first: callbacks get &l */
    bool registered;
    int as_index;
    Section live[MAX_SECTIONS];
    size_t nlive;
    unsigned depth; /* inside begin..commit */
} Listener;

/* Resets L and points its callbacks at the checking ones. */
void listener_init(Listener *L);
/* Aborts unless a registered listener's sections equal as's FlatView. */
void check_listener(Listener *L, AddressSpace *as);
/* The current FlatView of as (referenced); aborts on NULL unless
 * g_skip_known, where it returns NULL. */
FlatView *fuzz_get_flatview(AddressSpace *as);

#endif
