/* SPDX-License-Identifier: MIT */
/* State structs to and from state streams by field tables (see state-table.h). */
#include "memory/state-table.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define WALK_DEPTH 8

/*
 * One traversal serves encoding, decoding and state_walk: it visits every
 * element that is on the wire, in order, and hands each integer or byte
 * run to `leaf`.  Counts are read from obj when their array is reached, so
 * while decoding they are the values just decoded.
 */
typedef struct Walk Walk;
struct Walk {
    int (*leaf)(Walk *w, const StateField *f, size_t off);
    const uint8_t *obj; /* the root struct (read: counts, encoding) */
    uint8_t *out;       /* the root struct (decoding writes it) */
    StateWriter *wr;
    StateReader *rd;
    StateWalkFn fn;
    void *opaque;
    size_t wire; /* bytes of encoding so far */
    char *err;
    size_t errlen;
    unsigned depth; /* the path to the element being visited */
    const char *path_name[WALK_DEPTH];
    size_t path_idx[WALK_DEPTH];
    bool path_indexed[WALK_DEPTH];
};

static size_t kind_width(uint8_t kind)
{
    switch (kind) {
    case STATE_KIND_U8:
        return 1;
    case STATE_KIND_U16:
        return 2;
    case STATE_KIND_U32:
        return 4;
    case STATE_KIND_U64:
        return 8;
    default:
        return 0;
    }
}

/* "vq[1].desc": the path of the element being visited, into buf. */
static const char *path_str(const Walk *w, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (unsigned i = 0; i < w->depth && used < n; i++) {
        int k = w->path_indexed[i]
                    ? snprintf(buf + used, n - used, "%s%s[%zu]", i ? "." : "", w->path_name[i],
                               w->path_idx[i])
                    : snprintf(buf + used, n - used, "%s%s", i ? "." : "", w->path_name[i]);
        if (k < 0)
            break;
        used += (size_t)k;
    }
    return buf;
}

