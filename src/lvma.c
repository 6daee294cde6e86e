/* lvma.c - the Lua 5.4 binding of libvma: the module "vma".
 * One userdata type per open object (reader, writer), errors returned as
 * nil, message, kind; __gc and __close are safe to run twice. */
#define _GNU_SOURCE
#include "vma.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>
#include <uuid/uuid.h>

#include <lua.h>
#include <lauxlib.h>

#define READER_MT "vma.reader"
#define WRITER_MT "vma.writer"

typedef struct {
    vma_reader *r;
    gboolean consumed;
} lreader;

typedef struct {
    vma_writer *w;
} lwriter;

static const char *error_kind(const GError *e)
{
    switch (e->code) {
    case VMA_ERR_IO: return "io";
    case VMA_ERR_FORMAT: return "format";
    case VMA_ERR_INCOMPLETE: return "incomplete";
    case VMA_ERR_ARG: return "argument";
    case VMA_ERR_INTERRUPTED: return "interrupted";
    default: return "error";
    }
}

/* push nil, message, kind and free the error: the luaL_fileresult style */
static int push_error(lua_State *L, GError *e)
{
    lua_pushnil(L);
    lua_pushstring(L, e ? e->message : "unknown error");
    lua_pushstring(L, e ? error_kind(e) : "error");
    if (e)
        g_error_free(e);
    return 3;
}

/* nil, "<what> <path>: <strerror>", "io" */
static int push_errno(lua_State *L, int errnum, const char *what, const char *path)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, g_strerror(errnum));
    lua_pushstring(L, errnum == EINTR ? "interrupted" : "io");
    return 3;
}

/* nil, message, "argument" */
static int push_argerror(lua_State *L, const char *fmt, const char *arg)
{
    lua_pushnil(L);
    lua_pushfstring(L, fmt, arg);
    lua_pushliteral(L, "argument");
    return 3;
}

static void push_uuid(lua_State *L, const uint8_t u[16])
{
    char s[37];
    vma_uuid_format(u, s);
    lua_pushstring(L, s);
}

static int parse_uuid(const char *s, uint8_t out[16])
{
    int n = 0;
    for (const char *p = s; *p; p++) {
        if (n == 32)
            return -1; /* more than 32 hex digits */
        if (*p == '-')
            continue;
        int v = g_ascii_xdigit_value(*p);
        if (v < 0)
            return -1;
        if (n % 2 == 0)
            out[n / 2] = (uint8_t)(v << 4);
        else
            out[n / 2] |= (uint8_t)v;
        n++;
    }
    return n == 32 ? 0 : -1;
}

/* ---------------------------------------------------------------- reader */

static lreader *check_reader(lua_State *L)
{
    lreader *lr = luaL_checkudata(L, 1, READER_MT);
    if (!lr->r)
        luaL_error(L, "attempt to use a closed vma reader");
    return lr;
}

static int l_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    GError *e = NULL;
    lreader *lr = lua_newuserdatauv(L, sizeof(lreader), 0);
    lr->r = NULL;
    lr->consumed = FALSE;
    luaL_setmetatable(L, READER_MT);
    lr->r = vma_reader_open(path, &e);
    if (!lr->r)
        return push_error(L, e);
    return 1;
}

static int reader_close(lua_State *L)
{
    lreader *lr = luaL_checkudata(L, 1, READER_MT);
    if (lr->r) {
        vma_reader_free(lr->r);
        lr->r = NULL;
    }
    return 0;
}

static int reader_tostring(lua_State *L)
{
    lreader *lr = luaL_checkudata(L, 1, READER_MT);
    if (!lr->r) {
        lua_pushliteral(L, "vma.reader (closed)");
    } else {
        char s[37];
        vma_uuid_format(vma_reader_header(lr->r)->uuid, s);
        lua_pushfstring(L, "vma.reader (%s)", s);
    }
    return 1;
}

static void push_device(lua_State *L, const vma_device *d)
{
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, d->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, d->name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, (lua_Integer)d->size);
    lua_setfield(L, -2, "size");
    lua_pushboolean(L, d->is_vmstate);
    lua_setfield(L, -2, "vmstate");
}

