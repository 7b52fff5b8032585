/* SPDX-License-Identifier: MIT */
/*
 * exit-latency: the cost of a guest exit under strata against a bare
 * KVM_RUN loop, in one process, with the same guest ELF at CPL3:
 *   1. PIO and MMIO exits to a device region: raw KVM vs strata (kit +
 *      kvm/ + memory/ dispatch), µs per exit and the ratio;
 *   2. guest notifications through an ioeventfd (no exit; a host thread
 *      reads the eventfd) against exit-based ones;
 *   3. one dirty-log sync of a 1 GiB RAM region with logging on;
 *   4. with -S: the seccomp filter's cost: the same exits on a kvm/ vCPU
 *      thread (kvm_vm_start, as strata runs them) without and with the
 *      vCPU role's filter installed by the thread-start hook, alternating.
 * Usage: exit-latency [-n EXITS] [-e NOTIFICATIONS] [-r REPS] [-D] [-S] [-g GUEST.elf]
 * Figures are medians over REPS runs; every loop's handshake cost (an empty
 * loop) is subtracted.  Not a test: it asserts nothing about time.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench/exit-latency/bench.h"
#include "bench/exit-latency/plan.h"
#include "tests/guests/kit.h"
#include "vmm/sandbox.h"

#define NREPS_MAX 64

typedef struct Opts {
    uint32_t exits, notifications;
    unsigned reps;
    bool dirty;
    bool seccomp;
    const char *elf;
} Opts;

/* ---- the strata side's device --------------------------------------------- */

typedef struct BenchDev {
    MemoryRegion pio, mmio;
    uint64_t writes;
} BenchDev;

static uint64_t dev_read(void *opaque, uint64_t addr, unsigned size)
{
    return 0;
}

static void dev_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
    ((BenchDev *)opaque)->writes++;
}

static const MemoryRegionOps dev_ops = {
    .read = dev_read,
    .write = dev_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 4 },
    .impl = { .min_access_size = 1, .max_access_size = 4 },
};

typedef struct Reader {
    int efd, stopfd;
    uint64_t reads, total;
    pthread_t th;
} Reader;

/* Counts eventfd reads (each returns the writes since the last one). */
static void *reader_main(void *arg)
{
    Reader *r = arg;
    struct pollfd p[2] = { { .fd = r->efd, .events = POLLIN },
                           { .fd = r->stopfd, .events = POLLIN } };

    for (;;) {
        uint64_t v;

        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if ((p[0].revents & POLLIN) && read(r->efd, &v, sizeof(v)) == sizeof(v)) {
            r->reads++;
            r->total += v;
        }
        if (p[1].revents & POLLIN) {
            if (read(r->efd, &v, sizeof(v)) == sizeof(v)) { /* last one */
                r->reads++;
                r->total += v;
            }
            break;
        }
    }
    return NULL;
}

static void reader_start(Reader *r)
{
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    r->stopfd = eventfd(0, EFD_CLOEXEC);
    if (r->efd < 0 || r->stopfd < 0 || pthread_create(&r->th, NULL, reader_main, r)) {
        perror("exit-latency: eventfd reader");
        exit(1);
    }
}

static void reader_stop(Reader *r)
{
    uint64_t one = 1;

    if (write(r->stopfd, &one, sizeof(one)) != sizeof(one))
        perror("exit-latency: stop reader");
    pthread_join(r->th, NULL);
    close(r->efd);
    close(r->stopfd);
}

static uint32_t plan_sync(Kit *k, uint32_t phase, void *opaque)
{
    return bench_plan_sync(opaque, phase);
}

static int vcpu_filter_hook(void *opaque, KvmVcpu *vcpu)
{
    return sandbox_enter(opaque, SANDBOX_ROLE_VCPU);
}

/* How strata_run runs the vCPU. */
typedef enum { RUN_SYNC, RUN_THREAD, RUN_THREAD_SECCOMP } RunHow;

