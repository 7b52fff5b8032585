/* SPDX-License-Identifier: MIT */
/* ACPI tables and a small AML emitter (see acpi.h). */
#include "vmm/boot/acpi.h"

#include <stdio.h>
#include <string.h>

/* ---- AML ---------------------------------------------------------------- */

#define AML_ZERO 0x00
#define AML_ONE 0x01
#define AML_NAME 0x08
#define AML_BYTE 0x0a
#define AML_WORD 0x0b
#define AML_DWORD 0x0c
#define AML_STRING 0x0d
#define AML_QWORD 0x0e
#define AML_SCOPE 0x10
#define AML_BUFFER 0x11
#define AML_PACKAGE 0x12
#define AML_EXT 0x5b
#define AML_DEVICE 0x82
#define AML_METHOD 0x14
#define AML_STORE 0x70
#define AML_LOCAL0 0x60
#define AML_AND 0x7b
#define AML_NOTIFY 0x86
#define AML_IF 0xa0
#define AML_OPREGION 0x80  /* after AML_EXT */
#define AML_FIELD 0x81     /* after AML_EXT */
#define AML_SYSTEM_IO 0x01 /* RegionSpace */
#define AML_ROOT 0x5c
#define AML_DUAL 0x2e
#define AML_MULTI 0x2f

void aml_bytes(AmlBuf *a, const void *p, size_t n)
{
    if (a->overflow || n > a->cap - a->len) {
        a->overflow = true;
        return;
    }
    memcpy(a->b + a->len, p, n);
    a->len += n;
}

static void aml_byte(AmlBuf *a, uint8_t v)
{
    aml_bytes(a, &v, 1);
}

static void aml_le(AmlBuf *a, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        aml_byte(a, (uint8_t)(v >> (8 * i)));
}

void aml_int(AmlBuf *a, uint64_t v)
{
    if (v == 0) {
        aml_byte(a, AML_ZERO);
    } else if (v == 1) {
        aml_byte(a, AML_ONE);
    } else if (v <= 0xff) {
        aml_byte(a, AML_BYTE);
        aml_le(a, v, 1);
    } else if (v <= 0xffff) {
        aml_byte(a, AML_WORD);
        aml_le(a, v, 2);
    } else if (v <= 0xffffffffu) {
        aml_byte(a, AML_DWORD);
        aml_le(a, v, 4);
    } else {
        aml_byte(a, AML_QWORD);
        aml_le(a, v, 8);
    }
}

void aml_name(AmlBuf *a, const char *path)
{
    if (*path == '\\') {
        aml_byte(a, AML_ROOT);
        path++;
    }
    /* Split on '.'; each segment is 4 characters padded with '_'. */
    const char *segs[8];
    size_t lens[8];
    unsigned n = 0;
    for (const char *s = path; *s && n < 8;) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        segs[n] = s;
        lens[n++] = l > 4 ? 4 : l;
        s += l + (dot ? 1 : 0);
        if (!dot)
            break;
    }
    if (n == 0) {
        aml_byte(a, AML_ZERO); /* NullName */
        return;
    }
    if (n == 2) {
        aml_byte(a, AML_DUAL);
    } else if (n > 2) {
        aml_byte(a, AML_MULTI);
        aml_byte(a, (uint8_t)n);
    }
    for (unsigned i = 0; i < n; i++) {
        char seg[4] = { '_', '_', '_', '_' };
        memcpy(seg, segs[i], lens[i]);
        aml_bytes(a, seg, 4);
    }
}

void aml_string(AmlBuf *a, const char *s)
{
    aml_byte(a, AML_STRING);
    aml_bytes(a, s, strlen(s) + 1);
}

void aml_eisaid(AmlBuf *a, const char *id)
{
    /* Three letters of 5 bits each (A = 1), then four hex digits, stored
     * big endian. */
    uint32_t v = 0;
    for (int i = 0; i < 3; i++)
        v = (v << 5) | (uint32_t)((id[i] - 0x40) & 0x1f);
    for (int i = 3; i < 7; i++) {
        char c = id[i];
        uint32_t d = (uint32_t)(c >= 'A' ? c - 'A' + 10 : c - '0') & 0xf;
        v = (v << 4) | d;
    }
    /* v: bit 31 clear, letters in bits 30..16, product in 15..0 */
    uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    aml_byte(a, AML_DWORD);
    aml_bytes(a, b, 4);
}

