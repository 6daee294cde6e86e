/* writer.c - VMA writer: header, zero-block elision, extents of up to 59
 * clusters; streams devices from descriptors, skipping holes unread. */
#define _GNU_SOURCE
#include "format/format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>


typedef struct {
    char *name;
    uint64_t size;
    uint64_t nclusters;
    gboolean is_vmstate;
    vma_runs *written;
    uint64_t written_count;
    uint64_t vmstate_next;
    uint64_t zero_bytes;
} wdev;

typedef struct {
    char *name;
    uint8_t *data;
    size_t len;
} wconfig;

static void wconfig_free(gpointer p)
{
    wconfig *c = p;
    g_free(c->name);
    g_free(c->data);
    g_free(c);
}

/* the pieces of one extent written from the caller's buffer: its header,
 * then at most one per stored block */
#define CHUNK_IOV (1 + VMA_SLOTS_PER_EXTENT * VMA_BLOCKS_PER_CLUSTER)

struct vma_writer {
    int fd;
    char *path;       /* final name, NULL for a descriptor */
    char *tmp_path;   /* temporary name while writing */
    gboolean closed_ok;
    vma_out *out;
    uint8_t uuid[16];
    int64_t ctime;
    GPtrArray *configs;
    wdev *devs[VMA_MAX_DEV_ID + 1];
    unsigned n_devs;
    gboolean header_written;
    gboolean any_extent;
    gboolean failed;
    uint8_t *ext;
    struct iovec *iov;    /* write_chunk's pieces (not on the stack) */
    unsigned n_slots;
    size_t data_len;
    uint64_t total_done;
    double start;
    gboolean overwrite;
    gboolean copied;  /* the content is another archive's, copied by vma_writer_copy */
    gboolean canonical; /* write_source: extents of 59 clusters from cluster 0 */
};

/* an unsafe name from the caller is an argument error */
static gboolean name_ok(const char *name, GError **err)
{
    if (vma_name_is_safe(name, err))
        return TRUE;
    if (err && *err)
        (*err)->code = VMA_ERR_ARG;
    return FALSE;
}

static vma_writer *writer_new(int fd, const vma_writer_opts *opts, GError **err)
{
    vma_writer *w = g_new0(vma_writer, 1);
    w->fd = fd;
    w->configs = g_ptr_array_new_with_free_func(wconfig_free);
    if (opts && opts->uuid)
        memcpy(w->uuid, opts->uuid, 16);
    else
        uuid_generate(w->uuid);
    w->ctime = (opts && opts->ctime >= 0) ? opts->ctime : (int64_t)time(NULL);
    w->canonical = opts && opts->canonical;
    w->ext = g_malloc(VMA_EXTENT_HEADER_SIZE + VMA_MAX_EXTENT_DATA);
    w->iov = g_new(struct iovec, CHUNK_IOV);
    w->start = vma_now();
    w->out = vma_out_new(fd, opts ? opts->compress : VMA_COMPRESS_NONE,
                         opts ? opts->level : 0, opts ? opts->threads : 0, err);
    if (!w->out) {
        vma_writer_free(w);
        return NULL;
    }
    return w;
}

vma_writer *vma_writer_new_fd(int fd, const vma_writer_opts *opts, GError **err)
{
    return writer_new(fd, opts, err);
}

vma_writer *vma_writer_create(const char *path, const vma_writer_opts *opts, GError **err)
{
    if (strcmp(path, "-") == 0)
        return writer_new(1, opts, err);
    gboolean overwrite = opts && opts->overwrite;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* found before any work, not by the rename at the end */
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "%s is a folder, not an archive (not replacing it)",
                    path);
        return NULL;
    }
    if (!overwrite && lstat(path, &st) == 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "%s already exists (not overwriting it)", path);
        return NULL;
    }
    char *dir = g_path_get_dirname(path);
    char *base = g_path_get_basename(path);
    char *tmp = g_strdup_printf("%s/.%s.tmp-XXXXXX", dir, base);
    g_free(dir);
    g_free(base);
    int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        vma_set_errno(err, errno, "cannot create %s", path);
        g_free(tmp);
        return NULL;
    }
    /* the mode of a new file (0666 less the umask), read without setting
     * the umask: another thread may be making files */
    int um = vma_process_umask();
    if (um >= 0 && fchmod(fd, 0666 & ~(mode_t)um) < 0) {
        /* keep going: the archive is still private to its owner */
    }
    vma_writer *w = writer_new(fd, opts, err);
    if (!w) {
        close(fd);
        unlink(tmp);
        g_free(tmp);
        return NULL;
    }
    w->path = g_strdup(path);
    w->tmp_path = tmp;
    w->overwrite = overwrite;
    return w;
}

