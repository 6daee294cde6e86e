/* seekable.c - random access to the (decompressed) bytes of an archive: a
 * plain .vma read with pread, or a .vma.zst in zstd's seekable format
 * (independent frames and a seek table in a skippable frame at the end, as
 * zstd's contrib/seekable_format specifies), read frame by frame through a
 * cache of decompressed frames (64 MiB unless the caller says otherwise).
 *
 * Checked frames.  No byte of a frame is returned before the whole frame
 * was decoded and checked as a reader from start to end checks it: zstd's
 * content checksum (required: a frame without one is refused), and its
 * decoded size against the seek table's.  The cache, the block maps and
 * the spill file hold only frames so checked.  A read that reaches the end
 * of the stream first checks every frame not checked yet (check_all): the
 * index build, which skips the data, has so had every frame checked, also
 * those it skipped, whose sizes place the frames after them.  A seek
 * table's claims are bounded by the file before anything is allocated for
 * them (MAX_FRAMES, MIN_FRAME_BYTES, FRAME_SLACK).
 *
 * Block maps.  A frame is decoded block by block (zstd's buffer-less API),
 * and what its blocks are is kept: runs of raw blocks (their bytes are the
 * archive's bytes, stored as they are: incompressible data), runs of RLE
 * blocks (one byte repeated) and runs of compressed blocks.  Once a frame's
 * map is known, a read that lies in raw and RLE runs only is served without
 * decompressing anything: pread from the archive file (the page cache) and
 * memset.  Only a read that touches a compressed block needs the decoded
 * frame.  The first, full decode of a frame verifies its checksum (no map
 * is kept without that), a read served later from raw blocks does not (it
 * is the file's bytes, as with a plain .vma).  A run is 12 bytes; raw
 * blocks of one size that follow each other are one run, so a frame of
 * incompressible data costs one or two runs, and the maps of a 1 TiB
 * archive about 10 MiB (every block of a different kind from its
 * neighbour: 8 million runs, 96 MiB).  The maps are
 * bounded (MAP_BUDGET): a frame decoded after that has none and is read
 * through the cache as before.
 *
 * The spill file.  A frame decoded for a read out of order (decoded once
 * before, or not after the frame before it) is written, by a thread of its
 * own, into an unlinked file at its offset in the stream; once there, reads
 * of it are a pread of that file (the page cache) instead of a decode.
 * Readers from start to end never make one.  Bounded by the caller's limit
 * and half the space free; a failed write turns it off.
 *
 * Safe to use from several threads: a frame is decompressed by one thread
 * while the others wait for it, and copied out of the cache without the
 * lock held.  A map is made by the thread that decoded the frame, published
 * under the lock and never changed or freed until vma_src_free, so it is
 * read without the lock. */
#define _GNU_SOURCE
#include "codec/codec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
/* the buffer-less decompression functions (ZSTD_decompressBegin and
 * ZSTD_decompressContinue), exported by the shared libzstd */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>

#define SEEK_TABLE_MAGIC   0x8F92EAB1u
#define SKIPPABLE_MAGIC    0x184D2A5Eu
#define SEEK_FOOTER_SIZE   9u
/* a frame larger than this is not what a seekable writer makes */
#define MAX_FRAME_BYTES    (64u << 20)
/* what a seek table may claim, checked before anything is allocated for it:
 * at most MAX_FRAMES frames (64 TiB of the 4 MiB frames vma create writes;
 * 44 bytes of memory each), each at least MIN_FRAME_BYTES long in the file
 * (a skippable frame's header: nothing smaller is a frame), and a frame's
 * compressed size at most zstd's worst case for its decompressed size
 * (ZSTD_compressBound) plus FRAME_SLACK (a few small skippable frames): the
 * input buffers are sized by it */
#define MAX_FRAMES         (1u << 24)
#define MIN_FRAME_BYTES    8u
#define FRAME_SLACK        (64u << 10)
/* the seek table is read this many entries at a time */
#define TABLE_CHUNK        4096u
/* the bytes of decompressed frames kept by default, and the bounds on the
 * number of frames kept */
#define CACHE_BYTES        ((uint64_t)64 << 20)
#define MIN_SLOTS          2u
#define MAX_SLOTS          4096u

/* the block maps: at most this many runs in one frame (more: the frame
 * gets none), and this many bytes of maps in all */
#define MAP_MAX_RUNS       4096u
#define MAP_BUDGET         ((uint64_t)32 << 20)
#define BLOCK_HEADER       3u

enum { RUN_RAW = 0, RUN_RLE = 1, RUN_COMPRESSED = 2 }; /* zstd's block types */

/* consecutive blocks of one kind; the run ends where the next begins (the
 * last at the frame's end) */
typedef struct {
    uint32_t doff;        /* where it starts in the frame's decoded bytes */
    uint32_t src;         /* raw: where its first block's bytes are, from the
                             frame's start in the file; RLE: the byte */
    uint32_t info;        /* bits 0-23: raw: the size of each block but the
                             last (which may be shorter); bits 24-25: kind */
} zrun;

typedef struct {
    uint32_t n;
    zrun runs[];
} zmap;

/* the map of a frame with no raw or RLE block: nothing to read directly */
static const zmap no_direct = {0};

