/* archive.c - one open archive: its file, its identity, its header, and
 * every view of it (a stream for verify and extract, reads at any offset of
 * any device).
 *
 * Opening reads the header only.  The first view that needs them makes the
 * rest, once, on the same file:
 *
 *   - a stream (vma_archive_stream): the reader that read the header when
 *     nothing else took it, else a new one on the same file (the same inode,
 *     through /proc/self/fd, never the path again) whose header must be the
 *     same bytes;
 *   - random access: for a plain .vma or a seekable .vma.zst, the index of
 *     the extents (built in one pass over their headers, or loaded from the
 *     cache folder); for an archive that can only be read in order, a
 *     decoded copy in the cache folder (cache.c), made by a background
 *     decoder (decoder.c) while reads of what it has decoded are answered
 *     at once and a read ahead of it waits for it.
 *
 * Every cache is keyed by the archive's identity (the header's MD5 and the
 * file's device, inode, size, mtime and ctime) and checked against it when
 * loaded.  A decoded copy found damaged by a read is removed and made
 * again. */
#define _GNU_SOURCE
#include "access/access.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the default limit of the spill file of a seekable .vma.zst */
#define SPILL_BYTES ((uint64_t)4 << 30)
/* an index cache is at most this large (a 1 TiB disk's is about 40 MiB) */
#define MAX_INDEX_FILE ((uint64_t)1 << 30)
/* a decoded copy may need this much room before it is compacted: the
 * stream's size, bounded by the archive's times a worst ratio */
#define ROOM_FACTOR 4

typedef enum { RA_NONE = 0, RA_INDEX, RA_DECODER } ra_mode;

struct vma_archive {
    gint refs;            /* vma_archive_ref / vma_archive_free */
    int fd;
    char *label;          /* the path, for messages */
    gboolean pipe;        /* not a file: one pass only */
    vma_compress codec;
    vma_identity id;
    char key[33];
    GByteArray *raw_header;
    vma_header *h;
    vma_archive_opts o;
    char *cache_dir, *spill_dir;

    vma_mutex lock;          /* everything below */
    vma_reader *pending;  /* the header's reader, positioned after it, not taken */
    vma_src *file_src;    /* random reads of the file (plain, seekable zstd) */
    ra_mode mode;
    GError *prep_err;     /* why random access is impossible */
    /* RA_INDEX: a complete index over src (the file, or the decoded copy) */
    vma_src *src;
    vma_index *ix;
    gboolean from_cache;
    /* RA_DECODER: the copy being made */
    vma_decoder *dec;
    gboolean rebuilt;     /* a damaged copy was made again (once) */
    /* what reads may still use after a switch or a rebuild, freed last */
    GPtrArray *old_srcs;  /* vma_src * */
    GPtrArray *old_decs;  /* vma_decoder * */
    GArray *fds;          /* descriptors of the copies */
};

static void set_opts(vma_archive *a, const vma_archive_opts *o)
{
    static const vma_archive_opts defaults = {0};
    a->o = o ? *o : defaults;
    a->cache_dir = a->o.cache_dir ? g_strdup(a->o.cache_dir) : vma_cache_dir();
    const char *tmp = g_getenv("TMPDIR");
    a->spill_dir = g_strdup(a->o.spill_dir ? a->o.spill_dir : tmp && *tmp ? tmp : "/var/tmp");
    a->o.cache_dir = a->cache_dir;
    a->o.spill_dir = a->spill_dir;
}

/* a second descriptor of the same open file with an offset of its own */
static int reopen_fd(int fd, GError **err)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    int nfd = open(p, O_RDONLY | O_CLOEXEC);
    if (nfd >= 0) {
        struct stat a, b;
        if (fstat(fd, &a) == 0 && fstat(nfd, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino)
            return nfd;
        close(nfd);
    }
    g_set_error(err, VMA_ERROR, VMA_ERR_IO,
                "cannot open the archive a second time (is /proc mounted?)");
    return -1;
}

