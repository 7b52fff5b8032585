/* SPDX-License-Identifier: MIT */
/*
 * Integration test of `strata run` and its QMP control socket on the host's
 * /dev/kvm (label kvm; exit 77 where /dev/kvm cannot run guests).
 *
 * Runs the kit's hello guest and a failing guest for the exit status, then
 * a guest that counts at CPL3 forever (tests/qmp/spin.c) under
 * `--api-socket`, and speaks raw QMP to it: greeting and negotiation, every
 * command and its errors, malformed input, `info mtree` against the same
 * tree built here with memory/, query-mtree, stop/cont/system_reset seen
 * in the guest's counter (read with `xp`), events, dirty logging, 64
 * clients at once, slow and vanishing clients, strata ctl, quit, and each
 * vCPU's own thread with --cpus 2.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvm/kvm.h"
#include "memory/memory.h"
#include "qmp_client.h"
#include "qmp_harness.h"
#include "devices/testdev-ports.h"

/* ---- sections ----------------------------------------------------------------- */

static void test_exit_statuses(void)
{
    strata_pid = spawn("--test-device", "--kernel", HELLO_ELF, NULL);
    int st = wait_status(strata_pid);
    char *err = read_log("stderr.txt");
    CHECK(st == 0, "hello: exit status %d", st);
    CHECK(strstr(err, "guest: hello from CPL3"), "hello's console line missing: %s", err);
    free(err);

    strata_pid = spawn("--test-device", "--kernel", FAIL_ELF, "--serial", "none", NULL);
    st = wait_status(strata_pid);
    err = read_log("stderr.txt");
    CHECK(st == 2, "failing guest: exit status %d", st);
    CHECK(strstr(err, "guest exited with code 3"), "no message: %s", err);
    free(err);

    strata_pid = spawn("--kernel", HELLO_ELF, "--memory", "12Q", NULL);
    st = wait_status(strata_pid);
    err = read_log("stderr.txt");
    CHECK(st == 1 && strstr(err, "--memory 12Q: invalid size"), "bad option: %d %s", st, err);
    free(err);

    char cfg[160];
    snprintf(cfg, sizeof(cfg), "%s/vm.json", tmpdir);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "{\"kernel\": \"%s\", \"test-device\": true, \"memory\": \"64M\"}\n", HELLO_ELF);
    fclose(f);
    strata_pid = spawn("--config", cfg, NULL);
    st = wait_status(strata_pid);
    CHECK(st == 0, "--config run: exit status %d", st);
    printf("ok: exit statuses (hello 0, failing guest 2, bad option 1, --config 0)\n");
}

static void test_negotiation(void)
{
    QClient *c = connect_when_ready(strata_pid);
    json_t *g = qc_read(c);
    json_t *ver = json_object_get(json_object_get(g, "QMP"), "version");
    CHECK(json_integer_value(json_object_get(json_object_get(ver, "qemu"), "major")) == 0 &&
              !strcmp(json_string_value(json_object_get(ver, "package")), "strata") &&
              json_array_size(json_object_get(json_object_get(g, "QMP"), "capabilities")) == 0,
          "greeting %s", json_dumps(g, 0));
    json_decref(g);
    fails(c, "query-status", NULL, "CommandNotFound", "Expecting capabilities negotiation");
    fails(c, "qmp_capabilities", "{\"enable\": [\"oob\"]}", "GenericError", "not available");
    fails(c, "qmp_capabilities", "{\"enable\": 3}", "GenericError", "expected: array");
    json_decref(ok(c, "qmp_capabilities", NULL));
    fails(c, "qmp_capabilities", NULL, "CommandNotFound", "already complete");
    qc_close(c);
    printf("ok: greeting and negotiation\n");
}

