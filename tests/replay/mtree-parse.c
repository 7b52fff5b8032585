/* SPDX-License-Identifier: MIT */
/*
 * Parser for `info mtree -D` / `info mtree -f -D` text; see mtree-parse.h.
 */
#include "tests/replay/mtree-parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MTP_MAX_DEPTH 256u      /* deeper trees are rejected, not recursed into */
#define MTP_MAX_LINE (1u << 20) /* longer lines are rejected */

typedef struct Parser {
    MtpDump *d;
    MtpSection *cur; /* open section, NULL between sections */
    unsigned line;
    char *err;
    size_t errlen;
    unsigned stack[MTP_MAX_DEPTH + 1]; /* node index per depth (open tree) */
    bool fv_root_seen;
} Parser;

static int fail(Parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(Parser *p, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->errlen) {
        snprintf(p->err, p->errlen, "line %u: %s", p->line, msg);
    }
    return -1;
}

/*
 * Makes room for element n (n elements present) in *arrp.  Capacity is
 * implicit: 8, then doubling, so it is reallocated exactly when n is 0 or a
 * power of two >= 8.
 */
static int grow(void *arrp, unsigned n, size_t sz)
{
    void **arr = arrp;
    unsigned ncap;
    void *q;

    if (n != 0 && (n < 8 || (n & (n - 1)) != 0)) {
        return 0;
    }
    if (n >= (1u << 28)) {
        return -1;
    }
    ncap = n ? n * 2 : 8;
    q = realloc(*arr, (size_t)ncap * sz);
    if (!q) {
        return -1;
    }
    memset((char *)q + (size_t)n * sz, 0, (size_t)(ncap - n) * sz);
    *arr = q;
    return 0;
}

/* Appends a copy of s to a string array of *n elements. */
static int push_str(char ***arr, unsigned *n, const char *s)
{
    char *c;

    if (grow(arr, *n, sizeof(char *)) < 0) {
        return -1;
    }
    c = strdup(s);
    if (!c) {
        return -1;
    }
    (*arr)[(*n)++] = c;
    return 0;
}

const char *mtp_type_name(MtpType t)
{
    switch (t) {
    case MTP_RAM:
        return "ram";
    case MTP_ROM:
        return "rom";
    case MTP_ROMD:
        return "romd";
    case MTP_RAMD:
        return "ramd";
    case MTP_IO:
        return "i/o";
    }
    return "?";
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Parses 1..16 hex digits at *s; advances *s. */
static bool parse_hex(const char **s, uint64_t *v)
{
    const char *q = *s;
    uint64_t x = 0;
    unsigned n = 0;

    while (is_hex(*q)) {
        if (++n > 16) {
            return false;
        }
        x = x * 16 + (uint64_t)(*q <= '9' ? *q - '0' : (*q | 0x20) - 'a' + 10);
        q++;
    }
    if (!n) {
        return false;
    }
    *s = q;
    *v = x;
    return true;
}

/* Parses a decimal int32 at *s; advances *s. */
static bool parse_int32(const char **s, int32_t *v)
{
    const char *q = *s;
    bool neg = false;
    int64_t x = 0;
    unsigned n = 0;

    if (*q == '-') {
        neg = true;
        q++;
    }
    while (*q >= '0' && *q <= '9') {
        x = x * 10 + (*q - '0');
        if (++n > 10 || x > (int64_t)INT32_MAX + 1) {
            return false;
        }
        q++;
    }
    if (!n) {
        return false;
    }
    if (neg) {
        x = -x;
    }
    if (x > INT32_MAX || x < INT32_MIN) {
        return false;
    }
    *s = q;
    *v = (int32_t)x;
    return true;
}

static bool skip_lit(const char **s, const char *lit)
{
    size_t n = strlen(lit);

    if (strncmp(*s, lit, n) != 0) {
        return false;
    }
    *s += n;
    return true;
}

/*
 * "START-END (prio P, TYPE): " -> the rest of the line, or NULL.
 */
static const char *parse_prefix(const char *s, uint64_t *start, uint64_t *end, int32_t *prio,
                                MtpType *type, bool *nv)
{
    static const struct {
        const char *s;
        MtpType t;
    } types[] = {
        { "romd): ", MTP_ROMD }, { "ramd): ", MTP_RAMD }, { "ram): ", MTP_RAM },
        { "rom): ", MTP_ROM },   { "i/o): ", MTP_IO },
    };
    size_t i;

    if (!parse_hex(&s, start) || !skip_lit(&s, "-") || !parse_hex(&s, end) ||
        !skip_lit(&s, " (prio ") || !parse_int32(&s, prio) || !skip_lit(&s, ", ")) {
        return NULL;
    }
    *nv = skip_lit(&s, "nv-");
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (skip_lit(&s, types[i].s)) {
            *type = types[i].t;
            return s;
        }
    }
    return NULL;
}

