/* output.c - archive output with optional compression.
 *
 * zstd, gzip and lzo: the stream is cut into frames (zstd frames, gzip
 * members, runs of lzop blocks), each compressed on its own by a pool of
 * worker threads and written in order by the thread that calls
 * vma_out_write.  zstd and gzip frames start at extent boundaries where
 * they can (vma_out_mark), and zstd output ends with the seek table of the
 * zstd seekable format.  lzo is the lzop file format, as `lzop -c` writes
 * it (its header, blocks of 256 KiB compressed with liblzo2 by the method
 * and level lzop uses for each of -1 .. -9, the end marker): `lzop -d`, and
 * with it Proxmox's restore, reads it.  The bytes written depend only on
 * the data and the level, never on the number of threads (lzo's header
 * holds the time, as lzop's does).  none: straight writes.  See
 * docs/format.md, "The compressed container". */
#define _GNU_SOURCE
#include "codec/codec.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <time.h>
#include <zlib.h>
#include <lzo1x.h>
#include <xxhash.h>
/* for ZSTD_c_stableInBuffer / ZSTD_c_stableOutBuffer, parameters of the
 * stable ZSTD_CCtx_setParameter (no experimental function is called) */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

/* the frame rule, with FRAME_BYTES = VMA_FRAME_BYTES (codec.h): an
 * extent that starts when the frame holds at least FRAME_BYTES starts a new
 * frame, an extent of at least FRAME_BYTES starts a new frame, and inside an
 * extent a frame ends every FRAME_BYTES.  A frame holds less than FRAME_CAP. */
#define FRAME_BYTES ((size_t)VMA_FRAME_BYTES)
#define FRAME_CAP (2 * FRAME_BYTES)
/* a worker compresses a frame in slices of this much and looks between them
 * whether to stop (an interrupt, an abandoned output) */
#define SLICE ((size_t)1 << 20)
/* a regular file's pages go to the disk every this much written, instead of
 * all at the final fsync */
#define KICK_BYTES ((uint64_t)8 << 20)

#define SKIPPABLE_MAGIC 0x184D2A5Eu
#define SEEKABLE_MAGIC 0x8F92EAB1u

/* lzop's blocks: 256 KiB of the stream each, a header of their decompressed
 * and compressed lengths and the Adler-32 of the decompressed bytes (the
 * flags lzop sets by default), stored as they are when they do not shrink */
#define LZO_BLOCK ((size_t)256 << 10)
#define LZO_BLOCK_HEADER 12
/* what LZO1X may write for a block that does not compress (it is then
 * stored, but the compressor needs the room first) */
#define LZO_SLACK (LZO_BLOCK / 16 + 64 + 3)
#define LZO_F_ADLER32_D 0x00000001u
#define LZO_F_STDIN     0x00000004u
#define LZO_F_STDOUT    0x00000008u
#define LZO_F_OS_UNIX   0x03000000u

/* ---- frames and workers ---- */

/* One frame: its decompressed bytes, filled by the writing thread, then its
 * compressed bytes, made by a worker.  The buffers come from two pools (for
 * the decompressed and the compressed bytes), so that a buffer's resident
 * pages are those of the largest frame it held. */
typedef struct {
    uint8_t *in;
    size_t in_len;
    uint8_t *out;
    size_t out_len;
    gboolean done;        /* set by the worker, under the lock */
    gboolean raw;         /* stored as it is (make_raw_frame): in is written */
    char *error;          /* what failed, or NULL */
} job;

typedef struct {
    vma_out *o;
    ZSTD_CCtx *zc;
    z_stream zs;
    gboolean zs_init;
    void *lzo_mem;        /* liblzo2's work memory */
    uint8_t *lzo_tmp;     /* levels 7-9: a block decoded again by lzo1x_optimize */
    vma_thread *thread;
} worker;

struct vma_out {
    int fd;
    vma_compress comp;
    int level;
    gboolean framed;      /* zstd or gzip: frames compressed by the workers */
    gboolean failed;
    GError *failure;      /* what failed where no error could be returned (mark) */
    gint stop;            /* the workers drop what they compress */

    unsigned n_workers;
    worker *workers;
    vma_queue *todo;      /* job * for the workers; closed: they end */
    vma_mutex lock;       /* guards the pools and the done flags */
    vma_cond cond;        /* a job is done */
    GQueue inflight;      /* job * handed to the workers, in stream order */
    GPtrArray *free_in;   /* free buffers of FRAME_CAP bytes */
    GPtrArray *free_out;  /* free buffers of out_size bytes */
    size_t out_size;
    GPtrArray *all_bufs;  /* every buffer, to free them */

