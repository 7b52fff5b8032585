/* SPDX-License-Identifier: MIT */
/* Host side of the tiny-guest kit (see kit.h). */
#include "tests/guests/kit.h"

#include <elf.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#define KIT_DEFAULT_RAM (32ull << 20)
#define KIT_MAX_REPORTS 4096

struct Kit {
    MemoryContext *ctx;
    MemoryRegion sysmem, iomem, ram, testdev;
    AddressSpace *memory_as, *io_as;
    KvmVm *vm;
    KvmVcpu *vcpu;
    uint64_t ram_size;
    uint64_t pvh_entry;
    unsigned ncpus;
    bool have_sysmem, have_iomem, have_ram, have_testdev;

    /* ELF symbols (copies of .symtab and its string table) */
    Elf64_Sym *syms;
    size_t nr_syms;
    char *strtab;
    size_t strtab_size;

    /* test device state; touched by the thread that runs the vCPU */
    pthread_mutex_t lock;
    uint32_t reports[KIT_MAX_REPORTS];
    size_t nr_reports;
    bool exited;
    uint32_t exit_code;
    uint32_t sync_answer;
    unsigned sync_count;
    KitSyncFn sync_fn;
    void *sync_opaque;
    char line[256];
    size_t line_len;
};

void kit_require_kvm(void)
{
    const char *why = kvm_probe();

    setvbuf(stdout, NULL, _IOLBF, 0); /* keep stdout in order with stderr */
    if (why) {
        printf("SKIP: /dev/kvm cannot run strata guests here: %s\n", why);
        fflush(stdout);
        exit(77);
    }
}

/* ---- test device ------------------------------------------------------- */

static void testdev_putc(Kit *k, char c)
{
    if (c == '\n' || k->line_len == sizeof(k->line) - 1) {
        k->line[k->line_len] = 0;
        fprintf(stderr, "guest: %s\n", k->line);
        k->line_len = 0;
        if (c == '\n')
            return;
    }
    k->line[k->line_len++] = c;
}

static uint64_t testdev_read(void *opaque, uint64_t addr, unsigned size)
{
    Kit *k = opaque;
    uint32_t v;

    pthread_mutex_lock(&k->lock);
    v = addr == TESTDEV_PORT_SYNC - TESTDEV_PORT_BASE ? k->sync_answer : TESTDEV_MAGIC;
    pthread_mutex_unlock(&k->lock);
    return v;
}

static void testdev_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    Kit *k = opaque;
    uint32_t v = (uint32_t)data;
    KitSyncFn fn;
    void *fn_opaque;

    switch (addr + TESTDEV_PORT_BASE) {
    case TESTDEV_PORT_REPORT:
        pthread_mutex_lock(&k->lock);
        if (k->nr_reports < KIT_MAX_REPORTS)
            k->reports[k->nr_reports++] = v;
        pthread_mutex_unlock(&k->lock);
        break;
    case TESTDEV_PORT_PUTC:
        pthread_mutex_lock(&k->lock);
        testdev_putc(k, (char)v);
        pthread_mutex_unlock(&k->lock);
        break;
    case TESTDEV_PORT_EXIT:
        pthread_mutex_lock(&k->lock);
        if (!k->exited) {
            k->exited = true;
            k->exit_code = v;
        }
        pthread_mutex_unlock(&k->lock);
        kvm_vm_request_end(k->vm, KVM_END_REQUESTED, (int)v, "guest exit");
        break;
    case TESTDEV_PORT_SYNC:
        pthread_mutex_lock(&k->lock);
        fn = k->sync_fn;
        fn_opaque = k->sync_opaque;
        k->sync_count++;
        pthread_mutex_unlock(&k->lock);
        /* The handler runs unlocked: it may change the region tree. */
        v = fn ? fn(k, v, fn_opaque) : 0;
        pthread_mutex_lock(&k->lock);
        k->sync_answer = v;
        pthread_mutex_unlock(&k->lock);
        break;
    default:
        break;
    }
}

static const MemoryRegionOps testdev_ops = {
    .read = testdev_read,
    .write = testdev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 4 },
    .impl = { .min_access_size = 1, .max_access_size = 4 },
};

