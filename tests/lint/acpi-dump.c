/* SPDX-License-Identifier: MIT */
/*
 * acpi-dump OUTDIR: builds the ACPI tables of strata's board
 * (machine_acpi_config, vmm/boot/acpi.c) for a few machines and writes
 * each table to OUTDIR/MACHINE/SIG.dat (RSDP, XSDT, FACP, APIC, DSDT),
 * following the pointers between them as a guest would.
 * tests/lint/acpi.sh disassembles them with `iasl -d`.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/common/check.h"
#include "vmm/boot/acpi.h"
#include "vmm/machine.h"

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f, "%s: %s", path, strerror(errno));
    CHECK(fwrite(p, 1, n, f) == n, "%s: short write", path);
    CHECK(fclose(f) == 0, "%s: %s", path, strerror(errno));
    printf("  %s (%zu bytes)\n", path, n);
}

/* The table at guest address gpa: bounds-checked, written as SIG.dat. */
static const uint8_t *dump_table(const char *dir, const uint8_t *buf, size_t used, uint64_t gpa)
{
    CHECK(gpa >= ACPI_TABLES_ADDR && gpa - ACPI_TABLES_ADDR + 36 <= used,
          "table at 0x%llx outside the %zu bytes built", (unsigned long long)gpa, used);
    const uint8_t *t = buf + (gpa - ACPI_TABLES_ADDR);
    uint32_t len = rd32(t + 4);
    CHECK(len >= 36 && gpa - ACPI_TABLES_ADDR + len <= used, "table %.4s: length %u", t, len);
    char sig[5] = { 0 };
    memcpy(sig, t, 4);
    write_file(dir, sig, t, len);
    return t;
}

static void dump(const char *outdir, const char *name, const AcpiConfig *c)
{
    static uint8_t buf[ACPI_TABLES_MAX];
    char dir[4096], err[256] = "";
    snprintf(dir, sizeof(dir), "%s/%s", outdir, name);
    CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "%s: %s", dir, strerror(errno));
    printf("%s: %u vCPUs, %u virtio-mmio, serial %s\n", name, c->ncpus, c->nvirtio,
           c->serial ? "on" : "off");

    size_t used = acpi_build(c, buf, sizeof(buf), ACPI_TABLES_ADDR, err, sizeof(err));
    CHECK(used >= 36, "acpi_build: %s", err);
    CHECK(memcmp(buf, "RSD PTR ", 8) == 0, "no RSDP at offset 0");
    write_file(dir, "RSDP", buf, 36);

    const uint8_t *xsdt = dump_table(dir, buf, used, rd64(buf + 24));
    CHECK(memcmp(xsdt, "XSDT", 4) == 0, "RSDP does not point at the XSDT");
    for (uint32_t o = 36; o + 8 <= rd32(xsdt + 4); o += 8) {
        const uint8_t *t = dump_table(dir, buf, used, rd64(xsdt + o));
        if (memcmp(t, "FACP", 4) == 0)
            dump_table(dir, buf, used, rd64(t + 140)); /* X_DSDT */
    }
}

/* The board's tables (vmm/machine.h, machine_acpi_config) with ncpus
 * vCPUs, the serial port if serial, and nvirtio virtio-mmio slots where the
 * board puts them; their GSIs, the board's table's range 5..23, are all
 * encoded alike. */
static AcpiConfig board(unsigned ncpus, unsigned nvirtio, bool serial)
{
    MachineVirtio v[MACHINE_MAX_VIRTIO];
    for (unsigned i = 0; i < nvirtio; i++)
        v[i] = (MachineVirtio){ .base = MACHINE_VIRTIO_BASE + i * MACHINE_VIRTIO_SIZE,
                                .gsi = 5 + i };
    return machine_acpi_config(ncpus, serial, v, nvirtio);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    AcpiConfig min = board(1, 0, false);
    AcpiConfig usual = board(2, 3, true);
    AcpiConfig full = board(MACHINE_MAX_CPUS, MACHINE_MAX_VIRTIO, true);
    /* vmm/boot/acpi.c's optional parts all off (no board of strata's
     * today): a FADT without sleep and reset registers, a bare DSDT */
    AcpiConfig bare = min;
    bare.sleep_port = 0;
    bare.pvpanic_port = 0;
    bare.ged_port = 0;
    dump(argv[1], "min", &min);
    dump(argv[1], "usual", &usual);
    dump(argv[1], "full", &full);
    dump(argv[1], "bare", &bare);
    return 0;
}