/* a new streaming reader of the same file, checked to hold the same header */
static vma_reader *new_stream(vma_archive *a, GError **err)
{
    if (a->pipe) {
        g_set_error(err, VMA_ERROR, VMA_ERR_NOT_SEEKABLE,
                    "%s is a stream and was read already: it can be read only once", a->label);
        return NULL;
    }
    int fd = reopen_fd(a->fd, err);
    if (fd < 0)
        return NULL;
    vma_reader *r = vma_reader_open_fd(fd, err);
    if (!r)
        return NULL;
    size_t len;
    const uint8_t *raw = vma_reader_raw_header(r, &len);
    if (len != a->raw_header->len || memcmp(raw, a->raw_header->data, len) != 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "%s changed since it was opened", a->label);
        vma_reader_free(r);
        return NULL;
    }
    return r;
}

vma_archive *vma_archive_open_fd(int fd, const char *label, const vma_archive_opts *o,
                                 GError **err)
{
    vma_archive *a = g_new0(vma_archive, 1);
    a->refs = 1;
    a->fd = fd;
    a->label = g_strdup(label ? label : "the archive");
    a->old_srcs = g_ptr_array_new();
    a->old_decs = g_ptr_array_new();
    a->fds = g_array_new(FALSE, FALSE, sizeof(int));
    vma_mutex_init(&a->lock);
    set_opts(a, o);
    GError *e = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        vma_set_errno(&e, errno, "stat failed");
        goto fail;
    }
    a->pipe = !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode);
    vma_reader *r = NULL;
    if (!a->pipe) {
        /* read at random when the file allows it (a plain .vma, a seekable
         * .vma.zst whose frames have checksums); one zstd stream, gzip,
         * lzop, frames without checksums are read as a stream, and at
         * random through a copy; a broken seek table is refused */
        GError *re = NULL;
        a->file_src = vma_src_open(fd, &re);
        if (a->file_src) {
            if (a->o.frame_cache)
                vma_src_set_cache(a->file_src, a->o.frame_cache);
            r = vma_reader_open_src(a->file_src, &re);
        }
        if (!r && !a->file_src && re && re->code == VMA_ERR_FORMAT) {
            /* a seek table that is there but broken: the stream may be
             * fine (verify and extract never use the table), random access
             * is refused with the reason */
            a->prep_err = g_error_copy(re);
            g_prefix_error(&a->prep_err, "%s: ", a->label);
            g_clear_error(&re);
            int sfd = reopen_fd(fd, &e);
            if (sfd >= 0)
                r = vma_reader_open_fd(sfd, &e);
        } else if (!r && re && re->code == VMA_ERR_NOT_SEEKABLE) {
            g_clear_error(&re);
            vma_src_free(a->file_src);
            a->file_src = NULL;
            int sfd = reopen_fd(fd, &e);
            if (sfd >= 0)
                r = vma_reader_open_fd(sfd, &e);
        } else if (!r) {
            g_propagate_error(&e, re);
        }
    } else {
        int sfd = dup(fd);
        if (sfd < 0)
            vma_set_errno(&e, errno, "dup failed");
        else
            r = vma_reader_open_fd(sfd, &e);
    }
    if (!r)
        goto fail;
    a->pending = r;
    a->codec = a->file_src ? vma_src_compression(a->file_src) : vma_reader_compression(r);
    a->h = vma_header_copy(vma_reader_header(r));
    size_t len;
    const uint8_t *raw = vma_reader_raw_header(r, &len);
    a->raw_header = g_byte_array_sized_new((guint)len);
    g_byte_array_append(a->raw_header, raw, (guint)len);
    if (!vma_identity_of(fd, raw + 32, &a->id, &e))
        goto fail;
    vma_identity_key(&a->id, a->key);
    return a;
fail:
    if (e && e->code == VMA_ERR_IO && label && !strstr(e->message, label))
        g_prefix_error(&e, "%s: ", label);
    g_propagate_error(err, e);
    vma_archive_free(a);
    return NULL;
}

vma_archive *vma_archive_open(const char *path, const vma_archive_opts *o, GError **err)
{
    int fd = vma_open_archive_fd(path, err);
    if (fd < 0) {
        if (o && o->wait_ud_free)
            o->wait_ud_free(o->wait_ud); /* the archive took it, and is no more */
        return NULL;
    }
    return vma_archive_open_fd(fd, strcmp(path, "-") == 0 ? "standard input" : path, o, err);
}

vma_archive *vma_archive_ref(vma_archive *a)
{
    g_atomic_int_inc(&a->refs);
    return a;
}

