/* restore.c - the restore engine: streams an archive onto its targets.
 * Runs of blocks are coalesced into one pwritev; zero blocks become holes in
 * fresh files and explicit zeros only where the caller asks for them. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/fs.h>

#define RUN_IOV 512

static const uint8_t zero_block[VMA_BLOCK_SIZE];

typedef struct {
    double start;
    uint64_t bytes;
} throttle;

typedef struct {
    vma_target *t;
    throttle *th;
    uint64_t off;
    size_t len;
    int n;
    struct iovec iov[RUN_IOV];
} run;

static int run_flush(run *ru, GError **err)
{
    if (!ru->n)
        return 0;
    if (vma_writev_all(ru->t->fd, ru->iov, ru->n, (int64_t)ru->off, err) < 0)
        return -1;
    throttle *th = ru->th;
    if (ru->t->bps && th) {
        th->bytes += ru->len;
        double due = th->start + (double)th->bytes / (double)ru->t->bps;
        double now = vma_now();
        if (due > now)
            g_usleep((gulong)((due - now) * 1e6));
    }
    ru->n = 0;
    ru->len = 0;
    return 0;
}

static int run_add(run *ru, vma_target *t, throttle *th, uint64_t off,
                   const void *buf, size_t len, GError **err)
{
    if (ru->n && (ru->t != t || ru->off + ru->len != off || ru->n == RUN_IOV)) {
        if (run_flush(ru, err) < 0)
            return -1;
    }
    if (!ru->n) {
        ru->t = t;
        ru->th = th;
        ru->off = off;
    }
    ru->iov[ru->n].iov_base = (void *)buf;
    ru->iov[ru->n].iov_len = len;
    ru->n++;
    ru->len += len;
    return 0;
}

int64_t vma_fd_size(int fd, GError **err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        vma_set_errno(err, errno, "stat failed");
        return -1;
    }
    if (S_ISBLK(st.st_mode)) {
        uint64_t sz;
        if (ioctl(fd, BLKGETSIZE64, &sz) < 0) {
            vma_set_errno(err, errno, "cannot get the size of the block device");
            return -1;
        }
        return (int64_t)sz;
    }
    return st.st_size;
}

/* bring the statistics up to date and call the progress callback; -1 when
 * it asks to stop */
static int report(vma_progress_fn progress, void *ud, vma_stats *st, vma_reader *r,
                  double start, GError **err)
{
    st->bytes_archive = vma_reader_offset(r);
    st->elapsed = vma_now() - start;
    if (progress(st, ud) != 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
        return -1;
    }
    return 0;
}

