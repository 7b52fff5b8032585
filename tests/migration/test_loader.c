/* SPDX-License-Identifier: MIT */
/*
 * The migration destination's loader (mig_load_fd) against hostile
 * streams, on the fake destination of tests/fuzz/fake_mig.h (no KVM).
 * One valid stream is built from the fake machine's own state (its VMSTATE
 * and VCPU records equal, byte for byte, what the source's own
 * mig_send_cpu_state sends) and must load (RAM, device and CPU state
 * arrive, the GO handover works); then,
 * at every record boundary and in every field of every record header, a
 * truncation, bit flips, a length over the type's limit and a length past
 * the data; records out of order, duplicated or missing, END with wrong
 * counts, unknown types, bad RAM page entries, a CONFIG of another
 * machine, bad VCPU / VMSTATE / DEVICE records and a KVM that refuses the
 * state.  Every refusal must return -1 after one line naming the problem,
 * answer ERR! to the source and leave the fake KVM state uninstalled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/fuzz/fake_mig.h"
#include "vmm/migration/internal.h"
#include "vmm/migration/stream.h"

static MigStreamBuf valid;  /* header .. END, no GO */
static uint8_t *source_ram; /* what RAM holds after the valid stream */
static unsigned checks;     /* refusals checked (printed at the end) */

static int find(uint32_t type, unsigned nth)
{
    for (unsigned i = 0; i < valid.nrec; i++)
        if (valid.rec_type[i] == type && nth-- == 0)
            return (int)i;
    fail_msg("the valid stream has no record of type %u", type);
    return -1;
}

/* Appends valid records [from, to). */
static void copy_recs(MigStreamBuf *out, unsigned from, unsigned to)
{
    for (unsigned i = from; i < to && i < valid.nrec; i++)
        mig_sb_put(out, mig_sb_rec(&valid, i));
}

static bool one_line(const char *s)
{
    const char *nl = strchr(s, '\n');
    return nl && nl[1] == 0;
}

/* Loads [p, p+n) and checks that it is refused: -1, one line on stderr
 * that contains `want` (and any of `want2` when not NULL), ERR! with the
 * same reason sent back, nothing installed into KVM. */
static void refused2(const uint8_t *p, size_t n, const char *want, const char *want2,
                     const char *what)
{
    FakeMigResult r;
    fake_mig_reset();
    assert_int_equal(fake_mig_load(p, n, FAKE_MIG_PEER_STREAM, true, &r), 0);
    bool ok = r.ret == -1 && one_line(r.log) && strstr(r.log, "the guest is not started") &&
              (strstr(r.log, want) || (want2 && strstr(r.log, want2))) && fake_mig.vm_sets == 0 &&
              fake_mig.vcpu_sets == 0;
    /* the reason also went back (unless the peer had stopped reading) */
    if (ok && r.reply == MIG_REPLY_ERROR)
        ok = r.reason[0] && strstr(r.log, r.reason);
    if (!ok)
        fail_msg("%s: ret %d, installs %u/%u, reply 0x%x '%s', log: %s (wanted '%s')", what, r.ret,
                 fake_mig.vm_sets, fake_mig.vcpu_sets, r.reply, r.reason, r.log, want);
    checks++;
}

static void refused(const uint8_t *p, size_t n, const char *want, const char *what)
{
    refused2(p, n, want, NULL, what);
}

/* Appends GO!!, checks the refusal and frees sb. */
static void refused_sb(MigStreamBuf *sb, const char *want, const char *what)
{
    mig_sb_u32(sb, MIG_REPLY_GO);
    assert_false(sb->failed);
    refused(sb->p, sb->len, want, what);
    mig_sb_free(sb);
}

/* The valid stream with record `i` replaced by (type, id, payload, len). */
static void refused_replaced(unsigned i, uint32_t type, uint32_t id, const void *payload,
                             uint32_t len, const char *want, const char *what)
{
    MigStreamBuf sb;
    mig_sb_init(&sb);
    mig_sb_header(&sb);
    copy_recs(&sb, 0, i);
    mig_sb_record(&sb, type, id, payload, len);
    copy_recs(&sb, i + 1, valid.nrec);
    refused_sb(&sb, want, what);
}

