/* lvma_guest.c - the guest's volumes and files from Lua: volumes
 * (vma.volume: a disk, a partition, an LVM logical volume), the in-process
 * file systems on them (vma.fs), their files (vma.guestfile, read like Lua's
 * own files), walks of their trees, and the writer that copies files out
 * (vma.filewriter: never outside its folder, temporary names, sparse files
 * kept sparse).  The decisions (which volumes a disk has, how LVM volumes
 * are assembled, which engine opens a volume, the guest's mount table) are
 * in Lua, lua/vma/guest.lua; r:guest(), r:volumes(), d:volumes() and
 * vol:fs() call it. */
#define _GNU_SOURCE
#include "lvma.h"
#include "lvma_guest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VOLUME_MT  "vma.volume"
#define FS_MT      "vma.fs"
#define GFILE_MT   "vma.guestfile"
#define WALK_MT    "vma.walk"

#define READ_CHUNK (1u << 20)
#define MAX_READ   (1u << 30)

/* ---------------------------------------------------------------- shared */

static const char *ftype_name(vma_ftype t)
{
    switch (t) {
    case VMA_FT_FILE: return "file";
    case VMA_FT_DIR: return "directory";
    case VMA_FT_LINK: return "link";
    case VMA_FT_CHR: return "char";
    case VMA_FT_BLK: return "block";
    case VMA_FT_FIFO: return "fifo";
    case VMA_FT_SOCK: return "socket";
    default: return "unknown";
    }
}

/* nil, message, kind; "not-found" for a guest path that is not there */
static int push_gerror(lua_State *L, GError *e, const char *path)
{
    if (!e)
        return lvma_push_error(L, NULL);
    if (path) {
        char *m = g_strdup_printf("%s: %s", path, e->message);
        g_free(e->message);
        e->message = m;
    }
    if (e->code == VMA_ERR_NOT_FOUND) {
        lua_pushnil(L);
        lua_pushstring(L, e->message);
        lua_pushliteral(L, "not-found");
        g_error_free(e);
        return 3;
    }
    return lvma_push_error(L, e);
}

static void push_stat(lua_State *L, const vma_stat *st)
{
    lua_createtable(L, 0, 16);
    lvma_set_str(L, "type", ftype_name(st->type));
    lvma_set_int(L, "ino", (lua_Integer)st->ino);
    lvma_set_int(L, "mode", st->mode);
    lvma_set_int(L, "uid", st->uid);
    lvma_set_int(L, "gid", st->gid);
    lvma_set_int(L, "nlink", st->nlink);
    lvma_set_int(L, "size", (lua_Integer)st->size);
    lvma_set_int(L, "blocks", (lua_Integer)st->blocks);
    lvma_set_int(L, "mtime", st->mtime);
    lvma_set_int(L, "mtime_ns", st->mtime_ns);
    lvma_set_int(L, "atime", st->atime);
    lvma_set_int(L, "atime_ns", st->atime_ns);
    lvma_set_int(L, "ctime", st->ctime);
    lvma_set_int(L, "ctime_ns", st->ctime_ns);
    if (st->btime || st->btime_ns) {
        lvma_set_int(L, "btime", st->btime);
        lvma_set_int(L, "btime_ns", st->btime_ns);
    }
    if (st->type == VMA_FT_CHR || st->type == VMA_FT_BLK) {
        lvma_set_int(L, "rdev_major", st->rdev_major);
        lvma_set_int(L, "rdev_minor", st->rdev_minor);
    }
}

/* the rest of an iterator's step after its name: the stat, or (rc < 0)
 * nil and e's message; the count of values pushed with the name */
static int push_entry(lua_State *L, int rc, const vma_stat *st, GError *e)
{
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, e->message);
        g_error_free(e);
        return 3;
    }
    push_stat(L, st);
    return 2;
}


/* call require("vma.guest")[fn] with the arguments of this call */
static int call_lua(lua_State *L, const char *fn)
{
    int n = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "vma.guest");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* an object whose metatable has a methods table and a user value 1 that
 * holds its fields: the methods first, then the fields */
static int index_with_info(lua_State *L, const char *mt)
{
    luaL_getmetatable(L, mt);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL)
        return 1;
    lua_getiuservalue(L, 1, 1);
    if (!lua_istable(L, -1))
        return 0;
    lua_pushvalue(L, 2);
    lua_gettable(L, -2);
    return 1;
}

static int newindex_info(lua_State *L)
{
    lua_getiuservalue(L, 1, 1);
    if (!lua_istable(L, -1))
        return luaL_error(L, "attempt to set a field of a closed object");
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_settable(L, -3);
    return 0;
}

static void new_info(lua_State *L)
{
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
}

/* a property of a guest object: pushes its value from the handle */
typedef struct {
    const char *name;
    void (*push)(lua_State *L, void *handle);
} gprop;

/* __index of a guest object whose userdata starts with its handle (NULL
 * once closed): its properties while open, then its methods and fields */
