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
    MemoryRegion *extra[8];     /* test regions, destroyed before the context */
    int nextra;
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
    for (int i = 0; i < t->nextra; i++) {
        MemoryRegion *c = memory_region_get_container(t->extra[i]);
        if (c)
            memory_region_del_subregion(c, t->extra[i]);
    }
    memory_region_del_subregion(&t->sys, &t->ram);
    memory_region_del_subregion(&t->sys, &t->mmio);
    memory_region_del_subregion(&t->io, &t->ports);
    memory_region_destroy(&t->ram);
    memory_region_destroy(&t->mmio);
    memory_region_destroy(&t->ports);
    for (int i = 0; i < t->nextra; i++)
        memory_region_destroy(t->extra[i]);
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
     *   mov $0x3f9,%dx ; mov $0x200,%di ; mov $3,%cx ; cld ; rep insb
     *   hlt
     */
    static const uint8_t code[] = {
        0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, 0x42, 0xec, 0xba, 0xfa, 0x03, 0xee,
        0xba, 0xfb, 0x03, 0xbe, 0x00, 0x01, 0xb9, 0x04, 0x00, 0xfc, 0xf3, 0x6e,
        0xf4,
        0xba, 0xf9, 0x03, 0xbf, 0x00, 0x02, 0xb9, 0x03, 0x00, 0xfc, 0xf3, 0x6c,
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
        nevents = 0;
        CHECK(kvm_vcpu_run_until_exit(t.cpu, &end) == KVM_END_HLT);
        CHECK(nevents == 3 && memcmp(t.ram_ptr + 0x200, "\x5b\x5b\x5b", 3) == 0);
        KvmVmStats st;
        kvm_vm_get_stats(t.vm, &st);
        printf("     pio: %llu IO exits for 10 port accesses\n", (unsigned long long)st.exits_io);
        KvmSlotInfo si[4];
        size_t n = kvm_vm_get_slots(t.vm, si, 4);
        CHECK(n == 1);
        CHECK(n >= 1 && si[0].gpa == 0 && si[0].size == RAM_SIZE && si[0].flags == 0 &&
              strcmp(si[0].name, "ram") == 0);
    }
    tvm_fini(&t);
}


static struct kvm_regs regs_of(KvmVcpu *cpu)
{
    struct kvm_regs r;
    memset(&r, 0, sizeof(r));
    kvm_vcpu_get_regs(cpu, &r);
    return r;
}

static void test_mmio_coalesced(void)
{
    /*
     *   mov $0xd000,%ax ; mov %ax,%ds
     *   movb $0x42,0x10 ; movw $0x1234,0x12 ; movl $0xdeadbeef,0x14
     *   mov 0x20,%al                         # MMIO read: 0x5a+0x20
     *   mov $0xe000,%bx ; mov %bx,%ds
     *   movb $1,0x0 ; movb $2,0x1 ; movb $3,0x2   # coalesced zone
     *   mov $0x3f8,%dx ; out %al,%dx         # not coalesced: ring first
     *   hlt
     */
    static const uint8_t code[] = {
        0xb8, 0x00, 0xd0, 0x8e, 0xd8, 0xc6, 0x06, 0x10, 0x00, 0x42, 0xc7, 0x06,
        0x12, 0x00, 0x34, 0x12, 0x66, 0xc7, 0x06, 0x14, 0x00, 0xef, 0xbe, 0xad,
        0xde, 0xa0, 0x20, 0x00, 0xbb, 0x00, 0xe0, 0x8e, 0xdb, 0xc6, 0x06, 0x00,
        0x00, 0x01, 0xc6, 0x06, 0x01, 0x00, 0x02, 0xc6, 0x06, 0x02, 0x00, 0x03,
        0xba, 0xf8, 0x03, 0xee, 0xf4,
    };
    TVm t;
    MemoryRegion co;
    Dev co_dev = { 'c', 0xe0000 };
    int r = tvm_init(&t, NULL, code, sizeof(code));
    CHECK(r == 0);
    if (r == 0) {
        memory_region_init_io(&co, t.ctx, &dev_ops, &co_dev, "coalesced", 0x1000);
        t.extra[t.nextra++] = &co;
        memory_region_set_coalescing(&co);
        memory_region_add_subregion(&t.sys, 0xe0000, &co);
        KvmVmStats st;
        kvm_vm_get_stats(t.vm, &st);
        CHECK(st.coalesced_zones == 1);
        KvmVmEnd end;
        CHECK(kvm_vcpu_run_until_exit(t.cpu, &end) == KVM_END_HLT);
        kvm_vm_get_stats(t.vm, &st);
        CHECK(st.coalesced_drained == 3);
        CHECK(nevents == 8);
        if (nevents == 8) {
            CHECK(events[0].kind == 'w' && events[0].addr == 0xd0010 && events[0].data == 0x42 &&
                  events[0].size == 1);
            CHECK(events[1].addr == 0xd0012 && events[1].data == 0x1234 && events[1].size == 2);
            CHECK(events[2].addr == 0xd0014 && events[2].data == 0xdeadbeef &&
                  events[2].size == 4);
            CHECK(events[3].kind == 'r' && events[3].addr == 0xd0020);
            for (int i = 0; i < 3; i++)
                CHECK(events[4 + i].space == 'c' && events[4 + i].addr == 0xe0000u + (unsigned)i &&
                      events[4 + i].data == (uint64_t)i + 1);
            CHECK(events[7].space == 'p' && events[7].data == 0x7a);
        }
        memory_region_del_subregion(&t.sys, &co);
        kvm_vm_get_stats(t.vm, &st);
        CHECK(st.coalesced_zones == 0);
    }
    tvm_fini(&t);
}

