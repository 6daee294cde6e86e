/* lvma_archive.c - vma.open(path [, opts]): one object per open archive.
 *
 * It owns the file and the header (libvma's vma_archive); r:verify() and
 * r:extract() read it in one pass, r:disk(name) reads a device at random;
 * both come from this one object, never from the path opened again. */
#define _GNU_SOURCE
#include "lvma.h"
#include "lvma_ext.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

larchive *lvma_check_archive(lua_State *L, int idx)
{
    larchive *la = luaL_checkudata(L, idx, ARCHIVE_MT);
    if (!la->a)
        luaL_error(L, "attempt to use a closed %s", ARCHIVE_MT);
    return la;
}

static gboolean archive_open_p(void *self) { return ((larchive *)self)->a != NULL; }

/* ---- callbacks from the archive into Lua ----
 *
 * opts.wait runs on the thread of the read that waits, and only on the OS
 * thread that opened the archive (every read from Lua is made there; a
 * guest engine's own threads get no callback), in a Lua thread of the
 * archive's own (its stack holds the function at 1), so that a read made
 * in a coroutine can call it.  The struct belongs to the C archive, which
 * may outlive the Lua object (disks and views hold references), and the
 * Lua object the C archive: both hold a reference; the Lua object, when
 * collected, switches it off. */
struct lcallbacks {
    gint refs;
    lua_State *L;         /* NULL once the Lua object is gone */
    GThread *owner;
    char *error;          /* what the wait function raised */
};

static void push_wait_info(lua_State *L, const vma_wait_info *w)
{
    lua_createtable(L, 0, 8);
    lvma_set_int(L, "input_done", (lua_Integer)w->input_done);
    lvma_set_int(L, "input_total", (lua_Integer)w->input_total);
    lvma_set_int(L, "stream_done", (lua_Integer)w->stream_done);
    lua_pushnumber(L, w->seconds);
    lua_setfield(L, -2, "seconds");
    if (w->device) {
        lvma_set_str(L, "device", w->device);
        lvma_set_int(L, "offset", (lua_Integer)w->offset);
    }
    if (w->eta >= 0) {
        lua_pushnumber(L, w->eta);
        lua_setfield(L, -2, "eta");
    }
    lua_pushboolean(L, w->other_process);
    lua_setfield(L, -2, "other_process");
}

static int on_wait(const vma_wait_info *w, void *ud)
{
    struct lcallbacks *cb = ud;
    if (cb->error)
        return 1;
    if (!cb->L || g_thread_self() != cb->owner)
        return 0;
    lua_State *L = cb->L;
    lua_pushvalue(L, 1);
    push_wait_info(L, w);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        cb->error = g_strdup(lua_tostring(L, -1));
        lua_settop(L, 1);
        return 1;
    }
    int stop = lua_type(L, -1) == LUA_TSTRING ||
               (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1));
    lua_settop(L, 1);
    return stop;
}

static void callbacks_free(gpointer p)
{
    struct lcallbacks *cb = p;
    if (!g_atomic_int_dec_and_test(&cb->refs))
        return;
    g_free(cb->error);
    g_free(cb);
}

int lvma_wait_failure(lua_State *L, larchive *la, GError *e)
{
    struct lcallbacks *cb = la ? la->cb : NULL;
    if (cb && cb->error) {
        g_clear_error(&e);
        lua_pushnil(L);
        lua_pushstring(L, cb->error);
        lua_pushliteral(L, "callback");
        g_clear_pointer(&cb->error, g_free);
        return 3;
    }
    return lvma_push_error(L, e);
}

/* ---- vma.open ---- */

