/* vma-plugin.c - an nbdkit plugin that serves the disks of a VMA archive,
 * read-only, without restoring it:
 *
 *   nbdkit vma ARCHIVE [disk=NAME] [cache=auto|on|off] [expect=HEADER_MD5]
 *   nbdkit vma archive=ARCHIVE ...
 *
 * One export per disk (the vmstate is not a disk), named by its device name
 * (drive-scsi0); disk=NAME is the default export (the first disk when it is
 * not given).  Block status (base:allocation) reports zero blocks as holes
 * that read as zeros, so nbdcopy and qemu-img convert skip them.  Clusters
 * that an incomplete archive lacks are reported as data, and reading them
 * fails with EIO: a copy of a damaged disk fails loudly instead of quietly
 * holding zeros where the data was.
 *
 * A plain .vma or a seekable .vma.zst is opened and indexed in .get_ready,
 * before nbdkit binds its socket: a hostile one stops nbdkit there with a
 * message and exit status 1.  Any other archive (vzdump's one-stream
 * .vma.zst, .vma.gz, .vma.lzo) has its header checked there and its
 * background decoder started in .after_fork (a thread does not survive
 * nbdkit's fork into the background): a read ahead of the decoder waits
 * for it, and a damaged archive fails the reads past the damage with EIO.
 *
 * expect=HEADER_MD5 (32 hex digits, what `vma` read when it started us):
 * the archive must still be that one, else nbdkit stops (vma serve passes
 * it, so that a file replaced in between is never served under its name). */
#define _GNU_SOURCE
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "vma.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static char *archive_path;
static char *default_disk;      /* disk=, as given */
static char *expect_md5;        /* expect=, as given */
static vma_cache_mode cache_mode = VMA_CACHE_AUTO;
static vma_archive *archive;
static const vma_device *default_dev;

typedef struct {
    const vma_device *d;
    uint64_t size;
} handle;

static void plugin_unload(void)
{
    vma_archive_free(archive);
    archive = NULL;
    free(archive_path);
    free(default_disk);
    free(expect_md5);
}

static int plugin_config(const char *key, const char *value)
{
    if (strcmp(key, "archive") == 0) {
        if (archive_path) {
            nbdkit_error("archive given twice");
            return -1;
        }
        archive_path = nbdkit_realpath(value);
        return archive_path ? 0 : -1;
    }
    if (strcmp(key, "disk") == 0) {
        free(default_disk);
        default_disk = strdup(value);
        return default_disk ? 0 : -1;
    }
    if (strcmp(key, "expect") == 0) {
        free(expect_md5);
        expect_md5 = strdup(value);
        return expect_md5 ? 0 : -1;
    }
    if (strcmp(key, "cache") == 0) {
        if (strcmp(value, "auto") == 0)
            cache_mode = VMA_CACHE_AUTO;
        else if (strcmp(value, "on") == 0)
            cache_mode = VMA_CACHE_ON;
        else if (strcmp(value, "off") == 0)
            cache_mode = VMA_CACHE_OFF;
        else {
            nbdkit_error("cache must be auto, on or off, not '%s'", value);
            return -1;
        }
        return 0;
    }
    nbdkit_error("unknown parameter '%s' (see nbdkit vma --help)", key);
    return -1;
}

static int plugin_config_complete(void)
{
    if (!archive_path) {
        nbdkit_error("no archive given: nbdkit vma ARCHIVE [disk=NAME]");
        return -1;
    }
    return 0;
}

/* a disk by the rule of every front end (vma_header_find_device): the
 * exact device name first, then "drive-NAME"; NULL with err (never vmstate) */
static const vma_device *find_disk(const char *name, GError **err)
{
    return vma_header_find_device(vma_archive_header(archive), name, TRUE, err);
}

