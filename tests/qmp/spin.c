/* SPDX-License-Identifier: MIT */
/* Guest for the QMP tests: says hello on the UART, then counts at CPL3
 * forever (the host reads spin_counter through `xp`). */
#include "guest.h"

volatile uint64_t spin_counter;

static void uart_puts(const char *s)
{
    while (*s)
        outb(0x3f8, (uint8_t)*s++);
}

int guest_main(void)
{
    guest_report(0x5b1e);
    uart_puts("spin: counting\n");
    for (;;)
        spin_counter++;
    return 0;
}
