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
#define FUSE_USE_VERSION 31
#include <fuse.h>

#include "vma.h"

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
static const char *label = "vma-fuse-files";
static gboolean background;

static void say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (background)
        syslog(LOG_ERR, "%s", msg);
    else
        fprintf(stderr, "%s: %s\n", label, msg);
    g_free(msg);
}

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
        say("%s: %s", path, e->message);
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
    conn->max_write = 1u << 20;
    conn->max_readahead = 1u << 20;
    cfg->kernel_cache = 1;
    cfg->entry_timeout = 86400;
    cfg->attr_timeout = 86400;
    cfg->negative_timeout = 86400;
    cfg->use_ino = 0; /* the file systems' inode numbers overlap */
    /* the file systems, in the process that serves */
    GError *e = NULL;
    if (open_all(&e) < 0) {
        say("%s", e->message);
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
    for (guint i = 0; i < mounts->len; i++) {
        gmount *mm = g_ptr_array_index(mounts, i);
        if (mm->n != n + 1)
            continue;
        gboolean match = TRUE;
        for (guint j = 0; j < n && match; j++)
            match = strcmp(mm->comps[j], comps[j]) == 0;
        if (match && !g_hash_table_contains(names, mm->comps[n])) {
            g_hash_table_add(names, g_strdup(mm->comps[n]));
            fill(buf, mm->comps[n], NULL, 0, 0);
        }
    }
    /* and folders on the way to deeper ones */
    for (guint i = 0; i < mounts->len; i++) {
        gmount *mm = g_ptr_array_index(mounts, i);
        if (mm->n <= n + 1)
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

typedef struct {
    gboolean want_hole;
    uint64_t found;
    gboolean have;
} seek_ctx;

static int seek_piece(const vma_piece *p, void *ud)
{
    seek_ctx *c = ud;
    if ((p->kind == VMA_PIECE_ZERO) != c->want_hole)
        return 0;
    c->found = p->offset;
    c->have = TRUE;
    return 1;
}

static off_t fs_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
    vma_file *f = fi ? (vma_file *)(uintptr_t)fi->fh : NULL;
    if (!f)
        return -EBADF;
    if (whence != SEEK_DATA && whence != SEEK_HOLE)
        return -EINVAL;
    uint64_t size = vma_file_size(f);
    if (off < 0 || (uint64_t)off >= size)
        return -ENXIO;
    seek_ctx c = {whence == SEEK_HOLE, 0, FALSE};
    GError *e = NULL;
    if (vma_file_map(f, (uint64_t)off, size - (uint64_t)off, seek_piece, &c, &e) < 0)
        return fail(path, e);
    if (c.have)
        return (off_t)MAX(c.found, (uint64_t)off);
    return whence == SEEK_DATA ? -ENXIO : (off_t)size;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    memset(sv, 0, sizeof(*sv));
    sv->f_bsize = 4096;
    sv->f_frsize = 4096;
    sv->f_namemax = 255;
    sv->f_flag = ST_RDONLY;
    return 0;
}

static const struct fuse_operations ops = {
    .init = fs_init,
    .getattr = fs_getattr,
    .readlink = fs_readlink,
    .readdir = fs_readdir,
    .open = fs_open,
    .read = fs_read,
    .release = fs_release,
    .lseek = fs_lseek,
    .statfs = fs_statfs,
};

/* ---- the command line ---- */

static int usage(void)
{
    fprintf(stderr, "usage: vma-fuse-files [-f] [-d] [-s] [-o OPTIONS] [--label NAME] [--expect MD5] [--no-cache] "
                    "--mount PATH TYPE DEV:OFFSET:LENGTH[,...] [--mount ...] ARCHIVE DIR\n");
    return 2;
}

static gboolean check_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0) {
        say("%s: %s", dir, g_strerror(errno));
        return FALSE;
    }
    if (!S_ISDIR(st.st_mode)) {
        say("%s is not a folder", dir);
        return FALSE;
    }
    DIR *d = opendir(dir);
    if (!d) {
        say("%s: %s", dir, g_strerror(errno));
        return FALSE;
    }
    struct dirent *de;
    gboolean empty = TRUE;
    while (empty && (de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = FALSE;
    closedir(d);
    if (!empty)
        say("%s is not empty", dir);
    return empty;
}

typedef struct {
    char *path, *type, *segs;
} mount_arg;

typedef struct {
    gboolean foreground, debug, single, allow_other, no_cache;
    GPtrArray *mount_opts;
    GArray *margs;
    const char *path, *dir, *expect;
} options;
static const options *opts_g; /* for fs_init */

static int parse_options(int argc, char **argv, options *o, gboolean *done)
{
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    *done = TRUE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-f") == 0)
            o->foreground = TRUE;
        else if (strcmp(a, "-d") == 0)
            o->debug = o->foreground = TRUE;
        else if (strcmp(a, "-s") == 0)
            o->single = TRUE;
        else if (strcmp(a, "-o") == 0 && i + 1 < argc)
            g_ptr_array_add(o->mount_opts, g_strdup(argv[++i]));
        else if (strcmp(a, "--label") == 0 && i + 1 < argc)
            label = argv[++i];
        else if (strcmp(a, "--expect") == 0 && i + 1 < argc)
            o->expect = argv[++i];
        else if (strcmp(a, "--no-cache") == 0)
            o->no_cache = TRUE;
        else if (strcmp(a, "--mount") == 0 && i + 3 < argc) {
            mount_arg m = {argv[i + 1], argv[i + 2], argv[i + 3]};
            g_array_append_val(o->margs, m);
            i += 3;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage();
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "%s: unknown option %s\n", label, a);
            return usage();
        } else if (npos < 2)
            pos[npos++] = a;
        else
            return usage();
    }
    if (npos != 2 || o->margs->len == 0)
        return usage();
    o->path = pos[0];
    o->dir = pos[1];
    *done = FALSE;
    return 0;
}

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

