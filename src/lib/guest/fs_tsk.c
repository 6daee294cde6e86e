/* fs_tsk.c - the file systems of The Sleuth Kit (NTFS, FAT, exFAT, HFS+,
 * ISO 9660, UFS), in the process, over a volume through
 * tsk_img_open_external: TSK gives the folders, inodes, links and the
 * files' content (NTFS compression and resident data included).  ext2/3/4
 * and XFS are read by fs_ext.c and fs_xfs.c.  TSK is not thread-safe on one
 * file system: every call holds the lock.
 *
 * libtsk is loaded (dlopen) the first time such a file system is opened:
 * it brings 40 libraries with it (libstdc++, libewf, libafflib, libcurl,
 * GnuTLS...), which every vma command would otherwise load at start (0.03 s
 * and 9 MiB more for `vma --version`).  The headers are those of the
 * libtsk-dev it was built with; VMA_TSK_SONAME names the same library. */
#define _GNU_SOURCE
#include "guest/guest.h"

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <tsk/libtsk.h>

#ifndef VMA_TSK_SONAME
#define VMA_TSK_SONAME "libtsk.so.19"
#endif

/* the functions of libtsk used here, found by dlsym */
static struct {
    TSK_IMG_INFO *(*img_open_external)(void *, TSK_OFF_T, unsigned int,
                                       ssize_t (*)(TSK_IMG_INFO *, TSK_OFF_T, char *, size_t),
                                       void (*)(TSK_IMG_INFO *), void (*)(TSK_IMG_INFO *, FILE *));
    void (*img_close)(TSK_IMG_INFO *);
    TSK_FS_INFO *(*fs_open_img)(TSK_IMG_INFO *, TSK_OFF_T, TSK_FS_TYPE_ENUM);
    void (*fs_close)(TSK_FS_INFO *);
    const char *(*error_get)(void);
    void (*error_reset)(void);
    TSK_FS_FILE *(*file_open_meta)(TSK_FS_INFO *, TSK_FS_FILE *, TSK_INUM_T);
    void (*file_close)(TSK_FS_FILE *);
    const TSK_FS_ATTR *(*file_attr_get_type)(TSK_FS_FILE *, TSK_FS_ATTR_TYPE_ENUM, uint16_t, uint8_t);
    ssize_t (*attr_read)(const TSK_FS_ATTR *, TSK_OFF_T, char *, size_t, TSK_FS_FILE_READ_FLAG_ENUM);
    TSK_FS_DIR *(*dir_open_meta)(TSK_FS_INFO *, TSK_INUM_T);
    size_t (*dir_getsize)(const TSK_FS_DIR *);
    const TSK_FS_NAME *(*dir_get_name)(const TSK_FS_DIR *, size_t);
    void (*dir_close)(TSK_FS_DIR *);
    ssize_t (*file_read)(TSK_FS_FILE *, TSK_OFF_T, char *, size_t, TSK_FS_FILE_READ_FLAG_ENUM);
} T;
static char *tsk_load_error;
static void *tsk_handle;

/* unloaded at exit, after every file system was closed (valgrind counts
 * the loader's own allocations as lost otherwise) */
__attribute__((destructor)) static void unload_tsk(void)
{
    if (tsk_handle)
        dlclose(tsk_handle);
    tsk_handle = NULL;
    g_free(tsk_load_error);
    tsk_load_error = NULL;
}

#define tsk_img_open_external T.img_open_external
#define tsk_img_close T.img_close
#define tsk_fs_open_img T.fs_open_img
#define tsk_fs_close T.fs_close
#define tsk_error_get T.error_get
#define tsk_error_reset T.error_reset
#define tsk_fs_file_open_meta T.file_open_meta
#define tsk_fs_file_close T.file_close
#define tsk_fs_file_attr_get_type T.file_attr_get_type
#define tsk_fs_attr_read T.attr_read
#define tsk_fs_dir_open_meta T.dir_open_meta
#define tsk_fs_dir_getsize T.dir_getsize
#define tsk_fs_dir_get_name T.dir_get_name
#define tsk_fs_dir_close T.dir_close
#define tsk_fs_file_read T.file_read