static int opt_cache(lua_State *L, int opts, vma_archive_opts *o)
{
    lua_getfield(L, opts, "cache");
    if (lua_isboolean(L, -1)) {
        o->cache = lua_toboolean(L, -1) ? VMA_CACHE_AUTO : VMA_CACHE_OFF;
    } else if (!lua_isnil(L, -1)) {
        const char *c = lua_tostring(L, -1);
        if (c && strcmp(c, "on") == 0)
            o->cache = VMA_CACHE_ON;
        else if (c && strcmp(c, "off") == 0)
            o->cache = VMA_CACHE_OFF;
        else if (!c || strcmp(c, "auto") != 0)
            return lvma_push_argerror(L, "cache must be \"auto\", \"on\", \"off\" or a boolean");
    }
    lua_pop(L, 1);
    return 0;
}

/* vma.open(path [, {cache =, cache_dir =, frame_cache_mb =, spill_mb =,
 * spill_dir =, progress =, wait =}]) -> archive | nil, message, kind */
int lvma_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int opts = lua_istable(L, 2) ? 2 : 0;
    /* user values: 1 the options (for r:disk), 2 the callbacks' thread */
    larchive *la = lua_newuserdatauv(L, sizeof(larchive), 2);
    memset(la, 0, sizeof(*la));
    luaL_setmetatable(L, ARCHIVE_MT);
    int self = lua_gettop(L);
    vma_archive_opts o = {0};
    if (opts) {
        lua_pushvalue(L, opts);
        lua_setiuservalue(L, self, 1); /* progress for r:disk() */
        int n = opt_cache(L, opts, &o);
        if (n)
            return n;
        lua_getfield(L, opts, "cache_dir");
        o.cache_dir = lua_tostring(L, -1);
        lua_getfield(L, opts, "frame_cache_mb");
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0)
            o.frame_cache = (uint64_t)lua_tointeger(L, -1) << 20;
        lua_getfield(L, opts, "spill_mb");
        if (lua_isinteger(L, -1))
            o.spill = lua_tointeger(L, -1) > 0 ? (int64_t)lua_tointeger(L, -1) << 20 : -1;
        else if (!lua_isnil(L, -1))
            return lvma_push_argerror(L, "spill_mb must be an integer (0: no spill file)");
        lua_getfield(L, opts, "spill_dir");
        o.spill_dir = lua_tostring(L, -1);
        lua_getfield(L, opts, "wait");
        if (lua_isfunction(L, -1)) {
            struct lcallbacks *cb = g_new0(struct lcallbacks, 1);
            cb->refs = 2; /* the Lua object's and the C archive's */
            cb->L = lua_newthread(L);
            lua_pushvalue(L, -2);
            lua_xmove(L, cb->L, 1); /* the function at 1 of its stack */
            lua_setiuservalue(L, self, 2);
            cb->owner = g_thread_self();
            la->cb = cb;
            o.wait = on_wait;
            o.wait_ud = cb;
            o.wait_ud_free = callbacks_free;
        } else if (!lua_isnil(L, -1)) {
            return lvma_push_argerror(L, "wait must be a function");
        }
        lua_pop(L, 1);
    }
    GError *e = NULL;
    la->a = vma_archive_open(path, &o, &e); /* the strings are copied */
    lua_settop(L, self);
    if (!la->a)
        return lvma_push_error(L, e); /* the open dropped the archive's reference */
    return 1;
}

/* r:close(), __close: drop this object's reference (disks keep theirs) */
static int archive_close(lua_State *L)
{
    larchive *la = luaL_checkudata(L, 1, ARCHIVE_MT);
    lvma_drop_archive(&la->a);
    return 0;
}

/* __gc: the callbacks can no longer reach this Lua object */
static int archive_gc(lua_State *L)
{
    larchive *la = luaL_checkudata(L, 1, ARCHIVE_MT);
    if (la->cb) {
        la->cb->L = NULL;
        callbacks_free(la->cb);
        la->cb = NULL;
    }
    return archive_close(L);
}

