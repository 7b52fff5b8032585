/* SPDX-License-Identifier: MIT */
/*
 * Live migration between two `strata run` processes on this host's KVM
 * (label kvm; exit 77 where /dev/kvm cannot run guests).
 *
 * The guest (dirty.c) rewrites 32 MiB pass after pass at CPL3 and checks
 * every page for the previous pass before writing it, so a page lost or
 * torn by a migration makes the guest on the destination exit with 1.
 * Cases: an idle guest; a dirtying guest; a guest dirtying faster than the
 * bandwidth cap (the final round is forced); migrate_cancel mid-way; the
 * connection cut at several points (a proxy between the two); a byte
 * flipped at several offsets; a destination with another --memory.  After
 * each failure the same source keeps running its self-checking guest, and
 * the last case migrates that source successfully through the proxy.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvm/kvm.h"
#include "qmp_client.h"
#include "testproc.h"

static char tmpdir[64];
/* The strata processes started and not yet reaped (killed at exit; each
 * also dies with this program through PR_SET_PDEATHSIG, however it ends). */
#define MAX_PROCS 8
static pid_t procs[MAX_PROCS];

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
            dump_logs();                                                              \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static void dump_logs(void)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "for f in %s/*.log; do echo \"== $f\"; tail -n 20 \"$f\"; done",
             tmpdir);
    if (system(cmd) < 0)
        perror("system");
}

static void cleanup(void)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i] > 0) {
            kill(procs[i], SIGKILL);
            waitpid(procs[i], NULL, 0);
            procs[i] = 0;
        }
    if (tmpdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
        if (system(cmd) < 0)
            perror("system");
    }
}

static void msleep(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- strata processes -------------------------------------------------------- */

typedef struct Vm {
    pid_t pid;
    char sock[128];
    char log[128];
    QClient *c;
} Vm;

static const char *guest_elf, *idle_elf, *pio_elf, *strata_bin;
static const char *vm_cpus = "1";     /* --cpus of the next strata started */
static uint64_t pass_addr, counter_addr;

/* strata run --kernel ELF --test-device --serial none --api-socket ... [extra] */
static void start_vm(Vm *vm, const char *name, const char *elf, const char *memory,
                     const char *incoming)
{
    memset(vm, 0, sizeof(*vm));
    snprintf(vm->sock, sizeof(vm->sock), "%s/%s.qmp", tmpdir, name);
    snprintf(vm->log, sizeof(vm->log), "%s/%s.log", tmpdir, name);
    char inc[160] = "";
    if (incoming)
        snprintf(inc, sizeof(inc), "--incoming=%s", incoming);
    int slot = 0;
    while (slot < MAX_PROCS && procs[slot] > 0)
        slot++;
    CHECK(slot < MAX_PROCS, "more than %d strata processes alive at once", MAX_PROCS);
    pid_t parent = getpid();
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        testproc_child_init(parent);
        int fd = open(vm->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        char *argv[20];
        int n = 0;
        argv[n++] = (char *)strata_bin;
        argv[n++] = (char *)"run";
        argv[n++] = (char *)"--kernel";
        argv[n++] = (char *)elf;
        argv[n++] = (char *)"--test-device";
        argv[n++] = (char *)"--serial";
        argv[n++] = (char *)"none";
        argv[n++] = (char *)"--memory";
        argv[n++] = (char *)memory;
        argv[n++] = (char *)"--cpus";
        argv[n++] = (char *)vm_cpus;
        argv[n++] = (char *)"--api-socket";
        argv[n++] = vm->sock;
        if (incoming)
            argv[n++] = inc;
        argv[n] = NULL;
        execv(strata_bin, argv);
        _exit(127);
    }
    vm->pid = pid;
    procs[slot] = pid;
}

/* Reaps vm if it has exited: its exit status (128+N if killed by signal N),
 * or -1 while it runs.  A reaped process leaves procs[]. */
static int vm_reap(Vm *vm)
{
    int st;
    if (vm->pid <= 0 || waitpid(vm->pid, &st, WNOHANG) != vm->pid)
        return -1;
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i] == vm->pid)
            procs[i] = 0;
    vm->pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Exit status of vm (waits up to timeout_ms; -1 if still running). */