static uint64_t efd_count(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, 8) != 8)
        return 0;
    return v;
}

static void test_ioeventfd(void)
{
    /*
     *   mov $0x500,%dx ; mov $7,%al ; out %al,%dx   # datamatch: eventfd
     *   mov $8,%al ; out %al,%dx                      # no match: callback
     *   mov $0xd000,%ax ; mov %ax,%ds
     *   movb $9,0x40                                  # MMIO eventfd
     *   movb $9,0x41                                  # callback
     *   hlt
     */
    static const uint8_t code[] = {
        0xba, 0x00, 0x05, 0xb0, 0x07, 0xee, 0xb0, 0x08, 0xee, 0xb8, 0x00, 0xd0,
        0x8e, 0xd8, 0xc6, 0x06, 0x40, 0x00, 0x09, 0xc6, 0x06, 0x41, 0x00, 0x09,
        0xf4,
    };
    TVm t;
    MemoryRegion p2;
    Dev p2_dev = { 'p', 0x500 };
    int pfd = eventfd(0, EFD_NONBLOCK), mfd = eventfd(0, EFD_NONBLOCK);
    int r = tvm_init(&t, NULL, code, sizeof(code));
    CHECK(r == 0);
    if (r == 0) {
        memory_region_init_io(&p2, t.ctx, &dev_ops, &p2_dev, "port500", 4);
        t.extra[t.nextra++] = &p2;
        memory_region_transaction_begin(t.ctx);
        memory_region_add_subregion(&t.io, 0x500, &p2);
        CHECK(memory_region_add_eventfd(&p2, 0, 1, true, 7, pfd) == 0);
        CHECK(memory_region_add_eventfd(&t.mmio, 0x40, 1, false, 0, mfd) == 0);
        memory_region_transaction_commit(t.ctx);
        KvmVmStats st;
        kvm_vm_get_stats(t.vm, &st);
        CHECK(st.ioeventfds == 2);
        KvmVmEnd end;
        CHECK(kvm_vcpu_run_until_exit(t.cpu, &end) == KVM_END_HLT);
        CHECK(efd_count(pfd) == 1);
        CHECK(efd_count(mfd) == 1);
        CHECK(nevents == 2);
        if (nevents == 2) {
            CHECK(events[0].space == 'p' && events[0].addr == 0x500 && events[0].data == 8);
            CHECK(events[1].space == 'm' && events[1].addr == 0xd0041 && events[1].data == 9);
        }
        memory_region_transaction_begin(t.ctx);
        CHECK(memory_region_del_eventfd(&p2, 0, 1, true, 7, pfd) == 0);
        CHECK(memory_region_del_eventfd(&t.mmio, 0x40, 1, false, 0, mfd) == 0);
        memory_region_transaction_commit(t.ctx);
        kvm_vm_get_stats(t.vm, &st);
        CHECK(st.ioeventfds == 0);
        CHECK(st.errors == 0);
        memory_region_del_subregion(&t.io, &p2);
    }
    tvm_fini(&t);
    close(pfd);
    close(mfd);
}

