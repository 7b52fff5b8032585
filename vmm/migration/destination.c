/* SPDX-License-Identifier: MIT */
/*
 * The destination side (`strata run ... --incoming URI`): one connection,
 * every record checked before it is used, the guest started only once
 * the whole stream has arrived, matched this machine and was confirmed
 * by the source (see migration.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm/state.h"
#include "memory/state-stream.h"
#include "vmm/migration/cpu.h"
#include "vmm/migration/internal.h"
#include "vmm/migration/snapfile.h"
#include "vmm/log.h"
#include "vmm/text.h"

typedef struct Dst {
    Machine *m;
    MigChannel ch;
    MigBlock blocks[4];
    unsigned nblocks;
    MigDevice devs[MIG_MAX_DEVICES];
    unsigned ndevs;
    bool dev_seen[MIG_MAX_DEVICES];
    bool have_config, have_vmstate;
    KvmVmState *vmstate;
    KvmVcpuState **cpus; /* [ncpus], NULL until received */
    uint64_t normal_pages, zero_pages, rounds;
    uint64_t *untouched[4]; /* pages still as mmap made them (zero): a ZERO
                                 * entry for one needs no write, nor a read */
    bool running;
    bool check_ram, ram_checked; /* END carried the source's RAM CRC-32 */
    uint32_t ram_crc;
    bool file; /* a snapshot's state records: RAM is mapped, none may come */
    uint32_t host_lost[MIG_HOST_CPU_WORDS]; /* the source CPU's features this one lacks */
    char err[512];
} Dst;

