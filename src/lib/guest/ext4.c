/* ext4.c - where the bytes of an ext2/3/4 file are: the ext4 extent tree
 * (read here, because The Sleuth Kit cuts a sparse file whose hole runs
 * past the last block of the file system) and the ext2/3 block map of
 * direct and indirect blocks.  Unwritten extents and missing blocks are
 * holes; extents past the end of the file are cut off; every block number
 * is checked against the file system, and the work done on a damaged tree
 * is bounded (nodes read, entries, block pointers). */
#define _GNU_SOURCE
#include "guest/guest.h"

#include <string.h>

#define EXT4_EXT_MAGIC   0xf30a
#define EXT4_MAX_DEPTH   5
#define MAX_NODES        (1u << 20)   /* tree blocks read at most */
#define MAX_POINTERS     (1u << 26)   /* block pointers followed at most (ext2/3) */
#define INIT_MAX_LEN     32768u

typedef struct {
    vma_volume *v;
    uint32_t bs;
    uint64_t blocks;      /* of the file system */
    uint64_t fblocks;     /* of the file: blocks that hold some of its size */
    GArray *out;
    unsigned nodes;
    uint64_t pointers;
} walk;

static gboolean add(walk *w, uint64_t lblk, uint64_t count, uint64_t pblk, gboolean hole,
                    GError **err)
{
    if (lblk >= w->fblocks)
        return TRUE; /* past the end of the file (preallocated) */
    count = MIN(count, w->fblocks - lblk);
    if (!hole && (pblk >= w->blocks || count > w->blocks - pblk)) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT,
                            "an extent of the file lies past the end of the file system");
        return FALSE;
    }
    if (hole)
        return TRUE; /* what no extent covers reads as zeros */
    return vma_extent_add(w->out, lblk * w->bs, count * w->bs, pblk * w->bs, err);
}

static int node(walk *w, const uint8_t *p, size_t room, int depth_want, GError **err)
{
    if (g_le16(p) != EXT4_EXT_MAGIC) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "an extent tree node of the file is damaged (magic)");
        return -1;
    }
    unsigned entries = g_le16(p + 2), max = g_le16(p + 4), depth = g_le16(p + 6);
    if (max > (room - 12) / 12 || entries > max ||
        (depth_want >= 0 && depth != (unsigned)depth_want) || depth > EXT4_MAX_DEPTH) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "an extent tree node of the file is damaged");
        return -1;
    }
    const uint8_t *e = p + 12;
    if (depth == 0) {
        for (unsigned i = 0; i < entries; i++, e += 12) {
            uint32_t lblk = g_le32(e);
            unsigned len = g_le16(e + 4);
            uint64_t start = (uint64_t)g_le16(e + 6) << 32 | g_le32(e + 8);
            gboolean unwritten = len > INIT_MAX_LEN;
            if (unwritten)
                len -= INIT_MAX_LEN;
            if (!add(w, lblk, len, start, unwritten, err))
                return -1;
        }
        return 0;
    }
    uint8_t *buf = g_malloc(w->bs);
    for (unsigned i = 0; i < entries; i++, e += 12) {
        if (++w->nodes > MAX_NODES) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the extent tree of the file is too large (damaged?)");
            g_free(buf);
            return -1;
        }
        uint32_t lblk = g_le32(e);
        uint64_t leaf = (uint64_t)g_le16(e + 8) << 32 | g_le32(e + 4);
        if (lblk >= w->fblocks)
            break; /* the rest maps what lies past the end of the file */
        if (leaf >= w->blocks) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT,
                                "an extent tree node of the file lies past the end of the file system");
            g_free(buf);
            return -1;
        }
        if (vma_volume_read_exact(w->v, buf, w->bs, leaf * w->bs, "an extent tree node", err) < 0 ||
            node(w, buf, w->bs, (int)depth - 1, err) < 0) {
            g_free(buf);
            return -1;
        }
    }
    g_free(buf);
    return 0;
}

int vma_ext4_extents(vma_volume *v, const uint8_t iblock[60], uint32_t block_size,
                     uint64_t blocks, uint64_t file_size, GArray *out, GError **err)
{
    walk w = {v, block_size, blocks, (file_size + block_size - 1) / block_size, out, 0, 0};
    if (block_size < 1024 || block_size > 65536) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the block size of the file system is damaged");
        return -1;
    }
    return node(&w, iblock, 60, -1, err);
}

/* the pointers of an indirect block of this level (1: to data blocks),
 * mapping logical blocks from *lblk on */
static int indirect(walk *w, uint64_t blk, int level, uint64_t *lblk, GError **err)
{
    uint64_t per = w->bs / 4, span = 1;
    for (int i = 0; i < level; i++)
        span *= per;
    if (blk == 0) { /* a hole as large as the whole subtree */
        *lblk += span;
        return 0;
    }
    if (blk >= w->blocks) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT,
                            "an indirect block of the file lies past the end of the file system");
        return -1;
    }
    if (++w->nodes > MAX_NODES) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the file has too many indirect blocks (damaged?)");
        return -1;
    }
    uint8_t *buf = g_malloc(w->bs);
    if (vma_volume_read_exact(w->v, buf, w->bs, blk * w->bs, "an indirect block", err) < 0) {
        g_free(buf);
        return -1;
    }
    int rc = 0;
    for (uint64_t i = 0; i < per && *lblk < w->fblocks; i++) {
        uint32_t p = g_le32(buf + 4 * i);
        if (level == 1) {
            if (p) {
                if (++w->pointers > MAX_POINTERS) {
                    g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the file has too many blocks (damaged?)");
                    rc = -1;
                    break;
                }
                if (!add(w, *lblk, 1, p, FALSE, err)) {
                    rc = -1;
                    break;
                }
            }
            (*lblk)++;
        } else if (indirect(w, p, level - 1, lblk, err) < 0) {
            rc = -1;
            break;
        }
    }
    g_free(buf);
    return rc;
}

int vma_ext2_blockmap(vma_volume *v, const uint32_t iblock[15], uint32_t block_size,
                      uint64_t blocks, uint64_t file_size, GArray *out, GError **err)
{
    walk w = {v, block_size, blocks, (file_size + block_size - 1) / block_size, out, 0, 0};
    if (block_size < 1024 || block_size > 65536) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the block size of the file system is damaged");
        return -1;
    }
    uint64_t lblk = 0;
    for (int i = 0; i < 12 && lblk < w.fblocks; i++, lblk++)
        if (iblock[i] && !add(&w, lblk, 1, iblock[i], FALSE, err))
            return -1;
    for (int level = 1; level <= 3 && lblk < w.fblocks; level++)
        if (indirect(&w, iblock[11 + level], level, &lblk, err) < 0)
            return -1;
    return 0;
}
