/* SPDX-License-Identifier: MIT */
/* exit-latency's guest: runs the loops its host asks for, at CPL3. */
#include "guest.h"
#include "bench.h"

int guest_main(void)
{
    for (;;) {
        uint32_t cmd = guest_sync(PH_NEXT);
        uint32_t n;

        if (cmd == CMD_DONE || cmd == 0xffffffffu) /* (no host: QEMU) */
            return 0;
        n = guest_sync(PH_ARG);
        switch (cmd) {
        case CMD_PIO:
            for (uint32_t i = 0; i < n; i++)
                outl(BENCH_PORT, i);
            break;
        case CMD_MMIO:
            for (uint32_t i = 0; i < n; i++)
                mmio_write32(BENCH_MMIO, i);
            break;
        case CMD_PIO_EVT:
            for (uint32_t i = 0; i < n; i++)
                outl(BENCH_PORT_EVT, i);
            break;
        case CMD_MMIO_EVT:
            for (uint32_t i = 0; i < n; i++)
                mmio_write32(BENCH_MMIO + BENCH_MMIO_EVT, i);
            break;
        case CMD_DIRTY: {
            uint64_t pages = BENCH_DIRTY_SIZE / BENCH_PAGE;
            uint64_t step = n ? pages / n : 1;

            for (uint64_t i = 0; i < n; i++)
                mmio_write8(BENCH_DIRTY_BASE + i * step * BENCH_PAGE, (uint8_t)i);
            break;
        }
        default:
            break;
        }
        guest_sync(PH_END);
    }
}
