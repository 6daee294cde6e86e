/* lvma.c - the Lua 5.4 binding of libvma: the module "vma".
 * One userdata type per open object (reader, writer), errors returned as
 * nil, message, kind; __gc and __close are safe to run twice.  The file and
 * process helpers of the module are in lvma_os.c. */
#define _GNU_SOURCE
#include "lvma.h"
#include "lvma_ext.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define WRITER_MT "vma.writer"

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
    case VMA_ERR_NOT_SEEKABLE: return "not-seekable";
    case VMA_ERR_MISSING: return "missing";
    default: return "error";
    }
}

/* push nil, message, kind and free the error: the luaL_fileresult style */
int lvma_push_error(lua_State *L, GError *e)
{
    lua_pushnil(L);
    lua_pushstring(L, e ? e->message : "unknown error");
    lua_pushstring(L, e ? error_kind(e) : "error");
    if (e)
        g_error_free(e);
    return 3;
}

int lvma_push_errno(lua_State *L, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    GError *e = g_error_new(VMA_ERROR, errnum == EINTR ? VMA_ERR_INTERRUPTED : VMA_ERR_IO,
                            "%s: %s", msg, g_strerror(errnum));
    g_free(msg);
    return lvma_push_error(L, e);
}

int lvma_push_argerror(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    GError *e = g_error_new_literal(VMA_ERROR, VMA_ERR_ARG, msg);
    g_free(msg);
    return lvma_push_error(L, e);
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

lreader *lvma_check_reader(lua_State *L)
{
    lreader *lr = luaL_checkudata(L, 1, READER_MT);
    if (!lr->r)
        luaL_error(L, "attempt to use a closed vma reader");
    return lr;
}

/* vma.open(path [, {cache=, cache_dir=, progress=}]): the options are for
 * random access (r:disk), which opens the archive again by its path */
static int l_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    GError *e = NULL;
    lreader *lr = lua_newuserdatauv(L, sizeof(lreader), 1);
    memset(lr, 0, sizeof(*lr));
    luaL_setmetatable(L, READER_MT);
    if (lua_istable(L, 2)) {
        lua_pushvalue(L, 2);
        lua_setiuservalue(L, -2, 1); /* kept for r:disk() */
    }
    lr->r = vma_reader_open(path, &e);
    if (!lr->r)
        return lvma_push_error(L, e);
    lr->path = g_strdup(path);
    return 1;
}

