/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of `info mtree`: the text must match QEMU 7.2's format (the
 * expected strings below were written by hand from QEMU's printer rules, see
 * shared/fixtures/qemu-mtree/README.md) and the JSON form must parse.
 */
#include "unit.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Board {
    TestDev dev;
    MemoryRegion *ram, *ram_lo, *pci, *pci_dev, *vga, *pam, *hidden, *flash, *bios;
} Board;

static Board board;

/* A small PC-like tree: system with an alias of RAM, a priority -1 pci
 * container, a priority 1 vga window, a read-only alias, a disabled
 * region, a rom_device and a ROM; two address spaces on the same root. */
static void build_board(Fix *f)
{
    Board *b = &board;
    memset(b, 0, sizeof(*b));
    b->ram = fx_ram(f, "ram", 0x100000);
    b->ram_lo = fx_alias(f, "ram-lo", b->ram, 0, 0xa0000);
    b->pci = fx_container(f, "pci", UINT64_MAX);
    b->pci_dev = fx_io(f, &plain_ops, &b->dev, "pci-dev", 0x1000);
    b->vga = fx_io(f, &plain_ops, &b->dev, "vga", 0x20000);
    b->pam = fx_alias(f, "pam-rom", b->ram, 0xc0000, 0x4000);
    b->hidden = fx_io(f, &plain_ops, &b->dev, "hidden", 0x100);
    b->flash = fx_romdev(f, &plain_ops, &b->dev, "flash", 0x1000);
    b->bios = fx_rom(f, "bios", 0x10000);

    memory_region_transaction_begin(f->ctx);
    assert_int_equal(memory_region_add_subregion(f->root, 0, b->ram_lo), 0);
    assert_int_equal(memory_region_add_subregion(b->pci, 0xfe000000, b->pci_dev), 0);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0, b->pci, -1), 0);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0xa0000, b->vga, 1), 0);
    memory_region_set_readonly(b->pam, true);
    assert_int_equal(memory_region_add_subregion_overlap(f->root, 0xc0000, b->pam, 1), 0);
    memory_region_set_enabled(b->hidden, false);
    assert_int_equal(memory_region_add_subregion(f->root, 0xfc000000, b->hidden), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0xfd000000, b->flash), 0);
    assert_int_equal(memory_region_add_subregion(f->root, 0xffff0000, b->bios), 0);
    memory_region_transaction_commit(f->ctx);
    fx_as(f, f->root, "cpu-memory");
}

static const char tree_expected[] =
    "address-space: cpu-memory\n"
    "address-space: memory\n"
    "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
    "    0000000000000000-000000000009ffff (prio 0, ram): alias ram-lo @ram 0000000000000000-000000000009ffff\n"
    "    0000000000000000-ffffffffffffffff (prio -1, i/o): pci\n"
    "      00000000fe000000-00000000fe000fff (prio 0, i/o): pci-dev\n"
    "    00000000000a0000-00000000000bffff (prio 1, i/o): vga\n"
    "    00000000000c0000-00000000000c3fff (prio 1, ram): alias pam-rom @ram 00000000000c0000-00000000000c3fff\n"
    "%s"
    "    00000000fd000000-00000000fd000fff (prio 0, romd): flash\n"
    "    00000000ffff0000-00000000ffffffff (prio 0, rom): bios\n"
    "\n"
    "memory-region: ram\n"
    "  0000000000000000-00000000000fffff (prio 0, ram): ram\n"
    "\n";

static const char hidden_line[] =
    "    00000000fc000000-00000000fc0000ff (prio 0, i/o): hidden [disabled]\n";

static const char flat_expected[] =
    "FlatView #0\n"
    "%s"
    " Root memory region: system\n"
    "  0000000000000000-000000000009ffff (prio 0, ram): ram\n"
    "  00000000000a0000-00000000000bffff (prio 1, i/o): vga\n"
    "  00000000000c0000-00000000000c3fff (prio 0, rom): ram @00000000000c0000\n"
    "  00000000fd000000-00000000fd000fff (prio 0, romd): flash\n"
    "  00000000fe000000-00000000fe000fff (prio 0, i/o): pci-dev\n"
    "  00000000ffff0000-00000000ffffffff (prio 0, rom): bios\n"
    "\n";

