/* vrbd_source.c - a vma_source_ops over librbd: an image (or a snapshot of
 * one) read for a backup.
 *
 * next_data comes from the extents rbd_diff_iterate2 gives from the start
 * of time (NULL) with whole_object = 0: per object that exists, from its
 * start to its highest written byte (a superset of the data, found quickly
 * (docs/performance.md); unallocated objects are never read).
 * The writer's reader thread reads the image in order, one chunk (up to
 * 59 * 64 KiB) at a time; the source reads ahead along the extents, with
 * up to `window` bytes of object-sized aio reads in flight, and pread copies
 * from them.  Waits poll the host's interrupt flag every 100 ms. */
#define _GNU_SOURCE
#include "rbd.h"

#include <errno.h>
#include <string.h>

typedef struct {
    uint64_t off, end;
} extent;

typedef struct piece {
    struct piece *next;
    struct piece *sub;    /* the pieces read_ahead submits */
    struct vrbd_source *s;
    uint64_t off, len;
    char *buf;
    double t;
    ssize_t r;
    gboolean done;
} piece;

struct vrbd_source {
    vrbd_cluster *c;
    rados_ioctx_t io;
    rbd_image_t img;
    char *pool, *label;
    uint64_t size, obj;
    const vma_ext_hooks *hooks;
    GArray *ext;          /* extent, sorted, merged, whole clusters */
    uint64_t data_bytes;
    size_t window;
    vma_mutex lock;
    vma_cond cond;
    piece *head, *tail;   /* read ahead, in image order */
    size_t queued;        /* bytes of the pieces */
    unsigned inflight;    /* pieces not done */
    gboolean failed;      /* a read failed or was interrupted */
    guint cur_ext;        /* where reading ahead goes on: */
    uint64_t cur;         /*   ext[cur_ext], at cur */
};

static int diff_cb(uint64_t off, size_t len, int exists, void *arg)
{
    vrbd_source *s = arg;
    if (!exists || !len)
        return 0;
    extent e = {off & ~(uint64_t)(VMA_CLUSTER_SIZE - 1),
                (off + len + VMA_CLUSTER_SIZE - 1) & ~(uint64_t)(VMA_CLUSTER_SIZE - 1)};
    if (e.end > s->size)
        e.end = s->size;
    if (e.off >= e.end)
        return 0;
    g_array_append_val(s->ext, e);
    return 0;
}