static int reader_devices(lua_State *L)
{
    lreader *lr = check_reader(L);
    const vma_header *h = vma_reader_header(lr->r);
    lua_createtable(L, (int)h->n_devices, 0);
    int n = 0;
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        if (!h->devices[id])
            continue;
        push_device(L, h->devices[id]);
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

static int reader_configs(lua_State *L)
{
    lreader *lr = check_reader(L);
    const vma_header *h = vma_reader_header(lr->r);
    lua_createtable(L, (int)h->n_configs, 0);
    for (unsigned i = 0; i < h->n_configs; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, h->configs[i].name);
        lua_setfield(L, -2, "name");
        lua_pushlstring(L, (const char *)h->configs[i].data, h->configs[i].len);
        lua_setfield(L, -2, "data");
        lua_pushinteger(L, (lua_Integer)h->configs[i].len);
        lua_setfield(L, -2, "size");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int reader_config(lua_State *L)
{
    lreader *lr = check_reader(L);
    const char *name = luaL_optstring(L, 2, "qemu-server.conf");
    const vma_config *c = vma_reader_find_config(lr->r, name);
    if (!c) {
        lua_pushnil(L);
        lua_pushfstring(L, "unable to find configuration data '%s'", name);
        lua_pushliteral(L, "argument");
        return 3;
    }
    lua_pushlstring(L, (const char *)c->data, c->len);
    return 1;
}

typedef struct {
    lua_State *L;
    int fn;          /* stack index of the progress function, 0 = none */
    gboolean failed; /* the callback raised an error (message on the stack) */
} progress_ctx;

/* opts.progress, when it is a function, stays on the stack for the work */
static progress_ctx progress_from(lua_State *L, int opts)
{
    progress_ctx pc = {L, 0, FALSE};
    if (opts && lua_istable(L, opts)) {
        lua_getfield(L, opts, "progress");
        if (lua_isfunction(L, -1))
            pc.fn = lua_gettop(L);
        else
            lua_pop(L, 1);
    }
    return pc;
}

/* call the function with the argument pushed after it: non-zero stops the
 * work (the callback returned false or a string, or raised an error) */
static int progress_call(progress_ctx *pc)
{
    lua_State *L = pc->L;
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        pc->failed = TRUE;
        return 1; /* the message stays on the stack */
    }
    int stop = lua_type(L, -1) == LUA_TSTRING ||
               (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1));
    lua_pop(L, 1);
    return stop;
}

/* the result of work that failed: the callback's own error, or err */
static int push_failure(progress_ctx *pc, GError *e)
{
    if (pc->failed) {
        g_clear_error(&e);
        lua_pushnil(pc->L);
        lua_insert(pc->L, -2);
        lua_pushliteral(pc->L, "callback");
        return 3;
    }
    return push_error(pc->L, e);
}

static void push_stats(lua_State *L, const vma_stats *st)
{
    lua_createtable(L, 0, 9);
#define F(name) do { lua_pushinteger(L, (lua_Integer)st->name); lua_setfield(L, -2, #name); } while (0)
    F(clusters_total);
    F(clusters_done);
    F(bytes_archive);
    F(bytes_written);
    F(zero_bytes);
    F(partial_zero_bytes);
    F(vmstate_bytes);
#undef F
    lua_pushinteger(L, (lua_Integer)(st->clusters_done * VMA_CLUSTER_SIZE));
    lua_setfield(L, -2, "bytes_read");
    lua_pushnumber(L, st->elapsed);
    lua_setfield(L, -2, "elapsed");
}

static int restore_progress(const vma_stats *st, void *ud)
{
    progress_ctx *pc = ud;
    lua_State *L = pc->L;
    lua_pushvalue(L, pc->fn);
    push_stats(L, st);
    return progress_call(pc);
}

static int open_target(const char *path, gboolean fresh, int *fd_out)
{
    int flags = O_WRONLY | O_CLOEXEC | (fresh ? O_CREAT | O_EXCL : 0);
    int fd = open(path, flags, 0644);
    if (fd < 0)
        return -1;
    *fd_out = fd;
    return 0;
}

/* reader:extract{ targets = { [devname] = {path=, write_zero=, fresh=, bps=} },
 *                 progress = fn } -> stats | nil, msg, kind */
