/* SPDX-License-Identifier: MIT */
/*
 * The state sections of docs/migration.md do not change under the code:
 * tests/state/golden/NAME.bin is the section that device case NAME
 * (devcases.c) saved when the fixture was written, by the encoders of
 * commit 4607e10 (each device's hand-written save, before field tables).
 * Today's code must save the same scenario to the same bytes, and load the
 * old bytes into a fresh device that then saves them unchanged (golden.h:
 * how the fixtures are rewritten, and when).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/state/devcases.h"
#include "tests/state/golden.h"

/* The scenario saves to the fixture's bytes. */
static void test_encoder_reproduces(void **unused)
{
    (void)unused;
    for (unsigned i = 0; i < dev_ncases; i++) {
        const DevCase *c = &dev_cases[i];
        DevInst d;
        size_t len;
        dev_open(&d, c, true);
        uint8_t *buf = dev_save(&d, &len);
        dev_close(&d, c);
        if (!golden_matches(c->name, buf, len))
            fail_msg("%s: the scenario saved other bytes than the fixture's", c->name);
        free(buf);
    }
}

/* The fixture loads into a fresh device, which saves it back unchanged. */
static void test_decoder_loads(void **unused)
{
    (void)unused;
    if (golden_writing())
        skip();
    for (unsigned i = 0; i < dev_ncases; i++) {
        const DevCase *c = &dev_cases[i];
        DevInst d;
        size_t len, glen;
        char err[256] = "";
        uint8_t *golden = golden_read(c->name, &glen);
        dev_open(&d, c, false);
        if (d.ops->load(d.dev, golden, glen, err, sizeof(err)) != 0)
            fail_msg("%s: the fixture was refused: %s", c->name, err);
        uint8_t *buf = dev_save(&d, &len);
        dev_close(&d, c);
        if (len != glen || memcmp(buf, golden, len))
            fail_msg("%s: loaded and saved again, the fixture's %zu bytes became %zu others",
                     c->name, glen, len);
        free(buf);
        free(golden);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoder_reproduces),
        cmocka_unit_test(test_decoder_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
