/* SPDX-License-Identifier: MIT */
/*
 * Reading the unprinted facts off the FlatView sections, and a small
 * reference renderer (QEMU 7.2's render_memory_region + flatview_simplify
 * semantics) that checks the model reproduces the fixture's FlatViews
 * before strata is asked to.
 *
 * Facts inferred:
 *   - an i/o region that is not an alias terminates (has ops) iff some flat
 *     range shows it;
 *   - an alias is read-only where a flat range of a region that is not
 *     `rom` prints as `rom` (the innermost alias on the path is marked);
 *   - an i/o region terminates if the FlatView's printed root stops at it.
 * Lookups treat i/o regions not (yet) known to terminate as transparent: a
 * terminal one that covered the address ahead of the expected region would
 * be the one printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/replay/replay-int.h"

RObj *model_as_root(Model *m, const char *name)
{
    unsigned i;

    for (i = 0; i < m->nr_as; i++) {
        if (strcmp(m->as[i].name, name) == 0) {
            return m->as[i].root;
        }
    }
    return NULL;
}

/* Does o contribute itself to a FlatView (RAM/ROM/ROM device, or i/o with ops)? */
static bool terminal(const RObj *o)
{
    return !o->is_alias && (o->type != MTP_IO || o->terminates);
}

/* QEMU's memory_region_get_flatview_root() on the model. */
static RObj *flat_root(RObj *o)
{
    unsigned guard = 0;

    while (o && !o->disabled && guard++ < REPLAY_MAX_NEST) {
        if (o->is_alias) {
            if (o->alias_offset == 0 && o->size >= o->target->size) {
                o = o->target;
                continue;
            }
        } else if (!terminal(o)) {
            unsigned found = 0, i;
            RObj *next = NULL;

            for (i = 0; i < o->nr_kids; i++) {
                RObj *c = o->list[i];

                if (!c->disabled) {
                    if (++found > 1) {
                        next = NULL;
                        break;
                    }
                    if (c->addr == 0 && o->size >= c->size) {
                        next = c;
                    }
                }
            }
            if (found == 0) {
                return NULL;
            }
            if (next) {
                o = next;
                continue;
            }
        }
        return o;
    }
    return NULL;
}

/* ---- point lookup ----------------------------------------------------- */

typedef struct Want {
    const char *name;
    s128 base; /* absolute address of the region's byte 0 */
    int32_t prio;
    MtpType type; /* as printed in the flat range */
} Want;

typedef struct Look {
    RObj *path[REPLAY_MAX_NEST];
    unsigned depth;
    bool too_deep;
    uint64_t *work;
} Look;

enum { L_NONE, L_FOUND, L_BLOCKED };

/* A flat range prints `rom` for anything seen through a read-only alias. */
static bool type_fits(MtpType flat, const RObj *o)
{
    return flat == o->type || flat == MTP_ROM;
}

static int look(Look *lk, RObj *o, s128 base, s128 clo, s128 chi, s128 p, const Want *w)
{
    s128 s, e, lo, hi;
    unsigned i;
    int r;

    if (o->disabled) {
        return L_NONE;
    }
    if (lk->depth >= REPLAY_MAX_NEST || ++*lk->work > REPLAY_WORK_LIMIT) {
        lk->too_deep = true;
        return L_NONE;
    }
    s = base + o->addr;
    e = s + (s128)o->size;
    lo = s > clo ? s : clo;
    hi = e < chi ? e : chi;
    if (p < lo || p >= hi) {
        return L_NONE;
    }
    lk->path[lk->depth++] = o;
    if (o->is_alias) {
        r = look(lk, o->target, s - (s128)o->alias_offset - (s128)o->target->addr, lo, hi, p, w);
        if (r == L_NONE) {
            lk->depth--;
        }
        return r;
    }
    for (i = 0; i < o->nr_kids; i++) {
        unsigned depth = lk->depth, j;

        r = look(lk, o->list[i], s, lo, hi, p, w);
        if (r != L_BLOCKED) {
            if (r == L_FOUND) {
                return r;
            }
            continue;
        }
        /*
         * Blocked by a terminal sibling.  Equal-priority siblings at other
         * addresses are in an order the text does not show: if a later one
         * holds the expected region, it must come first in the list.
         */
        for (j = i + 1; j < o->nr_kids; j++) {
            RObj *c = o->list[j];

            if (c->prio != o->list[i]->prio || c->addr == o->list[i]->addr) {
                continue;
            }
            lk->depth = depth;
            if (look(lk, c, s, lo, hi, p, w) == L_FOUND) {
                memmove(&o->list[i + 1], &o->list[i], (j - i) * sizeof(*o->list));
                o->list[i] = c;
                return L_FOUND;
            }
        }
        lk->depth = depth;
        return L_BLOCKED;
    }
    if (s == w->base && o->prio == w->prio && strcmp(o->name, w->name) == 0 &&
        type_fits(w->type, o)) {
        return L_FOUND;
    }
    if (terminal(o)) {
        return L_BLOCKED;
    }
    lk->depth--;
    return L_NONE;
}

