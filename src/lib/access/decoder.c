/* decoder.c - an archive that can only be read from start to end
 * (vzdump's one-stream .vma.zst, .vma.gz, .vma.lzo, a pipe) decoded once,
 * in a thread of its own, into a seekable copy that reads at random.
 *
 * The thread reads the stream with every rule of the reader checked, and
 * writes the header and each extent, as read, into the copy: a .vma.zst in
 * zstd's seekable format (codec/output.c) at a fast level, whose frames are
 * compressed by worker threads, or written raw when the workers fall behind
 * (vma_out_set_adaptive), so that the decoder runs at the speed of the
 * decompression.  The copy goes to the disk through O_DIRECT where the
 * file system takes it (codec/direct.c: its own thread writes, nothing is
 * left in the page cache), and a frame is readable (live.c) once it is in
 * the file; the snapshots below flush what is gathered.  The index
 * of the clusters seen so far is published as an immutable snapshot that
 * readers walk without a lock: when a reader waits for a cluster not seen
 * yet, the next snapshot comes after the next extent (at most every 50 ms),
 * otherwise every second.
 *
 * With a cache folder the copy is written as KEY.part (KEY.lock held) and,
 * once complete, its index saved as KEY.idx, KEY.info written, and KEY.part
 * renamed KEY.vma.zst: a killed decoder leaves no cache under its final
 * name, and an archive that breaks leaves none at all.  Without one (a
 * pipe, --no-cache) the copy is an unlinked file that goes with the
 * process. */
#define _GNU_SOURCE
#include "access/access.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* zstd's level for the copy: its fastest (--fast=1); what that costs and
 * saves against level 3 is in docs/performance.md */
#define COPY_LEVEL (-1)
#define SNAP_WAITED_S 0.05
#define SNAP_EVERY_S  1.0

struct vma_decoder {
    vma_thread *thread;
    vma_reader *r;
    int part_fd;
    char *dir, *key, *label;
    vma_identity id;
    int lock_fd;
    vma_live *live;
    vma_mutex lock;
    vma_cond changed;        /* a snapshot was published, or the end */
    vma_index *snap;      /* the latest snapshot (a reference) */
    uint64_t seq;
    gint want;            /* a reader waits for a snapshot */
    gint stop;
    gboolean done, complete;
    GError *failure;
    uint64_t raw_frames;
    gboolean compacting;  /* the copy is being compressed again */
    uint64_t stream_done; /* decompressed bytes decoded (at the last snapshot) */
    _Atomic uint64_t stream_at; /* the same after each extent (any thread) */
    double start, end;
    char *final_path;
};

static void on_frame(void *ud, uint64_t csize, uint64_t dsize)
{
    vma_live_append(ud, csize, dsize);
}

/* with the lock: make ix (building) readable as it is now */
static void publish(vma_decoder *d, vma_index *snap)
{
    vma_index *old = d->snap;
    d->snap = snap;
    d->seq++;
    vma_cond_broadcast(&d->changed);
    vma_mutex_unlock(&d->lock);
    vma_index_free(old);
    vma_mutex_lock(&d->lock);
}

/* the copy complete: the index and the info beside it, then the copy under
 * its final name (renamed last: its name says it is whole) */
static int keep(vma_decoder *d, vma_index *ix, uint64_t stream_size, GError **err)
{
    uint8_t stamp[VMA_STAMP_SIZE];
    vma_identity_stamp(&d->id, stream_size, stamp);
    char *idx = vma_cache_path(d->dir, d->key, ".idx");
    char *part = vma_cache_path(d->dir, d->key, ".part");
    d->final_path = vma_cache_path(d->dir, d->key, ".vma.zst");
    int rc = vma_index_save(ix, idx, stamp, err);
    if (rc == 0)
        rc = vma_cache_write_info(d->dir, d->key, d->label, &d->id,
                                  vma_reader_compression(d->r), d->raw_frames, err);
    if (rc == 0 && rename(part, d->final_path) < 0) {
        vma_set_errno(err, errno, "cannot rename %s", part);
        rc = -1;
    }
    if (rc == 0)
        rc = vma_fsync_dir(d->dir, err);
    if (rc < 0)
        unlink(idx);
    g_free(idx);
    g_free(part);
    return rc;
}