void vma_writer_uuid(const vma_writer *w, uint8_t out[16]) { memcpy(out, w->uuid, 16); }

static gboolean check_open(vma_writer *w, gboolean before_header, GError **err)
{
    if (w->failed || w->closed_ok) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "the archive writer is %s",
                    w->failed ? "in a failed state" : "closed");
        return FALSE;
    }
    if (before_header && w->header_written) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG,
                    "configs and devices must be added before any data is written");
        return FALSE;
    }
    return TRUE;
}

int vma_writer_add_config(vma_writer *w, const char *name, const void *data, size_t len,
                          GError **err)
{
    if (!check_open(w, TRUE, err) || !name_ok(name, err))
        return -1;
    if (w->configs->len >= VMA_MAX_CONFIGS) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "too many configs (at most %u)", VMA_MAX_CONFIGS);
        return -1;
    }
    if (len > VMA_MAX_CONFIG_SIZE) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "config '%s' is too large (%zu bytes, at most %u)",
                    name, len, VMA_MAX_CONFIG_SIZE);
        return -1;
    }
    if (strlen(name) + 1 > VMA_MAX_CONFIG_SIZE) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "config name is too long");
        return -1;
    }
    for (guint i = 0; i < w->configs->len; i++) {
        wconfig *c = g_ptr_array_index(w->configs, i);
        if (strcmp(c->name, name) == 0) {
            g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "config '%s' was added twice", name);
            return -1;
        }
    }
    wconfig *c = g_new0(wconfig, 1);
    c->name = g_strdup(name);
    c->data = g_memdup2(data ? data : "", len ? len : 1);
    c->len = len;
    g_ptr_array_add(w->configs, c);
    return 0;
}

int vma_writer_add_device(vma_writer *w, const char *name, uint64_t size, GError **err)
{
    if (!check_open(w, TRUE, err) || !name_ok(name, err))
        return -1;
    if (w->n_devs >= VMA_MAX_WRITER_DEVICES) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "too many devices (at most %u)",
                    VMA_MAX_WRITER_DEVICES);
        return -1;
    }
    if (size == 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "device '%s' is empty (size 0)", name);
        return -1;
    }
    /* recorded rounded up to a multiple of 512, as Proxmox does */
    uint64_t rsize = (size + 511) & ~(uint64_t)511;
    if (rsize > VMA_MAX_DEVICE_SIZE) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "device '%s' is too large for the format", name);
        return -1;
    }
    for (unsigned i = 1; i <= w->n_devs; i++) {
        if (strcmp(w->devs[i]->name, name) == 0) {
            g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "device '%s' was added twice", name);
            return -1;
        }
    }
    wdev *d = g_new0(wdev, 1);
    d->name = g_strdup(name);
    d->size = rsize;
    d->nclusters = vma_clusters(rsize);
    d->is_vmstate = strcmp(name, "vmstate") == 0;
    if (!d->is_vmstate) {
        /* the caller may write clusters in any order: no bound */
        d->written = vma_runs_new(d->nclusters, UINT64_MAX);
    }
    w->devs[++w->n_devs] = d;
    return (int)w->n_devs;
}

/* a write of the archive failed: the message names the archive */
static int out_failed(vma_writer *w, GError **err)
{
    if (err && *err && (*err)->code != VMA_ERR_INTERRUPTED)
        g_prefix_error(err, "%s: ", w->path ? w->path : "the archive");
    w->failed = TRUE;
    return -1;
}

static uint32_t blob_add(GByteArray *b, const void *data, size_t len)
{
    uint32_t ptr = b->len;
    uint8_t l[2] = {(uint8_t)len, (uint8_t)(len >> 8)};
    g_byte_array_append(b, l, 2);
    if (len)
        g_byte_array_append(b, data, (guint)len);
    return ptr;
}