void vma_archive_free(vma_archive *a)
{
    if (!a || !g_atomic_int_dec_and_test(&a->refs))
        return;
    vma_decoder_free(a->dec);
    for (guint i = 0; i < a->old_decs->len; i++)
        vma_decoder_free(g_ptr_array_index(a->old_decs, i));
    vma_index_free(a->ix);
    if (a->src != a->file_src)
        vma_src_free(a->src);
    for (guint i = 0; i < a->old_srcs->len; i++)
        vma_src_free(g_ptr_array_index(a->old_srcs, i));
    for (guint i = 0; i < a->fds->len; i++)
        close(g_array_index(a->fds, int, i));
    g_ptr_array_free(a->old_srcs, TRUE);
    g_ptr_array_free(a->old_decs, TRUE);
    g_array_free(a->fds, TRUE);
    vma_reader_free(a->pending);
    vma_src_free(a->file_src);
    if (a->fd >= 0)
        close(a->fd);
    vma_header_free(a->h);
    if (a->o.wait_ud_free)
        a->o.wait_ud_free(a->o.wait_ud);
    if (a->raw_header)
        g_byte_array_free(a->raw_header, TRUE);
    g_clear_error(&a->prep_err);
    vma_mutex_clear(&a->lock);
    g_free(a->label);
    g_free(a->cache_dir);
    g_free(a->spill_dir);
    g_free(a);
}

const vma_header *vma_archive_header(const vma_archive *a) { return a->h; }
vma_compress vma_archive_compression(const vma_archive *a) { return a->codec; }
const char *vma_archive_label(const vma_archive *a) { return a->label; }
gboolean vma_archive_is_stream(const vma_archive *a) { return a->pipe; }
gboolean vma_archive_seekable(const vma_archive *a) { return a->file_src != NULL; }

const uint8_t *vma_archive_raw_header(const vma_archive *a, size_t *len)
{
    *len = a->raw_header->len;
    return a->raw_header->data;
}

void vma_archive_header_md5(const vma_archive *a, uint8_t out[16])
{
    memcpy(out, a->id.header_md5, 16);
}

vma_reader *vma_archive_stream(vma_archive *a, GError **err)
{
    vma_mutex_lock(&a->lock);
    vma_reader *r = NULL;
    /* the header's reader when it streams the file (a src-based one is
     * kept for the index, and reads slower than a stream) */
    if (a->pending && !a->file_src) {
        r = a->pending;
        a->pending = NULL;
    }
    vma_mutex_unlock(&a->lock);
    return r ? r : new_stream(a, err);
}

/* ---- random access ---- */

static void enable_spill(vma_archive *a, vma_src *src)
{
    int64_t limit = a->o.spill;
    const char *env = g_getenv("VMA_SPILL_MB");
    if (limit == 0 && env && *env) {
        char *end;
        gint64 mb = g_ascii_strtoll(env, &end, 10);
        limit = *end || mb < 0 ? 0 : mb == 0 ? -1 : mb << 20;
    }
    if (limit >= 0)
        vma_src_enable_spill(src, a->spill_dir, limit ? (uint64_t)limit : SPILL_BYTES);
}

static gboolean use_cache(const vma_archive *a)
{
    return a->o.cache != VMA_CACHE_OFF && a->cache_dir && !a->pipe;
}

/* the index of a file read at random (locked): from the cache, or one pass */
static int prepare_index(vma_archive *a, vma_index_progress_fn progress, void *ud,
                         GError **err)
{
    uint8_t stamp[VMA_STAMP_SIZE];
    vma_identity_stamp(&a->id, vma_src_size(a->file_src), stamp);
    char *path = use_cache(a) ? vma_cache_path(a->cache_dir, a->key, ".idx") : NULL;
    vma_index *ix = path ? vma_index_load(path, a->h, stamp, NULL) : NULL;
    if (ix) {
        a->from_cache = TRUE;
        vma_cache_touch(a->cache_dir, a->key);
    } else {
        vma_reader *r = a->pending;
        a->pending = NULL;
        if (!r)
            r = vma_reader_open_src(a->file_src, err);
        double start = vma_now();
        ix = r ? vma_index_build(r, vma_src_size(a->file_src), progress, ud, err) : NULL;
        vma_reader_free(r);
        /* keep what was slow to make: a compressed archive's, or a big one's */
        gboolean worth = a->codec != VMA_COMPRESS_NONE || vma_now() - start > 0.5;
        if (ix && path && (a->o.cache == VMA_CACHE_ON || worth) &&
            vma_cache_prepare_dir(a->cache_dir, NULL) &&
            vma_index_save(ix, path, stamp, NULL) == 0) /* a cache: best effort */
            vma_cache_write_info(a->cache_dir, a->key, a->label, &a->id, a->codec, 0, NULL);
    }
    g_free(path);
    if (!ix)
        return -1;
    a->ix = ix;
    a->src = a->file_src;
    enable_spill(a, a->src);
    a->mode = RA_INDEX;
    return 0;
}

