/* SPDX-License-Identifier: MIT */
/*
 * exit-latency's baseline: the same guest on a VM made with direct ioctls
 * and a bare KVM_RUN loop, no strata code (not memory/, not kvm/, not the
 * kit): one RAM slot, the PVH entry state, and a switch on the exit.
 */
#include "bench/exit-latency/plan.h"
#include "bench/exit-latency/bench.h"
#include "devices/testdev-ports.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define RAW_RAM (32ull << 20)

struct raw_vm {
    int kvm, vm, cpu;
    uint8_t *ram;
    struct kvm_run *run;
    size_t run_size;
};

static int fail(const char *what)
{
    fprintf(stderr, "raw: %s: %s\n", what, strerror(errno));
    return -1;
}

/* Copies the PT_LOAD segments into RAM; returns the entry (PVH note first). */
static int load(struct raw_vm *v, const char *path, uint64_t *entry)
{
    FILE *f = fopen(path, "rb");
    uint8_t *img;
    long len;
    Elf64_Ehdr eh;

    if (!f)
        return fail(path);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    img = malloc((size_t)len);
    if (!img || fread(img, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(img);
        return fail(path);
    }
    fclose(f);
    memcpy(&eh, img, sizeof(eh));
    *entry = eh.e_entry;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;

        memcpy(&ph, img + eh.e_phoff + i * sizeof(ph), sizeof(ph));
        if (ph.p_type == PT_LOAD && ph.p_paddr + ph.p_memsz <= RAW_RAM &&
            ph.p_offset + ph.p_filesz <= (uint64_t)len)
            memcpy(v->ram + ph.p_paddr, img + ph.p_offset, ph.p_filesz);
        if (ph.p_type == PT_NOTE && ph.p_filesz >= 24) {
            uint32_t note[5];

            memcpy(note, img + ph.p_offset, sizeof(note));
            if (note[2] == 18 && note[1] == 4) /* XEN_ELFNOTE_PHYS32_ENTRY */
                *entry = note[4];
        }
    }
    free(img);
    return 0;
}

static int setup(struct raw_vm *v, const char *path)
{
    struct kvm_userspace_memory_region slot = { 0 };
    struct kvm_cpuid2 *cpuid;
    struct kvm_sregs sregs;
    struct kvm_regs regs = { 0 };
    struct kvm_segment code = {
        .base = 0,
        .limit = 0xffffffff,
        .selector = 0x8,
        .type = 0xb,
        .present = 1,
        .db = 1,
        .s = 1,
        .g = 1,
    };
    struct kvm_segment data = code;
    uint64_t entry = 0;
    int n;

    data.selector = 0x10;
    data.type = 0x3;
    if ((v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0)
        return fail("/dev/kvm");
    if ((v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0)) < 0)
        return fail("KVM_CREATE_VM");
    v->ram = mmap(NULL, RAW_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (v->ram == MAP_FAILED)
        return fail("mmap");
    slot.memory_size = RAW_RAM;
    slot.userspace_addr = (uintptr_t)v->ram;
    if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
        return fail("KVM_SET_USER_MEMORY_REGION");
    if (load(v, path, &entry) < 0)
        return -1;
    if ((v->cpu = ioctl(v->vm, KVM_CREATE_VCPU, 0)) < 0)
        return fail("KVM_CREATE_VCPU");
    if ((n = ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0)) < 0)
        return fail("KVM_GET_VCPU_MMAP_SIZE");
    v->run_size = (size_t)n;
    v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->cpu, 0);
    if (v->run == MAP_FAILED)
        return fail("mmap kvm_run");
    cpuid = calloc(1, sizeof(*cpuid) + 256 * sizeof(struct kvm_cpuid_entry2));
    if (!cpuid)
        return fail("calloc");
    cpuid->nent = 256;
    if (ioctl(v->kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0 ||
        ioctl(v->cpu, KVM_SET_CPUID2, cpuid) < 0) {
        free(cpuid);
        return fail("KVM_GET_SUPPORTED_CPUID / KVM_SET_CPUID2");
    }
    free(cpuid);
    if (ioctl(v->cpu, KVM_GET_SREGS, &sregs) < 0)
        return fail("KVM_GET_SREGS");
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.tr = (struct kvm_segment){ .limit = 0xffff, .type = 11, .present = 1 };
    sregs.cr0 = 0x11; /* PE | ET */
    sregs.cr4 = 0;
    sregs.efer = 0;
    if (ioctl(v->cpu, KVM_SET_SREGS, &sregs) < 0)
        return fail("KVM_SET_SREGS");
    regs.rip = entry;
    regs.rflags = 2;
    if (ioctl(v->cpu, KVM_SET_REGS, &regs) < 0)
        return fail("KVM_SET_REGS");
    return 0;
}

static void teardown(struct raw_vm *v)
{
    if (v->run && v->run != MAP_FAILED)
        munmap(v->run, v->run_size);
    if (v->cpu > 0)
        close(v->cpu);
    if (v->vm > 0)
        close(v->vm);
    if (v->ram && v->ram != MAP_FAILED)
        munmap(v->ram, RAW_RAM);
    if (v->kvm > 0)
        close(v->kvm);
}

int raw_run(const char *elf_path, BenchPlan *plan, uint64_t *pio_exits, uint64_t *mmio_exits)
{
    struct raw_vm v = { 0 };
    uint32_t answer = 0;
    int ret = -1;

    if (setup(&v, elf_path) < 0)
        goto out;
    for (;;) {
        struct kvm_run *run = v.run;

        if (ioctl(v.cpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            fail("KVM_RUN");
            goto out;
        }
        if (run->exit_reason == KVM_EXIT_IO) {
            uint8_t *d = (uint8_t *)run + run->io.data_offset;
            uint32_t val = 0;

            (*pio_exits)++;
            if (run->io.direction == KVM_EXIT_IO_OUT) {
                memcpy(&val, d, run->io.size < 4 ? run->io.size : 4);
                if (run->io.port == TESTDEV_PORT_SYNC) {
                    answer = bench_plan_sync(plan, val);
                } else if (run->io.port == TESTDEV_PORT_EXIT) {
                    ret = val == 0 ? 0 : -1;
                    goto out;
                }
                /* BENCH_PORT: the device does nothing but count */
            } else {
                val = run->io.port == TESTDEV_PORT_SYNC ? answer : 0xffffffffu;
                memcpy(d, &val, run->io.size < 4 ? run->io.size : 4);
            }
        } else if (run->exit_reason == KVM_EXIT_MMIO) {
            (*mmio_exits)++;
            if (!run->mmio.is_write)
                memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
        } else {
            fprintf(stderr, "raw: unexpected exit reason %u\n", run->exit_reason);
            goto out;
        }
    }
out:
    teardown(&v);
    return ret;
}