/* Runs `plan` on a fresh strata VM; ioeventfd reads are added to *reads.
 * RUN_THREAD*: on a kvm/ vCPU thread, with sb's vCPU filter if asked. */
static int strata_run(const char *elf, BenchPlan *plan, Reader *pio_r, Reader *mmio_r,
                      KvmVmStats *stats, RunHow how, const Sandbox *sb)
{
    Kit *k = kit_new(elf, NULL);
    BenchDev dev = { 0 };
    KitResult res;

    if (!k)
        return -1;
    if (memory_region_init_io(&dev.pio, kit_ctx(k), &dev_ops, &dev, "bench-pio", 8) < 0 ||
        memory_region_init_io(&dev.mmio, kit_ctx(k), &dev_ops, &dev, "bench-mmio", 0x1000) < 0)
        return -1;
    memory_region_transaction_begin(kit_ctx(k));
    memory_region_add_eventfd(&dev.pio, BENCH_PORT_EVT - BENCH_PORT, 4, false, 0, pio_r->efd);
    memory_region_add_eventfd(&dev.mmio, BENCH_MMIO_EVT, 4, false, 0, mmio_r->efd);
    memory_region_add_subregion(kit_iomem(k), BENCH_PORT, &dev.pio);
    memory_region_add_subregion(kit_sysmem(k), BENCH_MMIO, &dev.mmio);
    memory_region_transaction_commit(kit_ctx(k));

    kit_set_sync_handler(k, plan_sync, plan);
    if (how == RUN_SYNC) {
        kit_run(k, &res);
    } else {
        if (how == RUN_THREAD_SECCOMP)
            kvm_vm_set_thread_hook(kit_vm(k), vcpu_filter_hook, (void *)sb);
        if (kit_start(k) < 0) {
            kit_free(k);
            return -1;
        }
        kit_wait(k, &res);
    }
    kvm_vm_get_stats(kit_vm(k), stats);
    memory_region_transaction_begin(kit_ctx(k));
    memory_region_del_subregion(kit_iomem(k), &dev.pio);
    memory_region_del_subregion(kit_sysmem(k), &dev.mmio);
    memory_region_transaction_commit(kit_ctx(k));
    memory_region_destroy(&dev.pio);
    memory_region_destroy(&dev.mmio);
    kit_free(k);
    if (!res.exited || res.code) {
        fprintf(stderr, "exit-latency: strata guest ended with \"%s\"\n", res.text);
        return -1;
    }
    return 0;
}

/* Appends the measured steps of `from` to `to`. */
static void merge(BenchPlan *to, const BenchPlan *from)
{
    for (size_t i = 0; i < from->n; i++) {
        size_t j = bench_plan_add(to, from->steps[i].cmd, from->steps[i].count);

        to->steps[j].ns = from->steps[i].ns;
    }
}

/* ---- dirty log ----------------------------------------------------------- */

typedef struct DirtyRun {
    MemoryRegion big;
    Kit *k;
    /* per step: sync and reset times, dirty pages found */
    uint64_t sync_ns[NREPS_MAX * 3], reset_ns[NREPS_MAX * 3], found[NREPS_MAX * 3];
    uint32_t cmd[NREPS_MAX * 3], count[NREPS_MAX * 3];
    uint64_t guest_ns[NREPS_MAX * 3];
    size_t n;
} DirtyRun;

