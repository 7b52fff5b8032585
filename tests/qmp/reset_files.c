/* SPDX-License-Identifier: MIT */
/*
 * The files strata boots from are read once (label kvm): after `--initrd`
 * or a bzImage `--kernel` is truncated or rewritten on disk, QMP
 * system_reset must neither crash strata (a file still mapped would raise
 * SIGBUS) nor boot the new contents.  The guest's copy is read back with
 * `xp` after each reset and compared with what the file held at start.
 *   initrd:  the spin guest (PVH) with a 64 KiB initrd; the module's address
 *            comes from the PVH start_info strata writes.
 *   bzImage: a minimal 64-bit bzImage whose kernel is `hlt; jmp .-1` at its
 *            entry (startup_64 at 1M + 0x200).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qmp_harness.h"

#define INITRD_LEN (64 * 1024)
#define PVH_START_INFO 0x6000
#define BZ_PAYLOAD_LEN 0x2000 /* the protected-mode kernel's size */
#define BZ_SETUP_SECTS 4

/* n (at most 4096) bytes of guest memory at gpa, through `xp /Nxb`. */
static void read_guest(QClient *c, uint64_t gpa, size_t n, uint8_t *out)
{
    char line[64];
    snprintf(line, sizeof(line), "xp /%zuxb 0x%llx", n, (unsigned long long)gpa);
    char *s = hmp(c, line);
    size_t got = 0;
    for (char *save, *t = strtok_r(s, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
        if (t[strlen(t) - 1] == ':')
            continue; /* the line's address */
        CHECK(got < n, "xp printed more than %zu bytes", n);
        out[got++] = (uint8_t)strtoul(t, NULL, 16);
    }
    CHECK(got == n, "xp printed %zu bytes, not %zu", got, n);
    free(s);
}

static uint64_t read_u64(QClient *c, uint64_t gpa)
{
    uint8_t b[8];
    read_guest(c, gpa, 8, b);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    /* O_TRUNC without O_CREAT on an existing file: the same inode, rewritten */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0, "%s: %s", path, strerror(errno));
    CHECK(write(fd, data, len) == (ssize_t)len, "write %s: %s", path, strerror(errno));
    close(fd);
}

static void reset_and_check_alive(QClient *c, const char *what)
{
    json_t *r = ok(c, "system_reset", NULL);
    json_decref(r);
    r = ok(c, "query-status", NULL);
    const char *st = json_string_value(json_object_get(r, "status"));
    CHECK(st && !strcmp(st, "running"), "%s: status after reset: %s", what, st ? st : "?");
    json_decref(r);
    int status;
    CHECK(waitpid(strata_pid, &status, WNOHANG) == 0, "%s: strata died at the reset", what);
}

static void quit(QClient *c)
{
    json_t *r = qc_cmd(c, "quit", NULL);
    json_decref(r);
    qc_close(c);
    int st = wait_status(strata_pid);
    CHECK(st == 0, "quit: exit status %d", st);
}

/* --- the initrd of a PVH guest ---------------------------------------- */

static void check_initrd(QClient *c, const uint8_t *want, const char *when)
{
    uint64_t mod = read_u64(c, PVH_START_INFO + 16); /* modlist_paddr */
    uint64_t addr = read_u64(c, mod), size = read_u64(c, mod + 8);
    CHECK(size == INITRD_LEN, "%s: the guest's initrd has %llu bytes, not %u", when,
          (unsigned long long)size, INITRD_LEN);
    uint8_t got[4096];
    for (size_t off = 0; off < INITRD_LEN; off += sizeof(got)) {
        read_guest(c, addr + off, sizeof(got), got);
        CHECK(!memcmp(got, want + off, sizeof(got)),
              "%s: the guest's initrd differs from the "
              "file strata started with at offset %zu (0x%02x, want 0x%02x)",
              when, off, got[0], want[off]);
    }
}

