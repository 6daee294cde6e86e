/* fs.c - what every guest file system shares: opening one by its probed
 * type, folders read once and kept (a bounded cache, sorted for lookups),
 * paths resolved with symbolic links followed inside the file system,
 * files read and mapped through their extents, and depth-first walks that
 * neither loop nor go deeper than VMA_WALK_MAX_DEPTH.  The readers
 * (fs_ext.c, fs_xfs.c, fs_tsk.c) only give inodes, folders, links and
 * extents. */
#define _GNU_SOURCE
#include "guest/guest.h"

#include <string.h>

#define MAX_CACHED_NAMES  (1u << 19)  /* folder entries kept at most */
#define MAX_LINKS         40u         /* symbolic links followed in one path */
#define MAX_COMPONENTS    4096u       /* components of a path, links included */
#define MAX_LINK_SIZE     65536u      /* bytes of a link target */

struct vma_dir {
    gint refs;
    uint64_t ino;
    GArray *ents;         /* vma_dirent, names owned */
    size_t skipped;
};

static const struct {
    const char *type;
    const vma_fs_ops *ops;
} readers[] = {
    {"ext2", &vma_fs_ext_ops},  {"ext3", &vma_fs_ext_ops},    {"ext4", &vma_fs_ext_ops},
    {"vfat", &vma_fs_tsk_ops},  {"exfat", &vma_fs_tsk_ops},   {"ntfs", &vma_fs_tsk_ops},
    {"hfsplus", &vma_fs_tsk_ops}, {"iso9660", &vma_fs_tsk_ops}, {"ufs", &vma_fs_tsk_ops},
    {"xfs", &vma_fs_xfs_ops},
};

static const vma_fs_ops *reader_for(const char *type)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(readers); i++)
        if (strcmp(readers[i].type, type) == 0)
            return readers[i].ops;
    return NULL;
}

gboolean vma_fs_supported(const char *type) { return type && reader_for(type) != NULL; }

static void dir_unref(vma_dir *d)
{
    if (!d || !g_atomic_int_dec_and_test(&d->refs))
        return;
    for (guint i = 0; i < d->ents->len; i++)
        g_free((char *)g_array_index(d->ents, vma_dirent, i).name);
    g_array_free(d->ents, TRUE);
    g_free(d);
}

vma_fs *vma_fs_open(vma_volume *v, const char *type, GError **err)
{
    vma_probe p;
    if (vma_volume_probe(v, &p, err) < 0)
        return NULL;
    if (!type)
        type = p.type;
    const vma_fs_ops *ops = reader_for(type);
    if (!ops) {
        if (*type)
            g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                        "the volume holds %s, which the in-process reader cannot read", type);
        else
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT,
                                "the volume holds no file system that the in-process reader knows");
        return NULL;
    }
    vma_fs *fs = g_new0(vma_fs, 1);
    fs->refs = 1;
    fs->ops = ops;
    fs->v = vma_volume_ref(v);
    g_strlcpy(fs->type, type, sizeof(fs->type));
    vma_mutex_init(&fs->lock);
    fs->dirs = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, (GDestroyNotify)dir_unref);
    if (ops->open(fs, err) < 0) {
        g_hash_table_destroy(fs->dirs);
        vma_mutex_clear(&fs->lock);
        vma_volume_free(fs->v);
        g_free(fs);
        return NULL;
    }
    if (!fs->label)
        fs->label = g_strdup(strcmp(type, p.type) == 0 ? p.label : "");
    return fs;
}

vma_fs *vma_fs_ref(vma_fs *fs)
{
    g_atomic_int_inc(&fs->refs);
    return fs;
}

void vma_fs_free(vma_fs *fs)
{
    if (!fs || !g_atomic_int_dec_and_test(&fs->refs))
        return;
    g_hash_table_destroy(fs->dirs);
    fs->ops->close(fs);
    vma_mutex_clear(&fs->lock);
    vma_volume_free(fs->v);
    g_free(fs->label);
    g_free(fs);
}

