/* live.c - reads of a decoded copy while the decoder still writes it.
 *
 * The decoder (decoder.c) writes the archive's decompressed stream as zstd
 * frames into the cache file and tells us each frame as it lands
 * (vma_live_append).  A read at a stream offset that no frame holds yet
 * waits for it, and fails once the decoder has stopped without reaching it.
 * A frame is decoded whole and checked before any of its bytes is served:
 * one frame, exactly the size the decoder recorded, its content checksum
 * present and right (zstd verifies it); a few decoded frames are kept for
 * the next reads.  Once the copy is complete the archive reads it through
 * the seekable reader instead (codec/random.c: block maps, a larger cache). */
#define _GNU_SOURCE
#include "access/access.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#define LIVE_SLOTS 4

typedef struct {
    uint64_t coff, doff;
    uint32_t csize, dsize;
} lframe;

struct vma_live {
    int fd;
    vma_mutex lock;
    vma_cond grown;          /* a frame was appended, or the end came */
    GArray *frames;       /* lframe, in stream order */
    uint64_t size;        /* stream bytes in the frames so far */
    uint64_t file_end;    /* file bytes in the frames so far */
    gboolean ended;
    GError *failure;      /* why the decoder stopped early, or NULL */
    vma_frame_slot slots[LIVE_SLOTS];
    uint64_t clock;
};

vma_live *vma_live_new(int fd)
{
    vma_live *l = g_new0(vma_live, 1);
    l->fd = fd;
    vma_mutex_init(&l->lock);
    vma_cond_init(&l->grown);
    l->frames = g_array_new(FALSE, FALSE, sizeof(lframe));
    for (unsigned i = 0; i < LIVE_SLOTS; i++)
        l->slots[i].frame = -1;
    return l;
}

void vma_live_free(vma_live *l)
{
    if (!l)
        return;
    for (unsigned i = 0; i < LIVE_SLOTS; i++)
        g_free(l->slots[i].data);
    g_array_free(l->frames, TRUE);
    g_clear_error(&l->failure);
    vma_mutex_clear(&l->lock);
    vma_cond_clear(&l->grown);
    if (l->fd >= 0)
        close(l->fd);
    g_free(l);
}

void vma_live_append(vma_live *l, uint64_t csize, uint64_t dsize)
{
    vma_mutex_lock(&l->lock);
    lframe f = {l->file_end, l->size, (uint32_t)csize, (uint32_t)dsize};
    g_array_append_val(l->frames, f);
    l->size += dsize;
    l->file_end += csize;
    vma_cond_broadcast(&l->grown);
    vma_mutex_unlock(&l->lock);
}

void vma_live_end(vma_live *l, const GError *failure)
{
    vma_mutex_lock(&l->lock);
    l->ended = TRUE;
    if (failure && !l->failure)
        l->failure = g_error_copy(failure);
    vma_cond_broadcast(&l->grown);
    vma_mutex_unlock(&l->lock);
}

uint64_t vma_live_size(vma_live *l)
{
    vma_mutex_lock(&l->lock);
    uint64_t n = l->size;
    vma_mutex_unlock(&l->lock);
    return n;
}

/* wait (locked) until the stream holds end bytes: TRUE, or FALSE with err
 * when it never will (the decoder stopped) or on an interrupt */
static gboolean wait_for(vma_live *l, uint64_t end, GError **err)
{
    while (l->size < end) {
        if (l->ended) {
            if (l->failure)
                g_propagate_error(err, g_error_copy(l->failure));
            else
                g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE, "the archive ends early");
            return FALSE;
        }
        if (vma_interrupted()) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            return FALSE;
        }
        vma_cond_wait_ms(&l->grown, &l->lock, 100);
    }
    return TRUE;
}

static guint find(const vma_live *l, uint64_t off)
{
    return (guint)VMA_SEARCH_LE(l->frames->data, l->frames->len, lframe, doff, off);
}