    uint8_t *fill;        /* the frame being filled, or NULL */
    size_t fill_len;
    size_t ext_start;     /* where in fill the current extent began */
    GByteArray *seek;     /* zstd: the seek table entries, 8 bytes each */
    uint32_t n_frames;

    gboolean kick;        /* a regular file: start its writeback as we go */
    uint64_t kick_from, kick_pending;

    vma_out_frame_fn on_frame; /* after each frame is written (vma_out_set_frame_fn) */
    void *frame_ud;
    gboolean adaptive;    /* raw frames when the workers fall behind */
    gboolean no_sync;     /* neither writeback kicks nor the final fsync (a cache) */
    uint64_t raw_frames;

    vma_dsink *sink;      /* vma_out_set_direct: the file's writer */
    vma_mutex plock;      /* guards pending and durable (the sink's thread) */
    GQueue pending;       /* pframe *: frames handed to the sink, not yet told */
    uint64_t durable;     /* the sink wrote the bytes before this offset */
};

/* a frame written to the sink, told to on_frame once it is in the file */
typedef struct {
    uint64_t end, csize, dsize;
} pframe;

/* a free buffer of a pool.  At most n_workers frames are in flight, each
 * with its two buffers, and one is filled: n_workers + 1 buffers for the
 * decompressed bytes and n_workers for the compressed ones, allocated as
 * needed (only the pages used count). */
static uint8_t *buf_get(vma_out *o, GPtrArray *pool, size_t size)
{
    vma_mutex_lock(&o->lock);
    uint8_t *b;
    if (pool->len) {
        b = g_ptr_array_steal_index_fast(pool, pool->len - 1);
    } else {
        b = g_malloc(size);
        g_ptr_array_add(o->all_bufs, b);
    }
    vma_mutex_unlock(&o->lock);
    return b;
}

static void buf_put(vma_out *o, GPtrArray *pool, uint8_t *b)
{
    vma_mutex_lock(&o->lock);
    g_ptr_array_add(pool, b);
    vma_mutex_unlock(&o->lock);
}

static gboolean stopped(vma_out *o, job *j)
{
    if (!g_atomic_int_get(&o->stop))
        return FALSE;
    j->error = g_strdup("interrupted");
    return TRUE;
}

/* lzo: lzop's blocks of the frame, each compressed by the method lzop
 * uses for the level (1: LZO1X-1(15); 2-6: LZO1X-1; 7-9: LZO1X-999 at that
 * level, then optimized as lzop does), or stored when it does not shrink */
static void compress_lzo(worker *wk, job *j)
{
    vma_out *o = wk->o;
    size_t pos = 0, out = 0;
    while (pos < j->in_len) {
        if (stopped(o, j))
            return;
        const uint8_t *src = j->in + pos;
        size_t n = MIN(j->in_len - pos, LZO_BLOCK);
        uint8_t *h = j->out + out, *dst = h + LZO_BLOCK_HEADER;
        lzo_uint clen = 0;
        int r = o->level == 1   ? lzo1x_1_15_compress(src, n, dst, &clen, wk->lzo_mem)
                : o->level <= 6 ? lzo1x_1_compress(src, n, dst, &clen, wk->lzo_mem)
                                : lzo1x_999_compress_level(src, n, dst, &clen, wk->lzo_mem, NULL,
                                                           0, 0, o->level);
        if (r == LZO_E_OK && clen < n && o->level >= 7) {
            /* as lzop: LZO1X-999's output reordered for a faster decode */
            lzo_uint back = n;
            r = lzo1x_optimize(dst, clen, wk->lzo_tmp, &back, NULL);
            if (r == LZO_E_OK && back != n)
                r = LZO_E_ERROR;
        }
        if (r != LZO_E_OK) {
            j->error = g_strdup_printf("lzo compression failed (%d)", r);
            return;
        }
        if (clen >= n) { /* stored */
            memcpy(dst, src, n);
            clen = n;
        }
        vma_put_be32(h, (uint32_t)n);
        vma_put_be32(h + 4, (uint32_t)clen);
        vma_put_be32(h + 8, (uint32_t)adler32(1, src, (uInt)n));
        out += LZO_BLOCK_HEADER + clen;
        pos += n;
    }
    j->out_len = out;
}