typedef struct {
    uint64_t coff;        /* where the frame starts in the file */
    uint64_t doff;        /* where its bytes start in the stream */
    uint32_t csize, dsize;
    const zmap *map;      /* NULL until the frame was decoded (under the lock) */
    uint8_t decoded;      /* decoded whole at least once (under the lock) */
    uint8_t checked;      /* decoded whole and checked once (under the lock) */
    uint8_t spill;        /* SPILL_*: its decoded bytes in the spill file */
} zframe;

#define RECENT 16

/* a frame's place in the spill file (see vma_src_enable_spill) */
enum { SPILL_NONE = 0, SPILL_WRITING, SPILL_DONE };


struct vma_src {
    int fd;
    vma_compress comp;    /* NONE or ZSTD */
    uint64_t size;        /* bytes of the (decompressed) stream */
    uint64_t file_size;
    zframe *frames;
    uint64_t n_frames;
    uint32_t max_dsize;   /* of the largest frame */
    uint64_t n_checked;   /* frames checked (under the lock) */
    vma_mutex lock;
    vma_cond loaded;
    vma_frame_slot *slots;         /* made at the first read */
    unsigned n_slots;
    int32_t *slot_of;     /* frame -> slot, -1 */
    uint64_t cache_bytes;
    uint64_t clock;
    GPtrArray *dctx;      /* idle ZSTD_DCtx */
    GPtrArray *inbufs;    /* idle buffers of max compressed frame size */
    uint32_t max_csize;
    vma_src_stats stats;  /* under the lock */
    /* the spill file: decoded frames read out of order, at their stream
     * offset (a sparse copy of the stream); made at the first spill, by
     * the reader that wants it, without the lock */
    gboolean spill_on;
    gboolean spill_opening;   /* a reader makes the file */
    char *spill_dir;
    int spill_fd;
    vma_thread *spill_thread; /* writes the frames queued in spill_jobs */
    vma_queue *spill_jobs;    /* vma_frame_slot *, with a reference; closed: it ends */
    unsigned spill_pending;   /* queued or being written (under the lock) */
    uint64_t spill_limit, spill_used;
    /* the last frames read (each once), to tell readers from start to end
     * (up to RECENT of them at once) from random reads */
    uint64_t recent[RECENT];
    unsigned recent_n, recent_pos;
};

static gboolean not_seekable(GError **err, const char *why)
{
    g_set_error(err, VMA_ERROR, VMA_ERR_NOT_SEEKABLE,
                "the archive is compressed as one zstd stream (%s): it can only be read "
                "from start to end", why);
    return FALSE;
}

/* a seek table that is there but cannot be used */
static gboolean bad_table(GError **err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static gboolean bad_table(GError **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* a seek table that is there but wrong is a broken archive, not one to
     * read another way */
    g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "the archive's seek table is not usable (%s)",
                why);
    g_free(why);
    return FALSE;
}

/* the seek table at the end of the file: every claim it makes is bounded by
 * the file before memory is allocated for it (see MAX_FRAMES) */
static gboolean read_seek_table(vma_src *s, GError **err)
{
    uint8_t foot[SEEK_FOOTER_SIZE];
    if (s->file_size < SEEK_FOOTER_SIZE + 8 ||
        vma_pread_all(s->fd, foot, sizeof(foot), s->file_size - SEEK_FOOTER_SIZE, err) !=
            (ssize_t)sizeof(foot))
        return err && *err ? FALSE : not_seekable(err, "no seek table");
    if (vma_get_le32(foot + 5) != SEEK_TABLE_MAGIC)
        return not_seekable(err, "no seek table");
    uint64_t n = vma_get_le32(foot);
    uint8_t desc = foot[4];
    unsigned entry = (desc & 0x80) ? 12 : 8;
    if (desc & 0x7c)
        return not_seekable(err, "a seek table with reserved bits set");
    uint64_t table = n * entry + SEEK_FOOTER_SIZE;
    if (n == 0 || table + 8 > s->file_size)
        return bad_table(err, "a seek table of %" G_GUINT64_FORMAT " frames does not fit the file", n);
    uint64_t frame_start = s->file_size - table - 8;
    if (n > MAX_FRAMES || n * MIN_FRAME_BYTES > frame_start)
        return bad_table(err, "a seek table of %" G_GUINT64_FORMAT " frames: more than %s",
                         n, n * MIN_FRAME_BYTES > frame_start ? "the file holds"
                                                              : "the 16777216 frames read at random");
    uint8_t head[8];
    ssize_t got = vma_pread_all(s->fd, head, 8, frame_start, err);
    if (got < 0)
        return FALSE;
    if (got != 8 || vma_get_le32(head) != SKIPPABLE_MAGIC || vma_get_le32(head + 4) != table)
        return bad_table(err, "a seek table outside a skippable frame");
    s->frames = g_try_new0(zframe, n);
    if (!s->frames) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO,
                    "out of memory for a seek table of %" G_GUINT64_FORMAT " frames", n);
        return FALSE;
    }
    s->n_frames = n;
    uint8_t *t = g_malloc((size_t)TABLE_CHUNK * entry);
    uint64_t coff = 0, doff = 0;
    gboolean ok = TRUE;
    for (uint64_t i = 0; i < n && ok; i++) {
        uint64_t k = i % TABLE_CHUNK;
        if (k == 0) {
            size_t len = (size_t)(MIN((uint64_t)TABLE_CHUNK, n - i) * entry);
            got = vma_pread_all(s->fd, t, len, frame_start + 8 + i * entry, err);
            if (got != (ssize_t)len) {
                ok = got < 0 ? FALSE : bad_table(err, "a short seek table");
                break;
            }
        }
        const uint8_t *e = t + k * entry;
        zframe *f = &s->frames[i];
        f->coff = coff;
        f->doff = doff;
        f->csize = vma_get_le32(e);
        f->dsize = vma_get_le32(e + 4);
        coff += f->csize;
        doff += f->dsize;
        s->max_dsize = MAX(s->max_dsize, f->dsize);
        s->max_csize = MAX(s->max_csize, f->csize);
        if (f->dsize > MAX_FRAME_BYTES)
            ok = bad_table(err, "frame %" G_GUINT64_FORMAT " claims %u bytes, more than %u", i,
                           f->dsize, MAX_FRAME_BYTES);
        else if (f->csize < MIN_FRAME_BYTES)
            ok = bad_table(err, "frame %" G_GUINT64_FORMAT " claims %u compressed bytes: no zstd "
                           "frame is that short", i, f->csize);
        else if (f->csize > ZSTD_compressBound(f->dsize) + FRAME_SLACK)
            ok = bad_table(err, "frame %" G_GUINT64_FORMAT " claims a compressed size of %u bytes "
                           "for %u bytes: zstd needs at most %zu", i, f->csize, f->dsize,
                           ZSTD_compressBound(f->dsize) + FRAME_SLACK);
        else if (coff > frame_start)
            ok = bad_table(err, "a seek table that does not match the file");
    }
    g_free(t);
    if (ok && coff != frame_start)
        ok = bad_table(err, "a seek table that does not match the file");
    if (ok)
        s->size = doff;
    return ok;
}

