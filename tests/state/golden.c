/* SPDX-License-Identifier: MIT */
/* Golden state sections (see golden.h). */
#include "tests/state/golden.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/common/check.h"

#define GOLDEN_MAX (1u << 20)

static void path_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s.bin", GOLDEN_DIR, name);
}

bool golden_writing(void)
{
    const char *w = getenv("STRATA_STATE_GOLDEN_WRITE");
    return w && *w && strcmp(w, "0");
}

uint8_t *golden_read(const char *name, size_t *len)
{
    char path[512];
    path_of(path, sizeof(path), name);
    FILE *f = fopen(path, "rb");
    CHECK(f, "%s: %s", path, strerror(errno));
    uint8_t *buf = malloc(GOLDEN_MAX);
    CHECK(buf, "out of memory");
    *len = fread(buf, 1, GOLDEN_MAX, f);
    CHECK(!ferror(f) && *len < GOLDEN_MAX, "%s: unreadable or too large", path);
    fclose(f);
    return buf;
}

static void golden_write(const char *name, const uint8_t *buf, size_t len)
{
    char path[512];
    path_of(path, sizeof(path), name);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(buf, 1, len, f) == len && fclose(f) == 0, "writing %s failed", path);
    printf("wrote %s (%zu bytes)\n", path, len);
}

bool golden_matches(const char *name, const uint8_t *buf, size_t len)
{
    if (golden_writing()) {
        golden_write(name, buf, len);
        return true;
    }
    size_t glen, i = 0;
    uint8_t *g = golden_read(name, &glen);
    while (i < len && i < glen && buf[i] == g[i])
        i++;
    bool same = len == glen && i == len;
    if (!same)
        fprintf(stderr, "%s: %zu bytes against the fixture's %zu, first difference at %zu\n", name,
                len, glen, i);
    free(g);
    return same;
}
