/* index.c - where every cluster of an archive lies, built in one pass over
 * the extent headers (the data is skipped, never read), and kept in a small
 * cache file.
 *
 * Per device, sorted runs of consecutive clusters.  A run is all zero (it
 * may span any number of extents), all stored (its data lies back to back
 * in one extent), or mixed: then its block masks are in a shared pool, two
 * bytes a cluster, and its stored blocks too lie back to back.  A fully
 * allocated 1 TiB disk costs one run per extent (about 7 MiB); the worst,
 * every cluster different from its neighbour, about 40 MiB. */
#define _GNU_SOURCE
#include "access/access.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUN_ZERO UINT32_MAX
#define RUN_FULL (UINT32_MAX - 1)
/* a uniform run shorter than this turns into a mixed one rather than
 * starting a new run when its neighbour differs */
#define CONVERT_BELOW 16
/* what an index may hold: runs of 24 bytes and masks of 2 */
#define MAX_RUNS  (8u << 20)
#define MAX_MASKS (64u << 20)

typedef struct {
    uint64_t data_off;    /* archive offset of the run's first stored block
                             (or where it would lie, for a zero run) */
    uint32_t cluster;
    uint32_t count;
    uint32_t masks;       /* RUN_ZERO, RUN_FULL, or index into the pool */
    uint32_t reserved;
} ix_run;

struct vma_index {
    gint refs;               /* vma_index_ref / vma_index_free */
    uint8_t uuid[16];
    uint64_t archive_size;   /* bytes of the (decompressed) archive */
    GArray *runs[VMA_MAX_DEV_ID + 1];
    GArray *masks;           /* uint16_t */
    /* while building */
    int64_t open[VMA_MAX_DEV_ID + 1];  /* the run a device extends, -1 none */
    uint64_t open_end[VMA_MAX_DEV_ID + 1]; /* archive offset after its data */
    int pool_owner;          /* the device whose run ends the pool, -1 none */
    uint64_t n_runs;
};

static void index_init(vma_index *ix)
{
    ix->refs = 1;
    ix->masks = g_array_new(FALSE, FALSE, sizeof(uint16_t));
    ix->pool_owner = -1;
    for (unsigned i = 0; i <= VMA_MAX_DEV_ID; i++)
        ix->open[i] = -1;
}

vma_index *vma_index_ref(vma_index *ix)
{
    g_atomic_int_inc(&ix->refs);
    return ix;
}

void vma_index_free(vma_index *ix)
{
    if (!ix || !g_atomic_int_dec_and_test(&ix->refs))
        return;
    for (unsigned i = 0; i <= VMA_MAX_DEV_ID; i++)
        if (ix->runs[i])
            g_array_free(ix->runs[i], TRUE);
    if (ix->masks)
        g_array_free(ix->masks, TRUE);
    g_free(ix);
}

static uint32_t mask_of(const vma_index *ix, const ix_run *r, uint32_t k)
{
    if (r->masks == RUN_ZERO)
        return 0;
    if (r->masks == RUN_FULL)
        return 0xffff;
    return g_array_index(ix->masks, uint16_t, r->masks + k);
}

/* turn a short uniform run (the device's open one) into a mixed one at the
 * end of the pool */
static void make_mixed(vma_index *ix, uint8_t dev, ix_run *r)
{
    uint16_t m = (uint16_t)mask_of(ix, r, 0);
    uint32_t at = ix->masks->len;
    for (uint32_t k = 0; k < r->count; k++)
        g_array_append_val(ix->masks, m);
    r->masks = at;
    ix->pool_owner = dev;
}