static int decode(vma_decoder *d, vma_index *ix, GError **err)
{
    /* the stream's decoder and this thread take two cores: the workers get
     * the others (frames they cannot take go out raw; none: all raw, and
     * compacted later) */
    int workers = (int)g_get_num_processors() - 2;
    if (workers <= 0)
        workers = -1;
    vma_out *out = vma_out_new(d->part_fd, VMA_COMPRESS_ZSTD, COPY_LEVEL, workers, err);
    if (!out)
        return -1;
    vma_out_set_adaptive(out, TRUE);
    vma_out_set_no_sync(out);
    vma_out_set_frame_fn(out, on_frame, d->live);
    vma_out_set_direct(out); /* where it cannot: through the page cache */
    size_t len;
    const uint8_t *raw = vma_reader_raw_header(d->r, &len);
    int rc = vma_out_write(out, raw, len, err);
    vma_extent *ext = g_new(vma_extent, 1);
    double last = vma_now();
    while (rc == 0) {
        if (g_atomic_int_get(&d->stop)) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "stopped");
            rc = -1;
            break;
        }
        int n = vma_reader_next(d->r, ext, err);
        if (n <= 0) {
            rc = n;
            break;
        }
        raw = vma_reader_raw_extent(d->r, ext, &len);
        vma_out_mark(out);
        if (vma_out_write(out, raw, len, err) < 0 || vma_index_add(ix, ext, err) < 0) {
            rc = -1;
            break;
        }
        double now = vma_now();
        uint64_t at = vma_reader_offset(d->r);
        atomic_store_explicit(&d->stream_at, at, memory_order_relaxed);
        gboolean wanted = g_atomic_int_get(&d->want);
        if ((wanted && now - last >= SNAP_WAITED_S) || now - last >= SNAP_EVERY_S) {
            /* the frames of the snapshot reach the file as soon as they can */
            if (vma_out_flush(out, err) < 0) {
                rc = -1;
                break;
            }
            vma_index *snap = vma_index_snapshot(ix, at);
            last = now;
            vma_mutex_lock(&d->lock);
            g_atomic_int_set(&d->want, 0);
            d->stream_done = at;
            publish(d, snap);
            vma_mutex_unlock(&d->lock);
        }
    }
    g_free(ext);
    if (rc == 0)
        rc = vma_out_finish(out, err);
    d->raw_frames = vma_out_raw_frames(out);
    vma_out_free(out);
    return rc;
}

/* The copy's raw frames compressed (all cores, at a low priority): the copy
 * read once more from KEY.vma.zst, written to KEY.compact, renamed over it
 * (readers of the old file keep it open; the index stays right: the stream
 * is the same).  Stopped like the decoder; any failure keeps the copy as
 * it is. */
