/* lvma_sqlite.c - SQLite for the catalog (Debian's libsqlite3): a small
 * binding with bound parameters (guest paths are hostile text: never
 * pasted into SQL) and blobs (the cluster digests).
 *
 *   db = vma.sqlite_open(path, {readonly =, create =, timeout_ms =})
 *   db:exec(sql)                      several statements, no parameters
 *   st = db:prepare(sql)              one statement
 *   st:run(...)                       bind, step to the end, reset: changes
 *   for row in st:rows(...) do        rows as tables keyed by column name
 *   st:first(...)                     the first row or nil
 *   db:last_id(), db:changes(), db:close()
 *   vma.sqlite_blob(s)                a string bound as a BLOB (else TEXT)
 *
 * Errors: nil, message, "sqlite" (and the SQLite code name as a fourth
 * value: "busy", "corrupt", "notadb", "readonly", "full", "other").
 * A catalog is an input like any other: the connection is opened with
 * defensive mode on and the schema untrusted (no function of a view or
 * trigger runs with side effects), and nothing loads extensions. */
#define _GNU_SOURCE
#include "lvma.h"

#include <sqlite3.h>
#include <string.h>

#define DB_MT   "vma.sqlite"
#define STMT_MT "vma.sqlite.stmt"
#define BLOB_MT "vma.sqlite.blob"

typedef struct {
    sqlite3 *db;
    char *path;
    int timeout_ms;      /* how long a lock held by another process is waited for */
} ldb;

/* waiting for another process's lock: 10 ms at a time, up to the timeout,
 * and not after a signal (vma.os.catch_signals): Ctrl-C stops the wait */
static int on_busy(void *ud, int count)
{
    ldb *d = ud;
    if (vma_interrupted() || (int64_t)count * 10 >= d->timeout_ms)
        return 0;
    g_usleep(10000);
    return 1;
}

typedef struct {
    sqlite3_stmt *st;
    ldb *owner;          /* kept alive by user value 1 */
} lstmt;

static const char *code_name(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return "busy";
    case SQLITE_CORRUPT: return "corrupt";
    case SQLITE_NOTADB: return "notadb";
    case SQLITE_READONLY: return "readonly";
    case SQLITE_FULL: return "full";
    case SQLITE_CANTOPEN: return "cantopen";
    case SQLITE_INTERRUPT: return "interrupted";
    case SQLITE_CONSTRAINT: return "constraint";
    default: return "other";
    }
}

static int push_sqlerr(lua_State *L, sqlite3 *db, int rc)
{
    lua_pushnil(L);
    lua_pushstring(L, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    lua_pushliteral(L, "sqlite");
    lua_pushstring(L, code_name(db ? sqlite3_extended_errcode(db) : rc));
    return 4;
}

static ldb *check_db(lua_State *L, int i)
{
    ldb *d = luaL_checkudata(L, i, DB_MT);
    if (!d->db)
        luaL_error(L, "attempt to use a closed %s", DB_MT);
    return d;
}

static lstmt *check_stmt(lua_State *L)
{
    lstmt *s = luaL_checkudata(L, 1, STMT_MT);
    if (!s->st || !s->owner->db)
        luaL_error(L, "attempt to use a closed %s", STMT_MT);
    return s;
}

/* vma.sqlite_open(path [, {readonly =, create =, timeout_ms =}]) */
static int l_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    gboolean readonly = FALSE, create = FALSE;
    lua_Integer timeout = 30000;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "readonly");
        readonly = lua_toboolean(L, -1);
        lua_getfield(L, 2, "create");
        create = lua_toboolean(L, -1);
        lua_getfield(L, 2, "timeout_ms");
        if (lua_isinteger(L, -1))
            timeout = lua_tointeger(L, -1);
        lua_pop(L, 3);
    }
    ldb *d = lua_newuserdatauv(L, sizeof(ldb), 0);
    memset(d, 0, sizeof(*d));
    luaL_setmetatable(L, DB_MT);
    int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
                (create && !readonly ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOFOLLOW |
                SQLITE_OPEN_EXRESCODE;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        int n = push_sqlerr(L, db, rc);
        sqlite3_close_v2(db);
        return n;
    }
    d->db = db;
    d->path = g_strdup(path);
    d->timeout_ms = (int)CLAMP(timeout, 0, G_MAXINT);
    sqlite3_busy_handler(db, on_busy, d);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
#ifdef SQLITE_DBCONFIG_TRUSTED_SCHEMA /* 3.31 */
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
#endif
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
#ifdef SQLITE_DBCONFIG_ENABLE_VIEW /* 3.35 */
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, NULL);
#endif
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
    return 1;
}