static int write_header(vma_writer *w, GError **err)
{
    GByteArray *blobs = g_byte_array_new();
    uint8_t zero = 0;
    g_byte_array_append(blobs, &zero, 1); /* offset 0 means "none" */
    uint32_t cname[VMA_MAX_CONFIGS] = {0}, cdata[VMA_MAX_CONFIGS] = {0};
    uint32_t dname[VMA_MAX_DEV_ID + 1] = {0};
    for (guint i = 0; i < w->configs->len; i++) {
        wconfig *c = g_ptr_array_index(w->configs, i);
        cname[i] = blob_add(blobs, c->name, strlen(c->name) + 1);
        cdata[i] = blob_add(blobs, c->data, c->len);
    }
    for (unsigned id = 1; id <= w->n_devs; id++)
        dname[id] = blob_add(blobs, w->devs[id]->name, strlen(w->devs[id]->name) + 1);

    size_t header_size = (VMA_HEADER_FIXED_SIZE + blobs->len + 511) & ~(size_t)511;
    uint8_t *h = g_malloc0(header_size);
    memcpy(h + VMA_H_MAGIC, VMA_MAGIC, 4);
    vma_put_be32(h + VMA_H_VERSION, 1);
    memcpy(h + VMA_H_UUID, w->uuid, 16);
    vma_put_be64(h + VMA_H_CTIME, (uint64_t)w->ctime);
    vma_put_be32(h + VMA_H_BLOB_OFFSET, VMA_HEADER_FIXED_SIZE);
    vma_put_be32(h + VMA_H_BLOB_SIZE, blobs->len);
    vma_put_be32(h + VMA_H_HEADER_SIZE, (uint32_t)header_size);
    for (unsigned i = 0; i < VMA_MAX_CONFIGS; i++) {
        vma_put_be32(h + VMA_H_CONFIG_NAMES + 4 * i, cname[i]);
        vma_put_be32(h + VMA_H_CONFIG_DATA + 4 * i, cdata[i]);
    }
    for (unsigned id = 1; id <= w->n_devs; id++) {
        uint8_t *di = h + VMA_H_DEV_INFO + 32 * id;
        vma_put_be32(di, dname[id]);
        vma_put_be64(di + 8, w->devs[id]->size);
    }
    memcpy(h + VMA_HEADER_FIXED_SIZE, blobs->data, blobs->len);
    g_byte_array_free(blobs, TRUE);
    int rc = -1;
    if (!vma_md5(h, header_size, h + VMA_H_MD5))
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "the header's MD5 failed (libcrypto)");
    else
        rc = vma_out_write(w->out, h, header_size, err);
    g_free(h);
    if (rc < 0)
        return out_failed(w, err);
    vma_out_mark(w->out);
    w->header_written = TRUE;
    return 0;
}

/* -1 with err when the checksum cannot be made */
static int finish_extent_header(vma_writer *w, GError **err)
{
    uint8_t *eh = w->ext;
    memcpy(eh + VMA_E_MAGIC, VMA_EXTENT_MAGIC, 4);
    vma_put_be16(eh + VMA_E_RESERVED, 0);
    vma_put_be16(eh + VMA_E_BLOCK_COUNT, (uint16_t)(w->data_len / VMA_BLOCK_SIZE));
    memcpy(eh + VMA_E_UUID, w->uuid, 16);
    memset(eh + VMA_E_MD5, 0, 16);
    /* unused slots stay zero */
    memset(eh + VMA_E_BLOCKINFO + 8 * w->n_slots, 0, 8 * (VMA_SLOTS_PER_EXTENT - w->n_slots));
    if (!vma_md5(eh, VMA_EXTENT_HEADER_SIZE, eh + VMA_E_MD5)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "an extent's MD5 failed (libcrypto)");
        return -1;
    }
    return 0;
}

static int flush_extent(vma_writer *w, GError **err)
{
    if (finish_extent_header(w, err) < 0)
        return out_failed(w, err);
    vma_out_mark(w->out);
    if (vma_out_write(w->out, w->ext, VMA_EXTENT_HEADER_SIZE + w->data_len, err) < 0)
        return out_failed(w, err);
    w->any_extent = TRUE;
    w->n_slots = 0;
    w->data_len = 0;
    return 0;
}

/* the bookkeeping of one cluster: device, range, order, duplicates; writes
 * the header before the first cluster */
static wdev *claim_cluster(vma_writer *w, uint8_t dev_id, uint32_t cluster, GError **err)
{
    if (!check_open(w, FALSE, err))
        return NULL;
    wdev *d = (dev_id >= 1 && dev_id <= w->n_devs) ? w->devs[dev_id] : NULL;
    if (!d) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "no device with id %u", dev_id);
        return NULL;
    }
    if (cluster >= d->nclusters) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "cluster %u is past the end of device '%s'",
                    cluster, d->name);
        return NULL;
    }
    if (d->is_vmstate) {
        if (cluster != d->vmstate_next) {
            g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "vmstate clusters must be written in order");
            return NULL;
        }
        d->vmstate_next++;
    } else {
        int old = vma_runs_add(d->written, cluster);
        if (old != 0) {
            g_set_error(err, VMA_ERROR, VMA_ERR_ARG,
                        "cluster %u of device '%s' was written twice", cluster, d->name);
            return NULL;
        }
    }
    d->written_count++;
    if (!w->header_written && write_header(w, err) < 0)
        return NULL;
    return d;
}

