/* input.c - buffered archive input with transparent decompression (zstd,
 * gzip, lzop: lzop.c), in a decoder thread that runs ahead of the reader;
 * a compressed archive in a file is read, in turn, by a thread of its own
 * ahead of the decoder.  The output side is in output.c. */
#define _GNU_SOURCE
#include "codec/codec.h"

#include <stdatomic.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>
#include <isa-l/igzip_lib.h>
#include <zstd.h>

#define RAW_BUF_SIZE (1u << 20)

/* ---- input ---- */

/* a decoder thread runs ahead of the reader (zstd, gzip, lzo, and a plain
 * archive from a pipe): decompression (or the pipe's writer) on one core
 * while the restore writes on the other */
#define AHEAD_CHUNK  (4u << 20)
#define AHEAD_CHUNKS 3
#define PIPE_CHUNK   (1u << 20)
/* a compressed archive in a file is read by a thread of its own, ahead of
 * the decompression: the kernel's copy and the waits for the disk (which
 * the copy being written shares) leave the decoder's core */
#define READ_CHUNK   (1u << 20)   /* 4 MiB: no faster, 12 MiB more memory */
#define READ_CHUNKS  4
#define PIPE_WAIT_MS 20

typedef struct {
    uint8_t *data;
    size_t len;
    gboolean last;        /* the stream ends (or broke) after these bytes */
    GError *err;          /* why it broke */
} ahead_chunk;

/* chunks handed between two threads: the one that fills them pops empty
 * ones and pushes them full, the one that takes them the other way round */
typedef struct {
    vma_queue *full;
    vma_queue *empty;     /* closed: the filling thread stops */
    ahead_chunk *chunks;
    unsigned n;
} chunk_pool;

static void pool_init(chunk_pool *p, unsigned n, size_t size)
{
    p->full = vma_queue_new();
    p->empty = vma_queue_new();
    p->chunks = g_new0(ahead_chunk, n);
    p->n = n;
    for (unsigned i = 0; i < n; i++) {
        p->chunks[i].data = g_malloc(size);
        vma_queue_push(p->empty, &p->chunks[i]);
    }
}

/* with no thread left that uses it */
static void pool_clear(chunk_pool *p)
{
    for (unsigned i = 0; i < p->n; i++) {
        g_clear_error(&p->chunks[i].err);
        g_free(p->chunks[i].data);
    }
    g_clear_pointer(&p->chunks, g_free);
    g_clear_pointer(&p->full, vma_queue_unref);
    g_clear_pointer(&p->empty, vma_queue_unref);
    p->n = 0;
}

struct vma_in {
    _Atomic uint64_t raw_read; /* bytes read from fd so far (any thread) */
    vma_src *src;         /* random access: reads and skips move pos */
    vma_thread *ahead;    /* the decoder thread, or NULL */
    chunk_pool ah;        /* decoded chunks, for the reader */
    ahead_chunk *cur;     /* being consumed */
    size_t cur_pos;
    gboolean ahead_done;  /* the last chunk was consumed */
    gboolean want_ahead;  /* a decoder thread once reads start in earnest */
    gboolean no_thread;   /* none could be started: decode in the reader's */
    gboolean polled;      /* reads of fd wait in steps (set before the thread
                             starts, read by it) */
    gint ahead_stop;
    uint64_t pos;
    int fd;
    vma_compress comp;
    gboolean seekable;    /* a regular file read plain: skips are lseeks */
    gboolean regular;     /* a regular file (reads never wait for a writer) */
    uint64_t file_size;
    uint8_t *raw;         /* the compressed bytes at hand: raw_mem or a read chunk */
    uint8_t *raw_mem;
    size_t raw_len, raw_pos;
    vma_thread *reader;   /* the reading thread, or NULL */
    chunk_pool rd;        /* its chunks of compressed bytes, for the decoder */
    ahead_chunk *rd_cur;  /* the chunk raw points into */
    gboolean raw_eof;
    ZSTD_DStream *zd;
    size_t zret;          /* last ZSTD_decompressStream result: 0 = frame done */
    struct inflate_state *gz; /* ISA-L's inflater (igzip): gzip at 2x zlib's speed */
    gboolean gz_member_done;
    gboolean stream_end;
    vma_lzop *lz;
    uint8_t peek[4];
    size_t peek_len;
};

