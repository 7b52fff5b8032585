/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target (STRATA_FUZZ=ON): any text fed to the replay — parser,
 * model inference, the memory API build, strata's printer and the
 * comparison — must end in PASS or FAIL without a crash, a leak or
 * undefined behaviour.  Seeded with the fixtures.
 */
#include <stddef.h>
#include <stdint.h>

#include "tests/replay/replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer's entry point: replays data as a fixture; always returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ReplayRunOpts opts = { 0 };

    if (size > (1u << 20)) {
        return 0;
    }
    replay_run_text("fuzz", (const char *)data, size, &opts, NULL);
    return 0;
}