/* bytes of the cluster's block j that lie inside the device */
static uint64_t block_in_device(const wdev *d, uint32_t cluster, unsigned j)
{
    uint64_t off = (uint64_t)cluster * VMA_CLUSTER_SIZE + (uint64_t)j * VMA_BLOCK_SIZE;
    return off < d->size ? MIN((uint64_t)VMA_BLOCK_SIZE, d->size - off) : 0;
}

static int add_slot(vma_writer *w, uint8_t dev_id, uint32_t cluster, uint16_t mask, GError **err)
{
    uint64_t bi = (uint64_t)mask << 48 | (uint64_t)dev_id << 32 | cluster;
    vma_put_be64(w->ext + VMA_E_BLOCKINFO + 8 * w->n_slots, bi);
    w->n_slots++;
    if (w->n_slots == VMA_SLOTS_PER_EXTENT)
        return flush_extent(w, err);
    return 0;
}

int vma_writer_write_cluster(vma_writer *w, uint8_t dev_id, uint32_t cluster,
                             const uint8_t *data, GError **err)
{
    wdev *d = claim_cluster(w, dev_id, cluster, err);
    if (!d)
        return -1;
    if (!data) {
        /* an empty cluster: its bytes inside the device are all zero */
        uint64_t base = (uint64_t)cluster * VMA_CLUSTER_SIZE;
        if (base < d->size)
            d->zero_bytes += MIN((uint64_t)VMA_CLUSTER_SIZE, d->size - base);
        return add_slot(w, dev_id, cluster, 0, err);
    }
    uint16_t mask = 0;
    uint8_t *dst = w->ext + VMA_EXTENT_HEADER_SIZE + w->data_len;
    for (unsigned j = 0; j < VMA_BLOCKS_PER_CLUSTER; j++) {
        const uint8_t *blk = data ? data + (size_t)j * VMA_BLOCK_SIZE : NULL;
        if (blk && !vma_is_zero(blk, VMA_BLOCK_SIZE)) {
            mask |= (uint16_t)(1u << j);
            memcpy(dst, blk, VMA_BLOCK_SIZE);
            dst += VMA_BLOCK_SIZE;
        } else {
            d->zero_bytes += block_in_device(d, cluster, j);
        }
    }
    w->data_len = (size_t)(dst - (w->ext + VMA_EXTENT_HEADER_SIZE));
    return add_slot(w, dev_id, cluster, mask, err);
}

/* Write n (<= 59) consecutive clusters that lie in buf as one extent of
 * their own, without copying: the header and the stored blocks go out in
 * one writev.  masks[k] says which blocks of cluster k are not zero (all
 * zero: buf may be NULL). */
static int write_chunk(vma_writer *w, uint8_t dev_id, uint32_t first, unsigned n,
                       const uint8_t *buf, const uint16_t *masks, GError **err)
{
    if (w->n_slots && flush_extent(w, err) < 0)
        return -1;
    struct iovec *iov = w->iov;
    int niov = 1;
    size_t data_len = 0;
    for (unsigned k = 0; k < n; k++) {
        wdev *d = claim_cluster(w, dev_id, first + k, err);
        if (!d)
            return -1;
        for (unsigned j = 0; j < VMA_BLOCKS_PER_CLUSTER; j++) {
            if (!((masks[k] >> j) & 1)) {
                d->zero_bytes += block_in_device(d, first + k, j);
                continue;
            }
            /* buf is NULL only when no block is stored */
            const uint8_t *blk = buf + (size_t)k * VMA_CLUSTER_SIZE + (size_t)j * VMA_BLOCK_SIZE;
            struct iovec *last = &iov[niov - 1];
            if (niov > 1 && (const uint8_t *)last->iov_base + last->iov_len == blk) {
                last->iov_len += VMA_BLOCK_SIZE; /* adjacent: one piece */
            } else {
                iov[niov].iov_base = (void *)blk;
                iov[niov].iov_len = VMA_BLOCK_SIZE;
                niov++;
            }
            data_len += VMA_BLOCK_SIZE;
        }
        uint64_t bi = (uint64_t)masks[k] << 48 | (uint64_t)dev_id << 32 | (first + k);
        vma_put_be64(w->ext + VMA_E_BLOCKINFO + 8 * k, bi);
    }
    w->n_slots = n;
    w->data_len = data_len;
    if (finish_extent_header(w, err) < 0)
        return out_failed(w, err);
    iov[0].iov_base = w->ext;
    iov[0].iov_len = VMA_EXTENT_HEADER_SIZE;
    vma_out_mark(w->out);
    if (vma_out_writev(w->out, iov, niov, err) < 0)
        return out_failed(w, err);
    w->any_extent = TRUE;
    w->n_slots = 0;
    w->data_len = 0;
    return 0;
}

