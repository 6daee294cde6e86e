/* fs_xfs.c - XFS, read here: the superblock, inodes (v1-v3, bigtime and
 * large extent counts), data forks in extent and B+tree form, directories
 * in short, block, leaf and node form (their data blocks read in order),
 * and symbolic links (inline or in blocks).  Read-only and without
 * journal replay (a backup is crash-consistent: what a clean mount would
 * show before log recovery).  Everything read is checked against the
 * superblock's geometry; a damaged tree is an error, never a loop. */
#define _GNU_SOURCE
#include "guest/guest.h"

#include <string.h>

#define XFS_DIR2_LEAF_OFFSET  ((uint64_t)32 << 30)  /* where directory data ends */
#define MAX_BTREE_LEVEL       12
#define MAX_BTREE_BLOCKS      (1u << 20)
#define MAX_DIR_ENTRIES       (8u << 20)
#define MAX_DIR_BLOCKS        (1u << 20)
#define MAX_SYMLINK           1024u
#define BIGTIME_EPOCH_OFFSET  ((int64_t)1 << 31)

enum { FMT_DEV = 0, FMT_LOCAL = 1, FMT_EXTENTS = 2, FMT_BTREE = 3 };

typedef struct {
    uint32_t bs;          /* block size */
    uint64_t dblocks;
    uint32_t agblocks, agcount;
    unsigned agblklog, inopblog;
    uint32_t inodesize;
    uint32_t dirblksize;
    gboolean v5, ftype, nrext64, bigtime_fs;
    uint64_t root;
} xfs_info;

static uint16_t be16(const uint8_t *p) { return vma_get_be16(p); }
static uint32_t be32(const uint8_t *p) { return vma_get_be32(p); }
static uint64_t be64(const uint8_t *p) { return vma_get_be64(p); }

static gboolean pow2(uint64_t v) { return v && !(v & (v - 1)); }

#define bad(err, what) vma_fs_damaged(err, "XFS", what)

static int x_open(vma_fs *fs, GError **err)
{
    uint8_t sb[512];
    if (vma_fs_read_super(fs, sb, sizeof(sb), 0, "XFS", err) < 0)
        return -1;
    if (memcmp(sb, "XFSB", 4) != 0) {
        bad(err, "no superblock");
        return -1;
    }
    xfs_info *x = g_new0(xfs_info, 1);
    x->bs = be32(sb + 4);
    x->dblocks = be64(sb + 8);
    x->root = be64(sb + 56);
    x->agblocks = be32(sb + 84);
    x->agcount = be32(sb + 88);
    unsigned version = be16(sb + 100) & 0xf;
    x->inodesize = be16(sb + 104);
    unsigned inopblock = be16(sb + 106);
    unsigned blocklog = sb[120], inodelog = sb[122];
    x->inopblog = sb[123];
    x->agblklog = sb[124];
    unsigned dirblklog = sb[192];
    uint32_t features2 = be32(sb + 200);
    uint32_t incompat = version == 5 ? be32(sb + 216) : 0;
    x->v5 = version == 5;
    x->ftype = x->v5 ? (incompat & 1) != 0 : (features2 & 0x200) != 0;
    x->nrext64 = (incompat & 32) != 0;
    const char *why = NULL;
    if (version != 4 && version != 5)
        why = "an unknown version";
    else if (blocklog > 16 || inodelog > 11 || x->inopblog > 8)
        why = "its sizes";
    else if (!pow2(x->bs) || x->bs < 512 || x->bs > 65536 || (1u << blocklog) != x->bs)
        why = "its block size";
    else if (!pow2(x->inodesize) || x->inodesize < 256 || x->inodesize > 2048 ||
             (1u << inodelog) != x->inodesize || x->inodesize > x->bs)
        why = "its inode size";
    else if (inopblock != x->bs / x->inodesize || (1u << x->inopblog) != inopblock)
        why = "its inodes per block";
    else if (x->agblocks < 16 || x->agcount == 0 || x->agblklog > 31 ||
             (1ull << x->agblklog) < x->agblocks || (1ull << x->agblklog) >= 2ull * x->agblocks)
        why = "its allocation groups";
    else if (x->dblocks == 0 || x->dblocks > (uint64_t)x->agblocks * x->agcount ||
             x->dblocks > VMA_MAX_DEVICE_SIZE / x->bs)
        why = "its size";
    else if (dirblklog > 6 || ((uint64_t)x->bs << dirblklog) > 65536)
        why = "its directory block size";
    else if (incompat & ~(uint32_t)(1 | 2 | 4 | 8 | 32))
        why = "features this reader does not know";
    if (why) {
        if (incompat & ~(uint32_t)(1 | 2 | 4 | 8 | 32) && version == 5)
            g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                        "the XFS file system uses features this reader does not know (0x%x)", incompat);
        else
            bad(err, why);
        g_free(x);
        return -1;
    }
    x->dirblksize = x->bs << dirblklog;
    fs->priv = x;
    fs->root = x->root;
    return 0;
}

