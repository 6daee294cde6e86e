/* codec.h - the codec layer of libvma: compressed streams read in order
 * (input.c, with lzop.c), read at random (random.c: a plain file or a
 * seekable .vma.zst), and written (output.c); the codec table (codecs.c).
 * It knows nothing of the VMA format. */
#ifndef VMA_CODEC_H
#define VMA_CODEC_H

#include "base/base.h"

/* ---- buffered input with transparent decompression ---- */
typedef struct vma_in vma_in;
vma_in *vma_in_new(int fd, GError **err); /* owns fd */
/* from now on a thread decodes ahead of the reads (compressed input, a
 * pipe); before, reads decode in the caller's thread */
void vma_in_start(vma_in *in);
/* read exactly n bytes unless the stream ends: returns bytes read (< n only
 * at the end), or -1 on error */
ssize_t vma_in_read(vma_in *in, void *buf, size_t n, GError **err);
/* skip n bytes (a seek on a plain file): the count skipped (< n only at the
 * end), or -1 on error */
ssize_t vma_in_skip(vma_in *in, size_t n, GError **err);
vma_compress vma_in_compression(const vma_in *in);
/* bytes of the input (compressed) read so far, by any thread: progress */
uint64_t vma_in_raw_offset(vma_in *in);
void vma_in_free(vma_in *in);

/* random access to the decompressed bytes of an archive (random.c): a
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
 * reads of them are a pread (a .vma.zst only; see random.c) */
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
/* n bytes at off of the stream: the count read (less only at the end), -1 */
ssize_t vma_src_pread(vma_src *s, void *buf, size_t n, uint64_t off, GError **err);
/* a slot of a cache of decoded frames: the seekable reader's (random.c)
 * and the live reads of a copy being made (access/live.c) */
typedef struct {
    int64_t frame;        /* -1: empty */
    uint8_t *data;
    size_t cap;
    gboolean loading;     /* a thread decodes into it */
    unsigned refs;        /* threads copying out of it */
    uint64_t used;        /* last use, for LRU */
} vma_frame_slot;
/* (under the cache's lock) a slot to load a frame into: a free one, else
 * the least recently used that nobody loads or copies from; NULL when
 * there is none */
vma_frame_slot *vma_frame_slot_pick(vma_frame_slot *slots, unsigned n);
/* room for n bytes in the slot (what it held is not kept) */
void vma_frame_slot_reserve(vma_frame_slot *z, size_t n);
/* sequential input over a random source (not owned): skips cost nothing */
vma_in *vma_in_new_src(vma_src *src);

/* ---- output with optional compression (output.c) ---- */
/* The zstd frames and gzip members of a compressed archive: a frame ends at
 * the first extent that starts when it holds at least VMA_FRAME_BYTES of
 * decompressed data; an extent of VMA_FRAME_BYTES or more starts a frame and
 * is cut every VMA_FRAME_BYTES.  4 MiB is above the largest extent, so every
 * frame of a writer's archive starts with an extent (or the header) and
 * holds less than 8 MiB (see docs/format.md and, for the choice of the
 * size, docs/performance.md).  lzo's frames are cut every VMA_FRAME_BYTES
 * (runs of lzop's 256 KiB blocks).  -DVMA_FRAME_BYTES=... for
 * experiments. */
#ifndef VMA_FRAME_BYTES
#define VMA_FRAME_BYTES (4u << 20)
#endif
typedef struct vma_out vma_out;
/* level 0: the codec's default (zstd also takes its fast levels, < 0, for
 * the library's own caches, and then threads -1: no worker, every frame
 * stored raw); threads: compression workers, 0 = one per core.  A level
 * out of the codec's range is VMA_ERR_ARG. */
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
/* zstd: called by the writing thread after each frame is written, with its
 * compressed and decompressed sizes (what the seek table will say) */
typedef void (*vma_out_frame_fn)(void *ud, uint64_t csize, uint64_t dsize);
void vma_out_set_frame_fn(vma_out *out, vma_out_frame_fn fn, void *ud);
/* zstd: when every worker is busy and a frame waits for one, the next frame
 * is written raw (stored, with its checksum) by the writing thread instead
 * of waiting: the writer runs at the speed of its input, not of the
 * compression (the index caches of one-stream archives) */
void vma_out_set_adaptive(vma_out *out, gboolean on);
uint64_t vma_out_raw_frames(const vma_out *out);
/* a file that need not survive a crash (a cache): no writeback as it goes,
 * no fsync at the end */
void vma_out_set_no_sync(vma_out *out);
/* zstd: write the file through O_DIRECT by a thread of its own (direct.c),
 * frames told to on_frame once they are in the file; FALSE (and nothing
 * changed) where the file or the system cannot.  Call before the first
 * write. */
gboolean vma_out_set_direct(vma_out *out);
/* hand what is written so far to the file (direct: to its thread) */
int vma_out_flush(vma_out *out, GError **err);
/* after vma_out_finish: every byte went through O_DIRECT */
gboolean vma_out_direct(const vma_out *out);
void vma_out_free(vma_out *out);

/* ---- a file written once through O_DIRECT (direct.c) ---- */
typedef struct vma_dsink vma_dsink;
/* called by the sink's thread, in order: the bytes before end are written */
typedef void (*vma_dsink_done_fn)(void *ud, uint64_t end);
/* for fd at its offset (a multiple of 4 KiB); NULL where O_DIRECT cannot
 * be had (then write fd as usual) */
vma_dsink *vma_dsink_new(int fd, vma_dsink_done_fn done, void *ud);
int vma_dsink_writev(vma_dsink *s, const struct iovec *iov, int n, GError **err);
/* hand the bytes gathered so far to the thread (a partial buffer) */
int vma_dsink_flush(vma_dsink *s, GError **err);
/* the bytes handed in so far (from fd's offset at vma_dsink_new) */
uint64_t vma_dsink_offset(const vma_dsink *s);
/* everything written, the thread ended, the file cut to its length */
int vma_dsink_finish(vma_dsink *s, GError **err);
/* after vma_dsink_finish: every write went through O_DIRECT */
gboolean vma_dsink_direct(const vma_dsink *s);
void vma_dsink_free(vma_dsink *s);

/* ---- the lzop format, decoded with liblzo2 (lzop.c; written by output.c) ---- */
/* liblzo2 initialised and fit for the header it was built with */
gboolean vma_lzo_ready(void);
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

#endif