static void dirty_on_end(BenchPlan *p, BenchStep *s, void *opaque)
{
    DirtyRun *d = opaque;
    uint64_t t0, t1, t2, found = 0;

    if (d->n >= NREPS_MAX * 3)
        return;
    t0 = bench_now_ns();
    memory_region_sync_dirty_bitmap(&d->big);
    t1 = bench_now_ns();
    for (uint64_t a = 0; a < BENCH_DIRTY_SIZE; a += BENCH_PAGE)
        found += memory_region_get_dirty(&d->big, a, BENCH_PAGE, DIRTY_MEMORY_MIGRATION);
    t2 = bench_now_ns();
    memory_region_reset_dirty(&d->big, 0, BENCH_DIRTY_SIZE, DIRTY_MEMORY_MIGRATION);
    d->reset_ns[d->n] = bench_now_ns() - t2;
    d->sync_ns[d->n] = t1 - t0;
    d->found[d->n] = found;
    d->cmd[d->n] = s->cmd;
    d->count[d->n] = s->count;
    d->guest_ns[d->n] = s->ns;
    d->n++;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Median of vals[i] over the steps with the given count (cmd CMD_DIRTY or
 * CMD_NONE). */
static double dirty_median(const DirtyRun *d, const uint64_t *vals, uint32_t cmd, uint32_t count)
{
    uint64_t v[NREPS_MAX * 3];
    size_t n = 0;

    for (size_t i = 0; i < d->n; i++)
        if (d->cmd[i] == cmd && d->count[i] == count)
            v[n++] = vals[i];
    if (!n)
        return 0;
    qsort(v, n, sizeof(v[0]), cmp_u64);
    return n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2;
}

static int dirty_bench(const Opts *o)
{
    static DirtyRun d;
    BenchPlan plan = { 0 };
    KitOptions ko = { 0 };
    KitResult res;
    KvmSlotInfo slots[8];
    size_t nslots = 0, logged = 0;
    const uint32_t all = (uint32_t)(BENCH_DIRTY_SIZE / BENCH_PAGE), some = all / 100;
    unsigned reps = o->reps < 3 ? o->reps : 3;

    d.k = kit_new(o->elf, &ko);
    if (!d.k ||
        memory_region_init_ram(&d.big, kit_ctx(d.k), "bench", "dirty-1G", BENCH_DIRTY_SIZE) < 0)
        return -1;
    memory_region_add_subregion(kit_sysmem(d.k), BENCH_DIRTY_BASE, &d.big);
    if (memory_region_set_log(&d.big, true, DIRTY_MEMORY_MIGRATION) < 0)
        return -1;
    memory_region_sync_dirty_bitmap(&d.big);
    memory_region_reset_dirty(&d.big, 0, BENCH_DIRTY_SIZE, DIRTY_MEMORY_MIGRATION);
    nslots = kvm_vm_get_slots(kit_vm(d.k), slots, 8);
    for (size_t i = 0; i < nslots && i < 8; i++)
        logged += slots[i].gpa >= BENCH_DIRTY_BASE &&
                  slots[i].gpa < BENCH_DIRTY_BASE + BENCH_DIRTY_SIZE &&
                  (slots[i].flags & KVM_MEM_LOG_DIRTY_PAGES);

    for (unsigned r = 0; r < reps; r++) {
        bench_plan_add(&plan, CMD_DIRTY, all);
        bench_plan_add(&plan, CMD_DIRTY, some);
        bench_plan_add(&plan, CMD_NONE, 0);
    }
    plan.on_end = dirty_on_end;
    plan.opaque = &d;
    kit_set_sync_handler(d.k, plan_sync, &plan);
    kit_run(d.k, &res);
    if (!res.exited || res.code) {
        fprintf(stderr, "exit-latency: dirty guest ended with \"%s\"\n", res.text);
        return -1;
    }

    printf("\nDirty log: 1 GiB RAM region (%u pages), MIGRATION client, %zu logged KVM slot(s);\n"
           "each sync = 1 KVM_GET_DIRTY_LOG per slot (+1 KVM_CLEAR_DIRTY_LOG per slot when\n"
           "pages were dirty, manual-protect mode); median of %u\n",
           all, logged, reps);
    printf("  %-34s %12s %12s %12s %14s\n", "pages written by the guest", "sync", "reset",
           "dirty found", "guest µs/page");
    struct {
        const char *name;
        uint32_t cmd, count;
    } rows[] = {
        { "none (clean sync)", CMD_NONE, 0 },
        { "1% (every 100th page)", CMD_DIRTY, some },
        { "all", CMD_DIRTY, all },
    };
    for (size_t i = 0; i < 3; i++) {
        double g = dirty_median(&d, d.guest_ns, rows[i].cmd, rows[i].count);

        printf("  %-34s %9.3f ms %9.3f ms %12.0f ", rows[i].name,
               dirty_median(&d, d.sync_ns, rows[i].cmd, rows[i].count) / 1e6,
               dirty_median(&d, d.reset_ns, rows[i].cmd, rows[i].count) / 1e6,
               dirty_median(&d, d.found, rows[i].cmd, rows[i].count));
        if (rows[i].count)
            printf("%14.3f\n", g / 1e3 / rows[i].count);
        else
            printf("%14s\n", "-");
    }
    printf("  (guest µs/page: the write-protect fault of the first write to a page after a\n"
           "   sync, plus, on the first pass, populating the host memory behind it)\n");
    memory_region_set_log(&d.big, false, DIRTY_MEMORY_MIGRATION);
    memory_region_del_subregion(kit_sysmem(d.k), &d.big);
    memory_region_destroy(&d.big);
    kit_free(d.k);
    bench_plan_free(&plan);
    return 0;
}

/* ---- seccomp ---------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median_of(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0;
}

typedef struct SysLoop {
    const Sandbox *sb; /* NULL: no filter */
    unsigned n;
    double ioctl_ns, getpid_ns;
} SysLoop;

