/* lvma_disk.c - random access from Lua: r:disk(name) returns a disk whose
 * bytes can be read at any offset, and whose map (data, zero, missing) can
 * be walked, without restoring anything. */
#define _GNU_SOURCE
#include "lvma.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DISK_MT "vma.disk"
#define COPY_BUF (4u << 20)

typedef struct {
    larchive *arc;
    uint8_t id;
    uint64_t size;
    char *name;
} ldisk;

void lvma_archive_unref(larchive *la)
{
    if (la && --la->refs == 0) {
        vma_archive_free(la->a);
        g_free(la);
    }
}

typedef struct {
    lua_State *L;
    int fn;
} index_progress;

static int on_index_progress(uint64_t done, uint64_t total, void *ud)
{
    index_progress *ip = ud;
    lua_State *L = ip->L;
    lua_pushvalue(L, ip->fn);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)done);
    lua_setfield(L, -2, "done");
    lua_pushinteger(L, (lua_Integer)total);
    lua_setfield(L, -2, "total");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        return 1;
    }
    int stop = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

/* the archive of the reader, opened (and indexed) the first time; 0, or the
 * count of error values pushed */
static int reader_archive(lua_State *L, lreader *lr)
{
    if (lr->arc)
        return 0;
    vma_archive_opts o = {0};
    index_progress ip = {L, 0};
    lua_getiuservalue(L, 1, 1);
    int opts = lua_gettop(L);
    if (lua_istable(L, opts)) {
        lua_getfield(L, opts, "cache");
        const char *c = lua_tostring(L, -1);
        if (c && strcmp(c, "on") == 0)
            o.cache = VMA_CACHE_ON;
        else if (c && strcmp(c, "off") == 0)
            o.cache = VMA_CACHE_OFF;
        else if (c && strcmp(c, "auto") != 0)
            return lvma_push_argerror(L, "cache must be \"auto\", \"on\" or \"off\", not '%s'", c);
        lua_getfield(L, opts, "cache_dir");
        o.cache_dir = lua_tostring(L, -1);
        lua_getfield(L, opts, "frame_cache_mb");
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0)
            o.frame_cache = (uint64_t)lua_tointeger(L, -1) << 20;
        lua_getfield(L, opts, "spill_mb");
        if (lua_isinteger(L, -1))
            o.spill = lua_tointeger(L, -1) > 0 ? (int64_t)lua_tointeger(L, -1) << 20 : -1;
        else if (!lua_isnil(L, -1))
            return lvma_push_argerror(L, "spill_mb must be an integer (0: no spill file)");
        lua_getfield(L, opts, "spill_dir");
        o.spill_dir = lua_tostring(L, -1);
        lua_getfield(L, opts, "progress");
        if (lua_isfunction(L, -1)) {
            ip.fn = lua_gettop(L);
            o.progress = on_index_progress;
            o.ud = &ip;
        }
    }
    GError *e = NULL;
    vma_archive *a = vma_archive_open(lr->path, &o, &e);
    lua_settop(L, opts - 1);
    if (!a)
        return lvma_push_error(L, e);
    lr->arc = g_new0(larchive, 1);
    lr->arc->a = a;
    lr->arc->refs = 1;
    return 0;
}

/* r:disk(name) -> disk | nil, message, kind (name: a device name) */
int lvma_reader_disk(lua_State *L)
{
    lreader *lr = lvma_check_reader(L);
    const char *name = luaL_checkstring(L, 2);
    const vma_device *d = vma_reader_find_device(lr->r, name);
    if (!d)
        return lvma_push_argerror(L, "no device named '%s' in the archive", name);
    int n = reader_archive(L, lr);
    if (n)
        return n;
    ldisk *dk = lua_newuserdatauv(L, sizeof(ldisk), 0);
    memset(dk, 0, sizeof(*dk));
    luaL_setmetatable(L, DISK_MT);
    dk->arc = lr->arc;
    dk->arc->refs++;
    dk->id = d->id;
    dk->size = vma_archive_device_length(lr->arc->a, d->id);
    dk->name = g_strdup(d->name);
    return 1;
}

static ldisk *check_disk(lua_State *L)
{
    ldisk *dk = luaL_checkudata(L, 1, DISK_MT);
    if (!dk->arc)
        luaL_error(L, "attempt to use a closed vma disk");
    return dk;
}

vma_archive *lvma_disk_archive(lua_State *L, int idx, uint8_t *dev_id)
{
    ldisk *dk = luaL_checkudata(L, idx, DISK_MT);
    if (!dk->arc)
        luaL_error(L, "attempt to use a closed vma disk");
    *dev_id = dk->id;
    return dk->arc->a;
}

/* an offset and a length within the disk from arguments i, i+1 */
static void check_range(lua_State *L, ldisk *dk, int i, uint64_t *off, uint64_t *len)
{
    lua_Integer o = luaL_optinteger(L, i, 0);
    lua_Integer n = luaL_optinteger(L, i + 1, (lua_Integer)dk->size - o);
    luaL_argcheck(L, o >= 0, i, "negative offset");
    luaL_argcheck(L, n >= 0, i + 1, "negative length");
    *off = (uint64_t)o;
    *len = (uint64_t)n;
}

