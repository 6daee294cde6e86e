/* codecs.c - the table of the compressions an archive can have: names,
 * file suffixes, magic bytes, levels and threads.  Input (input.c), random
 * access (random.c), output (output.c) and the Lua module read it here. */
#include "codec/codec.h"

#include <string.h>

static const char *const zstd_alias[] = {"zst", NULL};
static const char *const gzip_alias[] = {"gz", NULL};
static const char *const lzo_alias[] = {"lzop", NULL};
static const char *const none_alias[] = {"raw", "vma", NULL};
static const uint8_t zstd_magic[] = {0x28, 0xb5, 0x2f, 0xfd};
static const uint8_t gzip_magic[] = {0x1f, 0x8b};
/* lzop's magic is 9 bytes; the rest is checked by its parser (lzop.c) */
static const uint8_t lzo_magic[] = {0x89, 'L', 'Z', 'O'};

static const vma_codec codecs[VMA_N_CODECS] = {
    {VMA_COMPRESS_NONE, "none", "", none_alias, NULL, 0, 0, 0, 0, 1},
    /* 20..22 ("ultra") would only cost memory: a frame holds at most 8 MiB */
    {VMA_COMPRESS_ZSTD, "zstd", ".zst", zstd_alias, zstd_magic, sizeof(zstd_magic), 1, 19, 3,
     VMA_MAX_THREADS},
    {VMA_COMPRESS_GZIP, "gzip", ".gz", gzip_alias, gzip_magic, sizeof(gzip_magic), 1, 9, 6,
     VMA_MAX_THREADS},
    /* lzop -1 .. -9, its default -3 (written here with liblzo2, on threads) */
    {VMA_COMPRESS_LZO, "lzo", ".lzo", lzo_alias, lzo_magic, sizeof(lzo_magic), 1, 9, 3,
     VMA_MAX_THREADS},
};

const vma_codec *vma_codec_get(vma_compress c)
{
    return (unsigned)c < VMA_N_CODECS ? &codecs[c] : NULL;
}

const vma_codec *vma_codec_by_name(const char *name)
{
    for (unsigned i = 0; i < VMA_N_CODECS; i++) {
        if (strcmp(codecs[i].name, name) == 0)
            return &codecs[i];
        for (const char *const *a = codecs[i].aliases; *a; a++)
            if (strcmp(*a, name) == 0)
                return &codecs[i];
    }
    return NULL;
}

const vma_codec *vma_codec_by_magic(const uint8_t *buf, size_t len)
{
    for (unsigned i = 0; i < VMA_N_CODECS; i++)
        if (codecs[i].magic && len >= codecs[i].magic_len &&
            memcmp(buf, codecs[i].magic, codecs[i].magic_len) == 0)
            return &codecs[i];
    return &codecs[VMA_COMPRESS_NONE];
}

const char *vma_compress_name(vma_compress c)
{
    const vma_codec *k = vma_codec_get(c);
    return k ? k->name : "none";
}

int vma_compress_from_name(const char *name)
{
    const vma_codec *k = vma_codec_by_name(name);
    return k ? (int)k->id : -1;
}

gboolean vma_compress_levels(vma_compress c, int *min, int *max, int *def)
{
    const vma_codec *k = vma_codec_get(c);
    if (min)
        *min = k ? k->level_min : 0;
    if (max)
        *max = k ? k->level_max : 0;
    if (def)
        *def = k ? k->level_default : 0;
    return k && k->level_max > 0;
}

gboolean vma_compress_check(vma_compress c, int level, int threads, GError **err)
{
    const vma_codec *k = vma_codec_get(c);
    if (!k) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "unknown compression %d", (int)c);
        return FALSE;
    }
    if (k->level_max == 0) {
        if (level != 0) {
            g_set_error(err, VMA_ERROR, VMA_ERR_ARG,
                        "an uncompressed archive takes no compression level");
            return FALSE;
        }
    } else if (level != 0 && (level < k->level_min || level > k->level_max)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG,
                    "compression level %d is out of range for %s (%d..%d)", level, k->name,
                    k->level_min, k->level_max);
        return FALSE;
    }
    if (threads < 0 || threads > VMA_MAX_THREADS) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "threads must be 0 (one per core) to %d, not %d",
                    VMA_MAX_THREADS, threads);
        return FALSE;
    }
    return TRUE;
}