static int add_slot(vma_index *ix, const vma_slot *s, GError **err)
{
    uint8_t dev = s->dev_id;
    uint64_t end = s->data_offset + (uint64_t)__builtin_popcount(s->mask) * VMA_BLOCK_SIZE;
    uint16_t m = s->mask;
    ix_run *r = ix->open[dev] >= 0 ? &g_array_index(ix->runs[dev], ix_run, ix->open[dev]) : NULL;
    if (r && r->cluster + r->count == s->cluster) {
        gboolean contiguous = s->data_offset == ix->open_end[dev];
        if (r->masks == RUN_ZERO && m == 0) {
            r->count++;
            ix->open_end[dev] = end;
            return 0;
        }
        if (r->masks == RUN_FULL && m == 0xffff && contiguous) {
            r->count++;
            ix->open_end[dev] = end;
            return 0;
        }
        /* a zero run that crossed an extent has no single data offset */
        gboolean one_extent = r->masks != RUN_ZERO || r->data_off == ix->open_end[dev];
        if (contiguous && one_extent && r->count < CONVERT_BELOW &&
            (r->masks == RUN_ZERO || r->masks == RUN_FULL))
            make_mixed(ix, dev, r);
        if (contiguous && r->masks < RUN_FULL && ix->pool_owner == dev &&
            r->masks + r->count == ix->masks->len) {
            if (ix->masks->len >= MAX_MASKS)
                goto too_big;
            g_array_append_val(ix->masks, m);
            r->count++;
            ix->open_end[dev] = end;
            return 0;
        }
    }
    if (ix->n_runs >= MAX_RUNS)
        goto too_big;
    if (!ix->runs[dev])
        ix->runs[dev] = g_array_new(FALSE, FALSE, sizeof(ix_run));
    ix_run nr = {s->data_offset, s->cluster, 1, RUN_ZERO, 0};
    if (m == 0xffff) {
        nr.masks = RUN_FULL;
    } else if (m != 0) {
        if (ix->masks->len >= MAX_MASKS)
            goto too_big;
        nr.masks = ix->masks->len;
        g_array_append_val(ix->masks, m);
        ix->pool_owner = dev;
    }
    g_array_append_val(ix->runs[dev], nr);
    ix->open[dev] = (int64_t)ix->runs[dev]->len - 1;
    ix->open_end[dev] = end;
    ix->n_runs++;
    return 0;
too_big:
    g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                "the archive is too fragmented to index (more than %u runs or %u masks)",
                MAX_RUNS, MAX_MASKS);
    return -1;
}

static gint cmp_run(gconstpointer a, gconstpointer b)
{
    const ix_run *x = a, *y = b;
    return x->cluster < y->cluster ? -1 : x->cluster > y->cluster;
}

/* sort every device's runs, and join zero runs that meet */
static void finish_runs(vma_index *ix)
{
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        GArray *a = ix->runs[id];
        if (!a || a->len == 0)
            continue;
        g_array_sort(a, cmp_run);
        guint out = 0;
        for (guint i = 1; i < a->len; i++) {
            ix_run *p = &g_array_index(a, ix_run, out);
            ix_run *r = &g_array_index(a, ix_run, i);
            if (p->masks == RUN_ZERO && r->masks == RUN_ZERO && p->cluster + p->count == r->cluster)
                p->count += r->count;
            else
                g_array_index(a, ix_run, ++out) = *r;
        }
        g_array_set_size(a, out + 1);
        ix->open[id] = -1;
    }
}

vma_index *vma_index_new(const vma_header *h)
{
    vma_index *ix = g_new0(vma_index, 1);
    index_init(ix);
    memcpy(ix->uuid, h->uuid, 16);
    return ix;
}

int vma_index_add(vma_index *ix, const vma_extent *ext, GError **err)
{
    for (unsigned i = 0; i < ext->n_slots; i++)
        if (add_slot(ix, &ext->slots[i], err) < 0)
            return -1;
    return 0;
}

void vma_index_finish(vma_index *ix, uint64_t archive_size)
{
    ix->archive_size = archive_size;
    finish_runs(ix);
}

vma_index *vma_index_snapshot(const vma_index *ix, uint64_t archive_size)
{
    vma_index *c = g_new0(vma_index, 1);
    index_init(c);
    memcpy(c->uuid, ix->uuid, 16);
    g_array_append_vals(c->masks, ix->masks->data, ix->masks->len);
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++)
        if (ix->runs[id]) {
            c->runs[id] = g_array_sized_new(FALSE, FALSE, sizeof(ix_run), ix->runs[id]->len);
            g_array_append_vals(c->runs[id], ix->runs[id]->data, ix->runs[id]->len);
        }
    c->n_runs = ix->n_runs;
    vma_index_finish(c, archive_size);
    return c;
}

