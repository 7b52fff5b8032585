/* SPDX-License-Identifier: MIT */
/*
 * The io_uring rings strata makes (the device event loop's and a disk's),
 * made by the real evloop_new / virtio_blk_init: what hijacked code could
 * submit through them is refused by the kernel's ring restrictions
 * (IORING_REGISTER_RESTRICTIONS, which seccomp cannot see: the work is
 * done by the kernel, not by a syscall of the thread), and what the device
 * needs still works.  A refused SQE completes with -EACCES; a refused
 * io_uring_register answers -EACCES.  Also: only the loop's own thread
 * enters its ring (the others may not: vmm/sandbox.c), and where the kernel
 * cannot restrict a ring none is used.  No /dev/kvm.  Skipped (77) where
 * the kernel has no io_uring or no ring restrictions.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <liburing.h>

#include "devices/evloop.h"
#include "devices/virtio-blk.h"
#include "tests/virtio/vtest.h"

#define DISK_SECTORS 64
#define HDR VT_BUFS
#define DATA (VT_BUFS + 0x1000)
#define STATUS (VT_BUFS + 0x800)
#define TAG 0x5afe0000u

typedef enum Op {
    OP_OPENAT,
    OP_SOCKET,
    OP_CONNECT,
    OP_SENDMSG,
    OP_READ,
    OP_READV,
    OP_READV_FIXED,
    OP_WRITEV_FIXED
} Op;

static const char *const op_names[] = {
    "OPENAT",
    "SOCKET",
    "CONNECT",
    "SENDMSG",
    "READ",
    "READV",
    "READV (fixed file 0)",
    "WRITEV (fixed file 0)",
};

/* A scratch file with known bytes; the fd is not known to any ring. */
typedef struct Scratch {
    char path[64];
    int fd;
} Scratch;

static void scratch_new(Scratch *s, size_t bytes)
{
    snprintf(s->path, sizeof(s->path), "/tmp/strata-uring-XXXXXX");
    s->fd = mkstemp(s->path);
    assert_true(s->fd >= 0);
    uint8_t buf[512];
    for (size_t off = 0; off < bytes; off += sizeof(buf)) {
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = (uint8_t)(off + i + 1);
        assert_int_equal(pwrite(s->fd, buf, sizeof(buf), (off_t)off), (ssize_t)sizeof(buf));
    }
}

static void scratch_free(Scratch *s)
{
    close(s->fd);
    unlink(s->path);
}

/*
 * Submits one `op` through `ring` (as hijacked code on a thread allowed
 * io_uring_enter could) and returns its completion's result.  fd: the
 * file READ/READV/SENDMSG use.  A success that made an fd is closed.
 */
static int submit_one(struct io_uring *ring, Op op, int fd)
{
    static char buf[64];
    static struct iovec iov = { buf, sizeof(buf) };
    static struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    static struct sockaddr_un sun = { .sun_family = AF_UNIX,
                                      .sun_path = "/tmp/strata-uring-nosuch.sock" };
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    assert_non_null(sqe);
    switch (op) {
    case OP_OPENAT:
        io_uring_prep_openat(sqe, AT_FDCWD, "/etc/hostname", O_RDONLY | O_CLOEXEC, 0);
        break;
    case OP_SOCKET:
        io_uring_prep_socket(sqe, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, 0);
        break;
    case OP_CONNECT:
        io_uring_prep_connect(sqe, fd, (struct sockaddr *)&sun, sizeof(sun));
        break;
    case OP_SENDMSG:
        io_uring_prep_sendmsg(sqe, fd, &msg, MSG_DONTWAIT);
        break;
    case OP_READ:
        io_uring_prep_read(sqe, fd, buf, sizeof(buf), 0);
        break;
    case OP_READV:
        io_uring_prep_readv(sqe, fd, &iov, 1, 0);
        break;
    case OP_READV_FIXED:
        io_uring_prep_readv(sqe, 0, &iov, 1, 0);
        sqe->flags |= IOSQE_FIXED_FILE;
        break;
    case OP_WRITEV_FIXED:
        io_uring_prep_writev(sqe, 0, &iov, 1, 0);
        sqe->flags |= IOSQE_FIXED_FILE;
        break;
    }
    io_uring_sqe_set_data64(sqe, TAG + op);
    assert_int_equal(io_uring_submit(ring), 1);
    struct io_uring_cqe *cqe = NULL;
    struct __kernel_timespec ts = { .tv_sec = 5 };
    assert_int_equal(io_uring_wait_cqe_timeout(ring, &cqe, &ts), 0);
    assert_int_equal(io_uring_cqe_get_data64(cqe), TAG + op);
    int res = cqe->res;
    io_uring_cqe_seen(ring, cqe);
    if (res >= 0 && (op == OP_OPENAT || op == OP_SOCKET))
        close(res);
    return res;
}