static void test_queries(QClient *c)
{
    json_t *st = ok(c, "query-status", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(st, "status")), "running") &&
              json_is_true(json_object_get(st, "running")),
          "status %s", json_dumps(st, 0));
    json_decref(st);

    /* query-version says what `strata --version` says: "strata 0.1" is
     * {"major": 0, "minor": 1, "micro": 0} */
    json_t *v = ok(c, "query-version", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(v, "package")), "strata"), "version");
    FILE *p = popen(STRATA_BIN " --version", "r");
    char line[64] = "";
    CHECK(p && fgets(line, sizeof(line), p), "strata --version: no output");
    pclose(p);
    int nums[3] = { 0, 0, 0 };
    CHECK(sscanf(line, "strata %d.%d.%d", &nums[0], &nums[1], &nums[2]) >= 2,
          "strata --version: '%s'", line);
    json_t *q = json_object_get(v, "qemu");
    CHECK(json_integer_value(json_object_get(q, "major")) == nums[0] &&
              json_integer_value(json_object_get(q, "minor")) == nums[1] &&
              json_integer_value(json_object_get(q, "micro")) == nums[2],
          "query-version %s, strata --version '%s'", json_dumps(v, 0), line);
    json_decref(v);

    json_t *cmds = ok(c, "query-commands", NULL);
    const char *want[] = { "qmp_capabilities",
                           "query-status",
                           "stop",
                           "cont",
                           "system_reset",
                           "system_powerdown",
                           "quit",
                           "query-commands",
                           "query-version",
                           "query-cpus-fast",
                           "human-monitor-command",
                           "query-mtree",
                           "query-dirty-log" };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        bool found = false;
        size_t k;
        json_t *e;
        json_array_foreach(cmds, k, e)
            found |= !strcmp(json_string_value(json_object_get(e, "name")), want[i]);
        CHECK(found, "query-commands lacks %s", want[i]);
    }
    json_decref(cmds);

    /* query-qmp-schema is made from the served table: every command
     * query-commands lists is in it, with its argument type */
    json_t *schema = ok(c, "query-qmp-schema", NULL);
    size_t k;
    json_t *e;
    json_array_foreach(cmds, k, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        bool found = false;
        size_t j;
        json_t *si;
        json_array_foreach(schema, j, si)
        {
            if (!strcmp(json_string_value(json_object_get(si, "name")), name) &&
                !strcmp(json_string_value(json_object_get(si, "meta-type")), "command") &&
                json_string_value(json_object_get(si, "arg-type")))
                found = true;
        }
        CHECK(found, "query-qmp-schema lacks the command %s", name);
    }
    json_decref(schema);
    /* no --name: {}; no --uuid: all zeros (as QEMU) */
    json_t *r = ok(c, "query-name", NULL);
    CHECK(json_object_size(r) == 0, "query-name %s", json_dumps(r, 0));
    json_decref(r);
    r = ok(c, "query-uuid", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(r, "UUID")),
                  "00000000-0000-0000-0000-000000000000"),
          "query-uuid %s", json_dumps(r, 0));
    json_decref(r);
    r = ok(c, "query-target", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(r, "arch")), "x86_64"), "query-target %s",
          json_dumps(r, 0));
    json_decref(r);
    r = ok(c, "query-machines", NULL);
    json_t *m0 = json_array_get(r, 0);
    CHECK(json_array_size(r) == 1 && json_is_true(json_object_get(m0, "is-default")) &&
              json_integer_value(json_object_get(m0, "cpu-max")) == 64 &&
              !strcmp(json_string_value(json_object_get(m0, "name")), "strata-microvm"),
          "query-machines %s", json_dumps(r, 0));
    json_decref(r);
    /* migration capabilities: listed; the state each has is accepted, an
     * unimplemented one is refused by name */
    r = ok(c, "query-migrate-capabilities", NULL);
    CHECK(json_array_size(r) > 10, "query-migrate-capabilities %s", json_dumps(r, 0));
    json_decref(r);
    json_decref(ok(c, "migrate-set-capabilities",
                   "{\"capabilities\": [{\"capability\": \"xbzrle\", \"state\": false}, "
                   "{\"capability\": \"events\", \"state\": true}]}"));
    fails(c, "migrate-set-capabilities",
          "{\"capabilities\": [{\"capability\": \"postcopy-ram\", \"state\": true}]}",
          "GenericError", "'postcopy-ram' cannot be enabled");
    fails(c, "migrate-set-capabilities",
          "{\"capabilities\": [{\"capability\": \"frob\", \"state\": false}]}", "GenericError",
          "does not accept value 'frob'");

    json_t *cpus = ok(c, "query-cpus-fast", NULL);
    json_t *c0 = json_array_get(cpus, 0);
    CHECK(json_array_size(cpus) == 1 && json_integer_value(json_object_get(c0, "cpu-index")) == 0 &&
              json_integer_value(json_object_get(c0, "thread-id")) > 0 &&
              !strcmp(json_string_value(json_object_get(c0, "target")), "x86_64"),
          "query-cpus-fast %s", json_dumps(cpus, 0));
    char tid[64];
    snprintf(tid, sizeof(tid), "* CPU #0: thread_id=%lld\n",
             (long long)json_integer_value(json_object_get(c0, "thread-id")));
    char *s = hmp(c, "info cpus");
    CHECK(!strcmp(s, tid), "info cpus '%s' vs '%s'", s, tid);
    free(s);
    json_decref(cpus);

    s = hmp(c, "info status");
    CHECK(!strcmp(s, "VM status: running\n"), "info status '%s'", s);
    free(s);
    s = hmp(c, "info kvm");
    CHECK(!strncmp(s, "kvm support: enabled\n", 21) && strstr(s, "microvm.ram"), "info kvm '%s'",
          s);
    free(s);
    /* HMP as QEMU's: an unknown command or info item is output, not an
     * error; bare info lists the items; lines end in \r\n */
    const struct {
        const char *line, *want;
    } raw[] = {
        { "frobnicate", "unknown command: 'frobnicate'\r\n" },
        { "frobnicate now", "unknown command: 'frobnicate'\r\n" },
        { "info frob", "unknown command: 'info frob'\r\n" },
        { "info status", "VM status: running\r\n" },
    };
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        char args[128];
        snprintf(args, sizeof(args), "{\"command-line\": \"%s\"}", raw[i].line);
        json_t *h = ok(c, "human-monitor-command", args);
        CHECK(!strcmp(json_string_value(h), raw[i].want), "hmp '%s': '%s'", raw[i].line,
              json_string_value(h));
        json_decref(h);
    }
    s = hmp(c, "info");
    const char *items[] = { "info cpus  -- ",      "info kvm  -- ",    "info mtree [-f][-D] -- ",
                            "info registers  -- ", "info status  -- ", "info version  -- " };
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
        CHECK(strstr(s, items[i]), "info lacks '%s': '%s'", items[i], s);
    free(s);
    s = hmp(c, "info version");
    char ver[64];
    snprintf(ver, sizeof(ver), "%d.%d.%d (strata)\n", nums[0], nums[1], nums[2]);
    CHECK(!strcmp(s, ver), "info version '%s', expected '%s'", s, ver);
    free(s);
    printf("ok: query-status/version/commands/cpus-fast/qmp-schema/name/uuid/target/machines, "
           "migration capabilities; info status/kvm/cpus/version, bare info, unknown commands\n");
}

