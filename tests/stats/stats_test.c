/* SPDX-License-Identifier: MIT */
/*
 * The statistics against a guest whose I/O is known (tests/hostile/guest.c,
 * case stats-io: 3 reads of 4 KiB, 2 writes of 1 KiB at sectors 100 and
 * 200, 1 flush, 1 read past the end), under `strata run --metrics
 * PATH,interval=1` with the default seccomp filters:
 *   - query-blockstats says exactly that, query-block describes the disk,
 *     HMP info blockstats / info block / info migrate agree;
 *   - x-query-stats: vCPU 0's exits are non-zero, sum to exits-total and
 *     grow while the guest runs (a PIO exit every 2^20 spins); its block
 *     figures are query-blockstats'; the disk's queue saw 7 kicks;
 *   - the metrics file gets one object per second with the same keys and
 *     increasing timestamps, and one more when strata quits;
 *   - a --metrics file whose writes fail (/dev/full) is reported once and
 *     the VM keeps running;
 *   - a disk with num-queues=4 (case mq-io: requests on queues 0 and 3)
 *     counts all its queues' requests in one blockstats entry, and
 *     x-query-stats lists its four queues with each one's kicks; its
 *     snapshot restores on a 4-queue disk and is refused (status 5, one
 *     line saying both counts) on a 2-queue one.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qmp_harness.h"

#define DISK_BYTES (1u << 20)

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

/* Starts the guest's case `name` on a disk with `disk_extra` options (""
 * or ",num-queues=4") and --metrics metrics_opt, and waits for its
 * verdict. */
static void start_case(const char *name, const char *disk, const char *disk_extra,
                       const char *metrics_opt)
{
    char disk_opt[240], cmd[64], pass_line[96], fail_line[96];
    snprintf(disk_opt, sizeof(disk_opt), "path=%s%s", disk, disk_extra);
    snprintf(cmd, sizeof(cmd), "case=%s", name);
    snprintf(pass_line, sizeof(pass_line), "guest: hostile: %s: PASS", name);
    snprintf(fail_line, sizeof(fail_line), "guest: hostile: %s: FAIL", name);
    strata_pid = spawn("--test-device", "--kernel", HOSTILE_ELF, "--disk", disk_opt, "--api-socket",
                       sock_path, "--serial", "none", "--cmdline", cmd, "--metrics", metrics_opt,
                       NULL);
    double t0 = now();
    for (;;) {
        char *err = read_log("stderr.txt");
        bool pass = strstr(err, pass_line) != NULL;
        bool fail = strstr(err, fail_line) != NULL;
        if (fail)
            fprintf(stderr, "%s", err);
        free(err);
        CHECK(!fail, "the guest's requests did not complete as expected");
        if (pass)
            return;
        int st;
        CHECK(waitpid(strata_pid, &st, WNOHANG) == 0, "strata ended before the guest's verdict");
        CHECK(now() - t0 < 60, "no verdict from the guest after 60 s");
        msleep(20);
    }
}

/* The stats-io guest with extra --metrics. */
static void start(const char *disk, const char *metrics_opt)
{
    start_case("stats-io", disk, "", metrics_opt);
}

static void check_blockstats(json_t *stats)
{
    CHECK(num(stats, "rd_operations") == 3, "rd_operations");
    CHECK(num(stats, "rd_bytes") == 3 * 4096, "rd_bytes");
    CHECK(num(stats, "wr_operations") == 2, "wr_operations");
    CHECK(num(stats, "wr_bytes") == 2 * 1024, "wr_bytes");
    CHECK(num(stats, "flush_operations") == 1, "flush_operations");
    CHECK(num(stats, "invalid_rd_operations") == 1,
          "invalid_rd_operations (the read past the end)");
    CHECK(num(stats, "invalid_wr_operations") == 0, "invalid_wr_operations");
    CHECK(num(stats, "failed_rd_operations") + num(stats, "failed_wr_operations") +
                  num(stats, "failed_flush_operations") ==
              0,
          "failed operations");
    CHECK(num(stats, "wr_highest_offset") == 200 * 512 + 1024, "wr_highest_offset");
}