/* ---- boundaries -------------------------------------------------------- */

typedef struct Bounds {
    s128 *v;
    size_t n, cap;
    uint64_t *work;
} Bounds;

static void bounds_add(Bounds *b, s128 x)
{
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        s128 *nv = realloc(b->v, nc * sizeof(*nv));

        if (!nv) {
            return;
        }
        b->v = nv;
        b->cap = nc;
    }
    b->v[b->n++] = x;
}

static void walk_bounds(Bounds *b, RObj *o, s128 base, s128 clo, s128 chi, unsigned depth)
{
    s128 s, e, lo, hi;
    unsigned i;

    if (o->disabled || depth >= REPLAY_MAX_NEST || ++*b->work > REPLAY_WORK_LIMIT) {
        return;
    }
    s = base + o->addr;
    e = s + (s128)o->size;
    lo = s > clo ? s : clo;
    hi = e < chi ? e : chi;
    if (lo >= hi) {
        return;
    }
    bounds_add(b, lo);
    bounds_add(b, hi);
    if (o->is_alias) {
        walk_bounds(b, o->target, s - (s128)o->alias_offset - (s128)o->target->addr, lo, hi,
                    depth + 1);
        return;
    }
    for (i = 0; i < o->nr_kids; i++) {
        walk_bounds(b, o->list[i], s, lo, hi, depth + 1);
    }
}

static int cmp_s128(const void *a, const void *b)
{
    s128 x = *(const s128 *)a, y = *(const s128 *)b;

    return x < y ? -1 : x > y;
}

/* ---- inference --------------------------------------------------------- */

/* Root of the address spaces of FlatView section fv (NULL if none is known). */
static RObj *fv_as_root(Model *m, const MtpSection *fv)
{
    return m->fv_as_root ? m->fv_as_root[fv - m->d->sections] : NULL;
}

static bool root_name_is(RObj *o, const char *name)
{
    return name ? o && strcmp(o->name, name) == 0 : !o;
}

/*
 * Matches the FlatViews' " AS" lines with the address spaces (whose names
 * repeat: two e1000 devices make two "e1000" spaces): each one used once,
 * preferring one whose root would render under the printed root region.
 */
static void assign_fv_roots(Model *m)
{
    const MtpDump *d = m->d;
    bool *used = calloc(m->nr_as + 1, sizeof(*used));
    unsigned pass, si, l, i, line = 0, nlines = 0;
    bool *done;

    for (si = 0; si < d->nr_sections; si++) {
        nlines += d->sections[si].kind == MTP_SEC_FV ? d->sections[si].nr_names : 0;
    }
    done = calloc(nlines + 1, sizeof(*done));
    m->fv_as_root = calloc(d->nr_sections + 1, sizeof(*m->fv_as_root));
    if (!used || !done || !m->fv_as_root) {
        free(used);
        free(done);
        return;
    }
    for (pass = 0; pass < 2; pass++) {
        line = 0;
        for (si = 0; si < d->nr_sections; si++) {
            const MtpSection *fv = &d->sections[si];

            if (fv->kind != MTP_SEC_FV) {
                continue;
            }
            for (l = 0; l < fv->nr_names; l++, line++) {
                for (i = 0; i < m->nr_as && !done[line]; i++) {
                    RObj *r = m->as[i].root;

                    if (used[i] || strcmp(m->as[i].name, fv->names[l]) != 0 ||
                        strcmp(r->name, fv->as_roots[l]) != 0 ||
                        (pass == 0 && !root_name_is(flat_root(r), fv->fv_root))) {
                        continue;
                    }
                    used[i] = done[line] = true;
                    if (!m->fv_as_root[si]) {
                        m->fv_as_root[si] = r;
                    }
                }
            }
        }
    }
    free(used);
    free(done);
}