static int dfail(Dst *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int dfail(Dst *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* started above; the analyzer loses track once vmm/log.h is in */
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
    vsnprintf(d->err, sizeof(d->err), fmt, ap);
    va_end(ap);
    return -1;
}

static int load_ram(Dst *d, uint32_t block, const uint8_t *p, uint32_t len)
{
    if (block >= d->nblocks)
        return dfail(d, "RAM record for block %u: this machine has %u", block, d->nblocks);
    MigBlock *b = &d->blocks[block];
    uint32_t pos = 0;
    while (pos < len) {
        if (len - pos < 8)
            return dfail(d, "RAM record: a truncated page entry");
        uint64_t e = mig_get_le64(p + pos);
        pos += 8;
        uint64_t off = e & ~MIG_PAGE_KIND_MASK, kind = e & MIG_PAGE_KIND_MASK;
        if (off >= b->size || b->size - off < MIG_PAGE_SIZE)
            return dfail(d, "RAM record: page at 0x%llx outside %s (0x%llx bytes)",
                         (unsigned long long)off, b->name, (unsigned long long)b->size);
        uint8_t *dst = b->host + off;
        uint64_t pg = off / MIG_PAGE_SIZE, *u = d->untouched[block];
        bool fresh = u && (u[pg / 64] >> (pg % 64) & 1);
        if (kind == MIG_PAGE_ZERO) {
            if (!fresh && !mig_page_is_zero(dst))
                memset(dst, 0, MIG_PAGE_SIZE);
            d->zero_pages++;
        } else if (kind == MIG_PAGE_NORMAL) {
            if (len - pos < MIG_PAGE_SIZE)
                return dfail(d, "RAM record: page at 0x%llx truncated", (unsigned long long)off);
            if (fresh)
                u[pg / 64] &= ~(1ull << (pg % 64));
            memcpy(dst, p + pos, MIG_PAGE_SIZE);
            pos += MIG_PAGE_SIZE;
            d->normal_pages++;
        } else {
            return dfail(d, "RAM record: page at 0x%llx has unknown kind %llu",
                         (unsigned long long)off, (unsigned long long)kind);
        }
    }
    return 0;
}

static int load_device(Dst *d, uint32_t id, const uint8_t *p, uint32_t len)
{
    if (id >= d->ndevs)
        return dfail(d, "DEVICE record %u: this machine has %u devices", id, d->ndevs);
    if (d->dev_seen[id])
        return dfail(d, "DEVICE record %u (%s) sent twice", id, d->devs[id].name);
    if (len < 2)
        return dfail(d, "DEVICE record %u: truncated", id);
    uint32_t nl = (uint32_t)p[0] | (uint32_t)p[1] << 8;
    if (nl > len - 2)
        return dfail(d, "DEVICE record %u: name longer than the record", id);
    if (nl != strlen(d->devs[id].name) || memcmp(p + 2, d->devs[id].name, nl))
        return dfail(d, "DEVICE record %u is '%.*s', this machine's device %u is %s", id,
                     (int)(nl > 60 ? 60 : nl), (const char *)(p + 2), id, d->devs[id].name);
    char e[300];
    e[0] = 0;
    if (d->devs[id].load(d->m, d->devs[id].idx, p + 2 + nl, len - 2 - nl, e, sizeof(e)) < 0)
        return dfail(d, "device %s: %s", d->devs[id].name, e[0] ? e : "state refused");
    d->dev_seen[id] = true;
    return 0;
}

static int load_vcpu(Dst *d, uint32_t id, const uint8_t *p, uint32_t len)
{
    Machine *m = d->m;
    if (id >= m->ncpus)
        return dfail(d, "VCPU record %u: this machine has %u vCPUs", id, m->ncpus);
    if (d->cpus[id])
        return dfail(d, "VCPU record %u sent twice", id);
    KvmVcpuState *st = calloc(1, sizeof(*st));
    if (!st)
        return dfail(d, "out of memory");
    StateReader r;
    unsigned index = 0;
    char e[300] = "";
    state_reader_init(&r, p, len);
    if (mig_get_vcpu_state(&r, &index, st, e, sizeof(e)) < 0 || index != id) {
        free(st);
        return dfail(d, "VCPU record %u: %s", id, e[0] ? e : "index does not match");
    }
    if (!state_reader_done(&r)) {
        free(st);
        return dfail(d, "VCPU record %u: %zu bytes after the section", id, r.len - r.pos);
    }
    d->cpus[id] = st;
    return 0;
}

static int load_vmstate(Dst *d, const uint8_t *p, uint32_t len)
{
    if (d->have_vmstate)
        return dfail(d, "VMSTATE record sent twice");
    StateReader r;
    char e[300] = "";
    state_reader_init(&r, p, len);
    if (mig_get_vm_state(&r, d->vmstate, e, sizeof(e)) < 0)
        return dfail(d, "VMSTATE record: %s", e);
    if (!state_reader_done(&r))
        return dfail(d, "VMSTATE record: %zu bytes after the section", r.len - r.pos);
    d->have_vmstate = true;
    return 0;
}

static int check_end(Dst *d, const uint8_t *p, uint32_t len)
{
    Machine *m = d->m;
    if (len < 32)
        return dfail(d, "END record: truncated");
    if (len != 32 && len != 40)
        return dfail(d, "END record: %u bytes, expected 32 or 40", len);
    if (len == 40) {
        uint64_t word = mig_get_le64(p + 32);
        if (word >> 32 != 1)
            return dfail(d,
                         "END record: RAM check word 0x%llx unknown (expected 1 << 32 | "
                         "CRC-32)",
                         (unsigned long long)word);
        d->ram_crc = (uint32_t)word;
        d->check_ram = true;
    }
    uint64_t normal = mig_get_le64(p), zero = mig_get_le64(p + 8), ncpus = mig_get_le64(p + 16);
    uint64_t running = mig_get_le64(p + 24);
    if (running > 1)
        return dfail(d, "END record: run state %llu, expected 1 (running) or 0 (paused)",
                     (unsigned long long)running);
    if (normal != d->normal_pages || zero != d->zero_pages)
        return dfail(d, "END record: the source sent %llu+%llu pages, %llu+%llu arrived",
                     (unsigned long long)normal, (unsigned long long)zero,
                     (unsigned long long)d->normal_pages, (unsigned long long)d->zero_pages);
    if (ncpus != m->ncpus)
        return dfail(d, "END record: %llu vCPUs, this machine has %u", (unsigned long long)ncpus,
                     m->ncpus);
    if (!d->have_vmstate)
        return dfail(d, "the stream ended without the VM state");
    for (unsigned i = 0; i < m->ncpus; i++)
        if (!d->cpus[i])
            return dfail(d, "the stream ended without vCPU %u's state", i);
    for (unsigned i = 0; i < d->ndevs; i++)
        if (!d->dev_seen[i])
            return dfail(d, "the stream ended without device %s's state", d->devs[i].name);
    d->running = running == 1;
    if (d->check_ram) {
        uint32_t crc = 0;
        for (unsigned b = 0; b < d->nblocks; b++)
            crc = state_crc32_update(crc, d->blocks[b].host, d->blocks[b].size);
        if (crc != d->ram_crc)
            return dfail(d,
                         "RAM differs from the source's at its final pause (CRC-32 0x%08x "
                         "here, 0x%08x there)",
                         crc, d->ram_crc);
        d->ram_checked = true;
    }
    return 0;
}

/* Reads the whole stream; 0 once END arrived and every check passed. */
static int receive(Dst *d)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    int ret = -1;
    if (mig_recv_header(&d->ch) < 0) {
        dfail(d, "%s", d->ch.err);
        goto out;
    }
    for (;;) {
        uint32_t type, id, len;
        if (mig_recv_record(&d->ch, &type, &id, &buf, &cap, &len) < 0) {
            dfail(d, "%s", d->ch.err);
            goto out;
        }
        if (!d->have_config && type != MIG_REC_CONFIG) {
            dfail(d, "the stream starts with a %s record, not CONFIG", mig_record_name(type));
            goto out;
        }
        int r = 0;
        if ((type == MIG_REC_CONFIG || type == MIG_REC_VMSTATE || type == MIG_REC_END) && id) {
            dfail(d, "%s record with id %u, expected 0", mig_record_name(type), id);
            goto out;
        }
        if (type == MIG_REC_ROUND && id != d->rounds) {
            dfail(d, "ROUND record %u, expected round %llu", id, (unsigned long long)d->rounds);
            goto out;
        }
        switch (type) {
        case MIG_REC_CONFIG:
            if (d->have_config) {
                r = dfail(d, "a second CONFIG record");
                break;
            }
            r = mig_config_check(d->m, (const char *)buf, len, d->host_lost, d->err,
                                 sizeof(d->err));
            d->have_config = true;
            break;
        case MIG_REC_RAM:
            r = d->file ? dfail(d, "a RAM record among a snapshot's state records")
                        : load_ram(d, id, buf, len);
            break;
        case MIG_REC_ROUND:
            if (d->file) {
                r = dfail(d, "a ROUND record among a snapshot's state records");
                break;
            }
            if (len)
                r = dfail(d, "ROUND record %u: %u bytes of payload, expected none", id, len);
            d->rounds++;
            break;
        case MIG_REC_VMSTATE:
            r = load_vmstate(d, buf, len);
            break;
        case MIG_REC_VCPU:
            r = load_vcpu(d, id, buf, len);
            break;
        case MIG_REC_DEVICE:
            r = load_device(d, id, buf, len);
            break;
        case MIG_REC_END:
            r = check_end(d, buf, len);
            if (r == 0) {
                ret = 0;
                goto out;
            }
            break;
        }
        if (r < 0)
            goto out;
    }
out:
    free(buf);
    return ret;
}