/* a complete decoded copy in the cache folder (locked): 1 found, 0 none */
static int load_copy(vma_archive *a)
{
    char *data = vma_cache_path(a->cache_dir, a->key, ".vma.zst");
    char *idx = vma_cache_path(a->cache_dir, a->key, ".idx");
    int fd = vma_cache_open_file(data, UINT64_MAX, NULL, NULL);
    vma_src *src = fd >= 0 ? vma_src_open(fd, NULL) : NULL;
    vma_index *ix = NULL;
    if (src) {
        uint8_t stamp[VMA_STAMP_SIZE];
        vma_identity_stamp(&a->id, vma_src_size(src), stamp);
        ix = vma_index_load(idx, a->h, stamp, NULL);
    }
    g_free(data);
    g_free(idx);
    if (!ix) {
        vma_src_free(src);
        if (fd >= 0)
            close(fd);
        return 0;
    }
    g_array_append_val(a->fds, fd); /* closed with the archive */
    if (a->o.frame_cache)
        vma_src_set_cache(src, a->o.frame_cache);
    enable_spill(a, src);
    a->src = src;
    a->ix = ix;
    a->from_cache = TRUE;
    a->mode = RA_INDEX;
    vma_cache_touch(a->cache_dir, a->key);
    return 1;
}

/* the file the copy is written to (locked): KEY.part in the cache folder
 * (with *lock_fd), or an unlinked file in the spill folder; -1 with err,
 * -2 when another process writes this archive's copy */
static int open_part(vma_archive *a, gboolean cached, int *lock_fd, GError **err)
{
    *lock_fd = -1;
    if (!cached) {
        int fd = open(a->spill_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
            char *t = g_build_filename(a->spill_dir, ".vma-copy-XXXXXX", NULL);
            fd = g_mkstemp_full(t, O_RDWR | O_CLOEXEC, 0600);
            if (fd >= 0)
                unlink(t);
            g_free(t);
        }
        if (fd < 0)
            vma_set_errno(err, errno, "cannot make a file for the decoded archive in %s",
                          a->spill_dir);
        return fd;
    }
    if (!vma_cache_prepare_dir(a->cache_dir, err))
        return -1;
    int lk = vma_cache_lock(a->cache_dir, a->key, FALSE, err);
    if (lk < 0)
        return lk;
    uint64_t stream = a->raw_header->len;
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++)
        if (a->h->devices[id])
            stream += vma_clusters(a->h->devices[id]->size) * (VMA_CLUSTER_SIZE + 16);
    uint64_t need = MIN(a->id.size * ROOM_FACTOR, stream);
    if (vma_cache_make_room(a->cache_dir, a->key, need, err) < 0) {
        close(lk);
        return -1;
    }
    char *part = vma_cache_path(a->cache_dir, a->key, ".part");
    unlink(part); /* a decoder that was killed: we hold the lock now */
    int fd = open(part, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        vma_set_errno(err, errno, "cannot create %s", part);
        close(lk);
    } else {
        *lock_fd = lk;
    }
    g_free(part);
    return fd;
}

/* start the decoder (locked); -2 when another process makes the copy */
static int start_decoder(vma_archive *a, GError **err)
{
    gboolean cached = use_cache(a);
    int lock_fd;
    int fd = open_part(a, cached, &lock_fd, err);
    if (fd < 0)
        return fd;
    vma_reader *r = a->pending;
    a->pending = NULL;
    if (!r)
        r = new_stream(a, err);
    if (!r) {
        close(fd);
        if (lock_fd >= 0) {
            char *part = vma_cache_path(a->cache_dir, a->key, ".part");
            unlink(part);
            g_free(part);
            close(lock_fd);
        }
        return -1;
    }
    a->dec = vma_decoder_start(r, fd, lock_fd, cached ? a->cache_dir : NULL, a->key, a->label,
                               &a->id, err);
    if (!a->dec)
        return -1;
    a->mode = RA_DECODER;
    return 0;
}

