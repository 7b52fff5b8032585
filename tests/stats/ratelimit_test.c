/* SPDX-License-Identifier: MIT */
/*
 * Disk rate limits end to end (label kvm): the hostile guest's read-loop
 * case (tests/hostile/guest.c) reads 64 KiB at a time, as fast as it may,
 * from a disk started with --disk ...,bw=4M,bw_burst=1M.  The rate is
 * measured from query-blockstats' rd_bytes over about 4 s (host clock)
 * once the first burst is spent, printed, and must lie within
 * 0.8x..1.15x of the limit.  The bucket holds it to the limit plus at most
 * a burst over the window (+6%); the burst of 1/4 s also absorbs the
 * guest's stalls on a loaded host (a stall longer than that loses the
 * tokens it would have used, and the rate falls short: the test runs
 * alone, RUN_SERIAL).  Then block_set_io_throttle raises it to 8 MiB/s
 * (burst 2M) at run time and the same measurement must follow; lifted, the
 * reads speed up; query-block shows the limits, x-query-stats the waits;
 * bad arguments are refused; a NIC's limits from --net and
 * x-net-set-rate-limit show in x-query-stats.  Exit 77 where /dev/kvm
 * cannot run strata's guests.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qmp_harness.h"

#define DISK_BYTES (8u << 20)
#define MIB (1024.0 * 1024.0)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static json_int_t num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    CHECK(json_is_integer(v), "no integer \"%s\"", key);
    return json_integer_value(v);
}

/* disk0's query-blockstats counters (a new reference). */
static json_t *disk_stats(QClient *c)
{
    json_t *r = ok(c, "query-blockstats", NULL);
    json_t *s = json_incref(json_object_get(json_array_get(r, 0), "stats"));
    json_decref(r);
    CHECK(s, "query-blockstats has no disk0");
    return s;
}

static json_int_t rd_bytes(QClient *c)
{
    json_t *s = disk_stats(c);
    json_int_t n = num(s, "rd_bytes");
    json_decref(s);
    return n;
}

/* The read rate over about `secs` seconds, in bytes/s (host clock). */
static double measure(QClient *c, double secs)
{
    json_int_t b0 = rd_bytes(c);
    double t0 = now();
    msleep((unsigned)(secs * 1000));
    json_int_t b1 = rd_bytes(c);
    double t1 = now();
    return (double)(b1 - b0) / (t1 - t0);
}

static void check_rate(double rate, double limit, const char *what)
{
    printf("%s: measured %.3f MiB/s against a limit of %.3f MiB/s (%.1f%% of it)\n", what,
           rate / MIB, limit / MIB, 100.0 * rate / limit);
    CHECK(rate >= 0.8 * limit && rate <= 1.15 * limit,
          "%s: %.3f MiB/s is not within 0.8x..1.15x of %.3f MiB/s", what, rate / MIB, limit / MIB);
}

/* disk0's "inserted" in query-block (a new reference). */
static json_t *inserted(QClient *c)
{
    json_t *r = ok(c, "query-block", NULL);
    json_t *ins = json_incref(json_object_get(json_array_get(r, 0), "inserted"));
    json_decref(r);
    CHECK(ins, "query-block has no inserted disk0");
    return ins;
}

/* net0's "rate-limit" in x-query-stats (a new reference). */
static json_t *net_limit(QClient *c)
{
    json_t *st = ok(c, "x-query-stats", NULL);
    json_t *rl = json_incref(
        json_object_get(json_array_get(json_object_get(st, "net"), 0), "rate-limit"));
    json_decref(st);
    CHECK(rl, "x-query-stats has no net0 rate-limit");
    return rl;
}

/* A NIC's limit from --net and x-net-set-rate-limit, where a TAP can be
 * made (root): what x-query-stats shows.  No traffic (the guest has no
 * network driver). */
static void net_limits(void)
{
    if (access("/dev/net/tun", R_OK | W_OK) != 0) {
        printf("net: no /dev/net/tun access, NIC limits not checked\n");
        return;
    }
    char opt[64];
    snprintf(opt, sizeof(opt), "tap=srl%u,bw=1M,pps=100", (unsigned)getpid() % 100000);
    unlink(sock_path);
    strata_pid = spawn("--test-device", "--kernel", HOSTILE_ELF, "--net", opt, "--api-socket",
                       sock_path, "--serial", "none", "--cmdline", "case=idle", NULL);
    QClient *c = open_client();
    json_t *rl = net_limit(c);
    CHECK(num(rl, "bw") == 1 << 20 && num(rl, "pps") == 100 && num(rl, "bw_burst") == 0,
          "net0: bw 1M, pps 100 from --net expected");
    json_decref(rl);
    json_decref(ok(c, "x-net-set-rate-limit",
                   "{\"id\":\"net0\",\"bw\":2000000,\"bw_burst\":5000,\"pps\":7}"));
    rl = net_limit(c);
    CHECK(num(rl, "bw") == 2000000 && num(rl, "bw_burst") == 5000 && num(rl, "pps") == 7 &&
              num(rl, "pps_burst") == 0,
          "net0: the limit x-net-set-rate-limit set");
    json_decref(rl);
    fails(c, "x-net-set-rate-limit", "{\"id\":\"net0\",\"pps_burst\":3}", "GenericError",
          "require corresponding");
    fails(c, "x-net-set-rate-limit", "{\"id\":\"net1\"}", "DeviceNotFound", "net1");
    json_decref(ok(c, "quit", NULL));
    qc_close(c);
    int code = wait_status(strata_pid);
    strata_pid = -1;
    CHECK(code == 0, "strata exited with %d", code);
    printf("net: --net limits and x-net-set-rate-limit shown by x-query-stats\n");
}

