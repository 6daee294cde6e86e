/* fs_ext.c - ext2, ext3 and ext4, read here: the superblock and group
 * descriptors (meta_bg included), inodes (with nanosecond and post-2038
 * times), folders read block by block (an htree's index blocks look like
 * empty entries and are skipped), inline data, links, and where the bytes
 * of a file are: the ext4 extent tree and the ext2/3 block map.
 *
 * Not through The Sleuth Kit, measured: TSK 4.11 cuts a sparse file whose
 * hole runs past the last block of the file system ("Invalid address in
 * run"), and on a damaged inode table it allocates and zero-fills the
 * size an inline-data inode claims (gigabytes per inode: 3 minutes and
 * more for 200 damaged inodes).  Here every number read is checked against
 * the superblock, unwritten extents and missing blocks are holes, extents
 * past the end of the file are cut off, and the work done on a damaged
 * tree is bounded (nodes read, entries, block pointers).  The journal is
 * not replayed (the state a crash-consistent backup holds). */
#define _GNU_SOURCE
#include "guest/guest.h"

#include <stdio.h>
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

/* a walk of a file's blocks; FALSE with err for a block size no ext has */
static gboolean walk_init(walk *w, vma_volume *v, uint32_t block_size, uint64_t blocks,
                          uint64_t file_size, GArray *out, GError **err)
{
    *w = (walk){v, block_size, blocks, (file_size + block_size - 1) / block_size, out, 0, 0};
    if (block_size >= 1024 && block_size <= 65536)
        return TRUE;
    g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the block size of the file system is damaged");
    return FALSE;
}

int vma_ext4_extents(vma_volume *v, const uint8_t iblock[60], uint32_t block_size,
                     uint64_t blocks, uint64_t file_size, GArray *out, GError **err)
{
    walk w;
    return walk_init(&w, v, block_size, blocks, file_size, out, err) ? node(&w, iblock, 60, -1, err)
                                                                      : -1;
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
    walk w;
    if (!walk_init(&w, v, block_size, blocks, file_size, out, err))
        return -1;
    uint64_t lblk = 0;
    for (int i = 0; i < 12 && lblk < w.fblocks; i++, lblk++)
        if (iblock[i] && !add(&w, lblk, 1, iblock[i], FALSE, err))
            return -1;
    for (int level = 1; level <= 3 && lblk < w.fblocks; level++)
        if (indirect(&w, iblock[11 + level], level, &lblk, err) < 0)
            return -1;
    return 0;
}

/* ---- the file system ---- */

#define EXT_ROOT_INO        2
#define FL_INDEX            0x1000u
#define FL_EXTENTS          0x80000u
#define FL_INLINE           0x10000000u
#define FL_ENCRYPT          0x800u
#define INCOMPAT_FILETYPE   0x2u
#define INCOMPAT_META_BG    0x10u
#define INCOMPAT_64BIT      0x80u
#define INCOMPAT_ENCRYPT    0x10000u
#define RO_SPARSE_SUPER     0x1u
#define MAX_DIR_NAMES       (8u << 20)
#define MAX_DIR_BYTES       ((uint64_t)1 << 31)
#define MAX_INLINE          4096u

typedef struct {
    uint32_t bs;
    uint64_t blocks;
    uint32_t first_data_block;
    uint32_t blocks_per_group, inodes_per_group;
    uint32_t inodes;
    uint32_t inode_size;
    uint32_t desc_size;
    uint32_t groups;
    uint32_t first_meta_bg;
    uint32_t incompat, ro_compat;
} ext_info;

#define ext_bad(err, what) vma_fs_damaged(err, "ext", what)