vma_index *vma_index_build(vma_reader *r, uint64_t total, vma_index_progress_fn progress,
                           void *ud, GError **err)
{
    const vma_header *h = vma_reader_header(r);
    vma_index *ix = vma_index_new(h);
    vma_reader_skip_data(r, TRUE);
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++)
        if (h->devices[id])
            vma_reader_set_optional(r, (uint8_t)id, TRUE); /* missing reads as EIO */
    vma_extent *ext = g_new(vma_extent, 1);
    double last = 0;
    int rc;
    while ((rc = vma_reader_next(r, ext, err)) > 0) {
        if (vma_index_add(ix, ext, err) < 0) {
            rc = -1;
            break;
        }
        double now = vma_now();
        if (progress && now - last >= 0.2) {
            last = now;
            if (progress(vma_reader_offset(r), total, ud) != 0) {
                g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
                rc = -1;
                break;
            }
        }
    }
    g_free(ext);
    if (rc < 0) {
        vma_index_free(ix);
        return NULL;
    }
    if (progress)
        progress(vma_reader_offset(r), total, ud);
    vma_index_finish(ix, vma_reader_offset(r));
    return ix;
}

uint64_t vma_index_memory(const vma_index *ix)
{
    uint64_t bytes = sizeof(*ix) + (uint64_t)ix->masks->len * sizeof(uint16_t);
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++)
        if (ix->runs[id])
            bytes += (uint64_t)ix->runs[id]->len * sizeof(ix_run);
    return bytes;
}

uint64_t vma_index_end(const vma_index *ix, uint8_t dev)
{
    const GArray *a = ix->runs[dev];
    if (!a || a->len == 0)
        return 0;
    const ix_run *r = &g_array_index(a, ix_run, a->len - 1);
    return ((uint64_t)r->cluster + r->count) * VMA_CLUSTER_SIZE;
}

/* ---- walking a range ---- */

/* the run holding cluster c, or the index of the first run after it
 * (*hit FALSE) */
static guint find_run(const GArray *a, uint64_t c, gboolean *hit)
{
    guint lo = 0, hi = a ? a->len : 0;
    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        const ix_run *r = &g_array_index(a, ix_run, mid);
        if ((uint64_t)r->cluster + r->count <= c)
            lo = mid + 1;
        else
            hi = mid;
    }
    *hit = a && lo < a->len && g_array_index(a, ix_run, lo).cluster <= c;
    return lo;
}

/* merges pieces of one kind before handing them on */
typedef struct {
    vma_piece_fn fn;
    void *ud;
    gboolean by_kind;      /* join data pieces even when the archive is not */
    gboolean have;
    vma_piece p;
} piece_acc;

static int acc_flush(piece_acc *a)
{
    if (!a->have)
        return 0;
    a->have = FALSE;
    return a->fn(&a->p, a->ud);
}

static int acc_add(piece_acc *a, vma_piece_kind kind, uint64_t off, uint64_t len, uint64_t data_off)
{
    if (len == 0)
        return 0;
    if (a->have && a->p.kind == kind && a->p.offset + a->p.length == off &&
        (kind != VMA_PIECE_DATA || a->by_kind || a->p.data_offset + a->p.length == data_off)) {
        a->p.length += len;
        return 0;
    }
    if (acc_flush(a) != 0)
        return -1;
    a->p = (vma_piece){kind, off, len, data_off};
    a->have = TRUE;
    return 0;
}

/* the blocks of cluster k of run r that lie in [lo, hi) */
static int walk_cluster(const vma_index *ix, const ix_run *r, uint32_t k, uint64_t *data,
                        uint64_t lo, uint64_t hi, piece_acc *a)
{
    uint32_t m = mask_of(ix, r, k);
    uint64_t base = ((uint64_t)r->cluster + k) * VMA_CLUSTER_SIZE;
    if (m == 0 || m == 0xffff) {
        uint64_t s = MAX(lo, base), e = MIN(hi, base + VMA_CLUSTER_SIZE);
        int rc = acc_add(a, m ? VMA_PIECE_DATA : VMA_PIECE_ZERO, s, e - s, *data + (s - base));
        if (m)
            *data += VMA_CLUSTER_SIZE;
        return rc;
    }
    for (unsigned j = 0; j < VMA_BLOCKS_PER_CLUSTER; j++) {
        uint64_t b = base + (uint64_t)j * VMA_BLOCK_SIZE;
        gboolean stored = (m >> j) & 1;
        uint64_t s = MAX(lo, b), e = MIN(hi, b + VMA_BLOCK_SIZE);
        if (s < e && acc_add(a, stored ? VMA_PIECE_DATA : VMA_PIECE_ZERO, s, e - s,
                             *data + (s - b)) < 0)
            return -1;
        if (stored)
            *data += VMA_BLOCK_SIZE;
    }
    return 0;
}

