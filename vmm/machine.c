/* SPDX-License-Identifier: MIT */
/* The microVM board (see machine.h). */
#include "vmm/machine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <termios.h>
#include <unistd.h>

#include "devices/virtio-mmio.h"
#include "devices/testdev-ports.h"
#include "vmm/boot/acpi.h"
#include "vmm/boot/cpuid.h"
#include "vmm/log.h"

const unsigned machine_virtio_gsi[MACHINE_MAX_VIRTIO] = {
    5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
};

#define MAX_INITRD (1ull << 30)

_Static_assert(ACPI_FADT_RESET_OFFSET == ACPI_RESET_REG_OFFSET &&
                   ACPI_FADT_RESET_VALUE == ACPI_RESET_VALUE,
               "the FADT must describe the reset register devices/i8042.c implements");
_Static_assert(VM_DIRTY_RING_AUTO == KVM_DIRTY_RING_AUTO && VM_DIRTY_RING_OFF == KVM_DIRTY_RING_OFF,
               "--dirty-ring's values are handed to kvm/ as they are");
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff

/* The guest's reboot (i8042) or ACPI poweroff: strata exits with status 0. */
static void power_event(void *opaque, PowerEvent ev)
{
    Machine *m = opaque;
    kvm_vm_request_end(m->vm, KVM_END_REQUESTED, 0,
                       ev == POWER_RESET ? "guest reboot" : "guest poweroff");
}

/* The guest kernel panicked (pvpanic): end the VM; strata exits non-zero. */
static void guest_panic(void *opaque, uint8_t events)
{
    Machine *m = opaque;
    if (!(events & PVPANIC_PANICKED))
        return;
    __atomic_store_n(&m->guest_panicked, 1, __ATOMIC_SEQ_CST);
    kvm_vm_request_end(m->vm, KVM_END_REQUESTED, 0, "guest kernel panic");
}

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
    log_msg(LOG_ERROR, "%s: %s%s%s", what, strerror(err < 0 ? -err : err), *detail ? ": " : "",
            detail);
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
            log_msg(LOG_ERROR, "--serial file=%s: %s", cfg->serial_path, strerror(errno));
            return -1;
        }
        m->serial_fd_owned = true;
        return 0;
    case SERIAL_PTY:
    case SERIAL_SOCKET: {
        char err[256];
        if (chardev_open(&m->chardev, cfg, err, sizeof(err)) < 0) {
            log_msg(LOG_ERROR, "%s", err);
            return -1;
        }
        m->serial_fd = chardev_out_fd(&m->chardev);
        return 0;
    }
    case SERIAL_NONE:
        return 0;
    }
    return 0;
}

int machine_add_device(Machine *m, const DeviceOps *ops, void *dev, const DevRegion *regions,
                       unsigned nregions)
{
    char err[160];
    int r = devlist_add(&m->devices, NULL, ops, dev, false, regions, nregions, err, sizeof(err));
    return r < 0 ? fail(m, err, r) : 0;
}

/* The platform devices, each created and then added to the device list
 * with one machine_add_device call.  The order of those calls is the
 * migration stream's device order (docs/migration.md): keep it. */