static void test_mtree(QClient *c)
{
    unsigned flagsets[] = { 0, MTREE_FLATVIEW, MTREE_DISABLED, MTREE_FLATVIEW | MTREE_DISABLED };
    const char *lines[] = { "info mtree", "info mtree -f", "info mtree -D", "info mtree -f -D" };
    for (int i = 0; i < 4; i++) {
        char *got = hmp(c, lines[i]);
        char *want = expected_mtree(flagsets[i]);
        CHECK(!strcmp(got, want), "%s differs:\n--- strata\n%s--- expected\n%s", lines[i], got,
              want);
        free(got);
        free(want);
    }
    char *s = hmp(c, "info mtree");
    CHECK(strstr(s, "address-space: memory\n") && strstr(s, "address-space: I/O\n") &&
              strstr(s, "0000000000000000-000000000fffffff (prio 0, ram): alias ram-below-4g "
                        "@microvm.ram 0000000000000000-000000000fffffff") &&
              strstr(s, "00000000000003f8-00000000000003ff (prio 0, i/o): serial"),
          "info mtree:\n%s", s);
    free(s);
    fails(c, "human-monitor-command", "{\"command-line\": \"info mtree -z\"}", "GenericError",
          "unsupported option");

    json_t *t = ok(c, "query-mtree", NULL);
    json_t *ases = json_object_get(t, "address-spaces");
    CHECK(json_array_size(ases) == 2, "address spaces %s", json_dumps(ases, 0));
    bool mem = false, io = false;
    size_t i;
    json_t *e;
    json_array_foreach(ases, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        mem |= !strcmp(n, "memory");
        io |= !strcmp(n, "I/O");
    }
    CHECK(mem && io, "address-space names");
    bool ram_range = false, serial_range = false;
    json_t *fv;
    json_array_foreach(json_object_get(t, "flatviews"), i, fv)
    {
        size_t k;
        json_t *r;
        json_array_foreach(json_object_get(fv, "ranges"), k, r)
        {
            const char *reg = json_string_value(json_object_get(r, "region"));
            const char *start = json_string_value(json_object_get(r, "start"));
            const char *end = json_string_value(json_object_get(r, "end"));
            ram_range |= !strcmp(reg, "microvm.ram") && !strcmp(start, "0x0") &&
                         !strcmp(end, "0xfffffff");
            serial_range |= !strcmp(reg, "serial") && !strcmp(start, "0x3f8") &&
                            !strcmp(end, "0x3ff");
        }
    }
    CHECK(ram_range && serial_range, "flatviews %s",
          json_dumps(json_object_get(t, "flatviews"), 0));
    json_t *slots = json_object_get(t, "kvm-slots");
    json_t *s0 = json_array_get(slots, 0);
    CHECK(json_array_size(slots) == 1 &&
              !strcmp(json_string_value(json_object_get(s0, "gpa")), "0x0") &&
              !strcmp(json_string_value(json_object_get(s0, "size")), "0x10000000") &&
              !strcmp(json_string_value(json_object_get(s0, "region")), "microvm.ram"),
          "kvm-slots %s", json_dumps(slots, 0));
    json_decref(t);
    printf("ok: info mtree [-f] [-D] identical to mtree_info_str of the same tree; query-mtree\n");
}

