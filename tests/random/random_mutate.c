/* SPDX-License-Identifier: MIT */
/*
 * Mutation half of the randomized test: random regions and random tree
 * changes made through the public API, mirrored into the model only when the
 * API says they succeeded.  Where the contract is unambiguous (a valid call
 * must succeed, a clearly invalid one must fail) the result is asserted.
 */
#include "tests/random/random_memory.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

extern const MemoryRegionOps random_ops[2];

enum expect { MUST_OK, MUST_FAIL, EITHER };

static const char *kind_prefix[] = {
    [RK_CONTAINER] = "c", [RK_RAM] = "ram",        [RK_RAM_PTR] = "ramp", [RK_ROM] = "rom",
    [RK_IO] = "io",       [RK_IO_NULL] = "ionull", [RK_ROMDEV] = "romd",  [RK_ALIAS] = "alias",
};

static const char *nm(const RNode *n)
{
    return memory_region_name(n->mr);
}

static s128 pick(Model *m, const s128 *v, size_t n)
{
    return v[rnd_below(m, n)];
}

static s128 container_size(Model *m)
{
    static const s128 sizes[] = { 0x1000,  0x8000,        0x10000,   0x100000,
                                  0xff800, (s128)1 << 32, S128_2_64, S128_2_64 };
    if (chance(m, 10))
        return 0x100 + (s128)rnd_below(m, 0x40000);
    return pick(m, sizes, sizeof(sizes) / sizeof(sizes[0]));
}

static s128 ram_size(Model *m)
{
    static const s128 sizes[] = { 0x100, 0x1000, 0x1800, 0x2000, 0x3000, 0x10000 };
    return pick(m, sizes, sizeof(sizes) / sizeof(sizes[0]));
}

static s128 io_size(Model *m)
{
    static const s128 sizes[] = { 0x7, 0x10, 0x100, 0x1000, 0x10000, (s128)1 << 32, S128_2_64 };
    return pick(m, sizes, sizeof(sizes) / sizeof(sizes[0]));
}

/* An offset in [0, space): small spaces uniformly, big ones near hot spots
 * (0, 4 GiB, the top) so that regions meet and overlap. */
static uint64_t pick_in(Model *m, s128 space)
{
    s128 o;
    if (space <= 0x200000) {
        o = (s128)rnd_below(m, (uint64_t)space);
    } else {
        static const s128 win = 0x100000;
        s128 hot[3] = { 0, (s128)1 << 32, space - win };
        s128 h = hot[rnd_below(m, 3)];
        if (h >= space - win)
            h = space - win;
        o = h + (s128)rnd_below(m, (uint64_t)win);
    }
    if (chance(m, 60))
        o &= ~(s128)0xff;
    return (uint64_t)o;
}

static size_t count_kind(Model *m, enum rkind k)
{
    size_t c = 0;
    for (size_t i = 0; i < m->nnodes; i++)
        c += m->nodes[i]->kind == k;
    return c;
}

static uint8_t *fill_random(Model *m, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd(m);
    return p;
}

