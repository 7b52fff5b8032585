/* SPDX-License-Identifier: MIT */
/* Guest for the QMP tests: exits at once with code 3. */
#include "guest.h"

int guest_main(void)
{
    guest_puts("failing on purpose\n");
    return 3;
}
