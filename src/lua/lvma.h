/* lvma.h - what the files of the Lua binding share: the error convention
 * (nil, message, kind, as luaL_fileresult returns them) and the parts of the
 * module table. */
#ifndef LVMA_H
#define LVMA_H

#include "vma.h"

#include <lua.h>
#include <lauxlib.h>

/* nil, message, kind ("io", "format", "incomplete", "argument",
 * "interrupted"); frees e */
int lvma_push_error(lua_State *L, GError *e);
/* nil, "<message>: <strerror>", "io" (or "interrupted" for EINTR) */
int lvma_push_errno(lua_State *L, int errnum, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* nil, message, "argument" */
int lvma_push_argerror(lua_State *L, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

#define READER_MT "vma.reader"

/* an archive open for random access, shared by a reader and its disks */
typedef struct {
    vma_archive *a;
    int refs;
} larchive;
void lvma_archive_unref(larchive *la);

/* vma.open's result; its user value 1 holds the options of vma.open */
typedef struct {
    vma_reader *r;
    gboolean consumed;
    char *path;
    larchive *arc;        /* opened by the first r:disk() */
} lreader;
lreader *lvma_check_reader(lua_State *L);

/* the file and process helpers (lvma_os.c): added to the table on top */
void lvma_open_os(lua_State *L);
/* child processes, sleep, temporary folders (lvma_proc.c): added by lvma_open_os */
void lvma_open_proc(lua_State *L);

/* disks (lvma_disk.c): r:disk(name), and the disk class */
int lvma_reader_disk(lua_State *L);
void lvma_open_disk(lua_State *L);
/* the archive and device id of the disk at idx (raises on anything else or
 * a closed disk); a view made from it takes its own vma_archive_ref */
vma_archive *lvma_disk_archive(lua_State *L, int idx, uint8_t *dev_id);

/* the guest's volumes and files (lvma_guest.c): added to the table on top,
 * with d:volumes(), r:guest(), r:volumes() */
void lvma_open_guest(lua_State *L);

#endif
