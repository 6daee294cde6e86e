/* vma-fuse-files.c - the guest's files in an archive, read-only, through
 * FUSE (libfuse3), read in the process: what `vma mount --files` runs.
 *
 *   vma-fuse-files [-f] [-d] [-s] [-o OPTS] [--label NAME] [--expect MD5]
 *                  [--no-cache] --mount PATH TYPE SEGMENTS [--mount ...] ARCHIVE DIR
 *
 * Each --mount puts the file system of TYPE (ext4, xfs, ntfs, vfat...) on
 * the guest path PATH ("/" first); SEGMENTS is the volume that holds it,
 * ranges of the archive's disks laid end to end: DEV:OFFSET:LENGTH[,...]
 * (a partition is one range, an LVM logical volume one per segment).  The
 * decisions (which volumes, the root, /etc/fstab) are taken in Lua by
 * `vma mount --files`; this program only serves what it is told.
 *
 * Files show the guest's modes, owners and times; links are links (the
 * kernel follows them, as on any mount); files keep their holes
 * (SEEK_DATA/SEEK_HOLE).  `vma mount --files` opened the archive and every
 * file system of the plan before it runs this program; here the archive
 * is opened (its header) before the mount, and the file systems once the
 * mount is up, in the process that serves (after fuse_daemonize's fork:
 * reading an archive may start threads, a background decoder or a spill
 * writer, which a fork would leave behind; a failure then is EIO, and the
 * reason in syslog).  --expect MD5: the archive's header must be the one
 * the caller read.  Once ready the program goes to the background (-f
 * keeps it in the foreground), and `fusermount3 -u DIR` ends it.  Read
 * errors (a damaged file system, clusters the archive lacks) are EIO,
 * named in syslog. */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <unistd.h>

typedef struct {
    char *path;           /* "/", "/var", ... */
    char **comps;         /* its components */
    guint n;
    vma_fs *fs;
} gmount;

static vma_archive *archive;
static GPtrArray *mounts;   /* gmount, the longest path first (NULL: not opened) */

static char **split_path(const char *path, guint *n)
{
    char **raw = g_strsplit(path, "/", -1);
    GPtrArray *a = g_ptr_array_new();
    for (char **c = raw; *c; c++)
        if (**c && strcmp(*c, ".") != 0)
            g_ptr_array_add(a, g_strdup(*c));
    g_strfreev(raw);
    *n = a->len;
    g_ptr_array_add(a, NULL);
    return (char **)g_ptr_array_free(a, FALSE);
}

/* the mount serving path, and the path inside it (g_free) */
static gmount *mount_of(const char *path, char **rel)
{
    guint n;
    if (!mounts)
        return NULL;
    char **comps = split_path(path, &n);
    gmount *found = NULL;
    for (guint i = 0; i < mounts->len && !found; i++) {
        gmount *m = g_ptr_array_index(mounts, i);
        if (m->n > n)
            continue;
        gboolean match = TRUE;
        for (guint j = 0; j < m->n && match; j++)
            match = strcmp(m->comps[j], comps[j]) == 0;
        if (match) {
            found = m;
            GString *s = g_string_new("/");
            for (guint j = m->n; j < n; j++) {
                if (s->len > 1)
                    g_string_append_c(s, '/');
                g_string_append(s, comps[j]);
            }
            *rel = g_string_free(s, FALSE);
        }
    }
    g_strfreev(comps);
    return found;
}

/* is path a folder on the way to a mount point (that the file systems
 * may not have) */
static gboolean leads_to_mount(const char *path)
{
    guint n;
    if (!mounts)
        return FALSE;
    char **comps = split_path(path, &n);
    gboolean yes = FALSE;
    for (guint i = 0; i < mounts->len && !yes; i++) {
        gmount *m = g_ptr_array_index(mounts, i);
        if (m->n <= n)
            continue;
        gboolean match = TRUE;
        for (guint j = 0; j < n && match; j++)
            match = strcmp(m->comps[j], comps[j]) == 0;
        yes = match;
    }
    g_strfreev(comps);
    return yes;
}