/* ---- ELF loading ------------------------------------------------------- */

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    void *buf = NULL;
    long n;

    if (!f) {
        fprintf(stderr, "kit: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    if (!buf)
        fprintf(stderr, "kit: %s: cannot read\n", path);
    return buf;
}

static bool in_file(size_t len, uint64_t off, uint64_t size)
{
    return off <= len && size <= len - off;
}

/* The PVH entry from a PT_NOTE segment, or 0. */
static uint64_t pvh_entry(const uint8_t *img, size_t len, const Elf64_Phdr *ph)
{
    uint64_t off = ph->p_offset, end;

    if (!in_file(len, ph->p_offset, ph->p_filesz))
        return 0;
    end = ph->p_offset + ph->p_filesz;
    while (off + sizeof(Elf64_Nhdr) <= end) {
        Elf64_Nhdr nh;
        uint64_t name_off, desc_off;

        memcpy(&nh, img + off, sizeof(nh));
        name_off = off + sizeof(nh);
        desc_off = name_off + ((nh.n_namesz + 3ull) & ~3ull);
        if (desc_off + nh.n_descsz > end)
            break;
        if (nh.n_type == 18 && nh.n_namesz == 4 && !memcmp(img + name_off, "Xen", 4)) {
            uint32_t e32;
            uint64_t e64;

            if (nh.n_descsz == 4) {
                memcpy(&e32, img + desc_off, 4);
                return e32;
            }
            if (nh.n_descsz == 8) {
                memcpy(&e64, img + desc_off, 8);
                return e64;
            }
        }
        off = desc_off + ((nh.n_descsz + 3ull) & ~3ull);
    }
    return 0;
}

static void load_symbols(Kit *k, const uint8_t *img, size_t len, const Elf64_Ehdr *eh)
{
    const Elf64_Shdr *sh;

    if (eh->e_shentsize != sizeof(Elf64_Shdr) ||
        !in_file(len, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr)))
        return;
    sh = (const Elf64_Shdr *)(img + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        const Elf64_Shdr *str;

        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum)
            continue;
        str = &sh[sh[i].sh_link];
        if (!in_file(len, sh[i].sh_offset, sh[i].sh_size) ||
            !in_file(len, str->sh_offset, str->sh_size) || str->sh_size == 0)
            return;
        k->nr_syms = sh[i].sh_size / sizeof(Elf64_Sym);
        k->syms = malloc(k->nr_syms * sizeof(Elf64_Sym) + 1);
        k->strtab = malloc(str->sh_size + 1);
        if (!k->syms || !k->strtab) {
            k->nr_syms = 0;
            return;
        }
        memcpy(k->syms, img + sh[i].sh_offset, k->nr_syms * sizeof(Elf64_Sym));
        memcpy(k->strtab, img + str->sh_offset, str->sh_size);
        k->strtab[str->sh_size] = 0;
        k->strtab_size = str->sh_size;
        return;
    }
}

static int load_elf(Kit *k, const char *path, uint64_t *entry)
{
    size_t len = 0;
    uint8_t *img = read_file(path, &len);
    uint8_t *ram = memory_region_get_ram_ptr(&k->ram);
    const Elf64_Ehdr *eh;
    const Elf64_Phdr *ph;
    int ret = -EINVAL;

    if (!img)
        return -ENOENT;
    eh = (const Elf64_Ehdr *)img;
    if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
        eh->e_phentsize != sizeof(Elf64_Phdr) ||
        !in_file(len, eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr))) {
        fprintf(stderr, "kit: %s: not an x86-64 ELF\n", path);
        goto out;
    }
    ph = (const Elf64_Phdr *)(img + eh->e_phoff);
    *entry = eh->e_entry;
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_NOTE) {
            uint64_t e = pvh_entry(img, len, &ph[i]);

            if (e)
                *entry = k->pvh_entry = e;
            continue;
        }
        if (ph[i].p_type != PT_LOAD)
            continue;
        if (ph[i].p_filesz > ph[i].p_memsz || !in_file(len, ph[i].p_offset, ph[i].p_filesz) ||
            ph[i].p_paddr > k->ram_size || ph[i].p_memsz > k->ram_size - ph[i].p_paddr) {
            fprintf(stderr,
                    "kit: %s: segment %u (%#llx+%#llx) does not fit in %#llx bytes of RAM\n", path,
                    i, (unsigned long long)ph[i].p_paddr, (unsigned long long)ph[i].p_memsz,
                    (unsigned long long)k->ram_size);
            goto out;
        }
        memcpy(ram + ph[i].p_paddr, img + ph[i].p_offset, ph[i].p_filesz);
        memset(ram + ph[i].p_paddr + ph[i].p_filesz, 0, ph[i].p_memsz - ph[i].p_filesz);
    }
    load_symbols(k, img, len, eh);
    ret = 0;
