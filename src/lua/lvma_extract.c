/* lvma_extract.c - vma.file_writer(DEST): copies a guest's files, folders
 * and links out into the folder DEST, and nowhere else.
 *
 * Everything is first written into a private folder DEST/.vma-get.XXXXXX
 * (mode 0700), through descriptors: every path component is opened with
 * O_NOFOLLOW relative to that folder, every name is checked (no '/', not
 * "." or "..", no NUL), files are created with O_EXCL, so neither a guest's
 * symbolic link nor a name can send a write elsewhere.  w:commit() then
 * renames each top entry into DEST (never over an existing one unless
 * force; with force a folder is merged into an existing folder), sets the
 * folders' modes and times, and removes the private folder; w:abort(), or
 * the garbage collector, removes it and all it holds: an interrupted copy
 * leaves nothing.  Files keep their holes (what the guest file system maps
 * as holes, and every 4 KiB block of zeros), their mode and times; the
 * owner only with preserve_owner (setuid and setgid bits are dropped
 * without it). */
#define _GNU_SOURCE
#include "lvma.h"
#include "lvma_guest.h"

#include <stdarg.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WRITER_MT "vma.filewriter"
#define CHUNK     (4u << 20)
#define WINDOW    ((uint64_t)64 << 20)
#define BLOCK     4096u

typedef struct {
    char *path;           /* relative to the private folder */
    uint32_t mode, uid, gid;
    struct timespec times[2];
} pending_dir;

typedef struct {
    char *name;           /* in the private folder */
    char *target;         /* in DEST */
} top_entry;

typedef struct {
    int dest_fd;
    int stage_fd;
    char *dest;
    char *stage_name;
    gboolean force, preserve_owner, open;
    GPtrArray *dirs;      /* pending_dir */
    GPtrArray *tops;      /* top_entry */
    GHashTable *top_names;
    GHashTable *merged;   /* final paths of folders that existed: left as they were */
    char *cur_path;       /* the parent folder open last */
    int cur_fd;
    uint64_t files, folders, links, bytes, holes;
    uint8_t *buf, *buf2;  /* two, for reads that overlap the writes */
} fwriter;