static void test_bad_requests(QClient *c)
{
    struct {
        const char *line;
        const char *cls, *sub;
        const char *id; /* expected id echo (JSON) or NULL */
    } cases[] = {
        /* (a request may span lines: an unclosed one waits for its rest) */
        { "{\"execute\": \"query-status\"]", "GenericError", "JSON parse error", NULL },
        { "[1, 2, 3]", "GenericError", "must be a JSON object", NULL },
        { "42", "GenericError", "must be a JSON object", NULL },
        { "\"execute\"", "GenericError", "must be a JSON object", NULL },
        { "{\"id\": 7}", "GenericError", "lacks member 'execute'", "7" },
        { "{\"execute\": 5, \"id\": \"x\"}", "GenericError", "'execute' must be a string",
          "\"x\"" },
        { "{\"execute\": \"query-status\", \"arguments\": [], \"id\": 1.5}", "GenericError",
          "'arguments' must be an object", "1.5" },
        { "{\"execute\": \"query-status\", \"bogus\": 1, \"id\": [1]}", "GenericError",
          "'bogus' is unexpected", "[1]" },
        { "{\"execute\": \"no-such-command\", \"id\": {\"a\": 1}}", "CommandNotFound",
          "no-such-command has not been found", "{\"a\": 1}" },
        { "{\"execute\": \"human-monitor-command\", \"id\": 2}", "GenericError",
          "'command-line' is missing", "2" },
        { "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": 5}, "
          "\"id\": 3}",
          "GenericError", "Invalid parameter type for 'command-line'", "3" },
        { "{\"execute\": \"query-status\", \"arguments\": {\"x\": 1}, \"id\": 4}", "GenericError",
          "'x' is unexpected", "4" },
        { "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
          "\"xp /1gx 0xffffffffffff0000\"}, \"id\": 6}",
          "GenericError", "cannot read", "6" },
        { "{\"execute\": \"set-dirty-log\", \"arguments\": {\"enable\": true, \"client\": "
          "\"tv\"}, \"id\": 8}",
          "GenericError", "invalid value", "8" },
        { "\x01\x02\xff", "GenericError", "JSON parse error", NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[512];
        snprintf(line, sizeof(line), "%s\n", cases[i].line);
        CHECK(qc_send_raw(c, line, strlen(line)), "send");
        json_t *r = qc_read(c);
        CHECK(r && class_of(r) && !strcmp(class_of(r), cases[i].cls) &&
                  strstr(desc_of(r), cases[i].sub),
              "'%s' answered %s", cases[i].line, r ? json_dumps(r, 0) : "nothing");
        json_t *id = json_object_get(r, "id");
        if (cases[i].id) {
            json_t *want = json_loads(cases[i].id, JSON_DECODE_ANY, NULL);
            CHECK(id && json_equal(id, want), "'%s': id not echoed: %s", cases[i].line,
                  json_dumps(r, 0));
            json_decref(want);
        }
        json_decref(r);
    }
    /* Blank lines are ignored; several requests on one line all run. */
    const char *multi = "\n  \n{\"execute\":\"query-status\",\"id\":\"m1\"} "
                        "{\"execute\":\"query-version\",\"id\":\"m2\"}\n";
    CHECK(qc_send_raw(c, multi, strlen(multi)), "send");
    for (int k = 1; k <= 2; k++) {
        json_t *r = qc_read(c);
        char want[8];
        snprintf(want, sizeof(want), "m%d", k);
        CHECK(r && json_object_get(r, "return") &&
                  !strcmp(json_string_value(json_object_get(r, "id")), want),
              "multi %d: %s", k, json_dumps(r, 0));
        json_decref(r);
    }
    /* A line over 1 MiB: one error, the rest of it discarded, then service. */
    size_t big = (3u << 20) / 2;
    char *junk = malloc(big + 200);
    memset(junk, 'x', big);
    junk[0] = '{';
    int n = snprintf(junk + big, 200, "\n{\"execute\":\"query-status\",\"id\":\"after\"}\n");
    CHECK(qc_send_raw(c, junk, big + (size_t)n), "send big");
    free(junk);
    json_t *r = qc_read(c);
    CHECK(r && strstr(desc_of(r), "exceeds 1048576 bytes"), "long line: %s", json_dumps(r, 0));
    json_decref(r);
    r = qc_read(c);
    CHECK(r && json_object_get(r, "return") &&
              !strcmp(json_string_value(json_object_get(r, "id")), "after"),
          "after long line: %s", json_dumps(r, 0));
    json_decref(r);
    json_t *st = ok(c, "query-status", NULL);
    CHECK(json_is_true(json_object_get(st, "running")), "VM not running after bad requests");
    json_decref(st);
    printf("ok: %zu kinds of bad request answered with errors (ids echoed), multi-request "
           "lines, 1.5 MiB line rejected, VM still running\n",
           sizeof(cases) / sizeof(cases[0]));
}