out:
    free(img);
    return ret;
}

/* ---- VM ---------------------------------------------------------------- */

Kit *kit_new(const char *elf_path, const KitOptions *opt)
{
    KitOptions o = opt ? *opt : (KitOptions){ 0 };
    KvmVmConfig cfg = KVM_VM_CONFIG_DEFAULT;
    Kit *k = calloc(1, sizeof(*k));
    uint64_t entry = 0;

    if (!k)
        return NULL;
    pthread_mutex_init(&k->lock, NULL);
    k->ram_size = o.ram_size ? o.ram_size : KIT_DEFAULT_RAM;
    k->ctx = memory_context_new();
    if (!k->ctx)
        goto fail;
    if (!(k->have_sysmem = memory_region_init(&k->sysmem, k->ctx, "system", UINT64_MAX) == 0) ||
        !(k->have_iomem = memory_region_init(&k->iomem, k->ctx, "io", 0x10000) == 0) ||
        !(k->have_ram = memory_region_init_ram(&k->ram, k->ctx, "kit", "ram", k->ram_size) == 0) ||
        !(k->have_testdev = memory_region_init_io(&k->testdev, k->ctx, &testdev_ops, k, "testdev",
                                                  TESTDEV_PORT_SIZE) == 0) ||
        memory_region_add_subregion(&k->sysmem, 0, &k->ram) < 0 ||
        memory_region_add_subregion(&k->iomem, TESTDEV_PORT_BASE, &k->testdev) < 0) {
        fprintf(stderr, "kit: building the region tree: %s\n", memory_context_last_error(k->ctx));
        goto fail;
    }
    k->memory_as = address_space_new(k->ctx, &k->sysmem, "memory");
    k->io_as = address_space_new(k->ctx, &k->iomem, "I/O");
    if (!k->memory_as || !k->io_as) {
        fprintf(stderr, "kit: address_space_new failed\n");
        goto fail;
    }
    if (load_elf(k, elf_path, &entry) < 0)
        goto fail;

    k->ncpus = o.ncpus ? o.ncpus : 1;
    cfg.irqchip = o.irqchip || k->ncpus > 1; /* INIT/SIPI need the local APICs */
    cfg.verbose = o.verbose;
    cfg.max_slots = o.max_slots;
    if (o.dirty_bitmap)
        cfg.dirty_ring = KVM_DIRTY_RING_OFF;
    else if (o.dirty_ring)
        cfg.dirty_ring = o.dirty_ring;
    if (kvm_vm_create(&cfg, &k->vm) < 0 ||
        kvm_vm_attach_memory(k->vm, k->ctx, k->memory_as, k->io_as) < 0 ||
        kvm_vcpu_create(k->vm, 0, &k->vcpu) < 0 || kvm_vcpu_init_cpuid(k->vcpu) < 0 ||
        kvm_vcpu_setup_pvh(k->vcpu, entry, 0) < 0)
        goto fail; /* kvm/ printed why */
    /* The APs: with the in-kernel irqchip KVM leaves them waiting for
     * INIT/SIPI, which the guest sends (guest_start_aps). */
    for (unsigned i = 1; i < k->ncpus; i++) {
        KvmVcpu *ap;

        if (kvm_vcpu_create(k->vm, i, &ap) < 0 || kvm_vcpu_init_cpuid(ap) < 0)
            goto fail;
    }
    return k;
fail:
    kit_free(k);
    return NULL;
}