static void set_errno(GError **err, int e, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void set_errno(GError **err, int e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(err, VMA_ERROR, e == EINTR ? VMA_ERR_INTERRUPTED : VMA_ERR_IO, "%s: %s", m,
                g_strerror(e));
    g_free(m);
}

static int pwrite_all(int fd, const uint8_t *buf, size_t n, uint64_t off, GError **err)
{
    while (n) {
        ssize_t w = pwrite(fd, buf, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            set_errno(err, w < 0 ? errno : EIO, "cannot write");
            return -1;
        }
        buf += w;
        off += (uint64_t)w;
        n -= (size_t)w;
    }
    return 0;
}

static void free_dir(gpointer p)
{
    pending_dir *d = p;
    g_free(d->path);
    g_free(d);
}

static void free_top(gpointer p)
{
    top_entry *t = p;
    g_free(t->name);
    g_free(t->target);
    g_free(t);
}

/* remove name in dirfd and all under it, never following a link */
static void remove_tree(int at, const char *name)
{
    if (unlinkat(at, name, 0) == 0 || (errno != EISDIR && errno != EPERM))
        return;
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *e;
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            g_ptr_array_add(names, g_strdup(e->d_name));
    for (guint i = 0; i < names->len; i++)
        remove_tree(dirfd(d), g_ptr_array_index(names, i));
    g_ptr_array_free(names, TRUE);
    closedir(d);
    unlinkat(at, name, AT_REMOVEDIR);
}

static void close_cur(fwriter *w)
{
    if (w->cur_fd >= 0)
        close(w->cur_fd);
    w->cur_fd = -1;
    g_free(w->cur_path);
    w->cur_path = NULL;
}

static void writer_cleanup(fwriter *w)
{
    close_cur(w);
    if (w->stage_fd >= 0)
        close(w->stage_fd);
    w->stage_fd = -1;
    if (w->stage_name && w->dest_fd >= 0)
        remove_tree(w->dest_fd, w->stage_name);
    if (w->dest_fd >= 0)
        close(w->dest_fd);
    w->dest_fd = -1;
    g_free(w->stage_name);
    w->stage_name = NULL;
    g_free(w->dest);
    w->dest = NULL;
    if (w->dirs)
        g_ptr_array_free(w->dirs, TRUE);
    if (w->tops)
        g_ptr_array_free(w->tops, TRUE);
    if (w->top_names)
        g_hash_table_destroy(w->top_names);
    if (w->merged)
        g_hash_table_destroy(w->merged);
    w->dirs = w->tops = NULL;
    w->top_names = w->merged = NULL;
    g_free(w->buf);
    g_free(w->buf2);
    w->buf = w->buf2 = NULL;
    w->open = FALSE;
}

static gboolean writer_open(void *self) { return ((fwriter *)self)->open; }
static fwriter *check_writer(lua_State *L) { return lvma_check_open(L, 1, WRITER_MT, writer_open); }

/* vma.file_writer(dest [, {force=, preserve_owner=}]) -> writer | nil, msg */
int lvma_guest_writer_open(lua_State *L)
{
    const char *dest = luaL_checkstring(L, 1);
    fwriter *w = lua_newuserdatauv(L, sizeof(fwriter), 0);
    memset(w, 0, sizeof(*w));
    w->dest_fd = w->stage_fd = w->cur_fd = -1;
    luaL_setmetatable(L, WRITER_MT);
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "force");
        w->force = lua_toboolean(L, -1);
        lua_getfield(L, 2, "preserve_owner");
        w->preserve_owner = lua_toboolean(L, -1);
        lua_pop(L, 2);
    }
    w->dest_fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dest_fd < 0)
        return lvma_push_errno(L, errno, "cannot open the folder %s", dest);
    char *tmpl = g_build_filename(dest, ".vma-get.XXXXXX", NULL);
    if (!mkdtemp(tmpl)) {
        int e = errno;
        g_free(tmpl);
        writer_cleanup(w);
        return lvma_push_errno(L, e, "cannot create a folder in %s", dest);
    }
    w->stage_name = g_path_get_basename(tmpl);
    g_free(tmpl);
    w->stage_fd = openat(w->dest_fd, w->stage_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (w->stage_fd < 0) {
        int e = errno;
        writer_cleanup(w);
        return lvma_push_errno(L, e, "cannot open a folder in %s", dest);
    }
    w->dest = g_strdup(dest);
    w->dirs = g_ptr_array_new_with_free_func(free_dir);
    w->tops = g_ptr_array_new_with_free_func(free_top);
    w->top_names = g_hash_table_new(g_str_hash, g_str_equal);
    w->merged = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    w->buf = g_malloc(CHUNK);
    w->buf2 = g_malloc(CHUNK);
    w->open = TRUE;
    return 1;
}

/* the components of a relative path, each a valid name: NULL-ended (free
 * with g_strfreev), NULL with a message pushed */
static char **split_rel(lua_State *L, int idx, const char **msg)
{
    size_t len;
    const char *p = luaL_checklstring(L, idx, &len);
    if (len == 0 || strlen(p) != len) {
        *msg = "an empty path, or one with a NUL byte";
        return NULL;
    }
    char **parts = g_strsplit(p, "/", -1);
    for (char **c = parts; *c; c++)
        if (!**c || strcmp(*c, ".") == 0 || strcmp(*c, "..") == 0) {
            g_strfreev(parts);
            *msg = "a path with an empty, '.' or '..' component";
            return NULL;
        }
    return parts;
}

/* the folder holding the last component, opened without following links
 * from the private folder (kept open for the next call): an fd, or -1 */
static int parent_fd(fwriter *w, char **parts, int *err)
{
    guint n = g_strv_length(parts);
    char *ppath = n > 1 ? g_strjoinv("/", parts) : g_strdup("");
    /* cut the last component */
    if (n > 1)
        ppath[strlen(ppath) - strlen(parts[n - 1]) - 1] = 0;
    if (n <= 1) {
        g_free(ppath);
        return w->stage_fd;
    }
    if (w->cur_path && strcmp(w->cur_path, ppath) == 0) {
        g_free(ppath);
        return w->cur_fd;
    }
    close_cur(w);
    int fd = w->stage_fd;
    for (guint i = 0; i + 1 < n; i++) {
        int nfd = openat(fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd != w->stage_fd)
            close(fd);
        if (nfd < 0) {
            *err = errno == ELOOP ? ENOTDIR : errno;
            g_free(ppath);
            return -1;
        }
        fd = nfd;
    }
    w->cur_fd = fd;
    w->cur_path = ppath;
    return fd;
}

