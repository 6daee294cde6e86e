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
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
        vf_say("%s appears twice in the archive: only the first is shown", f->name);
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
    vf_init_config(conn, cfg);
    /* an archive read through a decoded copy: its decoder starts now, in
     * the process that serves (after fuse_daemonize's fork) */
    GError *e = NULL;
    if (!vma_archive_seekable(archive) && vma_archive_prepare(archive, &e) < 0) {
        vf_say("%s", e->message);
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
    (void)off, (void)fi, (void)flags; /* one folder, listed whole */
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
        vf_say("%s: %s", f->name, e->message);
        g_error_free(e);
        return -EIO;
    }
    return (int)got;
}

/* the pieces of a disk of the archive (vf_map_fn) */
static int map_disk(void *ctx, uint64_t off, uint64_t len, vma_piece_fn fn, void *ud, GError **err)
{
    return vma_archive_map(archive, ((vfile *)ctx)->dev_id, off, len, fn, ud, err);
}

static off_t fs_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
    vfile *f = fi ? (vfile *)(uintptr_t)fi->fh : find_file(path);
    if (!f)
        return -ENOENT;
    if (!f->is_device && (whence == SEEK_DATA || whence == SEEK_HOLE) && off >= 0 &&
        (uint64_t)off < f->size)
        return whence == SEEK_DATA ? off : (off_t)f->size; /* a config: all data */
    GError *e = NULL;
    off_t r = vf_seek(whence, off, f->size, map_disk, f, &e);
    if (e) {
        vf_say("%s: %s", f->name, e->message);
        g_error_free(e);
    }
    return r;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    uint64_t blocks = 0;
    for (guint i = 0; i < files->len; i++)
        blocks += ((vfile *)g_ptr_array_index(files, i))->blocks;
    vf_statfs(sv, 512, blocks, files->len);
    return 0;
}

/* one folder of files laid out before the mount */
static const struct fuse_operations ops = {
    .init = fs_init, .getattr = fs_getattr, .readdir = fs_readdir, .open = fs_open,
    .read = fs_read, .lseek = fs_lseek, .statfs = fs_statfs,
};

/* ---- the command line ---- */

#define USAGE "usage: vma-fuse [-f] [-d] [-s] [-o OPTIONS] [--label NAME] [--expect MD5] " \
              "[--no-cache] ARCHIVE DIR\n"

/* the archive's owner and read permissions, the archive opened (a plain
 * or seekable one indexed) and every file laid out, before the mount */
static int prepare(const vf_options *o, GError **err)
{
    struct stat ast;
    if (stat(o->path, &ast) < 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "%s: %s", o->path, g_strerror(errno));
        return -1;
    }
    owner_uid = ast.st_uid;
    owner_gid = ast.st_gid;
    file_mode = ast.st_mode & 0444;
    dir_mode = file_mode | (file_mode >> 2);
    archive = vf_open_archive(o, err);
    if (!archive)
        return -1;
    if (vma_archive_random_error(archive)) {
        g_propagate_error(err, g_error_copy(vma_archive_random_error(archive)));
        return -1;
    }
    if (vma_archive_seekable(archive) && vma_archive_prepare(archive, err) < 0)
        return -1;
    return lay_out(err);
}

static void cleanup(void)
{
    free_files();
    vma_archive_free(archive);
}

int main(int argc, char **argv)
{
    static const vf_program prog = {
        .name = "vma-fuse", .usage = USAGE, .subtype = "vma", .always_check = TRUE,
        .ops = &ops, .prepare = prepare, .cleanup = cleanup,
    };
    return vf_main(argc, argv, &prog);
}
