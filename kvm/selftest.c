/* SPDX-License-Identifier: MIT */
/*
 * strata_kvm_selftest: exercises kvm/ on the host's /dev/kvm with tiny
 * 16-bit real-mode guests (a few hand-assembled bytes each; the assembly is
 * in the comments).  Exit status 0 = pass, 1 = fail, 77 = skipped (no
 * usable /dev/kvm).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "kvm/kvm.h"

static int failures;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

/* ---- a recording device --------------------------------------------------- */

typedef struct Event {
    char kind;          /* 'w' write, 'r' read */
    char space;         /* 'p' port, 'm' mmio */
    uint64_t addr;
    uint64_t data;
    unsigned size;
} Event;

static Event events[256];
static unsigned nevents;

static void log_event(char kind, char space, uint64_t addr, uint64_t data, unsigned size)
{
    if (nevents < sizeof(events) / sizeof(events[0]))
        events[nevents++] = (Event){ kind, space, addr, data, size };
}

typedef struct Dev {
    char space;
    uint64_t base;
} Dev;

static uint64_t dev_read(void *opaque, uint64_t addr, unsigned size)
{
    Dev *d = opaque;
    uint64_t v = 0x5a + addr;
    log_event('r', d->space, d->base + addr, v, size);
    return v;
}

static void dev_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    Dev *d = opaque;
    log_event('w', d->space, d->base + addr, data, size);
}

static const MemoryRegionOps dev_ops = {
    .read = dev_read,
    .write = dev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 8 },
    .impl = { .min_access_size = 1, .max_access_size = 8 },
};

/* ---- a test machine --------------------------------------------------------- */

#define RAM_SIZE 0xa0000u       /* 640 KiB at 0 */

typedef struct TVm {
    MemoryContext *ctx;
    MemoryRegion sys, io, ram, ports, mmio;
    Dev port_dev, mmio_dev;
    AddressSpace *mas, *ioas;
    KvmVm *vm;
    KvmVcpu *cpu;
    uint8_t *ram_ptr;
} TVm;

/* RAM at 0, a port device at 0x3f8 (8 ports), an MMIO device at 0xd0000. */
static int tvm_init(TVm *t, const KvmVmConfig *cfg, const uint8_t *code, size_t len)
{
    memset(t, 0, sizeof(*t));
    nevents = 0;
    t->ctx = memory_context_new();
    if (!t->ctx)
        return -ENOMEM;
    memory_region_init(&t->sys, t->ctx, "system", UINT64_MAX);
    memory_region_init(&t->io, t->ctx, "io", 0x10000);
    memory_region_init_ram(&t->ram, t->ctx, NULL, "ram", RAM_SIZE);
    memory_region_add_subregion(&t->sys, 0, &t->ram);
    t->port_dev = (Dev){ 'p', 0x3f8 };
    memory_region_init_io(&t->ports, t->ctx, &dev_ops, &t->port_dev, "ports", 8);
    memory_region_add_subregion(&t->io, 0x3f8, &t->ports);
    t->mmio_dev = (Dev){ 'm', 0xd0000 };
    memory_region_init_io(&t->mmio, t->ctx, &dev_ops, &t->mmio_dev, "mmio", 0x1000);
    memory_region_add_subregion(&t->sys, 0xd0000, &t->mmio);
    t->mas = address_space_new(t->ctx, &t->sys, "memory");
    t->ioas = address_space_new(t->ctx, &t->io, "I/O");
    t->ram_ptr = memory_region_get_ram_ptr(&t->ram);
    if (!t->mas || !t->ioas || !t->ram_ptr)
        return -ENOMEM;
    memcpy(t->ram_ptr + 0x1000, code, len);
    KvmVmConfig c = cfg ? *cfg : KVM_VM_CONFIG_DEFAULT;
    int r = kvm_vm_create(&c, &t->vm);
    if (r < 0)
        return r;
    r = kvm_vm_attach_memory(t->vm, t->ctx, t->mas, t->ioas);
    if (r < 0)
        return r;
    r = kvm_vcpu_create(t->vm, 0, &t->cpu);
    if (r < 0)
        return r;
    r = kvm_vcpu_init_cpuid(t->cpu);
    if (r < 0)
        return r;
    return kvm_vcpu_setup_real_mode(t->cpu, 0x0000, 0x1000);
}

static void tvm_fini(TVm *t)
{
    kvm_vm_destroy(t->vm);
    address_space_destroy(t->mas);
    address_space_destroy(t->ioas);
    memory_region_del_subregion(&t->sys, &t->ram);
    memory_region_del_subregion(&t->sys, &t->mmio);
    memory_region_del_subregion(&t->io, &t->ports);
    memory_region_destroy(&t->ram);
    memory_region_destroy(&t->mmio);
    memory_region_destroy(&t->ports);
    memory_region_destroy(&t->sys);
    memory_region_destroy(&t->io);
    memory_context_free(t->ctx);
}

/* ---- tests -------------------------------------------------------------------- */

static void test_pio(void)
{
    /*
     *   mov $0x3f8,%dx ; mov $'A',%al ; out %al,%dx
     *   inc %dx ; in %dx,%al           # 0x3f9 reads 0x5a+1
     *   mov $0x3fa,%dx ; out %al,%dx   # echo it
     *   mov $0x3fb,%dx ; mov $0x100,%si ; mov $4,%cx ; cld ; rep outsb
     *   hlt
     */
    static const uint8_t code[] = {
        0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, 0x42, 0xec, 0xba, 0xfa, 0x03, 0xee,
        0xba, 0xfb, 0x03, 0xbe, 0x00, 0x01, 0xb9, 0x04, 0x00, 0xfc, 0xf3, 0x6e,
        0xf4,
    };
    TVm t;
    int r = tvm_init(&t, NULL, code, sizeof(code));
    CHECK(r == 0);
    if (r == 0) {
        memcpy(t.ram_ptr + 0x100, "wxyz", 4);
        KvmVmEnd end;
        KvmEndReason why = kvm_vcpu_run_until_exit(t.cpu, &end);
        CHECK(why == KVM_END_HLT);
        CHECK(strcmp(end.text, "hlt") == 0);
        CHECK(nevents == 7);
        if (nevents == 7) {
            CHECK(events[0].kind == 'w' && events[0].addr == 0x3f8 && events[0].data == 'A');
            CHECK(events[1].kind == 'r' && events[1].addr == 0x3f9);
            CHECK(events[2].kind == 'w' && events[2].addr == 0x3fa && events[2].data == 0x5b);
            for (int i = 0; i < 4; i++)
                CHECK(events[3 + i].addr == 0x3fb && events[3 + i].data == (uint64_t)"wxyz"[i]);
        }
        KvmSlotInfo si[4];
        size_t n = kvm_vm_get_slots(t.vm, si, 4);
        CHECK(n == 1);
        CHECK(n >= 1 && si[0].gpa == 0 && si[0].size == RAM_SIZE && si[0].flags == 0 &&
              strcmp(si[0].name, "ram") == 0);
    }
    tvm_fini(&t);
}

int main(void)
{
    const char *why = kvm_probe();
    if (why) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        { "pio", test_pio },
    };
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int before = failures;
        tests[i].fn();
        printf("%s %s\n", failures == before ? "ok  " : "FAIL", tests[i].name);
    }
    return failures ? 1 : 0;
}