static int out_write(vma_out *o, const void *buf, size_t n, GError **err);

/* the header of an lzop file, as `lzop -c` writes it when it reads a pipe
 * (no name, mode 0, the time now, the method and level of -1 .. -9) */
static int write_lzop_header(vma_out *o, GError **err)
{
    static const uint8_t magic[9] = {0x89, 'L', 'Z', 'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a};
    uint8_t h[9 + 34];
    memcpy(h, magic, 9);
    uint8_t *p = h + 9;
    int method = o->level == 1 ? 2 : o->level <= 6 ? 1 : 3;
    int level = o->level == 1 ? 1 : o->level <= 6 ? 5 : o->level;
    uint64_t now = (uint64_t)time(NULL);
    vma_put_be16(p, 0x1040);                      /* as lzop 1.04 */
    vma_put_be16(p + 2, (uint16_t)(lzo_version() & 0xffff));
    vma_put_be16(p + 4, 0x0940);                  /* needed to extract */
    p[6] = (uint8_t)method;
    p[7] = (uint8_t)level;
    vma_put_be32(p + 8, LZO_F_OS_UNIX | LZO_F_STDIN | LZO_F_STDOUT | LZO_F_ADLER32_D);
    vma_put_be32(p + 12, 0);                      /* mode */
    vma_put_be32(p + 16, (uint32_t)now);
    vma_put_be32(p + 20, (uint32_t)(now >> 32));
    p[24] = 0;                                    /* no name */
    vma_put_be32(p + 25, (uint32_t)adler32(1, p, 25));
    return out_write(o, h, 9 + 29, err);
}

/* one frame, fed to the compressor a slice at a time: the bytes do not
 * depend on the slices (they are the same for every frame), and a stop is
 * seen within a slice */
static void compress_job(worker *wk, job *j)
{
    vma_out *o = wk->o;
    if (o->comp == VMA_COMPRESS_ZSTD) {
        ZSTD_CCtx_reset(wk->zc, ZSTD_reset_session_only);
        ZSTD_CCtx_setPledgedSrcSize(wk->zc, j->in_len);
        ZSTD_inBuffer in = {j->in, 0, 0};
        ZSTD_outBuffer out = {j->out, o->out_size, 0};
        for (;;) {
            if (stopped(o, j))
                return;
            in.size = MIN(j->in_len, in.size + SLICE);
            ZSTD_EndDirective mode = in.size == j->in_len ? ZSTD_e_end : ZSTD_e_continue;
            size_t r = ZSTD_compressStream2(wk->zc, &out, &in, mode);
            if (ZSTD_isError(r)) {
                j->error = g_strdup_printf("zstd: %s", ZSTD_getErrorName(r));
                return;
            }
            if (mode == ZSTD_e_end && r == 0)
                break;
            if (mode == ZSTD_e_continue && in.pos < in.size) {
                /* the output holds a whole frame: it never stops early */
                j->error = g_strdup("zstd: the frame did not fit its buffer");
                return;
            }
        }
        j->out_len = out.pos;
        return;
    }
    if (o->comp == VMA_COMPRESS_LZO) {
        compress_lzo(wk, j);
        return;
    }
    /* gzip: one member */
    if (deflateReset(&wk->zs) != Z_OK) {
        j->error = g_strdup("gzip compression failed");
        return;
    }
    wk->zs.next_in = j->in;
    wk->zs.avail_in = 0;
    wk->zs.next_out = j->out;
    wk->zs.avail_out = (uInt)o->out_size;
    size_t fed = 0;
    for (;;) {
        if (stopped(o, j))
            return;
        size_t k = MIN(j->in_len - fed, SLICE);
        wk->zs.avail_in += (uInt)k;
        fed += k;
        int flush = fed == j->in_len ? Z_FINISH : Z_NO_FLUSH;
        int ret = deflate(&wk->zs, flush);
        if (flush == Z_FINISH && ret == Z_STREAM_END)
            break;
        if (ret != Z_OK || wk->zs.avail_in != 0) {
            j->error = g_strdup("gzip compression failed");
            return;
        }
    }
    j->out_len = o->out_size - wk->zs.avail_out;
}

static gpointer worker_main(gpointer data)
{
    worker *wk = data;
    vma_out *o = wk->o;
    for (;;) {
        job *j = vma_queue_pop(o->todo);
        if (!j)
            return NULL; /* closed */
        j->out = buf_get(o, o->free_out, o->out_size);
        compress_job(wk, j);
        vma_mutex_lock(&o->lock);
        g_ptr_array_add(o->free_in, j->in);
        j->in = NULL;
        j->done = TRUE;
        vma_cond_broadcast(&o->cond);
        vma_mutex_unlock(&o->lock);
    }
}

static void job_free(job *j)
{
    g_free(j->error);
    g_free(j);
}

/* n more bytes were written: start writing them out every KICK_BYTES (the
 * final fsync then waits for the last few MiB only, not for the archive) */
static void written(vma_out *o, size_t n)
{
    if (!o->kick)
        return;
    o->kick_pending += n;
    if (o->kick_pending < KICK_BYTES)
        return;
    if (sync_file_range(o->fd, (off_t)o->kick_from, (off_t)o->kick_pending, SYNC_FILE_RANGE_WRITE) < 0)
        o->kick = FALSE; /* not supported here: the fsync does it all */
    o->kick_from += o->kick_pending;
    o->kick_pending = 0;
}

/* write the pieces of iov (modified) to the file: through the sink when
 * there is one, else at the descriptor's offset */
static int out_writev(vma_out *o, struct iovec *iov, int n, GError **err)
{
    if (o->sink)
        return vma_dsink_writev(o->sink, iov, n, err);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (vma_writev_all(o->fd, iov, n, -1, err) < 0)
        return -1;
    written(o, total);
    return 0;
}

static int out_write(vma_out *o, const void *buf, size_t n, GError **err)
{
    struct iovec iov = {(void *)buf, n};
    return out_writev(o, &iov, 1, err);
}

/* with plock: tell on_frame of the pending frames now in the file */
static void tell_durable(vma_out *o)
{
    pframe *f;
    while ((f = g_queue_peek_head(&o->pending)) && f->end <= o->durable) {
        g_queue_pop_head(&o->pending);
        o->on_frame(o->frame_ud, f->csize, f->dsize);
        g_free(f);
    }
}

/* the sink's thread: the bytes before end are in the file */
static void sink_done(void *ud, uint64_t end)
{
    vma_out *o = ud;
    vma_mutex_lock(&o->plock);
    o->durable = end;
    tell_durable(o);
    vma_mutex_unlock(&o->plock);
}

/* frame j was written: tell on_frame now, or (a sink) once it is in the file */
static void frame_written(vma_out *o, const job *j)
{
    if (!o->on_frame)
        return;
    if (!o->sink) {
        o->on_frame(o->frame_ud, j->out_len, j->in_len);
        return;
    }
    pframe *f = g_new(pframe, 1);
    *f = (pframe){vma_dsink_offset(o->sink), j->out_len, j->in_len};
    vma_mutex_lock(&o->plock);
    g_queue_push_tail(&o->pending, f);
    tell_durable(o);
    vma_mutex_unlock(&o->plock);
}

static int write_raw(vma_out *o, job *j, GError **err);

/* wait for the oldest frame in flight and write it; with block FALSE only
 * if it is done already.  1: written, 0: nothing written, -1: error */
static int write_oldest(vma_out *o, gboolean block, GError **err)
{
    job *j = g_queue_peek_head(&o->inflight);
    if (!j)
        return 0;
    vma_mutex_lock(&o->lock);
    while (!j->done && block && !vma_interrupted())
        vma_cond_wait_ms(&o->cond, &o->lock, 50);
    gboolean done = j->done;
    vma_mutex_unlock(&o->lock);
    if (!done && block) {
        /* interrupted: the workers drop their frames */
        g_atomic_int_set(&o->stop, 1);
        o->failed = TRUE;
        g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
        return -1;
    }
    if (!done)
        return 0;
    g_queue_pop_head(&o->inflight);
    int rc = 1;
    if (j->error) {
        g_set_error(err, VMA_ERROR, strcmp(j->error, "interrupted") ? VMA_ERR_IO : VMA_ERR_INTERRUPTED,
                    "%s", j->error);
        rc = -1;
    } else if (j->raw ? write_raw(o, j, err) < 0 : out_write(o, j->out, j->out_len, err) < 0) {
        rc = -1;
    }
    if (rc > 0 && o->comp == VMA_COMPRESS_ZSTD) {
        uint8_t e[8];
        vma_put_le32(e, (uint32_t)j->out_len);
        vma_put_le32(e + 4, (uint32_t)j->in_len);
        g_byte_array_append(o->seek, e, 8);
        o->n_frames++;
    }
    if (rc > 0)
        frame_written(o, j);
    if (j->raw)
        buf_put(o, o->free_in, j->in);
    else
        buf_put(o, o->free_out, j->out);
    job_free(j);
    if (rc < 0)
        o->failed = TRUE;
    return rc;
}

/* the error of a call after a failure: the failure itself when it was not
 * returned (an interrupt seen at a mark), else that it failed before */
static void failed_before(vma_out *o, GError **err)
{
    if (o->failure)
        g_propagate_error(err, g_error_copy(o->failure));
    else
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "the archive output failed before");
}

