/* SPDX-License-Identifier: MIT */
/*
 * The microVM board: memory-region tree, devices, KVM VM and vCPU.
 *
 *   address-space "memory": "system" container (2^64)
 *       "ram-below-4g" alias of "microvm.ram" at 0 (up to 3 GiB)
 *       "ram-above-4g" alias at 4 GiB (the rest, if any)
 *       virtio-mmio devices at MACHINE_VIRTIO_BASE + n * 0x200 (n < 18)
 *   address-space "I/O": "io" container (64 KiB)
 *       "i8042-data" at 0x60, "i8042-cmd" at 0x64 (reset), "acpi-sleep" at 0x600
 *       "pvpanic" at 0x505, "acpi-ged" at 0x610 (power button events, GSI 8)
 *       "strata-testdev" at 0xf0 (only with --test-device)
 *       "serial" at 0x3f8, IRQ 4 (unless --serial none)
 *
 * In-kernel irqchip (PIC, IOAPIC at 0xfec00000, a LAPIC per vCPU at
 * 0xfee00000) and PIT.  With an in-kernel LAPIC, HLT no longer exits: a
 * guest ends through the test device, the i8042 reset, ACPI poweroff or a
 * triple fault.  vCPU 0 starts at the kernel's entry; the others wait for
 * INIT/SIPI from it (KVM_MP_STATE_UNINITIALIZED).
 *
 * virtio-mmio slot n: MMIO [0xfeb00000 + n*0x200, +0x200), GSI
 * machine_virtio_gsi[n] (5, 6, 7, 9..15, then 16..23): level triggered,
 * active high, described in the DSDT as "LNRO0005" devices (and on the
 * command line as virtio_mmio.device=512@ADDR:GSI when the command line
 * says acpi=off).  Place a device with machine_add_virtio between
 * machine_create's VM creation and the kernel load (see machine.c's
 * "virtio devices" hook).
 *
 * Every device, platform or virtio, is one record in m->devices, added with
 * one call (machine_add_device / machine_add_virtio); reset, migration and
 * teardown walk that list.
 */
#ifndef STRATA_VMM_MACHINE_H
#define STRATA_VMM_MACHINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "devices/ged.h"
#include "devices/i8042.h"
#include "devices/pvpanic.h"
#include "devices/serial.h"
#include "devices/testdev.h"
#include "kvm/kvm.h"
#include "memory/memory.h"
#include "vmm/boot/acpi.h"
#include "vmm/boot/boot-linux.h"
#include "vmm/chardev.h"
#include "vmm/config.h"
#include "vmm/devlist.h"
#include "vmm/boot/loader.h"
#include "vmm/machine-virtio.h"

#define MACHINE_NAME "strata-microvm" /* QMP query-machines, the migration stream */
#define MACHINE_SERIAL_PORT 0x3f8
#define MACHINE_SERIAL_IRQ 4
#define MACHINE_LOWMEM_LIMIT (3ull << 30)
#define MACHINE_SLEEP_PORT 0x600
#define MACHINE_GED_PORT 0x610 /* devices/ged.h: the power button's event register */
#define MACHINE_GED_GSI 8      /* the RTC's on a PC; this board has no CMOS */
#define MACHINE_MAX_CPUS 64
#define MACHINE_VIRTIO_BASE 0xfeb00000ull
#define MACHINE_VIRTIO_SIZE 0x200
#define MACHINE_MAX_VIRTIO 18

/* GSIs of the virtio-mmio slots, in slot order. */
extern const unsigned machine_virtio_gsi[MACHINE_MAX_VIRTIO];

typedef struct MachineVirtio {
    uint64_t base;
    unsigned gsi;
    VirtioMmio *t; /* the device's transport (its counters: `info virtio`) */
} MachineVirtio;

/* What the board's ACPI tables describe (vmm/boot/acpi.h): ncpus local
 * APICs, the serial port if serial, the sleep/reset, pvpanic and GED
 * registers, and nvirtio virtio-mmio slots.  Inline so a tool builds the
 * same tables without a VM (tests/lint/acpi-dump). */
