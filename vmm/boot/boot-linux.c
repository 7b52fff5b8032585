/* SPDX-License-Identifier: MIT */
/* Booting Linux: bzImage 64-bit boot protocol and PVH (see boot-linux.h). */
#include "vmm/boot/boot-linux.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GIB4 (1ull << 32)

/* Offsets into the bzImage file / struct boot_params (the zero page). */
#define BP_ACPI_RSDP 0x070 /* u64, protocol 2.14 */
#define BP_EXT_RAMDISK_IMG 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMDLINE 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR 0x1f1 /* setup_sects: the setup header starts here */
#define BP_BOOT_FLAG 0x1fe
#define BP_JUMP 0x200
#define BP_MAGIC 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_CMD_LINE_PTR 0x228
#define BP_INITRD_ADDR_MAX 0x22c
#define BP_KERNEL_ALIGN 0x230
#define BP_RELOCATABLE 0x234
#define BP_XLOADFLAGS 0x236
#define BP_CMDLINE_SIZE 0x238
#define BP_PREF_ADDRESS 0x258
#define BP_INIT_SIZE 0x260
#define BP_E820_TABLE 0x2d0 /* 128 entries of 20 bytes */
#define BP_SIZE 0x1000
#define BP_HDR_MAX_END 0x290 /* never copy more than this much header */

#define HDR_MAGIC 0x53726448u /* "HdrS" */
#define LOADED_HIGH 0x01
#define XLF_KERNEL_64 0x0001
#define MIN_PROTOCOL 0x020c /* 2.12: xloadflags */

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, (uint16_t)v);
    wr16(p + 2, (uint16_t)(v >> 16));
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

int boot_read_file(const char *path, size_t max, const char *what, uint8_t **buf, size_t *len,
                   char *err, size_t errlen)
{
    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s %s: not a regular file", what, path);
        close(fd);
        return -1;
    }
    if ((uint64_t)st.st_size > max) {
        snprintf(err, errlen, "%s %s: larger than %zu MiB", what, path, max >> 20);
        close(fd);
        return -1;
    }
    /* A copy in private anonymous memory, not a mapping of the file: the
     * file may be truncated (SIGBUS on the next access) or rewritten while
     * the VM lives, and every reset must boot what was read at start. */
    size_t n = (size_t)st.st_size;
    uint8_t *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, p + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r < 0)
                snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
            else
                snprintf(err, errlen, "%s %s: the file shrank while it was read", what, path);
            close(fd);
            munmap(p, n ? n : 1);
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    mprotect(p, n ? n : 1, PROT_READ); /* nothing writes it after this */
    *buf = p;
    *len = n;
    return 0;
}

void boot_free_file(uint8_t *buf, size_t len)
{
    if (buf)
        munmap(buf, len ? len : 1);
}

bool bzimage_probe(const uint8_t *data, size_t len)
{
    return len >= BP_MAGIC + 4 && rd16(data + BP_BOOT_FLAG) == 0xaa55 &&
           rd32(data + BP_MAGIC) == HDR_MAGIC;
}