/* Puts the received CPU and VM state into KVM. */
static int install(Dst *d)
{
    Machine *m = d->m;
    /* The guest keeps its CPUID (VCPU version 2) where this host's CPU has
     * what it was given; an older stream's vCPUs get this host's (a
     * restore's vCPUs were made without: machine_set_pending_cpuid). */
    for (unsigned i = 0; i < m->ncpus; i++) {
        if (mig_host_cpu_check(d->host_lost, d->cpus[i], i, d->err, sizeof(d->err)) < 0)
            return -1;
        if (d->cpus[i]->flags & KVM_VCPU_STATE_CPUID)
            machine_cpuid_loaded(m, i); /* by kvm_vcpu_set_state, below */
    }
    if (machine_set_pending_cpuid(m) < 0)
        return dfail(d, "giving the vCPUs this host's CPUID failed");
    if (kvm_vm_set_state(m->vm, d->vmstate) < 0)
        return dfail(d, "loading the VM state into KVM: %s", kvm_vm_last_error(m->vm));
    for (unsigned i = 0; i < m->ncpus; i++)
        if (kvm_vcpu_set_state(m->vcpus[i], d->cpus[i]) < 0)
            return dfail(d, "loading vCPU %u's state into KVM failed", i);
    return 0;
}

int mig_load_fd(Machine *m, int fd, int abort_fd, int pagemap_fd, bool *start_paused)
{
    uint64_t t0 = mig_now_ns();
    Dst *d = calloc(1, sizeof(*d));
    int ret = -1;
    if (!d || !(d->vmstate = calloc(1, sizeof(*d->vmstate))) ||
        !(d->cpus = calloc(m->ncpus ? m->ncpus : 1, sizeof(*d->cpus)))) {
        log_msg(LOG_ERROR, "incoming migration: out of memory");
        goto out;
    }
    d->m = m;
    mig_channel_init(&d->ch, fd);
    d->ch.extra_fd = abort_fd;
    d->nblocks = mig_blocks(m, d->blocks, 4);
    d->ndevs = mig_devices(m, d->devs, MIG_MAX_DEVICES);
    for (unsigned b = 0; b < d->nblocks; b++)
        d->untouched[b] = mig_untouched_pages(pagemap_fd, d->blocks[b].host, d->blocks[b].pages);
    if (receive(d) < 0 || install(d) < 0) {
        uint64_t got = d->ch.bytes; /* what arrived: the answer counts in ch.bytes */
        /* one printable line: names and strings quoted from the stream
         * may hold newlines, escape sequences, bytes >= 0x80 */
        char safe[sizeof(d->err)];
        text_escape(safe, sizeof(safe), d->err, strlen(d->err));
        memcpy(d->err, safe, sizeof(safe));
        /* Tell the source why (best effort): it keeps its guest. */
        size_t n = strlen(d->err);
        if (mig_send_u32(&d->ch, MIG_REPLY_ERROR) == 0 && mig_send_u32(&d->ch, (uint32_t)n) == 0)
            mig_send_bytes(&d->ch, d->err, n);
        log_msg(LOG_ERROR,
                "incoming migration failed after %llu bytes: %s; the guest "
                "is not started",
                (unsigned long long)got, d->err);
        goto out;
    }
    /* READY, then GO within MIG_GO_TIMEOUT_MS, answered with ACK! (this
     * side runs the guest) or ERR! (it will not: the source resumes it).
     * A signal meanwhile is an ERR!, never a silent exit: the source must
     * hear which side has the guest. */
    uint32_t go = 0;
    if (mig_send_u32(&d->ch, MIG_REPLY_READY) < 0) {
        log_msg(LOG_ERROR,
                "incoming migration: sending READY: %s; the guest is not "
                "started",
                d->ch.err);
        goto out;
    }
    d->ch.timeout_ms = MIG_GO_TIMEOUT_MS;
    int got = mig_recv_u32(&d->ch, &go);
    if (got == 0 && go == MIG_REPLY_GO && abort_fd >= 0) {
        /* GO may have been read straight from the socket buffer while a
         * signal was already pending: the signal came first, refuse */
        struct pollfd pf = { .fd = abort_fd, .events = POLLIN };
        if (poll(&pf, 1, 0) > 0 && (pf.revents & POLLIN)) {
            snprintf(d->ch.err, sizeof(d->ch.err), "interrupted by a signal as GO arrived");
            got = -1;
        }
    }
    if (got < 0 || go != MIG_REPLY_GO) {
        char why[300];
        if (got < 0 && d->ch.err[0])
            snprintf(why, sizeof(why), "no GO from the source (%s)", d->ch.err);
        else
            snprintf(why, sizeof(why), "the source answered READY with 0x%08x, not GO", go);
        size_t n = strlen(why);
        if (mig_send_u32(&d->ch, MIG_REPLY_ERROR) == 0 && mig_send_u32(&d->ch, (uint32_t)n) == 0)
            mig_send_bytes(&d->ch, why, n);
        log_msg(LOG_ERROR,
                "incoming migration: the source did not confirm the handover: "
                "%s; the guest is not started (the source keeps it)",
                why);
        goto out;
    }
    /* GO: the guest is this side's now, whether or not ACK! arrives (the
     * source then holds its copy paused until told otherwise). */
    if (mig_send_u32(&d->ch, MIG_REPLY_ACK) < 0)
        log_msg(LOG_WARN,
                "incoming migration: GO arrived, but ACK could not be sent "
                "(%s): the source holds its paused copy; this side runs the guest",
                d->ch.err);
    *start_paused = !d->running;
    log_report("incoming migration loaded in %.1f ms: %llu bytes, %llu pages "
               "(%llu zero), %llu rounds",
               (double)(mig_now_ns() - t0) / 1e6, (unsigned long long)d->ch.bytes,
               /* NOLINTNEXTLINE(bugprone-misplaced-widening-cast): same width, for %llu */
               (unsigned long long)(d->normal_pages + d->zero_pages),
               (unsigned long long)d->zero_pages, (unsigned long long)d->rounds);
    if (d->ram_checked)
        log_report("incoming migration: RAM verified against the source's "
                   "(CRC-32 0x%08x)",
                   d->ram_crc);
    ret = 0;
out:
    if (d) {
        if (d->cpus)
            for (unsigned i = 0; i < m->ncpus; i++)
                free(d->cpus[i]);
        free(d->cpus);
        free(d->vmstate);
        for (unsigned b = 0; b < 4; b++)
            free(d->untouched[b]);
        free(d);
    }
    return ret;
}

