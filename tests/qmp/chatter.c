/* SPDX-License-Identifier: MIT */
/* Guest for the operations test: prints "tick N" lines on the UART every
 * TICK_POLLS polls of its line status (so the host sees output arrive all
 * the time) and echoes each byte it receives as "<c>". */
#include "guest.h"

#define UART 0x3f8
#define UART_LSR (UART + 5)
#define TICK_POLLS 2000u

static void uart_puts(const char *s)
{
    while (*s)
        outb(UART, (uint8_t)*s++);
}

static void uart_putu(unsigned v)
{
    char buf[12];
    int n = 0;
    do {
        buf[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        outb(UART, (uint8_t)buf[--n]);
}

int guest_main(void)
{
    unsigned tick = 0, polls = 0;
    uart_puts("chatter: ready\n");
    for (;;) {
        if (inb(UART_LSR) & 1) {
            uint8_t c = inb(UART);
            outb(UART, '<');
            outb(UART, c);
            outb(UART, '>');
        }
        if (++polls == TICK_POLLS) {
            polls = 0;
            uart_puts("tick ");
            uart_putu(++tick);
            outb(UART, '\n');
        }
    }
    return 0;
}
