/* SPDX-License-Identifier: MIT */
/* The QMP server's memory bounds (see qmp-limits.h). */
#include "vmm/control/qmp-limits.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

static size_t over_base(size_t cap, size_t base)
{
    return cap > base ? cap - base : 0;
}

int qmp_buf_resize(QmpPool *pool, char **buf, size_t *cap, size_t base, size_t want)
{
    size_t had = over_base(*cap, base), need = over_base(want, base);
    if (need > had && need - had > pool->size - pool->used)
        return -ENOSPC;
    char *nb = realloc(*buf, want ? want : 1);
    if (!nb)
        return -ENOMEM;
    *buf = nb;
    *cap = want;
    pool->used = pool->used - had + need;
    return 0;
}

int qmp_buf_reserve(QmpPool *pool, char **buf, size_t *cap, size_t base, size_t limit, size_t need)
{
    if (need <= *cap)
        return 0;
    if (need > limit)
        return -ENOSPC;
    size_t want = *cap > base ? *cap : base;
    while (want < need)
        want *= 2;
    if (want > limit)
        want = limit;
    int r = qmp_buf_resize(pool, buf, cap, base, want);
    if (r == -ENOSPC && want > need) {
        want = (need + 4095) & ~(size_t)4095;
        r = qmp_buf_resize(pool, buf, cap, base, want < limit ? want : limit);
    }
    return r;
}

void qmp_buf_trim(QmpPool *pool, char **buf, size_t *cap, size_t base, size_t used)
{
    if (*cap > base && used <= base / 2)
        (void)qmp_buf_resize(pool, buf, cap, base, base);
}

void qmp_buf_free(QmpPool *pool, char **buf, size_t *cap, size_t base)
{
    pool->used -= over_base(*cap, base);
    free(*buf);
    *buf = NULL;
    *cap = 0;
}

size_t qmp_count_tokens(const char *s, size_t len)
{
    size_t n = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[' || ch == ',' || ch == ':') {
            n++;
        }
    }
    return n;
}

uint64_t qmp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