/* ---- write_source: a reader thread finds the data of the source, reads it
 * and finds the zero blocks, while this thread writes extents ---- */

#define CHUNK_CLUSTERS VMA_SLOTS_PER_EXTENT
#define CHUNK_BYTES ((size_t)CHUNK_CLUSTERS * VMA_CLUSTER_SIZE)
#define READ_BUFFERS 3

enum { ITEM_DATA, ITEM_HOLE, ITEM_ZERO_CHUNK, ITEM_ERROR };

typedef struct {
    int kind;
    uint64_t pos;          /* a cluster boundary */
    uint64_t len;          /* bytes: whole clusters, or up to the device end */
    uint8_t *buf;          /* ITEM_DATA: len bytes, zero-padded to clusters */
    uint16_t masks[CHUNK_CLUSTERS];
    GError *error;         /* ITEM_ERROR */
} read_item;

typedef struct {
    const vma_source *src;
    uint64_t size;         /* the device size as recorded */
    vma_queue *full;       /* read_item * for the writer; closed: the reader ended */
    vma_queue *free;       /* uint8_t * buffers for the reader; closed: stop */
    gint stop;
    gboolean canonical;    /* chunks of 59 clusters from cluster 0, holes or not */
} read_ctx;

static void push_item(read_ctx *c, int kind, uint64_t pos, uint64_t len, uint8_t *buf, GError *e)
{
    read_item *it = g_new(read_item, 1);
    it->kind = kind;
    it->pos = pos;
    it->len = len;
    it->buf = buf;
    it->error = e;
    if (kind == ITEM_DATA) {
        for (uint64_t k = 0; k * VMA_CLUSTER_SIZE < len; k++) {
            uint16_t m = 0;
            for (unsigned j = 0; j < VMA_BLOCKS_PER_CLUSTER; j++)
                if (!vma_is_zero(buf + k * VMA_CLUSTER_SIZE + j * VMA_BLOCK_SIZE, VMA_BLOCK_SIZE))
                    m |= (uint16_t)(1u << j);
            it->masks[k] = m;
        }
    }
    vma_queue_push(c->full, it);
}

static gboolean reader_stopped(read_ctx *c)
{
    return g_atomic_int_get(&c->stop) || vma_interrupted();
}

/* read one chunk of data at pos (a cluster boundary) of at most len bytes:
 * 1 when queued, 0 when asked to stop, -1 after queueing the error */
static int read_chunk(read_ctx *c, uint64_t pos, uint64_t len)
{
    uint8_t *buf = vma_queue_pop(c->free);
    if (!buf || reader_stopped(c)) {
        if (buf)
            vma_queue_push(c->free, buf);
        return 0;
    }
    GError *e = NULL;
    ssize_t got = c->src->ops->pread(c->src->ctx, buf, (size_t)len, pos, &e);
    if (got < 0) {
        vma_queue_push(c->free, buf);
        push_item(c, ITEM_ERROR, pos, 0, NULL, e);
        return -1;
    }
    if ((uint64_t)got < len)
        memset(buf + got, 0, (size_t)(len - (uint64_t)got));
    push_item(c, ITEM_DATA, pos, len, buf, NULL);
    return 1;
}

/* the next data from pos, [*ds, *de), asked of the source when not *known
 * or pos has passed it; none: *ds = *de = none.  FALSE when the source failed
 * (the error queued). */
static gboolean next_data(read_ctx *c, uint64_t pos, uint64_t none, uint64_t *ds, uint64_t *de,
                          gboolean *known)
{
    if (*known && pos < *de)
        return TRUE;
    GError *e = NULL;
    int rc = c->src->ops->next_data(c->src->ctx, pos, ds, de, &e);
    if (rc < 0) {
        push_item(c, ITEM_ERROR, pos, 0, NULL, e);
        return FALSE;
    }
    if (rc == 0)
        *ds = *de = none;
    *known = TRUE;
    return TRUE;
}

/* the canonical layout (vma_writer_opts.canonical): every extent holds the
 * 59 clusters from a multiple of 59 (the last one fewer), whatever holes the
 * image has; a chunk without data is not read.  The caller closes the queue. */