vma_src *vma_src_open(int fd, GError **err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        vma_set_errno(err, errno, "stat failed");
        return NULL;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_NOT_SEEKABLE,
                    "the archive is not a file (a pipe?): it can only be read from start to end");
        return NULL;
    }
    int64_t fsize = vma_fd_size(fd, err);
    if (fsize < 0)
        return NULL;
    uint8_t magic[4] = {0};
    ssize_t got = vma_pread_all(fd, magic, 4, 0, err);
    if (got < 0)
        return NULL;
    vma_src *s = g_new0(vma_src, 1);
    s->fd = fd;
    s->file_size = (uint64_t)fsize;
    s->size = (uint64_t)fsize;
    vma_mutex_init(&s->lock);
    vma_cond_init(&s->loaded);
    s->dctx = g_ptr_array_new();
    s->inbufs = g_ptr_array_new_with_free_func(g_free);
    s->cache_bytes = CACHE_BYTES;
    s->spill_fd = -1;
    vma_compress c = vma_codec_by_magic(magic, got > 0 ? (size_t)got : 0)->id;
    if (c == VMA_COMPRESS_ZSTD) {
        s->comp = VMA_COMPRESS_ZSTD;
        if (!read_seek_table(s, err)) {
            vma_src_free(s);
            return NULL;
        }
    } else if (c != VMA_COMPRESS_NONE) {
        g_set_error(err, VMA_ERROR, VMA_ERR_NOT_SEEKABLE,
                    "the archive is compressed with %s: it can only be read from start to end",
                    c == VMA_COMPRESS_GZIP ? "gzip" : "lzop");
        vma_src_free(s);
        return NULL;
    }
    return s;
}

void vma_src_free(vma_src *s)
{
    if (!s)
        return;
    if (s->spill_thread) {
        /* the frames queued are written first: they are few (each holds a
         * slot of the cache) */
        vma_queue_close(s->spill_jobs);
        vma_thread_join(s->spill_thread);
    }
    vma_queue_unref(s->spill_jobs);
    for (unsigned i = 0; i < s->n_slots; i++)
        g_free(s->slots[i].data);
    g_free(s->slots);
    g_free(s->slot_of);
    g_ptr_array_free(s->inbufs, TRUE);
    for (guint i = 0; i < s->dctx->len; i++)
        ZSTD_freeDCtx(g_ptr_array_index(s->dctx, i));
    g_ptr_array_free(s->dctx, TRUE);
    vma_mutex_clear(&s->lock);
    vma_cond_clear(&s->loaded);
    for (uint64_t i = 0; i < s->n_frames; i++)
        if (s->frames[i].map != &no_direct)
            g_free((zmap *)s->frames[i].map);
    g_free(s->frames);
    if (s->spill_fd >= 0)
        close(s->spill_fd);
    g_free(s->spill_dir);
    g_free(s);
}

uint64_t vma_src_size(const vma_src *s) { return s->size; }

void vma_src_set_cache(vma_src *s, uint64_t bytes)
{
    vma_mutex_lock(&s->lock);
    if (!s->slots && bytes)
        s->cache_bytes = bytes;
    vma_mutex_unlock(&s->lock);
}

