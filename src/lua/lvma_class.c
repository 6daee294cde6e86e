/* lvma_class.c - the classes of the binding and the rules of progress
 * callbacks, in one place so that every object behaves alike.
 *
 * A class is a metatable whose __index looks a key up in its method table
 * (a plain table: methods are found as in Lua's io library), then in its
 * property getters; a property of a closed object raises "attempt to use
 * a closed vma.X", as every method of one does. */
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

/* ---- progress ---- */

lvma_progress lvma_progress_from(lua_State *L, int opts)
{
    lvma_progress pc = {L, 0, FALSE};
    if (opts && lua_istable(L, opts)) {
        lua_getfield(L, opts, "progress");
        if (lua_isfunction(L, -1))
            pc.fn = lua_gettop(L);
        else if (lua_isnil(L, -1))
            lua_pop(L, 1);
        else
            luaL_error(L, "progress must be a function");
    }
    return pc;
}

void lvma_progress_push(lvma_progress *pc) { lua_pushvalue(pc->L, pc->fn); }

int lvma_progress_call(lvma_progress *pc)
{
    lua_State *L = pc->L;
    if (pc->failed)
        return 1;
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        pc->failed = TRUE;
        return 1; /* the message stays on the stack */
    }
    int stop = lua_type(L, -1) == LUA_TSTRING ||
               (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1));
    lua_pop(L, 1);
    return stop;
}

int lvma_progress_failure(lvma_progress *pc, GError *e)
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
