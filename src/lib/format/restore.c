/* restore.c - the restore engine: streams an archive onto its targets.
 * Runs of blocks are coalesced into one pwritev; zero blocks become holes in
 * fresh targets and explicit zeros only where the caller asks for them.  A
 * target is a file or block device (fd), or a sink of the caller's. */
#define _GNU_SOURCE
#include "format/format.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define RUN_IOV 512

static const uint8_t zero_block[VMA_BLOCK_SIZE];

typedef struct {
    double start;
    uint64_t bytes;
} throttle;

/* blocks waiting to be written to one target at consecutive offsets */
typedef struct {
    vma_target *t;
    throttle *th;
    const char *label;  /* the target, for messages */
    uint64_t off;
    size_t len;
    gboolean zeros;   /* every piece is zero_block (for sinks: one zero call) */
    int n;
    struct iovec iov[RUN_IOV];
} run;

/* what lseek told last of a clear_data target: [lo, mid) is a hole and
 * [mid, hi) data (hi UINT64_MAX: no data after mid) */
typedef struct {
    uint64_t lo, mid, hi;
} data_window;

typedef struct {
    vma_reader *r;
    const vma_header *h;
    data_window win[VMA_MAX_DEV_ID + 1];
    vma_target *t[VMA_MAX_DEV_ID + 1];  /* NULL: check only */
    throttle th[VMA_MAX_DEV_ID + 1];
    vma_stats st;
    run ru;
    uint64_t vmstate_len;
    vma_progress_fn progress;
    void *ud;
    double start;
    uint64_t last_pct;
    double last_call;
} restore;

static const char *target_label(const vma_target *t, const vma_device *d)
{
    return t->label ? t->label : d->name;
}

/* wait until the target's rate allows len more bytes, in short steps so
 * that an interrupt is seen at once; -1 when interrupted */
static int throttle_wait(throttle *th, uint64_t bps, size_t len, GError **err)
{
    if (!bps)
        return 0;
    th->bytes += len;
    double due = th->start + (double)th->bytes / (double)bps;
    for (double now = vma_now(); due > now; now = vma_now()) {
        if (vma_interrupted()) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            return -1;
        }
        g_usleep((gulong)(MIN(due - now, 0.05) * 1e6));
    }
    return 0;
}

static int run_flush(run *ru, GError **err)
{
    if (!ru->n)
        return 0;
    vma_target *t = ru->t;
    int rc;
    if (t->ops && ru->zeros)
        rc = t->ops->zero(t->ctx, ru->off, ru->len, err);
    else if (ru->zeros && t->clear_data &&
             fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)ru->off,
                       (off_t)ru->len) == 0)
        rc = 0; /* else (no hole punching here): the zeros are written */
    else if (t->ops)
        rc = t->ops->pwritev(t->ctx, ru->iov, ru->n, ru->off, err);
    else
        rc = vma_writev_all(t->fd, ru->iov, ru->n, (int64_t)ru->off, err);
    if (rc < 0) {
        g_prefix_error(err, "%s: ", ru->label);
        return -1;
    }
    if (throttle_wait(ru->th, t->bps, ru->len, err) < 0)
        return -1;
    ru->n = 0;
    ru->len = 0;
    return 0;
}

static int run_add(run *ru, vma_target *t, throttle *th, const char *label, uint64_t off,
                   const void *buf, size_t len, GError **err)
{
    gboolean zeros = buf == zero_block;
    if (ru->n && (ru->t != t || ru->off + ru->len != off || ru->n == RUN_IOV ||
                  ((t->ops || t->clear_data) && zeros != ru->zeros))) {
        if (run_flush(ru, err) < 0)
            return -1;
    }
    if (!ru->n) {
        ru->t = t;
        ru->th = th;
        ru->label = label;
        ru->off = off;
        ru->zeros = zeros;
    }
    ru->iov[ru->n].iov_base = (void *)buf;
    ru->iov[ru->n].iov_len = len;
    ru->n++;
    ru->len += len;
    return 0;
}

/* the statistics of one cluster.  Zero blocks of a disk count inside the
 * device; the vmstate stream counts unclamped, as Proxmox's vma does (its
 * size is only a bound), and its length ends where its last block lies. */
