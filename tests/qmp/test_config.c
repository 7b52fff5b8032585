/* SPDX-License-Identifier: MIT */
/* Unit tests of `strata run`'s option and config-file parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/config.h"
#include "vmm/text.h"

static char err[1024];

/* Parses a NULL-terminated argument list into *cfg. */
static int parse(VmConfig *cfg, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, cfg);
    for (char *a = va_arg(ap, char *); a && argc < 32; a = va_arg(ap, char *))
        argv[argc++] = a;
    va_end(ap);
    vm_config_init(cfg);
    err[0] = 0;
    return vm_config_parse_args(cfg, argc, argv, err, sizeof(err));
}

static void expect_error(int r, const char *text)
{
    assert_int_equal(r, CONFIG_ERROR);
    if (!strstr(err, text))
        fail_msg("error '%s' lacks '%s'", err, text);
}

static void test_sizes(void **state)
{
    struct {
        const char *s;
        uint64_t v;
    } good[] = {
        { "256M", 256ull << 20 }, { "256", 256ull << 20 },   { "1G", 1ull << 30 },
        { "1g", 1ull << 30 },     { "4096K", 4ull << 20 },   { "2m", 2ull << 20 },
        { "1T", 1ull << 40 },     { "0256M", 256ull << 20 }, { "0", 0 },
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t v = 1;
        if (parse_size(good[i].s, &v) != 0 || v != good[i].v)
            fail_msg("parse_size(%s) = %llu", good[i].s, (unsigned long long)v);
    }
    const char *bad[] = { "", "12Q", "M", "-1M", "+1M", " 1M", "1M ", "1.5G", "1MM", "1KBB",
                          "99999999999999999999", "17179869184G", "1e3", "0x", "1 M",
                          /* decimal only, K/M/G/T only (0x4000000B was read as hex) */
                          "0x10M", "0x4000000B", "0X100", "2MB", "8192B", "1GiB", "1Ki", NULL };
    for (size_t i = 0; bad[i]; i++) {
        uint64_t v = 7;
        if (parse_size(bad[i], &v) == 0)
            fail_msg("parse_size('%s') accepted (%llu)", bad[i], (unsigned long long)v);
    }
    uint64_t v;
    assert_int_equal(parse_size(NULL, &v), -1);
}

static void test_defaults_and_values(void **state)
{
    VmConfig c;
    assert_int_equal(parse(&c, "--kernel", "k.elf", NULL), CONFIG_OK);
    assert_string_equal(c.kernel, "k.elf");
    assert_int_equal(c.memory, 256ull << 20);
    assert_int_equal(c.cpus, 1);
    assert_int_equal(c.serial, SERIAL_STDIO);
    assert_false(c.test_device);
    assert_null(c.api_socket);
    assert_null(c.cmdline);
    vm_config_free(&c);

    assert_int_equal(parse(&c, "--kernel=k.elf", "--memory=1G", "--cpus", "1", "--cmdline",
                           "console=ttyS0 quiet", "--api-socket", "/tmp/s", "--serial",
                           "file=/tmp/out", "--test-device", NULL),
                     CONFIG_OK);
    assert_int_equal(c.memory, 1ull << 30);
    assert_string_equal(c.cmdline, "console=ttyS0 quiet");
    assert_string_equal(c.api_socket, "/tmp/s");
    assert_int_equal(c.serial, SERIAL_FILE);
    assert_string_equal(c.serial_path, "/tmp/out");
    assert_true(c.test_device);
    vm_config_free(&c);

    assert_int_equal(parse(&c, "--kernel", "k", "--serial", "none", NULL), CONFIG_OK);
    assert_int_equal(c.serial, SERIAL_NONE);
    vm_config_free(&c);
    /* the last occurrence wins */
    assert_int_equal(parse(&c, "--kernel", "a", "--kernel", "b", "--memory", "64M", "--memory",
                           "128M", NULL),
                     CONFIG_OK);
    assert_string_equal(c.kernel, "b");
    assert_int_equal(c.memory, 128ull << 20);
    vm_config_free(&c);
}

