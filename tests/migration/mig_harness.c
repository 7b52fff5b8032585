/* SPDX-License-Identifier: MIT */
/* The migration tests' harness (see mig_harness.h). */
#include "mig_harness.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testproc.h"

char tmpdir[64];
/* The strata processes started and not yet reaped (killed at exit; each
 * also dies with this program through PR_SET_PDEATHSIG, however it ends). */
#define MAX_PROCS 8
static pid_t procs[MAX_PROCS];

void dump_logs(void)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "for f in %s/*.log; do echo \"== $f\"; tail -n 20 \"$f\"; done",
             tmpdir);
    if (system(cmd) < 0)
        perror("system");
}

void cleanup(void)
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

void msleep(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- strata processes -------------------------------------------------------- */

const char *guest_elf, *idle_elf, *pio_elf, *strata_bin;
/* STRATA_PEER: another strata build; then every other strata started is it
 * (the first is strata_bin), so each hop of a soak goes from one build to
 * the other (tests/migration/compat.sh). */
const char *peer_bin;
static unsigned nstarted;
const char *vm_cpus = "1";
const char *vm_disk;       /* --cpus of the next strata started */
const char *vm_dirty_ring; /* --dirty-ring of the next strata started (NULL: the default) */
uint64_t pass_addr, counter_addr;

/* strata run --kernel ELF --test-device --serial none --api-socket ... [extra] */
void start_vm(Vm *vm, const char *name, const char *elf, const char *memory, const char *incoming)
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
    const char *bin = peer_bin && nstarted++ % 2 ? peer_bin : strata_bin;
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
        argv[n++] = (char *)bin;
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
        if (vm_disk) {
            argv[n++] = (char *)"--disk";
            argv[n++] = (char *)vm_disk;
        }
        if (vm_dirty_ring) {
            argv[n++] = (char *)"--dirty-ring";
            argv[n++] = (char *)vm_dirty_ring;
        }
        argv[n] = NULL;
        execv(bin, argv);
        _exit(127);
    }
    vm->pid = pid;
    procs[slot] = pid;
}

/* Reaps vm if it has exited: its exit status (128+N if killed by signal N),
 * or -1 while it runs.  A reaped process leaves procs[]. */
int vm_reap(Vm *vm)
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
int vm_wait(Vm *vm, unsigned timeout_ms)
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

void vm_connect(Vm *vm)
{
    for (int i = 0; i < 1500; i++) {
        struct stat st;
        if (stat(vm->sock, &st) == 0) {
            /* qc_open would exit on a missing greeting; here a strata that
             * closes instead fails the test with its status and its log */
            vm->c = qc_connect(vm->sock);
            CHECK(vm->c, "connect %s: %s", vm->sock, strerror(errno));
            /* a reply or event that never comes fails the test, not hangs it */
            qc_set_timeout(vm->c, 120000);
            json_t *g = qc_read(vm->c);
            if (!g || !json_object_get(g, "QMP")) {
                int status = vm_wait(vm, 5000);
                char line[512];
                FILE *f = fopen(vm->log, "r");
                fprintf(stderr, "%s: no QMP greeting (strata status %d); its log:\n", vm->sock,
                        status);
                while (f && fgets(line, sizeof(line), f))
                    fprintf(stderr, "  | %s", line);
                if (f)
                    fclose(f);
                CHECK(0, "%s: no QMP greeting", vm->sock);
            }
            json_decref(g);
            json_decref(cmd_ok(vm, "qmp_capabilities", NULL));
            return;
        }
        int s = vm_reap(vm);
        CHECK(s < 0, "strata exited (status %d) before listening", s);
        msleep(20);
    }
    CHECK(0, "%s never appeared", vm->sock);
}

json_t *cmd_ok(Vm *vm, const char *name, const char *args)
{
    json_t *r = qc_cmdf(vm->c, name, args);
    CHECK(r && json_object_get(r, "return"), "%s %s failed: %s", name, args ? args : "",
          r ? json_dumps(r, 0) : "(connection closed)");
    json_t *ret = json_incref(json_object_get(r, "return"));
    json_decref(r);
    return ret;
}