static void count_cluster(restore *rs, const vma_device *d, const vma_slot *s)
{
    vma_stats *st = &rs->st;
    uint64_t base = (uint64_t)s->cluster * VMA_CLUSTER_SIZE;
    uint64_t stored = (uint64_t)__builtin_popcount(s->mask);
    st->clusters_done++;
    if (d->is_vmstate) {
        uint64_t zl = (VMA_BLOCKS_PER_CLUSTER - stored) * VMA_BLOCK_SIZE;
        st->zero_bytes += zl;
        if (s->mask)
            st->partial_zero_bytes += zl;
        if (base < d->size)
            rs->vmstate_len = MAX(rs->vmstate_len, MIN(base + VMA_CLUSTER_SIZE, d->size));
        return;
    }
    if (s->mask == 0xffff || base >= d->size)
        return;
    if (s->mask == 0) {
        st->zero_bytes += MIN((uint64_t)VMA_CLUSTER_SIZE, d->size - base);
        return;
    }
    for (unsigned j = 0; j < VMA_BLOCKS_PER_CLUSTER; j++) {
        uint64_t off = base + (uint64_t)j * VMA_BLOCK_SIZE;
        if ((s->mask >> j) & 1 || off >= d->size)
            continue;
        uint64_t zl = MIN((uint64_t)VMA_BLOCK_SIZE, d->size - off);
        st->zero_bytes += zl;
        st->partial_zero_bytes += zl;
    }
}

/* 1 when a clear_data target holds data somewhere in [off, off + len), 0
 * when that is a hole, -1 with err */
static int target_has_data(restore *rs, uint8_t id, uint64_t off, uint64_t len, GError **err)
{
    data_window *w = &rs->win[id];
    if (off < w->lo || off >= w->hi) {
        int fd = rs->t[id]->fd;
        off_t d = lseek(fd, (off_t)off, SEEK_DATA);
        if (d < 0 && errno != ENXIO) {
            vma_set_errno(err, errno, "cannot find the data of %s",
                          target_label(rs->t[id], rs->h->devices[id]));
            return -1;
        }
        w->lo = off;
        if (d < 0) { /* only a hole after off */
            w->mid = w->hi = UINT64_MAX;
        } else {
            off_t h = lseek(fd, d, SEEK_HOLE);
            if (h < 0) {
                vma_set_errno(err, errno, "cannot find the holes of %s",
                              target_label(rs->t[id], rs->h->devices[id]));
                return -1;
            }
            w->mid = (uint64_t)d;
            w->hi = MAX((uint64_t)h, (uint64_t)d + 1);
        }
    }
    return off >= w->mid || off + len > w->mid;
}

/* queue the blocks of one cluster for its target: data, zeros where the
 * target needs them, nothing for holes */
static int write_cluster(restore *rs, const vma_device *d, const vma_slot *s, GError **err)
{
    vma_target *t = rs->t[s->dev_id];
    if (!t || (s->mask == 0 && !t->write_zero && !t->clear_data))
        return 0;
    const uint8_t *data = s->data;
    uint64_t base = (uint64_t)s->cluster * VMA_CLUSTER_SIZE;
    for (unsigned j = 0; j < VMA_BLOCKS_PER_CLUSTER; j++) {
        uint64_t off = base + (uint64_t)j * VMA_BLOCK_SIZE;
        gboolean stored = (s->mask >> j) & 1;
        const uint8_t *blk = data;
        if (stored)
            data += VMA_BLOCK_SIZE;
        if (off >= d->size)
            continue;
        size_t len = (size_t)MIN((uint64_t)VMA_BLOCK_SIZE, d->size - off);
        const void *src;
        if (stored) {
            src = (t->fresh && vma_is_zero(blk, len)) ? NULL : blk;
        } else if (t->write_zero) {
            src = zero_block;
        } else if (t->clear_data) {
            int has = target_has_data(rs, s->dev_id, off, len, err);
            if (has < 0)
                return -1;
            src = has ? zero_block : NULL;
        } else {
            src = NULL;
        }
        if (!src)
            continue;
        if (run_add(&rs->ru, t, &rs->th[s->dev_id], target_label(t, d), off, src, len, err) < 0)
            return -1;
        rs->st.bytes_written += len;
    }
    return 0;
}

/* bring the statistics up to date and call the progress callback; -1 when
 * it asks to stop */
static int report(restore *rs, GError **err)
{
    rs->st.bytes_archive = vma_reader_offset(rs->r);
    rs->st.vmstate_bytes = rs->vmstate_len;
    rs->st.elapsed = vma_now() - rs->start;
    rs->last_call = rs->st.elapsed;
    if (rs->progress(&rs->st, rs->ud) != 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
        return -1;
    }
    return 0;
}

/* call back whenever the percentage changes (like the -v lines of Proxmox's
 * vma), and at least five times a second for a progress bar */
static int maybe_report(restore *rs, gboolean per_cluster, GError **err)
{
    if (!rs->progress)
        return 0;
    if (per_cluster) {
        uint64_t total = rs->st.clusters_total;
        uint64_t pct = total ? MIN(100, rs->st.clusters_done * 100 / total) : 100;
        if (pct == rs->last_pct)
            return 0;
        rs->last_pct = pct;
        return report(rs, err);
    }
    if (vma_now() - rs->start - rs->last_call < 0.2)
        return 0;
    return report(rs, err);
}