static char *dup_range(const char *s, size_t n)
{
    char *c = malloc(n + 1);

    if (c) {
        memcpy(c, s, n);
        c[n] = 0;
    }
    return c;
}

/* Does s[0..n) end with " HEX-HEX"?  Fills the numbers and the token start. */
static bool tail_range(const char *s, size_t n, uint64_t *a, uint64_t *b, size_t *tok)
{
    size_t i = n;
    const char *q;

    while (i > 0 && s[i - 1] != ' ') {
        i--;
    }
    if (i == 0) {
        return false;
    }
    q = s + i;
    if (!parse_hex(&q, a) || *q != '-') {
        return false;
    }
    q++;
    if (!parse_hex(&q, b) || q != s + n) {
        return false;
    }
    *tok = i - 1; /* index of the space */
    return true;
}

static int parse_tree_line(Parser *p, const char *ln)
{
    MtpSection *sec = p->cur;
    const char *s = ln, *rest;
    unsigned spaces = 0, depth;
    MtpNode *n;
    size_t len;

    while (*s == ' ') {
        spaces++;
        s++;
    }
    if (spaces < 2 || spaces % 2) {
        return fail(p, "bad indentation (%u spaces)", spaces);
    }
    depth = spaces / 2;
    if (depth > MTP_MAX_DEPTH) {
        return fail(p, "tree deeper than %u levels", MTP_MAX_DEPTH);
    }
    if (sec->nr_nodes == 0 && depth != 1) {
        return fail(p, "first region of a section must have 2 spaces of indent");
    }
    if (sec->nr_nodes > 0) {
        if (depth == 1) {
            return fail(p, "second root region in one section");
        }
        if (depth > sec->nodes[sec->nr_nodes - 1].depth + 1) {
            return fail(p, "indent jumps by more than one level");
        }
    }
    if (grow(&sec->nodes, sec->nr_nodes, sizeof(MtpNode)) < 0) {
        return fail(p, "out of memory");
    }
    n = &sec->nodes[sec->nr_nodes];
    memset(n, 0, sizeof(*n));
    n->line = p->line;
    n->depth = depth;
    rest = parse_prefix(s, &n->start, &n->end, &n->prio, &n->type, &n->nv);
    if (!rest) {
        return fail(p, "expected 'START-END (prio P, TYPE): NAME'");
    }
    if (n->end < n->start) {
        return fail(p, "range end below its start");
    }
    len = strlen(rest);
    if (len >= 11 && strcmp(rest + len - 11, " [disabled]") == 0) {
        n->disabled = true;
        len -= 11;
    }
    if (len >= 6 && strncmp(rest, "alias ", 6) == 0) {
        size_t tok, at;
        uint64_t a, b;

        if (tail_range(rest, len, &a, &b, &tok)) {
            /* the last " @" before the range separates name and target */
            for (at = tok; at > 6; at--) {
                if (rest[at - 1] == ' ' && rest[at] == '@') {
                    break;
                }
            }
            if (at > 6) {
                if (b < a) {
                    return fail(p, "alias range end below its start");
                }
                n->is_alias = true;
                n->name = dup_range(rest + 6, at - 1 - 6);
                n->alias_target = dup_range(rest + at + 1, tok - at - 1);
                n->alias_start = a;
                n->alias_end = b;
                if (!n->name || !n->alias_target) {
                    free(n->name);
                    free(n->alias_target);
                    return fail(p, "out of memory");
                }
            }
        }
    }
    if (!n->is_alias) {
        n->name = dup_range(rest, len);
        if (!n->name) {
            return fail(p, "out of memory");
        }
    }
    n->text = strdup(ln);
    if (!n->text) {
        free(n->name);
        free(n->alias_target);
        return fail(p, "out of memory");
    }
    n->subtree = 1;
    if (depth == 1) {
        n->parent = -1;
    } else {
        unsigned par = p->stack[depth - 1], d;

        n->parent = (int)par;
        sec->nodes[par].nr_children++;
        for (d = 1; d < depth; d++) {
            sec->nodes[p->stack[d]].subtree++;
        }
    }
    p->stack[depth] = sec->nr_nodes;
    sec->nr_nodes++;
    return 0;
}