const char *run_status(Vm *vm, char *buf, size_t n)
{
    json_t *s = cmd_ok(vm, "query-status", NULL);
    snprintf(buf, n, "%s", json_string_value(json_object_get(s, "status")));
    json_decref(s);
    return buf;
}

void cmd_refused(Vm *vm, const char *name, const char *args, const char *want)
{
    json_t *r = qc_cmdf(vm->c, name, args);
    json_t *e = r ? json_object_get(r, "error") : NULL;
    const char *d = e ? json_string_value(json_object_get(e, "desc")) : NULL;
    CHECK(d && strstr(d, want), "%s %s: expected an error with '%s', got %s", name,
          args ? args : "", want, r ? json_dumps(r, 0) : "(nothing)");
    json_decref(r);
}

uint64_t read_u64(Vm *vm, uint64_t addr)
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
uint64_t wait_pass(Vm *vm, uint64_t want, unsigned timeout_ms)
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

bool mig_announced(Vm *vm, const char *status)
{
    size_t i;
    json_t *e;
    json_array_foreach(vm->c->events, i, e)
    {
        const char *es = json_string_value(json_object_get(json_object_get(e, "data"), "status"));
        if (!strcmp(json_string_value(json_object_get(e, "event")), "MIGRATION") && es &&
            !strcmp(es, status))
            return true;
    }
    return false;
}

/* Polls query-migrate until a final status; returns it (new reference). */
void (*mig_poll_hook)(json_t *q);