static void canonical_read(read_ctx *c)
{
    uint64_t end = vma_clusters(c->size) * VMA_CLUSTER_SIZE;
    uint64_t ds = 0, de = 0;
    gboolean known = FALSE;
    uint64_t pos = 0;
    while (pos < end) {
        if (reader_stopped(c))
            break;
        uint64_t len = MIN((uint64_t)CHUNK_BYTES, end - pos);
        if (!next_data(c, pos, end, &ds, &de, &known))
            break;
        if (ds >= pos + len || ds >= c->size)
            push_item(c, ITEM_ZERO_CHUNK, pos, len, NULL, NULL);
        else if (read_chunk(c, pos, len) <= 0)
            break;
        pos += len;
    }
}

/* the image as it is: holes recorded without reading, data read in chunks
 * that end where the data does.  The caller closes the queue. */
static void sparse_read(read_ctx *c)
{
    uint64_t pos = 0;             /* always a cluster boundary */
    uint64_t ds = 0, de = 0;      /* the next data known: [ds, de); ds >= size: none */
    gboolean known = FALSE;
    uint64_t end = vma_clusters(c->size) * VMA_CLUSTER_SIZE;

    while (pos < c->size) {
        if (reader_stopped(c))
            break;
        if (!next_data(c, pos, c->size, &ds, &de, &known)) /* none: zeros up to the end */
            break;
        if (ds >= pos + VMA_CLUSTER_SIZE || ds >= c->size) {
            /* whole clusters inside a hole: recorded without reading */
            uint64_t stop = MIN(ds, c->size);
            uint64_t n = (stop - pos) / VMA_CLUSTER_SIZE;
            if (stop == c->size && (stop - pos) % VMA_CLUSTER_SIZE)
                n++;
            push_item(c, ITEM_HOLE, pos, n * VMA_CLUSTER_SIZE, NULL, NULL);
            pos += n * VMA_CLUSTER_SIZE;
            continue;
        }
        /* up to the end of the data, rounded up to a cluster */
        uint64_t dend = (de + VMA_CLUSTER_SIZE - 1) & ~(uint64_t)(VMA_CLUSTER_SIZE - 1);
        uint64_t len = MIN(MIN((uint64_t)CHUNK_BYTES, end - pos), dend - pos);
        if (read_chunk(c, pos, len) <= 0)
            break;
        pos += len;
    }
}

static void *reader_thread(void *data)
{
    read_ctx *c = data;
    if (c->canonical)
        canonical_read(c);
    else
        sparse_read(c);
    vma_queue_close(c->full); /* the end, an error or a stop: no more items */
    return NULL;
}

/* write what one item holds; calls progress */
static int write_item(vma_writer *w, uint8_t dev_id, wdev *d, const read_item *it,
                      vma_write_progress *pr, vma_write_progress_fn progress, void *ud,
                      GError **err)
{
    uint32_t first = (uint32_t)(it->pos / VMA_CLUSTER_SIZE);
    uint64_t n = vma_clusters(it->len);
    int rc = 0;
    if (it->kind == ITEM_HOLE) {
        for (uint64_t k = 0; k < n && rc == 0; k++)
            rc = vma_writer_write_cluster(w, dev_id, first + (uint32_t)k, NULL, err);
    } else if (it->kind == ITEM_ZERO_CHUNK) {
        static const uint16_t none[CHUNK_CLUSTERS];
        rc = write_chunk(w, dev_id, first, (unsigned)n, NULL, none, err);
    } else {
        rc = write_chunk(w, dev_id, first, (unsigned)n, it->buf, it->masks, err);
    }
    if (rc < 0)
        return -1;
    uint64_t now = MIN(it->pos + it->len, d->size);
    w->total_done += now - pr->done;
    pr->done = now;
    pr->zero_bytes = d->zero_bytes;
    pr->total_done = w->total_done;
    pr->elapsed = vma_now() - w->start;
    if (progress && progress(pr, ud) != 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
        return -1;
    }
    return 0;
}

/* the reader is asked to stop: it sees the flag, or its queue of free
 * buffers closed while it waits for one */
static void stop_reader(read_ctx *c)
{
    g_atomic_int_set(&c->stop, 1);
    vma_queue_close(c->free);
}

/* take the reader's items until it has ended (closed its queue): after a
 * failure the reader is stopped and its items only drained */
static int consume(vma_writer *w, uint8_t dev_id, wdev *d, read_ctx *c,
                   vma_write_progress_fn progress, void *ud, GError **err)
{
    gboolean failed = FALSE;
    vma_write_progress pr = {.size = d->size};
    read_item *it;
    while ((it = vma_queue_pop(c->full))) {
        if (it->kind == ITEM_ERROR && !failed) {
            g_propagate_prefixed_error(err, it->error, "%s: ", c->src->label);
            it->error = NULL;
            failed = TRUE;
        } else if (it->kind != ITEM_ERROR && !failed &&
                   write_item(w, dev_id, d, it, &pr, progress, ud, err) < 0) {
            failed = TRUE;
            stop_reader(c);
        }
        if (it->buf)
            vma_queue_push(c->free, it->buf);
        if (it->error)
            g_error_free(it->error);
        g_free(it);
    }
    /* the reader ended short of the end without an error: stopped */
    if (!failed && (vma_interrupted() || pr.done < d->size)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
        failed = TRUE;
    }
    return failed ? -1 : 0;
}

