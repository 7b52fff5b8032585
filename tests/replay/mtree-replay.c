/* SPDX-License-Identifier: MIT */
/*
 * mtree-replay: the differential test against QEMU 7.2's `info mtree`.
 *
 *   mtree-replay [-v] [--show] [--steps] [--shuffle SEED] [--mutate N] [--expect-fail]
 *                FIXTURE...
 *
 * Each FIXTURE is QEMU's `info mtree -D` followed by `info mtree -f -D`.
 * The region tree is rebuilt through memory/memory.h's public API, printed
 * with mtree_info_str() and compared with the fixture section by section
 * (sections are matched by name: QEMU prints them in hash-table order),
 * line by line inside a section.  One line per fixture: "PASS name" or
 * "FAIL name" and the first differing lines.  Exit status 0 iff all pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/replay/replay.h"

/* Runs one fixture file; prints its PASS/FAIL line and details; true if it passed. */
static bool run_fixture(const char *path, const ReplayRunOpts *o)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char err[512], *text;
    size_t len;
    bool ok;

    text = mtp_read_file(path, &len, err, sizeof(err));
    if (!text) {
        printf("FAIL %s\n  %s\n", base, err);
        return false;
    }
    ok = replay_run_text(base, text, len, o, stdout);
    free(text);
    return ok;
}

/* Replays n mutated copies of a fixture; true unless the file cannot be read. */
static bool mutate_fixture(const char *path, unsigned n, uint64_t seed, const ReplayRunOpts *o)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    uint64_t rng = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    unsigned i, pass = 0, fail = 0;
    char err[512], *text;
    size_t len;

    text = mtp_read_file(path, &len, err, sizeof(err));
    if (!text) {
        printf("FAIL %s\n  %s\n", base, err);
        return false;
    }
    for (i = 0; i < n; i++) {
        size_t mlen;
        char *mt = replay_mutate(text, len, &rng, &mlen);

        if (!mt) {
            continue;
        }
        if (replay_run_text(base, mt, mlen, o, NULL)) {
            pass++;
        } else {
            fail++;
        }
        free(mt);
    }
    printf("MUTATED %s: %u runs, %u PASS, %u FAIL, none crashed\n", base, pass + fail, pass, fail);
    free(text);
    return true;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mtree-replay [-v] [--show] [--steps] [--shuffle SEED] [--mutate N]\n"
               "                    [--expect-fail] FIXTURE...\n"
               "  Rebuilds each QEMU `info mtree -D` + `info mtree -f -D` dump with strata's\n"
               "  memory API and compares strata's output with it.\n"
               "  -v              also print the replay model's inference notes on PASS\n"
               "  --show          print strata's output\n"
               "  --steps         no enclosing transaction: every API call commits\n"
               "  --shuffle SEED  build in a random (equivalent) order\n"
               "  --expect-fail   exit 0 iff every fixture FAILs cleanly (odd-input tests)\n"
               "  --mutate N      replay N randomly edited copies of each fixture; passes\n"
               "                  if nothing crashes (robustness against odd input)\n");
}

int main(int argc, char **argv)
{
    ReplayRunOpts o = { 0 };
    int i, nfix = 0, nfail = 0;
    unsigned long mutate = 0;
    bool expect_fail = false;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            o.verbose = true;
        } else if (strcmp(argv[i], "--show") == 0) {
            o.show = true;
        } else if (strcmp(argv[i], "--expect-fail") == 0) {
            expect_fail = true;
        } else if (strcmp(argv[i], "--steps") == 0) {
            o.build.steps = true;
        } else if (strcmp(argv[i], "--shuffle") == 0 && i + 1 < argc) {
            char *end;

            o.build.shuffle = strtoull(argv[++i], &end, 0);
            if (*end || !o.build.shuffle) {
                fprintf(stderr, "mtree-replay: --shuffle wants a non-zero number\n");
                return 2;
            }
            argv[i] = NULL;
        } else if (strcmp(argv[i], "--mutate") == 0 && i + 1 < argc) {
            char *end;

            mutate = strtoul(argv[++i], &end, 0);
            if (*end || !mutate || mutate > 1000000) {
                fprintf(stderr, "mtree-replay: --mutate wants a count from 1 to 1000000\n");
                return 2;
            }
            argv[i] = NULL;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "mtree-replay: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    for (i = 1; i < argc; i++) {
        if (!argv[i] || (argv[i][0] == '-' && argv[i][1])) {
            continue;
        }
        nfix++;
        if (mutate ? !mutate_fixture(argv[i], (unsigned)mutate, o.build.shuffle + (uint64_t)i, &o)
                   : !run_fixture(argv[i], &o)) {
            nfail++;
        }
    }
    if (nfix == 0) {
        usage(stderr);
        return 2;
    }
    if (expect_fail) {
        return nfail == nfix ? 0 : 1;
    }
    return nfail ? 1 : 0;
}