static ssize_t read_fd(int fd, void *buf, size_t n, GError **err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0) {
            if (errno == EINTR && !vma_interrupted())
                continue;
            vma_set_errno(err, errno, "read failed");
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* one read(2) of the input, at most n bytes (0 at the end); polled (the
 * decoder thread's reads of a pipe) waits in steps, so that the thread can
 * be stopped while a pipe stalls */
static ssize_t read_once(vma_in *in, gboolean polled, uint8_t *buf, size_t n, GError **err)
{
    if (polled) {
        struct pollfd pfd = {in->fd, POLLIN, 0};
        for (;;) {
            int pr = poll(&pfd, 1, 100);
            if (pr > 0 || (pr < 0 && errno != EINTR))
                break;
            if (g_atomic_int_get(&in->ahead_stop) || vma_interrupted()) {
                g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
                return -1;
            }
        }
    }
    ssize_t r;
    do {
        r = read(in->fd, buf, n);
    } while (r < 0 && errno == EINTR && !vma_interrupted());
    if (r > 0)
        atomic_fetch_add_explicit(&in->raw_read, (uint64_t)r, memory_order_relaxed);
    if (r < 0) {
        vma_set_errno(err, errno, "read failed");
        return -1;
    }
    return r;
}

/* read_once in the thread that decodes: 0 sets raw_eof (the reading
 * thread's chunks say it instead) */
static ssize_t read_some(vma_in *in, uint8_t *buf, size_t n, GError **err)
{
    ssize_t r = read_once(in, in->polled, buf, n, err);
    if (r == 0)
        in->raw_eof = TRUE;
    return r;
}

/* the next chunk of the reading thread, for the one thread that decodes */
static ssize_t raw_next_chunk(vma_in *in, GError **err)
{
    if (in->rd_cur) {
        gboolean last = in->rd_cur->last;
        GError *e = in->rd_cur->err;
        in->rd_cur->err = NULL;
        vma_queue_push(in->rd.empty, in->rd_cur);
        in->rd_cur = NULL;
        in->raw_len = in->raw_pos = 0;
        if (last) {
            in->raw_eof = TRUE;
            if (e) {
                g_propagate_error(err, e);
                return -1;
            }
            return 0;
        }
    }
    ahead_chunk *c;
    while (!(c = vma_queue_pop_timeout(in->rd.full, 100, NULL))) {
        if (g_atomic_int_get(&in->ahead_stop) || vma_interrupted()) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            return -1;
        }
    }
    in->rd_cur = c;
    in->raw = c->data;
    in->raw_pos = 0;
    in->raw_len = c->len;
    if (c->len == 0)
        return raw_next_chunk(in, err); /* the end, or what broke */
    return (ssize_t)c->len;
}

static gpointer reader_main(gpointer data)
{
    vma_in *in = data;
    for (;;) {
        ahead_chunk *c = vma_queue_pop(in->rd.empty);
        if (!c)
            return NULL; /* closed: stopped */
        c->len = 0;
        c->last = FALSE;
        while (c->len < READ_CHUNK && !c->last) {
            /* a regular file: no poll */
            ssize_t r = read_once(in, FALSE, c->data + c->len, READ_CHUNK - c->len, &c->err);
            if (r <= 0)
                c->last = TRUE;
            else
                c->len += (size_t)r;
        }
        vma_queue_push(in->rd.full, c);
        if (c->last)
            return NULL;
    }
}

/* the reading thread, before any thread decodes (which sees in->reader);
 * none when the system has no thread to give: the decoder reads itself */
static void reader_start(vma_in *in)
{
    pool_init(&in->rd, READ_CHUNKS, READ_CHUNK);
    in->reader = vma_thread_new("vma-read", reader_main, in, NULL);
    if (!in->reader)
        pool_clear(&in->rd);
}

/* refill the raw buffer; returns bytes available, 0 at end, -1 on error */
static ssize_t raw_fill(vma_in *in, GError **err)
{
    if (in->raw_pos < in->raw_len)
        return (ssize_t)(in->raw_len - in->raw_pos);
    if (in->raw_eof)
        return 0;
    if (in->reader)
        return raw_next_chunk(in, err);
    ssize_t r = read_some(in, in->raw, RAW_BUF_SIZE, err);
    if (r < 0)
        return -1;
    in->raw_pos = 0;
    in->raw_len = (size_t)r;
    return r;
}

/* for the lzop decoder: n bytes of the compressed stream */
static ssize_t raw_exact(void *ctx, void *buf, size_t n, GError **err)
{
    vma_in *in = ctx;
    size_t got = 0;
    while (got < n) {
        ssize_t avail = raw_fill(in, err);
        if (avail < 0)
            return -1;
        if (avail == 0)
            break;
        size_t k = MIN(n - got, (size_t)avail);
        memcpy((uint8_t *)buf + got, in->raw + in->raw_pos, k);
        in->raw_pos += k;
        got += k;
    }
    return (ssize_t)got;
}

static gboolean ahead_start(vma_in *in);
static void reader_stop(vma_in *in);

vma_in *vma_in_new(int fd, GError **err)
{
    vma_in *in = g_new0(vma_in, 1);
    in->fd = fd;
    in->raw = in->raw_mem = g_malloc(RAW_BUF_SIZE);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    struct stat st;
    gboolean have_st = fstat(fd, &st) == 0;
    gboolean pipe = have_st && S_ISFIFO(st.st_mode);
    in->regular = have_st && S_ISREG(st.st_mode);
    if (have_st && S_ISREG(st.st_mode) && lseek(fd, 0, SEEK_CUR) >= 0) {
        in->seekable = TRUE;
        in->file_size = (uint64_t)st.st_size;
    }

    ssize_t r = read_fd(fd, in->peek, 4, err);
    if (r > 0)
        atomic_store(&in->raw_read, (uint64_t)r);
    if (r < 0)
        goto fail;
    in->peek_len = (size_t)r;
    in->comp = vma_codec_by_magic(in->peek, in->peek_len)->id;
    if (in->comp == VMA_COMPRESS_ZSTD) {
        in->zd = ZSTD_createDStream();
        if (!in->zd) {
            g_set_error(err, VMA_ERROR, VMA_ERR_IO, "out of memory for zstd");
            goto fail;
        }
    } else if (in->comp == VMA_COMPRESS_GZIP) {
        in->gz = g_new(struct inflate_state, 1);
        isal_inflate_init(in->gz);
        in->gz->crc_flag = ISAL_GZIP; /* the header parsed, the CRC-32 and length checked */
    } else if (in->comp == VMA_COMPRESS_LZO) {
        in->lz = vma_lzop_new(raw_exact, in);
        if (!in->lz) {
            g_set_error(err, VMA_ERROR, VMA_ERR_IO, "liblzo2 does not work (lzo_init failed)");
            goto fail;
        }
    }
    if (in->comp != VMA_COMPRESS_NONE)
        in->seekable = FALSE;
    memcpy(in->raw, in->peek, in->peek_len);
    in->raw_len = in->peek_len;
    /* a plain archive from a pipe: a bigger pipe (fewer switches between
     * its writer and us; best effort) and a thread reading it ahead, as for
     * a compressed one */
    if (in->comp == VMA_COMPRESS_NONE && pipe)
        fcntl(fd, F_SETPIPE_SZ, (int)RAW_BUF_SIZE);
    /* the decoder thread starts with the first extent (vma_in_start):
     * the header is read here, without a thread, so that a process may
     * open an archive and then fork (vma-fuse, nbdkit) */
    in->want_ahead = in->comp != VMA_COMPRESS_NONE || pipe;
    return in;
fail:
    vma_in_free(in);
    return NULL;
}

vma_in *vma_in_new_src(vma_src *src)
{
    vma_in *in = g_new0(vma_in, 1);
    in->src = src;
    in->fd = -1;
    in->comp = vma_src_compression(src);
    return in;
}

static ssize_t read_src(vma_in *in, void *buf, size_t n, GError **err)
{
    ssize_t got = vma_src_pread(in->src, buf, n, in->pos, err);
    if (got > 0)
        in->pos += (uint64_t)got;
    return got;
}

vma_compress vma_in_compression(const vma_in *in) { return in->comp; }
uint64_t vma_in_raw_offset(vma_in *in)
{
    return in->src ? in->pos : atomic_load_explicit(&in->raw_read, memory_order_relaxed);
}

static ssize_t read_plain(vma_in *in, uint8_t *buf, size_t n, GError **err)
{
    size_t got = 0;
    while (got < n) {
        if (in->raw_pos < in->raw_len) {
            size_t k = MIN(n - got, in->raw_len - in->raw_pos);
            memcpy(buf + got, in->raw + in->raw_pos, k);
            in->raw_pos += k;
            got += k;
            continue;
        }
        if (in->raw_eof)
            break;
        if (n - got >= VMA_EXTENT_HEADER_SIZE) {
            /* an extent header or its data: read straight into the
             * caller's buffer, without a copy through ours */
            size_t want = n - got;
            ssize_t r = read_fd(in->fd, buf + got, want, err);
            if (r > 0)
                atomic_fetch_add_explicit(&in->raw_read, (uint64_t)r, memory_order_relaxed);
            if (r < 0)
                return -1;
            got += (size_t)r;
            if ((size_t)r < want) {
                in->raw_eof = TRUE;
                break;
            }
            continue;
        }
        if (raw_fill(in, err) < 0)
            return -1;
    }
    return (ssize_t)got;
}

/* the decoders (run by the decoder thread): the bytes decoded, also when
 * the stream breaks after some of them; then err is set */
static ssize_t read_zstd(vma_in *in, uint8_t *buf, size_t n, GError **err)
{
    ZSTD_outBuffer out = {buf, n, 0};
    while (out.pos < out.size) {
        ssize_t avail = raw_fill(in, err);
        if (avail < 0)
            return (ssize_t)out.pos; /* err tells what broke */
        if (avail == 0) {
            if (in->zret != 0) {
                g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE,
                            "the zstd stream is truncated");
                return (ssize_t)out.pos; /* err tells what broke */
            }
            break;
        }
        ZSTD_inBuffer inb = {in->raw, in->raw_len, in->raw_pos};
        size_t ret = ZSTD_decompressStream(in->zd, &out, &inb);
        in->raw_pos = inb.pos;
        if (ZSTD_isError(ret)) {
            g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "zstd: %s",
                        ZSTD_getErrorName(ret));
            return (ssize_t)out.pos; /* err tells what broke */
        }
        in->zret = ret;
    }
    return (ssize_t)out.pos;
}