static void test_stop_cont_reset(QClient *c, QClient *observer, QClient *silent)
{
    /* Let the guest count a while first. */
    uint64_t v0 = read_counter(c);
    while (read_counter(c) <= v0 + 1000)
        ;
    json_decref(ok(c, "stop", NULL));
    json_t *ev = qc_wait_event(observer, "STOP");
    CHECK(ev && json_object_get(ev, "timestamp"), "observer: no STOP event");
    json_decref(ev);
    json_t *st = ok(c, "query-status", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(st, "status")), "paused") &&
              json_is_false(json_object_get(st, "running")),
          "status %s", json_dumps(st, 0));
    json_decref(st);
    char *s = hmp(c, "info status");
    CHECK(!strcmp(s, "VM status: paused\n"), "%s", s);
    free(s);
    uint64_t a = read_counter(c);
    msleep(50);
    uint64_t b = read_counter(c);
    CHECK(a == b && a > v0, "counter moved while stopped: %llu -> %llu", (unsigned long long)a,
          (unsigned long long)b);
    json_decref(ok(c, "stop", NULL)); /* no-op, no second STOP event */

    /* Dirty log: with the vCPU stopped nothing gets dirty. */
    json_decref(ok(c, "set-dirty-log", "{\"enable\": true}"));
    json_decref(ok(c, "query-dirty-log", "{\"reset\": true}"));
    json_t *d = ok(c, "query-dirty-log", NULL);
    json_t *d0 = json_array_get(d, 0);
    CHECK(!strcmp(json_string_value(json_object_get(d0, "name")), "microvm.ram") &&
              json_integer_value(
                  json_object_get(json_object_get(d0, "dirty-pages"), "migration")) == 0 &&
              !strcmp(json_string_value(json_array_get(json_object_get(d0, "clients"), 0)),
                      "migration"),
          "dirty log while stopped: %s", json_dumps(d, 0));
    json_decref(d);

    json_decref(ok(c, "cont", NULL));
    ev = qc_wait_event(observer, "RESUME");
    CHECK(ev, "observer: no RESUME event");
    json_decref(ev);
    while (read_counter(c) == b)
        ;
    /* The counter's page is dirty now. */
    for (;;) {
        d = ok(c, "query-dirty-log", NULL);
        json_int_t n = json_integer_value(
            json_object_get(json_object_get(json_array_get(d, 0), "dirty-pages"), "migration"));
        json_decref(d);
        if (n > 0)
            break;
    }
    json_decref(ok(c, "set-dirty-log", "{\"enable\": false}"));
    printf("ok: stop/cont: counter frozen at %llu while paused, advancing after; STOP/RESUME "
           "events; dirty log 0 pages while paused, >0 running\n",
           (unsigned long long)a);

    /* system_reset while paused: RAM back to the image, vCPU at the entry. */
    json_decref(ok(c, "stop", NULL));
    CHECK(read_counter(c) > 0, "counter is 0 before reset");
    json_decref(ok(c, "system_reset", NULL));
    ev = qc_wait_event(observer, "RESET");
    CHECK(ev && !strcmp(json_string_value(json_object_get(json_object_get(ev, "data"), "reason")),
                        "host-qmp-system-reset"),
          "observer: no RESET event");
    json_decref(ev);
    CHECK(read_counter(c) == 0, "counter not reset: %llu", (unsigned long long)read_counter(c));
    st = ok(c, "query-status", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(st, "status")), "paused"), "reset unpaused");
    json_decref(st);
    json_decref(ok(c, "cont", NULL));
    while (read_counter(c) == 0)
        ;
    /* system_reset while running. */
    json_decref(ok(c, "system_reset", NULL));
    ev = qc_wait_event(observer, "RESET");
    CHECK(ev, "no second RESET");
    json_decref(ev);
    st = ok(c, "query-status", NULL);
    CHECK(json_is_true(json_object_get(st, "running")), "not running after reset");
    json_decref(st);
    CHECK(qc_count_events(observer, "STOP") == 1 && qc_count_events(observer, "RESUME") == 1,
          "observer saw %zu STOP / %zu RESUME more", qc_count_events(observer, "STOP"),
          qc_count_events(observer, "RESUME"));
    /* The client that never negotiated got no event. */
    CHECK(qc_send_raw(silent, "{\"execute\":\"qmp_capabilities\",\"id\":1}\n", 38), "send");
    json_t *r = qc_read(silent);
    CHECK(r && json_object_get(r, "return"), "un-negotiated client got %s", json_dumps(r, 0));
    json_decref(r);
    printf("ok: system_reset (paused and running): RESET events, counter back to 0; "
           "no events before negotiation\n");
}

/* system_powerdown presses the ACPI power button: the tiny guest has no ACPI
 * and ignores it, so strata answers {}, says POWERDOWN and keeps running (as
 * QEMU does); HMP's system_powerdown is the same. */