static void infer_range(Model *m, RObj *root, const MtpRange *r, const Bounds *b, bool quiet)
{
    Want w = {
        .name = r->name, .base = (s128)r->start - (s128)r->offset, .prio = r->prio, .type = r->type
    };
    s128 p = r->start, end = (s128)r->end + 1;
    size_t lo = 0, hi = b->n;

    /* first boundary above start */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (b->v[mid] <= (s128)r->start) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    for (;;) {
        Look lk = { .depth = 0, .work = &m->work };
        int res = look(&lk, root, 0, 0, (s128)INT128_2_64, p, &w);

        if (res == L_FOUND) {
            RObj *t = lk.path[lk.depth - 1];

            if (t->type == MTP_IO) {
                t->terminates = true;
            }
            if (r->type == MTP_ROM && t->type != MTP_ROM) {
                bool marked = false;
                unsigned i;

                for (i = lk.depth - 1; i-- > 0;) {
                    if (lk.path[i]->is_alias) {
                        lk.path[i]->readonly = true;
                        marked = true;
                        break;
                    }
                }
                if (!marked && !quiet) {
                    model_diag(m,
                               "line %u: '%s' prints as rom but no alias on its path "
                               "can be read-only",
                               r->line, r->name);
                }
            }
        } else {
            if (!quiet) {
                model_diag(m,
                           "line %u: no region '%s' (prio %d) based at 0x%llx is visible "
                           "at 0x%llx%s",
                           r->line, r->name, r->prio, (unsigned long long)(uint64_t)w.base,
                           (unsigned long long)(uint64_t)p,
                           lk.too_deep ? " (nesting too deep)" : "");
            }
            return;
        }
        if (lo >= b->n || b->v[lo] >= end) {
            break;
        }
        p = b->v[lo++];
    }
}

/* Marks i/o regions on the way to the printed FlatView root as terminating. */
static void infer_root(Model *m, const MtpSection *fv, RObj *root)
{
    RObj *got = flat_root(root), *o;
    unsigned guard = 0;

    if (!fv->fv_root ? !got : (got && strcmp(got->name, fv->fv_root) == 0)) {
        return;
    }
    /* retrace; the first i/o container named like the printed root has ops */
    for (o = root; o && fv->fv_root && guard++ < REPLAY_MAX_NEST;) {
        if (!o->is_alias && o->type == MTP_IO && !o->terminates &&
            strcmp(o->name, fv->fv_root) == 0) {
            o->terminates = true;
            break;
        }
        if (o == got) {
            break;
        }
        if (o->is_alias) {
            o = o->target;
        } else {
            unsigned i;
            RObj *next = NULL;

            for (i = 0; i < o->nr_kids && !next; i++) {
                if (!o->list[i]->disabled) {
                    next = o->list[i];
                }
            }
            o = next;
        }
    }
    got = flat_root(root);
    if (!fv->fv_root ? got != NULL : (!got || strcmp(got->name, fv->fv_root) != 0)) {
        model_diag(m, "line %u: FlatView root '%s' not reproducible (model: '%s')", fv->line,
                   fv->fv_root ? fv->fv_root : "(none)", got ? got->name : "(none)");
    }
}

void infer_from_flatviews(Model *m)
{
    unsigned si, i, pass;

    assign_fv_roots(m);
    for (si = 0; si < m->d->nr_sections; si++) {
        const MtpSection *fv = &m->d->sections[si];
        RObj *root;
        Bounds b = { .work = &m->work };

        if (fv->kind != MTP_SEC_FV) {
            continue;
        }
        root = fv_as_root(m, fv);
        if (!root) {
            model_diag(m, "line %u: FlatView of no known address space", fv->line);
            continue;
        }
        walk_bounds(&b, root, 0, 0, (s128)INT128_2_64, 0);
        qsort(b.v, b.n, sizeof(*b.v), cmp_s128);
        /* a second pass sees regions found terminal late (list-order conflicts) */
        for (pass = 0; pass < 2; pass++) {
            for (i = 0; i < fv->nr_ranges; i++) {
                infer_range(m, root, &fv->ranges[i], &b, pass == 0);
            }
        }
        free(b.v);
    }
    /* roots after ranges: ranges settle most terminates flags first */
    for (si = 0; si < m->d->nr_sections; si++) {
        const MtpSection *fv = &m->d->sections[si];
        RObj *root;

        if (fv->kind == MTP_SEC_FV && (root = fv_as_root(m, fv)) != NULL) {
            infer_root(m, fv, root);
        }
    }
}

/* ---- reference renderer ------------------------------------------------ */

typedef struct RRange {
    s128 start, size;
    RObj *mr;
    s128 off;
    bool ro;
} RRange;

typedef struct View {
    RRange *r;
    size_t n, cap;
    bool oom; /* or out of work budget */
    uint64_t *work;
} View;