/* decode frame f into out (f.dsize bytes), checked as a reader of the
 * finished copy checks it */
static int decode(vma_live *l, const lframe *f, guint fi, uint8_t *out, GError **err)
{
    uint8_t *in = g_malloc(f->csize);
    ssize_t got = vma_pread_all(l->fd, in, f->csize, f->coff, err);
    int rc = -1;
    const char *why = NULL;
    if (got < 0) {
        g_free(in);
        return -1;
    }
    ZSTD_frameHeader fh;
    if ((size_t)got < f->csize)
        why = "it is cut short";
    else if (ZSTD_getFrameHeader(&fh, in, f->csize) != 0 || fh.frameType != ZSTD_frame)
        why = "no zstd frame";
    else if (!fh.checksumFlag)
        why = "it has no checksum";
    else if (ZSTD_findFrameCompressedSize(in, f->csize) != f->csize)
        why = "it is not one frame of the recorded size";
    if (!why) {
        ZSTD_DCtx *dc = ZSTD_createDCtx();
        size_t r = dc ? ZSTD_decompressDCtx(dc, out, f->dsize, in, f->csize) : 0;
        if (!dc)
            why = "out of memory for zstd";
        else if (ZSTD_isError(r))
            why = ZSTD_getErrorName(r);
        else if (r != f->dsize)
            why = "it holds another size than was recorded";
        else
            rc = 0;
        ZSTD_freeDCtx(dc);
    }
    if (why)
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                    "the cache's frame %u (at byte %" G_GUINT64_FORMAT ") is damaged: %s", fi,
                    f->coff, why);
    g_free(in);
    return rc;
}

/* copy n bytes at off of frame fi (locked on entry and return) */
static int read_frame(vma_live *l, guint fi, uint64_t off, uint8_t *buf, size_t n, GError **err)
{
    for (;;) {
        vma_frame_slot *z = NULL;
        for (unsigned i = 0; i < LIVE_SLOTS; i++)
            if (l->slots[i].frame == (int64_t)fi)
                z = &l->slots[i];
        if (z && z->loading) {
            vma_cond_wait(&l->grown, &l->lock);
            continue;
        }
        gboolean hit = z != NULL;
        if (!z) {
            z = vma_frame_slot_pick(l->slots, LIVE_SLOTS);
            if (!z) {
                vma_cond_wait(&l->grown, &l->lock);
                continue;
            }
            z->frame = fi;
            z->loading = TRUE;
        }
        z->refs++;
        z->used = ++l->clock;
        lframe f = g_array_index(l->frames, lframe, fi);
        vma_mutex_unlock(&l->lock);
        int rc = 0;
        if (!hit) {
            vma_frame_slot_reserve(z, f.dsize);
            rc = decode(l, &f, fi, z->data, err);
        }
        if (rc == 0)
            memcpy(buf, z->data + off, n);
        vma_mutex_lock(&l->lock);
        z->refs--;
        if (!hit) {
            z->loading = FALSE;
            if (rc < 0)
                z->frame = -1;
        }
        vma_cond_broadcast(&l->grown);
        return rc;
    }
}

ssize_t vma_live_pread(vma_live *l, void *buf, size_t n, uint64_t off, GError **err)
{
    vma_mutex_lock(&l->lock);
    if (!wait_for(l, off + n, err)) {
        vma_mutex_unlock(&l->lock);
        return -1;
    }
    size_t done = 0;
    guint fi = find(l, off);
    while (done < n) {
        lframe f = g_array_index(l->frames, lframe, fi);
        uint64_t in = off + done - f.doff;
        size_t k = (size_t)MIN((uint64_t)(n - done), f.dsize - in);
        if (read_frame(l, fi, in, (uint8_t *)buf + done, k, err) < 0) {
            vma_mutex_unlock(&l->lock);
            return -1;
        }
        done += k;
        fi++;
    }
    vma_mutex_unlock(&l->lock);
    return (ssize_t)done;
}
