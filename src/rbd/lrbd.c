/* lrbd.c - the Lua module "vma.rbd": Ceph RBD images as restore targets and
 * backup sources, through librbd.  Built as build/cmod/vma/rbd.so, apart from vma
 * and vma.so, so that only those who use Ceph load librbd.  It does not link
 * libvma: its sinks and sources are userdata (lvma_ext.h) that the vma
 * module's extract and write_device accept, and libvma calls.
 *
 *   local rbd = require "vma.rbd"
 *   local c = rbd.connect { conf =, id =, options = { {key, value}, ... }, timeout = }
 *   c:stat(pool, ns, image [, snap])      --> size, or nil, message, code ("ENOENT"...)
 *   c:create(pool, ns, image, size)       --> true
 *   c:remove(pool, ns, image [, seconds]) --> true ("gone" if it was not there)
 *   c:list(pool, ns)                      --> { names }
 *   c:watchers(pool, ns, image)           --> count of the clients that have it open
 *   c:pool_full(pool)                     --> boolean
 *   c:sink(pool, ns, image [, {max_bytes =, max_ops =, stall =}])  --> vma.sink
 *   c:source(pool, ns, image, snap [, {window =}])                 --> vma.source
 *   c.timeout, c.who, c:close()
 *   sink:close(), source:close(), source:data_bytes(), x.size, x.label
 *
 * Each object is a class of the binding's rules (lvma_class.c, compiled in):
 * its methods in a table, its properties through getters, and once closed
 * every method and property but close raises "attempt to use a closed X".
 *
 * ns is the RADOS namespace ("" or nil: none).  Errors are nil, message,
 * code (an errno name; "ENOPOOL" for a pool that does not exist).  The connection is shared, counted, by every image
 * opened through it. */
#define _GNU_SOURCE
#include "rbd.h"
#include "lvma.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdarg.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#define CLUSTER_MT "vma.rbd.cluster"
#define DEFAULT_TIMEOUT "30"

typedef struct {
    vrbd_cluster *c;
} lcluster;

static const char *errno_name(int e)
{
    switch (e) {
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case EDQUOT: return "EDQUOT";
    case EIO: return "EIO";
    case ESHUTDOWN: return "ESHUTDOWN";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ERANGE: return "ERANGE";
    default: return "EOTHER";
    }
}

/* nil, message, code; r is a negative errno */
static int push_fail(lua_State *L, int r, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static int push_fail(lua_State *L, int r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, errno_name(-r));
    g_free(msg);
    return 3;
}

static int push_gerror(lua_State *L, GError *e)
{
    lua_pushnil(L);
    lua_pushstring(L, e ? e->message : "unknown error");
    lua_pushstring(L, e && e->code == VMA_ERR_INTERRUPTED ? "interrupted" : "EIO");
    if (e)
        g_error_free(e);
    return 3;
}

/* ---- connect ---- */

static const char *opt_string(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *s = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1); /* the string stays alive: it is in the table */
    return s;
}

static char *conf_get(rados_t cl, const char *key)
{
    char buf[1024];
    if (rados_conf_get(cl, key, buf, sizeof buf) < 0)
        return g_strdup("?");
    return g_strdup(buf);
}

