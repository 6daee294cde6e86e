/* lzop.c - the lzop file format, decoded in this process with liblzo2 (our
 * writer of the format is output.c):
 *
 *   magic (9 bytes) | header | block... | a block length 0 (the end)
 *   header:  version u16, lib_version u16, [version_needed u16 if version >=
 *            0x0940], method u8, [level u8 if >= 0x0940], flags u32,
 *            [filter u32 if F_H_FILTER], mode u32, mtime_low u32, [mtime_high
 *            u32 if >= 0x0940], name_len u8, name, checksum u32 of everything
 *            after the magic (adler32, crc32 with F_H_CRC32), [extra field:
 *            length u32, bytes, checksum u32 if F_H_EXTRA_FIELD]
 *   block:   dst_len u32 (0 ends the file), src_len u32, [adler32 / crc32 of
 *            the decompressed bytes: F_ADLER32_D, F_CRC32_D], when src_len <
 *            dst_len [the same of the compressed bytes: F_ADLER32_C,
 *            F_CRC32_C], src_len bytes: LZO1X data, or the bytes themselves
 *            when src_len == dst_len
 *
 * all big-endian.  Every length is checked before it is used (a block holds
 * at most 64 MiB, as lzop writes them), every checksum the file has is
 * verified, and lzo1x_decompress_safe never writes past its buffer.  Files
 * concatenated after the end marker (lzop -dc reads them in turn) are read
 * in turn.
 *
 * lzop blocks are independent: the blocks that fit the caller's buffer are
 * read first (a batch), then checked and decompressed by two threads, the
 * caller's and a helper (even and odd blocks), then their results taken in
 * order, so that the first damaged block is the one named and every byte
 * returned is checked (docs/performance.md: what this gained). */
#include "codec/codec.h"

#include <lzo1x.h>
#include <pthread.h>
#include <string.h>
#include <zlib.h>

#define LZOP_MAX_BLOCK (64u << 20)

#define F_ADLER32_D     0x00000001u
#define F_ADLER32_C     0x00000002u
#define F_H_EXTRA_FIELD 0x00000040u
#define F_CRC32_D       0x00000100u
#define F_CRC32_C       0x00000200u
#define F_MULTIPART     0x00000400u
#define F_H_FILTER      0x00000800u
#define F_H_CRC32       0x00001000u

static const uint8_t lzop_magic[9] = {0x89, 'L', 'Z', 'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a};

/* a block read but not yet checked and decompressed: the blocks that fit
 * the caller's buffer are read first, then decompressed by two threads (lzop
 * blocks are independent), then checked in order */
typedef struct {
    const uint8_t *src;   /* the compressed bytes (in batch), or NULL: stored */
    uint8_t *dst;         /* in the caller's buffer */
    uint32_t src_len, dst_len;
    uint32_t dsum[2], csum[2];
    uint64_t at;          /* in_off after the block: for the message */
    const char *why;      /* what is wrong with it, NULL */
} lz_job;

#define MAX_JOBS 64

/* the second thread: it takes a batch (the jobs array, n_jobs of them) from
 * todo, runs its even jobs and gives it back through done; todo closed: it
 * ends */
typedef struct {
    vma_thread *thread;
    vma_queue *todo, *done;
    gboolean failed;      /* it could not be started: the caller runs every job */
} lz_helper;

struct vma_lzop {
    vma_lzop_read_fn read;
    void *ctx;
    uint64_t in_off;      /* bytes of the file consumed: for messages */
    gboolean in_file;     /* a header was read; blocks follow */
    gboolean ended;       /* the end of the stream was reached */
    uint32_t flags;
    uint8_t *dbuf;        /* a decompressed block the caller has no room for */
    size_t dbuf_size, dlen, dpos;
    uint8_t *batch;       /* the compressed blocks of one batch of jobs */
    size_t batch_size;
    lz_job jobs[MAX_JOBS];
    int n_jobs;           /* in the batch handed to the helper */
    lz_helper helper;     /* the second thread, started at the first batch */
};

static int lzo_ok = -1;

static void lzo_setup(void)
{
    /* checks that the library fits the header it was built with */
    lzo_ok = lzo_init() == LZO_E_OK;
}

gboolean vma_lzo_ready(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, lzo_setup);
    return lzo_ok == 1;
}

vma_lzop *vma_lzop_new(vma_lzop_read_fn read, void *ctx)
{
    if (!vma_lzo_ready())
        return NULL;
    vma_lzop *z = g_new0(vma_lzop, 1);
    z->read = read;
    z->ctx = ctx;
    return z;
}