static int walk_fail(Walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int walk_fail(Walk *w, const char *fmt, ...)
{
    char path[160], msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (w->err && w->errlen)
        snprintf(w->err, w->errlen, "%s: %s", path_str(w, path, sizeof(path)), msg);
    return -EINVAL;
}

static uint64_t load_int(const uint8_t *p, size_t width)
{
    uint8_t v8;
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    switch (width) {
    case 1:
        memcpy(&v8, p, 1);
        return v8;
    case 2:
        memcpy(&v16, p, 2);
        return v16;
    case 4:
        memcpy(&v32, p, 4);
        return v32;
    default:
        memcpy(&v64, p, 8);
        return v64;
    }
}

static void store_int(uint8_t *p, size_t width, uint64_t v)
{
    uint8_t v8 = (uint8_t)v;
    uint16_t v16 = (uint16_t)v;
    uint32_t v32 = (uint32_t)v;
    switch (width) {
    case 1:
        memcpy(p, &v8, 1);
        break;
    case 2:
        memcpy(p, &v16, 2);
        break;
    case 4:
        memcpy(p, &v32, 4);
        break;
    default:
        memcpy(p, &v, 8);
        break;
    }
}

static void put_int(StateWriter *wr, size_t width, uint64_t v)
{
    switch (width) {
    case 1:
        state_put_u8(wr, (uint8_t)v);
        break;
    case 2:
        state_put_u16(wr, (uint16_t)v);
        break;
    case 4:
        state_put_u32(wr, (uint32_t)v);
        break;
    default:
        state_put_u64(wr, v);
        break;
    }
}

static uint64_t get_int(StateReader *rd, size_t width)
{
    switch (width) {
    case 1:
        return state_get_u8(rd);
    case 2:
        return state_get_u16(rd);
    case 4:
        return state_get_u32(rd);
    default:
        return state_get_u64(rd);
    }
}

/* How many elements of field i (of table t, at base) are on the wire. */
static int field_count(Walk *w, const StateTable *t, size_t i, size_t base, size_t *n)
{
    const StateField *f = &t->fields[i];
    if (!f->count_field) {
        *n = f->count;
        return 0;
    }
    for (size_t j = 0; j < i; j++) {
        const StateField *c = &t->fields[j];
        size_t width = kind_width(c->kind);
        if (strcmp(c->name, f->count_field) || !width || c->count != 1 || c->count_field)
            continue;
        uint64_t v = load_int(w->obj + base + c->offset, width);
        if (v > f->count)
            return walk_fail(w, "%s %llu is more than the %zu it can hold", c->name,
                             (unsigned long long)v, f->count);
        *n = (size_t)v;
        return 0;
    }
    return walk_fail(w, "table error: no integer field %s before it", f->count_field);
}

static int walk_table(Walk *w, const StateTable *t, size_t base);

static int walk_elem(Walk *w, const StateField *f, size_t off)
{
    if (f->kind != STATE_KIND_STRUCT) {
        if (f->kind != STATE_KIND_BYTES && kind_width(f->kind) != f->size)
            return walk_fail(w, "table error: kind %u of %zu bytes", f->kind, f->size);
        return w->leaf(w, f, off);
    }
    if (!f->table || f->table->size != f->size)
        return walk_fail(w, "table error: bad struct element");
    return walk_table(w, f->table, off);
}

static int walk_field(Walk *w, const StateTable *t, size_t i, size_t base)
{
    const StateField *f = &t->fields[i];
    size_t n = 0;
    if (w->depth >= WALK_DEPTH)
        return walk_fail(w, "table error: nested more than %u deep", WALK_DEPTH);
    unsigned d = w->depth++;
    w->path_name[d] = f->name;
    w->path_indexed[d] = false;
    int r = field_count(w, t, i, base, &n);
    for (size_t e = 0; r == 0 && e < n; e++) {
        w->path_idx[d] = e;
        w->path_indexed[d] = f->count > 1;
        r = walk_elem(w, f, base + f->offset + e * f->size);
    }
    w->depth = d;
    return r;
}

static int walk_table(Walk *w, const StateTable *t, size_t base)
{
    for (size_t i = 0; i < t->nfields; i++) {
        int r = walk_field(w, t, i, base);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- the three leaves ------------------------------------------------------ */

static int encode_leaf(Walk *w, const StateField *f, size_t off)
{
    size_t width = kind_width(f->kind);
    if (width)
        put_int(w->wr, width, load_int(w->obj + off, width));
    else
        state_put_bytes(w->wr, w->obj + off, f->size);
    return 0;
}

static int decode_leaf(Walk *w, const StateField *f, size_t off)
{
    size_t width = kind_width(f->kind);
    size_t at = w->rd->pos;
    if (width)
        store_int(w->out + off, width, get_int(w->rd, width));
    else
        state_get_bytes(w->rd, w->out + off, f->size);
    if (w->rd->failed)
        return walk_fail(w, "truncated (%zu bytes at payload byte %zu, %zu left)",
                         width ? width : f->size, at, w->rd->len - at);
    return 0;
}

static int span_leaf(Walk *w, const StateField *f, size_t off)
{
    char path[160];
    size_t n = f->kind == STATE_KIND_BYTES ? f->size : kind_width(f->kind);
    (void)off;
    w->fn(w->opaque, path_str(w, path, sizeof(path)), w->wire, n);
    w->wire += n;
    return 0;
}

/* ---- entry points ----------------------------------------------------------- */

int state_encode(StateWriter *wr, const StateTable *t, const void *obj)
{
    Walk w = { .leaf = encode_leaf, .obj = obj, .wr = wr };
    return walk_table(&w, t, 0);
}

int state_decode(StateReader *rd, const StateTable *t, void *obj, char *err, size_t errlen)
{
    Walk w = {
        .leaf = decode_leaf, .obj = obj, .out = obj, .rd = rd, .err = err, .errlen = errlen
    };
    return walk_table(&w, t, 0);
}

int state_walk(const StateTable *t, const void *obj, StateWalkFn fn, void *opaque)
{
    Walk w = { .leaf = span_leaf, .obj = obj, .fn = fn, .opaque = opaque };
    return walk_table(&w, t, 0);
}

int state_save_section(const StateSection *s, const void *obj, uint8_t **buf, size_t *len)
{
    StateWriter w;
    state_writer_init(&w);
    size_t sec = state_section_begin(&w, s->magic, s->version);
    if (state_encode(&w, s->table, obj) < 0) {
        state_writer_free(&w);
        return -EINVAL;
    }
    state_section_end(&w, sec);
    return state_writer_finish(&w, buf, len);
}

int state_refuse(const StateSection *s, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(err, errlen, "%s state: %s", s->what, msg);
    }
    return -EINVAL;
}

int state_load_section(const StateSection *s, const uint8_t *buf, size_t len, void *obj, char *err,
                       size_t errlen)
{
    StateReader r, p;
    uint16_t v;
    char why[200];
    memset(obj, 0, s->table->size);
    state_reader_init(&r, buf, len);
    int ret = state_section_open(&r, s->magic, s->version, &v, &p, why, sizeof(why));
    if (ret < 0) {
        state_refuse(s, err, errlen, "%s", why);
        return ret;
    }
    if (!state_reader_done(&r))
        return state_refuse(s, err, errlen, "trailing bytes after the section (%zu)",
                            r.len - r.pos);
    if (state_decode(&p, s->table, obj, why, sizeof(why)) < 0)
        return state_refuse(s, err, errlen, "%s", why);
    if (!state_reader_done(&p))
        return state_refuse(s, err, errlen,
                            "payload longer than version %u defines (%zu more bytes)", v,
                            p.len - p.pos);
    return 0;
}