static int e_open(vma_fs *fs, GError **err)
{
    uint8_t sb[1024];
    if (vma_fs_read_super(fs, sb, sizeof(sb), 1024, "ext", err) < 0)
        return -1;
    if (g_le16(sb + 0x38) != 0xef53) {
        ext_bad(err, "no superblock");
        return -1;
    }
    ext_info *x = g_new0(ext_info, 1);
    uint32_t log = g_le32(sb + 0x18);
    x->incompat = g_le32(sb + 0x60);
    x->ro_compat = g_le32(sb + 0x64);
    gboolean is64 = (x->incompat & INCOMPAT_64BIT) != 0;
    x->inodes = g_le32(sb + 0x00);
    x->blocks = g_le32(sb + 0x04) | (is64 ? (uint64_t)g_le32(sb + 0x150) << 32 : 0);
    x->first_data_block = g_le32(sb + 0x14);
    x->blocks_per_group = g_le32(sb + 0x20);
    x->inodes_per_group = g_le32(sb + 0x28);
    x->inode_size = g_le32(sb + 0x4c) >= 1 ? g_le16(sb + 0x58) : 128;
    x->desc_size = is64 ? g_le16(sb + 0xfe) : 32;
    x->first_meta_bg = g_le32(sb + 0x104);
    const char *why = NULL;
    if (log > 6)
        why = "its block size";
    else {
        x->bs = 1024u << log;
        if (x->blocks == 0 || x->blocks > VMA_MAX_DEVICE_SIZE / x->bs ||
            x->first_data_block >= x->blocks || x->first_data_block > 1)
            why = "its size";
        else if (x->blocks_per_group == 0 || x->blocks_per_group > 8 * x->bs ||
                 x->inodes_per_group == 0 || x->inodes_per_group > 8 * x->bs)
            why = "its groups";
        else if (x->inode_size < 128 || x->inode_size > x->bs || (x->inode_size & (x->inode_size - 1)))
            why = "its inode size";
        else if (x->desc_size < 32 || x->desc_size > 1024 || (x->desc_size & (x->desc_size - 1)) ||
                 x->desc_size > x->bs)
            why = "its group descriptor size";
    }
    if (!why) {
        uint64_t groups = (x->blocks - x->first_data_block + x->blocks_per_group - 1) / x->blocks_per_group;
        if (groups == 0 || groups > UINT32_MAX || x->inodes > groups * x->inodes_per_group ||
            x->inodes < EXT_ROOT_INO)
            why = "its inode count";
        else
            x->groups = (uint32_t)groups;
    }
    if (why) {
        ext_bad(err, why);
        g_free(x);
        return -1;
    }
    if (x->incompat & INCOMPAT_ENCRYPT) {
        /* readable, but encrypted folders and files are refused one by one */
    }
    fs->priv = x;
    fs->root = EXT_ROOT_INO;
    return 0;
}

static void e_close(vma_fs *fs) { g_free(fs->priv); }

/* does group g hold a copy of the superblock (sparse_super: 0, 1, powers
 * of 3, 5 and 7) */
static gboolean has_super(const ext_info *x, uint64_t g)
{
    if (g <= 1 || !(x->ro_compat & RO_SPARSE_SUPER))
        return TRUE;
    for (uint64_t b = 3; b <= 7; b += 2) {
        uint64_t p = b;
        while (p < g)
            p *= b;
        if (p == g)
            return TRUE;
    }
    return FALSE;
}

/* the block of the inode table of group g */
static int inode_table(vma_fs *fs, uint64_t g, uint64_t *out, GError **err)
{
    const ext_info *x = fs->priv;
    uint64_t per = x->bs / x->desc_size;
    uint64_t dblock;
    uint64_t idx = g / per;
    if ((x->incompat & INCOMPAT_META_BG) && idx >= x->first_meta_bg) {
        uint64_t first = idx * per;
        dblock = x->first_data_block + first * x->blocks_per_group + (has_super(x, first) ? 1 : 0);
        if (x->bs == 1024 && x->first_data_block == 0)
            dblock++;
    } else {
        dblock = x->first_data_block + 1 + idx;
    }
    if (dblock >= x->blocks) {
        ext_bad(err, "a group descriptor lies past its end");
        return -1;
    }
    uint8_t d[1024];
    uint64_t off = dblock * x->bs + (g % per) * x->desc_size;
    if (vma_volume_read_exact(fs->v, d, x->desc_size, off, "an ext group descriptor", err) < 0)
        return -1;
    uint64_t t = g_le32(d + 8);
    if (x->desc_size >= 64)
        t |= (uint64_t)g_le32(d + 0x28) << 32;
    if (t == 0 || t >= x->blocks) {
        ext_bad(err, "an inode table lies past its end");
        return -1;
    }
    *out = t;
    return 0;
}

/* what an inode is read into: the largest inode there may be (its fields
 * are read at fixed offsets, past a small inode's end too: zeros there) */
#define INODE_BUF 65536