/* whether the options (table at index ot, pairs {k, v}) name the monitors */
static gboolean options_name_mon_host(lua_State *L, int ot)
{
    gboolean found = FALSE;
    if (!lua_istable(L, ot))
        return FALSE;
    for (lua_Integer i = 1; lua_rawgeti(L, ot, i) == LUA_TTABLE; i++) {
        lua_rawgeti(L, -1, 1);
        const char *k = lua_tostring(L, -1);
        if (k && (strcmp(k, "mon_host") == 0 || strcmp(k, "mon-host") == 0))
            found = TRUE;
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    return found;
}

/* set the options of table ot with rados_conf_set; NULL, or the message of
 * the first one refused (to be freed) */
static char *apply_options(lua_State *L, rados_t cl, int ot, int *rp)
{
    if (!lua_istable(L, ot))
        return NULL;
    for (lua_Integer i = 1; lua_rawgeti(L, ot, i) == LUA_TTABLE; i++) {
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
        int r = k && v ? rados_conf_set(cl, k, v) : 0;
        if (r < 0) {
            *rp = r;
            char *msg = g_strdup_printf("bad Ceph option %s=%s: %s", k, v,
                                        r == -ENOENT ? "no such option" : g_strerror(-r));
            lua_pop(L, 3);
            return msg;
        }
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    return NULL;
}

/* the defaults of librados wait forever for a dead OSD: bound them (to
 * timeout, or DEFAULT_TIMEOUT when the config leaves them at their
 * defaults) */
static void bound_timeouts(rados_t cl, const char *timeout)
{
    static const char *const tkeys[] = {"rados_osd_op_timeout", "rados_mon_op_timeout",
                                        "client_mount_timeout"};
    static const char *const tdefault[] = {"0", "0", "300"};
    for (int i = 0; i < 3; i++) {
        char *v = conf_get(cl, tkeys[i]);
        if (timeout || strtod(v, NULL) == strtod(tdefault[i], NULL))
            rados_conf_set(cl, tkeys[i], timeout ? timeout : DEFAULT_TIMEOUT);
        g_free(v);
    }
}

/* rados_connect failed with r: nil, a message that says why, code; shuts cl down */
static int push_connect_fail(lua_State *L, rados_t cl, int r, const char *who)
{
    char *keyring = conf_get(cl, "keyring");
    char *mons = conf_get(cl, "mon_host");
    char *mt = conf_get(cl, "client_mount_timeout");
    rados_shutdown(cl);
    int n;
    if (r == -ENOENT)
        n = push_fail(L, r, "cannot connect to Ceph as %s: no keyring found (keyring = %s)",
                      who, keyring);
    else if (r == -EACCES || r == -EPERM)
        n = push_fail(L, r, "Ceph refused %s: permission denied (a wrong key in the keyring "
                            "%s, or no such user)", who, keyring);
    else if (r == -ETIMEDOUT)
        n = push_fail(L, r, "no Ceph monitor answered within %s s (mon_host = %s)", mt,
                      *mons ? mons : "(none)");
    else if (r == -EINVAL && !*mons)
        n = push_fail(L, r, "cannot connect to Ceph: no monitor address (mon_host) in the "
                            "config");
    else
        n = push_fail(L, r, "cannot connect to Ceph as %s: %s", who, g_strerror(-r));
    g_free(keyring);
    g_free(mons);
    g_free(mt);
    return n;
}

/* configure cl from the table at index 1: conf file, options, timeouts;
 * NULL or a message (to be freed), *rp the errno */
static char *configure(lua_State *L, rados_t cl, int *rp)
{
    const char *conf = opt_string(L, 1, "conf");
    lua_getfield(L, 1, "timeout");
    const char *timeout = lua_isnil(L, -1) ? NULL : lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays alive: it is in the table */
    /* librados' own messages go to its log, not to the terminal */
    rados_conf_set(cl, "log_to_stderr", "false");
    rados_conf_set(cl, "err_to_stderr", "false");
    lua_getfield(L, 1, "options");
    int ot = lua_gettop(L);
    gboolean mon_host = options_name_mon_host(L, ot);
    int r = rados_conf_read_file(cl, conf);
    if (r < 0 && (conf || !mon_host)) {
        *rp = r;
        const char *env = getenv("CEPH_CONF");
        return g_strdup_printf("cannot read the Ceph config %s: %s%s",
                               conf ? conf : env && *env ? env : "/etc/ceph/ceph.conf",
                               g_strerror(-r), conf ? "" : " (give one with :conf=FILE)");
    }
    bound_timeouts(cl, timeout);
    /* the sink copies and gathers itself; the cache would copy again */
    rados_conf_set(cl, "rbd_cache", "false");
    return apply_options(L, cl, ot, rp);
}

/* rbd.connect{ conf =, id =, options = {{k, v}...}, timeout = } */
static int l_connect(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *id = opt_string(L, 1, "id");
    /* made before the connection, so that a memory error cannot leak it */
    lcluster *lc = lua_newuserdatauv(L, sizeof(lcluster), 0);
    lc->c = NULL;
    int ud = lua_gettop(L);
    char *who = g_strdup_printf("client.%s", id && *id ? id : "admin");
    rados_t cl;
    int r = rados_create2(&cl, "ceph", who, 0);
    if (r < 0) {
        g_free(who);
        return push_fail(L, r, "cannot set up a Ceph client: %s", g_strerror(-r));
    }
    char *msg = configure(L, cl, &r);
    lua_settop(L, ud);
    if (msg) {
        rados_shutdown(cl);
        g_free(who);
        r = push_fail(L, r, "%s", msg);
        g_free(msg);
        return r;
    }
    char *t = conf_get(cl, "rados_osd_op_timeout");
    double tsec = strtod(t, NULL);
    g_free(t);
    r = rados_connect(cl);
    if (r < 0) {
        int n = push_connect_fail(L, cl, r, who);
        g_free(who);
        return n;
    }
    lc->c = g_new0(vrbd_cluster, 1);
    lc->c->cl = cl;
    lc->c->refs = 1;
    lc->c->timeout = tsec;
    lc->c->who = who;
    luaL_setmetatable(L, CLUSTER_MT);
    return 1;
}

static gboolean cluster_open(void *self) { return ((lcluster *)self)->c != NULL; }

static vrbd_cluster *check_cluster(lua_State *L)
{
    return ((lcluster *)lvma_check_open(L, 1, CLUSTER_MT, cluster_open))->c;
}

/* an image named by the arguments pool, ns, image at 2, 3, 4 (ns "" or nil:
 * none), and its name in messages, "pool[/ns]/image" (a string left on
 * the stack, collected with it) */
typedef struct {
    const char *pool, *ns, *image, *name;
} image_ref;

static image_ref image_args(lua_State *L)
{
    image_ref ir = {luaL_checkstring(L, 2), luaL_optstring(L, 3, ""), luaL_checkstring(L, 4),
                    NULL};
    ir.name = *ir.ns ? lua_pushfstring(L, "%s/%s/%s", ir.pool, ir.ns, ir.image)
                     : lua_pushfstring(L, "%s/%s", ir.pool, ir.image);
    return ir;
}

static int push_true(lua_State *L)
{
    lua_pushboolean(L, 1);
    return 1;
}

/* told apart from a missing image by its code */
static int push_nopool(lua_State *L, const char *pool)
{
    push_fail(L, -ENOENT, "no pool '%s' in the Ceph cluster", pool);
    lua_pop(L, 1);
    lua_pushliteral(L, "ENOPOOL");
    return 3;
}

/* an ioctx on pool (and namespace); 0, or the error values pushed (their count) */
static int open_ioctx(lua_State *L, vrbd_cluster *c, const char *pool, const char *ns,
                      rados_ioctx_t *io)
{
    int r = rados_ioctx_create(c->cl, pool, io);
    if (r == -ENOENT)
        return push_nopool(L, pool);
    if (r < 0)
        return push_fail(L, r, "cannot open the pool '%s': %s", pool, g_strerror(-r));
    if (*ns)
        rados_ioctx_set_namespace(*io, ns);
    return 0;
}

static int image_error(lua_State *L, int r, const image_ref *ir)
{
    if (r == -ENOENT)
        return push_fail(L, r, "no RBD image %s", ir->name);
    if (r == -EACCES || r == -EPERM)
        return push_fail(L, r, "cannot open the RBD image %s: permission denied", ir->name);
    if (r == -ETIMEDOUT)
        return push_fail(L, r, "cannot open the RBD image %s: Ceph did not answer in time (is "
                               "an OSD down? ceph -s)", ir->name);
    return push_fail(L, r, "cannot open the RBD image %s: %s", ir->name, g_strerror(-r));
}

/* open read-only at snap (NULL: the image itself): 0, or the error pushed */
static int open_ro(lua_State *L, vrbd_cluster *c, const image_ref *ir, const char *snap,
                   rados_ioctx_t *io, rbd_image_t *img)
{
    int n = open_ioctx(L, c, ir->pool, ir->ns, io);
    if (n)
        return n;
    int r = rbd_open_read_only(*io, ir->image, img, snap);
    if (r < 0) {
        /* which of the two is missing: the image or its snapshot */
        int r2 = r == -ENOENT && snap ? rbd_open_read_only(*io, ir->image, img, NULL) : -1;
        if (r2 == 0)
            rbd_close(*img);
        rados_ioctx_destroy(*io);
        if (r2 == 0)
            return push_fail(L, r, "the RBD image %s has no snapshot '%s'", ir->name, snap);
        return image_error(L, r, ir);
    }
    return 0;
}

/* the size of an open image: 0, or (the image and io closed) the error
 * pushed, its count */
static int get_size(lua_State *L, rados_ioctx_t io, rbd_image_t img, const image_ref *ir,
                    uint64_t *size)
{
    int r = rbd_get_size(img, size);
    if (r >= 0)
        return 0;
    rbd_close(img);
    rados_ioctx_destroy(io);
    return image_error(L, r, ir);
}

static int c_stat(lua_State *L)
{
    vrbd_cluster *c = check_cluster(L);
    const char *snap = luaL_optstring(L, 5, NULL);
    image_ref ir = image_args(L);
    rados_ioctx_t io;
    rbd_image_t img;
    int n = open_ro(L, c, &ir, snap, &io, &img);
    if (n)
        return n;
    uint64_t size = 0;
    n = get_size(L, io, img, &ir, &size);
    if (n)
        return n;
    rbd_close(img);
    rados_ioctx_destroy(io);
    lua_pushinteger(L, (lua_Integer)size);
    return 1;
}

static int c_create(lua_State *L)
{
    vrbd_cluster *c = check_cluster(L);
    lua_Integer size = luaL_checkinteger(L, 5);
    image_ref ir = image_args(L);
    rados_ioctx_t io;
    int n = open_ioctx(L, c, ir.pool, ir.ns, &io);
    if (n)
        return n;
    int order = 0;
    int r = rbd_create(io, ir.image, (uint64_t)size, &order);
    rados_ioctx_destroy(io);
    if (r == -EEXIST)
        return push_fail(L, r, "the RBD image %s exists already", ir.name);
    if (r == -ETIMEDOUT && vrbd_pool_full(c, ir.pool) == 1)
        return push_fail(L, r, "cannot create the RBD image %s: pool %s is full", ir.name,
                         ir.pool);
    if (r == -ETIMEDOUT)
        return push_fail(L, r, "cannot create the RBD image %s: Ceph did not answer in time "
                               "(is an OSD down? ceph -s)", ir.name);
    if (r < 0)
        return push_fail(L, r, "cannot create the RBD image %s: %s", ir.name, g_strerror(-r));
    return push_true(L);
}

/* one try of c:remove, through a connection of its own: 0 or a negative
 * errno (*nopool set when the pool does not exist) */
static int remove_once(vrbd_cluster *c, const image_ref *ir, gboolean *nopool)
{
    int r;
    vrbd_cluster *k = vrbd_cluster_child(c, &r);
    if (!k)
        return r;
    rados_ioctx_t io;
    r = rados_ioctx_create(k->cl, ir->pool, &io);
    *nopool = r == -ENOENT;
    if (r == 0) {
        if (*ir->ns)
            rados_ioctx_set_namespace(io, ir->ns);
        r = rbd_remove(io, ir->image);
        rados_ioctx_destroy(io);
    }
    vrbd_cluster_unref(k);
    return r;
}

/* c:remove(pool, ns, image [, seconds]): retried while the image is busy
 * or Ceph does not answer, for up to seconds (default 0: once).  Each try
 * has a connection of its own: one that has met a dead OSD may keep talking
 * to its old address after it restarted (docs/ceph.md). */
static int c_remove(lua_State *L)
{
    vrbd_cluster *c = check_cluster(L);
    double budget = luaL_optnumber(L, 5, 0);
    image_ref ir = image_args(L);
    double start = vrbd_now();
    int r;
    gboolean nopool;
    while ((r = remove_once(c, &ir, &nopool)) != 0 && r != -ENOENT && !nopool &&
           (r == -EBUSY || r == -ETIMEDOUT || r == -EAGAIN) && vrbd_now() - start + 1 <= budget)
        g_usleep(G_USEC_PER_SEC);
    if (nopool)
        return push_nopool(L, ir.pool);
    if (r == -ENOENT) {
        lua_pushliteral(L, "gone");
        return 1;
    }
    if (r < 0)
        return push_fail(L, r, "cannot remove the RBD image %s: %s%s", ir.name, g_strerror(-r),
                         r == -EBUSY ? " (it is open somewhere: rbd status)" :
                         r == -ETIMEDOUT ? " (is an OSD down? ceph -s)" : "");
    return push_true(L);
}

static int c_list(lua_State *L)
{
    vrbd_cluster *c = check_cluster(L);
    const char *pool = luaL_checkstring(L, 2), *ns = luaL_optstring(L, 3, "");
    rados_ioctx_t io;
    int n = open_ioctx(L, c, pool, ns, &io);
    if (n)
        return n;
    size_t max = 64;
    rbd_image_spec_t *v = NULL;
    int r;
    for (;;) {
        v = g_renew(rbd_image_spec_t, v, max);
        r = rbd_list2(io, v, &max);
        if (r != -ERANGE)
            break;
    }
    rados_ioctx_destroy(io);
    if (r < 0) {
        g_free(v);
        return push_fail(L, r, "cannot list the images of pool '%s': %s", pool, g_strerror(-r));
    }
    lua_createtable(L, (int)max, 0);
    for (size_t i = 0; i < max; i++) {
        lua_pushstring(L, v[i].name);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    rbd_image_spec_list_cleanup(v, max);
    g_free(v);
    return 1;
}

static int c_watchers(lua_State *L)
{
    vrbd_cluster *c = check_cluster(L);
    image_ref ir = image_args(L);
    rados_ioctx_t io;
    rbd_image_t img;
    int n = open_ro(L, c, &ir, NULL, &io, &img);
    if (n)
        return n;
    size_t max = 16;
    rbd_image_watcher_t *w = NULL;
    int r;
    for (;;) {
        w = g_renew(rbd_image_watcher_t, w, max);
        r = rbd_watchers_list(img, w, &max);
        if (r != -ERANGE)
            break;
    }
    rbd_close(img);
    rados_ioctx_destroy(io);
    if (r < 0) {
        g_free(w);
        return image_error(L, r, &ir);
    }
    rbd_watchers_list_cleanup(w, max);
    g_free(w);
    lua_pushinteger(L, (lua_Integer)max);
    return 1;
}

static int c_pool_full(lua_State *L)
{
    vrbd_cluster *c = check_cluster(L);
    int full = vrbd_pool_full(c, luaL_checkstring(L, 2));
    if (full < 0)
        return push_fail(L, -EIO, "the Ceph monitor did not say whether the pool is full");
    lua_pushboolean(L, full);
    return 1;
}


static double opt_num(lua_State *L, int t, const char *k, double dflt)
{
    if (!lua_istable(L, t))
        return dflt;
    lua_getfield(L, t, k);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

/* ---- sinks and sources: the userdata of lvma_ext.h ---- */

static vma_ext_ud *new_ext(lua_State *L)
{
    vma_ext_ud *ud = lua_newuserdatauv(L, sizeof(vma_ext_ud), 0);
    memset(ud, 0, sizeof(*ud));
    ud->abi = VMA_EXT_ABI;
    return ud;
}

/* the userdata on top (its ops set) holds ctx: of class mt from now on */
static int ext_ready(lua_State *L, vma_ext_ud *ud, const char *mt, void *ctx, const char *label,
                     uint64_t size)
{
    ud->ctx = ctx;
    ud->label = label;
    ud->size = size;
    luaL_setmetatable(L, mt);
    return 1;
}

static gboolean ext_open(void *self) { return ((vma_ext_ud *)self)->ops.sink != NULL; }
static void ext_size(lua_State *L, void *self)
{
    lua_pushinteger(L, (lua_Integer)((vma_ext_ud *)self)->size);
}
static void ext_label(lua_State *L, void *self) { lua_pushstring(L, ((vma_ext_ud *)self)->label); }

/* x:close() -> true | nil, message (a second close: true); __gc, __close */
static int ext_close(lua_State *L, const char *mt, int (*close)(void *ctx, GError **err))
{
    vma_ext_ud *ud = luaL_checkudata(L, 1, mt);
    void *ctx = ud->ctx;
    gboolean was_open = ext_open(ud);
    ud->ops.sink = NULL;
    ud->ctx = NULL;
    ud->label = "(closed)";
    GError *e = NULL;
    if (was_open && close(ctx, &e) < 0)
        return push_gerror(L, e);
    return push_true(L);
}

/* ---- sinks ---- */

static int c_sink(lua_State *L)
{
    vrbd_cluster *c = check_cluster(L);
    image_ref ir = image_args(L);
    /* a connection of its own, which can be fenced alone */
    int r;
    vrbd_cluster *sc = vrbd_cluster_child(c, &r);
    if (!sc)
        return push_fail(L, r, "cannot connect to Ceph as %s: %s", c->who, g_strerror(-r));
    rados_ioctx_t io;
    rbd_image_t img;
    uint64_t size = 0;
    int n = open_ioctx(L, sc, ir.pool, ir.ns, &io);
    if (!n && (r = rbd_open(io, ir.image, &img, NULL)) < 0) {
        rados_ioctx_destroy(io);
        n = image_error(L, r, &ir);
    }
    if (!n)
        n = get_size(L, io, img, &ir, &size);
    if (n) {
        vrbd_cluster_unref(sc);
        return n;
    }
    vrbd_sink_opts o = {
        .max_bytes = (size_t)lvma_opt_int(L, 5, "max_bytes", (lua_Integer)64 << 20),
        .max_ops = (unsigned)lvma_opt_int(L, 5, "max_ops", 512),
        .stall = opt_num(L, 5, "stall", 5),
    };
    vma_ext_ud *ud = new_ext(L);
    char *label = g_strdup_printf("rbd:%s", ir.name);
    vrbd_sink *s = vrbd_sink_new(c, sc, io, img, ir.pool, label, size, &o, &ud->hooks);
    g_free(label);
    ud->ops.sink = &vrbd_sink_ops;
    return ext_ready(L, ud, VMA_SINK_MT, s, vrbd_sink_label(s), size);
}

static int close_sink(void *ctx, GError **err) { return vrbd_sink_close(ctx, err); }

/* sink:close() -> true | nil, message; also __gc and __close */
static int sink_close(lua_State *L) { return ext_close(L, VMA_SINK_MT, close_sink); }

/* ---- sources ---- */

static int c_source(lua_State *L)
{
    vrbd_cluster *c = check_cluster(L);
    const char *snap = luaL_optstring(L, 5, NULL);
    size_t window = (size_t)lvma_opt_int(L, 6, "window", (lua_Integer)32 << 20);
    image_ref ir = image_args(L);
    rados_ioctx_t io;
    rbd_image_t img;
    uint64_t size = 0;
    int n = open_ro(L, c, &ir, snap, &io, &img);
    if (!n)
        n = get_size(L, io, img, &ir, &size);
    if (n)
        return n;
    vma_ext_ud *ud = new_ext(L);
    char *label = snap ? g_strdup_printf("rbd:%s@%s", ir.name, snap) : g_strdup_printf("rbd:%s", ir.name);
    GError *e = NULL;
    vrbd_source *s = vrbd_source_new(c, io, img, ir.pool, label, size, window, &ud->hooks, &e);
    g_free(label);
    if (!s) {
        rbd_close(img);
        rados_ioctx_destroy(io);
        return push_gerror(L, e);
    }
    ud->ops.source = &vrbd_source_ops;
    return ext_ready(L, ud, VMA_SOURCE_MT, s, vrbd_source_label(s), size);
}

static int close_source(void *ctx, GError **err) { return vrbd_source_close(ctx, err); }

static int source_close(lua_State *L) { return ext_close(L, VMA_SOURCE_MT, close_source); }

static int source_data_bytes(lua_State *L)
{
    vma_ext_ud *ud = lvma_check_open(L, 1, VMA_SOURCE_MT, ext_open);
    lua_pushinteger(L, (lua_Integer)vrbd_source_data_bytes(ud->ctx));
    return 1;
}

/* ---- the connection ---- */

static int c_close(lua_State *L)
{
    lcluster *lc = luaL_checkudata(L, 1, CLUSTER_MT);
    if (lc->c) {
        vrbd_cluster_unref(lc->c);
        lc->c = NULL;
    }
    return 0;
}

static void c_timeout(lua_State *L, void *self)
{
    lua_pushnumber(L, ((lcluster *)self)->c->timeout);
}
static void c_who(lua_State *L, void *self) { lua_pushstring(L, ((lcluster *)self)->c->who); }

static const luaL_Reg cluster_methods[] = {
    {"stat", c_stat},       {"create", c_create},     {"remove", c_remove},
    {"list", c_list},       {"watchers", c_watchers}, {"pool_full", c_pool_full},
    {"sink", c_sink},       {"source", c_source},     {"close", c_close},
    {NULL, NULL},
};
static const luaL_Reg cluster_meta[] = {{"__gc", c_close}, {"__close", c_close}, {NULL, NULL}};
static const lvma_getter cluster_getters[] = {{"timeout", c_timeout}, {"who", c_who}, {NULL, NULL}};

/* sinks and sources: size and label */
static const lvma_getter ext_getters[] = {{"size", ext_size}, {"label", ext_label}, {NULL, NULL}};
static const luaL_Reg sink_methods[] = {{"close", sink_close}, {NULL, NULL}};
static const luaL_Reg sink_meta[] = {{"__gc", sink_close}, {"__close", sink_close}, {NULL, NULL}};
static const luaL_Reg source_methods[] = {
    {"close", source_close}, {"data_bytes", source_data_bytes}, {NULL, NULL}};
static const luaL_Reg source_meta[] = {
    {"__gc", source_close}, {"__close", source_close}, {NULL, NULL}};

__attribute__((visibility("default"))) int luaopen_vma_rbd(lua_State *L);
int luaopen_vma_rbd(lua_State *L)
{
    lvma_new_class(L, CLUSTER_MT, cluster_meta, cluster_methods, cluster_getters, cluster_open);
    lvma_new_class(L, VMA_SINK_MT, sink_meta, sink_methods, ext_getters, ext_open);
    lvma_new_class(L, VMA_SOURCE_MT, source_meta, source_methods, ext_getters, ext_open);

    lua_newtable(L);
    lua_pushcfunction(L, l_connect);
    lua_setfield(L, -2, "connect");
    lua_pushinteger(L, VMA_EXT_ABI);
    lua_setfield(L, -2, "abi");
    int maj = 0, min = 0, ext = 0;
    rbd_version(&maj, &min, &ext);
    lua_pushfstring(L, "%d.%d.%d", maj, min, ext);
    lua_setfield(L, -2, "librbd_version");
    return 1;
}
