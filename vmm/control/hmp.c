/* SPDX-License-Identifier: MIT */
/* Human monitor commands (see hmp.h). */
#include "vmm/control/hmp.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio-mmio.h"
#include "vmm/control/commands.h"
#include "vmm/control/stats.h"
#include "vmm/runstate.h"
#include "vmm/version.h"
#include "vmm/vmm.h"

#define MAX_ARGS 8
#define XP_MAX_BYTES 4096

/* The top-level commands for `help` (QEMU's layout: "NAME PARAMS -- HELP"). */
static const char help_text[] =
    "cont|c  -- resume emulation\n"
    "help|? [cmd] -- show the help\n"
    "info [subcommand] -- show various information about the system state\n"
    "quit|q  -- quit the emulator\n"
    "stop  -- stop emulation\n"
    "system_powerdown  -- send system power down event\n"
    "system_reset  -- reset the system\n"
    "xp /fmt addr -- physical memory dump starting at addr (fmt: count, x/d/u, b/h/w/g)\n";

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static char *info_mtree(Vmm *v, int argc, char **argv, QmpError *err)
{
    unsigned flags = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-f")) {
            flags |= MTREE_FLATVIEW;
        } else if (!strcmp(argv[i], "-D")) {
            flags |= MTREE_DISABLED;
        } else {
            qmp_error_set(err, "info mtree: unsupported option '%s' (use -f, -D)", argv[i]);
            return NULL;
        }
    }
    char *s = mtree_info_str(v->m.ctx, flags);
    if (!s)
        qmp_error_set(err, "info mtree: out of memory");
    return s;
}

static char *info_kvm(Vmm *v, int argc, char **argv, QmpError *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fputs("kvm support: enabled\n", f);
    KvmSlotInfo slots[64];
    size_t n = kvm_vm_get_slots(v->m.vm, slots, 64);
    fprintf(f, "memory slots: %zu of %u\n", n, kvm_vm_max_slots(v->m.vm));
    for (size_t i = 0; i < n && i < 64; i++)
        fprintf(f, "  slot %u: %016llx-%016llx%s%s %s\n", slots[i].slot,
                (unsigned long long)slots[i].gpa,
                (unsigned long long)(slots[i].gpa + slots[i].size - 1),
                slots[i].flags & KVM_MEM_READONLY ? " ro" : "",
                slots[i].flags & KVM_MEM_LOG_DIRTY_PAGES ? " log" : "", slots[i].name);
    KvmVmStats st;
    kvm_vm_get_stats(v->m.vm, &st);
    fprintf(f, "exits: io %llu, mmio %llu, other %llu\n", (unsigned long long)st.exits_io,
            (unsigned long long)st.exits_mmio, (unsigned long long)st.exits_other);
    unsigned ring = kvm_vm_dirty_ring_size(v->m.vm);
    if (ring)
        fprintf(f, "dirty log: ring of %u entries per vCPU", ring);
    else
        fputs("dirty log: bitmap", f);
    fprintf(f, "; %llu syncs in %llu us, %llu pages", (unsigned long long)st.dirty_syncs,
            (unsigned long long)(st.dirty_sync_ns / 1000), (unsigned long long)st.dirty_pages);
    if (ring)
        fprintf(f, ", %llu ring-full exits", (unsigned long long)st.dirty_ring_full);
    fputc('\n', f);
    fclose(f);
    return buf;
}

/* Each virtio device: features offered and taken, and per queue the
 * notification counters (kicks received, interrupts raised, interrupts the
 * driver's flags or used_event spared). */
static char *info_virtio(Vmm *v, int argc, char **argv, QmpError *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    for (unsigned i = 0; i < v->m.nvirtio; i++) {
        VirtioMmio *t = v->m.virtio[i].t;
        if (!t)
            continue;
        virtio_mmio_lock(t);
        uint64_t drv = t->r.driver_features;
        unsigned nq = t->num_queues;
        bool broken = t->r.broken;
        virtio_mmio_unlock(t);
        fprintf(f, "%s: features %#llx, driver %#llx%s%s%s\n", t->label,
                (unsigned long long)t->device_features, (unsigned long long)drv,
                drv & VIRTIO_F_INDIRECT_DESC ? " indirect" : "",
                drv & VIRTIO_F_EVENT_IDX ? " event-idx" : "", broken ? " BROKEN" : "");
        for (unsigned q = 0; q < nq; q++) {
            VirtioQueueStats st = virtio_mmio_queue_stats(t, q);
            fprintf(f, "  queue %u: kicks %llu, interrupts %llu, suppressed %llu\n", q,
                    (unsigned long long)st.kicks, (unsigned long long)st.interrupts,
                    (unsigned long long)st.suppressed);
        }
    }
    fclose(f);
    return buf;
}