int vma_writer_write_source(vma_writer *w, uint8_t dev_id, const vma_source *src,
                            vma_write_progress_fn progress, void *ud, GError **err)
{
    if (!check_open(w, FALSE, err))
        return -1;
    wdev *d = (dev_id >= 1 && dev_id <= w->n_devs) ? w->devs[dev_id] : NULL;
    if (!d) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "no device with id %u", dev_id);
        return -1;
    }
    if (src->size + 512 <= d->size) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG,
                    "the image of '%s' (%" G_GUINT64_FORMAT " bytes) is smaller than the device (%"
                    G_GUINT64_FORMAT " bytes)", d->name, src->size, d->size);
        return -1;
    }
    read_ctx c = {.src = src, .size = d->size, .canonical = w->canonical};
    c.full = vma_queue_new();
    c.free = vma_queue_new();
    for (unsigned i = 0; i < READ_BUFFERS; i++)
        vma_queue_push(c.free, g_malloc(CHUNK_BYTES));
    int ret = -1;
    vma_thread *th = vma_thread_new("vma-read", reader_thread, &c, err);
    if (th) {
        ret = consume(w, dev_id, d, &c, progress, ud, err);
        vma_thread_join(th);
    }
    if (ret < 0)
        w->failed = TRUE;
    /* the reader has ended: every buffer is back in the free queue */
    uint8_t *b;
    while ((b = vma_queue_try_pop(c.free)))
        g_free(b);
    vma_queue_unref(c.full);
    vma_queue_unref(c.free);
    return ret;
}

/* ---- a file or block device as a source ---- */

typedef struct {
    int fd;
    uint64_t size;        /* the file's size */
    gboolean seek_ok;     /* SEEK_DATA works here */
} fd_source;

static int fd_next_data(void *ctx, uint64_t off, uint64_t *start, uint64_t *end, GError **err)
{
    fd_source *f = ctx;
    (void)err;
    if (off >= f->size)
        return 0; /* past the end of the file: zeros */
    if (f->seek_ok) {
        off_t dpos = lseek(f->fd, (off_t)off, SEEK_DATA);
        if (dpos < 0 && errno == ENXIO)
            return 0;
        if (dpos >= 0) {
            off_t hpos = lseek(f->fd, dpos, SEEK_HOLE);
            *start = (uint64_t)dpos;
            *end = hpos < 0 ? f->size : (uint64_t)hpos;
            return 1;
        }
        f->seek_ok = FALSE; /* not supported: everything is data */
    }
    *start = off;
    *end = f->size;
    return 1;
}

static ssize_t fd_pread(void *ctx, void *buf, size_t n, uint64_t off, GError **err)
{
    fd_source *f = ctx;
    ssize_t got = vma_pread_all(f->fd, buf, n, off, err);
    if (got > 0)
        posix_fadvise(f->fd, (off_t)off, (off_t)got, POSIX_FADV_DONTNEED);
    return got;
}

static const vma_source_ops fd_source_ops = {fd_next_data, fd_pread};

int vma_writer_write_fd(vma_writer *w, uint8_t dev_id, int fd, const char *label,
                        vma_write_progress_fn progress, void *ud, GError **err)
{
    if (!check_open(w, FALSE, err))
        return -1;
    wdev *d = (dev_id >= 1 && dev_id <= w->n_devs) ? w->devs[dev_id] : NULL;
    const char *name = d ? d->name : "?";
    struct stat st;
    if (fstat(fd, &st) < 0) {
        vma_set_errno(err, errno, "cannot stat the image of '%s'", name);
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        /* a pipe has no size: its data would be recorded as zeros */
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG,
                    "the image of '%s' is not a regular file or a block device", name);
        return -1;
    }
    int64_t fsize = vma_fd_size(fd, err);
    if (fsize < 0)
        return -1;
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    fd_source f = {fd, (uint64_t)fsize, TRUE};
    char *own = label ? NULL : g_strdup_printf("the image of '%s'", name);
    vma_source src = {&fd_source_ops, &f, (uint64_t)fsize, label ? label : own};
    int rc = vma_writer_write_source(w, dev_id, &src, progress, ud, err);
    g_free(own);
    return rc;
}