/* Asserts that `op` completes with -EACCES (refused by the restrictions). */
static void expect_refused(struct io_uring *ring, const char *which, Op op, int fd)
{
    int res = submit_one(ring, op, fd);
    if (res != -EACCES)
        fail_msg("%s ring: %s completed with %d (%s), want -EACCES: the ring is not "
                 "restricted to the opcodes it needs",
                 which, op_names[op], res, res < 0 ? strerror(-res) : "success");
}

/* Asserts that registering anything more on the enabled ring is refused. */
static void expect_register_refused(struct io_uring *ring, const char *which, int fd)
{
    int r = io_uring_register_files(ring, &fd, 1);
    if (r != -EACCES)
        fail_msg("%s ring: IORING_REGISTER_FILES answered %d, want -EACCES", which, r);
    int dummy = -1;
    r = io_uring_register_files_update(ring, 0, &dummy, 1);
    if (r != -EACCES)
        fail_msg("%s ring: IORING_REGISTER_FILES_UPDATE answered %d, want -EACCES", which, r);
}

static void count_event(void *opaque, uint32_t events)
{
    (void)events;
    (*(int *)opaque)++;
}

static void test_evloop_ring(void **state)
{
    (void)state;
    Evloop *l = evloop_new();
    assert_non_null(l);
    struct io_uring *ring = evloop_ring(l);
    assert_non_null(ring);
    Scratch s;
    scratch_new(&s, 512);
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp), 0);
    int us = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(us >= 0);

    expect_refused(ring, "event loop", OP_OPENAT, -1);
    expect_refused(ring, "event loop", OP_SOCKET, -1);
    expect_refused(ring, "event loop", OP_CONNECT, us);
    expect_refused(ring, "event loop", OP_SENDMSG, sp[0]);
    char c;
    assert_int_equal(recv(sp[1], &c, 1, MSG_DONTWAIT), -1); /* nothing was sent */
    expect_refused(ring, "event loop", OP_READ, s.fd);
    expect_refused(ring, "event loop", OP_READV, s.fd);
    expect_register_refused(ring, "event loop", s.fd);

    /* what it is for: a watched fd's readiness still reaches its handler,
     * mod and del (POLL_REMOVE) still work */
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(efd >= 0);
    int n = 0;
    assert_int_equal(evloop_add(l, efd, EPOLLIN, count_event, &n), 0);
    assert_int_equal(evloop_run_once(l, 0), 0);
    uint64_t one = 1;
    assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one));
    assert_int_equal(evloop_run_once(l, 1000), 1);
    assert_int_equal(n, 1);
    assert_int_equal(evloop_mod(l, efd, 0), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(evloop_run_once(l, 10), 0);
    assert_int_equal(evloop_mod(l, efd, EPOLLIN), 0);
    assert_int_equal(evloop_run_once(l, 1000), 1);
    assert_int_equal(n, 2);
    assert_int_equal(evloop_del(l, efd), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(evloop_run_once(l, 10), 0);
    assert_int_equal(n, 2);

    evloop_free(l);
    close(efd);
    close(us);
    close(sp[0]);
    close(sp[1]);
    scratch_free(&s);
}

static void count_event_atomic(void *opaque, uint32_t events)
{
    (void)events;
    atomic_fetch_add((atomic_int *)opaque, 1);
}

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000 }, NULL);
}