static void test_powerdown(QClient *c, QClient *observer)
{
    json_decref(ok(c, "system_powerdown", NULL));
    json_t *ev = qc_wait_event(observer, "POWERDOWN");
    CHECK(ev, "observer: no POWERDOWN event");
    json_decref(ev);
    char *s = hmp(c, "system_powerdown");
    CHECK(!strcmp(s, ""), "hmp system_powerdown: '%s'", s);
    free(s);
    ev = qc_wait_event(observer, "POWERDOWN");
    CHECK(ev, "observer: no POWERDOWN event for the HMP command");
    json_decref(ev);
    uint64_t a = read_counter(c);
    while (read_counter(c) == a)
        ;
    json_t *st = ok(c, "query-status", NULL);
    CHECK(json_is_true(json_object_get(st, "running")), "not running after system_powerdown");
    json_decref(st);
    s = hmp(c, "info mtree");
    CHECK(strstr(s, "0000000000000610-0000000000000613 (prio 0, i/o): acpi-ged"),
          "info mtree lacks acpi-ged:\n%s", s);
    free(s);
    printf("ok: system_powerdown (QMP and HMP): {} and POWERDOWN events; a guest without "
           "ACPI keeps running\n");
}

#define NCLIENTS 64

static void test_many_clients(QClient *c)
{
    QClient *cl[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        cl[i] = qc_connect(sock_path);
        CHECK(cl[i], "client %d: connect: %s", i, strerror(errno));
    }
    for (int i = 0; i < NCLIENTS; i++) {
        json_t *g = qc_read(cl[i]);
        CHECK(g && json_object_get(g, "QMP"), "client %d: no greeting", i);
        json_decref(g);
    }
    for (int i = 0; i < NCLIENTS; i++) {
        char req[200];
        int n = snprintf(req, sizeof(req),
                         "{\"execute\":\"qmp_capabilities\",\"id\":%d}\n"
                         "{\"execute\":\"query-status\",\"id\":%d}\n",
                         1000 + i, 2000 + i);
        CHECK(qc_send_raw(cl[i], req, (size_t)n), "client %d: send", i);
    }
    for (int i = 0; i < NCLIENTS; i++) {
        for (int k = 0; k < 2; k++) {
            json_t *r = qc_read(cl[i]);
            CHECK(r && json_object_get(r, "return") &&
                      json_integer_value(json_object_get(r, "id")) == (k ? 2000 : 1000) + i,
                  "client %d reply %d: %s", i, k, r ? json_dumps(r, 0) : "none");
            json_decref(r);
        }
    }
    for (int i = 0; i < NCLIENTS; i++)
        qc_close(cl[i]);

    /* Vanishing clients: half a request, or a request and no reading. */
    QClient *x = qc_connect(sock_path);
    qc_send_raw(x, "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-mt", 48);
    qc_close(x);
    x = qc_connect(sock_path);
    const char *req = "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-mtree\"}\n";
    qc_send_raw(x, req, strlen(req));
    qc_close(x);
    /* A slow client: thousands of requests, never reading a reply. */
    QClient *slow = qc_connect(sock_path);
    qc_send_raw(slow, "{\"execute\":\"qmp_capabilities\"}\n", 31);
    char *flood = NULL;
    size_t flen = 0;
    FILE *f = open_memstream(&flood, &flen);
    for (int i = 0; i < 3000; i++)
        fputs("{\"execute\":\"query-mtree\"}\n", f);
    fclose(f);
    /* The socket buffer fills; send what fits without blocking. */
    size_t sent = 0;
    while (sent < flen) {
        ssize_t n = send(slow->fd, flood + sent, flen - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    free(flood);
    /* Meanwhile the others are served and the guest runs. */
    uint64_t a = read_counter(c);
    for (int i = 0; i < 20; i++) {
        json_t *st = ok(c, "query-status", NULL);
        json_decref(st);
    }
    while (read_counter(c) == a)
        ;
    qc_close(slow);
    json_decref(ok(c, "query-status", NULL));
    printf("ok: %d clients at once all answered; vanishing clients and a %zu-byte "
           "never-reading client harm nobody\n",
           NCLIENTS, sent);
}

static char *run_ctl(const char *args, int *status)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s ctl --api-socket %s %s 2>&1", STRATA_BIN, sock_path, args);
    FILE *p = popen(cmd, "r");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(m);
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf;
}

static void test_ctl(QClient *c)
{
    int st;
    char *out = run_ctl("status", &st);
    CHECK(st == 0 && !strcmp(out, "running\n"), "ctl status: %d '%s'", st, out);
    free(out);
    out = run_ctl("mtree -f", &st);
    char *want = expected_mtree(MTREE_FLATVIEW);
    CHECK(st == 0 && !strcmp(out, want), "ctl mtree -f: %d\n%s", st, out);
    free(out);
    free(want);
    out = run_ctl("pause", &st);
    CHECK(st == 0, "ctl pause: %s", out);
    free(out);
    out = run_ctl("status", &st);
    CHECK(st == 0 && !strcmp(out, "paused\n"), "ctl status: '%s'", out);
    free(out);
    out = run_ctl("resume", &st);
    CHECK(st == 0, "ctl resume: %s", out);
    free(out);
    out = run_ctl("qmp query-status", &st);
    CHECK(st == 0 && strstr(out, "\"running\": true"), "ctl qmp: %s", out);
    free(out);
    out = run_ctl("qmp human-monitor-command '{\"command-line\": \"info status\"}'", &st);
    CHECK(st == 0 && strstr(out, "VM status: running"), "ctl qmp hmp: %s", out);
    free(out);
    out = run_ctl("qmp no-such-thing", &st);
    CHECK(st != 0 && strstr(out, "has not been found"), "ctl qmp bad: %d %s", st, out);
    free(out);
    out = run_ctl("qmp query-status '[1]'", &st);
    CHECK(st != 0 && strstr(out, "must be a JSON object"), "ctl qmp bad args: %d %s", st, out);
    free(out);
    out = run_ctl("frob", &st);
    CHECK(st != 0 && strstr(out, "unknown command"), "ctl frob: %d %s", st, out);
    free(out);
    /* ctl's state changes were seen as events by our client. */
    json_t *e = qc_wait_event(c, "STOP");
    CHECK(e, "no STOP from ctl pause");
    json_decref(e);
    e = qc_wait_event(c, "RESUME");
    CHECK(e, "no RESUME from ctl resume");
    json_decref(e);
    printf("ok: strata ctl status/mtree -f/pause/resume/qmp and its errors\n");
}

static void test_quit(QClient *c, QClient *observer)
{
    json_decref(ok(c, "quit", NULL));
    json_t *ev = qc_wait_event(observer, "SHUTDOWN");
    CHECK(ev && !strcmp(json_string_value(json_object_get(json_object_get(ev, "data"), "reason")),
                        "host-qmp-quit"),
          "no SHUTDOWN event");
    json_decref(ev);
    json_t *m;
    while ((m = qc_read(observer)))
        json_decref(m); /* until strata closes the connection */
    int st = wait_status(strata_pid);
    CHECK(st == 0, "strata exit status after quit: %d", st);
    struct stat sb;
    CHECK(stat(sock_path, &sb) < 0, "socket file left behind");
    printf("ok: quit: SHUTDOWN event, connection closed, exit status 0, socket removed\n");
}

static void start_spin(const char *serial_file, const char *cpus)
{
    char serial[200];
    snprintf(serial, sizeof(serial), "file=%s", serial_file);
    strata_pid = spawn("--test-device", "--kernel", SPIN_ELF, "--api-socket", sock_path, "--serial",
                       serial, "--cmdline", "console=ttyS0", "--cpus", cpus, NULL);
}

/* With --cpus 2 (the AP waits for INIT/SIPI; its thread exists all the
 * same) query-cpus-fast and info cpus give each vCPU its own thread, a
 * task of this strata. */
static void test_two_cpus(const char *serial_file)
{
    char serial[200], img[200], disk[220];
    snprintf(serial, sizeof(serial), "file=%s", serial_file);
    snprintf(img, sizeof(img), "%s/disk,1.img", tmpdir); /* a comma: written ",," */
    FILE *f = fopen(img, "w");
    CHECK(f && ftruncate(fileno(f), 1 << 20) == 0, "%s", img);
    fclose(f);
    snprintf(disk, sizeof(disk), "path=%s/disk,,1.img", tmpdir);
    strata_pid = spawn("--test-device", "--kernel", SPIN_ELF, "--api-socket", sock_path, "--serial",
                       serial, "--cmdline", "console=ttyS0", "--cpus", "2", "--disk", disk,
                       "--name", "vm, two", "--uuid", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", NULL);
    QClient *c = open_client();
    /* --name and --uuid (given in upper case: answered in lower case) */
    json_t *r = ok(c, "query-name", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(r, "name")), "vm, two"), "query-name %s",
          json_dumps(r, 0));
    json_decref(r);
    r = ok(c, "query-uuid", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(r, "UUID")),
                  "6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
          "query-uuid %s", json_dumps(r, 0));
    json_decref(r);
    /* a second strata on the same image is refused at start, naming it */
    char ro[240];
    snprintf(ro, sizeof(ro), "%s,readonly=on", disk);
    pid_t second = spawn("--test-device", "--kernel", SPIN_ELF, "--serial", "none", "--disk", ro,
                         NULL);
    int st2 = wait_status(second);
    char *log = read_log("stderr.txt");
    char want_lock[400];
    snprintf(want_lock, sizeof(want_lock),
             "Failed to get shared \"write\" lock\nIs another process using the image [%s]?", img);
    CHECK(st2 == 1 && strstr(log, want_lock), "second strata on %s: status %d, '%s'", img, st2,
          log);
    free(log);
    json_t *cpus = ok(c, "query-cpus-fast", NULL);
    CHECK(json_array_size(cpus) == 2, "query-cpus-fast %s", json_dumps(cpus, 0));
    long long tid[2];
    char want[128] = "";
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_array_get(cpus, i);
        tid[i] = (long long)json_integer_value(json_object_get(e, "thread-id"));
        CHECK(json_integer_value(json_object_get(e, "cpu-index")) == (json_int_t)i && tid[i] > 0,
              "query-cpus-fast %s", json_dumps(cpus, 0));
        char qom[48];
        snprintf(qom, sizeof(qom), "/machine/unattached/device[%zu]", i);
        const char *qp = json_string_value(json_object_get(e, "qom-path"));
        CHECK(qp && !strcmp(qp, qom), "vCPU %zu: qom-path %s, expected %s", i, qp ? qp : "-", qom);
        char task[64];
        snprintf(task, sizeof(task), "/proc/%d/task/%lld", (int)strata_pid, tid[i]);
        struct stat sb;
        CHECK(stat(task, &sb) == 0, "vCPU %zu: thread-id %lld: %s: %s", i, tid[i], task,
              strerror(errno));
        size_t n = strlen(want);
        snprintf(want + n, sizeof(want) - n, "%c CPU #%zu: thread_id=%lld\n", i ? ' ' : '*', i,
                 tid[i]);
    }
    CHECK(tid[0] != tid[1], "both vCPUs report thread %lld", tid[0]);
    char *s = hmp(c, "info cpus");
    CHECK(!strcmp(s, want), "info cpus '%s' vs '%s'", s, want);
    free(s);
    /* info registers: both vCPUs (the AP still waiting for INIT/SIPI),
     * and the VM runs on after it. */
    s = hmp(c, "info registers");
    const char *ap = strstr(s, "vCPU 1 registers:");
    CHECK(!strncmp(s, "vCPU 0 registers:\n", 18) && ap && strstr(s, "  rip=") &&
              strstr(s, "  code at ") && strstr(ap, "mp_state=uninitialized"),
          "info registers '%s'", s);
    free(s);
    s = hmp(c, "info status");
    CHECK(!strcmp(s, "VM status: running\n"), "after info registers: '%s'", s);
    free(s);
    json_decref(cpus);
    json_decref(ok(c, "quit", NULL));
    int st = wait_status(strata_pid);
    CHECK(st == 0, "--cpus 2: exit status after quit %d", st);
    qc_close(c);
    printf(
        "ok: --cpus 2: query-cpus-fast and info cpus give threads %lld and %lld (info registers: both), both "
        "tasks of strata; --name/--uuid; a second strata on its --disk refused\n",
        tid[0], tid[1]);
}

