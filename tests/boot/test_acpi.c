/* SPDX-License-Identifier: MIT */
/* ACPI tables: checksums, layout and pointers, MADT entries, FADT flags,
 * the exact AML bytes of the DSDT, PkgLength encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/boot/acpi.h"

#define GPA 0xe0000ull

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

static AcpiConfig config(unsigned ncpus, unsigned nvirtio)
{
    AcpiConfig c;
    memset(&c, 0, sizeof(c));
    c.ncpus = ncpus;
    c.lapic_addr = 0xfee00000u;
    c.ioapic_addr = 0xfec00000u;
    c.serial = true;
    c.serial_port = 0x3f8;
    c.serial_irq = 4;
    c.sleep_port = 0x600;
    c.nvirtio = nvirtio;
    for (unsigned i = 0; i < nvirtio; i++)
        c.virtio[i] = (AcpiVirtio){ 0xfeb00000ull + i * 0x200, 0x200, 5 + i };
    return c;
}

/* The table at guest address gpa inside buf, checked for bounds/checksum. */
static const uint8_t *table(const uint8_t *buf, size_t used, uint64_t gpa, const char *sig)
{
    assert_true(gpa >= GPA && gpa - GPA + 36 <= used);
    const uint8_t *t = buf + (gpa - GPA);
    assert_memory_equal(t, sig, 4);
    uint32_t len = rd32(t + 4);
    assert_true(gpa - GPA + len <= used);
    assert_int_equal(sum(t, len), 0);
    return t;
}

static void test_layout(void **state)
{
    (void)state;
    static uint8_t buf[ACPI_TABLES_MAX];
    char err[256] = "";
    AcpiConfig c = config(4, 2);
    size_t used = acpi_build(&c, buf, sizeof(buf), GPA, err, sizeof(err));
    assert_true(used > 0);
    /* RSDP: v1 checksum over 20 bytes, extended over 36 */
    assert_memory_equal(buf, "RSD PTR ", 8);
    assert_int_equal(buf[15], 2);
    assert_int_equal(sum(buf, 20), 0);
    assert_int_equal(sum(buf, 36), 0);
    assert_int_equal(rd32(buf + 20), 36);
    const uint8_t *xsdt = table(buf, used, rd64(buf + 24), "XSDT");
    assert_int_equal(rd32(xsdt + 4), 36 + 16);
    const uint8_t *fadt = table(buf, used, rd64(xsdt + 36), "FACP");
    const uint8_t *madt = table(buf, used, rd64(xsdt + 44), "APIC");
    /* FADT 6.0: 276 bytes, hardware reduced, DSDT pointers agree */
    assert_int_equal(rd32(fadt + 4), 276);
    assert_int_equal(fadt[8], 6);
    assert_true(rd32(fadt + 112) & (1u << 20));
    assert_int_equal(rd32(fadt + 40), rd64(fadt + 140));
    const uint8_t *dsdt = table(buf, used, rd64(fadt + 140), "DSDT");
    (void)dsdt;
    /* sleep control / status registers: SystemIO, 8 bits, 0x600 / 0x601 */
    assert_int_equal(fadt[244], 1);
    assert_int_equal(fadt[245], 8);
    assert_int_equal(rd64(fadt + 248), 0x600);
    assert_int_equal(rd64(fadt + 260), 0x601);
    /* reset register: SystemIO 0x602, value 0x42, flag RESET_REG_SUP */
    assert_true(rd32(fadt + 112) & (1u << 10));
    assert_int_equal(fadt[116], 1);
    assert_int_equal(rd64(fadt + 120), 0x602);
    assert_int_equal(fadt[128], 0x42);
    /* MADT: 4 local APICs with ids 0..3, an IOAPIC, the IRQ0 override */
    uint32_t mlen = rd32(madt + 4);
    assert_int_equal(rd32(madt + 36), 0xfee00000u);
    unsigned lapics = 0, ioapics = 0, isos = 0;
    for (uint32_t o = 44; o < mlen;) {
        uint8_t type = madt[o], len = madt[o + 1];
        assert_true(len >= 2 && o + len <= mlen);
        if (type == 0) {
            assert_int_equal(len, 8);
            assert_int_equal(madt[o + 3], lapics);   /* APIC id */
            assert_int_equal(rd32(madt + o + 4), 1); /* enabled */
            lapics++;
        } else if (type == 1) {
            assert_int_equal(rd32(madt + o + 4), 0xfec00000u);
            assert_int_equal(rd32(madt + o + 8), 0);
            ioapics++;
        } else if (type == 2) {
            assert_int_equal(madt[o + 3], 0);
            assert_int_equal(rd32(madt + o + 4), 2);
            isos++;
        }
        o += len;
    }
    assert_int_equal(lapics, 4);
    assert_int_equal(ioapics, 1);
    assert_int_equal(isos, 1);
    /* tables do not overlap */
    assert_true(rd64(buf + 24) >= GPA + 36);
}