static int index_props(lua_State *L, const char *mt, const gprop *props)
{
    void **h = luaL_checkudata(L, 1, mt);
    const char *k = luaL_checkstring(L, 2);
    for (const gprop *p = props; *h && p->name; p++)
        if (strcmp(k, p->name) == 0) {
            p->push(L, *h);
            return 1;
        }
    return index_with_info(L, mt);
}

static void free_volume(void *v) { vma_volume_free(v); }
static void free_fs(void *fs) { vma_fs_free(fs); }
static void free_file(void *f) { vma_file_free(f); }

/* close: the handle freed and NULL from then on */
static int close_handle(lua_State *L, const char *mt, void (*free_fn)(void *))
{
    void **h = luaL_checkudata(L, 1, mt);
    free_fn(*h);
    *h = NULL;
    return 0;
}

/* ---------------------------------------------------------------- volumes */

typedef struct {
    vma_volume *v;
} lvolume;

static lvolume *push_volume(lua_State *L, vma_volume *v)
{
    lvolume *lv = lua_newuserdatauv(L, sizeof(lvolume), 1);
    lv->v = v;
    luaL_setmetatable(L, VOLUME_MT);
    new_info(L);
    return lv;
}

static lvolume *check_volume_at(lua_State *L, int i)
{
    lvolume *lv = luaL_checkudata(L, i, VOLUME_MT);
    if (!lv->v)
        luaL_error(L, "attempt to use a closed vma volume");
    return lv;
}

static lvolume *check_volume(lua_State *L) { return check_volume_at(L, 1); }

/* vma.volume(disk) -> the whole disk as a volume */
static int l_volume(lua_State *L)
{
    uint8_t id;
    vma_archive *a = lvma_disk_archive(L, 1, &id);
    GError *e = NULL;
    vma_volume *v = vma_volume_disk(a, id, &e);
    if (!v)
        return lvma_push_error(L, e);
    push_volume(L, v);
    return 1;
}

/* vma.volume_join({ {volume, offset, length}, ... }) -> a volume made of
 * those ranges end to end (an LVM logical volume); all of one archive */
static int l_volume_join(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n >= 1 && n <= (1 << 20), 1, "1 to 1048576 ranges");
    GArray *segs = g_array_new(FALSE, FALSE, sizeof(vma_segment));
    vma_archive *a = NULL;
    GError *e = NULL;
    for (lua_Integer i = 1; i <= n && !e; i++) {
        lua_geti(L, 1, i);
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_geti(L, -1, 1);
        lvolume *src = check_volume_at(L, lua_gettop(L));
        lua_geti(L, -2, 2);
        lua_geti(L, -3, 3);
        lua_Integer off = luaL_checkinteger(L, -2), len = luaL_checkinteger(L, -1);
        lua_pop(L, 4);
        if (a && vma_volume_archive(src->v) != a) {
            g_set_error_literal(&e, VMA_ERROR, VMA_ERR_ARG, "the ranges of a volume must be of one archive");
            break;
        }
        a = vma_volume_archive(src->v);
        if (off < 0 || len <= 0) {
            g_set_error_literal(&e, VMA_ERROR, VMA_ERR_ARG, "a range needs an offset >= 0 and a length > 0");
            break;
        }
        vma_volume *piece = vma_volume_slice(src->v, (uint64_t)off, (uint64_t)len, &e);
        if (!piece)
            break;
        size_t ns;
        const vma_segment *s = vma_volume_segments(piece, &ns);
        g_array_append_vals(segs, s, (guint)ns);
        vma_volume_free(piece);
    }
    vma_volume *v = e ? NULL : vma_volume_new(a, (vma_segment *)segs->data, segs->len, &e);
    g_array_free(segs, TRUE);
    if (!v)
        return lvma_push_error(L, e);
    push_volume(L, v);
    return 1;
}

/* vol:read(offset, length) -> string */
static int vol_read(lua_State *L)
{
    lvolume *lv = check_volume(L);
    lua_Integer o = luaL_checkinteger(L, 2), n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, o >= 0, 2, "negative offset");
    luaL_argcheck(L, n >= 0 && n <= MAX_READ, 3, "length out of range (0..1 GiB)");
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)n);
    GError *e = NULL;
    ssize_t got = vma_volume_pread(lv->v, p, (size_t)n, (uint64_t)o, &e);
    if (got < 0)
        return lvma_push_error(L, e);
    luaL_pushresultsize(&b, (size_t)got);
    return 1;
}

static int map_volume(void *h, uint64_t off, uint64_t len, vma_piece_fn fn, void *ud,
                      GError **err)
{
    return vma_volume_map(h, off, len, fn, ud, err);
}

static int vol_extents_next(lua_State *L)
{
    lvolume *lv = luaL_checkudata(L, lua_upvalueindex(1), VOLUME_MT);
    if (!lv->v)
        return 0;
    return lvma_extents_step(L, map_volume, lv->v, 2, (uint64_t)lua_tointeger(L, lua_upvalueindex(3)));
}