json_t *wait_migration(Vm *src, unsigned timeout_ms)
{
    for (unsigned t = 0; t < timeout_ms; t += 50) {
        json_t *q = cmd_ok(src, "query-migrate", NULL);
        if (mig_poll_hook)
            mig_poll_hook(q);
        const char *s = json_string_value(json_object_get(q, "status"));
        if (s && (!strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled"))) {
            /* strata announces a status before any reply reports it (as QEMU
             * does): the event must be queued already */
            CHECK(mig_announced(src, s), "query-migrate says %s before the MIGRATION event did", s);
            return q;
        }
        json_decref(q);
        msleep(50);
    }
    CHECK(0, "migration did not end in %u ms", timeout_ms);
    return NULL;
}

const char *status_of(json_t *q)
{
    return json_string_value(json_object_get(q, "status"));
}

static const char *const mig_statuses[] = { "setup",  "active",     "device",   "completed",
                                            "failed", "cancelling", "cancelled" };

unsigned mig_status_index(const char *name)
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
unsigned drain_migration(Vm *vm, const char *final)
{
    unsigned seen = 0;
    for (;;) {
        json_t *e = qc_wait_event(vm->c, "MIGRATION");
        CHECK(e, "the MIGRATION event '%s' never came", final);
        const char *st = json_string_value(json_object_get(json_object_get(e, "data"), "status"));
        seen |= 1u << mig_status_index(st);
        bool last = !strcmp(st, final);
        json_decref(e);
        if (last)
            break;
    }
    CHECK(qc_count_events(vm->c, "MIGRATION") == 0, "MIGRATION events after '%s'", final);
    return seen;
}

bool log_has(const Vm *vm, const char *text)
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

/* A destination for src's guest that waits on tmpdir/NAME.in. */
void start_dest(Vm *dst, const char *name, const char *elf, const char *memory, char *uri,
                size_t urilen)
{
    if (!strncmp(name, "tcp-", 4))
        snprintf(uri, urilen, "tcp:127.0.0.1:%d", 20000 + (int)(getpid() % 20000));
    else
        snprintf(uri, urilen, "unix:%s/%s.in", tmpdir, name);
    start_vm(dst, name, elf, memory, uri);
    /* ready once it says it waits: that line follows listen().  Neither a
     * probe connection (it would be taken for the migration) nor the unix
     * socket's path (bind() makes it before listen(): a connect in between
     * is refused) tells. */
    for (int i = 0; i < 3000; i++) {
        if (log_has(dst, "waiting for an incoming migration")) {
            struct stat st;
            /* only strata's user may connect (docs/migration.md, Transport) */
            CHECK(strncmp(uri, "unix:", 5) ||
                      (stat(uri + 5, &st) == 0 && (st.st_mode & 0777) == 0600),
                  "destination %s: %s is not mode 0600", name, uri);
            return;
        }
        int st = vm_reap(dst);
        CHECK(st < 0, "destination %s exited early (status %d)", name, st);
        msleep(10);
    }
    CHECK(0, "destination %s never listened on %s in 30 s", name, uri);
}

/* Migrates src to a fresh destination and checks the guest goes on there;
 * the source must have exited.  Returns the final query-migrate. */
json_t *migrate_ok(Vm *src, const char *name, const char *elf, const char *params, bool dirty,
                   unsigned timeout_ms)
{
    Vm dst;
    char uri[200], args[300];
    start_dest(&dst, name, elf, "256M", uri, sizeof(uri));
    /* These cases check what arrives, not how fast: the final phase's hard
     * limit (default 10 x downtime-limit, at least 2 s) has its own test
     * (handover.c), and a nested TCG bed can take seconds there. */
    json_decref(cmd_ok(src, "migrate-set-parameters", "{\"x-final-phase-limit\": 120000}"));
    if (params)
        json_decref(cmd_ok(src, "migrate-set-parameters", params));
    /* the destination checks all of RAM against the source's (a CRC-32 in
     * the final pause), unless params say otherwise */
    bool verify = dirty && !(params && strstr(params, "\"x-verify-ram\": false"));
    if (verify)
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
           "%lld rounds, %lld zero pages, %lld normal, forced %s\n",
           name, dt, json_integer_value(json_object_get(q, "total-time")),
           json_integer_value(json_object_get(q, "downtime")),
           json_integer_value(json_object_get(ram, "transferred")),
           json_integer_value(json_object_get(q, "x-rounds")),
           json_integer_value(json_object_get(ram, "duplicate")),
           json_integer_value(json_object_get(ram, "normal")),
           json_is_true(json_object_get(q, "x-forced-final-round")) ? "yes" : "no");
    CHECK(json_integer_value(json_object_get(ram, "total")) == 256ll << 20, "ram total");
    CHECK(json_integer_value(json_object_get(ram, "duplicate")) > 0, "zero pages sent as such");
    CHECK(json_is_integer(json_object_get(q, "downtime")), "downtime reported");
    const char *owner = json_string_value(json_object_get(q, "x-guest-owner"));
    CHECK(owner && !strcmp(owner, "destination"), "%s: x-guest-owner %s after completion", name,
          owner ? owner : "(none)");
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
    qc_close(src->c); /* the last client gone: the source leaves */
    src->c = NULL;
    int st = vm_wait(src, 10000);
    CHECK(st == 0, "the source should exit 0 after completing, got %d", st);
    vm_connect(&dst);
    CHECK(!verify || log_has(&dst, "RAM verified against the source's"),
          "%s: the destination did not verify RAM", name);
    json_t *s = cmd_ok(&dst, "query-status", NULL);
    CHECK(!strcmp(json_string_value(json_object_get(s, "status")), "running"),
          "destination status %s", json_string_value(json_object_get(s, "status")));
    json_decref(s);
    s = cmd_ok(&dst, "query-migrate", NULL); /* the destination says it owns the guest */
    CHECK(!strcmp(status_of(s), "completed") && json_is_true(json_object_get(s, "x-incoming")) &&
              !strcmp(json_string_value(json_object_get(s, "x-guest-owner")), "destination"),
          "%s: the destination's query-migrate: %s", name, json_dumps(s, 0));
    json_decref(s);
    if (dirty) {
        uint64_t first = read_u64(&dst, pass_addr);
        CHECK(first >= before,
              "the guest restarted: pass %llu on the destination, %llu "
              "on the source before",
              (unsigned long long)first, (unsigned long long)before);
        uint64_t later = wait_pass(&dst, first + 2, 60000);
        printf("%s: guest pass %llu before, %llu right after, %llu later: continues, pages "
               "verified\n",
               name, (unsigned long long)before, (unsigned long long)first,
               (unsigned long long)later);
    } else {
        uint64_t c0 = read_u64(&dst, counter_addr);
        msleep(200);
        uint64_t c1 = read_u64(&dst, counter_addr);
        CHECK(c1 > c0, "the idle guest's counter does not move on the destination");
    }
    *src = dst; /* the destination is the next case's source */
    return q;
}

/* A migration that must fail; the source must keep its guest running. */
uint64_t elf_symbol(const char *path, const char *name)
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