static void test_bad_values(void **state)
{
    VmConfig c;
    expect_error(parse(&c, "--kernel", "k", "--memory", "12Q", NULL), "--memory 12Q: invalid size");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--memory", "0x4000000B", NULL),
                 "--memory 0x4000000B: invalid size (expected a decimal number");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--memory", "512MB", NULL),
                 "--memory 512MB: invalid size");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--memory", "1M", NULL), "--memory 1M: too small");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--memory", "2T", NULL), "--memory 2T: too large");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--memory", "4097K", NULL),
                 "--memory 4097K: not a multiple of 4K");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--cpus", "65", NULL), "--cpus 65: too many vCPUs");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--cpus", "0", NULL), "--cpus 0: at least one");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--cpus", "x", NULL), "--cpus x: invalid");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--cpus", "-1", NULL), "--cpus -1: invalid");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--serial", "tty", NULL),
                 "--serial tty: expected stdio, file=PATH, pty, socket=PATH or none");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--serial", "socket=", NULL),
                 "--serial socket=: empty socket path");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--serial", "file=", NULL), "--serial file=: empty");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "", NULL), "--kernel : empty path");
    vm_config_free(&c);
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[199] = 0;
    expect_error(parse(&c, "--kernel", "k", "--api-socket", longpath, NULL), "path too long");
    vm_config_free(&c);
    char *longcmd = malloc(5000);
    memset(longcmd, 'c', 4999);
    longcmd[4999] = 0;
    expect_error(parse(&c, "--kernel", "k", "--cmdline", longcmd, NULL), "too long");
    vm_config_free(&c);
    /* strata appends " reboot=k" (9 bytes) unless the text has a reboot=: the
     * whole line may have 4095, so 4086 given, or 4095 with a reboot= */
    for (size_t len = 4085; len <= 4096; len++) {
        memset(longcmd, 'c', len);
        longcmd[len] = 0;
        int r = parse(&c, "--kernel", "k", "--cmdline", longcmd, NULL);
        if (len <= 4086)
            assert_int_equal(r, CONFIG_OK);
        else
            expect_error(r, "reboot=k\" strata appends");
        assert_int_equal(vm_cmdline_appended(longcmd), 9);
        vm_config_free(&c);
        memcpy(longcmd, "reboot=t ", 9); /* chooses its reboot method */
        assert_int_equal(vm_cmdline_appended(longcmd), 0);
        r = parse(&c, "--kernel", "k", "--cmdline", longcmd, NULL);
        if (len <= 4095)
            assert_int_equal(r, CONFIG_OK);
        else
            expect_error(r, "too long (the maximum is 4095 bytes)");
        vm_config_free(&c);
    }
    assert_int_equal(vm_cmdline_appended(NULL), 8);
    assert_int_equal(vm_cmdline_appended("quiet reboot=k"), 0);
    free(longcmd);
    expect_error(parse(&c, "--memory", "64M", NULL), "--kernel: missing");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", NULL), "--kernel: missing value");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--frobnicate", NULL), "unknown option '--frobnicate'");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "stray", NULL), "unexpected argument 'stray'");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--test-device=yes", NULL), "takes no value");
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--initrd", "i.cpio", "--cpus", "4", NULL),
                     CONFIG_OK);
    assert_string_equal(c.initrd, "i.cpio");
    assert_int_equal(c.cpus, 4);
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--initrd", "", NULL), "--initrd : empty path");
    vm_config_free(&c);
    /* --incoming */
    assert_int_equal(parse(&c, "--kernel", "k", "--incoming", "unix:/tmp/m.sock", NULL), CONFIG_OK);
    assert_string_equal(c.incoming, "unix:/tmp/m.sock");
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--incoming=tcp:127.0.0.1:4444", NULL), CONFIG_OK);
    assert_string_equal(c.incoming, "tcp:127.0.0.1:4444");
    vm_config_free(&c);
    /* --incoming defer: the URI comes through QMP, so the socket is needed */
    assert_int_equal(parse(&c, "--kernel", "k", "--incoming", "defer", "--api-socket", "/tmp/q",
                           NULL),
                     CONFIG_OK);
    assert_string_equal(c.incoming, "defer");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--incoming", "defer", NULL),
                 "--incoming defer: needs --api-socket");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--incoming", "deferred", NULL),
                 "--incoming deferred: expected");
    vm_config_free(&c);
    const char *bad_uri[] = { "x",       "unix:",       "tcp:host",  "tcp::5",
                              "tcp:h:0", "tcp:h:65536", "tcp:h:12x", "file:" };
    for (size_t i = 0; i < sizeof(bad_uri) / sizeof(bad_uri[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "--incoming %s: expected", bad_uri[i]);
        if (!strcmp(bad_uri[i], "unix:"))
            snprintf(want, sizeof(want), "--incoming unix:: unix:PATH needs");
        if (!strcmp(bad_uri[i], "file:"))
            snprintf(want, sizeof(want), "--incoming file:: file:PATH needs");
        expect_error(parse(&c, "--kernel", "k", "--incoming", bad_uri[i], NULL), want);
        vm_config_free(&c);
    }
    /* snapshots: --incoming file:PATH, --restore PATH[,prefault=on] */
    assert_int_equal(parse(&c, "--kernel", "k", "--incoming=file:/s.snap", NULL), CONFIG_OK);
    assert_string_equal(c.incoming, "file:/s.snap");
    assert_false(c.restore_prefault);
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--restore", "/a,b.snap,prefault=on", NULL),
                     CONFIG_OK);
    assert_string_equal(c.incoming, "file:/a,b.snap");
    assert_true(c.restore_prefault);
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--restore", "/s,prefault=maybe", NULL),
                 "prefault=on or prefault=off");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--restore", ",prefault=on", NULL), "expected PATH");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--restore", "/s", "--incoming", "unix:/x", NULL),
                 "only one of --incoming and --restore");
    vm_config_free(&c);
    /* --disk and --net (repeatable) */
    assert_int_equal(parse(&c, "--kernel", "k", "--disk", "path=/a.img", "--disk",
                           "path=b,readonly=on", "--net", "tap=tap0", "--net",
                           "tap=t1,mac=02:AA:bb:00:00:01", "--rng", NULL),
                     CONFIG_OK);
    assert_int_equal(c.ndisks, 2);
    assert_string_equal(c.disks[0].path, "/a.img");
    assert_false(c.disks[0].readonly);
    assert_true(c.disks[1].readonly);
    assert_int_equal(c.nnets, 2);
    assert_string_equal(c.nets[0].tap, "tap0");
    assert_int_equal(c.nets[0].mac[0], 0x52);
    assert_int_equal(c.nets[1].mac[1], 0xaa);
    assert_true(c.rng);
    vm_config_free(&c);
    const char *bad_dev[][2] = {
        { "--disk", "x" },
        { "--disk", "path=" },
        { "--disk", "path=a,readonly=yes" },
        { "--disk", "readonly=on" },
        { "--disk", "path=a,bogus=1" },
        { "--net", "tap=" },
        { "--net", "tap=a-name-too-long-for-linux" },
        { "--net", "tap=t,mac=52:54:00:12:34" },
        { "--net", "tap=t,mac=52:54:00:12:34:zz" },
        { "--net", "tap=t,mac=01:00:00:00:00:01" },
        { "--net", "mac=52:54:00:12:34:56" },
    };
    for (size_t i = 0; i < sizeof(bad_dev) / sizeof(bad_dev[0]); i++) {
        char want[160];
        snprintf(want, sizeof(want), "%s %s:", bad_dev[i][0], bad_dev[i][1]);
        expect_error(parse(&c, "--kernel", "k", bad_dev[i][0], bad_dev[i][1], NULL), want);
        vm_config_free(&c);
    }
}

