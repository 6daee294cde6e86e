/* compare.c - the clusters that differ between two disks (of two backups
 * of one VM): by reading both, a piece at a time (a piece that is zero in
 * both is not read; B's piece read by a helper thread while this one reads
 * A's), or from the cluster digests a survey made.  The answer is the same
 * either way: runs of differing 64 KiB clusters. */
#define _GNU_SOURCE
#include "store/store.h"

#include <string.h>

/* clusters compared per read: 4 MiB */
#define CHUNK_CLUSTERS 64u
#define CHUNK_BYTES ((uint64_t)CHUNK_CLUSTERS * VMA_CLUSTER_SIZE)

typedef struct {
    vma_range_fn fn;
    void *ud;
    vma_diff_stats *st;
    uint64_t run_start, run_end; /* the open run of differing clusters, in clusters */
    gboolean open;
} runs;

static int run_flush(runs *r)
{
    if (!r->open)
        return 0;
    r->open = FALSE;
    uint64_t off = r->run_start * VMA_CLUSTER_SIZE;
    uint64_t end = MIN(r->run_end * VMA_CLUSTER_SIZE, r->st->length);
    r->st->changed_bytes += end - off;
    r->st->ranges++;
    return r->fn ? r->fn(off, end - off, r->ud) : 0;
}

/* cluster c differs */
static int run_add(runs *r, uint64_t c)
{
    r->st->changed_clusters++;
    if (r->open && r->run_end == c) {
        r->run_end = c + 1;
        return 0;
    }
    if (run_flush(r))
        return -1;
    r->open = TRUE;
    r->run_start = c;
    r->run_end = c + 1;
    return 0;
}

static int stopped(GError **err)
{
    g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
    return -1;
}

/* ---- by reading ---- */

static int any_data(const vma_piece *p, void *ud)
{
    if (p->kind != VMA_PIECE_ZERO) {
        *(gboolean *)ud = TRUE;
        return 1;
    }
    return 0;
}

/* does [off, off + len) of the device hold anything but zero blocks? */
static int has_data(vma_archive *a, uint8_t dev, uint64_t size, uint64_t off, uint64_t len,
                    GError **err)
{
    if (off >= size)
        return 0;
    gboolean any = FALSE;
    if (vma_archive_map(a, dev, off, MIN(len, size - off), any_data, &any, err) < 0)
        return -1;
    return any ? 1 : 0;
}

/* read [off, off + len) of a device into buf: zeros past its end */
static int read_piece(vma_archive *a, uint8_t dev, uint64_t size, uint8_t *buf, uint64_t off,
                      uint64_t len, vma_diff_stats *st, GError **err)
{
    uint64_t n = off < size ? MIN(len, size - off) : 0;
    uint64_t done = 0;
    while (done < n) {
        ssize_t got = vma_archive_pread(a, dev, buf + done, (size_t)(n - done), off + done, err);
        if (got < 0)
            return -1;
        if (got == 0) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE, "the disk ends early");
            return -1;
        }
        done += (uint64_t)got;
    }
    st->bytes_read += n;
    if (n < len)
        memset(buf + n, 0, (size_t)(len - n));
    return 0;
}

/* B's pieces are read by a helper thread while this one reads A's */
typedef struct {
    vma_mutex lock;
    vma_cond cond;
    gboolean busy, quit;
    vma_archive *b;
    uint8_t dev;
    uint64_t size, off, len;
    uint8_t *buf;
    int rc;
    GError *err;
    vma_diff_stats st;   /* its bytes_read */
} helper;

static void *helper_main(void *p)
{
    helper *h = p;
    vma_mutex_lock(&h->lock);
    for (;;) {
        while (!h->busy && !h->quit)
            vma_cond_wait(&h->cond, &h->lock);
        if (h->quit)
            break;
        uint64_t off = h->off, len = h->len;
        vma_mutex_unlock(&h->lock);
        GError *e = NULL;
        int rc = read_piece(h->b, h->dev, h->size, h->buf, off, len, &h->st, &e);
        vma_mutex_lock(&h->lock);
        h->rc = rc;
        h->err = e;
        h->busy = FALSE;
        vma_cond_broadcast(&h->cond);
    }
    vma_mutex_unlock(&h->lock);
    return NULL;
}

static void helper_start(helper *h, uint64_t off, uint64_t len)
{
    vma_mutex_lock(&h->lock);
    h->off = off;
    h->len = len;
    h->busy = TRUE;
    vma_cond_broadcast(&h->cond);
    vma_mutex_unlock(&h->lock);
}

static int helper_wait(helper *h, GError **err)
{
    vma_mutex_lock(&h->lock);
    while (h->busy)
        vma_cond_wait(&h->cond, &h->lock);
    int rc = h->rc;
    if (rc < 0)
        g_propagate_error(err, h->err);
    else
        g_clear_error(&h->err);
    h->err = NULL;
    vma_mutex_unlock(&h->lock);
    return rc;
}