/* The frame j->in as zstd stores data it does not compress: a frame
 * header with the content size and the checksum flag, raw blocks of at
 * most 128 KiB, the low 32 bits of XXH64 of the content.  Made by the
 * writing thread when every worker is busy (vma_out_set_adaptive), and
 * written from the frame's own buffer (write_raw): no copy; the frame is
 * as valid and as checked as a compressed one. */
static void make_raw_frame(vma_out *o, job *j)
{
    j->raw = TRUE;
    j->done = TRUE;
    size_t blocks = (j->in_len + ZSTD_BLOCKSIZE_MAX - 1) / ZSTD_BLOCKSIZE_MAX;
    j->out_len = 13 + j->in_len + 3 * blocks + 4;
    o->raw_frames++;
}

/* write the raw frame of job j: header, block headers and the bytes in
 * place, checksum */
static int write_raw(vma_out *o, job *j, GError **err)
{
    uint8_t head[13], sum[4];
    vma_put_le32(head, 0xFD2FB528u);
    head[4] = 0xE4;  /* content size on 8 bytes, single segment, checksum */
    uint64_t n = j->in_len;
    for (int i = 0; i < 8; i++)
        head[5 + i] = (uint8_t)(n >> (8 * i));
    vma_put_le32(sum, (uint32_t)XXH64(j->in, j->in_len, 0));
    /* up to 64 blocks at a time: 2 pieces each, and the header or checksum */
    enum { BATCH = 64 };
    struct iovec iov[2 * BATCH + 2];
    uint8_t bh[BATCH][3];
    size_t done = 0;
    int niov = 0;
    iov[niov++] = (struct iovec){head, sizeof(head)};
    while (done < j->in_len) {
        int b = 0;
        while (b < BATCH && done < j->in_len) {
            size_t k = MIN(j->in_len - done, (size_t)ZSTD_BLOCKSIZE_MAX);
            uint32_t h = (uint32_t)k << 3 | (done + k == j->in_len ? 1u : 0u); /* raw block */
            bh[b][0] = (uint8_t)h;
            bh[b][1] = (uint8_t)(h >> 8);
            bh[b][2] = (uint8_t)(h >> 16);
            iov[niov++] = (struct iovec){bh[b], 3};
            iov[niov++] = (struct iovec){j->in + done, k};
            done += k;
            b++;
        }
        if (done == j->in_len)
            iov[niov++] = (struct iovec){sum, sizeof(sum)};
        if (out_writev(o, iov, niov, err) < 0)
            return -1;
        niov = 0;
    }
    return 0;
}

