/* access.c - random access to the disks of an archive: an archive opened
 * with its index (built, or loaded from the cache), reads at any offset of
 * any device, and the map of what is data, zero or missing. */
#define _GNU_SOURCE
#include "access/access.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct vma_archive {
    gint refs;            /* vma_archive_ref / vma_archive_free */
    int fd;
    vma_src *src;
    vma_reader *r;        /* the header (its data is never read again) */
    vma_index *ix;
    char *cache_path;     /* where the index was read or written, or NULL */
    gboolean from_cache;
};

/* size and modification time of the file, and the stream's size: a cache
 * made for another version of the file does not match */
static void make_stamp(int fd, const vma_src *src, uint8_t stamp[32])
{
    struct stat st;
    memset(stamp, 0, 32);
    if (fstat(fd, &st) < 0)
        return;
    uint64_t v[4] = {(uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
                     (uint64_t)st.st_mtim.tv_nsec, vma_src_size(src)};
    memcpy(stamp, v, 32);
}

/* the default limit of the spill file of a seekable .vma.zst */
#define SPILL_BYTES ((uint64_t)4 << 30)

char *vma_cache_dir(void)
{
    const char *x = g_getenv("XDG_CACHE_HOME");
    if (x && *x == '/')
        return g_build_filename(x, "vma", NULL);
    const char *home = g_getenv("HOME");
    if (home && *home == '/')
        return g_build_filename(home, ".cache", "vma", NULL);
    return NULL;
}

static char *cache_file(const vma_archive_opts *o, const vma_header *h)
{
    char *dir = o && o->cache_dir ? g_strdup(o->cache_dir) : vma_cache_dir();
    if (!dir)
        return NULL;
    char u[37];
    vma_uuid_format(h->uuid, u);
    char *name = g_strdup_printf("%s.idx", u);
    char *path = g_build_filename(dir, name, NULL);
    g_free(name);
    g_free(dir);
    return path;
}

static vma_index *load_or_build(vma_archive *a, const vma_archive_opts *o, GError **err)
{
    const vma_header *h = vma_reader_header(a->r);
    uint8_t stamp[32];
    make_stamp(a->fd, a->src, stamp);
    if (o->cache != VMA_CACHE_OFF)
        a->cache_path = cache_file(o, h);
    if (a->cache_path) {
        vma_index *ix = vma_index_load(a->cache_path, h, stamp, NULL);
        if (ix) {
            a->from_cache = TRUE;
            return ix;
        }
    }
    double start = vma_now();
    vma_index *ix = vma_index_build(a->r, vma_src_size(a->src), o->progress, o->ud, err);
    if (!ix)
        return NULL;
    /* keep what was slow to make: a compressed archive's, or a big one's */
    gboolean worth = vma_src_compression(a->src) != VMA_COMPRESS_NONE || vma_now() - start > 0.5;
    if (a->cache_path && (o->cache == VMA_CACHE_ON || worth)) {
        char *dir = g_path_get_dirname(a->cache_path);
        if (g_mkdir_with_parents(dir, 0700) == 0)
            vma_index_save(ix, a->cache_path, stamp, NULL); /* a cache: best effort */
        g_free(dir);
    }
    return ix;
}

/* the spill file of a seekable .vma.zst: the caller's limit, else
 * $VMA_SPILL_MB (0: none), else SPILL_BYTES; in spill_dir, else $TMPDIR,
 * else /var/tmp (not /tmp, often a tmpfs in memory) */
static void enable_spill(vma_src *src, const vma_archive_opts *o)
{
    int64_t limit = o->spill;
    const char *env = g_getenv("VMA_SPILL_MB");
    if (limit == 0 && env && *env) {
        char *end;
        gint64 mb = g_ascii_strtoll(env, &end, 10);
        limit = *end || mb < 0 ? 0 : mb == 0 ? -1 : mb << 20;
    }
    if (limit < 0)
        return;
    const char *tmp = g_getenv("TMPDIR");
    const char *dir = o->spill_dir ? o->spill_dir : tmp && *tmp ? tmp : "/var/tmp";
    vma_src_enable_spill(src, dir, limit ? (uint64_t)limit : SPILL_BYTES);
}

vma_archive *vma_archive_open(const char *path, const vma_archive_opts *o, GError **err)
{
    if (strcmp(path, "-") == 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_NOT_SEEKABLE,
                    "random access needs an archive file, not standard input");
        return NULL;
    }
    static const vma_archive_opts defaults = {0};
    if (!o)
        o = &defaults;
    vma_archive *a = g_new0(vma_archive, 1);
    a->refs = 1;
    a->fd = vma_open_archive_fd(path, err);
    if (a->fd < 0) {
        g_free(a);
        return NULL;
    }
    GError *e = NULL;
    a->src = vma_src_open(a->fd, &e);
    if (a->src && o->frame_cache)
        vma_src_set_cache(a->src, o->frame_cache);
    if (a->src)
        a->r = vma_reader_open_src(a->src, &e);
    if (a->r)
        a->ix = load_or_build(a, o, &e);
    if (a->ix)
        enable_spill(a->src, o);
    if (!a->ix) {
        if (e && e->code == VMA_ERR_NOT_SEEKABLE) {
            /* say how to make it readable at random */
            g_set_error(err, VMA_ERROR, VMA_ERR_NOT_SEEKABLE,
                        "%s: %s; 'vma recompress %s NEW.vma.zst' makes a seekable copy", path,
                        e->message, path);
            g_error_free(e);
        } else {
            g_propagate_prefixed_error(err, e, "%s: ", path);
        }
        vma_archive_free(a);
        return NULL;
    }
    return a;
}

