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

/* A set of cluster numbers below a limit, kept as runs so that memory
 * follows what the archive sends, not what its header claims (runs.c). */
typedef struct vma_runs vma_runs;
vma_runs *vma_runs_new(uint64_t limit, uint64_t max_runs);
void vma_runs_free(vma_runs *r);
/* adds i; returns 1 when it was there already, 0 when added, -1 when more
 * than max_runs separate runs would be needed */
int vma_runs_add(vma_runs *r, uint64_t i);
gboolean vma_runs_contains(const vma_runs *r, uint64_t i);
/* the number of separate runs held */
uint64_t vma_runs_count(const vma_runs *r);
/* every range below the limit that is not in the set, in order */
void vma_runs_foreach_gap(const vma_runs *r, vma_gap_fn fn, void *ud);
/* the count of numbers below the limit not in the set; *first (may be
 * NULL) gets the first of them */
uint64_t vma_runs_missing(const vma_runs *r, uint64_t *first);

/* how many separate runs of clusters a reader tracks before it gives up on
 * an archive as too fragmented (about 50 MiB of bookkeeping) */
#define VMA_READER_MAX_RUNS (1u << 20)

/* ---- buffered input with transparent decompression ---- */
typedef struct vma_in vma_in;
vma_in *vma_in_new(int fd, GError **err); /* owns fd */
/* read exactly n bytes unless the stream ends: returns bytes read (< n only
 * at the end), or -1 on error */
ssize_t vma_in_read(vma_in *in, void *buf, size_t n, GError **err);
/* skip n bytes (a seek on a plain file): the count skipped (< n only at the
 * end), or -1 on error */
ssize_t vma_in_skip(vma_in *in, size_t n, GError **err);
vma_compress vma_in_compression(const vma_in *in);
void vma_in_free(vma_in *in);

/* random access to the decompressed bytes of an archive (seekable.c): a
 * plain file, or a .vma.zst with a seek table; anything else is refused
 * with VMA_ERR_NOT_SEEKABLE.  fd is not owned.  Thread-safe. */
typedef struct vma_src vma_src;
vma_src *vma_src_open(int fd, GError **err);
void vma_src_free(vma_src *s);
uint64_t vma_src_size(const vma_src *s);
vma_compress vma_src_compression(const vma_src *s);
uint64_t vma_src_frames(const vma_src *s);
/* the bytes of decompressed frames kept (before the first read; default
 * 64 MiB, at least two frames) */
void vma_src_set_cache(vma_src *s, uint64_t bytes);
/* keep frames that are read out of order, once decoded, in an unlinked
 * file in dir, up to limit bytes (and half the space free there): later
 * reads of them are a pread (a .vma.zst only; see seekable.c) */
void vma_src_enable_spill(vma_src *s, const char *dir, uint64_t limit);
/* what the reads of a .vma.zst cost (for tests and benchmarks) */
typedef struct {
    uint64_t frames_decoded; /* whole frames decompressed (into the cache) */
    uint64_t direct_reads;   /* reads served by raw and RLE blocks, not decoded */
    uint64_t maps;           /* frames whose block map is kept */
    uint64_t map_bytes;      /* the memory of those maps */
    uint64_t spilled;        /* frames written to the spill file */
    uint64_t spill_reads;    /* reads served from it */
} vma_src_stats;
void vma_src_get_stats(vma_src *s, vma_src_stats *st);
/* the source an archive opened for random access reads (for tests) */
vma_src *vma_archive_src(vma_archive *a);
/* n bytes at off of the stream: the count read (less only at the end), -1 */
ssize_t vma_src_pread(vma_src *s, void *buf, size_t n, uint64_t off, GError **err);
/* sequential input over a random source (not owned): skips cost nothing */
vma_in *vma_in_new_src(vma_src *src);

/* ---- the index of an archive (index.c) ---- */
typedef struct vma_index vma_index;
/* one pass over r (opened on a random source, nothing read yet): every
 * extent decoded and checked, the data skipped; total is for progress */
vma_index *vma_index_build(vma_reader *r, uint64_t total, vma_index_progress_fn progress,
                           void *ud, GError **err);
void vma_index_free(vma_index *ix);
uint64_t vma_index_memory(const vma_index *ix);
/* the end of the last cluster the device has */
uint64_t vma_index_end(const vma_index *ix, uint8_t dev);
/* the pieces of [off, off + len) below dev_size; by_kind joins data pieces
 * that are not contiguous in the archive.  -1 when fn stopped it */
int vma_index_walk(const vma_index *ix, uint8_t dev, uint64_t dev_size, uint64_t off,
                   uint64_t len, gboolean by_kind, vma_piece_fn fn, void *ud);