static char *info_cpus(Vmm *v, int argc, char **argv, QmpError *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    for (unsigned i = 0; i < kvm_vm_nr_vcpus(v->m.vm); i++)
        fprintf(f, "%c CPU #%u: thread_id=%d\n", i == 0 ? '*' : ' ', i, (int)vmm_vcpu_tid(v, i));
    fclose(f);
    return buf;
}

/* Every vCPU's registers, read with the vCPUs held out of KVM_RUN for the
 * moment it takes (a nested pause: a paused VM stays paused). */
static char *info_registers(Vmm *v, int argc, char **argv, QmpError *err)
{
    if (!v->m.vm || v->state == RUN_STATE_SHUTDOWN || v->state == RUN_STATE_POSTMIGRATE ||
        v->state == RUN_STATE_INMIGRATE) {
        qmp_error_set(err, "info registers: the VM has no vCPUs now (%s)", vmm_state_name(v));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        qmp_error_set(err, "info registers: out of memory");
        return NULL;
    }
    kvm_vm_pause(v->m.vm);
    for (unsigned i = 0; i < kvm_vm_nr_vcpus(v->m.vm); i++)
        kvm_vcpu_dump(kvm_vm_vcpu(v->m.vm, i), f);
    kvm_vm_resume(v->m.vm);
    fclose(f);
    return buf;
}

/* QEMU's line: the guest's RAM less the balloon, in MiB. */
static char *info_balloon(Vmm *v, int argc, char **argv, QmpError *err)
{
    json_t *r = vmm_query_balloon(v, err);
    if (!r)
        return NULL;
    char *s = dupf("balloon: actual=%lld\n",
                   (long long)(json_integer_value(json_object_get(r, "actual")) >> 20));
    json_decref(r);
    return s;
}

static char *info_status(Vmm *v, int argc, char **argv, QmpError *err)
{
    return dupf("VM status: %s\n", vmm_state_name(v));
}

/* QEMU prints "MAJOR.MINOR.MICRO" and its package; strata's (vmm/version.h). */
static char *info_version(Vmm *v, int argc, char **argv, QmpError *err)
{
    int n[3];
    strata_version_numbers(n);
    return dupf("%d.%d.%d (strata)\n", n[0], n[1], n[2]);
}

/* Each disk: its image, format, mode and cache (from query-block). */
static char *info_block(Vmm *v, int argc, char **argv, QmpError *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    json_t *arr = vmm_query_block(v), *b;
    size_t i;
    json_array_foreach(arr, i, b)
    {
        json_t *ins = json_object_get(b, "inserted");
        json_t *img = json_object_get(ins, "image");
        fprintf(f, "%s: %s (%s%s)\n", json_string_value(json_object_get(b, "device")),
                json_string_value(json_object_get(ins, "file")),
                json_string_value(json_object_get(ins, "drv")),
                json_is_true(json_object_get(ins, "ro")) ? ", read-only" : "");
        fprintf(f, "    Cache mode:       writeback\n");
        fprintf(f, "    Virtual size:     %lld bytes\n",
                (long long)json_integer_value(json_object_get(img, "virtual-size")));
    }
    json_decref(arr);
    fclose(f);
    return buf;
}

/* Each disk's counters as NAME=VALUE (query-blockstats, strata's own "x-"
 * ones left out, as QEMU's line has none). */
static char *info_blockstats(Vmm *v, int argc, char **argv, QmpError *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    json_t *arr = vmm_query_blockstats(v), *e;
    size_t i;
    json_array_foreach(arr, i, e)
    {
        fprintf(f, "%s:", json_string_value(json_object_get(e, "device")));
        const char *key;
        json_t *val;
        json_object_foreach(json_object_get(e, "stats"), key, val)
        {
            if (json_is_integer(val) && strncmp(key, "x-", 2))
                fprintf(f, " %s=%lld", key, (long long)json_integer_value(val));
        }
        fputc('\n', f);
    }
    json_decref(arr);
    fclose(f);
    return buf;
}

