/* SPDX-License-Identifier: MIT */
/*
 * State as typed data: a plain C struct and a field table saying what each
 * member is on the wire, so that one encoder writes it to a state stream
 * (memory/state-stream.h) and one decoder reads and bounds-checks it back.
 *
 *     typedef struct FooState { uint16_t divider; uint8_t n; uint8_t fifo[16]; } FooState;
 *     static const StateField foo_fields[] = {
 *         STATE_U16(FooState, divider),
 *         STATE_U8(FooState, n),
 *         STATE_U8_VARRAY(FooState, fifo, n),      // n elements, n <= 16
 *     };
 *     const StateTable foo_table = STATE_TABLE(FooState, foo_fields);
 *
 * Encoding: the fields in table order, each element a little-endian
 * integer of the field's width (u8, u16, u32, u64), raw bytes (BYTES) or a
 * struct by its own table (STRUCT); nothing else (no padding, no names, no
 * tags), so a table describes an existing format exactly.  An array is
 * all its elements, or, when counted, as many as an earlier integer field
 * of the same table says (at most the array's length: the decoder refuses
 * more).  The macros check at compile time that each member has the width
 * its kind says.
 *
 * What the decoder checks is the format only (truncation, counts within
 * the struct); whether the values make sense for a device is the device's
 * own, hand-written check on the decoded struct, before it installs it.
 */
#ifndef STRATA_MEMORY_STATE_TABLE_H
#define STRATA_MEMORY_STATE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "memory/state-stream.h"

typedef enum StateKind {
    STATE_KIND_U8 = 1,
    STATE_KIND_U16,
    STATE_KIND_U32,
    STATE_KIND_U64,
    STATE_KIND_BYTES,  /* `size` raw bytes per element */
    STATE_KIND_STRUCT, /* an element is a struct encoded by `table` */
} StateKind;

typedef struct StateTable StateTable;

typedef struct StateField {
    const char *name;        /* the member ("rx_fifo", "exception.nr"), for messages */
    size_t offset;           /* offsetof the member */
    uint8_t kind;            /* StateKind */
    size_t size;             /* bytes of one element in the struct */
    size_t count;            /* elements in the member (1, or the array's length) */
    const char *count_field; /* NULL, or the earlier integer field that says how many
                                 * elements are encoded (at most count) */
    const StateTable *table; /* STATE_KIND_STRUCT: the element's table */
} StateField;

struct StateTable {
    const char *name; /* the struct, for messages */
    size_t size;      /* sizeof the struct */
    const StateField *fields;
    size_t nfields;
};

/* 0, or a compile-time error if member m of T is not n bytes. */
#define STATE_CHECK_SIZE(T, m, n) (0 * sizeof(char[sizeof(((T *)0)->m) == (n) ? 1 : -1]))

#define STATE_FIELD_(T, m, k, esize, n, cnt, tbl) \
    { \
        .name = #m, .offset = offsetof(T, m), .kind = (k), .size = (esize), .count = (n), \
        .count_field = (cnt), .table = (tbl) \
    }
#define STATE_INT_(T, m, k, w) STATE_FIELD_(T, m, k, (w) + STATE_CHECK_SIZE(T, m, w), 1, NULL, NULL)
/* m names a member (->m[0]), which cannot be parenthesised */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define STATE_ARRAY_(T, m, k, w, cnt) \
    STATE_FIELD_(T, m, k, (w) + STATE_CHECK_SIZE(T, m[0], w), sizeof(((T *)0)->m) / (w), cnt, NULL)
/* NOLINTEND(bugprone-macro-parentheses) */

/* One integer member of T. */
#define STATE_U8(T, m) STATE_INT_(T, m, STATE_KIND_U8, 1)
#define STATE_U16(T, m) STATE_INT_(T, m, STATE_KIND_U16, 2)
#define STATE_U32(T, m) STATE_INT_(T, m, STATE_KIND_U32, 4)
#define STATE_U64(T, m) STATE_INT_(T, m, STATE_KIND_U64, 8)
/* An array member of T: every element. */
#define STATE_U8_ARRAY(T, m) STATE_ARRAY_(T, m, STATE_KIND_U8, 1, NULL)
#define STATE_U32_ARRAY(T, m) STATE_ARRAY_(T, m, STATE_KIND_U32, 4, NULL)
#define STATE_U64_ARRAY(T, m) STATE_ARRAY_(T, m, STATE_KIND_U64, 8, NULL)
/* An array member of T: the first `countm` elements (countm: an earlier
 * integer member of T). */