static void note_top(fwriter *w, lua_State *L, int idx, char **parts)
{
    if (g_hash_table_contains(w->top_names, parts[0]))
        return;
    top_entry *t = g_new0(top_entry, 1);
    t->name = g_strdup(parts[0]);
    t->target = g_strdup(parts[0]);
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "as");
        if (lua_isstring(L, -1))
            t->target = (g_free(t->target), g_strdup(lua_tostring(L, -1)));
        lua_pop(L, 1);
    }
    g_ptr_array_add(w->tops, t);
    g_hash_table_add(w->top_names, t->name);
}


static void stat_times(lua_State *L, int t, struct timespec ts[2])
{
    ts[0].tv_sec = (time_t)lvma_opt_int(L, t, "atime", 0);
    ts[0].tv_nsec = (long)lvma_opt_int(L, t, "atime_ns", 0);
    ts[1].tv_sec = (time_t)lvma_opt_int(L, t, "mtime", 0);
    ts[1].tv_nsec = (long)lvma_opt_int(L, t, "mtime_ns", 0);
    for (int i = 0; i < 2; i++)
        if (ts[i].tv_nsec < 0 || ts[i].tv_nsec > 999999999)
            ts[i].tv_nsec = 0;
    if (!lua_istable(L, t) || (ts[0].tv_sec == 0 && ts[0].tv_nsec == 0 && ts[1].tv_sec == 0)) {
        ts[0].tv_nsec = ts[1].tv_nsec = UTIME_OMIT;
    }
}

static uint32_t final_mode(fwriter *w, lua_State *L, int t, uint32_t def)
{
    uint32_t mode = (uint32_t)lvma_opt_int(L, t, "mode", def) & 07777;
    if (!w->preserve_owner)
        mode &= ~(uint32_t)(S_ISUID | S_ISGID);
    return mode;
}

static int fail_errno(lua_State *L, int e, const char *what, const char *path)
{
    return lvma_push_errno(L, e, "cannot %s %s", what, path);
}

/* w:mkdir(relpath, stat [, {as=}]) -> true | nil, msg: a folder (an existing
 * folder of this copy is kept); its mode and times are set by commit */
static int w_mkdir(lua_State *L)
{
    fwriter *w = check_writer(L);
    const char *msg;
    char **parts = split_rel(L, 2, &msg);
    if (!parts)
        return lvma_push_argerror(L, "%s", msg);
    int e = 0;
    int pfd = parent_fd(w, parts, &e);
    const char *leaf = parts[g_strv_length(parts) - 1];
    const char *path = lua_tostring(L, 2);
    if (pfd < 0) {
        g_strfreev(parts);
        return fail_errno(L, e, "create the folder", path);
    }
    if (mkdirat(pfd, leaf, 0700) < 0) {
        struct stat st;
        if (errno != EEXIST || fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISDIR(st.st_mode)) {
            e = errno == 0 ? EEXIST : errno;
            g_strfreev(parts);
            return fail_errno(L, e == ENOENT ? EEXIST : e, "create the folder", path);
        }
        g_strfreev(parts);
        lua_pushboolean(L, 1);
        return 1;
    }
    note_top(w, L, 4, parts);
    pending_dir *d = g_new0(pending_dir, 1);
    d->path = g_strdup(path);
    d->mode = final_mode(w, L, 3, 0755);
    d->uid = (uint32_t)lvma_opt_int(L, 3, "uid", 0);
    d->gid = (uint32_t)lvma_opt_int(L, 3, "gid", 0);
    stat_times(L, 3, d->times);
    g_ptr_array_add(w->dirs, d);
    w->folders++;
    g_strfreev(parts);
    lua_pushboolean(L, 1);
    return 1;
}