/* query-migrate's status and figures, in QEMU's words and units. */
static char *info_migrate(Vmm *v, int argc, char **argv, QmpError *err)
{
    json_t *q = vmm_qmp_call(v, "query-migrate", err);
    if (!q)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        json_decref(q);
        return NULL;
    }
    const char *status = json_string_value(json_object_get(q, "status"));
    fprintf(f, "Migration status: %s\n", status ? status : "none");
    static const struct {
        const char *key, *label, *unit;
    } top[] = {
        { "total-time", "total time", "ms" },
        { "expected-downtime", "expected downtime", "ms" },
        { "downtime", "downtime", "ms" },
        { "setup-time", "setup", "ms" },
    },
      ram[] = {
          { "transferred", "transferred ram", "kbytes" },
          { "remaining", "remaining ram", "kbytes" },
          { "total", "total ram", "kbytes" },
          { "duplicate", "duplicate", "pages" },
          { "normal", "normal", "pages" },
          { "normal-bytes", "normal bytes", "kbytes" },
          { "dirty-sync-count", "dirty sync count", "" },
          { "page-size", "page size", "kbytes" },
          { "dirty-pages-rate", "dirty pages rate", "pages" },
      };
    for (size_t k = 0; k < sizeof(top) / sizeof(top[0]); k++) {
        json_t *x = json_object_get(q, top[k].key);
        if (json_is_integer(x))
            fprintf(f, "%s: %lld %s\n", top[k].label, (long long)json_integer_value(x),
                    top[k].unit);
    }
    json_t *r = json_object_get(q, "ram");
    if (json_is_real(json_object_get(r, "mbps")))
        fprintf(f, "throughput: %0.2f mbps\n", json_real_value(json_object_get(r, "mbps")));
    for (size_t k = 0; k < sizeof(ram) / sizeof(ram[0]); k++) {
        json_t *x = json_object_get(r, ram[k].key);
        if (!json_is_integer(x))
            continue;
        long long n = (long long)json_integer_value(x);
        bool kb = !strcmp(ram[k].unit, "kbytes");
        fprintf(f, "%s: %lld%s%s\n", ram[k].label, kb ? n >> 10 : n, *ram[k].unit ? " " : "",
                ram[k].unit);
    }
    const char *why = json_string_value(json_object_get(q, "error-desc"));
    if (why)
        fprintf(f, "error description: %s\n", why);
    json_decref(q);
    fclose(f);
    return buf;
}

typedef struct HmpInfo {
    const char *name, *params, *help;
    char *(*fn)(Vmm *v, int argc, char **argv, QmpError *err);
    bool takes_args; /* else more than `info NAME` is an error */
} HmpInfo;

/* `info` items: dispatch and the listing bare `info` prints come from here. */
static const HmpInfo infos[] = {
    { "balloon", "", "show balloon information", info_balloon, false },
    { "block", "", "show the block devices", info_block, false },
    { "blockstats", "", "show block device statistics", info_blockstats, false },
    { "cpus", "", "show infos for each CPU", info_cpus, false },
    { "kvm", "", "show KVM information (and strata's slot table)", info_kvm, false },
    { "migrate", "", "show migration status", info_migrate, false },
    { "mtree", "[-f][-D]", "show memory tree (-f: dump flat view, -D: disabled regions)",
      info_mtree, true },
    { "registers", "", "show every vCPU's registers and the code at its RIP", info_registers,
      false },
    { "status", "", "show the current VM status (running|paused)", info_status, false },
    { "version", "", "show the version of strata", info_version, false },
    { "virtio", "", "show the virtio devices, their features and queue counters", info_virtio,
      false },
};

static char *info_list(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    for (size_t i = 0; i < sizeof(infos) / sizeof(infos[0]); i++)
        fprintf(f, "info %s %s -- %s\n", infos[i].name, infos[i].params, infos[i].help);
    fclose(f);
    return buf;
}