static int body_push(Parser *p, const char *ln)
{
    MtpSection *sec = p->cur;

    if (push_str(&sec->body, &sec->nr_body, ln) < 0) {
        return fail(p, "out of memory");
    }
    return 0;
}

static int header_push(Parser *p, const char *ln)
{
    MtpSection *sec = p->cur;

    if (push_str(&sec->header, &sec->nr_header, ln) < 0) {
        return fail(p, "out of memory");
    }
    return 0;
}

static int name_push(Parser *p, const char *name, const char *root)
{
    MtpSection *sec = p->cur;
    unsigned n = sec->nr_names;

    if (push_str(&sec->names, &sec->nr_names, name) < 0) {
        return fail(p, "out of memory");
    }
    if (sec->kind == MTP_SEC_FV) {
        if (push_str(&sec->as_roots, &n, root ? root : "") < 0) {
            return fail(p, "out of memory");
        }
    }
    return 0;
}

static int open_section(Parser *p, MtpSectionKind kind)
{
    MtpDump *d = p->d;

    if (grow(&d->sections, d->nr_sections, sizeof(MtpSection)) < 0) {
        return fail(p, "out of memory");
    }
    p->cur = &d->sections[d->nr_sections++];
    memset(p->cur, 0, sizeof(*p->cur));
    p->cur->kind = kind;
    p->cur->line = p->line;
    p->fv_root_seen = false;
    return 0;
}

