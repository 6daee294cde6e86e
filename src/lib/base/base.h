/* base.h - the bottom layer of libvma, shared by every other layer: byte
 * order, errors from errno, the clock, digests, whole reads and writes.
 * Not part of the API (that is vma.h). */
#ifndef VMA_BASE_H
#define VMA_BASE_H

#include "vma.h"
#include "base/thread.h"

#include <stddef.h>
#include <sys/uio.h>

/* big-endian helpers (the VMA format) */
static inline uint16_t vma_get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t vma_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t vma_get_be64(const uint8_t *p)
{
    return (uint64_t)vma_get_be32(p) << 32 | vma_get_be32(p + 4);
}
static inline void vma_put_be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = (uint8_t)v; }
static inline void vma_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void vma_put_be64(uint8_t *p, uint64_t v)
{
    vma_put_be32(p, (uint32_t)(v >> 32)); vma_put_be32(p + 4, (uint32_t)v);
}
/* little-endian helpers (zstd, lzop's neighbours, our cache files) */
static inline uint32_t vma_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void vma_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

/* the last i in [0, n) whose key is <= off (0 when none is), by a binary
 * search over n records of stride bytes sorted by a key of key_size (4 or
 * 8) bytes at key_off in each (the frame or run that holds an offset) */
static inline uint64_t vma_search_le(const void *base, uint64_t n, size_t stride, size_t key_off,
                                     size_t key_size, uint64_t off)
{
    uint64_t lo = 0, hi = n;
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        const uint8_t *p = (const uint8_t *)base + mid * stride + key_off;
        uint64_t k = key_size == 8 ? *(const uint64_t *)p : *(const uint32_t *)p;
        if (k <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}
#define VMA_SEARCH_LE(arr, n, type, field, off) \
    vma_search_le((arr), (n), sizeof(type), offsetof(type, field), sizeof(((type *)0)->field), (off))

/* set a GError from errno (EINTR: VMA_ERR_INTERRUPTED) (error.c) */
void vma_set_errno(GError **err, int errnum, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* seconds on the monotonic clock (clock.c) */
double vma_now(void);

/* MD5 of a, 16 zero bytes, then b (a checksum computed with its own field
 * zero); FALSE when libcrypto failed (digest.c) */
gboolean vma_md5_with_hole(const void *a, size_t alen, const void *b, size_t blen,
                           uint8_t out[16]);

/* write all the pieces, at off (pwritev) or at the current position when
 * off < 0 (writev), retrying short writes; iov is modified.  -1 with err.
 * (files.c) */
int vma_writev_all(int fd, struct iovec *iov, int n, int64_t off, GError **err);

/* the process's umask, read without changing it (/proc/self/status);
 * -1 when the kernel does not tell (files.c) */
int vma_process_umask(void);

#endif
