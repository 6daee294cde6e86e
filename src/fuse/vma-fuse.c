/* vma-fuse.c - mount the disks of a VMA archive as files, read-only
 * (libfuse3), without restoring it:
 *
 *   vma-fuse [-f] [-d] [-s] [-o OPTS] [--label NAME] [--expect MD5] [--no-cache]
 *            ARCHIVE DIR
 *
 *   DIR/drive-scsi0.raw     each disk, sparse: SEEK_DATA/SEEK_HOLE find the
 *                           data, st_blocks counts it (du, cp --sparse)
 *   DIR/vmstate.bin         the RAM state, when the archive has one
 *   DIR/qemu-server.conf    each config file
 *
 * A plain .vma or a seekable .vma.zst is opened, indexed and every file
 * laid out before anything is mounted: a hostile archive, or a DIR that is
 * missing, not a folder or not empty, ends with a message and exit status
 * 1, and nothing is left mounted.  Any other archive (one zstd stream,
 * gzip, lzop) has its header checked first and its background decoder
 * started once the mount is up (a read ahead of it waits; st_blocks counts
 * the whole disk until it is done).  --expect MD5: the header must be the
 * one the caller read (vma mount passes it).  Once the mount is ready the program goes to the
 * background (as sshfs does) and its first process exits 0; -f keeps it in
 * the foreground.  fusermount3 -u DIR (or SIGINT/SIGTERM in the foreground)
 * ends it.  Reads of clusters that an incomplete archive lacks fail with
 * EIO.  Requests are served by several threads.  Every file and the folder
 * take the archive's owner and its read permissions (the folder gains x
 * where it has r), checked by the kernel (default_permissions): with
 * allow_other, who cannot read the archive cannot read its disks either.
 * The command line is read by libfuse's fuse_opt_parse (-o takes a list,
 * --label and --expect a word after them or after =). */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 31
#include <fuse.h>
#include <fuse_opt.h>

#include "vma.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

typedef struct {
    char *name;
    gboolean is_device;
    uint8_t dev_id;
    const uint8_t *data;  /* a config's bytes */
    uint64_t size;
    uint64_t blocks;      /* 512-byte units of data (not holes) */
} vfile;

static vma_archive *archive;
static GPtrArray *files;
static struct timespec archive_time;
static uid_t owner_uid;
static gid_t owner_gid;
static mode_t file_mode = 0444, dir_mode = 0555;
static const char *label = "vma-fuse";
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