void vma_src_enable_spill(vma_src *s, const char *dir, uint64_t limit)
{
    vma_mutex_lock(&s->lock);
    if (s->comp == VMA_COMPRESS_ZSTD && !s->spill_on && limit) {
        s->spill_on = TRUE;
        s->spill_dir = g_strdup(dir);
        s->spill_limit = limit;
    }
    vma_mutex_unlock(&s->lock);
}

static void *spill_main(void *data);

/* a job of the spill thread: a slot and the source it belongs to */
typedef struct {
    vma_src *s;
    vma_frame_slot *z;
} spill_job;

/* the spill file, made by the first reader that spills, without the lock
 * (called unlocked, with spill_opening set): an unlinked file (O_TMPFILE,
 * else a name removed at once) that nobody else can open and that goes
 * with the process, and the thread that writes it; installed under the
 * lock, its limit lowered to half of the space free there.  FALSE (and
 * spilling off) when it cannot be made. */
static gboolean open_spill(vma_src *s)
{
    int fd = open(s->spill_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        char *tmpl = g_build_filename(s->spill_dir, ".vma-spill-XXXXXX", NULL);
        fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0)
            unlink(tmpl);
        g_free(tmpl);
    }
    struct statvfs v;
    uint64_t room = UINT64_MAX;
    if (fd >= 0 && fstatvfs(fd, &v) == 0)
        room = (uint64_t)v.f_bavail * v.f_frsize / 2;
    vma_queue *jobs = fd >= 0 ? vma_queue_new() : NULL;
    vma_thread *th = NULL;
    if (jobs) {
        /* the thread starts with the queue of its own reference: it reads
         * nothing of s before its first frame */
        th = vma_thread_new("vma-spill", spill_main, vma_queue_ref(jobs), NULL);
        if (!th)
            vma_queue_unref(jobs); /* the thread's reference */
    }
    vma_mutex_lock(&s->lock);
    s->spill_opening = FALSE;
    if (th) {
        s->spill_fd = fd;
        s->spill_jobs = jobs;
        s->spill_thread = th;
        s->spill_limit = MIN(s->spill_limit, room);
    } else {
        s->spill_on = FALSE;
    }
    vma_mutex_unlock(&s->lock);
    if (!th) {
        vma_queue_unref(jobs);
        if (fd >= 0)
            close(fd);
    }
    return th != NULL;
}

/* was frame fi among the last frames read? (called locked) */
static gboolean was_recent(const vma_src *s, uint64_t fi)
{
    for (unsigned i = 0; i < s->recent_n; i++)
        if (s->recent[i] == fi)
            return TRUE;
    return FALSE;
}

/* frame fi is being read (called locked) */
static void note_read(vma_src *s, uint64_t fi)
{
    if (!s->spill_on || was_recent(s, fi))
        return;
    s->recent[s->recent_pos] = fi;
    s->recent_pos = (s->recent_pos + 1) % RECENT;
    s->recent_n = MIN(s->recent_n + 1, RECENT);
}

/* with the lock held, after frame fi was decoded whole: keep it in the
 * spill file?  Only frames read out of order are worth it (a frame decoded
 * a second time, or one whose predecessor was not among the last frames
 * read): a reader from start to end (cat, convert, a file copied from a
 * mount) would only pay the writes. */
static gboolean want_spill(vma_src *s, uint64_t fi, gboolean *make_file)
{
    zframe *f = &s->frames[fi];
    if (!s->spill_on)
        return FALSE; /* the index being built: that reads in order */
    gboolean out_of_order = f->decoded || (fi > 0 && !was_recent(s, fi - 1));
    f->decoded = 1;
    if (f->spill != SPILL_NONE || !out_of_order || s->spill_used + f->dsize > s->spill_limit)
        return FALSE;
    if (s->spill_fd < 0) {
        /* the file first (by one reader, the others do without it) */
        if (!s->spill_opening)
            s->spill_opening = *make_file = TRUE;
        return FALSE;
    }
    f->spill = SPILL_WRITING;
    s->spill_used += f->dsize;
    return TRUE;
}

/* with the lock: the slot z of frame fi, referenced, goes to the spill
 * thread, which drops the reference once written */
static void queue_spill(vma_src *s, vma_frame_slot *z)
{
    spill_job *j = g_new(spill_job, 1);
    j->s = s;
    j->z = z;
    s->spill_pending++;
    vma_queue_push(s->spill_jobs, j);
}

/* write frame fi's decoded bytes into the spill file (without the lock);
 * a failure (the disk full) turns spilling off and loses nothing */