/* Compares line by line and reports the first difference. */
static void expect_text(const char *got, const char *want)
{
    if (got && strcmp(got, want) == 0) {
        return;
    }
    print_message("---- expected ----\n%s---- got ----\n%s------------------\n", want,
                  got ? got : "(null)");
    const char *g = got ? got : "", *w = want;
    unsigned line = 1;
    while (*g && *w && *g == *w) {
        if (*g == '\n') {
            line++;
        }
        g++;
        w++;
    }
    fail_msg("mtree text differs from QEMU's format at line %u", line);
}

/* tmpl with its one "%s" replaced by arg (malloc()ed). */
static char *fmt1(const char *tmpl, const char *arg)
{
    const char *at = strstr(tmpl, "%s");
    assert_non_null(at);
    size_t head = (size_t)(at - tmpl), alen = strlen(arg), tail = strlen(at + 2);
    char *s = malloc(head + alen + tail + 1);
    assert_non_null(s);
    memcpy(s, tmpl, head);
    memcpy(s + head, arg, alen);
    memcpy(s + head + alen, at + 2, tail + 1);
    return s;
}

static void test_tree_text(void **state)
{
    Fix *f = *state;
    build_board(f);

    char *got = mtree_info_str(f->ctx, 0);
    char *want = fmt1(tree_expected, "");
    expect_text(got, want);
    free(got);
    free(want);

    got = mtree_info_str(f->ctx, MTREE_DISABLED);
    want = fmt1(tree_expected, hidden_line);
    expect_text(got, want);
    free(got);
    free(want);

    /* Once enabled it shows without the flag, unmarked. */
    memory_region_set_enabled(board.hidden, true);
    got = mtree_info_str(f->ctx, 0);
    want = fmt1(tree_expected, "    00000000fc000000-00000000fc0000ff (prio 0, i/o): hidden\n");
    expect_text(got, want);
    free(got);
    free(want);
}

static void test_flatview_text(void **state)
{
    Fix *f = *state;
    build_board(f);

    char *got = mtree_info_str(f->ctx, MTREE_FLATVIEW);
    /* The order of the AS lines inside one FlatView is not fixed by QEMU. */
    char *w1 = fmt1(flat_expected, " AS \"memory\", root: system\n"
                                   " AS \"cpu-memory\", root: system\n");
    char *w2 = fmt1(flat_expected, " AS \"cpu-memory\", root: system\n"
                                   " AS \"memory\", root: system\n");
    if (!got || strcmp(got, w2) != 0) {
        expect_text(got, w1);
    }
    /* -D does not change the flat view. */
    char *got2 = mtree_info_str(f->ctx, MTREE_FLATVIEW | MTREE_DISABLED);
    assert_non_null(got2);
    assert_string_equal(got2, got);
    free(got);
    free(got2);
    free(w1);
    free(w2);
}

static void test_io_space_text(void **state)
{
    (void)state;
    TestDev dev = { 0 };
    MemoryContext *ctx = memory_context_new();
    MemoryRegion io, pic;
    memset(&io, 0, sizeof(io));
    memset(&pic, 0, sizeof(pic));
    assert_non_null(ctx);
    assert_int_equal(memory_region_init_io(&io, ctx, &plain_ops, &dev, "io", 0x10000), 0);
    assert_int_equal(memory_region_init_io(&pic, ctx, &plain_ops, &dev, "pic", 2), 0);
    assert_int_equal(memory_region_add_subregion(&io, 0x20, &pic), 0);
    AddressSpace *as = address_space_new(ctx, &io, "I/O");
    assert_non_null(as);

    char *got = mtree_info_str(ctx, 0);
    expect_text(got, "address-space: I/O\n"
                     "  0000000000000000-000000000000ffff (prio 0, i/o): io\n"
                     "    0000000000000020-0000000000000021 (prio 0, i/o): pic\n"
                     "\n");
    free(got);
    got = mtree_info_str(ctx, MTREE_FLATVIEW);
    expect_text(got, "FlatView #0\n"
                     " AS \"I/O\", root: io\n"
                     " Root memory region: io\n"
                     "  0000000000000000-000000000000001f (prio 0, i/o): io\n"
                     "  0000000000000020-0000000000000021 (prio 0, i/o): pic\n"
                     "  0000000000000022-000000000000ffff (prio 0, i/o): io @0000000000000022\n"
                     "\n");
    free(got);

    /* mtree_info to a FILE writes the same text. */
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    assert_non_null(mf);
    mtree_info(ctx, MTREE_FLATVIEW, mf);
    fclose(mf);
    got = mtree_info_str(ctx, MTREE_FLATVIEW);
    assert_string_equal(buf, got);
    free(buf);
    free(got);

    address_space_destroy(as);
    assert_int_equal(memory_region_del_subregion(&io, &pic), 0);
    assert_int_equal(memory_region_destroy(&pic), 0);
    assert_int_equal(memory_region_destroy(&io), 0);
    memory_context_free(ctx);
}