static int do_restore(lua_State *L, gboolean with_targets)
{
    lreader *lr = check_reader(L);
    if (lr->consumed) {
        lua_pushnil(L);
        lua_pushliteral(L, "the archive was already read: open it again");
        lua_pushliteral(L, "argument");
        return 3;
    }
    int opts = lua_istable(L, 2) ? 2 : 0;
    const vma_header *h = vma_reader_header(lr->r);
    vma_target tstore[VMA_MAX_DEV_ID + 1];
    vma_target *targets[VMA_MAX_DEV_ID + 1] = {0};
    progress_ctx pc = progress_from(L, opts);
    int nret;

    if (with_targets && opts) {
        lua_getfield(L, opts, "targets");
        int tt = lua_gettop(L);
        if (lua_istable(L, tt)) {
            /* refuse names that are not devices of the archive */
            lua_pushnil(L);
            while (lua_next(L, tt)) {
                lua_pop(L, 1);
                const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
                if (!k || !vma_reader_find_device(lr->r, k)) {
                    lua_pushnil(L);
                    lua_pushfstring(L, "no device named '%s' in the archive",
                                    k ? k : "(not a string)");
                    lua_pushliteral(L, "argument");
                    return 3;
                }
            }
            for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
                const vma_device *d = h->devices[id];
                if (!d)
                    continue;
                lua_getfield(L, tt, d->name);
                if (lua_istable(L, -1)) {
                    vma_target *t = &tstore[id];
                    memset(t, 0, sizeof(*t));
                    t->fd = -1;
                    lua_getfield(L, -1, "path");
                    const char *path = lua_tostring(L, -1);
                    lua_getfield(L, -2, "fresh");
                    t->fresh = lua_toboolean(L, -1);
                    lua_getfield(L, -3, "write_zero");
                    t->write_zero = lua_toboolean(L, -1);
                    lua_getfield(L, -4, "bps");
                    t->bps = (uint64_t)lua_tointeger(L, -1);
                    lua_pop(L, 2);
                    if (!path) {
                        lua_pushnil(L);
                        lua_pushfstring(L, "target of '%s' has no path", d->name);
                        lua_pushliteral(L, "argument");
                        nret = 3;
                        goto close_targets;
                    }
                    if (open_target(path, t->fresh, &t->fd) < 0) {
                        nret = push_errno(L, errno, "cannot open", path);
                        goto close_targets;
                    }
                    lua_pop(L, 2); /* fresh, path */
                    targets[id] = t;
                }
                lua_pop(L, 1);
            }
        }
    }

    lr->consumed = TRUE;
    vma_stats st;
    GError *e = NULL;
    int rc = vma_restore(lr->r, targets, pc.fn ? restore_progress : NULL, &pc, &st, &e);
    if (rc < 0) {
        nret = push_failure(&pc, e);
    } else {
        push_stats(L, &st);
        nret = 1;
    }
close_targets:
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        if (targets[id] && targets[id]->fd >= 0)
            close(targets[id]->fd);
    }
    return nret;
}

static int reader_verify(lua_State *L) { return do_restore(L, FALSE); }
static int reader_extract(lua_State *L) { return do_restore(L, TRUE); }

static int reader_index(lua_State *L)
{
    lreader *lr = luaL_checkudata(L, 1, READER_MT);
    const char *k = luaL_checkstring(L, 2);
    if (lr->r) {
        const vma_header *h = vma_reader_header(lr->r);
        if (strcmp(k, "uuid") == 0) {
            push_uuid(L, h->uuid);
            return 1;
        }
        if (strcmp(k, "ctime") == 0) {
            lua_pushinteger(L, h->ctime);
            return 1;
        }
        if (strcmp(k, "compression") == 0) {
            lua_pushstring(L, vma_compress_name(vma_reader_compression(lr->r)));
            return 1;
        }
        if (strcmp(k, "header_size") == 0) {
            lua_pushinteger(L, h->header_size);
            return 1;
        }
    }
    luaL_getmetatable(L, READER_MT);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, k);
    return 1;
}

static const luaL_Reg reader_methods[] = {
    {"devices", reader_devices},
    {"configs", reader_configs},
    {"config", reader_config},
    {"verify", reader_verify},
    {"extract", reader_extract},
    {"close", reader_close},
    {NULL, NULL},
};

static const luaL_Reg reader_meta[] = {
    {"__index", reader_index},
    {"__gc", reader_close},
    {"__close", reader_close},
    {"__tostring", reader_tostring},
    {NULL, NULL},
};

/* ---------------------------------------------------------------- writer */