/* vCPU 0's exits: exits-total and the sum of the kinds. */
static json_int_t exits_of(json_t *st, json_int_t *io, json_int_t *mmio)
{
    json_t *cpu = json_array_get(json_object_get(st, "vcpus"), 0);
    CHECK(cpu && num(cpu, "cpu-index") == 0, "x-query-stats has no vCPU 0");
    json_t *ex = json_object_get(cpu, "exits");
    json_int_t sum = 0;
    const char *k;
    json_t *v;
    json_object_foreach(ex, k, v)
    {
        sum += json_integer_value(v);
    }
    *io = num(ex, "io");
    *mmio = num(ex, "mmio");
    CHECK(sum == num(cpu, "exits-total"), "the exit kinds sum to %lld, exits-total says %lld",
          (long long)sum, (long long)num(cpu, "exits-total"));
    return sum;
}

/* The schema entry named name, or NULL. */
static json_t *schema_entry(json_t *schema, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(schema, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n && !strcmp(n, name))
            return e;
    }
    return NULL;
}

/* The new commands are served and described, with their arguments. */
static void check_schema(QClient *c)
{
    json_t *schema = ok(c, "query-qmp-schema", NULL);
    static const char *const names[] = { "query-block", "query-blockstats", "x-query-stats" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        json_t *e = schema_entry(schema, names[i]);
        CHECK(e && !strcmp(json_string_value(json_object_get(e, "meta-type")), "command"),
              "query-qmp-schema lacks the command %s", names[i]);
    }
    json_t *bs = schema_entry(schema, "query-blockstats");
    json_t *at = schema_entry(schema, json_string_value(json_object_get(bs, "arg-type")));
    json_t *m = json_array_get(json_object_get(at, "members"), 0);
    CHECK(m && !strcmp(json_string_value(json_object_get(m, "name")), "query-nodes") &&
              !strcmp(json_string_value(json_object_get(m, "type")), "bool") &&
              json_object_get(m, "default"),
          "query-blockstats' optional argument query-nodes (bool) is not in the schema");
    json_decref(schema);
}

static void check_qmp(QClient *c, const char *disk)
{
    check_schema(c);
    json_t *bs = ok(c, "query-blockstats", NULL);
    CHECK(json_array_size(bs) == 1, "query-blockstats: %zu entries", json_array_size(bs));
    json_t *e = json_array_get(bs, 0);
    CHECK(!strcmp(json_string_value(json_object_get(e, "device")), "disk0"), "device name");
    check_blockstats(json_object_get(e, "stats"));

    json_t *blk = ok(c, "query-block", NULL);
    json_t *ins = json_object_get(json_array_get(blk, 0), "inserted");
    CHECK(ins && !strcmp(json_string_value(json_object_get(ins, "file")), disk), "inserted.file");
    CHECK(!strcmp(json_string_value(json_object_get(ins, "drv")), "raw"), "drv");
    CHECK(json_is_false(json_object_get(ins, "ro")), "ro");
    CHECK(num(json_object_get(ins, "image"), "virtual-size") == DISK_BYTES, "virtual-size");
    json_decref(blk);

    json_t *st1 = ok(c, "x-query-stats", NULL);
    json_int_t io1, mmio1, io2, mmio2;
    json_int_t t1 = exits_of(st1, &io1, &mmio1);
    CHECK(io1 > 0 && mmio1 > 0, "io %lld, mmio %lld exits", (long long)io1, (long long)mmio1);
    json_t *sb = json_array_get(json_object_get(st1, "block"), 0);
    CHECK(json_equal(sb, e), "x-query-stats' block entry differs from query-blockstats'");
    json_t *q0 = json_array_get(json_object_get(json_array_get(json_object_get(st1, "virtio"), 0),
                                                "queues"),
                                0);
    CHECK(q0 && num(q0, "kicks") == 7, "the disk's queue: 7 kicks expected (7 requests)");
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(st1, "migration"), "status")),
                  "none"),
          "migration status");
    msleep(1500);
    json_t *st2 = ok(c, "x-query-stats", NULL);
    json_int_t t2 = exits_of(st2, &io2, &mmio2);
    CHECK(io2 > io1 && t2 > t1, "exits did not grow: io %lld -> %lld", (long long)io1,
          (long long)io2);
    CHECK(num(st2, "uptime-ms") > num(st1, "uptime-ms"), "uptime-ms did not grow");
    printf("exits: io %lld -> %lld, mmio %lld -> %lld in 1.5 s\n", (long long)io1, (long long)io2,
           (long long)mmio1, (long long)mmio2);
    json_decref(st1);
    json_decref(st2);
    json_decref(bs);

    char *out = hmp(c, "info blockstats");
    CHECK(strstr(out, "disk0: rd_bytes=12288 wr_bytes=2048 rd_operations=3 wr_operations=2 "
                      "flush_operations=1"),
          "info blockstats: %s", out);
    free(out);
    out = hmp(c, "info block");
    CHECK(strstr(out, "disk0: ") && strstr(out, disk) && strstr(out, "(raw)"), "info block: %s",
          out);
    free(out);
    out = hmp(c, "info migrate");
    CHECK(strstr(out, "Migration status: none"), "info migrate: %s", out);
    free(out);
}

