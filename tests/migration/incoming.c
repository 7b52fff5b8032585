/* SPDX-License-Identifier: MIT */
/*
 * mig-test --incoming (ctest migration.incoming): a destination driven the
 * way libvirt drives QEMU's.  `--incoming defer`: the control socket answers
 * at once (query-status inmigrate), nothing listens until migrate-incoming;
 * both ends take the same parameters and capabilities, the source migrates,
 * both ends report setup/active/completed in query-migrate and MIGRATION
 * events, and the guest's own counter goes on at the destination.  Also:
 * hostile and out-of-place commands on a waiting destination, `quit` while
 * it waits (exit 0, no guest ran), a signal while it waits (exit 5), and a
 * plain `--incoming URI` whose control socket answers while it waits and
 * reports a broken stream as failed.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mig_harness.h"

/* The MIGRATION statuses a destination must announce, in any case. */
#define DEST_SEEN (MIG_SEEN("setup") | MIG_SEEN("active") | MIG_SEEN("completed"))

/* A reply that must be an error of class GenericError whose text holds want. */
static void generic_error(Vm *vm, const char *name, const char *args, const char *want)
{
    json_t *r = qc_cmdf(vm->c, name, args);
    json_t *e = r ? json_object_get(r, "error") : NULL;
    const char *cls = e ? json_string_value(json_object_get(e, "class")) : NULL;
    CHECK(cls && !strcmp(cls, "GenericError"), "%s %s: expected a GenericError, got %s", name,
          args ? args : "", r ? json_dumps(r, 0) : "(nothing: strata died?)");
    json_decref(r);
    cmd_refused(vm, name, args, want);
}

/* query-status says inmigrate, not running. */
static void check_inmigrate(Vm *vm)
{
    json_t *s = cmd_ok(vm, "query-status", NULL);
    const char *st = json_string_value(json_object_get(s, "status"));
    CHECK(st && !strcmp(st, "inmigrate") && json_is_false(json_object_get(s, "running")),
          "a waiting destination's query-status: %s", json_dumps(s, 0));
    json_decref(s);
}

/* query-migrate's status ("" for QEMU's {} before anything started). */
static const char *mig_status(Vm *vm, char *buf, size_t n)
{
    json_t *q = cmd_ok(vm, "query-migrate", NULL);
    const char *s = status_of(q);
    snprintf(buf, n, "%s", s ? s : "");
    json_decref(q);
    return buf;
}

/* What libvirt sets on both ends before it migrates. */
static void set_both(Vm *vm)
{
    json_decref(cmd_ok(vm, "migrate-set-capabilities",
                       "{\"capabilities\": [{\"capability\": \"events\", \"state\": true}, "
                       "{\"capability\": \"postcopy-ram\", \"state\": false}]}"));
    json_decref(cmd_ok(vm, "migrate-set-parameters",
                       "{\"downtime-limit\": 300, \"max-bandwidth\": 1073741824, "
                       "\"x-final-phase-limit\": 120000}"));
    json_t *p = cmd_ok(vm, "query-migrate-parameters", NULL);
    CHECK(json_integer_value(json_object_get(p, "max-bandwidth")) == 1073741824,
          "the parameters did not take: %s", json_dumps(p, 0));
    json_decref(p);
}

/* Waits until query-status says want (the destination starts its guest
 * right after it announced completed). */
static void wait_status(Vm *vm, const char *want)
{
    char st[64];
    for (int i = 0; i < 250; i++) {
        if (!strcmp(run_status(vm, st, sizeof(st)), want))
            return;
        msleep(20);
    }
    CHECK(0, "query-status stayed %s, expected %s", st, want);
}