void vma_lzop_free(vma_lzop *z)
{
    if (!z)
        return;
    lz_helper *h = &z->helper;
    if (h->thread) {
        vma_queue_close(h->todo);
        vma_thread_join(h->thread);
    }
    vma_queue_unref(h->todo);
    vma_queue_unref(h->done);
    g_free(z->batch);
    g_free(z->dbuf);
    g_free(z);
}

static void truncated(GError **err)
{
    g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE, "the lzo stream is truncated");
}

static void corrupt_at(uint64_t at, GError **err, const char *what)
{
    g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "lzo: %s (at byte %" G_GUINT64_FORMAT
                " of the lzo stream)", what, at);
}

static void corrupt(vma_lzop *z, GError **err, const char *what)
{
    corrupt_at(z->in_off, err, what);
}

/* exactly n bytes into buf: 1, 0 at the very end of the input (nothing
 * read), -1 with err (a short read is a truncated stream) */
static int get(vma_lzop *z, void *buf, size_t n, gboolean end_ok, GError **err)
{
    ssize_t r = z->read(z->ctx, buf, n, err);
    if (r < 0)
        return -1;
    z->in_off += (uint64_t)r;
    if ((size_t)r == n)
        return 1;
    if (r == 0 && end_ok)
        return 0;
    truncated(err);
    return -1;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* a header field of n bytes (n <= 4), added to the running header checksum */
static int field(vma_lzop *z, uint32_t *v, size_t n, uint8_t *hdr, size_t *hlen, GError **err)
{
    uint8_t b[4];
    if (get(z, b, n, FALSE, err) < 0)
        return -1;
    memcpy(hdr + *hlen, b, n);
    *hlen += n;
    uint32_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = x << 8 | b[i];
    *v = x;
    return 0;
}

/* the method and flags of a header: what this reader can decode */
static int check_method_flags(vma_lzop *z, uint32_t method, uint32_t flags, GError **err)
{
    if (method < 1 || method > 3) {
        /* 1, 2, 3: LZO1X-1, LZO1X-1(15), LZO1X-999; anything else is not
         * a method lzop writes */
        char *m = g_strdup_printf("unknown compression method %u", method);
        corrupt(z, err, m);
        g_free(m);
        return -1;
    }
    if (flags & (F_H_FILTER | F_MULTIPART)) {
        corrupt(z, err, (flags & F_H_FILTER) ? "lzop filters are not supported"
                                             : "multi-part lzop files are not supported");
        return -1;
    }
    return 0;
}

/* an extra field (lzop never writes one): length, bytes, checksum, skipped */
static int skip_extra(vma_lzop *z, GError **err)
{
    uint8_t b[4];
    if (get(z, b, 4, FALSE, err) < 0)
        return -1;
    uint32_t len = be32(b);
    uint8_t skip[256];
    for (uint64_t left = (uint64_t)len + 4; left > 0;) {
        size_t k = (size_t)MIN(left, (uint64_t)sizeof skip);
        if (get(z, skip, k, FALSE, err) < 0)
            return -1;
        left -= k;
    }
    return 0;
}

/* the header after the magic; 0, or -1 with err */
static int read_header(vma_lzop *z, GError **err)
{
    uint8_t hdr[64 + 255];
    size_t hl = 0;
    uint32_t version, lib_version, needed = 0, method, level = 0, flags, filter = 0, mode,
             mtime_lo, mtime_hi = 0, name_len, sum;
    if (field(z, &version, 2, hdr, &hl, err) < 0 || field(z, &lib_version, 2, hdr, &hl, err) < 0)
        return -1;
    if (version < 0x0900) {
        corrupt(z, err, "not a file lzop wrote (format version too old)");
        return -1;
    }
    if (version >= 0x0940 && field(z, &needed, 2, hdr, &hl, err) < 0)
        return -1;
    if (field(z, &method, 1, hdr, &hl, err) < 0 ||
        (version >= 0x0940 && field(z, &level, 1, hdr, &hl, err) < 0) ||
        field(z, &flags, 4, hdr, &hl, err) < 0 ||
        ((flags & F_H_FILTER) && field(z, &filter, 4, hdr, &hl, err) < 0) ||
        field(z, &mode, 4, hdr, &hl, err) < 0 || field(z, &mtime_lo, 4, hdr, &hl, err) < 0 ||
        (version >= 0x0940 && field(z, &mtime_hi, 4, hdr, &hl, err) < 0) ||
        field(z, &name_len, 1, hdr, &hl, err) < 0)
        return -1;
    if (name_len > 0) {
        if (get(z, hdr + hl, name_len, FALSE, err) < 0)
            return -1;
        hl += name_len;
    }
    uint8_t b[4];
    if (get(z, b, 4, FALSE, err) < 0)
        return -1;
    sum = (flags & F_H_CRC32) ? (uint32_t)crc32(0, hdr, (uInt)hl)
                              : (uint32_t)adler32(1, hdr, (uInt)hl);
    if (be32(b) != sum) {
        corrupt(z, err, "the header checksum does not match");
        return -1;
    }
    if (check_method_flags(z, method, flags, err) < 0)
        return -1;
    if ((flags & F_H_EXTRA_FIELD) && skip_extra(z, err) < 0)
        return -1;
    (void)lib_version, (void)needed, (void)level, (void)mode, (void)mtime_lo, (void)mtime_hi;
    z->flags = flags;
    z->in_file = TRUE;
    return 0;
}

/* the start of a file: its magic and header.  0 (z->ended at the end of
 * the input), -1 with err */
static int start_file(vma_lzop *z, GError **err)
{
    uint8_t m[9];
    gboolean first = z->in_off == 0;
    ssize_t r = z->read(z->ctx, m, 9, err);
    if (r < 0)
        return -1;
    z->in_off += (uint64_t)r;
    if (r == 0 && !first) {
        z->ended = TRUE;
        return 0;
    }
    if (r < 9 && first) {
        truncated(err);
        return -1;
    }
    if (r < 9 || memcmp(m, lzop_magic, 9) != 0) {
        corrupt(z, err, first ? "not an lzop file" : "data after the end of the lzop file");
        return -1;
    }
    return read_header(z, err);
}

static gboolean check_sum(uint32_t flags, uint32_t f_adler, uint32_t f_crc, const uint32_t *want,
                          const uint8_t *p, size_t n)
{
    int i = 0;
    if ((flags & f_adler) && want[i++] != (uint32_t)adler32(1, p, (uInt)n))
        return FALSE;
    if ((flags & f_crc) && want[i] != (uint32_t)crc32(0, p, (uInt)n))
        return FALSE;
    return TRUE;
}

/* check and decompress one job (either thread) */
static void run_job(lz_job *j, uint32_t flags)
{
    if (j->src) {
        if (!check_sum(flags, F_ADLER32_C, F_CRC32_C, j->csum, j->src, j->src_len)) {
            j->why = "the checksum of a compressed block does not match";
            return;
        }
        lzo_uint got = j->dst_len;
        int r = lzo1x_decompress_safe(j->src, j->src_len, j->dst, &got, NULL);
        if (r != LZO_E_OK || got != j->dst_len) {
            j->why = "a block does not decompress";
            return;
        }
    }
    if (!check_sum(flags, F_ADLER32_D, F_CRC32_D, j->dsum, j->dst, j->dst_len))
        j->why = "the checksum of a block does not match (damaged data)";
}

static void *helper_main(void *data)
{
    vma_lzop *z = data;
    lz_helper *h = &z->helper;
    lz_job *jobs;
    while ((jobs = vma_queue_pop(h->todo))) {
        for (int i = 0; i < z->n_jobs; i += 2) /* the even ones; the caller does the odd */
            run_job(&jobs[i], z->flags);
        vma_queue_push(h->done, jobs);
    }
    return NULL;
}

/* run the n jobs read, on two threads when there are several */
static void run_jobs(vma_lzop *z, int n)
{
    lz_helper *h = &z->helper;
    if (n >= 2 && !h->thread && !h->failed) {
        h->todo = vma_queue_new();
        h->done = vma_queue_new();
        h->thread = vma_thread_new("vma-lzo", helper_main, z, NULL);
        h->failed = !h->thread;
    }
    if (n < 2 || !h->thread) {
        for (int i = 0; i < n; i++)
            run_job(&z->jobs[i], z->flags);
        return;
    }
    z->n_jobs = n;
    vma_queue_push(h->todo, z->jobs);
    for (int i = 1; i < n; i += 2)
        run_job(&z->jobs[i], z->flags);
    vma_queue_pop(h->done); /* the helper is done with the even ones */
}

/* the next block's dst_len, across the ends and starts of concatenated
 * files: 0 at the end of the stream, -1 with err */
static ssize_t next_len(vma_lzop *z, GError **err)
{
    for (;;) {
        if (!z->in_file) {
            if (start_file(z, err) < 0)
                return -1;
            if (z->ended)
                return 0;
        }
        uint8_t b[4];
        if (get(z, b, 4, FALSE, err) < 0)
            return -1;
        uint32_t dst_len = be32(b);
        if (dst_len > LZOP_MAX_BLOCK) {
            corrupt(z, err, "a block longer than 64 MiB");
            return -1;
        }
        if (dst_len != 0)
            return dst_len;
        z->in_file = FALSE; /* the end of this file; another may follow */
    }
}

/* read the rest of a block whose dst_len was read, into a job: its
 * compressed bytes at *used of the batch, a stored block straight into dst */
static int read_job(vma_lzop *z, uint32_t dst_len, uint8_t *dst, lz_job *j, size_t *used,
                    GError **err)
{
    uint8_t b[16];
    if (get(z, b, 4, FALSE, err) < 0)
        return -1;
    uint32_t src_len = be32(b);
    if (src_len == 0 || src_len > dst_len) {
        corrupt(z, err, "a block's compressed length is out of range");
        return -1;
    }
    size_t nd = !!(z->flags & F_ADLER32_D) + !!(z->flags & F_CRC32_D);
    size_t nc = src_len < dst_len ? !!(z->flags & F_ADLER32_C) + !!(z->flags & F_CRC32_C) : 0;
    if (nd + nc > 0 && get(z, b, 4 * (nd + nc), FALSE, err) < 0)
        return -1;
    *j = (lz_job){.dst = dst, .src_len = src_len, .dst_len = dst_len};
    for (size_t i = 0; i < nd; i++)
        j->dsum[i] = be32(b + 4 * i);
    for (size_t i = 0; i < nc; i++)
        j->csum[i] = be32(b + 4 * (nd + i));
    uint8_t *into = dst;
    if (src_len < dst_len) {
        into = z->batch + *used; /* fits: the batch holds dst_len bytes or more */
        *used += src_len;
        j->src = into;
    }
    if (get(z, into, src_len, FALSE, err) < 0)
        return -1;
    j->at = z->in_off;
    return 0;
}

/* make *buf hold at least need bytes (its content is not kept) */
static void grow(uint8_t **buf, size_t *size, size_t need)
{
    if (*size < need) {
        g_free(*buf);
        *buf = g_malloc(need);
        *size = need;
    }
}

/* a block whose dst_len was read and that does not fit what is left of the
 * caller's buffer: into dbuf, from where vma_lzop_read copies it.  0, -1
 * with err */
static int read_big_block(vma_lzop *z, uint32_t dst_len, GError **err)
{
    grow(&z->dbuf, &z->dbuf_size, dst_len);
    grow(&z->batch, &z->batch_size, dst_len); /* the compressed bytes are fewer */
    size_t used = 0;
    lz_job j;
    if (read_job(z, dst_len, z->dbuf, &j, &used, err) < 0)
        return -1;
    run_job(&j, z->flags);
    if (j.why) {
        corrupt_at(j.at, err, j.why);
        return -1;
    }
    z->dlen = dst_len;
    z->dpos = 0;
    return 0;
}

/* the blocks that fit [got, n) of buf, read, then decompressed on two
 * threads and checked in order.  The bytes decompressed into buf; *big the
 * dst_len of a block read next that does not fit (0: none); err set when
 * something broke (after the bytes returned) */
static size_t read_batch(vma_lzop *z, uint8_t *buf, size_t got, size_t n, uint32_t *big,
                         GError **err)
{
    grow(&z->batch, &z->batch_size, n);
    size_t fill = got, used = 0;
    int nj = 0;
    GError *rerr = NULL;
    *big = 0;
    while (nj < MAX_JOBS && fill < n) {
        ssize_t len = next_len(z, &rerr);
        if (len <= 0)
            break;
        if ((size_t)len > n - fill) {
            *big = (uint32_t)len;
            break;
        }
        if (read_job(z, (uint32_t)len, buf + fill, &z->jobs[nj], &used, &rerr) < 0)
            break;
        fill += (size_t)len;
        nj++;
    }
    run_jobs(z, nj);
    size_t done = got;
    for (int i = 0; i < nj; i++) {
        if (z->jobs[i].why) { /* the first damage in the stream wins */
            corrupt_at(z->jobs[i].at, err, z->jobs[i].why);
            g_clear_error(&rerr);
            *big = 0;
            return done - got;
        }
        done += z->jobs[i].dst_len;
    }
    if (rerr)
        g_propagate_error(err, rerr);
    return done - got;
}

ssize_t vma_lzop_read(vma_lzop *z, uint8_t *buf, size_t n, GError **err)
{
    size_t got = 0;
    while (got < n) {
        if (z->dpos < z->dlen) {
            size_t k = MIN(n - got, z->dlen - z->dpos);
            memcpy(buf + got, z->dbuf + z->dpos, k);
            z->dpos += k;
            got += k;
            continue;
        }
        if (z->ended)
            break;
        uint32_t big;
        GError *e = NULL;
        size_t k = read_batch(z, buf, got, n, &big, &e);
        got += k;
        if (e) {
            g_propagate_error(err, e);
            return (ssize_t)got; /* err tells what broke */
        }
        if (big) {
            /* a block larger than what is left of buf: into dbuf */
            if (read_big_block(z, big, err) < 0)
                return (ssize_t)got;
            continue;
        }
        if (k == 0)
            break; /* the end of the stream */
    }
    return (ssize_t)got;
}
