/* SPDX-License-Identifier: MIT */
/*
 * Snapshots (docs/snapshot.md), on the host's KVM with the dirtying tiny
 * guest, whose own page checks catch a page lost or stale after a restore
 * (it exits 1 then):
 *   - a stop-and-save stays paused, `cont` goes on; its restore starts
 *     paused at the saved pass, RAM verified against the saved VM's;
 *   - a live save keeps the VM running; its restore runs at once;
 *   - 5 clones restored from one file all run at once, each on its own;
 *   - bad files: empty, unfinished (no header), truncated in RAM and in
 *     the state, a flipped header bit, a flipped state bit, another format
 *     version, another machine's RAM size, another machine's CPU count,
 *     another disk size or no disk, a migration stream: each exits 5 with
 *     one line saying why, and the guest never runs; a file cut short
 *     under a restored VM: SIGBUS when strata reads the lost RAM, one
 *     line, exit 4;
 *   - a snapshot whose vCPU states carry no CPUID (VCPU version 1, as
 *     saved before it was added) restores with this host's; one made on
 *     the other vendor's CPU is refused;
 *   - incremental saves write only what changed and restore verified;
 *     QMP may read the base's dirty log but not reset or stop it;
 *   - system_reset of a restored VM zeroes its RAM (not the file's pages).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm/state.h"
#include "memory/state-stream.h"
#include "mig_harness.h"
#include "vmm/migration/cpu.h"
#include "vmm/migration/stream.h"

/* Saves src to path (QMP migrate file:PATH); the final query-migrate. */
static json_t *save(Vm *src, const char *path)
{
    char args[300];
    snprintf(args, sizeof(args), "{\"uri\": \"file:%s\"}", path);
    json_decref(cmd_ok(src, "migrate", args));
    json_t *q = wait_migration(src, 60000);
    CHECK(!strcmp(status_of(q), "completed"), "save to %s: %s", path, json_dumps(q, 0));
    CHECK(json_is_integer(json_object_get(q, "downtime")), "save: downtime reported");
    drain_migration(src, "completed");
    return q;
}

static const char *run_state(Vm *vm)
{
    static char s[32];
    json_t *r = cmd_ok(vm, "query-status", NULL);
    snprintf(s, sizeof(s), "%s", json_string_value(json_object_get(r, "status")));
    json_decref(r);
    return s;
}

/* A strata restored from path (--incoming file:PATH) with cpus/memory. */
static void restore_elf(Vm *vm, const char *name, const char *elf, const char *path,
                        const char *memory)
{
    char uri[300];
    snprintf(uri, sizeof(uri), "file:%s", path);
    start_vm(vm, name, elf, memory, uri);
}

static void restore(Vm *vm, const char *name, const char *path, const char *memory)
{
    restore_elf(vm, name, guest_elf, path, memory);
}

static void quit(Vm *vm)
{
    json_decref(cmd_ok(vm, "quit", NULL));
    CHECK(vm_wait(vm, 10000) == 0, "%s: quit", vm->sock);
    qc_close(vm->c);
    vm->c = NULL;
}

/* The pages a save looked at: written (normal) or found zero (duplicate). */
static long long pages_seen(json_t *q)
{
    json_t *ram = json_object_get(q, "ram");
    return json_integer_value(json_object_get(ram, "normal")) +
           json_integer_value(json_object_get(ram, "duplicate"));
}

/* Incremental snapshots of the idle guest (a counter): the second save to
 * the same file writes only the pages that changed, and restores with all
 * of RAM verified against the saved VM's. */