const char *vma_fs_type(const vma_fs *fs) { return fs->type; }
const char *vma_fs_label(const vma_fs *fs) { return fs->label ? fs->label : ""; }
uint64_t vma_fs_root(const vma_fs *fs) { return fs->root; }
gboolean vma_fs_case_insensitive(const vma_fs *fs) { return fs->case_insensitive; }

int vma_fs_stat(vma_fs *fs, uint64_t ino, vma_stat *st, GError **err)
{
    memset(st, 0, sizeof(*st));
    if (fs->ops->stat(fs, ino, st, err) < 0)
        return -1;
    st->ino = ino;
    return 0;
}

/* ---- folders ---- */

static int cmp_dirent(const void *a, const void *b)
{
    return strcmp(((const vma_dirent *)a)->name, ((const vma_dirent *)b)->name);
}

static vma_dir *read_dir(vma_fs *fs, uint64_t ino, GError **err)
{
    GArray *raw = g_array_new(FALSE, TRUE, sizeof(vma_dirent));
    if (fs->ops->readdir(fs, ino, raw, err) < 0) {
        for (guint i = 0; i < raw->len; i++)
            g_free((char *)g_array_index(raw, vma_dirent, i).name);
        g_array_free(raw, TRUE);
        return NULL;
    }
    vma_dir *d = g_new0(vma_dir, 1);
    d->refs = 1;
    d->ino = ino;
    d->ents = g_array_sized_new(FALSE, TRUE, sizeof(vma_dirent), raw->len);
    for (guint i = 0; i < raw->len; i++) {
        vma_dirent *e = &g_array_index(raw, vma_dirent, i);
        const char *n = e->name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0) {
            g_free((char *)n);
            continue;
        }
        if (!*n || strchr(n, '/')) {
            d->skipped++;
            g_free((char *)n);
            continue;
        }
        g_array_append_val(d->ents, *e);
    }
    g_array_free(raw, TRUE);
    if (d->ents->len > 1)
        qsort(d->ents->data, d->ents->len, sizeof(vma_dirent), cmp_dirent);
    /* the same name twice (a damaged folder): the first is kept */
    guint w = 0;
    for (guint i = 0; i < d->ents->len; i++) {
        vma_dirent *e = &g_array_index(d->ents, vma_dirent, i);
        if (w && strcmp(g_array_index(d->ents, vma_dirent, w - 1).name, e->name) == 0) {
            g_free((char *)e->name);
            d->skipped++;
            continue;
        }
        g_array_index(d->ents, vma_dirent, w++) = *e;
    }
    g_array_set_size(d->ents, w);
    return d;
}

vma_dir *vma_fs_opendir(vma_fs *fs, uint64_t ino, GError **err)
{
    vma_mutex_lock(&fs->lock);
    vma_dir *d = g_hash_table_lookup(fs->dirs, &ino);
    if (d)
        g_atomic_int_inc(&d->refs);
    vma_mutex_unlock(&fs->lock);
    if (d)
        return d;
    vma_stat st;
    if (vma_fs_stat(fs, ino, &st, err) < 0)
        return NULL;
    if (st.type != VMA_FT_DIR) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_NOT_FOUND, "not a folder");
        return NULL;
    }
    d = read_dir(fs, ino, err);
    if (!d)
        return NULL;
    vma_mutex_lock(&fs->lock);
    vma_dir *other = g_hash_table_lookup(fs->dirs, &ino);
    if (other) {
        /* another thread read it meanwhile: keep one */
        g_atomic_int_inc(&other->refs);
        vma_mutex_unlock(&fs->lock);
        dir_unref(d);
        return other;
    }
    if (fs->dir_names + d->ents->len > MAX_CACHED_NAMES) {
        g_hash_table_remove_all(fs->dirs);
        fs->dir_names = 0;
    }
    if (d->ents->len <= MAX_CACHED_NAMES) {
        g_atomic_int_inc(&d->refs);
        g_hash_table_insert(fs->dirs, &d->ino, d);
        fs->dir_names += d->ents->len;
    }
    vma_mutex_unlock(&fs->lock);
    return d;
}

