/* SPDX-License-Identifier: MIT */
/*
 * Line-level mutations of a fixture, for robustness runs (mtree-replay
 * --mutate): odd but plausible input — lines dropped, repeated, swapped,
 * re-indented, digits changed, names and alias targets exchanged — must end
 * in PASS or a clear FAIL, never a crash.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/replay/replay.h"

typedef struct Lines {
    char **l;
    size_t n;
} Lines;

static uint64_t rnd(uint64_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 7;
    *st ^= *st << 17;
    return *st;
}

static char *dupn(const char *s, size_t n)
{
    char *c = malloc(n + 1);

    if (c) {
        memcpy(c, s, n);
        c[n] = 0;
    }
    return c;
}

/* "prefix" + "): " + the part after the first "): " of other (or NULL). */
static char *swap_name(const char *line, const char *other)
{
    const char *a = strstr(line, "): "), *b = strstr(other, "): ");
    size_t na, nb;
    char *r;

    if (!a || !b) {
        return NULL;
    }
    na = (size_t)(a - line) + 3;
    nb = strlen(b + 3);
    r = malloc(na + nb + 1);
    if (r) {
        memcpy(r, line, na);
        memcpy(r + na, b + 3, nb + 1);
    }
    return r;
}

static void mutate_once(Lines *L, uint64_t *st)
{
    size_t i = (size_t)(rnd(st) % L->n), j = (size_t)(rnd(st) % L->n), k;
    char *s = L->l[i], *r = NULL;

    switch (rnd(st) % 7) {
    case 0: /* drop a line */
        free(s);
        memmove(&L->l[i], &L->l[i + 1], (L->n - i - 1) * sizeof(*L->l));
        L->n--;
        return;
    case 1: /* repeat a line (there is room: see replay_mutate) */
        r = strdup(L->l[j]);
        if (r) {
            memmove(&L->l[i + 1], &L->l[i], (L->n - i) * sizeof(*L->l));
            L->l[i] = r;
            L->n++;
        }
        return;
    case 2: /* swap two lines */
        L->l[i] = L->l[j];
        L->l[j] = s;
        return;
    case 3: /* change a hex digit */
        k = strlen(s);
        if (k) {
            k = (size_t)(rnd(st) % k);
            if ((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f')) {
                s[k] = "0123456789abcdef"[rnd(st) % 16];
            }
        }
        return;
    case 4: /* indent one level deeper */
        k = strlen(s);
        r = malloc(k + 3);
        if (r) {
            r[0] = r[1] = ' ';
            memcpy(r + 2, s, k + 1);
        }
        break;
    case 5: /* one level shallower */
        if (s[0] == ' ' && s[1] == ' ') {
            r = strdup(s + 2);
        }
        break;
    default: /* another line's name (and alias part, type kept) */
        r = swap_name(s, L->l[j]);
        break;
    }
    if (r) {
        free(s);
        L->l[i] = r;
    }
}

char *replay_mutate(const char *text, size_t len, uint64_t *rng, size_t *outlen)
{
    Lines L = { 0 };
    size_t cap = 16, pos = 0, i, total = 0, edits;
    char *out = NULL, *p;

    for (i = 0; i < len; i++) {
        cap += text[i] == '\n';
    }
    L.l = calloc(cap, sizeof(*L.l));
    if (!L.l) {
        return NULL;
    }
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - text - pos) : len - pos;

        L.l[L.n] = dupn(text + pos, n);
        if (!L.l[L.n]) {
            goto out;
        }
        L.n++;
        pos += n + 1;
    }
    edits = 1 + (size_t)(rnd(rng) % 6);
    for (i = 0; i < edits && L.n > 1 && L.n + 1 < cap; i++) {
        mutate_once(&L, rng);
    }
    for (i = 0; i < L.n; i++) {
        total += strlen(L.l[i]) + 1;
    }
    out = malloc(total + 1);
    if (out) {
        p = out;
        for (i = 0; i < L.n; i++) {
            size_t n = strlen(L.l[i]);

            memcpy(p, L.l[i], n);
            p[n] = '\n';
            p += n + 1;
        }
        *p = 0;
        *outlen = total;
    }
out:
    for (i = 0; i < L.n; i++) {
        free(L.l[i]);
    }
    free(L.l);
    return out;
}