static void test_incremental(void)
{
    Vm src, r;
    char path[200];
    snprintf(path, sizeof(path), "%s/incremental.snap", tmpdir);
    start_vm(&src, "snap-inc-src", idle_elf, "256M", NULL);
    vm_connect(&src);
    json_decref(cmd_ok(&src, "migrate-set-parameters",
                       "{\"x-verify-ram\": true, \"x-incremental-snapshot\": true}"));
    msleep(200);
    /* a full save looks at every page of the 256 MiB (a live one: some twice) */
    json_t *q = save(&src, path);
    long long full = pages_seen(q);
    json_decref(q);
    CHECK(full >= 65536, "the full save looked at %lld pages, not all 65536", full);
    /* paused, nothing changes: after one save (what it ran meanwhile),
     * the next one looks at no page at all */
    json_decref(cmd_ok(&src, "stop", NULL));
    json_decref(save(&src, path));
    q = save(&src, path);
    CHECK(pages_seen(q) == 0, "a save of an unchanged (paused) VM looked at %lld pages",
          pages_seen(q));
    json_decref(q);
    json_decref(cmd_ok(&src, "cont", NULL));
    uint64_t c0 = read_u64(&src, counter_addr);
    msleep(300);
    CHECK(read_u64(&src, counter_addr) > c0, "the idle guest does not count");
    /* running: only the pages the counter loop dirtied (a handful) */
    q = save(&src, path);
    long long inc = pages_seen(q);
    json_decref(q);
    CHECK(log_has(&src, "incremental snapshot saved"), "the later saves were not incremental");
    /* the base's log is the next save's: QMP may not clear or stop it */
    cmd_refused(&src, "query-dirty-log", "{\"reset\": true}", "reset refused");
    cmd_refused(&src, "set-dirty-log", "{\"enable\": false}", "holds the migration");
    json_decref(cmd_ok(&src, "query-dirty-log", NULL)); /* reading is fine */
    CHECK(inc > 0 && inc < 65536 / 8, "an incremental save of the idle guest looked at %lld pages",
          inc);
    /* a save elsewhere is a full one again */
    char other[200];
    snprintf(other, sizeof(other), "%s/other.snap", tmpdir);
    q = save(&src, other);
    CHECK(pages_seen(q) >= 65536, "a save to another file looked at %lld pages, not all",
          pages_seen(q));
    json_decref(q);
    uint64_t saved = read_u64(&src, counter_addr);
    quit(&src);
    restore_elf(&r, "snap-inc-r", idle_elf, path, "256M");
    vm_connect(&r);
    CHECK(log_has(&r, "RAM verified against the saved VM's"), "incremental restore: RAM");
    uint64_t c1 = read_u64(&r, counter_addr);
    msleep(200);
    uint64_t c2 = read_u64(&r, counter_addr);
    CHECK(c2 > c1 && c1 < saved, "restored counter %llu then %llu (the source ended at %llu)",
          (unsigned long long)c1, (unsigned long long)c2, (unsigned long long)saved);
    printf("incremental: the full save looked at %lld pages, one of the unchanged paused VM at 0, "
           "one of the running idle guest at %lld; restored and counting\n",
           full, inc);
    quit(&r);
}

/* Writes len bytes at off into the file path. */
static void patch(const char *path, off_t off, const void *bytes, size_t len)
{
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, bytes, len, off) == (ssize_t)len, "patching %s: %s", path,
          strerror(errno));
    close(fd);
}

static uint64_t le64_at(const char *path, off_t off)
{
    uint8_t b[8];
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0 && pread(fd, b, 8, off) == 8, "reading %s: %s", path, strerror(errno));
    close(fd);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A record's new payload (malloc()ed, *len set), or NULL to keep it. */
typedef uint8_t *(*RecordEdit)(uint32_t type, uint32_t id, const uint8_t *p, uint32_t *len);

/* Rewrites the state records of the snapshot at path through edit, as a
 * writer of that content would have framed them (record CRCs, the header's
 * state length and CRC). */