size_t vma_dir_count(const vma_dir *d) { return d->ents->len; }
size_t vma_dir_skipped(const vma_dir *d) { return d->skipped; }

const vma_dirent *vma_dir_entry(const vma_dir *d, size_t i)
{
    return i < d->ents->len ? &g_array_index(d->ents, vma_dirent, i) : NULL;
}

void vma_dir_free(vma_dir *d) { dir_unref(d); }

static gboolean same_fold(const char *a, const char *b)
{
    if (g_ascii_strcasecmp(a, b) == 0)
        return TRUE;
    if (!g_utf8_validate(a, -1, NULL) || !g_utf8_validate(b, -1, NULL))
        return FALSE;
    char *fa = g_utf8_casefold(a, -1), *fb = g_utf8_casefold(b, -1);
    gboolean same = strcmp(fa, fb) == 0;
    g_free(fa);
    g_free(fb);
    return same;
}

/* the entry named name in d, or NULL */
static const vma_dirent *dir_find(const vma_fs *fs, const vma_dir *d, const char *name)
{
    vma_dirent key = {name, 0, 0};
    const vma_dirent *e = d->ents->len ? bsearch(&key, d->ents->data, d->ents->len,
                                                 sizeof(vma_dirent), cmp_dirent) : NULL;
    if (e || !fs->case_insensitive)
        return e;
    for (guint i = 0; i < d->ents->len; i++) {
        const vma_dirent *c = &g_array_index(d->ents, vma_dirent, i);
        if (same_fold(c->name, name))
            return c;
    }
    return NULL;
}

int vma_fs_lookup_at(vma_fs *fs, uint64_t dir_ino, const char *name, vma_stat *st, GError **err)
{
    vma_dir *d = vma_fs_opendir(fs, dir_ino, err);
    if (!d)
        return -1;
    const vma_dirent *e = dir_find(fs, d, name);
    uint64_t ino = e ? e->ino : 0;
    vma_dir_free(d);
    if (!e) {
        g_set_error(err, VMA_ERROR, VMA_ERR_NOT_FOUND, "no such file or folder");
        return -1;
    }
    return vma_fs_stat(fs, ino, st, err);
}

char *vma_fs_readlink(vma_fs *fs, uint64_t ino, GError **err)
{
    vma_stat st;
    if (vma_fs_stat(fs, ino, &st, err) < 0)
        return NULL;
    if (st.type != VMA_FT_LINK) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_ARG, "not a symbolic link");
        return NULL;
    }
    if (st.size > MAX_LINK_SIZE) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "a symbolic link of %" G_GUINT64_FORMAT
                    " bytes (damaged)", st.size);
        return NULL;
    }
    char *t = fs->ops->readlink(fs, ino, &st, err);
    if (t && (strlen(t) > MAX_LINK_SIZE || !*t)) {
        g_free(t);
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "a symbolic link with an empty or damaged target");
        return NULL;
    }
    return t;
}

/* push the components of path in front of q, in order */
static void push_front_path(GQueue *q, const char *path)
{
    char **parts = g_strsplit(path, "/", -1);
    guint n = g_strv_length(parts);
    for (guint i = n; i > 0; i--) {
        if (parts[i - 1][0] == 0 || strcmp(parts[i - 1], ".") == 0)
            g_free(parts[i - 1]);
        else
            g_queue_push_head(q, parts[i - 1]);
    }
    g_free(parts);
}