static const KvmSlotInfo *slot_at(const KvmSlotInfo *si, size_t n, uint64_t gpa)
{
    for (size_t i = 0; i < n; i++)
        if (si[i].gpa == gpa)
            return &si[i];
    return NULL;
}

static void test_rom(void)
{
    /*
     *   mov $0xf000,%ax ; mov %ax,%ds
     *   mov 0x0,%al ; movb $0x99,0x0 ; mov 0x0,%bl    # ROM: write dropped
     *   mov $0xc000,%si ; mov %si,%ds
     *   mov 0x0,%cl                                    # rom_device, readable
     *   movb $0x33,0x4                                 # rom_device write: ops
     *   hlt
     *   mov 0x8,%dl                                    # not readable: ops
     *   hlt
     */
    static const uint8_t code[] = {
        0xb8, 0x00, 0xf0, 0x8e, 0xd8, 0xa0, 0x00, 0x00, 0xc6, 0x06, 0x00, 0x00,
        0x99, 0x8a, 0x1e, 0x00, 0x00, 0xbe, 0x00, 0xc0, 0x8e, 0xde, 0x8a, 0x0e,
        0x00, 0x00, 0xc6, 0x06, 0x04, 0x00, 0x33, 0xf4, 0x8a, 0x16, 0x08, 0x00,
        0xf4,
    };
    TVm t;
    MemoryRegion bios, flash;
    Dev flash_dev = { 'f', 0xc0000 };
    int r = tvm_init(&t, NULL, code, sizeof(code));
    CHECK(r == 0);
    if (r == 0) {
        memory_region_init_rom(&bios, t.ctx, NULL, "bios", 0x10000);
        memset(memory_region_get_ram_ptr(&bios), 0x11, 0x10000);
        memory_region_init_rom_device(&flash, t.ctx, &dev_ops, &flash_dev, NULL, "flash", 0x1000);
        memset(memory_region_get_ram_ptr(&flash), 0x22, 0x1000);
        t.extra[t.nextra++] = &bios;
        t.extra[t.nextra++] = &flash;
        uint64_t c0 = kvm_vm_slot_ioctl_count(t.vm);
        memory_region_transaction_begin(t.ctx);
        memory_region_add_subregion(&t.sys, 0xf0000, &bios);
        memory_region_add_subregion(&t.sys, 0xc0000, &flash);
        memory_region_transaction_commit(t.ctx);
        CHECK(kvm_vm_slot_ioctl_count(t.vm) == c0 + 2);
        KvmSlotInfo si[8];
        size_t n = kvm_vm_get_slots(t.vm, si, 8);
        CHECK(n == 3);
        const KvmSlotInfo *b = slot_at(si, n, 0xf0000), *f = slot_at(si, n, 0xc0000);
        CHECK(b && b->flags == KVM_MEM_READONLY && strcmp(b->name, "bios") == 0);
        CHECK(f && f->flags == KVM_MEM_READONLY && strcmp(f->name, "flash") == 0);

        KvmVmEnd end;
        CHECK(kvm_vcpu_run_until_exit(t.cpu, &end) == KVM_END_HLT);
        struct kvm_regs rg = regs_of(t.cpu);
        CHECK((rg.rax & 0xff) == 0x11);
        CHECK((rg.rbx & 0xff) == 0x11);
        CHECK((rg.rcx & 0xff) == 0x22);
        CHECK(((uint8_t *)memory_region_get_ram_ptr(&bios))[0] == 0x11);
        CHECK(nevents == 1 && events[0].space == 'f' && events[0].addr == 0xc0004 &&
              events[0].data == 0x33);

        KvmVmStats st0, st1;
        kvm_vm_get_stats(t.vm, &st0);
        memory_region_rom_device_set_readable(&flash, false);
        kvm_vm_get_stats(t.vm, &st1);
        CHECK(st1.slots_used == 2);
        CHECK(st1.slot_ioctls == st0.slot_ioctls + 1);
        CHECK(st1.slot_pauses == st0.slot_pauses + 1);
        nevents = 0;
        CHECK(kvm_vcpu_run_until_exit(t.cpu, &end) == KVM_END_HLT);
        rg = regs_of(t.cpu);
        CHECK((rg.rdx & 0xff) == 0x62);
        CHECK(nevents == 1 && events[0].kind == 'r' && events[0].addr == 0xc0008);

        memory_region_rom_device_set_readable(&flash, true);
        n = kvm_vm_get_slots(t.vm, si, 8);
        CHECK(n == 3 && slot_at(si, n, 0xc0000));
        memory_region_transaction_begin(t.ctx);
        memory_region_del_subregion(&t.sys, &bios);
        memory_region_del_subregion(&t.sys, &flash);
        memory_region_transaction_commit(t.ctx);
        CHECK(kvm_vm_get_slots(t.vm, si, 8) == 1);
    }
    tvm_fini(&t);
}