static void x_close(vma_fs *fs) { g_free(fs->priv); }

/* the byte offset of a file system block number, or FALSE */
static gboolean fsb_to_bytes(const xfs_info *x, uint64_t fsb, uint64_t *out)
{
    uint64_t agno = fsb >> x->agblklog, agbno = fsb & ((1ull << x->agblklog) - 1);
    if (agno >= x->agcount || agbno >= x->agblocks)
        return FALSE;
    uint64_t blk = agno * x->agblocks + agbno;
    if (blk >= x->dblocks)
        return FALSE;
    *out = blk * x->bs;
    return TRUE;
}

/* the bytes of the inode ino (x->inodesize of them) */
static int read_inode(vma_fs *fs, uint64_t ino, uint8_t *buf, GError **err)
{
    const xfs_info *x = fs->priv;
    unsigned shift = x->agblklog + x->inopblog;
    uint64_t agno = shift < 64 ? ino >> shift : 0;
    uint64_t agino = ino & ((1ull << shift) - 1);
    uint64_t agbno = agino >> x->inopblog, idx = agino & ((1ull << x->inopblog) - 1);
    if (agno >= x->agcount || agbno >= x->agblocks || (agno * x->agblocks + agbno) >= x->dblocks) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "inode %" G_GUINT64_FORMAT
                    " is outside the XFS file system", ino);
        return -1;
    }
    uint64_t off = (agno * x->agblocks + agbno) * x->bs + idx * x->inodesize;
    if (vma_volume_read_exact(fs->v, buf, x->inodesize, off, "an XFS inode", err) < 0)
        return -1;
    if (be16(buf) != 0x494e || buf[4] < 1 || buf[4] > 3 || (buf[4] == 3) != x->v5) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "inode %" G_GUINT64_FORMAT
                    " of the XFS file system is damaged", ino);
        return -1;
    }
    return 0;
}

static unsigned core_size(const uint8_t *in) { return in[4] == 3 ? 176 : 100; }

/* the data fork: where it starts in the inode and its size */
static gboolean data_fork(const xfs_info *x, const uint8_t *in, const uint8_t **p, size_t *n)
{
    unsigned core = core_size(in);
    unsigned forkoff = in[82];
    size_t size = x->inodesize - core;
    if (forkoff) {
        if ((size_t)forkoff * 8 > size)
            return FALSE;
        size = (size_t)forkoff * 8;
    }
    *p = in + core;
    *n = size;
    return TRUE;
}

static void set_time(const uint8_t *in, const uint8_t *t, int64_t *sec, uint32_t *ns)
{
    gboolean big = in[4] == 3 && (be64(in + 120) & (1u << 3));
    if (big) {
        uint64_t v = be64(t);
        *sec = (int64_t)(v / 1000000000u) - BIGTIME_EPOCH_OFFSET;
        *ns = (uint32_t)(v % 1000000000u);
    } else {
        *sec = (int32_t)be32(t);
        uint32_t n = be32(t + 4);
        *ns = n < 1000000000u ? n : 0;
    }
}


