/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of fuzz-migration (tests/fuzz/corpus-migration):
 * real streams for the fake destination (fake_mig.h) and truncated,
 * bit-flipped, oversized and reordered variants, each prefixed with the
 * target's control byte.
 *
 *     build/tests/fuzz/fuzz-migration-seeds tests/fuzz/corpus-migration
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fake_mig.h"
#include "vmm/migration/stream.h"

static const char *outdir;
static int failures;

static void seed(const char *name, uint8_t ctl, const uint8_t *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(&ctl, 1, 1, f) != 1 || (n && fwrite(p, 1, n, f) != n)) {
        perror(path);
        failures++;
    }
    if (f && fclose(f) != 0) {
        perror(path);
        failures++;
    }
}

static void seed_sb(const char *name, uint8_t ctl, MigStreamBuf *sb)
{
    seed(name, ctl, sb->p, sb->len);
    mig_sb_free(sb);
}

/* The records of `v` with record `skip` left out and record `dup` sent twice
 * (-1: none); `first` goes before CONFIG (-1: none). */
static void reorder(MigStreamBuf *out, const MigStreamBuf *v, int first, int skip, int dup)
{
    mig_sb_init(out);
    mig_sb_header(out);
    if (first >= 0)
        mig_sb_put(out, mig_sb_rec(v, (unsigned)first));
    for (unsigned i = 0; i < v->nrec; i++) {
        if ((int)i == skip || (int)i == first)
            continue;
        mig_sb_put(out, mig_sb_rec(v, i));
        if ((int)i == dup)
            mig_sb_put(out, mig_sb_rec(v, i));
    }
    mig_sb_u32(out, MIG_REPLY_GO);
}

/* The records of `v` with `n` zero bytes appended to record `at`'s payload. */
static void trailing(MigStreamBuf *out, const MigStreamBuf *v, unsigned at, uint32_t n)
{
    mig_sb_init(out);
    mig_sb_header(out);
    for (unsigned i = 0; i < v->nrec; i++) {
        MigRec r = mig_sb_rec(v, i);
        if (i == at) {
            uint8_t *pl = calloc(1, r.len + n);
            if (!pl) {
                out->failed = true;
                return;
            }
            memcpy(pl, r.payload, r.len);
            mig_sb_record(out, r.type, r.id, pl, r.len + n);
            free(pl);
        } else {
            mig_sb_put(out, r);
        }
    }
    mig_sb_u32(out, MIG_REPLY_GO);
}

/* The records of `v` with record `at` replaced by (id, payload, len). */
static void replaced(MigStreamBuf *out, const MigStreamBuf *v, unsigned at, uint32_t id,
                     const uint8_t *payload, uint32_t len)
{
    mig_sb_init(out);
    mig_sb_header(out);
    for (unsigned i = 0; i < v->nrec; i++) {
        MigRec r = mig_sb_rec(v, i);
        if (i == at)
            mig_sb_record(out, r.type, id, payload, len);
        else
            mig_sb_put(out, r);
    }
    mig_sb_u32(out, MIG_REPLY_GO);
}

static int find(const MigStreamBuf *v, uint32_t type, unsigned nth)
{
    for (unsigned i = 0; i < v->nrec; i++)
        if (v->rec_type[i] == type && nth-- == 0)
            return (int)i;
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    if (fake_mig_init() < 0)
        return 1;
    fake_mig_reset();
    fake_mig_dirty_source();
    MigStreamBuf v, p, t;
    FakeMigBuild go = { .go = true }, paused = { .paused = true, .go = true };
    mig_sb_init(&v);
    mig_sb_init(&p);
    if (fake_mig_build(&v, &go) < 0 || fake_mig_build(&p, &paused) < 0)
        return 1;
    seed("valid", 0, v.p, v.len);
    seed("valid-raw-crcs", 1, v.p, v.len);
    seed("valid-xsave-too-big-for-kvm", 4, v.p, v.len);
    seed_sb("valid-paused", 0, &p);
    seed("no-go", 0, v.p, v.len - 4);
    int vcpu0 = find(&v, MIG_REC_VCPU, 0), vcpu1 = find(&v, MIG_REC_VCPU, 1);
    int ram0 = find(&v, MIG_REC_RAM, 0), dev1 = find(&v, MIG_REC_DEVICE, 1);
    int end = find(&v, MIG_REC_END, 0);
    if (vcpu0 < 0 || vcpu1 < 0 || ram0 < 0 || dev1 < 0 || end < 0) {
        fprintf(stderr, "fuzz-migration-seeds: the valid stream lacks a record\n");
        return 1;
    }
    seed("truncated-in-vcpu", 1, v.p, v.rec_off[vcpu0] + 100);
    seed("truncated-at-end", 1, v.p, v.rec_off[end]);
    /* a bit flipped in VCPU 1's payload, CRCs left as they are */
    memcpy(&t, &v, sizeof(t));
    t.p = malloc(v.len);
    if (!t.p)
        return 1;
    memcpy(t.p, v.p, v.len);
    t.p[v.rec_off[vcpu1] + 40] ^= 0x10;
    seed("flipped-vcpu", 1, t.p, t.len);
    seed("flipped-vcpu-crc-fixed", 2, t.p, t.len);
    memcpy(t.p, v.p, v.len);
    t.p[v.rec_off[ram0] + 8 + 3] = 0x7f; /* RAM length over its limit */
    seed("oversized-ram", 0, t.p, t.len);
    free(t.p);
    reorder(&t, &v, ram0, -1, -1);
    seed_sb("ram-before-config", 0, &t);
    reorder(&t, &v, -1, -1, vcpu1);
    seed_sb("duplicate-vcpu", 0, &t);
    reorder(&t, &v, -1, dev1, -1);
    seed_sb("missing-device", 0, &t);
    /* regressions: these loaded before the fix */
    trailing(&t, &v, (unsigned)vcpu1, 1);
    seed_sb("vcpu-trailing-bytes", 0, &t);
    trailing(&t, &v, (unsigned)end, 8);
    seed_sb("end-trailing-bytes", 0, &t);
    MigRec c = mig_sb_rec(&v, 0), d0 = mig_sb_rec(&v, (unsigned)find(&v, MIG_REC_DEVICE, 0));
    replaced(&t, &v, 0, 1, c.payload, c.len);
    seed_sb("config-id-1", 0, &t);
    uint8_t *pl = malloc(d0.len);
    if (!pl)
        return 1;
    memcpy(pl, d0.payload, d0.len);
    pl[4] = '\n'; /* "se\nial" */
    replaced(&t, &v, (unsigned)find(&v, MIG_REC_DEVICE, 0), 0, pl, d0.len);
    free(pl);
    seed_sb("device-name-newline", 0, &t);
    mig_sb_free(&v);
    return failures ? 1 : 0;
}
