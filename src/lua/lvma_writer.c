/* lvma_writer.c - vma.create(path [, opts]): the writer object. */
#define _GNU_SOURCE
#include "lvma.h"
#include "lvma_ext.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WRITER_MT "vma.writer"

typedef struct {
    vma_writer *w;
} lwriter;

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

/* ---------------------------------------------------------------- writer */

static gboolean writer_open_p(void *self);
static lwriter *check_writer(lua_State *L) { return lvma_check_open(L, 1, WRITER_MT, writer_open_p); }

/* vma.create(path, {compress=, level=, threads=, uuid=, ctime=, overwrite=,
 * canonical=}) */
int lvma_create(lua_State *L)
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
        lua_getfield(L, 2, "canonical");
        o.canonical = lua_toboolean(L, -1);
        lua_pop(L, 1);
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
    lvma_progress *pc = ud;
    lua_State *L = pc->L;
    lvma_progress_push(pc);
    const struct {
        const char *k;
        uint64_t v;
    } f[] = {{"size", p->size}, {"done", p->done}, {"zero_bytes", p->zero_bytes},
             {"total_done", p->total_done}};
    lua_createtable(L, 0, 5);
    for (unsigned i = 0; i < G_N_ELEMENTS(f); i++)
        lvma_set_int(L, f[i].k, (lua_Integer)f[i].v);
    lua_pushnumber(L, p->elapsed);
    lua_setfield(L, -2, "elapsed");
    return lvma_progress_call(pc);
}

/* w:write_device(id, <vma.source>, {progress = fn}): a module's own image */
static int write_device_source(lua_State *L, lwriter *lw, lua_Integer id)
{
    vma_ext_ud *ud = lvma_ext_ud(L, 3, VMA_SOURCE_MT);
    if (!ud)
        return luaL_argerror(L, 3, "a path or a vma.source of this vma expected");
    if (!ud->ops.source)
        return lvma_push_argerror(L, "the source is closed");
    lvma_progress pc = lvma_progress_from(L, 4);
    vma_source src = {ud->ops.source, ud->ctx, ud->size, ud->label};
    GError *e = NULL;
    int rc = vma_writer_write_source(lw->w, (uint8_t)id, &src, pc.fn ? write_progress : NULL, &pc,
                                     &e);
    if (rc < 0)
        return lvma_progress_failure(&pc, e);
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
    lvma_progress pc = lvma_progress_from(L, 4);
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
        return lvma_progress_failure(&pc, e);
    lua_pushboolean(L, 1);
    return 1;
}

/* w:copy_from(archive [, {progress = fn}]): the archive (vma.open), read
 * once more, copied into this (empty) writer extent by extent */
static int writer_copy_from(lua_State *L)
{
    lwriter *lw = check_writer(L);
    larchive *la = lvma_check_archive(L, 2);
    lvma_progress pc = lvma_progress_from(L, 3);
    GError *e = NULL;
    vma_reader *r = vma_archive_stream(la->a, &e);
    if (!r)
        return lvma_push_error(L, e);
    int rc = vma_writer_copy(lw->w, r, pc.fn ? lvma_restore_progress : NULL, &pc, &e);
    vma_reader_free(r);
    if (rc < 0)
        return lvma_progress_failure(&pc, e);
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
    lvma_set_int(L, "size", (lua_Integer)st.size);
    lvma_set_int(L, "zero_bytes", (lua_Integer)st.zero_bytes);
    lvma_set_int(L, "clusters", (lua_Integer)st.clusters);
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

static gboolean writer_open_p(void *self) { return ((lwriter *)self)->w != NULL; }

static void get_writer_uuid(lua_State *L, void *self)
{
    uint8_t u[16];
    vma_writer_uuid(((lwriter *)self)->w, u);
    lvma_push_uuid(L, u);
}

static const lvma_getter writer_getters[] = {
    {"uuid", get_writer_uuid},
    {NULL, NULL},
};

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
    {"__gc", writer_abort},
    {"__close", writer_abort},
    {"__tostring", writer_tostring},
    {NULL, NULL},
};

void lvma_open_writer(lua_State *L)
{
    lvma_new_class(L, WRITER_MT, writer_meta, writer_methods, writer_getters, writer_open_p);
}
