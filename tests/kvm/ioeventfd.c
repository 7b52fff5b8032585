/* SPDX-License-Identifier: MIT */
/*
 * ioeventfds: a guest write that matches one signals its eventfd inside the
 * kernel (no userspace exit, ops not called); with datamatch only the
 * matching value does, other values exit to ops; after del_eventfd the same
 * write exits to ops again.  MMIO and PIO.
 */
#define DEV_BASE 0x71000000ull
#define DEV_SIZE 0x1000ull
#define DB_ANY 0x000   /* no datamatch, 4 bytes */
#define DB_MATCH 0x010 /* datamatch 0x42, 4 bytes */
#define PIO_BASE 0x400 /* PIO doorbell: 2 bytes, no datamatch */
#define N_ANY 10
#define N_MATCH 5
#define N_MISS 3
#define N_PIO 7

#ifdef STRATA_GUEST
#include "guest.h"

int guest_main(void)
{
    for (int i = 0; i < N_ANY; i++)
        mmio_write32(DEV_BASE + DB_ANY, (uint32_t)i);
    for (int i = 0; i < N_MATCH; i++)
        mmio_write32(DEV_BASE + DB_MATCH, 0x42);
    for (int i = 0; i < N_MISS; i++)
        mmio_write32(DEV_BASE + DB_MATCH, 0x43);
    for (int i = 0; i < N_PIO; i++)
        outw(PIO_BASE, (uint16_t)i);
    guest_sync(1); /* host: counts, then del_eventfd */
    mmio_write32(DEV_BASE + DB_ANY, 0x77);
    mmio_write32(DEV_BASE + DB_MATCH, 0x42);
    outw(PIO_BASE, 0x88);
    guest_sync(2);
    return 0;
}

#else
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "tests/guests/kit.h"

struct state {
    KitRecorder dev, pio;
    int fd_any, fd_match, fd_pio;
    KvmVmStats base;
};