int main(void)
{
    harness_init("qmp");
    counter_addr = elf_symbol(SPIN_ELF, "spin_counter");

    test_exit_statuses();

    char serial_file[160];
    snprintf(serial_file, sizeof(serial_file), "%s/serial.txt", tmpdir);
    start_spin(serial_file, "1");
    test_negotiation();
    QClient *c = open_client();
    QClient *observer = open_client();
    QClient *silent = connect_when_ready(strata_pid); /* never negotiates */
    json_decref(qc_read(silent));
    QClient *idle = connect_when_ready(strata_pid); /* never sends anything */
    for (;;) {
        char *s = slurp(serial_file);
        bool done = strstr(s, "spin: counting\n") != NULL;
        free(s);
        if (done)
            break;
        msleep(10);
    }
    printf("ok: the guest's UART output reached --serial file=\n");
    test_queries(c);
    test_mtree(c);
    test_bad_requests(c);
    test_stop_cont_reset(c, observer, silent);
    test_powerdown(c, observer);
    test_many_clients(c);
    test_ctl(c);
    test_quit(c, observer);
    qc_close(c);
    qc_close(observer);
    qc_close(silent);
    qc_close(idle);

    test_two_cpus(serial_file);

    /* quit while paused, and SIGTERM. */
    start_spin(serial_file, "1");
    c = open_client();
    json_decref(ok(c, "stop", NULL));
    json_decref(ok(c, "quit", NULL));
    int st = wait_status(strata_pid);
    CHECK(st == 0, "quit while paused: exit status %d", st);
    qc_close(c);
    start_spin(serial_file, "1");
    c = open_client();
    kill(strata_pid, SIGTERM);
    json_t *ev = qc_wait_event(c, "SHUTDOWN");
    CHECK(ev && !strcmp(json_string_value(json_object_get(json_object_get(ev, "data"), "reason")),
                        "host-signal"),
          "no SHUTDOWN on SIGTERM");
    json_decref(ev);
    st = wait_status(strata_pid);
    CHECK(st == 128 + SIGTERM, "SIGTERM: exit status %d", st);
    qc_close(c);
    printf("ok: quit while paused exits 0; SIGTERM: SHUTDOWN event, exit status 143\n");
    printf("PASS\n");
    return 0;
}