/* A copy of the valid stream (plus GO!!) to patch bytes in. */
static uint8_t *valid_copy(size_t *n)
{
    uint8_t *p = malloc(valid.len + 4);
    assert_non_null(p);
    memcpy(p, valid.p, valid.len);
    memcpy(p + valid.len, "GO!!", 4);
    *n = valid.len + 4;
    return p;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int setup(void **state)
{
    (void)state;
    if (fake_mig_init() < 0)
        return -1;
    fake_mig_reset();
    fake_mig_dirty_source();
    source_ram = malloc(FAKE_MIG_RAM_SIZE);
    if (!source_ram)
        return -1;
    memcpy(source_ram, fake_mig.ram, FAKE_MIG_RAM_SIZE);
    mig_sb_init(&valid);
    if (fake_mig_build(&valid, NULL) < 0)
        return -1;
    fake_mig_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mig_sb_free(&valid);
    free(source_ram);
    printf("test_loader: %u refusals checked\n", checks);
    return 0;
}

/* ---- the valid stream ---------------------------------------------------------- */

static void test_valid_loads(void **state)
{
    (void)state;
    Machine *m = &fake_mig.v->m;
    FakeMigResult r;
    fake_mig_reset();
    assert_int_not_equal(m->serial.scr, 0x5a);
    assert_int_equal(m->ged.pending, 0);
    assert_int_equal(fake_mig_load(valid.p, valid.len, FAKE_MIG_PEER_HANDSHAKE, true, &r), 0);
    if (r.ret != 0)
        fail_msg("valid stream refused: %s", r.log);
    assert_int_equal(r.reply, MIG_REPLY_READY);
    assert_int_equal(r.answer, MIG_REPLY_ACK); /* GO answered: it runs the guest */
    assert_false(r.start_paused);
    assert_non_null(strstr(r.log, "incoming migration loaded"));
    assert_true(one_line(r.log));
    assert_memory_equal(fake_mig.ram, source_ram, FAKE_MIG_RAM_SIZE);
    assert_int_equal(m->serial.scr, 0x5a);
    assert_int_equal(m->serial.divider, 12);
    assert_int_equal(m->i8042.cmd_byte, 0x47);
    assert_int_equal(m->pvpanic.events, PVPANIC_PANICKED);
    assert_int_equal(m->ged.pending, GED_EVENT_POWER_BUTTON);
    assert_int_equal(m->testdev.nr_reports, 3);
    assert_int_equal(m->testdev.reports[2], 0x33);
    assert_int_equal(m->testdev.sync_answer, 7);
    assert_int_equal(fake_mig.vm_sets, 1);
    assert_int_equal(fake_mig.vcpu_sets, FAKE_MIG_CPUS);
    /* vCPU 0's state carries its CPUID, vCPU 1's does not: this host's */
    assert_int_equal(fake_mig.host_cpuid_sets, FAKE_MIG_CPUS - 1);
    assert_int_equal(fake_mig.vm_clock, 123456789);
    for (unsigned i = 0; i < FAKE_MIG_CPUS; i++)
        assert_int_equal(fake_mig.vcpu_rip[i], 0x1000 + i);
}

static void test_valid_paused_and_go_in_stream(void **state)
{
    (void)state;
    FakeMigBuild opt = { .paused = true, .go = true };
    MigStreamBuf sb;
    FakeMigResult r;
    fake_mig_reset();
    fake_mig_dirty_source();
    mig_sb_init(&sb);
    assert_int_equal(fake_mig_build(&sb, &opt), 0);
    fake_mig_reset();
    assert_int_equal(fake_mig_load(sb.p, sb.len, FAKE_MIG_PEER_STREAM, true, &r), 0);
    mig_sb_free(&sb);
    if (r.ret != 0)
        fail_msg("paused stream refused: %s", r.log);
    assert_true(r.start_paused);
    assert_int_equal(r.reply, MIG_REPLY_READY);
    assert_int_equal(r.answer, MIG_REPLY_ACK);
    assert_memory_equal(fake_mig.ram, source_ram, FAKE_MIG_RAM_SIZE);
}

/* The source's own sender (mig_send_cpu_state, mig_send_record) frames
 * VMSTATE and VCPU 0..n-1 byte for byte as this test's stream does. */
static void test_real_sender_frames_alike(void **state)
{
    (void)state;
    int sv[2];
    MigChannel ch;
    char err[400] = "";
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    mig_channel_init(&ch, sv[0]);
    assert_int_equal(mig_send_cpu_state(&fake_mig.v->m, &ch, true, err, sizeof(err)), 0);
    shutdown(sv[0], SHUT_WR);
    unsigned first = (unsigned)find(MIG_REC_VMSTATE, 0);
    unsigned last = (unsigned)find(MIG_REC_VCPU, FAKE_MIG_CPUS - 1);
    size_t want = valid.rec_off[last + 1] - valid.rec_off[first], got = 0;
    uint8_t *buf = malloc(want + 1);
    assert_non_null(buf);
    for (ssize_t r; got <= want && (r = read(sv[1], buf + got, want + 1 - got)) > 0;)
        got += (size_t)r;
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(got, want);
    assert_memory_equal(buf, valid.p + valid.rec_off[first], want);
    free(buf);
}

/* The stream is complete but GO!! never comes: loaded, not confirmed. */
static void test_no_go(void **state)
{
    (void)state;
    FakeMigResult r;
    fake_mig_reset();
    assert_int_equal(fake_mig_load(valid.p, valid.len, FAKE_MIG_PEER_STREAM, true, &r), 0);
    assert_int_equal(r.ret, -1);
    assert_int_equal(r.reply, MIG_REPLY_READY);
    assert_int_equal(r.answer, MIG_REPLY_ERROR); /* the source hears it: it resumes */
    assert_non_null(strstr(r.reason, "no GO from the source"));
    assert_non_null(strstr(r.log, "did not confirm the handover"));
    assert_true(one_line(r.log));

    size_t n;
    uint8_t *p = valid_copy(&n);
    memcpy(p + valid.len, "NO!!", 4);
    fake_mig_reset();
    assert_int_equal(fake_mig_load(p, n, FAKE_MIG_PEER_STREAM, true, &r), 0);
    free(p);
    assert_int_equal(r.ret, -1);
    assert_int_equal(r.answer, MIG_REPLY_ERROR);
    assert_non_null(strstr(r.log, "answered READY with 0x21214f4e, not GO"));
}

/* ---- every boundary and header field --------------------------------------------- */

static void test_header(void **state)
{
    (void)state;
    size_t n;
    uint8_t *p = valid_copy(&n);
    for (size_t cut = 0; cut < MIG_HEADER_LEN; cut++)
        refused(p, cut, "ended early", "header truncated");
    p[3] ^= 1;
    refused(p, n, "bad magic", "magic");
    p[3] ^= 1;
    put32(p + 8, 1);
    refused(p, n, "stream version 1", "version 1 (no answer to GO)");
    put32(p + 8, 3);
    refused(p, n, "stream version 3", "version");
    put32(p + 8, MIG_VERSION);
    put32(p + 12, 1);
    refused(p, n, "flags 0x1 unknown", "flags");
    free(p);
}

static void test_truncations(void **state)
{
    (void)state;
    for (unsigned i = 0; i < valid.nrec; i++) {
        size_t at = valid.rec_off[i], len = mig_sb_rec(&valid, i).len;
        const size_t cuts[] = {
            at, at + 2, at + 4, at + 8, at + 12, at + 12 + len / 2, at + 12 + len, at + 14 + len
        };
        for (unsigned k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
            char what[64];
            snprintf(what, sizeof(what), "record %u cut at +%zu", i, cuts[k] - at);
            refused(valid.p, cuts[k], "the stream ended early", what);
        }
    }
}

static void test_bit_flips(void **state)
{
    (void)state;
    size_t n;
    uint8_t *p = valid_copy(&n);
    for (unsigned i = 0; i < valid.nrec; i++) {
        size_t at = valid.rec_off[i], len = mig_sb_rec(&valid, i).len;
        /* type, id, length (low and high byte), payload first/middle/last, CRC */
        const size_t offs[] = { 0,        3,       4, 7, 8, 11, 12, 12 + len / 2, 12 + len - 1,
                                12 + len, 15 + len };
        for (unsigned k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
            if (offs[k] >= 12 && offs[k] < 12 + len && !len)
                continue;
            for (unsigned bit = 0; bit < 8; bit += 7) {
                char what[64];
                snprintf(what, sizeof(what), "record %u byte +%zu bit %u", i, offs[k], bit);
                p[at + offs[k]] ^= (uint8_t)(1u << bit);
                refused2(p, n, "record", "ended early", what);
                p[at + offs[k]] ^= (uint8_t)(1u << bit);
            }
        }
    }
    free(p);
}

static void test_lengths(void **state)
{
    (void)state;
    size_t n;
    uint8_t *p = valid_copy(&n);
    for (unsigned i = 0; i < valid.nrec; i++) {
        MigRec r = mig_sb_rec(&valid, i);
        uint8_t *lenp = p + valid.rec_off[i] + 8;
        uint32_t max = mig_record_max(r.type);
        char what[64];
        snprintf(what, sizeof(what), "record %u length over its limit", i);
        put32(lenp, max + 1);
        refused(p, n, "over its limit", what);
        put32(lenp, UINT32_MAX);
        refused(p, n, "over its limit", what);
        /* more than what follows the length field (payload, CRC, the rest, GO) */
        size_t rest = n - (valid.rec_off[i] + 12);
        if (rest + 1 <= max) {
            snprintf(what, sizeof(what), "record %u length past the data", i);
            put32(lenp, (uint32_t)rest + 1);
            refused(p, n, "ended early", what);
        }
        put32(lenp, r.len);
    }
    free(p);
}

/* ---- records in the wrong order, twice, missing ------------------------------------ */

static void test_order(void **state)
{
    (void)state;
    const uint32_t firsts[] = { MIG_REC_RAM,  MIG_REC_ROUND,  MIG_REC_VMSTATE,
                                MIG_REC_VCPU, MIG_REC_DEVICE, MIG_REC_END };
    for (unsigned k = 0; k < sizeof(firsts) / sizeof(firsts[0]); k++) {
        int f = find(firsts[k], 0);
        MigStreamBuf sb;
        char want[64];
        mig_sb_init(&sb);
        mig_sb_header(&sb);
        mig_sb_put(&sb, mig_sb_rec(&valid, (unsigned)f));
        copy_recs(&sb, 0, (unsigned)f);
        copy_recs(&sb, (unsigned)f + 1, valid.nrec);
        snprintf(want, sizeof(want), "starts with a %s record, not CONFIG",
                 mig_record_name(firsts[k]));
        refused_sb(&sb, want, want);
    }
}

static void test_duplicates(void **state)
{
    (void)state;
    const struct {
        uint32_t type;
        unsigned nth;
        const char *want;
    } dups[] = {
        { MIG_REC_CONFIG, 0, "a second CONFIG record" },
        { MIG_REC_VMSTATE, 0, "VMSTATE record sent twice" },
        { MIG_REC_VCPU, 0, "VCPU record 0 sent twice" },
        { MIG_REC_VCPU, 1, "VCPU record 1 sent twice" },
        { MIG_REC_DEVICE, 0, "DEVICE record 0 (serial) sent twice" },
        { MIG_REC_DEVICE, 5, "DEVICE record 5 (virtio-rng@0xfeb00000) sent twice" },
    };
    for (unsigned k = 0; k < sizeof(dups) / sizeof(dups[0]); k++) {
        int d = find(dups[k].type, dups[k].nth);
        MigStreamBuf sb;
        mig_sb_init(&sb);
        mig_sb_header(&sb);
        copy_recs(&sb, 0, (unsigned)d + 1);
        mig_sb_put(&sb, mig_sb_rec(&valid, (unsigned)d));
        copy_recs(&sb, (unsigned)d + 1, valid.nrec);
        refused_sb(&sb, dups[k].want, dups[k].want);
    }
}

static void test_missing(void **state)
{
    (void)state;
    const struct {
        uint32_t type;
        unsigned nth;
        const char *want;
    } gone[] = {
        { MIG_REC_VMSTATE, 0, "ended without the VM state" },
        { MIG_REC_VCPU, 1, "ended without vCPU 1's state" },
        { MIG_REC_DEVICE, 0, "ended without device serial's state" },
        { MIG_REC_DEVICE, 3, "ended without device acpi-ged's state" },
        { MIG_REC_DEVICE, 5, "ended without device virtio-rng@0xfeb00000's state" },
    };
    for (unsigned k = 0; k < sizeof(gone) / sizeof(gone[0]); k++) {
        int g = find(gone[k].type, gone[k].nth);
        MigStreamBuf sb;
        mig_sb_init(&sb);
        mig_sb_header(&sb);
        copy_recs(&sb, 0, (unsigned)g);
        copy_recs(&sb, (unsigned)g + 1, valid.nrec);
        refused_sb(&sb, gone[k].want, gone[k].want);
    }
}

/* ---- END ------------------------------------------------------------------------ */

static void test_end_counts(void **state)
{
    (void)state;
    unsigned e = (unsigned)find(MIG_REC_END, 0);
    MigRec r = mig_sb_rec(&valid, e);
    uint8_t pl[40];
    assert_int_equal(r.len, 32);
    const struct {
        unsigned field;
        int64_t delta;
        const char *want;
    } bad[] = {
        { 0, 1, "END record: the source sent" },
        { 0, -1, "END record: the source sent" },
        { 1, 1, "END record: the source sent" },
        { 2, 1, "END record: 3 vCPUs, this machine has 2" },
        { 2, -2, "END record: 0 vCPUs, this machine has 2" },
    };
    for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        memcpy(pl, r.payload, 32);
        uint8_t *f = pl + 8 * bad[k].field;
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
            v = v << 8 | f[i];
        v += (uint64_t)bad[k].delta;
        for (int i = 0; i < 8; i++)
            f[i] = (uint8_t)(v >> (8 * i));
        refused_replaced(e, MIG_REC_END, 0, pl, 32, bad[k].want, bad[k].want);
    }
    refused_replaced(e, MIG_REC_END, 0, r.payload, 31, "END record: truncated", "END 31 bytes");
    refused_replaced(e, MIG_REC_END, 0, NULL, 0, "END record: truncated", "END empty");
}

