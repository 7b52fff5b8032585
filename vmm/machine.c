/* SPDX-License-Identifier: MIT */
/* The microVM board (see machine.h). */
#include "vmm/machine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/guests/testdev.h"

static void testdev_exit(void *opaque, uint32_t code)
{
    Machine *m = opaque;
    m->guest_exit_code = code;
    __atomic_store_n(&m->guest_exited, 1, __ATOMIC_SEQ_CST);
    kvm_vm_request_end(m->vm, KVM_END_REQUESTED, (int)code, "guest exit");
}

static int fail(Machine *m, const char *what, int err)
{
    const char *detail = m->ctx ? memory_context_last_error(m->ctx) : "";
    fprintf(stderr, "strata: %s: %s%s%s\n", what, strerror(err < 0 ? -err : err),
            *detail ? ": " : "", detail);
    return -1;
}

static int open_serial(Machine *m)
{
    const VmConfig *cfg = m->cfg;
    m->serial_fd = -1;
    switch (cfg->serial) {
    case SERIAL_STDIO:
        m->serial_fd = STDOUT_FILENO;
        return 0;
    case SERIAL_FILE:
        m->serial_fd = open(cfg->serial_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (m->serial_fd < 0) {
            fprintf(stderr, "strata: --serial file=%s: %s\n", cfg->serial_path,
                    strerror(errno));
            return -1;
        }
        m->serial_fd_owned = true;
        return 0;
    case SERIAL_NONE:
        return 0;
    }
    return 0;
}

static int build_memory(Machine *m)
{
    const VmConfig *cfg = m->cfg;
    MemoryContext *ctx = m->ctx;
    int r;
    uint64_t below = cfg->memory < MACHINE_LOWMEM_LIMIT ? cfg->memory : MACHINE_LOWMEM_LIMIT;
    uint64_t above = cfg->memory - below;

    if ((r = memory_region_init(&m->system, ctx, "system", UINT64_MAX)) < 0)
        return fail(m, "region system", r);
    m->have_system = true;
    if ((r = memory_region_init(&m->io, ctx, "io", 0x10000)) < 0)
        return fail(m, "region io", r);
    m->have_io = true;
    if ((r = memory_region_init_ram(&m->ram, ctx, NULL, "microvm.ram", cfg->memory)) < 0)
        return fail(m, "--memory: guest RAM", r);
    m->have_ram = true;
    if ((r = memory_region_init_alias(&m->ram_below, ctx, "ram-below-4g", &m->ram, 0,
                                      below)) < 0)
        return fail(m, "region ram-below-4g", r);
    m->have_below = true;
    if ((r = memory_region_add_subregion(&m->system, 0, &m->ram_below)) < 0)
        return fail(m, "mapping ram-below-4g", r);
    m->below_mapped = true;
    if (above) {
        if ((r = memory_region_init_alias(&m->ram_above, ctx, "ram-above-4g", &m->ram, below,
                                          above)) < 0)
            return fail(m, "region ram-above-4g", r);
        m->have_above = true;
        if ((r = memory_region_add_subregion(&m->system, 1ull << 32, &m->ram_above)) < 0)
            return fail(m, "mapping ram-above-4g", r);
        m->above_mapped = true;
    }
    m->guest_ram.host = memory_region_get_ram_ptr(&m->ram);
    m->guest_ram.below = below;
    m->guest_ram.above = above;

    if (cfg->test_device) {
        if ((r = testdev_init(&m->testdev, ctx, testdev_exit, m, stderr)) < 0)
            return fail(m, "test device", r);
        m->have_testdev = true;
        if ((r = memory_region_add_subregion(&m->io, TESTDEV_PORT_BASE,
                                             testdev_region(&m->testdev))) < 0)
            return fail(m, "mapping the test device", r);
        m->testdev_mapped = true;
    }
    if (cfg->serial != SERIAL_NONE) {
        /* No in-kernel irqchip yet: the UART's line is left unconnected. */
        if ((r = serial_init(&m->serial, ctx, m->serial_fd, NULL)) < 0)
            return fail(m, "serial", r);
        m->have_serial = true;
        if ((r = memory_region_add_subregion(&m->io, MACHINE_SERIAL_PORT,
                                             serial_region(&m->serial))) < 0)
            return fail(m, "mapping the serial port", r);
        m->serial_mapped = true;
    }
    m->memory_as = address_space_new(ctx, &m->system, "memory");
    m->io_as = address_space_new(ctx, &m->io, "I/O");
    if (!m->memory_as || !m->io_as)
        return fail(m, "address spaces", -ENOMEM);
    return 0;
}

static int load_kernel(Machine *m, char *err, size_t errlen)
{
    if (kernel_image_load(&m->kernel, &m->guest_ram, err, errlen) < 0)
        return -1;
    m->start_info = pvh_write_start_info(&m->guest_ram, m->cfg->cmdline, err, errlen);
    if (!m->start_info)
        return -1;
    if (kvm_vcpu_setup_pvh(m->vcpu, m->kernel.entry, m->start_info) < 0) {
        snprintf(err, errlen, "vCPU 0: cannot set the PVH entry state");
        return -1;
    }
    return 0;
}

int machine_create(Machine *m, const VmConfig *cfg)
{
    char err[512];
    memset(m, 0, sizeof(*m));
    m->cfg = cfg;
    m->serial_fd = -1;

    if (kernel_image_open(&m->kernel, cfg->kernel, err, sizeof(err)) < 0) {
        fprintf(stderr, "strata: %s\n", err);
        return -1;
    }
    if (open_serial(m) < 0)
        return -1;
    m->ctx = memory_context_new();
    if (!m->ctx)
        return fail(m, "memory context", -ENOMEM);
    if (build_memory(m) < 0)
        return -1;

    KvmVmConfig kc = KVM_VM_CONFIG_DEFAULT;
    kc.verbose = cfg->verbose;
    int r = kvm_vm_create(&kc, &m->vm);
    if (r < 0) {
        fprintf(stderr, "strata: cannot create the KVM VM (%s)\n", strerror(-r));
        return -1;
    }
    if ((r = kvm_vm_attach_memory(m->vm, m->ctx, m->memory_as, m->io_as)) < 0) {
        fprintf(stderr, "strata: attaching guest memory to KVM failed: %s\n",
                kvm_vm_last_error(m->vm));
        return -1;
    }
    if ((r = kvm_vcpu_create(m->vm, 0, &m->vcpu)) < 0 || (r = kvm_vcpu_init_cpuid(m->vcpu)) < 0) {
        fprintf(stderr, "strata: vCPU 0: %s\n", strerror(-r));
        return -1;
    }
    if (load_kernel(m, err, sizeof(err)) < 0) {
        fprintf(stderr, "strata: %s\n", err);
        return -1;
    }
    return 0;
}

int machine_start(Machine *m)
{
    int r = kvm_vm_start(m->vm);
    if (r < 0) {
        fprintf(stderr, "strata: cannot start the vCPU: %s\n", strerror(-r));
        return -1;
    }
    return 0;
}

int machine_reset(Machine *m, char *err, size_t errlen)
{
    uint64_t len = m->guest_ram.below + m->guest_ram.above;
    if (madvise(m->guest_ram.host, len, MADV_DONTNEED) < 0) {
        /* not expected for private anonymous memory; zero it by hand */
        memset(m->guest_ram.host, 0, len);
    }
    if (m->have_serial)
        serial_reset(&m->serial);
    if (m->have_testdev)
        testdev_reset(&m->testdev);
    return load_kernel(m, err, errlen);
}

void machine_destroy(Machine *m)
{
    if (m->vm) {
        kvm_vm_destroy(m->vm);
        m->vm = NULL;
    }
    if (m->memory_as)
        address_space_destroy(m->memory_as);
    if (m->io_as)
        address_space_destroy(m->io_as);
    if (m->serial_mapped)
        memory_region_del_subregion(&m->io, serial_region(&m->serial));
    if (m->testdev_mapped)
        memory_region_del_subregion(&m->io, testdev_region(&m->testdev));
    if (m->above_mapped)
        memory_region_del_subregion(&m->system, &m->ram_above);
    if (m->below_mapped)
        memory_region_del_subregion(&m->system, &m->ram_below);
    if (m->have_serial)
        serial_destroy(&m->serial);
    if (m->have_testdev)
        testdev_destroy(&m->testdev);
    if (m->have_above)
        memory_region_destroy(&m->ram_above);
    if (m->have_below)
        memory_region_destroy(&m->ram_below);
    if (m->have_ram)
        memory_region_destroy(&m->ram);
    if (m->have_io)
        memory_region_destroy(&m->io);
    if (m->have_system)
        memory_region_destroy(&m->system);
    if (m->ctx)
        memory_context_free(m->ctx);
    if (m->serial_fd_owned)
        close(m->serial_fd);
    kernel_image_free(&m->kernel);
    memset(m, 0, sizeof(*m));
}