/* w:symlink(relpath, target, stat [, {as=}]) -> true | nil, msg */
static int w_symlink(lua_State *L)
{
    fwriter *w = check_writer(L);
    const char *msg;
    char **parts = split_rel(L, 2, &msg);
    if (!parts)
        return lvma_push_argerror(L, "%s", msg);
    size_t tlen;
    const char *target = luaL_checklstring(L, 3, &tlen);
    const char *path = lua_tostring(L, 2);
    if (tlen == 0 || strlen(target) != tlen) {
        g_strfreev(parts);
        return lvma_push_argerror(L, "%s: an empty link target, or one with a NUL byte", path);
    }
    int e = 0;
    int pfd = parent_fd(w, parts, &e);
    const char *leaf = parts[g_strv_length(parts) - 1];
    if (pfd < 0 || symlinkat(target, pfd, leaf) < 0) {
        e = pfd < 0 ? e : errno;
        g_strfreev(parts);
        return fail_errno(L, e, "create the link", path);
    }
    if (w->preserve_owner)
        (void)!fchownat(pfd, leaf, (uid_t)lvma_opt_int(L, 4, "uid", 0),
                        (gid_t)lvma_opt_int(L, 4, "gid", 0), AT_SYMLINK_NOFOLLOW);
    struct timespec ts[2];
    stat_times(L, 4, ts);
    utimensat(pfd, leaf, ts, AT_SYMLINK_NOFOLLOW);
    note_top(w, L, 5, parts);
    w->links++;
    g_strfreev(parts);
    lua_pushboolean(L, 1);
    return 1;
}

/* write buf (n bytes at off) leaving its 4 KiB blocks of zeros as holes */
static int write_sparse(fwriter *w, int fd, const uint8_t *buf, size_t n, uint64_t off,
                        GError **err)
{
    size_t i = 0;
    while (i < n) {
        size_t b = MIN((size_t)BLOCK, n - i);
        if (vma_is_zero(buf + i, b)) {
            w->holes += b;
            i += b;
            continue;
        }
        size_t j = i + b;
        while (j < n) {
            size_t c = MIN((size_t)BLOCK, n - j);
            if (vma_is_zero(buf + j, c))
                break;
            j += c;
        }
        if (pwrite_all(fd, buf + i, j - i, off + i, err) < 0)
            return -1;
        i = j;
    }
    return 0;
}

typedef struct {
    GArray *pieces;
} pieces_ud;

static int collect(const vma_piece *p, void *ud)
{
    g_array_append_val(((pieces_ud *)ud)->pieces, *p);
    return 0;
}

typedef struct {
    lua_State *L;
    int progress;         /* a Lua function's index, or 0 */
    uint64_t last;
} progress_ctx;

static void report(progress_ctx *pc, uint64_t done, gboolean force)
{
    if (!pc->progress || (!force && done - pc->last < (32u << 20)))
        return;
    pc->last = done;
    lua_pushvalue(pc->L, pc->progress);
    lua_pushinteger(pc->L, (lua_Integer)done);
    lua_call(pc->L, 1, 0);
}

/* one read of a file, done by a thread of its own while the chunk before
 * is written: the archive's reads and the copy's writes overlap */
typedef struct {
    vma_file *f;
    uint8_t *buf;
    size_t n;
    uint64_t off;
    ssize_t got;
    GError *err;
} rjob;

static gpointer rjob_run(gpointer p)
{
    rjob *j = p;
    j->got = vma_file_pread(j->f, j->buf, j->n, j->off, &j->err);
    return NULL;
}

typedef struct {
    uint64_t off;
    size_t n;
} chunk;

