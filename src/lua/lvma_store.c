/* lvma_store.c - what the store commands need from C (lib/store): the
 * survey of an archive (r:survey), the clusters that differ between two
 * disks (vma.diff, vma.diff_digests), the digest of an image's content
 * (vma.image_digest), hashes of strings (vma.hash), and zstd for the
 * catalog's digest blobs (vma.zstd_compress, vma.zstd_decompress). */
#define _GNU_SOURCE
#include "lvma.h"
#include "lvma_ext.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <xxhash.h>
#include <zstd.h>

/* ---- r:survey{digests =, progress =} ---- */

static int archive_survey(lua_State *L)
{
    larchive *la = lvma_check_archive(L, 1);
    int opts = lua_istable(L, 2) ? 2 : 0;
    gboolean digests = FALSE;
    if (opts) {
        lua_getfield(L, opts, "digests");
        digests = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lvma_progress pc = lvma_progress_from(L, opts);
    vma_archive *a = vma_archive_ref(la->a); /* the callback may close r */
    vma_survey *s = g_new0(vma_survey, 1);
    GError *e = NULL;
    int rc = vma_archive_survey(a, digests, pc.fn ? lvma_restore_progress : NULL, &pc, s, &e);
    if (rc < 0) {
        vma_archive_free(a);
        g_free(s);
        return lvma_progress_failure(&pc, e);
    }
    const vma_header *h = vma_archive_header(a);
    lua_createtable(L, 0, 3);
    lua_createtable(L, (int)s->n_devices, 0);
    for (unsigned i = 0; i < s->n_devices; i++) {
        const vma_survey_device *d = &s->devices[i];
        lua_createtable(L, 0, 10);
        lua_pushinteger(L, d->dev_id);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, h->devices[d->dev_id]->name);
        lua_setfield(L, -2, "name");
        lua_pushboolean(L, d->vmstate);
        lua_setfield(L, -2, "vmstate");
        lua_pushinteger(L, (lua_Integer)d->size);
        lua_setfield(L, -2, "size");
        lua_pushinteger(L, (lua_Integer)d->clusters);
        lua_setfield(L, -2, "clusters");
        lua_pushinteger(L, (lua_Integer)d->data_bytes);
        lua_setfield(L, -2, "data_bytes");
        lua_pushinteger(L, (lua_Integer)d->zero_bytes);
        lua_setfield(L, -2, "zero_bytes");
        lua_pushinteger(L, (lua_Integer)d->missing_bytes);
        lua_setfield(L, -2, "missing_bytes");
        lua_pushinteger(L, (lua_Integer)d->zero_clusters);
        lua_setfield(L, -2, "zero_clusters");
        if (d->digests) {
            lua_pushlstring(L, (const char *)d->digests, d->clusters * VMA_DIGEST_SIZE);
            lua_setfield(L, -2, "digests");
        }
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "devices");
    lua_pushinteger(L, (lua_Integer)s->bytes_archive);
    lua_setfield(L, -2, "bytes_archive");
    lua_pushnumber(L, s->elapsed);
    lua_setfield(L, -2, "elapsed");
    vma_survey_clear(s);
    g_free(s);
    vma_archive_free(a);
    return 1;
}

/* ---- differences ---- */

typedef struct {
    lua_State *L;
    int table;         /* stack index of the ranges table, 0: none wanted */
    lua_Integer n, max;
    gboolean truncated;
} range_ctx;

static int on_range(uint64_t off, uint64_t len, void *ud)
{
    range_ctx *c = ud;
    if (!c->table)
        return 0;
    if (c->max >= 0 && c->n >= c->max) {
        c->truncated = TRUE;
        return 0;
    }
    lua_State *L = c->L;
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)off);
    lua_setfield(L, -2, "offset");
    lua_pushinteger(L, (lua_Integer)len);
    lua_setfield(L, -2, "length");
    lua_rawseti(L, c->table, ++c->n);
    return 0;
}

static int on_diff_progress(uint64_t done, uint64_t total, void *ud)
{
    lvma_progress *pc = ud;
    lua_State *L = pc->L;
    lvma_progress_push(pc);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)done);
    lua_setfield(L, -2, "done");
    lua_pushinteger(L, (lua_Integer)total);
    lua_setfield(L, -2, "total");
    return lvma_progress_call(pc);
}

