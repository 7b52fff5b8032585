/* SPDX-License-Identifier: MIT */
/* Smoke guest: reports a magic value, prints a line, exits with 0. */
#include "guest.h"

int guest_main(void)
{
    GUEST_ASSERT(inl(TESTDEV_PORT_REPORT) == TESTDEV_MAGIC);
    guest_report(0x600d);
    guest_puts("hello from CPL3\n");
    return 0;
}
