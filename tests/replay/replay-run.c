/* SPDX-License-Identifier: MIT */
/*
 * One replay: parse a fixture, build the model, build it in a fresh memory
 * context, and compare strata's `info mtree -D` and `info mtree -f -D`
 * with the fixture section by section (sections matched by name: QEMU
 * prints them in hash-table order), line by line inside a section.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/replay/replay.h"

#define MAX_REPORTED 12 /* differing sections shown per fixture */

typedef struct Cmp {
    FILE *out;
    unsigned nr_diffs;
} Cmp;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted copy of strs joined by ", " (malloc()ed). */
static char *join_sorted(char **strs, unsigned n)
{
    char **c = calloc(n + 1, sizeof(*c));
    size_t len = 1;
    char *s;
    unsigned i;

    if (!c) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        c[i] = strs[i];
        len += strlen(strs[i]) + 2;
    }
    qsort(c, n, sizeof(*c), cmp_str);
    s = malloc(len);
    if (s) {
        s[0] = 0;
        for (i = 0; i < n; i++) {
            if (i) {
                strcat(s, ", ");
            }
            strcat(s, c[i]);
        }
    }
    free(c);
    return s;
}

/* Name under which sections are matched. */
static char *section_key(const MtpSection *s)
{
    return join_sorted(s->names, s->nr_names);
}

static void section_label(const MtpSection *s, char *buf, size_t len)
{
    char *k = section_key(s);

    switch (s->kind) {
    case MTP_SEC_AS:
        snprintf(buf, len, "address-space: %s", k ? k : "?");
        break;
    case MTP_SEC_MR:
        snprintf(buf, len, "memory-region: %s", k ? k : "?");
        break;
    case MTP_SEC_FV:
        snprintf(buf, len, "FlatView of AS %s", k ? k : "?");
        break;
    }
    free(k);
}

/* Fixture line number of body line i of s. */
static unsigned body_line(const MtpSection *s, unsigned i)
{
    if (s->kind != MTP_SEC_FV && i < s->nr_nodes) {
        return s->nodes[i].line;
    }
    if (s->kind == MTP_SEC_FV && i < s->nr_ranges) {
        return s->ranges[i].line;
    }
    return s->line;
}

static void report(Cmp *c, const MtpSection *e, unsigned line, const char *exp, const char *got)
{
    char label[512];

    if (c->nr_diffs++ >= MAX_REPORTED) {
        return;
    }
    section_label(e, label, sizeof(label));
    fprintf(c->out, "  [%s] fixture line %u\n    expected: %s\n    got:      %s\n", label, line,
            exp ? exp : "(nothing)", got ? got : "(nothing)");
}