static void test_dirty_log(void)
{
    /*
     *   mov $0x2000,%ax ; mov %ax,%ds
     *   movb $1,0x5000      # page 0x25
     *   hlt
     *   movb $2,0x7000      # page 0x27
     *   hlt
     */
    static const uint8_t code[] = {
        0xb8, 0x00, 0x20, 0x8e, 0xd8, 0xc6, 0x06, 0x00, 0x50, 0x01, 0xf4, 0xc6,
        0x06, 0x00, 0x70, 0x02, 0xf4,
    };
    TVm t;
    int r = tvm_init(&t, NULL, code, sizeof(code));
    CHECK(r == 0);
    if (r == 0) {
        KvmSlotInfo si[4], si2[4];
        CHECK(kvm_vm_get_slots(t.vm, si, 4) == 1);
        uint64_t c0 = kvm_vm_slot_ioctl_count(t.vm);
        KvmVmStats st0, st1;
        kvm_vm_get_stats(t.vm, &st0);
        CHECK(memory_region_set_log(&t.ram, true, DIRTY_MEMORY_MIGRATION) == 0);
        kvm_vm_get_stats(t.vm, &st1);
        CHECK(kvm_vm_slot_ioctl_count(t.vm) == c0 + 1);    /* flag changed in place */
        CHECK(st1.slot_pauses == st0.slot_pauses);
        CHECK(kvm_vm_get_slots(t.vm, si2, 4) == 1);
        CHECK(si2[0].slot == si[0].slot && si2[0].flags == KVM_MEM_LOG_DIRTY_PAGES);
        memory_region_reset_dirty(&t.ram, 0, RAM_SIZE, DIRTY_MEMORY_MIGRATION);

        KvmVmEnd end;
        CHECK(kvm_vcpu_run_until_exit(t.cpu, &end) == KVM_END_HLT);
        memory_region_sync_dirty_bitmap(&t.ram);
        CHECK(memory_region_get_dirty(&t.ram, 0x25000, 4096, DIRTY_MEMORY_MIGRATION));
        CHECK(!memory_region_get_dirty(&t.ram, 0x26000, 4096, DIRTY_MEMORY_MIGRATION));
        CHECK(!memory_region_get_dirty(&t.ram, 0x27000, 4096, DIRTY_MEMORY_MIGRATION));
        memory_region_reset_dirty(&t.ram, 0, RAM_SIZE, DIRTY_MEMORY_MIGRATION);

        CHECK(kvm_vcpu_run_until_exit(t.cpu, &end) == KVM_END_HLT);
        memory_region_sync_dirty_bitmap(&t.ram);
        CHECK(!memory_region_get_dirty(&t.ram, 0x25000, 4096, DIRTY_MEMORY_MIGRATION));
        CHECK(memory_region_get_dirty(&t.ram, 0x27000, 4096, DIRTY_MEMORY_MIGRATION));
        CHECK(t.ram_ptr[0x25000] == 1 && t.ram_ptr[0x27000] == 2);

        CHECK(memory_region_set_log(&t.ram, false, DIRTY_MEMORY_MIGRATION) == 0);
        CHECK(kvm_vm_get_slots(t.vm, si2, 4) == 1);
        CHECK(si2[0].slot == si[0].slot && si2[0].flags == 0);
        KvmVmStats st;
        kvm_vm_get_stats(t.vm, &st);
        CHECK(st.errors == 0);
    }
    tvm_fini(&t);
}