static int vm_wait(Vm *vm, unsigned timeout_ms)
{
    for (unsigned t = 0;; t += 20) {
        int st = vm_reap(vm);
        if (st >= 0)
            return st;
        if (t >= timeout_ms)
            return -1;
        msleep(20);
    }
}

static void vm_connect(Vm *vm)
{
    for (int i = 0; i < 1500; i++) {
        struct stat st;
        if (stat(vm->sock, &st) == 0) {
            vm->c = qc_open(vm->sock);
            /* a reply or event that never comes fails the test, not hangs it */
            qc_set_timeout(vm->c, 120000);
            return;
        }
        int s = vm_reap(vm);
        CHECK(s < 0, "strata exited (status %d) before listening", s);
        msleep(20);
    }
    CHECK(0, "%s never appeared", vm->sock);
}

static json_t *cmd_ok(Vm *vm, const char *name, const char *args)
{
    json_t *r = qc_cmdf(vm->c, name, args);
    CHECK(r && json_object_get(r, "return"), "%s %s failed: %s", name, args ? args : "",
          r ? json_dumps(r, 0) : "(connection closed)");
    json_t *ret = json_incref(json_object_get(r, "return"));
    json_decref(r);
    return ret;
}

static uint64_t read_u64(Vm *vm, uint64_t addr)
{
    char line[96];
    snprintf(line, sizeof(line), "{\"command-line\": \"xp /1gx 0x%llx\"}",
             (unsigned long long)addr);
    json_t *r = cmd_ok(vm, "human-monitor-command", line);
    unsigned long long a = 0, v = 0;
    CHECK(sscanf(json_string_value(r), "%llx: 0x%llx", &a, &v) == 2, "xp: %s",
          json_string_value(r));
    json_decref(r);
    return v;
}

/* Waits until the guest's pass counter reaches at least `want`. */
static uint64_t wait_pass(Vm *vm, uint64_t want, unsigned timeout_ms)
{
    uint64_t p = 0;
    for (unsigned t = 0; t < timeout_ms; t += 50) {
        p = read_u64(vm, pass_addr);
        if (p >= want)
            return p;
        msleep(50);
    }
    CHECK(0, "the guest's pass counter stayed at %llu (wanted %llu)", (unsigned long long)p,
          (unsigned long long)want);
    return p;
}

/* Polls query-migrate until a final status; returns it (new reference). */
static json_t *wait_migration(Vm *src, unsigned timeout_ms)
{
    for (unsigned t = 0; t < timeout_ms; t += 50) {
        json_t *q = cmd_ok(src, "query-migrate", NULL);
        const char *s = json_string_value(json_object_get(q, "status"));
        if (s && (!strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled"))) {
            /* strata announces a status before any reply reports it (as QEMU
             * does): the event must be queued already */
            bool announced = false;
            size_t i;
            json_t *e;
            json_array_foreach(src->c->events, i, e) {
                const char *es = json_string_value(
                    json_object_get(json_object_get(e, "data"), "status"));
                announced |= !strcmp(json_string_value(json_object_get(e, "event")),
                                     "MIGRATION") && es && !strcmp(es, s);
            }
            CHECK(announced, "query-migrate says %s before the MIGRATION event did", s);
            return q;
        }
        json_decref(q);
        msleep(50);
    }
    CHECK(0, "migration did not end in %u ms", timeout_ms);
    return NULL;
}

static const char *status_of(json_t *q)
{
    return json_string_value(json_object_get(q, "status"));
}

static const char *const mig_statuses[] = { "setup", "active", "device", "completed",
                                            "failed", "cancelling", "cancelled" };
#define MIG_SEEN(name) (1u << mig_status_index(name))

static unsigned mig_status_index(const char *name)
{
    for (unsigned i = 0; i < sizeof(mig_statuses) / sizeof(mig_statuses[0]); i++)
        if (name && !strcmp(name, mig_statuses[i]))
            return i;
    CHECK(0, "unknown migration status %s", name ? name : "(none)");
    return 0;
}

/* Reads the MIGRATION events of the migration that just ended, up to the
 * one announcing `final` (strata sends it before any reply that reports
 * that status), so that none is left for the next case.  Returns the set
 * of statuses seen (MIG_SEEN bits). */
static unsigned drain_migration(Vm *vm, const char *final)
{
    unsigned seen = 0;
    for (;;) {
        json_t *e = qc_wait_event(vm->c, "MIGRATION");
        CHECK(e, "the MIGRATION event '%s' never came", final);
        const char *st = json_string_value(json_object_get(json_object_get(e, "data"),
                                                           "status"));
        seen |= 1u << mig_status_index(st);
        bool last = !strcmp(st, final);
        json_decref(e);
        if (last)
            break;
    }
    CHECK(qc_count_events(vm->c, "MIGRATION") == 0, "MIGRATION events after '%s'", final);
    return seen;
}

static bool log_has(const Vm *vm, const char *text)
{
    FILE *f = fopen(vm->log, "r");
    if (!f)
        return false;
    char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, text) != NULL;
}