static void test_limits(void **state)
{
    (void)state;
    static uint8_t buf[ACPI_TABLES_MAX];
    char err[256] = "";
    AcpiConfig c = config(0, 0);
    assert_int_equal(acpi_build(&c, buf, sizeof(buf), GPA, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "vCPUs"));
    c = config(255, ACPI_MAX_VIRTIO);
    assert_true(acpi_build(&c, buf, sizeof(buf), GPA, err, sizeof(err)) > 0);
    c.nvirtio = ACPI_MAX_VIRTIO + 1;
    assert_int_equal(acpi_build(&c, buf, sizeof(buf), GPA, err, sizeof(err)), 0);
    c = config(8, 8);
    for (size_t cap = 0; cap < 2048; cap += 7) { /* small buffers fail cleanly */
        size_t n = acpi_build(&c, buf, cap, GPA, err, sizeof(err));
        assert_true(n == 0 || n <= cap);
    }
}

static void test_dsdt_bytes(void **state)
{
    (void)state;
    static uint8_t buf[ACPI_TABLES_MAX];
    char err[256] = "";
    AcpiConfig c = config(1, 1);
    size_t used = acpi_build(&c, buf, sizeof(buf), GPA, err, sizeof(err));
    assert_true(used > 0);
    const uint8_t *xsdt = buf + (rd64(buf + 24) - GPA);
    const uint8_t *fadt = buf + (rd64(xsdt + 36) - GPA);
    const uint8_t *dsdt = buf + (rd64(fadt + 140) - GPA);
    /* clang-format off */
    static const uint8_t want[] = {
        /* Scope (\_SB) */
        0x10, 0x47, 0x07, 0x5c, '_', 'S', 'B', '_',          /* PkgLength 119 */
        /* Device (COM1) */
        0x5b, 0x82, 0x2b, 'C', 'O', 'M', '1',               /* PkgLength 43 */
        0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01,   /* EISAID("PNP0501") */
        0x08, '_', 'U', 'I', 'D', 0x01,
        0x08, '_', 'C', 'R', 'S', 0x11, 0x10, 0x0a, 0x0d,
        0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08,           /* IO(Decode16, 0x3f8..) */
        0x22, 0x10, 0x00,                                         /* IRQNoFlags() {4} */
        0x79, 0x00,
        /* Device (VR00) */
        0x5b, 0x82, 0x41, 0x04, 'V', 'R', '0', '0',         /* PkgLength 65 */
        0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0x00,
        0x08, '_', 'U', 'I', 'D', 0x00,
        0x08, '_', 'C', 'C', 'A', 0x01,
        0x08, '_', 'C', 'R', 'S', 0x11, 0x1a, 0x0a, 0x17,
        0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0xb0, 0xfe, 0x00, 0x02, 0x00, 0x00,
        0x89, 0x06, 0x00, 0x01, 0x01, 0x05, 0x00, 0x00, 0x00,   /* Interrupt(level, high) {5} */
        0x79, 0x00,
        /* Name (_S5, Package (4) { 5, 0, 0, 0 }) */
        0x08, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00,
    };
    /* clang-format on */
    uint32_t len = rd32(dsdt + 4);
    assert_int_equal(len, 36 + sizeof(want));
    if (memcmp(dsdt + 36, want, sizeof(want))) {
        for (size_t i = 0; i < sizeof(want); i++)
            if (dsdt[36 + i] != want[i])
                fail_msg("DSDT AML byte %zu: 0x%02x, expected 0x%02x", i, dsdt[36 + i], want[i]);
    }
}

/* The power button and its Generic Event Device (checked once with iasl -d:
 * it reads back as the ASL in vmm/boot/acpi.c's comment). */