/* another vma makes this archive's copy: wait (unlocked) until it is done
 * (then use it) or gone (then make it here); FALSE when told to stop */
static gboolean wait_for_other(vma_archive *a)
{
    gboolean go_on = TRUE;
    char *part = vma_cache_path(a->cache_dir, a->key, ".part");
    for (;;) {
        if (vma_interrupted()) {
            go_on = FALSE;
            break;
        }
        int lk = vma_cache_lock(a->cache_dir, a->key, FALSE, NULL);
        if (lk >= 0) {
            close(lk);
            break;
        }
        if (a->o.wait) {
            struct stat st;
            vma_wait_info w = {0};
            w.input_total = a->id.size;
            w.input_done = stat(part, &st) == 0 ? (uint64_t)st.st_size : 0;
            w.other_process = TRUE;
            w.eta = -1;
            if (a->o.wait(&w, a->o.wait_ud) != 0) {
                go_on = FALSE;
                break;
            }
        }
        g_usleep(200 * 1000);
    }
    g_free(part);
    return go_on;
}

/* make random access ready (locked), once */
static int prepare(vma_archive *a, vma_index_progress_fn progress, void *ud, GError **err)
{
    for (;;) {
        if (a->mode != RA_NONE)
            return 0;
        if (a->prep_err) {
            g_propagate_error(err, g_error_copy(a->prep_err));
            return -1;
        }
        if (vma_interrupted()) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            return -1;
        }
        GError *e = NULL;
        int rc;
        if (a->file_src)
            rc = prepare_index(a, progress ? progress : a->o.progress, progress ? ud : a->o.ud, &e);
        else if (use_cache(a) && load_copy(a))
            rc = 0;
        else
            rc = start_decoder(a, &e);
        if (rc == -2) {
            g_clear_error(&e);
            vma_mutex_unlock(&a->lock);
            gboolean go_on = wait_for_other(a);
            vma_mutex_lock(&a->lock);
            if (!go_on) {
                g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED,
                            "interrupted while another vma decodes %s", a->label);
                return -1;
            }
            continue;
        }
        if (rc < 0) {
            /* an interrupt is no property of the archive: not kept, not
             * prefixed with its name */
            if (e->code == VMA_ERR_INTERRUPTED) {
                g_propagate_error(err, e);
                return -1;
            }
            a->prep_err = g_error_copy(e);
            g_propagate_prefixed_error(err, e, "%s: ", a->label);
            return -1;
        }
        return 0;
    }
}

int vma_archive_prepare_with(vma_archive *a, vma_index_progress_fn progress, void *ud,
                             GError **err)
{
    vma_mutex_lock(&a->lock);
    int rc = prepare(a, progress, ud, err);
    vma_mutex_unlock(&a->lock);
    return rc;
}

int vma_archive_prepare(vma_archive *a, GError **err)
{
    return vma_archive_prepare_with(a, NULL, NULL, err);
}

/* ---- views for a read ----
 *
 * A read takes, under the lock, references to what it needs (an index and
 * the source of the bytes), then reads without the lock. */
typedef struct {
    vma_index *ix;
    vma_src *src;         /* complete: the file or the copy */
    vma_decoder *dec;     /* or the copy being made (the archive keeps it) */
    uint64_t seq;
    gboolean done;        /* the decoder has ended: what is missing stays missing */
} view;

/* (locked) a decoder that ended well: read its copy as a seekable file */
static void switch_to_copy(vma_archive *a)
{
    vma_decode_status st;
    vma_decoder_status(a->dec, &st);
    if (!st.complete)
        return;
    const char *final = vma_decoder_final_path(a->dec);
    int fd = final ? vma_cache_open_file(final, UINT64_MAX, NULL, NULL)
                   : dup(vma_decoder_part_fd(a->dec));
    vma_src *src = fd >= 0 ? vma_src_open(fd, NULL) : NULL;
    if (!src) {
        if (fd >= 0)
            close(fd);
        return; /* the live reads go on */
    }
    g_array_append_val(a->fds, fd);
    if (a->o.frame_cache)
        vma_src_set_cache(src, a->o.frame_cache);
    enable_spill(a, src);
    uint64_t seq;
    gboolean done;
    a->ix = vma_decoder_index(a->dec, &seq, &done);
    a->src = src;
    a->mode = RA_INDEX;
    /* the decoder's thread has ended; it stays until the archive is freed
     * (a read may still use its live copy) */
}