static int archive_tostring(lua_State *L)
{
    larchive *la = luaL_checkudata(L, 1, ARCHIVE_MT);
    if (!la->a) {
        lua_pushfstring(L, "%s (closed)", ARCHIVE_MT);
    } else {
        char s[37];
        vma_uuid_format(vma_archive_header(la->a)->uuid, s);
        lua_pushfstring(L, "%s (%s)", ARCHIVE_MT, s);
    }
    return 1;
}

static void push_device(lua_State *L, const vma_device *d)
{
    lua_createtable(L, 0, 4);
    lvma_set_int(L, "id", d->id);
    lvma_set_str(L, "name", d->name);
    lvma_set_int(L, "size", (lua_Integer)d->size);
    lua_pushboolean(L, d->is_vmstate);
    lua_setfield(L, -2, "vmstate");
}

static int archive_devices(lua_State *L)
{
    larchive *la = lvma_check_archive(L, 1);
    const vma_header *h = vma_archive_header(la->a);
    lua_createtable(L, (int)h->n_devices, 0);
    int n = 0;
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        if (!h->devices[id])
            continue;
        push_device(L, h->devices[id]);
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

/* r:find_device(name [, disks_only]) -> device table | nil, message, kind:
 * the device a user means (vma_header_find_device: exact name, then the
 * config key) */
static int archive_find_device(lua_State *L)
{
    larchive *la = lvma_check_archive(L, 1);
    const char *name = luaL_checkstring(L, 2);
    GError *e = NULL;
    const vma_device *d = vma_header_find_device(vma_archive_header(la->a), name,
                                                 lua_toboolean(L, 3), &e);
    if (!d)
        return lvma_push_error(L, e);
    push_device(L, d);
    return 1;
}

static int archive_configs(lua_State *L)
{
    larchive *la = lvma_check_archive(L, 1);
    const vma_header *h = vma_archive_header(la->a);
    lua_createtable(L, (int)h->n_configs, 0);
    for (unsigned i = 0; i < h->n_configs; i++) {
        lua_createtable(L, 0, 3);
        lvma_set_str(L, "name", h->configs[i].name);
        lua_pushlstring(L, (const char *)h->configs[i].data, h->configs[i].len);
        lua_setfield(L, -2, "data");
        lvma_set_int(L, "size", (lua_Integer)h->configs[i].len);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static const vma_config *find_config(const vma_header *h, const char *name)
{
    for (unsigned i = 0; i < h->n_configs; i++)
        if (strcmp(h->configs[i].name, name) == 0)
            return &h->configs[i];
    return NULL;
}

static const vma_device *find_device(const vma_header *h, const char *name)
{
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++)
        if (h->devices[id] && strcmp(h->devices[id]->name, name) == 0)
            return h->devices[id];
    return NULL;
}

static int archive_config(lua_State *L)
{
    larchive *la = lvma_check_archive(L, 1);
    const char *name = luaL_optstring(L, 2, "qemu-server.conf");
    const vma_config *c = find_config(vma_archive_header(la->a), name);
    if (!c)
        return lvma_push_error(L, g_error_new(VMA_ERROR, VMA_ERR_MISSING,
                                              "unable to find configuration data '%s'", name));
    lua_pushlstring(L, (const char *)c->data, c->len);
    return 1;
}

/* ---- one pass: verify, extract ---- */

static void push_stats(lua_State *L, const vma_stats *st)
{
    lua_createtable(L, 0, 9);
#define F(name) do { lua_pushinteger(L, (lua_Integer)st->name); lua_setfield(L, -2, #name); } while (0)
    F(clusters_total);
    F(clusters_done);
    F(bytes_archive);
    F(bytes_written);
    F(zero_bytes);
    F(partial_zero_bytes);
    F(vmstate_bytes);
#undef F
    lvma_set_int(L, "bytes_read", (lua_Integer)(st->clusters_done * VMA_CLUSTER_SIZE));
    lua_pushnumber(L, st->elapsed);
    lua_setfield(L, -2, "elapsed");
}

int lvma_restore_progress(const vma_stats *st, void *ud)
{
    lvma_progress *pc = ud;
    lvma_progress_push(pc);
    push_stats(pc->L, st);
    return lvma_progress_call(pc);
}

/* the target of one device from its Lua table (on top of the stack):
 * opened, or nil, message, kind pushed (returns that count) */
static int open_target(lua_State *L, const vma_device *d, vma_target *t)
{
    memset(t, 0, sizeof(*t));
    t->fd = -1;
    /* { sink = <vma.sink>, write_zero =, fresh = }: a module's own target
     * (vma.rbd), written through its ops; it stays open, owned by Lua */
    lua_getfield(L, -1, "sink");
    if (!lua_isnil(L, -1)) {
        vma_ext_ud *ud = lvma_ext_ud(L, -1, VMA_SINK_MT);
        lua_pop(L, 1);
        if (!ud)
            return lvma_push_argerror(L, "target of '%s': sink is not a vma.sink of this vma",
                                      d->name);
        if (!ud->ops.sink)
            return lvma_push_argerror(L, "target of '%s': the sink is closed", d->name);
        if (!d->is_vmstate && ud->size < d->size)
            return lvma_push_argerror(L, "target %s is smaller (%" G_GUINT64_FORMAT " bytes) "
                                      "than %s (%" G_GUINT64_FORMAT " bytes)", ud->label,
                                      ud->size, d->name, d->size);
        lua_getfield(L, -1, "fresh");
        lua_getfield(L, -2, "write_zero");
        lua_getfield(L, -3, "bps");
        t->fresh = lua_toboolean(L, -3);
        t->write_zero = lua_toboolean(L, -2);
        t->bps = (uint64_t)lua_tointeger(L, -1);
        lua_pop(L, 3);
        t->ops = ud->ops.sink;
        t->ctx = ud->ctx;
        t->label = ud->label;
        return 0;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "path");
    lua_getfield(L, -2, "fresh");
    lua_getfield(L, -3, "write_zero");
    lua_getfield(L, -4, "bps");
    lua_getfield(L, -5, "mode");
    lua_getfield(L, -6, "created");
    lua_getfield(L, -7, "nofollow");
    lua_getfield(L, -8, "clear_data");
    const char *path = lua_tostring(L, -8);
    t->fresh = lua_toboolean(L, -7);
    t->write_zero = lua_toboolean(L, -6);
    t->bps = (uint64_t)lua_tointeger(L, -5);
    mode_t mode = lua_isinteger(L, -4) ? (mode_t)lua_tointeger(L, -4) : 0600;
    gboolean created = lua_toboolean(L, -3), nofollow = lua_toboolean(L, -2);
    t->clear_data = lua_toboolean(L, -1);
    lua_pop(L, 8);
    if (!path)
        return lvma_push_argerror(L, "target of '%s' has no path", d->name);
    /* created: the caller made the (empty) file just now; a fresh target is
     * made here, never over an existing file */
    int flags = O_WRONLY | O_CLOEXEC | (t->fresh && !created ? O_CREAT | O_EXCL : 0);
    if (nofollow) {
        /* relative to its folder, and never through a symbolic link */
        char *dir = g_path_get_dirname(path), *base = g_path_get_basename(path);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int en = errno;
        t->fd = dfd < 0 ? -1 : openat(dfd, base, flags | O_NOFOLLOW, mode);
        if (dfd >= 0) {
            en = errno;
            close(dfd);
        }
        g_free(dir);
        g_free(base);
        if (t->fd < 0 && en == ELOOP)
            return lvma_push_argerror(L, "target %s is a symbolic link: not writing through it",
                                      path);
        errno = en;
    } else {
        t->fd = open(path, flags, mode);
    }
    if (t->fd < 0)
        return lvma_push_errno(L, errno, "cannot open %s", path);
    struct stat st;
    int n = 0;
    if (nofollow && fstat(t->fd, &st) < 0)
        n = lvma_push_errno(L, errno, "cannot stat %s", path);
    else if (nofollow && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        n = lvma_push_argerror(L, "target %s is not a file or block device", path);
    /* the mode asked for, whatever the umask */
    else if (t->fresh && fchmod(t->fd, mode) < 0)
        n = lvma_push_errno(L, errno, "cannot set the mode of %s", path);
    if (n) {
        /* nothing open is left, nor a file made here */
        if (t->fresh && !created)
            unlink(path);
        close(t->fd);
        t->fd = -1;
        return n;
    }
    /* the path lives in the options table, which outlives the restore */
    t->label = path;
    return 0;
}

/* opts.targets -> targets[] (every key must name a device); 0, or the count
 * of the error values pushed */
static int open_targets(lua_State *L, const vma_header *h, int opts, vma_target *tstore,
                        vma_target *targets[VMA_MAX_DEV_ID + 1])
{
    lua_getfield(L, opts, "targets");
    int tt = lua_gettop(L);
    if (!lua_istable(L, tt)) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushnil(L);
    while (lua_next(L, tt)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!k || !find_device(h, k))
            return lvma_push_argerror(L, "no device named '%s' in the archive",
                                      k ? k : "(not a string)");
    }
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = h->devices[id];
        if (!d)
            continue;
        lua_getfield(L, tt, d->name);
        if (lua_istable(L, -1)) {
            int n = open_target(L, d, &tstore[id]);
            if (n)
                return n;
            targets[id] = &tstore[id];
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* salvage: the damage met, collected in C during the restore (a Lua table
 * made there could raise out of memory through libvma) and pushed after */
#define MAX_DAMAGE_KEPT 1000
#define MAX_RANGES_KEPT 10000

typedef struct {
    uint64_t offset;
    char *what;
} damage;

static void on_damage(uint64_t offset, const char *what, void *ud)
{
    GArray *list = ud;
    if (list->len >= MAX_DAMAGE_KEPT)
        return;
    damage d = {offset, g_strdup(what)};
    g_array_append_val(list, d);
}

static void damage_clear(gpointer p) { g_free(((damage *)p)->what); }

typedef struct {
    lua_State *L;
    const vma_device *d;
    lua_Integer n;
} range_list;

static void on_missing(uint64_t start, uint64_t end, void *ud)
{
    range_list *rl = ud;
    if (rl->n >= MAX_RANGES_KEPT)
        return;
    lua_State *L = rl->L;
    uint64_t off = start * VMA_CLUSTER_SIZE;
    uint64_t stop = MIN(end * VMA_CLUSTER_SIZE, rl->d->size);
    lua_createtable(L, 0, 2);
    lvma_set_int(L, "offset", (lua_Integer)off);
    lvma_set_int(L, "length", (lua_Integer)(stop - off));
    lua_rawseti(L, -2, ++rl->n);
}

/* stats.damage = {{offset=, what=}...}, stats.damage_events = N,
 * stats.missing = { [devname] = {bytes=, ranges={{offset=, length=}...}} }
 * (after the restore: nothing of libvma runs any more) */
static void push_salvage_report(lua_State *L, vma_reader *r, const GArray *dmg)
{
    const vma_header *h = vma_reader_header(r);
    lua_createtable(L, (int)dmg->len, 0);
    for (guint i = 0; i < dmg->len; i++) {
        const damage *d = &g_array_index(dmg, damage, i);
        lua_createtable(L, 0, 2);
        lvma_set_int(L, "offset", (lua_Integer)d->offset);
        lvma_set_str(L, "what", d->what);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "damage");
    lvma_set_int(L, "damage_events", (lua_Integer)vma_reader_damage_events(r));
    lua_newtable(L);
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = h->devices[id];
        if (!d || d->is_vmstate)
            continue;
        uint64_t missing = vma_reader_missing(r, (uint8_t)id);
        lua_createtable(L, 0, 2);
        uint64_t last = vma_clusters(d->size);
        /* the last cluster may be short */
        uint64_t bytes = missing * VMA_CLUSTER_SIZE;
        if (missing && !vma_reader_has_cluster(r, (uint8_t)id, (uint32_t)(last - 1)))
            bytes -= last * VMA_CLUSTER_SIZE - d->size;
        lvma_set_int(L, "bytes", (lua_Integer)bytes);
        lua_newtable(L);
        range_list rl = {L, d, 0};
        vma_reader_foreach_missing(r, (uint8_t)id, on_missing, &rl);
        lua_setfield(L, -2, "ranges");
        lua_setfield(L, -2, d->name);
    }
    lua_setfield(L, -2, "missing");
}

/* r:verify{progress =} / r:extract{ targets = { [devname] = {path=, write_zero=,
 * fresh=, bps=, mode=} | {sink=...} }, progress = fn, salvage = bool }
 * -> stats | nil, msg, kind.  Devices without a target need not be
 * complete: only what is restored is.  Each call reads the archive once
 * more (a stream, such as standard input, only once). */
static int do_restore(lua_State *L, gboolean with_targets)
{
    larchive *la = lvma_check_archive(L, 1);
    int opts = lua_istable(L, 2) ? 2 : 0;
    const vma_header *h = vma_archive_header(la->a);
    vma_target tstore[VMA_MAX_DEV_ID + 1];
    vma_target *targets[VMA_MAX_DEV_ID + 1] = {0};
    lvma_progress pc = lvma_progress_from(L, opts);
    gboolean salvage = FALSE;
    if (opts) {
        lua_getfield(L, opts, "salvage");
        salvage = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    int nret = 0;
    if (with_targets && opts)
        nret = open_targets(L, h, opts, tstore, targets);
    GError *e = NULL;
    vma_reader *r = nret ? NULL : vma_archive_stream(la->a, &e);
    if (!nret && !r)
        nret = lvma_push_error(L, e);
    if (nret)
        goto close_targets;
    GArray *dmg = g_array_new(FALSE, FALSE, sizeof(damage));
    g_array_set_clear_func(dmg, damage_clear);
    if (salvage)
        vma_reader_set_salvage(r, on_damage, dmg);
    for (unsigned id = 1; with_targets && id <= VMA_MAX_DEV_ID; id++)
        if (h->devices[id] && !targets[id])
            vma_reader_set_optional(r, (uint8_t)id, TRUE);
    vma_stats st;
    int rc = vma_restore(r, targets, pc.fn ? lvma_restore_progress : NULL, &pc, &st, &e);
    if (rc < 0) {
        nret = lvma_progress_failure(&pc, e);
    } else {
        push_stats(L, &st);
        if (salvage)
            push_salvage_report(L, r, dmg);
        nret = 1;
    }
    g_array_free(dmg, TRUE);
    vma_reader_free(r);
close_targets:
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        if (targets[id] && targets[id]->fd >= 0)
            close(targets[id]->fd);
    }
    return nret;
}

static int archive_verify(lua_State *L) { return do_restore(L, FALSE); }
static int archive_extract(lua_State *L) { return do_restore(L, TRUE); }

/* r:status() -> {seekable, ready, from_cache, decoding, complete,
 * input_done, input_total, stream_done, seconds, index_memory} */
static int archive_status(lua_State *L)
{
    larchive *la = lvma_check_archive(L, 1);
    vma_access_status st;
    vma_archive_status(la->a, &st);
    lua_createtable(L, 0, 10);
#define B(f) do { lua_pushboolean(L, st.f); lua_setfield(L, -2, #f); } while (0)
#define I(f) do { lua_pushinteger(L, (lua_Integer)st.f); lua_setfield(L, -2, #f); } while (0)
    B(seekable);
    B(ready);
    B(from_cache);
    B(decoding);
    B(complete);
    I(input_done);
    I(input_total);
    I(stream_done);
    I(index_memory);
#undef B
#undef I
    lua_pushnumber(L, st.seconds);
    lua_setfield(L, -2, "seconds");
    return 1;
}

/* r:prepare() / r:wait_complete() -> true | nil, msg, kind: random access
 * made ready (the index, or the decoder started); the decoded copy complete */
static int archive_step(lua_State *L, int (*step)(vma_archive *a, GError **err))
{
    larchive *la = lvma_check_archive(L, 1);
    GError *e = NULL;
    if (step(la->a, &e) < 0)
        return lvma_wait_failure(L, la, e);
    lua_pushboolean(L, 1);
    return 1;
}

static int archive_prepare(lua_State *L) { return archive_step(L, vma_archive_prepare); }
static int archive_wait_complete(lua_State *L)
{
    return archive_step(L, vma_archive_wait_complete);
}

static int archive_wait_compacted(lua_State *L)
{
    return archive_step(L, vma_archive_wait_compacted);
}

static void get_uuid(lua_State *L, void *self)
{
    lvma_push_uuid(L, vma_archive_header(((larchive *)self)->a)->uuid);
}
static void get_ctime(lua_State *L, void *self)
{
    lua_pushinteger(L, vma_archive_header(((larchive *)self)->a)->ctime);
}
static void get_compression(lua_State *L, void *self)
{
    lua_pushstring(L, vma_compress_name(vma_archive_compression(((larchive *)self)->a)));
}
static void get_header_size(lua_State *L, void *self)
{
    lua_pushinteger(L, vma_archive_header(((larchive *)self)->a)->header_size);
}
static void get_path(lua_State *L, void *self)
{
    lua_pushstring(L, vma_archive_label(((larchive *)self)->a));
}
static void get_seekable(lua_State *L, void *self)
{
    lua_pushboolean(L, vma_archive_seekable(((larchive *)self)->a));
}
static void get_stream(lua_State *L, void *self)
{
    lua_pushboolean(L, vma_archive_is_stream(((larchive *)self)->a));
}
static void get_header_md5(lua_State *L, void *self)
{
    uint8_t m[16];
    char hex[33];
    vma_archive_header_md5(((larchive *)self)->a, m);
    for (int i = 0; i < 16; i++)
        g_snprintf(hex + 2 * i, 3, "%02x", m[i]);
    lua_pushstring(L, hex);
}
static void get_random_error(lua_State *L, void *self)
{
    const GError *e = vma_archive_random_error(((larchive *)self)->a);
    if (e)
        lua_pushstring(L, e->message);
    else
        lua_pushnil(L);
}

static void get_key(lua_State *L, void *self)
{
    lua_pushstring(L, vma_archive_key(((larchive *)self)->a));
}

static const lvma_getter archive_getters[] = {
    {"uuid", get_uuid},
    {"ctime", get_ctime},
    {"compression", get_compression},
    {"header_size", get_header_size},
    {"path", get_path},
    {"seekable", get_seekable},
    {"stream", get_stream},
    {"header_md5", get_header_md5},
    {"cache_key", get_key},
    {"random_error", get_random_error},
    {NULL, NULL},
};

static const luaL_Reg archive_methods[] = {
    {"devices", archive_devices},
    {"find_device", archive_find_device},
    {"configs", archive_configs},
    {"config", archive_config},
    {"verify", archive_verify},
    {"extract", archive_extract},
    {"disk", lvma_archive_disk},
    {"status", archive_status},
    {"prepare", archive_prepare},
    {"wait_complete", archive_wait_complete},
    {"wait_compacted", archive_wait_compacted},
    {"close", archive_close},
    {NULL, NULL},
};

static const luaL_Reg archive_meta[] = {
    {"__gc", archive_gc},
    {"__close", archive_close},
    {"__tostring", archive_tostring},
    {NULL, NULL},
};

void lvma_open_archive(lua_State *L)
{
    lvma_new_class(L, ARCHIVE_MT, archive_meta, archive_methods, archive_getters,
                   archive_open_p);
}
