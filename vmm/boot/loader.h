/* SPDX-License-Identifier: MIT */
/*
 * PVH ELF kernels: validation, loading into guest RAM, start_info.
 */
#ifndef STRATA_VMM_BOOT_LOADER_H
#define STRATA_VMM_BOOT_LOADER_H

#include <stddef.h>
#include <stdint.h>

/* Where guest RAM lives: [0, below) at guest physical 0 and, if above > 0,
 * [below, below+above) of the host buffer at guest physical 4 GiB. */
typedef struct GuestRam {
    uint8_t *host;
    uint64_t below; /* bytes mapped at guest physical 0 */
    uint64_t above; /* bytes mapped at 4 GiB */
} GuestRam;

/* A validated PVH ELF image kept in memory (for reloads at reset). */
typedef struct KernelImage {
    uint8_t *data;
    size_t len;
    uint64_t entry;           /* PVH 32-bit entry point */
    uint64_t lowest, highest; /* guest physical span of the PT_LOAD segments */
} KernelImage;

/* Host pointer to [gpa, gpa+len) of guest RAM, or NULL if not all RAM. */
void *guest_ram_ptr(const GuestRam *ram, uint64_t gpa, uint64_t len);

/* What --kernel accepts, for the messages that refuse a file. */
#define KERNEL_FORMATS \
    "accepted: a Linux bzImage with boot protocol 2.12 or later and a 64-bit entry, or a " \
    "little-endian x86-64 ELF64 with a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY), such as an " \
    "uncompressed vmlinux built with CONFIG_PVH"

/* Parses an image already in memory (copied).  0 or -1 with err set. */
int kernel_image_parse(KernelImage *img, const void *data, size_t len, const char *name, char *err,
                       size_t errlen);
/* Frees the image. */
void kernel_image_free(KernelImage *img);
/* Copies the PT_LOAD segments into ram (zero filling to p_memsz).
 * 0, or -1 with err set if a segment does not fit in RAM. */
int kernel_image_load(const KernelImage *img, const GuestRam *ram, char *err, size_t errlen);

/* Guest physical layout of the boot information (below 1 MiB). */
#define PVH_START_INFO_ADDR 0x6000ull
#define PVH_MEMMAP_ADDR 0x6100ull  /* up to 8 entries */
#define PVH_CMDLINE_ADDR 0x7000ull /* up to 4 KiB, NUL terminated */
#define PVH_BOOT_INFO_END 0x8000ull

/* Writes hvm_start_info (version 1: memory map, command line) into RAM.
 * Returns the start_info's guest physical address, or 0 with err set. */
uint64_t pvh_write_start_info(const GuestRam *ram, const char *cmdline, char *err, size_t errlen);

#endif /* STRATA_VMM_BOOT_LOADER_H */