/* copy a guest file (C) into fd */
static int copy_gfile(fwriter *w, vma_file *f, int fd, progress_ctx *pc, GError **err)
{
    uint64_t size = vma_file_size(f);
    GArray *pieces = g_array_new(FALSE, FALSE, sizeof(vma_piece));
    GArray *chunks = g_array_new(FALSE, FALSE, sizeof(chunk));
    uint8_t *bufs[2] = {w->buf, w->buf2};
    int rc = 0;
    for (uint64_t win = 0; win < size && rc == 0; win += WINDOW) {
        g_array_set_size(pieces, 0);
        g_array_set_size(chunks, 0);
        pieces_ud pu = {pieces};
        if (vma_file_map(f, win, MIN(WINDOW, size - win), collect, &pu, err) < 0) {
            rc = -1;
            break;
        }
        for (guint i = 0; i < pieces->len && rc == 0; i++) {
            const vma_piece *p = &g_array_index(pieces, vma_piece, i);
            if (p->kind == VMA_PIECE_ZERO) {
                w->holes += p->length;
                continue;
            }
            if (p->kind == VMA_PIECE_MISSING) {
                g_set_error(err, VMA_ERROR, VMA_ERR_MISSING,
                            "bytes %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT
                            " of the file are in clusters the archive lacks",
                            p->offset, p->offset + p->length);
                rc = -1;
                break;
            }
            for (uint64_t at = p->offset; at < p->offset + p->length;) {
                chunk c = {at, (size_t)MIN((uint64_t)CHUNK, p->offset + p->length - at)};
                g_array_append_val(chunks, c);
                at += c.n;
            }
        }
        rjob jobs[2];
        GThread *t = NULL;
        int cur = 0;
        if (rc == 0 && chunks->len) {
            const chunk *c = &g_array_index(chunks, chunk, 0);
            jobs[0] = (rjob){f, bufs[0], c->n, c->off, 0, NULL};
            t = g_thread_new("vma-get-read", rjob_run, &jobs[0]);
        }
        for (guint k = 0; k < chunks->len && rc == 0; k++) {
            g_thread_join(t);
            t = NULL;
            rjob *j = &jobs[cur];
            if (j->got < 0 || (size_t)j->got != j->n) {
                if (j->got >= 0)
                    g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the file ends early");
                else
                    g_propagate_error(err, j->err);
                rc = -1;
                break;
            }
            if (k + 1 < chunks->len && !vma_interrupted()) {
                const chunk *c = &g_array_index(chunks, chunk, k + 1);
                jobs[1 - cur] = (rjob){f, bufs[1 - cur], c->n, c->off, 0, NULL};
                t = g_thread_new("vma-get-read", rjob_run, &jobs[1 - cur]);
            }
            if (vma_interrupted()) {
                g_set_error_literal(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
                rc = -1;
                break;
            }
            if (write_sparse(w, fd, j->buf, j->n, j->off, err) < 0) {
                rc = -1;
                break;
            }
            w->bytes += j->n;
            report(pc, j->off + j->n, FALSE);
            cur = 1 - cur;
        }
        if (t) {
            /* a read still under way when the copy stopped */
            g_thread_join(t);
            g_clear_error(&jobs[1 - cur].err);
        }
    }
    g_array_free(pieces, TRUE);
    g_array_free(chunks, TRUE);
    return rc;
}

/* copy from a Lua object with a read(n) method (another engine's file) */
static int copy_lua(fwriter *w, lua_State *L, int src, int fd, uint64_t *size, progress_ctx *pc,
                    GError **err)
{
    uint64_t at = 0;
    for (;;) {
        if (vma_interrupted()) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            return -1;
        }
        lua_getfield(L, src, "read");
        lua_pushvalue(L, src);
        lua_pushinteger(L, CHUNK);
        lua_call(L, 2, 2);
        if (lua_isnil(L, -2)) {
            if (lua_isstring(L, -1)) {
                g_set_error(err, VMA_ERROR, VMA_ERR_IO, "%s", lua_tostring(L, -1));
                lua_pop(L, 2);
                return -1;
            }
            lua_pop(L, 2);
            break;
        }
        size_t n;
        const char *s = lua_tolstring(L, -2, &n);
        if (!s || n == 0) {
            lua_pop(L, 2);
            break;
        }
        if (write_sparse(w, fd, (const uint8_t *)s, n, at, err) < 0) {
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 2);
        at += n;
        w->bytes += n;
        report(pc, at, FALSE);
    }
    *size = at;
    return 0;
}

/* w:file(relpath, source, stat [, {as=, progress=}]) -> bytes | nil, msg:
 * source is a guest file (f:read...) */