int vma_fs_lookup(vma_fs *fs, const char *path, gboolean follow, vma_stat *st, GError **err)
{
    GQueue q = G_QUEUE_INIT;
    push_front_path(&q, path);
    GArray *stack = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    g_array_append_val(stack, fs->root);
    unsigned links = 0, steps = 0;
    int rc = -1;
    char *comp;
    vma_stat cur;
    if (vma_fs_stat(fs, fs->root, &cur, err) < 0)
        goto out;
    while ((comp = g_queue_pop_head(&q))) {
        if (++steps > MAX_COMPONENTS + MAX_LINKS * 64) {
            g_free(comp);
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_ARG, "the path is too long");
            goto out;
        }
        if (strcmp(comp, "..") == 0) {
            g_free(comp);
            if (stack->len > 1)
                g_array_set_size(stack, stack->len - 1);
            if (vma_fs_stat(fs, g_array_index(stack, uint64_t, stack->len - 1), &cur, err) < 0)
                goto out;
            continue;
        }
        if (cur.type != VMA_FT_DIR) {
            g_free(comp);
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_NOT_FOUND, "not a folder");
            goto out;
        }
        vma_stat child;
        int r = vma_fs_lookup_at(fs, cur.ino, comp, &child, err);
        g_free(comp);
        if (r < 0)
            goto out;
        if (child.type == VMA_FT_LINK && (!g_queue_is_empty(&q) || follow)) {
            if (++links > MAX_LINKS) {
                g_set_error_literal(err, VMA_ERROR, VMA_ERR_NOT_FOUND,
                                    "too many levels of symbolic links");
                goto out;
            }
            char *target = vma_fs_readlink(fs, child.ino, err);
            if (!target)
                goto out;
            if (target[0] == '/') {
                g_array_set_size(stack, 1);
                if (vma_fs_stat(fs, fs->root, &cur, err) < 0) {
                    g_free(target);
                    goto out;
                }
            }
            push_front_path(&q, target);
            g_free(target);
            continue;
        }
        g_array_append_val(stack, child.ino);
        cur = child;
    }
    *st = cur;
    rc = 0;
out:
    g_queue_clear_full(&q, g_free);
    g_array_free(stack, TRUE);
    return rc;
}

/* ---- files ---- */

struct vma_file {
    vma_fs *fs;
    uint64_t ino;
    uint64_t size;
    vma_content c;
};

gboolean vma_extent_add(GArray *out, uint64_t loff, uint64_t len, uint64_t phys, GError **err)
{
    if (len == 0)
        return TRUE;
    if (out->len) {
        vma_extent_map *l = &g_array_index(out, vma_extent_map, out->len - 1);
        if (l->loff + l->len == loff &&
            ((l->phys == VMA_EXTENT_HOLE && phys == VMA_EXTENT_HOLE) ||
             (l->phys != VMA_EXTENT_HOLE && phys != VMA_EXTENT_HOLE && l->phys + l->len == phys))) {
            l->len += len;
            return TRUE;
        }
    }
    if (out->len >= VMA_MAX_EXTENTS) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "the file has more than %u extents (damaged?)",
                    VMA_MAX_EXTENTS);
        return FALSE;
    }
    vma_extent_map e = {loff, len, phys};
    g_array_append_val(out, e);
    return TRUE;
}

static int cmp_extent(const void *a, const void *b)
{
    const vma_extent_map *x = a, *y = b;
    return x->loff < y->loff ? -1 : x->loff > y->loff;
}

gboolean vma_extents_check(GArray *ext, uint64_t vol_size, GError **err)
{
    if (ext->len > 1)
        qsort(ext->data, ext->len, sizeof(vma_extent_map), cmp_extent);
    for (guint i = 0; i < ext->len; i++) {
        const vma_extent_map *e = &g_array_index(ext, vma_extent_map, i);
        if (e->loff + e->len < e->loff) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "an extent of the file overflows");
            return FALSE;
        }
        if (e->phys != VMA_EXTENT_HOLE && (e->phys > vol_size || e->len > vol_size - e->phys)) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT,
                                "an extent of the file lies past the end of the file system");
            return FALSE;
        }
        if (i && g_array_index(ext, vma_extent_map, i - 1).loff +
                         g_array_index(ext, vma_extent_map, i - 1).len > e->loff) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "two extents of the file overlap");
            return FALSE;
        }
    }
    return TRUE;
}