/* the message of an isal_inflate error */
static const char *gz_error(int ret)
{
    switch (ret) {
    case ISAL_INVALID_BLOCK: return "invalid deflate block";
    case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK: return "invalid distance too far back";
    case ISAL_INVALID_WRAPPER: return "not a gzip header";
    case ISAL_UNSUPPORTED_METHOD: return "unknown compression method";
    case ISAL_INCORRECT_CHECKSUM: return "incorrect data check (CRC-32 or length)";
    case ISAL_NEED_DICT: return "a preset dictionary is needed";
    default: return "corrupt data";
    }
}

static ssize_t read_gzip(vma_in *in, uint8_t *buf, size_t n, GError **err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t avail = raw_fill(in, err);
        if (avail < 0)
            return (ssize_t)got; /* err tells what broke */
        if (avail == 0) {
            if (!in->gz_member_done) {
                g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE,
                            "the gzip stream is truncated");
                return (ssize_t)got; /* err tells what broke */
            }
            break;
        }
        if (in->gz_member_done) {
            /* another gzip member follows (concatenated files) */
            isal_inflate_reset(in->gz);
            in->gz->crc_flag = ISAL_GZIP;
            in->gz_member_done = FALSE;
        }
        in->gz->next_in = in->raw + in->raw_pos;
        in->gz->avail_in = (uint32_t)MIN(in->raw_len - in->raw_pos, (size_t)UINT32_MAX);
        in->gz->next_out = buf + got;
        size_t want = MIN(n - got, (size_t)1 << 30);
        in->gz->avail_out = (uint32_t)want;
        int ret = isal_inflate(in->gz);
        in->raw_pos = (size_t)(in->gz->next_in - in->raw);
        got += want - in->gz->avail_out;
        if (ret < 0 || ret == ISAL_NEED_DICT) {
            g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "gzip: %s", gz_error(ret));
            return (ssize_t)got; /* err tells what broke */
        }
        if (in->gz->block_state == ISAL_BLOCK_FINISH)
            in->gz_member_done = TRUE;
    }
    return (ssize_t)got;
}