static lwriter *check_writer(lua_State *L)
{
    lwriter *lw = luaL_checkudata(L, 1, WRITER_MT);
    if (!lw->w)
        luaL_error(L, "attempt to use a closed vma writer");
    return lw;
}

/* vma.create(path, {compress=, level=, uuid=, ctime=, overwrite=}) */
static int l_create(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    vma_writer_opts o = {.ctime = -1};
    uint8_t uuid[16];
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "compress");
        if (lua_isstring(L, -1)) {
            int c = vma_compress_from_name(lua_tostring(L, -1));
            if (c < 0)
                return push_argerror(L, "unknown compression '%s'", lua_tostring(L, -1));
            o.compress = (vma_compress)c;
        }
        lua_getfield(L, 2, "level");
        o.level = (int)lua_tointeger(L, -1);
        lua_getfield(L, 2, "ctime");
        if (lua_isinteger(L, -1))
            o.ctime = lua_tointeger(L, -1);
        lua_getfield(L, 2, "overwrite");
        o.overwrite = lua_toboolean(L, -1);
        lua_getfield(L, 2, "uuid");
        if (lua_isstring(L, -1)) {
            if (parse_uuid(lua_tostring(L, -1), uuid) < 0)
                return push_argerror(L, "bad uuid '%s'", lua_tostring(L, -1));
            o.uuid = uuid;
        }
        lua_pop(L, 5);
    }
    lwriter *lw = lua_newuserdatauv(L, sizeof(lwriter), 0);
    lw->w = NULL;
    luaL_setmetatable(L, WRITER_MT);
    GError *e = NULL;
    lw->w = vma_writer_create(path, &o, &e);
    if (!lw->w)
        return push_error(L, e);
    return 1;
}

static int writer_add_config(lua_State *L)
{
    lwriter *lw = check_writer(L);
    const char *name = luaL_checkstring(L, 2);
    size_t len;
    const char *data = luaL_checklstring(L, 3, &len);
    GError *e = NULL;
    if (vma_writer_add_config(lw->w, name, data, len, &e) < 0)
        return push_error(L, e);
    lua_pushboolean(L, 1);
    return 1;
}

static int writer_add_device(lua_State *L)
{
    lwriter *lw = check_writer(L);
    const char *name = luaL_checkstring(L, 2);
    lua_Integer size = luaL_checkinteger(L, 3);
    if (size <= 0)
        return luaL_argerror(L, 3, "size must be positive");
    GError *e = NULL;
    int id = vma_writer_add_device(lw->w, name, (uint64_t)size, &e);
    if (id < 0)
        return push_error(L, e);
    lua_pushinteger(L, id);
    return 1;
}

static int writer_write_cluster(lua_State *L)
{
    lwriter *lw = check_writer(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    lua_Integer cluster = luaL_checkinteger(L, 3);
    size_t len = 0;
    const char *data = luaL_optlstring(L, 4, NULL, &len);
    if (id < 1 || id > 255)
        return luaL_argerror(L, 2, "device id out of range");
    if (cluster < 0 || cluster > (lua_Integer)UINT32_MAX)
        return luaL_argerror(L, 3, "cluster out of range");
    uint8_t *buf = NULL;
    if (data) {
        /* a short string is padded with zeros to a whole cluster */
        if (len > VMA_CLUSTER_SIZE)
            return luaL_argerror(L, 4, "more than 65536 bytes");
        buf = g_malloc0(VMA_CLUSTER_SIZE);
        memcpy(buf, data, len);
    }
    GError *e = NULL;
    int rc = vma_writer_write_cluster(lw->w, (uint8_t)id, (uint32_t)cluster, buf, &e);
    g_free(buf);
    if (rc < 0)
        return push_error(L, e);
    lua_pushboolean(L, 1);
    return 1;
}

static int write_progress(const vma_write_progress *p, void *ud)
{
    progress_ctx *pc = ud;
    lua_State *L = pc->L;
    lua_pushvalue(L, pc->fn);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)p->size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)p->done);
    lua_setfield(L, -2, "done");
    lua_pushinteger(L, (lua_Integer)p->zero_bytes);
    lua_setfield(L, -2, "zero_bytes");
    lua_pushinteger(L, (lua_Integer)p->total_done);
    lua_setfield(L, -2, "total_done");
    lua_pushnumber(L, p->elapsed);
    lua_setfield(L, -2, "elapsed");
    return progress_call(pc);
}

