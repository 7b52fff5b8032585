/* SPDX-License-Identifier: MIT */
/*
 * Disk image locks: two VMs writing one image corrupt it, so each --disk
 * image is locked for the VM's life, as QEMU locks its images: an open
 * file description lock (fcntl F_OFD_SETLK, whole file) that a writable
 * disk takes exclusive (F_WRLCK) and a readonly=on disk shared (F_RDLCK).
 * Another process, or another --disk of the same VM, that wants a
 * conflicting lock is refused at start with QEMU's words.  OFD locks
 * belong to the open file description, so they survive nothing: closing
 * the descriptor (or the process ending, however it ends) releases them.
 */
#ifndef STRATA_VMM_DISK_LOCK_H
#define STRATA_VMM_DISK_LOCK_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Opens path (read-only or read-write) and locks it: the descriptor to
 * keep open while the lock is needed, or -1 with one message in err
 * ("disk path=P: Failed to get \"write\" lock\nIs another process using
 * the image [P]?" when another holds a conflicting lock).  A file system
 * without OFD locks (EINVAL, ENOLCK, EOPNOTSUPP) is not an error: the
 * descriptor is returned unlocked and *unlocked set (when not NULL).
 */
int disk_lock(const char *path, bool readonly, bool *unlocked, char *err, size_t errlen);

#endif /* STRATA_VMM_DISK_LOCK_H */
