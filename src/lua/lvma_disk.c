/* lvma_disk.c - random access from Lua: r:disk(name) returns a disk whose
 * bytes can be read at any offset, and whose map (data, zero, missing) can
 * be walked, without restoring anything.  A disk is a view of its archive
 * object: it holds a reference to the C archive (which lives while any view
 * does) and to the Lua object (user value 1). */
#define _GNU_SOURCE
#include "lvma.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define COPY_BUF (4u << 20)

typedef struct {
    vma_archive *a;       /* a reference; NULL once closed */
    uint8_t id;
    uint64_t size;
    char *name;
} ldisk;

static gboolean disk_open_p(void *self) { return ((ldisk *)self)->a != NULL; }

static ldisk *check_disk(lua_State *L)
{
    ldisk *dk = luaL_checkudata(L, 1, DISK_MT);
    if (!dk->a)
        luaL_error(L, "attempt to use a closed %s", DISK_MT);
    return dk;
}

vma_archive *lvma_disk_archive(lua_State *L, int idx, uint8_t *dev_id)
{
    ldisk *dk = luaL_checkudata(L, idx, DISK_MT);
    if (!dk->a)
        luaL_error(L, "attempt to use a closed %s", DISK_MT);
    *dev_id = dk->id;
    return dk->a;
}

/* the Lua archive object of a disk (for the wait function's errors) */
static larchive *disk_owner(lua_State *L, int idx)
{
    lua_getiuservalue(L, idx, 1);
    larchive *la = luaL_testudata(L, -1, ARCHIVE_MT);
    lua_pop(L, 1);
    return la;
}

/* a failed read: the wait function's own error, or e */
static int read_failure(lua_State *L, GError *e)
{
    return lvma_wait_failure(L, disk_owner(L, 1), e);
}

static int on_index_progress(uint64_t done, uint64_t total, void *ud)
{
    lvma_progress *pc = ud;
    lua_State *L = pc->L;
    lvma_progress_push(pc);
    lua_createtable(L, 0, 2);
    lvma_set_int(L, "done", (lua_Integer)done);
    lvma_set_int(L, "total", (lua_Integer)total);
    return lvma_progress_call(pc);
}

/* r:disk(name [, {progress = fn}]) -> disk | nil, message, kind.  The first
 * disk makes random access ready: the index (progress: {done =, total =},
 * the options' of vma.open unless given here), or the background decoder
 * started. */
int lvma_archive_disk(lua_State *L)
{
    larchive *la = lvma_check_archive(L, 1);
    const char *name = luaL_checkstring(L, 2);
    const vma_header *h = vma_archive_header(la->a);
    const vma_device *d = NULL;
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID && !d; id++)
        if (h->devices[id] && strcmp(h->devices[id]->name, name) == 0)
            d = h->devices[id];
    if (!d)
        return lvma_push_argerror(L, "no device named '%s' in the archive", name);
    int opts = lua_istable(L, 3) ? 3 : 0;
    if (!opts) {
        lua_getiuservalue(L, 1, 1); /* vma.open's options */
        opts = lua_gettop(L);
    }
    lvma_progress pc = lvma_progress_from(L, opts);
    /* a reference of our own: the callback may close r */
    vma_archive *a = vma_archive_ref(la->a);
    GError *e = NULL;
    int rc = vma_archive_prepare_with(a, pc.fn ? on_index_progress : NULL, &pc, &e);
    if (rc < 0) {
        vma_archive_free(a);
        if (pc.failed)
            return lvma_progress_failure(&pc, e);
        return lvma_wait_failure(L, la, e);
    }
    ldisk *dk = lua_newuserdatauv(L, sizeof(ldisk), 1);
    memset(dk, 0, sizeof(*dk));
    luaL_setmetatable(L, DISK_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    dk->a = a;
    dk->id = d->id;
    dk->size = vma_archive_device_length(a, d->id);
    dk->name = g_strdup(d->name);
    return 1;
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
    ssize_t got = vma_archive_pread(dk->a, dk->id, p, (size_t)n, (uint64_t)o, &e);
    if (got < 0)
        return read_failure(L, e);
    luaL_pushresultsize(&b, (size_t)got);
    return 1;
}