static int parse_fv_line(Parser *p, const char *ln)
{
    MtpSection *sec = p->cur;
    const char *s;

    if (strncmp(ln, " AS \"", 5) == 0) {
        const char *q = strstr(ln + 5, "\", root: ");
        char *name, *root;
        const char *r, *al;
        int rc;

        if (p->fv_root_seen) {
            return fail(p, "' AS' line after the root line");
        }
        if (!q) {
            return fail(p, "expected ' AS \"NAME\", root: ROOT'");
        }
        /* a name may itself contain '", root: ': take the last one */
        for (r = q; (r = strstr(r + 1, "\", root: ")) != NULL;) {
            q = r;
        }
        r = q + 9;
        al = strstr(r, ", alias ");
        name = dup_range(ln + 5, (size_t)(q - ln - 5));
        root = al ? dup_range(r, (size_t)(al - r)) : strdup(r);
        if (!name || !root) {
            free(name);
            free(root);
            return fail(p, "out of memory");
        }
        rc = name_push(p, name, root);
        free(name);
        free(root);
        return rc < 0 ? rc : header_push(p, ln);
    }
    if (strncmp(ln, " Root memory region: ", 21) == 0) {
        if (p->fv_root_seen) {
            return fail(p, "second root line in one FlatView");
        }
        p->fv_root_seen = true;
        if (strcmp(ln + 21, "(none)") != 0) {
            sec->fv_root = strdup(ln + 21);
            if (!sec->fv_root) {
                return fail(p, "out of memory");
            }
        }
        return header_push(p, ln);
    }
    if (!p->fv_root_seen) {
        return fail(p, "expected ' AS' or ' Root memory region:' line");
    }
    if (strcmp(ln, "  No rendered FlatView") == 0) {
        if (sec->nr_ranges || sec->fv_empty) {
            return fail(p, "'No rendered FlatView' in a non-empty FlatView");
        }
        sec->fv_empty = true;
        return body_push(p, ln);
    }
    if (strncmp(ln, "  ", 2) == 0 && is_hex(ln[2])) {
        MtpRange *r;
        const char *rest;
        size_t len;

        if (sec->fv_empty) {
            return fail(p, "range after 'No rendered FlatView'");
        }
        if (grow(&sec->ranges, sec->nr_ranges, sizeof(MtpRange)) < 0) {
            return fail(p, "out of memory");
        }
        r = &sec->ranges[sec->nr_ranges];
        memset(r, 0, sizeof(*r));
        r->line = p->line;
        s = ln + 2;
        rest = parse_prefix(s, &r->start, &r->end, &r->prio, &r->type, &r->nv);
        if (!rest) {
            return fail(p, "expected '  START-END (prio P, TYPE): NAME[ @OFFSET]'");
        }
        if (r->end < r->start) {
            return fail(p, "range end below its start");
        }
        len = strlen(rest);
        if (len >= 18 && rest[len - 18] == ' ' && rest[len - 17] == '@') {
            const char *q = rest + len - 16;
            uint64_t off;

            if (parse_hex(&q, &off) && *q == 0) {
                r->offset = off;
                len -= 18;
            }
        }
        r->name = dup_range(rest, len);
        r->text = strdup(ln);
        if (!r->name || !r->text) {
            free(r->name);
            free(r->text);
            return fail(p, "out of memory");
        }
        sec->nr_ranges++;
        return body_push(p, ln);
    }
    return fail(p, "unexpected text in a FlatView section");
}

static int parse_line(Parser *p, const char *ln)
{
    if (ln[0] == 0) {
        if (p->cur && p->cur->kind != MTP_SEC_FV && p->cur->nr_nodes == 0) {
            return fail(p, "blank line before the section's tree");
        }
        p->cur = NULL;
        return 0;
    }
    if (strncmp(ln, "address-space: ", 15) == 0) {
        if (!(p->cur && p->cur->kind == MTP_SEC_AS && p->cur->nr_nodes == 0)) {
            if (p->cur && p->cur->kind != MTP_SEC_FV && p->cur->nr_nodes == 0) {
                return fail(p, "section header without a tree");
            }
            if (open_section(p, MTP_SEC_AS) < 0) {
                return -1;
            }
        }
        if (name_push(p, ln + 15, NULL) < 0) {
            return -1;
        }
        return header_push(p, ln);
    }
    if (strncmp(ln, "memory-region: ", 15) == 0) {
        if (p->cur && p->cur->kind != MTP_SEC_FV && p->cur->nr_nodes == 0) {
            return fail(p, "section header without a tree");
        }
        if (open_section(p, MTP_SEC_MR) < 0 || name_push(p, ln + 15, NULL) < 0) {
            return -1;
        }
        return header_push(p, ln);
    }
    if (strncmp(ln, "FlatView #", 10) == 0) {
        const char *s = ln + 10;
        int32_t num;

        if (p->cur && p->cur->kind != MTP_SEC_FV && p->cur->nr_nodes == 0) {
            return fail(p, "section header without a tree");
        }
        if (!parse_int32(&s, &num) || *s || num < 0) {
            return fail(p, "expected 'FlatView #N'");
        }
        if (open_section(p, MTP_SEC_FV) < 0) {
            return -1;
        }
        p->cur->fv_number = (unsigned)num;
        return header_push(p, ln);
    }
    if (!p->cur) {
        return fail(p, "text outside a section: '%.60s'", ln);
    }
    if (p->cur->kind == MTP_SEC_FV) {
        return parse_fv_line(p, ln);
    }
    if (ln[0] != ' ') {
        return fail(p, "unexpected text: '%.60s'", ln);
    }
    if (parse_tree_line(p, ln) < 0) {
        return -1;
    }
    return body_push(p, ln);
}