static int plugin_get_ready(void)
{
    GError *e = NULL;
    vma_archive_opts o = {.cache = cache_mode};
    archive = vma_archive_open(archive_path, &o, &e);
    if (!archive) {
        nbdkit_error("%s", e->message);
        g_error_free(e);
        return -1;
    }
    if (expect_md5) {
        uint8_t m[16];
        char hex[33];
        vma_archive_header_md5(archive, m);
        for (int i = 0; i < 16; i++)
            snprintf(hex + 2 * i, 3, "%02x", m[i]);
        if (g_ascii_strcasecmp(hex, expect_md5) != 0) {
            nbdkit_error("%s changed since it was opened (its header is not the one expected)",
                         archive_path);
            return -1;
        }
    }
    const GError *refused = vma_archive_random_error(archive);
    if (refused) {
        nbdkit_error("%s", refused->message);
        return -1;
    }
    if (vma_archive_seekable(archive) && vma_archive_prepare(archive, &e) < 0) {
        nbdkit_error("%s", e->message);
        g_error_free(e);
        return -1;
    }
    const vma_header *h = vma_archive_header(archive);
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID && !default_dev; id++)
        if (h->devices[id] && !h->devices[id]->is_vmstate)
            default_dev = h->devices[id];
    if (!default_dev) {
        nbdkit_error("%s: the archive holds no disk to serve", archive_path);
        return -1;
    }
    if (default_disk) {
        default_dev = find_disk(default_disk, &e);
        if (!default_dev) {
            nbdkit_error("%s: %s", archive_path, e->message);
            g_error_free(e);
            return -1;
        }
    }
    return 0;
}

/* the background decoder of an archive that is not seekable: started after
 * nbdkit went to the background (a thread started before would be lost) */
static int plugin_after_fork(void)
{
    GError *e = NULL;
    if (!vma_archive_seekable(archive) && vma_archive_prepare(archive, &e) < 0) {
        nbdkit_error("%s", e->message);
        g_error_free(e);
        return -1;
    }
    return 0;
}

static int plugin_list_exports(int readonly, int is_tls, struct nbdkit_exports *exports)
{
    (void)readonly;
    (void)is_tls;
    const vma_header *h = vma_archive_header(archive);
    /* the default first: clients that take the first export get it */
    if (nbdkit_add_export(exports, default_dev->name, NULL) < 0)
        return -1;
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = h->devices[id];
        if (!d || d->is_vmstate || d == default_dev)
            continue;
        if (nbdkit_add_export(exports, d->name, NULL) < 0)
            return -1;
    }
    return 0;
}

static const char *plugin_default_export(int readonly, int is_tls)
{
    (void)readonly;
    (void)is_tls;
    return default_dev->name;
}

static void *plugin_open(int readonly)
{
    (void)readonly;
    const char *name = nbdkit_export_name();
    GError *e = NULL;
    const vma_device *d = !name || !*name ? default_dev : find_disk(name, &e);
    if (!d) {
        nbdkit_error("%s: %s", archive_path, e->message);
        g_error_free(e);
        errno = ENOENT;
        return NULL;
    }
    handle *hd = malloc(sizeof(*hd));
    if (!hd) {
        nbdkit_error("out of memory");
        return NULL;
    }
    hd->d = d;
    hd->size = vma_archive_device_length(archive, d->id);
    return hd;
}

static void plugin_close(void *h)
{
    free(h);
}

static const char *plugin_export_description(void *h)
{
    handle *hd = h;
    return nbdkit_printf_intern("%s from %s", hd->d->name, archive_path);
}

static int64_t plugin_get_size(void *h)
{
    return (int64_t)((handle *)h)->size;
}

static int plugin_can_write(void *h) { (void)h; return 0; }
static int plugin_is_rotational(void *h) { (void)h; return 0; }
/* the data never changes: every connection sees the same bytes */
static int plugin_can_multi_conn(void *h) { (void)h; return 1; }
static int plugin_can_extents(void *h) { (void)h; return 1; }
/* a cache request reads the range (the zstd frames are then decompressed) */
static int plugin_can_cache(void *h) { (void)h; return NBDKIT_CACHE_EMULATE; }
/* nothing is ever written: no FUA */
static int plugin_can_fua(void *h) { (void)h; return NBDKIT_FUA_NONE; }