static int reader_close(lua_State *L)
{
    lreader *lr = luaL_checkudata(L, 1, READER_MT);
    if (lr->r) {
        vma_reader_free(lr->r);
        lr->r = NULL;
    }
    lvma_archive_unref(lr->arc);
    lr->arc = NULL;
    g_free(lr->path);
    lr->path = NULL;
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
    lreader *lr = lvma_check_reader(L);
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
    lreader *lr = lvma_check_reader(L);
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
    lreader *lr = lvma_check_reader(L);
    const char *name = luaL_optstring(L, 2, "qemu-server.conf");
    const vma_config *c = vma_reader_find_config(lr->r, name);
    if (!c)
        return lvma_push_error(L, g_error_new(VMA_ERROR, VMA_ERR_MISSING,
                                              "unable to find configuration data '%s'", name));
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
    return lvma_push_error(pc->L, e);
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

/* the target of one device from its Lua table (on top of the stack):
 * opened, or nil, message, kind pushed (returns that count) */
static int open_target(lua_State *L, const vma_device *d, vma_target *t)
{
    memset(t, 0, sizeof(*t));
    t->fd = -1;
    /* { sink = <vma.sink>, write_zero =, fresh = }: a module's own target
     * (vma.rbd), written through its ops; it stays open, owned by Lua */
    lua_getfield(L, -1, "sink");
    if (!lua_isnil(L, -1)) {
        vma_sink_ud *ud = luaL_testudata(L, -1, VMA_SINK_MT);
        lua_pop(L, 1);
        if (!ud || ud->abi != VMA_EXT_ABI)
            return lvma_push_argerror(L, "target of '%s': sink is not a vma.sink of this vma",
                                      d->name);
        if (!ud->ops)
            return lvma_push_argerror(L, "target of '%s': the sink is closed", d->name);
        if (!d->is_vmstate && ud->size < d->size)
            return lvma_push_argerror(L, "target %s is smaller (%" G_GUINT64_FORMAT " bytes) "
                                      "than %s (%" G_GUINT64_FORMAT " bytes)", ud->label,
                                      ud->size, d->name, d->size);
        ud->hooks.interrupted = vma_interrupted;
        ud->hooks.domain = VMA_ERROR;
        lua_getfield(L, -1, "fresh");
        lua_getfield(L, -2, "write_zero");
        lua_getfield(L, -3, "bps");
        t->fresh = lua_toboolean(L, -3);
        t->write_zero = lua_toboolean(L, -2);
        t->bps = (uint64_t)lua_tointeger(L, -1);
        lua_pop(L, 3);
        t->ops = ud->ops;
        t->ctx = ud->ctx;
        t->label = ud->label;
        return 0;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "path");
    lua_getfield(L, -2, "fresh");
    lua_getfield(L, -3, "write_zero");
    lua_getfield(L, -4, "bps");
    lua_getfield(L, -5, "mode");
    const char *path = lua_tostring(L, -5);
    t->fresh = lua_toboolean(L, -4);
    t->write_zero = lua_toboolean(L, -3);
    t->bps = (uint64_t)lua_tointeger(L, -2);
    mode_t mode = lua_isinteger(L, -1) ? (mode_t)lua_tointeger(L, -1) : 0600;
    lua_pop(L, 5);
    if (!path)
        return lvma_push_argerror(L, "target of '%s' has no path", d->name);
    int flags = O_WRONLY | O_CLOEXEC | (t->fresh ? O_CREAT | O_EXCL : 0);
    t->fd = open(path, flags, mode);
    if (t->fd < 0)
        return lvma_push_errno(L, errno, "cannot open %s", path);
    /* the mode asked for, whatever the umask */
    if (t->fresh && fchmod(t->fd, mode) < 0)
        return lvma_push_errno(L, errno, "cannot set the mode of %s", path);
    /* the path lives in the options table, which outlives the restore */
    t->label = path;
    return 0;
}

/* opts.targets -> targets[] (every key must name a device); 0, or the count
 * of the error values pushed */
static int open_targets(lua_State *L, lreader *lr, int opts, vma_target *tstore,
                        vma_target *targets[VMA_MAX_DEV_ID + 1])
{
    const vma_header *h = vma_reader_header(lr->r);
    lua_getfield(L, opts, "targets");
    int tt = lua_gettop(L);
    if (!lua_istable(L, tt)) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushnil(L);
    while (lua_next(L, tt)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!k || !vma_reader_find_device(lr->r, k))
            return lvma_push_argerror(L, "no device named '%s' in the archive",
                                      k ? k : "(not a string)");
    }
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = h->devices[id];
        if (!d)
            continue;
        lua_getfield(L, tt, d->name);
        if (lua_istable(L, -1)) {
            int n = open_target(L, d, &tstore[id]);
            if (n)
                return n;
            targets[id] = &tstore[id];
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* salvage: the damage met, kept in a Lua table (the first ones only) */
#define MAX_DAMAGE_KEPT 1000
#define MAX_RANGES_KEPT 10000

typedef struct {
    lua_State *L;
    int table;
    lua_Integer n;
} damage_list;

static void on_damage(uint64_t offset, const char *what, void *ud)
{
    damage_list *dl = ud;
    if (dl->n >= MAX_DAMAGE_KEPT)
        return;
    lua_State *L = dl->L;
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)offset);
    lua_setfield(L, -2, "offset");
    lua_pushstring(L, what);
    lua_setfield(L, -2, "what");
    lua_rawseti(L, dl->table, ++dl->n);
}