static int db_close(lua_State *L)
{
    ldb *d = luaL_checkudata(L, 1, DB_MT);
    if (d->db) {
        /* statements still open are finalized by their own __gc; v2
         * closes once they are */
        sqlite3_close_v2(d->db);
        d->db = NULL;
    }
    g_clear_pointer(&d->path, g_free);
    return 0;
}

static int db_exec(lua_State *L)
{
    ldb *d = check_db(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    char *msg = NULL;
    int rc = sqlite3_exec(d->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        sqlite3_free(msg);
        return push_sqlerr(L, d->db, rc);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int db_prepare(lua_State *L)
{
    ldb *d = check_db(L, 1);
    size_t n;
    const char *sql = luaL_checklstring(L, 2, &n);
    lstmt *s = lua_newuserdatauv(L, sizeof(lstmt), 1);
    memset(s, 0, sizeof(*s));
    luaL_setmetatable(L, STMT_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    const char *tail = NULL;
    int rc = sqlite3_prepare_v3(d->db, sql, (int)n, SQLITE_PREPARE_PERSISTENT, &s->st, &tail);
    if (rc != SQLITE_OK)
        return push_sqlerr(L, d->db, rc);
    if (!s->st)
        return luaL_error(L, "no statement in '%s'", sql);
    s->owner = d;
    return 1;
}

static int db_last_id(lua_State *L)
{
    ldb *d = check_db(L, 1);
    lua_pushinteger(L, (lua_Integer)sqlite3_last_insert_rowid(d->db));
    return 1;
}

static int db_changes(lua_State *L)
{
    ldb *d = check_db(L, 1);
    lua_pushinteger(L, (lua_Integer)sqlite3_changes64(d->db));
    return 1;
}

/* ---- statements ---- */

static int stmt_free(lua_State *L)
{
    lstmt *s = luaL_checkudata(L, 1, STMT_MT);
    if (s->st)
        sqlite3_finalize(s->st);
    s->st = NULL;
    return 0;
}

/* bind arguments first.. to the statement; a Lua error for what cannot be */
static void bind_args(lua_State *L, lstmt *s, int first)
{
    sqlite3_reset(s->st);
    sqlite3_clear_bindings(s->st);
    int top = lua_gettop(L), want = sqlite3_bind_parameter_count(s->st);
    if (top - first + 1 != want)
        luaL_error(L, "the statement takes %d values, %d given", want, top - first + 1);
    for (int i = first; i <= top; i++) {
        int k = i - first + 1, rc;
        switch (lua_type(L, i)) {
        case LUA_TNIL:
            rc = sqlite3_bind_null(s->st, k);
            break;
        case LUA_TBOOLEAN:
            rc = sqlite3_bind_int(s->st, k, lua_toboolean(L, i));
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, i))
                rc = sqlite3_bind_int64(s->st, k, lua_tointeger(L, i));
            else
                rc = sqlite3_bind_double(s->st, k, lua_tonumber(L, i));
            break;
        case LUA_TSTRING: {
            size_t n;
            const char *p = lua_tolstring(L, i, &n);
            rc = sqlite3_bind_text64(s->st, k, p, n, SQLITE_TRANSIENT, SQLITE_UTF8);
            break;
        }
        default:
            if (luaL_testudata(L, i, BLOB_MT)) {
                lua_getiuservalue(L, i, 1);
                size_t n;
                const char *p = lua_tolstring(L, -1, &n);
                rc = sqlite3_bind_blob64(s->st, k, p ? p : "", n, SQLITE_TRANSIENT);
                lua_pop(L, 1);
                break;
            }
            luaL_error(L, "value %d: cannot store a %s", k, luaL_typename(L, i));
            return;
        }
        if (rc != SQLITE_OK)
            luaL_error(L, "value %d: %s", k, sqlite3_errstr(rc));
    }
}

static void push_column(lua_State *L, sqlite3_stmt *st, int c)
{
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_INTEGER:
        lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(st, c));
        break;
    case SQLITE_FLOAT:
        lua_pushnumber(L, sqlite3_column_double(st, c));
        break;
    case SQLITE_TEXT: {
        const unsigned char *p = sqlite3_column_text(st, c);
        lua_pushlstring(L, (const char *)p, (size_t)sqlite3_column_bytes(st, c));
        break;
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(st, c);
        lua_pushlstring(L, p ? p : "", (size_t)sqlite3_column_bytes(st, c));
        break;
    }
    default:
        lua_pushnil(L);
    }
}

