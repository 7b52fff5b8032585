/* SPDX-License-Identifier: MIT */
/*
 * ACPI tables for the microVM: RSDP (2.0), XSDT, FADT (revision 6,
 * hardware-reduced, with an ACPI 5 sleep control/status register pair so
 * `poweroff` works), MADT (one local APIC per vCPU, the IOAPIC, ISA
 * interrupt overrides) and a DSDT whose AML describes the serial port, the
 * virtio-mmio devices, pvpanic, the power button with its Generic Event
 * Device, the VM generation ID (notified by that GED), and \_S5.  A tiny AML emitter writes the few
 * constructs needed.  Pure: the tables are built into a caller's buffer
 * that is then copied to guest physical ACPI_TABLES_ADDR.
 */
#ifndef STRATA_VMM_BOOT_ACPI_H
#define STRATA_VMM_BOOT_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The FADT reset register: sleep port + 2, value 0x42 (devices/i8042.c
 * implements it; vmm/machine.c checks the two agree). */
#define ACPI_FADT_RESET_OFFSET 2
#define ACPI_FADT_RESET_VALUE 0x42

#define ACPI_TABLES_ADDR 0xe0000ull /* RSDP first; inside the BIOS area Linux scans */
#define ACPI_TABLES_MAX 0x10000ull
/* The VM generation ID's 16 bytes (Microsoft's "Virtual Machine Generation
 * ID", Linux's drivers/virt/vmgenid.c): the page after the tables, in the
 * same reserved 0xa0000-0x100000 hole. */
#define ACPI_VMGENID_ADDR (ACPI_TABLES_ADDR + ACPI_TABLES_MAX)
#define ACPI_VMGENID_SIZE 16
#define ACPI_MAX_CPUS 255
#define ACPI_MAX_VIRTIO 32

typedef struct AcpiVirtio {
    uint64_t base;
    uint32_t size;
    uint32_t irq; /* GSI, described level triggered, active high */
} AcpiVirtio;

typedef struct AcpiConfig {
    unsigned ncpus;       /* local APICs with ids 0..ncpus-1 */
    uint32_t lapic_addr;  /* 0xfee00000 */
    uint32_t ioapic_addr; /* 0xfec00000 */
    bool serial;          /* a 16550A at serial_port, IRQ serial_irq */
    uint16_t serial_port;
    uint8_t serial_irq;
    uint16_t sleep_port;   /* 0: no sleep registers (no ACPI poweroff); else
                                 * control at sleep_port, status at sleep_port + 1 */
    uint16_t pvpanic_port; /* 0: none; else a pvpanic device (QEMU0001) there */
    uint16_t ged_port;     /* 0: none; else a power button (PNP0C0C) pressed by a
                                 * Generic Event Device (ACPI0013) whose event register
                                 * (devices/ged.h) is at ged_port, interrupt ged_irq */
    uint32_t ged_irq;      /* GSI, described level triggered, active high */
    uint64_t vmgenid_addr; /* 0: none; else (with the GED) a VM generation ID
                                 * device (_CID "VM_Gen_Counter") whose 16 bytes are
                                 * there; the GED's event 2 notifies it (0x80) */
    unsigned nvirtio;
    AcpiVirtio virtio[ACPI_MAX_VIRTIO];
} AcpiConfig;

/* An AML byte stream being built (fixed capacity; overflow is sticky). */
typedef struct AmlBuf {
    uint8_t *b;
    size_t len, cap;
    bool overflow;
} AmlBuf;

/* Appends n raw bytes. */
void aml_bytes(AmlBuf *a, const void *p, size_t n);
/* Appends an integer with the shortest encoding (ZeroOp, OneOp, Byte..QWord). */
void aml_int(AmlBuf *a, uint64_t v);
/* Appends a NameString: "\\_SB_", "COM1", "_HID" (segments padded with '_'). */
void aml_name(AmlBuf *a, const char *path);
/* Appends a String ("LNRO0005"). */
void aml_string(AmlBuf *a, const char *s);
/* Appends EISAID("PNP0501") as a DWord. */
void aml_eisaid(AmlBuf *a, const char *id);
/* Opens a package-length construct after its opcode; returns the mark to
 * pass to aml_close. */
size_t aml_open(AmlBuf *a);
/* Inserts the PkgLength for everything since mark (1 to 4 bytes). */
void aml_close(AmlBuf *a, size_t mark);
/* Encodes a PkgLength for a body of n bytes into out (1-4 bytes); returns
 * its size, or 0 if n is too long. */
size_t aml_pkglen_encode(size_t n, uint8_t out[4]);

/*
 * Builds all tables into buf (guest physical address gpa for the
 * pointers between them).  Returns the bytes used (RSDP at offset 0), or 0
 * with err set (too many CPUs/devices, buffer too small).
 */
size_t acpi_build(const AcpiConfig *cfg, uint8_t *buf, size_t cap, uint64_t gpa, char *err,
                  size_t errlen);

/* The 8-bit checksum such that the bytes sum to zero. */
uint8_t acpi_checksum(const uint8_t *p, size_t n);

#endif /* STRATA_VMM_BOOT_ACPI_H */