/* w:write_device(id, path, {progress = fn}) */
static int writer_write_device(lua_State *L)
{
    lwriter *lw = check_writer(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    const char *path = luaL_checkstring(L, 3);
    if (id < 1 || id > 255)
        return luaL_argerror(L, 2, "device id out of range");
    progress_ctx pc = progress_from(L, 4);
    int fd = strcmp(path, "-") == 0 ? dup(0) : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return push_errno(L, errno, "cannot open", path);
    GError *e = NULL;
    int rc = vma_writer_write_fd(lw->w, (uint8_t)id, fd, pc.fn ? write_progress : NULL, &pc, &e);
    close(fd);
    if (rc < 0)
        return push_failure(&pc, e);
    lua_pushboolean(L, 1);
    return 1;
}

static int writer_stats(lua_State *L)
{
    lwriter *lw = check_writer(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    if (id < 1 || id > 255)
        return luaL_argerror(L, 2, "device id out of range");
    vma_device_stats st;
    vma_writer_device_stats(lw->w, (uint8_t)id, &st);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)st.size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)st.zero_bytes);
    lua_setfield(L, -2, "zero_bytes");
    lua_pushinteger(L, (lua_Integer)st.clusters);
    lua_setfield(L, -2, "clusters");
    return 1;
}

static int writer_close(lua_State *L)
{
    lwriter *lw = check_writer(L);
    GError *e = NULL;
    int rc = vma_writer_close(lw->w, &e);
    vma_writer_free(lw->w);
    lw->w = NULL;
    if (rc < 0)
        return push_error(L, e);
    lua_pushboolean(L, 1);
    return 1;
}

/* __gc, __close and w:abort(): drop the writer; an unfinished archive is
 * removed.  Closing a writer explicitly is the only way to keep it. */
static int writer_abort(lua_State *L)
{
    lwriter *lw = luaL_checkudata(L, 1, WRITER_MT);
    if (lw->w) {
        vma_writer_free(lw->w);
        lw->w = NULL;
    }
    return 0;
}

static int writer_tostring(lua_State *L)
{
    lwriter *lw = luaL_checkudata(L, 1, WRITER_MT);
    if (!lw->w) {
        lua_pushliteral(L, "vma.writer (closed)");
    } else {
        uint8_t u[16];
        char s[37];
        vma_writer_uuid(lw->w, u);
        vma_uuid_format(u, s);
        lua_pushfstring(L, "vma.writer (%s)", s);
    }
    return 1;
}

static int writer_index(lua_State *L)
{
    lwriter *lw = luaL_checkudata(L, 1, WRITER_MT);
    const char *k = luaL_checkstring(L, 2);
    if (lw->w && strcmp(k, "uuid") == 0) {
        uint8_t u[16];
        vma_writer_uuid(lw->w, u);
        push_uuid(L, u);
        return 1;
    }
    luaL_getmetatable(L, WRITER_MT);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, k);
    return 1;
}

static const luaL_Reg writer_methods[] = {
    {"add_config", writer_add_config},
    {"add_device", writer_add_device},
    {"write_cluster", writer_write_cluster},
    {"write_device", writer_write_device},
    {"stats", writer_stats},
    {"close", writer_close},
    {"abort", writer_abort},
    {NULL, NULL},
};

static const luaL_Reg writer_meta[] = {
    {"__index", writer_index},
    {"__gc", writer_abort},
    {"__close", writer_abort},
    {"__tostring", writer_tostring},
    {NULL, NULL},
};

/* ---------------------------------------------------------------- helpers */

static int l_md5(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    uint8_t out[16];
    vma_md5(s, len, out);
    lua_pushlstring(L, (const char *)out, 16);
    return 1;
}

static int l_is_safe_name(lua_State *L)
{
    const char *s = luaL_checkstring(L, 1);
    GError *e = NULL;
    if (vma_name_is_safe(s, &e)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, e->message);
    g_error_free(e);
    return 2;
}