static void push_row(lua_State *L, sqlite3_stmt *st)
{
    int n = sqlite3_column_count(st);
    lua_createtable(L, 0, n);
    for (int c = 0; c < n; c++) {
        if (sqlite3_column_type(st, c) == SQLITE_NULL)
            continue;
        push_column(L, st, c);
        lua_setfield(L, -2, sqlite3_column_name(st, c));
    }
}

/* st:run(...) -> changes | nil, msg, "sqlite", code */
static int stmt_run(lua_State *L)
{
    lstmt *s = check_stmt(L);
    bind_args(L, s, 2);
    int rc;
    while ((rc = sqlite3_step(s->st)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) {
        int n = push_sqlerr(L, s->owner->db, rc);
        sqlite3_reset(s->st);
        return n;
    }
    sqlite3_reset(s->st);
    lua_pushinteger(L, (lua_Integer)sqlite3_changes64(s->owner->db));
    return 1;
}

/* st:first(...) -> row | nil (no row) | nil, msg, "sqlite", code */
static int stmt_first(lua_State *L)
{
    lstmt *s = check_stmt(L);
    bind_args(L, s, 2);
    int rc = sqlite3_step(s->st);
    if (rc == SQLITE_ROW) {
        push_row(L, s->st);
        sqlite3_reset(s->st);
        return 1;
    }
    if (rc != SQLITE_DONE) {
        int n = push_sqlerr(L, s->owner->db, rc);
        sqlite3_reset(s->st);
        return n;
    }
    sqlite3_reset(s->st);
    lua_pushnil(L);
    return 1;
}

/* the iterator of st:rows(): an error is raised (as io.lines does) */
static int rows_next(lua_State *L)
{
    lstmt *s = luaL_checkudata(L, lua_upvalueindex(1), STMT_MT);
    if (!s->st || !s->owner->db)
        return luaL_error(L, "attempt to use a closed %s", STMT_MT);
    int rc = sqlite3_step(s->st);
    if (rc == SQLITE_ROW) {
        push_row(L, s->st);
        return 1;
    }
    sqlite3_reset(s->st);
    if (rc != SQLITE_DONE)
        return luaL_error(L, "%s", sqlite3_errmsg(s->owner->db));
    return 0;
}

static int stmt_rows(lua_State *L)
{
    lstmt *s = check_stmt(L);
    bind_args(L, s, 2);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, rows_next, 1);
    return 1;
}

static int stmt_reset(lua_State *L)
{
    lstmt *s = check_stmt(L);
    sqlite3_reset(s->st);
    return 0;
}

/* vma.sqlite_blob(s): s bound as a BLOB */
static int l_blob(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_newuserdatauv(L, 0, 1);
    luaL_setmetatable(L, BLOB_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static void get_path(lua_State *L, void *self) { lua_pushstring(L, ((ldb *)self)->path); }
static gboolean db_open_p(void *self) { return ((ldb *)self)->db != NULL; }

static const lvma_getter db_getters[] = {
    {"path", get_path},
    {NULL, NULL},
};

static const luaL_Reg db_methods[] = {
    {"exec", db_exec},
    {"prepare", db_prepare},
    {"last_id", db_last_id},
    {"changes", db_changes},
    {"close", db_close},
    {NULL, NULL},
};

static const luaL_Reg db_meta[] = {
    {"__gc", db_close},
    {"__close", db_close},
    {NULL, NULL},
};

static const luaL_Reg stmt_methods[] = {
    {"run", stmt_run},
    {"first", stmt_first},
    {"rows", stmt_rows},
    {"reset", stmt_reset},
    {"close", stmt_free},
    {NULL, NULL},
};

static const luaL_Reg stmt_meta[] = {
    {"__gc", stmt_free},
    {"__close", stmt_free},
    {NULL, NULL},
};

static const luaL_Reg blob_meta[] = {
    {NULL, NULL},
};

static const luaL_Reg sqlite_funcs[] = {
    {"sqlite_open", l_open},
    {"sqlite_blob", l_blob},
    {NULL, NULL},
};

void lvma_open_sqlite(lua_State *L)
{
    lvma_new_class(L, DB_MT, db_meta, db_methods, db_getters, db_open_p);
    lvma_new_class(L, STMT_MT, stmt_meta, stmt_methods, NULL, NULL);
    lvma_new_class(L, BLOB_MT, blob_meta, blob_meta, NULL, NULL);
    luaL_setfuncs(L, sqlite_funcs, 0);
    lua_pushstring(L, sqlite3_libversion());
    lua_setfield(L, -2, "sqlite_version");
}