typedef struct {
    lua_State *L;
    const vma_device *d;
    lua_Integer n;
} range_list;

static void on_missing(uint64_t start, uint64_t end, void *ud)
{
    range_list *rl = ud;
    if (rl->n >= MAX_RANGES_KEPT)
        return;
    lua_State *L = rl->L;
    uint64_t off = start * VMA_CLUSTER_SIZE;
    uint64_t stop = MIN(end * VMA_CLUSTER_SIZE, rl->d->size);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)off);
    lua_setfield(L, -2, "offset");
    lua_pushinteger(L, (lua_Integer)(stop - off));
    lua_setfield(L, -2, "length");
    lua_rawseti(L, -2, ++rl->n);
}

/* stats.damage = {{offset=, what=}...}, stats.damage_events = N,
 * stats.missing = { [devname] = {bytes=, ranges={{offset=, length=}...}} } */
static void push_salvage_report(lua_State *L, lreader *lr, int damage_table)
{
    const vma_header *h = vma_reader_header(lr->r);
    lua_pushvalue(L, damage_table);
    lua_setfield(L, -2, "damage");
    lua_pushinteger(L, (lua_Integer)vma_reader_damage_events(lr->r));
    lua_setfield(L, -2, "damage_events");
    lua_newtable(L);
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = h->devices[id];
        if (!d || d->is_vmstate)
            continue;
        uint64_t missing = vma_reader_missing(lr->r, (uint8_t)id);
        lua_createtable(L, 0, 2);
        uint64_t last = vma_clusters(d->size);
        /* the last cluster may be short */
        uint64_t bytes = missing * VMA_CLUSTER_SIZE;
        if (missing && !vma_reader_has_cluster(lr->r, (uint8_t)id, (uint32_t)(last - 1)))
            bytes -= last * VMA_CLUSTER_SIZE - d->size;
        lua_pushinteger(L, (lua_Integer)bytes);
        lua_setfield(L, -2, "bytes");
        lua_newtable(L);
        range_list rl = {L, d, 0};
        vma_reader_foreach_missing(lr->r, (uint8_t)id, on_missing, &rl);
        lua_setfield(L, -2, "ranges");
        lua_setfield(L, -2, d->name);
    }
    lua_setfield(L, -2, "missing");
}

/* reader:extract{ targets = { [devname] = {path=, write_zero=, fresh=, bps=, mode=} },
 *                 progress = fn, salvage = bool } -> stats | nil, msg, kind
 * Devices without a target need not be complete: only what is restored is. */