static void compact(vma_decoder *d)
{
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) < 0)
        { /* not allowed: at the same priority */ }
    char *tmp = vma_cache_path(d->dir, d->key, ".compact");
    int in = vma_cache_open_file(d->final_path, UINT64_MAX, NULL, NULL);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    vma_reader *r = in >= 0 ? vma_reader_open_fd(in, NULL) : NULL;
    vma_out *out = r && fd >= 0 ? vma_out_new(fd, VMA_COMPRESS_ZSTD, COPY_LEVEL, 0, NULL) : NULL;
    if (in >= 0 && !r)
        close(in);
    int rc = out ? 0 : -1;
    if (out) {
        vma_out_set_no_sync(out);
        size_t len;
        const uint8_t *raw = vma_reader_raw_header(r, &len);
        rc = vma_out_write(out, raw, len, NULL);
    }
    vma_extent *ext = g_new(vma_extent, 1);
    while (rc == 0) {
        if (g_atomic_int_get(&d->stop) || vma_interrupted()) {
            rc = -1;
            break;
        }
        int n = vma_reader_next(r, ext, NULL);
        if (n <= 0) {
            rc = n;
            break;
        }
        size_t len;
        const uint8_t *raw = vma_reader_raw_extent(r, ext, &len);
        vma_out_mark(out);
        rc = vma_out_write(out, raw, len, NULL);
    }
    g_free(ext);
    if (rc == 0)
        rc = vma_out_finish(out, NULL);
    vma_out_free(out);
    vma_reader_free(r);
    if (fd >= 0 && close(fd) < 0)
        rc = -1;
    if (rc == 0 && rename(tmp, d->final_path) == 0) {
        vma_cache_write_info(d->dir, d->key, d->label, &d->id, vma_reader_compression(d->r), 0,
                             NULL);
        d->raw_frames = 0;
    } else {
        unlink(tmp);
    }
    g_free(tmp);
}

static void *decoder_main(void *data)
{
    vma_decoder *d = data;
    const vma_header *h = vma_reader_header(d->r);
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++)
        if (h->devices[id])
            vma_reader_set_optional(d->r, (uint8_t)id, TRUE); /* missing reads as EIO */
    vma_index *ix = vma_index_new(h);
    GError *e = NULL;
    int rc = decode(d, ix, &e);
    uint64_t size = vma_reader_offset(d->r);
    if (rc == 0) {
        vma_index_finish(ix, size);
        if (d->dir && keep(d, ix, size, &e) < 0) {
            /* the copy is good, only not kept: it is read as it is */
            g_clear_error(&e);
            g_clear_pointer(&d->final_path, g_free);
        }
    }
    if (rc < 0 && d->dir) {
        char *part = vma_cache_path(d->dir, d->key, ".part");
        unlink(part);
        g_free(part);
    }
    vma_live_end(d->live, rc < 0 ? e : NULL);
    vma_mutex_lock(&d->lock);
    d->stream_done = size;
    d->end = vma_now();
    /* set with done, so that whoever sees done sees it too */
    gboolean compacting = d->compacting = rc == 0 && d->final_path && d->raw_frames > 0;
    d->done = TRUE;
    d->complete = rc == 0;
    if (rc < 0) {
        d->failure = e;
        vma_index_free(ix);
        vma_cond_broadcast(&d->changed);
    } else {
        publish(d, ix);
    }
    vma_mutex_unlock(&d->lock);
    if (compacting) {
        compact(d);
        vma_mutex_lock(&d->lock);
        d->compacting = FALSE;
        vma_cond_broadcast(&d->changed);
        vma_mutex_unlock(&d->lock);
    }
    if (d->lock_fd >= 0) {
        close(d->lock_fd); /* releases the flock */
        d->lock_fd = -1;
    }
    return NULL;
}

gboolean vma_decoder_compacting(vma_decoder *d)
{
    vma_mutex_lock(&d->lock);
    gboolean c = d->compacting;
    vma_mutex_unlock(&d->lock);
    return c;
}

int vma_decoder_wait_compacted(vma_decoder *d)
{
    vma_mutex_lock(&d->lock);
    while (d->compacting && !vma_interrupted())
        vma_cond_wait_ms(&d->changed, &d->lock, 100);
    int rc = d->compacting ? -1 : 0;
    vma_mutex_unlock(&d->lock);
    return rc;
}