static void test_empty_text(void **state)
{
    (void)state;
    MemoryContext *ctx = memory_context_new();
    MemoryRegion none;
    memset(&none, 0, sizeof(none));
    assert_non_null(ctx);
    assert_int_equal(memory_region_init(&none, ctx, "nothing", 0x1000), 0);
    AddressSpace *as = address_space_new(ctx, &none, "empty");
    assert_non_null(as);

    char *got = mtree_info_str(ctx, 0);
    expect_text(got, "address-space: empty\n"
                     "  0000000000000000-0000000000000fff (prio 0, i/o): nothing\n"
                     "\n");
    free(got);
    got = mtree_info_str(ctx, MTREE_FLATVIEW);
    expect_text(got, "FlatView #0\n"
                     " AS \"empty\", root: nothing\n"
                     " Root memory region: (none)\n"
                     "  No rendered FlatView\n"
                     "\n");
    free(got);
    address_space_destroy(as);
    assert_int_equal(memory_region_destroy(&none), 0);
    memory_context_free(ctx);
}

/* Collects every string value and object key of a JSON tree. */
static void collect_strings(json_t *j, char *out, size_t cap, size_t *used)
{
    const char *key;
    json_t *v;
    size_t i;

    switch (json_typeof(j)) {
    case JSON_STRING: {
        const char *s = json_string_value(j);
        size_t n = strlen(s);
        if (*used + n + 2 < cap) {
            memcpy(out + *used, s, n);
            *used += n;
            out[(*used)++] = '\n';
            out[*used] = 0;
        }
        break;
    }
    case JSON_OBJECT:
        json_object_foreach(j, key, v)
        {
            collect_strings(v, out, cap, used);
        }
        break;
    case JSON_ARRAY:
        json_array_foreach(j, i, v)
        {
            collect_strings(v, out, cap, used);
        }
        break;
    default:
        break;
    }
}

static void test_json(void **state)
{
    Fix *f = *state;
    build_board(f);

    char *js = mtree_info_json(f->ctx);
    assert_non_null(js);
    json_error_t err;
    json_t *root = json_loads(js, 0, &err);
    if (!root) {
        fail_msg("mtree_info_json does not parse: %s at line %d col %d\n%s", err.text, err.line,
                 err.column, js);
    }
    assert_true(json_is_object(root));
    static char strings[1 << 16];
    size_t used = 0;
    strings[0] = 0;
    collect_strings(root, strings, sizeof(strings), &used);
    static const char *const names[] = {
        "system",  "ram-lo", "ram",  "pci",    "pci-dev", "vga",
        "pam-rom", "flash",  "bios", "hidden", "memory",  "cpu-memory",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "%s\n", names[i]);
        /* match a whole string value: at the start or after a newline */
        bool found = strncmp(strings, line, strlen(line)) == 0;
        for (const char *p = strings; !found && (p = strstr(p, line)); p++) {
            found = p == strings || p[-1] == '\n';
        }
        if (!found) {
            fail_msg("mtree_info_json lacks the string \"%s\":\n%s", names[i], js);
        }
    }
    json_decref(root);
    free(js);
}

static void test_check_after_board(void **state)
{
    Fix *f = *state;
    build_board(f);
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
    memory_region_set_enabled(board.pci, false);
    memory_region_set_readonly(board.pam, false);
    assert_int_equal(memory_region_set_address(board.flash, 0xfd100000), 0);
    assert_int_equal(memory_context_check_flatviews(f->ctx), 0);
}