static inline AcpiConfig machine_acpi_config(unsigned ncpus, bool serial,
                                             const MachineVirtio *virtio, unsigned nvirtio)
{
    AcpiConfig ac;
    memset(&ac, 0, sizeof(ac));
    ac.ncpus = ncpus;
    ac.lapic_addr = 0xfee00000u;
    ac.ioapic_addr = 0xfec00000u;
    ac.serial = serial;
    ac.serial_port = MACHINE_SERIAL_PORT;
    ac.serial_irq = MACHINE_SERIAL_IRQ;
    ac.sleep_port = MACHINE_SLEEP_PORT;
    ac.pvpanic_port = PVPANIC_PORT;
    ac.ged_port = MACHINE_GED_PORT;
    ac.ged_irq = MACHINE_GED_GSI;
    ac.vmgenid_addr = ACPI_VMGENID_ADDR;
    ac.nvirtio = nvirtio;
    for (unsigned i = 0; i < nvirtio; i++)
        ac.virtio[i] = (AcpiVirtio){ virtio[i].base, MACHINE_VIRTIO_SIZE, virtio[i].gsi };
    return ac;
}

/* The threads the board starts. */
typedef enum BoardThread {
    BOARD_THREAD_VCPU,   /* each vCPU's */
    BOARD_THREAD_IO,     /* the virtio devices' event loop */
    BOARD_THREAD_STDIN,  /* --serial stdio's input */
    BOARD_THREAD_SERIAL, /* --serial pty / socket=PATH: vmm/chardev.h */
} BoardThread;

/* What the vmm/ root hands the board for its threads and the terminal (the
 * sandbox stays the root's: the board never calls it).  Each may be NULL. */
typedef struct BoardHooks {
    /* First thing on each thread the board starts: enter its restrictions
     * (the sandbox role for t).  Nonzero: that thread does nothing. */
    int (*enter_thread)(void *opaque, BoardThread t);
    /* fd is a terminal about to be put in raw mode: have a kill (seccomp)
     * restore it.  Main thread. */
    void (*save_tty)(void *opaque, int fd);
    void *opaque;
} BoardHooks;

typedef struct Machine {
    const VmConfig *cfg;
    MemoryContext *ctx;
    MemoryRegion system, io, ram, ram_below, ram_above;
    AddressSpace *memory_as, *io_as;
    /* Every device, in migration stream order: reset, saved, loaded and
     * torn down through this list (vmm/devlist.h), never by name. */
    DevList devices;
    /* The platform devices' state (each in devices once created). */
    SerialState serial; /* "serial" at MACHINE_SERIAL_PORT */
    I8042State i8042;
    PvpanicState pvpanic; /* "pvpanic" at PVPANIC_PORT */
    GedState ged;         /* "acpi-ged" at MACHINE_GED_PORT */
    TestDev testdev;
    int serial_fd; /* owned when serial_fd_owned */
    bool serial_fd_owned;
    Chardev chardev; /* --serial pty or socket=PATH: the UART's host side */
    KvmVm *vm;
    KvmVcpu *vcpu; /* vcpus[0] */
    KvmVcpu *vcpus[MACHINE_MAX_CPUS];
    unsigned ncpus;
    /* a restore's vCPUs wait for the CPUID their saved state carries
     * (machine_set_pending_cpuid gives the others this host's) */
    bool cpuid_pending[MACHINE_MAX_CPUS];
    KernelImage kernel; /* when !is_bzimage */
    bool is_bzimage;
    uint8_t *bz; /* the bzImage file */
    size_t bz_len;
    BzImageInfo bzi;
    uint8_t *initrd; /* --initrd file, or NULL */
    size_t initrd_len;
    volatile int guest_panicked; /* set by pvpanic (vCPU thread) */
    MachineVirtio virtio[MACHINE_MAX_VIRTIO];
    unsigned nvirtio;
    VirtioDevs *virtio_devs; /* the virtio devices' event loop (machine-virtio.h) */
    /* --serial stdio input: a thread feeds stdin to the UART (raw tty) */
    pthread_t stdin_thread;
    bool stdin_started;
    int stdin_stop[2]; /* pipe: writing ends the thread */
    GuestRam guest_ram;
    uint64_t start_info;
    /* set by the test device's EXIT (from the vCPU thread) */
    volatile int guest_exited;
    volatile uint32_t guest_exit_code;
    BoardHooks hooks; /* set before machine_start, by the vmm/ root */
} Machine;

