/* SPDX-License-Identifier: MIT */
/* bzImage setup header parsing (hostile headers too), loading into guest
 * RAM (zero page, e820, command line, initrd, page tables, GDT), the
 * 64-bit entry state and PVH start_info with modules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/boot/boot-linux.h"

#define SETUP_SECTS 4
#define PAYLOAD 0x3000

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void w16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void w32(uint8_t *p, uint32_t v)
{
    w16(p, (uint16_t)v);
    w16(p + 2, (uint16_t)(v >> 16));
}

/* A minimal valid bzImage: protocol 2.15, 64-bit, relocatable. */
static uint8_t *make_image(size_t *len)
{
    *len = (SETUP_SECTS + 1) * 512 + PAYLOAD;
    uint8_t *b = calloc(1, *len);
    b[0x1f1] = SETUP_SECTS;
    w16(b + 0x1fe, 0xaa55);
    b[0x200] = 0xeb;
    b[0x201] = 0x6a; /* header ends at 0x26c */
    memcpy(b + 0x202, "HdrS", 4);
    w16(b + 0x206, 0x020f);
    b[0x211] = 0x01; /* LOADED_HIGH */
    w32(b + 0x22c, 0x7fffffff);
    w32(b + 0x230, 0x200000);
    b[0x234] = 1;
    w16(b + 0x236, 0x3); /* XLF_KERNEL_64 | above 4G */
    w32(b + 0x238, 2047);
    w32(b + 0x258, 0x1000000);
    w32(b + 0x260, 0x800000); /* init_size 8 MiB */
    for (size_t i = 0; i < PAYLOAD; i++)
        b[(SETUP_SECTS + 1) * 512 + i] = (uint8_t)(i * 7 + 1);
    return b;
}

static int parse(uint8_t *b, size_t len, BzImageInfo *bz, char *err)
{
    return bzimage_parse(b, len, "k", bz, err, 256);
}

static void test_parse_valid(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = make_image(&len);
    BzImageInfo bz;
    char err[256] = "";
    assert_true(bzimage_probe(b, len));
    assert_int_equal(parse(b, len, &bz, err), 0);
    assert_int_equal(bz.version, 0x020f);
    assert_int_equal(bz.setup_sects, SETUP_SECTS);
    assert_int_equal(bz.payload_off, (SETUP_SECTS + 1) * 512);
    assert_int_equal(bz.payload_len, PAYLOAD);
    assert_int_equal(bz.hdr_end, 0x26c);
    assert_int_equal(bz.cmdline_size, 2047);
    assert_int_equal(bz.init_size, 0x800000);
    /* setup_sects 0 means 4 */
    b[0x1f1] = 0;
    assert_int_equal(parse(b, len, &bz, err), 0);
    assert_int_equal(bz.setup_sects, 4);
    free(b);
}