static int plugin_pread(void *h, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    (void)flags;
    handle *hd = h;
    GError *e = NULL;
    ssize_t got = vma_archive_pread(archive, hd->d->id, buf, count, offset, &e);
    if (got < 0) {
        nbdkit_error("%s: %s", hd->d->name, e->message);
        g_error_free(e);
        nbdkit_set_error(EIO);
        return -1;
    }
    if ((uint64_t)got < count) { /* nbdkit checks the bounds: never here */
        nbdkit_error("%s: short read at %" PRIu64, hd->d->name, offset);
        nbdkit_set_error(EIO);
        return -1;
    }
    return 0;
}

typedef struct {
    struct nbdkit_extents *ex;
    gboolean one;
    int failed;
} extents_ctx;

static int add_piece(const vma_piece *p, void *ud)
{
    extents_ctx *c = ud;
    /* missing: data (a read of it fails with EIO), never a silent hole */
    uint32_t type = p->kind == VMA_PIECE_ZERO ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0;
    if (nbdkit_add_extent(c->ex, p->offset, p->length, type) < 0) {
        c->failed = 1;
        return 1;
    }
    return c->one; /* REQ_ONE: the first piece is enough */
}

static int plugin_extents(void *h, uint32_t count, uint64_t offset, uint32_t flags,
                       struct nbdkit_extents *ex)
{
    handle *hd = h;
    extents_ctx c = {ex, (flags & NBDKIT_FLAG_REQ_ONE) != 0, 0};
    GError *e = NULL;
    if (vma_archive_map(archive, hd->d->id, offset, count, add_piece, &c, &e) < 0) {
        nbdkit_error("%s: %s", hd->d->name, e->message);
        g_error_free(e);
        nbdkit_set_error(EIO);
        return -1;
    }
    return c.failed ? -1 : 0;
}

static void plugin_dump_plugin(void)
{
    printf("vma_version=%s\n", VMA_VERSION);
}

#define plugin_config_help \
    "[archive=]ARCHIVE   The VMA archive (.vma, .vma.zst, .vma.gz, .vma.lzo).\n" \
    "disk=NAME           The default export (default: the first disk).\n" \
    "cache=auto|on|off   The index and decoded copies in the cache folder\n" \
    "                    ($VMA_CACHE_DIR, $XDG_CACHE_HOME/vma, ~/.cache/vma);\n" \
    "                    off: none (a copy is an unlinked file).\n" \
    "expect=HEADER_MD5   Refuse an archive whose header is not this one."

static struct nbdkit_plugin plugin = {
    .name = "vma",
    .longname = "Proxmox VMA backup archives",
    .version = VMA_VERSION,
    .description = "Serves the disks of a Proxmox VMA archive read-only, one export per disk.",
    .magic_config_key = "archive",
    .config = plugin_config,
    .config_complete = plugin_config_complete,
    .config_help = plugin_config_help,
    .get_ready = plugin_get_ready,
    .after_fork = plugin_after_fork,
    .unload = plugin_unload,
    .dump_plugin = plugin_dump_plugin,
    .list_exports = plugin_list_exports,
    .default_export = plugin_default_export,
    .export_description = plugin_export_description,
    .open = plugin_open,
    .close = plugin_close,
    .get_size = plugin_get_size,
    .can_write = plugin_can_write,
    .is_rotational = plugin_is_rotational,
    .can_multi_conn = plugin_can_multi_conn,
    .can_extents = plugin_can_extents,
    .can_cache = plugin_can_cache,
    .can_fua = plugin_can_fua,
    .pread = plugin_pread,
    .extents = plugin_extents,
    .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)