/* Waits up to 2 s for *n to reach want; its last value. */
static int wait_count(atomic_int *n, int want)
{
    for (int i = 0; i < 2000 && atomic_load(n) < want; i++)
        sleep_ms(1);
    return atomic_load(n);
}

/*
 * Only the loop's own thread enters the ring: this thread, with
 * io_uring_enter forbidden (as vmm/sandbox.c forbids it to the vCPU, main
 * and migration threads), still adds, changes and deletes watches of a
 * running loop.  Runs last: the filter stays on this thread.
 */
static void test_evloop_changes_from_other_threads(void **state)
{
    (void)state;
    Evloop *l = evloop_new();
    assert_non_null(l);
    assert_int_equal(evloop_start(l, "vt-uring-loop"), 0);
    struct sock_filter insns[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof(insns) / sizeof(insns[0]), .filter = insns };
    assert_int_equal(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    assert_int_equal(syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog), 0);
    errno = 0;
    assert_int_equal(syscall(__NR_io_uring_enter, -1, 0, 0, 0, NULL, 0), -1);
    assert_int_equal(errno, EPERM); /* the filter works on this thread */

    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(efd >= 0);
    atomic_int n = 0;
    uint64_t one = 1, v;
    assert_int_equal(evloop_add(l, efd, EPOLLIN, count_event_atomic, &n), 0);
    assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one));
    assert_true(wait_count(&n, 1) >= 1);
    /* the fd stays readable: the handler keeps being called until mod
     * (then at most the call under way completes), and again after it */
    assert_int_equal(evloop_mod(l, efd, 0), 0);
    int seen = atomic_load(&n);
    sleep_ms(100);
    assert_true(atomic_load(&n) <= seen + 1);
    seen = atomic_load(&n);
    assert_int_equal(evloop_mod(l, efd, EPOLLIN), 0);
    assert_true(wait_count(&n, seen + 2) >= seen + 2);
    assert_int_equal(evloop_del(l, efd), 0);
    seen = atomic_load(&n);
    sleep_ms(100);
    assert_true(atomic_load(&n) <= seen + 1);
    assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
    evloop_free(l);
    close(efd);
}

typedef struct Disk {
    Vt vt;
    VirtioBlk *blk;
    Evloop *loop;
    Scratch img;
} Disk;

static Disk *disk_new(bool readonly)
{
    Disk *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    scratch_new(&d->img, DISK_SECTORS * 512);
    vt_setup(&d->vt);
    assert_non_null(d->loop = evloop_new());
    d->blk = calloc(1, sizeof(*d->blk));
    assert_non_null(d->blk);
    char err[256];
    assert_int_equal(virtio_blk_init(d->blk, &(VirtioEnv){ d->vt.ctx, d->vt.as, d->loop },
                                     d->img.path, readonly, 1, err, sizeof(err)),
                     0);
    virtio_mmio_connect_irq(&d->blk->t, &d->vt.irq, VT_BASE);
    vt_map(&d->vt, virtio_mmio_region(&d->blk->t));
    /* the kernel offers restrictions (main checked): the ring must be there */
    assert_true(d->blk->have_ring);
    return d;
}

static void disk_free(Disk *d)
{
    vt_teardown(&d->vt);
    virtio_blk_destroy(d->blk);
    free(d->blk);
    evloop_free(d->loop);
    vt_free(&d->vt);
    scratch_free(&d->img);
    free(d);
}

/* One request through the virtqueue and the event loop; the status byte. */
static uint8_t disk_request(Disk *d, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
                            bool to_device)
{
    Vt *vt = &d->vt;
    uint8_t h[16] = { 0 };
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
    memcpy(vt_ptr(vt, HDR), h, 16);
    *(uint8_t *)vt_ptr(vt, STATUS) = 0xee;
    VtBuf b[3] = { { HDR, 16, false }, { data, len, !to_device }, { STATUS, 1, true } };
    if (len) {
        vt_add(vt, 0, b, 3);
    } else {
        b[1] = b[2];
        vt_add(vt, 0, b, 2);
    }
    vt_kick(vt, 0);
    assert_true(evloop_run_once(d->loop, 1000) >= 1);
    uint32_t id, used;
    assert_int_equal(vt_used(vt, 0, &id, &used), 1);
    return *(uint8_t *)vt_ptr(vt, STATUS);
}

