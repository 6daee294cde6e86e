/* lvma_progress.c - the rules of progress callbacks, one set for every
 * long call of the binding (see lvma.h). */
#include "lvma.h"

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
