/* SPDX-License-Identifier: MIT */
/* Printing outside text safely (see text.h). */
#include "vmm/text.h"

#include <stdint.h>
#include <string.h>

/* The escaped form of byte c in e[4]; its length. */
static size_t escape_byte(uint8_t c, char *e)
{
    static const char hex[] = "0123456789abcdef";
    if (c == '\\') {
        e[0] = e[1] = '\\';
        return 2;
    }
    if (c >= 0x20 && c < 0x7f) {
        e[0] = (char)c;
        return 1;
    }
    e[0] = '\\';
    e[1] = 'x';
    e[2] = hex[c >> 4];
    e[3] = hex[c & 15];
    return 4;
}

char *text_escape(char *dst, size_t cap, const void *src, size_t len)
{
    const uint8_t *s = src;
    char e[4];
    if (!cap)
        return dst;
    size_t total = 0;
    for (size_t i = 0; i < len && total < cap; i++)
        total += escape_byte(s[i], e);
    /* all of it, or as much as leaves room for "..." and the NUL */
    size_t room = total < cap ? cap - 1 : (cap > 4 ? cap - 4 : 0);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        size_t w = escape_byte(s[i], e);
        if (w > room - n)
            break;
        memcpy(dst + n, e, w);
        n += w;
    }
    if (total >= cap)
        for (int d = 0; d < 3 && n + 1 < cap; d++)
            dst[n++] = '.';
    dst[n] = 0;
    return dst;
}