static void test_disk_ring(void **state)
{
    (void)state;
    Disk *d = disk_new(false);
    struct io_uring *ring = &d->blk->ring;
    Scratch other;
    scratch_new(&other, 512);
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp), 0);

    expect_refused(ring, "disk", OP_OPENAT, -1);
    expect_refused(ring, "disk", OP_SOCKET, -1);
    expect_refused(ring, "disk", OP_CONNECT, sp[0]);
    expect_refused(ring, "disk", OP_SENDMSG, sp[0]);
    expect_refused(ring, "disk", OP_READ, other.fd);
    /* READV is allowed, but only on the registered disk (IOSQE_FIXED_FILE) */
    expect_refused(ring, "disk", OP_READV, other.fd);
    expect_refused(ring, "disk", OP_READV, d->blk->fd);
    assert_int_equal(submit_one(ring, OP_READV_FIXED, -1), 64);
    expect_register_refused(ring, "disk", other.fd);

    /* the device's own read, write and flush still go through the ring */
    Vt *vt = &d->vt;
    vt_bringup(vt, ~0ull, 1, 64);
    memset(vt_ptr(vt, DATA), 0, 1024);
    assert_int_equal(disk_request(d, VIRTIO_BLK_T_IN, 2, DATA, 1024, false), VIRTIO_BLK_S_OK);
    for (unsigned i = 0; i < 1024; i++)
        assert_int_equal(*(uint8_t *)vt_ptr(vt, DATA + i), (uint8_t)(2 * 512 + i + 1));
    memset(vt_ptr(vt, DATA), 0x5c, 512);
    assert_int_equal(disk_request(d, VIRTIO_BLK_T_OUT, 5, DATA, 512, true), VIRTIO_BLK_S_OK);
    assert_int_equal(disk_request(d, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
    uint8_t back[512];
    assert_int_equal(pread(d->img.fd, back, sizeof(back), 5 * 512), (ssize_t)sizeof(back));
    for (unsigned i = 0; i < sizeof(back); i++)
        assert_int_equal(back[i], 0x5c);
    VirtioBlkStats bs;
    virtio_blk_get_stats(d->blk, &bs);
    assert_int_equal(bs.rd_operations, 1);
    assert_int_equal(bs.rd_bytes, 1024);
    assert_int_equal(bs.wr_operations, 1);
    assert_int_equal(bs.flush_operations, 1);
    assert_int_equal(bs.failed_rd_operations + bs.failed_wr_operations + bs.failed_flush_operations,
                     0);
    assert_true(d->blk->have_ring); /* no fallback to preadv/pwritev happened */

    close(sp[0]);
    close(sp[1]);
    scratch_free(&other);
    disk_free(d);
}

static void test_readonly_disk_ring(void **state)
{
    (void)state;
    Disk *d = disk_new(true);
    struct io_uring *ring = &d->blk->ring;
    /* a read-only disk's ring reads, and nothing else */
    assert_int_equal(submit_one(ring, OP_READV_FIXED, -1), 64);
    expect_refused(ring, "read-only disk", OP_WRITEV_FIXED, -1);
    expect_refused(ring, "read-only disk", OP_OPENAT, -1);
    Vt *vt = &d->vt;
    vt_bringup(vt, ~0ull, 1, 64);
    assert_int_equal(disk_request(d, VIRTIO_BLK_T_IN, 1, DATA, 512, false), VIRTIO_BLK_S_OK);
    assert_int_equal(*(uint8_t *)vt_ptr(vt, DATA + 3), (uint8_t)(512 + 3 + 1));
    assert_true(d->blk->have_ring);
    disk_free(d);
}

/*
 * A kernel that cannot restrict a ring (emulated: io_uring_register
 * (IORING_REGISTER_RESTRICTIONS) answers EINVAL on this thread, as before
 * Linux 5.10): no unrestricted ring is used.  The event loop is refused, the
 * disk says so in one line and does its I/O with preadv/pwritev.  Runs
 * last: the filter stays on this thread.
 */
static void test_no_restrictions_fail_closed(void **state)
{
    (void)state;
    struct sock_filter insns[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IORING_REGISTER_RESTRICTIONS, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof(insns) / sizeof(insns[0]), .filter = insns };
    assert_int_equal(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    assert_int_equal(syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog), 0);

    errno = 0;
    assert_null(evloop_new());
    assert_int_equal(errno, EINVAL);

    Scratch img, log;
    scratch_new(&img, DISK_SECTORS * 512);
    scratch_new(&log, 0);
    Vt vt;
    vt_setup(&vt);
    VirtioBlk *blk = calloc(1, sizeof(*blk));
    assert_non_null(blk);
    char err[256];
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(log.fd, STDERR_FILENO), STDERR_FILENO);
    int r = virtio_blk_init(blk, &(VirtioEnv){ vt.ctx, vt.as, NULL }, img.path, false, 1, err,
                            sizeof(err));
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(r, 0);
    assert_false(blk->have_ring);
    char out[512] = { 0 };
    assert_true(pread(log.fd, out, sizeof(out) - 1, 0) > 0);
    if (!strstr(out, "no restricted io_uring (IORING_REGISTER_RESTRICTIONS: Invalid argument); "
                     "using preadv/pwritev\n") ||
        strchr(out, '\n') != out + strlen(out) - 1)
        fail_msg("want one line saying why the disk has no ring, got: %s", out);

    vt_map(&vt, virtio_mmio_region(&blk->t));
    vt_bringup(&vt, ~0ull, 1, 64);
    uint8_t h[16] = { 0 };
    uint32_t type = VIRTIO_BLK_T_IN;
    uint64_t sector = 3;
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
    memcpy(vt_ptr(&vt, HDR), h, 16);
    VtBuf b[3] = { { HDR, 16, false }, { DATA, 512, true }, { STATUS, 1, true } };
    vt_add(&vt, 0, b, 3);
    vt_kick(&vt, 0); /* no loop: served inline */
    uint32_t id, used;
    assert_int_equal(vt_used(&vt, 0, &id, &used), 1);
    assert_int_equal(*(uint8_t *)vt_ptr(&vt, STATUS), VIRTIO_BLK_S_OK);
    assert_int_equal(*(uint8_t *)vt_ptr(&vt, DATA + 9), (uint8_t)(3 * 512 + 9 + 1));
    vt_teardown(&vt);
    virtio_blk_destroy(blk);
    free(blk);
    vt_free(&vt);
    scratch_free(&log);
    scratch_free(&img);
}

