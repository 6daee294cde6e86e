/* common.c - what vma-fuse and vma-fuse-files share (see common.h). */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fuse_opt.h>
#include <unistd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

const char *vf_label = "vma-fuse";
gboolean vf_background;

void vf_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (vf_background)
        syslog(LOG_ERR, "%s", msg);
    else
        fprintf(stderr, "%s: %s\n", vf_label, msg);
    g_free(msg);
}

/* ---- the command line ---- */

enum { KEY_MOUNT = 1 };

#define OPT(t, field, v) {t, offsetof(vf_options, field), v}
static const struct fuse_opt opt_spec[] = {
    OPT("-f", foreground, 1),      OPT("-d", debug, 1),   OPT("-s", single, 1),
    OPT("--no-cache", no_cache, 1), OPT("-h", help, 1),    OPT("--help", help, 1),
    OPT("--label %s", label, 0),   OPT("--label=%s", label, 0),
    OPT("--expect %s", expect, 0), OPT("--expect=%s", expect, 0),
    FUSE_OPT_KEY("--mount", KEY_MOUNT),
    FUSE_OPT_END,
};

/* what fuse_opt_parse does not match itself: each -o option (kept for the
 * mount), the words of a --mount, ARCHIVE and DIR, and any other word
 * starting with '-' (refused) */
static int take_arg(void *data, const char *arg, int key, struct fuse_args *out)
{
    vf_options *o = data;
    (void)out;
    if (key == KEY_MOUNT) {
        if (!o->mounts_wanted || o->mount_words) {
            fprintf(stderr, "%s: unknown option %s\n", o->label ? o->label : vf_label, arg);
            o->bad = 1;
            return 0;
        }
        vf_mount_arg m = {NULL, NULL, NULL};
        g_array_append_val(o->margs, m);
        o->mount_words = 3;
    } else if (key == FUSE_OPT_KEY_NONOPT && o->mount_words) {
        vf_mount_arg *m = &g_array_index(o->margs, vf_mount_arg, o->margs->len - 1);
        char **w = o->mount_words == 3 ? &m->path : o->mount_words == 2 ? &m->type : &m->segs;
        *w = g_strdup(arg);
        o->mount_words--;
    } else if (key == FUSE_OPT_KEY_NONOPT) {
        if (o->npos < 2)
            o->pos[o->npos] = arg; /* argv's own strings: they live on */
        o->npos++;
    } else if (arg[0] == '-') {
        fprintf(stderr, "%s: unknown option %s\n", o->label ? o->label : vf_label, arg);
        o->bad = 1;
    } else {
        g_ptr_array_add(o->mount_opts, g_strdup(arg)); /* an option of -o */
    }
    return 0; /* ours: nothing goes to the output arguments */
}

static void free_mount_arg(void *p)
{
    vf_mount_arg *m = p;
    g_free(m->path);
    g_free(m->type);
    g_free(m->segs);
}

int vf_parse(int argc, char **argv, vf_options *o, gboolean mounts_wanted, const char *usage,
             gboolean *done)
{
    memset(o, 0, sizeof(*o));
    o->mount_opts = g_ptr_array_new_with_free_func(g_free);
    o->margs = g_array_new(FALSE, FALSE, sizeof(vf_mount_arg));
    g_array_set_clear_func(o->margs, free_mount_arg);
    o->mounts_wanted = mounts_wanted;
    *done = TRUE;
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    int rc = fuse_opt_parse(&args, o, opt_spec, take_arg);
    fuse_opt_free_args(&args);
    if (o->label)
        vf_label = o->label;
    if (o->help) {
        fputs(usage, stderr);
        return 0;
    }
    if (rc != 0 || o->bad || o->npos != 2 || o->mount_words ||
        (mounts_wanted && o->margs->len == 0)) {
        fputs(usage, stderr);
        return 2;
    }
    if (o->debug)
        o->foreground = 1;
    o->path = o->pos[0];
    o->dir = o->pos[1];
    *done = FALSE;
    return 0;
}

void vf_options_free(vf_options *o)
{
    g_ptr_array_free(o->mount_opts, TRUE);
    g_array_free(o->margs, TRUE);
    free(o->label);
    free(o->expect);
}

/* ---- setting up ---- */

