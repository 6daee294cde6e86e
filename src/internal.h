/* internal.h - pieces shared by the files of libvma, not part of the API */
#ifndef VMA_INTERNAL_H
#define VMA_INTERNAL_H

#include "vma.h"

#include <sys/uio.h>

#define VMA_MAGIC        "VMA\0"
#define VMA_EXTENT_MAGIC "VMAE"

/* big-endian helpers */
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

/* byte offsets inside the fixed header */
enum {
    VMA_H_MAGIC = 0, VMA_H_VERSION = 4, VMA_H_UUID = 8, VMA_H_CTIME = 24,
    VMA_H_MD5 = 32, VMA_H_BLOB_OFFSET = 48, VMA_H_BLOB_SIZE = 52,
    VMA_H_HEADER_SIZE = 56, VMA_H_CONFIG_NAMES = 2044, VMA_H_CONFIG_DATA = 3068,
    VMA_H_DEV_INFO = 4096,
};
/* byte offsets inside the extent header */
enum {
    VMA_E_MAGIC = 0, VMA_E_RESERVED = 4, VMA_E_BLOCK_COUNT = 6, VMA_E_UUID = 8,
    VMA_E_MD5 = 24, VMA_E_BLOCKINFO = 40,
};

/* A set of cluster numbers below nbits, kept as runs so that memory follows
 * what the archive sends, not what its header claims. */
typedef struct vma_bitmap vma_bitmap;
vma_bitmap *vma_bitmap_new(uint64_t nbits, uint64_t max_runs);
void vma_bitmap_free(vma_bitmap *b);
/* sets bit i; returns its previous value, or -1 when more than max_runs
 * separate runs would be needed */
int vma_bitmap_test_and_set(vma_bitmap *b, uint64_t i);
/* the number of separate runs held */
uint64_t vma_bitmap_runs(const vma_bitmap *b);
/* number of clear bits below nbits; *first gets the first clear one */
uint64_t vma_bitmap_count_clear(const vma_bitmap *b, uint64_t *first);

/* how many separate runs of clusters a reader tracks before it gives up on
 * an archive as too fragmented (about 50 MiB of bookkeeping) */
#define VMA_READER_MAX_RUNS (1u << 20)

/* ---- buffered input with transparent decompression ---- */
typedef struct vma_in vma_in;
vma_in *vma_in_new(int fd, GError **err); /* owns fd */
/* read exactly n bytes unless the stream ends: returns bytes read (< n only
 * at the end), or -1 on error */
ssize_t vma_in_read(vma_in *in, void *buf, size_t n, GError **err);
vma_compress vma_in_compression(const vma_in *in);
void vma_in_free(vma_in *in);

/* ---- output with optional compression ---- */
typedef struct vma_out vma_out;
vma_out *vma_out_new(int fd, vma_compress c, int level, GError **err); /* fd not owned */
int vma_out_write(vma_out *out, const void *buf, size_t n, GError **err);
/* the same for pieces; iov is modified */
int vma_out_writev(vma_out *out, struct iovec *iov, int n, GError **err);
/* flush the compressor, end the stream, fsync a regular file */
int vma_out_finish(vma_out *out, GError **err);
void vma_out_free(vma_out *out);

/* write all the pieces, at off (pwritev) or at the current position when
 * off < 0 (writev), retrying short writes; iov is modified.  -1 with err. */
int vma_writev_all(int fd, struct iovec *iov, int n, int64_t off, GError **err);
int vma_write_all(int fd, const void *buf, size_t n, GError **err);

/* set a GError from errno */
void vma_set_errno(GError **err, int errnum, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

double vma_now(void);

#endif