static void test_slots(void)
{
    /*
     *   mov $0xb000,%ax ; mov %ax,%ds
     *   movb $0x77,0x10 ; mov 0x10,%bl       # RAM without a slot (table full)
     *   mov $0xa000,%ax ; mov %ax,%ds
     *   movb $0x66,0x810 ; mov 0x810,%cl     # RAM not page aligned
     *   hlt
     */
    static const uint8_t code[] = {
        0xb8, 0x00, 0xb0, 0x8e, 0xd8, 0xc6, 0x06, 0x10, 0x00, 0x77, 0x8a, 0x1e,
        0x10, 0x00, 0xb8, 0x00, 0xa0, 0x8e, 0xd8, 0xc6, 0x06, 0x10, 0x08, 0x66,
        0x8a, 0x0e, 0x10, 0x08, 0xf4,
    };
    TVm t;
    KvmVmConfig cfg = KVM_VM_CONFIG_DEFAULT;
    cfg.max_slots = 3;
    MemoryRegion x[3], odd;
    static const uint64_t xaddr[3] = { 0x100000, 0x200000, 0xb0000 };
    int r = tvm_init(&t, &cfg, code, sizeof(code));
    CHECK(r == 0);
    if (r == 0) {
        CHECK(kvm_vm_max_slots(t.vm) == 3);
        char name[16];
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof(name), "x%d", i);
            memory_region_init_ram(&x[i], t.ctx, NULL, name, 0x10000);
        }
        memory_region_init_ram(&odd, t.ctx, NULL, "odd", 0x800);
        for (int i = 0; i < 3; i++)
            t.extra[t.nextra++] = &x[i];
        t.extra[t.nextra++] = &odd;
        uint64_t c0 = kvm_vm_slot_ioctl_count(t.vm);
        memory_region_transaction_begin(t.ctx);
        memory_region_add_subregion(&t.sys, xaddr[0], &x[0]);
        memory_region_add_subregion(&t.sys, xaddr[1], &x[1]);
        memory_region_transaction_commit(t.ctx);
        CHECK(kvm_vm_slot_ioctl_count(t.vm) == c0 + 2);    /* one batch */
        memory_region_add_subregion(&t.sys, xaddr[2], &x[2]);  /* no slot left */
        CHECK(strstr(kvm_vm_last_error(t.vm), "all 3 in use") != NULL);
        memory_region_add_subregion(&t.sys, 0xa0800, &odd);
        KvmVmStats st;
        kvm_vm_get_stats(t.vm, &st);
        CHECK(st.unaligned_sections == 1);
        CHECK(st.slots_used == 3);

        KvmVmEnd end;
        CHECK(kvm_vcpu_run_until_exit(t.cpu, &end) == KVM_END_HLT);
        struct kvm_regs rg = regs_of(t.cpu);
        CHECK((rg.rbx & 0xff) == 0x77 && (rg.rcx & 0xff) == 0x66);
        CHECK(((uint8_t *)memory_region_get_ram_ptr(&x[2]))[0x10] == 0x77);
        CHECK(((uint8_t *)memory_region_get_ram_ptr(&odd))[0x10] == 0x66);

        /* readonly toggled: del + add with the vCPUs paused, slot reused */
        KvmSlotInfo si[8];
        size_t n = kvm_vm_get_slots(t.vm, si, 8);
        const KvmSlotInfo *s1 = slot_at(si, n, xaddr[1]);
        uint32_t slot1 = s1 ? s1->slot : 99;
        KvmVmStats st0;
        kvm_vm_get_stats(t.vm, &st0);
        memory_region_set_readonly(&x[1], true);
        kvm_vm_get_stats(t.vm, &st);
        CHECK(st.slot_ioctls == st0.slot_ioctls + 2);
        CHECK(st.slot_pauses == st0.slot_pauses + 1);
        n = kvm_vm_get_slots(t.vm, si, 8);
        s1 = slot_at(si, n, xaddr[1]);
        CHECK(s1 && s1->slot == slot1 && s1->flags == KVM_MEM_READONLY);

        /* freeing a slot lets the next region in */
        memory_region_del_subregion(&t.sys, &x[0]);
        memory_region_del_subregion(&t.sys, &x[2]);
        memory_region_add_subregion(&t.sys, xaddr[2], &x[2]);
        n = kvm_vm_get_slots(t.vm, si, 8);
        CHECK(n == 3 && slot_at(si, n, xaddr[2]) != NULL);

        memory_region_transaction_begin(t.ctx);
        memory_region_del_subregion(&t.sys, &x[1]);
        memory_region_del_subregion(&t.sys, &x[2]);
        memory_region_del_subregion(&t.sys, &odd);
        memory_region_transaction_commit(t.ctx);
    }
    tvm_fini(&t);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void test_threads_pause(void)
{
    /*   1: incl 0x500 ; jmp 1b   */
    static const uint8_t code[] = { 0x66, 0xff, 0x06, 0x00, 0x05, 0xeb, 0xf9 };
    TVm t;
    MemoryRegion extra;
    int r = tvm_init(&t, NULL, code, sizeof(code));
    CHECK(r == 0);
    if (r == 0) {
        memory_region_init_ram(&extra, t.ctx, NULL, "extra", 0x10000);
        t.extra[t.nextra++] = &extra;
        volatile uint32_t *counter = (volatile uint32_t *)(t.ram_ptr + 0x500);
        CHECK(kvm_vm_start(t.vm) == 0);
        CHECK(kvm_vm_start(t.vm) == -EALREADY);
        sleep_ms(50);
        CHECK(*counter > 0);
        CHECK(kvm_vm_pause(t.vm) == 0);
        CHECK(kvm_vm_paused(t.vm));
        uint32_t c1 = *counter;
        sleep_ms(30);
        CHECK(*counter == c1);
        kvm_vm_resume(t.vm);
        sleep_ms(30);
        uint32_t c2 = *counter;
        CHECK(c2 > c1);
        /* a commit that deletes a slot pauses and resumes the running vCPU */
        memory_region_add_subregion(&t.sys, 0x100000, &extra);
        memory_region_set_readonly(&extra, true);
        memory_region_del_subregion(&t.sys, &extra);
        sleep_ms(30);
        CHECK(*counter > c2);
        /* the RAM the guest runs from is re-created (readonly toggled) many
         * times while it runs: no instruction fetch may ever miss */
        KvmVmStats st0;
        kvm_vm_get_stats(t.vm, &st0);
        for (int i = 0; i < 50; i++) {
            memory_region_set_readonly(&t.ram, i % 2 == 0);
            struct timespec ts = { 0, 300000 };
            nanosleep(&ts, NULL);
        }
        KvmVmStats st;
        kvm_vm_get_stats(t.vm, &st);
        CHECK(st.errors == st0.errors);
        CHECK(st.slot_pauses == st0.slot_pauses + 50);
        CHECK(!kvm_vm_ended(t.vm));
        uint32_t c3 = *counter;
        sleep_ms(30);
        CHECK(*counter > c3);
        CHECK(kvm_vm_wait_timeout(t.vm, 10, NULL) == KVM_END_NONE);
        kvm_vm_request_end(t.vm, KVM_END_REQUESTED, 3, "test over");
        KvmVmEnd end;
        CHECK(kvm_vm_wait(t.vm, &end) == KVM_END_REQUESTED);
        CHECK(end.code == 3 && strcmp(end.text, "test over") == 0);
        CHECK(kvm_vm_ended(t.vm));
    }
    tvm_fini(&t);
}