/* for offset, length, kind in vol:extents([offset, length]) */
static int vol_extents(lua_State *L)
{
    lvolume *lv = check_volume(L);
    uint64_t size = vma_volume_size(lv->v);
    lua_Integer o = luaL_optinteger(L, 2, 0);
    lua_Integer n = luaL_optinteger(L, 3, (lua_Integer)size);
    luaL_argcheck(L, o >= 0, 2, "negative offset");
    luaL_argcheck(L, n >= 0, 3, "negative length");
    lua_pushvalue(L, 1);
    lua_pushinteger(L, o);
    lua_pushinteger(L, (lua_Integer)MIN(size, (uint64_t)o + (uint64_t)n));
    lua_pushcclosure(L, vol_extents_next, 3);
    return 1;
}

/* the volume at 1 read by a reader of what it may hold (1 found, 0
 * nothing there, -1 with err): 0 with *out filled, else the values pushed
 * (false, or nil, message, kind) */
typedef int (*vol_reader)(vma_volume *v, void *out, GError **err);
static int read_volume(lua_State *L, vol_reader read, void *out)
{
    GError *e = NULL;
    int r = read(check_volume(L)->v, out, &e);
    if (r < 0)
        return lvma_push_error(L, e);
    if (r == 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    return 0;
}

static int read_partitions(vma_volume *v, void *out, GError **err)
{
    return vma_partitions_read(v, out, err);
}

static int read_lvm_pv(vma_volume *v, void *out, GError **err)
{
    return vma_lvm_pv_read(v, out, err);
}

/* vol:partitions() -> {scheme=, disk_uuid=, sector=, warning=, {number=,
 * start=, length=, type=, uuid=, name=, extended=, bootable=, truncated=},
 * ...} | false (no table) | nil, message, kind */
static int vol_partitions(lua_State *L)
{
    vma_partition_table t;
    int n = read_volume(L, read_partitions, &t);
    if (n)
        return n;
    lua_createtable(L, (int)t.n, 4);
    lvma_set_str(L, "scheme", t.scheme);
    lvma_set_str(L, "disk_uuid", t.disk_uuid);
    lvma_set_int(L, "sector", t.sector);
    if (t.warning)
        lvma_set_str(L, "warning", t.warning);
    for (unsigned i = 0; i < t.n; i++) {
        const vma_partition *p = &t.parts[i];
        lua_createtable(L, 0, 9);
        lvma_set_int(L, "number", p->number);
        lvma_set_int(L, "start", (lua_Integer)p->start);
        lvma_set_int(L, "length", (lua_Integer)p->length);
        lvma_set_str(L, "type", p->type);
        lvma_set_str(L, "uuid", p->uuid);
        lvma_set_str(L, "name", p->name);
        lvma_set_bool(L, "extended", p->extended);
        lvma_set_bool(L, "bootable", p->bootable);
        lvma_set_bool(L, "truncated", p->truncated);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    vma_partition_table_clear(&t);
    return 1;
}

/* vol:probe() -> {type=, usage=, label=, uuid=, size=, free=} */
static int vol_probe(lua_State *L)
{
    lvolume *lv = check_volume(L);
    vma_probe p;
    GError *e = NULL;
    if (vma_volume_probe(lv->v, &p, &e) < 0)
        return lvma_push_error(L, e);
    lua_createtable(L, 0, 6);
    lvma_set_str(L, "type", p.type);
    lvma_set_str(L, "usage", p.usage);
    lvma_set_str(L, "label", p.label);
    lvma_set_str(L, "uuid", p.uuid);
    if (p.size)
        lvma_set_int(L, "size", (lua_Integer)p.size);
    if (p.has_free)
        lvma_set_int(L, "free", (lua_Integer)p.free);
    return 1;
}

/* vol:lvm_pv() -> {pv_uuid=, device_size=, data_offset=, metadata=} |
 * false (no LVM label) | nil, message, kind */
static int vol_lvm_pv(lua_State *L)
{
    vma_lvm_pv pv;
    int n = read_volume(L, read_lvm_pv, &pv);
    if (n)
        return n;
    lua_createtable(L, 0, 4);
    lvma_set_str(L, "pv_uuid", pv.pv_uuid);
    lvma_set_int(L, "device_size", (lua_Integer)pv.device_size);
    lvma_set_int(L, "data_offset", (lua_Integer)pv.data_offset);
    if (pv.metadata) {
        lua_pushlstring(L, pv.metadata, pv.metadata_len);
        lua_setfield(L, -2, "metadata");
    }
    vma_lvm_pv_clear(&pv);
    return 1;
}

/* vol:slice(offset, length) -> volume */
static int vol_slice(lua_State *L)
{
    lvolume *lv = check_volume(L);
    lua_Integer o = luaL_checkinteger(L, 2), n = luaL_checkinteger(L, 3);
    GError *e = NULL;
    if (o < 0 || n <= 0)
        return lvma_push_argerror(L, "a slice needs an offset >= 0 and a length > 0");
    vma_volume *v = vma_volume_slice(lv->v, (uint64_t)o, (uint64_t)n, &e);
    if (!v)
        return lvma_push_error(L, e);
    push_volume(L, v);
    return 1;
}

/* vol:segments() -> { {dev_id, offset, length}, ... } */
static int vol_segments(lua_State *L)
{
    lvolume *lv = check_volume(L);
    size_t n;
    const vma_segment *s = vma_volume_segments(lv->v, &n);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 3, 0);
        lua_pushinteger(L, s[i].dev_id);
        lua_rawseti(L, -2, 1);
        lua_pushinteger(L, (lua_Integer)s[i].offset);
        lua_rawseti(L, -2, 2);
        lua_pushinteger(L, (lua_Integer)s[i].length);
        lua_rawseti(L, -2, 3);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

typedef struct {
    vma_fs *fs;
} lfs;

/* vol:open_fs([type]) -> fs (the in-process reader) | nil, message, kind */
static int vol_open_fs(lua_State *L)
{
    lvolume *lv = check_volume(L);
    const char *type = luaL_optstring(L, 2, NULL);
    GError *e = NULL;
    vma_fs *fs = vma_fs_open(lv->v, type, &e);
    if (!fs)
        return lvma_push_error(L, e);
    lfs *f = lua_newuserdatauv(L, sizeof(lfs), 1);
    f->fs = fs;
    luaL_setmetatable(L, FS_MT);
    new_info(L);
    return 1;
}

static int vol_fs(lua_State *L)
{
    check_volume(L);
    return call_lua(L, "fs");
}

static void vol_size(lua_State *L, void *v) { lua_pushinteger(L, (lua_Integer)vma_volume_size(v)); }
static const gprop volume_props[] = {{"size", vol_size}, {NULL, NULL}};
static int vol_close(lua_State *L) { return close_handle(L, VOLUME_MT, free_volume); }
static int vol_index(lua_State *L) { return index_props(L, VOLUME_MT, volume_props); }

static int vol_tostring(lua_State *L)
{
    lvolume *lv = luaL_checkudata(L, 1, VOLUME_MT);
    if (!lv->v) {
        lua_pushliteral(L, "vma.volume (closed)");
        return 1;
    }
    lua_getiuservalue(L, 1, 1);
    lua_getfield(L, -1, "name");
    lua_pushfstring(L, "vma.volume (%s)", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    return 1;
}

/* ---------------------------------------------------------------- file systems */

static lfs *check_fs(lua_State *L)
{
    lfs *f = luaL_checkudata(L, 1, FS_MT);
    if (!f->fs)
        luaL_error(L, "attempt to use a closed vma file system");
    return f;
}

/* the guest path at argument 2 of f looked up (links at its end followed
 * or not): 0, or the error pushed (its count) */
static int lookup_arg(lua_State *L, lfs *f, gboolean follow, vma_stat *st)
{
    const char *path = luaL_checkstring(L, 2);
    GError *e = NULL;
    return vma_fs_lookup(f->fs, path, follow, st, &e) < 0 ? push_gerror(L, e, path) : 0;
}

/* what the guest path at argument 2 of the fs at 1 names, looked up and
 * opened by open (a folder, a walk, a file, a link's target): it, or NULL
 * with the error pushed (*n values) */
typedef void *(*ino_open_fn)(vma_fs *fs, uint64_t ino, GError **err);
static void *open_path(lua_State *L, gboolean follow, ino_open_fn open, vma_stat *st, int *n)
{
    lfs *f = check_fs(L);
    *n = lookup_arg(L, f, follow, st);
    if (*n)
        return NULL;
    GError *e = NULL;
    void *x = open(f->fs, st->ino, &e);
    if (!x)
        *n = push_gerror(L, e, lua_tostring(L, 2));
    return x;
}

static void *open_link(vma_fs *fs, uint64_t ino, GError **err) { return vma_fs_readlink(fs, ino, err); }
static void *open_dir(vma_fs *fs, uint64_t ino, GError **err) { return vma_fs_opendir(fs, ino, err); }
static void *open_walk(vma_fs *fs, uint64_t ino, GError **err) { return vma_fs_walk(fs, ino, err); }
static void *open_file(vma_fs *fs, uint64_t ino, GError **err) { return vma_fs_open_file(fs, ino, err); }

/* fs:stat(path [, follow]) -> stat | nil, message, kind */
static int fs_stat(lua_State *L)
{
    lfs *f = check_fs(L);
    vma_stat st;
    int n = lookup_arg(L, f, lua_toboolean(L, 3), &st);
    if (n)
        return n;
    push_stat(L, &st);
    return 1;
}

/* fs:readlink(path) -> target | nil, message, kind */
static int fs_readlink(lua_State *L)
{
    vma_stat st;
    int n;
    char *t = open_path(L, FALSE, open_link, &st, &n);
    if (!t)
        return n;
    lua_pushstring(L, t);
    g_free(t);
    return 1;
}

/* the iterator of fs:dir(): upvalues fs, dir userdata (a vma_dir *), index */
typedef struct {
    vma_dir *d;
} ldir;

static int ldir_gc(lua_State *L)
{
    ldir *d = lua_touserdata(L, 1);
    if (d->d) {
        vma_dir_free(d->d);
        d->d = NULL;
    }
    return 0;
}

static int dir_next(lua_State *L)
{
    lfs *f = luaL_checkudata(L, lua_upvalueindex(1), FS_MT);
    ldir *d = lua_touserdata(L, lua_upvalueindex(2));
    lua_Integer i = lua_tointeger(L, lua_upvalueindex(3));
    if (!f->fs || !d->d || (size_t)i >= vma_dir_count(d->d)) {
        if (d->d) {
            vma_dir_free(d->d);
            d->d = NULL;
        }
        return 0;
    }
    lua_pushinteger(L, i + 1);
    lua_replace(L, lua_upvalueindex(3));
    const vma_dirent *de = vma_dir_entry(d->d, (size_t)i);
    lua_pushstring(L, de->name);
    vma_stat st;
    GError *e = NULL;
    return push_entry(L, vma_fs_stat(f->fs, de->ino, &st, &e), &st, e);
}

/* fs:dir(path) -> iterator of name, stat (nil, message for an entry whose
 * inode cannot be read), and {skipped = N}: the entries left out (names
 * that cannot be a path component) | nil, message, kind */
static int fs_dir(lua_State *L)
{
    vma_stat st;
    int n;
    vma_dir *vd = open_path(L, TRUE, open_dir, &st, &n);
    if (!vd)
        return n;
    lua_pushvalue(L, 1);
    ldir *d = lua_newuserdatauv(L, sizeof(ldir), 0);
    d->d = vd;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, ldir_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, dir_next, 3);
    lua_createtable(L, 0, 1);
    lua_pushinteger(L, (lua_Integer)vma_dir_skipped(vd));
    lua_setfield(L, -2, "skipped");
    return 2;
}

/* walks */
typedef struct {
    vma_walk *w;
} lwalk;

static int walk_close(lua_State *L)
{
    lwalk *w = luaL_checkudata(L, 1, WALK_MT);
    vma_walk_free(w->w);
    w->w = NULL;
    return 0;
}

static int walk_prune(lua_State *L)
{
    lwalk *w = luaL_checkudata(L, 1, WALK_MT);
    if (w->w)
        vma_walk_prune(w->w);
    return 0;
}

static int walk_depth(lua_State *L)
{
    lwalk *w = luaL_checkudata(L, 1, WALK_MT);
    lua_pushinteger(L, w->w ? vma_walk_depth(w->w) : 0);
    return 1;
}

/* the iterator: (walker, _) -> path, stat | path, nil, message | nothing */
static int walk_next(lua_State *L)
{
    lwalk *w = luaL_checkudata(L, 1, WALK_MT);
    if (!w->w)
        return 0;
    if (vma_interrupted()) {
        vma_walk_free(w->w);
        w->w = NULL;
        return luaL_error(L, "interrupted");
    }
    const char *path = NULL;
    vma_stat st;
    GError *e = NULL;
    int r = vma_walk_next(w->w, &path, &st, &e);
    if (r == 0) {
        vma_walk_free(w->w);
        w->w = NULL;
        return 0;
    }
    lua_pushstring(L, path ? path : "");
    return push_entry(L, r, &st, e);
}

/* for relpath, stat in fs:walk(path) ... : every entry under path, depth
 * first, each folder's entries in name order; the second value returned
 * is the walker (w:prune() skips the folder just given) */
static int fs_walk(lua_State *L)
{
    vma_stat st;
    int n;
    vma_walk *vw = open_path(L, TRUE, open_walk, &st, &n);
    if (!vw)
        return n;
    lua_pushcfunction(L, walk_next);
    lwalk *w = lua_newuserdatauv(L, sizeof(lwalk), 0);
    w->w = vw;
    luaL_setmetatable(L, WALK_MT);
    lua_pushnil(L);
    lua_pushvalue(L, -2); /* the closing value: the walker */
    return 4;
}

typedef struct {
    vma_file *f;
    uint64_t pos;
    char *buf;            /* read-ahead for lines */
    size_t blen, bpos;
    uint64_t bstart;      /* file offset of buf[0] */
} lgfile;

/* fs:open(path) -> file | nil, message, kind (links are followed) */
static int fs_open(lua_State *L)
{
    vma_stat st;
    int n;
    vma_file *vf = open_path(L, TRUE, open_file, &st, &n);
    if (!vf)
        return n;
    lgfile *g = lua_newuserdatauv(L, sizeof(lgfile), 1);
    memset(g, 0, sizeof(*g));
    g->f = vf;
    luaL_setmetatable(L, GFILE_MT);
    lua_createtable(L, 0, 2);
    push_stat(L, &st);
    lua_setfield(L, -2, "stat");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "path");
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static int fs_close(lua_State *L) { return close_handle(L, FS_MT, free_fs); }

static void fs_type(lua_State *L, void *fs) { lua_pushstring(L, vma_fs_type(fs)); }
static void fs_label(lua_State *L, void *fs) { lua_pushstring(L, vma_fs_label(fs)); }
static void fs_case(lua_State *L, void *fs) { lua_pushboolean(L, vma_fs_case_insensitive(fs)); }
static void fs_engine(lua_State *L, void *fs)
{
    (void)fs;
    lua_pushliteral(L, "in-process");
}

static int fs_index(lua_State *L)
{
    static const gprop props[] = {{"type", fs_type}, {"label", fs_label},
                                  {"case_insensitive", fs_case}, {"engine", fs_engine},
                                  {NULL, NULL}};
    return index_props(L, FS_MT, props);
}

static int fs_tostring(lua_State *L)
{
    lfs *f = luaL_checkudata(L, 1, FS_MT);
    if (f->fs)
        lua_pushfstring(L, "vma.fs (%s)", vma_fs_type(f->fs));
    else
        lua_pushliteral(L, "vma.fs (closed)");
    return 1;
}

/* ---------------------------------------------------------------- files */

static lgfile *check_gfile(lua_State *L)
{
    lgfile *g = luaL_checkudata(L, 1, GFILE_MT);
    if (!g->f)
        luaL_error(L, "attempt to use a closed file");
    return g;
}

/* fill the read-ahead buffer at g->pos; FALSE with err */
static gboolean fill(lgfile *g, GError **err)
{
    if (!g->buf)
        g->buf = g_malloc(65536);
    ssize_t got = vma_file_pread(g->f, g->buf, 65536, g->pos, err);
    if (got < 0)
        return FALSE;
    g->bstart = g->pos;
    g->blen = (size_t)got;
    g->bpos = 0;
    return TRUE;
}

/* bytes of the buffer at pos, or 0 (refilled when pos left it) */
static size_t buffered(lgfile *g, GError **err)
{
    if (g->buf && g->pos >= g->bstart && g->pos < g->bstart + g->blen) {
        g->bpos = (size_t)(g->pos - g->bstart);
        return g->blen - g->bpos;
    }
    if (!fill(g, err))
        return (size_t)-1;
    return g->blen;
}

/* push a line (keep: with its newline); 0 at the end, -1 with err */
static int read_line(lua_State *L, lgfile *g, int keep, GError **err)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    gboolean any = FALSE;
    for (;;) {
        size_t n = buffered(g, err);
        if (n == (size_t)-1)
            return -1;
        if (n == 0)
            break;
        any = TRUE;
        const char *p = g->buf + g->bpos;
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        luaL_addlstring(&b, p, nl && !keep ? take - 1 : take);
        g->pos += take;
        if (nl)
            break;
    }
    luaL_pushresult(&b);
    if (!any) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

/* push up to n bytes; 0 at the end (n > 0), -1 with err */
static int read_bytes(lua_State *L, lgfile *g, size_t n, GError **err)
{
    uint64_t size = vma_file_size(g->f);
    if (g->pos >= size)
        return 0;
    if (n == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    size_t want = (size_t)MIN((uint64_t)n, size - g->pos);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, want);
    ssize_t got = vma_file_pread(g->f, p, want, g->pos, err);
    if (got < 0)
        return -1;
    g->pos += (uint64_t)got;
    luaL_pushresultsize(&b, (size_t)got);
    return 1;
}

/* f:read(...) as Lua's file:read: "a", "l", "L", a count ("n" is not
 * supported) */
static int gfile_read_from(lua_State *L, lgfile *g, int first)
{
    int nargs = lua_gettop(L) - first + 1;
    if (nargs <= 0) {
        lua_pushliteral(L, "l");
        nargs = 1;
    }
    int top = lua_gettop(L);
    int i, ok = 1;
    GError *e = NULL;
    for (i = 0; i < nargs && ok; i++) {
        int a = top - nargs + 1 + i;
        int r;
        if (lua_type(L, a) == LUA_TNUMBER) {
            lua_Integer n = luaL_checkinteger(L, a);
            luaL_argcheck(L, n >= 0 && n <= MAX_READ, a, "count out of range (0..1 GiB)");
            r = read_bytes(L, g, (size_t)n, &e);
        } else {
            const char *fmt = luaL_checkstring(L, a);
            if (*fmt == '*')
                fmt++;
            if (*fmt == 'a') {
                uint64_t size = vma_file_size(g->f);
                uint64_t left = g->pos < size ? size - g->pos : 0;
                if (left > MAX_READ)
                    return luaL_error(L, "the file is too large to read whole (%I bytes left)",
                                      (lua_Integer)left);
                r = read_bytes(L, g, (size_t)left, &e);
                if (r == 0) {
                    lua_pushliteral(L, "");
                    r = 1;
                }
            } else if (*fmt == 'l' || *fmt == 'L') {
                r = read_line(L, g, *fmt == 'L', &e);
            } else {
                return luaL_argerror(L, a, "invalid format");
            }
        }
        if (r < 0)
            return lvma_push_error(L, e);
        if (r == 0) {
            lua_pushnil(L);
            ok = 0;
        }
    }
    return i;
}

static int gfile_read(lua_State *L)
{
    lgfile *g = check_gfile(L);
    return gfile_read_from(L, g, 2);
}

/* f:seek([whence [, offset]]) -> position */
static int gfile_seek(lua_State *L)
{
    lgfile *g = check_gfile(L);
    static const char *const modes[] = {"set", "cur", "end", NULL};
    int op = luaL_checkoption(L, 2, "cur", modes);
    lua_Integer off = luaL_optinteger(L, 3, 0);
    int64_t base = op == 0 ? 0 : op == 1 ? (int64_t)g->pos : (int64_t)vma_file_size(g->f);
    if ((off < 0 && base + off < 0) || (off > 0 && off > INT64_MAX - base)) {
        lua_pushnil(L);
        lua_pushliteral(L, "Invalid argument");
        lua_pushinteger(L, EINVAL);
        return 3;
    }
    g->pos = (uint64_t)(base + off);
    lua_pushinteger(L, (lua_Integer)g->pos);
    return 1;
}

static int lines_next(lua_State *L)
{
    lgfile *g = luaL_checkudata(L, lua_upvalueindex(1), GFILE_MT);
    if (!g->f)
        return luaL_error(L, "file is already closed");
    int n = (int)lua_tointeger(L, lua_upvalueindex(2));
    lua_settop(L, 0);
    luaL_checkstack(L, n + 3, "too many arguments");
    for (int i = 1; i <= n; i++)
        lua_pushvalue(L, lua_upvalueindex(2 + i));
    int r = gfile_read_from(L, g, 1);
    int first = lua_gettop(L) - r + 1;
    if (!lua_isnil(L, first))
        return r;
    /* nil, message, kind: an error (raised, as Lua's lines do); a lone nil: the end */
    if (r >= 2 && lua_type(L, first + 1) == LUA_TSTRING)
        return luaL_error(L, "%s", lua_tostring(L, first + 1));
    return 0;
}

/* for line in f:lines(...) */
static int gfile_lines(lua_State *L)
{
    check_gfile(L);
    int n = lua_gettop(L) - 1;
    luaL_argcheck(L, n <= 250, 252, "too many arguments");
    lua_pushvalue(L, 1);
    lua_pushinteger(L, n);
    lua_rotate(L, 2, 2);
    lua_pushcclosure(L, lines_next, 2 + n);
    return 1;
}

static int map_file(void *h, uint64_t off, uint64_t len, vma_piece_fn fn, void *ud, GError **err)
{
    return vma_file_map(h, off, len, fn, ud, err);
}

static int gfile_extents_next(lua_State *L)
{
    lgfile *g = luaL_checkudata(L, lua_upvalueindex(1), GFILE_MT);
    if (!g->f)
        return 0;
    return lvma_extents_step(L, map_file, g->f, 2, vma_file_size(g->f));
}

/* for offset, length, kind in f:extents(): "data", "zero" (holes) or
 * "missing" (clusters the archive lacks) */
static int gfile_extents(lua_State *L)
{
    check_gfile(L);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, gfile_extents_next, 2);
    return 1;
}

/* f:copy_to(luafile) -> bytes | nil, message, kind: the whole file from
 * the start, holes as zeros (standard output) */
static int gfile_copy_to(lua_State *L)
{
    lgfile *g = check_gfile(L);
    luaL_Stream *out = luaL_checkudata(L, 2, LUA_FILEHANDLE);
    if (!out->closef)
        return luaL_error(L, "attempt to use a closed file");
    fflush(out->f);
    int fd = fileno(out->f);
    uint64_t size = vma_file_size(g->f), pos = 0;
    uint8_t *buf = g_malloc(READ_CHUNK);
    GError *e = NULL;
    while (pos < size && !e) {
        if (vma_interrupted()) {
            g_set_error_literal(&e, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            break;
        }
        size_t n = (size_t)MIN((uint64_t)READ_CHUNK, size - pos);
        ssize_t got = vma_file_pread(g->f, buf, n, pos, &e);
        if (got <= 0) {
            if (!e)
                g_set_error_literal(&e, VMA_ERROR, VMA_ERR_FORMAT, "the file ends early");
            break;
        }
        if (vma_write_all(fd, buf, (size_t)got, &e) < 0)
            break;
        pos += (uint64_t)got;
    }
    g_free(buf);
    if (e)
        return lvma_push_error(L, e);
    lua_pushinteger(L, (lua_Integer)pos);
    return 1;
}

/* the file and its read-ahead */
static int gfile_close(lua_State *L)
{
    lgfile *g = luaL_checkudata(L, 1, GFILE_MT);
    g_clear_pointer(&g->buf, g_free);
    return close_handle(L, GFILE_MT, free_file);
}

static void gfile_size(lua_State *L, void *f) { lua_pushinteger(L, (lua_Integer)vma_file_size(f)); }
static const gprop gfile_props[] = {{"size", gfile_size}, {NULL, NULL}};
static int gfile_index(lua_State *L) { return index_props(L, GFILE_MT, gfile_props); }

static int gfile_tostring(lua_State *L)
{
    lgfile *g = luaL_checkudata(L, 1, GFILE_MT);
    lua_pushstring(L, g->f ? "vma.guestfile" : "vma.guestfile (closed)");
    return 1;
}

/* ---------------------------------------------------------------- registration */

static int disk_volumes(lua_State *L) { return call_lua(L, "disk_volumes"); }
static int reader_guest(lua_State *L) { return call_lua(L, "open"); }
static int reader_volumes(lua_State *L) { return call_lua(L, "volumes"); }

static const luaL_Reg volume_methods[] = {
    {"read", vol_read},
    {"extents", vol_extents},
    {"partitions", vol_partitions},
    {"probe", vol_probe},
    {"lvm_pv", vol_lvm_pv},
    {"slice", vol_slice},
    {"segments", vol_segments},
    {"open_fs", vol_open_fs},
    {"fs", vol_fs},
    {"close", vol_close},
    {NULL, NULL},
};
static const luaL_Reg volume_meta[] = {
    {"__index", vol_index},
    {"__newindex", newindex_info},
    {"__gc", vol_close},
    {"__close", vol_close},
    {"__tostring", vol_tostring},
    {NULL, NULL},
};
static const luaL_Reg fs_methods[] = {
    {"stat", fs_stat},
    {"readlink", fs_readlink},
    {"dir", fs_dir},
    {"walk", fs_walk},
    {"open", fs_open},
    {"close", fs_close},
    {NULL, NULL},
};
static const luaL_Reg fs_meta[] = {
    {"__index", fs_index},
    {"__newindex", newindex_info},
    {"__gc", fs_close},
    {"__close", fs_close},
    {"__tostring", fs_tostring},
    {NULL, NULL},
};
static const luaL_Reg gfile_methods[] = {
    {"read", gfile_read},
    {"seek", gfile_seek},
    {"lines", gfile_lines},
    {"extents", gfile_extents},
    {"copy_to", gfile_copy_to},
    {"close", gfile_close},
    {NULL, NULL},
};
static const luaL_Reg gfile_meta[] = {
    {"__index", gfile_index},
    {"__gc", gfile_close},
    {"__close", gfile_close},
    {"__tostring", gfile_tostring},
    {NULL, NULL},
};
static const luaL_Reg walk_methods[] = {
    {"prune", walk_prune},
    {"depth", walk_depth},
    {"close", walk_close},
    {NULL, NULL},
};
static const luaL_Reg walk_meta[] = {
    {"__gc", walk_close},
    {"__close", walk_close},
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

vma_file *lvma_test_guestfile(lua_State *L, int idx)
{
    lgfile *g = luaL_testudata(L, idx, GFILE_MT);
    if (g && !g->f)
        luaL_error(L, "attempt to use a closed file");
    return g ? g->f : NULL;
}

void lvma_open_guest(lua_State *L)
{
    new_class(L, VOLUME_MT, volume_meta, volume_methods);
    new_class(L, FS_MT, fs_meta, fs_methods);
    new_class(L, GFILE_MT, gfile_meta, gfile_methods);
    luaL_newmetatable(L, WALK_MT);
    luaL_setfuncs(L, walk_meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, walk_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lvma_open_writer_class(L);
    static const luaL_Reg disk_extra[] = {{"volumes", disk_volumes}, {NULL, NULL}};
    static const luaL_Reg archive_extra[] = {
        {"guest", reader_guest}, {"volumes", reader_volumes}, {NULL, NULL}};
    lvma_add_methods(L, DISK_MT, disk_extra);
    lvma_add_methods(L, ARCHIVE_MT, archive_extra);
    /* the module table is on top */
    lua_pushcfunction(L, l_volume);
    lua_setfield(L, -2, "volume");
    lua_pushcfunction(L, l_volume_join);
    lua_setfield(L, -2, "volume_join");
    lua_pushcfunction(L, lvma_guest_writer_open);
    lua_setfield(L, -2, "file_writer");
}