/* The lines of the metrics file: each an object with the keys, the
 * timestamps and uptimes increasing, exits never falling.  Their number. */
static size_t check_metrics(const char *path, size_t at_least)
{
    char *text = slurp(path);
    size_t n = 0;
    double last_ts = 0;
    json_int_t last_up = -1, last_exits = -1;
    for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        CHECK(json_is_object(o), "metrics line %zu is not a JSON object: %s", n + 1, line);
        static const char *const keys[] = { "timestamp", "uptime-ms", "status", "vcpus",
                                            "block",     "net",       "virtio", "migration" };
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            CHECK(json_object_get(o, keys[k]), "metrics line %zu lacks \"%s\"", n + 1, keys[k]);
        json_t *ts = json_object_get(o, "timestamp");
        double t = (double)num(ts, "seconds") + (double)num(ts, "microseconds") / 1e6;
        json_int_t up = num(o, "uptime-ms"), io, mmio;
        json_int_t ex = exits_of(o, &io, &mmio);
        CHECK(t > last_ts && up > last_up, "metrics line %zu: time did not advance", n + 1);
        CHECK(ex >= last_exits, "metrics line %zu: exits fell", n + 1);
        check_blockstats(json_object_get(json_array_get(json_object_get(o, "block"), 0), "stats"));
        last_ts = t;
        last_up = up;
        last_exits = ex;
        json_decref(o);
        n++;
    }
    free(text);
    CHECK(n >= at_least, "%zu metrics lines, expected at least %zu", n, at_least);
    return n;
}

/* The mq-io guest on a disk with num-queues=4 (tests/hostile/guest.c): its
 * requests on queues 0 and 3 all count in the one disk's blockstats, and
 * x-query-stats lists the four queues with their own kicks (queues 1 and 2
 * were kicked though never set up; nothing was taken from them). */