int vma_index_save(const vma_index *ix, const char *path, const uint8_t stamp[32], GError **err);
vma_index *vma_index_load(const char *path, const vma_header *h, const uint8_t stamp[32],
                          GError **err);
vma_reader *vma_archive_reader(const vma_archive *a);

/* ---- output with optional compression (compress.c) ---- */
/* The zstd frames and gzip members of a compressed archive: a frame ends at
 * the first extent that starts when it holds at least VMA_FRAME_BYTES of
 * decompressed data; an extent of VMA_FRAME_BYTES or more starts a frame and
 * is cut every VMA_FRAME_BYTES.  4 MiB is above the largest extent, so every
 * frame of a writer's archive starts with an extent (or the header) and
 * holds less than 8 MiB; 1 MiB frames lost 9% on a file system image (see
 * docs/format.md).  -DVMA_FRAME_BYTES=... for experiments. */
#ifndef VMA_FRAME_BYTES
#define VMA_FRAME_BYTES (4u << 20)
#endif
typedef struct vma_out vma_out;
/* level 0: the codec's default; threads: compression workers for zstd and
 * gzip, 0 = one per core.  A level out of the codec's range is VMA_ERR_ARG. */
vma_out *vma_out_new(int fd, vma_compress c, int level, int threads,
                     GError **err); /* fd not owned */
/* an extent (or the header) starts with the next byte written: where the
 * zstd frames and gzip members may begin (see docs/format.md) */
void vma_out_mark(vma_out *out);
int vma_out_write(vma_out *out, const void *buf, size_t n, GError **err);
/* the same for pieces; iov is modified */
int vma_out_writev(vma_out *out, struct iovec *iov, int n, GError **err);
/* flush the compressor, end the stream (zstd: the seek table), fsync a
 * regular file */
int vma_out_finish(vma_out *out, GError **err);
void vma_out_free(vma_out *out);

/* ---- the lzop format, decoded with liblzo2 (lzop.c) ---- */
typedef struct vma_lzop vma_lzop;
/* n bytes of the input into buf: n, fewer only at its end, -1 with err */
typedef ssize_t (*vma_lzop_read_fn)(void *ctx, void *buf, size_t n, GError **err);
/* NULL when liblzo2 does not work (lzo_init failed) */
vma_lzop *vma_lzop_new(vma_lzop_read_fn read, void *ctx);
/* up to n decompressed bytes: fewer at the end of the stream, and when it
 * breaks (truncated: VMA_ERR_INCOMPLETE; damaged: VMA_ERR_FORMAT), then with
 * err set; the bytes before the break are returned */
ssize_t vma_lzop_read(vma_lzop *z, uint8_t *buf, size_t n, GError **err);
void vma_lzop_free(vma_lzop *z);

/* ---- a helper program as a child process (child.c; lzop) ---- */
typedef struct {
    pid_t pid;
    int to_child;     /* socket: what we write is the child's stdin */
    int errors;       /* pipe: the child's stderr, read when it failed */
} vma_child;
/* start argv with stdin from a socketpair and stdout on out_fd (or a new
 * pipe returned in *from_child when out_fd < 0); its stderr is kept from
 * ours and only used to explain a failure */
gboolean vma_child_start(vma_child *c, const char *const argv[], int out_fd,
                         int *from_child, GError **err);
int vma_child_send(vma_child *c, const void *buf, size_t n, GError **err);
/* close the child's input and wait for it; -1 if it failed (a truncated
 * lzo stream is VMA_ERR_INCOMPLETE); 0 when it was not running */
int vma_child_finish(vma_child *c, const char *what, GError **err);

/* write all the pieces, at off (pwritev) or at the current position when
 * off < 0 (writev), retrying short writes; iov is modified.  -1 with err. */
int vma_writev_all(int fd, struct iovec *iov, int n, int64_t off, GError **err);

/* check the 512-byte extent header eh at archive offset off (the rules that
 * need only it and the archive's uuid) and decode its slots into ext */
int vma_extent_decode(const uint8_t *eh, const uint8_t uuid[16], uint64_t off,
                      vma_extent *ext, GError **err);

/* a reader over a random source (not owned), for building an index */
vma_reader *vma_reader_open_src(vma_src *src, GError **err);

/* open an archive's file ("-": a copy of standard input); a folder is refused */
int vma_open_archive_fd(const char *path, GError **err);

/* MD5 of a, 16 zero bytes, then b (a checksum computed with its own field
 * zero); FALSE when libcrypto failed */
gboolean vma_md5_with_hole(const void *a, size_t alen, const void *b, size_t blen,
                           uint8_t out[16]);

/* set a GError from errno */
void vma_set_errno(GError **err, int errnum, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

double vma_now(void);

#endif