void kit_free(Kit *k)
{
    if (!k)
        return;
    kvm_vm_destroy(k->vm);
    if (k->memory_as)
        address_space_destroy(k->memory_as);
    if (k->io_as)
        address_space_destroy(k->io_as);
    if (k->ctx) {
        if (k->have_ram && memory_region_get_container(&k->ram))
            memory_region_del_subregion(&k->sysmem, &k->ram);
        if (k->have_testdev && memory_region_get_container(&k->testdev))
            memory_region_del_subregion(&k->iomem, &k->testdev);
        if (k->have_ram)
            memory_region_destroy(&k->ram);
        if (k->have_testdev)
            memory_region_destroy(&k->testdev);
        if (k->have_sysmem)
            memory_region_destroy(&k->sysmem);
        if (k->have_iomem)
            memory_region_destroy(&k->iomem);
        memory_context_free(k->ctx);
    }
    free(k->syms);
    free(k->strtab);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

MemoryContext *kit_ctx(Kit *k)
{
    return k->ctx;
}
MemoryRegion *kit_sysmem(Kit *k)
{
    return &k->sysmem;
}
MemoryRegion *kit_iomem(Kit *k)
{
    return &k->iomem;
}
MemoryRegion *kit_ram(Kit *k)
{
    return &k->ram;
}
AddressSpace *kit_memory_as(Kit *k)
{
    return k->memory_as;
}
AddressSpace *kit_io_as(Kit *k)
{
    return k->io_as;
}
KvmVm *kit_vm(Kit *k)
{
    return k->vm;
}
KvmVcpu *kit_vcpu(Kit *k)
{
    return k->vcpu;
}
unsigned kit_ncpus(Kit *k)
{
    return k->ncpus;
}

uint64_t kit_pvh_entry(Kit *k)
{
    return k->pvh_entry;
}

uint64_t kit_symbol(Kit *k, const char *name)
{
    for (size_t i = 0; i < k->nr_syms; i++) {
        const Elf64_Sym *s = &k->syms[i];

        if (s->st_name < k->strtab_size && s->st_shndx != SHN_UNDEF &&
            !strcmp(k->strtab + s->st_name, name))
            return s->st_value;
    }
    return 0;
}

void *kit_ram_ptr(Kit *k, uint64_t gpa, uint64_t len)
{
    if (gpa > k->ram_size || len > k->ram_size - gpa)
        return NULL;
    return (uint8_t *)memory_region_get_ram_ptr(&k->ram) + gpa;
}

void *kit_guest_var(Kit *k, const char *name, uint64_t len)
{
    uint64_t gpa = kit_symbol(k, name);
    void *p = gpa ? kit_ram_ptr(k, gpa, len) : NULL;

    TEST_ASSERT(p, "guest symbol '%s' (%#llx) not found in RAM", name, (unsigned long long)gpa);
    return p;
}

void kit_set_sync_handler(Kit *k, KitSyncFn fn, void *opaque)
{
    pthread_mutex_lock(&k->lock);
    k->sync_fn = fn;
    k->sync_opaque = opaque;
    pthread_mutex_unlock(&k->lock);
}

static KvmEndReason fill_result(Kit *k, const KvmVmEnd *end, KitResult *r)
{
    KitResult tmp;

    if (!r)
        r = &tmp;
    memset(r, 0, sizeof(*r));
    r->reason = end->reason;
    snprintf(r->text, sizeof(r->text), "%s", end->text);
    pthread_mutex_lock(&k->lock);
    r->exited = k->exited;
    r->code = k->exit_code;
    if (k->line_len) { /* flush a partial console line */
        k->line[k->line_len] = 0;
        fprintf(stderr, "guest: %s\n", k->line);
        k->line_len = 0;
    }
    pthread_mutex_unlock(&k->lock);
    return r->reason;
}

KvmEndReason kit_run(Kit *k, KitResult *r)
{
    KvmVmEnd end;

    memset(&end, 0, sizeof(end));
    if (k->ncpus > 1) {
        end.reason = KVM_END_ERROR;
        end.vcpu = -1;
        snprintf(end.text, sizeof(end.text),
                 "kit_run runs vCPU 0 only: use kit_start/kit_wait with %u vCPUs", k->ncpus);
        fprintf(stderr, "kit: %s\n", end.text);
        return fill_result(k, &end, r);
    }
    kvm_vcpu_run_until_exit(k->vcpu, &end);
    return fill_result(k, &end, r);
}

int kit_start(Kit *k)
{
    return kvm_vm_start(k->vm);
}

KvmEndReason kit_wait(Kit *k, KitResult *r)
{
    KvmVmEnd end;

    memset(&end, 0, sizeof(end));
    kvm_vm_wait(k->vm, &end);
    return fill_result(k, &end, r);
}

const uint32_t *kit_reports(Kit *k, size_t *n)
{
    pthread_mutex_lock(&k->lock);
    *n = k->nr_reports;
    pthread_mutex_unlock(&k->lock);
    return k->reports;
}

unsigned kit_sync_count(Kit *k)
{
    unsigned n;

    pthread_mutex_lock(&k->lock);
    n = k->sync_count;
    pthread_mutex_unlock(&k->lock);
    return n;
}

void kit_dump_slots(Kit *k, FILE *f)
{
    KvmSlotInfo slots[64];
    size_t n = kvm_vm_get_slots(k->vm, slots, 64);

    fprintf(f, "KVM slots (%zu):\n", n);
    for (size_t i = 0; i < n && i < 64; i++)
        fprintf(f, "  slot %-3u gpa %#014llx size %#012llx flags %s%s %s\n", slots[i].slot,
                (unsigned long long)slots[i].gpa, (unsigned long long)slots[i].size,
                slots[i].flags & KVM_MEM_LOG_DIRTY_PAGES ? "L" : "-",
                slots[i].flags & KVM_MEM_READONLY ? "R" : "-", slots[i].name);
}

/* ---- recording device ---------------------------------------------------- */

static void rec_log(KitRecorder *r, uint64_t addr, uint64_t data, unsigned size, bool write)
{
    pthread_mutex_lock(&r->lock);
    if (r->n < KIT_REC_MAX)
        r->log[r->n] = (KitAccess){ .addr = addr, .data = data, .size = size, .write = write };
    r->n++;
    pthread_mutex_unlock(&r->lock);
}

static uint64_t rec_read(void *opaque, uint64_t addr, unsigned size)
{
    KitRecorder *r = opaque;
    uint64_t v = r->read_base + addr;

    if (size < 8)
        v &= (1ull << (size * 8)) - 1;
    rec_log(r, addr, v, size, false);
    return v;
}

static void rec_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    rec_log(opaque, addr, data, size, true);
}