static int read_ext_inode(vma_fs *fs, uint64_t ino, uint8_t *buf, GError **err)
{
    const ext_info *x = fs->priv;
    if (ino == 0 || ino > x->inodes) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "inode %" G_GUINT64_FORMAT
                    " is outside the ext file system", ino);
        return -1;
    }
    uint64_t g = (ino - 1) / x->inodes_per_group, i = (ino - 1) % x->inodes_per_group;
    uint64_t table;
    if (inode_table(fs, g, &table, err) < 0)
        return -1;
    uint64_t off = table * x->bs + i * x->inode_size;
    return vma_volume_read_exact(fs->v, buf, x->inode_size, off, "an ext inode", err);
}

static void ext_time(const uint8_t *in, unsigned isize, unsigned base, unsigned extra,
                     int64_t *sec, uint32_t *ns)
{
    *sec = (int32_t)g_le32(in + base);
    *ns = 0;
    unsigned extra_isize = isize > 128 ? g_le16(in + 0x80) : 0;
    if (extra && 128 + extra_isize >= extra + 4 && extra + 4 <= isize) {
        uint32_t e = g_le32(in + extra);
        *sec += (int64_t)(e & 3) << 32;
        uint32_t n = e >> 2;
        *ns = n < 1000000000u ? n : 0;
    }
}


static uint64_t ext_size(const uint8_t *in)
{
    uint64_t s = g_le32(in + 4) | (uint64_t)g_le32(in + 0x6c) << 32;
    return s > (uint64_t)INT64_MAX ? 0 : s;
}

static int e_stat(vma_fs *fs, uint64_t ino, vma_stat *st, GError **err)
{
    const ext_info *x = fs->priv;
    g_autofree uint8_t *in = g_malloc0(INODE_BUF); /* not on a reader's stack */
    if (read_ext_inode(fs, ino, in, err) < 0)
        return -1;
    uint16_t mode = g_le16(in);
    st->type = vma_mode_type(mode);
    st->mode = mode & 07777;
    st->uid = g_le16(in + 2) | (uint32_t)g_le16(in + 0x78) << 16;
    st->gid = g_le16(in + 0x18) | (uint32_t)g_le16(in + 0x7a) << 16;
    st->nlink = g_le16(in + 0x1a);
    st->size = ext_size(in);
    uint64_t blocks = g_le32(in + 0x1c) | (uint64_t)g_le16(in + 0x74) << 32;
    if ((x->ro_compat & 0x8) && (g_le32(in + 0x20) & 0x40000))
        blocks = blocks <= UINT64_MAX / (x->bs / 512) ? blocks * (x->bs / 512) : 0;
    st->blocks = blocks;
    ext_time(in, x->inode_size, 0x08, 0x8c, &st->atime, &st->atime_ns);
    ext_time(in, x->inode_size, 0x0c, 0x84, &st->ctime, &st->ctime_ns);
    ext_time(in, x->inode_size, 0x10, 0x88, &st->mtime, &st->mtime_ns);
    if (x->inode_size > 128 && 128u + g_le16(in + 0x80) >= 0x98)
        ext_time(in, x->inode_size, 0x90, 0x94, &st->btime, &st->btime_ns);
    if (st->type == VMA_FT_CHR || st->type == VMA_FT_BLK) {
        uint32_t b0 = g_le32(in + 0x28), b1 = g_le32(in + 0x2c);
        if (b0) {
            st->rdev_major = (b0 >> 8) & 0xff;
            st->rdev_minor = b0 & 0xff;
        } else {
            st->rdev_major = (b1 & 0xfff00) >> 8;
            st->rdev_minor = (b1 & 0xff) | ((b1 >> 12) & 0xfff00);
        }
    }
    return 0;
}

/* the inline data of an inode: i_block, then the value of the in-inode
 * extended attribute system.data; at most size bytes into out (g_malloc'ed) */
