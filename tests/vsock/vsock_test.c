/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock end to end on /dev/kvm (label kvm): `strata run
 * --test-device --vsock cid=3,uds=TMP/v.sock` with guest.c, a tiny vsock
 * driver; this program is the host side.
 *
 *   1. guest to host: the guest connects to port 1234 (our listener on
 *      TMP/v.sock_1234), sends "hello", we answer "HELLO";
 *   2. port 4321 has no listener: the guest gets RST; 3. a malformed
 *      packet gets RST (both checked by the guest);
 *   4. credit stall: the guest sends 4 MiB on connection 1 while we do not
 *      read; it runs out of credit ("stalled"), strata's RSS has not grown
 *      by more than 2 MiB; then we read everything and check every byte in
 *      order;
 *   5. host to guest: we connect to TMP/v.sock, send "CONNECT 7000\n", read
 *      "OK <port>\n", send "ping", read "pong";
 *   6. snapshot (QMP migrate file:), quit, restore in a new strata
 *      (--incoming file:): the guest gets TRANSPORT_RESET, connects to port
 *      1234 again and sends "again".  The guest exits 0.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qmp_harness.h"

#define TOTAL (4u << 20)

/* Reads exactly n bytes (30 s at most). */
static void read_all(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd p = { fd, POLLIN, 0 };
        CHECK(poll(&p, 1, 30000) == 1, "no data from strata after 30 s (%zu of %zu)", got, n);
        ssize_t r = read(fd, (char *)buf + got, n - got);
        CHECK(r > 0, "read: %zd (%s) after %zu of %zu bytes", r, strerror(errno), got, n);
        got += (size_t)r;
    }
}

static int unix_socket(const char *path, bool listening)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    if (listening)
        CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 4) == 0,
              "listen on %s: %s", path, strerror(errno));
    else
        CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect to %s: %s", path,
              strerror(errno));
    return fd;
}

int main(void)
{
    harness_init("vsock");
    char uds[128], svc[160], arg[200];
    snprintf(uds, sizeof(uds), "%s/v.sock", tmpdir);
    snprintf(svc, sizeof(svc), "%s_1234", uds);
    snprintf(arg, sizeof(arg), "cid=3,uds=%s", uds);
    int lfd = unix_socket(svc, true);
    strata_pid = spawn("--test-device", "--kernel", VSOCK_ELF, "--vsock", arg, "--serial", "none",
                       "--api-socket", sock_path, NULL);
    wait_log_text("stderr.txt", "vsock: ready, cid 0x3", 60);

    /* 1 */
    struct pollfd pl = { lfd, POLLIN, 0 };
    CHECK(poll(&pl, 1, 60000) == 1, "the guest's connection did not come");
    int s = accept(lfd, NULL, NULL);
    CHECK(s >= 0, "accept: %s", strerror(errno));
    char buf[64];
    read_all(s, buf, 5);
    CHECK(!memcmp(buf, "hello", 5), "the guest sent '%.5s'", buf);
    CHECK(write(s, "HELLO", 5) == 5, "write");
    wait_log_text("stderr.txt", "vsock: echo ok", 60);
    printf("ok: guest to host connect, data both ways\n");
    /* 2, 3 */
    wait_log_text("stderr.txt", "vsock: rst ok (no listener)", 60);
    wait_log_text("stderr.txt", "vsock: rst ok (malformed)", 60);
    printf("ok: RST for a port with no listener and for a malformed packet\n");

    /* 4 */
    long long rss0 = strata_rss_kib();
    wait_log_text("stderr.txt", "vsock: stalled", 60);
    msleep(200);
    long long rss1 = strata_rss_kib();
    printf("stalled with the host not reading; strata's RSS %lld -> %lld KiB\n", rss0, rss1);
    CHECK(rss1 - rss0 < 2048, "strata's RSS grew by %lld KiB while the host did not read",
          rss1 - rss0);
    static unsigned char bulk[TOTAL];
    read_all(s, bulk, TOTAL);
    for (unsigned i = 0; i < TOTAL; i++)
        CHECK(bulk[i] == (unsigned char)(i % 251), "byte %u is %u, not %u", i, bulk[i], i % 251);
    wait_log_text("stderr.txt", "vsock: sent all", 60);
    char *log = read_log("stderr.txt");
    printf("%s", strstr(log, "guest: vsock: stalled"));
    free(log);
    printf("ok: credit stall and resume, %u bytes in order\n", TOTAL);

    /* 5 */
    int c = unix_socket(uds, false);
    CHECK(write(c, "CONNECT 7000\n", 13) == 13, "write CONNECT");
    size_t n = 0;
    while (n < sizeof(buf) - 1 && (n == 0 || buf[n - 1] != '\n')) {
        read_all(c, buf + n, 1);
        n++;
    }
    buf[n] = 0;
    CHECK(!strncmp(buf, "OK ", 3), "strata answered '%s'", buf);
    char okline[64];
    snprintf(okline, sizeof(okline), "%.*s", (int)(n - 1), buf);
    CHECK(write(c, "ping", 4) == 4, "write ping");
    read_all(c, buf, 4);
    CHECK(!memcmp(buf, "pong", 4), "the guest answered '%.4s'", buf);
    printf("ok: host to guest CONNECT (%s), data both ways\n", okline);
    wait_log_text("stderr.txt", "vsock: host connect ok", 60);

    /* 6 */
    char snap[160], uri[200];
    snprintf(snap, sizeof(snap), "%s/vm.snap", tmpdir);
    snprintf(uri, sizeof(uri), "{\"uri\": \"file:%s\"}", snap);
    QClient *q = open_client();
    qc_set_timeout(q, 60000);
    json_decref(ok(q, "migrate", uri));
    for (double t0 = now_s();;) {
        json_t *r = ok(q, "query-migrate", NULL);
        const char *st = json_string_value(json_object_get(r, "status"));
        bool done = st && !strcmp(st, "completed");
        CHECK(!st || strcmp(st, "failed"), "the snapshot failed");
        json_decref(r);
        if (done)
            break;
        CHECK(now_s() - t0 < 60, "the snapshot did not complete");
        msleep(20);
    }
    json_decref(ok(q, "quit", NULL));
    qc_close(q);
    CHECK(wait_status(strata_pid) == 0, "the saved strata did not quit cleanly");
    close(s);
    close(c);
    snprintf(uri, sizeof(uri), "file:%s", snap);
    strata_pid = spawn("--test-device", "--kernel", VSOCK_ELF, "--vsock", arg, "--serial", "none",
                       "--incoming", uri, NULL);
    wait_log_text("stderr.txt", "vsock: transport reset, cid 0x3", 60);
    CHECK(poll(&pl, 1, 60000) == 1, "the restored guest's connection did not come");
    s = accept(lfd, NULL, NULL);
    CHECK(s >= 0, "accept: %s", strerror(errno));
    read_all(s, buf, 5);
    CHECK(!memcmp(buf, "again", 5), "the restored guest sent '%.5s'", buf);
    printf("ok: snapshot and restore: transport reset, a new connection\n");

    int code = wait_status(strata_pid);
    strata_pid = -1;
    char *err = read_log("stderr.txt");
    CHECK(code == 0, "strata exit status %d\n%s", code, err);
    CHECK(!strstr(err, "needs reset"), "strata logged a device error:\n%s", err);
    free(err);
    close(s);
    close(lfd);
    printf("PASS\n");
    return 0;
}