/* ---- a proxy between source and destination, with faults ----------------------- */

typedef struct Proxy {
    char path[128];             /* the source connects here */
    char target[128];           /* the destination's --incoming socket */
    int lfd;
    uint64_t cut_after;         /* close both after this many source bytes (0: never) */
    bool cut_at_reply;          /* close both when the destination first answers */
    uint64_t flip_at;           /* xor 0x5a into this source byte (UINT64_MAX: none) */
    uint64_t forwarded;         /* source -> destination bytes */
    pthread_t thread;
} Proxy;

static void *proxy_main(void *arg)
{
    Proxy *p = arg;
    int a = accept(p->lfd, NULL, NULL);
    if (a < 0)
        return NULL;
    int b = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, p->target, strnlen(p->target, sizeof(sa.sun_path) - 1));
    if (connect(b, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(a);
        close(b);
        return NULL;
    }
    static __thread uint8_t buf[1 << 16];
    for (;;) {
        struct pollfd f[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };
        if (poll(f, 2, 30000) <= 0)
            break;
        if (f[0].revents) {
            size_t want = sizeof(buf);
            if (p->cut_after && p->cut_after - p->forwarded < want)
                want = (size_t)(p->cut_after - p->forwarded);
            ssize_t n = want ? read(a, buf, want) : 0;
            if (n <= 0)
                break;
            if (p->flip_at >= p->forwarded && p->flip_at < p->forwarded + (uint64_t)n)
                buf[p->flip_at - p->forwarded] ^= 0x5a;
            if (write(b, buf, (size_t)n) != n) {
                /* the destination closed: pass on its last words (a refusal) */
                ssize_t m;
                while ((m = recv(b, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
                    if (write(a, buf, (size_t)m) != m)
                        break;
                break;
            }
            p->forwarded += (uint64_t)n;
            if (p->cut_after && p->forwarded >= p->cut_after)
                break;
        }
        if (f[1].revents) {
            if (p->cut_at_reply)
                break;
            ssize_t n = read(b, buf, sizeof(buf));
            if (n <= 0 || write(a, buf, (size_t)n) != n)
                break;
        }
    }
    close(a);
    close(b);
    return NULL;
}

static void proxy_start(Proxy *p, const char *name, const char *target)
{
    snprintf(p->path, sizeof(p->path), "%s/%s.sock", tmpdir, name);
    size_t tl = strnlen(target, sizeof(p->target) - 1);
    memcpy(p->target, target, tl);
    p->target[tl] = 0;
    p->forwarded = 0;
    p->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, p->path, strnlen(p->path, sizeof(sa.sun_path) - 1));
    unlink(p->path);
    CHECK(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(p->lfd, 1) == 0,
          "proxy %s: %s", p->path, strerror(errno));
    CHECK(pthread_create(&p->thread, NULL, proxy_main, p) == 0, "pthread_create");
}

static void proxy_stop(Proxy *p)
{
    shutdown(p->lfd, SHUT_RDWR);
    pthread_join(p->thread, NULL);
    close(p->lfd);
    unlink(p->path);
}

/* ---- cases ----------------------------------------------------------------------- */

/* A destination for src's guest that waits on tmpdir/NAME.in. */
static void start_dest(Vm *dst, const char *name, const char *elf, const char *memory,
                       char *uri, size_t urilen)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s.in", tmpdir, name);
    if (!strncmp(name, "tcp-", 4)) {
        /* loopback TCP; ready once it says it waits (a probe connection
         * would be taken for the migration) */
        snprintf(uri, urilen, "tcp:127.0.0.1:%d", 20000 + (int)(getpid() % 20000));
        start_vm(dst, name, elf, memory, uri);
        for (int i = 0; i < 500; i++) {
            if (log_has(dst, "waiting for an incoming migration"))
                return;
            int st = vm_reap(dst);
            CHECK(st < 0, "destination %s exited early (status %d)", name, st);
            msleep(10);
        }
        CHECK(0, "destination %s never listened on %s", name, uri);
    }
    snprintf(uri, urilen, "unix:%s", path);
    start_vm(dst, name, elf, memory, uri);
    for (int i = 0; i < 500; i++) {         /* wait for its listening socket */
        struct stat st;
        if (stat(path, &st) == 0)
            return;
        int s = vm_reap(dst);
        CHECK(s < 0, "destination %s exited early (status %d)", name, s);
        msleep(10);
    }
    CHECK(0, "destination %s never listened on %s", name, path);
}

/* Migrates src to a fresh destination and checks the guest goes on there;
 * the source must have exited.  Returns the final query-migrate. */
static json_t *migrate_ok(Vm *src, const char *name, const char *elf, const char *params,
                          bool dirty, unsigned timeout_ms)
{
    Vm dst;
    char uri[200], args[300];
    start_dest(&dst, name, elf, "256M", uri, sizeof(uri));
    if (params)
        json_decref(cmd_ok(src, "migrate-set-parameters", params));
    if (dirty)      /* the destination checks all of RAM against the source's */
        json_decref(cmd_ok(src, "migrate-set-parameters", "{\"x-verify-ram\": true}"));
    uint64_t before = dirty ? read_u64(src, pass_addr) : 0;
    snprintf(args, sizeof(args), "{\"uri\": \"%s\"}", uri);
    double t0 = now_s();
    json_decref(cmd_ok(src, "migrate", args));
    json_t *q = wait_migration(src, timeout_ms);
    double dt = now_s() - t0;
    CHECK(!strcmp(status_of(q), "completed"), "%s: migration %s: %s", name, status_of(q),
          json_dumps(q, 0));
    json_t *ram = json_object_get(q, "ram");
    printf("%s: completed in %.2f s: total-time %lld ms, downtime %lld ms, %lld bytes, "
           "%lld rounds, %lld zero pages, %lld normal, forced %s\n", name, dt,
           json_integer_value(json_object_get(q, "total-time")),
           json_integer_value(json_object_get(q, "downtime")),
           json_integer_value(json_object_get(ram, "transferred")),
           json_integer_value(json_object_get(q, "x-rounds")),
           json_integer_value(json_object_get(ram, "duplicate")),
           json_integer_value(json_object_get(ram, "normal")),
           json_is_true(json_object_get(q, "x-forced-final-round")) ? "yes" : "no");
    CHECK(json_integer_value(json_object_get(ram, "total")) == 256ll << 20, "ram total");
    CHECK(json_integer_value(json_object_get(ram, "duplicate")) > 0, "zero pages sent as such");
    CHECK(json_is_integer(json_object_get(q, "downtime")), "downtime reported");
    /* events: setup, active, device, completed in that order */
    const char *want[] = { "setup", "active", "device", "completed" };
    for (int i = 0; i < 4; i++) {
        json_t *e = qc_wait_event(src->c, "MIGRATION");
        CHECK(e, "MIGRATION event %s missing", want[i]);
        const char *s = json_string_value(json_object_get(json_object_get(e, "data"), "status"));
        CHECK(s && !strcmp(s, want[i]), "MIGRATION event %d is %s, expected %s", i, s, want[i]);
        json_decref(e);
    }
    json_t *ss = cmd_ok(src, "query-status", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(ss, "status")), "postmigrate"),
          "source status after completion: %s", json_string_value(json_object_get(ss, "status")));
    json_decref(ss);
    json_t *r = qc_cmdf(src->c, "cont", NULL);
    CHECK(r && json_object_get(r, "error"), "cont on a migrated-away source must fail");
    json_decref(r);
    qc_close(src->c);           /* the last client gone: the source leaves */
    src->c = NULL;
    int st = vm_wait(src, 10000);
    CHECK(st == 0, "the source should exit 0 after completing, got %d", st);
    vm_connect(&dst);
    CHECK(!dirty || log_has(&dst, "RAM verified against the source's"),
          "%s: the destination did not verify RAM", name);
    json_t *s = cmd_ok(&dst, "query-status", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(s, "status")), "running"),
          "destination status %s", json_string_value(json_object_get(s, "status")));
    json_decref(s);
    if (dirty) {
        uint64_t first = read_u64(&dst, pass_addr);
        CHECK(first >= before, "the guest restarted: pass %llu on the destination, %llu "
              "on the source before", (unsigned long long)first, (unsigned long long)before);
        uint64_t later = wait_pass(&dst, first + 2, 60000);
        printf("%s: guest pass %llu before, %llu right after, %llu later: continues, pages "
               "verified\n", name, (unsigned long long)before, (unsigned long long)first,
               (unsigned long long)later);
    } else {
        uint64_t c0 = read_u64(&dst, counter_addr);
        msleep(200);
        uint64_t c1 = read_u64(&dst, counter_addr);
        CHECK(c1 > c0, "the idle guest's counter does not move on the destination");
    }
    *src = dst;         /* the destination is the next case's source */
    return q;
}

