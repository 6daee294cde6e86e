/* image.c - the digest of a disk image's content, for `vma create
 * --stable`: XXH3-128 of, for each 64 KiB cluster that is not all zero, its
 * number (8 bytes, little-endian) and its bytes (the last one padded with
 * zeros).  Holes are skipped without being read (the source's next_data),
 * and since zero clusters are left out, a hole and written zeros give the
 * same digest: the same disks give the same uuid whatever their files'
 * layout. */
#define _GNU_SOURCE
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define CHUNK ((uint64_t)64 * VMA_CLUSTER_SIZE)

int vma_source_digest(const vma_source *src, uint8_t out[16], vma_write_progress_fn progress,
                      void *ud, GError **err)
{
    XXH3_state_t *xs = XXH3_createState();
    if (!xs) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "not enough memory for a digest state");
        return -1;
    }
    XXH3_128bits_reset(xs);
    uint8_t *buf = g_malloc(CHUNK);
    uint64_t size = src->size, pos = 0;
    double t0 = vma_now();
    vma_write_progress p = {.size = size};
    int rc = 0;
    while (pos < size) {
        if (vma_interrupted()) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            rc = -1;
            break;
        }
        uint64_t ds, de;
        int nd = src->ops->next_data(src->ctx, pos, &ds, &de, err);
        if (nd < 0) {
            rc = -1;
            break;
        }
        if (nd == 0)
            break;
        /* whole clusters around the data */
        uint64_t start = MAX(pos, ds / VMA_CLUSTER_SIZE * VMA_CLUSTER_SIZE);
        uint64_t end = MIN(size, de);
        if (end <= start) {
            /* a source that gives no progress: everything after pos is data */
            start = pos;
            end = size;
        }
        for (uint64_t off = start; off < end && rc == 0;) {
            uint64_t want = MIN(CHUNK, end - off);
            /* read up to a cluster's end */
            uint64_t stop = off + want;
            if (stop < size && stop % VMA_CLUSTER_SIZE)
                stop = MIN(size, (stop + VMA_CLUSTER_SIZE - 1) / VMA_CLUSTER_SIZE *
                                     VMA_CLUSTER_SIZE);
            uint64_t n = stop - off, got = 0;
            while (got < n) {
                ssize_t r = src->ops->pread(src->ctx, buf + got, (size_t)(n - got), off + got, err);
                if (r < 0) {
                    rc = -1;
                    break;
                }
                if (r == 0) {
                    g_set_error(err, VMA_ERROR, VMA_ERR_IO, "%s: ends before its size",
                                src->label ? src->label : "the image");
                    rc = -1;
                    break;
                }
                got += (uint64_t)r;
            }
            if (rc < 0)
                break;
            if (n % VMA_CLUSTER_SIZE)
                memset(buf + n, 0, (size_t)(VMA_CLUSTER_SIZE - n % VMA_CLUSTER_SIZE));
            for (uint64_t k = 0; k < n; k += VMA_CLUSTER_SIZE) {
                if (vma_is_zero(buf + k, VMA_CLUSTER_SIZE))
                    continue;
                uint8_t num[8];
                uint64_t c = (off + k) / VMA_CLUSTER_SIZE;
                for (unsigned i = 0; i < 8; i++)
                    num[i] = (uint8_t)(c >> (8 * i));
                XXH3_128bits_update(xs, num, 8);
                XXH3_128bits_update(xs, buf + k, VMA_CLUSTER_SIZE);
            }
            off = stop;
            pos = stop;
            p.done = pos;
            p.total_done = pos;
            p.elapsed = vma_now() - t0;
            if (progress && progress(&p, ud)) {
                g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
                rc = -1;
            }
        }
        if (rc < 0)
            break;
        if (pos < end)
            pos = end;
    }
    if (rc == 0) {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(xs));
        memcpy(out, c.digest, 16);
    }
    XXH3_freeState(xs);
    g_free(buf);
    return rc;
}

/* ---- a file or block device ---- */

typedef struct {
    int fd;
    uint64_t size;
    gboolean seek_ok;
} fd_src;

static int fd_next_data(void *ctx, uint64_t off, uint64_t *start, uint64_t *end, GError **err)
{
    fd_src *f = ctx;
    (void)err;
    if (off >= f->size)
        return 0;
    if (f->seek_ok) {
        off_t d = lseek(f->fd, (off_t)off, SEEK_DATA);
        if (d < 0 && errno == ENXIO)
            return 0;
        if (d >= 0) {
            off_t hpos = lseek(f->fd, d, SEEK_HOLE);
            *start = (uint64_t)d;
            *end = hpos < 0 ? f->size : MIN((uint64_t)hpos, f->size);
            return 1;
        }
        f->seek_ok = FALSE;
    }
    *start = off;
    *end = f->size;
    return 1;
}

static ssize_t fd_read(void *ctx, void *buf, size_t n, uint64_t off, GError **err)
{
    fd_src *f = ctx;
    return vma_pread_all(f->fd, buf, n, off, err);
}

static const vma_source_ops fd_ops = {fd_next_data, fd_read};

int vma_fd_digest(int fd, const char *label, uint8_t out[16], vma_write_progress_fn progress,
                  void *ud, GError **err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        vma_set_errno(err, errno, "cannot stat %s", label ? label : "the image");
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "%s is not a regular file or a block device",
                    label ? label : "the image");
        return -1;
    }
    int64_t size = vma_fd_size(fd, err);
    if (size < 0)
        return -1;
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    fd_src f = {fd, (uint64_t)size, TRUE};
    vma_source src = {&fd_ops, &f, (uint64_t)size, label};
    return vma_source_digest(&src, out, progress, ud, err);
}