#define STATE_U8_VARRAY(T, m, countm) STATE_ARRAY_(T, m, STATE_KIND_U8, 1, #countm)
/* A member of T as raw bytes, all sizeof of it. */
#define STATE_BYTES(T, m) STATE_FIELD_(T, m, STATE_KIND_BYTES, sizeof(((T *)0)->m), 1, NULL, NULL)
/* A struct member of T, encoded by table tbl (a StateTable *). */
#define STATE_STRUCT(T, m, tbl) \
    STATE_FIELD_(T, m, STATE_KIND_STRUCT, sizeof(((T *)0)->m), 1, NULL, tbl)
/* A struct array member of T, its first `countm` elements by table tbl. */
#define STATE_STRUCT_VARRAY(T, m, tbl, countm) \
    STATE_FIELD_(T, m, STATE_KIND_STRUCT, sizeof(((T *)0)->m[0]), \
                 sizeof(((T *)0)->m) / sizeof(((T *)0)->m[0]), #countm, tbl)
/* An array member of T: every element, by table tbl. */
#define STATE_STRUCT_ARRAY(T, m, tbl) \
    STATE_FIELD_(T, m, STATE_KIND_STRUCT, sizeof(((T *)0)->m[0]), \
                 sizeof(((T *)0)->m) / sizeof(((T *)0)->m[0]), NULL, tbl)
/* The table of struct T from its field array. */
#define STATE_TABLE(T, fields_) \
    { \
        .name = #T, .size = sizeof(T), .fields = (fields_), \
        .nfields = sizeof(fields_) / sizeof((fields_)[0]) \
    }

/* Appends *obj's fields to w.  0, or -EINVAL (nothing sensible written) if
 * a count exceeds its array or the table is malformed. */
int state_encode(StateWriter *w, const StateTable *t, const void *obj);

/* Reads t's fields from r into *obj (members not in the table, and array
 * elements past a count, are left as they were).  0, or -EINVAL with a
 * reason naming the field ("truncated at vq[1].desc") in err; *obj is then
 * partly written, and r has failed if the reason was truncation. */
int state_decode(StateReader *r, const StateTable *t, void *obj, char *err, size_t errlen);

/* What state_walk reports: one integer or byte run of the encoding, its
 * path in the struct ("vq[1].desc") and where it lies in the encoding. */
typedef void (*StateWalkFn)(void *opaque, const char *path, size_t wire_offset, size_t wire_len);
/* Calls fn for each element that state_encode would write for *obj, in
 * stream order (tests find a field's bytes with it).  0 or -EINVAL as
 * state_encode. */
int state_walk(const StateTable *t, const void *obj, StateWalkFn fn, void *opaque);

/* One kind of section: what a device (or the vCPU code) saves, whole. */
typedef struct StateSection {
    const char *what; /* messages say "<what> state: ..." ("serial") */
    uint32_t magic;
    uint16_t version;        /* written; a reader takes 1..version */
    const StateTable *table; /* the payload */
} StateSection;

/* *obj as one section s in a malloc()ed buffer: 0, -EINVAL (see
 * state_encode) or -ENOMEM. */
int state_save_section(const StateSection *s, const void *obj, uint8_t **buf, size_t *len);
/*
 * Reads [buf, buf+len), which must be exactly one section s, into *obj
 * (zeroed first), decoding the whole payload with s->table.  0, or -EINVAL
 * / -ENODATA with "<what> state: <reason>" in err (bad section, trailing
 * bytes after it, a truncated payload, a count too large, bytes the
 * version does not define).
 */
int state_load_section(const StateSection *s, const uint8_t *buf, size_t len, void *obj, char *err,
                       size_t errlen);
/* A device refusing a decoded state: "<what> state: <fmt...>" into err,
 * returns -EINVAL. */
int state_refuse(const StateSection *s, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* STRATA_MEMORY_STATE_TABLE_H */