static int w_file(lua_State *L)
{
    fwriter *w = check_writer(L);
    const char *msg;
    char **parts = split_rel(L, 2, &msg);
    if (!parts)
        return lvma_push_argerror(L, "%s", msg);
    const char *path = lua_tostring(L, 2);
    int e = 0;
    int pfd = parent_fd(w, parts, &e);
    const char *leaf = parts[g_strv_length(parts) - 1];
    if (pfd < 0) {
        g_strfreev(parts);
        return fail_errno(L, e, "create", path);
    }
    int fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        e = errno;
        g_strfreev(parts);
        return fail_errno(L, e, "create", path);
    }
    progress_ctx pc = {L, 0, 0};
    if (lua_istable(L, 5)) {
        lua_getfield(L, 5, "progress");
        if (lua_isfunction(L, -1))
            pc.progress = lua_gettop(L);
        else
            lua_pop(L, 1);
    }
    GError *err = NULL;
    uint64_t size = 0;
    int rc;
    vma_file *gf = lvma_test_guestfile(L, 3);
    if (gf) {
        size = vma_file_size(gf);
        rc = copy_gfile(w, gf, fd, &pc, &err);
    } else {
        luaL_checkany(L, 3);
        rc = copy_lua(w, L, 3, fd, &size, &pc, &err);
    }
    if (rc == 0 && ftruncate(fd, (off_t)size) < 0)
        set_errno(&err, errno, "cannot write %s", path), rc = -1;
    if (rc == 0) {
        if (w->preserve_owner &&
            fchown(fd, (uid_t)lvma_opt_int(L, 4, "uid", 0), (gid_t)lvma_opt_int(L, 4, "gid", 0)) < 0)
            set_errno(&err, errno, "cannot set the owner of %s", path), rc = -1;
        else if (fchmod(fd, (mode_t)final_mode(w, L, 4, 0644)) < 0)
            set_errno(&err, errno, "cannot set the mode of %s", path), rc = -1;
    }
    if (rc == 0) {
        struct timespec ts[2];
        stat_times(L, 4, ts);
        futimens(fd, ts);
    }
    if (close(fd) < 0 && rc == 0)
        set_errno(&err, errno, "cannot write %s", path), rc = -1;
    if (rc < 0) {
        unlinkat(pfd, leaf, 0);
        g_strfreev(parts);
        return lvma_push_error(L, err);
    }
    report(&pc, size, TRUE);
    note_top(w, L, 5, parts);
    w->files++;
    g_strfreev(parts);
    lua_pushinteger(L, (lua_Integer)size);
    return 1;
}

/* w:exists(name) -> true | false: is there an entry name in DEST */
static int w_exists(lua_State *L)
{
    fwriter *w = check_writer(L);
    const char *name = luaL_checkstring(L, 2);
    struct stat st;
    lua_pushboolean(L, fstatat(w->dest_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0);
    return 1;
}

/* move name from the folder sfd into dfd as target; merging folders when
 * force; the path (for messages and the merged set) is rel */
static int move_entry(fwriter *w, int sfd, const char *name, int dfd, const char *target,
                      const char *rel, GError **err)
{
    if (renameat2(sfd, name, dfd, target, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno == EINVAL || errno == ENOSYS) {
        /* no RENAME_NOREPLACE here: link + unlink for files, rename when absent */
        struct stat st;
        if (fstatat(dfd, target, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
            if (renameat(sfd, name, dfd, target) == 0)
                return 0;
        } else {
            errno = EEXIST;
        }
    }
    if (errno != EEXIST) {
        set_errno(err, errno, "cannot move %s into %s", rel, w->dest);
        return -1;
    }
    if (!w->force) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "%s/%s exists (--force replaces it)", w->dest, rel);
        return -1;
    }
    struct stat ss, ds;
    if (fstatat(sfd, name, &ss, AT_SYMLINK_NOFOLLOW) < 0 ||
        fstatat(dfd, target, &ds, AT_SYMLINK_NOFOLLOW) < 0) {
        set_errno(err, errno, "cannot move %s", rel);
        return -1;
    }
    if (S_ISDIR(ss.st_mode) && S_ISDIR(ds.st_mode)) {
        int s2 = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int d2 = openat(dfd, target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s2 < 0 || d2 < 0) {
            set_errno(err, errno, "cannot merge %s", rel);
            if (s2 >= 0)
                close(s2);
            if (d2 >= 0)
                close(d2);
            return -1;
        }
        g_hash_table_add(w->merged, g_strdup(rel));
        DIR *d = fdopendir(s2);
        GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
        struct dirent *de;
        while (d && (de = readdir(d)))
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                g_ptr_array_add(names, g_strdup(de->d_name));
        int rc = 0;
        for (guint i = 0; i < names->len && rc == 0; i++) {
            const char *n = g_ptr_array_index(names, i);
            char *r2 = g_strdup_printf("%s/%s", rel, n);
            rc = move_entry(w, d ? dirfd(d) : s2, n, d2, n, r2, err);
            g_free(r2);
        }
        g_ptr_array_free(names, TRUE);
        if (d)
            closedir(d);
        else
            close(s2);
        close(d2);
        return rc;
    }
    if (S_ISDIR(ds.st_mode)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "%s/%s is a folder: not replaced by a file", w->dest, rel);
        return -1;
    }
    if (S_ISDIR(ss.st_mode)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "%s/%s is not a folder: not replaced by one", w->dest, rel);
        return -1;
    }
    if (renameat(sfd, name, dfd, target) < 0) {
        set_errno(err, errno, "cannot replace %s/%s", w->dest, rel);
        return -1;
    }
    return 0;
}

