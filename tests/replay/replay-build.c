/* SPDX-License-Identifier: MIT */
/*
 * Builds a Model's regions through memory/memory.h's public API only.
 *
 * Subregion lists are priority-descending with the newest region first
 * among equal priorities, so each container's children are added in the
 * reverse of the model's list order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/replay/replay.h"

static uint64_t dummy_read(void *opaque, uint64_t addr, unsigned size)
{
    return 0;
}

static void dummy_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
}

static const MemoryRegionOps dummy_ops = {
    .read = dummy_read,
    .write = dummy_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
};

/* The API's spelling of a size: UINT64_MAX is 2^64. */
static uint64_t api_size(u128 size)
{
    return size >= INT128_2_64 ? UINT64_MAX : (uint64_t)size;
}

static int api_fail(MemoryContext *ctx, const RObj *o, const char *what, int rc, char *err,
                    size_t errlen)
{
    snprintf(err, errlen, "line %u: %s '%s' failed: %s (%s)", o->node->line, what, o->name,
             strerror(rc < 0 ? -rc : rc), memory_context_last_error(ctx));
    return -1;
}

static int init_obj(Model *m, MemoryContext *ctx, RObj *o, char *err, size_t errlen)
{
    char owner[32];
    uint64_t size = api_size(o->size);
    int rc;

    if (o->build_state == 2) {
        return 0;
    }
    if (o->build_state == 1) {
        snprintf(err, errlen, "line %u: alias '%s' is part of an alias loop", o->node->line,
                 o->name);
        return -1;
    }
    o->build_state = 1;
    if (o->is_alias && init_obj(m, ctx, o->target, err, errlen) < 0) {
        return -1;
    }
    o->mr = calloc(1, sizeof(*o->mr));
    if (!o->mr) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* the (owner, name) pair of RAM must be unique; names in QEMU's dump are not */
    snprintf(owner, sizeof(owner), "replay%u", o->id);
    if (o->is_alias) {
        rc = memory_region_init_alias(o->mr, ctx, o->name, o->target->mr, o->alias_offset, size);
    } else {
        switch (o->type) {
        case MTP_RAM:
        case MTP_RAMD:
            rc = memory_region_init_ram(o->mr, ctx, owner, o->name, size);
            break;
        case MTP_ROM:
            rc = memory_region_init_rom(o->mr, ctx, owner, o->name, size);
            break;
        case MTP_ROMD:
            rc = memory_region_init_rom_device(o->mr, ctx, &dummy_ops, o, owner, o->name, size);
            break;
        case MTP_IO:
        default:
            if (o->terminates) {
                rc = memory_region_init_io(o->mr, ctx, &dummy_ops, o, o->name, size);
            } else {
                rc = memory_region_init(o->mr, ctx, o->name, size);
            }
            break;
        }
    }
    if (rc < 0) {
        free(o->mr);
        o->mr = NULL;
        return api_fail(ctx, o, "init of", rc, err, errlen);
    }
    o->build_state = 2;
    m->init_order[m->nr_init++] = o;
    return 0;
}

/*
 * A region without a container still prints its own address and priority
 * (QEMU keeps them after del_subregion); give them to it through a scratch
 * container.
 */
static int place_loose(MemoryContext *ctx, RObj *o, char *err, size_t errlen)
{
    MemoryRegion tmp;
    int rc;

    if (o->container || (o->addr == 0 && o->prio == 0)) {
        return 0;
    }
    memset(&tmp, 0, sizeof(tmp));
    rc = memory_region_init(&tmp, ctx, "replay-scratch", UINT64_MAX);
    if (rc < 0) {
        return api_fail(ctx, o, "scratch container for", rc, err, errlen);
    }
    rc = memory_region_add_subregion_overlap(&tmp, o->addr, o->mr, o->prio);
    if (rc == 0) {
        rc = memory_region_del_subregion(&tmp, o->mr);
    }
    memory_region_destroy(&tmp);
    if (rc < 0) {
        return api_fail(ctx, o, "placing loose region", rc, err, errlen);
    }
    return 0;
}

static uint64_t next_rand(uint64_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 7;
    *st ^= *st << 17;
    return *st;
}

/*
 * The order in which to add o's subregions so that its list ends up as
 * o->list: reverse list order inside each priority (newest goes first);
 * priorities interleaved at random when shuffling.
 */