int bzimage_parse(const uint8_t *data, size_t len, const char *name, BzImageInfo *out, char *err,
                  size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!bzimage_probe(data, len)) {
        snprintf(err, errlen, "--kernel %s: not a bzImage (no HdrS setup header)", name);
        return -1;
    }
    if (len < BP_INIT_SIZE + 4) {
        snprintf(err, errlen, "--kernel %s: truncated setup header", name);
        return -1;
    }
    out->version = rd16(data + BP_VERSION);
    if (out->version < MIN_PROTOCOL) {
        snprintf(err, errlen,
                 "--kernel %s: boot protocol %u.%02u is too old (2.12 or later "
                 "is needed for the 64-bit entry)",
                 name, out->version >> 8, out->version & 0xff);
        return -1;
    }
    /* The header ends where the jump at 0x200 lands (0x202 + its offset). */
    out->hdr_end = (size_t)BP_MAGIC + data[BP_JUMP + 1];
    if (data[BP_JUMP] != 0xeb || out->hdr_end < BP_INIT_SIZE + 4 || out->hdr_end > BP_HDR_MAX_END) {
        snprintf(err, errlen, "--kernel %s: setup header has an unexpected length", name);
        return -1;
    }
    out->setup_sects = data[BP_HDR] ? data[BP_HDR] : 4;
    out->loadflags = data[BP_LOADFLAGS];
    out->xloadflags = rd16(data + BP_XLOADFLAGS);
    out->cmdline_size = rd32(data + BP_CMDLINE_SIZE);
    out->initrd_addr_max = rd32(data + BP_INITRD_ADDR_MAX);
    out->kernel_alignment = rd32(data + BP_KERNEL_ALIGN);
    out->init_size = rd32(data + BP_INIT_SIZE);
    out->pref_address = rd64(data + BP_PREF_ADDRESS);
    if (!(out->xloadflags & XLF_KERNEL_64)) {
        snprintf(err, errlen,
                 "--kernel %s: the kernel has no 64-bit entry point "
                 "(XLF_KERNEL_64 not set)",
                 name);
        return -1;
    }
    if (!(out->loadflags & LOADED_HIGH)) {
        snprintf(err, errlen, "--kernel %s: not a bzImage (zImage loaded low)", name);
        return -1;
    }
    out->payload_off = ((size_t)out->setup_sects + 1) * 512;
    if (out->payload_off >= len || len - out->payload_off <= 0x200) {
        snprintf(err, errlen,
                 "--kernel %s: the protected-mode kernel lies outside the file "
                 "(setup_sects %u, file %zu bytes)",
                 name, out->setup_sects, len);
        return -1;
    }
    out->payload_len = len - out->payload_off;
    if (out->kernel_alignment & (out->kernel_alignment - 1)) {
        snprintf(err, errlen, "--kernel %s: kernel_alignment 0x%x is not a power of two", name,
                 out->kernel_alignment);
        return -1;
    }
    if (out->pref_address >= GIB4 || out->pref_address < BOOT_KERNEL_ADDR) {
        snprintf(err, errlen, "--kernel %s: preferred load address 0x%llx outside [1M, 4G)", name,
                 (unsigned long long)out->pref_address);
        return -1;
    }
    return 0;
}

unsigned boot_e820_build(const GuestRam *ram, E820Entry *out, unsigned max)
{
    E820Entry e[4];
    unsigned n = 0;
    e[n++] = (E820Entry){ 0, 0xa0000, E820_TYPE_RAM };
    e[n++] = (E820Entry){ 0xa0000, 0x60000, E820_TYPE_RESERVED };
    if (ram->below > BOOT_KERNEL_ADDR)
        e[n++] = (E820Entry){ BOOT_KERNEL_ADDR, ram->below - BOOT_KERNEL_ADDR, E820_TYPE_RAM };
    if (ram->above)
        e[n++] = (E820Entry){ GIB4, ram->above, E820_TYPE_RAM };
    if (n > max)
        n = max;
    memcpy(out, e, n * sizeof(e[0]));
    return n;
}

int boot_place_initrd(const GuestRam *ram, size_t len, uint64_t lowest, uint64_t limit,
                      uint64_t *gpa, char *err, size_t errlen)
{
    uint64_t top = ram->below;
    if (limit < GIB4 && limit + 1 < top)
        top = limit + 1;
    top &= ~0xfffull;
    uint64_t need = ((uint64_t)len + 0xfff) & ~0xfffull;
    if (need > top || top - need < lowest) {
        snprintf(err, errlen,
                 "--initrd: %zu bytes do not fit between the kernel's end "
                 "(0x%llx) and 0x%llx (increase --memory)",
                 len, (unsigned long long)lowest, (unsigned long long)top);
        return -1;
    }
    *gpa = top - need;
    return 0;
}

static int write_cmdline(const GuestRam *ram, uint64_t gpa, uint64_t area, size_t max,
                         const char *cmdline, char *err, size_t errlen)
{
    size_t clen = cmdline ? strlen(cmdline) : 0;
    if (clen > max || clen >= area) {
        snprintf(err, errlen,
                 "--cmdline: %zu bytes (with what strata appends), longer "
                 "than the kernel accepts (%zu)",
                 clen, max < area - 1 ? max : (size_t)area - 1);
        return -1;
    }
    uint8_t *p = guest_ram_ptr(ram, gpa, clen + 1);
    if (!p) {
        snprintf(err, errlen, "--memory: too small for the command line");
        return -1;
    }
    memcpy(p, cmdline ? cmdline : "", clen);
    p[clen] = 0;
    return 0;
}

static int write_initrd(const GuestRam *ram, const LinuxBootParams *p, uint64_t lowest,
                        uint64_t limit, uint64_t *gpa, char *err, size_t errlen)
{
    *gpa = 0;
    if (!p->initrd || !p->initrd_len)
        return 0;
    if (boot_place_initrd(ram, p->initrd_len, lowest, limit, gpa, err, errlen) < 0)
        return -1;
    uint8_t *dst = guest_ram_ptr(ram, *gpa, p->initrd_len);
    if (!dst) {
        snprintf(err, errlen, "--initrd: does not fit in guest RAM");
        return -1;
    }
    memcpy(dst, p->initrd, p->initrd_len);
    return 0;
}