/* A port whose writes pause and resume the whole VM from the vCPU thread. */
typedef struct PauseDev {
    KvmVm *vm;
    unsigned writes;
} PauseDev;

static uint64_t pausedev_read(void *opaque, uint64_t addr, unsigned size)
{
    (void)opaque;
    (void)addr;
    (void)size;
    return 0;
}

static void pausedev_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    PauseDev *d = opaque;
    (void)addr;
    (void)data;
    (void)size;
    kvm_vm_pause(d->vm);
    kvm_vm_resume(d->vm);
    __atomic_fetch_add(&d->writes, 1, __ATOMIC_RELAXED);
}

static const MemoryRegionOps pausedev_ops = {
    .read = pausedev_read,
    .write = pausedev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
};

static void test_smp_pause(void)
{
    /*
     * vCPU 0 at 0x1000:  1: incl 0x500 ; jmp 1b
     * vCPU 1 at 0x1100:  1: incl 0x504 ; mov $0x600,%dx ; out %al,%dx ; jmp 1b
     * (port 0x600 pauses and resumes the VM from vCPU 1's own thread)
     */
    static const uint8_t code0[] = { 0x66, 0xff, 0x06, 0x00, 0x05, 0xeb, 0xf9 };
    static const uint8_t code1[] = { 0x66, 0xff, 0x06, 0x04, 0x05, 0xba, 0x00, 0x06, 0xee,
                                     0xeb, 0xf5 };
    TVm t;
    MemoryRegion pd;
    PauseDev pdev = { NULL, 0 };
    int r = tvm_init(&t, NULL, code0, sizeof(code0));
    CHECK(r == 0);
    KvmVcpu *cpu1 = NULL;
    if (r == 0) {
        memcpy(t.ram_ptr + 0x1100, code1, sizeof(code1));
        pdev.vm = t.vm;
        memory_region_init_io(&pd, t.ctx, &pausedev_ops, &pdev, "pauser", 1);
        t.extra[t.nextra++] = &pd;
        memory_region_add_subregion(&t.io, 0x600, &pd);
        CHECK(kvm_vcpu_create(t.vm, 1, &cpu1) == 0);
    }
    if (cpu1) {
        CHECK(kvm_vcpu_init_cpuid(cpu1) == 0);
        CHECK(kvm_vcpu_setup_real_mode(cpu1, 0, 0x1100) == 0);
        volatile uint32_t *c0 = (volatile uint32_t *)(t.ram_ptr + 0x500);
        volatile uint32_t *c1 = (volatile uint32_t *)(t.ram_ptr + 0x504);
        CHECK(kvm_vm_start(t.vm) == 0);
        sleep_ms(30);
        unsigned cycles = 0, stopped = 0;
        for (int i = 0; i < 100; i++) {
            kvm_vm_pause(t.vm);
            uint32_t a = *c0, b = *c1;
            struct timespec ts = { 0, 200000 };
            nanosleep(&ts, NULL);
            stopped += (a == *c0 && b == *c1);
            kvm_vm_resume(t.vm);
            cycles++;
        }
        CHECK(stopped == cycles);
        uint32_t a = *c0, b = *c1;
        sleep_ms(30);
        CHECK(*c0 > a && *c1 > b);
        CHECK(__atomic_load_n(&pdev.writes, __ATOMIC_RELAXED) > 0);
        kvm_vm_request_end(t.vm, KVM_END_REQUESTED, 0, NULL);
        KvmVmEnd end;
        CHECK(kvm_vm_wait(t.vm, &end) == KVM_END_REQUESTED);
        CHECK(strcmp(end.text, "requested") == 0);
    }
    tvm_fini(&t);
}