static int first_piece(const vma_piece *p, void *ud)
{
    *(vma_piece *)ud = *p;
    return 1; /* the first (merged) piece is all we want */
}

int lvma_extents_step(lua_State *L, lvma_map_fn map, void *h, int up, uint64_t end)
{
    uint64_t off = (uint64_t)lua_tointeger(L, lua_upvalueindex(up));
    if (off >= end)
        return 0;
    vma_piece p = {0};
    GError *e = NULL;
    if (map(h, off, end - off, first_piece, &p, &e) < 0)
        return lvma_raise(L, e);
    if (p.length == 0)
        return 0;
    lua_pushinteger(L, (lua_Integer)(p.offset + p.length));
    lua_replace(L, lua_upvalueindex(up));
    lua_pushinteger(L, (lua_Integer)p.offset);
    lua_pushinteger(L, (lua_Integer)p.length);
    lua_pushstring(L, p.kind == VMA_PIECE_DATA ? "data" : p.kind == VMA_PIECE_ZERO ? "zero"
                                                                                   : "missing");
    return 3;
}

static int map_disk(void *h, uint64_t off, uint64_t len, vma_piece_fn fn, void *ud, GError **err)
{
    ldisk *dk = h;
    return vma_archive_map(dk->a, dk->id, off, len, fn, ud, err);
}

/* the iterator of disk:extents(): upvalues disk, next offset, end */
static int extents_next(lua_State *L)
{
    ldisk *dk = luaL_checkudata(L, lua_upvalueindex(1), DISK_MT);
    if (!dk->a)
        return luaL_error(L, "attempt to use a closed %s", DISK_MT);
    return lvma_extents_step(L, map_disk, dk, 2, (uint64_t)lua_tointeger(L, lua_upvalueindex(3)));
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
        ssize_t got = vma_archive_pread(dk->a, dk->id, buf, n, pos, &e);
        if (got <= 0 && !e)
            g_set_error(&e, VMA_ERROR, VMA_ERR_INCOMPLETE, "the disk ends early");
        if (got <= 0 || vma_write_all(fd, buf, (size_t)got, &e) < 0)
            break;
        pos += (uint64_t)got;
    }
    g_free(buf);
    if (e)
        return read_failure(L, e);
    lua_pushinteger(L, (lua_Integer)(pos - off));
    return 1;
}

static int disk_close(lua_State *L)
{
    ldisk *dk = luaL_checkudata(L, 1, DISK_MT);
    lvma_drop_archive(&dk->a);
    g_free(dk->name);
    dk->name = NULL;
    return 0;
}

static int disk_tostring(lua_State *L)
{
    ldisk *dk = luaL_checkudata(L, 1, DISK_MT);
    if (dk->a)
        lua_pushfstring(L, "%s (%s)", DISK_MT, dk->name);
    else
        lua_pushfstring(L, "%s (closed)", DISK_MT);
    return 1;
}

static void get_size(lua_State *L, void *self)
{
    lua_pushinteger(L, (lua_Integer)((ldisk *)self)->size);
}
static void get_name(lua_State *L, void *self) { lua_pushstring(L, ((ldisk *)self)->name); }
static void get_id(lua_State *L, void *self) { lua_pushinteger(L, ((ldisk *)self)->id); }

static const lvma_getter disk_getters[] = {
    {"size", get_size},
    {"name", get_name},
    {"id", get_id},
    {NULL, NULL},
};

static const luaL_Reg disk_methods[] = {
    {"read", disk_read},
    {"extents", disk_extents},
    {"copy_to", disk_copy_to},
    {"close", disk_close},
    {NULL, NULL},
};

static const luaL_Reg disk_meta[] = {
    {"__gc", disk_close},
    {"__close", disk_close},
    {"__tostring", disk_tostring},
    {NULL, NULL},
};

void lvma_open_disk(lua_State *L)
{
    lvma_new_class(L, DISK_MT, disk_meta, disk_methods, disk_getters, disk_open_p);
}