/* The libvirt-style flow over TCP; returns with both processes gone. */
static void defer_flow(void)
{
    Vm src, dst;
    char uri[96], args[160], st[64];
    start_vm(&src, "inc-src", guest_elf, "256M", NULL);
    vm_connect(&src);
    wait_pass(&src, 2, 60000);

    start_vm(&dst, "inc-dst", guest_elf, "256M", "defer");
    vm_connect(&dst); /* up at once, before any URI */
    check_inmigrate(&dst);
    CHECK(!strcmp(mig_status(&dst, st, sizeof(st)), ""),
          "query-migrate before migrate-incoming "
          "says %s",
          st);
    /* hostile and out-of-place commands: clear errors, strata goes on */
    generic_error(&dst, "migrate-incoming", "{}", "'uri'");
    generic_error(&dst, "migrate-incoming", "{\"uri\": 42}", "uri");
    generic_error(&dst, "migrate-incoming", "{\"uri\": \"ftp://x\"}", "expected tcp:HOST:PORT");
    generic_error(&dst, "migrate-incoming", "{\"uri\": \"tcp:127.0.0.1:0\"}", "port");
    generic_error(&dst, "migrate-incoming", "{\"uri\": \"defer\"}", "command line");
    generic_error(&dst, "migrate-incoming", "{\"uri\": \"unix:\"}", "unix:PATH");
    generic_error(&dst, "migrate-incoming", "{\"uri\": \"file:/nonexistent/strata.snap\"}",
                  "No such file");
    generic_error(&dst, "migrate-incoming", "{\"uri\": \"tcp:127.0.0.1:1\", \"x\": 1}", "x");
    generic_error(&dst, "cont", NULL, "inmigrate");
    generic_error(&dst, "stop", NULL, "inmigrate");
    generic_error(&dst, "system_reset", NULL, "inmigrate");
    generic_error(&dst, "migrate", "{\"uri\": \"unix:/nonexistent/x\"}", "inmigrate");
    generic_error(&dst, "human-monitor-command", "{\"command-line\": \"info registers\"}",
                  "inmigrate");
    check_inmigrate(&dst);
    CHECK(!strcmp(mig_status(&dst, st, sizeof(st)), ""), "a refused migrate-incoming left %s", st);

    set_both(&src);
    set_both(&dst);
    snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", 40000 + (int)(getpid() % 20000));
    snprintf(args, sizeof(args), "{\"uri\": \"%s\"}", uri);
    json_decref(cmd_ok(&dst, "migrate-incoming", args));
    generic_error(&dst, "migrate-incoming", args, "started already");
    CHECK(!strcmp(mig_status(&dst, st, sizeof(st)), "setup"), "listening, query-migrate says %s",
          st);
    check_inmigrate(&dst);
    set_both(&dst); /* still accepted while it waits */

    uint64_t before = read_u64(&src, pass_addr);
    json_decref(cmd_ok(&src, "migrate", args));
    json_t *qd = wait_migration(&dst, 120000);
    json_t *qs = wait_migration(&src, 120000);
    CHECK(!strcmp(status_of(qs), "completed"), "the source: %s", json_dumps(qs, 0));
    CHECK(!strcmp(status_of(qd), "completed") && json_is_true(json_object_get(qd, "x-incoming")),
          "the destination: %s", json_dumps(qd, 0));
    json_decref(qs);
    json_decref(qd);
    unsigned seen_dst = drain_migration(&dst, "completed");
    unsigned seen_src = drain_migration(&src, "completed");
    CHECK((seen_dst & DEST_SEEN) == DEST_SEEN, "the destination's MIGRATION events: 0x%x",
          seen_dst);
    CHECK((seen_src & DEST_SEEN) == DEST_SEEN, "the source's MIGRATION events: 0x%x", seen_src);
    printf("defer: MIGRATION events seen on the source 0x%x, on the destination 0x%x\n", seen_src,
           seen_dst);

    wait_status(&dst, "running");
    json_t *e = qc_wait_event(dst.c, "RESUME");
    CHECK(e, "the destination sent no RESUME when its guest started");
    json_decref(e);
    json_t *q = cmd_ok(&dst, "query-migrate", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(q, "x-guest-owner")), "destination"),
          "the destination's owner: %s", json_dumps(q, 0));
    json_decref(q);
    generic_error(&dst, "migrate-incoming", args, "started already");
    uint64_t first = read_u64(&dst, pass_addr);
    CHECK(first >= before, "the guest restarted: pass %llu here, %llu at the source before",
          (unsigned long long)first, (unsigned long long)before);
    uint64_t later = wait_pass(&dst, first + 2, 60000);
    printf("defer: guest pass %llu at the source, %llu on arrival, %llu later\n",
           (unsigned long long)before, (unsigned long long)first, (unsigned long long)later);

    qc_close(src.c); /* a migrated-away source leaves once its clients have */
    CHECK(vm_wait(&src, 10000) == 0, "the source did not exit 0");
    json_decref(cmd_ok(&dst, "quit", NULL));
    CHECK(vm_wait(&dst, 10000) == 0, "the destination did not exit 0 on quit");
    qc_close(dst.c);
}

