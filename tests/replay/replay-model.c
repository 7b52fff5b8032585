/* SPDX-License-Identifier: MIT */
/*
 * The region objects behind an `info mtree -D` dump.
 *
 * QEMU prints each address-space root once (address spaces sharing a root
 * are grouped), then one `memory-region:` section per alias target, in the
 * order the printer first met them (it walks the text in printed order and
 * appends new targets to a queue, which it then prints, walking on).  A
 * region therefore shows up several times: in its container's tree, as the
 * head of its own memory-region section, inside other sections' subtrees.
 * This file works out which printings are the same object, which object
 * each alias points to, and the two facts the text does not print (which
 * i/o regions have ops, which aliases are read-only), reading the latter off
 * the FlatView sections with a point lookup that follows QEMU's rendering
 * rules.  replay-infer.c also re-renders the model to check the inference.
 */
#include "tests/replay/replay.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/replay/replay-int.h"

void model_diag(Model *m, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    char **nd;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (m->nr_diag >= 200) {
        return;
    }
    nd = realloc(m->diag, (m->nr_diag + 1) * sizeof(*nd));
    if (!nd) {
        return;
    }
    m->diag = nd;
    m->diag[m->nr_diag] = strdup(buf);
    if (m->diag[m->nr_diag]) {
        m->nr_diag++;
    }
}

/* Printed size of a node: end - start + 1 (a zero-sized region prints like a 1-byte one). */
static u128 node_size(const MtpNode *n)
{
    return (u128)(n->end - n->start) + 1;
}

static RObj *new_obj(Model *m, const MtpNode *n, uint64_t addr, RObj *container)
{
    RObj *o, **no;

    if (m->nr_objs % 64 == 0) {
        no = realloc(m->objs, (m->nr_objs + 64) * sizeof(*no));
        if (!no) {
            return NULL;
        }
        m->objs = no;
    }
    o = calloc(1, sizeof(*o));
    if (!o) {
        return NULL;
    }
    o->id = m->nr_objs;
    o->node = n;
    o->name = n->name;
    o->type = n->type;
    o->is_alias = n->is_alias;
    o->alias_offset = n->alias_start;
    o->size = node_size(n);
    o->addr = addr;
    o->prio = n->prio;
    o->disabled = n->disabled;
    o->container = container;
    if (n->nr_children) {
        o->kids = calloc(n->nr_children, sizeof(*o->kids));
        o->list = calloc(n->nr_children, sizeof(*o->list));
        if (!o->kids || !o->list) {
            free(o->kids);
            free(o->list);
            free(o);
            return NULL;
        }
    }
    m->objs[m->nr_objs++] = o;
    return o;
}

/* Index of the next sibling after node i (i.e. past its subtree). */
static unsigned next_sibling(const MtpSection *s, unsigned i)
{
    return i + s->nodes[i].subtree;
}