static int errno_of(const GError *e)
{
    if (e->code == VMA_ERR_NOT_FOUND)
        return strstr(e->message, "not a folder") ? ENOTDIR : strstr(e->message, "levels") ? ELOOP : ENOENT;
    if (e->code == VMA_ERR_ARG)
        return ENOENT;
    return EIO;
}

static int fail(const char *path, GError *e)
{
    int r = errno_of(e);
    if (r == EIO)
        vf_say("%s: %s", path, e->message);
    g_error_free(e);
    return -r;
}

static void to_stat(const vma_stat *s, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    static const mode_t types[] = {S_IFREG, S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK};
    st->st_mode = types[s->type < G_N_ELEMENTS(types) ? s->type : 0] | (s->mode & 07777);
    st->st_ino = s->ino;
    st->st_nlink = s->nlink ? s->nlink : 1;
    st->st_uid = s->uid;
    st->st_gid = s->gid;
    st->st_size = (off_t)s->size;
    st->st_blksize = 1 << 20;
    st->st_blocks = (blkcnt_t)s->blocks;
    st->st_atim.tv_sec = (time_t)s->atime;
    st->st_atim.tv_nsec = s->atime_ns;
    st->st_mtim.tv_sec = (time_t)s->mtime;
    st->st_mtim.tv_nsec = s->mtime_ns;
    st->st_ctim.tv_sec = (time_t)s->ctime;
    st->st_ctim.tv_nsec = s->ctime_ns;
    if (s->type == VMA_FT_CHR || s->type == VMA_FT_BLK)
        st->st_rdev = makedev(s->rdev_major, s->rdev_minor);
}

/* ---- the file system ---- */

static int open_all(GError **err);

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    vf_init_config(conn, cfg); /* no use_ino: the file systems' inode numbers overlap */
    /* the file systems, in the process that serves */
    GError *e = NULL;
    if (open_all(&e) < 0) {
        vf_say("%s", e->message);
        g_error_free(e);
    }
    return NULL;
}

static int lookup(const char *path, gboolean follow, gmount **mo, vma_stat *vs)
{
    char *rel = NULL;
    gmount *m = mount_of(path, &rel);
    if (!m)
        return mounts ? -ENOENT : -EIO; /* nothing opened: see syslog */
    GError *e = NULL;
    int rc = vma_fs_lookup(m->fs, rel, follow, vs, &e);
    g_free(rel);
    if (rc < 0) {
        if (leads_to_mount(path)) {
            g_error_free(e);
            memset(vs, 0, sizeof(*vs));
            vs->type = VMA_FT_DIR;
            vs->mode = 0755;
            vs->nlink = 2;
            if (mo)
                *mo = NULL;
            return 0;
        }
        return fail(path, e);
    }
    if (mo)
        *mo = m;
    return 0;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    vma_stat vs;
    int rc = lookup(path, FALSE, NULL, &vs);
    if (rc < 0)
        return rc;
    to_stat(&vs, st);
    return 0;
}