/* --disk num-queues: 1 to 16, a decimal count, default 1 (0 in the
 * config: not given); also in --config JSON. */
/* event_idx / indirect_desc (QEMU's names): on, off, nothing else */
static void test_disk_ring_features(void **state)
{
    (void)state;
    VmConfig c;
    assert_int_equal(parse(&c, "--kernel", "k", "--disk", "path=/a,event_idx=off", "--disk",
                           "path=/b,indirect_desc=off,event_idx=on", "--disk", "path=/c", NULL),
                     CONFIG_OK);
    assert_true(c.disks[0].no_event_idx);
    assert_false(c.disks[0].no_indirect);
    assert_false(c.disks[1].no_event_idx);
    assert_true(c.disks[1].no_indirect);
    assert_false(c.disks[2].no_event_idx || c.disks[2].no_indirect);
    vm_config_free(&c);
    const char *bad[] = { "path=/a,event_idx=", "path=/a,event_idx=no", "path=/a,indirect_desc=1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = parse(&c, "--kernel", "k", "--disk", bad[i], NULL);
        if (r != CONFIG_ERROR || !strstr(err, "[,event_idx=on|off]"))
            fail_msg("--disk %s: %d '%s'", bad[i], r, err);
        vm_config_free(&c);
    }
}

static void test_disk_num_queues(void **state)
{
    (void)state;
    VmConfig c;
    assert_int_equal(parse(&c, "--kernel", "k", "--disk", "path=/a,num-queues=4", "--disk",
                           "path=/b", "--disk", "num-queues=16,readonly=on,path=/c", "--disk",
                           "path=/d,num-queues=1", NULL),
                     CONFIG_OK);
    assert_int_equal(c.disks[0].num_queues, 4);
    assert_int_equal(c.disks[1].num_queues, 0);
    assert_int_equal(c.disks[2].num_queues, 16);
    assert_true(c.disks[2].readonly);
    assert_int_equal(c.disks[3].num_queues, 1);
    vm_config_free(&c);
    vm_config_init(&c);
    assert_int_equal(vm_config_apply_json(&c, "{\"disk\": [\"path=/j,num-queues=2\"]}", "test", err,
                                          sizeof(err)),
                     0);
    assert_int_equal(c.disks[0].num_queues, 2);
    vm_config_free(&c);
    const char *bad[] = { "path=/a,num-queues=0",  "path=/a,num-queues=17",
                          "path=/a,num-queues=",   "path=/a,num-queues=-1",
                          "path=/a,num-queues=2x", "path=/a,num-queues=99999999999999999999" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = parse(&c, "--kernel", "k", "--disk", bad[i], NULL);
        if (r != CONFIG_ERROR || !strstr(err, "invalid num-queues (expected a decimal count from "
                                              "1 to 16"))
            fail_msg("--disk %s: %d '%s'", bad[i], r, err);
        vm_config_free(&c);
    }
    assert_int_equal(parse(&c, "--kernel", "k", "--net", "tap=t0,num-queues=2", NULL),
                     CONFIG_ERROR); /* a disk's key */
    vm_config_free(&c);
}

/* Rate limits on --disk and --net (also in --config JSON): byte rates and
 * bursts with K/M/G suffixes (bare: bytes), counts in decimal, bursts only
 * with their rate. */