static int get_view(vma_archive *a, view *v, GError **err)
{
    memset(v, 0, sizeof(*v));
    vma_mutex_lock(&a->lock);
    int rc = prepare(a, NULL, NULL, err);
    if (rc == 0 && a->mode == RA_DECODER) {
        v->ix = vma_decoder_index(a->dec, &v->seq, &v->done);
        if (v->done)
            switch_to_copy(a);
        if (a->mode == RA_DECODER) {
            v->dec = a->dec;
        } else {
            vma_index_free(v->ix);
            v->ix = NULL;
        }
    }
    if (rc == 0 && a->mode == RA_INDEX) {
        v->ix = vma_index_ref(a->ix);
        v->src = a->src;
        v->done = TRUE;
    }
    vma_mutex_unlock(&a->lock);
    return rc;
}

static void put_view(view *v)
{
    vma_index_free(v->ix);
    v->ix = NULL;
}

/* a damaged copy (a read of it failed its checks): remove it and make it
 * again, once; TRUE when the read may be tried again */
static gboolean rebuild(vma_archive *a, const view *v, const GError *e)
{
    if (!e || e->code != VMA_ERR_FORMAT || a->file_src)
        return FALSE;
    vma_mutex_lock(&a->lock);
    gboolean again = FALSE;
    if (!a->rebuilt && (a->src == v->src || a->dec == v->dec) && a->mode != RA_NONE) {
        a->rebuilt = TRUE;
        again = TRUE;
        /* another read may still use them: they go with the archive */
        if (a->mode == RA_INDEX) {
            vma_index_free(a->ix);
            a->ix = NULL;
            g_ptr_array_add(a->old_srcs, a->src);
            a->src = NULL;
        }
        if (a->dec) {
            g_ptr_array_add(a->old_decs, a->dec);
            a->dec = NULL;
        }
        a->mode = RA_NONE;
        if (use_cache(a))
            vma_cache_remove_key(a->cache_dir, a->key, FALSE, NULL);
    }
    vma_mutex_unlock(&a->lock);
    return again;
}

const vma_device *vma_archive_device(const vma_archive *a, uint8_t dev_id, GError **err)
{
    const vma_device *d = a->h->devices[dev_id];
    if (!d)
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "no device with id %u", dev_id);
    return d;
}

static uint64_t length_in(const vma_archive *a, const vma_index *ix, gboolean done, uint8_t dev_id)
{
    const vma_device *d = a->h->devices[dev_id];
    if (!d)
        return 0;
    if (!d->is_vmstate || !done)
        return d->size;
    /* the vmstate stream ends with its last cluster (its size is a bound) */
    return MIN(vma_index_end(ix, dev_id), d->size);
}

uint64_t vma_archive_device_length(vma_archive *a, uint8_t dev_id)
{
    const vma_device *d = a->h->devices[dev_id];
    if (!d)
        return 0;
    /* a disk's size is in the header; only a vmstate's length needs the
     * index, and asking for it starts nothing */
    vma_mutex_lock(&a->lock);
    gboolean ready = a->mode != RA_NONE;
    vma_mutex_unlock(&a->lock);
    view v;
    if (!d->is_vmstate || !ready || get_view(a, &v, NULL) < 0)
        return d->size;
    uint64_t n = length_in(a, v.ix, v.done, dev_id);
    put_view(&v);
    return n;
}

/* the pieces of a range, collected (a read does its I/O after the walk) */
typedef struct {
    GArray *pieces;
    gboolean missing;
} collect;

static int collect_piece(const vma_piece *p, void *ud)
{
    collect *c = ud;
    g_array_append_val(c->pieces, *p);
    c->missing |= p->kind == VMA_PIECE_MISSING;
    return 0;
}

/* a read that waits: tell the caller how far the decoder is; non-zero:
 * the caller wants to stop waiting */