static void rewrite_state(const char *path, RecordEdit edit)
{
    uint64_t off = le64_at(path, 16), len = le64_at(path, 24);
    CHECK(len >= 16 && len < (64u << 20), "state records of %llu bytes", (unsigned long long)len);
    uint8_t *in = malloc(len), *out = malloc(len * 2 + 4096);
    int fd = open(path, O_RDWR);
    CHECK(in && out && fd >= 0 && pread(fd, in, len, (off_t)off) == (ssize_t)len, "reading %s",
          path);
    memcpy(out, in, 16); /* the stream's header */
    size_t pos = 16, o = 16;
    while (pos + 12 <= len) {
        uint32_t type = get_le32(in + pos), id = get_le32(in + pos + 4), n = get_le32(in + pos + 8);
        CHECK(pos + 12 + n + 4 <= len, "a record past the state's end");
        uint32_t nl = n;
        uint8_t *np = edit(type, id, in + pos + 12, &nl);
        const uint8_t *pl = np ? np : in + pos + 12;
        CHECK(o + 16 + nl <= len * 2 + 4096, "the edited records grew too much");
        put_le32(out + o, type);
        put_le32(out + o + 4, id);
        put_le32(out + o + 8, nl);
        memcpy(out + o + 12, pl, nl);
        put_le32(out + o + 12 + nl, state_crc32_update(state_crc32(out + o, 12), pl, nl));
        o += 16 + nl;
        pos += 16 + n;
        free(np);
    }
    CHECK(pwrite(fd, out, o, (off_t)off) == (ssize_t)o && ftruncate(fd, (off_t)(off + o)) == 0,
          "writing %s", path);
    uint8_t hdr[4096];
    CHECK(pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr), "reading the header");
    for (int i = 0; i < 8; i++)
        hdr[24 + i] = (uint8_t)((uint64_t)o >> (8 * i));
    put_le32(hdr + 4092, state_crc32(hdr, 4092));
    CHECK(pwrite(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr), "writing the header");
    close(fd);
    free(in);
    free(out);
}

/* VCPU records as a build before VCPU version 2 wrote them: no CPUID. */
static uint8_t *drop_cpuid(uint32_t type, uint32_t id, const uint8_t *p, uint32_t *len)
{
    if (type != MIG_REC_VCPU)
        return NULL;
    KvmVcpuState *st = calloc(1, sizeof(*st));
    StateReader r;
    unsigned index;
    char err[200] = "";
    state_reader_init(&r, p, *len);
    CHECK(st && mig_get_vcpu_state(&r, &index, st, err, sizeof(err)) == 0, "VCPU %u: %s", id, err);
    CHECK(st->flags & KVM_VCPU_STATE_CPUID, "VCPU %u was saved without its CPUID", id);
    CHECK(p[4] == 2, "VCPU %u: section version %u, expected 2", id, p[4]);
    st->flags &= ~KVM_VCPU_STATE_CPUID;
    StateWriter w;
    uint8_t *out;
    size_t n;
    state_writer_init(&w);
    CHECK(mig_put_vcpu_state(&w, index, st) == 0 && state_writer_finish(&w, &out, &n) == 0,
          "re-encoding VCPU %u", id);
    CHECK(out[4] == 1, "VCPU %u without CPUID: version %u, expected 1", id, out[4]);
    free(st);
    *len = (uint32_t)n;
    return out;
}

/* CONFIG saying the source's CPU came from the other x86 vendor. */
static uint8_t *other_vendor(uint32_t type, uint32_t id, const uint8_t *p, uint32_t *len)
{
    (void)id;
    if (type != MIG_REC_CONFIG)
        return NULL;
    uint8_t *c = malloc(*len + 1);
    CHECK(c != NULL, "out of memory");
    memcpy(c, p, *len);
    c[*len] = 0;
    char *v = strstr((char *)c, "\"vendor\":\"");
    CHECK(v && strlen(v) >= 22, "CONFIG has no host-cpu vendor: %s", (char *)c);
    v += 10;
    memcpy(v, strncmp(v, "GenuineIntel", 12) ? "GenuineIntel" : "AuthenticAMD", 12);
    return c;
}

/* The restore of a bad file must exit 5 saying `want`, guest never run. */
static void refused(const char *name, const char *path, const char *memory, const char *want)
{
    Vm vm;
    restore(&vm, name, path, memory);
    int st = vm_wait(&vm, 30000);
    CHECK(st == 5, "%s: exit %d, expected 5", name, st);
    CHECK(log_has(&vm, "the guest is not started") || log_has(&vm, "strata: restore:"),
          "%s: no restore message", name);
    CHECK(log_has(&vm, want), "%s: the log lacks '%s'", name, want);
    CHECK(!log_has(&vm, "restored in"), "%s: it says it restored", name);
    printf("%s: refused, exit 5, '%s'\n", name, want);
}

