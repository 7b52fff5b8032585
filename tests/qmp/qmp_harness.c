/* SPDX-License-Identifier: MIT */
/* Helpers of the QMP integration test (see qmp_harness.h). */
#include "qmp_harness.h"

#include "kvm/kvm.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "devices/testdev-ports.h"
#include "testproc.h"
char tmpdir[64];
pid_t strata_pid = -1;
char sock_path[128];

char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(m);
    fclose(f);
    return buf;
}

void dump_logs(void)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/stderr.txt", tmpdir);
    char *s = slurp(p);
    fprintf(stderr, "---- strata stderr ----\n%s-----------------------\n", s);
    free(s);
}

void cleanup(void)
{
    if (strata_pid > 0) {
        kill(strata_pid, SIGKILL);
        waitpid(strata_pid, NULL, 0);
    }
    if (tmpdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        (void)!system(cmd);
    }
}

void harness_init(const char *name)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *why = kvm_probe();
    if (why) {
        printf("SKIP: /dev/kvm cannot run strata guests here: %s\n", why);
        exit(77);
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/strata-%s-XXXXXX", name);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
    atexit(cleanup);
    signal(SIGPIPE, SIG_IGN);
    testproc_sweep_strays(STRATA_BIN, tmpdir);
    snprintf(sock_path, sizeof(sock_path), "%s/qmp.sock", tmpdir);
}

void msleep(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Starts strata run with the given arguments (NULL-terminated). */
static pid_t vspawn(const char *tag, const char *first, va_list ap)
{
    const char *argv[40];
    int n = 0;
    argv[n++] = STRATA_BIN;
    argv[n++] = "run";
    for (const char *a = first; a && n < 38; a = va_arg(ap, const char *))
        argv[n++] = a;
    argv[n] = NULL;
    char out[160], err[160];
    snprintf(out, sizeof(out), "%s/%s%sstdout.txt", tmpdir, tag, *tag ? "-" : "");
    snprintf(err, sizeof(err), "%s/%s%sstderr.txt", tmpdir, tag, *tag ? "-" : "");
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        testproc_child_init(parent);
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(e, 2);
        execv(STRATA_BIN, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

pid_t spawn(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = vspawn("", first, ap);
    va_end(ap);
    return pid;
}

pid_t spawn_as(const char *tag, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = vspawn(tag, first, ap);
    va_end(ap);
    return pid;
}

int wait_status(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (pid == strata_pid)
        strata_pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

char *read_log(const char *name)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    return slurp(p);
}

/* Connects once strata listens (no deadline: ctest's timeout governs). */
QClient *connect_when_ready(pid_t pid)
{
    for (;;) {
        QClient *c = qc_connect(sock_path);
        if (c)
            return c;
        int st;
        CHECK(waitpid(pid, &st, WNOHANG) == 0, "strata exited before listening");
        msleep(10);
    }
}

QClient *open_client(void)
{
    QClient *c = connect_when_ready(strata_pid);
    json_t *g = qc_read(c);
    CHECK(g && json_object_get(g, "QMP"), "no greeting");
    json_decref(g);
    json_t *r = qc_cmd(c, "qmp_capabilities", NULL);
    CHECK(r && json_object_get(r, "return"), "negotiation failed");
    json_decref(r);
    return c;
}

const char *desc_of(json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "desc"));
}

const char *class_of(json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "class"));
}

/* Runs a command that must succeed; returns the "return" value (a new ref). */
json_t *ok(QClient *c, const char *name, const char *args)
{
    json_t *r = qc_cmdf(c, name, args);
    CHECK(r, "%s: no reply (connection closed)", name);
    json_t *ret = json_object_get(r, "return");
    CHECK(ret, "%s %s: %s", name, args ? args : "", desc_of(r) ? desc_of(r) : "no return");
    json_incref(ret);
    json_decref(r);
    return ret;
}

/* Runs a command that must fail with class cls and a desc containing sub. */
void fails(QClient *c, const char *name, const char *args, const char *cls, const char *sub)
{
    json_t *r = qc_cmdf(c, name, args);
    CHECK(r, "%s: no reply", name);
    CHECK(class_of(r) && !strcmp(class_of(r), cls), "%s %s: expected %s, got %s", name,
          args ? args : "", cls, json_dumps(r, 0));
    CHECK(strstr(desc_of(r), sub), "%s: desc '%s' lacks '%s'", name, desc_of(r), sub);
    json_decref(r);
}

char *hmp(QClient *c, const char *line)
{
    char args[300];
    snprintf(args, sizeof(args), "{\"command-line\": \"%s\"}", line);
    json_t *ret = ok(c, "human-monitor-command", args);
    CHECK(json_is_string(ret), "hmp %s: not a string", line);
    /* QEMU's monitor ends lines with "\r\n": checked here, then given to
     * the caller as "\n" */
    const char *t = json_string_value(ret);
    char *s = malloc(strlen(t) + 1), *q = s;
    for (const char *p = t; *p; p++) {
        CHECK(*p != '\n' || (p > t && p[-1] == '\r'), "hmp %s: a line without \\r\\n: '%s'", line,
              t);
        if (*p != '\r' || p[1] != '\n')
            *q++ = *p;
    }
    *q = '\0';
    json_decref(ret);
    return s;
}

/* ---- the guest's counter ------------------------------------------------- */