/* xp /[count][format][size] addr */
static char *cmd_xp(Vmm *v, int argc, char **argv, QmpError *err)
{
    unsigned long count = 1;
    char fmt = 'x', size = 'w';
    const char *addr_s;
    if (argc == 3 && argv[1][0] == '/') {
        const char *p = argv[1] + 1;
        if (isdigit((unsigned char)*p))
            count = strtoul(p, (char **)&p, 10);
        for (; *p; p++) {
            if (strchr("xdu", *p))
                fmt = *p;
            else if (strchr("bhwg", *p))
                size = *p;
            else {
                qmp_error_set(err, "xp: invalid format '%s'", argv[1]);
                return NULL;
            }
        }
        addr_s = argv[2];
    } else if (argc == 2) {
        addr_s = argv[1];
    } else {
        qmp_error_set(err, "xp: usage: xp /fmt addr");
        return NULL;
    }
    unsigned width = size == 'b' ? 1 : size == 'h' ? 2 : size == 'w' ? 4 : 8;
    if (count == 0 || count > XP_MAX_BYTES / width) { /* count * width may wrap */
        qmp_error_set(err, "xp: count must be 1..%u units", XP_MAX_BYTES / width);
        return NULL;
    }
    errno = 0;
    char *end;
    unsigned long long addr = strtoull(addr_s, &end, 0);
    if (errno || *end || !*addr_s) {
        qmp_error_set(err, "xp: invalid address '%s'", addr_s);
        return NULL;
    }
    uint8_t data[XP_MAX_BYTES];
    if (address_space_read(v->m.memory_as, addr, data, count * width) != MEMTX_OK) {
        qmp_error_set(err, "xp: cannot read %lu bytes at 0x%llx", count * width, addr);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    unsigned per_line = width <= 2 ? 8 : 16 / width;
    for (unsigned long i = 0; i < count; i++) {
        if (i % per_line == 0)
            fprintf(f, "%s%016llx:", i ? "\n" : "", addr + i * width);
        uint64_t val = 0;
        for (unsigned b = 0; b < width; b++)
            val |= (uint64_t)data[i * width + b] << (8 * b);
        if (fmt == 'x')
            fprintf(f, " 0x%0*llx", (int)width * 2, (unsigned long long)val);
        else if (fmt == 'u')
            fprintf(f, " %llu", (unsigned long long)val);
        else {
            int64_t sv = width == 8 ? (int64_t)val
                                    : (int64_t)(val << (64 - 8 * width)) >> (64 - 8 * width);
            fprintf(f, " %lld", (long long)sv);
        }
    }
    fputc('\n', f);
    fclose(f);
    return buf;
}

static char *run_line(Vmm *v, const char *line, QmpError *err)
{
    char copy[512];
    char *argv[MAX_ARGS];
    int argc = 0;

    if (strlen(line) >= sizeof(copy)) {
        qmp_error_set(err, "human-monitor-command: command line too long");
        return NULL;
    }
    /* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): length checked above */
    strcpy(copy, line);
    for (char *tok = strtok(copy, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
        if (argc == MAX_ARGS) {
            qmp_error_set(err, "human-monitor-command: too many arguments");
            return NULL;
        }
        argv[argc++] = tok;
    }
    if (argc == 0)
        return strdup("");
    const char *cmd = argv[0];
    if (!strcmp(cmd, "info")) {
        if (argc == 1)
            return info_list(); /* QEMU: bare `info` lists the items */
        for (size_t i = 0; i < sizeof(infos) / sizeof(infos[0]); i++) {
            if (strcmp(argv[1], infos[i].name))
                continue;
            if (argc > 2 && !infos[i].takes_args) {
                qmp_error_set(err, "info %s: too many arguments", argv[1]);
                return NULL;
            }
            return infos[i].fn(v, argc, argv, err);
        }
        return dupf("unknown command: 'info %s'\n", argv[1]); /* QEMU's words, as output */
    }
    if (!strcmp(cmd, "xp"))
        return cmd_xp(v, argc, argv, err);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "?"))
        return strdup(help_text);
    static const char *const plain[] = { "stop", "cont", "c", "system_reset", "system_powerdown",
                                         "quit", "q" };
    size_t k = 0;
    while (k < sizeof(plain) / sizeof(plain[0]) && strcmp(cmd, plain[k]))
        k++;
    if (k == sizeof(plain) / sizeof(plain[0]))
        return dupf("unknown command: '%s'\n", cmd); /* QEMU's words, as output, not an error */
    if (argc > 1) {
        qmp_error_set(err, "%s: too many arguments", cmd);
        return NULL;
    }
    if (!strcmp(cmd, "stop"))
        return vmm_stop(v, err) < 0 ? NULL : strdup("");
    if (!strcmp(cmd, "cont") || !strcmp(cmd, "c"))
        return vmm_cont(v, err) < 0 ? NULL : strdup("");
    if (!strcmp(cmd, "system_reset"))
        return vmm_system_reset(v, err) < 0 ? NULL : strdup("");
    if (!strcmp(cmd, "system_powerdown"))
        return vmm_system_powerdown(v, err) < 0 ? NULL : strdup("");
    vmm_request_quit(v); /* quit, q */
    return strdup("");
}

char *hmp_execute(Vmm *v, const char *line, QmpError *err)
{
    char *out = run_line(v, line, err);
    if (!out)
        return NULL;
    /* QEMU's monitor ends every line with "\r\n" */
    size_t n = 0, len = 0;
    for (const char *p = out; *p; p++, len++)
        n += *p == '\n';
    char *crlf = malloc(len + n + 1);
    if (!crlf) {
        free(out);
        qmp_error_set(err, "human-monitor-command: out of memory");
        return NULL;
    }
    char *q = crlf;
    for (const char *p = out; *p; p++) {
        if (*p == '\n' && (p == out || p[-1] != '\r'))
            *q++ = '\r';
        *q++ = *p;
    }
    *q = '\0';
    free(out);
    return crlf;
}