static int x_stat(vma_fs *fs, uint64_t ino, vma_stat *st, GError **err)
{
    const xfs_info *x = fs->priv;
    uint8_t in[2048];
    if (read_inode(fs, ino, in, err) < 0)
        return -1;
    uint16_t mode = be16(in + 2);
    st->type = vma_mode_type(mode);
    st->mode = mode & 07777;
    st->uid = be32(in + 8);
    st->gid = be32(in + 12);
    st->nlink = in[4] == 1 ? be16(in + 6) : be32(in + 16);
    uint64_t size = be64(in + 56);
    st->size = size > (uint64_t)INT64_MAX ? 0 : size;
    uint64_t nblocks = be64(in + 64);
    st->blocks = nblocks <= x->dblocks ? nblocks * (x->bs / 512) : 0;
    set_time(in, in + 32, &st->atime, &st->atime_ns);
    set_time(in, in + 40, &st->mtime, &st->mtime_ns);
    set_time(in, in + 48, &st->ctime, &st->ctime_ns);
    if (in[4] == 3)
        set_time(in, in + 144, &st->btime, &st->btime_ns);
    if ((st->type == VMA_FT_CHR || st->type == VMA_FT_BLK) && in[5] == FMT_DEV) {
        uint32_t dev = be32(in + core_size(in));
        st->rdev_major = dev >> 18;
        st->rdev_minor = dev & 0x3ffff;
    }
    return 0;
}

/* ---- extents ---- */

typedef struct {
    vma_fs *fs;
    const xfs_info *x;
    GArray *out;
    uint64_t limit;       /* file blocks that matter (size rounded up) */
    unsigned blocks_read;
} bmap;

static int add_rec(bmap *b, const uint8_t *r, GError **err)
{
    uint64_t l0 = be64(r), l1 = be64(r + 8);
    gboolean unwritten = (l0 >> 63) != 0;
    uint64_t off = (l0 >> 9) & ((1ull << 54) - 1);
    uint64_t start = ((l0 & 0x1ff) << 43) | (l1 >> 21);
    uint64_t count = l1 & ((1ull << 21) - 1);
    if (count == 0 || off >= b->limit)
        return 0;
    count = MIN(count, b->limit - off);
    if (unwritten)
        return 0; /* reads as zeros: a hole */
    uint64_t phys, last;
    /* an extent may not cross an allocation group: check both ends */
    if (!fsb_to_bytes(b->x, start, &phys) || !fsb_to_bytes(b->x, start + count - 1, &last) ||
        last != phys + (count - 1) * b->x->bs) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT,
                            "an extent of the file lies outside the XFS file system");
        return -1;
    }
    return vma_extent_add(b->out, off * b->x->bs, count * b->x->bs, phys, err) ? 0 : -1;
}

static int btree_block(bmap *b, uint64_t fsb, int level, GError **err)
{
    const xfs_info *x = b->x;
    if (++b->blocks_read > MAX_BTREE_BLOCKS) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the extent tree of the file is too large (damaged?)");
        return -1;
    }
    uint64_t off;
    if (!fsb_to_bytes(x, fsb, &off)) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT,
                            "an extent tree block of the file lies outside the XFS file system");
        return -1;
    }
    uint8_t *buf = g_malloc(x->bs);
    int rc = -1;
    if (vma_volume_read_exact(b->fs->v, buf, x->bs, off, "an XFS extent tree block", err) < 0)
        goto out;
    unsigned hdr = x->v5 ? 72 : 24;
    if (memcmp(buf, x->v5 ? "BMA3" : "BMAP", 4) != 0 || be16(buf + 4) != (unsigned)level) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "an XFS extent tree block is damaged");
        goto out;
    }
    unsigned n = be16(buf + 6);
    if (level == 0) {
        if (n > (x->bs - hdr) / 16) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "an XFS extent tree block is damaged");
            goto out;
        }
        for (unsigned i = 0; i < n; i++)
            if (add_rec(b, buf + hdr + 16 * i, err) < 0)
                goto out;
    } else {
        unsigned max = (x->bs - hdr) / 16;
        if (n > max) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "an XFS extent tree block is damaged");
            goto out;
        }
        for (unsigned i = 0; i < n; i++) {
            uint64_t key = be64(buf + hdr + 8 * i);
            if (key >= b->limit)
                break;
            if (btree_block(b, be64(buf + hdr + 8 * max + 8 * i), level - 1, err) < 0)
                goto out;
        }
    }
    rc = 0;