static int fs_readlink(const char *path, char *buf, size_t size)
{
    gmount *m;
    vma_stat vs;
    int rc = lookup(path, FALSE, &m, &vs);
    if (rc < 0)
        return rc;
    if (!m || vs.type != VMA_FT_LINK)
        return -EINVAL;
    GError *e = NULL;
    char *t = vma_fs_readlink(m->fs, vs.ino, &e);
    if (!t)
        return fail(path, e);
    g_strlcpy(buf, t, size);
    g_free(t);
    return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)off;
    (void)fi;
    (void)flags;
    gmount *m;
    vma_stat vs;
    int rc = lookup(path, TRUE, &m, &vs);
    if (rc < 0)
        return rc;
    if (vs.type != VMA_FT_DIR)
        return -ENOTDIR;
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    GHashTable *names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    if (m) {
        GError *e = NULL;
        vma_dir *d = vma_fs_opendir(m->fs, vs.ino, &e);
        if (!d) {
            g_hash_table_destroy(names);
            return fail(path, e);
        }
        for (size_t i = 0; i < vma_dir_count(d); i++) {
            const vma_dirent *de = vma_dir_entry(d, i);
            g_hash_table_add(names, g_strdup(de->name));
            if (fill(buf, de->name, NULL, 0, 0))
                break;
        }
        vma_dir_free(d);
    }
    /* mount points right under this folder that it does not hold */
    if (!mounts) {
        g_hash_table_destroy(names);
        return 0;
    }
    guint n;
    char **comps = split_path(path, &n);
    /* (and folders on the way to deeper ones) */
    for (guint i = 0; i < mounts->len; i++) {
        gmount *mm = g_ptr_array_index(mounts, i);
        if (mm->n <= n)
            continue;
        gboolean match = TRUE;
        for (guint j = 0; j < n && match; j++)
            match = strcmp(mm->comps[j], comps[j]) == 0;
        if (match && !g_hash_table_contains(names, mm->comps[n])) {
            g_hash_table_add(names, g_strdup(mm->comps[n]));
            fill(buf, mm->comps[n], NULL, 0, 0);
        }
    }
    g_strfreev(comps);
    g_hash_table_destroy(names);
    return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
        return -EROFS;
    gmount *m;
    vma_stat vs;
    int rc = lookup(path, TRUE, &m, &vs);
    if (rc < 0)
        return rc;
    if (!m || vs.type == VMA_FT_DIR)
        return -EISDIR;
    GError *e = NULL;
    vma_file *f = vma_fs_open_file(m->fs, vs.ino, &e);
    if (!f)
        return fail(path, e);
    fi->keep_cache = 1;
    fi->fh = (uint64_t)(uintptr_t)f;
    return 0;
}

static int fs_read(const char *path, char *buf, size_t n, off_t off, struct fuse_file_info *fi)
{
    vma_file *f = (vma_file *)(uintptr_t)fi->fh;
    if (!f || off < 0)
        return -EINVAL;
    GError *e = NULL;
    ssize_t got = vma_file_pread(f, buf, n, (uint64_t)off, &e);
    if (got < 0)
        return fail(path, e);
    return (int)got;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    vma_file_free((vma_file *)(uintptr_t)fi->fh);
    fi->fh = 0;
    return 0;
}

static int map_file(void *ctx, uint64_t off, uint64_t len, vma_piece_fn fn, void *ud, GError **err)
{
    return vma_file_map(ctx, off, len, fn, ud, err);
}

static off_t fs_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
    vma_file *f = fi ? (vma_file *)(uintptr_t)fi->fh : NULL;
    if (!f)
        return -EBADF;
    GError *e = NULL;
    off_t r = vf_seek(whence, off, vma_file_size(f), map_file, f, &e);
    return e ? fail(path, e) : r;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    vf_statfs(sv, 4096, 0, 0); /* the guest's sizes are not summed up */
    return 0;
}

/* the guest's tree: files open as handles of their own (released) */
static const struct fuse_operations ops = {
    .init = fs_init, .getattr = fs_getattr, .readlink = fs_readlink, .readdir = fs_readdir,
    .open = fs_open, .read = fs_read, .release = fs_release, .lseek = fs_lseek,
    .statfs = fs_statfs,
};

/* ---- the command line ---- */

#define USAGE "usage: vma-fuse-files [-f] [-d] [-s] [-o OPTIONS] [--label NAME] [--expect MD5] " \
              "[--no-cache] --mount PATH TYPE DEV:OFFSET:LENGTH[,...] [--mount ...] ARCHIVE DIR\n"

static const vf_options *opts_g; /* for fs_init */