/*
 * Builds the whole machine from cfg (kept by reference): regions, devices,
 * address spaces, the KVM VM with its vCPU in the PVH entry state of the
 * loaded kernel.  Nothing runs yet.  0, or -1 after printing one line.
 */
int machine_create(Machine *m, const VmConfig *cfg);
/* machine_create in two steps: the KVM VM and the memory tree (guest RAM
 * mapped, not yet attached to KVM), then everything else.  Between them a
 * restore may map a snapshot's RAM over the machine's (vmm/run.c). */
int machine_create_begin(Machine *m, const VmConfig *cfg);
int machine_create_finish(Machine *m);
/*
 * A restore (cfg->restore) creates its vCPUs without CPUID: the snapshot's
 * vCPU states carry the guest's own (kvm_vcpu_set_state sets it), and
 * asking KVM for this host's costs 0.4 ms on a PVM host.  This gives this
 * host's CPUID (as a boot computes it) to every vCPU still without one:
 * the restore of a snapshot whose states carry none.  0 (also when none
 * waits), or -1 after printing why.  machine_start refuses a vCPU left
 * without CPUID.
 */
int machine_set_pending_cpuid(Machine *m);
/* Marks vCPU i's CPUID as set (by its saved state). */
void machine_cpuid_loaded(Machine *m, unsigned i);
/*
 * Adds device dev (the state ops works on, kept by the caller) to the
 * board's list and maps its regions (DEV_REGIONS(...)): from now on reset,
 * migration and teardown reach it.  0, or -1 after printing why (the
 * device is destroyed by machine_destroy either way).
 */
int machine_add_device(Machine *m, const DeviceOps *ops, void *dev, const DevRegion *regions,
                       unsigned nregions);
/*
 * Places virtio device dev (malloc()ed, its transport t, ops for the list)
 * in the next virtio-mmio slot: maps its region, wires its level-triggered
 * interrupt (virtio_mmio_connect_irq, a resampling irqfd where KVM offers
 * one), describes it to the guest (DSDT / command line) and adds it to the
 * device list named t->label.  Call after the VM exists and before the
 * kernel is loaded.  The board owns dev from here, also on failure.  0, or
 * -1 after printing why (no slot left, mapping failed).
 */
int machine_add_virtio(Machine *m, VirtioMmio *t, const DeviceOps *ops, void *dev);
/* A new VM generation ID (16 random bytes at ACPI_VMGENID_ADDR) and the
 * GED event that tells the guest (its vmgenid driver reseeds the RNG):
 * after a snapshot's restore, so that clones of one snapshot diverge.
 * 0, or -1 if no random bytes could be had. */
int machine_new_generation(Machine *m);
/* Holds the virtio event loop between handler batches (no device touches
 * guest memory) / lets it go again; no-ops without virtio devices. */
void machine_virtio_pause(Machine *m);
void machine_virtio_resume(Machine *m);
/* Ends a machine_virtio_pause for good: the devices never run again. */
void machine_virtio_halt(Machine *m);
/* Starts the device, vCPU and stdin threads, each calling
 * m->hooks.enter_thread first when set.  0 or -1 after printing why. */
int machine_start(Machine *m);
/*
 * Resets a paused (or not yet started) machine to its power-on state: RAM
 * zeroed, the kernel reloaded, devices reset, the vCPU back at the PVH
 * entry.  0, or -1 with err set.
 */
int machine_reset(Machine *m, char *err, size_t errlen);
/* Presses the ACPI power button (the Generic Event Device interrupt); the
 * guest decides what to do.  Any thread.  0, or -ENODEV without the GED. */
int machine_powerdown(Machine *m);
/* Ends the VM if running and frees everything machine_create made. */
void machine_destroy(Machine *m);

#endif /* STRATA_VMM_MACHINE_H */