/* On a fresh thread (with the vCPU filter if asked): the cost of
 * ioctl(-1, KVM_RUN) (the filter's hot path; EBADF at once, so no VM is
 * involved) and of getpid (a syscall the filter allows unconditionally). */
static void *sysloop_main(void *arg)
{
    SysLoop *s = arg;

    if (s->sb && sandbox_enter(s->sb, SANDBOX_ROLE_VCPU) < 0)
        return (void *)1;
    uint64_t t0 = bench_now_ns();
    for (unsigned i = 0; i < s->n; i++)
        (void)!ioctl(-1, KVM_RUN, 0);
    uint64_t t1 = bench_now_ns();
    for (unsigned i = 0; i < s->n; i++)
        syscall(SYS_getpid);
    uint64_t t2 = bench_now_ns();
    s->ioctl_ns = (double)(t1 - t0) / s->n;
    s->getpid_ns = (double)(t2 - t1) / s->n;
    return NULL;
}

/* The filter's own cost per syscall, without KVM: alternating threads
 * without and with the vCPU filter, medians of `reps` runs. */
static int seccomp_syscall_bench(const Sandbox *sb, unsigned reps)
{
    double io[2][NREPS_MAX], gp[2][NREPS_MAX];

    for (unsigned r = 0; r < reps; r++) {
        for (int on = 0; on < 2; on++) {
            SysLoop s = { on ? sb : NULL, 200000, 0, 0 };
            pthread_t t;
            void *ret = (void *)1;

            if (pthread_create(&t, NULL, sysloop_main, &s) || pthread_join(t, &ret) || ret) {
                fprintf(stderr, "exit-latency: seccomp syscall loop failed\n");
                return -1;
            }
            io[on][r] = s.ioctl_ns;
            gp[on][r] = s.getpid_ns;
        }
    }
    double i0 = median_of(io[0], reps), i1 = median_of(io[1], reps);
    double g0 = median_of(gp[0], reps), g1 = median_of(gp[1], reps);
    printf("\nThe vCPU seccomp filter per syscall (ns, median of %u runs of 200000, no KVM)\n",
           reps);
    printf("  %-34s %11s %11s %11s\n", "", "no filter", "filter", "added ns");
    printf("  %-34s %11.1f %11.1f %11.1f\n", "ioctl(-1, KVM_RUN) (BPF runs)", i0, i1, i1 - i0);
    printf("  %-34s %11.1f %11.1f %11.1f\n", "getpid (allowed, kernel-cached)", g0, g1, g1 - g0);
    return 0;
}

