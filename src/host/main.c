/* main.c - the vma host: embeds Lua 5.4, preloads the vma module and runs
 * the command line written in Lua (lua/vma/cli.lua). */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_vma(lua_State *L);

#define G_N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

#ifndef VMA_LUADIR
#define VMA_LUADIR "/usr/local/share/lua/5.4"
#endif
#ifndef VMA_LUA_CMOD
#define VMA_LUA_CMOD "/usr/local/lib/lua/5.4"
#endif

/* where vma's own C modules (vma/rbd.so, require "vma.rbd") are, set by
 * find_luadir: build/cmod in the source tree, PREFIX/lib/lua/5.4 when installed */
static char cmod_dir[PATH_MAX + 64];

/* where the bundled Lua scripts are: $VMA_LUA_DIR, the source tree next to
 * the executable (build/vma -> lua/), or the installed folder */
static char *find_luadir(void)
{
    const char *env = getenv("VMA_LUA_DIR");
    if (env && *env)
        return strdup(env);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            /* build/vma and build/asan/vma run from the source tree;
             * PREFIX/bin/vma finds PREFIX/share/lua/5.4 wherever PREFIX is */
            static const char *const rel[] = {"/../lua", "/../../lua", "/../share/lua/5.4"};
            /* and their C modules: build/cmod/vma/rbd.so for build/vma and build/asan/vma */
            static const char *const crel[] = {"/cmod", "/../cmod", "/../lib/lua/5.4"};
            for (unsigned i = 0; i < G_N_ELEMENTS(rel); i++) {
                char cand[PATH_MAX + 64];
                snprintf(cand, sizeof(cand), "%s%s/vma/cli.lua", exe, rel[i]);
                if (access(cand, R_OK) == 0) {
                    snprintf(cmod_dir, sizeof(cmod_dir), "%s%s", exe, crel[i]);
                    snprintf(cand, sizeof(cand), "%s%s", exe, rel[i]);
                    return realpath(cand, NULL);
                }
            }
        }
    }
    return strdup(VMA_LUADIR);
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (getenv("VMA_DEBUG") && *getenv("VMA_DEBUG") && strcmp(getenv("VMA_DEBUG"), "0")) {
        luaL_traceback(L, L, msg, 1);
        return 1;
    }
    lua_pushstring(L, msg ? msg : "(error object is not a string)");
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        fputs("vma: cannot create the Lua state\n", stderr);
        return 1;
    }
    luaL_openlibs(L);

    /* package.preload.vma = luaopen_vma */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_vma);
    lua_setfield(L, -2, "vma");
    lua_pop(L, 1);

    /* the bundled scripts come first on package.path */
    char *dir = find_luadir();
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof(probe), "%s/vma/cli.lua", dir);
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "vma: cannot find its Lua scripts (no %s).\n"
                "Run the vma that 'make install' installed, run build/vma from the source "
                "tree, or set VMA_LUA_DIR to the folder that holds vma/cli.lua.\n", probe);
        free(dir);
        lua_close(L);
        return 1;
    }
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 1);
    /* and the C modules (vma.rbd): beside the executable, then the installed folder */
    lua_getfield(L, -1, "cpath");
    if (cmod_dir[0] && strcmp(cmod_dir, VMA_LUA_CMOD) != 0)
        lua_pushfstring(L, "%s/?.so;%s/?.so;%s", cmod_dir, VMA_LUA_CMOD, lua_tostring(L, -1));
    else
        lua_pushfstring(L, "%s/?.so;%s", VMA_LUA_CMOD, lua_tostring(L, -1));
    lua_setfield(L, -3, "cpath");
    lua_pop(L, 2);
    lua_pushstring(L, dir);
    lua_setglobal(L, "VMA_LUA_DIR");
    free(dir);

    /* arg table as the stock interpreter makes it */
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_setglobal(L, "arg");

    lua_pushcfunction(L, traceback);
    int tb = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "vma.cli");
    int status = 1;
    if (lua_pcall(L, 1, 1, tb) != LUA_OK) {
        fprintf(stderr, "vma: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 0);
    for (int i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    if (lua_pcall(L, 1, 1, tb) != LUA_OK) {
        fprintf(stderr, "vma: %s\n", lua_tostring(L, -1));
        status = 1;
    } else {
        status = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    }
    fflush(stdout);
    lua_close(L);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (status == 0) {
            fputs("vma: error writing to standard output\n", stderr);
            status = 1;
        }
    }
    return status;
}