/* hand the frame being filled, its first len bytes, to the workers */
static int submit(vma_out *o, size_t len, GError **err)
{
    if (!o->fill)
        return 0;
    if (len == 0) {
        buf_put(o, o->free_in, o->fill);
        o->fill = NULL;
        return 0;
    }
    /* at most n_workers frames in flight (adaptive: frames given to the
     * workers; raw ones wait only to be written in order) */
    gboolean raw = o->n_workers == 0; /* adaptive without workers: all raw */
    while (!raw && g_queue_get_length(&o->inflight) >= o->n_workers) {
        if (o->adaptive && o->comp == VMA_COMPRESS_ZSTD &&
            g_queue_get_length(&o->inflight) < 2 * (guint)o->n_workers + 2) {
            int w = write_oldest(o, FALSE, err);
            if (w < 0)
                return -1;
            if (w == 0 && vma_queue_length(o->todo) > 0) {
                raw = TRUE; /* a frame still waits for a worker: do not add one */
                break;
            }
            if (w == 0)
                break; /* every worker busy with a frame, none queued: take it */
            continue;
        }
        if (write_oldest(o, TRUE, err) < 0)
            return -1;
    }
    job *j = g_new0(job, 1);
    j->in = o->fill;
    j->in_len = len;
    o->fill = NULL;
    o->fill_len = 0;
    o->ext_start = 0;
    g_queue_push_tail(&o->inflight, j);
    if (raw)
        make_raw_frame(o, j);
    else
        vma_queue_push(o->todo, j);
    /* write what is ready, without waiting */
    int rc;
    while ((rc = write_oldest(o, FALSE, err)) > 0)
        ;
    return rc;
}