static vfile *find_name(const char *name)
{
    for (guint i = 0; i < files->len; i++) {
        vfile *f = g_ptr_array_index(files, i);
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

/* a path of the mount: "/NAME" */
static vfile *find_file(const char *path)
{
    if (path[0] != '/' || strchr(path + 1, '/'))
        return NULL;
    return find_name(path + 1);
}

/* ---- laying out the files ---- */

static int count_data(const vma_piece *p, void *ud)
{
    if (p->kind != VMA_PIECE_ZERO) /* missing counts as data: it is no hole */
        *(uint64_t *)ud += p->length;
    return 0;
}

static gboolean add_file(vfile *f)
{
    if (find_name(f->name) || strcmp(f->name, ".") == 0 || strcmp(f->name, "..") == 0) {
        say("%s appears twice in the archive: only the first is shown", f->name);
        g_free(f->name);
        g_free(f);
        return FALSE;
    }
    g_ptr_array_add(files, f);
    return TRUE;
}

static int lay_out(GError **err)
{
    const vma_header *h = vma_archive_header(archive);
    files = g_ptr_array_new();
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = h->devices[id];
        if (!d)
            continue;
        vfile *f = g_new0(vfile, 1);
        f->name = d->is_vmstate ? g_strdup("vmstate.bin") : g_strdup_printf("%s.raw", d->name);
        f->is_device = TRUE;
        f->dev_id = d->id;
        f->size = vma_archive_device_length(archive, d->id);
        uint64_t data = f->size;
        if (vma_archive_seekable(archive) &&
            (data = 0, vma_archive_map(archive, d->id, 0, f->size, count_data, &data, err) < 0)) {
            g_free(f->name);
            g_free(f);
            return -1;
        }
        f->blocks = (data + 511) / 512;
        add_file(f);
    }
    for (unsigned i = 0; i < h->n_configs; i++) {
        const vma_config *c = &h->configs[i];
        vfile *f = g_new0(vfile, 1);
        f->name = g_strdup(c->name);
        f->data = c->data;
        f->size = c->len;
        f->blocks = (c->len + 511) / 512;
        add_file(f);
    }
    archive_time.tv_sec = (time_t)h->ctime;
    return 0;
}

static void free_files(void)
{
    if (!files)
        return;
    for (guint i = 0; i < files->len; i++) {
        vfile *f = g_ptr_array_index(files, i);
        g_free(f->name);
        g_free(f);
    }
    g_ptr_array_free(files, TRUE);
    files = NULL;
}

/* ---- the file system ---- */

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* requests of up to 1 MiB (the kernel's max_pages follows max_write)
     * and read-ahead to match: fewer round trips for a copy of a disk */
    conn->max_write = 1u << 20;
    conn->max_readahead = 1u << 20;
    /* nothing ever changes: keep pages and attributes as long as possible */
    cfg->kernel_cache = 1;
    cfg->entry_timeout = 86400;
    cfg->attr_timeout = 86400;
    cfg->negative_timeout = 86400;
    cfg->use_ino = 0;
    /* an archive read through a decoded copy: its decoder starts now, in
     * the process that serves (after fuse_daemonize's fork) */
    GError *e = NULL;
    if (!vma_archive_seekable(archive) && vma_archive_prepare(archive, &e) < 0) {
        say("%s", e->message);
        g_error_free(e);
    }
    return NULL;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    memset(st, 0, sizeof(*st));
    st->st_uid = owner_uid;
    st->st_gid = owner_gid;
    st->st_atim = st->st_mtim = st->st_ctim = archive_time;
    if (strcmp(path, "/") == 0) {
        st->st_mode = S_IFDIR | dir_mode;
        st->st_nlink = 2;
        return 0;
    }
    vfile *f = find_file(path);
    if (!f)
        return -ENOENT;
    st->st_mode = S_IFREG | file_mode;
    st->st_nlink = 1;
    st->st_size = (off_t)f->size;
    st->st_blocks = (blkcnt_t)f->blocks;
    st->st_blksize = 1 << 20;
    return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)off;
    (void)fi;
    (void)flags;
    if (strcmp(path, "/") != 0)
        return -ENOTDIR;
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    for (guint i = 0; i < files->len; i++)
        if (fill(buf, ((vfile *)g_ptr_array_index(files, i))->name, NULL, 0, 0))
            break;
    return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
    vfile *f = find_file(path);
    if (!f)
        return -ENOENT;
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
        return -EROFS;
    fi->keep_cache = 1;
    fi->fh = (uint64_t)(uintptr_t)f;
    return 0;
}

static int fs_read(const char *path, char *buf, size_t n, off_t off, struct fuse_file_info *fi)
{
    vfile *f = fi ? (vfile *)(uintptr_t)fi->fh : find_file(path);
    if (!f)
        return -ENOENT;
    if (off < 0)
        return -EINVAL;
    if ((uint64_t)off >= f->size)
        return 0;
    n = (size_t)MIN((uint64_t)n, f->size - (uint64_t)off);
    if (!f->is_device) {
        memcpy(buf, f->data + off, n);
        return (int)n;
    }
    GError *e = NULL;
    ssize_t got = vma_archive_pread(archive, f->dev_id, buf, n, (uint64_t)off, &e);
    if (got < 0) {
        say("%s: %s", f->name, e->message);
        g_error_free(e);
        return -EIO;
    }
    return (int)got;
}

typedef struct {
    vma_piece_kind want_not;  /* the kind to pass over */
    uint64_t found;
    gboolean have;
} seek_ctx;