static gpointer load_tsk(gpointer unused)
{
    (void)unused;
    void *h = dlopen(VMA_TSK_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        tsk_load_error = g_strdup_printf("The Sleuth Kit (%s) cannot be loaded: %s (Debian: apt-get "
                                         "install libtsk19)", VMA_TSK_SONAME, dlerror());
        return NULL;
    }
    void **slots[] = {(void **)&T.img_open_external, (void **)&T.img_close, (void **)&T.fs_open_img,
                      (void **)&T.fs_close, (void **)&T.error_get, (void **)&T.error_reset,
                      (void **)&T.file_open_meta, (void **)&T.file_close,
                      (void **)&T.file_attr_get_type, (void **)&T.attr_read,
                      (void **)&T.dir_open_meta, (void **)&T.dir_getsize, (void **)&T.dir_get_name,
                      (void **)&T.dir_close, (void **)&T.file_read};
    static const char *const names[] = {
        "tsk_img_open_external", "tsk_img_close", "tsk_fs_open_img", "tsk_fs_close",
        "tsk_error_get", "tsk_error_reset", "tsk_fs_file_open_meta", "tsk_fs_file_close",
        "tsk_fs_file_attr_get_type", "tsk_fs_attr_read", "tsk_fs_dir_open_meta",
        "tsk_fs_dir_getsize", "tsk_fs_dir_get_name", "tsk_fs_dir_close", "tsk_fs_file_read"};
    for (unsigned i = 0; i < G_N_ELEMENTS(names); i++) {
        void *f = dlsym(h, names[i]);
        if (!f) {
            tsk_load_error = g_strdup_printf("The Sleuth Kit (%s) has no %s: another version than "
                                             "the one vma was built with", VMA_TSK_SONAME, names[i]);
            memset(&T, 0, sizeof(T));
            dlclose(h);
            return NULL;
        }
        *slots[i] = f;
    }
    tsk_handle = h;
    return &T;
}

static gboolean tsk_loaded;

static void load_tsk_once(void)
{
    tsk_loaded = load_tsk(NULL) != NULL;
}

static gboolean have_tsk(GError **err)
{
    /* pthread_once, not g_once: a hand-off ThreadSanitizer sees */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, load_tsk_once);
    if (tsk_loaded)
        return TRUE;
    g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, tsk_load_error);
    return FALSE;
}

typedef struct {
    TSK_IMG_INFO img;     /* first: TSK gives this pointer back */
    vma_volume *v;
    char *last_error;     /* of the last read that failed (under the lock) */
} vimg;

typedef struct {
    vimg *img;
    TSK_FS_INFO *fs;
    vma_mutex lock;
    gboolean unix_modes;  /* the file system keeps Unix modes and owners */
} tsk_priv;

static ssize_t img_read(TSK_IMG_INFO *img, TSK_OFF_T off, char *buf, size_t len)
{
    vimg *vi = (vimg *)img;
    if (off < 0)
        return -1;
    GError *e = NULL;
    ssize_t got = vma_volume_pread(vi->v, buf, len, (uint64_t)off, &e);
    if (got < 0) {
        g_free(vi->last_error);
        vi->last_error = g_strdup(e->message);
        g_error_free(e);
    }
    return got;
}

static void img_close(TSK_IMG_INFO *img)
{
    vimg *vi = (vimg *)img;
    vma_volume_free(vi->v);
    g_free(vi->last_error);
    g_free(vi);
}

static void img_stat(TSK_IMG_INFO *img, FILE *f)
{
    (void)img;
    (void)f;
}

/* the error of the TSK call that just failed, as a GError */
static void tsk_fail(tsk_priv *t, GError **err, const char *what)
{
    if (t && t->img->last_error) {
        g_set_error(err, VMA_ERROR, VMA_ERR_MISSING, "%s: %s", what, t->img->last_error);
        g_free(t->img->last_error);
        t->img->last_error = NULL;
    } else {
        const char *m = tsk_error_get();
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "%s: %s", what,
                    m && *m ? m : "the file system is damaged");
    }
    tsk_error_reset();
}

static TSK_FS_TYPE_ENUM tsk_type(const char *type)
{
    if (g_str_has_prefix(type, "ext"))
        return TSK_FS_TYPE_EXT_DETECT;
    if (strcmp(type, "vfat") == 0)
        return TSK_FS_TYPE_FAT_DETECT;
    if (strcmp(type, "exfat") == 0)
        return TSK_FS_TYPE_EXFAT;
    if (strcmp(type, "ntfs") == 0)
        return TSK_FS_TYPE_NTFS_DETECT;
    if (strcmp(type, "hfsplus") == 0)
        return TSK_FS_TYPE_HFS_DETECT;
    if (strcmp(type, "iso9660") == 0)
        return TSK_FS_TYPE_ISO9660_DETECT;
    if (strcmp(type, "ufs") == 0)
        return TSK_FS_TYPE_FFS_DETECT;
    return TSK_FS_TYPE_DETECT;
}

