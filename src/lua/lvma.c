/* lvma.c - the Lua 5.4 binding of libvma: the module "vma".
 *
 * One userdata type per object, each in a file of its own: the archive
 * (lvma_archive.c: vma.open), its disks (lvma_disk.c), the writer
 * (lvma_writer.c: vma.create); errors (lvma_error.c) and the class and
 * progress rules they share (lvma_class.c); the file and process helpers
 * (lvma_os.c, lvma_proc.c).  Here: the module table and small functions. */
#define _GNU_SOURCE
#include "lvma.h"
#include "lvma_ext.h"

#include <string.h>
#include <uuid/uuid.h>

/* ---------------------------------------------------------------- helpers */

static int l_md5(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    uint8_t out[16];
    if (!vma_md5(s, len, out))
        return luaL_error(L, "MD5 failed (libcrypto)");
    lua_pushlstring(L, (const char *)out, 16);
    return 1;
}

/* vma.find_device(devices, name [, disks_only]) -> the element of the list
 * devices ({name=, vmstate=}...) that name means, by the rule of
 * r:find_device; nil, message, kind when none or ambiguous */
static int l_find_device(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *name = luaL_checkstring(L, 2);
    lua_Integer n = luaL_len(L, 1);
    if (n > VMA_MAX_DEV_ID)
        return luaL_argerror(L, 1, "more than 255 devices");
    /* in userdata, collected whatever a metamethod below raises */
    vma_header *h = lua_newuserdatauv(L, sizeof(vma_header), 0);
    vma_device *devs = lua_newuserdatauv(L, sizeof(vma_device) * (VMA_MAX_DEV_ID + 1), 0);
    memset(h, 0, sizeof(*h));
    memset(devs, 0, sizeof(vma_device) * (VMA_MAX_DEV_ID + 1));
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "name");
            lua_getfield(L, -2, "vmstate");
            if (lua_type(L, -2) == LUA_TSTRING) {
                /* the string stays referenced by the list while we look */
                vma_device *d = &devs[i];
                d->id = (uint8_t)i;
                d->name = (char *)lua_tostring(L, -2);
                d->is_vmstate = lua_toboolean(L, -1) || strcmp(d->name, "vmstate") == 0;
                h->devices[i] = d;
                h->n_devices++;
            }
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
    }
    GError *e = NULL;
    const vma_device *d = vma_header_find_device(h, name, lua_toboolean(L, 3), &e);
    if (!d)
        return lvma_push_error(L, e);
    lua_geti(L, 1, d->id);
    return 1;
}

static int l_is_safe_name(lua_State *L)
{
    const char *s = luaL_checkstring(L, 1);
    GError *e = NULL;
    if (vma_name_is_safe(s, &e)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, e->message);
    g_error_free(e);
    return 2;
}

void *lvma_ext_ud(lua_State *L, int idx, const char *mt)
{
    vma_ext_ud *ud = luaL_testudata(L, idx, mt);
    if (!ud || ud->abi != VMA_EXT_ABI)
        return NULL;
    ud->hooks.interrupted = vma_interrupted;
    ud->hooks.domain = VMA_ERROR;
    return ud;
}

static int l_uuid_generate(lua_State *L)
{
    uuid_t u;
    uuid_generate(u);
    lvma_push_uuid(L, u);
    return 1;
}

static const luaL_Reg vma_funcs[] = {
    {"open", lvma_open},
    {"create", lvma_create},
    {"md5", l_md5},
    {"is_safe_name", l_is_safe_name},
    {"find_device", l_find_device},
    {"uuid", l_uuid_generate},
    {NULL, NULL},
};

int luaopen_vma(lua_State *L)
{
    lvma_open_archive(L);
    lvma_open_writer(L);
    lvma_open_disk(L);
    luaL_newlib(L, vma_funcs);
    lvma_open_os(L);
    lvma_open_cache(L);
    lvma_open_store(L);
    lvma_open_sqlite(L);
    lvma_open_guest(L);
    lua_pushliteral(L, VMA_VERSION);
    lua_setfield(L, -2, "version");
    lvma_set_int(L, "CLUSTER_SIZE", VMA_CLUSTER_SIZE);
    lvma_set_int(L, "BLOCK_SIZE", VMA_BLOCK_SIZE);
    /* vma.codecs.zstd = {name =, suffix =, aliases = {...}, level_min =,
     * level_max =, level_default =, max_threads =} (codec/codecs.c), and
     * vma.compress_levels.zstd = {min =, max =, default =}; none: {} */
    lua_newtable(L);
    lua_newtable(L);
    for (unsigned i = 0; i < VMA_N_CODECS; i++) {
        const vma_codec *k = vma_codec_get((vma_compress)i);
        lua_createtable(L, 0, 8);
        lvma_set_str(L, "name", k->name);
        lvma_set_str(L, "suffix", k->suffix);
        lua_newtable(L);
        for (int j = 0; k->aliases[j]; j++) {
            lua_pushstring(L, k->aliases[j]);
            lua_rawseti(L, -2, j + 1);
        }
        lua_setfield(L, -2, "aliases");
        lvma_set_int(L, "level_min", k->level_min);
        lvma_set_int(L, "level_max", k->level_max);
        lvma_set_int(L, "level_default", k->level_default);
        lvma_set_int(L, "max_threads", k->max_threads);
        lua_setfield(L, -3, k->name);
        lua_newtable(L);
        if (k->level_max > 0) {
            lvma_set_int(L, "min", k->level_min);
            lvma_set_int(L, "max", k->level_max);
            lvma_set_int(L, "default", k->level_default);
        }
        lua_setfield(L, -2, k->name);
    }
    lua_setfield(L, -3, "compress_levels");
    lua_setfield(L, -2, "codecs");
    return 1;
}