/* the targets that write, their throttles, and fresh files at full size */
static int setup(restore *rs, vma_target *const targets[VMA_MAX_DEV_ID + 1], GError **err)
{
    rs->start = vma_now();
    rs->last_pct = UINT64_MAX;
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        rs->th[id].start = rs->start;
        const vma_device *d = rs->h->devices[id];
        if (!d)
            continue;
        rs->st.clusters_total += vma_clusters(d->size);
        vma_target *t = targets ? targets[id] : NULL;
        if (!t || (t->fd < 0 && !t->ops))
            continue;
        rs->t[id] = t;
        if (t->fd >= 0 && t->fresh && !d->is_vmstate && ftruncate(t->fd, (off_t)d->size) < 0) {
            vma_set_errno(err, errno, "cannot set the size of %s", target_label(t, d));
            return -1;
        }
    }
    return 0;
}

/* salvage: clusters that never came read as zeros on a target that holds
 * old data */
typedef struct {
    restore *rs;
    uint8_t id;
    GError **err;
    int rc;
} zero_gaps;

static void zero_gap(uint64_t start, uint64_t end, void *ud)
{
    zero_gaps *z = ud;
    restore *rs = z->rs;
    vma_target *t = rs->t[z->id];
    const vma_device *d = rs->h->devices[z->id];
    uint64_t stop = MIN(end * VMA_CLUSTER_SIZE, d->size);
    for (uint64_t off = start * VMA_CLUSTER_SIZE; off < stop && z->rc == 0; off += VMA_BLOCK_SIZE) {
        size_t len = (size_t)MIN((uint64_t)VMA_BLOCK_SIZE, stop - off);
        z->rc = run_add(&rs->ru, t, &rs->th[z->id], target_label(t, d), off, zero_block, len, z->err);
        rs->st.bytes_written += len;
    }
}

static int zero_missing(restore *rs, uint8_t id, GError **err)
{
    if (!(rs->t[id]->write_zero || rs->t[id]->clear_data) || rs->h->devices[id]->is_vmstate ||
        vma_reader_missing(rs->r, id) == 0)
        return 0;
    zero_gaps z = {rs, id, err, 0};
    vma_reader_foreach_missing(rs->r, id, zero_gap, &z);
    if (z.rc == 0 && rs->ru.n)
        z.rc = run_flush(&rs->ru, err);
    return z.rc;
}

/* the vmstate stream ends where its data ended (zero tail blocks left
 * holes), and nothing is reported as restored until it is on disk */
static int finish(restore *rs, GError **err)
{
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        vma_target *t = rs->t[id];
        const vma_device *d = rs->h->devices[id];
        if (!t)
            continue;
        if (zero_missing(rs, (uint8_t)id, err) < 0)
            return -1;
        if (d->is_vmstate && t->fd >= 0 && t->fresh &&
            ftruncate(t->fd, (off_t)rs->vmstate_len) < 0) {
            vma_set_errno(err, errno, "cannot set the length of %s", target_label(t, d));
            return -1;
        }
        if (t->ops) {
            if (t->ops->flush(t->ctx, err) < 0) {
                g_prefix_error(err, "%s: ", target_label(t, d));
                return -1;
            }
        } else if (fsync(t->fd) < 0 && errno != EINVAL && errno != EROFS) {
            vma_set_errno(err, errno, "fsync of %s failed", target_label(t, d));
            return -1;
        }
    }
    return 0;
}

static int restore_extent(restore *rs, const vma_extent *ext, GError **err)
{
    for (unsigned i = 0; i < ext->n_slots; i++) {
        const vma_slot *s = &ext->slots[i];
        const vma_device *d = rs->h->devices[s->dev_id];
        count_cluster(rs, d, s);
        if (maybe_report(rs, TRUE, err) < 0 || write_cluster(rs, d, s, err) < 0)
            return -1;
    }
    /* the extent buffer is reused by the next read: write it out now */
    if (rs->ru.n && run_flush(&rs->ru, err) < 0)
        return -1;
    return maybe_report(rs, FALSE, err);
}

int vma_restore(vma_reader *r, vma_target *const targets[VMA_MAX_DEV_ID + 1],
                vma_progress_fn progress, void *ud, vma_stats *stats, GError **err)
{
    restore *rs = g_new0(restore, 1);
    rs->r = r;
    rs->h = vma_reader_header(r);
    rs->progress = progress;
    rs->ud = ud;
    vma_extent *ext = g_new(vma_extent, 1);
    int ret = -1;
    if (setup(rs, targets, err) < 0)
        goto out;
    for (;;) {
        int rc = vma_reader_next(r, ext, err);
        if (rc < 0)
            goto out;
        if (rc == 0)
            break;
        if (restore_extent(rs, ext, err) < 0)
            goto out;
    }
    if (finish(rs, err) < 0)
        goto out;
    ret = 0;
out:
    rs->st.bytes_archive = vma_reader_offset(r);
    rs->st.vmstate_bytes = rs->vmstate_len;
    rs->st.elapsed = vma_now() - rs->start;
    if (stats)
        *stats = rs->st;
    g_free(ext);
    g_free(rs);
    return ret;
}