size_t aml_pkglen_encode(size_t n, uint8_t out[4])
{
    /* The length counts its own bytes. */
    if (n + 1 < 0x40) {
        out[0] = (uint8_t)(n + 1);
        return 1;
    }
    for (size_t k = 2; k <= 4; k++) {
        size_t total = n + k;
        if (total < (1ull << (4 + 8 * (k - 1)))) {
            out[0] = (uint8_t)(((k - 1) << 6) | (total & 0xf));
            for (size_t i = 1; i < k; i++)
                out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
            return k;
        }
    }
    return 0;
}

size_t aml_open(AmlBuf *a)
{
    return a->len;
}

void aml_close(AmlBuf *a, size_t mark)
{
    if (a->overflow || mark > a->len)
        return;
    uint8_t pl[4];
    size_t k = aml_pkglen_encode(a->len - mark, pl);
    if (!k || k > a->cap - a->len) {
        a->overflow = true;
        return;
    }
    memmove(a->b + mark + k, a->b + mark, a->len - mark);
    memcpy(a->b + mark, pl, k);
    a->len += k;
}

/* Name(name, Buffer(){ bytes }) */
static void aml_name_buffer(AmlBuf *a, const char *name, const uint8_t *p, size_t n)
{
    aml_byte(a, AML_NAME);
    aml_name(a, name);
    aml_byte(a, AML_BUFFER);
    size_t m = aml_open(a);
    aml_int(a, n);
    aml_bytes(a, p, n);
    aml_close(a, m);
}

static void aml_name_int(AmlBuf *a, const char *name, uint64_t v)
{
    aml_byte(a, AML_NAME);
    aml_name(a, name);
    aml_int(a, v);
}

/* Device (name) { ... }: the caller closes the returned mark. */
static size_t aml_device_open(AmlBuf *a, const char *name)
{
    aml_byte(a, AML_EXT);
    aml_byte(a, AML_DEVICE);
    size_t m = aml_open(a);
    aml_name(a, name);
    return m;
}

static void aml_name_string(AmlBuf *a, const char *name, const char *s)
{
    aml_byte(a, AML_NAME);
    aml_name(a, name);
    aml_string(a, s);
}

static void aml_name_eisaid(AmlBuf *a, const char *name, const char *id)
{
    aml_byte(a, AML_NAME);
    aml_name(a, name);
    aml_eisaid(a, id);
}

/* A ResourceTemplate, built descriptor by descriptor (ACPI 6.4, 6.4). */
typedef struct {
    uint8_t b[64];
    size_t n;
} AmlCrs;

static void crs_le(AmlCrs *c, uint32_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes && c->n < sizeof(c->b); i++)
        c->b[c->n++] = (uint8_t)(v >> (8 * i));
}

/* IO (Decode16, port, port, align, len) */
static void crs_io(AmlCrs *c, uint16_t port, uint8_t align, uint8_t len)
{
    crs_le(c, 0x47, 1);
    crs_le(c, 0x01, 1);
    crs_le(c, port, 2);
    crs_le(c, port, 2);
    crs_le(c, align, 1);
    crs_le(c, len, 1);
}

/* IRQNoFlags () { irq } (a legacy ISA IRQ, 0..15) */
static void crs_irq_noflags(AmlCrs *c, uint8_t irq)
{
    crs_le(c, 0x22, 1);
    crs_le(c, 1u << (irq & 15), 2);
}

/* Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) { irq } */
static void crs_interrupt(AmlCrs *c, uint32_t irq)
{
    crs_le(c, 0x89, 1);
    crs_le(c, 6, 2);    /* length */
    crs_le(c, 0x01, 1); /* consumer, level, active high, exclusive */
    crs_le(c, 1, 1);    /* one interrupt */
    crs_le(c, irq, 4);
}

/* Memory32Fixed (ReadWrite, base, size) */
static void crs_mem32(AmlCrs *c, uint32_t base, uint32_t size)
{
    crs_le(c, 0x86, 1);
    crs_le(c, 9, 2);    /* length */
    crs_le(c, 0x01, 1); /* read-write */
    crs_le(c, base, 4);
    crs_le(c, size, 4);
}

/* Name (_CRS, ResourceTemplate () { ... }), closed by its EndTag */
static void aml_name_crs(AmlBuf *a, AmlCrs *c)
{
    crs_le(c, 0x79, 1);
    crs_le(c, 0x00, 1);
    aml_name_buffer(a, "_CRS", c->b, c->n);
}

static void aml_device_serial(AmlBuf *a, uint16_t port, uint8_t irq)
{
    size_t m = aml_device_open(a, "COM1");
    aml_name_eisaid(a, "_HID", "PNP0501");
    aml_name_int(a, "_UID", 1);
    AmlCrs crs = { .n = 0 };
    crs_io(&crs, port, 0, 8);
    crs_irq_noflags(&crs, irq);
    aml_name_crs(a, &crs);
    aml_close(a, m);
}

