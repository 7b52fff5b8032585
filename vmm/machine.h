/* SPDX-License-Identifier: MIT */
/*
 * The microVM board: memory-region tree, devices, KVM VM and vCPU.
 *
 *   address-space "memory": "system" container (2^64)
 *       "ram-below-4g" alias of "microvm.ram" at 0 (up to 3 GiB)
 *       "ram-above-4g" alias at 4 GiB (the rest, if any)
 *   address-space "I/O": "io" container (64 KiB)
 *       "strata-testdev" at 0xf0 (only with --test-device)
 *       "serial" at 0x3f8 (unless --serial none)
 */
#ifndef STRATA_VMM_MACHINE_H
#define STRATA_VMM_MACHINE_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/serial.h"
#include "devices/testdev.h"
#include "kvm/kvm.h"
#include "memory/memory.h"
#include "vmm/config.h"
#include "vmm/loader.h"

#define MACHINE_SERIAL_PORT 0x3f8
#define MACHINE_LOWMEM_LIMIT (3ull << 30)

typedef struct Machine {
    const VmConfig *cfg;
    MemoryContext *ctx;
    MemoryRegion system, io, ram, ram_below, ram_above;
    bool have_system, have_io, have_ram, have_below, have_above;
    bool below_mapped, above_mapped, serial_mapped, testdev_mapped;
    AddressSpace *memory_as, *io_as;
    SerialState serial;
    bool have_serial;
    TestDev testdev;
    bool have_testdev;
    int serial_fd;              /* owned when serial_fd_owned */
    bool serial_fd_owned;
    KvmVm *vm;
    KvmVcpu *vcpu;
    KernelImage kernel;
    GuestRam guest_ram;
    uint64_t start_info;
    /* set by the test device's EXIT (from the vCPU thread) */
    volatile int guest_exited;
    volatile uint32_t guest_exit_code;
} Machine;

/*
 * Builds the whole machine from cfg (kept by reference): regions, devices,
 * address spaces, the KVM VM with its vCPU in the PVH entry state of the
 * loaded kernel.  Nothing runs yet.  0, or -1 after printing one line.
 */
int machine_create(Machine *m, const VmConfig *cfg);
/* Starts the vCPU threads.  0 or -1 after printing why. */
int machine_start(Machine *m);
/*
 * Resets a paused (or not yet started) machine to its power-on state: RAM
 * zeroed, the kernel reloaded, devices reset, the vCPU back at the PVH
 * entry.  0, or -1 with err set.
 */
int machine_reset(Machine *m, char *err, size_t errlen);
/* Ends the VM if running and frees everything machine_create made. */
void machine_destroy(Machine *m);

#endif /* STRATA_VMM_MACHINE_H */
