/* SPDX-License-Identifier: MIT */
/* PVH ELF kernels (see loader.h). */
#include "vmm/boot/loader.h"

#include "vmm/boot/boot-linux.h"

#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define GIB4 (1ull << 32)
#define MAX_KERNEL_FILE (1ull << 30)

void *guest_ram_ptr(const GuestRam *ram, uint64_t gpa, uint64_t len)
{
    if (gpa < ram->below) {
        if (len > ram->below - gpa)
            return NULL;
        return ram->host + gpa;
    }
    if (gpa >= GIB4 && gpa - GIB4 < ram->above) {
        if (len > ram->above - (gpa - GIB4))
            return NULL;
        return ram->host + ram->below + (gpa - GIB4);
    }
    return NULL;
}

static bool in_file(size_t len, uint64_t off, uint64_t size)
{
    return off <= len && size <= len - off;
}

/* The PVH entry found in [off, off+size) of notes, or 0. */
static uint64_t find_pvh_note(const uint8_t *img, uint64_t off, uint64_t size)
{
    uint64_t end = off + size;
    while (end - off >= sizeof(Elf64_Nhdr)) {
        Elf64_Nhdr nh;
        memcpy(&nh, img + off, sizeof(nh));
        uint64_t name = off + sizeof(nh);
        uint64_t desc = name + ((nh.n_namesz + 3ull) & ~3ull);
        if (desc > end || nh.n_descsz > end - desc)
            return 0;
        if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
            !memcmp(img + name, "Xen", 4)) {
            if (nh.n_descsz == 4) {
                uint32_t e;
                memcpy(&e, img + desc, 4);
                return e;
            }
            if (nh.n_descsz == 8) {
                uint64_t e;
                memcpy(&e, img + desc, 8);
                return e;
            }
        }
        uint64_t next = desc + ((nh.n_descsz + 3ull) & ~3ull);
        if (next <= off || next > end)
            return 0;
        off = next;
    }
    return 0;
}

int kernel_image_parse(KernelImage *img, const void *data, size_t len, const char *name, char *err,
                       size_t errlen)
{
    memset(img, 0, sizeof(*img));
    const uint8_t *b = data;
    Elf64_Ehdr eh;
    if (len < sizeof(eh) || memcmp(b, ELFMAG, SELFMAG)) {
        snprintf(err, errlen, "--kernel %s: neither a bzImage nor an ELF file (" KERNEL_FORMATS ")",
                 name);
        return -1;
    }
    memcpy(&eh, b, sizeof(eh));
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
        eh.e_machine != EM_X86_64) {
        snprintf(err, errlen,
                 "--kernel %s: not a little-endian ELF64 x86-64 file (" KERNEL_FORMATS ")", name);
        return -1;
    }
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
        !in_file(len, eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr))) {
        snprintf(err, errlen, "--kernel %s: bad program header table", name);
        return -1;
    }
    uint64_t entry = 0, lowest = UINT64_MAX, highest = 0;
    unsigned loads = 0;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, b + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
        if (ph.p_type == PT_NOTE && !entry && in_file(len, ph.p_offset, ph.p_filesz))
            entry = find_pvh_note(b, ph.p_offset, ph.p_filesz);
        if (ph.p_type != PT_LOAD)
            continue;
        if (!in_file(len, ph.p_offset, ph.p_filesz) || ph.p_filesz > ph.p_memsz ||
            ph.p_paddr + ph.p_memsz < ph.p_paddr) {
            snprintf(err, errlen, "--kernel %s: segment %u lies outside the file or wraps", name,
                     i);
            return -1;
        }
        if (!ph.p_memsz)
            continue;
        loads++;
        if (ph.p_paddr < lowest)
            lowest = ph.p_paddr;
        if (ph.p_paddr + ph.p_memsz > highest)
            highest = ph.p_paddr + ph.p_memsz;
    }
    if (!entry) {
        snprintf(err, errlen, "--kernel %s: an ELF without a PVH entry note (" KERNEL_FORMATS ")",
                 name);
        return -1;
    }
    if (!loads) {
        snprintf(err, errlen, "--kernel %s: no loadable segment", name);
        return -1;
    }
    img->data = malloc(len);
    if (!img->data) {
        snprintf(err, errlen, "--kernel %s: out of memory", name);
        return -1;
    }
    memcpy(img->data, data, len);
    img->len = len;
    img->entry = entry;
    img->lowest = lowest;
    img->highest = highest;
    return 0;
}