static int framed_write(vma_out *o, const struct iovec *iov, int n, GError **err)
{
    if (o->failed) {
        failed_before(o, err);
        return -1;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    if (o->fill && o->ext_start > 0 && o->fill_len - o->ext_start + total >= FRAME_BYTES) {
        /* this extent reaches FRAME_BYTES: it starts a frame of its own,
         * with what of it is in the frame already (nothing when it comes in
         * one call, as the writer sends it) */
        size_t at = o->ext_start, ext_len = o->fill_len - at;
        uint8_t *next = NULL;
        if (ext_len) {
            /* one buffer more than submit() counts on: make room first */
            while (g_queue_get_length(&o->inflight) >= o->n_workers)
                if (write_oldest(o, TRUE, err) < 0)
                    return -1;
            next = buf_get(o, o->free_in, FRAME_CAP);
            memcpy(next, o->fill + at, ext_len);
        }
        if (submit(o, at, err) < 0) {
            if (next)
                buf_put(o, o->free_in, next);
            return -1;
        }
        o->fill = next;
        o->fill_len = ext_len;
        o->ext_start = 0;
    }
    for (int i = 0; i < n; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            if (!o->fill) {
                o->fill = buf_get(o, o->free_in, FRAME_CAP);
                o->fill_len = 0;
                o->ext_start = 0;
            }
            /* an extent that began the frame: cut every FRAME_BYTES; one
             * that began later stays shorter than FRAME_BYTES (see above) */
            size_t room = o->ext_start == 0 ? FRAME_BYTES - o->fill_len : FRAME_CAP - o->fill_len;
            size_t k = MIN(left, room);
            memcpy(o->fill + o->fill_len, p, k);
            o->fill_len += k;
            p += k;
            left -= k;
            if (o->ext_start == 0 && o->fill_len == FRAME_BYTES && submit(o, o->fill_len, err) < 0)
                return -1;
        }
    }
    return 0;
}

void vma_out_mark(vma_out *o)
{
    /* lzo: nothing reads an lzop file at random; its frames are runs of
     * whole 256 KiB blocks, cut every FRAME_BYTES as lzop cuts them */
    if (!o->framed || !o->fill || o->failed || o->comp == VMA_COMPRESS_LZO)
        return;
    if (o->fill_len >= FRAME_BYTES) {
        /* an error shows at the next write or at the end, as it was */
        if (submit(o, o->fill_len, &o->failure) < 0)
            o->failed = TRUE;
        return;
    }
    o->ext_start = o->fill_len;
}

/* a worker's zstd context: the level, a checksum and the content size in
 * every frame, and the frame's buffers as zstd's window and output (no
 * copies, no buffers of its own) */
static gboolean zstd_setup(ZSTD_CCtx *zc, int level, GError **err)
{
    static const struct {
        ZSTD_cParameter p;
        const char *name;
    } params[] = {
        {ZSTD_c_compressionLevel, "level"},   {ZSTD_c_checksumFlag, "checksum"},
        {ZSTD_c_contentSizeFlag, "content size"}, {ZSTD_c_stableInBuffer, "stable input"},
        {ZSTD_c_stableOutBuffer, "stable output"},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(params); i++) {
        size_t r = ZSTD_CCtx_setParameter(zc, params[i].p, i == 0 ? level : 1);
        if (ZSTD_isError(r)) {
            g_set_error(err, VMA_ERROR, VMA_ERR_IO, "zstd refused the parameter %s: %s",
                        params[i].name, ZSTD_getErrorName(r));
            return FALSE;
        }
    }
    return TRUE;
}