static int seek_piece(const vma_piece *p, void *ud)
{
    seek_ctx *c = ud;
    gboolean hole = p->kind == VMA_PIECE_ZERO;
    if ((c->want_not == VMA_PIECE_ZERO) == hole)
        return 0;
    c->found = p->offset;
    c->have = TRUE;
    return 1;
}

static off_t fs_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
    vfile *f = fi ? (vfile *)(uintptr_t)fi->fh : find_file(path);
    if (!f)
        return -ENOENT;
    if (whence != SEEK_DATA && whence != SEEK_HOLE)
        return -EINVAL; /* the kernel does the others itself */
    if (off < 0 || (uint64_t)off >= f->size)
        return -ENXIO;
    if (!f->is_device)
        return whence == SEEK_DATA ? off : (off_t)f->size;
    /* SEEK_DATA passes over zero pieces, SEEK_HOLE over the others */
    seek_ctx c = {whence == SEEK_DATA ? VMA_PIECE_ZERO : VMA_PIECE_DATA, 0, FALSE};
    GError *e = NULL;
    if (vma_archive_map(archive, f->dev_id, (uint64_t)off, f->size - (uint64_t)off, seek_piece,
                        &c, &e) < 0) {
        say("%s: %s", f->name, e->message);
        g_error_free(e);
        return -EIO;
    }
    if (c.have)
        return (off_t)MAX(c.found, (uint64_t)off);
    return whence == SEEK_DATA ? -ENXIO : (off_t)f->size;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    memset(sv, 0, sizeof(*sv));
    uint64_t blocks = 0;
    for (guint i = 0; i < files->len; i++)
        blocks += ((vfile *)g_ptr_array_index(files, i))->blocks;
    sv->f_bsize = 512;
    sv->f_frsize = 512;
    sv->f_blocks = blocks;
    sv->f_files = files->len;
    sv->f_namemax = 255;
    sv->f_flag = ST_RDONLY;
    return 0;
}

static const struct fuse_operations ops = {
    .init = fs_init,
    .getattr = fs_getattr,
    .readdir = fs_readdir,
    .open = fs_open,
    .read = fs_read,
    .lseek = fs_lseek,
    .statfs = fs_statfs,
};

/* ---- the command line ---- */

static int usage(void)
{
    fprintf(stderr, "usage: vma-fuse [-f] [-d] [-s] [-o OPTIONS] [--label NAME] [--expect MD5] "
                    "[--no-cache] ARCHIVE DIR\n");
    return 2;
}

/* DIR must be an empty folder */
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

/* an fsname for the mount table: no commas, no white space */
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

/* the command line, as fuse_opt_parse fills it */
typedef struct {
    int foreground, debug, single, no_cache, help;
    char *label;          /* --label: our name in messages */
    char *expect;         /* --expect: the header's MD5 the caller read */
    GPtrArray *mount_opts; /* -o, each option */
    const char *pos[2];   /* ARCHIVE DIR */
    int npos, bad;
    const char *path, *dir;
} options;

#define OPT(t, field, v) {t, offsetof(options, field), v}
static const struct fuse_opt opt_spec[] = {
    OPT("-f", foreground, 1),     OPT("-d", debug, 1),        OPT("-s", single, 1),
    OPT("--no-cache", no_cache, 1), OPT("-h", help, 1),       OPT("--help", help, 1),
    OPT("--label %s", label, 0),  OPT("--label=%s", label, 0),
    OPT("--expect %s", expect, 0), OPT("--expect=%s", expect, 0),
    FUSE_OPT_END,
};

/* what fuse_opt_parse does not match: each -o option (kept for the mount),
 * ARCHIVE and DIR, and any other word starting with '-' (refused) */