/* ---- unknown types, RAM entries ------------------------------------------------------ */

static void test_unknown_types(void **state)
{
    (void)state;
    const uint32_t types[] = { 0, MIG_REC_TYPE_MAX + 1, 0x100, UINT32_MAX };
    for (unsigned k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        for (unsigned at = 0; at <= 1; at++) { /* instead of CONFIG, after it */
            MigStreamBuf sb;
            char want[48];
            mig_sb_init(&sb);
            mig_sb_header(&sb);
            copy_recs(&sb, 0, at);
            mig_sb_record(&sb, types[k], 0, "x", 1);
            copy_recs(&sb, at, valid.nrec);
            snprintf(want, sizeof(want), "unknown type %u", types[k]);
            refused_sb(&sb, want, want);
        }
    }
}

/* A RAM record after CONFIG holding one entry (and `extra` bytes of data). */
static void refused_ram(uint32_t block, uint64_t entry, size_t extra, size_t entry_len,
                        const char *want)
{
    static uint8_t pl[8 + MIG_PAGE_SIZE];
    memset(pl, 0xab, sizeof(pl));
    for (int i = 0; i < 8; i++)
        pl[i] = (uint8_t)(entry >> (8 * i));
    MigStreamBuf sb;
    mig_sb_init(&sb);
    mig_sb_header(&sb);
    copy_recs(&sb, 0, 1);
    mig_sb_record(&sb, MIG_REC_RAM, block, pl, (uint32_t)(entry_len + extra));
    copy_recs(&sb, 1, valid.nrec);
    refused_sb(&sb, want, want);
    /* nothing landed past the block (ASan watches the heap block too) */
    assert_int_equal(fake_mig.ram[FAKE_MIG_RAM_SIZE - 1], 0xcc);
}

