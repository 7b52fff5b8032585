/* SPDX-License-Identifier: MIT */
/*
 * A fake migration destination (see fake_mig.h): the machine, the fake KVM
 * layer under vmm/migration/destination.c and migration/state.c, and a harness that
 * feeds a byte string to mig_load_fd over a socketpair.
 */
#include "tests/fuzz/fake_mig.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio-rng.h"
#include "memory/state-stream.h"
#include "vmm/migration/stream.h"

FakeMig fake_mig;

static Vmm vmm;
static VmConfig cfg;
static VirtioRng rng;
static int fake_vm_obj;
static int fake_vcpu_obj[FAKE_MIG_CPUS];
static bool built;

/* ---- the fake KVM layer ----------------------------- */

bool kvm_vm_has_irqchip(const KvmVm *vm)
{
    (void)vm;
    return true;
}

const char *kvm_vm_last_error(const KvmVm *vm)
{
    (void)vm;
    return fake_mig.last_error;
}

int kvm_vm_get_state(KvmVm *vm, KvmVmState *out)
{
    (void)vm;
    fake_mig_vm_state(out);
    return 0;
}

int kvm_vcpu_get_state(KvmVcpu *vcpu, KvmVcpuState *out)
{
    fake_mig_vcpu_state((unsigned)((int *)vcpu - fake_vcpu_obj), out);
    return 0;
}

int kvm_vm_set_state(KvmVm *vm, const KvmVmState *st)
{
    (void)vm;
    fake_mig.vm_sets++;
    /* like kvm/state.c on a VM with an in-kernel irqchip */
    if (!(st->flags & KVM_VM_STATE_IRQCHIP)) {
        snprintf(fake_mig.last_error, sizeof(fake_mig.last_error),
                 "the state has no irqchip, this VM has one");
        return -EINVAL;
    }
    fake_mig.vm_clock = st->clock;
    return 0;
}

int kvm_vcpu_set_state(KvmVcpu *vcpu, const KvmVcpuState *st)
{
    unsigned i = (unsigned)((int *)vcpu - fake_vcpu_obj);
    fake_mig.vcpu_sets++;
    if (i >= FAKE_MIG_CPUS)
        abort(); /* the loader handed over a vCPU this machine lacks */
    if ((st->flags & KVM_VCPU_STATE_XSAVE) && st->xsave_len > fake_mig.xsave_max)
        return -EINVAL;
    if (!(st->flags & KVM_VCPU_STATE_LAPIC))
        return -EINVAL;
    fake_mig.vcpu_rip[i] = st->regs.rip;
    return 0;
}

/* ---- the machine ------------------------------------------------------------ */

/* machine.c's: counts the vCPUs that were given this host's CPUID. */
int machine_set_pending_cpuid(Machine *m)
{
    for (unsigned i = 0; i < m->ncpus; i++)
        if (m->cpuid_pending[i]) {
            m->cpuid_pending[i] = false;
            fake_mig.host_cpuid_sets++;
        }
    return 0;
}

void machine_cpuid_loaded(Machine *m, unsigned i)
{
    if (i < m->ncpus)
        m->cpuid_pending[i] = false;
}

static int init_fail(const char *what, int r)
{
    fprintf(stderr, "fake_mig: %s: %s\n", what, strerror(r < 0 ? -r : EINVAL));
    return -1;
}