/* 0 if this kernel can restrict a ring, else prints why not. */
static int kernel_can_restrict(void)
{
    struct io_uring ring;
    int r = io_uring_queue_init(4, &ring, IORING_SETUP_R_DISABLED);
    if (r < 0) {
        printf("SKIP: io_uring_setup(IORING_SETUP_R_DISABLED): %s (no io_uring, or "
               "older than Linux 5.10)\n",
               strerror(-r));
        return -1;
    }
    struct io_uring_restriction res = { .opcode = IORING_RESTRICTION_SQE_OP,
                                        .sqe_op = IORING_OP_NOP };
    /* by hand: Debian's liburing 2.3 declares io_uring_register_restrictions
     * but does not export it */
    r = (int)syscall(__NR_io_uring_register, ring.ring_fd, IORING_REGISTER_RESTRICTIONS, &res, 1);
    int e = errno;
    io_uring_queue_exit(&ring);
    if (r < 0) {
        printf("SKIP: IORING_REGISTER_RESTRICTIONS: %s\n", strerror(e));
        return -1;
    }
    return 0;
}

int main(void)
{
    if (kernel_can_restrict() < 0)
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evloop_ring),
        cmocka_unit_test(test_disk_ring),
        cmocka_unit_test(test_readonly_disk_ring),
        /* these two leave a seccomp filter on the thread: last */
        cmocka_unit_test(test_evloop_changes_from_other_threads),
        cmocka_unit_test(test_no_restrictions_fail_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