static void write_spill(vma_src *s, uint64_t fi, const uint8_t *data)
{
    zframe *f = &s->frames[fi];
    size_t done = 0;
    while (done < f->dsize) {
        ssize_t w = pwrite(s->spill_fd, data + done, f->dsize - done, (off_t)(f->doff + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    vma_mutex_lock(&s->lock);
    if (done == f->dsize) {
        f->spill = SPILL_DONE;
        s->stats.spilled++;
    } else {
        f->spill = SPILL_NONE;
        s->spill_used -= f->dsize;
        s->spill_on = FALSE;
    }
    vma_mutex_unlock(&s->lock);
}

/* the spill thread: the reader that decoded a frame goes on at once, the
 * frame is written here, on another core, while its slot stays referenced
 * (it cannot leave the cache before it is in the file) */
static void *spill_main(void *data)
{
    vma_queue *jobs = data;
    for (;;) {
        spill_job *j = vma_queue_pop(jobs);
        if (!j) { /* closed: every frame queued is written */
            vma_queue_unref(jobs);
            return NULL;
        }
        vma_src *s = j->s;
        vma_frame_slot *z = j->z;
        g_free(j);
        write_spill(s, (uint64_t)z->frame, z->data);
        vma_mutex_lock(&s->lock);
        z->refs--;
        s->spill_pending--;
        vma_cond_broadcast(&s->loaded);
        vma_mutex_unlock(&s->lock);
    }
}

/* the first frame to spill made the file (unlocked): then it goes there
 * too, if it still fits the limit (lowered to half the space free) */
static void spill_after_open(vma_src *s, uint64_t fi, vma_frame_slot *z)
{
    gboolean ok = open_spill(s);
    zframe *f = &s->frames[fi];
    vma_mutex_lock(&s->lock);
    if (ok && s->spill_on && f->spill == SPILL_NONE && s->spill_used + f->dsize <= s->spill_limit) {
        f->spill = SPILL_WRITING;
        s->spill_used += f->dsize;
        queue_spill(s, z);
    } else {
        z->refs--;
        vma_cond_broadcast(&s->loaded); /* the slot may be free again */
    }
    vma_mutex_unlock(&s->lock);
}

/* read [off, off + n) of frame fi from the spill file */
static int read_spill(vma_src *s, uint64_t fi, uint64_t off, void *buf, size_t n, GError **err)
{
    ssize_t got = vma_pread_all(s->spill_fd, buf, n, s->frames[fi].doff + off, err);
    if (got >= 0 && (size_t)got < n)
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "the spill file ends early");
    return got >= 0 && (size_t)got == n ? 0 : -1;
}

/* the slots, sized for the cache and the frames (called locked) */
static void make_slots(vma_src *s)
{
    uint64_t n = s->cache_bytes / MAX(1u, s->max_dsize);
    s->n_slots = (unsigned)MIN(MAX(n, (uint64_t)MIN_SLOTS), MIN((uint64_t)MAX_SLOTS, s->n_frames));
    s->slots = g_new0(vma_frame_slot, s->n_slots);
    for (unsigned i = 0; i < s->n_slots; i++)
        s->slots[i].frame = -1;
    s->slot_of = g_new(int32_t, s->n_frames);
    for (uint64_t i = 0; i < s->n_frames; i++)
        s->slot_of[i] = -1;
}
vma_compress vma_src_compression(const vma_src *s) { return s->comp; }

void vma_src_get_stats(vma_src *s, vma_src_stats *st)
{
    vma_mutex_lock(&s->lock);
    while (s->spill_pending) /* the frames being spilled count once written */
        vma_cond_wait(&s->loaded, &s->lock);
    *st = s->stats;
    vma_mutex_unlock(&s->lock);
}
uint64_t vma_src_frames(const vma_src *s) { return s->n_frames; }

/* the frame holding stream offset off */
static uint64_t find_frame(const vma_src *s, uint64_t off)
{
    return VMA_SEARCH_LE(s->frames, s->n_frames, zframe, doff, off);
}

/* the map being made while a frame is decoded */
typedef struct {
    zrun *runs;
    uint32_t n, cap;
    uint32_t end;         /* the decoded bytes the runs cover */
    gboolean direct;      /* a raw or RLE run was added */
    gboolean too_many;    /* more than MAP_MAX_RUNS: no map */
} map_maker;

static uint32_t run_kind(const zrun *r) { return r->info >> 24 & 3; }
static uint32_t run_bsize(const zrun *r) { return r->info & 0xffffff; }

/* a block of len decoded bytes at doff (the map's end); src as in zrun */
static void map_add(map_maker *m, uint32_t kind, uint32_t doff, uint32_t len, uint32_t src)
{
    if (len == 0 || m->too_many)
        return;
    zrun *last = m->n ? &m->runs[m->n - 1] : NULL;
    if (last && run_kind(last) == kind) {
        uint32_t have = doff - last->doff, bs = run_bsize(last);
        if (kind == RUN_COMPRESSED || (kind == RUN_RLE && last->src == src) ||
            /* a raw block after full ones of its size or longer, whose bytes
             * follow the last one's header */
            (kind == RUN_RAW && len <= bs && have % bs == 0 &&
             src == last->src + (uint64_t)(have / bs) * (bs + BLOCK_HEADER))) {
            m->end = doff + len;
            return;
        }
    }
    if (m->n == MAP_MAX_RUNS) {
        m->too_many = TRUE;
        return;
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->runs = g_renew(zrun, m->runs, m->cap);
    }
    m->runs[m->n++] = (zrun){doff, src, kind << 24 | (kind == RUN_RAW ? len : 0)};
    m->end = doff + len;
    m->direct |= kind != RUN_COMPRESSED;
}

/* the finished map (no_direct when there is nothing to read directly, NULL
 * when it needed too many runs) and its size in *bytes */
static const zmap *map_finish(map_maker *m, uint64_t *bytes)
{
    const zmap *r = &no_direct;
    *bytes = 0;
    if (m->too_many) {
        r = NULL;
    } else if (m->direct) {
        zmap *z = g_malloc(sizeof(zmap) + m->n * sizeof(zrun));
        z->n = m->n;
        memcpy(z->runs, m->runs, m->n * sizeof(zrun));
        *bytes = sizeof(zmap) + m->n * sizeof(zrun);
        r = z;
    }
    g_free(m->runs);
    return r;
}

/* decode the frame fi (its csize bytes in `in`) into out, block by block,
 * making its map: every size is checked against what is left of the frame,
 * both compressed and decoded, before zstd sees it */
static int decode_blocks(ZSTD_DCtx *dc, const zframe *f, uint64_t fi, const uint8_t *in,
                         uint8_t *out, map_maker *m, GError **err)
{
    const char *why = NULL;
    int code = VMA_ERR_FORMAT;
    char whybuf[96];
    uint32_t pos = 0, opos = 0;
    uint32_t kind = 0, bsize = 0; /* of the block whose header was read */
    size_t r = 0;
    while (pos < f->csize && !why) {
        /* a frame (several, if the seek table's entry holds more than one):
         * with zstd's content checksum, which ZSTD_decompressContinue checks
         * at its end; a frame without one could not be checked, and is not
         * served (skippable frames hold no bytes of the stream) */
        ZSTD_decompressBegin(dc);
        ZSTD_frameHeader zh;
        if (ZSTD_getFrameHeader(&zh, in + pos, f->csize - pos) == 0 &&
            zh.frameType == ZSTD_frame) {
            if (!zh.checksumFlag) {
                /* not broken: a stream to read from start to end (the
                 * archive then reads at random through a decoded copy) */
                why = "it has no content checksum, which random reads require ('vma recompress' "
                      "writes frames that have one)";
                code = VMA_ERR_NOT_SEEKABLE;
                break;
            }
            /* the window a reader from start to end accepts (zstd's
             * streaming default, which vma verify and extract keep) */
            if (zh.windowSize > ((uint64_t)1 << ZSTD_WINDOWLOG_LIMIT_DEFAULT) + 1) {
                why = "it asks for a window larger than 128 MiB, which a reader from start to "
                      "end refuses";
                break;
            }
        }
        size_t need;
        while ((need = ZSTD_nextSrcSizeToDecompress(dc)) != 0) {
            if (need > f->csize - pos) {
                why = "it runs past its compressed size in the seek table";
                break;
            }
            ZSTD_nextInputType_e t = ZSTD_nextInputType(dc);
            if (t == ZSTDnit_blockHeader) {
                uint32_t h = (uint32_t)in[pos] | (uint32_t)in[pos + 1] << 8 |
                             (uint32_t)in[pos + 2] << 16;
                kind = h >> 1 & 3;
                bsize = h >> 3;
                uint64_t src = kind == RUN_RLE ? 1 : bsize;
                if (kind == 3) {
                    why = "a block of the reserved type";
                } else if (bsize > ZSTD_BLOCKSIZE_MAX) {
                    snprintf(whybuf, sizeof(whybuf), "a block of %u bytes (at most %u)", bsize,
                             (unsigned)ZSTD_BLOCKSIZE_MAX);
                    why = whybuf;
                } else if (src > f->csize - pos - BLOCK_HEADER) {
                    why = "a block runs past its compressed size in the seek table";
                } else if (kind != RUN_COMPRESSED && bsize > f->dsize - opos) {
                    why = "it holds more bytes than the seek table says";
                }
                if (why)
                    break;
            }
            gboolean block = t == ZSTDnit_block || t == ZSTDnit_lastBlock;
            size_t room = f->dsize - opos;
            if (block && kind == RUN_COMPRESSED)
                room = MIN(room, (size_t)ZSTD_BLOCKSIZE_MAX);
            r = ZSTD_decompressContinue(dc, out + opos, room, in + pos, need);
            if (ZSTD_isError(r)) {
                why = ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall
                          ? "it holds more bytes than the seek table says"
                      : ZSTD_getErrorCode(r) == ZSTD_error_checksum_wrong
                          ? "its content checksum does not match: the frame is damaged"
                          : ZSTD_getErrorName(r);
                break;
            }
            if (block) {
                if (kind != RUN_COMPRESSED && r != bsize) {
                    why = "a block decodes to another size than its header says";
                    break;
                }
                map_add(m, kind, opos, (uint32_t)r, kind == RUN_RLE ? in[pos] : pos);
            }
            pos += (uint32_t)need;
            opos += (uint32_t)r;
        }
    }
    if (!why && opos != f->dsize)
        why = "it holds fewer bytes than the seek table says";
    if (why) {
        g_set_error(err, VMA_ERROR, code,
                    "zstd frame %" G_GUINT64_FORMAT " (at byte %" G_GUINT64_FORMAT "): %s", fi,
                    f->coff, why);
        return -1;
    }
    return 0;
}

/* decode frame fi into out; *map gets its block map (see map_finish) */
static int decompress_frame(vma_src *s, uint64_t fi, uint8_t *out, const zmap **map,
                            uint64_t *map_bytes, GError **err)
{
    const zframe *f = &s->frames[fi];
    *map = NULL;
    *map_bytes = 0;
    vma_mutex_lock(&s->lock);
    uint8_t *in = s->inbufs->len ? g_ptr_array_steal_index_fast(s->inbufs, s->inbufs->len - 1) : NULL;
    ZSTD_DCtx *dc = s->dctx->len ? g_ptr_array_steal_index_fast(s->dctx, s->dctx->len - 1) : NULL;
    vma_mutex_unlock(&s->lock);
    if (!in)
        in = g_malloc(s->max_csize);
    ssize_t got = vma_pread_all(s->fd, in, f->csize, f->coff, err);
    int rc = 0;
    if (got >= 0 && got < (ssize_t)f->csize) {
        g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE,
                    "zstd frame %" G_GUINT64_FORMAT ": the archive ends early", fi);
        rc = -1;
    } else if (got < 0) {
        rc = -1;
    } else if (!dc && !(dc = ZSTD_createDCtx())) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "out of memory for zstd");
        rc = -1;
    } else {
        map_maker m = {0};
        rc = decode_blocks(dc, f, fi, in, out, &m, err);
        const zmap *z = map_finish(&m, map_bytes);
        if (rc == 0)
            *map = z;
        else if (z && z != &no_direct)
            g_free((zmap *)z);
    }
    vma_mutex_lock(&s->lock);
    g_ptr_array_add(s->inbufs, in);
    if (dc)
        g_ptr_array_add(s->dctx, dc);
    if (rc == 0)
        s->stats.frames_decoded++;
    vma_mutex_unlock(&s->lock);
    return rc;
}