void vma_writer_device_stats(const vma_writer *w, uint8_t dev_id, vma_device_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (dev_id < 1 || dev_id > w->n_devs)
        return;
    out->size = w->devs[dev_id]->size;
    out->zero_bytes = w->devs[dev_id]->zero_bytes;
    out->clusters = w->devs[dev_id]->written_count;
}

/* the checks of close: something to hold, every cluster of every disk */
static int check_complete(vma_writer *w, GError **err)
{
    if (w->n_devs == 0 && w->configs->len == 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "an archive needs at least one config or device");
        w->failed = TRUE;
        return -1;
    }
    for (unsigned id = 1; id <= w->n_devs; id++) {
        wdev *d = w->devs[id];
        if (!d->is_vmstate && d->written_count != d->nclusters) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE,
                        "device '%s': %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                        " clusters were written", d->name, d->written_count, d->nclusters);
            w->failed = TRUE;
            return -1;
        }
    }
    return 0;
}

int vma_writer_close(vma_writer *w, GError **err)
{
    if (!check_open(w, FALSE, err))
        return -1;
    if (!w->copied) {
        if (check_complete(w, err) < 0)
            return -1;
        if (!w->header_written && write_header(w, err) < 0)
            return -1;
        /* an archive always has at least one extent (Proxmox writes an empty one) */
        if ((w->n_slots || !w->any_extent) && flush_extent(w, err) < 0)
            return -1;
    }
    if (vma_out_finish(w->out, err) < 0)
        return out_failed(w, err);
    if (w->tmp_path) {
        if (close(w->fd) < 0) {
            w->fd = -1;
            vma_set_errno(err, errno, "closing %s failed", w->path);
            w->failed = TRUE;
            return -1;
        }
        w->fd = -1;
        int rc;
        if (w->overwrite) {
            rc = rename(w->tmp_path, w->path);
            if (rc < 0)
                vma_set_errno(err, errno, "cannot rename the archive to %s", w->path);
        } else {
            rc = vma_rename_noreplace(w->tmp_path, w->path, err);
        }
        if (rc < 0) {
            w->failed = TRUE;
            return -1;
        }
        g_free(w->tmp_path);
        w->tmp_path = NULL;
        vma_fsync_parent(w->path, NULL);
    }
    w->closed_ok = TRUE;
    return 0;
}

int vma_writer_copy(vma_writer *w, vma_reader *r, vma_progress_fn progress, void *ud,
                    GError **err)
{
    if (!check_open(w, TRUE, err))
        return -1;
    if (w->n_devs || w->configs->len) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "a copy takes an empty writer");
        return -1;
    }
    w->copied = TRUE;
    w->header_written = TRUE;
    const vma_header *h = vma_reader_header(r);
    vma_stats st = {0};
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++)
        if (h->devices[id])
            st.clusters_total += vma_clusters(h->devices[id]->size);
    size_t len;
    const uint8_t *raw = vma_reader_raw_header(r, &len);
    memcpy(w->uuid, h->uuid, 16);
    if (vma_out_write(w->out, raw, len, err) < 0)
        return out_failed(w, err);
    vma_out_mark(w->out);
    vma_extent *ext = g_new(vma_extent, 1);
    double last = 0;
    int rc;
    while ((rc = vma_reader_next(r, ext, err)) > 0) {
        raw = vma_reader_raw_extent(r, ext, &len);
        vma_out_mark(w->out);
        if (vma_out_write(w->out, raw, len, err) < 0) {
            g_free(ext);
            return out_failed(w, err);
        }
        st.clusters_done += ext->n_slots;
        st.bytes_archive = vma_reader_offset(r);
        st.elapsed = vma_now() - w->start;
        if (progress && st.elapsed - last >= 0.2) {
            last = st.elapsed;
            if (progress(&st, ud) != 0) {
                g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
                rc = -1;
                break;
            }
        }
    }
    g_free(ext);
    if (rc == 0)
        return 0;
    w->failed = TRUE;
    return -1;
}

void vma_writer_free(vma_writer *w)
{
    if (!w)
        return;
    vma_out_free(w->out);
    if (w->tmp_path) {
        if (w->fd >= 0)
            close(w->fd);
        unlink(w->tmp_path);
        g_free(w->tmp_path);
    }
    g_free(w->path);
    if (w->configs)
        g_ptr_array_free(w->configs, TRUE);
    for (unsigned id = 1; id <= w->n_devs; id++) {
        vma_runs_free(w->devs[id]->written);
        g_free(w->devs[id]->name);
        g_free(w->devs[id]);
    }
    g_free(w->ext);
    g_free(w->iov);
    g_free(w);
}