int mtp_parse(const char *text, size_t len, MtpDump *out, char *err, size_t errlen)
{
    Parser p = { .d = out, .err = err, .errlen = errlen };
    size_t pos = 0;
    unsigned i;

    memset(out, 0, sizeof(*out));
    if (errlen) {
        err[0] = 0;
    }
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        char *ln;
        int rc;

        p.line++;
        if (n > MTP_MAX_LINE) {
            fail(&p, "line longer than %u bytes", MTP_MAX_LINE);
            goto bad;
        }
        if (memchr(text + pos, 0, n)) {
            fail(&p, "NUL byte in the text");
            goto bad;
        }
        ln = dup_range(text + pos, n);
        if (!ln) {
            fail(&p, "out of memory");
            goto bad;
        }
        if (n && ln[n - 1] == '\r') {
            ln[n - 1] = 0;
        }
        rc = parse_line(&p, ln);
        free(ln);
        if (rc < 0) {
            goto bad;
        }
        pos += n + (nl ? 1 : 0);
    }
    p.line++;
    if (p.cur && p.cur->kind != MTP_SEC_FV && p.cur->nr_nodes == 0) {
        fail(&p, "section header without a tree at the end of the text");
        goto bad;
    }
    for (i = 0; i < out->nr_sections; i++) {
        MtpSection *s = &out->sections[i];

        if (s->kind == MTP_SEC_FV && !s->fv_empty && s->nr_ranges == 0 && !s->nr_header) {
            p.line = s->line;
            fail(&p, "empty FlatView section");
            goto bad;
        }
    }
    return 0;
bad:
    mtp_dump_free(out);
    return -1;
}

void mtp_dump_free(MtpDump *d)
{
    unsigned i, j;

    for (i = 0; i < d->nr_sections; i++) {
        MtpSection *s = &d->sections[i];

        for (j = 0; j < s->nr_names; j++) {
            free(s->names[j]);
            if (s->as_roots) {
                free(s->as_roots[j]);
            }
        }
        free(s->names);
        free(s->as_roots);
        for (j = 0; j < s->nr_header; j++) {
            free(s->header[j]);
        }
        free(s->header);
        for (j = 0; j < s->nr_nodes; j++) {
            free(s->nodes[j].name);
            free(s->nodes[j].alias_target);
            free(s->nodes[j].text);
        }
        free(s->nodes);
        free(s->fv_root);
        for (j = 0; j < s->nr_ranges; j++) {
            free(s->ranges[j].name);
            free(s->ranges[j].text);
        }
        free(s->ranges);
        for (j = 0; j < s->nr_body; j++) {
            free(s->body[j]);
        }
        free(s->body);
    }
    free(d->sections);
    memset(d, 0, sizeof(*d));
}

char *mtp_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL, *q;
    size_t n = 0, cap = 0, r;

    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (cap - n < 65536) {
            if (cap > ((size_t)1 << 30)) {
                snprintf(err, errlen, "%s: file too large", path);
                goto bad;
            }
            cap = cap ? cap * 2 : 65536;
            q = realloc(buf, cap + 1);
            if (!q) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto bad;
            }
            buf = q;
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            break;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto bad;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
bad:
    fclose(f);
    free(buf);
    return NULL;
}