static void check_mq(const char *disk)
{
    unlink(sock_path);
    start_case("mq-io", disk, ",num-queues=4", "/dev/null,interval=60");
    QClient *c = open_client();
    json_t *bs = ok(c, "query-blockstats", NULL);
    CHECK(json_array_size(bs) == 1, "query-blockstats: %zu entries", json_array_size(bs));
    json_t *e = json_object_get(json_array_get(bs, 0), "stats");
    CHECK(num(e, "rd_operations") == 3 && num(e, "rd_bytes") == 3 * 4096,
          "reads on queues 0 and 3: rd_operations %lld, rd_bytes %lld",
          (long long)num(e, "rd_operations"), (long long)num(e, "rd_bytes"));
    CHECK(num(e, "wr_operations") == 1 && num(e, "wr_bytes") == 1024,
          "the write on queue 3: wr_operations %lld", (long long)num(e, "wr_operations"));
    CHECK(num(e, "wr_highest_offset") == 300 * 512 + 1024, "wr_highest_offset");
    CHECK(num(e, "invalid_rd_operations") + num(e, "failed_rd_operations") +
                  num(e, "invalid_wr_operations") + num(e, "failed_wr_operations") ==
              0,
          "failed or invalid requests");
    json_t *st = ok(c, "x-query-stats", NULL);
    CHECK(json_equal(json_array_get(json_object_get(st, "block"), 0), json_array_get(bs, 0)),
          "x-query-stats' block entry differs from query-blockstats'");
    json_t *qs = json_object_get(json_array_get(json_object_get(st, "virtio"), 0), "queues");
    CHECK(json_array_size(qs) == 4, "the disk has %zu queues in x-query-stats, 4 expected",
          json_array_size(qs));
    for (size_t q = 0; q < 4; q++)
        CHECK(num(json_array_get(qs, q), "queue") == (json_int_t)q &&
                  num(json_array_get(qs, q), "kicks") == 1,
              "queue %zu: 1 kick expected, %lld", q,
              (long long)num(json_array_get(qs, q), "kicks"));
    CHECK(num(json_array_get(qs, 0), "interrupts") >= 1 &&
              num(json_array_get(qs, 3), "interrupts") >= 1 &&
              num(json_array_get(qs, 1), "interrupts") + num(json_array_get(qs, 2), "interrupts") ==
                  0,
          "used-buffer interrupts on queues 0 and 3 only");
    json_decref(st);
    json_decref(bs);

    /* a snapshot carries the four queues */
    char snap[160], args[240];
    snprintf(snap, sizeof(snap), "%s/mq.snap", tmpdir);
    snprintf(args, sizeof(args), "{\"uri\": \"file:%s\"}", snap);
    json_decref(ok(c, "migrate", args));
    for (double t0 = now();;) {
        json_t *q = ok(c, "query-migrate", NULL);
        const char *status = json_string_value(json_object_get(q, "status"));
        bool done = status && !strcmp(status, "completed");
        CHECK(done || (status && strcmp(status, "failed")), "the snapshot failed");
        json_decref(q);
        if (done)
            break;
        CHECK(now() - t0 < 60, "the snapshot did not complete in 60 s");
        msleep(20);
    }
    json_decref(ok(c, "quit", NULL));
    qc_close(c);
    int code = wait_status(strata_pid);
    strata_pid = -1;
    CHECK(code == 0, "strata exited with %d", code);
    char *img = slurp(disk);
    for (unsigned i = 0; i < 1024; i++)
        CHECK((unsigned char)img[300 * 512 + i] == 0x3c,
              "the write on queue 3 is not on the disk (byte %u)", i);
    free(img);

    /* restored on a disk with 2 queues: refused (status 5), saying why */
    char disk_opt[240], uri[200];
    snprintf(disk_opt, sizeof(disk_opt), "path=%s,num-queues=2", disk);
    snprintf(uri, sizeof(uri), "file:%s", snap);
    pid_t pid = spawn_as("mq2", "--test-device", "--kernel", HOSTILE_ELF, "--disk", disk_opt,
                         "--serial", "none", "--incoming", uri, NULL);
    code = wait_status(pid);
    char *err = read_log("mq2-stderr.txt");
    CHECK(code == 5 && strstr(err, "virtio-blk state: 4 queues, the device here has 2 (the "
                                   "queue count must match)"),
          "a 4-queue snapshot on a 2-queue disk: status %d (5 expected), stderr:\n%s", code, err);
    free(err);

    /* and on a disk with 4: it runs, with its four queues */
    snprintf(disk_opt, sizeof(disk_opt), "path=%s,num-queues=4", disk);
    unlink(sock_path);
    strata_pid = spawn("--test-device", "--kernel", HOSTILE_ELF, "--disk", disk_opt, "--serial",
                       "none", "--api-socket", sock_path, "--incoming", uri, NULL);
    c = open_client();
    for (double t0 = now();;) {
        json_t *q = ok(c, "query-status", NULL);
        bool running = !strcmp(json_string_value(json_object_get(q, "status")), "running");
        json_decref(q);
        if (running)
            break;
        CHECK(now() - t0 < 60, "the restored VM is not running after 60 s");
        msleep(20);
    }
    st = ok(c, "x-query-stats", NULL);
    qs = json_object_get(json_array_get(json_object_get(st, "virtio"), 0), "queues");
    CHECK(json_array_size(qs) == 4, "the restored disk has %zu queues", json_array_size(qs));
    json_decref(st);
    json_decref(ok(c, "quit", NULL));
    qc_close(c);
    code = wait_status(strata_pid);
    strata_pid = -1;
    CHECK(code == 0, "the restored strata exited with %d", code);
}

