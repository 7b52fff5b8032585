/* SPDX-License-Identifier: MIT */
/*
 * A parser for QEMU 7.2's `info mtree -D` and `info mtree -f -D` text (the
 * format strata's mtree_info_str() prints too).
 *
 * The text is a sequence of sections separated by blank lines:
 *   - tree sections: one or more "address-space: NAME" lines (address spaces
 *     sharing one root), or one "memory-region: NAME" line, then the region
 *     tree, two spaces of indent per level;
 *   - FlatView sections: "FlatView #N", " AS "NAME", root: ROOT" lines,
 *     " Root memory region: NAME|(none)", then the flat ranges (or
 *     "  No rendered FlatView").
 * Every parsed item keeps its source line number and its text, so callers
 * can both rebuild the tree and compare output line for line.
 *
 * Owner (-o), dispatch-tree (-d) and accel (-a) decorations are not
 * supported: they are reported as errors, never misread.
 */
#ifndef STRATA_TESTS_MTREE_PARSE_H
#define STRATA_TESTS_MTREE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* TYPE field of a tree or flat line. */
typedef enum {
    MTP_RAM,
    MTP_ROM,
    MTP_ROMD,
    MTP_RAMD,
    MTP_IO,
} MtpType;

/* One region line of a tree section. */
typedef struct MtpNode {
    uint64_t start, end; /* absolute, inclusive, as printed */
    int32_t prio;
    MtpType type;
    bool nv;       /* "nv-" type prefix (non-volatile) */
    bool disabled; /* " [disabled]" */
    bool is_alias;
    char *name;
    char *alias_target;              /* aliases: the target's name */
    uint64_t alias_start, alias_end; /* aliases: range inside the target */
    unsigned depth;                  /* 1 = the section's root */
    int parent;                      /* index of the parent node, -1 for the root */
    unsigned nr_children;
    unsigned subtree; /* number of nodes in this subtree (self included) */
    unsigned line;    /* 1-based source line */
    char *text;       /* the whole line */
} MtpNode;

/* One range line of a FlatView section. */
typedef struct MtpRange {
    uint64_t start, end; /* inclusive */
    int32_t prio;
    MtpType type;
    bool nv;
    char *name;
    uint64_t offset; /* "@OFFSET", 0 if absent */
    unsigned line;
    char *text;
} MtpRange;

typedef enum {
    MTP_SEC_AS, /* address-space: lines + tree */
    MTP_SEC_MR, /* memory-region: line + tree */
    MTP_SEC_FV, /* FlatView */
} MtpSectionKind;

typedef struct MtpSection {
    MtpSectionKind kind;
    unsigned line; /* line of the first header line */
    /* AS: the address-space names; MR: the one region name; FV: the AS
     * names of the " AS" lines, in printed order. */
    char **names;
    unsigned nr_names;
    /* FV only: root name printed on each " AS" line (parallel to names). */
    char **as_roots;
    /* Header lines as printed (address-space:/memory-region:/FlatView/AS/Root). */
    char **header;
    unsigned nr_header;
    /* AS/MR: the tree, in printed (pre-order) order. */
    MtpNode *nodes;
    unsigned nr_nodes;
    /* FV: root region name, NULL for "(none)"; the ranges. */
    char *fv_root;
    unsigned fv_number;
    bool fv_empty; /* "No rendered FlatView" */
    MtpRange *ranges;
    unsigned nr_ranges;
    /* Body lines as printed (tree lines, range lines, "No rendered ..."). */
    char **body;
    unsigned nr_body;
} MtpSection;

typedef struct MtpDump {
    MtpSection *sections;
    unsigned nr_sections;
} MtpDump;

/*
 * Parses text (len bytes, need not be NUL-terminated) into *out.  Returns 0,
 * or -1 with a message "line N: what is wrong" in err (errlen bytes) and
 * *out left empty.  Never reads outside text.
 */
int mtp_parse(const char *text, size_t len, MtpDump *out, char *err, size_t errlen);

/* Frees everything mtp_parse() put into d and empties it. */
void mtp_dump_free(MtpDump *d);

/* The printed spelling of a type ("ram", "rom", "romd", "ramd", "i/o"). */
const char *mtp_type_name(MtpType t);

/* Reads a whole file into a malloc()ed NUL-terminated buffer; NULL with err set on failure. */
char *mtp_read_file(const char *path, size_t *len, char *err, size_t errlen);

#endif /* STRATA_TESTS_MTREE_PARSE_H */