/* opts.max_ranges (default: every range; 0: none), the table made */
static void ranges_begin(lua_State *L, int opts, range_ctx *rc)
{
    rc->L = L;
    rc->max = -1;
    if (opts) {
        lua_getfield(L, opts, "max_ranges");
        if (lua_isinteger(L, -1))
            rc->max = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_newtable(L);
    rc->table = lua_gettop(L);
}

/* the result table: the stats, ranges (the table at rc->table) */
static int push_diff(lua_State *L, const vma_diff_stats *st, range_ctx *rc)
{
    lua_createtable(L, 0, 9);
    lvma_set_int(L, "length", (lua_Integer)st->length);
    lvma_set_int(L, "clusters", (lua_Integer)st->clusters);
    lvma_set_int(L, "changed_clusters", (lua_Integer)st->changed_clusters);
    lvma_set_int(L, "changed_bytes", (lua_Integer)st->changed_bytes);
    lvma_set_int(L, "range_count", (lua_Integer)st->ranges);
    lvma_set_int(L, "bytes_read", (lua_Integer)st->bytes_read);
    lua_pushnumber(L, st->elapsed);
    lua_setfield(L, -2, "elapsed");
    lvma_set_bool(L, "ranges_truncated", rc->truncated);
    lua_pushvalue(L, rc->table);
    lua_setfield(L, -2, "ranges");
    return 1;
}

/* vma.diff(disk_a, disk_b [, {progress =, max_ranges =}]) -> {length =,
 * clusters =, changed_clusters =, changed_bytes =, ranges = {{offset =,
 * length =}...}, range_count =, bytes_read =, elapsed =} | nil, msg, kind */
static int l_diff(lua_State *L)
{
    uint8_t ida, idb;
    vma_archive *a = lvma_disk_archive(L, 1, &ida);
    vma_archive *b = lvma_disk_archive(L, 2, &idb);
    int opts = lua_istable(L, 3) ? 3 : 0;
    lvma_progress pc = lvma_progress_from(L, opts);
    range_ctx rc = {0};
    ranges_begin(L, opts, &rc);
    a = vma_archive_ref(a);
    b = vma_archive_ref(b);
    vma_diff_stats st;
    GError *e = NULL;
    int r = vma_archive_diff(a, ida, b, idb, on_range, &rc, pc.fn ? on_diff_progress : NULL, &pc,
                             &st, &e);
    vma_archive_free(a);
    vma_archive_free(b);
    if (r < 0)
        return lvma_progress_failure(&pc, e);
    return push_diff(L, &st, &rc);
}

/* vma.diff_digests(digests_a, size_a, digests_b, size_b [, {max_ranges =}]) */
static int l_diff_digests(lua_State *L)
{
    size_t la, lb;
    const char *da = luaL_checklstring(L, 1, &la);
    lua_Integer sa = luaL_checkinteger(L, 2);
    const char *db = luaL_checklstring(L, 3, &lb);
    lua_Integer sb = luaL_checkinteger(L, 4);
    luaL_argcheck(L, sa >= 0, 2, "negative size");
    luaL_argcheck(L, sb >= 0, 4, "negative size");
    int opts = lua_istable(L, 5) ? 5 : 0;
    range_ctx rc = {0};
    ranges_begin(L, opts, &rc);
    vma_diff_stats st;
    GError *e = NULL;
    if (vma_digests_diff((const uint8_t *)da, la / VMA_DIGEST_SIZE, (uint64_t)sa,
                         (const uint8_t *)db, lb / VMA_DIGEST_SIZE, (uint64_t)sb, on_range, &rc,
                         &st, &e) < 0)
        return lvma_push_error(L, e);
    return push_diff(L, &st, &rc);
}

/* ---- vma.image_digest(path | vma.source [, {progress =}]) -> 32 hex ---- */

static int on_write_progress(const vma_write_progress *p, void *ud)
{
    lvma_progress *pc = ud;
    lua_State *L = pc->L;
    lvma_progress_push(pc);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)p->done);
    lua_setfield(L, -2, "done");
    lua_pushinteger(L, (lua_Integer)p->size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, p->elapsed);
    lua_setfield(L, -2, "elapsed");
    return lvma_progress_call(pc);
}