static void test_shutdown(void)
{
    /*
     * 32-bit PVH entry state:
     *   mov $0x3f8,%dx ; mov $'P',%al ; out %al,%dx
     *   lidt 0x1020          # zero limit
     *   ud2                  # #UD -> #GP -> #DF -> triple fault
     */
    static const uint8_t code[] = {
        0x66, 0xba, 0xf8, 0x03, 0xb0, 0x50, 0xee, 0x0f, 0x01, 0x1d, 0x20, 0x10,
        0x00, 0x00, 0x0f, 0x0b,
    };
    TVm t;
    int r = tvm_init(&t, NULL, code, sizeof(code));
    CHECK(r == 0);
    if (r == 0) {
        CHECK(kvm_vcpu_setup_pvh(t.cpu, 0x1000, 0x1234) == 0);
        struct kvm_regs rg = regs_of(t.cpu);
        CHECK(rg.rbx == 0x1234 && rg.rip == 0x1000);
        CHECK(kvm_vm_start(t.vm) == 0);
        KvmVmEnd end;
        KvmEndReason why = kvm_vm_wait(t.vm, &end);
        CHECK(why == KVM_END_SHUTDOWN);
        CHECK(strcmp(end.text, "shutdown (triple fault)") == 0 && end.vcpu == 0);
        CHECK(nevents == 1 && events[0].data == 'P');
    }
    tvm_fini(&t);
}

static void test_internal_error(void)
{
    /*
     * 32-bit: mov $0x3f8,%dx ; mov $'Q',%al ; out %al,%dx ; int3 ; hlt
     * PVM's emulator cannot do INT3 at CPL0 (an internal error, with a
     * register dump); hardware KVM delivers it through a zero IDT entry and
     * triple-faults.  Either way the VM ends cleanly.
     */
    static const uint8_t code[] = { 0x66, 0xba, 0xf8, 0x03, 0xb0, 0x51, 0xee, 0xcc, 0xf4 };
    TVm t;
    int r = tvm_init(&t, NULL, code, sizeof(code));
    CHECK(r == 0);
    if (r == 0) {
        CHECK(kvm_vcpu_setup_pvh(t.cpu, 0x1000, 0) == 0);
        KvmVmEnd end;
        KvmEndReason why = kvm_vcpu_run_until_exit(t.cpu, &end);
        CHECK(why == KVM_END_ERROR || why == KVM_END_SHUTDOWN);
        if (why == KVM_END_ERROR)
            CHECK(strstr(end.text, "internal error") != NULL);
        CHECK(nevents == 1 && events[0].data == 'Q');
    }
    tvm_fini(&t);
}