static void test_rate_limits(void **state)
{
    (void)state;
    VmConfig c;
    assert_int_equal(parse(&c, "--kernel", "k", "--disk", "path=/a,bw=4M,iops=100", "--disk",
                           "path=/b,bw=1000,bw_burst=64K,iops=5,iops_burst=20,readonly=on", "--net",
                           "tap=t0,bw=1G,pps=1000,pps_burst=50,bw_burst=2048", "--net", "tap=t1",
                           NULL),
                     CONFIG_OK);
    assert_int_equal(c.disks[0].rl.bw, 4ull << 20);
    assert_int_equal(c.disks[0].rl.ops, 100);
    assert_int_equal(c.disks[0].rl.bw_burst, 0); /* default: one second's worth */
    assert_int_equal(c.disks[0].rl.ops_burst, 0);
    assert_int_equal(c.disks[1].rl.bw, 1000);
    assert_int_equal(c.disks[1].rl.bw_burst, 64 << 10);
    assert_int_equal(c.disks[1].rl.ops, 5);
    assert_int_equal(c.disks[1].rl.ops_burst, 20);
    assert_true(c.disks[1].readonly);
    assert_int_equal(c.nets[0].rl.bw, 1ull << 30);
    assert_int_equal(c.nets[0].rl.bw_burst, 2048);
    assert_int_equal(c.nets[0].rl.ops, 1000);
    assert_int_equal(c.nets[0].rl.ops_burst, 50);
    assert_false(ratelimit_active_cfg(&c.nets[1].rl));
    vm_config_free(&c);
    vm_config_init(&c);
    assert_int_equal(vm_config_apply_json(&c,
                                          "{\"disk\": [\"path=/j,bw=2M,bw_burst=128K\"], "
                                          "\"net\": [\"tap=t0,pps=10\"], \"kernel\": \"k\"}",
                                          "test", err, sizeof(err)),
                     0);
    assert_int_equal(c.disks[0].rl.bw, 2ull << 20);
    assert_int_equal(c.disks[0].rl.bw_burst, 128 << 10);
    assert_int_equal(c.nets[0].rl.ops, 10);
    vm_config_free(&c);
    const struct {
        const char *opt, *val, *why;
    } bad[] = {
        { "--disk", "path=/a,bw=-1", "invalid rate limit" },
        { "--disk", "path=/a,bw=4Q", "invalid rate limit" },
        { "--disk", "path=/a,bw=", "invalid rate limit" },
        { "--disk", "path=/a,iops=1K", "invalid rate limit" }, /* counts: decimal */
        { "--disk", "path=/a,iops=99999999999999999999", "invalid rate limit" },
        { "--disk", "path=/a,bw_burst=1M", "bw_burst needs bw" },
        { "--disk", "path=/a,iops_burst=4", "iops_burst needs iops" },
        { "--disk", "path=/a,pps=4", "expected path=FILE" }, /* a NIC's key */
        { "--net", "tap=t0,iops=4", "expected tap=NAME" },   /* a disk's key */
        { "--net", "tap=t0,pps=x", "invalid rate limit" },
        { "--net", "tap=t0,pps_burst=3", "pps_burst needs pps" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = parse(&c, "--kernel", "k", bad[i].opt, bad[i].val, NULL);
        if (r != CONFIG_ERROR || !strstr(err, bad[i].why))
            fail_msg("%s %s: %d '%s', expected '%s'", bad[i].opt, bad[i].val, r, err, bad[i].why);
        vm_config_free(&c);
    }
    uint64_t v;
    assert_int_equal(parse_bytes("123", &v), 0);
    assert_int_equal(v, 123); /* bare: bytes, not MiB as --memory */
    assert_int_equal(parse_bytes("3K", &v), 0);
    assert_int_equal(v, 3072);
    assert_int_equal(parse_bytes("1.5M", &v), -1);
}

static void test_help(void **state)
{
    VmConfig c;
    assert_int_equal(parse(&c, "--memory", "bogus", "--help", NULL), CONFIG_HELP);
    vm_config_free(&c);
    assert_int_equal(parse(&c, "-h", NULL), CONFIG_HELP);
    vm_config_free(&c);
    const char *u = vm_config_usage();
    assert_non_null(strstr(u, "--kernel"));
    assert_non_null(strstr(u, "  --disk path=FILE"));
    assert_non_null(strstr(u, "  --net tap=NAME"));
    assert_non_null(strstr(u, "  --incoming URI"));
}

/* ",," in an option's value is one comma, as in QEMU's options: paths with
 * commas; the JSON config's strings go through the same parser. */
static void test_double_commas(void **state)
{
    VmConfig c;
    assert_int_equal(parse(&c, "--kernel", "k", "--disk", "path=/img/a,,b.raw,readonly=on",
                           "--disk", "path=x,,,,y,,", "--disk", "readonly=off,path=,,lead", NULL),
                     CONFIG_OK);
    assert_int_equal(c.ndisks, 3);
    assert_string_equal(c.disks[0].path, "/img/a,b.raw");
    assert_true(c.disks[0].readonly);
    assert_string_equal(c.disks[1].path, "x,,y,");
    assert_false(c.disks[1].readonly);
    assert_string_equal(c.disks[2].path, ",lead");
    vm_config_free(&c);
    /* a single comma still ends the value */
    expect_error(parse(&c, "--kernel", "k", "--disk", "path=a,b", NULL),
                 "expected path=FILE[,readonly=on|off]");
    vm_config_free(&c);
    /* ",,," : one comma in the value, then the next key */
    assert_int_equal(parse(&c, "--kernel", "k", "--disk", "path=a,,,readonly=on", NULL), CONFIG_OK);
    assert_string_equal(c.disks[0].path, "a,");
    assert_true(c.disks[0].readonly);
    vm_config_free(&c);
    vm_config_init(&c);
    assert_int_equal(vm_config_apply_json(&c, "{\"disk\": [\"path=j,,1\"], \"kernel\": \"k\"}",
                                          "test", err, sizeof(err)),
                     0);
    assert_string_equal(c.disks[0].path, "j,1");
    vm_config_free(&c);
    assert_non_null(
        strstr(vm_config_usage(), "a comma in FILE\n                       is written ,,"));
}

/* --name and --uuid (QMP query-name, query-uuid): defaults, values, errors. */
static void test_name_uuid(void **state)
{
    VmConfig c;
    assert_int_equal(parse(&c, "--kernel", "k", NULL), CONFIG_OK);
    assert_null(c.name);
    assert_string_equal(c.uuid, "00000000-0000-0000-0000-000000000000");
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--name", "web 1, \xc3\xa9", "--uuid",
                           "6BA7B810-9dad-11D1-80b4-00c04fd430c8", NULL),
                     CONFIG_OK);
    assert_string_equal(c.name, "web 1, \xc3\xa9");
    assert_string_equal(c.uuid, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    vm_config_free(&c);
    const char *bad_uuid[] = {
        "",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c",   /* short */
        "6ba7b810-9dad-11d1-80b4-00c04fd430c88", /* long */
        "6ba7b8109dad-11d1-80b4-00c04fd430c8-",  /* dash misplaced */
        "6ba7b810-9dad-11d1-80b4-00c04fd430cg",  /* not hex */
        "{6ba7b810-9dad-11d1-80b4-00c04fd430c}",
        NULL,
    };
    for (int i = 0; bad_uuid[i]; i++) {
        expect_error(parse(&c, "--kernel", "k", "--uuid", bad_uuid[i], NULL),
                     "invalid UUID (expected 8-4-4-4-12 hex digits");
        vm_config_free(&c);
    }
    expect_error(parse(&c, "--kernel", "k", "--name", "", NULL), "--name : empty name");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--name", "a\xff", NULL), "not valid UTF-8");
    vm_config_free(&c);
    char long_name[300];
    memset(long_name, 'n', 256);
    long_name[256] = 0;
    expect_error(parse(&c, "--kernel", "k", "--name", long_name, NULL), "the maximum is 255");
    vm_config_free(&c);
    /* the config file takes the same keys */
    vm_config_init(&c);
    assert_int_equal(vm_config_apply_json(&c,
                                          "{\"name\": \"j\", \"uuid\": "
                                          "\"00000000-0000-0000-0000-0000000000ff\"}",
                                          "test", err, sizeof(err)),
                     0);
    assert_string_equal(c.name, "j");
    assert_string_equal(c.uuid, "00000000-0000-0000-0000-0000000000ff");
    vm_config_free(&c);
    assert_non_null(strstr(vm_config_usage(), "  --name NAME"));
    assert_non_null(strstr(vm_config_usage(), "  --uuid UUID"));
}

