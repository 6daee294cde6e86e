/* lvma_cache.c - the cache folder from Lua: where it is, what is in it,
 * and its removal (vma cache). */
#include "lvma.h"

/* vma.cache_dir() -> path | nil */
static int l_cache_dir(lua_State *L)
{
    char *d = vma_cache_dir();
    if (d)
        lua_pushstring(L, d);
    else
        lua_pushnil(L);
    g_free(d);
    return 1;
}

static const char *dir_arg(lua_State *L, int i, char **own)
{
    *own = NULL;
    if (!lua_isnoneornil(L, i))
        return luaL_checkstring(L, i);
    *own = vma_cache_dir();
    if (!*own)
        luaL_error(L, "no cache folder: set VMA_CACHE_DIR, XDG_CACHE_HOME or HOME");
    return *own;
}

/* vma.cache_list([dir]) -> { {key=, archive=, codec=, archive_size=, bytes=,
 * last_used=, raw_frames=, index=, data=, partial=, busy=}... } | nil, msg */
static int l_cache_list(lua_State *L)
{
    char *own;
    const char *dir = dir_arg(L, 1, &own);
    GError *e = NULL;
    GPtrArray *list = vma_cache_list(dir, &e);
    g_free(own);
    if (!list)
        return lvma_push_error(L, e);
    lua_createtable(L, (int)list->len, 0);
    for (guint i = 0; i < list->len; i++) {
        const vma_cache_entry *c = g_ptr_array_index(list, i);
        lua_createtable(L, 0, 11);
        lvma_set_str(L, "key", c->key);
        if (c->archive) {
            lvma_set_str(L, "archive", c->archive);
        }
        if (c->codec) {
            lvma_set_str(L, "codec", c->codec);
        }
        lvma_set_int(L, "archive_size", (lua_Integer)c->archive_size);
        lvma_set_int(L, "bytes", (lua_Integer)c->bytes);
        lvma_set_int(L, "last_used", (lua_Integer)c->last_used);
        lvma_set_int(L, "raw_frames", (lua_Integer)c->raw_frames);
        lvma_set_bool(L, "index", c->has_index);
        lvma_set_bool(L, "data", c->has_data);
        lvma_set_bool(L, "partial", c->partial);
        lvma_set_bool(L, "busy", c->busy);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    g_ptr_array_free(list, TRUE);
    return 1;
}

/* vma.cache_remove(key [, dir [, force]]) -> true | nil, msg */
static int l_cache_remove(lua_State *L)
{
    const char *key = luaL_checkstring(L, 1);
    char *own;
    const char *dir = dir_arg(L, 2, &own);
    GError *e = NULL;
    int rc = vma_cache_remove_key(dir, key, lua_toboolean(L, 3), &e);
    g_free(own);
    if (rc < 0)
        return lvma_push_error(L, e);
    lua_pushboolean(L, 1);
    return 1;
}

/* vma.cache_limit([dir]) -> bytes */
static int l_cache_limit(lua_State *L)
{
    char *own;
    const char *dir = dir_arg(L, 1, &own);
    lua_pushinteger(L, (lua_Integer)vma_cache_limit(dir));
    g_free(own);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"cache_dir", l_cache_dir},
    {"cache_list", l_cache_list},
    {"cache_remove", l_cache_remove},
    {"cache_limit", l_cache_limit},
    {NULL, NULL},
};

void lvma_open_cache(lua_State *L)
{
    luaL_setfuncs(L, funcs, 0);
}