static void test_ram_entries(void **state)
{
    (void)state;
    const uint64_t size = FAKE_MIG_RAM_SIZE;
    refused_ram(1, MIG_PAGE_ZERO, 0, 8, "RAM record for block 1: this machine has 1");
    refused_ram(UINT32_MAX, MIG_PAGE_ZERO, 0, 8, "RAM record for block 4294967295");
    refused_ram(0, size | MIG_PAGE_NORMAL, MIG_PAGE_SIZE, 8, "page at 0x40000 outside");
    refused_ram(0, size | MIG_PAGE_ZERO, 0, 8, "page at 0x40000 outside");
    refused_ram(0, (1ull << 40) | MIG_PAGE_NORMAL, MIG_PAGE_SIZE, 8, "outside microvm.ram");
    refused_ram(0, ~MIG_PAGE_KIND_MASK | MIG_PAGE_ZERO, 0, 8, "outside microvm.ram");
    /* an offset that is not page aligned reads as an unknown kind */
    refused_ram(0, 0x800 | MIG_PAGE_NORMAL, MIG_PAGE_SIZE, 8, "unknown kind 2050");
    refused_ram(0, 0x1000 | 0x801, 0, 8, "unknown kind 2049");
    refused_ram(0, 0x1000, 0, 8, "unknown kind 0");
    refused_ram(0, 0x1000 | 3, MIG_PAGE_SIZE, 8, "unknown kind 3");
    refused_ram(0, 0x1000 | MIG_PAGE_NORMAL, 100, 8, "page at 0x1000 truncated");
    refused_ram(0, 0x1000 | MIG_PAGE_ZERO, 0, 4, "a truncated page entry");
    refused_ram(0, (size - MIG_PAGE_SIZE) | MIG_PAGE_NORMAL, MIG_PAGE_SIZE - 1, 8, "truncated");
}

