/* lvma_class.c - the classes of the binding, in one place so that every
 * object behaves alike (the progress rules they share: lvma_progress.c).
 *
 * A class is a metatable whose __index looks a key up in its method table
 * (a plain table: methods are found as in Lua's io library), then in its
 * property getters; a property of a closed object raises "attempt to use
 * a closed vma.X", as every method of one does (lvma_check_open).
 * Also the reading of an integer of an options table (lvma_opt_int).
 * Nothing here calls libvma: vma.rbd compiles this file in. */
#include "lvma.h"

#include <string.h>

/* upvalues: 1 the method table, 2 the getters (name -> light userdata of
 * lvma_getter), 3 the class name, 4 is_open (light userdata) */
static int class_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TLIGHTUSERDATA)
        return 1; /* nil: no such key */
    const lvma_getter *g = lua_touserdata(L, -1);
    lua_pop(L, 1);
    void *self = lua_touserdata(L, 1);
    gboolean (*is_open)(void *) = (gboolean (*)(void *))lua_touserdata(L, lua_upvalueindex(4));
    if (is_open && !is_open(self))
        return luaL_error(L, "attempt to use a closed %s", lua_tostring(L, lua_upvalueindex(3)));
    g->get(L, self);
    return 1;
}

void lvma_new_class(lua_State *L, const char *name, const luaL_Reg *meta,
                    const luaL_Reg *methods, const lvma_getter *getters,
                    gboolean (*is_open)(void *self))
{
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "methods"); /* for lvma_add_methods */
    lua_newtable(L);
    for (const lvma_getter *g = getters; g && g->name; g++) {
        lua_pushlightuserdata(L, (void *)g);
        lua_setfield(L, -2, g->name);
    }
    lua_pushstring(L, name);
    lua_pushlightuserdata(L, (void *)is_open);
    lua_pushcclosure(L, class_index, 4);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

void lvma_add_methods(lua_State *L, const char *name, const luaL_Reg *methods)
{
    luaL_getmetatable(L, name);
    lua_getfield(L, -1, "methods");
    luaL_setfuncs(L, methods, 0);
    lua_pop(L, 2);
}

void *lvma_check_open(lua_State *L, int idx, const char *name, gboolean (*is_open)(void *self))
{
    void *self = luaL_checkudata(L, idx, name);
    if (!is_open(self))
        luaL_error(L, "attempt to use a closed %s", name);
    return self;
}

lua_Integer lvma_opt_int(lua_State *L, int t, const char *k, lua_Integer def)
{
    if (!lua_istable(L, t))
        return def;
    lua_getfield(L, t, k);
    lua_Integer v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : def;
    lua_pop(L, 1);
    return v;
}