vma_src *vma_archive_src(vma_archive *a) { return a->src; }

vma_archive *vma_archive_ref(vma_archive *a)
{
    g_atomic_int_inc(&a->refs);
    return a;
}

void vma_archive_free(vma_archive *a)
{
    if (!a || !g_atomic_int_dec_and_test(&a->refs))
        return;
    vma_index_free(a->ix);
    vma_reader_free(a->r);
    vma_src_free(a->src);
    if (a->fd >= 0)
        close(a->fd);
    g_free(a->cache_path);
    g_free(a);
}

const vma_header *vma_archive_header(const vma_archive *a) { return vma_reader_header(a->r); }
vma_reader *vma_archive_reader(const vma_archive *a) { return a->r; }
vma_compress vma_archive_compression(const vma_archive *a) { return vma_src_compression(a->src); }
gboolean vma_archive_from_cache(const vma_archive *a) { return a->from_cache; }
uint64_t vma_archive_index_memory(const vma_archive *a) { return vma_index_memory(a->ix); }

static const vma_device *device(const vma_archive *a, uint8_t dev_id, GError **err)
{
    const vma_device *d = vma_archive_header(a)->devices[dev_id];
    if (!d)
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "no device with id %u", dev_id);
    return d;
}

uint64_t vma_archive_device_length(const vma_archive *a, uint8_t dev_id)
{
    const vma_device *d = vma_archive_header(a)->devices[dev_id];
    if (!d)
        return 0;
    if (!d->is_vmstate)
        return d->size;
    /* the vmstate stream ends with its last cluster (its size is a bound) */
    return MIN(vma_index_end(a->ix, dev_id), d->size);
}

int vma_archive_map(vma_archive *a, uint8_t dev_id, uint64_t off, uint64_t len,
                    vma_piece_fn fn, void *ud, GError **err)
{
    if (!device(a, dev_id, err))
        return -1;
    /* the walk fails only when fn stops it */
    return vma_index_walk(a->ix, dev_id, vma_archive_device_length(a, dev_id), off, len, TRUE,
                          fn, ud) < 0 ? 1 : 0;
}

typedef struct {
    vma_archive *a;
    const vma_device *d;
    uint8_t *buf;
    uint64_t off;         /* of buf[0] */
    GError **err;
} read_ctx;

static int read_piece(const vma_piece *p, void *ud)
{
    read_ctx *c = ud;
    uint8_t *dst = c->buf + (p->offset - c->off);
    if (p->kind == VMA_PIECE_ZERO) {
        memset(dst, 0, p->length);
        return 0;
    }
    if (p->kind == VMA_PIECE_MISSING) {
        g_set_error(c->err, VMA_ERROR, VMA_ERR_MISSING,
                    "'%s' bytes %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT
                    " are not in the archive (it is incomplete)", c->d->name, p->offset,
                    p->offset + p->length - 1);
        return -1;
    }
    ssize_t got = vma_src_pread(c->a->src, dst, p->length, p->data_offset, c->err);
    if (got < 0)
        return -1;
    if ((uint64_t)got < p->length) {
        g_set_error(c->err, VMA_ERROR, VMA_ERR_INCOMPLETE, "the archive ends early");
        return -1;
    }
    return 0;
}

ssize_t vma_archive_pread(vma_archive *a, uint8_t dev_id, void *buf, size_t n, uint64_t off,
                          GError **err)
{
    const vma_device *d = device(a, dev_id, err);
    if (!d)
        return -1;
    uint64_t size = vma_archive_device_length(a, dev_id);
    if (off >= size)
        return 0;
    n = (size_t)MIN((uint64_t)n, size - off);
    read_ctx c = {a, d, buf, off, err};
    if (vma_index_walk(a->ix, dev_id, size, off, n, FALSE, read_piece, &c) < 0)
        return -1;
    return (ssize_t)n;
}
