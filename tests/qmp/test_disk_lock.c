/* SPDX-License-Identifier: MIT */
/*
 * Disk image locks (vmm/disk-lock.h) on a temporary file: two open file
 * descriptions of this process and a second process, as two strata on
 * one image would be: writers exclude everyone, readers share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/disk-lock.h"

static char path[64];
static char err[1024];

static int make_image(void **state)
{
    snprintf(path, sizeof(path), "/tmp/strata-lock-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "disk", 4), 4);
    close(fd);
    return 0;
}

static int remove_image(void **state)
{
    unlink(path);
    return 0;
}

/* disk_lock in a child process: 0 if it got the lock, 1 if refused with
 * QEMU's message, 2 otherwise. */
static int lock_in_child(bool readonly)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char e[1024];
        int fd = disk_lock(path, readonly, NULL, e, sizeof(e));
        _exit(fd >= 0                                                           ? 0
              : strstr(e, "\"write\" lock\nIs another process using the image") ? 1
                                                                                : 2);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 3;
}

static void expect_refused(bool readonly)
{
    bool unlocked = true;
    assert_int_equal(disk_lock(path, readonly, &unlocked, err, sizeof(err)), -1);
    char want[512];
    snprintf(
        want, sizeof(want),
        "disk path=%s: Failed to get %s\"write\" lock\nIs another process using the image [%s]?",
        path, readonly ? "shared " : "", path);
    assert_string_equal(err, want);
}

static void test_writer_excludes(void **state)
{
    bool unlocked = true;
    int w = disk_lock(path, false, &unlocked, err, sizeof(err));
    assert_true(w >= 0);
    assert_false(unlocked); /* /tmp has OFD locks */
    /* a second open file description of this process, then another process */
    expect_refused(false);
    expect_refused(true);
    assert_int_equal(lock_in_child(false), 1);
    assert_int_equal(lock_in_child(true), 1);
    /* closing releases it */
    close(w);
    w = disk_lock(path, false, NULL, err, sizeof(err));
    assert_true(w >= 0);
    close(w);
    assert_int_equal(lock_in_child(false), 0);
}

static void test_readers_share(void **state)
{
    int r1 = disk_lock(path, true, NULL, err, sizeof(err));
    int r2 = disk_lock(path, true, NULL, err, sizeof(err));
    assert_true(r1 >= 0 && r2 >= 0);
    assert_int_equal(lock_in_child(true), 0);
    expect_refused(false);
    assert_int_equal(lock_in_child(false), 1);
    close(r1);
    expect_refused(false); /* r2 still reads */
    close(r2);
    int w = disk_lock(path, false, NULL, err, sizeof(err));
    assert_true(w >= 0);
    close(w);
}

static void test_missing_file(void **state)
{
    assert_int_equal(disk_lock("/nonexistent/strata.img", true, NULL, err, sizeof(err)), -1);
    assert_string_equal(err, "disk path=/nonexistent/strata.img: No such file or directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_excludes),
        cmocka_unit_test(test_readers_share),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, make_image, remove_image);
}