static int inline_bytes(const ext_info *x, const uint8_t *in, uint64_t size, uint8_t **out,
                        size_t *len, GError **err)
{
    if (size > MAX_INLINE) {
        ext_bad(err, "an inline file larger than an inode");
        return -1;
    }
    uint8_t *b = g_malloc0(size + 1);
    size_t n = (size_t)MIN(size, 60);
    memcpy(b, in + 0x28, n);
    if (size > 60 && x->inode_size > 128) {
        unsigned extra = g_le16(in + 0x80);
        size_t at = 128 + (size_t)extra;
        if (at + 4 <= x->inode_size && g_le32(in + at) == 0xea020000) {
            size_t first = at + 4, p = first;
            while (p + 16 <= x->inode_size && g_le32(in + p) != 0) {
                unsigned nlen = in[p], idx = in[p + 1];
                unsigned voff = g_le16(in + p + 2);
                uint32_t vsize = g_le32(in + p + 8);
                if (p + 16 + nlen > x->inode_size)
                    break;
                if (idx == 7 && nlen == 4 && memcmp(in + p + 16, "data", 4) == 0) {
                    if (first + voff + (uint64_t)vsize > x->inode_size) {
                        g_free(b);
                        ext_bad(err, "an inline data attribute runs past its inode");
                        return -1;
                    }
                    size_t take = (size_t)MIN((uint64_t)vsize, size - 60);
                    memcpy(b + 60, in + first + voff, take);
                    n = 60 + take;
                    break;
                }
                p += (16 + nlen + 3) & ~(size_t)3;
            }
        }
    }
    if (n < size) {
        g_free(b);
        ext_bad(err, "an inline file's data is missing");
        return -1;
    }
    *out = b;
    *len = (size_t)size;
    return 0;
}

/* the extents of a file's (or folder's) blocks */
static int e_extents(vma_fs *fs, const uint8_t *in, uint64_t size, GArray *out, GError **err)
{
    const ext_info *x = fs->priv;
    uint32_t flags = g_le32(in + 0x20);
    if (flags & FL_EXTENTS)
        return vma_ext4_extents(fs->v, in + 0x28, x->bs, x->blocks, size, out, err);
    uint32_t ib[15];
    for (int i = 0; i < 15; i++)
        ib[i] = g_le32(in + 0x28 + 4 * i);
    return vma_ext2_blockmap(fs->v, ib, x->bs, x->blocks, size, out, err);
}

static vma_ftype dirent_type(uint8_t t)
{
    static const vma_ftype map[] = {VMA_FT_UNKNOWN, VMA_FT_FILE, VMA_FT_DIR, VMA_FT_CHR,
                                    VMA_FT_BLK, VMA_FT_FIFO, VMA_FT_SOCK, VMA_FT_LINK};
    return t < G_N_ELEMENTS(map) ? map[t] : VMA_FT_UNKNOWN;
}

/* the entries of n bytes of folder data */
static int parse_dirents(const ext_info *x, const uint8_t *b, size_t n, GArray *out, GError **err)
{
    size_t at = 0;
    gboolean ft = (x->incompat & INCOMPAT_FILETYPE) != 0;
    while (at + 8 <= n) {
        uint32_t ino = g_le32(b + at);
        size_t rec = g_le16(b + at + 4);
        if (rec == 0 || rec == 65535)
            rec = n - at < 65536 ? n - at : 65536; /* 64 KiB blocks */
        unsigned nlen = ft ? b[at + 6] : g_le16(b + at + 6);
        if (rec < 8 || rec % 4 || at + rec > n || 8 + (size_t)nlen > rec) {
            ext_bad(err, "a folder entry");
            return -1;
        }
        if (ino && nlen) {
            if (out->len >= MAX_DIR_NAMES) {
                g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the folder has too many entries (damaged?)");
                return -1;
            }
            if (ino > x->inodes) {
                /* an entry pointing past the inodes: kept, its stat fails */
            }
            vma_dirent e;
            const uint8_t *name = b + at + 8;
            e.name = memchr(name, 0, nlen) ? g_strdup("/") : g_strndup((const char *)name, nlen);
            e.ino = ino;
            e.type = ft ? dirent_type(b[at + 7]) : VMA_FT_UNKNOWN;
            g_array_append_val(out, e);
        }
        at += rec;
    }
    return 0;
}

