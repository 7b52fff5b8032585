/* SPDX-License-Identifier: MIT */
/*
 * Randomized differential test of memory/: random region trees built and
 * mutated through the public API (mostly inside nested transactions), checked
 * after every commit against a naive painter (ref_model.c), against
 * memory_context_check_flatviews(), and by random guest accesses.
 *
 *   random_memory [--seeds N] [--first-seed S] [--seed S] [--iterations N]
 *                 [--no-exact] [--strict-io] [--verbose]
 *
 * On failure it prints the seed, the iteration, what differed and the
 * operations that led there; `--seed S` replays exactly that run.
 */
#include "tests/random/random_memory.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t rnd(Model *m)
{
    uint64_t z = (m->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t rnd_below(Model *m, uint64_t n)
{
    return n ? rnd(m) % n : 0;
}

bool chance(Model *m, unsigned pct)
{
    return rnd_below(m, 100) < pct;
}

uint64_t size_arg(s128 size)
{
    return size >= S128_2_64 ? UINT64_MAX : (uint64_t)size;
}

void tr(Model *m, const char *fmt, ...)
{
    char *line = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&line, fmt, ap) < 0)
        line = NULL;
    va_end(ap);
    if (!line)
        return;
    if (m->verbose)
        fprintf(stderr, "  [%d] %s\n", m->iteration, line);
    if (m->ntrace == m->captrace) {
        m->captrace = m->captrace ? m->captrace * 2 : 256;
        m->trace = realloc(m->trace, m->captrace * sizeof(*m->trace));
        if (!m->trace)
            abort();
    }
    m->trace[m->ntrace++] = line;
}

static void trace_clear(Model *m)
{
    for (size_t i = 0; i < m->ntrace; i++)
        free(m->trace[i]);
    m->ntrace = 0;
}

void fail(Model *m, const char *fmt, ...)
{
    va_list ap;
    size_t first = m->ntrace > 80 ? m->ntrace - 80 : 0;
    fprintf(stderr, "random_memory: operations before the failure (last %zu of %zu):\n",
            m->ntrace - first, m->ntrace);
    for (size_t i = first; i < m->ntrace; i++)
        fprintf(stderr, "  %s\n", m->trace[i]);
    fprintf(stderr, "random_memory: FAIL seed %" PRIu64 " iteration %d: ", m->seed, m->iteration);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nreproduce: random_memory --seed %" PRIu64 " --iterations %d%s%s\n", m->seed,
            m->iteration + 1, m->exact ? "" : " --no-exact", m->strict_io ? " --strict-io" : "");
    fflush(stderr);
    _exit(1);
}

static RNodeSet node_set(Model *m)
{
    return (RNodeSet){ .nodes = m->nodes, .n = m->nnodes };
}

/* Prints the FlatView and the reference map of address space a. */
static void dump_views(Model *m, int a)
{
    FlatView *fv = address_space_get_flatview(m->as[a]);
    fprintf(stderr, "FlatView of %s:\n", address_space_name(m->as[a]));
    for (size_t i = 0; i < flatview_nr_ranges(fv); i++) {
        const FlatRange *fr = flatview_range(fv, i);
        fprintf(stderr, "  [%s, +%s) %s off 0x%" PRIx64 "%s\n", s128_str((s128)fr->start),
                s128_str((s128)fr->size), memory_region_name(fr->mr), fr->offset_in_region,
                fr->readonly ? " ro" : "");
    }
    flatview_unref(fv);
    fprintf(stderr, "reference:\n");
    const RMap *map = &m->map[a];
    for (size_t i = 0; i < map->nsegs; i++) {
        const RItem *it = map->segs[i].it;
        if (it)
            fprintf(stderr, "  [%s, %s) %s off %s%s\n", s128_str(map->segs[i].lo),
                    s128_str(map->segs[i].hi), memory_region_name(it->term->mr),
                    s128_str(map->segs[i].lo - it->origin), it->ro ? " ro" : "");
    }
    char *t = mtree_info_str(m->ctx, MTREE_DISABLED);
    fprintf(stderr, "info mtree -D:\n%s", t ? t : "(null)\n");
    free(t);
}

