/* SPDX-License-Identifier: MIT */
/*
 * Booting Linux: the bzImage 64-bit boot protocol (setup header parsing,
 * zero page with e820, command line and initrd, identity-mapped page tables
 * and a GDT, the 64-bit entry state) and PVH start_info with modules (the
 * initrd) and the ACPI RSDP.  Pure: it writes guest RAM and fills register
 * structs; machine.c hands them to KVM.  Unit tested without /dev/kvm.
 *
 * Guest physical layout below 1 MiB (bzImage path):
 *   0x00500  GDT (null, null, 0x10 code64, 0x18 data)
 *   0x01000  zero page (struct boot_params)
 *   0x02000  PML4, 0x03000 PDPT, 0x08000-0x0bfff four PDs (2 MiB pages,
 *            identity map of the low 4 GiB)
 *   0x20000  command line (up to the kernel's cmdline_size)
 *   0xa0000-0x100000 reserved; ACPI tables at ACPI_TABLES_ADDR (0xe0000)
 *   0x100000 protected-mode kernel; the initrd goes at the top of low RAM
 * PVH path: start_info 0x6000, modules 0x6040, memory map 0x6100, command
 * line 0x7000 (loader.h).
 */
#ifndef STRATA_VMM_BOOT_LINUX_H
#define STRATA_VMM_BOOT_LINUX_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/boot/loader.h"

#define BOOT_GDT_ADDR 0x500ull
#define BOOT_ZERO_PAGE_ADDR 0x1000ull
#define BOOT_PML4_ADDR 0x2000ull
#define BOOT_PDPT_ADDR 0x3000ull
#define BOOT_PD_ADDR 0x8000ull /* 4 pages */
#define BOOT_CMDLINE_ADDR 0x20000ull
#define BOOT_CMDLINE_MAX 0x10000ull
#define BOOT_KERNEL_ADDR 0x100000ull
#define BOOT_CODE_SEL 0x10
#define BOOT_DATA_SEL 0x18
#define PVH_MODLIST_ADDR 0x6040ull

#define E820_TYPE_RAM 1
#define E820_TYPE_RESERVED 2
#define E820_TYPE_ACPI 3
#define BOOT_E820_MAX 8

/* One e820 / PVH memory map entry. */
typedef struct E820Entry {
    uint64_t addr, size;
    uint32_t type;
} E820Entry;

/* What the setup header of a bzImage says (validated). */
typedef struct BzImageInfo {
    uint16_t version;    /* boot protocol, e.g. 0x020f */
    uint8_t setup_sects; /* 512-byte sectors of real-mode setup (0 read as 4) */
    uint8_t loadflags;
    uint16_t xloadflags;
    uint32_t cmdline_size;    /* longest command line, NUL excluded */
    uint32_t initrd_addr_max; /* highest byte address an initrd may use */
    uint32_t kernel_alignment;
    uint32_t init_size; /* memory the kernel needs from its load address */
    uint64_t pref_address;
    size_t hdr_end;     /* end offset of the setup header in the file */
    size_t payload_off; /* protected-mode kernel: [payload_off, file end) */
    size_t payload_len;
} BzImageInfo;

/*
 * Reads a whole regular file of at most max bytes into private memory
 * (*buf, *len; release with boot_free_file): later changes to the file do
 * not reach the copy.  Anything but a regular file (a FIFO, a directory, a
 * device) is refused without blocking.  `what` names the option in
 * messages ("--initrd").  0, or -1 with err set.
 */
int boot_read_file(const char *path, size_t max, const char *what, uint8_t **buf, size_t *len,
                   char *err, size_t errlen);
/* Releases what boot_read_file returned (NULL is a no-op). */
void boot_free_file(uint8_t *buf, size_t len);

/* True if data looks like a bzImage ("HdrS" at 0x202, 0xaa55 at 0x1fe). */
bool bzimage_probe(const uint8_t *data, size_t len);

/*
 * Validates a bzImage's setup header for the 64-bit boot protocol
 * (protocol >= 2.12, XLF_KERNEL_64, LOADED_HIGH, setup and payload inside
 * the file).  0, or -1 with a message naming `name` in err.
 */
int bzimage_parse(const uint8_t *data, size_t len, const char *name, BzImageInfo *out, char *err,
                  size_t errlen);

/*
 * Fills out[] with the guest's memory map: low RAM below 640 KiB, the
 * reserved legacy/ACPI area, RAM from 1 MiB to ram->below and RAM above
 * 4 GiB.  Returns the number of entries (<= max).
 */
unsigned boot_e820_build(const GuestRam *ram, E820Entry *out, unsigned max);

/* Everything a Linux boot needs besides the kernel itself. */
typedef struct LinuxBootParams {
    const char *cmdline;   /* may be NULL */
    const uint8_t *initrd; /* may be NULL */
    size_t initrd_len;
    uint64_t rsdp_addr; /* 0: none */
} LinuxBootParams;

/*
 * Chooses where the initrd goes: page aligned, as high as possible below
 * min(ram->below, limit + 1), not below `lowest`.  0 on success with *gpa
 * set, or -1 with err set (RAM too small).
 */
int boot_place_initrd(const GuestRam *ram, size_t len, uint64_t lowest, uint64_t limit,
                      uint64_t *gpa, char *err, size_t errlen);

/*
 * Loads a parsed bzImage: payload at 1 MiB, zero page (setup header copied,
 * e820, command line, initrd, RSDP), GDT and page tables.  Checks that the
 * kernel's init_size fits in RAM.  0, or -1 with err set.
 */
int bzimage_load(const uint8_t *data, size_t len, const BzImageInfo *bz, const GuestRam *ram,
                 const LinuxBootParams *p, char *err, size_t errlen);

/*
 * Writes PVH start_info (version 1: memory map, command line, the initrd
 * as module 0, rsdp) for a kernel whose image ends at kernel_end.  Returns
 * the start_info's guest physical address, or 0 with err set.
 */
uint64_t pvh_write_boot_info(const GuestRam *ram, const LinuxBootParams *p, uint64_t kernel_end,
                             char *err, size_t errlen);

/*
 * Fills sregs/regs with the 64-bit boot protocol entry state: long mode,
 * paging on the tables bzimage_load wrote, CS=0x10, DS/ES/SS=0x18,
 * rip = startup_64 (1 MiB + 0x200), rsi = zero page, interrupts off.
 * sregs should come from KVM_GET_SREGS (only the fields that matter are
 * changed).
 */
void bzimage_entry_state(struct kvm_sregs *sregs, struct kvm_regs *regs);

#endif /* STRATA_VMM_BOOT_LINUX_H */
