/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the migration destination's loader (mig_load_fd,
 * vmm/migration/destination.c) on hostile streams, into one fake destination
 * machine (fake_mig.c: real RAM region and devices, fake KVM).
 *
 * Input: one control byte, then the bytes the "source" sends (stream
 * header, records, and the GO!! answer if it gets that far).  Unless
 * control bit 0 is set, every whole record's CRC-32 is recomputed before
 * sending, and unless bit 1 (or 0) is set also the CRC of the section
 * inside VMSTATE / VCPU / DEVICE payloads, so that mutations reach the
 * parsers behind the checksums; bit 2: a destination KVM that takes no
 * XSAVE area (installing a vCPU that has one fails).  The writer
 * half-closes the socket after the input, so the loader sees EOF rather
 * than waiting for its no-progress timeout.
 *
 * Aborts (besides ASan/UBSan): the harness failing, more KVM installs than
 * the machine has VMs/vCPUs, a success without every piece installed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fake_mig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (fake_mig_init() < 0)
        abort();
    uint8_t ctl = data[0];
    data++, size--;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    if (!(ctl & 1))
        mig_fix_crcs(buf, size, !(ctl & 2));
    fake_mig_reset();
    if (ctl & 4)
        fake_mig.xsave_max = 0;
    FakeMigResult res;
    if (fake_mig_load(buf, size, FAKE_MIG_PEER_STREAM, false, &res) < 0)
        abort();
    if (fake_mig.vm_sets > 1 || fake_mig.vcpu_sets > FAKE_MIG_CPUS) {
        fprintf(stderr, "fuzz_migration: %u VM / %u vCPU installs\n", fake_mig.vm_sets,
                fake_mig.vcpu_sets);
        abort();
    }
    if (res.ret == 0 && (fake_mig.vm_sets != 1 || fake_mig.vcpu_sets != FAKE_MIG_CPUS)) {
        fprintf(stderr, "fuzz_migration: loaded with %u VM / %u vCPU installs\n", fake_mig.vm_sets,
                fake_mig.vcpu_sets);
        abort();
    }
    free(buf);
    return 0;
}
