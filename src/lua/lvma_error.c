/* lvma_error.c - errors the way Lua's io library returns them
 * (luaL_fileresult): nil, a message, and a kind a script can test. */
#include "lvma.h"

#include <errno.h>
#include <stdarg.h>

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

int lvma_raise(lua_State *L, GError *e)
{
    lua_pushstring(L, e ? e->message : "unknown error");
    g_clear_error(&e);
    return lua_error(L);
}

void lvma_push_uuid(lua_State *L, const uint8_t u[16])
{
    char s[37];
    vma_uuid_format(u, s);
    lua_pushstring(L, s);
}