/* disk:read(offset, length) -> string (shorter only at the end) | nil, msg, kind */
static int disk_read(lua_State *L)
{
    ldisk *dk = check_disk(L);
    lua_Integer o = luaL_checkinteger(L, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, o >= 0, 2, "negative offset");
    luaL_argcheck(L, n >= 0 && n <= (1 << 30), 3, "length out of range (0..1 GiB)");
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)n);
    GError *e = NULL;
    ssize_t got = vma_archive_pread(dk->arc->a, dk->id, p, (size_t)n, (uint64_t)o, &e);
    if (got < 0)
        return lvma_push_error(L, e);
    luaL_pushresultsize(&b, (size_t)got);
    return 1;
}

static const char *kind_name(vma_piece_kind k)
{
    return k == VMA_PIECE_DATA ? "data" : k == VMA_PIECE_ZERO ? "zero" : "missing";
}

static int first_piece(const vma_piece *p, void *ud)
{
    *(vma_piece *)ud = *p;
    return 1; /* the first (merged) piece is all we want */
}

/* the iterator of disk:extents(): upvalues disk, next offset, end */
static int extents_next(lua_State *L)
{
    ldisk *dk = luaL_checkudata(L, lua_upvalueindex(1), DISK_MT);
    uint64_t off = (uint64_t)lua_tointeger(L, lua_upvalueindex(2));
    uint64_t end = (uint64_t)lua_tointeger(L, lua_upvalueindex(3));
    if (!dk->arc || off >= end)
        return 0;
    vma_piece p = {0};
    GError *e = NULL;
    if (vma_archive_map(dk->arc->a, dk->id, off, end - off, first_piece, &p, &e) < 0)
        return luaL_error(L, "%s", e->message);
    if (p.length == 0)
        return 0;
    lua_pushinteger(L, (lua_Integer)(p.offset + p.length));
    lua_replace(L, lua_upvalueindex(2));
    lua_pushinteger(L, (lua_Integer)p.offset);
    lua_pushinteger(L, (lua_Integer)p.length);
    lua_pushstring(L, kind_name(p.kind));
    return 3;
}

/* for offset, length, kind in disk:extents([offset, length]) */
static int disk_extents(lua_State *L)
{
    ldisk *dk = check_disk(L);
    uint64_t off, len;
    check_range(L, dk, 2, &off, &len);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, (lua_Integer)off);
    lua_pushinteger(L, (lua_Integer)MIN(dk->size, off + len));
    lua_pushcclosure(L, extents_next, 3);
    return 1;
}

/* disk:copy_to(file [, offset, length]) -> bytes | nil, msg, kind: the
 * range written to an open Lua file (io.stdout, a pipe), zeros included */
static int disk_copy_to(lua_State *L)
{
    ldisk *dk = check_disk(L);
    luaL_Stream *f = luaL_checkudata(L, 2, LUA_FILEHANDLE);
    uint64_t off, len;
    check_range(L, dk, 3, &off, &len);
    if (!f->closef)
        return luaL_error(L, "attempt to use a closed file");
    fflush(f->f);
    int fd = fileno(f->f);
    uint64_t end = MIN(dk->size, off + len), pos = off;
    uint8_t *buf = g_malloc(COPY_BUF);
    GError *e = NULL;
    while (pos < end) {
        if (vma_interrupted()) {
            g_set_error(&e, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            break;
        }
        size_t n = (size_t)MIN((uint64_t)COPY_BUF, end - pos);
        ssize_t got = vma_archive_pread(dk->arc->a, dk->id, buf, n, pos, &e);
        if (got <= 0 && !e)
            g_set_error(&e, VMA_ERROR, VMA_ERR_INCOMPLETE, "the disk ends early");
        if (got <= 0 || vma_write_all(fd, buf, (size_t)got, &e) < 0)
            break;
        pos += (uint64_t)got;
    }
    g_free(buf);
    if (e)
        return lvma_push_error(L, e);
    lua_pushinteger(L, (lua_Integer)(pos - off));
    return 1;
}

static int disk_close(lua_State *L)
{
    ldisk *dk = luaL_checkudata(L, 1, DISK_MT);
    lvma_archive_unref(dk->arc);
    dk->arc = NULL;
    g_free(dk->name);
    dk->name = NULL;
    return 0;
}

static int disk_tostring(lua_State *L)
{
    ldisk *dk = luaL_checkudata(L, 1, DISK_MT);
    if (dk->arc)
        lua_pushfstring(L, "vma.disk (%s)", dk->name);
    else
        lua_pushliteral(L, "vma.disk (closed)");
    return 1;
}

static int disk_index(lua_State *L)
{
    ldisk *dk = luaL_checkudata(L, 1, DISK_MT);
    const char *k = luaL_checkstring(L, 2);
    if (dk->arc) {
        if (strcmp(k, "size") == 0) {
            lua_pushinteger(L, (lua_Integer)dk->size);
            return 1;
        }
        if (strcmp(k, "name") == 0) {
            lua_pushstring(L, dk->name);
            return 1;
        }
        if (strcmp(k, "id") == 0) {
            lua_pushinteger(L, dk->id);
            return 1;
        }
    }
    luaL_getmetatable(L, DISK_MT);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, k);
    return 1;
}

static const luaL_Reg disk_methods[] = {
    {"read", disk_read},
    {"extents", disk_extents},
    {"copy_to", disk_copy_to},
    {"close", disk_close},
    {NULL, NULL},
};

static const luaL_Reg disk_meta[] = {
    {"__index", disk_index},
    {"__gc", disk_close},
    {"__close", disk_close},
    {"__tostring", disk_tostring},
    {NULL, NULL},
};

void lvma_open_disk(lua_State *L)
{
    luaL_newmetatable(L, DISK_MT);
    luaL_setfuncs(L, disk_meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, disk_methods, 0);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
}