/* A migration that must fail; the source must keep its guest running. */
static void migrate_fails(Vm *src, const char *name, Proxy *px, const char *dst_memory,
                          const char *expect_src, const char *expect_dst)
{
    Vm dst;
    char uri[200], args[300];
    start_dest(&dst, name, guest_elf, dst_memory, uri, sizeof(uri));
    const char *target = uri + 5;
    if (px) {
        proxy_start(px, name, target);
        snprintf(args, sizeof(args), "{\"uri\": \"unix:%s\"}", px->path);
    } else {
        snprintf(args, sizeof(args), "{\"uri\": \"%s\"}", uri);
    }
    uint64_t before = read_u64(src, pass_addr);
    json_decref(cmd_ok(src, "migrate", args));
    json_t *q = wait_migration(src, 120000);
    const char *desc = json_string_value(json_object_get(q, "error-desc"));
    printf("%s: source %s (%s)%s\n", name, status_of(q), desc ? desc : "",
           px ? "" : "");
    CHECK(!strcmp(status_of(q), "failed"), "%s: expected failed, got %s", name, status_of(q));
    CHECK(desc && (!expect_src || strstr(desc, expect_src)), "%s: error-desc '%s' lacks '%s'",
          name, desc ? desc : "", expect_src ? expect_src : "");
    json_decref(q);
    if (px)
        proxy_stop(px);
    int st = vm_wait(&dst, 90000);
    CHECK(st == 5, "%s: the destination should exit 5 (no guest started), got %d", name, st);
    CHECK(log_has(&dst, "the guest is not started"), "%s: destination message", name);
    CHECK(!expect_dst || log_has(&dst, expect_dst), "%s: destination log lacks '%s'", name,
          expect_dst);
    json_t *s = cmd_ok(src, "query-status", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(s, "status")), "running"),
          "%s: source not running after the failure", name);
    json_decref(s);
    uint64_t after = wait_pass(src, before + 2, 60000);
    printf("%s: source guest goes on (pass %llu -> %llu, pages verified)\n", name,
           (unsigned long long)before, (unsigned long long)after);
    drain_migration(src, "failed");
}