static void aml_device_pvpanic(AmlBuf *a, uint16_t port)
{
    size_t m = aml_device_open(a, "PEVT");
    aml_name_string(a, "_HID", "QEMU0001");
    AmlCrs crs = { .n = 0 };
    crs_io(&crs, port, 1, 1);
    aml_name_crs(a, &crs);
    aml_close(a, m);
}

/*
 * The power button and the Generic Event Device that presses it:
 *
 *   Device (PWRB) { Name (_HID, EisaId ("PNP0C0C")) Name (_UID, 0) }
 *   Device (GED_) {
 *       Name (_HID, "ACPI0013")  Name (_UID, 0)
 *       Name (_CRS, ResourceTemplate () {
 *           Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) { irq } })
 *       OperationRegion (EREG, SystemIO, port, 4)
 *       Field (EREG, DWordAcc, NoLock, Preserve) { ESTS, 32 }
 *       Method (_EVT, 1, Serialized) {
 *           Local0 = ESTS                   // pending events
 *           ESTS = Local0                   // acknowledge them (write 1 to clear)
 *           If (Local0 & 1) { Notify (\_SB.PWRB, 0x80) }
 *       }
 *   }
 * (devices/ged.h is the register's side of this.)
 */
static void aml_device_power_button(AmlBuf *a)
{
    size_t m = aml_device_open(a, "PWRB");
    aml_name_eisaid(a, "_HID", "PNP0C0C");
    aml_name_int(a, "_UID", 0);
    aml_close(a, m);
}

/* If (Local0 & bit) { Notify (path, 0x80) } */
static void aml_if_event_notify(AmlBuf *a, unsigned bit, const char *path)
{
    aml_byte(a, AML_IF);
    size_t im = aml_open(a);
    aml_byte(a, AML_AND);
    aml_byte(a, AML_LOCAL0);
    aml_int(a, bit);
    aml_byte(a, AML_ZERO); /* no target */
    aml_byte(a, AML_NOTIFY);
    aml_name(a, path);
    aml_int(a, 0x80);
    aml_close(a, im);
}

static void aml_device_ged(AmlBuf *a, uint16_t port, uint32_t irq, bool vmgenid)
{
    size_t m = aml_device_open(a, "GED_");
    aml_name_string(a, "_HID", "ACPI0013");
    aml_name_int(a, "_UID", 0);
    AmlCrs crs = { .n = 0 };
    crs_interrupt(&crs, irq);
    aml_name_crs(a, &crs);
    /* OperationRegion (EREG, SystemIO, port, 4) */
    aml_byte(a, AML_EXT);
    aml_byte(a, AML_OPREGION);
    aml_name(a, "EREG");
    aml_byte(a, AML_SYSTEM_IO);
    aml_int(a, port);
    aml_int(a, 4);
    /* Field (EREG, DWordAcc, NoLock, Preserve) { ESTS, 32 } */
    aml_byte(a, AML_EXT);
    aml_byte(a, AML_FIELD);
    size_t f = aml_open(a);
    aml_name(a, "EREG");
    aml_byte(a, 0x03); /* DWordAcc | NoLock | Preserve */
    aml_name(a, "ESTS");
    aml_byte(a, 32); /* its width in bits (a PkgLength) */
    aml_close(a, f);
    /* Method (_EVT, 1, Serialized) */
    aml_byte(a, AML_METHOD);
    size_t mm = aml_open(a);
    aml_name(a, "_EVT");
    aml_byte(a, 0x09);      /* 1 argument, serialized, sync level 0 */
    aml_byte(a, AML_STORE); /* Store (ESTS, Local0) */
    aml_name(a, "ESTS");
    aml_byte(a, AML_LOCAL0);
    aml_byte(a, AML_STORE); /* Store (Local0, ESTS) */
    aml_byte(a, AML_LOCAL0);
    aml_name(a, "ESTS");
    aml_if_event_notify(a, 1, "\\_SB_.PWRB");
    if (vmgenid)
        aml_if_event_notify(a, 2, "\\_SB_.VGEN");
    aml_close(a, mm);
    aml_close(a, m);
}

/*
 * The VM generation ID (a guest's RNG reseeds when it changes: Linux's
 * vmgenid driver matches _CID, which ACPICA upper-cases):
 *
 *   Device (VGEN) {
 *       Name (_HID, "STRA0002")  Name (_CID, "VM_Gen_Counter")
 *       Name (_DDN, "VM_Gen_Counter")
 *       Name (ADDR, Package (2) { addr & 0xffffffff, addr >> 32 })
 *   }
 */