vma_out *vma_out_new(int fd, vma_compress c, int level, int threads, GError **err)
{
    /* zstd's fast levels (negative) are for the library's own caches */
    gboolean fast = c == VMA_COMPRESS_ZSTD && level < 0 && level >= ZSTD_minCLevel();
    if (!fast && !vma_compress_check(c, level, threads, err))
        return NULL;
    if (fast)
        level = MAX(level, ZSTD_minCLevel());
    vma_out *o = g_new0(vma_out, 1);
    o->fd = fd;
    o->comp = c;
    struct stat st;
    off_t pos;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (pos = lseek(fd, 0, SEEK_CUR)) >= 0) {
        o->kick = TRUE;
        o->kick_from = (uint64_t)pos;
    }
    int def;
    vma_compress_levels(c, NULL, NULL, &def);
    o->level = level ? level : def;
    vma_mutex_init(&o->lock);
    vma_cond_init(&o->cond);
    vma_mutex_init(&o->plock);
    g_queue_init(&o->inflight);
    g_queue_init(&o->pending);
    if (c == VMA_COMPRESS_LZO && !vma_lzo_ready()) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "liblzo2 does not work (lzo_init failed)");
        goto fail;
    }
    if (c == VMA_COMPRESS_LZO && write_lzop_header(o, err) < 0)
        goto fail;
    if (c != VMA_COMPRESS_NONE) {
        o->framed = TRUE;
        /* threads < 0 (zstd, for vma_out_set_adaptive): no worker, every
         * frame stored raw */
        o->n_workers = threads < 0 && fast ? 0
                       : threads ? (unsigned)threads
                                 : (unsigned)MAX(1, MIN(g_get_num_processors(), VMA_MAX_THREADS));
        o->adaptive = o->n_workers == 0;
        /* a frame is less than FRAME_CAP; compressed it may grow a little */
        o->out_size = c == VMA_COMPRESS_ZSTD   ? ZSTD_compressBound(FRAME_CAP)
                      : c == VMA_COMPRESS_LZO ? FRAME_CAP + (FRAME_CAP / LZO_BLOCK + 1) *
                                                                LZO_BLOCK_HEADER + LZO_SLACK
                                               : (size_t)compressBound((uLong)FRAME_CAP) + 64;
        o->free_in = g_ptr_array_new();
        o->free_out = g_ptr_array_new();
        o->all_bufs = g_ptr_array_new_with_free_func(g_free);
        o->todo = vma_queue_new();
        if (c == VMA_COMPRESS_ZSTD)
            o->seek = g_byte_array_new();
        o->workers = g_new0(worker, o->n_workers);
        for (unsigned i = 0; i < o->n_workers; i++) {
            worker *wk = &o->workers[i];
            wk->o = o;
            if (c == VMA_COMPRESS_ZSTD) {
                wk->zc = ZSTD_createCCtx();
                if (!wk->zc) {
                    g_set_error(err, VMA_ERROR, VMA_ERR_IO, "out of memory for zstd");
                    goto fail;
                }
                if (!zstd_setup(wk->zc, o->level, err))
                    goto fail;
            } else if (c == VMA_COMPRESS_LZO) {
                wk->lzo_mem = g_malloc(o->level == 1   ? LZO1X_1_15_MEM_COMPRESS
                                       : o->level <= 6 ? LZO1X_1_MEM_COMPRESS
                                                       : LZO1X_999_MEM_COMPRESS);
                if (o->level >= 7)
                    wk->lzo_tmp = g_malloc(LZO_BLOCK);
            } else {
                if (deflateInit2(&wk->zs, o->level, Z_DEFLATED, 15 + 16, 8,
                                 Z_DEFAULT_STRATEGY) != Z_OK) {
                    g_set_error(err, VMA_ERROR, VMA_ERR_IO, "zlib initialisation failed");
                    goto fail;
                }
                wk->zs_init = TRUE;
            }
        }
        for (unsigned i = 0; i < o->n_workers; i++)
            if (!(o->workers[i].thread = vma_thread_new("vma-compress", worker_main,
                                                         &o->workers[i], err)))
                goto fail;
    }
    return o;
fail:
    vma_out_free(o);
    return NULL;
}

int vma_out_write(vma_out *o, const void *buf, size_t n, GError **err)
{
    struct iovec iov = {(void *)buf, n};
    return vma_out_writev(o, &iov, 1, err);
}

int vma_out_writev(vma_out *o, struct iovec *iov, int n, GError **err)
{
    if (o->framed)
        return framed_write(o, iov, n, err);
    return out_writev(o, iov, n, err);
}

/* the skippable frame of the zstd seekable format: every frame's
 * compressed and decompressed size, then the footer */