static void test_cancel(Vm *src)
{
    Vm dst;
    char uri[200], args[300];
    start_dest(&dst, "cancel", guest_elf, "256M", uri, sizeof(uri));
    json_decref(cmd_ok(src, "migrate-set-parameters", "{\"max-bandwidth\": 4194304}"));
    uint64_t before = read_u64(src, pass_addr);
    snprintf(args, sizeof(args), "{\"uri\": \"%s\"}", uri);
    json_decref(cmd_ok(src, "migrate", args));
    /* wait until it is moving pages */
    for (int i = 0; i < 200; i++) {
        json_t *q = cmd_ok(src, "query-migrate", NULL);
        json_int_t tr = json_integer_value(json_object_get(json_object_get(q, "ram"),
                                                           "transferred"));
        bool active = !strcmp(status_of(q), "active");
        json_decref(q);
        if (active && tr > (1 << 20))
            break;
        msleep(50);
    }
    json_t *r = qc_cmdf(src->c, "migrate", args);     /* a second one is refused */
    CHECK(r && json_object_get(r, "error"), "a second migrate must be refused");
    json_decref(r);
    r = qc_cmdf(src->c, "system_reset", NULL);
    CHECK(r && json_object_get(r, "error"), "system_reset during a migration must be refused");
    json_decref(r);
    json_decref(cmd_ok(src, "migrate_cancel", NULL));
    json_t *q = wait_migration(src, 30000);
    CHECK(!strcmp(status_of(q), "cancelled"), "after migrate_cancel: %s", status_of(q));
    printf("cancel: %s after %lld bytes\n", status_of(q),
           json_integer_value(json_object_get(json_object_get(q, "ram"), "transferred")));
    json_decref(q);
    int st = vm_wait(&dst, 60000);
    CHECK(st == 5, "cancel: destination exit %d", st);
    uint64_t after = wait_pass(src, before + 2, 60000);
    printf("cancel: source guest goes on (pass %llu -> %llu)\n", (unsigned long long)before,
           (unsigned long long)after);
    unsigned seen = drain_migration(src, "cancelled");
    CHECK(seen & MIG_SEEN("cancelling"), "no 'cancelling' event before 'cancelled'");
    json_decref(cmd_ok(src, "migrate-set-parameters", "{\"max-bandwidth\": 134217728}"));
}