/* the run of a map (n > 0) that holds decoded offset off */
static uint32_t run_at(const zmap *m, uint64_t off)
{
    return (uint32_t)VMA_SEARCH_LE(m->runs, m->n, zrun, doff, off);
}

/* can [off, off + n) of frame f be read through its map, without decoding? */
static gboolean map_covers(const zframe *f, const zmap *m, uint64_t off, size_t n)
{
    if (m->n == 0)
        return FALSE;
    uint32_t lo = run_at(m, off);
    if (m->runs[lo].doff > off)
        return FALSE; /* never: a map starts at 0 */
    for (uint32_t i = lo; i < m->n; i++) {
        if (run_kind(&m->runs[i]) == RUN_COMPRESSED)
            return FALSE;
        uint64_t end = i + 1 < m->n ? m->runs[i + 1].doff : f->dsize;
        if (end >= off + n)
            return TRUE;
    }
    return FALSE;
}

/* read [off, off + n) of frame f through its map (map_covers said yes) */
static int read_direct(vma_src *s, uint64_t fi, const zmap *m, uint64_t off, uint8_t *buf,
                       size_t n, GError **err)
{
    const zframe *f = &s->frames[fi];
    uint32_t i = run_at(m, off);
    while (n > 0) {
        const zrun *r = &m->runs[i];
        uint64_t end = i + 1 < m->n ? m->runs[i + 1].doff : f->dsize;
        size_t k = (size_t)MIN((uint64_t)n, end - off);
        if (run_kind(r) == RUN_RLE) {
            memset(buf, (int)r->src, k);
        } else {
            uint32_t bs = run_bsize(r);
            uint64_t rel = off - r->doff, blk = rel / bs, in = rel % bs;
            k = (size_t)MIN((uint64_t)k, bs - in);
            ssize_t got = vma_pread_all(s->fd, buf, k,
                                        f->coff + r->src + blk * (bs + BLOCK_HEADER) + in, err);
            if (got >= 0 && (size_t)got < k)
                g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE,
                            "zstd frame %" G_GUINT64_FORMAT ": the archive ends early", fi);
            if (got < 0 || (size_t)got < k)
                return -1;
        }
        buf += k;
        off += k;
        n -= k;
        if (off >= end)
            i++;
    }
    return 0;
}