static void test_irqchip(void)
{
    KvmVmConfig cfg = KVM_VM_CONFIG_DEFAULT;
    cfg.irqchip = true;
    cfg.pit = true;
    KvmVm *vm = NULL;
    int r = kvm_vm_create(&cfg, &vm);
    CHECK(r == 0);
    if (r < 0)
        return;
    CHECK(kvm_vm_has_irqchip(vm));
    KvmVcpu *cpu = NULL;
    CHECK(kvm_vcpu_create(vm, 0, &cpu) == 0);    /* MSIs need a destination */
    IrqLine line;
    CHECK(kvm_vm_irq_line(vm, 4, &line) == 0);
    irq_line_raise(&line);
    irq_line_lower(&line);
    int fd = irq_line_eventfd(&line);
    CHECK(fd >= 0);
    CHECK(irq_line_eventfd(&line) == fd);
    uint64_t one = 1;
    CHECK(write(fd, &one, 8) == 8);
    /* a resampling irqfd for a level line: made once, then the same fds */
    IrqLine lvl;
    CHECK(kvm_vm_irq_line(vm, 10, &lvl) == 0);
    int rfd = -2, rfd2 = -2;
    int lfd = irq_line_level_eventfd(&lvl, &rfd);
    CHECK(lfd >= 0 && rfd >= 0 && lfd != fd);
    CHECK(irq_line_level_eventfd(&lvl, &rfd2) == lfd && rfd2 == rfd);
    CHECK(write(lfd, &one, 8) == 8);
    int gsi = kvm_vm_add_msi_route(vm, 0xfee00000, 0x30);
    CHECK(gsi == 24);
    CHECK(kvm_vm_add_msi_route(vm, 0xfee00000, 0x31) == 25);
    CHECK(kvm_vm_update_msi_route(vm, 24, 0xfee00000, 0x32) == 0);
    int efd = eventfd(0, EFD_NONBLOCK);
    CHECK(kvm_vm_irqfd_assign(vm, efd, 24, -1) == 0);
    CHECK(kvm_vm_irqfd_deassign(vm, efd, 24) == 0);
    CHECK(kvm_vm_del_msi_route(vm, 24) == 0);
    CHECK(kvm_vm_add_msi_route(vm, 0xfee00000, 0x33) == 24);
    CHECK(kvm_vm_signal_msi(vm, 0xfee00000, 0x30) == 0);
    CHECK(kvm_vm_set_irq(vm, 9, 1) == 0);
    KvmVmStats st;
    kvm_vm_get_stats(vm, &st);
    CHECK(st.errors == 0 && st.irqfds == 2);
    kvm_vm_destroy(vm);
    close(efd);

    /* without an irqchip a line is accepted and does nothing */
    cfg = KVM_VM_CONFIG_DEFAULT;
    CHECK(kvm_vm_create(&cfg, &vm) == 0);
    CHECK(kvm_vm_irq_line(vm, 4, &line) == 0);
    irq_line_pulse(&line);
    CHECK(irq_line_eventfd(&line) == -1);
    CHECK(irq_line_level_eventfd(&line, &rfd) == -1 && rfd == -1);
    kvm_vm_destroy(vm);
}

static void test_errors(void)
{
    KvmVmConfig cfg = KVM_VM_CONFIG_DEFAULT;
    cfg.dev_path = "/nonexistent/kvm";
    KvmVm *vm = NULL;
    CHECK(kvm_vm_create(&cfg, &vm) == -ENOENT && vm == NULL);
    cfg.dev_path = "/dev/null";
    CHECK(kvm_vm_create(&cfg, &vm) < 0 && vm == NULL);
    cfg = KVM_VM_CONFIG_DEFAULT;
    cfg.pit = true;     /* PIT without irqchip */
    CHECK(kvm_vm_create(&cfg, &vm) == -EINVAL && vm == NULL);
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
        { "mmio_coalesced", test_mmio_coalesced },
        { "ioeventfd", test_ioeventfd },
        { "rom", test_rom },
        { "dirty_log", test_dirty_log },
        { "slots", test_slots },
        { "threads_pause", test_threads_pause },
        { "smp_pause", test_smp_pause },
        { "shutdown", test_shutdown },
        { "internal_error", test_internal_error },
        { "irqchip", test_irqchip },
        { "errors", test_errors },
    };
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int before = failures;
        tests[i].fn();
        printf("%s %s\n", failures == before ? "ok  " : "FAIL", tests[i].name);
    }
    return failures ? 1 : 0;
}