/* the NTFS volume name ($Volume, attribute $VOLUME_NAME) */
static char *ntfs_label(TSK_FS_INFO *fs)
{
    TSK_FS_FILE *f = tsk_fs_file_open_meta(fs, NULL, 3);
    if (!f) {
        tsk_error_reset();
        return NULL;
    }
    char *label = NULL;
    const TSK_FS_ATTR *a = tsk_fs_file_attr_get_type(f, (TSK_FS_ATTR_TYPE_ENUM)0x60, 0, 0);
    if (a && a->size > 0 && a->size <= 256) {
        char buf[256];
        ssize_t n = tsk_fs_attr_read(a, 0, buf, (size_t)a->size, TSK_FS_FILE_READ_FLAG_NONE);
        if (n > 0)
            label = g_utf16_to_utf8((const gunichar2 *)buf, n / 2, NULL, NULL, NULL);
    }
    tsk_error_reset();
    tsk_fs_file_close(f);
    return label;
}

static int t_open(vma_fs *fs, GError **err)
{
    if (!have_tsk(err))
        return -1;
    vimg *vi = g_new0(vimg, 1);
    vi->v = vma_volume_ref(fs->v);
    if (!tsk_img_open_external(vi, (TSK_OFF_T)vma_volume_size(fs->v), 512, img_read, img_close,
                               img_stat)) {
        tsk_fail(NULL, err, "The Sleuth Kit");
        img_close(&vi->img);
        return -1;
    }
    tsk_priv *t = g_new0(tsk_priv, 1);
    t->img = vi;
    t->fs = tsk_fs_open_img(&vi->img, 0, tsk_type(fs->type));
    if (!t->fs) {
        char *what = g_strdup_printf("cannot open the %s file system", fs->type);
        tsk_fail(t, err, what);
        g_free(what);
        tsk_img_close(&vi->img);
        g_free(t);
        return -1;
    }
    vma_mutex_init(&t->lock);
    t->unix_modes = strcmp(fs->type, "ufs") == 0 || strcmp(fs->type, "hfsplus") == 0;
    fs->priv = t;
    fs->root = t->fs->root_inum;
    fs->case_insensitive = !t->unix_modes || strcmp(fs->type, "hfsplus") == 0;
    if (strcmp(fs->type, "ntfs") == 0)
        fs->label = ntfs_label(t->fs);
    return 0;
}

static void t_close(vma_fs *fs)
{
    tsk_priv *t = fs->priv;
    tsk_fs_close(t->fs);
    tsk_img_close(&t->img->img);
    vma_mutex_clear(&t->lock);
    g_free(t);
}

static vma_ftype meta_type(TSK_FS_META_TYPE_ENUM m)
{
    switch (m) {
    case TSK_FS_META_TYPE_REG: return VMA_FT_FILE;
    case TSK_FS_META_TYPE_DIR: return VMA_FT_DIR;
    case TSK_FS_META_TYPE_LNK: return VMA_FT_LINK;
    case TSK_FS_META_TYPE_CHR: return VMA_FT_CHR;
    case TSK_FS_META_TYPE_BLK: return VMA_FT_BLK;
    case TSK_FS_META_TYPE_FIFO: return VMA_FT_FIFO;
    case TSK_FS_META_TYPE_SOCK: return VMA_FT_SOCK;
    default: return VMA_FT_UNKNOWN;
    }
}

static vma_ftype name_type(TSK_FS_NAME_TYPE_ENUM n)
{
    switch (n) {
    case TSK_FS_NAME_TYPE_REG: return VMA_FT_FILE;
    case TSK_FS_NAME_TYPE_DIR: return VMA_FT_DIR;
    case TSK_FS_NAME_TYPE_LNK: return VMA_FT_LINK;
    case TSK_FS_NAME_TYPE_CHR: return VMA_FT_CHR;
    case TSK_FS_NAME_TYPE_BLK: return VMA_FT_BLK;
    case TSK_FS_NAME_TYPE_FIFO: return VMA_FT_FIFO;
    case TSK_FS_NAME_TYPE_SOCK: return VMA_FT_SOCK;
    default: return VMA_FT_UNKNOWN;
    }
}