/* vma.stat(path) -> {type=, size=} | nil, msg; block devices report their size */
static int l_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) < 0) {
        return push_errno(L, errno, "cannot stat", path);
    }
    lua_createtable(L, 0, 3);
    const char *type = S_ISREG(st.st_mode) ? "file" : S_ISBLK(st.st_mode) ? "block"
                     : S_ISDIR(st.st_mode) ? "directory" : S_ISFIFO(st.st_mode) ? "fifo"
                     : S_ISCHR(st.st_mode) ? "char" : "other";
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
    lua_Integer size = st.st_size;
    if (S_ISBLK(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        uint64_t sz = 0;
        if (fd >= 0 && ioctl(fd, BLKGETSIZE64, &sz) == 0)
            size = (lua_Integer)sz;
        if (fd >= 0)
            close(fd);
    }
    lua_pushinteger(L, size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)st.st_mtime);
    lua_setfield(L, -2, "mtime");
    return 1;
}

static int l_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer mode = luaL_optinteger(L, 2, 0755);
    if (mkdir(path, (mode_t)mode) < 0) {
        return push_errno(L, errno, "cannot create directory", path);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_rmdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (rmdir(path) < 0) {
        return push_errno(L, errno, "cannot remove directory", path);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* vma.write_file(path, data): a new file (never an existing one), fsynced */
static int l_write_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return push_errno(L, errno, "cannot create", path);
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int en = w < 0 ? errno : ENOSPC;
            close(fd);
            unlink(path);
            return push_errno(L, en, "cannot write", path);
        }
        done += (size_t)w;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        int en = errno;
        unlink(path);
        return push_errno(L, en, "cannot write", path);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* vma.rename(old, new): never replaces an existing file */
static int l_rename(lua_State *L)
{
    const char *from = luaL_checkstring(L, 1);
    const char *to = luaL_checkstring(L, 2);
    int rc = renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
    if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) {
        /* file systems without RENAME_NOREPLACE: link() never replaces */
        rc = link(from, to);
        if (rc == 0)
            unlink(from);
    }
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot rename %s to %s: %s", from, to, g_strerror(errno));
        lua_pushliteral(L, "io");
        return 3;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_fsync_dir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        int en = errno;
        if (fd >= 0)
            close(fd);
        return push_errno(L, en, "cannot sync", path);
    }
    close(fd);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_isatty(lua_State *L)
{
    int fd = (int)luaL_optinteger(L, 1, 1);
    lua_pushboolean(L, isatty(fd));
    return 1;
}

static int l_terminal_width(lua_State *L)
{
    int fd = (int)luaL_optinteger(L, 1, 2);
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        lua_pushinteger(L, ws.ws_col);
    else
        lua_pushinteger(L, 80);
    return 1;
}

static void on_signal(int sig)
{
    vma_interrupt();
    /* a second signal of the same kind ends the process the usual way */
    signal(sig, SIG_DFL);
}

/* vma.catch_signals(): SIGINT, SIGTERM and SIGHUP stop long work at the next
 * extent, so that the caller can clean up */
static int l_catch_signals(lua_State *L)
{
    (void)L;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    return 0;
}

static int l_interrupted(lua_State *L)
{
    lua_pushboolean(L, vma_interrupted());
    return 1;
}

static int l_uuid_generate(lua_State *L)
{
    uuid_t u;
    uuid_generate(u);
    push_uuid(L, u);
    return 1;
}

static const luaL_Reg vma_funcs[] = {
    {"open", l_open},
    {"create", l_create},
    {"md5", l_md5},
    {"is_safe_name", l_is_safe_name},
    {"stat", l_stat},
    {"mkdir", l_mkdir},
    {"rmdir", l_rmdir},
    {"write_file", l_write_file},
    {"rename", l_rename},
    {"fsync_dir", l_fsync_dir},
    {"isatty", l_isatty},
    {"terminal_width", l_terminal_width},
    {"catch_signals", l_catch_signals},
    {"interrupted", l_interrupted},
    {"uuid", l_uuid_generate},
    {NULL, NULL},
};

static void new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
}

int luaopen_vma(lua_State *L)
{
    new_class(L, READER_MT, reader_meta, reader_methods);
    new_class(L, WRITER_MT, writer_meta, writer_methods);
    luaL_newlib(L, vma_funcs);
    lua_pushliteral(L, VMA_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushinteger(L, VMA_CLUSTER_SIZE);
    lua_setfield(L, -2, "CLUSTER_SIZE");
    lua_pushinteger(L, VMA_BLOCK_SIZE);
    lua_setfield(L, -2, "BLOCK_SIZE");
    return 1;
}