int fake_mig_init(void)
{
    if (built)
        return 0;
    Machine *m = &vmm.m;
    int r;
    cfg.memory = FAKE_MIG_RAM_SIZE;
    cfg.cpus = FAKE_MIG_CPUS;
    cfg.test_device = true;
    cfg.rng = true;
    vmm.sigfd = vmm.endfd = vmm.epfd = -1;
    m->cfg = &cfg;
    if (!(m->ctx = memory_context_new()))
        return init_fail("memory context", -ENOMEM);
    /* heap memory of exactly the block's size: ASan catches a write past it */
    if (!(fake_mig.ram = malloc(FAKE_MIG_RAM_SIZE)))
        return init_fail("RAM", -ENOMEM);
    if ((r = memory_region_init(&m->system, m->ctx, "system", UINT64_MAX)) < 0 ||
        (r = memory_region_init(&m->io, m->ctx, "io", 0x10000)) < 0)
        return init_fail("containers", r);
    if ((r = memory_region_init_ram_ptr(&m->ram, m->ctx, NULL, "microvm.ram", FAKE_MIG_RAM_SIZE,
                                        fake_mig.ram)) < 0 ||
        (r = memory_region_add_subregion(&m->system, 0, &m->ram)) < 0)
        return init_fail("microvm.ram", r);
    m->memory_as = address_space_new(m->ctx, &m->system, "memory");
    m->io_as = address_space_new(m->ctx, &m->io, "I/O");
    if (!m->memory_as || !m->io_as)
        return init_fail("address spaces", -ENOMEM);
    /* the real board's device list, in its order (machine.c), unmapped */
    char err[160];
    if ((r = serial_init(&m->serial, m->ctx, -1, NULL)) < 0 ||
        (r = devlist_add(&m->devices, NULL, &serial_device_ops, &m->serial, false, NULL, 0, err,
                         sizeof(err))) < 0)
        return init_fail("serial", r);
    if ((r = i8042_init(&m->i8042, m->ctx, NULL, NULL)) < 0 ||
        (r = devlist_add(&m->devices, NULL, &i8042_device_ops, &m->i8042, false, NULL, 0, err,
                         sizeof(err))) < 0)
        return init_fail("i8042", r);
    if ((r = pvpanic_init(&m->pvpanic, m->ctx, NULL, NULL)) < 0 ||
        (r = devlist_add(&m->devices, NULL, &pvpanic_device_ops, &m->pvpanic, false, NULL, 0, err,
                         sizeof(err))) < 0)
        return init_fail("pvpanic", r);
    if ((r = ged_init(&m->ged, m->ctx, NULL)) < 0 ||
        (r = devlist_add(&m->devices, NULL, &ged_device_ops, &m->ged, false, NULL, 0, err,
                         sizeof(err))) < 0)
        return init_fail("acpi-ged", r);
    if ((r = testdev_init(&m->testdev, m->ctx, NULL, NULL, NULL)) < 0 ||
        (r = devlist_add(&m->devices, NULL, &testdev_device_ops, &m->testdev, false, NULL, 0, err,
                         sizeof(err))) < 0)
        return init_fail("testdev", r);
    if ((r = virtio_rng_init(&rng, &(VirtioEnv){ m->ctx, m->memory_as, NULL })) < 0)
        return init_fail("virtio-rng", r);
    virtio_mmio_connect_irq(&rng.t, NULL, MACHINE_VIRTIO_BASE); /* names it */
    if ((r = devlist_add(&m->devices, rng.t.label, &virtio_rng_device_ops, &rng, false, NULL, 0,
                         err, sizeof(err))) < 0)
        return init_fail("virtio-rng", r);
    m->vm = (KvmVm *)&fake_vm_obj;
    m->ncpus = FAKE_MIG_CPUS;
    for (unsigned i = 0; i < FAKE_MIG_CPUS; i++)
        m->vcpus[i] = (KvmVcpu *)&fake_vcpu_obj[i];
    m->vcpu = m->vcpus[0];
    fake_mig.v = &vmm;
    built = true;
    fake_mig_reset();
    return 0;
}

void fake_mig_reset(void)
{
    Machine *m = &vmm.m;
    /* not zeros: a zero page that is not applied shows */
    memset(fake_mig.ram, 0xcc, FAKE_MIG_RAM_SIZE);
    devlist_reset(&m->devices);
    fake_mig.vm_sets = fake_mig.vcpu_sets = 0;
    /* as a restore's machine: every vCPU waits for its CPUID */
    for (unsigned i = 0; i < m->ncpus; i++)
        m->cpuid_pending[i] = true;
    fake_mig.host_cpuid_sets = 0;
    memset(fake_mig.vcpu_rip, 0, sizeof(fake_mig.vcpu_rip));
    fake_mig.vm_clock = 0;
    fake_mig.xsave_max = KVM_STATE_XSAVE_MAX;
    fake_mig.last_error[0] = 0;
}