int vma_archive_diff(vma_archive *a, uint8_t dev_a, vma_archive *b, uint8_t dev_b,
                     vma_range_fn fn, void *ud, vma_index_progress_fn progress, void *pud,
                     vma_diff_stats *st, GError **err)
{
    memset(st, 0, sizeof(*st));
    if (!vma_archive_device(a, dev_a, err) || !vma_archive_device(b, dev_b, err))
        return -1;
    if (vma_archive_prepare(a, err) < 0 || vma_archive_prepare(b, err) < 0)
        return -1;
    uint64_t size_a = vma_archive_device_length(a, dev_a);
    uint64_t size_b = vma_archive_device_length(b, dev_b);
    st->length = MAX(size_a, size_b);
    st->clusters = vma_clusters(st->length);
    uint64_t common = MIN(vma_clusters(size_a), vma_clusters(size_b));
    runs rn = {fn, ud, st, 0, 0, FALSE};
    uint8_t *ba = g_malloc(CHUNK_BYTES), *bb = g_malloc(CHUNK_BYTES);
    helper h = {.b = b, .dev = dev_b, .size = size_b, .buf = bb};
    vma_mutex_init(&h.lock);
    vma_cond_init(&h.cond);
    vma_thread *th = vma_thread_new("vma-diff", helper_main, &h, err);
    double t0 = vma_now();
    int rc = th ? 0 : -1;
    for (uint64_t off = 0; off < st->length && rc == 0; off += CHUNK_BYTES) {
        if (vma_interrupted()) {
            rc = stopped(err);
            break;
        }
        uint64_t len = MIN(CHUNK_BYTES, st->clusters * VMA_CLUSTER_SIZE - off);
        uint64_t c0 = off / VMA_CLUSTER_SIZE, nc = len / VMA_CLUSTER_SIZE;
        int da = has_data(a, dev_a, size_a, off, len, err);
        int db = da < 0 ? -1 : has_data(b, dev_b, size_b, off, len, err);
        if (da < 0 || db < 0) {
            rc = -1;
            break;
        }
        gboolean read_a = da, read_b = db;
        if (read_b)
            helper_start(&h, off, len);
        int ra = read_a ? read_piece(a, dev_a, size_a, ba, off, len, st, err) : 0;
        int rb = read_b ? helper_wait(&h, ra < 0 ? NULL : err) : 0;
        if (ra < 0 || rb < 0) {
            rc = -1;
            break;
        }
        for (uint64_t k = 0; k < nc; k++) {
            uint64_t c = c0 + k;
            gboolean differ;
            if (c >= common)
                differ = TRUE; /* past the end of one disk */
            else if (!read_a && !read_b)
                differ = FALSE;
            else if (!read_a || !read_b)
                differ = !vma_is_zero((read_a ? ba : bb) + k * VMA_CLUSTER_SIZE,
                                      VMA_CLUSTER_SIZE);
            else
                differ = memcmp(ba + k * VMA_CLUSTER_SIZE, bb + k * VMA_CLUSTER_SIZE,
                                VMA_CLUSTER_SIZE) != 0;
            if (differ && run_add(&rn, c) < 0) {
                rc = stopped(err);
                break;
            }
        }
        if (rc == 0 && progress && progress(MIN(off + len, st->length), st->length, pud))
            rc = stopped(err);
    }
    if (th) {
        vma_mutex_lock(&h.lock);
        h.quit = TRUE;
        vma_cond_broadcast(&h.cond);
        vma_mutex_unlock(&h.lock);
        vma_thread_join(th);
    }
    g_clear_error(&h.err);
    vma_mutex_clear(&h.lock);
    vma_cond_clear(&h.cond);
    if (rc == 0 && run_flush(&rn))
        rc = stopped(err);
    st->bytes_read += h.st.bytes_read;
    g_free(ba);
    g_free(bb);
    st->elapsed = vma_now() - t0;
    return rc;
}

/* ---- from digests ---- */

int vma_digests_diff(const uint8_t *da, uint64_t na, uint64_t size_a,
                     const uint8_t *db, uint64_t nb, uint64_t size_b,
                     vma_range_fn fn, void *ud, vma_diff_stats *st, GError **err)
{
    memset(st, 0, sizeof(*st));
    if (na < vma_clusters(size_a) || nb < vma_clusters(size_b)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "fewer digests than the disk has clusters");
        return -1;
    }
    double t0 = vma_now();
    st->length = MAX(size_a, size_b);
    st->clusters = vma_clusters(st->length);
    uint64_t common = MIN(vma_clusters(size_a), vma_clusters(size_b));
    runs rn = {fn, ud, st, 0, 0, FALSE};
    for (uint64_t c = 0; c < st->clusters; c++) {
        gboolean differ;
        if (c >= common) {
            differ = TRUE;
        } else {
            const uint8_t *pa = da + c * VMA_DIGEST_SIZE, *pb = db + c * VMA_DIGEST_SIZE;
            differ = memcmp(pa, pb, VMA_DIGEST_SIZE) != 0 ||
                     vma_digest_get(pa) == VMA_DIGEST_MISSING;
        }
        if (differ && run_add(&rn, c) < 0)
            return stopped(err);
    }
    if (run_flush(&rn))
        return stopped(err);
    st->elapsed = vma_now() - t0;
    return 0;
}