static int write_seek_table(vma_out *o, GError **err)
{
    uint8_t head[8], foot[9];
    uint64_t size = (uint64_t)o->seek->len + sizeof(foot);
    if (size > UINT32_MAX) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "too many zstd frames for a seek table");
        return -1;
    }
    vma_put_le32(head, SKIPPABLE_MAGIC);
    vma_put_le32(head + 4, (uint32_t)size);
    vma_put_le32(foot, o->n_frames);
    foot[4] = 0; /* descriptor: no checksums */
    vma_put_le32(foot + 5, SEEKABLE_MAGIC);
    struct iovec iov[3] = {{head, sizeof(head)}, {o->seek->data, o->seek->len}, {foot, sizeof(foot)}};
    return out_writev(o, iov, 3, err);
}

int vma_out_finish(vma_out *o, GError **err)
{
    int ret = 0;
    if (o->framed) {
        if (o->failed) {
            failed_before(o, err);
            return -1;
        }
        ret = submit(o, o->fill_len, err);
        while (ret == 0 && !g_queue_is_empty(&o->inflight))
            if (write_oldest(o, TRUE, err) < 0)
                ret = -1;
        if (ret == 0 && o->comp == VMA_COMPRESS_ZSTD)
            ret = write_seek_table(o, err);
        if (ret == 0 && o->comp == VMA_COMPRESS_LZO) {
            static const uint8_t end[4] = {0}; /* a block of length 0: the end */
            ret = out_write(o, end, sizeof(end), err);
        }
    }
    if (ret == 0 && o->sink)
        ret = vma_dsink_finish(o->sink, err);
    if (ret < 0) {
        o->failed = TRUE;
        return -1;
    }
    struct stat st;
    if (!o->no_sync && fstat(o->fd, &st) == 0 && S_ISREG(st.st_mode) && fsync(o->fd) < 0) {
        vma_set_errno(err, errno, "fsync of the archive failed");
        return -1;
    }
    return 0;
}

void vma_out_set_frame_fn(vma_out *o, vma_out_frame_fn fn, void *ud)
{
    o->on_frame = fn;
    o->frame_ud = ud;
}

void vma_out_set_adaptive(vma_out *o, gboolean on) { o->adaptive = on; }

void vma_out_set_no_sync(vma_out *o)
{
    o->no_sync = TRUE;
    o->kick = FALSE;
}
uint64_t vma_out_raw_frames(const vma_out *o) { return o->raw_frames; }

gboolean vma_out_set_direct(vma_out *o)
{
    if (o->sink || o->comp != VMA_COMPRESS_ZSTD || o->failed)
        return FALSE;
    o->sink = vma_dsink_new(o->fd, sink_done, o);
    return o->sink != NULL;
}

gboolean vma_out_direct(const vma_out *o) { return o->sink && vma_dsink_direct(o->sink); }

int vma_out_flush(vma_out *o, GError **err)
{
    return o->sink ? vma_dsink_flush(o->sink, err) : 0;
}

void vma_out_free(vma_out *o)
{
    if (!o)
        return;
    vma_dsink_free(o->sink); /* its thread has ended: nothing is told after */
    g_queue_clear_full(&o->pending, g_free);
    if (o->workers) {
        /* what is still queued or compressed is dropped */
        g_atomic_int_set(&o->stop, 1);
        vma_queue_close(o->todo);
        for (unsigned i = 0; i < o->n_workers; i++) {
            worker *wk = &o->workers[i];
            if (wk->thread)
                vma_thread_join(wk->thread);
            if (wk->zc)
                ZSTD_freeCCtx(wk->zc);
            if (wk->zs_init)
                deflateEnd(&wk->zs);
            g_free(wk->lzo_mem);
            g_free(wk->lzo_tmp);
        }
        g_free(o->workers);
    }
    /* the workers have ended: every job and buffer is ours again */
    job *j;
    while ((j = g_queue_pop_head(&o->inflight)))
        job_free(j);
    if (o->free_in)
        g_ptr_array_free(o->free_in, TRUE);
    if (o->free_out)
        g_ptr_array_free(o->free_out, TRUE);
    if (o->all_bufs)
        g_ptr_array_free(o->all_bufs, TRUE);
    vma_queue_unref(o->todo);
    if (o->seek)
        g_byte_array_free(o->seek, TRUE);
    g_clear_error(&o->failure);
    vma_mutex_clear(&o->lock);
    vma_cond_clear(&o->cond);
    vma_mutex_clear(&o->plock);
    g_free(o);
}