out:
    g_free(buf);
    return rc;
}

/* the extents of the data fork of the inode in (size bytes matter) */
static int data_extents(vma_fs *fs, const uint8_t *in, uint64_t size, GArray *out, GError **err)
{
    const xfs_info *x = fs->priv;
    const uint8_t *p;
    size_t n;
    if (!data_fork(x, in, &p, &n)) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "an XFS inode's forks are damaged");
        return -1;
    }
    if (be16(in + 90) & 1) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT,
                            "the file is on the XFS realtime device, which is not read");
        return -1;
    }
    bmap b = {fs, x, out, (size + x->bs - 1) / x->bs, 0};
    if (in[5] == FMT_EXTENTS) {
        gboolean big = in[4] == 3 && (be64(in + 120) & (1u << 4));
        uint64_t count = big ? be64(in + 24) : be32(in + 76);
        if (count > n / 16) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "an XFS inode's extent count is damaged");
            return -1;
        }
        for (uint64_t i = 0; i < count; i++)
            if (add_rec(&b, p + 16 * i, err) < 0)
                return -1;
        return 0;
    }
    if (in[5] == FMT_BTREE) {
        if (n < 4) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "an XFS inode's extent tree is damaged");
            return -1;
        }
        unsigned level = be16(p), recs = be16(p + 2);
        unsigned max = (unsigned)((n - 4) / 16);
        if (level == 0 || level > MAX_BTREE_LEVEL || recs > max) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "an XFS inode's extent tree is damaged");
            return -1;
        }
        for (unsigned i = 0; i < recs; i++) {
            uint64_t key = be64(p + 4 + 8 * i);
            if (key >= b.limit)
                break;
            if (btree_block(&b, be64(p + 4 + 8 * max + 8 * i), (int)level - 1, err) < 0)
                return -1;
        }
        return 0;
    }
    g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "an XFS inode has an unexpected format (%u)", in[5]);
    return -1;
}

/* ---- directories ---- */

static vma_ftype dir_ftype(uint8_t t)
{
    static const vma_ftype map[] = {VMA_FT_UNKNOWN, VMA_FT_FILE, VMA_FT_DIR, VMA_FT_CHR,
                                    VMA_FT_BLK, VMA_FT_FIFO, VMA_FT_SOCK, VMA_FT_LINK};
    return t < G_N_ELEMENTS(map) ? map[t] : VMA_FT_UNKNOWN;
}

static gboolean add_entry(GArray *out, const uint8_t *name, size_t len, uint64_t ino, vma_ftype t,
                          GError **err)
{
    if (out->len >= MAX_DIR_ENTRIES) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the folder has too many entries (damaged?)");
        return FALSE;
    }
    vma_dirent e;
    if (memchr(name, 0, len))
        e.name = g_strdup("/"); /* a NUL in a name: dropped as impossible (counted) */
    else
        e.name = g_strndup((const char *)name, len);
    e.ino = ino;
    e.type = t;
    g_array_append_val(out, e);
    return TRUE;
}

static int shortform_dir(const xfs_info *x, const uint8_t *p, size_t n, GArray *out, GError **err)
{
    if (n < 6) {
        bad(err, "a short folder");
        return -1;
    }
    unsigned count = p[0], i8 = p[1];
    size_t isz = i8 ? 8 : 4;
    size_t at = 2 + isz;
    if (at > n) {
        bad(err, "a short folder");
        return -1;
    }
    for (unsigned i = 0; i < count; i++) {
        if (at + 3 > n) {
            bad(err, "a short folder runs past its inode");
            return -1;
        }
        unsigned len = p[at];
        size_t need = 3 + len + (x->ftype ? 1 : 0) + isz;
        if (len == 0 || at + need > n) {
            bad(err, "a short folder runs past its inode");
            return -1;
        }
        const uint8_t *name = p + at + 3;
        uint8_t ft = x->ftype ? name[len] : 0;
        const uint8_t *ip = name + len + (x->ftype ? 1 : 0);
        uint64_t ino = i8 ? be64(ip) : be32(ip);
        if (!add_entry(out, name, len, ino, dir_ftype(ft), err))
            return -1;
        at += need;
    }
    return 0;
}