vma_decoder *vma_decoder_start(vma_reader *r, int part_fd, int lock_fd, const char *dir,
                               const char *key, const char *label, const vma_identity *id,
                               GError **err)
{
    vma_decoder *d = g_new0(vma_decoder, 1);
    d->r = r;
    d->part_fd = part_fd;
    d->lock_fd = lock_fd;
    d->dir = g_strdup(dir);
    d->key = g_strdup(key);
    d->label = g_strdup(label);
    if (id)
        d->id = *id;
    int rfd = dup(part_fd);
    d->live = vma_live_new(rfd >= 0 ? rfd : -1);
    vma_mutex_init(&d->lock);
    vma_cond_init(&d->changed);
    d->snap = vma_index_new(vma_reader_header(r));
    vma_index_finish(d->snap, 0);
    d->start = vma_now();
    d->thread = vma_thread_new("vma-copy", decoder_main, d, err);
    if (!d->thread) {
        if (dir) {
            char *part = vma_cache_path(dir, key, ".part");
            unlink(part);
            g_free(part);
        }
        vma_decoder_free(d);
        return NULL;
    }
    return d;
}

vma_index *vma_decoder_index(vma_decoder *d, uint64_t *seq, gboolean *done)
{
    vma_mutex_lock(&d->lock);
    vma_index *ix = vma_index_ref(d->snap);
    *seq = d->seq;
    *done = d->done;
    vma_mutex_unlock(&d->lock);
    return ix;
}

int vma_decoder_wait(vma_decoder *d, uint64_t seq, double seconds)
{
    g_atomic_int_set(&d->want, 1);
    gint64 until = g_get_monotonic_time() + (gint64)(seconds * G_TIME_SPAN_SECOND);
    vma_mutex_lock(&d->lock);
    while (d->seq == seq && !d->done && !vma_interrupted() && g_get_monotonic_time() < until)
        vma_cond_wait_until(&d->changed, &d->lock,
                            MIN(until, g_get_monotonic_time() + 100 * G_TIME_SPAN_MILLISECOND));
    int rc = d->seq != seq || d->done ? 1 : vma_interrupted() ? -1 : 0;
    vma_mutex_unlock(&d->lock);
    return rc;
}

void vma_decoder_status(vma_decoder *d, vma_decode_status *st)
{
    memset(st, 0, sizeof(*st));
    vma_mutex_lock(&d->lock);
    st->done = d->done;
    st->complete = d->complete;
    st->stream_done = d->done ? d->stream_done
                              : atomic_load_explicit(&d->stream_at, memory_order_relaxed);
    st->seconds = (d->done ? d->end : vma_now()) - d->start;
    vma_mutex_unlock(&d->lock);
    /* the input's count is an atomic of its own; its size never changes */
    st->input_done = st->done ? d->id.size : vma_reader_input_offset(d->r);
    st->input_total = d->id.size;
}

gboolean vma_decoder_failure(vma_decoder *d, GError **err)
{
    vma_mutex_lock(&d->lock);
    gboolean failed = d->failure != NULL;
    if (failed && err)
        g_propagate_error(err, g_error_copy(d->failure));
    vma_mutex_unlock(&d->lock);
    return failed;
}

vma_live *vma_decoder_live(vma_decoder *d) { return d->live; }

const char *vma_decoder_final_path(vma_decoder *d)
{
    vma_mutex_lock(&d->lock);
    const char *p = d->complete ? d->final_path : NULL;
    vma_mutex_unlock(&d->lock);
    return p;
}

int vma_decoder_part_fd(vma_decoder *d) { return d->part_fd; }

void vma_decoder_free(vma_decoder *d)
{
    if (!d)
        return;
    g_atomic_int_set(&d->stop, 1);
    if (d->thread)
        vma_thread_join(d->thread);
    vma_index_free(d->snap);
    vma_reader_free(d->r);
    vma_live_free(d->live);
    if (d->part_fd >= 0)
        close(d->part_fd);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    g_clear_error(&d->failure);
    vma_mutex_clear(&d->lock);
    vma_cond_clear(&d->changed);
    g_free(d->final_path);
    g_free(d->dir);
    g_free(d->key);
    g_free(d->label);
    g_free(d);
}
