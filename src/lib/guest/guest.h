/* guest.h - the guest layer of libvma: volumes over an archive's disks
 * (volume.c), partition tables (parts.c), what a volume holds (probe.c),
 * LVM2 physical volumes (lvm.c), and the file systems inside: the common
 * part (fs.c: folders kept, paths, walks, files read through their
 * extents), ext2/3/4 and XFS read here (fs_ext.c, fs_xfs.c), the other
 * file systems through The Sleuth Kit (fs_tsk.c).  Built on the access
 * layer.  Not part of the API (that is vma.h). */
#ifndef VMA_GUEST_H
#define VMA_GUEST_H

#include "access/access.h"
#include "base/base.h"

/* little-endian helpers (every guest format but XFS) */
static inline uint16_t g_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t g_le32(const uint8_t *p) { return vma_get_le32(p); }
static inline uint64_t g_le64(const uint8_t *p)
{
    return (uint64_t)vma_get_le32(p) | (uint64_t)vma_get_le32(p + 4) << 32;
}

/* read exactly n bytes at off of v: 0, or -1 with err (VMA_ERR_FORMAT
 * "what ends early" when the volume is shorter) */
int vma_volume_read_exact(vma_volume *v, void *buf, size_t n, uint64_t off, const char *what,
                          GError **err);

/* a GUID (mixed endian, as GPT and NTFS store it) as text: 37 bytes */
void vma_guid_format(const uint8_t g[16], char out[37]);

/* ---- file systems ---- */

/* One extent of a file: [loff, loff + len) of the file is at phys in the
 * volume, or a hole (phys VMA_EXTENT_HOLE: zeros, not stored). */
#define VMA_EXTENT_HOLE UINT64_MAX
typedef struct {
    uint64_t loff;
    uint64_t len;
    uint64_t phys;
} vma_extent_map;

/* what a file system reader gives for a file's content: either the extents
 * (sorted, not overlapping; what none covers is a hole), or a read function
 * of its own (TSK's for resident, compressed, FAT files) */
typedef struct {
    GArray *extents;      /* of vma_extent_map, or NULL */
    /* when extents is NULL: read n bytes at off (off + n <= size), -1 with err */
    ssize_t (*read)(void *ctx, void *buf, size_t n, uint64_t off, GError **err);
    void (*close)(void *ctx);
    void *ctx;
} vma_content;
/* the type of a POSIX mode's file (ext, XFS: the same bits) */
vma_ftype vma_mode_type(uint32_t mode);
/* VMA_ERR_FORMAT "the NAME file system is damaged: WHAT" */
void vma_fs_damaged(GError **err, const char *name, const char *what);
/* the superblock of NAME, len bytes at off of the file system's volume */
int vma_fs_read_super(vma_fs *fs, void *sb, size_t len, uint64_t off, const char *name,
                      GError **err);

/* a content held in memory (a file kept in its inode): c reads data, and
 * frees it when closed */
void vma_content_bytes(vma_content *c, uint8_t *data, size_t len);
/* a content read by a function of the reader's own (TSK's) */
void vma_content_reader(vma_content *c, ssize_t (*read)(void *, void *, size_t, uint64_t, GError **),
                        void (*close)(void *), void *ctx);
/* a content of extents, which fill lists from the inode in (size bytes of
 * file); 0, or -1 with err (c left empty) */
typedef int (*vma_extents_fill_fn)(vma_fs *fs, const uint8_t *in, uint64_t size, GArray *out,
                                   GError **err);
int vma_content_extents(vma_content *c, vma_extents_fill_fn fill, vma_fs *fs, const uint8_t *in,
                        uint64_t size, GError **err);

typedef struct {
    const char *name;
    /* set fs->root, fs->label, fs->case_insensitive; fs->priv */
    int (*open)(vma_fs *fs, GError **err);
    int (*stat)(vma_fs *fs, uint64_t ino, vma_stat *st, GError **err);
    /* append every entry (names g_strdup'ed, "." and ".." included or not)
     * to out, an array of vma_dirent */
    int (*readdir)(vma_fs *fs, uint64_t ino, GArray *out, GError **err);
    char *(*readlink)(vma_fs *fs, uint64_t ino, const vma_stat *st, GError **err);
    /* the content of a regular file (or link) whose stat is st */
    int (*content)(vma_fs *fs, uint64_t ino, const vma_stat *st, vma_content *c, GError **err);
    void (*close)(vma_fs *fs);
} vma_fs_ops;

struct vma_fs {
    gint refs;
    const vma_fs_ops *ops;
    vma_volume *v;
    char type[16];
    char *label;
    uint64_t root;
    gboolean case_insensitive;
    void *priv;
    /* the folders read (fs.c) */
    vma_mutex lock;
    GHashTable *dirs;     /* ino -> vma_dir */
    size_t dir_names;     /* entries kept in dirs */
};

extern const vma_fs_ops vma_fs_tsk_ops;
extern const vma_fs_ops vma_fs_ext_ops;
extern const vma_fs_ops vma_fs_xfs_ops;

/* the extents of an ext4 inode's extent tree (i_block, 60 bytes): into out,
 * each checked to lie inside the volume (block_size, blocks: the file
 * system's).  0, or -1 with err.  (fs_ext.c) */
int vma_ext4_extents(vma_volume *v, const uint8_t iblock[60], uint32_t block_size,
                     uint64_t blocks, uint64_t file_size, GArray *out, GError **err);
/* the same for an ext2/3 block map (12 direct, 3 indirect pointers) */
int vma_ext2_blockmap(vma_volume *v, const uint32_t iblock[15], uint32_t block_size,
                      uint64_t blocks, uint64_t file_size, GArray *out, GError **err);
/* append an extent, merging it with the last when they touch; FALSE (with
 * err) when there would be more than VMA_MAX_EXTENTS */
#define VMA_MAX_EXTENTS (4u << 20)
gboolean vma_extent_add(GArray *out, uint64_t loff, uint64_t len, uint64_t phys, GError **err);
/* sort by loff and check that no two overlap: FALSE with err */
gboolean vma_extents_check(GArray *ext, uint64_t vol_size, GError **err);

#endif