/* Creates objects for the subtree of node i of section si. */
static int create_subtree(Model *m, unsigned si, unsigned i, RObj *container)
{
    const MtpSection *s = &m->d->sections[si];
    const MtpNode *n = &s->nodes[i];
    uint64_t base = n->parent >= 0 ? s->nodes[n->parent].start : 0;
    RObj *o = new_obj(m, n, n->start - base, container);
    unsigned c;

    if (!o) {
        return -1;
    }
    m->secmap[si][i] = o;
    if (container) {
        container->kids[container->nr_kids++] = o;
    }
    for (c = i + 1; c < i + n->subtree; c = next_sibling(s, c)) {
        if (create_subtree(m, si, c, o) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Same printed attributes (everything but the position)? */
static bool node_eq(const MtpNode *a, const MtpNode *b)
{
    if (strcmp(a->name, b->name) != 0 || a->type != b->type || a->nv != b->nv ||
        a->prio != b->prio || a->disabled != b->disabled || a->is_alias != b->is_alias ||
        a->end - a->start != b->end - b->start || a->nr_children != b->nr_children) {
        return false;
    }
    if (a->is_alias && (strcmp(a->alias_target, b->alias_target) != 0 ||
                        a->alias_start != b->alias_start || a->alias_end != b->alias_end)) {
        return false;
    }
    return true;
}

/* Does the subtree of node i of section s print exactly like object o? */
static bool same_subtree(const MtpSection *s, unsigned i, const RObj *o)
{
    const MtpNode *n = &s->nodes[i];
    uint64_t base = n->parent >= 0 ? s->nodes[n->parent].start : 0;
    unsigned c, k = 0;

    if (!node_eq(n, o->node) || n->start - base != o->addr || n->nr_children != o->nr_kids) {
        return false;
    }
    for (c = i + 1; c < i + n->subtree; c = next_sibling(s, c), k++) {
        if (!same_subtree(s, c, o->kids[k])) {
            return false;
        }
    }
    return true;
}

/* Maps the nodes of subtree i of section si onto object o's subtree. */
static void map_subtree(Model *m, unsigned si, unsigned i, RObj *o)
{
    const MtpSection *s = &m->d->sections[si];
    unsigned c, k = 0;

    m->secmap[si][i] = o;
    for (c = i + 1; c < i + s->nodes[i].subtree; c = next_sibling(s, c), k++) {
        map_subtree(m, si, c, o->kids[k]);
    }
}

static int cmp_mr_sections(const void *a, const void *b, void *arg)
{
    const MtpDump *d = arg;
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    unsigned sx = d->sections[x].nodes[0].subtree, sy = d->sections[y].nodes[0].subtree;

    if (sx != sy) {
        return sx > sy ? -1 : 1;
    }
    return x < y ? -1 : x > y;
}

/* Finds (or creates) the object of each memory-region: section. */
static int place_mr_sections(Model *m)
{
    const MtpDump *d = m->d;
    unsigned *order, n = 0, i, k;

    order = calloc(d->nr_sections + 1, sizeof(*order));
    m->twin_sections = calloc(d->nr_sections + 1, sizeof(*m->twin_sections));
    if (!order || !m->twin_sections) {
        free(order);
        return -1;
    }
    for (i = 0; i < d->nr_sections; i++) {
        if (d->sections[i].kind == MTP_SEC_MR) {
            order[n++] = i;
        }
    }
    /* containers before what they contain: bigger subtrees first */
    qsort_r(order, n, sizeof(*order), cmp_mr_sections, (void *)d);
    for (k = 0; k < n; k++) {
        unsigned si = order[k];
        const MtpSection *s = &d->sections[si];
        RObj *best = NULL;
        unsigned j;

        unsigned twins = 0;

        for (j = 0; j < m->nr_objs; j++) {
            RObj *o = m->objs[j];

            if (o->claimed || strcmp(o->name, s->nodes[0].name) != 0 || !same_subtree(s, 0, o)) {
                continue;
            }
            twins += o->as_root;
            if (!best || (o->as_root && !best->as_root)) {
                best = o;
            }
        }
        if (twins > 1) {
            /* identical address-space roots: the FlatViews will tell which (merge_twins) */
            best = NULL;
            m->twin_sections[m->nr_twin_sections++] = si;
        }
        if (best) {
            map_subtree(m, si, 0, best);
        } else if (create_subtree(m, si, 0, NULL) < 0) {
            free(order);
            return -1;
        }
        m->secmap[si][0]->claimed = true;
    }
    free(order);
    return 0;
}

/* Root object of the memory-region: section with index si. */
static RObj *mr_obj(Model *m, unsigned si)
{
    return m->secmap[si][0];
}

/* Fallback alias resolution by name: address-space roots, then memory-region: sections. */
static RObj *resolve_by_name(Model *m, const char *name)
{
    unsigned i;

    for (i = 0; i < m->nr_as; i++) {
        if (strcmp(m->as[i].root->name, name) == 0) {
            return m->as[i].root;
        }
    }
    for (i = 0; i < m->d->nr_sections; i++) {
        if (m->d->sections[i].kind == MTP_SEC_MR && strcmp(m->d->sections[i].names[0], name) == 0) {
            return mr_obj(m, i);
        }
    }
    for (i = 0; i < m->nr_objs; i++) {
        if (!m->objs[i]->is_alias && strcmp(m->objs[i]->name, name) == 0) {
            return m->objs[i];
        }
    }
    return NULL;
}

/* Can `to` be reached from `from` through subregions and alias targets? */
static bool reaches(Model *m, RObj *from, const RObj *to, unsigned stamp, unsigned depth)
{
    unsigned i;

    if (from == to || depth > REPLAY_MAX_NEST) {
        return true;
    }
    if (from->visit == stamp) {
        return false;
    }
    from->visit = stamp;
    if (from->is_alias && from->target && reaches(m, from->target, to, stamp, depth + 1)) {
        return true;
    }
    for (i = 0; i < from->nr_kids; i++) {
        if (reaches(m, from->kids[i], to, stamp, depth + 1)) {
            return true;
        }
    }
    return false;
}

/* Could alias o point at t?  -1 if not, else how many of t's subregions its window shows. */
static int target_score(Model *m, RObj *o, RObj *t)
{
    const MtpNode *n = o->node;
    unsigned i;
    int score = 0;

    /* START-START may be a zero-sized window at the very end */
    if (strcmp(t->name, n->alias_target) != 0 || t->node->type != n->type ||
        (u128)n->alias_end >= t->size + (n->alias_end == n->alias_start)) {
        return -1;
    }
    if (reaches(m, t, o, ++m->stamp, 0)) {
        return -1; /* a loop */
    }
    for (i = 0; i < t->nr_kids; i++) {
        u128 s = t->kids[i]->addr, e = s + t->kids[i]->size;

        if (s <= n->alias_end && e > n->alias_start) {
            score++;
        }
    }
    return score;
}

/* An alias, at its first printing (position pos in printing order). */
typedef struct Occ {
    RObj *o;
    unsigned pos;
} Occ;

/*
 * Replays QEMU's alias queue over the text to tell which memory-region:
 * section each alias points to: an alias names either a target already
 * queued or the next memory-region: section, which must be queued before
 * the printer reaches it.  Between equal names, the target whose subregions
 * the alias window shows wins (a PCI bridge's windows show its own bus).
 * Falls back to names if the text does not follow the queue discipline
 * (hand-made input).
 */
static int resolve_aliases(Model *m, char *err, size_t errlen)
{
    const MtpDump *d = m->d;
    unsigned *q, *qpos, k = 0, qlen = 0, i, j, si, pos = 0, nocc = 0;
    Occ *occ;
    bool ok = true;

    q = calloc(d->nr_sections + 1, sizeof(*q));
    qpos = calloc(d->nr_sections + 1, sizeof(*qpos));
    occ = calloc(m->nr_objs + 1, sizeof(*occ));
    if (!q || !qpos || !occ) {
        free(q);
        free(qpos);
        free(occ);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* printing order: sections in text order, regions in order */
    ++m->stamp;
    for (si = 0; si < d->nr_sections; si++) {
        const MtpSection *s = &d->sections[si];

        if (s->kind == MTP_SEC_FV) {
            continue;
        }
        if (s->kind == MTP_SEC_MR) {
            qpos[k] = pos;
            q[k++] = si;
        }
        for (i = 0; i < s->nr_nodes; i++, pos++) {
            RObj *o = m->secmap[si][i];

            if (o->is_alias && o->visit != m->stamp) {
                o->visit = m->stamp;
                occ[nocc].o = o;
                occ[nocc++].pos = pos;
            }
        }
    }
    for (i = 0; i < nocc && ok; i++) {
        RObj *o = occ[i].o, *pick = NULL, *newc = NULL;
        const char *name = o->node->alias_target;
        int best = -1, sc;

        if (qlen < k && strcmp(d->sections[q[qlen]].names[0], name) == 0) {
            if (qpos[qlen] < occ[i].pos) {
                model_diag(m, "line %u: memory-region: %s printed before any alias named it",
                           d->sections[q[qlen]].line, name);
                ok = false; /* a section printed before anything named it */
                break;
            }
            if (target_score(m, o, mr_obj(m, q[qlen])) >= 0) {
                newc = mr_obj(m, q[qlen]);
            }
        }
        if (newc) {
            /* the last alias of that name before the section must queue it */
            bool later = false;

            for (j = i + 1; j < nocc && occ[j].pos < qpos[qlen] && !later; j++) {
                later = strcmp(occ[j].o->node->alias_target, name) == 0;
            }
            pick = newc;
            if (later) {
                best = target_score(m, o, newc);
            }
        }
        if (!newc || best >= 0) {
            for (j = 0; j < qlen; j++) {
                RObj *t = mr_obj(m, q[j]);

                sc = target_score(m, o, t);
                if (sc > best) {
                    best = sc;
                    pick = t;
                }
            }
        }
        if (!pick) {
            model_diag(m, "line %u: alias '%s': no queued or next region '%s' fits it",
                       o->node->line, o->name, name);
            ok = false;
            break;
        }
        if (pick == newc) {
            qlen++;
        }
        o->target = pick;
    }
    if (!ok || qlen != k) {
        /* not QEMU's queue order: resolve every alias by name */
        model_diag(m, "aliases resolved by name only (the text does not follow QEMU's "
                      "alias queue)");
        for (i = 0; i < m->nr_objs; i++) {
            RObj *o = m->objs[i];

            if (o->is_alias) {
                o->target = resolve_by_name(m, o->node->alias_target);
                if (!o->target) {
                    snprintf(err, errlen, "line %u: alias '%s': no region named '%s'",
                             o->node->line, o->name, o->node->alias_target);
                    free(q);
                    free(qpos);
                    free(occ);
                    return -1;
                }
            }
        }
    }
    free(q);
    free(qpos);
    free(occ);
    return 0;
}

static int cmp_prio_stable(const void *a, const void *b, void *arg)
{
    const RObj *x = *(RObj *const *)a, *y = *(RObj *const *)b;
    const RObj *par = arg;
    unsigned ix = 0, iy = 0, i;

    if (x->prio != y->prio) {
        return x->prio > y->prio ? -1 : 1;
    }
    for (i = 0; i < par->nr_kids; i++) {
        if (par->kids[i] == x) {
            ix = i;
        }
        if (par->kids[i] == y) {
            iy = i;
        }
    }
    return ix < iy ? -1 : ix > iy;
}

/* Subregion list order: priority descending; ties in printed order. */
static void make_lists(Model *m)
{
    unsigned i;

    for (i = 0; i < m->nr_objs; i++) {
        RObj *o = m->objs[i];

        if (o->nr_kids) {
            memcpy(o->list, o->kids, o->nr_kids * sizeof(*o->kids));
            qsort_r(o->list, o->nr_kids, sizeof(*o->list), cmp_prio_stable, o);
        }
    }
}

/* Are the address spaces rooted at a and at b listed in one FlatView? */
static bool share_flatview(Model *m, const RObj *a, const RObj *b)
{
    unsigned si, i, j;

    for (si = 0; si < m->d->nr_sections; si++) {
        const MtpSection *fv = &m->d->sections[si];
        bool has_a = false, has_b = false;

        if (fv->kind != MTP_SEC_FV) {
            continue;
        }
        for (i = 0; i < fv->nr_names; i++) {
            for (j = 0; j < m->nr_as; j++) {
                if (strcmp(m->as[j].name, fv->names[i]) != 0) {
                    continue;
                }
                has_a |= m->as[j].root == a;
                has_b |= m->as[j].root == b;
            }
        }
        if (has_a && has_b) {
            return true;
        }
    }
    return false;
}

/* Replaces object x (and its subtree) by the identical r everywhere; x's objects die. */
static void merge_into(Model *m, RObj *x, RObj *r)
{
    unsigned si, i, k;

    for (si = 0; si < m->d->nr_sections; si++) {
        if (m->d->sections[si].kind == MTP_SEC_FV) {
            continue;
        }
        for (i = 0; i < m->d->sections[si].nr_nodes; i++) {
            if (m->secmap[si][i] == x) {
                m->secmap[si][i] = r;
            }
        }
    }
    for (i = 0; i < m->nr_objs; i++) {
        if (m->objs[i]->target == x) {
            m->objs[i]->target = r;
        }
    }
    r->claimed |= x->claimed;
    x->dead = true;
    for (k = 0; k < x->nr_kids; k++) {
        merge_into(m, x->kids[k], r->kids[k]);
    }
}

/*
 * A memory-region: section printed exactly like several address-space roots
 * (an IOMMU's per-device roots) is the one whose address spaces share a
 * FlatView with the address spaces of the aliases that point at it.
 */
static void merge_twins(Model *m)
{
    unsigned t, i, j, n, left = m->nr_twin_sections;
    bool *done = calloc(m->nr_twin_sections + 1, sizeof(*done));

    if (!done) {
        return;
    }
    /* the best-supported (section, root) pair first, so guesses take what is left */
    while (left--) {
        RObj *pick_r = NULL;
        unsigned pick_t = 0;
        int pick_score = -1;

        for (t = 0; t < m->nr_twin_sections; t++) {
            unsigned si = m->twin_sections[t];
            const MtpSection *s = &m->d->sections[si];
            RObj *x = m->secmap[si][0];

            if (done[t]) {
                continue;
            }
            for (i = 0; i < m->nr_objs; i++) {
                RObj *r = m->objs[i];
                int score = 0;

                if (!r->as_root || r->claimed || r->dead || !same_subtree(s, 0, r)) {
                    continue;
                }
                for (j = 0; j < m->nr_objs; j++) {
                    RObj *a = m->objs[j], *top = a;

                    if (a->dead || a->target != x) {
                        continue;
                    }
                    while (top->container) {
                        top = top->container;
                    }
                    if (top->as_root && share_flatview(m, top, r)) {
                        score++;
                    }
                }
                if (score > pick_score) {
                    pick_score = score;
                    pick_r = r;
                    pick_t = t;
                }
            }
        }
        if (!pick_r) {
            break; /* no identical root left: the rest stay on their own */
        }
        done[pick_t] = true;
        merge_into(m, m->secmap[m->twin_sections[pick_t]][0], pick_r);
    }
    free(done);
    /* drop the dead */
    for (i = n = 0; i < m->nr_objs; i++) {
        if (m->objs[i]->dead) {
            free(m->objs[i]->kids);
            free(m->objs[i]->list);
            free(m->objs[i]);
        } else {
            m->objs[i]->id = n;
            m->objs[n++] = m->objs[i];
        }
    }
    m->nr_objs = n;
}

/* Checks alias chains for loops and sizes for what the API can express. */
static int check_objects(Model *m, char *err, size_t errlen)
{
    unsigned i, steps;

    for (i = 0; i < m->nr_objs; i++) {
        RObj *o = m->objs[i], *t = o;

        if (o->is_alias && reaches(m, o->target, o, ++m->stamp, 0)) {
            snprintf(err, errlen, "line %u: alias '%s' shows a region that contains it",
                     o->node->line, o->name);
            return -1;
        }
        for (steps = 0; t && t->is_alias; steps++) {
            if (steps > m->nr_objs) {
                snprintf(err, errlen, "line %u: alias '%s' is part of an alias loop", o->node->line,
                         o->name);
                return -1;
            }
            t = t->target;
        }
        if (o->node->nv) {
            snprintf(err, errlen, "line %u: '%s': non-volatile regions (nv-) are not supported",
                     o->node->line, o->name);
            return -1;
        }
        if (o->size == INT128_2_64 - 1) {
            snprintf(err, errlen,
                     "line %u: '%s': a size of 2^64-1 cannot be expressed "
                     "(UINT64_MAX means 2^64)",
                     o->node->line, o->name);
            return -1;
        }
        if (o->is_alias &&
            o->node->alias_end - o->node->alias_start != o->node->end - o->node->start) {
            snprintf(err, errlen, "line %u: alias '%s': target range and size disagree",
                     o->node->line, o->name);
            return -1;
        }
    }
    return 0;
}

/*
 * A region printed as START-START is 1 byte or 0 bytes long (QEMU prints
 * both alike).  Zero it where one byte cannot be right or is not seen: an
 * alias whose 1-byte window would pass its target's end, an i/o region
 * without ops and subregions (q35's tseg-blackhole and tseg-window).
 */
static void zero_sizes(Model *m)
{
    unsigned i;

    for (i = 0; i < m->nr_objs; i++) {
        RObj *o = m->objs[i];

        if (o->node->end != o->node->start || o->nr_kids) {
            continue;
        }
        if (o->is_alias ? (u128)o->alias_offset + 1 > o->target->size
                        : o->type == MTP_IO && !o->terminates) {
            o->size = 0;
        }
    }
}

int model_build(Model *m, const MtpDump *d, char *err, size_t errlen)
{
    unsigned si, j;

    memset(m, 0, sizeof(*m));
    m->d = d;
    m->secmap = calloc(d->nr_sections + 1, sizeof(*m->secmap));
    if (!m->secmap) {
        goto oom;
    }
    for (si = 0; si < d->nr_sections; si++) {
        if (d->sections[si].kind != MTP_SEC_FV) {
            m->secmap[si] = calloc(d->sections[si].nr_nodes + 1, sizeof(RObj *));
            if (!m->secmap[si]) {
                goto oom;
            }
        }
    }
    /* 1. address-space trees: every printed region is its own object */
    for (si = 0; si < d->nr_sections; si++) {
        const MtpSection *s = &d->sections[si];
        RAs *na;

        if (s->kind != MTP_SEC_AS) {
            continue;
        }
        if (create_subtree(m, si, 0, NULL) < 0) {
            goto oom;
        }
        m->secmap[si][0]->as_root = true;
        na = realloc(m->as, (m->nr_as + s->nr_names) * sizeof(*na));
        if (!na) {
            goto oom;
        }
        m->as = na;
        for (j = 0; j < s->nr_names; j++) {
            /* names are not unique (two e1000 devices: two "e1000" spaces) */
            m->as[m->nr_as].name = s->names[j];
            m->as[m->nr_as].root = m->secmap[si][0];
            m->nr_as++;
        }
    }
    if (m->nr_as == 0) {
        snprintf(err, errlen, "no address-space: section");
        return -1;
    }
    /* 2. memory-region: sections */
    if (place_mr_sections(m) < 0) {
        goto oom;
    }
    /* 3. alias targets */
    if (resolve_aliases(m, err, errlen) < 0) {
        return -1;
    }
    merge_twins(m);
    if (check_objects(m, err, errlen) < 0) {
        return -1;
    }
    make_lists(m);
    /* 4. what the text does not print */
    infer_from_flatviews(m);
    zero_sizes(m);
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

bool model_too_complex(const Model *m)
{
    return m->work > REPLAY_WORK_LIMIT;
}

void model_free(Model *m)
{
    unsigned i;

    for (i = 0; i < m->nr_objs; i++) {
        free(m->objs[i]->kids);
        free(m->objs[i]->list);
        free(m->objs[i]->mr);
        free(m->objs[i]);
    }
    free(m->objs);
    if (m->secmap && m->d) {
        for (i = 0; i < m->d->nr_sections; i++) {
            free(m->secmap[i]);
        }
    }
    free(m->secmap);
    free(m->as);
    free(m->fv_as_root);
    free(m->twin_sections);
    for (i = 0; i < m->nr_diag; i++) {
        free(m->diag[i]);
    }
    free(m->diag);
    free(m->built_as);
    free(m->init_order);
    memset(m, 0, sizeof(*m));
}