/* --seccomp, --jail-uid/--jail-gid, --chroot: CLI, JSON, errors, help. */
static void test_sandbox_options(void **state)
{
    VmConfig c;
    assert_int_equal(parse(&c, "--kernel", "k", NULL), CONFIG_OK);
    assert_int_equal(c.seccomp, VM_SECCOMP_KILL); /* the default */
    assert_int_equal(c.jail_uid, -1);
    assert_int_equal(c.jail_gid, -1);
    assert_null(c.chroot_dir);
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--seccomp=log", NULL), CONFIG_OK);
    assert_int_equal(c.seccomp, VM_SECCOMP_LOG);
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--seccomp", "off", "--jail-uid", "1000",
                           "--jail-gid=100", "--chroot", "/var/empty", NULL),
                     CONFIG_OK);
    assert_int_equal(c.seccomp, VM_SECCOMP_OFF);
    assert_int_equal(c.jail_uid, 1000);
    assert_int_equal(c.jail_gid, 100);
    assert_string_equal(c.chroot_dir, "/var/empty");
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--jail-uid", "0", "--jail-gid", "0", NULL),
                     CONFIG_OK);
    assert_int_equal(c.jail_uid, 0);
    vm_config_free(&c);

    expect_error(parse(&c, "--kernel", "k", "--seccomp", "strict", NULL),
                 "--seccomp strict: expected kill, log or off");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--seccomp", NULL), "--seccomp: missing value");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--jail-uid", "-1", "--jail-gid", "1", NULL),
                 "--jail-uid -1: expected a decimal number");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--jail-uid", "4294967295", "--jail-gid", "1", NULL),
                 "below 4294967295");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--jail-gid", "12x", NULL),
                 "--jail-gid 12x: expected a decimal number");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--jail-uid", "5", NULL),
                 "--jail-uid: needs --jail-gid too");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--jail-gid", "5", NULL),
                 "--jail-gid: needs --jail-uid too");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--chroot", "", NULL), "--chroot : empty path");
    vm_config_free(&c);

    vm_config_init(&c);
    assert_int_equal(vm_config_apply_json(&c,
                                          "{\"seccomp\":\"log\",\"jail-uid\":65534,"
                                          "\"jail-gid\":\"65534\",\"chroot\":\"/j\"}",
                                          "cfg", err, sizeof(err)),
                     0);
    assert_int_equal(c.seccomp, VM_SECCOMP_LOG);
    assert_int_equal(c.jail_uid, 65534);
    assert_int_equal(c.jail_gid, 65534);
    assert_string_equal(c.chroot_dir, "/j");
    vm_config_free(&c);
    vm_config_init(&c);
    assert_int_equal(vm_config_apply_json(&c, "{\"seccomp\":true}", "cfg", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key \"seccomp\": expected a string"));
    assert_int_equal(vm_config_apply_json(&c, "{\"jail-uid\":-3}", "cfg", err, sizeof(err)), -1);
    vm_config_free(&c);

    const char *u = vm_config_usage();
    assert_non_null(strstr(u, "--seccomp MODE"));
    assert_non_null(strstr(u, "--jail-uid UID --jail-gid GID"));
    assert_non_null(strstr(u, "--chroot DIR"));
}