void kernel_image_free(KernelImage *img)
{
    free(img->data);
    memset(img, 0, sizeof(*img));
}

int kernel_image_load(const KernelImage *img, const GuestRam *ram, char *err, size_t errlen)
{
    Elf64_Ehdr eh;
    memcpy(&eh, img->data, sizeof(eh));
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, img->data + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
        if (ph.p_type != PT_LOAD || !ph.p_memsz)
            continue;
        uint8_t *dst = guest_ram_ptr(ram, ph.p_paddr, ph.p_memsz);
        if (!dst) {
            snprintf(err, errlen,
                     "--kernel: segment %u [0x%llx, 0x%llx) does not fit in guest "
                     "RAM (increase --memory)",
                     i, (unsigned long long)ph.p_paddr,
                     /* NOLINTNEXTLINE(bugprone-misplaced-widening-cast): same width, for %llx */
                     (unsigned long long)(ph.p_paddr + ph.p_memsz));
            return -1;
        }
        if (ph.p_paddr < PVH_BOOT_INFO_END && ph.p_paddr + ph.p_memsz > PVH_START_INFO_ADDR) {
            snprintf(err, errlen,
                     "--kernel: segment %u overlaps the PVH boot information at "
                     "[0x%llx, 0x%llx)",
                     i, PVH_START_INFO_ADDR, PVH_BOOT_INFO_END);
            return -1;
        }
        memcpy(dst, img->data + ph.p_offset, ph.p_filesz);
        memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
    }
    return 0;
}

/* struct hvm_start_info and hvm_memmap_table_entry (Xen's PVH ABI). */
struct pvh_start_info {
    uint32_t magic, version, flags, nr_modules;
    uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
    uint32_t memmap_entries, reserved;
};
struct pvh_memmap_entry {
    uint64_t addr, size;
    uint32_t type, reserved;
};
#define PVH_START_MAGIC 0x336ec578u
#define E820_RAM 1
#define E820_RESERVED 2

uint64_t pvh_write_start_info(const GuestRam *ram, const char *cmdline, char *err, size_t errlen)
{
    struct pvh_start_info si = { .magic = PVH_START_MAGIC, .version = 1 };
    struct pvh_memmap_entry map[4];
    unsigned n = 0;

    map[n++] = (struct pvh_memmap_entry){ 0, 0xa0000, E820_RAM, 0 };
    map[n++] = (struct pvh_memmap_entry){ 0xa0000, 0x60000, E820_RESERVED, 0 };
    if (ram->below > 0x100000)
        map[n++] = (struct pvh_memmap_entry){ 0x100000, ram->below - 0x100000, E820_RAM, 0 };
    if (ram->above)
        map[n++] = (struct pvh_memmap_entry){ GIB4, ram->above, E820_RAM, 0 };
    si.memmap_paddr = PVH_MEMMAP_ADDR;
    si.memmap_entries = n;
    size_t clen = cmdline ? strlen(cmdline) : 0;
    if (clen >= PVH_BOOT_INFO_END - PVH_CMDLINE_ADDR) {
        snprintf(err, errlen, "--cmdline: longer than %llu bytes",
                 PVH_BOOT_INFO_END - PVH_CMDLINE_ADDR - 1);
        return 0;
    }
    si.cmdline_paddr = cmdline ? PVH_CMDLINE_ADDR : 0;
    uint8_t *p_si = guest_ram_ptr(ram, PVH_START_INFO_ADDR, sizeof(si));
    uint8_t *p_map = guest_ram_ptr(ram, PVH_MEMMAP_ADDR, sizeof(map));
    uint8_t *p_cmd = guest_ram_ptr(ram, PVH_CMDLINE_ADDR, PVH_BOOT_INFO_END - PVH_CMDLINE_ADDR);
    if (!p_si || !p_map || !p_cmd) {
        snprintf(err, errlen, "--memory: too small for the PVH boot information");
        return 0;
    }
    memcpy(p_si, &si, sizeof(si));
    memcpy(p_map, map, n * sizeof(map[0]));
    memset(p_cmd, 0, PVH_BOOT_INFO_END - PVH_CMDLINE_ADDR);
    if (clen)                         /* the NUL: zeroed above, clen < the area (checked) */
        memcpy(p_cmd, cmdline, clen); /* NOLINT(bugprone-not-null-terminated-result) */
    return PVH_START_INFO_ADDR;
}