/* ---- the harness ------------------------------------------------------------ */

typedef struct Writer {
    int fd;
    const uint8_t *data;
    size_t len;
    FakeMigPeer peer;
    FakeMigResult *res;
} Writer;

static bool send_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool recv_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads the loader's answer (RDY! / ERR! + reason) into res, if any. */
static void read_reply(int fd, FakeMigResult *res, bool have_tag)
{
    uint8_t b[4];
    if (!have_tag) {
        if (!recv_all(fd, b, 4))
            return;
        res->reply = le32(b);
    }
    uint32_t tag = res->reply;
    if (tag == MIG_REPLY_READY && recv_all(fd, b, 4))
        tag = res->answer = le32(b);
    if (tag == MIG_REPLY_ERROR && recv_all(fd, b, 4)) {
        uint32_t n = le32(b);
        if (n >= sizeof(res->reason))
            n = sizeof(res->reason) - 1;
        if (recv_all(fd, res->reason, n))
            res->reason[n] = 0;
    }
}

static void *writer_main(void *arg)
{
    Writer *w = arg;
    uint8_t b[4];
    bool sent = send_all(w->fd, w->data, w->len), have_tag = false;
    if (sent && w->peer == FAKE_MIG_PEER_HANDSHAKE && recv_all(w->fd, b, 4)) {
        have_tag = true;
        w->res->reply = le32(b);
        if (w->res->reply == MIG_REPLY_READY) {
            uint8_t go[4] = { 0x47, 0x4f, 0x21, 0x21 }; /* GO!! */
            send_all(w->fd, go, 4);
        }
    }
    shutdown(w->fd, SHUT_WR);
    read_reply(w->fd, w->res, have_tag);
    return NULL;
}

/* Redirects fd 2 into a memory file (capture) or back (restore). */
static int stderr_capture(int *saved)
{
    fflush(stderr);
    int mf = memfd_create("fake_mig-stderr", MFD_CLOEXEC);
    if (mf < 0)
        return -1;
    *saved = dup(2);
    if (*saved < 0 || dup2(mf, 2) < 0) {
        close(mf);
        return -1;
    }
    return mf;
}

static void stderr_restore(int saved, int mf, char *log, size_t n)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t r = pread(mf, log, n - 1, 0);
    log[r > 0 ? r : 0] = 0;
    close(mf);
}

int fake_mig_load(const uint8_t *data, size_t len, FakeMigPeer peer, bool capture,
                  FakeMigResult *res)
{
    int sv[2];
    memset(res, 0, sizeof(*res));
    res->ret = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("fake_mig: socketpair");
        return -1;
    }
    /* A stream that fits into the socket's buffer is written at once: no
     * thread, no ping-pong between writer and loader (the fuzzer's speed). */
    size_t done = 0;
    if (peer == FAKE_MIG_PEER_STREAM) {
        int sndbuf = 4 << 20;
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        while (done < len) {
            ssize_t n = send(sv[1], data + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n <= 0)
                break;
            done += (size_t)n;
        }
    }
    bool threaded = done < len || peer == FAKE_MIG_PEER_HANDSHAKE;
    Writer w = { sv[1], data + done, len - done, peer, res };
    pthread_t th = (pthread_t)0;
    if (!threaded) {
        shutdown(sv[1], SHUT_WR);
    } else if (pthread_create(&th, NULL, writer_main, &w) != 0) {
        fprintf(stderr, "fake_mig: cannot start the writer thread\n");
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    int saved = -1, mf = capture ? stderr_capture(&saved) : -1;
    res->ret = mig_load_fd(&vmm.m, sv[0], -1, -1, &res->start_paused);
    if (mf >= 0)
        stderr_restore(saved, mf, res->log, sizeof(res->log));
    close(sv[0]); /* a writer still sending gets EPIPE */
    if (threaded)
        pthread_join(th, NULL);
    else
        read_reply(sv[1], res, false);
    close(sv[1]);
    return 0;
}