/* plain input from a pipe (the thread reads ahead, so that the writer of
 * the pipe, `zstd -dc` in Proxmox's restore, never waits for the restore's
 * writes): what is buffered, then reads straight into buf; less than n
 * without the end (raw_eof) or an error when the pipe has no more yet */
static ssize_t read_pipe(vma_in *in, uint8_t *buf, size_t n, GError **err)
{
    size_t got = MIN(n, in->raw_len - in->raw_pos);
    memcpy(buf, in->raw + in->raw_pos, got);
    in->raw_pos += got;
    /* at least one read, then on up to PIPE_CHUNK while the writer keeps
     * up (a hand-off per read would cost more than the copy), beyond that
     * what the pipe holds now: a writer that stalls gets what it sent
     * through within PIPE_WAIT_MS */
    struct pollfd pfd = {in->fd, POLLIN, 0};
    while (got < n && !in->raw_eof &&
           (got == 0 || poll(&pfd, 1, got < PIPE_CHUNK ? PIPE_WAIT_MS : 0) > 0)) {
        ssize_t r = read_some(in, buf + got, n - got, err);
        if (r < 0)
            break; /* err tells what broke */
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static ssize_t decode(vma_in *in, uint8_t *buf, size_t n, GError **err)
{
    switch (in->comp) {
    case VMA_COMPRESS_ZSTD: return read_zstd(in, buf, n, err);
    case VMA_COMPRESS_GZIP: return read_gzip(in, buf, n, err);
    case VMA_COMPRESS_LZO: return vma_lzop_read(in->lz, buf, n, err);
    default: return read_pipe(in, buf, n, err);
    }
}

static gpointer ahead_thread(gpointer data)
{
    vma_in *in = data;
    for (;;) {
        ahead_chunk *c = vma_queue_pop(in->ah.empty);
        if (!c)
            return NULL; /* closed: stopped */
        c->err = NULL;
        c->len = (size_t)decode(in, c->data, AHEAD_CHUNK, &c->err);
        /* a decoder fills the chunk unless the stream ends; a pipe gives
         * what it has */
        c->last = c->err != NULL ||
                  (in->comp == VMA_COMPRESS_NONE ? in->raw_eof : c->len < AHEAD_CHUNK);
        vma_queue_push(in->ah.full, c);
        if (c->last)
            return NULL;
    }
}

/* the decoder thread and its chunks; FALSE (nothing started) when the
 * system has no thread to give: the reads then decode themselves */
static gboolean ahead_start(vma_in *in)
{
    pool_init(&in->ah, AHEAD_CHUNKS, AHEAD_CHUNK);
    in->polled = TRUE;
    if (in->regular && in->comp != VMA_COMPRESS_NONE && !in->raw_eof)
        reader_start(in);
    in->ahead = vma_thread_new("vma-decode", ahead_thread, in, NULL);
    if (!in->ahead) {
        /* the reading thread (if any) stays: this thread decodes its chunks */
        in->polled = FALSE;
        pool_clear(&in->ah);
    }
    return in->ahead != NULL;
}

/* at the end (vma_in_free), once the decoder thread has stopped or never
 * started: nothing reads the chunks any more */
static void reader_stop(vma_in *in)
{
    if (!in->reader)
        return;
    vma_queue_close(in->rd.empty);
    vma_thread_join(in->reader);
    in->reader = NULL;
    pool_clear(&in->rd);
}

static void ahead_stop(vma_in *in)
{
    if (!in->ahead)
        return;
    /* a thread that waits for a chunk sees the queue closed; one that
     * waits for its input sees the flag within 100 ms (read_some) */
    g_atomic_int_set(&in->ahead_stop, 1);
    vma_queue_close(in->ah.empty);
    vma_thread_join(in->ahead);
    in->ahead = NULL;
    pool_clear(&in->ah);
}

/* the next chunk of the decoder, waiting in steps so that a signal stops
 * the wait; NULL with err when interrupted */
static ahead_chunk *ahead_next(vma_in *in, GError **err)
{
    for (;;) {
        ahead_chunk *c = vma_queue_pop_timeout(in->ah.full, 100, NULL);
        if (c)
            return c;
        if (vma_interrupted()) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            return NULL;
        }
    }
}

static ssize_t read_ahead(vma_in *in, uint8_t *buf, size_t n, GError **err)
{
    size_t got = 0;
    while (got < n && !in->ahead_done) {
        if (!in->cur) {
            in->cur = ahead_next(in, err);
            if (!in->cur)
                return -1;
            in->cur_pos = 0;
        }
        ahead_chunk *c = in->cur;
        size_t k = MIN(n - got, c->len - in->cur_pos);
        memcpy(buf + got, c->data + in->cur_pos, k);
        in->cur_pos += k;
        got += k;
        if (in->cur_pos < c->len)
            continue;
        if (c->last) {
            in->ahead_done = TRUE;
            if (c->err) {
                g_propagate_error(err, c->err);
                c->err = NULL;
                return -1;
            }
        } else {
            vma_queue_push(in->ah.empty, c);
        }
        in->cur = NULL;
    }
    return (ssize_t)got;
}

void vma_in_start(vma_in *in)
{
    if (in->want_ahead && !in->ahead && !in->ahead_done && !in->no_thread) {
        if (ahead_start(in))
            in->want_ahead = FALSE;
        else
            in->no_thread = TRUE;
    }
}

ssize_t vma_in_read(vma_in *in, void *buf, size_t n, GError **err)
{
    if (in->src)
        return read_src(in, buf, n, err);
    if (in->ahead)
        return read_ahead(in, buf, n, err);
    if (in->want_ahead && in->comp != VMA_COMPRESS_NONE) {
        /* before vma_in_start (or without a thread): in this thread; a
         * break is an error, as the decoder thread's last chunk is */
        GError *e = NULL;
        ssize_t r = decode(in, buf, n, &e);
        if (e) {
            g_propagate_error(err, e);
            in->ahead_done = TRUE;
            return -1;
        }
        return r;
    }
    return read_plain(in, buf, n, err);
}

ssize_t vma_in_skip(vma_in *in, size_t n, GError **err)
{
    size_t done = 0;
    if (in->src) {
        uint64_t size = vma_src_size(in->src);
        done = (size_t)MIN((uint64_t)n, size > in->pos ? size - in->pos : 0);
        in->pos += done;
        return (ssize_t)done;
    }
    if (in->seekable) {
        /* what is buffered first, then a seek that stops at the end */
        size_t k = MIN(n, in->raw_len - in->raw_pos);
        in->raw_pos += k;
        done = k;
        if (done < n && !in->raw_eof) {
            off_t pos = lseek(in->fd, 0, SEEK_CUR);
            if (pos < 0) {
                vma_set_errno(err, errno, "seek failed");
                return -1;
            }
            uint64_t left = in->file_size > (uint64_t)pos ? in->file_size - (uint64_t)pos : 0;
            uint64_t step = MIN((uint64_t)(n - done), left);
            if (lseek(in->fd, (off_t)step, SEEK_CUR) < 0) {
                vma_set_errno(err, errno, "seek failed");
                return -1;
            }
            done += (size_t)step;
            if (done < n)
                in->raw_eof = TRUE;
        }
        return (ssize_t)done;
    }
    uint8_t *scratch = g_malloc(RAW_BUF_SIZE);
    while (done < n) {
        size_t want = MIN(n - done, (size_t)RAW_BUF_SIZE);
        ssize_t r = vma_in_read(in, scratch, want, err);
        if (r < 0) {
            g_free(scratch);
            return -1;
        }
        done += (size_t)r;
        if ((size_t)r < want)
            break;
    }
    g_free(scratch);
    return (ssize_t)done;
}

void vma_in_free(vma_in *in)
{
    if (!in)
        return;
    ahead_stop(in);
    reader_stop(in);
    vma_lzop_free(in->lz);
    if (in->fd >= 0)
        close(in->fd);
    if (in->zd)
        ZSTD_freeDStream(in->zd);
    g_free(in->gz);
    g_free(in->raw_mem);
    g_free(in);
}
