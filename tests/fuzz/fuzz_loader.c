/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the Linux boot loaders on arbitrary files.  The input
 * (after 3 control bytes) is the kernel file: if it probes as a bzImage it
 * goes through bzimage_parse and bzimage_load, otherwise through the PVH
 * ELF parser (kernel_image_parse, which walks program headers and notes),
 * kernel_image_load and both start_info writers.
 *
 * Control bytes: [0] bits 0-1 guest RAM below 4 GiB (1 MiB, 2 MiB + 4 KiB,
 * 8 MiB, 40 KiB), bit 2 RAM above 4 GiB (64 KiB), bit 3 a command line;
 * [1] command line length / 16; [2] initrd length / 256.  Guest RAM is a
 * heap buffer of exactly that size, so ASan sees any write past it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/boot/boot-linux.h"
#include "vmm/boot/loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint64_t below_sizes[4] = { 1u << 20, (2u << 20) + 4096, 8u << 20, 40u << 10 };

static uint8_t *ram_bufs[8];

static GuestRam make_ram(unsigned sel)
{
    GuestRam r = { NULL, below_sizes[sel & 3], sel & 4 ? 0x10000 : 0 };
    if (!ram_bufs[sel & 7]) {
        ram_bufs[sel & 7] = malloc(r.below + r.above);
        if (!ram_bufs[sel & 7])
            abort();
    }
    r.host = ram_bufs[sel & 7];
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    GuestRam ram = make_ram(data[0]);
    size_t clen = (size_t)data[1] * 16;
    size_t ilen = (size_t)data[2] * 256;
    int with_cmdline = data[0] & 8;
    data += 3, size -= 3;
    char *cmdline = NULL;
    if (with_cmdline) {
        cmdline = malloc(clen + 1);
        if (!cmdline)
            abort();
        memset(cmdline, 'c', clen);
        cmdline[clen] = 0;
    }
    uint8_t *initrd = ilen ? malloc(ilen) : NULL;
    if (initrd)
        memset(initrd, 0x5a, ilen);
    LinuxBootParams p = { cmdline, initrd, ilen, 0xe0000 };
    char err[512];

    if (bzimage_probe(data, size)) {
        BzImageInfo bz;
        if (bzimage_parse(data, size, "fuzz", &bz, err, sizeof(err)) == 0) {
            if (bz.payload_off + bz.payload_len != size || bz.payload_off < 512 ||
                bz.hdr_end > size)
                abort();
            bzimage_load(data, size, &bz, &ram, &p, err, sizeof(err));
        }
    } else {
        KernelImage img;
        if (kernel_image_parse(&img, data, size, "fuzz", err, sizeof(err)) == 0) {
            if (!img.entry || img.lowest >= img.highest || img.len != size)
                abort();
            if (kernel_image_load(&img, &ram, err, sizeof(err)) == 0)
                pvh_write_boot_info(&ram, &p, img.highest, err, sizeof(err));
            pvh_write_start_info(&ram, cmdline, err, sizeof(err));
            kernel_image_free(&img);
        }
    }
    free(initrd);
    free(cmdline);
    return 0;
}