RNode *node_create(Model *m, enum rkind kind)
{
    if (m->nnodes >= MAX_NODES)
        return NULL;
    if (kind == RK_ALIAS && (m->nnodes == 0 || count_kind(m, RK_ALIAS) >= MAX_ALIASES))
        return NULL;
    RNode *n = calloc(1, sizeof(*n));
    if (!n || !(n->mr = calloc(1, sizeof(*n->mr))))
        abort();
    n->model = m;
    n->id = m->next_id++;
    n->kind = kind;
    n->enabled = true;
    n->romd = true;
    n->ops_variant = (int)rnd_below(m, 2);
    char name[32];
    snprintf(name, sizeof(name), "%s%d", kind_prefix[kind], n->id);
    const char *owner = chance(m, 50) ? "dev" : NULL;
    enum expect want = MUST_OK;
    int r = -1;

    switch (kind) {
    case RK_CONTAINER:
        n->size = m->force_size ? m->force_size : container_size(m);
        r = memory_region_init(n->mr, m->ctx, name, size_arg(n->size));
        break;
    case RK_RAM:
        n->size = ram_size(m);
        n->shadow = calloc(1, (size_t)n->size);
        r = memory_region_init_ram(n->mr, m->ctx, owner, name, (uint64_t)n->size);
        break;
    case RK_RAM_PTR:
        n->size = ram_size(m);
        n->ptrbuf = fill_random(m, malloc((size_t)n->size), (size_t)n->size);
        n->shadow = malloc((size_t)n->size);
        memcpy(n->shadow, n->ptrbuf, (size_t)n->size);
        r = memory_region_init_ram_ptr(n->mr, m->ctx, owner, name, (uint64_t)n->size, n->ptrbuf);
        break;
    case RK_ROM:
        n->size = ram_size(m);
        n->shadow = malloc((size_t)n->size);
        r = memory_region_init_rom(n->mr, m->ctx, owner, name, (uint64_t)n->size);
        break;
    case RK_IO:
    case RK_IO_NULL:
        n->size = io_size(m);
        r = memory_region_init_io(n->mr, m->ctx, kind == RK_IO ? &random_ops[n->ops_variant] : NULL,
                                  kind == RK_IO ? n : NULL, name, size_arg(n->size));
        break;
    case RK_ROMDEV:
        n->size = ram_size(m);
        n->shadow = malloc((size_t)n->size);
        r = memory_region_init_rom_device(n->mr, m->ctx, &random_ops[n->ops_variant], n, owner,
                                          name, (uint64_t)n->size);
        break;
    case RK_ALIAS: {
        RNode *t = m->nodes[rnd_below(m, m->nnodes)];
        n->target = t;
        int mode = (int)rnd_below(m, 10);
        if (mode < 6) {
            n->alias_off = pick_in(m, t->size);
            s128 room = t->size - (s128)n->alias_off;
            s128 max = room < 0x200000 ? room : 0x200000;
            n->size = 1 + (s128)rnd_below(m, (uint64_t)max);
            if (chance(m, 50) && n->size > 0x100)
                n->size &= ~(s128)0xff;
        } else if (mode < 9) {
            n->alias_off = 0;
            n->size = t->size;
        } else { /* a window reaching past the target's end */
            n->alias_off = pick_in(m, t->size);
            n->size = t->size - (s128)n->alias_off + 1 + (s128)rnd_below(m, 0x1000);
            if (n->size > S128_2_64)
                n->size = S128_2_64;
            want = (s128)n->alias_off + n->size > t->size ? EITHER : MUST_OK;
        }
        r = memory_region_init_alias(n->mr, m->ctx, name, t->mr, n->alias_off, size_arg(n->size));
        break;
    }
    }
    tr(m, "init %s size %s%s%s off 0x%" PRIx64 " -> %d", name, s128_str(n->size),
       n->target ? " alias of " : "", n->target ? nm(n->target) : "", n->alias_off, r);
    if (r != 0) {
        if (want == MUST_OK)
            fail(m, "init of %s (size %s) failed: %d (%s)", name, s128_str(n->size), r,
                 memory_context_last_error(m->ctx));
        node_free(m, n);
        return NULL;
    }
    m->n_errors_checked++;
    if (memory_region_size128(n->mr) != (Int128)n->size ||
        memory_region_size(n->mr) != size_arg(n->size))
        fail(m, "size of %s reads back wrong", name);
    if (kind == RK_ROM || kind == RK_ROMDEV) {
        uint8_t *p = memory_region_get_ram_ptr(n->mr);
        if (!p)
            fail(m, "get_ram_ptr(%s) is NULL", name);
        fill_random(m, n->shadow, (size_t)n->size);
        memcpy(p, n->shadow, (size_t)n->size);
    }
    if (kind == RK_IO && n->size <= ((s128)1 << 32) && chance(m, 15)) {
        n->legacy = rnd_below(m, 0x10000);
        memory_region_set_offset(n->mr, n->legacy);
        tr(m, "set_offset %s 0x%" PRIx64, name, n->legacy);
    }
    if (n->target)
        n->target->alias_refs++;
    m->nodes[m->nnodes++] = n;
    return n;
}

void node_free(Model *m, RNode *n)
{
    for (size_t i = 0; i < m->nnodes; i++) {
        if (m->nodes[i] == n) {
            m->nodes[i] = m->nodes[--m->nnodes];
            break;
        }
    }
    free(n->mr);
    free(n->shadow);
    free(n->ptrbuf);
    free(n);
}

