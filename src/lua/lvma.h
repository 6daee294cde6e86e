/* lvma.h - what the files of the Lua binding share: the error convention
 * (nil, message, kind, as luaL_fileresult returns them; lvma_error.c), the
 * classes (lvma_class.c: one userdata type per object, methods in a table,
 * properties through getters, a closed object raises "closed"), the rules
 * of progress callbacks, and the parts of the module table. */
#ifndef LVMA_H
#define LVMA_H

#include "vma.h"

#include <lua.h>
#include <lauxlib.h>

/* ---- errors (lvma_error.c) ---- */

/* nil, message, kind ("io", "format", "incomplete", "argument",
 * "interrupted", "not-seekable", "missing"); frees e */
int lvma_push_error(lua_State *L, GError *e);
/* nil, "<message>: <strerror>", "io" (or "interrupted" for EINTR) */
int lvma_push_errno(lua_State *L, int errnum, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* nil, message, "argument" */
int lvma_push_argerror(lua_State *L, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* raise e's message as a Lua error (frees e first) */
int lvma_raise(lua_State *L, GError *e);
void lvma_push_uuid(lua_State *L, const uint8_t u[16]);

/* t[k] = v for the table on top */
static inline void lvma_set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}
static inline void lvma_set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}
static inline void lvma_set_bool(lua_State *L, const char *k, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/* ---- classes (lvma_class.c; nothing of libvma: vma.rbd compiles it in) ---- */

/* a property of an object: pushes its value (the object is at index 1) */
typedef struct {
    const char *name;
    void (*get)(lua_State *L, void *self);
} lvma_getter;

/* the metatable `name` with meta (__gc, __close, __tostring...), and an
 * __index that looks a key up in the methods, then in the getters; the
 * getters of a closed object (is_open(self) FALSE) raise "attempt to use a
 * closed NAME" */
void lvma_new_class(lua_State *L, const char *name, const luaL_Reg *meta,
                    const luaL_Reg *methods, const lvma_getter *getters,
                    gboolean (*is_open)(void *self));
/* t[k] of the options table at index t (not a table: def) when it is an
 * integer, else def */
lua_Integer lvma_opt_int(lua_State *L, int t, const char *k, lua_Integer def);
/* add methods to a class made before (another file's methods: the guest
 * views add d:volumes() to the disk) */
void lvma_add_methods(lua_State *L, const char *name, const luaL_Reg *methods);
/* the object of class name at idx, or an error: not one ("vma.X expected"),
 * or closed ("attempt to use a closed vma.X") */
void *lvma_check_open(lua_State *L, int idx, const char *name, gboolean (*is_open)(void *self));

/* ---- progress callbacks: one set of rules for every long call
 * (lvma_progress.c) ----
 *
 * opts.progress (a function) is called with a table; it returns false (or
 * a string) to stop the work, which then fails with "interrupted"; an
 * error it raises stops the work too, and the call returns nil, that
 * error's message, "callback". */
typedef struct {
    lua_State *L;
    int fn;          /* stack index of the function, 0 = none */
    gboolean failed; /* it raised an error (the message is on the stack) */
} lvma_progress;
/* opts.progress of the table at index opts (0: none); the function stays
 * on the stack for the work */
lvma_progress lvma_progress_from(lua_State *L, int opts);
/* call it: the function and its argument are pushed by the caller (the
 * argument after lvma_progress_push).  Non-zero: stop. */
void lvma_progress_push(lvma_progress *pc);
int lvma_progress_call(lvma_progress *pc);
/* the result of work that failed: the callback's error, or e */
int lvma_progress_failure(lvma_progress *pc, GError *e);

/* ---- the archive (lvma_archive.c) ---- */

#define ARCHIVE_MT "vma.archive"
struct lcallbacks;
typedef struct {
    vma_archive *a;          /* a reference; NULL once closed */
    struct lcallbacks *cb;   /* vma.open's wait function, or NULL */
} larchive;
larchive *lvma_check_archive(lua_State *L, int idx);
/* the result of a failed call that may have waited for the decoder: the
 * wait function's own error (kind "callback") when it raised one, else e */
int lvma_wait_failure(lua_State *L, larchive *la, GError *e);
/* a vma_progress_fn calling an lvma_progress with the restore's stats */
int lvma_restore_progress(const vma_stats *st, void *ud);
int lvma_open(lua_State *L);
void lvma_open_archive(lua_State *L);
/* a Lua object's reference to an archive dropped (*a NULL from then on) */
static inline void lvma_drop_archive(vma_archive **a)
{
    vma_archive *old = *a;
    *a = NULL;
    vma_archive_free(old);
}

/* ---- the writer (lvma_writer.c) ---- */
int lvma_create(lua_State *L);
void lvma_open_writer(lua_State *L);

/* ---- disks (lvma_disk.c): r:disk(name), and the disk class ---- */
#define DISK_MT "vma.disk"
int lvma_archive_disk(lua_State *L);
void lvma_open_disk(lua_State *L);
/* the archive and device id of the disk at idx (raises on anything else or
 * a closed disk); a view made from it takes its own vma_archive_ref */
vma_archive *lvma_disk_archive(lua_State *L, int idx, uint8_t *dev_id);
/* the pieces of what h reads from off, for len bytes (vma_archive_map of
 * a disk, vma_volume_map, vma_file_map) */
typedef int (*lvma_map_fn)(void *h, uint64_t off, uint64_t len, vma_piece_fn fn, void *ud,
                           GError **err);
/* one step of an extents iterator over [off, end) whose next offset is the
 * upvalue up: offset, length and kind ("data", "zero", "missing") of the
 * next piece, nothing at the end; a failure is raised (as io.lines does) */
int lvma_extents_step(lua_State *L, lvma_map_fn map, void *h, int up, uint64_t end);

/* ---- a module's sink or source (lvma_ext.h) ---- */
/* the userdata at idx if it is a mt (VMA_SINK_MT, VMA_SOURCE_MT) of this
 * ABI, with the host's hooks filled in; else NULL */
void *lvma_ext_ud(lua_State *L, int idx, const char *mt);

/* ---- the cache folder (lvma_cache.c): added to the module table on top */
void lvma_open_cache(lua_State *L);

/* ---- the store (lvma_store.c: r:survey, vma.diff, vma.hash...) and
 * SQLite for its catalog (lvma_sqlite.c): added to the table on top ---- */
void lvma_open_store(lua_State *L);
void lvma_open_sqlite(lua_State *L);
/* ---- the guest's volumes and files (lvma_guest.c): the classes, added to
 * the module table on top, with d:volumes(), r:guest(), r:volumes() ---- */
void lvma_open_guest(lua_State *L);

/* ---- the file and process helpers (lvma_os.c, lvma_proc.c): vma.os ---- */
/* adds the table os to the module table on top */
void lvma_open_os(lua_State *L);
/* adds the process functions to the table on top (vma.os) */
void lvma_open_proc(lua_State *L);

#endif