static int add_platform_devices(Machine *m)
{
    const VmConfig *cfg = m->cfg;
    MemoryContext *ctx = m->ctx;
    int r;
    if (cfg->serial != SERIAL_NONE) {
        IrqLine line;
        if ((r = kvm_vm_irq_line(m->vm, MACHINE_SERIAL_IRQ, &line)) < 0)
            return fail(m, "serial IRQ", r);
        if ((r = serial_init(&m->serial, ctx, m->serial_fd, &line)) < 0)
            return fail(m, "serial", r);
        if (machine_add_device(m, &serial_device_ops, &m->serial,
                               DEV_REGIONS(
                                   { &m->io, MACHINE_SERIAL_PORT, serial_region(&m->serial) })) < 0)
            return -1;
    }
    if ((r = i8042_init(&m->i8042, ctx, power_event, m)) < 0)
        return fail(m, "i8042", r);
    if (machine_add_device(m, &i8042_device_ops, &m->i8042,
                           DEV_REGIONS({ &m->io, I8042_DATA_PORT, i8042_data_region(&m->i8042) },
                                       { &m->io, I8042_CMD_PORT, i8042_cmd_region(&m->i8042) },
                                       { &m->io, MACHINE_SLEEP_PORT,
                                         i8042_sleep_region(&m->i8042) })) < 0)
        return -1;
    if ((r = pvpanic_init(&m->pvpanic, ctx, guest_panic, m)) < 0)
        return fail(m, "pvpanic", r);
    if (machine_add_device(m, &pvpanic_device_ops, &m->pvpanic,
                           DEV_REGIONS({ &m->io, PVPANIC_PORT, &m->pvpanic.io })) < 0)
        return -1;
    IrqLine ged_line;
    if ((r = kvm_vm_irq_line(m->vm, MACHINE_GED_GSI, &ged_line)) < 0 ||
        (r = ged_init(&m->ged, ctx, &ged_line)) < 0)
        return fail(m, "acpi-ged", r);
    if (machine_add_device(m, &ged_device_ops, &m->ged,
                           DEV_REGIONS({ &m->io, MACHINE_GED_PORT, &m->ged.io })) < 0)
        return -1;
    if (cfg->test_device) {
        if ((r = testdev_init(&m->testdev, ctx, testdev_exit, m, stderr)) < 0)
            return fail(m, "test device", r);
        if (machine_add_device(m, &testdev_device_ops, &m->testdev,
                               DEV_REGIONS(
                                   { &m->io, TESTDEV_PORT_BASE, testdev_region(&m->testdev) })) < 0)
            return -1;
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
    if ((r = memory_region_init(&m->io, ctx, "io", 0x10000)) < 0)
        return fail(m, "region io", r);
    if ((r = memory_region_init_ram(&m->ram, ctx, NULL, "microvm.ram", cfg->memory)) < 0)
        return fail(m, "--memory: guest RAM", r);
    if ((r = memory_region_init_alias(&m->ram_below, ctx, "ram-below-4g", &m->ram, 0, below)) < 0)
        return fail(m, "region ram-below-4g", r);
    if ((r = memory_region_add_subregion(&m->system, 0, &m->ram_below)) < 0)
        return fail(m, "mapping ram-below-4g", r);
    if (above) {
        if ((r = memory_region_init_alias(&m->ram_above, ctx, "ram-above-4g", &m->ram, below,
                                          above)) < 0)
            return fail(m, "region ram-above-4g", r);
        if ((r = memory_region_add_subregion(&m->system, 1ull << 32, &m->ram_above)) < 0)
            return fail(m, "mapping ram-above-4g", r);
    }
    m->guest_ram.host = memory_region_get_ram_ptr(&m->ram);
    m->guest_ram.below = below;
    m->guest_ram.above = above;
    if (add_platform_devices(m) < 0)
        return -1;
    m->memory_as = address_space_new(ctx, &m->system, "memory");
    m->io_as = address_space_new(ctx, &m->io, "I/O");
    if (!m->memory_as || !m->io_as)
        return fail(m, "address spaces", -ENOMEM);
    return 0;
}

int machine_add_virtio(Machine *m, VirtioMmio *t, const DeviceOps *ops, void *dev)
{
    char err[160];
    DevRegion reg = { &m->system, 0, virtio_mmio_region(t) };
    if (m->nvirtio >= MACHINE_MAX_VIRTIO) {
        log_msg(LOG_ERROR, "virtio-mmio: all %u slots are taken", MACHINE_MAX_VIRTIO);
        ops->destroy(dev);
        free(dev);
        return -1;
    }
    MachineVirtio *v = &m->virtio[m->nvirtio];
    v->base = reg.addr = MACHINE_VIRTIO_BASE + (uint64_t)m->nvirtio * MACHINE_VIRTIO_SIZE;
    v->gsi = machine_virtio_gsi[m->nvirtio];
    /* The slots are level triggered (DSDT): a resampling irqfd served by the
     * device event loop, or KVM_IRQ_LINE where none can be had. */
    IrqLine irq;
    int r = kvm_vm_irq_line(m->vm, v->gsi, &irq);
    if (r < 0) {
        ops->destroy(dev);
        free(dev);
        return fail(m, "virtio-mmio IRQ", r);
    }
    virtio_mmio_connect_irq(t, &irq, v->base);
    if ((r = devlist_add(&m->devices, t->label, ops, dev, true, &reg, 1, err, sizeof(err))) < 0)
        return fail(m, err, r);
    v->t = t;
    m->nvirtio++;
    return 0;
}

/* machine-virtio.c's way to place a device (VirtioPlaceFn). */
static int place_virtio(void *board, VirtioMmio *t, const DeviceOps *ops, void *dev)
{
    return machine_add_virtio(board, t, ops, dev);
}

/* The kernel command line: --cmdline, plus `reboot=k` unless it chooses a
 * reboot method (Debian's kernel hangs in its default restart path here; the
 * i8042 reset ends strata cleanly), plus virtio_mmio.device= entries when
 * ACPI is off (the DSDT describes the devices otherwise).  malloc()ed. */
static char *build_cmdline(const Machine *m)
{
    const char *base = m->cfg->cmdline ? m->cfg->cmdline : "";
    bool acpi_off = strstr(base, "acpi=off") != NULL;
    bool reboot_set = vm_cmdline_appended(base) == 0;
    size_t cap = strlen(base) + 16 + (acpi_off ? m->nvirtio * 64 : 0);
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t n = (size_t)snprintf(s, cap, "%s", base);
    if (!reboot_set)
        n += (size_t)snprintf(s + n, cap - n, "%s" VM_CMDLINE_REBOOT, n ? " " : "");
    for (unsigned i = 0; acpi_off && i < m->nvirtio && n < cap; i++)
        n += (size_t)snprintf(s + n, cap - n, "%svirtio_mmio.device=%u@0x%llx:%u", n ? " " : "",
                              MACHINE_VIRTIO_SIZE, (unsigned long long)m->virtio[i].base,
                              m->virtio[i].gsi);
    return s;
}

/* A fresh random VM generation ID (ACPI_VMGENID_ADDR). */
static int new_generation_id(Machine *m)
{
    uint8_t *id = guest_ram_ptr(&m->guest_ram, ACPI_VMGENID_ADDR, ACPI_VMGENID_SIZE);
    uint8_t fresh[ACPI_VMGENID_SIZE];
    if (!id || getrandom(fresh, sizeof(fresh), 0) != (ssize_t)sizeof(fresh))
        return -1;
    memcpy(id, fresh, sizeof(fresh));
    return 0;
}

int machine_new_generation(Machine *m)
{
    if (new_generation_id(m) < 0)
        return -1;
    ged_raise(&m->ged, GED_EVENT_VMGENID);
    return 0;
}

static int write_acpi(Machine *m, char *err, size_t errlen)
{
    if (new_generation_id(m) < 0) {
        snprintf(err, errlen, "the VM generation ID: no random bytes");
        return -1;
    }
    AcpiConfig ac = machine_acpi_config(m->ncpus, m->cfg->serial != SERIAL_NONE, m->virtio,
                                        m->nvirtio);
    uint8_t *dst = guest_ram_ptr(&m->guest_ram, ACPI_TABLES_ADDR, ACPI_TABLES_MAX);
    if (!dst) {
        snprintf(err, errlen, "--memory: too small for the ACPI tables");
        return -1;
    }
    return acpi_build(&ac, dst, ACPI_TABLES_MAX, ACPI_TABLES_ADDR, err, errlen) ? 0 : -1;
}

static int load_kernel(Machine *m, char *err, size_t errlen)
{
    if (write_acpi(m, err, errlen) < 0)
        return -1;
    char *cmdline = build_cmdline(m);
    if (!cmdline) {
        snprintf(err, errlen, "--cmdline: out of memory");
        return -1;
    }
    size_t given = m->cfg->cmdline ? strlen(m->cfg->cmdline) : 0;
    if (strlen(cmdline) > VM_MAX_CMDLINE) {
        snprintf(err, errlen,
                 "--cmdline: %zu bytes plus the %zu strata appends (reboot=k "
                 "and, with acpi=off, virtio_mmio.device= for each of the %u virtio "
                 "devices): longer than the %u bytes the guest gets",
                 given, strlen(cmdline) - given, m->nvirtio, VM_MAX_CMDLINE);
        free(cmdline);
        return -1;
    }
    LinuxBootParams bp = { cmdline, m->initrd, m->initrd_len, ACPI_TABLES_ADDR };
    int r = -1;
    if (m->is_bzimage) {
        if (bzimage_load(m->bz, m->bz_len, &m->bzi, &m->guest_ram, &bp, err, errlen) < 0)
            goto out;
        struct kvm_sregs sr;
        struct kvm_regs rg;
        if (kvm_vcpu_get_sregs(m->vcpu, &sr) < 0)
            goto regs;
        bzimage_entry_state(&sr, &rg);
        if (kvm_vcpu_set_sregs(m->vcpu, &sr) < 0 || kvm_vcpu_set_regs(m->vcpu, &rg) < 0)
            goto regs;
    } else {
        if (kernel_image_load(&m->kernel, &m->guest_ram, err, errlen) < 0)
            goto out;
        m->start_info = pvh_write_boot_info(&m->guest_ram, &bp, m->kernel.highest, err, errlen);
        if (!m->start_info)
            goto out;
        if (kvm_vcpu_setup_pvh(m->vcpu, m->kernel.entry, m->start_info) < 0)
            goto regs;
    }
    r = 0;
    goto out;
regs:
    snprintf(err, errlen, "vCPU 0: cannot set the entry state: %s", kvm_vm_last_error(m->vm));
out:
    free(cmdline);
    return r;
}

/* Reads --kernel (bzImage or PVH ELF) and --initrd. */
static int read_images(Machine *m, char *err, size_t errlen)
{
    const VmConfig *cfg = m->cfg;
    uint8_t *buf;
    size_t len;
    if (boot_read_file(cfg->kernel, 1ull << 30, "--kernel", &buf, &len, err, errlen) < 0)
        return -1;
    if (bzimage_probe(buf, len)) {
        m->is_bzimage = true;
        m->bz = buf;
        m->bz_len = len;
        if (bzimage_parse(buf, len, cfg->kernel, &m->bzi, err, errlen) < 0)
            return -1;
    } else {
        int r = kernel_image_parse(&m->kernel, buf, len, cfg->kernel, err, errlen);
        boot_free_file(buf, len);
        if (r < 0)
            return -1;
    }
    if (cfg->initrd && boot_read_file(cfg->initrd, MAX_INITRD, "--initrd", &m->initrd,
                                      &m->initrd_len, err, errlen) < 0)
        return -1;
    return 0;
}

/* Gives vCPU i this host's CPUID (sup: KVM_GET_SUPPORTED_CPUID's) and the
 * MSRs Linux expects. */
static int vcpu_host_cpuid(Machine *m, const struct kvm_cpuid2 *sup, unsigned i)
{
    struct kvm_cpuid2 *c = cpuid_for_vcpu(sup, i, m->ncpus);
    int r = c ? kvm_vcpu_set_cpuid(m->vcpus[i], c) : -ENOMEM;
    free(c);
    if (r < 0) {
        log_msg(LOG_ERROR, "vCPU %u: CPUID: %s (%s)", i, strerror(-r), kvm_vm_last_error(m->vm));
        return -1;
    }
    m->cpuid_pending[i] = false;
    /* Fast strings on, MTRRs on with write-back default: what firmware
     * leaves.  Not fatal where the host's KVM refuses them. */
    (void)kvm_vcpu_set_msr(m->vcpus[i], MSR_IA32_MISC_ENABLE, 1);
    (void)kvm_vcpu_set_msr(m->vcpus[i], MSR_MTRR_DEF_TYPE, 0xc06);
    return 0;
}

/* Creates the vCPUs, with this host's CPUID unless they are a restore's
 * (machine_set_pending_cpuid). */
static int create_vcpus(Machine *m)
{
    for (unsigned i = 0; i < m->ncpus; i++) {
        int r = kvm_vcpu_create(m->vm, i, &m->vcpus[i]);
        if (r < 0) {
            log_msg(LOG_ERROR, "vCPU %u: %s (%s)", i, strerror(-r), kvm_vm_last_error(m->vm));
            return -1;
        }
        m->cpuid_pending[i] = true;
    }
    m->vcpu = m->vcpus[0];
    return m->cfg->restore ? 0 : machine_set_pending_cpuid(m);
}

int machine_set_pending_cpuid(Machine *m)
{
    unsigned n = 0;
    for (unsigned i = 0; i < m->ncpus; i++)
        n += m->cpuid_pending[i];
    if (!n)
        return 0;
    struct kvm_cpuid2 *sup;
    int r = kvm_vm_get_supported_cpuid(m->vm, &sup);
    if (r < 0) {
        log_msg(LOG_ERROR, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
        return -1;
    }
    for (unsigned i = 0; i < m->ncpus && r == 0; i++)
        if (m->cpuid_pending[i])
            r = vcpu_host_cpuid(m, sup, i);
    free(sup);
    return r;
}

void machine_cpuid_loaded(Machine *m, unsigned i)
{
    if (i < m->ncpus)
        m->cpuid_pending[i] = false;
}

int machine_create(Machine *m, const VmConfig *cfg)
{
    return machine_create_begin(m, cfg) < 0 ? -1 : machine_create_finish(m);
}

int machine_create_begin(Machine *m, const VmConfig *cfg)
{
    char err[512];
    memset(m, 0, sizeof(*m));
    m->cfg = cfg;
    m->serial_fd = -1;

    m->ncpus = cfg->cpus ? cfg->cpus : 1;
    if (m->ncpus > MACHINE_MAX_CPUS) {
        log_msg(LOG_ERROR, "--cpus %u: at most %u are supported", m->ncpus, MACHINE_MAX_CPUS);
        return -1;
    }
    if (read_images(m, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        return -1;
    }
    if (open_serial(m) < 0)
        return -1;
    m->ctx = memory_context_new();
    if (!m->ctx)
        return fail(m, "memory context", -ENOMEM);

    /* The VM first: the devices' interrupt lines need its irqchip. */
    KvmVmConfig kc = KVM_VM_CONFIG_DEFAULT;
    kc.verbose = cfg->verbose;
    kc.irqchip = true;
    kc.pit = true;
    kc.dirty_ring = cfg->dirty_ring;   /* VM_DIRTY_RING_* are kvm/'s values */
    kc.cpuid_prefetch = !cfg->restore; /* a snapshot's vCPUs bring theirs */
    int r = kvm_vm_create(&kc, &m->vm);
    if (r < 0) {
        log_msg(LOG_ERROR, "cannot create the KVM VM (%s)", strerror(-r));
        return -1;
    }
    return build_memory(m);
}

int machine_create_finish(Machine *m)
{
    const VmConfig *cfg = m->cfg;
    char err[512];
    if (kvm_vm_attach_memory(m->vm, m->ctx, m->memory_as, m->io_as) < 0) {
        log_msg(LOG_ERROR, "attaching guest memory to KVM failed: %s", kvm_vm_last_error(m->vm));
        return -1;
    }
    if (create_vcpus(m) < 0)
        return -1;
    /* virtio devices: machine_add_virtio() calls go here, before the
     * kernel load (which describes them in the DSDT / command line). */
    if (virtio_devs_create(&m->virtio_devs, cfg, m->ctx, m->memory_as, place_virtio, m) < 0)
        return -1;
    /* A snapshot's restore maps its RAM over all of this and loads every
     * vCPU's state: copying the kernel in would only fault in pages to be
     * thrown away (system_reset loads it then, from the images read above). */
    if (!cfg->restore && load_kernel(m, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR, "%s", err);
        return -1;
    }
    return 0;
}

/* ---- serial input from stdin ------------------------------------------ */

static struct termios saved_tty;
static int tty_saved; /* 1 while stdin is in raw mode */

static void restore_tty(void)
{
    if (__atomic_exchange_n(&tty_saved, 0, __ATOMIC_SEQ_CST))
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
}

/* Raw mode on a terminal stdin (restored by machine_destroy and at exit):
 * every key goes to the guest; Ctrl-A x ends strata. */
static void raw_tty(Machine *m)
{
    static bool registered;
    struct termios t;
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty) < 0)
        return;
    if (m->hooks.save_tty) /* a seccomp kill restores it too */
        m->hooks.save_tty(m->hooks.opaque, STDIN_FILENO);
    t = saved_tty;
    cfmakeraw(&t);
    t.c_oflag |= OPOST | ONLCR; /* output stays readable */
    if (tcsetattr(STDIN_FILENO, TCSANOW, &t) < 0)
        return;
    __atomic_store_n(&tty_saved, 1, __ATOMIC_SEQ_CST);
    if (!registered) {
        atexit(restore_tty);
        registered = true;
    }
}

static void *stdin_main(void *arg)
{
    Machine *m = arg;
    bool ctrl_a = false;
    if (m->hooks.enter_thread && m->hooks.enter_thread(m->hooks.opaque, BOARD_THREAD_STDIN))
        return NULL; /* no serial input; the VM runs on */
    for (;;) {
        struct pollfd p[2] = { { STDIN_FILENO, POLLIN, 0 }, { m->stdin_stop[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (p[1].revents)
            return NULL;
        uint8_t buf[64];
        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return NULL; /* EOF: nothing more to send */
        for (ssize_t i = 0; i < n; i++) {
            if (tty_saved && ctrl_a && (buf[i] == 'x' || buf[i] == 'X')) {
                kvm_vm_request_end(m->vm, KVM_END_REQUESTED, 0, "Ctrl-A x");
                return NULL;
            }
            ctrl_a = buf[i] == 0x01 && !ctrl_a;
        }
        /* The FIFO holds 16 bytes: wait for the guest to drain it. */
        for (size_t off = 0; off < (size_t)n;) {
            off += serial_receive(&m->serial, buf + off, (size_t)n - off);
            if (off < (size_t)n) {
                struct pollfd s = { m->stdin_stop[0], POLLIN, 0 };
                if (poll(&s, 1, 1) > 0 || kvm_vm_ended(m->vm))
                    return NULL;
            }
        }
    }
}

static void start_stdin(Machine *m)
{
    m->stdin_stop[0] = m->stdin_stop[1] = -1;
    if (m->cfg->serial != SERIAL_STDIO)
        return;
    if (pipe2(m->stdin_stop, O_CLOEXEC) < 0)
        return;
    raw_tty(m);
    if (pthread_create(&m->stdin_thread, NULL, stdin_main, m) == 0) {
        m->stdin_started = true;
    } else {
        restore_tty();
        log_msg(LOG_WARN, "serial input disabled: cannot start a thread");
    }
}

static void stop_stdin(Machine *m)
{
    if (m->stdin_started) {
        char c = 0;
        while (write(m->stdin_stop[1], &c, 1) < 0 && errno == EINTR)
            ;
        pthread_join(m->stdin_thread, NULL);
        m->stdin_started = false;
    }
    restore_tty();
    for (int i = 0; i < 2; i++)
        if (m->stdin_stop[i] > 0)
            close(m->stdin_stop[i]);
    m->stdin_stop[0] = m->stdin_stop[1] = -1;
}

static int serial_thread_hook(void *opaque)
{
    const Machine *m = opaque;
    return m->hooks.enter_thread ? m->hooks.enter_thread(m->hooks.opaque, BOARD_THREAD_SERIAL) : 0;
}

static int vcpu_thread_hook(void *opaque, KvmVcpu *vcpu)
{
    const Machine *m = opaque;
    return m->hooks.enter_thread(m->hooks.opaque, BOARD_THREAD_VCPU);
}

static int io_thread_hook(void *opaque)
{
    const Machine *m = opaque;
    return m->hooks.enter_thread(m->hooks.opaque, BOARD_THREAD_IO);
}

int machine_start(Machine *m)
{
    for (unsigned i = 0; i < m->ncpus; i++)
        if (m->cpuid_pending[i]) {
            log_msg(LOG_ERROR, "vCPU %u has no CPUID: its state was never loaded", i);
            return -1;
        }
    bool hooked = m->hooks.enter_thread != NULL;
    if (virtio_devs_start(m->virtio_devs, hooked ? io_thread_hook : NULL, m) < 0)
        return -1;
    if (hooked)
        kvm_vm_set_thread_hook(m->vm, vcpu_thread_hook, m);
    int r = kvm_vm_start(m->vm);
    if (r < 0) {
        log_msg(LOG_ERROR, "cannot start the vCPU: %s", strerror(-r));
        return -1;
    }
    start_stdin(m);
    if (m->chardev.open &&
        (r = chardev_start(&m->chardev, &m->serial, serial_thread_hook, m)) < 0) {
        log_msg(LOG_ERROR, "--serial: cannot start its thread: %s", strerror(-r));
        return -1;
    }
    return 0;
}

int machine_reset(Machine *m, char *err, size_t errlen)
{
    devlist_reset(&m->devices); /* before RAM goes: devices stop touching it */
    uint64_t len = m->guest_ram.below + m->guest_ram.above;
    /* Fresh zero pages in place (MADV_DONTNEED would bring a restored
     * snapshot's file contents back, not zeros: docs/snapshot.md). */
    if (mmap(m->guest_ram.host, len, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED) {
        /* not expected; zero it by hand */
        memset(m->guest_ram.host, 0, len);
    }
    m->guest_panicked = 0;
    /* vCPU 0 restarts at the entry; the others wait for INIT/SIPI again. */
    for (unsigned i = 1; i < m->ncpus; i++) {
        struct kvm_mp_state mp = { KVM_MP_STATE_UNINITIALIZED };
        if (m->vcpus[i] && ioctl(kvm_vcpu_fd(m->vcpus[i]), KVM_SET_MP_STATE, &mp) < 0) {
            snprintf(err, errlen, "vCPU %u: KVM_SET_MP_STATE: %s", i, strerror(errno));
            return -1;
        }
    }
    return load_kernel(m, err, errlen);
}

void machine_virtio_pause(Machine *m)
{
    virtio_devs_pause(m->virtio_devs);
}

void machine_virtio_resume(Machine *m)
{
    virtio_devs_resume(m->virtio_devs);
}

void machine_virtio_halt(Machine *m)
{
    virtio_devs_halt(m->virtio_devs);
}

int machine_powerdown(Machine *m)
{
    if (!m->ged.initialized)
        return -ENODEV;
    ged_raise(&m->ged, GED_EVENT_POWER_BUTTON);
    return 0;
}

void machine_destroy(Machine *m)
{
    stop_stdin(m);
    chardev_close(&m->chardev); /* its thread feeds the UART: before the devices go */
    virtio_devs_stop(m->virtio_devs);
    if (m->vm) {
        kvm_vm_destroy(m->vm);
        m->vm = NULL;
    }
    if (m->memory_as)
        address_space_destroy(m->memory_as);
    if (m->io_as)
        address_space_destroy(m->io_as);
    devlist_destroy(&m->devices); /* unmapped, then destroyed, last added first */
    virtio_devs_free(m->virtio_devs);
    m->virtio_devs = NULL;
    if (memory_region_get_container(&m->ram_above))
        memory_region_del_subregion(&m->system, &m->ram_above);
    if (memory_region_get_container(&m->ram_below))
        memory_region_del_subregion(&m->system, &m->ram_below);
    /* each is a no-op on a region that was never initialised */
    memory_region_destroy(&m->ram_above);
    memory_region_destroy(&m->ram_below);
    memory_region_destroy(&m->ram);
    memory_region_destroy(&m->io);
    memory_region_destroy(&m->system);
    if (m->ctx)
        memory_context_free(m->ctx);
    if (m->serial_fd_owned)
        close(m->serial_fd);
    kernel_image_free(&m->kernel);
    boot_free_file(m->bz, m->bz_len);
    boot_free_file(m->initrd, m->initrd_len);
    memset(m, 0, sizeof(*m));
}