/* Would putting sub inside c create a cycle (c reachable from sub)? */
static bool reaches(Model *m, const RNode *from, const RNode *to, int depth)
{
    if (from == to)
        return true;
    if (depth > 64)
        return true;
    if (from->target && reaches(m, from->target, to, depth + 1))
        return true;
    for (size_t i = 0; i < m->nnodes; i++)
        if (m->nodes[i]->parent == from && reaches(m, m->nodes[i], to, depth + 1))
            return true;
    return false;
}

/* What placing sub at o in c (as non-overlapping unless overlap) must do. */
static enum expect predict(Model *m, const RNode *c, const RNode *sub, uint64_t o, bool overlap)
{
    if ((s128)o >= c->size)
        return MUST_FAIL;
    /* reaching past the container's end (or past 2^64) is clipped */
    if (overlap)
        return MUST_OK;
    enum expect e = MUST_OK;
    s128 lo = o, hi = (s128)o + sub->size;
    for (size_t i = 0; i < m->nnodes; i++) {
        const RNode *s = m->nodes[i];
        if (s->parent != c || s == sub || s->overlap)
            continue;
        s128 slo = s->addr, shi = (s128)s->addr + s->size;
        if (lo >= shi || slo >= hi)
            continue;
        e = EITHER;
        s128 clo = lo > slo ? lo : slo, chi = hi < shi ? hi : shi;
        if (chi > c->size)
            chi = c->size;
        if (clo < chi && s->enabled && sub->enabled)
            return MUST_FAIL;
    }
    return e;
}

static void check_expect(Model *m, enum expect e, int r, const char *what)
{
    if (e == MUST_OK && r != 0)
        fail(m, "%s failed (%d: %s), expected success", what, r, memory_context_last_error(m->ctx));
    if (e == MUST_FAIL && r == 0)
        fail(m, "%s succeeded, expected an error", what);
    if (e != EITHER)
        m->n_errors_checked++;
}

/* Where to put sub inside c. */
static uint64_t place(Model *m, const RNode *c, const RNode *sub)
{
    s128 cs = c->size, ss = sub->size, o;
    switch (rnd_below(m, 12)) {
    case 0:
    case 1:
    case 2:
    case 3:
        return pick_in(m, cs);
    case 4:
    case 5:
    case 6: { /* next to a sibling */
        const RNode *sib = NULL;
        size_t start = rnd_below(m, m->nnodes);
        for (size_t i = 0; i < m->nnodes && !sib; i++) {
            const RNode *s = m->nodes[(start + i) % m->nnodes];
            if (s->parent == c && s != sub)
                sib = s;
        }
        if (!sib)
            return pick_in(m, cs);
        o = chance(m, 50) ? (s128)sib->addr : (s128)sib->addr + sib->size;
        if (chance(m, 50))
            o -= ss;
        if (chance(m, 30))
            o += (s128)rnd_below(m, 0x201) - 0x100;
        break;
    }
    case 7: /* ending exactly at the container's end (2^64 - 1 for the top) */
        o = cs - ss;
        break;
    case 8: /* partially past the end: clipped */
        o = cs - ss / 2;
        break;
    case 9:
        o = 0;
        break;
    case 10: /* at or past the end: an error */
        o = cs + (s128)rnd_below(m, 0x1000);
        break;
    default:
        o = cs - 1 - (s128)rnd_below(m, 0x100);
        break;
    }
    if (o < 0)
        o = 0;
    if (o >= S128_2_64)
        o = S128_2_64 - 1;
    return (uint64_t)o;
}

static RNode *random_node(Model *m, bool (*ok)(const RNode *))
{
    size_t start = rnd_below(m, m->nnodes);
    for (size_t i = 0; i < m->nnodes; i++) {
        RNode *n = m->nodes[(start + i) % m->nnodes];
        if (ok(n))
            return n;
    }
    return NULL;
}