static int take_arg(void *data, const char *arg, int key, struct fuse_args *out)
{
    options *o = data;
    (void)out;
    if (key == FUSE_OPT_KEY_NONOPT) {
        if (o->npos < 2)
            o->pos[o->npos] = arg;
        o->npos++;
    } else if (arg[0] == '-') {
        fprintf(stderr, "%s: unknown option %s\n", o->label ? o->label : label, arg);
        o->bad = 1;
    } else {
        g_ptr_array_add(o->mount_opts, g_strdup(arg)); /* an option of -o */
    }
    return 0; /* ours: nothing goes to the output arguments */
}

/* the command line: 0 with o filled, or the exit status (help, usage) */
static int parse_options(int argc, char **argv, options *o, gboolean *done)
{
    *done = TRUE;
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    int rc = fuse_opt_parse(&args, o, opt_spec, take_arg);
    fuse_opt_free_args(&args);
    if (o->label)
        label = o->label;
    if (o->help) {
        usage();
        return 0;
    }
    if (rc != 0 || o->bad || o->npos != 2)
        return usage();
    if (o->debug)
        o->foreground = 1;
    o->path = o->pos[0];
    o->dir = o->pos[1];
    *done = FALSE;
    return 0;
}

static void options_free(options *o)
{
    g_ptr_array_free(o->mount_opts, TRUE);
    free(o->label);
    free(o->expect);
}

/* the fuse arguments: read-only, our subtype and name, the user's -o */
static void fuse_arguments(struct fuse_args *args, const options *o, const char *argv0,
                           const char *fsname)
{
    GString *opts = g_string_new("ro,subtype=vma,default_permissions,");
    g_string_append(opts, fsname);
    for (guint i = 0; i < o->mount_opts->len; i++)
        g_string_append_printf(opts, ",%s", (char *)g_ptr_array_index(o->mount_opts, i));
    fuse_opt_add_arg(args, argv0);
    if (o->debug)
        fuse_opt_add_arg(args, "-d");
    fuse_opt_add_arg(args, "-o");
    fuse_opt_add_arg(args, opts->str);
    g_string_free(opts, TRUE);
}

/* mount, go to the background once the mount is ready, serve until
 * unmounted or signalled; the exit status */
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
        /* the mount is ready: the first process has exited 0 */
        if (!o->foreground) {
            background = TRUE;
            openlog("vma-fuse", LOG_PID, LOG_DAEMON);
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
    options o = {.mount_opts = g_ptr_array_new_with_free_func(g_free)};
    gboolean done;
    int rc = parse_options(argc, argv, &o, &done);
    if (done) {
        options_free(&o);
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
    if (!abs_dir) {
        say("%s: %s", o.dir, g_strerror(errno));
        goto out;
    }
    /* the archive's owner and read permissions */
    struct stat ast;
    if (stat(o.path, &ast) < 0) {
        say("%s: %s", o.path, g_strerror(errno));
        goto out;
    }
    owner_uid = ast.st_uid;
    owner_gid = ast.st_gid;
    file_mode = ast.st_mode & 0444;
    dir_mode = file_mode | (file_mode >> 2);
    vma_archive_opts ao = {.cache = o.no_cache ? VMA_CACHE_OFF : VMA_CACHE_AUTO};
    archive = vma_archive_open(o.path, &ao, &e);
    if (archive && o.expect) {
        uint8_t m[16];
        char hex[33];
        vma_archive_header_md5(archive, m);
        for (int i = 0; i < 16; i++)
            snprintf(hex + 2 * i, 3, "%02x", m[i]);
        if (g_ascii_strcasecmp(hex, o.expect) != 0)
            g_set_error(&e, VMA_ERROR, VMA_ERR_FORMAT,
                        "%s changed since it was opened (its header is not the one expected)",
                        o.path);
    }
    if (archive && !e && vma_archive_random_error(archive))
        e = g_error_copy(vma_archive_random_error(archive));
    if (!archive || e || (vma_archive_seekable(archive) && vma_archive_prepare(archive, &e) < 0) ||
        lay_out(&e) < 0) {
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
    free_files();
    vma_archive_free(archive);
    options_free(&o);
    g_free(fsname);
    free(abs_dir);
    return rc;
}