uint64_t elf_symbol(const char *path, const char *name)
{
    char *img;
    FILE *f = fopen(path, "rb");
    CHECK(f, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    img = malloc((size_t)len);
    CHECK(fread(img, 1, (size_t)len, f) == (size_t)len, "read %s", path);
    fclose(f);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
    Elf64_Shdr *sh = (Elf64_Shdr *)(img + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB)
            continue;
        Elf64_Sym *sym = (Elf64_Sym *)(img + sh[i].sh_offset);
        const char *str = img + sh[sh[i].sh_link].sh_offset;
        for (size_t k = 0; k < sh[i].sh_size / sizeof(Elf64_Sym); k++) {
            if (!strcmp(str + sym[k].st_name, name)) {
                uint64_t v = sym[k].st_value;
                free(img);
                return v;
            }
        }
    }
    free(img);
    CHECK(0, "symbol %s not in %s", name, path);
    return 0;
}

uint64_t counter_addr;

uint64_t read_counter(QClient *c)
{
    char line[64];
    snprintf(line, sizeof(line), "xp /1gx 0x%llx", (unsigned long long)counter_addr);
    char *out = hmp(c, line);
    unsigned long long a, v;
    CHECK(sscanf(out, "%llx: 0x%llx", &a, &v) == 2 && a == counter_addr, "xp output '%s'", out);
    free(out);
    return v;
}

/* ---- expected tree ---------------------------------------------------------- */

/* The machine's tree, built here with memory/ the way the brief describes. */
char *expected_mtree(unsigned flags)
{
    MemoryContext *ctx = memory_context_new();
    MemoryRegion sys, io, ram, below, td, ser, kbd_data, kbd_cmd, sleep, panic, ged;
    memory_region_init(&sys, ctx, "system", UINT64_MAX);
    memory_region_init(&io, ctx, "io", 0x10000);
    memory_region_init_ram(&ram, ctx, NULL, "microvm.ram", 256ull << 20);
    memory_region_init_alias(&below, ctx, "ram-below-4g", &ram, 0, 256ull << 20);
    memory_region_add_subregion(&sys, 0, &below);
    memory_region_init_io(&td, ctx, NULL, NULL, "strata-testdev", TESTDEV_PORT_SIZE);
    memory_region_add_subregion(&io, TESTDEV_PORT_BASE, &td);
    memory_region_init_io(&ser, ctx, NULL, NULL, "serial", 8);
    memory_region_add_subregion(&io, 0x3f8, &ser);
    /* the machine's i8042 reset and ACPI sleep control (devices/i8042.h) */
    memory_region_init_io(&kbd_data, ctx, NULL, NULL, "i8042-data", 1);
    memory_region_add_subregion(&io, 0x60, &kbd_data);
    memory_region_init_io(&kbd_cmd, ctx, NULL, NULL, "i8042-cmd", 1);
    memory_region_add_subregion(&io, 0x64, &kbd_cmd);
    memory_region_init_io(&sleep, ctx, NULL, NULL, "acpi-sleep", 3);
    memory_region_add_subregion(&io, 0x600, &sleep);
    memory_region_init_io(&panic, ctx, NULL, NULL, "pvpanic", 1); /* devices/pvpanic.h */
    memory_region_add_subregion(&io, 0x505, &panic);
    memory_region_init_io(&ged, ctx, NULL, NULL, "acpi-ged", 4); /* devices/ged.h */
    memory_region_add_subregion(&io, 0x610, &ged);
    AddressSpace *mas = address_space_new(ctx, &sys, "memory");
    AddressSpace *ias = address_space_new(ctx, &io, "I/O");
    char *s = mtree_info_str(ctx, flags);
    address_space_destroy(mas);
    address_space_destroy(ias);
    memory_region_del_subregion(&io, &ged);
    memory_region_destroy(&ged);
    memory_region_del_subregion(&io, &panic);
    memory_region_destroy(&panic);
    memory_region_del_subregion(&io, &sleep);
    memory_region_del_subregion(&io, &kbd_cmd);
    memory_region_del_subregion(&io, &kbd_data);
    memory_region_destroy(&sleep);
    memory_region_destroy(&kbd_cmd);
    memory_region_destroy(&kbd_data);
    memory_region_del_subregion(&io, &ser);
    memory_region_del_subregion(&io, &td);
    memory_region_del_subregion(&sys, &below);
    memory_region_destroy(&ser);
    memory_region_destroy(&td);
    memory_region_destroy(&below);
    memory_region_destroy(&ram);
    memory_region_destroy(&io);
    memory_region_destroy(&sys);
    memory_context_free(ctx);
    return s;
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

long long strata_rss_kib(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)strata_pid);
    char *s = slurp(path);
    char *v = strstr(s, "VmRSS:");
    long long kib = v ? strtoll(v + 6, NULL, 10) : -1;
    free(s);
    CHECK(kib > 0, "no VmRSS for strata (pid %d)", (int)strata_pid);
    return kib;
}

void wait_log_text(const char *log, const char *text, double secs)
{
    double t0 = now_s();
    for (;;) {
        char *s = read_log(log);
        bool seen = strstr(s, text) != NULL;
        CHECK(seen || !strstr(s, "guest exited"), "the guest failed:\n%s", s);
        free(s);
        if (seen)
            return;
        int st;
        CHECK(strata_pid < 0 || waitpid(strata_pid, &st, WNOHANG) == 0,
              "strata ended before '%s' in %s", text, log);
        CHECK(now_s() - t0 < secs, "no '%s' in %s after %.0f s", text, log, secs);
        msleep(20);
    }
}