void check_unchanged(Model *m, const char *what)
{
    char err[512];
    for (int a = 0; a < 2; a++) {
        if (!m->as[a])
            continue;
        FlatView *fv = address_space_get_flatview(m->as[a]);
        int r = ref_compare(&m->map[a], fv, false, err, sizeof(err));
        flatview_unref(fv);
        if (r)
            fail(m, "%s: FlatView of %s changed before the outermost commit: %s", what,
                 address_space_name(m->as[a]), err);
    }
}

void verify(Model *m)
{
    char err[512];
    RNodeSet set = node_set(m);
    m->n_commits++;
    for (int a = 0; a < 2; a++) {
        m->n_items += ref_render(&set, m->root[a], &m->map[a]);
        if (!m->as[a])
            continue;
        FlatView *fv = address_space_get_flatview(m->as[a]);
        int r = ref_compare(&m->map[a], fv, m->exact, err, sizeof(err));
        flatview_unref(fv);
        if (r && m->verbose)
            dump_views(m, a);
        if (r)
            fail(m, "FlatView of %s differs from the reference: %s", address_space_name(m->as[a]),
                 err);
    }
    if (memory_context_check_flatviews(m->ctx) != 0)
        fail(m, "memory_context_check_flatviews: %s", memory_context_last_error(m->ctx));
    if (!m->as[0] || !m->as[1])
        return;
    random_accesses(m, 24);
    if (chance(m, 10))
        check_all_ram(m);
    if (chance(m, 3)) {
        char *s = mtree_info_str(m->ctx, (unsigned)rnd_below(m, 4));
        char *j = mtree_info_json(m->ctx);
        if (!s || !j)
            fail(m, "mtree_info_str/json returned NULL");
        free(s);
        free(j);
    }
}

static void make_address_spaces(Model *m)
{
    static const char *names[2] = { "as0", "as1" };
    for (int a = 0; a < 2; a++) {
        if (m->as[a])
            continue;
        m->as[a] = address_space_new(m->ctx, m->root[a]->mr, names[a]);
        tr(m, "address_space_new %s on %s -> %p", names[a], memory_region_name(m->root[a]->mr),
           (void *)m->as[a]);
        if (!m->as[a])
            fail(m, "address_space_new failed: %s", memory_context_last_error(m->ctx));
    }
}

static void one_iteration(Model *m)
{
    if (chance(m, 65)) {
        memory_region_transaction_begin(m->ctx);
        m->depth = 1;
        tr(m, "begin (depth 1)");
        unsigned n = 1 + (unsigned)rnd_below(m, 6);
        for (unsigned k = 0; k < n; k++) {
            if (chance(m, 15) && m->depth < 4) {
                memory_region_transaction_begin(m->ctx);
                tr(m, "begin (depth %d)", ++m->depth);
            } else if (chance(m, 15) && m->depth > 1) {
                memory_region_transaction_commit(m->ctx);
                tr(m, "commit (depth %d)", m->depth--);
            }
            mutate(m);
            check_unchanged(m, "inside a transaction");
        }
        while (m->depth > 1) {
            memory_region_transaction_commit(m->ctx);
            tr(m, "commit (depth %d)", m->depth--);
            check_unchanged(m, "inner commit");
        }
        memory_region_transaction_commit(m->ctx);
        tr(m, "commit (depth 1)");
        m->depth = 0;
    } else {
        mutate(m);
    }
    if (chance(m, 10))
        attach_some(m, 30);
    verify(m);
}

static void teardown(Model *m)
{
    if (m->verbose) {
        char *t = mtree_info_str(m->ctx, MTREE_DISABLED);
        fprintf(stderr, "final tree:\n%s", t ? t : "(null)\n");
        free(t);
    }
    for (int a = 0; a < 2; a++)
        if (m->as[a])
            address_space_destroy(m->as[a]);
    for (size_t i = 0; i < m->nnodes; i++) {
        RNode *n = m->nodes[i];
        if (n->parent) {
            int r = memory_region_del_subregion(n->parent->mr, n->mr);
            if (r)
                fail(m, "teardown: del_subregion(%s) -> %d", memory_region_name(n->mr), r);
            n->parent = NULL;
        }
    }
    while (m->nnodes) {
        bool progress = false;
        for (size_t i = 0; i < m->nnodes; i++) {
            RNode *n = m->nodes[i];
            if (n->alias_refs)
                continue;
            int r = memory_region_destroy(n->mr);
            if (r)
                fail(m, "teardown: destroy(%s) -> %d: %s", memory_region_name(n->mr), r,
                     memory_context_last_error(m->ctx));
            if (n->target)
                n->target->alias_refs--;
            node_free(m, n);
            progress = true;
            break;
        }
        if (!progress)
            fail(m, "teardown: alias references never drop to zero");
    }
    memory_context_free(m->ctx);
    ref_map_free(&m->map[0]);
    ref_map_free(&m->map[1]);
    trace_clear(m);
}