static bool lines_equal(char **a, unsigned na, char **b, unsigned nb)
{
    unsigned i;

    if (na != nb) {
        return false;
    }
    for (i = 0; i < na; i++) {
        if (strcmp(a[i], b[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* Reports the first difference of two line lists; true if any. */
static bool diff_lines(Cmp *c, const MtpSection *e, char **a, unsigned na, char **b, unsigned nb,
                       bool body)
{
    unsigned i;

    for (i = 0; i < na || i < nb; i++) {
        const char *x = i < na ? a[i] : NULL, *y = i < nb ? b[i] : NULL;

        if (!x || !y || strcmp(x, y) != 0) {
            report(c, e, body ? body_line(e, i) : e->line, x, y);
            return true;
        }
    }
    return false;
}

/* FlatView headers: " AS" lines as a set (their order follows hash tables), then the root. */
static bool diff_fv_header(Cmp *c, const MtpSection *e, const MtpSection *g)
{
    char **a = calloc(e->nr_header + 1, sizeof(*a)), **b = calloc(g->nr_header + 1, sizeof(*b));
    bool d;

    if (!a || !b) {
        free(a);
        free(b);
        report(c, e, e->line, "(out of memory)", NULL);
        return true;
    }
    /* skip "FlatView #N" (index 0) */
    memcpy(a, e->header + 1, (e->nr_header - 1) * sizeof(*a));
    memcpy(b, g->header + 1, (g->nr_header - 1) * sizeof(*b));
    qsort(a, e->nr_header - 1, sizeof(*a), cmp_str);
    qsort(b, g->nr_header - 1, sizeof(*b), cmp_str);
    d = diff_lines(c, e, a, e->nr_header - 1, b, g->nr_header - 1, false);
    free(a);
    free(b);
    return d;
}

/* Compares the expected sections of one kind class with the got ones. */
static void compare(Cmp *c, const MtpDump *exp, const MtpDump *got, bool flat)
{
    bool *used = calloc(got->nr_sections + 1, sizeof(*used));
    unsigned i, j;

    if (!used) {
        report(c, &exp->sections[0], 0, "(out of memory)", NULL);
        return;
    }
    for (i = 0; i < exp->nr_sections; i++) {
        const MtpSection *e = &exp->sections[i];
        const MtpSection *g = NULL;
        char *ek;
        unsigned gi = 0;

        if ((e->kind == MTP_SEC_FV) != flat) {
            continue;
        }
        ek = section_key(e);
        for (j = 0; j < got->nr_sections && ek; j++) {
            const MtpSection *s = &got->sections[j];
            char *gk;
            bool same;

            if (used[j] || s->kind != e->kind) {
                continue;
            }
            gk = section_key(s);
            same = gk && strcmp(ek, gk) == 0;
            free(gk);
            if (!same) {
                continue;
            }
            if (!g) {
                g = s;
                gi = j;
            }
            /* names of memory-region: sections repeat: prefer an identical one */
            if (lines_equal(e->body, e->nr_body, s->body, s->nr_body)) {
                g = s;
                gi = j;
                break;
            }
        }
        free(ek);
        if (!g) {
            report(c, e, e->line, e->header[0], NULL);
            continue;
        }
        used[gi] = true;
        if (e->kind == MTP_SEC_FV && diff_fv_header(c, e, g)) {
            continue;
        }
        diff_lines(c, e, e->body, e->nr_body, g->body, g->nr_body, true);
    }
    for (j = 0; j < got->nr_sections; j++) {
        const MtpSection *s = &got->sections[j];

        if (!used[j]) {
            char label[512];

            section_label(s, label, sizeof(label));
            if (c->nr_diffs++ < MAX_REPORTED) {
                fprintf(c->out,
                        "  [%s] not in the fixture\n    expected: (nothing)\n"
                        "    got:      %s\n",
                        label, s->header[0]);
            }
        }
    }
    free(used);
}

/* Parses strata's output; a parse failure is itself a difference. */
static int parse_got(Cmp *c, const char *what, const char *text, MtpDump *d)
{
    char err[512];

    if (!text) {
        fprintf(c->out, "  %s: mtree_info_str returned NULL\n", what);
        c->nr_diffs++;
        return -1;
    }
    if (mtp_parse(text, strlen(text), d, err, sizeof(err)) < 0) {
        fprintf(c->out, "  %s: strata's output does not parse: %s\n", what, err);
        c->nr_diffs++;
        return -1;
    }
    return 0;
}

/*
 * QEMU's layout: each section is its header lines, its body lines and one
 * blank line.  Re-serialise the parsed sections and compare with the text,
 * so stray or missing blank lines in strata's output are caught too.
 */
static void check_layout(Cmp *c, const char *what, const char *text, const MtpDump *d)
{
    unsigned si, i, line = 1;
    const char *p = text;

    for (si = 0; si < d->nr_sections; si++) {
        const MtpSection *s = &d->sections[si];

        for (i = 0; i < s->nr_header + s->nr_body + 1; i++, line++) {
            const char *want = i < s->nr_header                ? s->header[i]
                               : i < s->nr_header + s->nr_body ? s->body[i - s->nr_header]
                                                               : "";
            size_t n = strlen(want);

            if (strncmp(p, want, n) != 0 || p[n] != '\n') {
                fprintf(c->out,
                        "  %s: layout differs from QEMU's at line %u of strata's "
                        "output (expected %s)\n",
                        what, line, n ? want : "a blank line");
                c->nr_diffs++;
                return;
            }
            p += n + 1;
        }
    }
    if (*p) {
        fprintf(c->out,
                "  %s: unexpected text after the last section at line %u of strata's "
                "output\n",
                what, line);
        c->nr_diffs++;
    }
}

bool replay_run_text(const char *base, const char *text, size_t len, const ReplayRunOpts *o,
                     FILE *out)
{
    char err[1024], *buf = NULL, *got_tree = NULL, *got_flat = NULL;
    size_t blen = 0;
    MtpDump exp = { 0 }, gt = { 0 }, gf = { 0 };
    Model m = { 0 };
    MemoryContext *ctx = NULL;
    Cmp c = { 0 };
    unsigned i;
    bool built = false;

    c.out = open_memstream(&buf, &blen);
    if (!c.out) {
        if (out) {
            fprintf(out, "FAIL %s\n  out of memory\n", base);
        }
        return false;
    }
    if (mtp_parse(text, len, &exp, err, sizeof(err)) < 0) {
        fprintf(c.out, "  fixture: %s\n", err);
        c.nr_diffs++;
        goto out;
    }
    if (model_build(&m, &exp, err, sizeof(err)) < 0) {
        fprintf(c.out, "  fixture: %s\n", err);
        c.nr_diffs++;
        goto out;
    }
    for (i = 0; i < exp.nr_sections; i++) {
        if (exp.sections[i].kind == MTP_SEC_FV) {
            model_check_flatview(&m, &exp.sections[i]);
        }
    }
    if (model_too_complex(&m)) {
        fprintf(c.out, "  fixture: too many region visits through aliases for the replay "
                       "model; not built\n");
        c.nr_diffs++;
        goto out;
    }
    ctx = memory_context_new();
    if (!ctx) {
        fprintf(c.out, "  memory_context_new failed\n");
        c.nr_diffs++;
        goto out;
    }
    built = true;
    if (replay_build(&m, ctx, &o->build, err, sizeof(err)) < 0) {
        fprintf(c.out, "  build: %s\n", err);
        c.nr_diffs++;
        goto out;
    }
    if (memory_context_check_flatviews(ctx) != 0) {
        fprintf(c.out, "  memory_context_check_flatviews: %s\n", memory_context_last_error(ctx));
        c.nr_diffs++;
    }
    got_tree = mtree_info_str(ctx, MTREE_DISABLED);
    got_flat = mtree_info_str(ctx, MTREE_FLATVIEW | MTREE_DISABLED);
    if (o->show && out) {
        fprintf(out, "==== %s: strata's info mtree -D\n%s==== %s: strata's info mtree -f -D\n%s",
                base, got_tree ? got_tree : "(null)\n", base, got_flat ? got_flat : "(null)\n");
    }
    if (parse_got(&c, "info mtree -D", got_tree, &gt) == 0) {
        check_layout(&c, "info mtree -D", got_tree, &gt);
        compare(&c, &exp, &gt, false);
    }
    if (parse_got(&c, "info mtree -f -D", got_flat, &gf) == 0) {
        check_layout(&c, "info mtree -f -D", got_flat, &gf);
        compare(&c, &exp, &gf, true);
    }
out:
    if (c.nr_diffs > MAX_REPORTED) {
        fprintf(c.out, "  ... %u more differing sections\n", c.nr_diffs - MAX_REPORTED);
    }
    if ((c.nr_diffs || o->verbose) && m.nr_diag) {
        fprintf(c.out, "  replay model notes (inference from the fixture, not strata):\n");
        for (i = 0; i < m.nr_diag; i++) {
            fprintf(c.out, "    %s\n", m.diag[i]);
        }
    }
    fclose(c.out);
    if (out) {
        fprintf(out, "%s %s\n%s", c.nr_diffs ? "FAIL" : "PASS", base, buf ? buf : "");
        fflush(out);
    }
    free(buf);
    if (built) {
        replay_teardown(&m, ctx);
    }
    if (ctx) {
        memory_context_free(ctx);
    }
    model_free(&m);
    mtp_dump_free(&exp);
    mtp_dump_free(&gt);
    mtp_dump_free(&gf);
    free(got_tree);
    free(got_flat);
    return c.nr_diffs == 0;
}