static void test_initrd(void)
{
    static uint8_t orig[INITRD_LEN], other[INITRD_LEN];
    for (size_t i = 0; i < INITRD_LEN; i++) {
        orig[i] = (uint8_t)(i * 7 + 3);
        other[i] = (uint8_t)~orig[i];
    }
    char path[160];
    snprintf(path, sizeof(path), "%s/initrd.img", tmpdir);
    write_file(path, orig, sizeof(orig));
    strata_pid = spawn("--kernel", SPIN_ELF, "--serial", "none", "--api-socket", sock_path,
                       "--initrd", path, NULL);
    QClient *c = open_client();
    check_initrd(c, orig, "at start");

    CHECK(truncate(path, 0) == 0, "truncate %s: %s", path, strerror(errno));
    reset_and_check_alive(c, "initrd truncated to 0 bytes");
    check_initrd(c, orig, "after a reset with the initrd truncated");
    printf("PASS initrd truncated on disk: system_reset boots the contents read at start\n");

    write_file(path, other, sizeof(other));
    reset_and_check_alive(c, "initrd rewritten");
    check_initrd(c, orig, "after a reset with the initrd rewritten at the same size");
    printf("PASS initrd rewritten on disk: system_reset boots the contents read at start\n");
    quit(c);
}

/* --- a bzImage kernel -------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

/* A bzImage (boot protocol 2.15) whose protected-mode kernel halts at its
 * 64-bit entry; the rest of the payload is a pattern to compare. */
static size_t make_bzimage(uint8_t *img, size_t cap, uint8_t seed)
{
    size_t off = (BZ_SETUP_SECTS + 1) * 512, len = off + BZ_PAYLOAD_LEN;
    CHECK(len <= cap, "bzImage buffer too small");
    memset(img, 0, len);
    img[0x1f1] = BZ_SETUP_SECTS;
    put16(img + 0x1fe, 0xaa55);
    img[0x200] = 0xeb; /* jmp: the header ends at 0x202 + 0x66 */
    img[0x201] = 0x66;
    put32(img + 0x202, 0x53726448); /* "HdrS" */
    put16(img + 0x206, 0x020f);
    img[0x211] = 0x01;              /* LOADED_HIGH */
    put32(img + 0x22c, 0x7fffffff); /* initrd_addr_max */
    put32(img + 0x230, 0x200000);   /* kernel_alignment */
    put16(img + 0x236, 0x0001);     /* XLF_KERNEL_64 */
    put32(img + 0x238, 2048);       /* cmdline_size */
    put32(img + 0x258, 0x1000000);  /* pref_address (low half) */
    put32(img + 0x260, 0x100000);   /* init_size */
    for (size_t i = 0; i < BZ_PAYLOAD_LEN; i++)
        img[off + i] = (uint8_t)(i * 13 + seed);
    img[off + 0x200] = 0xf4; /* startup_64: hlt */
    img[off + 0x201] = 0xeb; /* jmp to the hlt */
    img[off + 0x202] = 0xfd;
    return len;
}

static void check_kernel(QClient *c, const uint8_t *payload, const char *when)
{
    uint8_t got[4096];
    for (size_t off = 0; off < BZ_PAYLOAD_LEN; off += sizeof(got)) {
        read_guest(c, 0x100000 + off, sizeof(got), got);
        CHECK(!memcmp(got, payload + off, sizeof(got)),
              "%s: the kernel in guest RAM differs "
              "from the file strata started with at offset %zu",
              when, off);
    }
}

static void test_bzimage(void)
{
    static uint8_t orig[16384], other[16384];
    size_t len = make_bzimage(orig, sizeof(orig), 1);
    make_bzimage(other, sizeof(other), 2);
    const uint8_t *payload = orig + (BZ_SETUP_SECTS + 1) * 512;
    char path[160];
    snprintf(path, sizeof(path), "%s/bzImage", tmpdir);
    write_file(path, orig, len);
    strata_pid = spawn("--kernel", path, "--serial", "none", "--api-socket", sock_path, NULL);
    QClient *c = open_client();
    check_kernel(c, payload, "at start");

    CHECK(truncate(path, 0) == 0, "truncate %s: %s", path, strerror(errno));
    reset_and_check_alive(c, "bzImage truncated to 0 bytes");
    check_kernel(c, payload, "after a reset with the bzImage truncated");
    printf("PASS bzImage truncated on disk: system_reset boots the kernel read at start\n");

    write_file(path, other, len);
    reset_and_check_alive(c, "bzImage rewritten");
    check_kernel(c, payload, "after a reset with the bzImage rewritten at the same size");
    printf("PASS bzImage rewritten on disk: system_reset boots the kernel read at start\n");
    quit(c);
}

int main(void)
{
    harness_init("reset-files");
    test_initrd();
    test_bzimage();
    printf("reset-files: all passed\n");
    return 0;
}
