/* SPDX-License-Identifier: MIT */
/*
 * Smoke test of the kit: the guest reaches CPL3 in long mode, does port I/O
 * there, reads the test device, reports values, prints, syncs with the host
 * and exits with 0; the kit entered it through its PVH note.
 */
#ifdef STRATA_GUEST
#include "guest.h"

volatile uint64_t guest_counter;

int guest_main(void)
{
    uint16_t cs;

    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    guest_report(cs & 3); /* CPL */
    GUEST_ASSERT(inl(TESTDEV_PORT_REPORT) == TESTDEV_MAGIC);
    guest_report(0x12345678);
    guest_puts("hello from CPL3\n");
    GUEST_ASSERT(guest_sync(1) == 100);
    GUEST_ASSERT(guest_sync(2) == 200);
    guest_counter = 0xfeedfacecafe;
    return 0;
}

#else
#include "tests/guests/kit.h"

static uint32_t on_sync(Kit *k, uint32_t phase, void *opaque)
{
    return phase * 100;
}

int main(void)
{
    Kit *k;
    KitResult r;
    const uint32_t *rep;
    size_t n;

    kit_require_kvm();
    k = kit_new(GUEST_ELF, NULL);
    TEST_ASSERT(k, "kit_new failed");
    TEST_ASSERT(kit_pvh_entry(k) && kit_pvh_entry(k) == kit_symbol(k, "pvh_entry"),
                "PVH note entry %#llx, pvh_entry at %#llx", (unsigned long long)kit_pvh_entry(k),
                (unsigned long long)kit_symbol(k, "pvh_entry"));
    kit_set_sync_handler(k, on_sync, NULL);
    kit_run(k, &r);
    TEST_ASSERT_GUEST_PASSED(&r);
    TEST_ASSERT(r.reason == KVM_END_REQUESTED, "end reason %d (%s)", r.reason, r.text);
    rep = kit_reports(k, &n);
    TEST_ASSERT(n == 2, "%zu reports", n);
    TEST_ASSERT(rep[0] == 3, "guest_main ran at CPL%u, not 3", rep[0]);
    TEST_ASSERT(rep[1] == 0x12345678, "report %#x", rep[1]);
    TEST_ASSERT(kit_sync_count(k) == 2, "%u syncs", kit_sync_count(k));
    TEST_ASSERT(*(volatile uint64_t *)kit_guest_var(k, "guest_counter", 8) == 0xfeedfacecafe,
                "guest variable not seen by the host");
    kit_free(k);
    printf("PASS: guest ran at CPL3, reported, synced, exited 0\n");
    return 0;
}
#endif