/* DEV:OFFSET:LENGTH[,...] */
static GArray *parse_segments(const char *s, GError **err)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(vma_segment));
    char **parts = g_strsplit(s, ",", -1);
    for (char **p = parts; *p; p++) {
        guint64 dev, off, len;
        char *end;
        dev = g_ascii_strtoull(*p, &end, 10);
        if (*end != ':' || dev == 0 || dev > VMA_MAX_DEV_ID)
            goto bad;
        off = g_ascii_strtoull(end + 1, &end, 10);
        if (*end != ':')
            goto bad;
        len = g_ascii_strtoull(end + 1, &end, 10);
        if (*end || len == 0)
            goto bad;
        vma_segment seg = {(uint8_t)dev, off, len};
        g_array_append_val(a, seg);
    }
    g_strfreev(parts);
    if (a->len)
        return a;
    g_array_free(a, TRUE);
    g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "no ranges in '%s'", s);
    return NULL;
bad:
    g_strfreev(parts);
    g_array_free(a, TRUE);
    g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "not DEV:OFFSET:LENGTH[,...]: '%s'", s);
    return NULL;
}

static gint by_depth(gconstpointer a, gconstpointer b)
{
    const gmount *x = *(gmount *const *)a, *y = *(gmount *const *)b;
    return (int)y->n - (int)x->n;
}

static void free_mount(gpointer p)
{
    gmount *m = p;
    g_free(m->path);
    g_strfreev(m->comps);
    vma_fs_free(m->fs);
    g_free(m);
}

static int open_mounts(const vf_options *o, GPtrArray *out, GError **err)
{
    gboolean root = FALSE;
    for (guint i = 0; i < o->margs->len; i++) {
        const vf_mount_arg *ma = &g_array_index(o->margs, vf_mount_arg, i);
        if (ma->path[0] != '/') {
            g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "a mount path must start with '/': %s", ma->path);
            return -1;
        }
        GArray *segs = parse_segments(ma->segs, err);
        if (!segs)
            return -1;
        vma_volume *v = vma_volume_new(archive, (vma_segment *)segs->data, segs->len, err);
        g_array_free(segs, TRUE);
        if (!v)
            return -1;
        vma_fs *fs = vma_fs_open(v, ma->type, err);
        vma_volume_free(v);
        if (!fs) {
            g_prefix_error(err, "%s: ", ma->path);
            return -1;
        }
        gmount *m = g_new0(gmount, 1);
        m->path = g_strdup(ma->path);
        m->comps = split_path(ma->path, &m->n);
        m->fs = fs;
        if (m->n == 0)
            root = TRUE;
        g_ptr_array_add(out, m);
    }
    if (!root) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_ARG, "no file system mounted on /");
        return -1;
    }
    g_ptr_array_sort(out, by_depth);
    return 0;
}

static int open_all(GError **err)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(free_mount);
    if (open_mounts(opts_g, out, err) < 0) {
        g_ptr_array_free(out, TRUE);
        return -1;
    }
    mounts = out;
    return 0;
}

/* the plan checked, the archive opened (its header only: no thread starts
 * until it is read, which the file systems do after the fork, in fs_init) */
static int prepare(const vf_options *o, GError **err)
{
    for (guint i = 0; i < o->margs->len; i++) {
        GArray *segs = parse_segments(g_array_index(o->margs, vf_mount_arg, i).segs, err);
        if (!segs)
            return -1;
        g_array_free(segs, TRUE);
    }
    opts_g = o;
    archive = vf_open_archive(o, err);
    return archive ? 0 : -1;
}

static void cleanup(void)
{
    if (mounts)
        g_ptr_array_free(mounts, TRUE);
    vma_archive_free(archive);
}

int main(int argc, char **argv)
{
    /* other users see the guest's permissions applied (default_permissions
     * with allow_other) */
    static const vf_program prog = {
        .name = "vma-fuse-files", .usage = USAGE, .mounts_wanted = TRUE,
        .subtype = "vma-files", .ops = &ops, .prepare = prepare, .cleanup = cleanup,
    };
    return vf_main(argc, argv, &prog);
}
