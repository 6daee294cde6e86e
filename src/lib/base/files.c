/* os.c - file-system helpers of libvma, shared by the writer, the restore
 * engine and the front-ends: whole writes, sizes of files and block devices,
 * new files written in one go, renames that never replace. */
#define _GNU_SOURCE
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/fs.h>

int vma_writev_all(int fd, struct iovec *iov, int n, int64_t off, GError **err)
{
    while (n > 0 && iov->iov_len == 0) {
        iov++;
        n--;
    }
    while (n > 0) {
        int cnt = MIN(n, IOV_MAX);
        ssize_t w = off < 0 ? writev(fd, iov, cnt) : pwritev(fd, iov, cnt, (off_t)off);
        if (w <= 0) {
            if (w < 0 && errno == EINTR && !vma_interrupted())
                continue;
            /* a write of nothing means the device is full */
            int errnum = w < 0 ? errno : ENOSPC;
            if (off < 0)
                vma_set_errno(err, errnum, "write failed");
            else
                vma_set_errno(err, errnum, "write failed at offset %" G_GINT64_FORMAT, off);
            return -1;
        }
        if (off >= 0)
            off += w;
        size_t k = (size_t)w;
        while (n > 0 && k >= iov->iov_len) {
            k -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= k;
        }
    }
    return 0;
}

int vma_write_all(int fd, const void *buf, size_t n, GError **err)
{
    struct iovec iov = {(void *)buf, n};
    return vma_writev_all(fd, &iov, 1, -1, err);
}

ssize_t vma_pread_all(int fd, void *buf, size_t n, uint64_t off, GError **err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR && !vma_interrupted())
                continue;
            vma_set_errno(err, errno, "read failed at offset %" G_GUINT64_FORMAT, off + got);
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int64_t vma_fd_size(int fd, GError **err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        vma_set_errno(err, errno, "stat failed");
        return -1;
    }
    if (S_ISBLK(st.st_mode)) {
        uint64_t sz;
        if (ioctl(fd, BLKGETSIZE64, &sz) < 0) {
            vma_set_errno(err, errno, "cannot get the size of the block device");
            return -1;
        }
        return (int64_t)sz;
    }
    return st.st_size;
}

int vma_rename_noreplace(const char *from, const char *to, GError **err)
{
    int rc = renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
    if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) {
        /* file systems without RENAME_NOREPLACE: link() never replaces */
        rc = link(from, to);
        if (rc == 0)
            unlink(from);
    }
    if (rc < 0) {
        vma_set_errno(err, errno, "cannot rename %s to %s", from, to);
        return -1;
    }
    return 0;
}

int vma_fsync_dir(const char *dir, GError **err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        int en = errno;
        if (fd >= 0)
            close(fd);
        vma_set_errno(err, en, "cannot sync %s", dir);
        return -1;
    }
    close(fd);
    return 0;
}

int vma_fsync_parent(const char *path, GError **err)
{
    char *dir = g_path_get_dirname(path);
    int rc = vma_fsync_dir(dir, err);
    g_free(dir);
    return rc;
}

int vma_file_create(const char *path, const void *data, size_t len, unsigned mode, GError **err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) {
        vma_set_errno(err, errno, "cannot create %s", path);
        return -1;
    }
    GError *e = NULL;
    int rc = 0;
    if (fchmod(fd, (mode_t)mode) < 0) { /* the mode asked for, whatever the umask */
        vma_set_errno(&e, errno, "cannot set its mode");
        rc = -1;
    }
    if (rc == 0)
        rc = vma_write_all(fd, data, len, &e);
    if (rc == 0 && fsync(fd) < 0) {
        vma_set_errno(&e, errno, "fsync failed");
        rc = -1;
    }
    if (close(fd) < 0 && rc == 0) {
        vma_set_errno(&e, errno, "close failed");
        rc = -1;
    }
    if (rc < 0) {
        unlink(path);
        g_propagate_prefixed_error(err, e, "cannot write %s: ", path);
    }
    return rc;
}

int vma_is_all_holes(int fd, GError **err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        vma_set_errno(err, errno, "stat failed");
        return -1;
    }
    if (!S_ISREG(st.st_mode))
        return 0;
    if (st.st_size == 0)
        return 1;
    off_t d = lseek(fd, 0, SEEK_DATA);
    if (d < 0 && errno == ENXIO)
        return 1;
    if (d < 0) /* no SEEK_DATA here: only allocated blocks tell */
        return st.st_blocks == 0;
    return 0;
}

int vma_process_umask(void)
{
    /* Linux 4.7 and later tell it in /proc/self/status: umask(2) would
     * have to set it to read it, a race with every thread making files */
    char *text = NULL;
    int um = -1;
    if (g_file_get_contents("/proc/self/status", &text, NULL, NULL)) {
        const char *line = strstr(text, "\nUmask:");
        if (line) {
            char *end;
            long v = strtol(line + 7, &end, 8);
            if (end != line + 7 && v >= 0 && v <= 0777)
                um = (int)v;
        }
    }
    g_free(text);
    return um;
}