/* ---- CONFIG of another machine -------------------------------------------------------- */

static void refused_config(json_t *o, const char *want)
{
    char *s = json_dumps(o, JSON_COMPACT);
    assert_non_null(s);
    refused_replaced(0, MIG_REC_CONFIG, 0, s, (uint32_t)strlen(s), want, s);
    free(s);
    json_decref(o);
}

static json_t *config(void)
{
    MigRec r = mig_sb_rec(&valid, 0);
    json_t *o = json_loadb((const char *)r.payload, r.len, 0, NULL);
    assert_non_null(o);
    return o;
}

static void test_config_mismatch(void **state)
{
    (void)state;
    json_t *o = config();
    json_object_set_new(o, "memory", json_integer(512 << 20));
    refused_config(o, "the source has --memory 512 MiB, this strata has 262144 bytes");
    o = config();
    json_object_del(o, "memory");
    refused_config(o, "the source has --memory 0 bytes");
    o = config();
    json_object_set_new(o, "cpus", json_integer(4));
    refused_config(o, "the source has --cpus 4, this strata has 2");
    o = config();
    json_object_set_new(o, "cpus", json_string("2"));
    refused_config(o, "the source has --cpus -1, this strata has 2");
    o = config();
    json_object_set_new(o, "machine", json_string("pc-q35"));
    refused_config(o, "the source is a 'pc-q35' machine");
    o = config();
    json_object_set_new(o, "irqchip", json_false());
    refused_config(o, "differ in the in-kernel irqchip");
    o = config();
    json_object_set_new(o, "ram",
                        json_pack("[{s:s,s:I}]", "name", "pc.ram", "size",
                                  (json_int_t)FAKE_MIG_RAM_SIZE));
    refused_config(o, "RAM blocks differ");
    o = config();
    json_array_remove(json_object_get(o, "devices"), 3);
    refused_config(o, "device 3 differs: the source has testdev, this strata has acpi-ged");
    o = config();
    json_array_append_new(json_object_get(o, "devices"), json_string("virtio-blk@0xfeb00200"));
    refused_config(o, "device 6 differs: the source has virtio-blk@0xfeb00200, this strata "
                      "has none");
    o = config();
    json_array_set_new(json_object_get(o, "devices"), 0, json_integer(1));
    refused_config(o, "device 0 differs: the source has none");
    o = config();
    json_object_del(o, "devices");
    refused_config(o, "the CONFIG record has no device list");

    /* host-cpu: the source's CPU (vmm/migration/cpu.h) */
    MigHostCpu here;
    mig_host_cpu_read(&here);
    o = config();
    json_object_set_new(json_object_get(o, "host-cpu"), "vendor",
                        json_string(strcmp(here.vendor, "AuthenticAMD") ? "AuthenticAMD"
                                                                        : "GenuineIntel"));
    refused_config(o, "the source's host CPU is");
    o = config();
    json_object_set_new(json_object_get(o, "host-cpu"), "vendor", json_string("Evil\nVendor"));
    refused_config(o, "the source's host CPU is Evil\\"); /* escaped: one line */
    o = config();
    json_array_remove(json_object_get(json_object_get(o, "host-cpu"), "features"), 0);
    refused_config(o, "host-cpu is malformed");
    o = config();
    json_object_set_new(json_object_get(o, "host-cpu"), "vendor", json_integer(1));
    refused_config(o, "host-cpu is malformed");
    o = config();
    json_array_set_new(json_object_get(json_object_get(o, "host-cpu"), "features"), 2,
                       json_integer(-1));
    refused_config(o, "feature word 2 is malformed");
    o = config();
    json_array_set_new(json_object_get(json_object_get(o, "host-cpu"), "features"), 7,
                       json_integer(1ll << 32));
    refused_config(o, "feature word 7 is malformed");
    /* the source's CPU had CPUID.1:ECX bit 16 (no CPU has: reserved), and
     * vCPU 0's CPUID carries it: refused once the state is there */
    o = config();
    json_array_set_new(json_object_get(json_object_get(o, "host-cpu"), "features"), 0,
                       json_integer((json_int_t)(here.words[0] | 1u << 16)));
    refused_config(o, "vCPU 0's CPUID has CPUID.1:ECX bit 16, which the source's CPU had and "
                      "this host's lacks");
    /* without host-cpu (a source built before it): nothing to compare */
    o = config();
    json_object_del(o, "host-cpu");
    {
        char *t = json_dumps(o, JSON_COMPACT);
        assert_non_null(t);
        json_decref(o);
        FakeMigResult r;
        MigStreamBuf sb;
        mig_sb_init(&sb);
        mig_sb_header(&sb);
        mig_sb_record(&sb, MIG_REC_CONFIG, 0, t, (uint32_t)strlen(t));
        copy_recs(&sb, 1, valid.nrec);
        assert_false(sb.failed);
        fake_mig_reset();
        assert_int_equal(fake_mig_load(sb.p, sb.len, FAKE_MIG_PEER_HANDSHAKE, true, &r), 0);
        if (r.ret != 0)
            fail_msg("a CONFIG without host-cpu was refused: %s", r.log);
        assert_int_equal(fake_mig.vcpu_sets, FAKE_MIG_CPUS);
        mig_sb_free(&sb);
        free(t);
    }
    refused_replaced(0, MIG_REC_CONFIG, 0, "[1,2]", 5, "not a JSON object", "array");
    refused_replaced(0, MIG_REC_CONFIG, 0, "{\"a\":1", 6, "not a JSON object", "cut JSON");
    refused_replaced(0, MIG_REC_CONFIG, 0, NULL, 0, "not a JSON object", "empty CONFIG");
    refused_replaced(0, MIG_REC_CONFIG, 0, "{\"a\":1,\"a\":2}", 13, "not a JSON object",
                     "duplicate keys");
}