/* the final path (in DEST) of a path of the private folder */
static char *final_path(fwriter *w, const char *path)
{
    const char *slash = strchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : strlen(path);
    for (guint i = 0; i < w->tops->len; i++) {
        top_entry *t = g_ptr_array_index(w->tops, i);
        if (strlen(t->name) == n && strncmp(t->name, path, n) == 0)
            return g_strconcat(t->target, slash ? slash : "", NULL);
    }
    return g_strdup(path);
}

/* w:commit() -> true | nil, msg */
static int w_commit(lua_State *L)
{
    fwriter *w = check_writer(L);
    close_cur(w);
    GError *err = NULL;
    for (guint i = 0; i < w->tops->len && !err; i++) {
        top_entry *t = g_ptr_array_index(w->tops, i);
        move_entry(w, w->stage_fd, t->name, w->dest_fd, t->target, t->target, &err);
    }
    /* the folders' modes, owners and times, deepest first (not those of
     * folders that were there before) */
    for (guint i = w->dirs->len; i > 0 && !err; i--) {
        pending_dir *d = g_ptr_array_index(w->dirs, i - 1);
        char *fp = final_path(w, d->path);
        if (g_hash_table_contains(w->merged, fp)) {
            g_free(fp);
            continue;
        }
        char **parts = g_strsplit(fp, "/", -1);
        int fd = w->dest_fd;
        for (char **c = parts; *c && fd >= 0; c++) {
            int nfd = openat(fd, *c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd != w->dest_fd)
                close(fd);
            fd = nfd;
        }
        g_strfreev(parts);
        if (fd >= 0) {
            if (w->preserve_owner)
                (void)!fchown(fd, d->uid, d->gid);
            fchmod(fd, d->mode);
            futimens(fd, d->times);
            close(fd);
        }
        g_free(fp);
    }
    if (err) {
        writer_cleanup(w);
        return lvma_push_error(L, err);
    }
    fsync(w->dest_fd);
    writer_cleanup(w);
    lua_pushboolean(L, 1);
    return 1;
}

static int w_abort(lua_State *L)
{
    fwriter *w = luaL_checkudata(L, 1, WRITER_MT);
    if (w->open)
        writer_cleanup(w);
    return 0;
}

/* w:stats() -> {files=, folders=, links=, bytes=, holes=} */
static int w_stats(lua_State *L)
{
    fwriter *w = luaL_checkudata(L, 1, WRITER_MT);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)w->files);
    lua_setfield(L, -2, "files");
    lua_pushinteger(L, (lua_Integer)w->folders);
    lua_setfield(L, -2, "folders");
    lua_pushinteger(L, (lua_Integer)w->links);
    lua_setfield(L, -2, "links");
    lua_pushinteger(L, (lua_Integer)w->bytes);
    lua_setfield(L, -2, "bytes");
    lua_pushinteger(L, (lua_Integer)w->holes);
    lua_setfield(L, -2, "holes");
    return 1;
}

static const luaL_Reg writer_methods[] = {
    {"mkdir", w_mkdir},
    {"symlink", w_symlink},
    {"file", w_file},
    {"exists", w_exists},
    {"commit", w_commit},
    {"abort", w_abort},
    {"stats", w_stats},
    {NULL, NULL},
};

static const luaL_Reg writer_meta[] = {
    {"__gc", w_abort},
    {"__close", w_abort},
    {NULL, NULL},
};

void lvma_open_writer_class(lua_State *L)
{
    lvma_new_class(L, WRITER_MT, writer_meta, writer_methods, NULL, writer_open);
}
