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
#include "vmm/runstate.h"
#include "vmm/vmm.h"

#define MAX_ARGS 8
#define XP_MAX_BYTES 4096

static const char help_text[] =
    "cont|c -- resume emulation\n"
    "help|? -- show this text\n"
    "info balloon -- show balloon information\n"
    "info cpus -- show infos for each CPU\n"
    "info kvm -- show KVM information (and strata's slot table)\n"
    "info mtree [-f] [-D] -- show memory tree (-f: dump flat view, -D: disabled regions)\n"
    "info registers -- show every vCPU's registers and the code at its RIP\n"
    "info status -- show the current VM status (running|paused)\n"
    "info virtio -- show the virtio devices, their features and queue counters\n"
    "quit|q -- quit the emulator\n"
    "stop -- stop emulation\n"
    "system_powerdown -- send system power down event\n"
    "system_reset -- reset the system\n"
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

static char *info_kvm(Vmm *v)
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
    fclose(f);
    return buf;
}

/* Each virtio device: features offered and taken, and per queue the
 * notification counters (kicks received, interrupts raised, interrupts the
 * driver's flags or used_event spared). */
static char *info_virtio(Vmm *v)
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

static char *info_cpus(Vmm *v)
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
static char *info_registers(Vmm *v, QmpError *err)
{
    if (!v->m.vm || v->state == RUN_STATE_SHUTDOWN || v->state == RUN_STATE_POSTMIGRATE) {
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
static char *info_balloon(Vmm *v, QmpError *err)
{
    json_t *r = vmm_query_balloon(v, err);
    if (!r)
        return NULL;
    char *s = dupf("balloon: actual=%lld\n",
                   (long long)(json_integer_value(json_object_get(r, "actual")) >> 20));
    json_decref(r);
    return s;
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

char *hmp_execute(Vmm *v, const char *line, QmpError *err)
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
        const char *what = argc > 1 ? argv[1] : "";
        if (!strcmp(what, "mtree"))
            return info_mtree(v, argc, argv, err);
        if (argc > 2) {
            qmp_error_set(err, "info %s: too many arguments", what);
            return NULL;
        }
        if (!strcmp(what, "status"))
            return dupf("VM status: %s\n", vmm_state_name(v));
        if (!strcmp(what, "kvm"))
            return info_kvm(v);
        if (!strcmp(what, "cpus"))
            return info_cpus(v);
        if (!strcmp(what, "registers"))
            return info_registers(v, err);
        if (!strcmp(what, "virtio"))
            return info_virtio(v);
        if (!strcmp(what, "balloon"))
            return info_balloon(v, err);
        qmp_error_set(err,
                      "info: unknown item '%s' (try: mtree, status, kvm, cpus, registers, "
                      "virtio, balloon)",
                      what);
        return NULL;
    }
    if (!strcmp(cmd, "xp"))
        return cmd_xp(v, argc, argv, err);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "?"))
        return strdup(help_text);
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
    if (!strcmp(cmd, "quit") || !strcmp(cmd, "q")) {
        vmm_request_quit(v);
        return strdup("");
    }
    qmp_error_set(err, "unknown command: '%s'", cmd);
    return NULL;
}
