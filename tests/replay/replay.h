/* SPDX-License-Identifier: MIT */
/*
 * mtree-replay internals: a model of the region objects behind a parsed
 * `info mtree -D` dump (replay-model.c) and its construction through the
 * public memory API (replay-build.c).
 */
#ifndef STRATA_TESTS_REPLAY_H
#define STRATA_TESTS_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memory/memory.h"
#include "tests/replay/mtree-parse.h"

typedef __int128 s128;
typedef unsigned __int128 u128;

/* One region object (a printed region may be printed several times). */
typedef struct RObj RObj;
struct RObj {
    unsigned id;
    const MtpNode *node; /* first printing of it */
    const char *name;
    MtpType type;
    bool is_alias;
    RObj *target; /* aliases */
    uint64_t alias_offset;
    u128 size;     /* bytes, up to 2^64 */
    uint64_t addr; /* offset in its container */
    int32_t prio;
    bool disabled;
    bool terminates; /* i/o non-alias: has ops (inferred) */
    bool readonly;   /* aliases: set_readonly (inferred) */
    bool claimed;    /* is the object of a memory-region: section */
    bool as_root;
    bool dead;      /* merged into an identical object */
    unsigned visit; /* walk stamp */
    RObj *container;
    RObj **kids; /* subregions, printed order */
    RObj **list; /* subregions, list (precedence) order */
    unsigned nr_kids;
    /* replay-build.c */
    MemoryRegion *mr;
    int build_state; /* 0 new, 1 in progress, 2 initialised */
};

typedef struct RAs {
    const char *name;
    RObj *root;
} RAs;

typedef struct Model {
    const MtpDump *d;
    RObj **objs;
    unsigned nr_objs;
    RObj ***secmap; /* per section (tree kinds): node index -> object */
    RAs *as;
    unsigned nr_as;
    RObj **fv_as_root;       /* per section (FlatViews): root of one of its ASes */
    unsigned stamp;          /* last walk stamp */
    unsigned *twin_sections; /* memory-region: sections placed by merge_twins() */
    unsigned nr_twin_sections;
    uint64_t work; /* region visits spent by the model's walks */
    char **diag;   /* why the model may not reproduce the fixture */
    unsigned nr_diag;
    /* replay-build.c */
    AddressSpace **built_as;
    RObj **init_order; /* objects in the order they were initialised */
    unsigned nr_init;
} Model;

/*
 * Builds the object model of d (tree sections), inferring the facts the text
 * does not print from d's FlatView sections.  Returns 0, or -1 with err set
 * when d cannot describe a region tree.  Inference doubts go to m->diag.
 */
int model_build(Model *m, const MtpDump *d, char *err, size_t errlen);

/* True if the model's walks ran out of their work budget (hostile fan-out). */
bool model_too_complex(const Model *m);

/* Frees what model_build() and replay_build() allocated. */
void model_free(Model *m);

/* Adds a diagnostic line to m (printf-style). */
void model_diag(Model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Renders FlatView section fv of m->d with the model's own reference
 * semantics (QEMU's render_memory_region) and compares it with the printed
 * lines; returns 0 if identical, else -1 with a diagnostic added.
 */
int model_check_flatview(Model *m, const MtpSection *fv);

/* How replay_build() assembles the tree. */
typedef struct ReplayOpts {
    bool steps;       /* no enclosing transaction: every call commits */
    uint64_t shuffle; /* non-zero: seed of a random (but equivalent) call order */
} ReplayOpts;

/*
 * Creates every region of m in ctx through the public API, the address
 * spaces, and assembles the tree (inside one transaction unless o->steps).
 * Returns 0, or -1 with err set (naming the region and the API's last error).
 */
int replay_build(Model *m, MemoryContext *ctx, const ReplayOpts *o, char *err, size_t errlen);

/* Destroys the address spaces and regions replay_build() created. */
void replay_teardown(Model *m, MemoryContext *ctx);

typedef struct ReplayRunOpts {
    bool verbose; /* print the model's notes on PASS too */
    bool show;    /* print strata's output */
    ReplayOpts build;
} ReplayRunOpts;

/*
 * Replays one fixture text (len bytes) named name: writes "PASS name" or
 * "FAIL name" and the first differing lines to out (NULL: nothing); true
 * if strata's output matched.  Never crashes on malformed text.
 */
bool replay_run_text(const char *name, const char *text, size_t len, const ReplayRunOpts *o,
                     FILE *out);

/* A copy of text with a few random line-level edits (malloc()ed, NUL-terminated), or NULL. */
char *replay_mutate(const char *text, size_t len, uint64_t *rng, size_t *outlen);

#endif /* STRATA_TESTS_REPLAY_H */