int main(void)
{
    harness_init("ratelimit");
    char disk[160], opt[220];
    snprintf(disk, sizeof(disk), "%s/disk.img", tmpdir);
    FILE *f = fopen(disk, "w");
    CHECK(f && ftruncate(fileno(f), DISK_BYTES) == 0, "cannot make %s", disk);
    fclose(f);
    snprintf(opt, sizeof(opt), "path=%s,bw=4M,bw_burst=1M", disk);
    strata_pid = spawn("--test-device", "--kernel", HOSTILE_ELF, "--disk", opt, "--api-socket",
                       sock_path, "--serial", "none", "--cmdline", "case=read-loop", NULL);
    QClient *c = open_client();
    double t0 = now();
    while (rd_bytes(c) == 0) {
        CHECK(now() - t0 < 60, "the guest read nothing in 60 s");
        msleep(50);
    }
    msleep(300); /* past the burst */

    json_t *ins = inserted(c);
    CHECK(num(ins, "bps") == 4 << 20 && num(ins, "iops") == 0 && num(ins, "bps_max") == 1 << 20,
          "query-block: bps 4M, iops 0, bps_max 1M expected");
    json_decref(ins);

    check_rate(measure(c, 4.0), 4 << 20, "bw=4M");

    /* at run time, QEMU's way: 8 MiB/s, with its read/write fields 0 */
    json_decref(ok(c, "block_set_io_throttle",
                   "{\"id\":\"disk0\",\"bps\":8388608,\"bps_rd\":0,\"bps_wr\":0,\"iops\":0,"
                   "\"iops_rd\":0,\"iops_wr\":0,\"bps_max\":2097152}"));
    msleep(300);
    check_rate(measure(c, 4.0), 8 << 20, "block_set_io_throttle bps=8M");
    ins = inserted(c);
    CHECK(num(ins, "bps") == 8 << 20, "query-block: bps 8M after block_set_io_throttle");
    json_decref(ins);

    /* lifted: well past the last limit (a loose bound: only that it moved) */
    json_decref(ok(c, "block_set_io_throttle",
                   "{\"device\":\"disk0\",\"bps\":0,\"bps_rd\":0,\"bps_wr\":0,\"iops\":0,"
                   "\"iops_rd\":0,\"iops_wr\":0}"));
    msleep(200);
    double free_rate = measure(c, 1.0);
    printf("unlimited: %.3f MiB/s\n", free_rate / MIB);
    CHECK(free_rate > 1.3 * (8 << 20), "lifting the limit did not speed the reads up");
    ins = inserted(c);
    CHECK(num(ins, "bps") == 0 && !json_object_get(ins, "bps_max"),
          "query-block: no limit after lifting it");
    json_decref(ins);

    /* the waits were counted */
    json_t *st = ok(c, "x-query-stats", NULL);
    json_t *bs = json_object_get(json_array_get(json_object_get(st, "block"), 0), "stats");
    CHECK(bs, "x-query-stats has no block stats");
    json_int_t waits = num(bs, "x-throttled"), waited = num(bs, "x-throttled-ns");
    printf("x-query-stats: throttled %lld times, %.3f s in all\n", (long long)waits,
           (double)waited / 1e9);
    CHECK(waits >= 10 && waited >= 100000000ll, "throttled counters too small");
    json_decref(st);

    /* what is refused */
    fails(c, "block_set_io_throttle",
          "{\"id\":\"disk0\",\"bps\":0,\"bps_rd\":1,\"bps_wr\":0,\"iops\":0,\"iops_rd\":0,"
          "\"iops_wr\":0}",
          "GenericError", "not supported: separate read/write limits");
    fails(c, "block_set_io_throttle",
          "{\"id\":\"disk7\",\"bps\":0,\"bps_rd\":0,\"bps_wr\":0,\"iops\":0,\"iops_rd\":0,"
          "\"iops_wr\":0}",
          "DeviceNotFound", "disk7");
    fails(c, "block_set_io_throttle",
          "{\"id\":\"disk0\",\"bps\":-1,\"bps_rd\":0,\"bps_wr\":0,\"iops\":0,\"iops_rd\":0,"
          "\"iops_wr\":0}",
          "GenericError", "bps must be within");
    fails(c, "block_set_io_throttle",
          "{\"id\":\"disk0\",\"bps\":0,\"bps_rd\":0,\"bps_wr\":0,\"iops\":0,\"iops_rd\":0,"
          "\"iops_wr\":0,\"iops_max\":5}",
          "GenericError", "require corresponding");
    fails(c, "x-net-set-rate-limit", "{\"id\":\"net0\",\"bw\":1000}", "DeviceNotFound", "net0");

    char *err = read_log("stderr.txt");
    CHECK(!strstr(err, "read-loop: FAIL"), "a read failed:\n%s", err);
    free(err);
    json_decref(ok(c, "quit", NULL));
    qc_close(c);
    int code = wait_status(strata_pid);
    strata_pid = -1;
    CHECK(code == 0, "strata exited with %d", code);
    net_limits();
    printf("ok: disk rate limit held, changed at run time, lifted, counted\n");
    return 0;
}