/* Nested bases, an alias of a mapped container (its memory-region section
 * starts at the container's own address) and equal-priority siblings at one
 * address (list order: newest first). */
static void test_nested_text(void **state)
{
    (void)state;
    TestDev dev = { 0 };
    MemoryContext *ctx = memory_context_new();
    MemoryRegion sys, bus, devx, win, ova, ovb;
    MemoryRegion *all[] = { &sys, &bus, &devx, &win, &ova, &ovb };
    for (size_t i = 0; i < 6; i++) {
        memset(all[i], 0, sizeof(MemoryRegion));
    }
    assert_non_null(ctx);
    assert_int_equal(memory_region_init(&sys, ctx, "sys", 0x100000000ull), 0);
    assert_int_equal(memory_region_init(&bus, ctx, "bus", 0x10000), 0);
    assert_int_equal(memory_region_init_io(&devx, ctx, &plain_ops, &dev, "devx", 0x100), 0);
    assert_int_equal(memory_region_init_alias(&win, ctx, "buswin", &bus, 0x100, 0x100), 0);
    assert_int_equal(memory_region_init_io(&ova, ctx, &plain_ops, &dev, "ovA", 0x10), 0);
    assert_int_equal(memory_region_init_io(&ovb, ctx, &plain_ops, &dev, "ovB", 0x10), 0);
    assert_int_equal(memory_region_add_subregion(&bus, 0x100, &devx), 0);
    assert_int_equal(memory_region_add_subregion(&sys, 0x10000000, &bus), 0);
    assert_int_equal(memory_region_add_subregion(&sys, 0x20000000, &win), 0);
    assert_int_equal(memory_region_add_subregion_overlap(&sys, 0x30000000, &ova, 0), 0);
    assert_int_equal(memory_region_add_subregion_overlap(&sys, 0x30000000, &ovb, 0), 0);
    AddressSpace *as = address_space_new(ctx, &sys, "as0");
    assert_non_null(as);

    char *got = mtree_info_str(ctx, 0);
    expect_text(
        got,
        "address-space: as0\n"
        "  0000000000000000-00000000ffffffff (prio 0, i/o): sys\n"
        "    0000000010000000-000000001000ffff (prio 0, i/o): bus\n"
        "      0000000010000100-00000000100001ff (prio 0, i/o): devx\n"
        "    0000000020000000-00000000200000ff (prio 0, i/o): alias buswin @bus 0000000000000100-00000000000001ff\n"
        "    0000000030000000-000000003000000f (prio 0, i/o): ovB\n"
        "    0000000030000000-000000003000000f (prio 0, i/o): ovA\n"
        "\n"
        "memory-region: bus\n"
        "  0000000010000000-000000001000ffff (prio 0, i/o): bus\n"
        "    0000000010000100-00000000100001ff (prio 0, i/o): devx\n"
        "\n");
    free(got);
    got = mtree_info_str(ctx, MTREE_FLATVIEW);
    expect_text(got, "FlatView #0\n"
                     " AS \"as0\", root: sys\n"
                     " Root memory region: sys\n"
                     "  0000000010000100-00000000100001ff (prio 0, i/o): devx\n"
                     "  0000000020000000-00000000200000ff (prio 0, i/o): devx\n"
                     "  0000000030000000-000000003000000f (prio 0, i/o): ovB\n"
                     "\n");
    free(got);

    address_space_destroy(as);
    assert_int_equal(memory_region_del_subregion(&sys, &ovb), 0);
    assert_int_equal(memory_region_del_subregion(&sys, &ova), 0);
    assert_int_equal(memory_region_del_subregion(&sys, &win), 0);
    assert_int_equal(memory_region_del_subregion(&sys, &bus), 0);
    assert_int_equal(memory_region_del_subregion(&bus, &devx), 0);
    for (size_t i = 6; i-- > 0;) {
        assert_int_equal(memory_region_destroy(all[i]), 0);
    }
    memory_context_free(ctx);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fix_setup, fix_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_tree_text),
        T(test_flatview_text),
        cmocka_unit_test(test_io_space_text),
        cmocka_unit_test(test_empty_text),
        cmocka_unit_test(test_nested_text),
        T(test_json),
        T(test_check_after_board),
    };
    return cmocka_run_group_tests_name("memory-mtree", tests, NULL, NULL);
}