static void test_ged_bytes(void **state)
{
    (void)state;
    static uint8_t buf[ACPI_TABLES_MAX];
    char err[256] = "";
    AcpiConfig c = config(1, 0);
    c.serial = false;
    c.ged_port = 0x610;
    c.ged_irq = 8;
    size_t used = acpi_build(&c, buf, sizeof(buf), GPA, err, sizeof(err));
    assert_true(used > 0);
    const uint8_t *xsdt = buf + (rd64(buf + 24) - GPA);
    const uint8_t *fadt = buf + (rd64(xsdt + 36) - GPA);
    const uint8_t *dsdt = table(buf, used, rd64(fadt + 140), "DSDT");
    /* clang-format off */
    static const uint8_t want[] = {
        /* Scope (\_SB) */
        0x10, 0x4e, 0x08, 0x5c, '_', 'S', 'B', '_',          /* PkgLength 142 */
        /* Device (PWRB) { _HID EISAID("PNP0C0C"), _UID 0 } */
        0x5b, 0x82, 0x15, 'P', 'W', 'R', 'B',
        0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x0c,
        0x08, '_', 'U', 'I', 'D', 0x00,
        /* Device (GED_) */
        0x5b, 0x82, 0x4e, 0x06, 'G', 'E', 'D', '_',          /* PkgLength 100 */
        0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C', 'P', 'I', '0', '0', '1', '3', 0x00,
        0x08, '_', 'U', 'I', 'D', 0x00,
        0x08, '_', 'C', 'R', 'S', 0x11, 0x0e, 0x0a, 0x0b,
        0x89, 0x06, 0x00, 0x01, 0x01, 0x08, 0x00, 0x00, 0x00,   /* Interrupt(level, high) {8} */
        0x79, 0x00,
        /* OperationRegion (EREG, SystemIO, 0x610, 4) */
        0x5b, 0x80, 'E', 'R', 'E', 'G', 0x01, 0x0b, 0x10, 0x06, 0x0a, 0x04,
        /* Field (EREG, DWordAcc, NoLock, Preserve) { ESTS, 32 } */
        0x5b, 0x81, 0x0b, 'E', 'R', 'E', 'G', 0x03, 'E', 'S', 'T', 'S', 0x20,
        /* Method (_EVT, 1, Serialized) */
        0x14, 0x25, '_', 'E', 'V', 'T', 0x09,
        0x70, 'E', 'S', 'T', 'S', 0x60,                       /* Local0 = ESTS */
        0x70, 0x60, 'E', 'S', 'T', 'S',                       /* ESTS = Local0 */
        0xa0, 0x12, 0x7b, 0x60, 0x01, 0x00,                   /* If (Local0 & One) */
        0x86, 0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B', 0x0a, 0x80,
        /* Name (_S5, Package (4) { 5, 0, 0, 0 }) */
        0x08, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00,
    };
    /* clang-format on */
    uint32_t len = rd32(dsdt + 4);
    assert_int_equal(len, 36 + sizeof(want));
    for (size_t i = 0; i < sizeof(want); i++)
        if (dsdt[36 + i] != want[i])
            fail_msg("DSDT AML byte %zu: 0x%02x, expected 0x%02x", i, dsdt[36 + i], want[i]);
    /* without a GED port neither device is described */
    c.ged_port = 0;
    used = acpi_build(&c, buf, sizeof(buf), GPA, err, sizeof(err));
    assert_true(used > 0);
    dsdt = table(buf, used, rd64(fadt + 140), "DSDT");
    assert_int_equal(rd32(dsdt + 4), 36 + 7 + 13); /* empty Scope (\_SB), _S5 */
}

static void test_pkglen(void **state)
{
    (void)state;
    uint8_t o[4];
    assert_int_equal(aml_pkglen_encode(0, o), 1);
    assert_int_equal(o[0], 1);
    assert_int_equal(aml_pkglen_encode(62, o), 1);
    assert_int_equal(o[0], 63);
    assert_int_equal(aml_pkglen_encode(63, o), 2); /* 65 in two bytes */
    assert_int_equal(o[0], 0x41);
    assert_int_equal(o[1], 0x04);
    assert_int_equal(aml_pkglen_encode(4093, o), 2); /* 4095 */
    assert_int_equal(o[0], 0x4f);
    assert_int_equal(o[1], 0xff);
    assert_int_equal(aml_pkglen_encode(4094, o), 3); /* 4097 */
    assert_int_equal(o[0], 0x81);
    assert_int_equal(o[1], 0x00);
    assert_int_equal(o[2], 0x01);
    assert_int_equal(aml_pkglen_encode((1u << 28) - 5, o), 4);
    assert_int_equal(aml_pkglen_encode(1u << 28, o), 0);

    /* aml_close around a long body re-encodes correctly */
    static uint8_t b[8192];
    AmlBuf a = { b, 0, sizeof(b), false };
    size_t m = aml_open(&a);
    uint8_t body[100];
    memset(body, 0xaa, sizeof(body));
    aml_bytes(&a, body, sizeof(body));
    aml_close(&a, m);
    assert_false(a.overflow);
    assert_int_equal(a.len, 102);
    assert_int_equal(b[0], 0x46); /* 102 = 0x66: 1 extra byte, low nibble 6 */
    assert_int_equal(b[1], 0x06);
    /* overflow is sticky and never writes past cap */
    AmlBuf s = { b, 0, 3, false };
    aml_int(&s, 0x12345678);
    assert_true(s.overflow);
    assert_true(s.len <= 3);
}

static void test_names_ints(void **state)
{
    (void)state;
    uint8_t b[64];
    AmlBuf a = { b, 0, sizeof(b), false };
    aml_name(&a, "\\_SB.PCI0");
    static const uint8_t n[] = { 0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0' };
    assert_int_equal(a.len, sizeof(n));
    assert_memory_equal(b, n, sizeof(n));
    a.len = 0;
    aml_int(&a, 0);
    aml_int(&a, 1);
    aml_int(&a, 0xff);
    aml_int(&a, 0x100);
    aml_int(&a, 0x10000);
    aml_int(&a, 0x100000000ull);
    static const uint8_t ints[] = { 0x00, 0x01, 0x0a, 0xff, 0x0b, 0x00, 0x01, 0x0c, 0, 0, 1,
                                    0,    0x0e, 0,    0,    0,    0,    1,    0,    0, 0 };
    assert_int_equal(a.len, sizeof(ints));
    assert_memory_equal(b, ints, sizeof(ints));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),     cmocka_unit_test(test_limits),
        cmocka_unit_test(test_dsdt_bytes), cmocka_unit_test(test_ged_bytes),
        cmocka_unit_test(test_pkglen),     cmocka_unit_test(test_names_ints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