/* Reads (and resets) an eventfd's counter without blocking. */
static uint64_t drain(int fd)
{
    uint64_t v = 0;

    if (read(fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

static uint32_t on_sync(Kit *k, uint32_t phase, void *opaque)
{
    struct state *st = opaque;
    KvmVmStats now;
    uint64_t any, match, pio;

    kvm_vm_get_stats(kit_vm(k), &now);
    any = drain(st->fd_any);
    match = drain(st->fd_match);
    pio = drain(st->fd_pio);
    if (phase == 1) {
        printf("eventfd counts: any=%llu match=%llu pio=%llu; ops calls: mmio=%zu pio=%zu; "
               "MMIO exits %llu\n",
               (unsigned long long)any, (unsigned long long)match, (unsigned long long)pio,
               kit_recorder_count(&st->dev), kit_recorder_count(&st->pio),
               (unsigned long long)(now.exits_mmio - st->base.exits_mmio));
        TEST_ASSERT(any == N_ANY, "no-datamatch eventfd fired %llu times", (unsigned long long)any);
        TEST_ASSERT(match == N_MATCH, "datamatch eventfd fired %llu times",
                    (unsigned long long)match);
        TEST_ASSERT(pio == N_PIO, "PIO eventfd fired %llu times", (unsigned long long)pio);
        /* Only the N_MISS non-matching writes reached userspace. */
        TEST_ASSERT(now.exits_mmio - st->base.exits_mmio == N_MISS, "%llu MMIO exits",
                    (unsigned long long)(now.exits_mmio - st->base.exits_mmio));
        TEST_ASSERT(kit_recorder_count(&st->dev) == N_MISS, "%zu ops calls",
                    kit_recorder_count(&st->dev));
        for (int i = 0; i < N_MISS; i++) {
            KitAccess a = kit_recorder_get(&st->dev, (size_t)i);

            TEST_ASSERT(a.write && a.addr == DB_MATCH && a.data == 0x43, "miss %d", i);
        }
        TEST_ASSERT(kit_recorder_count(&st->pio) == 0, "PIO ops called");
        kit_recorder_reset(&st->dev);
        TEST_ASSERT(memory_region_del_eventfd(&st->dev.mr, DB_ANY, 4, false, 0, st->fd_any) == 0,
                    "del any");
        TEST_ASSERT(memory_region_del_eventfd(&st->dev.mr, DB_MATCH, 4, true, 0x42, st->fd_match) ==
                        0,
                    "del match");
        TEST_ASSERT(memory_region_del_eventfd(&st->pio.mr, 0, 2, false, 0, st->fd_pio) == 0,
                    "del pio");
        TEST_ASSERT(memory_region_del_eventfd(&st->pio.mr, 0, 2, false, 0, st->fd_pio) == -ENOENT,
                    "second del");
        kvm_vm_get_stats(kit_vm(k), &now);
        TEST_ASSERT(now.ioeventfds == 0, "%llu ioeventfds still assigned",
                    (unsigned long long)now.ioeventfds);
    } else {
        TEST_ASSERT(any == 0 && match == 0 && pio == 0, "eventfd fired after del_eventfd");
        TEST_ASSERT(kit_recorder_count(&st->dev) == 2 && kit_recorder_count(&st->pio) == 1,
                    "writes after del_eventfd did not reach ops: mmio %zu pio %zu",
                    kit_recorder_count(&st->dev), kit_recorder_count(&st->pio));
        TEST_ASSERT(kit_recorder_get(&st->dev, 0).data == 0x77 &&
                        kit_recorder_get(&st->dev, 1).data == 0x42 &&
                        kit_recorder_get(&st->pio, 0).data == 0x88,
                    "ops got the wrong data");
    }
    kvm_vm_get_stats(kit_vm(k), &st->base);
    return 0;
}

int main(void)
{
    Kit *k;
    KitResult r;
    static struct state st;
    KvmVmStats s;

    kit_require_kvm();
    k = kit_new(GUEST_ELF, NULL);
    TEST_ASSERT(k, "kit_new failed");
    st.fd_any = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    st.fd_match = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    st.fd_pio = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    TEST_ASSERT(st.fd_any >= 0 && st.fd_match >= 0 && st.fd_pio >= 0, "eventfd");
    TEST_ASSERT(kit_recorder_init(&st.dev, k, "doorbells", DEV_SIZE, 4) == 0, "dev");
    TEST_ASSERT(kit_recorder_init(&st.pio, k, "piodoorbell", 4, 4) == 0, "pio dev");
    memory_region_transaction_begin(kit_ctx(k));
    TEST_ASSERT(memory_region_add_eventfd(&st.dev.mr, DB_ANY, 4, false, 0, st.fd_any) == 0,
                "add any");
    TEST_ASSERT(memory_region_add_eventfd(&st.dev.mr, DB_MATCH, 4, true, 0x42, st.fd_match) == 0,
                "add match");
    TEST_ASSERT(memory_region_add_eventfd(&st.pio.mr, 0, 2, false, 0, st.fd_pio) == 0, "add pio");
    memory_region_add_subregion(kit_sysmem(k), DEV_BASE, &st.dev.mr);
    memory_region_add_subregion(kit_iomem(k), PIO_BASE, &st.pio.mr);
    memory_region_transaction_commit(kit_ctx(k));
    kvm_vm_get_stats(kit_vm(k), &s);
    TEST_ASSERT(s.ioeventfds == 3, "%llu ioeventfds assigned", (unsigned long long)s.ioeventfds);
    st.base = s;

    kit_set_sync_handler(k, on_sync, &st);
    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);
    TEST_ASSERT(kit_sync_count(k) == 2, "the guest did not reach every phase");

    kit_recorder_destroy(&st.dev);
    kit_recorder_destroy(&st.pio);
    close(st.fd_any);
    close(st.fd_match);
    close(st.fd_pio);
    kit_free(k);
    printf("PASS\n");
    return 0;
}
#endif