/* --dirty-ring auto|off|ENTRIES: CLI, JSON, errors, help. */
static void test_dirty_ring(void **state)
{
    (void)state;
    VmConfig c;
    assert_int_equal(parse(&c, "--kernel", "k", NULL), CONFIG_OK);
    assert_int_equal(c.dirty_ring, VM_DIRTY_RING_AUTO); /* the default */
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--dirty-ring", "off", NULL), CONFIG_OK);
    assert_int_equal(c.dirty_ring, VM_DIRTY_RING_OFF);
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--dirty-ring=1024", NULL), CONFIG_OK);
    assert_int_equal(c.dirty_ring, 1024);
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--dirty-ring", "off", "--dirty-ring", "auto",
                           NULL),
                     CONFIG_OK);
    assert_int_equal(c.dirty_ring, VM_DIRTY_RING_AUTO);
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--dirty-ring", "65536", NULL), CONFIG_OK);
    vm_config_free(&c);
    const char *bad[] = { "1000", "128", "131072", "0", "", "4k", "-256", "on" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_error(parse(&c, "--kernel", "k", "--dirty-ring", bad[i], NULL),
                     "expected auto, off or a number of entries");
        vm_config_free(&c);
    }
    vm_config_init(&c);
    assert_int_equal(vm_config_apply_json(&c, "{\"dirty-ring\":512}", "cfg", err, sizeof(err)), 0);
    assert_int_equal(c.dirty_ring, 512);
    assert_int_equal(vm_config_apply_json(&c, "{\"dirty-ring\":\"off\"}", "cfg", err, sizeof(err)),
                     0);
    assert_int_equal(c.dirty_ring, VM_DIRTY_RING_OFF);
    vm_config_free(&c);
    assert_non_null(strstr(vm_config_usage(), "--dirty-ring auto|off|ENTRIES"));
}

static void test_vsock(void **state)
{
    (void)state;
    VmConfig c;
    vm_config_init(&c);
    assert_int_equal(c.vsock.cid, 0);
    assert_int_equal(parse(&c, "--kernel", "k", "--vsock", "cid=3,uds=/tmp/v.sock", NULL),
                     CONFIG_OK);
    assert_int_equal(c.vsock.cid, 3);
    assert_string_equal(c.vsock.uds, "/tmp/v.sock");
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--vsock=uds=/a,,b,cid=4294967294", NULL),
                     CONFIG_OK);
    assert_int_equal(c.vsock.cid, 4294967294ull);
    assert_string_equal(c.vsock.uds, "/a,b");
    vm_config_free(&c);
    const char *bad[] = {
        "cid=2,uds=/x", "cid=4294967295,uds=/x", "cid=3", "uds=/x", "cid=-3,uds=/x",
        "cid=3,uds=",   "cid=3,uds=/x,port=1"
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[80];
        snprintf(want, sizeof(want), "--vsock %s: expected", bad[i]);
        expect_error(parse(&c, "--kernel", "k", "--vsock", bad[i], NULL), want);
        vm_config_free(&c);
    }
    char longp[200];
    memset(longp, 'a', sizeof(longp));
    memcpy(longp, "cid=3,uds=/", 11);
    longp[11 + 96] = 0; /* a path of 97 bytes: no room for _<port> */
    assert_int_equal(parse(&c, "--kernel", "k", "--vsock", longp, NULL), CONFIG_ERROR);
    vm_config_free(&c);
    assert_int_equal(vm_config_apply_json(&c, "{\"vsock\": \"cid=5,uds=/v\"}", "cfg", err,
                                          sizeof(err)),
                     0);
    assert_int_equal(c.vsock.cid, 5);
    vm_config_free(&c);
    assert_non_null(strstr(vm_config_usage(), "--vsock cid=N,uds=PATH"));
}

static void test_balloon(void **state)
{
    (void)state;
    VmConfig c;
    vm_config_init(&c);
    assert_false(c.balloon.on);
    assert_int_equal(parse(&c, "--kernel", "k", "--balloon", NULL), CONFIG_OK);
    assert_true(c.balloon.on);
    assert_false(c.balloon.deflate_on_oom);
    assert_int_equal(c.balloon.stats_interval, 0);
    vm_config_free(&c);
    /* a flag followed by another option: no value taken */
    assert_int_equal(parse(&c, "--balloon", "--kernel", "k", NULL), CONFIG_OK);
    assert_true(c.balloon.on);
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--balloon",
                           "deflate-on-oom=on,free-page-reporting=on,stats-interval=5", NULL),
                     CONFIG_OK);
    assert_true(c.balloon.on && c.balloon.deflate_on_oom && c.balloon.free_page_reporting);
    assert_int_equal(c.balloon.stats_interval, 5);
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--balloon=stats-interval=86400", NULL), CONFIG_OK);
    assert_int_equal(c.balloon.stats_interval, 86400);
    vm_config_free(&c);
    const char *bad[] = { "stats-interval=86401", "stats-interval=-1", "stats-interval=",
                          "deflate-on-oom=yes",   "bogus=on",          "on" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[80];
        snprintf(want, sizeof(want), "--balloon %s: expected", bad[i]);
        expect_error(parse(&c, "--kernel", "k", "--balloon", bad[i], NULL), want);
        vm_config_free(&c);
    }
    /* JSON: true, false or the option's text */
    assert_int_equal(vm_config_apply_json(&c, "{\"balloon\": true}", "cfg", err, sizeof(err)), 0);
    assert_true(c.balloon.on);
    assert_int_equal(vm_config_apply_json(&c, "{\"balloon\": false}", "cfg", err, sizeof(err)), 0);
    assert_false(c.balloon.on);
    assert_int_equal(vm_config_apply_json(&c, "{\"balloon\": \"deflate-on-oom=on\"}", "cfg", err,
                                          sizeof(err)),
                     0);
    assert_true(c.balloon.on && c.balloon.deflate_on_oom);
    assert_int_equal(vm_config_apply_json(&c, "{\"balloon\": 3}", "cfg", err, sizeof(err)), -1);
    vm_config_free(&c);
}