static void expect_fail(uint8_t *b, size_t len, const char *want)
{
    BzImageInfo bz;
    char err[256] = "";
    assert_int_equal(parse(b, len, &bz, err), -1);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_parse_hostile(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = make_image(&len);

    expect_fail(b, 0x100, "not a bzImage"); /* too short for a header */
    expect_fail(b, 0x206, "truncated");     /* HdrS but nothing after */
    b[0x202] = 'X';
    assert_false(bzimage_probe(b, len));
    expect_fail(b, len, "not a bzImage");
    b[0x202] = 'H';
    w16(b + 0x206, 0x020b);
    expect_fail(b, len, "too old");
    w16(b + 0x206, 0x020f);
    b[0x201] = 0xff; /* header past the zero page's */
    expect_fail(b, len, "unexpected length");
    b[0x201] = 0x10; /* header too short */
    expect_fail(b, len, "unexpected length");
    b[0x201] = 0x6a;
    w16(b + 0x236, 0);
    expect_fail(b, len, "no 64-bit entry");
    w16(b + 0x236, 3);
    b[0x211] = 0;
    expect_fail(b, len, "loaded low");
    b[0x211] = 1;
    b[0x1f1] = 0xff; /* setup past the file end */
    expect_fail(b, len, "outside the file");
    b[0x1f1] = SETUP_SECTS;
    expect_fail(b, (SETUP_SECTS + 1) * 512 + 0x100, "outside the file"); /* no startup_64 */
    w32(b + 0x230, 0x300000);
    expect_fail(b, len, "power of two");
    w32(b + 0x230, 0x200000);
    w32(b + 0x258, 0);
    w32(b + 0x25c, 1); /* pref_address 4 GiB */
    expect_fail(b, len, "preferred load address");
    w32(b + 0x25c, 0);
    w32(b + 0x258, 0x1000000);
    BzImageInfo bz;
    char err[256];
    assert_int_equal(parse(b, len, &bz, err), 0);
    free(b);
}

/* Every single-byte corruption of the header parses or fails cleanly, and
 * what parses loads or fails cleanly (run under ASan). */
static void test_parse_fuzz(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = make_image(&len);
    GuestRam ram = { calloc(1, 64 << 20), 64 << 20, 0 };
    const uint8_t vals[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
    for (size_t off = 0x1f1; off < 0x270; off++) {
        uint8_t keep = b[off];
        for (size_t k = 0; k < sizeof(vals); k++) {
            b[off] = vals[k];
            BzImageInfo bz;
            char err[256];
            if (bzimage_parse(b, len, "k", &bz, err, sizeof(err)) == 0) {
                LinuxBootParams p = { "console=ttyS0", NULL, 0, 0 };
                (void)bzimage_load(b, len, &bz, &ram, &p, err, sizeof(err));
            }
        }
        b[off] = keep;
    }
    free(ram.host);
    free(b);
}

static void test_e820(void **state)
{
    (void)state;
    E820Entry e[BOOT_E820_MAX];
    GuestRam small = { NULL, 256 << 20, 0 };
    assert_int_equal(boot_e820_build(&small, e, BOOT_E820_MAX), 3);
    assert_int_equal(e[0].addr, 0);
    assert_int_equal(e[0].size, 0xa0000);
    assert_int_equal(e[0].type, E820_TYPE_RAM);
    assert_int_equal(e[1].addr, 0xa0000);
    assert_int_equal(e[1].addr + e[1].size, 0x100000);
    assert_int_equal(e[1].type, E820_TYPE_RESERVED);
    assert_int_equal(e[2].addr, 0x100000);
    assert_int_equal(e[2].addr + e[2].size, 256 << 20);
    GuestRam big = { NULL, 3ull << 30, 5ull << 30 };
    assert_int_equal(boot_e820_build(&big, e, BOOT_E820_MAX), 4);
    assert_int_equal(e[2].addr + e[2].size, 3ull << 30);
    assert_int_equal(e[3].addr, 4ull << 30);
    assert_int_equal(e[3].size, 5ull << 30);
    assert_int_equal(e[3].type, E820_TYPE_RAM);
    /* the map never overlaps and is sorted */
    for (int i = 1; i < 4; i++)
        assert_true(e[i - 1].addr + e[i - 1].size <= e[i].addr);
    assert_int_equal(boot_e820_build(&big, e, 2), 2);
}

static void test_load(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = make_image(&len);
    BzImageInfo bz;
    char err[256] = "";
    assert_int_equal(parse(b, len, &bz, err), 0);
    uint64_t size = 64 << 20;
    GuestRam ram = { calloc(1, size), size, 0 };
    uint8_t initrd[5000];
    memset(initrd, 0x5a, sizeof(initrd));
    LinuxBootParams p = { "console=ttyS0 debug", initrd, sizeof(initrd), 0xe0000 };
    assert_int_equal(bzimage_load(b, len, &bz, &ram, &p, err, sizeof(err)), 0);
    uint8_t *g = ram.host;
    /* payload at 1 MiB */
    assert_memory_equal(g + 0x100000, b + (SETUP_SECTS + 1) * 512, PAYLOAD);
    uint8_t *zp = g + BOOT_ZERO_PAGE_ADDR;
    /* header copied, loader type set */
    assert_memory_equal(zp + 0x202, "HdrS", 4);
    assert_int_equal(zp[0x210], 0xff);
    assert_int_equal(rd32(zp + 0x228), BOOT_CMDLINE_ADDR);
    assert_string_equal((char *)g + BOOT_CMDLINE_ADDR, "console=ttyS0 debug");
    assert_int_equal(rd64(zp + 0x70), 0xe0000);
    /* initrd: page aligned, at the top of RAM, above the kernel's init_size */
    uint32_t rd = rd32(zp + 0x218), rs = rd32(zp + 0x21c);
    assert_int_equal(rs, sizeof(initrd));
    assert_int_equal(rd % 4096, 0);
    assert_true(rd + rs <= size && size - (rd + rs) < 4096);
    assert_true(rd >= 0x1000000 + 0x800000);
    assert_memory_equal(g + rd, initrd, sizeof(initrd));
    /* e820 in the zero page */
    assert_int_equal(zp[0x1e8], 3);
    assert_int_equal(rd64(zp + 0x2d0 + 2 * 20), 0x100000);
    assert_int_equal(rd64(zp + 0x2d0 + 2 * 20 + 8), size - 0x100000);
    assert_int_equal(rd32(zp + 0x2d0 + 2 * 20 + 16), E820_TYPE_RAM);
    /* identity map: PML4[0] -> PDPT, PDPT[3] -> 4th PD, PD entry for 3 GiB */
    assert_int_equal(rd64(g + BOOT_PML4_ADDR), BOOT_PDPT_ADDR | 3);
    assert_int_equal(rd64(g + BOOT_PDPT_ADDR + 24), (BOOT_PD_ADDR + 0x3000) | 3);
    assert_int_equal(rd64(g + BOOT_PD_ADDR + 8 * 1536), (3ull << 30) | 0x83);
    /* GDT: 64-bit code at 0x10, data at 0x18 */
    assert_int_equal(rd64(g + BOOT_GDT_ADDR + 0x10), 0x00af9b000000ffffull);
    assert_int_equal(rd64(g + BOOT_GDT_ADDR + 0x18), 0x00cf93000000ffffull);

    /* a command line longer than the kernel's cmdline_size is refused */
    char *longc = malloc(3000);
    memset(longc, 'a', 2999);
    longc[2999] = 0;
    p.cmdline = longc;
    assert_int_equal(bzimage_load(b, len, &bz, &ram, &p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--cmdline"));
    free(longc);
    /* RAM too small for init_size */
    GuestRam tiny = { ram.host, 16 << 20, 0 };
    p.cmdline = NULL;
    assert_int_equal(bzimage_load(b, len, &bz, &tiny, &p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--memory"));
    /* initrd that does not fit above the kernel */
    GuestRam mid = { ram.host, 0x1800000 + 4096, 0 };
    assert_int_equal(bzimage_load(b, len, &bz, &mid, &p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--initrd"));
    free(ram.host);
    free(b);
}

static void test_entry_state(void **state)
{
    (void)state;
    struct kvm_sregs sr;
    struct kvm_regs rg;
    memset(&sr, 0xff, sizeof(sr));
    bzimage_entry_state(&sr, &rg);
    assert_int_equal(rg.rip, 0x100200);
    assert_int_equal(rg.rsi, BOOT_ZERO_PAGE_ADDR);
    assert_int_equal(rg.rflags, 2); /* interrupts off */
    assert_int_equal(sr.cs.selector, 0x10);
    assert_int_equal(sr.cs.l, 1);
    assert_int_equal(sr.cs.db, 0);
    assert_int_equal(sr.ds.selector, 0x18);
    assert_int_equal(sr.ss.selector, 0x18);
    assert_int_equal(sr.es.selector, 0x18);
    assert_true(sr.cr0 & 0x80000001u);        /* PG, PE */
    assert_true(sr.cr4 & 0x20);               /* PAE */
    assert_int_equal(sr.efer & 0x500, 0x500); /* LME, LMA */
    assert_int_equal(sr.cr3, BOOT_PML4_ADDR);
    assert_int_equal(sr.gdt.base, BOOT_GDT_ADDR);
}

static void test_pvh(void **state)
{
    (void)state;
    uint64_t size = 32 << 20;
    GuestRam ram = { calloc(1, size), size, 0 };
    uint8_t initrd[100];
    memset(initrd, 0xa5, sizeof(initrd));
    LinuxBootParams p = { "root=/dev/vda", initrd, sizeof(initrd), 0xe0000 };
    char err[256] = "";
    uint64_t si = pvh_write_boot_info(&ram, &p, 0x400000, err, sizeof(err));
    assert_int_equal(si, PVH_START_INFO_ADDR);
    uint8_t *s = ram.host + si;
    assert_int_equal(rd32(s), 0x336ec578u);
    assert_int_equal(rd32(s + 4), 1);
    assert_int_equal(rd32(s + 12), 1); /* nr_modules */
    assert_int_equal(rd64(s + 16), PVH_MODLIST_ADDR);
    assert_int_equal(rd64(s + 24), PVH_CMDLINE_ADDR);
    assert_int_equal(rd64(s + 32), 0xe0000);
    assert_int_equal(rd64(s + 40), PVH_MEMMAP_ADDR);
    assert_int_equal(rd32(s + 48), 3);
    uint8_t *mod = ram.host + PVH_MODLIST_ADDR;
    uint64_t at = rd64(mod);
    assert_int_equal(rd64(mod + 8), sizeof(initrd));
    assert_true(at >= 0x400000 && at % 4096 == 0);
    assert_memory_equal(ram.host + at, initrd, sizeof(initrd));
    assert_string_equal((char *)ram.host + PVH_CMDLINE_ADDR, "root=/dev/vda");
    /* without an initrd: no module */
    p.initrd = NULL;
    p.initrd_len = 0;
    assert_int_equal(pvh_write_boot_info(&ram, &p, 0x400000, err, sizeof(err)), si);
    assert_int_equal(rd32(s + 12), 0);
    /* an initrd larger than the RAM after the kernel */
    uint8_t *big = calloc(1, 30 << 20);
    p.initrd = big;
    p.initrd_len = 30 << 20;
    assert_int_equal(pvh_write_boot_info(&ram, &p, 0x400000, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "--initrd"));
    free(big);
    free(ram.host);
}

/* boot_read_file: a private copy of a regular file; a FIFO or a directory
 * is refused at once, naming the option (the alarm ends a hang). */
static void test_read_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/strata-bootfile-XXXXXX", fifo[64], file[64], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    snprintf(file, sizeof(file), "%s/initrd", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    FILE *f = fopen(file, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite("abcdef", 1, 6, f), 6);
    fclose(f);
    uint8_t *buf;
    size_t len;
    alarm(20);
    const char *bad[] = { fifo, dir };
    for (unsigned i = 0; i < 2; i++) {
        char want[128];
        assert_int_equal(boot_read_file(bad[i], 1 << 20, "--initrd", &buf, &len, err, sizeof(err)),
                         -1);
        snprintf(want, sizeof(want), "--initrd %s: not a regular file", bad[i]);
        assert_string_equal(err, want);
        assert_null(buf);
    }
    alarm(0);
    assert_int_equal(boot_read_file(file, 1 << 20, "--initrd", &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(buf, "abcdef", 6);
    assert_int_equal(truncate(file, 0), 0); /* a mapping would fault now */
    assert_memory_equal(buf, "abcdef", 6);
    boot_free_file(buf, len);
    unlink(fifo);
    unlink(file);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid), cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test(test_parse_fuzz),  cmocka_unit_test(test_e820),
        cmocka_unit_test(test_load),        cmocka_unit_test(test_entry_state),
        cmocka_unit_test(test_pvh),         cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