vma_frame_slot *vma_frame_slot_pick(vma_frame_slot *slots, unsigned n)
{
    vma_frame_slot *best = NULL;
    for (unsigned i = 0; i < n; i++) {
        vma_frame_slot *z = &slots[i];
        if (z->loading || z->refs)
            continue;
        if (z->frame < 0)
            return z;
        if (!best || z->used < best->used)
            best = z;
    }
    return best;
}

void vma_frame_slot_reserve(vma_frame_slot *z, size_t n)
{
    if (!z->data || z->cap < n) {
        /* at least a byte: frames of 0 bytes decode into it too */
        g_free(z->data);
        z->cap = MAX(n, (size_t)1);
        z->data = g_malloc(z->cap);
    }
}

/* with the lock held: make the map of frame fi the one just built, unless
 * the frame has one (it was decoded again after it left the cache) or the
 * maps are over budget */
static void publish_map(vma_src *s, uint64_t fi, const zmap *made, uint64_t made_bytes)
{
    if (!s->frames[fi].map && s->stats.map_bytes + made_bytes <= MAP_BUDGET) {
        s->frames[fi].map = made;
        s->stats.maps++;
        s->stats.map_bytes += made_bytes;
    } else if (made != &no_direct) {
        g_free((zmap *)made);
    }
}

