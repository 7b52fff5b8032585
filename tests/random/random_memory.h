/* SPDX-License-Identifier: MIT */
/*
 * Shared state of the randomized differential test of memory/: the model
 * (mirror of the tree), the random source, the recorders the I/O callbacks
 * write into, and the failure/trace helpers.
 */
#ifndef STRATA_TESTS_RANDOM_RANDOM_MEMORY_H
#define STRATA_TESTS_RANDOM_RANDOM_MEMORY_H

#include "tests/random/ref_model.h"

#define MAX_NODES 40
#define MAX_ALIASES 8
#define MAX_ACCESS 64
#define MAX_RECORDS 1024

typedef struct ByteRec {
    int id;       /* RNode id */
    uint64_t off; /* region-relative offset (legacy offset removed) */
    uint8_t byte;
} ByteRec;

typedef struct CallRec {
    int id;
    uint64_t addr; /* as passed to the callback */
    unsigned size;
    bool write;
} CallRec;

typedef struct Model {
    MemoryContext *ctx;
    uint64_t rng;
    uint64_t seed;
    int iteration;
    int depth;  /* transaction depth we opened */
    bool exact; /* also compare the exact range split */
    bool verbose;
    bool strict_io;  /* no widened device accesses tolerated */
    s128 force_size; /* if non-zero, the next container's size */

    RNode *nodes[MAX_NODES];
    size_t nnodes;
    int next_id;
    uint64_t seq;

    RNode *root[2];
    AddressSpace *as[2];
    RMap map[2];

    CallRec calls[MAX_RECORDS];
    size_t ncalls;
    ByteRec rbytes[MAX_RECORDS], wbytes[MAX_RECORDS];
    size_t nr, nw;
    char violation[256];

    char **trace;
    size_t ntrace, captrace;

    /* statistics */
    uint64_t n_commits, n_accesses, n_errors_checked, n_items, n_widened;
} Model;

/* Next pseudo-random 64-bit value (splitmix64). */
uint64_t rnd(Model *m);
/* Uniform in [0, n); n > 0. */
uint64_t rnd_below(Model *m, uint64_t n);
/* True with probability pct/100. */
bool chance(Model *m, unsigned pct);
/* Appends a line to the operation trace of the current seed. */
void tr(Model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the failure, the seed and the trace, and exits with status 1. */
void fail(Model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* The size argument an init function takes for a size (2^64 -> UINT64_MAX). */
uint64_t size_arg(s128 size);

/* Creates a region of a random kind (detached); NULL if none was made. */
RNode *node_create(Model *m, enum rkind kind);
/* Frees a node whose region was destroyed (or never initialised). */
void node_free(Model *m, RNode *n);
/* Applies one random mutation through the API and mirrors it. */
void mutate(Model *m);
/* Tries to attach each detached region with probability pct%. */
void attach_some(Model *m, unsigned pct);
/* Renders the reference, compares FlatViews, runs check_flatviews and
 * random accesses; fails the test on any mismatch. */
void verify(Model *m);
/* Checks that the FlatViews still equal the maps of the last commit. */
void check_unchanged(Model *m, const char *what);
/* Random reads and writes through both address spaces. */
void random_accesses(Model *m, unsigned count);
/* Compares every RAM-backed region's memory with its shadow. */
void check_all_ram(Model *m);

#endif