static int open_mounts(const options *o, GPtrArray *out, GError **err)
{
    gboolean root = FALSE;
    for (guint i = 0; i < o->margs->len; i++) {
        const mount_arg *ma = &g_array_index(o->margs, mount_arg, i);
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

/* the archive, opened before the mount (its header only: no thread starts
 * until it is read, which the file systems do after the fork) */
static int open_archive(const options *o, GError **err)
{
    vma_archive_opts ao = {.cache = o->no_cache ? VMA_CACHE_OFF : VMA_CACHE_AUTO};
    archive = vma_archive_open(o->path, &ao, err);
    if (!archive)
        return -1;
    if (o->expect) {
        uint8_t m[16];
        char hex[33];
        vma_archive_header_md5(archive, m);
        for (int i = 0; i < 16; i++)
            snprintf(hex + 2 * i, 3, "%02x", m[i]);
        if (g_ascii_strcasecmp(hex, o->expect) != 0) {
            g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                        "%s changed since it was opened (its header is not the one expected)",
                        o->path);
            return -1;
        }
    }
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

static char *fsname_of(const char *path)
{
    char *base = g_path_get_basename(path);
    for (char *p = base; *p; p++)
        if (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\\')
            *p = '_';
    char *s = g_strdup_printf("fsname=vma:%s", base);
    g_free(base);
    return s;
}

static void fuse_arguments(struct fuse_args *args, const options *o, const char *argv0,
                           const char *fsname)
{
    GString *opts = g_string_new("ro,subtype=vma-files,");
    g_string_append(opts, fsname);
    gboolean others = FALSE;
    for (guint i = 0; i < o->mount_opts->len; i++) {
        const char *mo = g_ptr_array_index(o->mount_opts, i);
        g_string_append_printf(opts, ",%s", mo);
        if (strstr(mo, "allow_other") || strstr(mo, "allow_root"))
            others = TRUE;
    }
    /* other users see the guest's permissions applied */
    if (others)
        g_string_append(opts, ",default_permissions");
    fuse_opt_add_arg(args, argv0);
    if (o->debug)
        fuse_opt_add_arg(args, "-d");
    fuse_opt_add_arg(args, "-o");
    fuse_opt_add_arg(args, opts->str);
    g_string_free(opts, TRUE);
}

static int serve(struct fuse *fuse, const options *o, const char *abs_dir)
{
    if (fuse_mount(fuse, abs_dir) != 0) {
        say("cannot mount on %s", o->dir);
        return 1;
    }
    int rc = 1;
    struct fuse_session *se = fuse_get_session(fuse);
    if (fuse_set_signal_handlers(se) != 0) {
        say("cannot set the signal handlers");
    } else if (fuse_daemonize(o->foreground) == 0) {
        if (!o->foreground) {
            background = TRUE;
            openlog("vma-fuse-files", LOG_PID, LOG_DAEMON);
        }
        int lrc = o->single ? fuse_loop(fuse) : fuse_loop_mt(fuse, 0);
        rc = lrc == 0 || lrc == SIGINT || lrc == SIGTERM || lrc == SIGHUP ? 0 : 1;
    }
    fuse_remove_signal_handlers(se);
    fuse_unmount(fuse);
    return rc;
}

int main(int argc, char **argv)
{
    options o = {.mount_opts = g_ptr_array_new_with_free_func(g_free),
                 .margs = g_array_new(FALSE, FALSE, sizeof(mount_arg))};
    gboolean done;
    int rc = parse_options(argc, argv, &o, &done);
    if (done) {
        g_ptr_array_free(o.mount_opts, TRUE);
        g_array_free(o.margs, TRUE);
        return rc;
    }
    rc = 1;
    struct fuse *fuse = NULL;
    char *abs_dir = NULL, *fsname = NULL;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    GError *e = NULL;
    if (!check_dir(o.dir))
        goto out;
    abs_dir = realpath(o.dir, NULL);
    /* the plan is checked here; its file systems are opened in fs_init */
    for (guint i = 0; i < o.margs->len; i++) {
        GArray *segs = parse_segments(g_array_index(o.margs, mount_arg, i).segs, &e);
        if (!segs) {
            say("%s", e->message);
            g_error_free(e);
            goto out;
        }
        g_array_free(segs, TRUE);
    }
    opts_g = &o;
    if (open_archive(&o, &e) < 0) {
        say("%s", e->message);
        g_error_free(e);
        goto out;
    }
    fsname = fsname_of(o.path);
    fuse_arguments(&args, &o, argv[0], fsname);
    fuse = fuse_new(&args, &ops, sizeof(ops), NULL);
    if (!fuse)
        say("cannot set up the file system (bad -o option?)");
    else
        rc = serve(fuse, &o, abs_dir);
out:
    if (fuse)
        fuse_destroy(fuse);
    fuse_opt_free_args(&args);
    if (mounts)
        g_ptr_array_free(mounts, TRUE);
    vma_archive_free(archive);
    g_ptr_array_free(o.mount_opts, TRUE);
    g_array_free(o.margs, TRUE);
    g_free(fsname);
    free(abs_dir);
    return rc;
}