int snapshot_suite(void)
{
    char path[200], clone_path[200];
    Vm src, r;
    start_vm(&src, "snap-src", guest_elf, "256M", NULL);
    vm_connect(&src);
    json_decref(cmd_ok(&src, "migrate-set-parameters", "{\"x-verify-ram\": true}"));
    wait_pass(&src, 3, 60000);

    /* 1. stop and save: stays paused; `cont` goes on */
    snprintf(path, sizeof(path), "%s/stopped.snap", tmpdir);
    json_decref(cmd_ok(&src, "stop", NULL));
    uint64_t saved = read_u64(&src, pass_addr);
    json_t *q = save(&src, path);
    printf("stopped save: %lld ms, downtime %lld ms\n",
           json_integer_value(json_object_get(q, "total-time")),
           json_integer_value(json_object_get(q, "downtime")));
    json_decref(q);
    CHECK(!strcmp(run_state(&src), "paused"), "after a stopped save: %s", run_state(&src));
    CHECK(read_u64(&src, pass_addr) == saved, "the paused source ran during its save");
    json_decref(cmd_ok(&src, "cont", NULL));
    wait_pass(&src, saved + 2, 60000);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size / 2,
          "the snapshot is not sparse: %lld of %lld bytes allocated", (long long)st.st_blocks * 512,
          (long long)st.st_size);

    restore(&r, "snap-r1", path, "256M");
    vm_connect(&r);
    CHECK(log_has(&r, "RAM verified against the saved VM's"), "restore: RAM not verified");
    CHECK(!strcmp(run_state(&r), "paused"), "a stopped save restores paused, not %s",
          run_state(&r));
    CHECK(read_u64(&r, pass_addr) == saved, "restored pass %llu, saved %llu",
          (unsigned long long)read_u64(&r, pass_addr), (unsigned long long)saved);
    json_decref(cmd_ok(&r, "cont", NULL));
    uint64_t p = wait_pass(&r, saved + 2, 60000);
    printf("stopped save restored paused at pass %llu; after cont pass %llu (pages verified)\n",
           (unsigned long long)saved, (unsigned long long)p);
    /* system_reset of a restored VM: RAM is zero again, not the file's
     * contents (paused, so the guest cannot rewrite it first) */
    json_decref(cmd_ok(&r, "stop", NULL));
    json_decref(cmd_ok(&r, "system_reset", NULL));
    uint64_t first = read_u64(&r, 16ull << 20), last = read_u64(&r, (48ull << 20) - 8);
    CHECK(first == 0 && last == 0, "after system_reset the region holds %#llx .. %#llx, not 0",
          (unsigned long long)first, (unsigned long long)last);
    json_decref(cmd_ok(&r, "cont", NULL));
    wait_pass(&r, 2, 60000);
    printf("system_reset of the restored VM: its RAM zero again, the guest starts over\n");
    quit(&r);

    /* 2. live save: the VM runs through it; its restore runs at once */
    snprintf(clone_path, sizeof(clone_path), "%s/live.snap", tmpdir);
    uint64_t before = read_u64(&src, pass_addr);
    q = save(&src, clone_path);
    printf("live save: %lld ms, downtime %lld ms, %lld rounds\n",
           json_integer_value(json_object_get(q, "total-time")),
           json_integer_value(json_object_get(q, "downtime")),
           json_integer_value(json_object_get(q, "x-rounds")));
    json_decref(q);
    CHECK(!strcmp(run_state(&src), "running"), "after a live save: %s", run_state(&src));
    wait_pass(&src, before + 2, 60000);

    /* 3. five clones of the live save, all at once */
    Vm clones[5];
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "snap-clone%d", i);
        restore(&clones[i], name, clone_path, "256M");
    }
    for (int i = 0; i < 5; i++) {
        vm_connect(&clones[i]);
        CHECK(!strcmp(run_state(&clones[i]), "running"), "clone %d: %s", i, run_state(&clones[i]));
    }
    uint64_t start = read_u64(&clones[0], pass_addr);
    for (int i = 0; i < 5; i++) {
        uint64_t c = wait_pass(&clones[i], start + 2, 60000);
        printf("clone %d runs: pass %llu\n", i, (unsigned long long)c);
    }
    /* each clone got a VM generation ID of its own (ACPI, 0xf0000) */
    uint64_t gen[6][2] = { { read_u64(&src, 0xf0000), read_u64(&src, 0xf0008) } };
    for (int i = 0; i < 5; i++) {
        gen[i + 1][0] = read_u64(&clones[i], 0xf0000);
        gen[i + 1][1] = read_u64(&clones[i], 0xf0008);
        for (int j = 0; j <= i; j++)
            CHECK(gen[i + 1][0] != gen[j][0] || gen[i + 1][1] != gen[j][1],
                  "clone %d has the VM generation ID of %s %d", i, j ? "clone" : "the source",
                  j - 1);
    }
    printf("the source and the 5 clones have 6 distinct VM generation IDs\n");
    for (int i = 0; i < 5; i++)
        quit(&clones[i]);

    /* 3b. the same file through QMP migrate-incoming (--incoming defer): the
     * machine's RAM has its KVM slots already and is mapped over there,
     * where --incoming file: maps it before KVM sees it (mig_snapshot_premap) */
    start_vm(&r, "snap-deferred", guest_elf, "256M", "defer");
    vm_connect(&r);
    char arg[300];
    snprintf(arg, sizeof(arg), "{\"uri\": \"file:%s\"}", clone_path);
    json_decref(cmd_ok(&r, "migrate-incoming", arg));
    for (int t = 0; strcmp(run_state(&r), "running"); t += 20) {
        CHECK(t < 30000, "migrate-incoming of a snapshot: %s after 30 s", run_state(&r));
        msleep(20);
    }
    CHECK(log_has(&r, "RAM verified against the saved VM's"), "deferred restore: RAM not verified");
    uint64_t dp = wait_pass(&r, start + 2, 60000);
    printf("migrate-incoming file: restored and runs: pass %llu (pages verified)\n",
           (unsigned long long)dp);
    quit(&r);

    /* 4. bad files */
    snprintf(path, sizeof(path), "%s/bad.snap", tmpdir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "creating %s", path);
    close(fd);
    refused("snap-empty", path, "256M", "too short for a snapshot");

    save(&src, path);
    static const uint8_t zeros[4096];
    patch(path, 0, zeros, sizeof(zeros));
    refused("snap-unfinished", path, "256M", "not a strata snapshot");

    json_decref(save(&src, path));
    CHECK(truncate(path, 1 << 20) == 0, "truncate");
    refused("snap-truncated-ram", path, "256M", "truncated");

    json_decref(save(&src, path));
    uint64_t state_off = le64_at(path, 16), state_len = le64_at(path, 24);
    CHECK(truncate(path, (off_t)(state_off + state_len / 2)) == 0, "truncate");
    refused("snap-truncated-state", path, "256M", "truncated");

    json_decref(save(&src, path));
    uint8_t b = 0x40; /* a bit of the state offset: the header's CRC catches it */
    patch(path, 17, &b, 1);
    refused("snap-header-bit", path, "256M", "the header is corrupt");

    json_decref(save(&src, path));
    state_off = le64_at(path, 16);
    uint8_t flip[1];
    int rfd = open(path, O_RDONLY);
    CHECK(rfd >= 0 && pread(rfd, flip, 1, (off_t)state_off + 200) == 1, "read");
    close(rfd);
    flip[0] ^= 0x01;
    patch(path, (off_t)state_off + 200, flip, 1);
    refused("snap-state-bit", path, "256M", "CRC");

    json_decref(save(&src, path));
    uint8_t hdr[4096];
    rfd = open(path, O_RDONLY);
    CHECK(rfd >= 0 && pread(rfd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr), "read");
    close(rfd);
    hdr[8] = 2; /* version 2, with a CRC that matches it */
    uint32_t crc = state_crc32(hdr, 4092);
    for (int i = 0; i < 4; i++)
        hdr[4092 + i] = (uint8_t)(crc >> (8 * i));
    patch(path, 0, hdr, sizeof(hdr));
    refused("snap-version", path, "256M", "snapshot format version 2");

    json_decref(save(&src, path));
    refused("snap-other-memory", path, "512M", "another machine's snapshot");
    vm_cpus = "2";
    refused("snap-other-cpus", path, "256M", "the source has --cpus 1, this strata has 2");
    vm_cpus = "1";

    /* disks: the restore must have the same images (path and size) */
    char disk[200], disk_arg[220];
    snprintf(disk, sizeof(disk), "%s/disk.img", tmpdir);
    int dfd = open(disk, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(dfd >= 0 && ftruncate(dfd, 1 << 20) == 0, "disk image");
    close(dfd);
    snprintf(disk_arg, sizeof(disk_arg), "path=%s", disk);
    Vm dsrc;
    vm_disk = disk_arg;
    start_vm(&dsrc, "snap-disk-src", guest_elf, "256M", NULL);
    vm_connect(&dsrc);
    char dpath[200];
    snprintf(dpath, sizeof(dpath), "%s/disk.snap", tmpdir);
    json_decref(save(&dsrc, dpath));
    quit(&dsrc);
    restore(&r, "snap-disk-same", dpath, "256M");
    vm_connect(&r);
    CHECK(!strcmp(run_state(&r), "running"), "restore with the same disk: %s", run_state(&r));
    quit(&r);
    dfd = open(disk, O_WRONLY);
    CHECK(dfd >= 0 && ftruncate(dfd, 2 << 20) == 0, "disk image");
    close(dfd);
    refused("snap-disk-size", dpath, "256M", "disk 0 differs");
    vm_disk = NULL;
    refused("snap-disk-missing", dpath, "256M", "differs");

    /* A snapshot saved before the vCPU states carried CPUID: its restore
     * gives the vCPUs this host's (the others' restores take the saved
     * table and never ask KVM for this host's); the guest's page checks
     * still pass.  One from a CPU of the other vendor is refused. */
    snprintf(path, sizeof(path), "%s/v1.snap", tmpdir);
    json_decref(save(&src, path));
    rewrite_state(path, drop_cpuid);
    restore(&r, "snap-v1-vcpus", path, "256M");
    vm_connect(&r);
    CHECK(!strcmp(run_state(&r), "running"), "restore of VCPU version 1: %s", run_state(&r));
    CHECK(log_has(&r, "RAM verified against the saved VM's"), "v1 restore: RAM not verified");
    uint64_t v1p = read_u64(&r, pass_addr);
    v1p = wait_pass(&r, v1p + 2, 60000);
    printf("snapshot with version-1 vCPU states (no CPUID): restored with this host's CPUID, "
           "pass %llu\n",
           (unsigned long long)v1p);
    quit(&r);
    json_decref(save(&src, path));
    rewrite_state(path, other_vendor);
    refused("snap-other-vendor", path, "256M", "the source's host CPU is");

    /* The file shrinks under a restored VM (paused: a stopped save): RAM
     * past the new end is gone from the mapping, and strata reading it (xp)
     * gets SIGBUS: one line and exit 4 (the guest had started), never a
     * silent death. */
    snprintf(path, sizeof(path), "%s/shrink.snap", tmpdir);
    json_decref(cmd_ok(&src, "stop", NULL));
    json_decref(save(&src, path));
    json_decref(cmd_ok(&src, "cont", NULL));
    restore(&r, "snap-shrunk", path, "256M");
    vm_connect(&r);
    CHECK(!strcmp(run_state(&r), "paused"), "a stopped save restores paused, not %s",
          run_state(&r));
    CHECK(truncate(path, 1 << 20) == 0, "truncate %s", path);
    json_decref(qc_cmdf(r.c, "human-monitor-command", "{\"command-line\": \"xp /1gx 0x1000000\"}"));
    int shrunk = vm_wait(&r, 30000);
    CHECK(shrunk == 4, "a VM whose snapshot shrank under it: exit %d, expected 4", shrunk);
    CHECK(log_has(&r, "SIGBUS: memory under strata is gone"), "no SIGBUS line in the log");
    printf("snap-shrunk: the file cut to 1 MiB under a restored VM, xp of 16 MiB: one SIGBUS "
           "line, exit 4\n");

    /* a migration stream is not a snapshot */
    uint8_t mg[4096] = "STRATAMG";
    patch(path, 0, mg, sizeof(mg));
    refused("snap-stream", path, "256M", "a migration stream, not a snapshot");

    CHECK(!strcmp(run_state(&src), "running"), "the source after all: %s", run_state(&src));
    quit(&src);
    test_incremental();
    printf("snapshot: all cases passed\n");
    return 0;
}