static int write_page_tables(const GuestRam *ram, char *err, size_t errlen)
{
    uint8_t *gdt = guest_ram_ptr(ram, BOOT_GDT_ADDR, 4 * 8);
    uint8_t *pml4 = guest_ram_ptr(ram, BOOT_PML4_ADDR, 0x1000);
    uint8_t *pdpt = guest_ram_ptr(ram, BOOT_PDPT_ADDR, 0x1000);
    uint8_t *pd = guest_ram_ptr(ram, BOOT_PD_ADDR, 0x4000);
    if (!gdt || !pml4 || !pdpt || !pd) {
        snprintf(err, errlen, "--memory: too small for the boot page tables");
        return -1;
    }
    wr64(gdt, 0);
    wr64(gdt + 8, 0);
    wr64(gdt + BOOT_CODE_SEL, 0x00af9b000000ffffull); /* 64-bit code, DPL 0 */
    wr64(gdt + BOOT_DATA_SEL, 0x00cf93000000ffffull); /* flat data, DPL 0 */
    memset(pml4, 0, 0x1000);
    memset(pdpt, 0, 0x1000);
    wr64(pml4, BOOT_PDPT_ADDR | 3); /* present, writable */
    for (unsigned i = 0; i < 4; i++)
        wr64(pdpt + 8 * i, (BOOT_PD_ADDR + 0x1000ull * i) | 3);
    for (unsigned i = 0; i < 4 * 512; i++)
        wr64(pd + 8 * i, ((uint64_t)i << 21) | 0x83); /* present, writable, 2 MiB */
    return 0;
}

int bzimage_load(const uint8_t *data, size_t len, const BzImageInfo *bz, const GuestRam *ram,
                 const LinuxBootParams *p, char *err, size_t errlen)
{
    if (bz->payload_off + bz->payload_len != len || bz->hdr_end > BP_HDR_MAX_END ||
        bz->hdr_end > len) {
        snprintf(err, errlen, "--kernel: image does not match its parsed header");
        return -1;
    }
    /* The kernel runs (decompresses) at max(align_up(1M), pref_address) and
     * needs init_size bytes from there. */
    uint64_t align = bz->kernel_alignment ? bz->kernel_alignment : 0x200000;
    uint64_t base = (BOOT_KERNEL_ADDR + align - 1) & ~(align - 1);
    if (base < bz->pref_address)
        base = bz->pref_address;
    uint64_t end = base + bz->init_size;
    if (end < BOOT_KERNEL_ADDR + bz->payload_len)
        end = BOOT_KERNEL_ADDR + bz->payload_len;
    if (end > ram->below) {
        snprintf(err, errlen,
                 "--memory: the kernel needs RAM up to 0x%llx, only 0x%llx is "
                 "below 4 GiB",
                 (unsigned long long)end, (unsigned long long)ram->below);
        return -1;
    }
    uint8_t *dst = guest_ram_ptr(ram, BOOT_KERNEL_ADDR, bz->payload_len);
    uint8_t *zp = guest_ram_ptr(ram, BOOT_ZERO_PAGE_ADDR, BP_SIZE);
    if (!dst || !zp) {
        snprintf(err, errlen, "--memory: too small for the kernel");
        return -1;
    }
    memcpy(dst, data + bz->payload_off, bz->payload_len);

    memset(zp, 0, BP_SIZE);
    memcpy(zp + BP_HDR, data + BP_HDR, bz->hdr_end - BP_HDR);
    zp[BP_TYPE_OF_LOADER] = 0xff;
    if (write_cmdline(ram, BOOT_CMDLINE_ADDR, BOOT_CMDLINE_MAX, bz->cmdline_size, p->cmdline, err,
                      errlen) < 0)
        return -1;
    wr32(zp + BP_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_ADDR);
    wr32(zp + BP_EXT_CMDLINE, 0);
    uint64_t initrd;
    if (write_initrd(ram, p, end, bz->initrd_addr_max, &initrd, err, errlen) < 0)
        return -1;
    if (initrd) {
        wr32(zp + BP_RAMDISK_IMAGE, (uint32_t)initrd);
        wr32(zp + BP_EXT_RAMDISK_IMG, (uint32_t)(initrd >> 32));
        wr32(zp + BP_RAMDISK_SIZE, (uint32_t)p->initrd_len);
        wr32(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)((uint64_t)p->initrd_len >> 32));
    }
    if (bz->version >= 0x020e)
        wr64(zp + BP_ACPI_RSDP, p->rsdp_addr);
    E820Entry map[BOOT_E820_MAX];
    unsigned n = boot_e820_build(ram, map, BOOT_E820_MAX);
    zp[BP_E820_ENTRIES] = (uint8_t)n;
    for (unsigned i = 0; i < n; i++) {
        uint8_t *e = zp + BP_E820_TABLE + 20 * i;
        wr64(e, map[i].addr);
        wr64(e + 8, map[i].size);
        wr32(e + 16, map[i].type);
    }
    return write_page_tables(ram, err, errlen);
}