/* ---- VCPU, VMSTATE and DEVICE records --------------------------------------------------- */

static void test_state_records(void **state)
{
    (void)state;
    int v0 = find(MIG_REC_VCPU, 0), v1 = find(MIG_REC_VCPU, 1), vm = find(MIG_REC_VMSTATE, 0);
    MigRec r1 = mig_sb_rec(&valid, (unsigned)v1), rvm = mig_sb_rec(&valid, (unsigned)vm);
    refused_replaced((unsigned)v0, MIG_REC_VCPU, 0, r1.payload, r1.len,
                     "VCPU record 0: index does not match", "vCPU 1's state as 0");
    refused_replaced((unsigned)v1, MIG_REC_VCPU, 2, r1.payload, r1.len,
                     "VCPU record 2: this machine has 2 vCPUs", "vCPU 2");
    refused_replaced((unsigned)v1, MIG_REC_VCPU, 1, r1.payload, r1.len - 1,
                     "VCPU record 1: ", "VCPU cut");
    refused_replaced((unsigned)v1, MIG_REC_VCPU, 1, rvm.payload, rvm.len,
                     "VCPU record 1: ", "VMST section in a VCPU record");
    refused_replaced((unsigned)vm, MIG_REC_VMSTATE, 0, r1.payload, r1.len,
                     "VMSTATE record: ", "VCPU section in the VMSTATE record");
    refused_replaced((unsigned)vm, MIG_REC_VMSTATE, 0, rvm.payload, rvm.len - 1,
                     "VMSTATE record: ", "VMSTATE cut");
}