static void aml_device_vmgenid(AmlBuf *a, uint64_t addr)
{
    size_t m = aml_device_open(a, "VGEN");
    aml_name_string(a, "_HID", "STRA0002");
    aml_name_string(a, "_CID", "VM_Gen_Counter");
    aml_name_string(a, "_DDN", "VM_Gen_Counter");
    aml_byte(a, AML_NAME);
    aml_name(a, "ADDR");
    aml_byte(a, AML_PACKAGE);
    size_t pm = aml_open(a);
    aml_byte(a, 2);
    aml_int(a, addr & 0xffffffffu);
    aml_int(a, addr >> 32);
    aml_close(a, pm);
    aml_close(a, m);
}

static void aml_device_virtio(AmlBuf *a, unsigned idx, const AcpiVirtio *v)
{
    static const char hex[] = "0123456789ABCDEF";
    char name[5] = { 'V', 'R', hex[(idx >> 4) & 0xf], hex[idx & 0xf], 0 };
    size_t m = aml_device_open(a, name);
    aml_name_string(a, "_HID", "LNRO0005");
    aml_name_int(a, "_UID", idx);
    aml_name_int(a, "_CCA", 1);
    AmlCrs crs = { .n = 0 };
    crs_mem32(&crs, (uint32_t)v->base, (uint32_t)v->size);
    crs_interrupt(&crs, v->irq);
    aml_name_crs(a, &crs);
    aml_close(a, m);
}

/* ---- tables -------------------------------------------------------------- */

uint8_t acpi_checksum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    return (uint8_t)-s;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* Standard table header; length and checksum are filled by finish(). */
static void header(uint8_t *t, const char *sig, uint8_t rev)
{
    /* fixed-width ACPI fields, not C strings: no NUL */
    /* NOLINTBEGIN(bugprone-not-null-terminated-result) */
    memcpy(t, sig, 4);
    t[8] = rev;
    memcpy(t + 10, "STRATA", 6);
    memcpy(t + 16, "STRATAVM", 8);
    put32(t + 24, 1);
    memcpy(t + 28, "STRA", 4);
    /* NOLINTEND(bugprone-not-null-terminated-result) */
    put32(t + 32, 1);
}

static void finish(uint8_t *t, size_t len)
{
    put32(t + 4, (uint32_t)len);
    t[9] = 0;
    t[9] = acpi_checksum(t, len);
}

/* Generic Address Structure: byte-wide system I/O register. */
static void gas_io8(uint8_t *p, uint16_t port)
{
    p[0] = 1; /* SystemIO */
    p[1] = 8; /* bit width */
    p[2] = 0;
    p[3] = 1; /* byte access */
    put64(p + 4, port);
}

#define FADT_LEN 276
#define FADT_HW_REDUCED (1u << 20)
#define FADT_RESET_REG_SUP (1u << 10)
#define BOOT_ARCH_NO_VGA (1u << 2)
#define BOOT_ARCH_NO_CMOS (1u << 5)

static size_t align16(size_t v)
{
    return (v + 15) & ~(size_t)15;
}