static int report_wait(vma_archive *a, const view *v, uint8_t dev_id, uint64_t off)
{
    if (!a->o.wait)
        return 0;
    vma_decode_status st;
    vma_decoder_status(v->dec, &st);
    vma_wait_info w = {0};
    w.input_done = st.input_done;
    w.input_total = st.input_total;
    w.stream_done = st.stream_done;
    w.seconds = st.seconds;
    w.device = a->h->devices[dev_id] ? a->h->devices[dev_id]->name : NULL;
    w.offset = off;
    /* where it lies, guessed: devices in the order of their ids, each in order */
    uint64_t before = 0, all = 0;
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = a->h->devices[id];
        if (!d)
            continue;
        if (id < dev_id)
            before += d->size;
        all += d->size;
    }
    double frac = all ? (double)(before + off) / (double)all : 0;
    double rate = st.seconds > 0 ? (double)st.input_done / st.seconds : 0;
    double target = frac * (double)st.input_total;
    w.eta = rate > 0 && target > (double)st.input_done ? (target - (double)st.input_done) / rate
                                                        : -1;
    return a->o.wait(&w, a->o.wait_ud);
}

/* the pieces of [off, off + len) once the decoder has seen them all (or
 * ended): into *pieces, with the view they belong to */
static int walk_ready(vma_archive *a, uint8_t dev_id, uint64_t off, uint64_t len, gboolean by_kind,
                      view *v, GArray *pieces, GError **err)
{
    double last_report = 0;
    for (;;) {
        if (get_view(a, v, err) < 0)
            return -1;
        collect c = {pieces, FALSE};
        g_array_set_size(pieces, 0);
        uint64_t size = length_in(a, v->ix, v->done, dev_id);
        vma_index_walk(v->ix, dev_id, size, off, len, by_kind, collect_piece, &c);
        if (!c.missing || v->done)
            return 0;
        /* ahead of the decoder: wait for its next snapshot */
        double now = vma_now();
        if (now - last_report >= 0.2) {
            last_report = now;
            if (report_wait(a, v, dev_id, off) != 0) {
                put_view(v);
                g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted while waiting");
                return -1;
            }
        }
        uint64_t seq = v->seq;
        vma_decoder *dec = v->dec;
        put_view(v);
        if (vma_decoder_wait(dec, seq, 0.5) < 0) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            return -1;
        }
    }
}

static ssize_t read_at(const view *v, void *buf, size_t n, uint64_t off, GError **err)
{
    if (v->src)
        return vma_src_pread(v->src, buf, n, off, err);
    return vma_live_pread(vma_decoder_live(v->dec), buf, n, off, err);
}

static int read_pieces(vma_archive *a, const view *v, const GArray *pieces, uint8_t *buf,
                       uint64_t off, GError **err)
{
    for (guint i = 0; i < pieces->len; i++) {
        const vma_piece *p = &g_array_index(pieces, vma_piece, i);
        uint8_t *dst = buf + (p->offset - off);
        if (p->kind == VMA_PIECE_ZERO) {
            memset(dst, 0, p->length);
            continue;
        }
        if (p->kind == VMA_PIECE_MISSING) {
            GError *why = NULL;
            if (v->dec && vma_decoder_failure(v->dec, &why)) {
                g_propagate_prefixed_error(err, why, "%s: ", a->label);
                return -1;
            }
            g_set_error(err, VMA_ERROR, VMA_ERR_MISSING,
                        "bytes %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT
                        " are not in the archive (it is incomplete)", p->offset,
                        p->offset + p->length - 1);
            return -1;
        }
        ssize_t got = read_at(v, dst, p->length, p->data_offset, err);
        if (got < 0)
            return -1;
        if ((uint64_t)got < p->length) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE, "the archive ends early");
            return -1;
        }
    }
    return 0;
}

ssize_t vma_archive_pread(vma_archive *a, uint8_t dev_id, void *buf, size_t n, uint64_t off,
                          GError **err)
{
    const vma_device *d = vma_archive_device(a, dev_id, err);
    if (!d)
        return -1;
    GArray *pieces = g_array_new(FALSE, FALSE, sizeof(vma_piece));
    ssize_t ret = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        view v;
        GError *e = NULL;
        if (walk_ready(a, dev_id, off, n, FALSE, &v, pieces, &e) < 0) {
            g_propagate_error(err, e);
            break;
        }
        uint64_t size = length_in(a, v.ix, v.done, dev_id);
        size_t want = off >= size ? 0 : (size_t)MIN((uint64_t)n, size - off);
        int rc = read_pieces(a, &v, pieces, buf, off, &e);
        if (rc == 0) {
            put_view(&v);
            ret = (ssize_t)want;
            break;
        }
        gboolean again = attempt == 0 && rebuild(a, &v, e);
        put_view(&v);
        if (!again) {
            if (e && e->code == VMA_ERR_MISSING)
                g_prefix_error(&e, "'%s' ", d->name);
            g_propagate_error(err, e);
            break;
        }
        g_error_free(e);
    }
    g_array_free(pieces, TRUE);
    return ret;
}