static void test_device_records(void **state)
{
    (void)state;
    Machine *m = &fake_mig.v->m;
    int d0 = find(MIG_REC_DEVICE, 0), d1 = find(MIG_REC_DEVICE, 1);
    MigRec r0 = mig_sb_rec(&valid, (unsigned)d0), r1 = mig_sb_rec(&valid, (unsigned)d1);
    refused_replaced((unsigned)d0, MIG_REC_DEVICE, 6, r0.payload, r0.len,
                     "DEVICE record 6: this machine has 6 devices", "device 6");
    refused_replaced((unsigned)d0, MIG_REC_DEVICE, 0, r1.payload, r1.len,
                     "DEVICE record 0 is 'i8042', this machine's device 0 is serial",
                     "i8042 as device 0");
    refused_replaced((unsigned)d0, MIG_REC_DEVICE, 0, r0.payload, 1, "DEVICE record 0: truncated",
                     "1 byte");
    uint8_t *pl = malloc(r0.len);
    assert_non_null(pl);
    memcpy(pl, r0.payload, r0.len);
    pl[0] = 0xff; /* name length 255 */
    refused_replaced((unsigned)d0, MIG_REC_DEVICE, 0, pl, r0.len,
                     "DEVICE record 0: name longer than the record", "long name");
    pl[0] = 6;
    pl[r0.len - 5] ^= 1; /* the section's last payload byte: its CRC no longer matches */
    refused_replaced((unsigned)d0, MIG_REC_DEVICE, 0, pl, r0.len,
                     "device serial: ", "serial section corrupt");
    assert_int_equal(m->serial.scr, 0); /* refused: left as it was */
    free(pl);
    refused_replaced((unsigned)d0, MIG_REC_DEVICE, 0, r0.payload, 8,
                     "device serial: ", "serial section cut");
}

/* A payload of record i with `extra` bytes appended. */
static void refused_extra(unsigned i, const uint8_t *extra, uint32_t n, const char *want,
                          const char *what)
{
    MigRec r = mig_sb_rec(&valid, i);
    uint8_t *pl = malloc(r.len + n);
    assert_non_null(pl);
    memcpy(pl, r.payload, r.len);
    memcpy(pl + r.len, extra, n);
    refused_replaced(i, r.type, r.id, pl, r.len + n, want, what);
    free(pl);
}

static const uint8_t junk[8] = { 0 };

/* A VCPU / VMSTATE payload is one section, nothing after it. */
static void test_trailing_state(void **state)
{
    (void)state;
    refused_extra((unsigned)find(MIG_REC_VCPU, 1), junk, 1,
                  "VCPU record 1: 1 bytes after the section", "VCPU + 1");
    refused_extra((unsigned)find(MIG_REC_VMSTATE, 0), junk, 4,
                  "VMSTATE record: 4 bytes after the section", "VMSTATE + 4");
}

/* END is 32 bytes with a run state of 1 or 0, ROUND is empty. */
static void test_trailing_end_round(void **state)
{
    (void)state;
    unsigned e = (unsigned)find(MIG_REC_END, 0);
    refused_extra(e, junk, 8, "END record: RAM check word 0x0 unknown", "END + 8 zero bytes");
    refused_extra(e, junk, 4, "END record: 36 bytes, expected 32 or 40", "END + 4");
    static const uint8_t bad_crc[8] = { 0, 0, 0, 0, 1, 0, 0, 0 }; /* 1 << 32 | CRC 0 */
    refused_extra(e, bad_crc, 8, "RAM differs from the source's at its final pause",
                  "END with a wrong RAM CRC");
    refused_extra((unsigned)find(MIG_REC_ROUND, 1), junk, 1,
                  "ROUND record 1: 1 bytes of payload, expected none", "ROUND + 1");
    MigRec r = mig_sb_rec(&valid, e);
    uint8_t pl[32];
    memcpy(pl, r.payload, 32);
    pl[24] = 2;
    refused_replaced(e, MIG_REC_END, 0, pl, 32, "END record: run state 2, expected 1",
                     "END running 2");
    pl[24] = 0;
    pl[31] = 0x80;
    refused_replaced(e, MIG_REC_END, 0, pl, 32, "END record: run state 9223372036854775808",
                     "END running 2^63");
}