static void fill_stat(tsk_priv *t, const TSK_FS_META *m, vma_stat *st)
{
    st->type = meta_type(m->type);
    st->mode = (uint32_t)m->mode & 07777;
    if (!t->unix_modes || (st->mode == 0 && st->type != VMA_FT_LINK))
        st->mode = st->type == VMA_FT_DIR ? 0755 : 0644;
    if (t->unix_modes) {
        st->uid = (uint32_t)m->uid;
        st->gid = (uint32_t)m->gid;
    }
    st->nlink = m->nlink > 0 ? (uint32_t)m->nlink : 1;
    st->size = m->size > 0 ? (uint64_t)m->size : 0;
    st->blocks = (st->size + 4095) / 4096 * 8; /* TSK does not tell: as if not sparse */
    st->mtime = m->mtime;
    st->mtime_ns = m->mtime_nano < 1000000000u ? m->mtime_nano : 0;
    st->atime = m->atime;
    st->atime_ns = m->atime_nano < 1000000000u ? m->atime_nano : 0;
    st->ctime = m->ctime;
    st->ctime_ns = m->ctime_nano < 1000000000u ? m->ctime_nano : 0;
    st->btime = m->crtime;
    st->btime_ns = m->crtime_nano < 1000000000u ? m->crtime_nano : 0;
}

/* the file of inode ino, opened under the lock; NULL with err */
static TSK_FS_FILE *open_meta(tsk_priv *t, uint64_t ino, GError **err)
{
    TSK_FS_FILE *f = tsk_fs_file_open_meta(t->fs, NULL, (TSK_INUM_T)ino);
    if (!f || !f->meta) {
        char *what = g_strdup_printf("inode %" G_GUINT64_FORMAT, ino);
        tsk_fail(t, err, what);
        g_free(what);
        if (f)
            tsk_fs_file_close(f);
        return NULL;
    }
    return f;
}

static int t_stat(vma_fs *fs, uint64_t ino, vma_stat *st, GError **err)
{
    tsk_priv *t = fs->priv;
    vma_mutex_lock(&t->lock);
    TSK_FS_FILE *f = open_meta(t, ino, err);
    if (f) {
        fill_stat(t, f->meta, st);
        tsk_fs_file_close(f);
    }
    vma_mutex_unlock(&t->lock);
    return f ? 0 : -1;
}

/* NTFS's metadata files ($MFT, $Bitmap, ...: the first 16 records) and
 * the folders and files TSK makes up ($OrphanFiles, $FAT1...) are not the
 * guest's files */
static gboolean hidden(const vma_fs *fs, const tsk_priv *t, const TSK_FS_NAME *n)
{
    if (n->type == TSK_FS_NAME_TYPE_VIRT || n->type == TSK_FS_NAME_TYPE_VIRT_DIR)
        return TRUE;
    if (n->meta_addr > t->fs->last_inum || n->meta_addr < t->fs->first_inum)
        return TRUE;
    if (strcmp(fs->type, "ntfs") == 0 && n->meta_addr < 16 && n->name && n->name[0] == '$')
        return TRUE;
    /* the volume label of FAT, which TSK lists as a file */
    if (n->name && g_str_has_suffix(n->name, " (Volume Label Entry)") &&
        (strcmp(fs->type, "vfat") == 0 || strcmp(fs->type, "exfat") == 0))
        return TRUE;
    if (n->name && strcmp(n->name, "$OrphanFiles") == 0 &&
        n->meta_addr == TSK_FS_ORPHANDIR_INUM(t->fs))
        return TRUE;
    return FALSE;
}