int vma_archive_map(vma_archive *a, uint8_t dev_id, uint64_t off, uint64_t len,
                    vma_piece_fn fn, void *ud, GError **err)
{
    if (!vma_archive_device(a, dev_id, err))
        return -1;
    GArray *pieces = g_array_new(FALSE, FALSE, sizeof(vma_piece));
    view v;
    int rc = walk_ready(a, dev_id, off, len, TRUE, &v, pieces, err);
    if (rc == 0) {
        put_view(&v);
        for (guint i = 0; i < pieces->len; i++)
            if (fn(&g_array_index(pieces, vma_piece, i), ud) != 0) {
                rc = 1;
                break;
            }
    }
    g_array_free(pieces, TRUE);
    return rc;
}

void vma_archive_status(vma_archive *a, vma_access_status *st)
{
    memset(st, 0, sizeof(*st));
    vma_mutex_lock(&a->lock);
    st->seekable = a->file_src != NULL;
    st->from_cache = a->from_cache;
    st->ready = a->mode != RA_NONE;
    st->complete = a->mode == RA_INDEX;
    vma_decoder *dec = a->dec;
    if (a->ix)
        st->index_memory = vma_index_memory(a->ix);
    vma_mutex_unlock(&a->lock);
    if (dec) {
        vma_decode_status ds;
        vma_decoder_status(dec, &ds);
        st->decoding = !ds.done;
        st->input_done = ds.input_done;
        st->input_total = ds.input_total;
        st->stream_done = ds.stream_done;
        st->seconds = ds.seconds;
        st->complete = st->complete || ds.complete;
    }
}

int vma_archive_wait_complete(vma_archive *a, GError **err)
{
    if (vma_archive_prepare(a, err) < 0)
        return -1;
    for (;;) {
        view v;
        if (get_view(a, &v, err) < 0)
            return -1;
        gboolean done = v.done;
        uint64_t seq = v.seq;
        vma_decoder *dec = v.dec;
        put_view(&v);
        if (!dec) {
            return 0;
        }
        if (done) {
            GError *e = NULL;
            if (vma_decoder_failure(dec, &e)) {
                g_propagate_prefixed_error(err, e, "%s: ", a->label);
                return -1;
            }
            return 0;
        }
        if (a->o.wait) {
            view w = {0};
            w.dec = dec;
            if (report_wait(a, &w, 0, 0) != 0) {
                g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted while waiting");
                return -1;
            }
        }
        if (vma_decoder_wait(dec, seq, 0.2) < 0) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            return -1;
        }
    }
}

gboolean vma_archive_from_cache(const vma_archive *a)
{
    /* set by whichever thread prepared it, under the lock */
    vma_mutex_lock((vma_mutex *)&a->lock);
    gboolean c = a->from_cache;
    vma_mutex_unlock((vma_mutex *)&a->lock);
    return c;
}

uint64_t vma_archive_index_memory(vma_archive *a)
{
    vma_access_status st;
    vma_archive_status(a, &st);
    return st.index_memory;
}

vma_src *vma_archive_src(vma_archive *a)
{
    vma_mutex_lock(&a->lock);
    vma_src *s = a->src;
    vma_mutex_unlock(&a->lock);
    return s;
}

const char *vma_archive_key(const vma_archive *a) { return a->key; }

int vma_archive_wait_compacted(vma_archive *a, GError **err)
{
    vma_mutex_lock(&a->lock);
    vma_decoder *dec = a->dec;
    vma_mutex_unlock(&a->lock);
    if (dec && vma_decoder_wait_compacted(dec) < 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
        return -1;
    }
    return 0;
}

const GError *vma_archive_random_error(vma_archive *a)
{
    vma_mutex_lock(&a->lock);
    const GError *e = a->prep_err;
    vma_mutex_unlock(&a->lock);
    return e;
}
