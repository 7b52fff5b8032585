/* SPDX-License-Identifier: MIT */
/* Disk image locks (see disk-lock.h). */
#include "vmm/disk-lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int disk_lock(const char *path, bool readonly, bool *unlocked, char *err, size_t errlen)
{
    if (unlocked)
        *unlocked = false;
    /* O_NONBLOCK: a FIFO would wait for a writer (virtio-blk refuses it later) */
    int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "disk path=%s: %s", path, strerror(errno));
        return -1;
    }
    struct flock fl = { .l_type = readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return fd;
    int e = errno;
    if (e == EAGAIN || e == EACCES) {
        /* QEMU's words (block/file-posix.c): a writer wants "write" alone,
         * a reader wants the others not to write, a shared "write" */
        snprintf(err, errlen,
                 "disk path=%s: Failed to get %s\"write\" lock\n"
                 "Is another process using the image [%s]?",
                 path, readonly ? "shared " : "", path);
        close(fd);
        return -1;
    }
    if (e == EINVAL || e == ENOLCK || e == EOPNOTSUPP) {
        if (unlocked)
            *unlocked = true;
        return fd;
    }
    snprintf(err, errlen, "disk path=%s: locking: %s", path, strerror(e));
    close(fd);
    return -1;
}