size_t acpi_build(const AcpiConfig *c, uint8_t *buf, size_t cap, uint64_t gpa, char *err,
                  size_t errlen)
{
    if (c->ncpus == 0 || c->ncpus > ACPI_MAX_CPUS) {
        snprintf(err, errlen, "ACPI: %u vCPUs (1..%u supported)", c->ncpus, ACPI_MAX_CPUS);
        return 0;
    }
    if (c->nvirtio > ACPI_MAX_VIRTIO) {
        snprintf(err, errlen, "ACPI: %u virtio-mmio devices (at most %u)", c->nvirtio,
                 ACPI_MAX_VIRTIO);
        return 0;
    }
    size_t madt_len = 44 + 8 * (size_t)c->ncpus + 12 + 10;
    size_t rsdp = 0, xsdt = 48, fadt = align16(xsdt + 36 + 2 * 8), madt = align16(fadt + FADT_LEN);
    size_t dsdt = align16(madt + madt_len);
    if (dsdt + 36 > cap) {
        snprintf(err, errlen, "ACPI: tables do not fit in %zu bytes", cap);
        return 0;
    }
    memset(buf, 0, dsdt + 36);

    /* DSDT: definition block of AML after the header. */
    AmlBuf a = { buf + dsdt + 36, 0, cap - dsdt - 36, false };
    aml_byte(&a, AML_SCOPE);
    size_t m = aml_open(&a);
    aml_name(&a, "\\_SB_");
    if (c->serial)
        aml_device_serial(&a, c->serial_port, c->serial_irq);
    if (c->pvpanic_port)
        aml_device_pvpanic(&a, c->pvpanic_port);
    if (c->ged_port) {
        aml_device_power_button(&a);
        if (c->vmgenid_addr)
            aml_device_vmgenid(&a, c->vmgenid_addr);
        aml_device_ged(&a, c->ged_port, c->ged_irq, c->vmgenid_addr != 0);
    }
    for (unsigned i = 0; i < c->nvirtio; i++)
        aml_device_virtio(&a, i, &c->virtio[i]);
    aml_close(&a, m);
    if (c->sleep_port) {
        /* Name(_S5, Package(4) { 5, 0, 0, 0 }): SLP_TYP 5 for soft-off */
        aml_byte(&a, AML_NAME);
        aml_name(&a, "_S5_");
        aml_byte(&a, AML_PACKAGE);
        size_t pm = aml_open(&a);
        aml_byte(&a, 4);
        aml_int(&a, 5);
        aml_int(&a, 0);
        aml_int(&a, 0);
        aml_int(&a, 0);
        aml_close(&a, pm);
    }
    if (a.overflow) {
        snprintf(err, errlen, "ACPI: DSDT does not fit in %zu bytes", cap);
        return 0;
    }
    size_t dsdt_len = 36 + a.len;
    header(buf + dsdt, "DSDT", 2);
    finish(buf + dsdt, dsdt_len);

    /* MADT */
    uint8_t *t = buf + madt;
    header(t, "APIC", 5);
    put32(t + 36, c->lapic_addr);
    put32(t + 40, 1); /* PCAT_COMPAT: there are 8259s */
    size_t o = 44;
    for (unsigned i = 0; i < c->ncpus; i++, o += 8) {
        t[o] = 0; /* processor local APIC */
        t[o + 1] = 8;
        t[o + 2] = (uint8_t)i; /* ACPI processor UID */
        t[o + 3] = (uint8_t)i; /* APIC id */
        put32(t + o + 4, 1);   /* enabled */
    }
    t[o] = 1; /* I/O APIC */
    t[o + 1] = 12;
    t[o + 2] = 0; /* id (after the vCPUs' ids in spirit: KVM ignores) */
    put32(t + o + 4, c->ioapic_addr);
    put32(t + o + 8, 0); /* GSI base */
    o += 12;
    t[o] = 2; /* interrupt source override: IRQ0 -> GSI2 */
    t[o + 1] = 10;
    t[o + 2] = 0;
    t[o + 3] = 0;
    put32(t + o + 4, 2);
    put16(t + o + 8, 0);
    o += 10;
    finish(t, o);

    /* FADT (revision 6.0, hardware-reduced) */
    t = buf + fadt;
    header(t, "FACP", 6);
    put32(t + 40, (uint32_t)(gpa + dsdt));
    put16(t + 109, BOOT_ARCH_NO_VGA | BOOT_ARCH_NO_CMOS);
    put32(t + 112, FADT_HW_REDUCED | (c->sleep_port ? FADT_RESET_REG_SUP : 0));
    t[131] = 0;                 /* minor version */
    put64(t + 140, gpa + dsdt); /* X_DSDT */
    if (c->sleep_port) {
        gas_io8(t + 244, c->sleep_port);
        gas_io8(t + 256, (uint16_t)(c->sleep_port + 1));
        /* reset register: the byte after the sleep pair (a hardware-reduced
         * guest resets through it before trying the i8042) */
        gas_io8(t + 116, (uint16_t)(c->sleep_port + ACPI_FADT_RESET_OFFSET));
        t[128] = ACPI_FADT_RESET_VALUE;
    }
    memcpy(t + 268, "STRATAVM", 8); /* hypervisor vendor identity */
    finish(t, FADT_LEN);

    /* XSDT: FADT, MADT */
    t = buf + xsdt;
    header(t, "XSDT", 1);
    put64(t + 36, gpa + fadt);
    put64(t + 44, gpa + madt);
    finish(t, 52);

    /* RSDP 2.0 */
    t = buf + rsdp;
    memcpy(t, "RSD PTR ", 8);
    memcpy(t + 9, "STRATA", 6);
    t[15] = 2;        /* revision: ACPI 2.0+ */
    put32(t + 16, 0); /* no RSDT */
    put32(t + 20, 36);
    put64(t + 24, gpa + xsdt);
    t[8] = acpi_checksum(t, 20);
    t[32] = acpi_checksum(t, 36);
    return dsdt + dsdt_len;
}