/* ids: 0 for CONFIG, VMSTATE and END, the round number for ROUND. */
static void test_record_ids(void **state)
{
    (void)state;
    const uint32_t zero_id[] = { MIG_REC_CONFIG, MIG_REC_VMSTATE, MIG_REC_END };
    for (unsigned k = 0; k < 3; k++) {
        unsigned i = (unsigned)find(zero_id[k], 0);
        MigRec r = mig_sb_rec(&valid, i);
        char want[64];
        snprintf(want, sizeof(want), "%s record with id 1, expected 0",
                 mig_record_name(zero_id[k]));
        refused_replaced(i, r.type, 1, r.payload, r.len, want, want);
    }
    refused_replaced((unsigned)find(MIG_REC_ROUND, 0), MIG_REC_ROUND, 1, NULL, 0,
                     "ROUND record 1, expected round 0", "round 1 first");
    refused_replaced((unsigned)find(MIG_REC_ROUND, 1), MIG_REC_ROUND, 0, NULL, 0,
                     "ROUND record 0, expected round 1", "round 0 twice");
}

/* The message counts the bytes that arrived, not the ERR! answer sent. */
static void test_failed_after_bytes(void **state)
{
    (void)state;
    for (unsigned i = 1; i < valid.nrec; i += 4) {
        char want[80];
        snprintf(want, sizeof(want), "failed after %zu bytes: ", valid.rec_off[i]);
        refused(valid.p, valid.rec_off[i], want, want);
    }
}

/* Names and strings from the stream cannot break the message into lines. */
static void test_one_line_messages(void **state)
{
    (void)state;
    int d0 = find(MIG_REC_DEVICE, 0);
    MigRec r0 = mig_sb_rec(&valid, (unsigned)d0);
    uint8_t *pl = malloc(r0.len);
    assert_non_null(pl);
    memcpy(pl, r0.payload, r0.len);
    memcpy(pl + 2, "se\nal", 6);
    pl[4] = '\n';
    refused_replaced((unsigned)d0, MIG_REC_DEVICE, 0, pl, r0.len, "DEVICE record 0 is 'se\\x0aal'",
                     "a device name with a newline");
    free(pl);
    json_t *o = config();
    json_object_set_new(o, "machine", json_string("pc\nstrata: incoming migration loaded"));
    refused_config(o, "the source is a 'pc\\x0astrata: incoming");
    o = config();
    json_array_set_new(json_object_get(o, "devices"), 1, json_string("i8042\r\x1b[2J"));
    refused_config(o, "device 1 differs: the source has i8042\\x0d\\x1b[2J,");
}

/* ---- the destination's KVM refuses ----------------------------------------------------- */

static void test_install_refused(void **state)
{
    (void)state;
    FakeMigResult r;
    fake_mig_reset();
    fake_mig.xsave_max = 0;
    assert_int_equal(fake_mig_load(valid.p, valid.len, FAKE_MIG_PEER_HANDSHAKE, true, &r), 0);
    assert_int_equal(r.ret, -1);
    assert_int_equal(r.reply, MIG_REPLY_ERROR);
    assert_non_null(strstr(r.log, "loading vCPU 0's state into KVM failed"));
    assert_non_null(strstr(r.reason, "loading vCPU 0's state into KVM failed"));
    assert_true(one_line(r.log));
    assert_int_equal(fake_mig.vm_sets, 1);
    assert_int_equal(fake_mig.vcpu_sets, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_loads),
        cmocka_unit_test(test_valid_paused_and_go_in_stream),
        cmocka_unit_test(test_real_sender_frames_alike),
        cmocka_unit_test(test_no_go),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_end_counts),
        cmocka_unit_test(test_unknown_types),
        cmocka_unit_test(test_ram_entries),
        cmocka_unit_test(test_config_mismatch),
        cmocka_unit_test(test_state_records),
        cmocka_unit_test(test_device_records),
        cmocka_unit_test(test_trailing_state),
        cmocka_unit_test(test_trailing_end_round),
        cmocka_unit_test(test_record_ids),
        cmocka_unit_test(test_failed_after_bytes),
        cmocka_unit_test(test_one_line_messages),
        cmocka_unit_test(test_install_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