static int do_restore(lua_State *L, gboolean with_targets)
{
    lreader *lr = lvma_check_reader(L);
    if (lr->consumed)
        return lvma_push_argerror(L, "the archive was already read: open it again");
    int opts = lua_istable(L, 2) ? 2 : 0;
    const vma_header *h = vma_reader_header(lr->r);
    vma_target tstore[VMA_MAX_DEV_ID + 1];
    vma_target *targets[VMA_MAX_DEV_ID + 1] = {0};
    progress_ctx pc = progress_from(L, opts);
    int nret = 0;
    if (with_targets && opts)
        nret = open_targets(L, lr, opts, tstore, targets);
    if (nret)
        goto close_targets;
    gboolean salvage = FALSE;
    if (opts) {
        lua_getfield(L, opts, "salvage");
        salvage = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_newtable(L);
    damage_list dl = {L, lua_gettop(L), 0};
    if (salvage)
        vma_reader_set_salvage(lr->r, on_damage, &dl);
    for (unsigned id = 1; with_targets && id <= VMA_MAX_DEV_ID; id++)
        if (h->devices[id] && !targets[id])
            vma_reader_set_optional(lr->r, (uint8_t)id, TRUE);

    lr->consumed = TRUE;
    vma_stats st;
    GError *e = NULL;
    int rc = vma_restore(lr->r, targets, pc.fn ? restore_progress : NULL, &pc, &st, &e);
    if (rc < 0) {
        nret = push_failure(&pc, e);
    } else {
        push_stats(L, &st);
        if (salvage)
            push_salvage_report(L, lr, dl.table);
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
    {"disk", lvma_reader_disk},
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

/* vma.create(path, {compress=, level=, threads=, uuid=, ctime=, overwrite=}) */
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
                return lvma_push_argerror(L, "unknown compression '%s'", lua_tostring(L, -1));
            o.compress = (vma_compress)c;
        }
        lua_getfield(L, 2, "level");
        if (!lua_isnil(L, -1)) {
            int isint = 0;
            lua_Integer v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
            if (!isint)
                return lvma_push_argerror(L, "the compression level must be an integer");
            if (v < INT_MIN || v > INT_MAX)
                return lvma_push_argerror(L, "compression level %lld is out of range", (long long)v);
            o.level = (int)v;
        }
        lua_getfield(L, 2, "threads");
        if (!lua_isnil(L, -1)) {
            int isint = 0;
            lua_Integer v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
            if (!isint)
                return lvma_push_argerror(L, "threads must be an integer");
            o.threads = v < INT_MIN ? INT_MIN : v > INT_MAX ? INT_MAX : (int)v;
        }
        lua_getfield(L, 2, "ctime");
        if (lua_isinteger(L, -1))
            o.ctime = lua_tointeger(L, -1);
        lua_getfield(L, 2, "overwrite");
        o.overwrite = lua_toboolean(L, -1);
        lua_getfield(L, 2, "uuid");
        if (lua_isstring(L, -1)) {
            if (parse_uuid(lua_tostring(L, -1), uuid) < 0)
                return lvma_push_argerror(L, "bad uuid '%s'", lua_tostring(L, -1));
            o.uuid = uuid;
        }
        lua_pop(L, 6);
        GError *e = NULL;
        if (!vma_compress_check(o.compress, o.level, o.threads, &e))
            return lvma_push_error(L, e);
    }
    lwriter *lw = lua_newuserdatauv(L, sizeof(lwriter), 0);
    lw->w = NULL;
    luaL_setmetatable(L, WRITER_MT);
    GError *e = NULL;
    lw->w = vma_writer_create(path, &o, &e);
    if (!lw->w)
        return lvma_push_error(L, e);
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
        return lvma_push_error(L, e);
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
        return lvma_push_error(L, e);
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
        return lvma_push_error(L, e);
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

/* w:write_device(id, <vma.source>, {progress = fn}): a module's own image */
static int write_device_source(lua_State *L, lwriter *lw, lua_Integer id)
{
    vma_source_ud *ud = luaL_testudata(L, 3, VMA_SOURCE_MT);
    if (!ud || ud->abi != VMA_EXT_ABI)
        return luaL_argerror(L, 3, "a path or a vma.source of this vma expected");
    if (!ud->ops)
        return lvma_push_argerror(L, "the source is closed");
    ud->hooks.interrupted = vma_interrupted;
    ud->hooks.domain = VMA_ERROR;
    progress_ctx pc = progress_from(L, 4);
    vma_source src = {ud->ops, ud->ctx, ud->size, ud->label};
    GError *e = NULL;
    int rc = vma_writer_write_source(lw->w, (uint8_t)id, &src, pc.fn ? write_progress : NULL, &pc,
                                     &e);
    if (rc < 0)
        return push_failure(&pc, e);
    lua_pushboolean(L, 1);
    return 1;
}

/* w:write_device(id, path | <vma.source>, {progress = fn}) */
static int writer_write_device(lua_State *L)
{
    lwriter *lw = check_writer(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    if (id < 1 || id > 255)
        return luaL_argerror(L, 2, "device id out of range");
    if (lua_type(L, 3) == LUA_TUSERDATA)
        return write_device_source(L, lw, id);
    const char *path = luaL_checkstring(L, 3);
    progress_ctx pc = progress_from(L, 4);
    int fd = strcmp(path, "-") == 0 ? dup(0) : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lvma_push_errno(L, errno, "cannot open %s", path);
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return lvma_push_argerror(L, "%s is a folder, not a disk image", path);
    }
    GError *e = NULL;
    int rc = vma_writer_write_fd(lw->w, (uint8_t)id, fd, path, pc.fn ? write_progress : NULL,
                                 &pc, &e);
    close(fd);
    if (rc < 0)
        return push_failure(&pc, e);
    lua_pushboolean(L, 1);
    return 1;
}

/* w:copy_from(reader [, {progress = fn}]): the reader's archive, copied
 * into this (empty) writer extent by extent */
static int writer_copy_from(lua_State *L)
{
    lwriter *lw = check_writer(L);
    lreader *lr = luaL_checkudata(L, 2, READER_MT);
    if (!lr->r)
        return luaL_error(L, "attempt to use a closed vma reader");
    if (lr->consumed)
        return lvma_push_argerror(L, "the archive was already read: open it again");
    lr->consumed = TRUE;
    progress_ctx pc = progress_from(L, 3);
    GError *e = NULL;
    if (vma_writer_copy(lw->w, lr->r, pc.fn ? restore_progress : NULL, &pc, &e) < 0)
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
        return lvma_push_error(L, e);
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
    {"copy_from", writer_copy_from},
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
    if (!vma_md5(s, len, out))
        return luaL_error(L, "MD5 failed (libcrypto)");
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
    lvma_open_disk(L);
    luaL_newlib(L, vma_funcs);
    lvma_open_os(L);
    lvma_open_guest(L);
    lua_pushliteral(L, VMA_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushinteger(L, VMA_CLUSTER_SIZE);
    lua_setfield(L, -2, "CLUSTER_SIZE");
    lua_pushinteger(L, VMA_BLOCK_SIZE);
    lua_setfield(L, -2, "BLOCK_SIZE");
    /* vma.codecs.zstd = {name =, suffix =, aliases = {...}, level_min =,
     * level_max =, level_default =, max_threads =} (codec/codecs.c), and
     * vma.compress_levels.zstd = {min =, max =, default =}; none: {} */
    lua_newtable(L);
    lua_newtable(L);
    for (unsigned i = 0; i < VMA_N_CODECS; i++) {
        const vma_codec *k = vma_codec_get((vma_compress)i);
        lua_createtable(L, 0, 8);
        lua_pushstring(L, k->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, k->suffix);
        lua_setfield(L, -2, "suffix");
        lua_newtable(L);
        for (int j = 0; k->aliases[j]; j++) {
            lua_pushstring(L, k->aliases[j]);
            lua_rawseti(L, -2, j + 1);
        }
        lua_setfield(L, -2, "aliases");
        lua_pushinteger(L, k->level_min);
        lua_setfield(L, -2, "level_min");
        lua_pushinteger(L, k->level_max);
        lua_setfield(L, -2, "level_max");
        lua_pushinteger(L, k->level_default);
        lua_setfield(L, -2, "level_default");
        lua_pushinteger(L, k->max_threads);
        lua_setfield(L, -2, "max_threads");
        lua_setfield(L, -3, k->name);
        lua_newtable(L);
        if (k->level_max > 0) {
            lua_pushinteger(L, k->level_min);
            lua_setfield(L, -2, "min");
            lua_pushinteger(L, k->level_max);
            lua_setfield(L, -2, "max");
            lua_pushinteger(L, k->level_default);
            lua_setfield(L, -2, "default");
        }
        lua_setfield(L, -2, k->name);
    }
    lua_setfield(L, -3, "compress_levels");
    lua_setfield(L, -2, "codecs");
    return 1;
}