int vma_restore(vma_reader *r, vma_target *const targets[VMA_MAX_DEV_ID + 1],
                vma_progress_fn progress, void *ud, vma_stats *stats, GError **err)
{
    const vma_header *h = vma_reader_header(r);
    vma_stats st = {0};
    throttle th[VMA_MAX_DEV_ID + 1];
    run *ru = g_new0(run, 1);
    vma_extent *ext = g_new(vma_extent, 1);
    int ret = -1;
    uint64_t vmstate_len = 0;
    uint8_t vmstate_id = 0;
    uint64_t last_pct = UINT64_MAX;
    double last_call = 0;

    double start = vma_now();
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        th[id].start = start;
        th[id].bytes = 0;
        const vma_device *d = h->devices[id];
        if (!d)
            continue;
        st.clusters_total += vma_clusters(d->size);
        if (d->is_vmstate)
            vmstate_id = (uint8_t)id;
        vma_target *t = targets ? targets[id] : NULL;
        if (t && t->fd >= 0 && t->fresh && !d->is_vmstate &&
            ftruncate(t->fd, (off_t)d->size) < 0) {
            vma_set_errno(err, errno, "cannot set the size of the target of '%s'", d->name);
            goto out;
        }
    }

    for (;;) {
        int rc = vma_reader_next(r, ext, err);
        if (rc < 0)
            goto out;
        if (rc == 0)
            break;
        for (unsigned i = 0; i < ext->n_slots; i++) {
            const vma_slot *s = &ext->slots[i];
            const vma_device *d = h->devices[s->dev_id];
            vma_target *t = targets ? targets[s->dev_id] : NULL;
            if (t && t->fd < 0)
                t = NULL;
            const uint8_t *data = s->data;
            uint64_t base = (uint64_t)s->cluster * VMA_CLUSTER_SIZE;
            st.clusters_done++;
            if (progress) {
                /* call back whenever the percentage changes, like the -v
                 * lines of Proxmox's vma */
                uint64_t pct = st.clusters_total ? MIN(100, st.clusters_done * 100 / st.clusters_total) : 100;
                if (pct != last_pct) {
                    last_pct = pct;
                    if (report(progress, ud, &st, r, start, err) < 0)
                        goto out;
                    last_call = st.elapsed;
                }
            }
            if (s->mask == 0 && (!t || !t->write_zero)) {
                /* an empty cluster with nothing to write: count it at once
                 * (the same numbers as the loop below) */
                if (d->is_vmstate) {
                    st.zero_bytes += VMA_CLUSTER_SIZE;
                    if (base < d->size)
                        vmstate_len = MAX(vmstate_len, MIN(base + VMA_CLUSTER_SIZE, d->size));
                } else if (base < d->size) {
                    st.zero_bytes += MIN((uint64_t)VMA_CLUSTER_SIZE, d->size - base);
                }
                continue;
            }
            for (unsigned j = 0; j < VMA_BLOCKS_PER_CLUSTER; j++) {
                uint64_t off = base + (uint64_t)j * VMA_BLOCK_SIZE;
                gboolean stored = (s->mask >> j) & 1;
                const uint8_t *blk = data;
                if (stored)
                    data += VMA_BLOCK_SIZE;
                /* statistics count the vmstate stream unclamped, as
                 * Proxmox's vma does (its size is only a bound) */
                if (!stored && (d->is_vmstate || off < d->size)) {
                    size_t zl = d->is_vmstate ? VMA_BLOCK_SIZE
                                              : (size_t)MIN((uint64_t)VMA_BLOCK_SIZE, d->size - off);
                    st.zero_bytes += zl;
                    if (s->mask)
                        st.partial_zero_bytes += zl;
                }
                if (off >= d->size)
                    continue;
                size_t len = (size_t)MIN((uint64_t)VMA_BLOCK_SIZE, d->size - off);
                if (d->is_vmstate && off + len > vmstate_len)
                    vmstate_len = off + len;
                if (!t)
                    continue;
                const void *src;
                if (stored)
                    src = (t->fresh && vma_is_zero(blk, len)) ? NULL : blk;
                else
                    src = t->write_zero ? zero_block : NULL;
                if (!src)
                    continue;
                if (run_add(ru, t, &th[s->dev_id], off, src, len, err) < 0)
                    goto out;
                st.bytes_written += len;
            }
        }
        /* the extent buffer is reused by the next read: write it out now */
        if (ru->n && run_flush(ru, err) < 0)
            goto out;
        st.vmstate_bytes = vmstate_len;
        /* and at least five times a second for a progress bar */
        if (progress && vma_now() - start - last_call >= 0.2) {
            if (report(progress, ud, &st, r, start, err) < 0)
                goto out;
            last_call = st.elapsed;
        }
    }

    /* the vmstate stream ends where its data ended; zero tail blocks left
     * holes, so set the length explicitly */
    if (vmstate_id && targets && targets[vmstate_id] && targets[vmstate_id]->fd >= 0 &&
        targets[vmstate_id]->fresh &&
        ftruncate(targets[vmstate_id]->fd, (off_t)vmstate_len) < 0) {
        vma_set_errno(err, errno, "cannot set the length of vmstate");
        goto out;
    }
    /* nothing is reported as restored until it is on disk */
    for (unsigned id = 1; targets && id <= VMA_MAX_DEV_ID; id++) {
        vma_target *t = targets[id];
        if (!t || t->fd < 0)
            continue;
        if (fsync(t->fd) < 0 && errno != EINVAL && errno != EROFS) {
            vma_set_errno(err, errno, "fsync of the target of '%s' failed",
                          h->devices[id] ? h->devices[id]->name : "?");
            goto out;
        }
    }
    st.bytes_archive = vma_reader_offset(r);
    st.vmstate_bytes = vmstate_len;
    st.elapsed = vma_now() - start;
    ret = 0;
out:
    if (stats)
        *stats = st;
    g_free(ext);
    g_free(ru);
    return ret;
}