/* --incoming defer, then quit (exit 0) or a signal (exit 5): no guest ran. */
static void defer_ends(void)
{
    Vm d;
    struct stat sb;
    start_vm(&d, "inc-quit", idle_elf, "256M", "defer");
    vm_connect(&d);
    check_inmigrate(&d);
    json_decref(cmd_ok(&d, "quit", NULL));
    json_t *e = qc_wait_event(d.c, "SHUTDOWN");
    CHECK(e && json_is_false(json_object_get(json_object_get(e, "data"), "guest")),
          "quit while waiting: SHUTDOWN %s", e ? json_dumps(e, 0) : "(none)");
    json_decref(e);
    int s = vm_wait(&d, 10000);
    CHECK(s == 0, "quit while waiting: exit %d, expected 0", s);
    CHECK(log_has(&d, "no guest ran"), "quit while waiting: the log does not say so");
    CHECK(stat(d.sock, &sb) < 0 && errno == ENOENT, "the control socket %s is left behind", d.sock);
    qc_close(d.c);

    /* listening (migrate-incoming unix:), then quit: the socket file goes */
    char in[160], args[200];
    start_vm(&d, "inc-quit2", idle_elf, "256M", "defer");
    vm_connect(&d);
    snprintf(in, sizeof(in), "%s/inc-quit2.in", tmpdir);
    snprintf(args, sizeof(args), "{\"uri\": \"unix:%s\"}", in);
    json_decref(cmd_ok(&d, "migrate-incoming", args));
    CHECK(stat(in, &sb) == 0 && (sb.st_mode & 0777) == 0600, "%s: not a 0600 socket", in);
    json_decref(cmd_ok(&d, "quit", NULL));
    s = vm_wait(&d, 10000);
    CHECK(s == 0, "quit while listening: exit %d, expected 0", s);
    CHECK(stat(in, &sb) < 0 && errno == ENOENT, "%s is left behind after quit", in);
    qc_close(d.c);

    start_vm(&d, "inc-term", idle_elf, "256M", "defer");
    vm_connect(&d);
    kill(d.pid, SIGTERM);
    s = vm_wait(&d, 10000);
    CHECK(s == 5, "SIGTERM while waiting: exit %d, expected 5 (no guest started)", s);
    qc_close(d.c);
    printf("defer: quit exits 0, SIGTERM exits 5, nothing left behind\n");
}

/* A plain --incoming unix:PATH answers QMP while it waits; a broken stream
 * is announced (active, failed) before it exits 5. */
static void plain_incoming(void)
{
    Vm d;
    char uri[200], st[64];
    start_dest(&d, "inc-plain", idle_elf, "256M", uri, sizeof(uri));
    vm_connect(&d);
    check_inmigrate(&d);
    CHECK(!strcmp(mig_status(&d, st, sizeof(st)), "setup"), "plain --incoming: query-migrate %s",
          st);
    generic_error(&d, "migrate-incoming", "{\"uri\": \"unix:/tmp/strata-never\"}",
                  "started already");
    json_decref(cmd_ok(&d, "migrate-set-capabilities",
                       "{\"capabilities\": [{\"capability\": \"events\", \"state\": true}]}"));
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    CHECK(strlen(uri + 5) < sizeof(sa.sun_path), "%s: path too long", uri);
    memcpy(sa.sun_path, uri + 5, strlen(uri + 5) + 1);
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s", uri,
          strerror(errno));
    static const char junk[64] = "NOTASTRATASTREAM";
    CHECK(write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk), "write: %s", strerror(errno));
    unsigned seen = drain_migration(&d, "failed");
    CHECK(seen & MIG_SEEN("active"), "no MIGRATION active before failed (0x%x)", seen);
    int s = vm_wait(&d, 10000);
    CHECK(s == 5, "a broken stream: exit %d, expected 5", s);
    close(fd);
    qc_close(d.c);
    printf("plain --incoming: QMP while waiting, a broken stream announced and refused\n");
}

int incoming_suite(void)
{
    defer_ends();
    plain_incoming();
    defer_flow();
    printf("PASS: incoming (defer, migrate-incoming, both ends' events)\n");
    return 0;
}