static void run_seed(Model *m, uint64_t seed, int iterations)
{
    m->seed = seed;
    m->rng = seed * 0xD1B54A32D192ED03ull + 1;
    m->iteration = -1;
    m->depth = 0;
    m->seq = 0;
    m->next_id = 0;
    m->as[0] = m->as[1] = NULL;
    m->ctx = memory_context_new();
    if (!m->ctx)
        fail(m, "memory_context_new failed");

    /* Two roots: the whole 64-bit space, and a second one of random size. */
    for (int a = 0; a < 2; a++) {
        m->force_size = a == 0 ? S128_2_64 : 0;
        RNode *r = node_create(m, RK_CONTAINER);
        m->force_size = 0;
        if (!r)
            fail(m, "cannot create the root container");
        r->is_root = true;
        m->root[a] = r;
    }
    bool early = chance(m, 50);
    if (early)
        make_address_spaces(m);
    m->iteration = 0;
    memory_region_transaction_begin(m->ctx);
    m->depth = 1;
    unsigned n0 = 10 + (unsigned)rnd_below(m, 20);
    for (unsigned i = 0; i < n0; i++) {
        static const enum rkind mix[] = { RK_CONTAINER, RK_CONTAINER, RK_CONTAINER, RK_RAM,
                                          RK_RAM_PTR,   RK_ROM,       RK_IO,        RK_IO,
                                          RK_IO_NULL,   RK_ROMDEV,    RK_ALIAS,     RK_ALIAS };
        node_create(m, mix[rnd_below(m, sizeof(mix) / sizeof(mix[0]))]);
    }
    for (int pass = 0; pass < 3; pass++)
        attach_some(m, 90);
    for (unsigned i = 0; i < n0; i++)
        mutate(m);
    memory_region_transaction_commit(m->ctx);
    m->depth = 0;
    tr(m, "initial commit");
    make_address_spaces(m);
    verify(m);

    for (m->iteration = 1; m->iteration < iterations; m->iteration++)
        one_iteration(m);
    check_all_ram(m);
    teardown(m);
}

int main(int argc, char **argv)
{
    uint64_t first = 1, count = 300;
    int iterations = 60;
    static Model model;
    Model *m = &model;
    m->exact = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--seed") && i + 1 < argc) {
            first = strtoull(argv[++i], NULL, 0);
            count = 1;
        } else if (!strcmp(a, "--first-seed") && i + 1 < argc) {
            first = strtoull(argv[++i], NULL, 0);
        } else if (!strcmp(a, "--seeds") && i + 1 < argc) {
            count = strtoull(argv[++i], NULL, 0);
        } else if (!strcmp(a, "--iterations") && i + 1 < argc) {
            iterations = atoi(argv[++i]);
        } else if (!strcmp(a, "--no-exact")) {
            m->exact = false;
        } else if (!strcmp(a, "--strict-io")) {
            m->strict_io = true;
        } else if (!strcmp(a, "--verbose")) {
            m->verbose = true;
        } else {
            fprintf(stderr,
                    "usage: %s [--seeds N] [--first-seed S] [--seed S] "
                    "[--iterations N] [--no-exact] [--strict-io] [--verbose]\n",
                    argv[0]);
            return 2;
        }
    }
    for (uint64_t s = first; s < first + count; s++) {
        if (m->verbose)
            fprintf(stderr, "seed %" PRIu64 "\n", s);
        run_seed(m, s, iterations);
    }
    free(m->trace);
    printf("random_memory: %" PRIu64 " seeds x %d iterations passed (%" PRIu64 " commits, %" PRIu64
           " painted extents, %" PRIu64 " accesses, %" PRIu64 " API results asserted, %" PRIu64
           " widened device bytes tolerated)\n",
           count, iterations, m->n_commits, m->n_items, m->n_accesses, m->n_errors_checked,
           m->n_widened);
    return 0;
}
