/* SPDX-License-Identifier: MIT */
/*
 * Tests of mtree-parse.c: what it reads from well-formed text, the line
 * numbers of its errors, and that mutated (hostile) input never crashes it
 * and always either parses or fails with "line N: ...".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/common/check.h"
#include "tests/replay/mtree-parse.h"

static const char sample[] =
    "address-space: cpu-memory-0\n"
    "address-space: memory\n"
    "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
    "    0000000000000000-0000000007ffffff (prio 0, ram): alias ram-below-4g @pc.ram 0000000000000000-0000000007ffffff\n"
    "    0000000000000000-ffffffffffffffff (prio -1, i/o): pci\n"
    "      00000000000c0000-00000000000dffff (prio 1, rom): pc.rom\n"
    "    0000000000000000-ffffffffffffffff (prio 0, i/o): alias bus master @system 0000000000000000-ffffffffffffffff [disabled]\n"
    "    00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi\n"
    "\n"
    "memory-region: pc.ram\n"
    "  0000000000000000-0000000007ffffff (prio 0, ram): pc.ram\n"
    "\n"
    "FlatView #0\n"
    " AS \"memory\", root: system\n"
    " AS \"cpu-memory-0\", root: system\n"
    " Root memory region: system\n"
    "  0000000000000000-00000000000bffff (prio 0, ram): pc.ram\n"
    "  00000000000c0000-00000000000dffff (prio 1, rom): pc.rom\n"
    "  0000000000100000-0000000007ffffff (prio 0, ram): pc.ram @0000000000100000\n"
    "\n"
    "FlatView #1\n"
    " AS \"bus\", root: bus master container\n"
    " Root memory region: (none)\n"
    "  No rendered FlatView\n"
    "\n";

static void test_sample(void)
{
    MtpDump d;
    char err[256];
    const MtpSection *s;

    CHECK(mtp_parse(sample, strlen(sample), &d, err, sizeof(err)) == 0, "sample: %s", err);
    CHECK(d.nr_sections == 4, "sample: %u sections", d.nr_sections);
    s = &d.sections[0];
    CHECK(s->kind == MTP_SEC_AS && s->nr_names == 2 && strcmp(s->names[1], "memory") == 0,
          "sample, section 0");
    CHECK(s->nr_nodes == 6 && s->nr_body == 6, "sample, section 0");
    CHECK(s->nodes[0].subtree == 6 && s->nodes[0].nr_children == 4, "sample, section 0");
    CHECK(s->nodes[1].is_alias && strcmp(s->nodes[1].name, "ram-below-4g") == 0,
          "sample, section 0");
    CHECK(strcmp(s->nodes[1].alias_target, "pc.ram") == 0 && s->nodes[1].alias_end == 0x7ffffff,
          "sample, section 0");
    CHECK(s->nodes[2].prio == -1 && s->nodes[2].type == MTP_IO && s->nodes[2].subtree == 2,
          "sample, section 0");
    CHECK(s->nodes[3].parent == 2 && s->nodes[3].type == MTP_ROM && s->nodes[3].line == 6,
          "sample, section 0");
    CHECK(s->nodes[4].is_alias && s->nodes[4].disabled, "sample, section 0");
    CHECK(strcmp(s->nodes[4].name, "bus master") == 0, "sample, section 0");
    CHECK(strcmp(s->nodes[4].alias_target, "system") == 0, "sample, section 0");
    CHECK(s->nodes[5].prio == 4096 && s->nodes[5].parent == 0, "sample, section 0");
    s = &d.sections[1];
    CHECK(s->kind == MTP_SEC_MR && strcmp(s->names[0], "pc.ram") == 0 && s->nr_nodes == 1,
          "sample, section 1");
    s = &d.sections[2];
    CHECK(s->kind == MTP_SEC_FV && s->nr_names == 2 && strcmp(s->as_roots[0], "system") == 0,
          "sample, section 2");
    CHECK(s->fv_root && strcmp(s->fv_root, "system") == 0 && s->nr_ranges == 3,
          "sample, section 2");
    CHECK(s->ranges[2].offset == 0x100000 && strcmp(s->ranges[2].name, "pc.ram") == 0,
          "sample, section 2");
    CHECK(s->ranges[1].type == MTP_ROM && s->ranges[1].prio == 1, "sample, section 2");
    s = &d.sections[3];
    CHECK(s->kind == MTP_SEC_FV && !s->fv_root && s->fv_empty && s->nr_ranges == 0,
          "sample, section 3");
    CHECK(strcmp(s->as_roots[0], "bus master container") == 0, "sample, section 3");
    mtp_dump_free(&d);
}

static void expect_error_n(const char *text, size_t len, const char *want)
{
    MtpDump d;
    char err[256];

    CHECK(mtp_parse(text, len, &d, err, sizeof(err)) != 0, "parsed, expected error '%s' for:\n%s",
          want, text);
    CHECK(strncmp(err, want, strlen(want)) == 0, "error '%s', expected prefix '%s'", err, want);
    CHECK(d.nr_sections == 0 && d.sections == NULL, "a failed parse left %u sections",
          d.nr_sections);
}

static void expect_error(const char *text, const char *want)
{
    expect_error_n(text, strlen(text), want);
}

static void test_errors(void)
{
    expect_error("  0000000000000000-ffffffffffffffff (prio 0, i/o): x\n", "line 1: text outside");
    expect_error("address-space: a\n    0000-ffff (prio 0, i/o): x\n", "line 2: first region");
    expect_error("address-space: a\n  0000-ffff (prio 0, i/o): x\n      0-1 (prio 0, i/o): y\n",
                 "line 3: indent jumps");
    expect_error("address-space: a\n  0000-ffff (prio 0, i/o): x\n  0-1 (prio 0, i/o): y\n",
                 "line 3: second root");
    expect_error("address-space: a\n  0000-ffff (prio 0, io): x\n", "line 2: expected");
    expect_error("address-space: a\n  ffff-0000 (prio 0, i/o): x\n", "line 2: range end");
    expect_error("address-space: a\n  0-1 (prio 99999999999, i/o): x\n", "line 2: expected");
    expect_error("address-space: a\n  00000000000000000-1 (prio 0, i/o): x\n", "line 2: expected");
    expect_error("address-space: a\n   0-1 (prio 0, i/o): x\n", "line 2: bad indentation");
    expect_error("address-space: a\n\n", "line 2: blank line");
    expect_error("memory-region: a\n", "line 2: section header without a tree");
    expect_error("FlatView #x\n", "line 1: expected 'FlatView");
    expect_error("FlatView #0\n  0-1 (prio 0, i/o): x\n", "line 2: expected ' AS'");
    expect_error("FlatView #0\n Root memory region: x\n  No rendered FlatView\n"
                 "  0-1 (prio 0, i/o): x\n",
                 "line 4: range after");
    expect_error("address-space: a\n  0-1 (prio 0, i/o): x\nbogus\n", "line 3: unexpected");
    {
        static const char nul[] = "address-space: a\n  0-1 (prio 0, i/o): x\0y\n";

        expect_error_n(nul, sizeof(nul) - 1, "line 2: NUL");
    }
}

/* Deterministic xorshift PRNG. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_mutations(void)
{
    static const char alphabet[] = " \n-@()[]:,\"#0fF9x/ia";
    size_t n = strlen(sample);
    char *buf = malloc(n + 64);
    unsigned iter;

    CHECK(buf, "out of memory");
    for (iter = 0; iter < 20000; iter++) {
        size_t len = n, k, edits = 1 + next_rand() % 4;
        MtpDump d;
        char err[256];

        memcpy(buf, sample, n);
        for (k = 0; k < edits; k++) {
            size_t at = (size_t)(next_rand() % len);

            switch (next_rand() % 4) {
            case 0: /* replace */
                buf[at] = alphabet[next_rand() % (sizeof(alphabet) - 1)];
                break;
            case 1: /* delete */
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
                break;
            case 2: /* random byte */
                buf[at] = (char)(next_rand() & 0xff);
                break;
            default: /* truncate */
                len = at + 1;
                break;
            }
            if (len < 2) {
                break;
            }
        }
        if (mtp_parse(buf, len, &d, err, sizeof(err)) == 0)
            mtp_dump_free(&d);
        else
            CHECK(strncmp(err, "line ", 5) == 0, "mutation %u: error without a line number: '%s'",
                  iter, err);
    }
    free(buf);
}

int main(void)
{
    test_sample();
    test_errors();
    test_mutations();
    printf("mtree-parse-test: all passed\n");
    return 0;
}
