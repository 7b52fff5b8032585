/* SPDX-License-Identifier: MIT */
/*
 * `info mtree` in QEMU 7.2's format (tree, -f FlatViews, -D disabled
 * regions), and the same data as JSON.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "memory/memory-internal.h"

#define FMT "%016" PRIx64

typedef struct MrQueue {
    MemoryRegion **q;
    size_t n, cap;
} MrQueue;

static void queue_add(MrQueue *q, MemoryRegion *mr)
{
    for (size_t i = 0; i < q->n; i++) {
        if (q->q[i] == mr) {
            return;
        }
    }
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 8;
        if (!(q->q = realloc(q->q, q->cap * sizeof(*q->q)))) {
            abort();
        }
    }
    q->q[q->n++] = mr;
}

static uint64_t mr_size_last(Int128 size)
{
    return size ? (uint64_t)(size - 1) : 0;
}

static const char *mr_type(const MemoryRegion *mr)
{
    while (mr->alias) {
        mr = mr->alias;
    }
    if (mr->rom_device && mr->romd_mode) {
        return "romd";
    }
    if (mr->ram && mr->readonly) {
        return "rom";
    }
    if (mr->ram) {
        return "ram";
    }
    return "i/o";
}

static int child_cmp_key(const MemoryRegion *a, const MemoryRegion *b)
{
    /* printing order: by address, then higher priority first */
    if (a->addr != b->addr) {
        return a->addr < b->addr ? -1 : 1;
    }
    if (a->priority != b->priority) {
        return a->priority > b->priority ? -1 : 1;
    }
    return 0;
}

/* Does an address space before #i have this root (or this FlatView)?  Each
 * group of address spaces sharing one is printed once, at its first. */
static bool earlier_as_with(const MemoryContext *ctx, size_t i, const MemoryRegion *root,
                            const FlatView *fv)
{
    for (size_t j = 0; j < i; j++) {
        if (root ? ctx->as[j]->root == root : ctx->as[j]->current == fv) {
            return true;
        }
    }
    return false;
}

static void print_mr(FILE *f, MemoryRegion *mr, unsigned level, uint64_t base, MrQueue *aq,
                     bool disabled)
{
    uint64_t start = base + mr->addr;
    uint64_t end = start + mr_size_last(mr->size);
    if (start < base || end < start) {
        fputs("[DETECTED OVERFLOW!] ", f);
    }
    if (mr->alias) {
        queue_add(aq, mr->alias);
    }
    if (mr->enabled || disabled) {
        for (unsigned i = 0; i < level; i++) {
            fputs("  ", f);
        }
        if (mr->alias) {
            fprintf(f, FMT "-" FMT " (prio %d, %s%s): alias %s @%s " FMT "-" FMT "%s\n", start, end,
                    mr->priority, mr->nonvolatile ? "nv-" : "", mr_type(mr), mr->name,
                    mr->alias->name, mr->alias_offset, mr->alias_offset + mr_size_last(mr->size),
                    mr->enabled ? "" : " [disabled]");
        } else {
            fprintf(f, FMT "-" FMT " (prio %d, %s%s): %s%s\n", start, end, mr->priority,
                    mr->nonvolatile ? "nv-" : "", mr_type(mr), mr->name,
                    mr->enabled ? "" : " [disabled]");
        }
    }
    /* stable insertion sort of the children into printing order */
    unsigned n = mr->nr_subregions;
    MemoryRegion *stackbuf[32];
    MemoryRegion **order = n <= 32 ? stackbuf : malloc(n * sizeof(*order));
    if (!order) {
        abort();
    }
    for (unsigned i = 0; i < n; i++) {
        MemoryRegion *c = mr->subregions[i];
        unsigned j = i;
        while (j > 0 && child_cmp_key(c, order[j - 1]) < 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = c;
    }
    for (unsigned i = 0; i < n; i++) {
        print_mr(f, order[i], level + 1, start, aq, disabled);
    }
    if (order != stackbuf) {
        free(order);
    }
}

static void print_tree(FILE *f, MemoryContext *ctx, bool disabled)
{
    MrQueue aq = { 0 };
    for (size_t i = 0; i < ctx->nr_as; i++) {
        MemoryRegion *root = ctx->as[i]->root;
        if (earlier_as_with(ctx, i, root, NULL)) {
            continue;
        }
        /* address spaces sharing a root, sorted by name as QEMU lists them */
        const char *prev = NULL;
        for (;;) {
            const char *next = NULL;
            for (size_t j = i; j < ctx->nr_as; j++) {
                const char *n = ctx->as[j]->name;
                if (ctx->as[j]->root == root && (!prev || strcmp(n, prev) > 0) &&
                    (!next || strcmp(n, next) < 0)) {
                    next = n;
                }
            }
            if (!next) {
                break;
            }
            for (size_t j = i; j < ctx->nr_as; j++) {
                /* an address space's name is never NULL (address_space_new) */
                /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
                if (ctx->as[j]->root == root && !strcmp(ctx->as[j]->name, next)) {
                    fprintf(f, "address-space: %s\n", next);
                }
            }
            prev = next;
        }
        print_mr(f, root, 1, 0, &aq, disabled);
        fputc('\n', f);
    }
    for (size_t i = 0; i < aq.n; i++) {
        fprintf(f, "memory-region: %s\n", aq.q[i]->name);
        print_mr(f, aq.q[i], 1, 0, &aq, disabled);
        fputc('\n', f);
    }
    free(aq.q);
}

static void print_flatviews(FILE *f, MemoryContext *ctx)
{
    unsigned counter = 0;
    for (size_t i = 0; i < ctx->nr_as; i++) {
        FlatView *fv = ctx->as[i]->current;
        if (earlier_as_with(ctx, i, NULL, fv)) {
            continue;
        }
        fprintf(f, "FlatView #%u\n", counter++);
        for (size_t j = i; j < ctx->nr_as; j++) {
            AddressSpace *as = ctx->as[j];
            if (as->current != fv) {
                continue;
            }
            fprintf(f, " AS \"%s\", root: %s", as->name, as->root->name);
            if (as->root->alias) {
                fprintf(f, ", alias %s", as->root->alias->name);
            }
            fputc('\n', f);
        }
        fprintf(f, " Root memory region: %s\n", fv && fv->root ? fv->root->name : "(none)");
        if (!fv || fv->nr == 0) {
            fputs("  No rendered FlatView\n\n", f);
            continue;
        }
        for (size_t k = 0; k < fv->nr; k++) {
            const FlatRange *r = &fv->ranges[k];
            fprintf(f, "  " FMT "-" FMT " (prio %d, %s%s): %s", r->start,
                    r->start + mr_size_last(r->size), r->mr->priority, r->nonvolatile ? "nv-" : "",
                    r->readonly ? "rom" : mr_type(r->mr), r->mr->name);
            if (r->offset_in_region) {
                fprintf(f, " @" FMT, r->offset_in_region);
            }
            fputc('\n', f);
        }
        fputc('\n', f);
    }
}

void mtree_info(MemoryContext *ctx, unsigned flags, FILE *f)
{
    if (flags & MTREE_FLATVIEW) {
        print_flatviews(f, ctx);
    } else {
        print_tree(f, ctx, flags & MTREE_DISABLED);
    }
}

char *mtree_info_str(MemoryContext *ctx, unsigned flags)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        return NULL;
    }
    mtree_info(ctx, flags, f);
    fclose(f);
    return buf;
}