vma_ftype vma_mode_type(uint32_t mode)
{
    switch (mode & 0170000) {
    case 0100000: return VMA_FT_FILE;
    case 0040000: return VMA_FT_DIR;
    case 0120000: return VMA_FT_LINK;
    case 0020000: return VMA_FT_CHR;
    case 0060000: return VMA_FT_BLK;
    case 0010000: return VMA_FT_FIFO;
    case 0140000: return VMA_FT_SOCK;
    default: return VMA_FT_UNKNOWN;
    }
}

void vma_fs_damaged(GError **err, const char *name, const char *what)
{
    g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "the %s file system is damaged: %s", name, what);
}

int vma_fs_read_super(vma_fs *fs, void *sb, size_t len, uint64_t off, const char *name,
                      GError **err)
{
    char *what = g_strdup_printf("the %s superblock", name);
    int rc = vma_volume_read_exact(fs->v, sb, len, off, what, err);
    g_free(what);
    return rc;
}

/* ---- a content held in memory ---- */

typedef struct {
    uint8_t *data;
    size_t len;
} bytes_content;

static ssize_t bytes_read(void *ctx, void *buf, size_t n, uint64_t off, GError **err)
{
    (void)err;
    bytes_content *d = ctx;
    if (off >= d->len)
        return 0;
    size_t take = MIN(n, d->len - (size_t)off);
    memcpy(buf, d->data + off, take);
    return (ssize_t)take;
}

static void bytes_close(void *ctx)
{
    bytes_content *d = ctx;
    g_free(d->data);
    g_free(d);
}

void vma_content_reader(vma_content *c, ssize_t (*read)(void *, void *, size_t, uint64_t, GError **),
                        void (*close)(void *), void *ctx)
{
    c->read = read;
    c->close = close;
    c->ctx = ctx;
}

void vma_content_bytes(vma_content *c, uint8_t *data, size_t len)
{
    bytes_content *d = g_new(bytes_content, 1);
    *d = (bytes_content){data, len};
    vma_content_reader(c, bytes_read, bytes_close, d);
}

int vma_content_extents(vma_content *c, vma_extents_fill_fn fill, vma_fs *fs, const uint8_t *in,
                        uint64_t size, GError **err)
{
    c->extents = g_array_new(FALSE, FALSE, sizeof(vma_extent_map));
    if (fill(fs, in, size, c->extents, err) == 0)
        return 0;
    g_array_free(c->extents, TRUE);
    c->extents = NULL;
    return -1;
}

vma_file *vma_fs_open_file(vma_fs *fs, uint64_t ino, GError **err)
{
    vma_stat st;
    if (vma_fs_stat(fs, ino, &st, err) < 0)
        return NULL;
    if (st.type == VMA_FT_DIR) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_ARG, "is a folder");
        return NULL;
    }
    if (st.type != VMA_FT_FILE && st.type != VMA_FT_LINK) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_ARG, "not a regular file");
        return NULL;
    }
    vma_file *f = g_new0(vma_file, 1);
    f->ino = ino;
    f->size = st.size;
    if (st.size > 0 && fs->ops->content(fs, ino, &st, &f->c, err) < 0) {
        g_free(f);
        return NULL;
    }
    if (f->c.extents && !vma_extents_check(f->c.extents, vma_volume_size(fs->v), err)) {
        g_array_free(f->c.extents, TRUE);
        g_free(f);
        return NULL;
    }
    f->fs = vma_fs_ref(fs);
    return f;
}

uint64_t vma_file_size(const vma_file *f) { return f->size; }