static void test_metrics(void **state)
{
    (void)state;
    VmConfig c;
    vm_config_init(&c);
    assert_null(c.metrics_path);
    assert_int_equal(parse(&c, "--kernel", "k", "--metrics", "/run/m.jsonl", NULL), CONFIG_OK);
    assert_string_equal(c.metrics_path, "/run/m.jsonl");
    assert_int_equal(c.metrics_interval, VM_METRICS_DEFAULT_INTERVAL);
    vm_config_free(&c);
    /* ",," is a comma of the path; the last --metrics wins */
    assert_int_equal(parse(&c, "--kernel", "k", "--metrics", "x", "--metrics=a,,b,interval=1",
                           NULL),
                     CONFIG_OK);
    assert_string_equal(c.metrics_path, "a,b");
    assert_int_equal(c.metrics_interval, 1);
    vm_config_free(&c);
    assert_int_equal(parse(&c, "--kernel", "k", "--metrics", "m,interval=86400", NULL), CONFIG_OK);
    assert_int_equal(c.metrics_interval, 86400);
    vm_config_free(&c);
    const char *bad[] = { "m,interval=0",  "m,interval=86401", "m,interval=", "m,interval=-5",
                          "m,interval=1x", "m,every=5",        ",interval=5", "" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[80];
        snprintf(want, sizeof(want), "--metrics %s: expected PATH", bad[i]);
        expect_error(parse(&c, "--kernel", "k", "--metrics", bad[i], NULL), want);
        vm_config_free(&c);
    }
    assert_int_equal(vm_config_apply_json(&c, "{\"metrics\": \"p,interval=2\"}", "cfg", err,
                                          sizeof(err)),
                     0);
    assert_string_equal(c.metrics_path, "p");
    assert_int_equal(c.metrics_interval, 2);
    vm_config_free(&c);
    assert_true(strstr(vm_config_usage(), "--metrics PATH[,interval=SECONDS]") != NULL);
}