/* the part of run r inside [lo, hi) */
static int walk_run(const vma_index *ix, const ix_run *r, uint64_t lo, uint64_t hi, piece_acc *a)
{
    uint64_t first = MAX((uint64_t)r->cluster, lo / VMA_CLUSTER_SIZE);
    uint64_t last = MIN((uint64_t)r->cluster + r->count, vma_clusters(hi));
    if (r->masks == RUN_ZERO || r->masks == RUN_FULL) {
        uint64_t s = MAX(lo, (uint64_t)r->cluster * VMA_CLUSTER_SIZE);
        uint64_t e = MIN(hi, ((uint64_t)r->cluster + r->count) * VMA_CLUSTER_SIZE);
        uint64_t d = r->data_off + (s - (uint64_t)r->cluster * VMA_CLUSTER_SIZE);
        return acc_add(a, r->masks == RUN_FULL ? VMA_PIECE_DATA : VMA_PIECE_ZERO, s, e - s, d);
    }
    /* mixed: the data offset of the first cluster from the masks before it */
    uint64_t data = r->data_off;
    for (uint64_t k = r->cluster; k < first; k++)
        data += (uint64_t)__builtin_popcount(mask_of(ix, r, (uint32_t)(k - r->cluster))) *
                VMA_BLOCK_SIZE;
    for (uint64_t c = first; c < last; c++)
        if (walk_cluster(ix, r, (uint32_t)(c - r->cluster), &data, lo, hi, a) < 0)
            return -1;
    return 0;
}

int vma_index_walk(const vma_index *ix, uint8_t dev, uint64_t dev_size, uint64_t off,
                   uint64_t len, gboolean by_kind, vma_piece_fn fn, void *ud)
{
    if (off >= dev_size)
        return 0;
    uint64_t hi = MIN(dev_size, off + len);
    const GArray *a = ix->runs[dev];
    piece_acc acc = {fn, ud, by_kind, FALSE, {0}};
    gboolean hit;
    guint i = find_run(a, off / VMA_CLUSTER_SIZE, &hit);
    uint64_t pos = off;
    for (; a && i < a->len && pos < hi; i++) {
        const ix_run *r = &g_array_index(a, ix_run, i);
        uint64_t rs = (uint64_t)r->cluster * VMA_CLUSTER_SIZE;
        if (rs >= hi)
            break;
        if (rs > pos && acc_add(&acc, VMA_PIECE_MISSING, pos, rs - pos, 0) < 0)
            return -1;
        if (walk_run(ix, r, pos, hi, &acc) < 0)
            return -1;
        pos = MIN(hi, rs + (uint64_t)r->count * VMA_CLUSTER_SIZE);
    }
    if (pos < hi && acc_add(&acc, VMA_PIECE_MISSING, pos, hi - pos, 0) < 0)
        return -1;
    return acc_flush(&acc) != 0 ? -1 : 0;
}

/* ---- the cache file ----
 *
 *   "VMAIDX02"  uuid[16]  stamp[64]  archive_size u64  n_masks u32  n_devs u32
 *   n_devs x { dev_id u32, n_runs u32 }, the runs, the masks, MD5 of all before
 *
 * in the host's byte order (a cache, not an exchange format).  The stamp is
 * the caller's: the archive's identity (cache.c: the header's MD5, the
 * file's device, inode, size, mtime and ctime) and the size of the stream;
 * a cache that does not match the archive in every field is ignored. */

#define IDX_MAGIC "VMAIDX02"