static int e_readdir(vma_fs *fs, uint64_t ino, GArray *out, GError **err)
{
    const ext_info *x = fs->priv;
    g_autofree uint8_t *in = g_malloc0(INODE_BUF); /* not on a reader's stack */
    if (read_ext_inode(fs, ino, in, err) < 0)
        return -1;
    uint32_t flags = g_le32(in + 0x20);
    if (vma_mode_type(g_le16(in)) != VMA_FT_DIR) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_NOT_FOUND, "not a folder");
        return -1;
    }
    if (flags & FL_ENCRYPT) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the folder is encrypted (fscrypt)");
        return -1;
    }
    uint64_t size = ext_size(in);
    if (flags & FL_INLINE) {
        uint8_t *b;
        size_t n;
        if (inline_bytes(x, in, size, &b, &n, err) < 0)
            return -1;
        int rc = 0;
        /* the parent inode, then entries in the rest of i_block, then in
         * the attribute's value */
        if (n > 4)
            rc = parse_dirents(x, b + 4, MIN(n, 60) - 4, out, err);
        if (rc == 0 && n > 60)
            rc = parse_dirents(x, b + 60, n - 60, out, err);
        g_free(b);
        return rc;
    }
    if (size > MAX_DIR_BYTES) {
        ext_bad(err, "a folder's size");
        return -1;
    }
    GArray *ext = g_array_new(FALSE, FALSE, sizeof(vma_extent_map));
    int rc = -1;
    if (e_extents(fs, in, size, ext, err) < 0 || !vma_extents_check(ext, vma_volume_size(fs->v), err))
        goto out;
    uint8_t *blk = g_malloc(x->bs);
    rc = 0;
    for (guint i = 0; i < ext->len && rc == 0; i++) {
        const vma_extent_map *e = &g_array_index(ext, vma_extent_map, i);
        for (uint64_t o = 0; o < e->len && rc == 0; o += x->bs) {
            if (vma_volume_read_exact(fs->v, blk, x->bs, e->phys + o, "a folder block", err) < 0)
                rc = -1;
            else
                rc = parse_dirents(x, blk, x->bs, out, err);
        }
    }
    g_free(blk);
out:
    g_array_free(ext, TRUE);
    return rc;
}

static char *e_readlink(vma_fs *fs, uint64_t ino, const vma_stat *st, GError **err)
{
    const ext_info *x = fs->priv;
    g_autofree uint8_t *in = g_malloc0(INODE_BUF); /* not on a reader's stack */
    if (read_ext_inode(fs, ino, in, err) < 0)
        return NULL;
    uint32_t flags = g_le32(in + 0x20);
    size_t size = (size_t)st->size;
    if (flags & FL_ENCRYPT) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the link is encrypted (fscrypt)");
        return NULL;
    }
    if (flags & FL_INLINE) {
        uint8_t *b;
        size_t n;
        if (inline_bytes(x, in, size, &b, &n, err) < 0)
            return NULL;
        return (char *)b;
    }
    if (!(flags & FL_EXTENTS) && size < 60)
        return g_strndup((const char *)in + 0x28, size); /* a fast link */
    GArray *ext = g_array_new(FALSE, FALSE, sizeof(vma_extent_map));
    char *t = NULL;
    if (e_extents(fs, in, size, ext, err) == 0 && vma_extents_check(ext, vma_volume_size(fs->v), err)) {
        t = g_malloc0(size + 1);
        for (guint i = 0; i < ext->len; i++) {
            const vma_extent_map *e = &g_array_index(ext, vma_extent_map, i);
            if (e->loff >= size)
                break;
            size_t take = (size_t)MIN(e->len, size - e->loff);
            if (vma_volume_read_exact(fs->v, t + e->loff, take, e->phys, "a link's block", err) < 0) {
                g_free(t);
                t = NULL;
                break;
            }
        }
    }
    g_array_free(ext, TRUE);
    return t;
}

static int e_content(vma_fs *fs, uint64_t ino, const vma_stat *st, vma_content *c, GError **err)
{
    const ext_info *x = fs->priv;
    g_autofree uint8_t *in = g_malloc0(INODE_BUF); /* not on a reader's stack */
    if (read_ext_inode(fs, ino, in, err) < 0)
        return -1;
    uint32_t flags = g_le32(in + 0x20);
    if (flags & FL_ENCRYPT) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the file is encrypted (fscrypt)");
        return -1;
    }
    if (flags & FL_INLINE) {
        uint8_t *data;
        size_t len;
        if (inline_bytes(x, in, st->size, &data, &len, err) < 0)
            return -1;
        vma_content_bytes(c, data, len);
        return 0;
    }
    return vma_content_extents(c, e_extents, fs, in, st->size, err);
}

const vma_fs_ops vma_fs_ext_ops = {
    .name = "ext", .open = e_open, .stat = e_stat, .readdir = e_readdir,
    .readlink = e_readlink, .content = e_content, .close = e_close,
};