/* The vCPU filter's cost per exit: vCPU threads without and with it, in
 * alternating runs (the filter is per thread: this process stays unfiltered). */
static int seccomp_bench(const Opts *o, const Sandbox *sb_in)
{
    const Sandbox sb = *sb_in;
    BenchPlan off_all = { 0 }, on_all = { 0 };
    Reader pio_r = { 0 }, mmio_r = { 0 };
    KvmVmStats st;
    double rp[NREPS_MAX], rm[NREPS_MAX], v[2][2];

    reader_start(&pio_r);
    reader_start(&mmio_r);
    for (unsigned r = 0; r < o->reps; r++) {
        for (int on = 0; on < 2; on++) {
            BenchPlan p = { 0 };

            bench_plan_add(&p, CMD_NONE, 0);
            bench_plan_add(&p, CMD_PIO, o->exits);
            bench_plan_add(&p, CMD_MMIO, o->exits);
            if (strata_run(o->elf, &p, &pio_r, &mmio_r, &st, on ? RUN_THREAD_SECCOMP : RUN_THREAD,
                           &sb) < 0)
                return -1;
            v[on][0] = bench_plan_ns_per_iter(&p, CMD_PIO);
            v[on][1] = bench_plan_ns_per_iter(&p, CMD_MMIO);
            merge(on ? &on_all : &off_all, &p);
            bench_plan_free(&p);
        }
        rp[r] = v[0][0] > 0 ? v[1][0] / v[0][0] : 0;
        rm[r] = v[0][1] > 0 ? v[1][1] / v[0][1] : 0;
    }
    reader_stop(&pio_r);
    reader_stop(&mmio_r);
    double p0 = bench_plan_ns_per_iter(&off_all, CMD_PIO) / 1e3;
    double p1 = bench_plan_ns_per_iter(&on_all, CMD_PIO) / 1e3;
    double m0 = bench_plan_ns_per_iter(&off_all, CMD_MMIO) / 1e3;
    double m1 = bench_plan_ns_per_iter(&on_all, CMD_MMIO) / 1e3;
    double bp0 = bench_plan_ns_per_iter_min(&off_all, CMD_PIO) / 1e3;
    double bp1 = bench_plan_ns_per_iter_min(&on_all, CMD_PIO) / 1e3;
    double bm0 = bench_plan_ns_per_iter_min(&off_all, CMD_MMIO) / 1e3;
    double bm1 = bench_plan_ns_per_iter_min(&on_all, CMD_MMIO) / 1e3;

    printf("\nThe vCPU seccomp filter (µs per exit on a kvm/ vCPU thread; median and best run)\n");
    printf("  %-20s %11s %11s %11s %11s %11s %11s\n", "", "no filter", "filter", "ratio",
           "best off", "best on", "ratio");
    printf("  %-20s %11.3f %11.3f %11.3f %11.3f %11.3f %11.3f\n", "PIO  outl", p0, p1,
           p0 > 0 ? p1 / p0 : 0, bp0, bp1, bp0 > 0 ? bp1 / bp0 : 0);
    printf("  %-20s %11.3f %11.3f %11.3f %11.3f %11.3f %11.3f\n", "MMIO 4-byte write", m0, m1,
           m0 > 0 ? m1 / m0 : 0, bm0, bm1, bm0 > 0 ? bm1 / bm0 : 0);
    printf("  %-20s %11s %11s %11.3f   (median of the %u per-pair ratios)\n", "PIO  outl", "", "",
           median_of(rp, o->reps), o->reps);
    printf("  %-20s %11s %11s %11.3f\n", "MMIO 4-byte write", "", "", median_of(rm, o->reps));
    printf("  (ratio = with/without; each exit makes one filtered syscall, KVM_RUN)\n");
    bench_plan_free(&off_all);
    bench_plan_free(&on_all);
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr, "usage: exit-latency [-n EXITS] [-e NOTIFICATIONS] [-r REPS] [-D] [-S] "
                    "[-g GUEST.elf]\n"
                    "  -D  skip the dirty-log benchmark (it needs 1 GiB of memory)\n"
                    "  -S  also measure the vCPU seccomp filter (vCPU thread without/with)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    Opts o = {
        .exits = 10000, .notifications = 50000, .reps = 11, .dirty = true, .elf = BENCH_GUEST_ELF
    };
    BenchPlan raw_all = { 0 }, strata_all = { 0 };
    Reader pio_r = { 0 }, mmio_r = { 0 };
    uint64_t raw_pio = 0, raw_mmio = 0, strata_ops_exits = 0;
    KvmVmStats st;
    const char *why;
    struct utsname u;
    int c;

    while ((c = getopt(argc, argv, "n:e:r:DSg:h")) != -1) {
        switch (c) {
        case 'n':
            o.exits = (uint32_t)strtoul(optarg, NULL, 0);
            break;
        case 'e':
            o.notifications = (uint32_t)strtoul(optarg, NULL, 0);
            break;
        case 'r':
            o.reps = (unsigned)strtoul(optarg, NULL, 0);
            break;
        case 'D':
            o.dirty = false;
            break;
        case 'S':
            o.seccomp = true;
            break;
        case 'g':
            o.elf = optarg;
            break;
        default:
            usage();
        }
    }
    if (!o.exits || !o.reps || o.reps > NREPS_MAX)
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    Sandbox sb;
    bool have_sb = false;
    if (o.seccomp && sandbox_forced_off()) {
        printf("seccomp: not measured (AddressSanitizer build: the sandbox is off there)\n");
    } else if (o.seccomp) {
        if (sandbox_init(&sb, SANDBOX_KILL, false) < 0 || seccomp_syscall_bench(&sb, o.reps) < 0)
            return 1;
        have_sb = true;
        printf("\n");
    }
    if ((why = kvm_probe())) {
        printf("exit-latency: /dev/kvm cannot run strata guests here: %s\n", why);
        return 77;
    }
    uname(&u);
    printf("exit-latency: host kernel %s; guest %s at CPL3\n", u.release, o.elf);
    printf("%u exits and %u notifications per run, median of %u runs, handshake cost subtracted\n",
           o.exits, o.notifications, o.reps);

    reader_start(&pio_r);
    reader_start(&mmio_r);
    for (unsigned r = 0; r < o.reps; r++) {
        BenchPlan raw = { 0 }, strata = { 0 };

        bench_plan_add(&raw, CMD_NONE, 0);
        bench_plan_add(&raw, CMD_PIO, o.exits);
        bench_plan_add(&raw, CMD_MMIO, o.exits);
        if (raw_run(o.elf, &raw, &raw_pio, &raw_mmio) < 0)
            return 1;
        bench_plan_add(&strata, CMD_NONE, 0);
        bench_plan_add(&strata, CMD_PIO, o.exits);
        bench_plan_add(&strata, CMD_MMIO, o.exits);
        bench_plan_add(&strata, CMD_PIO_EVT, o.notifications);
        bench_plan_add(&strata, CMD_MMIO_EVT, o.notifications);
        if (strata_run(o.elf, &strata, &pio_r, &mmio_r, &st, RUN_SYNC, NULL) < 0)
            return 1;
        strata_ops_exits += st.exits_io + st.exits_mmio;
        merge(&raw_all, &raw);
        merge(&strata_all, &strata);
        bench_plan_free(&raw);
        bench_plan_free(&strata);
    }
    reader_stop(&pio_r);
    reader_stop(&mmio_r);

    double raw_p = bench_plan_ns_per_iter(&raw_all, CMD_PIO) / 1e3;
    double raw_m = bench_plan_ns_per_iter(&raw_all, CMD_MMIO) / 1e3;
    double s_p = bench_plan_ns_per_iter(&strata_all, CMD_PIO) / 1e3;
    double s_m = bench_plan_ns_per_iter(&strata_all, CMD_MMIO) / 1e3;
    double e_p = bench_plan_ns_per_iter(&strata_all, CMD_PIO_EVT) / 1e3;
    double e_m = bench_plan_ns_per_iter(&strata_all, CMD_MMIO_EVT) / 1e3;
    uint64_t want = (uint64_t)o.notifications * o.reps;

    double raw_p0 = bench_plan_ns_per_iter_min(&raw_all, CMD_PIO) / 1e3;
    double raw_m0 = bench_plan_ns_per_iter_min(&raw_all, CMD_MMIO) / 1e3;
    double s_p0 = bench_plan_ns_per_iter_min(&strata_all, CMD_PIO) / 1e3;
    double s_m0 = bench_plan_ns_per_iter_min(&strata_all, CMD_MMIO) / 1e3;

    printf("\nExits to a device region (µs per exit round trip; median and best run)\n");
    printf("  %-20s %11s %11s %11s %11s %11s %11s\n", "", "raw median", "strata med", "ratio",
           "raw best", "strata best", "ratio");
    printf("  %-20s %11.3f %11.3f %11.3f %11.3f %11.3f %11.3f\n", "PIO  outl", raw_p, s_p,
           raw_p > 0 ? s_p / raw_p : 0, raw_p0, s_p0, raw_p0 > 0 ? s_p0 / raw_p0 : 0);
    printf("  %-20s %11.3f %11.3f %11.3f %11.3f %11.3f %11.3f\n", "MMIO 4-byte write", raw_m, s_m,
           raw_m > 0 ? s_m / raw_m : 0, raw_m0, s_m0, raw_m0 > 0 ? s_m0 / raw_m0 : 0);
    printf("  (ratio = strata/raw; runs alternate raw and strata so both see the same load)\n");
    printf("  (raw loop: %llu PIO + %llu MMIO exits in all; strata: %llu IO/MMIO exits in all)\n",
           (unsigned long long)raw_pio, (unsigned long long)raw_mmio,
           (unsigned long long)strata_ops_exits);

    printf("\nGuest notifications under strata (µs per guest write, notifications/s)\n");
    printf("  %-26s %12s %14s %24s\n", "", "µs/notif", "notif/s", "host eventfd reads");
    printf("  %-26s %12.3f %14.0f %24s\n", "PIO  exit to ops", s_p, s_p > 0 ? 1e6 / s_p : 0, "-");
    printf("  %-26s %12.3f %14.0f %13llu (%llu/%llu)\n", "PIO  ioeventfd", e_p,
           e_p > 0 ? 1e6 / e_p : 0, (unsigned long long)pio_r.reads,
           (unsigned long long)pio_r.total, (unsigned long long)want);
    printf("  %-26s %12.3f %14.0f %24s\n", "MMIO exit to ops", s_m, s_m > 0 ? 1e6 / s_m : 0, "-");
    printf("  %-26s %12.3f %14.0f %13llu (%llu/%llu)\n", "MMIO ioeventfd", e_m,
           e_m > 0 ? 1e6 / e_m : 0, (unsigned long long)mmio_r.reads,
           (unsigned long long)mmio_r.total, (unsigned long long)want);
    printf("  (an eventfd read returns every write since the previous read: reads <= writes)\n");
    if (pio_r.total != want || mmio_r.total != want)
        printf("  WARNING: the eventfds counted %llu and %llu writes, expected %llu each\n",
               (unsigned long long)pio_r.total, (unsigned long long)mmio_r.total,
               (unsigned long long)want);
    bench_plan_free(&raw_all);
    bench_plan_free(&strata_all);

    if (o.seccomp && have_sb && seccomp_bench(&o, &sb) < 0)
        return 1;
    if (o.dirty && dirty_bench(&o) < 0)
        return 1;
    return 0;
}