static void test_params(Vm *src)
{
    json_t *p = cmd_ok(src, "query-migrate-parameters", NULL);
    CHECK(json_integer_value(json_object_get(p, "downtime-limit")) == 300, "default downtime");
    CHECK(json_integer_value(json_object_get(p, "max-bandwidth")) == 128ll << 20, "default bw");
    json_decref(p);
    json_decref(cmd_ok(src, "migrate-set-parameters", "{\"downtime-limit\": 100}"));
    p = cmd_ok(src, "query-migrate-parameters", NULL);
    CHECK(json_integer_value(json_object_get(p, "downtime-limit")) == 100, "set downtime");
    json_decref(p);
    const char *bad[][2] = {
        { "migrate-set-parameters", "{\"downtime-limit\": -1}" },
        { "migrate-set-parameters", "{\"max-bandwidth\": \"x\"}" },
        { "migrate-set-parameters", "{\"bogus\": 1}" },
        { "migrate", "{\"uri\": \"ftp:x\"}" },
        { "migrate", "{\"uri\": \"tcp:127.0.0.1:0\"}" },
        { "migrate", "{}" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *r = qc_cmdf(src->c, bad[i][0], bad[i][1]);
        CHECK(r && json_object_get(r, "error"), "%s %s must fail", bad[i][0], bad[i][1]);
        json_decref(r);
    }
    json_t *q = cmd_ok(src, "query-migrate", NULL);
    CHECK(json_object_size(q) == 0, "query-migrate before any migration is {}");
    json_decref(q);
    /* a migration to nowhere fails and leaves the VM running */
    char args[200];
    snprintf(args, sizeof(args), "{\"uri\": \"unix:%s/nobody.sock\"}", tmpdir);
    json_decref(cmd_ok(src, "migrate", args));
    q = wait_migration(src, 10000);
    CHECK(!strcmp(status_of(q), "failed"), "migrate to nowhere: %s", status_of(q));
    json_decref(q);
    drain_migration(src, "failed");
    json_decref(cmd_ok(src, "migrate-set-parameters", "{\"downtime-limit\": 300}"));
}

static uint64_t elf_symbol(const char *path, const char *name)
{
    FILE *f = fopen(path, "rb");
    CHECK(f, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *img = malloc((size_t)len);
    CHECK(img && fread(img, 1, (size_t)len, f) == (size_t)len, "read %s", path);
    fclose(f);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
    Elf64_Shdr *sh = (Elf64_Shdr *)(img + eh->e_shoff);
    uint64_t v = 0;
    for (unsigned i = 0; i < eh->e_shnum && !v; i++) {
        if (sh[i].sh_type != SHT_SYMTAB)
            continue;
        Elf64_Sym *sym = (Elf64_Sym *)(img + sh[i].sh_offset);
        const char *str = img + sh[sh[i].sh_link].sh_offset;
        for (size_t k = 0; k < sh[i].sh_size / sizeof(Elf64_Sym); k++)
            if (!strcmp(str + sym[k].st_name, name))
                v = sym[k].st_value;
    }
    free(img);
    CHECK(v, "symbol %s not in %s", name, path);
    return v;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* The soak: a guest whose 2 vCPUs rewrite and check every word of 32 MiB
 * (dirty.c, MIG_SMP) migrated from strata to strata `hops` times.  Each hop
 * must complete with the destination's RAM verified against the source's
 * CRC (x-verify-ram), the guest's pass counter going on there with its own
 * page checks passing, and the source gone with status 0. */
static int soak(const char *smp_elf, unsigned hops)
{
    pass_addr = elf_symbol(smp_elf, "mig_pass");
    vm_cpus = "2";
    Vm src;
    start_vm(&src, "soak-src", smp_elf, "256M", NULL);
    vm_connect(&src);
    wait_pass(&src, 2, 60000);
    long long *down = calloc(hops, sizeof(*down)), *total = calloc(hops, sizeof(*total));
    CHECK(down && total, "out of memory");
    double t0 = now_s();
    for (unsigned h = 0; h < hops; h++) {
        char name[32];
        snprintf(name, sizeof(name), "hop%u", h + 1);
        json_t *q = migrate_ok(&src, name, smp_elf, "{\"max-bandwidth\": 1073741824}", true,
                               180000);
        down[h] = json_integer_value(json_object_get(q, "downtime"));
        total[h] = json_integer_value(json_object_get(q, "total-time"));
        json_decref(q);
    }
    double dt = now_s() - t0;
    uint64_t last = read_u64(&src, pass_addr);
    json_decref(cmd_ok(&src, "quit", NULL));
    CHECK(vm_wait(&src, 10000) == 0, "quit");
    qc_close(src.c);
    qsort(down, hops, sizeof(*down), cmp_ll);
    qsort(total, hops, sizeof(*total), cmp_ll);
    printf("soak: %u hops in %.1f s, 2 vCPUs dirtying 32 MiB; downtime ms min %lld median %lld "
           "max %lld; total-time ms min %lld median %lld max %lld; guest pass %llu at the end\n",
           hops, dt, down[0], down[hops / 2], down[hops - 1], total[0], total[hops / 2],
           total[hops - 1], (unsigned long long)last);
    printf("PASS: migration soak (%u hops, every page verified by the guest and by x-verify-ram)\n",
           hops);
    free(down);
    free(total);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned soak_hops = 0;
    if (argc == 3 && !strcmp(argv[1], "--soak")) {
        char *end;
        unsigned long n = strtoul(argv[2], &end, 10);
        if (*end || n < 1 || n > 100000) {
            fprintf(stderr, "mig-test: --soak N: N is a number of hops, 1..100000\n");
            return 2;
        }
        soak_hops = (unsigned)n;
    } else if (argc != 1) {
        fprintf(stderr, "usage: mig-test [--soak HOPS]\n"
                "  (no argument: the migration suite; --soak: a 2-vCPU dirtying guest migrated "
                "HOPS times)\n");
        return 2;
    }
    const char *why = kvm_probe();
    if (why) {
        printf("SKIP: /dev/kvm cannot run guests here: %s\n", why);
        return 77;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/strata-mig-XXXXXX");
    CHECK(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
    atexit(cleanup);
    /* STRATA / MIG_DIRTY_ELF / MIG_IDLE_ELF override the build's paths (the
     * nested test bed runs this program with its own copies). */
    strata_bin = getenv("STRATA") ? getenv("STRATA") : STRATA_BIN;
    guest_elf = getenv("MIG_DIRTY_ELF") ? getenv("MIG_DIRTY_ELF") : DIRTY_ELF;
    idle_elf = getenv("MIG_IDLE_ELF") ? getenv("MIG_IDLE_ELF") : IDLE_ELF;
    pio_elf = getenv("MIG_PIO_ELF") ? getenv("MIG_PIO_ELF") : PIO_ELF;
    testproc_sweep_strays(strata_bin);
    if (soak_hops)
        return soak(getenv("MIG_SMP_ELF") ? getenv("MIG_SMP_ELF") : SMP_ELF, soak_hops);
    pass_addr = elf_symbol(guest_elf, "mig_pass");
    counter_addr = elf_symbol(idle_elf, "mig_counter");
    CHECK(elf_symbol(pio_elf, "mig_counter") == counter_addr, "pio guest layout");

    /* 1. idle guest, 2 vCPUs (the second waits for INIT/SIPI: its MP state
     * travels too) */
    Vm src;
    vm_cpus = "2";
    start_vm(&src, "idle-src", idle_elf, "256M", NULL);
    vm_connect(&src);
    test_params(&src);
    json_decref(migrate_ok(&src, "idle-2cpus", idle_elf, NULL, false, 60000));
    vm_cpus = "1";
    json_decref(cmd_ok(&src, "quit", NULL));
    CHECK(vm_wait(&src, 10000) == 0, "quit");
    qc_close(src.c);

    /* 1b. a guest in a PIO loop: paused right after port writes */
    start_vm(&src, "pio-src", pio_elf, "256M", NULL);
    vm_connect(&src);
    msleep(300);
    json_decref(migrate_ok(&src, "pio", pio_elf, NULL, false, 60000));
    json_decref(migrate_ok(&src, "tcp-pio-again", pio_elf, NULL, false, 60000));
    json_decref(cmd_ok(&src, "quit", NULL));
    CHECK(vm_wait(&src, 10000) == 0, "quit");
    qc_close(src.c);

    /* 2. a dirtying guest, then its destination migrates on (default settings) */
    start_vm(&src, "dirty-src", guest_elf, "256M", NULL);
    vm_connect(&src);
    wait_pass(&src, 2, 60000);
    json_decref(migrate_ok(&src, "dirty", guest_elf, NULL, true, 120000));
    json_decref(migrate_ok(&src, "dirty-again", guest_elf, NULL, true, 120000));

    /* 3. dirtying faster than the cap: the final round is forced */
    json_t *q = migrate_ok(&src, "capped", guest_elf,
                           "{\"max-bandwidth\": 16777216, \"downtime-limit\": 50}", true,
                           180000);
    CHECK(json_is_true(json_object_get(q, "x-forced-final-round")),
          "the capped migration should have been forced to its final round");
    CHECK(json_integer_value(json_object_get(q, "downtime")) > 0, "a forced round has downtime");
    json_decref(q);
    json_decref(cmd_ok(&src, "migrate-set-parameters",
                       "{\"max-bandwidth\": 134217728, \"downtime-limit\": 300}"));

    /* 4. cancel */
    test_cancel(&src);

    /* 5. cuts and corruption through a proxy; the source survives each */
    Proxy px;
    memset(&px, 0, sizeof(px));
    const uint64_t cuts[] = { 8, 20, 5000, 1u << 20, 12u << 20, 30u << 20 };
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        char name[32];
        snprintf(name, sizeof(name), "cut%zu", i);
        px.cut_after = cuts[i];
        px.cut_at_reply = false;
        px.flip_at = UINT64_MAX;
        migrate_fails(&src, name, &px, "256M", NULL, NULL);
    }
    px.cut_after = 0;
    px.cut_at_reply = true;         /* everything arrived; READY never gets back */
    px.flip_at = UINT64_MAX;
    migrate_fails(&src, "cut-at-handover", &px, "256M", NULL, "did not confirm the handover");
    srand(12345);
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "flip%d", i);
        px.cut_after = 0;
        px.cut_at_reply = false;
        px.flip_at = i == 0 ? 3 : i == 1 ? 40 : (uint64_t)(rand() % (24 << 20));
        migrate_fails(&src, name, &px, "256M", "refused", NULL);
    }
    /* 6. another machine configuration */
    migrate_fails(&src, "config", NULL, "128M", "--memory 256 MiB",
                  "the source has --memory 256 MiB, this strata has 128 MiB");
    vm_cpus = "2";
    migrate_fails(&src, "config-cpus", NULL, "256M", "--cpus 1",
                  "the source has --cpus 1, this strata has 2");
    vm_cpus = "1";

    /* 7. after all that, the same source migrates fine */
    json_decref(migrate_ok(&src, "final", guest_elf, NULL, true, 120000));
    json_decref(cmd_ok(&src, "quit", NULL));
    CHECK(vm_wait(&src, 10000) == 0, "quit");
    qc_close(src.c);
    printf("PASS: migration (idle 2 vCPUs, pio x2 (unix, tcp), dirty x2, capped+forced, cancel, 7 cuts, 5 flips, memory and "
           "cpus mismatch, final)\n");
    return 0;
}