/* the first extent ending after off */
static guint extent_from(const GArray *ext, uint64_t off)
{
    guint lo = 0, hi = ext->len;
    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        const vma_extent_map *e = &g_array_index(ext, vma_extent_map, mid);
        if (e->loff + e->len <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

ssize_t vma_file_pread(vma_file *f, void *buf, size_t n, uint64_t off, GError **err)
{
    if (off >= f->size || n == 0)
        return 0;
    if (n > f->size - off)
        n = (size_t)(f->size - off);
    if (!f->c.extents)
        return f->c.read(f->c.ctx, buf, n, off, err);
    uint8_t *p = buf;
    uint64_t end = off + n, at = off;
    const GArray *ext = f->c.extents;
    for (guint i = extent_from(ext, off); at < end; i++) {
        const vma_extent_map *e = i < ext->len ? &g_array_index(ext, vma_extent_map, i) : NULL;
        uint64_t next = e ? MIN(end, e->loff) : end;
        if (at < next) { /* a hole before the extent */
            memset(p + (at - off), 0, next - at);
            at = next;
        }
        if (!e || at >= end)
            break;
        uint64_t s1 = MIN(end, e->loff + e->len);
        if (e->phys == VMA_EXTENT_HOLE) {
            memset(p + (at - off), 0, s1 - at);
        } else {
            size_t want = (size_t)(s1 - at);
            ssize_t got = vma_volume_pread(f->fs->v, p + (at - off), want,
                                           e->phys + (at - e->loff), err);
            if (got < 0)
                return -1;
            if ((size_t)got < want) {
                g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT,
                                    "an extent of the file lies past the end of the volume");
                return -1;
            }
        }
        at = s1;
    }
    return (ssize_t)n;
}

typedef struct {
    vma_piece_fn fn;
    void *ud;
    vma_piece pending;
    gboolean have;
    int64_t shift;        /* file offset - volume offset */
} fmap;

static int fmap_emit(fmap *m, vma_piece_kind kind, uint64_t off, uint64_t len)
{
    if (len == 0)
        return 0;
    if (m->have && m->pending.kind == kind && m->pending.offset + m->pending.length == off) {
        m->pending.length += len;
        return 0;
    }
    if (m->have && m->fn(&m->pending, m->ud))
        return 1;
    m->pending = (vma_piece){kind, off, len, 0};
    m->have = TRUE;
    return 0;
}

static int fmap_vol(const vma_piece *p, void *ud)
{
    fmap *m = ud;
    return fmap_emit(m, p->kind, (uint64_t)((int64_t)p->offset + m->shift), p->length);
}

int vma_file_map(vma_file *f, uint64_t off, uint64_t len, vma_piece_fn fn, void *ud, GError **err)
{
    if (off >= f->size || len == 0)
        return 0;
    uint64_t end = len > f->size - off ? f->size : off + len;
    fmap m = {fn, ud, {0}, FALSE, 0};
    if (!f->c.extents) {
        if (fmap_emit(&m, VMA_PIECE_DATA, off, end - off))
            return 1;
    } else {
        const GArray *ext = f->c.extents;
        uint64_t at = off;
        for (guint i = extent_from(ext, off); at < end; i++) {
            const vma_extent_map *e = i < ext->len ? &g_array_index(ext, vma_extent_map, i) : NULL;
            uint64_t next = e ? MIN(end, e->loff) : end;
            if (at < next) {
                if (fmap_emit(&m, VMA_PIECE_ZERO, at, next - at))
                    return 1;
                at = next;
            }
            if (!e || at >= end)
                break;
            uint64_t s1 = MIN(end, e->loff + e->len);
            if (e->phys == VMA_EXTENT_HOLE) {
                if (fmap_emit(&m, VMA_PIECE_ZERO, at, s1 - at))
                    return 1;
            } else {
                uint64_t vo = e->phys + (at - e->loff);
                m.shift = (int64_t)at - (int64_t)vo;
                int r = vma_volume_map(f->fs->v, vo, s1 - at, fmap_vol, &m, err);
                if (r < 0)
                    return -1;
                if (r > 0)
                    return 1;
            }
            at = s1;
        }
    }
    if (m.have && fn(&m.pending, ud))
        return 1;
    return 0;
}

void vma_file_free(vma_file *f)
{
    if (!f)
        return;
    if (f->c.extents)
        g_array_free(f->c.extents, TRUE);
    if (f->c.close)
        f->c.close(f->c.ctx);
    vma_fs_free(f->fs);
    g_free(f);
}

/* ---- walks ---- */

typedef struct {
    vma_dir *d;
    size_t i;
    size_t prefix;        /* length of the path of this folder (with its '/') */
} frame;

struct vma_walk {
    vma_fs *fs;
    GArray *stack;        /* frame */
    GString *path;
    GHashTable *seen;     /* folders entered: ino -> 1 */
    gboolean pending;     /* the entry last given is a folder to enter */
    uint64_t pending_ino;
    size_t pending_len;   /* its path's length */
    unsigned depth;
};

vma_walk *vma_fs_walk(vma_fs *fs, uint64_t ino, GError **err)
{
    vma_dir *d = vma_fs_opendir(fs, ino, err);
    if (!d)
        return NULL;
    vma_walk *w = g_new0(vma_walk, 1);
    w->fs = vma_fs_ref(fs);
    w->stack = g_array_new(FALSE, FALSE, sizeof(frame));
    w->path = g_string_new(NULL);
    w->seen = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    uint64_t *k = g_new(uint64_t, 1);
    *k = ino;
    g_hash_table_add(w->seen, k);
    frame f = {d, 0, 0};
    g_array_append_val(w->stack, f);
    return w;
}

void vma_walk_prune(vma_walk *w) { w->pending = FALSE; }
unsigned vma_walk_depth(const vma_walk *w) { return w->depth; }

int vma_walk_next(vma_walk *w, const char **path, vma_stat *st, GError **err)
{
    if (w->pending) {
        w->pending = FALSE;
        if (w->stack->len < VMA_WALK_MAX_DEPTH && !g_hash_table_contains(w->seen, &w->pending_ino)) {
            g_string_truncate(w->path, w->pending_len);
            vma_dir *d = vma_fs_opendir(w->fs, w->pending_ino, err);
            if (!d) {
                *path = w->path->str;
                return -1;
            }
            uint64_t *k = g_new(uint64_t, 1);
            *k = w->pending_ino;
            g_hash_table_add(w->seen, k);
            g_string_append_c(w->path, '/');
            frame f = {d, 0, w->path->len};
            g_array_append_val(w->stack, f);
        }
    }
    while (w->stack->len) {
        frame *f = &g_array_index(w->stack, frame, w->stack->len - 1);
        if (f->i >= vma_dir_count(f->d)) {
            vma_dir_free(f->d);
            g_array_set_size(w->stack, w->stack->len - 1);
            continue;
        }
        const vma_dirent *e = vma_dir_entry(f->d, f->i++);
        g_string_truncate(w->path, f->prefix);
        g_string_append(w->path, e->name);
        *path = w->path->str;
        w->depth = w->stack->len;
        if (vma_fs_stat(w->fs, e->ino, st, err) < 0)
            return -1;
        if (st->type == VMA_FT_DIR) {
            w->pending = TRUE;
            w->pending_ino = e->ino;
            w->pending_len = w->path->len;
        }
        return 1;
    }
    return 0;
}

void vma_walk_free(vma_walk *w)
{
    if (!w)
        return;
    for (guint i = 0; i < w->stack->len; i++)
        vma_dir_free(g_array_index(w->stack, frame, i).d);
    g_array_free(w->stack, TRUE);
    g_string_free(w->path, TRUE);
    g_hash_table_destroy(w->seen);
    vma_fs_free(w->fs);
    g_free(w);
}