static gint cmp_extent(gconstpointer a, gconstpointer b)
{
    const extent *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static void merge_extents(vrbd_source *s)
{
    g_array_sort(s->ext, cmp_extent);
    guint n = 0;
    extent *e = (extent *)(void *)s->ext->data;
    for (guint i = 0; i < s->ext->len; i++) {
        if (n && e[i].off <= e[n - 1].end) {
            if (e[i].end > e[n - 1].end)
                e[n - 1].end = e[i].end;
        } else {
            e[n++] = e[i];
        }
    }
    g_array_set_size(s->ext, n);
    s->data_bytes = 0;
    for (guint i = 0; i < n; i++)
        s->data_bytes += e[i].end - e[i].off;
}

static extent *ext_at(vrbd_source *s, guint i)
{
    return &g_array_index(s->ext, extent, i);
}

/* the first extent that ends after off */
static guint ext_find(vrbd_source *s, uint64_t off)
{
    guint lo = 0, hi = s->ext->len;
    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        if (ext_at(s, mid)->end <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int src_next_data(void *ctx, uint64_t off, uint64_t *start, uint64_t *end, GError **err)
{
    vrbd_source *s = ctx;
    (void)err;
    guint i = ext_find(s, off);
    if (i >= s->ext->len)
        return 0;
    *start = ext_at(s, i)->off;
    *end = ext_at(s, i)->end;
    return 1;
}

static void piece_done(rbd_completion_t c, void *arg)
{
    piece *p = arg;
    vrbd_source *s = p->s;
    ssize_t r = vrbd_aio_result(c);
    vma_mutex_lock(&s->lock);
    p->r = r;
    p->done = TRUE;
    s->inflight--;
    vma_cond_broadcast(&s->cond);
    vma_mutex_unlock(&s->lock);
}

/* drop the pieces that end at or before off (lock held) */
static void drop_before(vrbd_source *s, uint64_t off)
{
    while (s->head && s->head->done && s->head->off + s->head->len <= off) {
        piece *p = s->head;
        s->head = p->next;
        if (!s->head)
            s->tail = NULL;
        s->queued -= p->len;
        g_free(p->buf);
        g_free(p);
    }
}

/* read ahead from off on (the cursor never goes back): up to the window */
static void read_ahead(vrbd_source *s, uint64_t off)
{
    piece *todo = NULL, **last = &todo;
    vma_mutex_lock(&s->lock);
    if (s->cur < off) {
        s->cur_ext = ext_find(s, off);
        s->cur = s->cur_ext < s->ext->len ? MAX(off, ext_at(s, s->cur_ext)->off) : s->size;
    }
    while (s->queued < s->window && s->cur_ext < s->ext->len) {
        extent *e = ext_at(s, s->cur_ext);
        if (s->cur < e->off)
            s->cur = e->off;
        /* up to the end of the object: one aio read, one object */
        uint64_t stop = MIN(e->end, (s->cur / s->obj + 1) * s->obj);
        piece *p = g_new0(piece, 1);
        p->s = s;
        p->off = s->cur;
        p->len = stop - s->cur;
        p->buf = g_malloc(p->len);
        p->t = vrbd_now();
        if (s->tail)
            s->tail->next = p;
        else
            s->head = p;
        s->tail = p;
        s->queued += p->len;
        s->inflight++;
        s->cur = stop;
        if (stop >= e->end)
            s->cur_ext++;
        *last = p;
        last = &p->sub;
    }
    vma_mutex_unlock(&s->lock);
    /* submitted without the lock: a completion may run at once */
    for (piece *p = todo, *next; p; p = next) {
        next = p->sub;
        rbd_completion_t c;
        int r = rbd_aio_create_completion(p, piece_done, &c);
        if (r == 0) {
            r = rbd_aio_read(s->img, p->off, (size_t)p->len, p->buf, c);
            if (r < 0)
                rbd_aio_release(c);
        }
        if (r < 0) {
            vma_mutex_lock(&s->lock);
            p->r = r;
            p->done = TRUE;
            s->inflight--;
            vma_mutex_unlock(&s->lock);
        }
    }
}

static int fail(vrbd_source *s, int r, uint64_t off, GError **err)
{
    s->failed = TRUE;
    char *what = g_strdup_printf("reading at offset %" G_GUINT64_FORMAT, off);
    char *msg = vrbd_describe(s->c, s->pool, r, what);
    g_set_error_literal(err, vrbd_domain(s->hooks), VMA_ERR_IO, msg);
    g_free(what);
    g_free(msg);
    return -1;
}

/* wait (lock held) until p is read; 0, or -1 with err */
static int wait_piece(vrbd_source *s, piece *p, GError **err)
{
    while (!p->done) {
        if (vrbd_interrupted(s->hooks)) {
            s->failed = TRUE;
            g_set_error_literal(err, vrbd_domain(s->hooks), VMA_ERR_INTERRUPTED, "interrupted");
            return -1;
        }
        vma_cond_wait_ms(&s->cond, &s->lock, 100);
        double age = vrbd_now() - p->t;
        /* librbd may take up to 2 T (it re-acquires what it needs first) */
        if (!p->done && s->c->timeout > 0 && age > s->c->timeout + 5)
            return fail(s, -ETIMEDOUT, p->off, err);
    }
    if (p->r < 0)
        return fail(s, (int)p->r, p->off, err);
    if ((uint64_t)p->r < p->len) /* short: only at the end of the image */
        memset(p->buf + p->r, 0, (size_t)(p->len - (uint64_t)p->r));
    return 0;
}

static ssize_t src_pread(void *ctx, void *buf, size_t n, uint64_t off, GError **err)
{
    vrbd_source *s = ctx;
    if (off >= s->size)
        return 0;
    if (n > s->size - off)
        n = (size_t)(s->size - off);
    read_ahead(s, off);
    uint64_t pos = off, end = off + n;
    vma_mutex_lock(&s->lock);
    drop_before(s, off);
    piece *p = s->head;
    while (pos < end) {
        while (p && p->off + p->len <= pos)
            p = p->next;
        if (p && p->off <= pos) {
            if (wait_piece(s, p, err) < 0) {
                vma_mutex_unlock(&s->lock);
                return -1;
            }
            uint64_t stop = MIN(end, p->off + p->len);
            memcpy((char *)buf + (pos - off), p->buf + (pos - p->off), (size_t)(stop - pos));
            pos = stop;
            continue;
        }
        /* not read ahead (outside the extents): read it now */
        uint64_t stop = p ? MIN(end, p->off) : end;
        vma_mutex_unlock(&s->lock);
        ssize_t r = rbd_read(s->img, pos, (size_t)(stop - pos), (char *)buf + (pos - off));
        if (r < 0)
            return fail(s, (int)r, pos, err);
        if ((uint64_t)r < stop - pos)
            memset((char *)buf + (pos - off) + r, 0, (size_t)(stop - pos - (uint64_t)r));
        pos = stop;
        vma_mutex_lock(&s->lock);
        p = s->head; /* the list may have changed meanwhile: look again */
    }
    drop_before(s, end);
    vma_mutex_unlock(&s->lock);
    read_ahead(s, end);
    return (ssize_t)n;
}

const char *vrbd_source_label(const vrbd_source *s)
{
    return s->label;
}

const vma_source_ops vrbd_source_ops = {src_next_data, src_pread};

/* what the source holds of its own (the image is closed apart) */
static void source_free(vrbd_source *s)
{
    g_array_free(s->ext, TRUE);
    vma_mutex_clear(&s->lock);
    vma_cond_clear(&s->cond);
    g_free(s->pool);
    g_free(s->label);
    g_free(s);
}

vrbd_source *vrbd_source_new(vrbd_cluster *c, rados_ioctx_t io, rbd_image_t img, const char *pool,
                           const char *label, uint64_t size, size_t window,
                           const vma_ext_hooks *hooks, GError **err)
{
    vrbd_source *s = g_new(vrbd_source, 1);
    *s = (vrbd_source){.c = c, .io = io, .img = img, .pool = g_strdup(pool),
                       .label = g_strdup(label), .size = size, .hooks = hooks,
                       .window = window ? window : (size_t)32 << 20};
    rbd_image_info_t info;
    s->obj = rbd_stat(img, &info, sizeof info) == 0 && info.obj_size ? info.obj_size : 4u << 20;
    s->ext = g_array_new(FALSE, FALSE, sizeof(extent));
    vma_mutex_init(&s->lock);
    vma_cond_init(&s->cond);
    int r = rbd_diff_iterate2(img, NULL, 0, size, 1, 0, diff_cb, s);
    if (r < 0) {
        fail(s, r, 0, err);
        g_prefix_error(err, "finding the data of %s: ", label);
        source_free(s);
        return NULL;
    }
    merge_extents(s);
    g_atomic_int_inc(&c->refs);
    return s;
}

uint64_t vrbd_source_data_bytes(const vrbd_source *s)
{
    return s->data_bytes;
}

int vrbd_source_close(vrbd_source *s, GError **err)
{
    /* reads in flight end, or fail after T; after a failure 3 s at most */
    double bound = vrbd_close_bound(s->c, s->failed);
    unsigned left = vrbd_drain(&s->lock, &s->cond, &s->inflight, bound);
    if (left) {
        g_atomic_int_inc(&s->c->stuck); /* the pieces stay: their reads may still end */
        g_set_error(err, vrbd_domain(s->hooks), VMA_ERR_IO,
                    "%s: %u reads still unanswered after %.0f s; not waiting any longer",
                    s->label, left, bound);
        return -1;
    }
    while (s->head) {
        piece *p = s->head;
        s->head = p->next;
        g_free(p->buf);
        g_free(p);
    }
    vrbd_close_image(s->c, s->io, s->img, s->failed ? 3 : 10);
    source_free(s);
    return 0;
}
