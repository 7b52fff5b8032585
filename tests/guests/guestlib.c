/* SPDX-License-Identifier: MIT */
/* Freestanding helpers linked into every tiny guest. */
#include "guest.h"

void guest_exit(uint32_t code)
{
    for (;;)
        outl(TESTDEV_PORT_EXIT, code);
}

void guest_puts(const char *s)
{
    while (*s)
        outb(TESTDEV_PORT_PUTC, (uint8_t)*s++);
}

void guest_put_hex(uint64_t v)
{
    char buf[17];
    int i = 16;

    buf[16] = 0;
    do {
        buf[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v && i > 0);
    guest_puts(&buf[i]);
}

static void put_dec(uint32_t v)
{
    char buf[11];
    int i = 10;

    buf[10] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    guest_puts(&buf[i]);
}

void guest_assert_fail(const char *file, int line, const char *expr)
{
    guest_puts("assertion failed: ");
    guest_puts(file);
    guest_puts(":");
    put_dec((uint32_t)line);
    guest_puts(": ");
    guest_puts(expr);
    guest_puts("\n");
    guest_exit(TESTDEV_EXIT_ASSERT);
}

void *memset(void *d, int c, size_t n)
{
    volatile uint8_t *p = d; /* volatile: keep gcc from calling memset */

    while (n--)
        *p++ = (uint8_t)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    volatile uint8_t *p = d;
    const uint8_t *q = s;

    while (n--)
        *p++ = *q++;
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *p = a, *q = b;

    for (; n; n--, p++, q++)
        if (*p != *q)
            return *p < *q ? -1 : 1;
    return 0;
}