/* DIR exists, is a folder and is empty (else a message, FALSE) */
static gboolean check_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0) {
        vf_say("%s: %s", dir, g_strerror(errno));
        return FALSE;
    }
    if (!S_ISDIR(st.st_mode)) {
        vf_say("%s is not a folder", dir);
        return FALSE;
    }
    DIR *d = opendir(dir);
    if (!d) {
        vf_say("%s: %s", dir, g_strerror(errno));
        return FALSE;
    }
    struct dirent *de;
    gboolean empty = TRUE;
    while (empty && (de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = FALSE;
    closedir(d);
    if (!empty)
        vf_say("%s is not empty", dir);
    return empty;
}

vma_archive *vf_open_archive(const vf_options *o, GError **err)
{
    vma_archive_opts ao = {.cache = o->no_cache ? VMA_CACHE_OFF : VMA_CACHE_AUTO};
    vma_archive *a = vma_archive_open(o->path, &ao, err);
    if (!a || !o->expect)
        return a;
    uint8_t m[16];
    char hex[33];
    vma_archive_header_md5(a, m);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", m[i]);
    if (g_ascii_strcasecmp(hex, o->expect) != 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                    "%s changed since it was opened (its header is not the one expected)", o->path);
        vma_archive_free(a);
        return NULL;
    }
    return a;
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

/* the arguments of fuse_new: read-only, the subtype, the fsname of the
 * archive, the user's -o; default_permissions always, or only when other
 * users may look (allow_other, allow_root) */
static void fuse_arguments(struct fuse_args *args, const vf_options *o, const char *argv0,
                           const char *subtype, gboolean always_check)
{
    char *fsname = fsname_of(o->path);
    GString *opts = g_string_new(NULL);
    g_string_printf(opts, "ro,subtype=%s,%s", subtype, fsname);
    g_free(fsname);
    gboolean others = FALSE;
    for (guint i = 0; i < o->mount_opts->len; i++) {
        const char *mo = g_ptr_array_index(o->mount_opts, i);
        g_string_append_printf(opts, ",%s", mo);
        others |= strstr(mo, "allow_other") || strstr(mo, "allow_root");
    }
    /* the kernel checks the files' permissions */
    if (always_check || others)
        g_string_append(opts, ",default_permissions");
    fuse_opt_add_arg(args, argv0);
    if (o->debug)
        fuse_opt_add_arg(args, "-d");
    fuse_opt_add_arg(args, "-o");
    fuse_opt_add_arg(args, opts->str);
    g_string_free(opts, TRUE);
}

/* mount on abs_dir, go to the background once the mount is ready (syslog
 * under ident), serve until unmounted or signalled; the exit status */
static int serve(struct fuse *fuse, const vf_options *o, const char *abs_dir, const char *ident)
{
    if (fuse_mount(fuse, abs_dir) != 0) {
        vf_say("cannot mount on %s", o->dir);
        return 1;
    }
    int rc = 1;
    struct fuse_session *se = fuse_get_session(fuse);
    if (fuse_set_signal_handlers(se) != 0) {
        vf_say("cannot set the signal handlers");
    } else if (fuse_daemonize(o->foreground) == 0) {
        /* the mount is ready: the first process has exited 0 */
        if (!o->foreground) {
            vf_background = TRUE;
            openlog(ident, LOG_PID, LOG_DAEMON);
        }
        int lrc = o->single ? fuse_loop(fuse) : fuse_loop_mt(fuse, 0);
        rc = lrc == 0 || lrc == SIGINT || lrc == SIGTERM || lrc == SIGHUP ? 0 : 1;
    }
    fuse_remove_signal_handlers(se);
    fuse_unmount(fuse);
    return rc;
}

/* ---- seeking ---- */

typedef struct {
    gboolean want_hole;   /* SEEK_HOLE: the first zero piece; SEEK_DATA: the first other */
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

off_t vf_seek(int whence, off_t off, uint64_t size, vf_map_fn map, void *ctx, GError **err)
{
    if (whence != SEEK_DATA && whence != SEEK_HOLE)
        return -EINVAL; /* the kernel does the others itself */
    if (off < 0 || (uint64_t)off >= size)
        return -ENXIO;
    seek_ctx c = {whence == SEEK_HOLE, 0, FALSE};
    if (map(ctx, (uint64_t)off, size - (uint64_t)off, seek_piece, &c, err) < 0)
        return -EIO;
    if (c.have)
        return (off_t)MAX(c.found, (uint64_t)off);
    return whence == SEEK_DATA ? -ENXIO : (off_t)size;
}

void vf_init_config(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* requests of up to 1 MiB (the kernel's max_pages follows max_write)
     * and read-ahead to match: fewer round trips for a copy of a disk */
    conn->max_write = 1u << 20;
    conn->max_readahead = 1u << 20;
    cfg->kernel_cache = 1;
    cfg->entry_timeout = 86400;
    cfg->attr_timeout = 86400;
    cfg->negative_timeout = 86400;
    cfg->use_ino = 0;
}

void vf_statfs(struct statvfs *sv, unsigned bsize, uint64_t blocks, uint64_t files)
{
    memset(sv, 0, sizeof(*sv));
    sv->f_bsize = bsize;
    sv->f_frsize = bsize;
    sv->f_blocks = blocks;
    sv->f_files = files;
    sv->f_namemax = 255;
    sv->f_flag = ST_RDONLY;
}

/* ---- the program ---- */

int vf_main(int argc, char **argv, const vf_program *p)
{
    vf_label = p->name;
    vf_options o;
    gboolean done;
    int rc = vf_parse(argc, argv, &o, p->mounts_wanted, p->usage, &done);
    if (done) {
        vf_options_free(&o);
        return rc;
    }
    rc = 1;
    struct fuse *fuse = NULL;
    char *abs_dir = NULL;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    GError *e = NULL;
    if (!check_dir(o.dir))
        goto out;
    abs_dir = realpath(o.dir, NULL);
    if (!abs_dir) {
        vf_say("%s: %s", o.dir, g_strerror(errno));
        goto out;
    }
    if (p->prepare(&o, &e) < 0) {
        vf_say("%s", e->message);
        g_error_free(e);
        goto out;
    }
    fuse_arguments(&args, &o, argv[0], p->subtype, p->always_check);
    fuse = fuse_new(&args, p->ops, sizeof(*p->ops), NULL);
    if (!fuse)
        vf_say("cannot set up the file system (bad -o option?)");
    else
        rc = serve(fuse, &o, abs_dir, p->name);
out:
    if (fuse)
        fuse_destroy(fuse);
    fuse_opt_free_args(&args);
    p->cleanup();
    vf_options_free(&o);
    free(abs_dir);
    return rc;
}