/* copy n bytes at off of frame fi into buf, through the cache */
static int read_frame(vma_src *s, uint64_t fi, uint64_t off, void *buf, size_t n, GError **err)
{
    vma_mutex_lock(&s->lock);
    if (!s->slots)
        make_slots(s);
    note_read(s, fi);
    for (;;) {
        int32_t si = s->slot_of[fi];
        vma_frame_slot *z = si >= 0 ? &s->slots[si] : NULL;
        const zmap *m = s->frames[fi].map;
        if ((!z || z->loading) && m && map_covers(&s->frames[fi], m, off, n)) {
            /* raw and RLE blocks of a frame decoded before: no need for it */
            s->stats.direct_reads++;
            vma_mutex_unlock(&s->lock);
            return read_direct(s, fi, m, off, buf, n, err);
        }
        if (!z && s->frames[fi].spill == SPILL_DONE) {
            /* decoded before, read out of order: from the spill file */
            s->stats.spill_reads++;
            vma_mutex_unlock(&s->lock);
            return read_spill(s, fi, off, buf, n, err);
        }
        if (z && z->loading) { /* another thread is decompressing it */
            vma_cond_wait(&s->loaded, &s->lock);
            continue;
        }
        /* no byte of a frame is served before all of it was decoded and
         * checked (its size, its checksum): the cache, the block maps and
         * the spill file hold only frames that were */
        gboolean hit = z != NULL;
        if (!z) {
            z = vma_frame_slot_pick(s->slots, s->n_slots);
            if (!z) {
                vma_cond_wait(&s->loaded, &s->lock);
                continue;
            }
            if (z->frame >= 0)
                s->slot_of[z->frame] = -1;
            z->frame = (int64_t)fi;
            z->loading = TRUE;
            s->slot_of[fi] = (int32_t)(z - s->slots);
        }
        z->refs++;
        z->used = ++s->clock;
        vma_mutex_unlock(&s->lock);
        int rc = 0;
        const zmap *made = NULL;
        uint64_t made_bytes = 0;
        if (!hit) {
            vma_frame_slot_reserve(z, s->max_dsize);
            rc = decompress_frame(s, fi, z->data, &made, &made_bytes, err);
        }
        if (rc == 0)
            memcpy(buf, z->data + off, n);
        vma_mutex_lock(&s->lock);
        if (!hit && rc == 0 && !s->frames[fi].checked) {
            s->frames[fi].checked = 1;
            s->n_checked++;
        }
        if (made)
            publish_map(s, fi, made, made_bytes);
        /* the slot stays referenced while its bytes go to the spill file
         * (and while the file is made) */
        gboolean make_file = FALSE;
        gboolean spill = !hit && rc == 0 && want_spill(s, fi, &make_file);
        if (!spill && !make_file)
            z->refs--;
        if (!hit) {
            z->loading = FALSE;
            if (rc < 0) {
                s->slot_of[fi] = -1;
                z->frame = -1;
            }
            vma_cond_broadcast(&s->loaded);
        } else if (z->refs == 0) {
            vma_cond_broadcast(&s->loaded); /* a slot may be free again */
        }
        if (spill)
            queue_spill(s, z);
        vma_mutex_unlock(&s->lock);
        if (make_file)
            spill_after_open(s, fi, z);
        return rc;
    }
}

/* decode and check every frame not checked yet.  Called when a reader
 * reaches the end of the stream: a reader from start to end (the index
 * build) has then had every frame checked, as a zstd decoder reading the
 * file would, also the frames it skipped, whose sizes place every frame
 * after them. */
static int check_all(vma_src *s, GError **err)
{
    uint64_t fi = 0;
    for (;;) {
        vma_mutex_lock(&s->lock);
        gboolean all = s->n_checked == s->n_frames;
        while (!all && fi < s->n_frames && s->frames[fi].checked)
            fi++;
        vma_mutex_unlock(&s->lock);
        if (all || fi >= s->n_frames)
            return 0;
        uint8_t none;
        if (read_frame(s, fi++, 0, &none, 0, err) < 0)
            return -1;
    }
}

ssize_t vma_src_pread(vma_src *s, void *buf, size_t n, uint64_t off, GError **err)
{
    if (off >= s->size)
        return s->comp == VMA_COMPRESS_ZSTD && check_all(s, err) < 0 ? -1 : 0;
    n = (size_t)MIN((uint64_t)n, s->size - off);
    if (s->comp == VMA_COMPRESS_NONE)
        return vma_pread_all(s->fd, buf, n, off, err);
    size_t done = 0;
    uint64_t fi = find_frame(s, off);
    while (done < n) {
        const zframe *f = &s->frames[fi];
        uint64_t in_frame = off + done - f->doff;
        size_t k = (size_t)MIN((uint64_t)(n - done), f->dsize - in_frame);
        if (read_frame(s, fi, in_frame, (uint8_t *)buf + done, k, err) < 0)
            return -1;
        done += k;
        fi++;
    }
    return (ssize_t)done;
}