static bool is_detached(const RNode *n)
{
    return !n->is_root && !n->parent;
}
static bool is_attached(const RNode *n)
{
    return n->parent != NULL;
}
static bool is_container(const RNode *n)
{
    return n->kind == RK_CONTAINER;
}
static bool not_root(const RNode *n)
{
    return !n->is_root;
}
static bool is_alias(const RNode *n)
{
    return n->kind == RK_ALIAS;
}
static bool is_romdev(const RNode *n)
{
    return n->kind == RK_ROMDEV;
}
static bool is_not_alias(const RNode *n)
{
    return n->kind != RK_ALIAS;
}
static bool can_readonly(const RNode *n)
{
    return n->kind == RK_RAM || n->kind == RK_RAM_PTR || n->kind == RK_ALIAS;
}
static bool destroyable(const RNode *n)
{
    if (n->is_root || n->parent || n->alias_refs)
        return false;
    for (size_t i = 0; i < n->model->nnodes; i++)
        if (n->model->nodes[i]->parent == n)
            return false;
    return true;
}
static bool busy(const RNode *n)
{
    return !n->is_root && !destroyable(n);
}

static void mut_add(Model *m, RNode *sub)
{
    if (!sub)
        sub = random_node(m, is_detached);
    if (!sub || !is_detached(sub))
        return;
    RNode *c = NULL;
    for (int tries = 0; tries < 8 && !c; tries++) {
        RNode *x = random_node(m, is_container);
        if (x && !reaches(m, sub, x, 0))
            c = x;
    }
    if (!c)
        return;
    uint64_t o = place(m, c, sub);
    bool overlap = chance(m, 55);
    int prio = 0;
    if (overlap)
        prio = chance(m, 5) ? (chance(m, 50) ? INT32_MAX : INT32_MIN) : (int)rnd_below(m, 7) - 3;
    enum expect e = predict(m, c, sub, o, overlap);
    int r = overlap ? memory_region_add_subregion_overlap(c->mr, o, sub->mr, prio)
                    : memory_region_add_subregion(c->mr, o, sub->mr);
    tr(m, "add%s %s into %s at 0x%" PRIx64 " prio %d -> %d", overlap ? "_overlap" : "", nm(sub),
       nm(c), o, prio, r);
    char what[160];
    snprintf(what, sizeof(what), "add_subregion%s(%s, 0x%" PRIx64 ", %s)",
             overlap ? "_overlap" : "", nm(c), o, nm(sub));
    check_expect(m, e, r, what);
    if (r == 0) {
        sub->parent = c;
        sub->addr = o;
        sub->priority = prio;
        sub->overlap = overlap;
        sub->seq = ++m->seq;
    }
    if (memory_region_get_container(sub->mr) != (r == 0 ? c->mr : NULL))
        fail(m, "get_container(%s) wrong after %s -> %d", nm(sub), what, r);

    /* An attached region cannot be added a second time. */
    if (r == 0 && chance(m, 10)) {
        r = memory_region_add_subregion_overlap(c->mr, 0, sub->mr, 1);
        tr(m, "add again %s -> %d", nm(sub), r);
        check_expect(m, MUST_FAIL, r, "adding an attached region again");
    }
}

static void mut_del(Model *m)
{
    RNode *n = random_node(m, is_attached);
    if (!n)
        return;
    if (chance(m, 15)) {
        RNode *other = random_node(m, is_container);
        if (other && other != n->parent) {
            int r = memory_region_del_subregion(other->mr, n->mr);
            tr(m, "del %s from wrong container %s -> %d", nm(n), nm(other), r);
            check_expect(m, MUST_FAIL, r, "del_subregion from the wrong container");
        }
    }
    int r = memory_region_del_subregion(n->parent->mr, n->mr);
    tr(m, "del %s from %s -> %d", nm(n), nm(n->parent), r);
    check_expect(m, MUST_OK, r, "del_subregion");
    n->parent = NULL;
    if (memory_region_get_container(n->mr) != NULL)
        fail(m, "get_container(%s) not NULL after del", nm(n));
}

static void mut_move(Model *m)
{
    RNode *n = random_node(m, not_root);
    if (!n)
        return;
    if (!n->parent) {
        uint64_t a = rnd(m);
        int r = memory_region_set_address(n->mr, a);
        tr(m, "set_address detached %s 0x%" PRIx64 " -> %d", nm(n), a, r);
        if (r == 0)
            n->addr = a;
        return;
    }
    uint64_t o = place(m, n->parent, n);
    enum expect e = predict(m, n->parent, n, o, n->overlap);
    int r = memory_region_set_address(n->mr, o);
    tr(m, "set_address %s 0x%" PRIx64 " -> 0x%" PRIx64 " -> %d", nm(n), n->addr, o, r);
    check_expect(m, e, r, "set_address");
    if (r == 0 && o != n->addr) {
        n->addr = o;
        n->seq = ++m->seq; /* QEMU re-inserts a moved region: newest on ties */
    }
}