static void test_json(void **state)
{
    VmConfig c;
    vm_config_init(&c);
    assert_int_equal(
        vm_config_apply_json(
            &c,
            "{\"kernel\": \"g.elf\", \"memory\": \"512M\", \"cpus\": 1, \"cmdline\": \"x=1\","
            " \"api-socket\": \"/tmp/a\", \"serial\": \"none\", \"test-device\": true}",
            "cfg", err, sizeof(err)),
        0);
    assert_string_equal(c.kernel, "g.elf");
    assert_int_equal(c.memory, 512ull << 20);
    assert_int_equal(c.serial, SERIAL_NONE);
    assert_true(c.test_device);
    assert_int_equal(vm_config_apply_json(&c, "{\"memory\": 64}", "cfg", err, sizeof(err)), 0);
    assert_int_equal(c.memory, 64ull << 20); /* a bare number is MiB */
    vm_config_free(&c);
    /* repeatable options: a string or an array of strings */
    vm_config_init(&c);
    assert_int_equal(
        vm_config_apply_json(
            &c, "{\"disk\": [\"path=/a.img\", \"path=/b.img,readonly=on\"], \"net\": [\"tap=t0\"]}",
            "cfg", err, sizeof(err)),
        0);
    assert_int_equal(c.ndisks, 2);
    assert_string_equal(c.disks[1].path, "/b.img");
    assert_true(c.disks[1].readonly);
    assert_int_equal(c.nnets, 1);
    vm_config_free(&c);

    struct {
        const char *json, *msg;
    } bad[] = {
        { "{\"memory\": \"12Q\"}", "cfg: key \"memory\" (12Q): invalid size" },
        { "{\"memory\": -5}", "key \"memory\": expected a string or a non-negative integer" },
        { "{\"memory\": 1.5}", "expected a string" },
        { "{\"kernel\": 5}", "key \"kernel\": expected a string" },
        { "{\"test-device\": \"yes\"}", "expected true or false" },
        { "{\"cpus\": 99}", "too many vCPUs" },
        { "{\"disk\": \"x\"}", "key \"disk\" (x): expected path=FILE" },
        { "{\"disk\": [\"path=/a\", 7]}", "key \"disk\"[1]: expected a string" },
        { "{\"disk\": [\"x\"]}", "key \"disk\"[0] (x): expected path=FILE" },
        { "{\"kernel\": [\"a\"]}", "key \"kernel\": expected a string" },
        { "{\"incoming\": \"ftp:/x\"}", "key \"incoming\" (ftp:/x): expected tcp:HOST:PORT" },
        { "{\"bogus\": 1}", "unknown key \"bogus\"" },
        { "{\"help\": true}", "unknown key \"help\"" },
        { "{\"config\": \"other.json\"}", "cannot include another" },
        { "{\"kernel\": \"a\", \"kernel\": \"b\"}", "invalid JSON" },
        { "[1, 2]", "expected a JSON object" },
        { "{\"kernel\": ", "invalid JSON" },
        { "", "invalid JSON" },
        { "{\"kernel\": \"a\\u0000b\"}", "" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vm_config_init(&c);
        err[0] = 0;
        if (vm_config_apply_json(&c, bad[i].json, "cfg", err, sizeof(err)) != -1)
            fail_msg("accepted %s", bad[i].json);
        if (!strstr(err, bad[i].msg))
            fail_msg("%s: error '%s' lacks '%s'", bad[i].json, err, bad[i].msg);
        vm_config_free(&c);
    }
}

static void test_config_file(void **state)
{
    char path[] = "strata-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "{\"kernel\": \"file.elf\", \"memory\": \"1G\", \"serial\": \"none\"}";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    VmConfig c;
    /* the command line overrides the file, wherever --config appears */
    assert_int_equal(parse(&c, "--memory", "128M", "--config", path, NULL), CONFIG_OK);
    assert_string_equal(c.kernel, "file.elf");
    assert_int_equal(c.memory, 128ull << 20);
    assert_int_equal(c.serial, SERIAL_NONE);
    vm_config_free(&c);
    expect_error(parse(&c, "--config", path, "--config", path, NULL), "only one config file");
    vm_config_free(&c);
    expect_error(parse(&c, "--config", "/nonexistent/strata.json", NULL),
                 "--config /nonexistent/strata.json: No such file or directory");
    vm_config_free(&c);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "{\"memory\": \"3X\"}", 16), 16);
    close(fd);
    expect_error(parse(&c, "--config", path, "--kernel", "k", NULL), "key \"memory\" (3X)");
    vm_config_free(&c);
    unlink(path);
    /* a FIFO or a directory is refused, naming the option, without blocking
     * (the alarm ends a test that hangs in open) */
    char dir[] = "/tmp/strata-config-XXXXXX", fifo[64], want[128];
    assert_non_null(mkdtemp(dir));
    snprintf(fifo, sizeof(fifo), "%s/fifo.json", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    alarm(20);
    snprintf(want, sizeof(want), "--config %s: not a regular file", fifo);
    expect_error(parse(&c, "--config", fifo, "--kernel", "k", NULL), want);
    vm_config_free(&c);
    snprintf(want, sizeof(want), "--config %s: not a regular file", dir);
    expect_error(parse(&c, "--config", dir, "--kernel", "k", NULL), want);
    vm_config_free(&c);
    alarm(0);
    unlink(fifo);
    rmdir(dir);
}

/* True if err holds only printable ASCII. */
static bool printable(const char *e)
{
    for (; *e; e++)
        if ((unsigned char)*e < 0x20 || (unsigned char)*e > 0x7e)
            return false;
    return true;
}

static void test_text_escape(void **state)
{
    char out[64];
    assert_string_equal(text_escape(out, sizeof(out), "plain text 1-2", 14), "plain text 1-2");
    assert_string_equal(text_escape(out, sizeof(out), "a\x1b[2Jb\n\\\x7f\x80\xff", 11),
                        "a\\x1b[2Jb\\x0a\\\\\\x7f\\x80\\xff");
    assert_string_equal(text_escape(out, sizeof(out), "nul\0in", 6), "nul\\x00in");
    assert_string_equal(text_escape(out, sizeof(out), "", 0), "");
    /* cut at a whole character or escape, marked, never past cap */
    assert_string_equal(text_escape(out, 8, "abcdefghij", 10), "abcd...");
    assert_string_equal(text_escape(out, 8, "abcdefg", 7), "abcdefg");
    assert_string_equal(text_escape(out, 8,
                                    "ab\x01"
                                    "defg",
                                    7),
                        "ab...");
    assert_string_equal(text_escape(out, 8, "abc\x01", 4), "abc\\x01");
    assert_string_equal(text_escape(out, 3, "abcdef", 6), "..");
    out[0] = 'x';
    text_escape(out, 0, "abc", 3);
    assert_int_equal(out[0], 'x');
    for (size_t cap = 1; cap < 40; cap++) {
        char buf[64];
        memset(buf, 'Z', sizeof(buf));
        text_escape(buf, cap, "\x1b]0;owned\x07\xc3\xa9 text", 17);
        assert_true(strlen(buf) < cap);
        assert_true(printable(buf));
        assert_int_equal(buf[cap], 'Z');
    }
}

/* Values from the command line or a config file reach messages escaped. */
static void test_escaped_values(void **state)
{
    VmConfig c;
    expect_error(parse(&c, "--kernel", "k", "--memory", "\x1b]0;owned\x07", NULL),
                 "--memory \\x1b]0;owned\\x07: invalid size");
    assert_true(printable(err));
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--serial", "\xc3\xa9\x9b", NULL),
                 "--serial \\xc3\\xa9\\x9b: expected");
    vm_config_free(&c);
    expect_error(parse(&c, "--kernel", "k", "--\x1b[31m", NULL), "unknown option '--\\x1b[31m'");
    vm_config_free(&c);
    vm_config_init(&c);
    assert_int_equal(vm_config_apply_json(&c, "{\"mem\\u001bory\": 1}", "cfg", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "unknown key \"mem\\x1bory\""));
    assert_true(printable(err));
    assert_int_equal(vm_config_apply_json(&c, "{\"memory\": \"\\u009b6n\\u00ff\"}", "cfg", err,
                                          sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "key \"memory\" (\\xc2\\x9b6n\\xc3\\xbf): invalid size"));
    assert_true(printable(err));
    assert_int_equal(vm_config_apply_json(&c, "{\"memory\": \"\x01\"}", "cfg", err, sizeof(err)),
                     -1);
    assert_true(printable(err)); /* jansson's own message quotes the byte */
    vm_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_defaults_and_values),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_sandbox_options),
        cmocka_unit_test(test_rate_limits),
        cmocka_unit_test(test_disk_num_queues),
        cmocka_unit_test(test_disk_ring_features),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_text_escape),
        cmocka_unit_test(test_escaped_values),
        cmocka_unit_test(test_balloon),
        cmocka_unit_test(test_vsock),
        cmocka_unit_test(test_name_uuid),
        cmocka_unit_test(test_double_commas),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_dirty_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