int vma_index_save(const vma_index *ix, const char *path, const uint8_t stamp[VMA_STAMP_SIZE],
                   GError **err)
{
    GByteArray *b = g_byte_array_new();
    uint32_t n_devs = 0, n_masks = ix->masks->len;
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++)
        n_devs += ix->runs[id] != NULL;
    g_byte_array_append(b, (const guint8 *)IDX_MAGIC, 8);
    g_byte_array_append(b, ix->uuid, 16);
    g_byte_array_append(b, stamp, VMA_STAMP_SIZE);
    g_byte_array_append(b, (const guint8 *)&ix->archive_size, 8);
    g_byte_array_append(b, (const guint8 *)&n_masks, 4);
    g_byte_array_append(b, (const guint8 *)&n_devs, 4);
    for (uint32_t id = 1; id <= VMA_MAX_DEV_ID; id++) {
        if (!ix->runs[id])
            continue;
        uint32_t n = ix->runs[id]->len;
        g_byte_array_append(b, (const guint8 *)&id, 4);
        g_byte_array_append(b, (const guint8 *)&n, 4);
    }
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++)
        if (ix->runs[id])
            g_byte_array_append(b, (const guint8 *)ix->runs[id]->data,
                                ix->runs[id]->len * (guint)sizeof(ix_run));
    g_byte_array_append(b, (const guint8 *)ix->masks->data, n_masks * 2);
    uint8_t md5[16];
    if (!vma_md5(b->data, b->len, md5)) {
        g_byte_array_free(b, TRUE);
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "the index's MD5 failed (libcrypto)");
        return -1;
    }
    g_byte_array_append(b, md5, 16);

    /* a new file under a temporary name, renamed over the old cache */
    char *tmp = g_strdup_printf("%s.tmp-XXXXXX", path);
    int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0600);
    int rc = -1;
    if (fd < 0) {
        vma_set_errno(err, errno, "cannot create %s", tmp);
    } else {
        GError *e = NULL;
        int wrc = vma_write_all(fd, b->data, b->len, &e);
        if (wrc == 0 && fsync(fd) < 0) {
            vma_set_errno(&e, errno, "cannot write %s", tmp);
            wrc = -1;
        }
        /* closed once, whatever close says: the descriptor is gone either way */
        if (close(fd) < 0 && wrc == 0) {
            vma_set_errno(&e, errno, "cannot write %s", tmp);
            wrc = -1;
        }
        if (wrc == 0) {
            rc = rename(tmp, path);
            if (rc < 0)
                vma_set_errno(&e, errno, "cannot rename %s to %s", tmp, path);
        }
        if (e)
            g_propagate_error(err, e);
    }
    if (rc < 0)
        unlink(tmp);
    g_free(tmp);
    g_byte_array_free(b, TRUE);
    return rc;
}

/* every run inside its device and the archive, sorted, masks in the pool */
static gboolean runs_sane(const vma_index *ix, const vma_header *h)
{
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const GArray *a = ix->runs[id];
        if (!a)
            continue;
        if (!h->devices[id])
            return FALSE;
        uint64_t nclusters = vma_clusters(h->devices[id]->size), next = 0;
        for (guint i = 0; i < a->len; i++) {
            const ix_run *r = &g_array_index(a, ix_run, i);
            uint64_t stored = r->masks == RUN_FULL ? (uint64_t)r->count * VMA_CLUSTER_SIZE : 0;
            if (r->count == 0 || r->cluster < next || (uint64_t)r->cluster + r->count > nclusters)
                return FALSE;
            if (r->masks < RUN_FULL) {
                if ((uint64_t)r->masks + r->count > ix->masks->len)
                    return FALSE;
                for (uint32_t k = 0; k < r->count; k++)
                    stored += (uint64_t)__builtin_popcount(mask_of(ix, r, k)) * VMA_BLOCK_SIZE;
            }
            if (r->data_off > ix->archive_size || stored > ix->archive_size - r->data_off)
                return FALSE;
            next = (uint64_t)r->cluster + r->count;
        }
    }
    return TRUE;
}

/* the largest cache file an index makes: the head, 255 devices, MAX_RUNS
 * runs, MAX_MASKS masks and the MD5 (about 320 MiB) */
#define IDX_HEAD     (8 + 16 + VMA_STAMP_SIZE + 8 + 4 + 4)
#define IDX_MAX_FILE ((uint64_t)IDX_HEAD + VMA_MAX_DEV_ID * 8 + \
                      (uint64_t)MAX_RUNS * sizeof(ix_run) + (uint64_t)MAX_MASKS * 2 + 16)