static void push_hex(lua_State *L, const uint8_t *d, size_t n)
{
    char hex[129];
    for (size_t i = 0; i < n && i < 64; i++)
        g_snprintf(hex + 2 * i, 3, "%02x", d[i]);
    lua_pushlstring(L, hex, 2 * MIN(n, (size_t)64));
}

static int l_image_digest(lua_State *L)
{
    int opts = lua_istable(L, 2) ? 2 : 0;
    lvma_progress pc = lvma_progress_from(L, opts);
    uint8_t out[16];
    GError *e = NULL;
    int rc;
    vma_ext_ud *su = lvma_ext_ud(L, 1, VMA_SOURCE_MT);
    if (su) {
        if (!su->ops.source)
            return lvma_push_argerror(L, "the source is closed");
        vma_source src = {su->ops.source, su->ctx, su->size, su->label};
        rc = vma_source_digest(&src, out, pc.fn ? on_write_progress : NULL, &pc, &e);
    } else {
        const char *path = luaL_checkstring(L, 1);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return lvma_push_errno(L, errno, "cannot open %s", path);
        rc = vma_fd_digest(fd, path, out, pc.fn ? on_write_progress : NULL, &pc, &e);
        close(fd);
    }
    if (rc < 0)
        return lvma_progress_failure(&pc, e);
    push_hex(L, out, 16);
    return 1;
}

/* ---- vma.hash(name): a hasher of strings (md5, sha1, sha256, sha512,
 * xxh64, xxh128): h:update(s) ... h:hex() ---- */

#define HASH_MT "vma.hash"

typedef enum { H_EVP, H_XXH64, H_XXH128 } hash_kind;

typedef struct {
    hash_kind kind;
    EVP_MD_CTX *md;
    XXH3_state_t *xs;
    gboolean done;
} lhash;

static lhash *check_hash(lua_State *L)
{
    lhash *h = luaL_checkudata(L, 1, HASH_MT);
    if (h->done)
        luaL_error(L, "attempt to use a finished %s", HASH_MT);
    return h;
}

static int hash_free(lua_State *L)
{
    lhash *h = luaL_checkudata(L, 1, HASH_MT);
    if (h->md)
        EVP_MD_CTX_free(h->md);
    if (h->xs)
        XXH3_freeState(h->xs);
    h->md = NULL;
    h->xs = NULL;
    h->done = TRUE;
    return 0;
}

static int hash_update(lua_State *L)
{
    lhash *h = check_hash(L);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    if (h->kind == H_EVP) {
        if (EVP_DigestUpdate(h->md, s, n) != 1)
            return luaL_error(L, "digest failed (libcrypto)");
    } else if (h->kind == H_XXH64) {
        XXH3_64bits_update(h->xs, s, n);
    } else {
        XXH3_128bits_update(h->xs, s, n);
    }
    lua_settop(L, 1);
    return 1; /* h, for h:update(a):update(b) */
}

/* h:hex() (or h:digest() for the bytes): ends it */
static int hash_finish(lua_State *L, gboolean hex)
{
    lhash *h = check_hash(L);
    uint8_t out[EVP_MAX_MD_SIZE];
    size_t n;
    if (h->kind == H_EVP) {
        unsigned int m = 0;
        if (EVP_DigestFinal_ex(h->md, out, &m) != 1)
            return luaL_error(L, "digest failed (libcrypto)");
        n = m;
    } else if (h->kind == H_XXH64) {
        XXH64_canonical_t c;
        XXH64_canonicalFromHash(&c, XXH3_64bits_digest(h->xs));
        memcpy(out, c.digest, 8);
        n = 8;
    } else {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h->xs));
        memcpy(out, c.digest, 16);
        n = 16;
    }
    hash_free(L);
    if (hex)
        push_hex(L, out, n);
    else
        lua_pushlstring(L, (const char *)out, n);
    return 1;
}

static int hash_hex(lua_State *L) { return hash_finish(L, TRUE); }
static int hash_digest(lua_State *L) { return hash_finish(L, FALSE); }