/* the entries of one directory data block */
static int data_block(const xfs_info *x, const uint8_t *b, GArray *out, GError **err)
{
    size_t hdr = x->v5 ? 64 : 16;
    size_t end = x->dirblksize;
    gboolean block_form;
    if (memcmp(b, x->v5 ? "XDB3" : "XD2B", 4) == 0)
        block_form = TRUE;
    else if (memcmp(b, x->v5 ? "XDD3" : "XD2D", 4) == 0)
        block_form = FALSE;
    else if (memcmp(b, x->v5 ? "XDF3" : "XD2F", 4) == 0 || memcmp(b, x->v5 ? "XDL3" : "XD2L", 4) == 0)
        return 0; /* free-space or leaf block: no names */
    else {
        bad(err, "a folder block has no known header");
        return -1;
    }
    if (block_form) {
        uint32_t leaves = be32(b + end - 8);
        if ((uint64_t)leaves * 8 + 8 > end - hdr) {
            bad(err, "a folder block's tail");
            return -1;
        }
        end -= 8 + (size_t)leaves * 8;
    }
    size_t at = hdr;
    while (at + 8 <= end) {
        if (be16(b + at) == 0xffff) {
            size_t len = be16(b + at + 2);
            if (len < 8 || len % 8 || at + len > end) {
                bad(err, "a free entry of a folder block");
                return -1;
            }
            at += len;
            continue;
        }
        uint64_t ino = be64(b + at);
        unsigned len = b[at + 8];
        size_t raw = 8 + 1 + len + (x->ftype ? 1 : 0) + 2;
        size_t size = (raw + 7) & ~(size_t)7;
        if (len == 0 || at + size > end) {
            bad(err, "an entry of a folder block");
            return -1;
        }
        const uint8_t *name = b + at + 9;
        uint8_t ft = x->ftype ? name[len] : 0;
        if (!add_entry(out, name, len, ino, dir_ftype(ft), err))
            return -1;
        at += size;
    }
    return 0;
}

/* n bytes at the logical offset lo of a file through its (sorted) extents:
 * 1 when every byte is mapped, 0 when some fall in a hole, -1 with err */
static int read_logical(vma_fs *fs, const GArray *ext, uint64_t lo, uint8_t *buf, size_t n,
                        GError **err)
{
    size_t got = 0;
    for (guint j = 0; j < ext->len && got < n; j++) {
        const vma_extent_map *f = &g_array_index(ext, vma_extent_map, j);
        uint64_t want = lo + got;
        if (f->loff + f->len <= want)
            continue;
        if (f->loff > want)
            return 0;
        size_t take = (size_t)MIN((uint64_t)(n - got), f->loff + f->len - want);
        if (vma_volume_read_exact(fs->v, buf + got, take, f->phys + (want - f->loff),
                                  "a folder block", err) < 0)
            return -1;
        got += take;
    }
    return got == n ? 1 : 0;
}

static int x_readdir(vma_fs *fs, uint64_t ino, GArray *out, GError **err)
{
    const xfs_info *x = fs->priv;
    uint8_t in[2048];
    if (read_inode(fs, ino, in, err) < 0)
        return -1;
    if (vma_mode_type(be16(in + 2)) != VMA_FT_DIR) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_NOT_FOUND, "not a folder");
        return -1;
    }
    const uint8_t *p;
    size_t n;
    if (!data_fork(x, in, &p, &n)) {
        bad(err, "a folder inode's forks");
        return -1;
    }
    if (in[5] == FMT_LOCAL)
        return shortform_dir(x, p, n, out, err);
    /* the data blocks: below 32 GiB of the directory's offsets */
    GArray *ext = g_array_new(FALSE, FALSE, sizeof(vma_extent_map));
    int rc = -1;
    if (data_extents(fs, in, XFS_DIR2_LEAF_OFFSET, ext, err) < 0 ||
        !vma_extents_check(ext, vma_volume_size(fs->v), err))
        goto out;
    uint8_t *blk = g_malloc(x->dirblksize);
    rc = 0;
    uint64_t next = 0;    /* the directory offset read up to */
    unsigned blocks = 0;
    for (guint i = 0; i < ext->len && rc == 0; i++) {
        const vma_extent_map *e = &g_array_index(ext, vma_extent_map, i);
        uint64_t lo = e->loff - e->loff % x->dirblksize;
        for (lo = MAX(lo, next); lo < e->loff + e->len && rc == 0; lo += x->dirblksize) {
            next = lo + x->dirblksize;
            if (++blocks > MAX_DIR_BLOCKS) {
                g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the folder is too large (damaged?)");
                rc = -1;
                break;
            }
            int r = read_logical(fs, ext, lo, blk, x->dirblksize, err);
            if (r < 0)
                rc = -1;
            else if (r == 1)
                rc = data_block(x, blk, out, err);
        }
    }
    g_free(blk);
