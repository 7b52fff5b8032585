/* SPDX-License-Identifier: MIT */
/* A fake KVM VM for fuzzing the real QMP command handlers (see fake_vm.c). */
#ifndef STRATA_TESTS_FUZZ_FAKE_VM_H
#define STRATA_TESTS_FUZZ_FAKE_VM_H

#include "vmm/migration/migration.h"
#include "vmm/vmm.h"

#define FAKE_VM_VCPUS 2

/* What the command handlers asked of the fake VM. */
typedef struct FakeVm {
    unsigned pauses, resumes, end_requests, resets;
} FakeVm;

extern FakeVm fake_vm;

/* Zeroes the counters. */
void fake_vm_reset_counters(void);

#endif /* STRATA_TESTS_FUZZ_FAKE_VM_H */