static int l_hash(lua_State *L)
{
    const char *name = luaL_optstring(L, 1, "sha256");
    lhash *h = lua_newuserdatauv(L, sizeof(lhash), 0);
    memset(h, 0, sizeof(*h));
    luaL_setmetatable(L, HASH_MT);
    if (strcmp(name, "xxh64") == 0 || strcmp(name, "xxh128") == 0) {
        h->kind = name[3] == '6' ? H_XXH64 : H_XXH128;
        h->xs = XXH3_createState();
        if (!h->xs)
            return luaL_error(L, "not enough memory for a hash");
        if (h->kind == H_XXH64)
            XXH3_64bits_reset(h->xs);
        else
            XXH3_128bits_reset(h->xs);
        return 1;
    }
    const EVP_MD *md = strcmp(name, "md5") == 0      ? EVP_md5()
                       : strcmp(name, "sha1") == 0   ? EVP_sha1()
                       : strcmp(name, "sha256") == 0 ? EVP_sha256()
                       : strcmp(name, "sha512") == 0 ? EVP_sha512()
                                                     : NULL;
    if (!md)
        return luaL_argerror(L, 1, "unknown hash (md5, sha1, sha256, sha512, xxh64, xxh128)");
    h->kind = H_EVP;
    h->md = EVP_MD_CTX_new();
    if (!h->md || EVP_DigestInit_ex(h->md, md, NULL) != 1)
        return luaL_error(L, "digest failed (libcrypto)");
    return 1;
}

/* ---- zstd of a string (the catalog's digest blobs) ---- */

static int l_zstd_compress(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int level = (int)luaL_optinteger(L, 2, 3);
    size_t cap = ZSTD_compressBound(n);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, cap);
    size_t got = ZSTD_compress(p, cap, s, n, level);
    if (ZSTD_isError(got))
        return luaL_error(L, "zstd: %s", ZSTD_getErrorName(got));
    luaL_pushresultsize(&b, got);
    return 1;
}

/* vma.zstd_decompress(s, size) -> exactly size bytes | nil, message,
 * "format": one frame that says its size, and that size */
static int l_zstd_decompress(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_Integer want = luaL_checkinteger(L, 2);
    luaL_argcheck(L, want >= 0 && want <= ((lua_Integer)1 << 34), 2, "size out of range");
    unsigned long long fs = ZSTD_getFrameContentSize(s, n);
    if (fs == ZSTD_CONTENTSIZE_ERROR || fs == ZSTD_CONTENTSIZE_UNKNOWN ||
        fs != (unsigned long long)want || ZSTD_findFrameCompressedSize(s, n) != n) {
        lua_pushnil(L);
        lua_pushstring(L, "not a zstd frame of the expected size");
        lua_pushliteral(L, "format");
        return 3;
    }
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)want);
    size_t got = ZSTD_decompress(p, (size_t)want, s, n);
    if (ZSTD_isError(got) || got != (size_t)want) {
        lua_pushnil(L);
        lua_pushfstring(L, "zstd: %s",
                        ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame");
        lua_pushliteral(L, "format");
        return 3;
    }
    luaL_pushresultsize(&b, got);
    return 1;
}

static const luaL_Reg hash_methods[] = {
    {"update", hash_update},
    {"hex", hash_hex},
    {"digest", hash_digest},
    {NULL, NULL},
};

static const luaL_Reg hash_meta[] = {
    {"__gc", hash_free},
    {"__close", hash_free},
    {NULL, NULL},
};

static const luaL_Reg store_funcs[] = {
    {"diff", l_diff},
    {"diff_digests", l_diff_digests},
    {"image_digest", l_image_digest},
    {"hash", l_hash},
    {"zstd_compress", l_zstd_compress},
    {"zstd_decompress", l_zstd_decompress},
    {NULL, NULL},
};

static const luaL_Reg archive_store_methods[] = {
    {"survey", archive_survey},
    {NULL, NULL},
};

void lvma_open_store(lua_State *L)
{
    lvma_new_class(L, HASH_MT, hash_meta, hash_methods, NULL, NULL);
    lvma_add_methods(L, ARCHIVE_MT, archive_store_methods);
    luaL_setfuncs(L, store_funcs, 0);
    lua_pushinteger(L, VMA_DIGEST_SIZE);
    lua_setfield(L, -2, "DIGEST_SIZE");
}