/* ---- JSON ------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(f, "\\%c", *p);
        } else if (*p < 0x20) {
            fprintf(f, "\\u%04x", *p);
        } else {
            fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void json_mr(FILE *f, MemoryRegion *mr, uint64_t base, MrQueue *aq)
{
    uint64_t start = base + mr->addr;
    fputs("{\"name\":", f);
    json_str(f, mr->name);
    fprintf(f,
            ",\"start\":\"0x%" PRIx64 "\",\"end\":\"0x%" PRIx64 "\",\"priority\":%d,"
            "\"type\":\"%s\",\"enabled\":%s",
            start, start + mr_size_last(mr->size), mr->priority, mr_type(mr),
            mr->enabled ? "true" : "false");
    if (mr->alias) {
        queue_add(aq, mr->alias);
        fputs(",\"alias\":", f);
        json_str(f, mr->alias->name);
        fprintf(f, ",\"alias_start\":\"0x%" PRIx64 "\",\"alias_end\":\"0x%" PRIx64 "\"",
                mr->alias_offset, mr->alias_offset + mr_size_last(mr->size));
    }
    if (mr->readonly) {
        fputs(",\"readonly\":true", f);
    }
    fputs(",\"subregions\":[", f);
    for (unsigned i = 0; i < mr->nr_subregions; i++) {
        if (i) {
            fputc(',', f);
        }
        json_mr(f, mr->subregions[i], start, aq);
    }
    fputs("]}", f);
}

char *mtree_info_json(MemoryContext *ctx)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        return NULL;
    }
    MrQueue aq = { 0 };
    fputs("{\"address-spaces\":[", f);
    for (size_t i = 0; i < ctx->nr_as; i++) {
        AddressSpace *as = ctx->as[i];
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        json_str(f, as->name);
        fputs(",\"root\":", f);
        json_mr(f, as->root, 0, &aq);
        fputc('}', f);
    }
    fputs("],\"memory-regions\":[", f);
    for (size_t i = 0; i < aq.n; i++) {
        if (i) {
            fputc(',', f);
        }
        json_mr(f, aq.q[i], 0, &aq);
    }
    fputs("],\"flatviews\":[", f);
    bool first = true;
    for (size_t i = 0; i < ctx->nr_as; i++) {
        FlatView *fv = ctx->as[i]->current;
        if (earlier_as_with(ctx, i, NULL, fv)) {
            continue;
        }
        fputs(first ? "{\"address-spaces\":[" : ",{\"address-spaces\":[", f);
        first = false;
        bool f2 = true;
        for (size_t j = i; j < ctx->nr_as; j++) {
            if (ctx->as[j]->current == fv) {
                if (!f2) {
                    fputc(',', f);
                }
                f2 = false;
                json_str(f, ctx->as[j]->name);
            }
        }
        fputs("],\"root\":", f);
        if (fv && fv->root) {
            json_str(f, fv->root->name);
        } else {
            fputs("null", f);
        }
        fputs(",\"ranges\":[", f);
        for (size_t k = 0; fv && k < fv->nr; k++) {
            const FlatRange *r = &fv->ranges[k];
            fprintf(f,
                    "%s{\"start\":\"0x%" PRIx64 "\",\"end\":\"0x%" PRIx64 "\",\"priority\":%d,"
                    "\"type\":\"%s\",\"region\":",
                    k ? "," : "", r->start, r->start + mr_size_last(r->size), r->mr->priority,
                    r->readonly ? "rom" : mr_type(r->mr));
            json_str(f, r->mr->name);
            fprintf(f, ",\"offset\":\"0x%" PRIx64 "\",\"dirty_log_mask\":%u}", r->offset_in_region,
                    r->dirty_log_mask);
        }
        fputs("]}", f);
    }
    fputs("]}", f);
    fclose(f);
    free(aq.q);
    return buf;
}