static void add_order(const RObj *o, RObj **out, uint64_t *rng)
{
    unsigned n = o->nr_kids, i, left = n, r, f;

    for (i = 0; i < n; i++) {
        out[i] = o->list[n - 1 - i];
    }
    if (!rng) {
        return;
    }
    /* out[0..n-left) is final; pick any remaining one whose priority's earlier ones are out */
    for (i = 0; i < n; i++, left--) {
        RObj *pick;

        r = i + (unsigned)(next_rand(rng) % left);
        for (f = i; out[f]->prio != out[r]->prio; f++) {
        }
        pick = out[f];
        memmove(&out[i + 1], &out[i], (f - i) * sizeof(*out));
        out[i] = pick;
    }
}

int replay_build(Model *m, MemoryContext *ctx, const ReplayOpts *opts, char *err, size_t errlen)
{
    uint64_t rng = opts->shuffle ? opts->shuffle * 0x9e3779b97f4a7c15ull | 1 : 0;
    unsigned i, k, *perm;
    RObj **seq;
    int rc = -1;

    m->init_order = calloc(m->nr_objs + 1, sizeof(*m->init_order));
    m->built_as = calloc(m->nr_as + 1, sizeof(*m->built_as));
    perm = calloc(m->nr_objs + 1, sizeof(*perm));
    seq = calloc(m->nr_objs + 1, sizeof(*seq));
    if (!m->init_order || !m->built_as || !perm || !seq) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (i = 0; i < m->nr_objs; i++) {
        perm[i] = i;
    }
    if (rng) {
        for (i = m->nr_objs; i > 1; i--) {
            unsigned j = (unsigned)(next_rand(&rng) % i), t = perm[i - 1];

            perm[i - 1] = perm[j];
            perm[j] = t;
        }
    }
    for (i = 0; i < m->nr_objs; i++) {
        if (init_obj(m, ctx, m->objs[perm[i]], err, errlen) < 0) {
            goto out;
        }
    }
    for (i = 0; i < m->nr_objs; i++) {
        if (place_loose(ctx, m->objs[i], err, errlen) < 0) {
            goto out;
        }
    }
    for (i = 0; i < m->nr_as; i++) {
        m->built_as[i] = address_space_new(ctx, m->as[i].root->mr, m->as[i].name);
        if (!m->built_as[i]) {
            snprintf(err, errlen, "address_space_new '%s' failed: %s", m->as[i].name,
                     memory_context_last_error(ctx));
            goto out;
        }
    }
    if (!opts->steps) {
        memory_region_transaction_begin(ctx);
    }
    for (i = 0; i < m->nr_objs; i++) {
        RObj *o = m->objs[perm[i]];

        if (o->disabled) {
            memory_region_set_enabled(o->mr, false);
        }
        if (o->readonly) {
            memory_region_set_readonly(o->mr, true);
        }
        add_order(o, seq, rng ? &rng : NULL);
        for (k = 0; k < o->nr_kids; k++) {
            RObj *c = seq[k];

            rc = memory_region_add_subregion_overlap(o->mr, c->addr, c->mr, c->prio);
            if (rc < 0) {
                if (!opts->steps) {
                    memory_region_transaction_commit(ctx);
                }
                rc = api_fail(ctx, c, "add_subregion_overlap of", rc, err, errlen);
                goto out;
            }
        }
    }
    if (!opts->steps) {
        memory_region_transaction_commit(ctx);
    }
    rc = 0;
out:
    free(perm);
    free(seq);
    return rc;
}

void replay_teardown(Model *m, MemoryContext *ctx)
{
    unsigned i;

    if (m->built_as) {
        for (i = 0; i < m->nr_as; i++) {
            if (m->built_as[i]) {
                address_space_destroy(m->built_as[i]);
                m->built_as[i] = NULL;
            }
        }
    }
    memory_region_transaction_begin(ctx);
    for (i = 0; i < m->nr_objs; i++) {
        RObj *o = m->objs[i];

        if (o->mr && memory_region_get_container(o->mr)) {
            memory_region_del_subregion(memory_region_get_container(o->mr), o->mr);
        }
    }
    memory_region_transaction_commit(ctx);
    /* aliases were initialised after their targets: destroy in reverse */
    for (i = m->nr_init; i-- > 0;) {
        RObj *o = m->init_order[i];

        if (memory_region_destroy(o->mr) < 0) {
            fprintf(stderr, "mtree-replay: destroy '%s' failed: %s\n", o->name,
                    memory_context_last_error(ctx));
        }
        o->build_state = 0;
    }
    m->nr_init = 0;
}