static void view_insert(View *v, size_t at, const RRange *x)
{
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 64;
        RRange *nr = realloc(v->r, nc * sizeof(*nr));

        if (!nr) {
            v->oom = true;
            return;
        }
        v->r = nr;
        v->cap = nc;
    }
    memmove(&v->r[at + 1], &v->r[at], (v->n - at) * sizeof(*v->r));
    v->r[at] = *x;
    v->n++;
}

static void render(View *v, RObj *o, s128 base, s128 clo, s128 chi, bool ro, unsigned depth)
{
    s128 s, e, lo, hi, remain;
    RRange fr;
    size_t i;
    unsigned k;

    if (o->disabled || depth >= REPLAY_MAX_NEST || v->oom) {
        return;
    }
    if (++*v->work > REPLAY_WORK_LIMIT) {
        v->oom = true;
        return;
    }
    s = base + o->addr;
    ro |= o->readonly;
    e = s + (s128)o->size;
    lo = s > clo ? s : clo;
    hi = e < chi ? e : chi;
    if (lo >= hi) {
        return;
    }
    if (o->is_alias) {
        render(v, o->target, s - (s128)o->alias_offset - (s128)o->target->addr, lo, hi, ro,
               depth + 1);
        return;
    }
    for (k = 0; k < o->nr_kids; k++) {
        render(v, o->list[k], s, lo, hi, ro, depth + 1);
    }
    if (!terminal(o)) {
        return;
    }
    /* fill the gaps of [lo, hi) */
    fr.mr = o;
    fr.ro = ro;
    remain = hi - lo;
    base = lo;
    for (i = 0; i < v->n && remain > 0; i++) {
        s128 rs = v->r[i].start, re = rs + v->r[i].size, now;

        if (base >= re) {
            continue;
        }
        if (base < rs) {
            now = remain < rs - base ? remain : rs - base;
            fr.start = base;
            fr.size = now;
            fr.off = base - s;
            view_insert(v, i, &fr);
            i++;
            base += now;
            remain -= now;
        }
        now = (base + remain < re ? base + remain : re) - base;
        base += now;
        remain -= now;
    }
    if (remain > 0) {
        fr.start = base;
        fr.size = remain;
        fr.off = base - s;
        view_insert(v, v->n, &fr);
    }
}

static void simplify(View *v)
{
    size_t i = 0, j, k;

    while (i < v->n) {
        j = i + 1;
        while (j < v->n && v->r[j].mr == v->r[j - 1].mr &&
               v->r[j - 1].start + v->r[j - 1].size == v->r[j].start &&
               v->r[j - 1].off + v->r[j - 1].size == v->r[j].off && v->r[j].ro == v->r[j - 1].ro) {
            v->r[i].size += v->r[j].size;
            j++;
        }
        i++;
        for (k = j; k < v->n; k++) {
            v->r[i + k - j] = v->r[k];
        }
        v->n -= j - i;
    }
}

int model_check_flatview(Model *m, const MtpSection *fv)
{
    RObj *root = fv_as_root(m, fv), *fr;
    View v = { .work = &m->work };
    char line[1024];
    size_t i;
    int rc = 0;

    if (!root) {
        return -1;
    }
    fr = flat_root(root);
    if (fr) {
        render(&v, fr, 0, 0, (s128)INT128_2_64, false, 0);
        simplify(&v);
    }
    if (v.oom) {
        free(v.r);
        model_diag(m, "line %u: out of memory or work budget rendering", fv->line);
        return -1;
    }
    for (i = 0; i < v.n || i < fv->nr_body; i++) {
        if (i < v.n) {
            const RRange *r = &v.r[i];
            int n = snprintf(line, sizeof(line), "  %016llx-%016llx (prio %d, %s): %s",
                             (unsigned long long)(uint64_t)r->start,
                             (unsigned long long)(uint64_t)(r->start + r->size - 1), r->mr->prio,
                             r->ro ? "rom" : mtp_type_name(r->mr->type), r->mr->name);
            if (r->off && n > 0 && (size_t)n < sizeof(line)) {
                snprintf(line + n, sizeof(line) - (size_t)n, " @%016llx",
                         (unsigned long long)(uint64_t)r->off);
            }
        } else if (i == 0) {
            snprintf(line, sizeof(line), "  No rendered FlatView");
        } else {
            line[0] = 0;
        }
        if (i >= fv->nr_body || strcmp(line, fv->body[i]) != 0) {
            model_diag(m, "line %u: the replay model renders this FlatView differently:", fv->line);
            model_diag(m, "  expected: %s", i < fv->nr_body ? fv->body[i] : "(end)");
            model_diag(m, "  model:    %s", line[0] ? line : "(end)");
            rc = -1;
            break;
        }
        if (i >= v.n && i == 0) {
            break;
        }
    }
    free(v.r);
    return rc;
}
