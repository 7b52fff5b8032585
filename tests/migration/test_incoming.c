/* SPDX-License-Identifier: MIT */
/*
 * migration.incoming-check: when QMP migrate-incoming may start the
 * incoming side (mig_incoming_refusal, vmm/migration/incoming-check.c): the
 * destination's mode, then the URI.  No /dev/kvm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/migration/migration.h"

static const char *refusal(MigIncomingMode mode, const char *uri)
{
    static char buf[400];
    memset(buf, 0, sizeof(buf));
    return mig_incoming_refusal(mode, uri, buf, sizeof(buf));
}

static void expect_refused(MigIncomingMode mode, const char *uri, const char *want)
{
    const char *why = refusal(mode, uri);
    if (!why || !strstr(why, want))
        fail_msg("mode %d uri '%s': expected a refusal with '%s', got '%s'", (int)mode,
                 uri ? uri : "(none)", want, why ? why : "(allowed)");
}

/* A deferred destination takes each kind of URI QEMU spells. */
static void test_deferred_accepts(void **state)
{
    (void)state;
    const char *ok[] = { "tcp:127.0.0.1:4444", "tcp:[::1]:4444",     "tcp:localhost:1",
                         "tcp:10.0.0.5:65535", "unix:/run/mig.sock", "file:/var/s.snap" };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (refusal(MIG_INCOMING_DEFERRED, ok[i]))
            fail_msg("'%s' refused: %s", ok[i], refusal(MIG_INCOMING_DEFERRED, ok[i]));
}

/* Bad URIs are refused naming the parameter, whatever they hold. */
static void test_bad_uris(void **state)
{
    (void)state;
    expect_refused(MIG_INCOMING_DEFERRED, NULL, "'uri' is missing");
    expect_refused(MIG_INCOMING_DEFERRED, "", "Parameter 'uri'");
    expect_refused(MIG_INCOMING_DEFERRED, "defer", "command line");
    expect_refused(MIG_INCOMING_DEFERRED, "exec:cat", "expected tcp:HOST:PORT");
    expect_refused(MIG_INCOMING_DEFERRED, "tcp:host", "port");
    expect_refused(MIG_INCOMING_DEFERRED, "tcp:h:0", "port");
    expect_refused(MIG_INCOMING_DEFERRED, "tcp:h:65536", "port");
    expect_refused(MIG_INCOMING_DEFERRED, "unix:", "unix:PATH");
    expect_refused(MIG_INCOMING_DEFERRED, "file:", "file:PATH");
    char longpath[200] = "unix:/";
    memset(longpath + 6, 'a', 150);
    expect_refused(MIG_INCOMING_DEFERRED, longpath, "108 bytes");
    /* a huge hostile URI is cut in the message, never overflows it */
    static char huge[5000];
    memset(huge, 'x', sizeof(huge) - 1);
    const char *why = refusal(MIG_INCOMING_DEFERRED, huge);
    assert_non_null(why);
    assert_true(strlen(why) < 400);
}

/* Only a deferred destination, and only once. */
static void test_modes(void **state)
{
    (void)state;
    expect_refused(MIG_INCOMING_NONE, "tcp:127.0.0.1:4444", "--incoming defer");
    expect_refused(MIG_INCOMING_STARTED, "tcp:127.0.0.1:4444", "started already");
    /* the mode is checked before the URI: the error says what is wrong first */
    expect_refused(MIG_INCOMING_NONE, "bogus", "not started as a migration destination");
    expect_refused(MIG_INCOMING_STARTED, NULL, "started already");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deferred_accepts),
        cmocka_unit_test(test_bad_uris),
        cmocka_unit_test(test_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