/* ---- restoring a snapshot (docs/snapshot.md) ------------------------------ */

/* The header of the snapshot fd, checked against the RAM blocks b[0..nb)
 * (and the file's size) into *h; then the fd is at the state records.  0,
 * or -1 with why in err. */
static int snap_check(int fd, const MigBlock *b, unsigned nb, SnapHeader *h, char *err,
                      size_t errlen)
{
    struct stat st;
    uint8_t hdr[SNAP_HEADER_LEN];
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "fstat: %s", strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        return -1;
    }
    ssize_t n = pread(fd, hdr, sizeof(hdr), 0);
    if (n < 0) {
        snprintf(err, errlen, "reading the header: %s", strerror(errno));
        return -1;
    }
    if (snap_header_decode(h, hdr, (size_t)n, (uint64_t)st.st_size, err, errlen) < 0)
        return -1;
    if (h->nblocks != nb) {
        snprintf(err, errlen, "another machine's snapshot: %u RAM blocks, this machine has %u",
                 h->nblocks, nb);
        return -1;
    }
    for (unsigned i = 0; i < nb; i++) {
        if (strcmp(h->blocks[i].name, b[i].name) || h->blocks[i].size != b[i].size) {
            snprintf(err, errlen,
                     "another machine's snapshot: RAM block %u is %s of %llu MiB there, "
                     "%s of %llu MiB here (--memory differs?)",
                     i, h->blocks[i].name, (unsigned long long)(h->blocks[i].size >> 20), b[i].name,
                     (unsigned long long)(b[i].size >> 20));
            return -1;
        }
    }
    if (lseek(fd, (off_t)h->state_off, SEEK_SET) < 0) {
        snprintf(err, errlen, "lseek: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Maps each block of the checked header h from fd copy-on-write over the
 * machine's: restore reads no RAM it does not need (prefault: all of it,
 * now).  0, or -1 with why in err. */
static int snap_map(int fd, const MigBlock *b, unsigned nb, const SnapHeader *h, bool prefault,
                    char *err, size_t errlen)
{
    for (unsigned i = 0; i < nb; i++) {
        void *p = mmap(b[i].host, b[i].size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_FIXED | (prefault ? MAP_POPULATE : 0), fd,
                       (off_t)h->blocks[i].offset);
        if (p == MAP_FAILED) {
            snprintf(err, errlen, "mapping RAM block %s: %s", b[i].name, strerror(errno));
            return -1;
        }
    }
    return 0;
}

bool mig_snapshot_premap(Machine *m, const char *path, bool prefault, MigPremap *out)
{
    uint64_t t0 = mig_now_ns();
    MigBlock b[4];
    SnapHeader h;
    char err[300];
    unsigned nb = mig_blocks(m, b, 4);
    out->fd = -1;
    out->nblocks = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    if (nb == 0 || snap_check(fd, b, nb, &h, err, sizeof(err)) < 0 ||
        snap_map(fd, b, nb, &h, prefault, err, sizeof(err)) < 0) {
        close(fd); /* the restore opens it again and says what is wrong */
        return false;
    }
    out->fd = fd;
    out->nblocks = nb;
    for (unsigned i = 0; i < nb; i++)
        out->offset[i] = h.blocks[i].offset;
    out->ns = mig_now_ns() - t0;
    return true;
}

/* The header checked, and the RAM mapped unless premap did already (its
 * offsets must be the header's still). */
static int map_snapshot(Dst *d, int fd, bool prefault, const MigPremap *premap, SnapHeader *h)
{
    if (snap_check(fd, d->blocks, d->nblocks, h, d->err, sizeof(d->err)) < 0)
        return -1;
    if (!premap)
        return snap_map(fd, d->blocks, d->nblocks, h, prefault, d->err, sizeof(d->err));
    if (premap->nblocks != d->nblocks)
        return dfail(d, "the snapshot changed while it was restored (%u RAM blocks mapped, %u now)",
                     premap->nblocks, d->nblocks);
    for (unsigned b = 0; b < d->nblocks; b++)
        if (premap->offset[b] != h->blocks[b].offset)
            return dfail(d, "the snapshot changed while it was restored (RAM block %s moved)",
                         d->blocks[b].name);
    return 0;
}

int mig_restore_fd(Machine *m, int fd, bool prefault, const MigPremap *premap, bool *start_paused)
{
    uint64_t t0 = mig_now_ns() - (premap ? premap->ns : 0);
    Dst *d = calloc(1, sizeof(*d));
    int ret = -1;
    SnapHeader h = { 0 };
    if (!d || !(d->vmstate = calloc(1, sizeof(*d->vmstate))) ||
        !(d->cpus = calloc(m->ncpus ? m->ncpus : 1, sizeof(*d->cpus)))) {
        log_msg(LOG_ERROR, "restore: out of memory");
        goto out;
    }
    d->m = m;
    d->file = true;
    d->nblocks = mig_blocks(m, d->blocks, 4);
    d->ndevs = mig_devices(m, d->devs, MIG_MAX_DEVICES);
    mig_channel_init_file(&d->ch, fd);
    if (map_snapshot(d, fd, prefault, premap, &h) < 0 || receive(d) < 0 || install(d) < 0) {
        char safe[sizeof(d->err)];
        text_escape(safe, sizeof(safe), d->err, strlen(d->err));
        log_msg(LOG_ERROR, "restore: %s; the guest is not started", safe);
        goto out;
    }
    if (d->ch.bytes != h.state_len) {
        log_msg(LOG_ERROR,
                "restore: the state records end after %llu bytes, the header says "
                "%llu; the guest is not started",
                (unsigned long long)d->ch.bytes, (unsigned long long)h.state_len);
        goto out;
    }
    *start_paused = !d->running;
    log_report("restored in %.1f ms: %llu MiB of RAM mapped%s, %llu bytes of state",
               (double)(mig_now_ns() - t0) / 1e6, (unsigned long long)(d->blocks[0].size >> 20),
               prefault ? " and read in" : "", (unsigned long long)d->ch.bytes);
    if (d->ram_checked)
        log_report("restore: RAM verified against the saved VM's (CRC-32 0x%08x)", d->ram_crc);
    ret = 0;
out:
    if (d) {
        if (d->cpus)
            for (unsigned i = 0; i < m->ncpus; i++)
                free(d->cpus[i]);
        free(d->cpus);
        free(d->vmstate);
        free(d);
    }
    return ret;
}