/* the bytes of the cache file at path: a regular file, not reached through
 * a symbolic link, no larger than an index can be, read at once (a FIFO is
 * not waited for, a device or a link to one is never read); NULL with err */
static gchar *read_cache_file(const char *path, gsize *len, GError **err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP)
            g_set_error(err, VMA_ERROR, VMA_ERR_IO, "%s is a symbolic link: not read", path);
        else
            vma_set_errno(err, errno, "cannot open %s", path);
        return NULL;
    }
    struct stat st;
    gchar *data = NULL;
    if (fstat(fd, &st) < 0) {
        vma_set_errno(err, errno, "cannot stat %s", path);
    } else if (!S_ISREG(st.st_mode)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "%s is not a regular file: not read", path);
    } else if ((uint64_t)st.st_size > IDX_MAX_FILE) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                    "%s is larger than an index can be (%" G_GUINT64_FORMAT " bytes): not read",
                    path, (uint64_t)st.st_size);
    } else if (!(data = g_try_malloc(MAX((size_t)st.st_size, 1)))) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "out of memory to read %s", path);
    } else {
        /* a file that changes size meanwhile is not an index either */
        ssize_t got = vma_pread_all(fd, data, (size_t)st.st_size, 0, err);
        if (got != (ssize_t)st.st_size) {
            if (got >= 0)
                g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "%s ends early", path);
            g_free(data);
            data = NULL;
        }
        *len = (gsize)st.st_size;
    }
    close(fd);
    return data;
}

vma_index *vma_index_load(const char *path, const vma_header *h,
                          const uint8_t stamp[VMA_STAMP_SIZE], GError **err)
{
    gsize len = 0;
    gchar *data = read_cache_file(path, &len, err);
    if (!data)
        return NULL;
    const uint8_t *p = (const uint8_t *)data;
    vma_index *ix = NULL;
    uint8_t md5[16];
    const size_t at_size = 8 + 16 + VMA_STAMP_SIZE, head = IDX_HEAD;
    if (len < head + 16 || memcmp(p, IDX_MAGIC, 8) != 0 || memcmp(p + 8, h->uuid, 16) != 0 ||
        memcmp(p + 24, stamp, VMA_STAMP_SIZE) != 0)
        goto bad;
    if (!vma_md5(p, len - 16, md5) || memcmp(md5, p + len - 16, 16) != 0)
        goto bad;
    ix = g_new0(vma_index, 1);
    index_init(ix);
    memcpy(ix->uuid, h->uuid, 16);
    uint32_t n_masks, n_devs;
    memcpy(&ix->archive_size, p + at_size, 8);
    memcpy(&n_masks, p + at_size + 8, 4);
    memcpy(&n_devs, p + at_size + 12, 4);
    size_t pos = head;
    uint32_t devs[VMA_MAX_DEV_ID + 1] = {0};
    uint64_t body = len - 16;
    if (n_devs > VMA_MAX_DEV_ID || pos + (uint64_t)n_devs * 8 > body)
        goto bad;
    uint64_t need = pos + (uint64_t)n_devs * 8 + (uint64_t)n_masks * 2;
    for (uint32_t i = 0; i < n_devs; i++) {
        uint32_t id, n;
        memcpy(&id, p + pos + 8 * i, 4);
        memcpy(&n, p + pos + 8 * i + 4, 4);
        if (id < 1 || id > VMA_MAX_DEV_ID || devs[id] || n == 0 || n > MAX_RUNS)
            goto bad;
        devs[id] = n;
        need += (uint64_t)n * sizeof(ix_run);
    }
    if (need != body || n_masks > MAX_MASKS)
        goto bad;
    pos += (size_t)n_devs * 8;
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        if (!devs[id])
            continue;
        ix->runs[id] = g_array_sized_new(FALSE, FALSE, sizeof(ix_run), devs[id]);
        g_array_append_vals(ix->runs[id], p + pos, devs[id]);
        pos += (size_t)devs[id] * sizeof(ix_run);
    }
    g_array_append_vals(ix->masks, p + pos, n_masks);
    if (!runs_sane(ix, h))
        goto bad;
    g_free(data);
    return ix;
bad:
    vma_index_free(ix);
    g_free(data);
    g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "%s is not an index of this archive", path);
    return NULL;
}