out:
    g_array_free(ext, TRUE);
    return rc;
}

/* ---- links and content ---- */

static char *x_readlink(vma_fs *fs, uint64_t ino, const vma_stat *st, GError **err)
{
    const xfs_info *x = fs->priv;
    uint8_t in[2048];
    if (read_inode(fs, ino, in, err) < 0)
        return NULL;
    size_t size = (size_t)st->size;
    if (size == 0 || size > MAX_SYMLINK) {
        bad(err, "a symbolic link's length");
        return NULL;
    }
    const uint8_t *p;
    size_t n;
    if (!data_fork(x, in, &p, &n)) {
        bad(err, "a link inode's forks");
        return NULL;
    }
    if (in[5] == FMT_LOCAL) {
        if (size > n) {
            bad(err, "a symbolic link runs past its inode");
            return NULL;
        }
        return g_strndup((const char *)p, size);
    }
    GArray *ext = g_array_new(FALSE, FALSE, sizeof(vma_extent_map));
    char *t = NULL;
    if (data_extents(fs, in, (uint64_t)x->bs * 2 + size, ext, err) < 0 ||
        !vma_extents_check(ext, vma_volume_size(fs->v), err))
        goto out;
    /* the blocks in order; v5 blocks start with a 56-byte header */
    GString *s = g_string_new(NULL);
    uint8_t *blk = g_malloc(x->bs);
    size_t hdr = x->v5 ? 56 : 0;
    for (guint i = 0; i < ext->len && s->len < size; i++) {
        const vma_extent_map *e = &g_array_index(ext, vma_extent_map, i);
        for (uint64_t o = 0; o < e->len && s->len < size; o += x->bs) {
            if (vma_volume_read_exact(fs->v, blk, x->bs, e->phys + o, "a link block", err) < 0) {
                g_string_free(s, TRUE);
                s = NULL;
                break;
            }
            if (x->v5 && memcmp(blk, "XSLM", 4) != 0) {
                bad(err, "a symbolic link block");
                g_string_free(s, TRUE);
                s = NULL;
                break;
            }
            g_string_append_len(s, (const char *)blk + hdr, (gssize)MIN(x->bs - hdr, size - s->len));
        }
        if (!s)
            break;
    }
    g_free(blk);
    if (s && s->len == size)
        t = g_string_free(s, FALSE);
    else if (s) {
        g_string_free(s, TRUE);
        bad(err, "a symbolic link's blocks are missing");
    }
out:
    g_array_free(ext, TRUE);
    return t;
}

static int x_content(vma_fs *fs, uint64_t ino, const vma_stat *st, vma_content *c, GError **err)
{
    const xfs_info *x = fs->priv;
    uint8_t in[2048];
    if (read_inode(fs, ino, in, err) < 0)
        return -1;
    if (in[5] == FMT_LOCAL) {
        const uint8_t *p;
        size_t n;
        if (!data_fork(x, in, &p, &n) || st->size > n) {
            bad(err, "a file kept in its inode");
            return -1;
        }
        /* a small file kept in the inode itself (local format) */
        vma_content_bytes(c, g_memdup2(p, (gsize)st->size), (size_t)st->size);
        return 0;
    }
    return vma_content_extents(c, data_extents, fs, in, st->size, err);
}

const vma_fs_ops vma_fs_xfs_ops = {
    .name = "xfs", .open = x_open, .stat = x_stat, .readdir = x_readdir,
    .readlink = x_readlink, .content = x_content, .close = x_close,
};