int main(void)
{
    harness_init("stats");
    char disk[160], metrics[160], opt[200];
    snprintf(disk, sizeof(disk), "%s/disk.img", tmpdir);
    snprintf(metrics, sizeof(metrics), "%s/metrics.jsonl", tmpdir);
    FILE *f = fopen(disk, "w");
    CHECK(f && ftruncate(fileno(f), DISK_BYTES) == 0, "cannot make %s", disk);
    fclose(f);

    snprintf(opt, sizeof(opt), "%s,interval=1", metrics);
    start(disk, opt);
    QClient *c = open_client();
    check_qmp(c, disk);
    /* at least two ticks of the 1 s timer */
    double t0 = now();
    while (now() - t0 < 10) {
        char *text = slurp(metrics);
        size_t lines = 0;
        for (char *p = text; (p = strchr(p, '\n')); p++)
            lines++;
        free(text);
        if (lines >= 2)
            break;
        msleep(100);
    }
    size_t before = check_metrics(metrics, 2);
    json_decref(ok(c, "quit", NULL));
    qc_close(c);
    int code = wait_status(strata_pid);
    strata_pid = -1;
    CHECK(code == 0, "strata exited with %d", code);
    size_t after = check_metrics(metrics, before + 1); /* the last line, at the end */
    printf("metrics: %zu lines while running, %zu after quit\n", before, after);

    /* the disk holds what the guest wrote */
    char *img = slurp(disk);
    for (unsigned i = 0; i < 1024; i++)
        CHECK((unsigned char)img[100 * 512 + i] == 0x5a &&
                  (unsigned char)img[200 * 512 + i] == 0x5a,
              "the guest's write is not on the disk (byte %u)", i);
    free(img);

    /* a metrics file that fails: reported once, the VM goes on */
    unlink(sock_path);
    start(disk, "/dev/full,interval=1");
    msleep(2500);
    c = open_client();
    json_t *st = ok(c, "query-status", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(st, "status")), "running"),
          "the VM stopped after failed metrics writes");
    json_decref(st);
    char *err = read_log("stderr.txt");
    const char *first = strstr(err, "--metrics /dev/full: writing a line failed");
    CHECK(first && !strstr(first + 1, "--metrics /dev/full:"),
          "expected exactly one report of the failing metrics file:\n%s", err);
    free(err);
    json_decref(ok(c, "quit", NULL));
    qc_close(c);
    code = wait_status(strata_pid);
    strata_pid = -1;
    CHECK(code == 0, "strata exited with %d", code);
    check_mq(disk);
    printf("ok: blockstats exact, exits grow, metrics lines, failing metrics file survived, "
           "a 4-queue disk counted whole\n");
    return 0;
}