static void rec_setup(KitRecorder *r, unsigned impl_max)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->ops = (MemoryRegionOps){
        .read = rec_read,
        .write = rec_write,
        .endianness = DEVICE_LITTLE_ENDIAN,
        .valid = { .min_access_size = 1, .max_access_size = 8 },
        .impl = { .min_access_size = 1, .max_access_size = impl_max ? impl_max : 8 },
    };
}

int kit_recorder_init(KitRecorder *r, Kit *k, const char *name, uint64_t size, unsigned impl_max)
{
    rec_setup(r, impl_max);
    return memory_region_init_io(&r->mr, k->ctx, &r->ops, r, name, size);
}

int kit_recorder_init_romd(KitRecorder *r, Kit *k, const char *name, uint64_t size)
{
    rec_setup(r, 0);
    return memory_region_init_rom_device(&r->mr, k->ctx, &r->ops, r, "kit", name, size);
}

size_t kit_recorder_count(KitRecorder *r)
{
    size_t n;

    pthread_mutex_lock(&r->lock);
    n = r->n;
    pthread_mutex_unlock(&r->lock);
    return n;
}

KitAccess kit_recorder_get(KitRecorder *r, size_t i)
{
    KitAccess a = { 0 };

    pthread_mutex_lock(&r->lock);
    if (i < r->n && i < KIT_REC_MAX)
        a = r->log[i];
    pthread_mutex_unlock(&r->lock);
    return a;
}

void kit_recorder_reset(KitRecorder *r)
{
    pthread_mutex_lock(&r->lock);
    r->n = 0;
    pthread_mutex_unlock(&r->lock);
}

void kit_recorder_destroy(KitRecorder *r)
{
    MemoryRegion *c = memory_region_get_container(&r->mr);

    if (c)
        memory_region_del_subregion(c, &r->mr);
    memory_region_destroy(&r->mr);
    pthread_mutex_destroy(&r->lock);
}

void kit_sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

uint64_t kit_wait_above(volatile uint64_t *counter, uint64_t than)
{
    uint64_t v;

    while ((v = *counter) <= than)
        kit_sleep_ms(1);
    return v;
}