static void mut_alias_offset(Model *m)
{
    if (chance(m, 10)) {
        RNode *x = random_node(m, is_not_alias);
        if (x) {
            int r = memory_region_set_alias_offset(x->mr, 0);
            tr(m, "set_alias_offset non-alias %s -> %d", nm(x), r);
            check_expect(m, MUST_FAIL, r, "set_alias_offset on a non-alias");
        }
        return;
    }
    RNode *n = random_node(m, is_alias);
    if (!n)
        return;
    uint64_t off;
    s128 room = n->target->size - n->size;
    if (room >= 0 && chance(m, 85))
        off = pick_in(m, room + 1);
    else
        off = pick_in(m, n->target->size);
    enum expect e = (s128)off + n->size <= n->target->size ? MUST_OK : EITHER;
    int r = memory_region_set_alias_offset(n->mr, off);
    tr(m, "set_alias_offset %s 0x%" PRIx64 " -> %d", nm(n), off, r);
    check_expect(m, e, r, "set_alias_offset");
    if (r == 0)
        n->alias_off = off;
}

static void mut_destroy(Model *m)
{
    if (chance(m, 30)) { /* destroying a busy region must fail */
        RNode *n = random_node(m, busy);
        if (n) {
            int r = memory_region_destroy(n->mr);
            tr(m, "destroy busy %s -> %d", nm(n), r);
            check_expect(m, MUST_FAIL, r, "destroy of a mapped/parent/aliased region");
            return;
        }
    }
    RNode *n = random_node(m, destroyable);
    if (!n)
        return;
    int r = memory_region_destroy(n->mr);
    tr(m, "destroy %s -> %d", nm(n), r);
    check_expect(m, MUST_OK, r, "destroy");
    if (n->target)
        n->target->alias_refs--;
    node_free(m, n);
}

void attach_some(Model *m, unsigned pct)
{
    for (size_t i = 0; i < m->nnodes; i++)
        if (chance(m, pct))
            mut_add(m, m->nodes[i]);
}

void mutate(Model *m)
{
    unsigned k = (unsigned)rnd_below(m, 100);
    if (k < 28) {
        mut_add(m, NULL);
    } else if (k < 36) {
        mut_del(m);
    } else if (k < 47) {
        RNode *n = random_node(m, not_root);
        if (n) {
            /* mostly re-enable, so that about 30% of regions are off */
            bool en = !n->enabled || chance(m, 60);
            memory_region_set_enabled(n->mr, en);
            tr(m, "set_enabled %s %d", nm(n), en);
            n->enabled = en;
        }
    } else if (k < 60) {
        mut_move(m);
    } else if (k < 68) {
        mut_alias_offset(m);
    } else if (k < 75) {
        RNode *n = random_node(m, can_readonly);
        if (n) {
            bool ro = chance(m, 60);
            memory_region_set_readonly(n->mr, ro);
            tr(m, "set_readonly %s %d", nm(n), ro);
            n->readonly = ro;
        }
    } else if (k < 77) {
        RNode *n = random_node(m, not_root);
        if (n) {
            bool nv = chance(m, 50);
            memory_region_set_nonvolatile(n->mr, nv);
            tr(m, "set_nonvolatile %s %d", nm(n), nv);
            n->nonvolatile = nv;
        }
    } else if (k < 81) {
        RNode *n = random_node(m, is_romdev);
        if (n) {
            bool rd = chance(m, 50);
            memory_region_rom_device_set_readable(n->mr, rd);
            tr(m, "rom_device_set_readable %s %d", nm(n), rd);
            n->romd = rd;
            if (memory_region_is_romd(n->mr) != rd)
                fail(m, "memory_region_is_romd(%s) != %d", nm(n), rd);
        }
    } else if (k < 92) {
        node_create(m, (enum rkind)rnd_below(m, RK_ALIAS + 1));
    } else if (m->depth == 0) {
        mut_destroy(m);
    }
}