/* hvm_start_info and hvm_modlist_entry (the PVH ABI), little endian. */
#define PVH_MAGIC 0x336ec578u
#define SI_SIZE 56
#define MOD_SIZE 32
#define MAP_ENTRY_SIZE 24

uint64_t pvh_write_boot_info(const GuestRam *ram, const LinuxBootParams *p, uint64_t kernel_end,
                             char *err, size_t errlen)
{
    uint8_t *si = guest_ram_ptr(ram, PVH_START_INFO_ADDR, PVH_BOOT_INFO_END - PVH_START_INFO_ADDR);
    if (!si) {
        snprintf(err, errlen, "--memory: too small for the PVH boot information");
        return 0;
    }
    memset(si, 0, PVH_CMDLINE_ADDR - PVH_START_INFO_ADDR);
    wr32(si, PVH_MAGIC);
    wr32(si + 4, 1); /* version */
    if (write_cmdline(ram, PVH_CMDLINE_ADDR, PVH_BOOT_INFO_END - PVH_CMDLINE_ADDR, SIZE_MAX,
                      p->cmdline, err, errlen) < 0)
        return 0;
    if (p->cmdline)
        wr64(si + 24, PVH_CMDLINE_ADDR);
    wr64(si + 32, p->rsdp_addr);
    uint64_t initrd;
    if (write_initrd(ram, p, kernel_end, UINT32_MAX, &initrd, err, errlen) < 0)
        return 0;
    if (initrd) {
        uint8_t *mod = si + (PVH_MODLIST_ADDR - PVH_START_INFO_ADDR);
        wr64(mod, initrd);
        wr64(mod + 8, p->initrd_len);
        wr32(si + 12, 1); /* nr_modules */
        wr64(si + 16, PVH_MODLIST_ADDR);
    }
    E820Entry map[BOOT_E820_MAX];
    unsigned n = boot_e820_build(ram, map, BOOT_E820_MAX);
    uint8_t *m = si + (PVH_MEMMAP_ADDR - PVH_START_INFO_ADDR);
    for (unsigned i = 0; i < n; i++) {
        wr64(m + MAP_ENTRY_SIZE * i, map[i].addr);
        wr64(m + MAP_ENTRY_SIZE * i + 8, map[i].size);
        wr32(m + MAP_ENTRY_SIZE * i + 16, map[i].type);
    }
    wr64(si + 40, PVH_MEMMAP_ADDR);
    wr32(si + 48, n);
    return PVH_START_INFO_ADDR;
}

static void seg64(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
    memset(s, 0, sizeof(*s));
    s->limit = 0xffffffffu;
    s->selector = sel;
    s->type = type;
    s->present = 1;
    s->s = 1;
    s->g = 1;
    s->l = code;
    s->db = !code;
}

void bzimage_entry_state(struct kvm_sregs *sr, struct kvm_regs *rg)
{
    seg64(&sr->cs, BOOT_CODE_SEL, 0xb, true);
    seg64(&sr->ds, BOOT_DATA_SEL, 0x3, false);
    sr->es = sr->fs = sr->gs = sr->ss = sr->ds;
    memset(&sr->tr, 0, sizeof(sr->tr));
    sr->tr.limit = 0x67;
    sr->tr.type = 0xb; /* busy 64-bit TSS */
    sr->tr.present = 1;
    memset(&sr->ldt, 0, sizeof(sr->ldt));
    sr->ldt.type = 0x2;
    sr->ldt.present = 1;
    sr->ldt.limit = 0xffff;
    sr->gdt.base = BOOT_GDT_ADDR;
    sr->gdt.limit = 4 * 8 - 1;
    sr->idt.base = 0;
    sr->idt.limit = 0;
    sr->cr0 = 0x80050033ull; /* PG | AM | WP | NE | ET | MP | PE */
    sr->cr3 = BOOT_PML4_ADDR;
    sr->cr4 = 0x20;   /* PAE */
    sr->efer = 0x500; /* LME | LMA */
    memset(rg, 0, sizeof(*rg));
    rg->rip = BOOT_KERNEL_ADDR + 0x200; /* startup_64 */
    rg->rsi = BOOT_ZERO_PAGE_ADDR;
    rg->rflags = 2;
}