static int t_readdir(vma_fs *fs, uint64_t ino, GArray *out, GError **err)
{
    tsk_priv *t = fs->priv;
    vma_mutex_lock(&t->lock);
    TSK_FS_DIR *d = tsk_fs_dir_open_meta(t->fs, (TSK_INUM_T)ino);
    if (!d) {
        tsk_fail(t, err, "cannot read the folder");
        vma_mutex_unlock(&t->lock);
        return -1;
    }
    size_t n = tsk_fs_dir_getsize(d);
    for (size_t i = 0; i < n; i++) {
        const TSK_FS_NAME *nm = tsk_fs_dir_get_name(d, i);
        if (!nm || !nm->name || !(nm->flags & TSK_FS_NAME_FLAG_ALLOC) || hidden(fs, t, nm))
            continue;
        vma_dirent e = {g_strdup(nm->name), nm->meta_addr, name_type(nm->type)};
        g_array_append_val(out, e);
    }
    tsk_fs_dir_close(d);
    tsk_error_reset();
    vma_mutex_unlock(&t->lock);
    return 0;
}

/* content read through TSK: the file stays open */
typedef struct {
    tsk_priv *t;
    TSK_FS_FILE *f;
    char *label;
} tsk_reader;

static ssize_t tsk_read_fn(void *ctx, void *buf, size_t n, uint64_t off, GError **err)
{
    tsk_reader *r = ctx;
    vma_mutex_lock(&r->t->lock);
    size_t done = 0;
    while (done < n) {
        ssize_t got = tsk_fs_file_read(r->f, (TSK_OFF_T)(off + done), (char *)buf + done, n - done,
                                       TSK_FS_FILE_READ_FLAG_NONE);
        if (got <= 0) {
            tsk_fail(r->t, err, "cannot read the file");
            vma_mutex_unlock(&r->t->lock);
            return -1;
        }
        done += (size_t)got;
    }
    vma_mutex_unlock(&r->t->lock);
    return (ssize_t)done;
}

static void tsk_read_close(void *ctx)
{
    tsk_reader *r = ctx;
    vma_mutex_lock(&r->t->lock);
    tsk_fs_file_close(r->f);
    vma_mutex_unlock(&r->t->lock);
    g_free(r);
}

static int t_content(vma_fs *fs, uint64_t ino, const vma_stat *st, vma_content *c, GError **err)
{
    (void)st;
    tsk_priv *t = fs->priv;
    vma_mutex_lock(&t->lock);
    TSK_FS_FILE *f = open_meta(t, ino, err);
    if (!f) {
        vma_mutex_unlock(&t->lock);
        return -1;
    }
    tsk_reader *r = g_new0(tsk_reader, 1);
    *r = (tsk_reader){.t = t, .f = f};
    vma_content_reader(c, tsk_read_fn, tsk_read_close, r);
    vma_mutex_unlock(&t->lock);
    return 0;
}

static char *t_readlink(vma_fs *fs, uint64_t ino, const vma_stat *st, GError **err)
{
    tsk_priv *t = fs->priv;
    vma_mutex_lock(&t->lock);
    TSK_FS_FILE *f = open_meta(t, ino, err);
    char *link = NULL;
    if (f && f->meta->link && f->meta->link[0])
        link = g_strndup(f->meta->link, st->size ? st->size : strlen(f->meta->link));
    if (f)
        tsk_fs_file_close(f);
    vma_mutex_unlock(&t->lock);
    if (link || !f)
        return link;
    /* a target kept in blocks (TSK only reads those of block-mapped links) */
    vma_content c = {0};
    if (t_content(fs, ino, st, &c, err) < 0)
        return NULL;
    link = g_malloc0(st->size + 1);
    ssize_t got;
    if (c.extents) {
        /* read through the extents with the common reader's rules */
        got = 0;
        uint64_t at = 0;
        for (guint i = 0; i < c.extents->len && at < st->size; i++) {
            const vma_extent_map *e = &g_array_index(c.extents, vma_extent_map, i);
            if (e->loff >= st->size || e->phys == VMA_EXTENT_HOLE)
                continue;
            size_t want = (size_t)MIN(e->len, st->size - e->loff);
            if (vma_volume_read_exact(fs->v, link + e->loff, want, e->phys, "a symbolic link", err) < 0) {
                got = -1;
                break;
            }
            at = e->loff + want;
        }
        g_array_free(c.extents, TRUE);
    } else {
        got = c.read(c.ctx, link, st->size, 0, err);
        c.close(c.ctx);
    }
    if (got < 0) {
        g_free(link);
        return NULL;
    }
    link[st->size] = 0;
    return link;
}

const vma_fs_ops vma_fs_tsk_ops = {
    .name = "tsk", .open = t_open, .stat = t_stat, .readdir = t_readdir,
    .readlink = t_readlink, .content = t_content, .close = t_close,
};
