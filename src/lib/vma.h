/* vma.h - the VMA archive format: reader, restore engine, writer.
 *
 * The public interface of libvma, the C core of the vma tool.  It knows
 * nothing of Lua; the binding (lvma.c) and the C tests use only this header.
 *
 * Conventions: functions that can fail take a GError ** last and return
 * NULL / -1 / FALSE on failure with the error set (domain VMA_ERROR).  Nothing
 * in the library aborts or exits on bad input.
 */
#ifndef VMA_H
#define VMA_H

#include <glib.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#define VMA_BLOCK_SIZE          4096u
#define VMA_CLUSTER_SIZE        65536u
#define VMA_BLOCKS_PER_CLUSTER  16u
#define VMA_EXTENT_HEADER_SIZE  512u
#define VMA_SLOTS_PER_EXTENT    59u
#define VMA_MAX_EXTENT_DATA     (VMA_SLOTS_PER_EXTENT * VMA_CLUSTER_SIZE)
#define VMA_HEADER_FIXED_SIZE   12288u
#define VMA_MAX_CONFIGS         256u
#define VMA_MAX_CONFIG_SIZE     65535u
#define VMA_MAX_DEV_ID          255u   /* readers accept 1..255 */
#define VMA_MAX_WRITER_DEVICES  254u   /* writers use 1..254 */
/* cluster numbers are 32 bits: no device can be larger than this */
#define VMA_MAX_DEVICE_SIZE     ((uint64_t)1 << 48)
/* longest config or device name (with its NUL) that this tool accepts */
#define VMA_MAX_NAME_SIZE       256u
/* the largest header with every config full and every name at its longest:
 * 256 configs of name + content, 255 device names, blob offset 0, padding */
#define VMA_MAX_HEADER_SIZE     ((VMA_HEADER_FIXED_SIZE + \
                                  256u * (2u + VMA_MAX_NAME_SIZE + 2u + VMA_MAX_CONFIG_SIZE) + \
                                  255u * (2u + VMA_MAX_NAME_SIZE) + 1u + 511u) / 512u * 512u)

#define VMA_ERROR (vma_error_quark())
GQuark vma_error_quark(void);

typedef enum {
    VMA_ERR_IO = 1,       /* read/write/open failed (errno in the message) */
    VMA_ERR_FORMAT,       /* the archive breaks a rule of the format */
    VMA_ERR_INCOMPLETE,   /* the archive ends early or misses clusters */
    VMA_ERR_ARG,          /* the caller passed something invalid */
    VMA_ERR_INTERRUPTED,  /* vma_interrupt() was called */
    VMA_ERR_NOT_SEEKABLE, /* random access to an archive that is only a stream */
    VMA_ERR_MISSING,      /* data that the archive does not hold (EIO) */
    VMA_ERR_NOT_FOUND,    /* no such file or folder in a guest file system */
} VmaErrorCode;

/* ---- archive metadata ------------------------------------------------- */

typedef struct {
    char *name;
    uint8_t *data;
    size_t len;
} vma_config;

typedef struct {
    uint8_t id;          /* 1..255 */
    char *name;
    uint64_t size;       /* bytes, as recorded */
    gboolean is_vmstate; /* the device named "vmstate": RAM state, not a disk */
} vma_device;

typedef struct {
    uint8_t uuid[16];
    int64_t ctime;
    unsigned n_configs;
    vma_config configs[VMA_MAX_CONFIGS];
    unsigned n_devices;
    vma_device *devices[VMA_MAX_DEV_ID + 1]; /* by dev_id; NULL = none */
    uint32_t header_size;
} vma_header;

/* a name is safe to use as a file name component: not empty, no '/', not
 * "." or "..", no control characters, valid UTF-8, at most 255 bytes */
gboolean vma_name_is_safe(const char *name, GError **err);

/* The device a user means by name, the one rule of every front end (the
 * command line, the nbdkit plugin, vma-fuse, the Lua module): the exact
 * device name first; else the device "drive-NAME" (the config key: "scsi0"
 * for "drive-scsi0"), or for "tpmstateN" also "drive-tpmstateN-backup", as
 * vzdump names it.  Two devices that the short name may mean are an error
 * that names both; no match an error that lists the names.  disks_only
 * leaves the vmstate out.  NULL with VMA_ERR_ARG on failure. */
const vma_device *vma_header_find_device(const vma_header *h, const char *name,
                                         gboolean disks_only, GError **err);

/* the number of 64 KiB clusters needed to hold size bytes */
static inline uint64_t vma_clusters(uint64_t size)
{
    return (size + VMA_CLUSTER_SIZE - 1) / VMA_CLUSTER_SIZE;
}

/* TRUE when len bytes (a multiple of 16 is fastest) are all zero */
gboolean vma_is_zero(const void *buf, size_t len);

/* MD5 via libcrypto; FALSE when libcrypto failed */
gboolean vma_md5(const void *data, size_t len, uint8_t out[16]);

/* format the uuid as 8-4-4-4-12 lowercase hex (37 bytes with NUL) */
void vma_uuid_format(const uint8_t uuid[16], char out[37]);

/* Set from a signal handler: every long loop of the library stops at the
 * next extent with VMA_ERR_INTERRUPTED.  Async-signal-safe. */
void vma_interrupt(void);
void vma_interrupt_clear(void);
gboolean vma_interrupted(void);

/* ---- compression ------------------------------------------------------- */

typedef enum {
    VMA_COMPRESS_NONE = 0,
    VMA_COMPRESS_ZSTD,
    VMA_COMPRESS_GZIP,
    VMA_COMPRESS_LZO,
} vma_compress;
#define VMA_N_CODECS 4

/* The one table of codecs (codec/codecs.c): every layer that detects,
 * names, checks or writes a compression reads it, and the Lua module
 * exports it as vma.codecs. */
typedef struct {
    vma_compress id;
    const char *name;            /* "zstd" */
    const char *suffix;          /* what follows ".vma" in a file name: ".zst" */
    const char *const *aliases;  /* other names accepted for it, NULL-ended */
    const uint8_t *magic;        /* the first bytes of such a stream (none: NULL) */
    size_t magic_len;
    int level_min, level_max, level_default; /* all 0: takes no level */
    int max_threads;             /* compression threads it can use (1: one) */
} vma_codec;

/* by id (NULL for an unknown id); by name or alias; by the first bytes of
 * a stream (len bytes; the codec "none" when no magic matches) */
const vma_codec *vma_codec_get(vma_compress c);
const vma_codec *vma_codec_by_name(const char *name);
const vma_codec *vma_codec_by_magic(const uint8_t *buf, size_t len);

const char *vma_compress_name(vma_compress c);
/* a codec's name or alias ("zst", "gz", "lzop", "raw"...); -1 if unknown */
int vma_compress_from_name(const char *name);
/* the levels a codec takes and its default (level 0 means the default);
 * FALSE (all 0) for none, which takes no level */
gboolean vma_compress_levels(vma_compress c, int *min, int *max, int *def);
/* a level (0 or in the codec's range) and a thread count (0 = one per core,
 * up to VMA_MAX_THREADS) that vma_writer_opts may hold; VMA_ERR_ARG otherwise */
#define VMA_MAX_THREADS 256
gboolean vma_compress_check(vma_compress c, int level, int threads, GError **err);

/* ---- reader ------------------------------------------------------------ */

typedef struct vma_reader vma_reader;

/* Open an archive by path ("-" = standard input).  Compression (zstd, gzip,
 * lzop) is detected from the magic bytes.  Reads and validates the header
 * only; the extents are read by vma_reader_next() or vma_restore(). */
vma_reader *vma_reader_open(const char *path, GError **err);
/* the same on an open descriptor; the reader owns fd from then on */
vma_reader *vma_reader_open_fd(int fd, GError **err);
void vma_reader_free(vma_reader *r);

const vma_header *vma_reader_header(const vma_reader *r);
const vma_config *vma_reader_find_config(const vma_reader *r, const char *name);
const vma_device *vma_reader_find_device(const vma_reader *r, const char *name);
vma_compress vma_reader_compression(const vma_reader *r);

typedef struct {
    uint8_t dev_id;
    uint32_t cluster;
    uint16_t mask;        /* bit j set: block j stored; clear: all zero */
    const uint8_t *data;  /* popcount(mask) * 4096 bytes, in block order
                             (NULL when the reader skips the data) */
    uint64_t data_offset; /* where those bytes lie in the (decompressed) archive */
} vma_slot;

typedef struct {
    uint64_t offset;      /* archive offset of the extent header */
    unsigned block_count;
    unsigned n_slots;     /* non-empty slots only */
    vma_slot slots[VMA_SLOTS_PER_EXTENT];
} vma_extent;

/* Read the next extent and check every rule that concerns it (checksum,
 * magic, uuid, block count, known device, no cluster past the end, no
 * duplicate cluster, vmstate in order).  Returns 1 with *ext filled (the
 * data stays valid until the next call), 0 at the end of the archive once
 * the end-of-archive rules passed (no missing cluster), -1 on error. */
int vma_reader_next(vma_reader *r, vma_extent *ext, GError **err);

/* the bytes of the header as read, and of the extent last returned by
 * vma_reader_next() (header and data; not with vma_reader_skip_data), for
 * copying an archive without decoding it again */
const uint8_t *vma_reader_raw_header(const vma_reader *r, size_t *len);
const uint8_t *vma_reader_raw_extent(const vma_reader *r, const vma_extent *ext, size_t *len);

/* bytes consumed from the (decompressed) archive so far */
uint64_t vma_reader_offset(const vma_reader *r);

/* a range [start, end) of cluster numbers */
typedef void (*vma_gap_fn)(uint64_t start, uint64_t end, void *ud);
/* damage met in salvage mode: at this archive offset, what was wrong */
typedef void (*vma_damage_fn)(uint64_t offset, const char *what, void *ud);

/* Missing clusters of this device are not an error at the end (a device
 * that is not restored need not be complete). */
void vma_reader_set_optional(vma_reader *r, uint8_t dev_id, gboolean optional);
/* Salvage mode: a bad extent is reported to fn and skipped (the reader goes
 * on at the next valid extent header), a bad slot is dropped, a cut or
 * undecodable archive ends where it breaks; the end is never an error.  A
 * read that fails (VMA_ERR_IO) or an interrupt is no damage: it fails, also
 * while the reader looks for the next extent header.
 * What is missing is then asked with vma_reader_foreach_missing(). */
void vma_reader_set_salvage(vma_reader *r, vma_damage_fn fn, void *ud);
uint64_t vma_reader_damage_events(const vma_reader *r);
/* the clusters of a disk not seen so far, as ranges */
void vma_reader_foreach_missing(const vma_reader *r, uint8_t dev_id, vma_gap_fn fn, void *ud);
uint64_t vma_reader_missing(const vma_reader *r, uint8_t dev_id);
gboolean vma_reader_has_cluster(const vma_reader *r, uint8_t dev_id, uint32_t cluster);
/* decode and check extents but skip their data (slot data stays NULL) */
void vma_reader_skip_data(vma_reader *r, gboolean skip);

/* ---- restore engine ---------------------------------------------------- */

/* a target that is not a descriptor (an RBD image, say) */
typedef struct {
    /* write the pieces at off (iov may be modified); 0 or -1 with err.  The
     * data may be reused once the call returns. */
    int (*pwritev)(void *ctx, struct iovec *iov, int n, uint64_t off, GError **err);
    /* make [off, off + len) read as zeros */
    int (*zero)(void *ctx, uint64_t off, uint64_t len, GError **err);
    /* everything written so far is durable */
    int (*flush)(void *ctx, GError **err);
} vma_sink_ops;

typedef struct {
    int fd;               /* a file or block device; -1: see ops */
    const vma_sink_ops *ops; /* with fd -1: write through these; NULL: check only */
    void *ctx;
    const char *label;    /* the target in messages (a path), or NULL */
    gboolean write_zero;  /* write zeros for zero blocks (old data in target) */
    gboolean fresh;       /* new and all zero: holes for zeros (a file is sized) */
    gboolean clear_data;  /* a regular file that may hold data where the archive
                             has zero blocks: there, and only where the file
                             holds data (SEEK_DATA), a hole is punched
                             (KEEP_SIZE), or zeros written where the file
                             system cannot punch */
    uint64_t bps;         /* throttle in bytes per second, 0 = unlimited */
} vma_target;

typedef struct {
    uint64_t clusters_total;     /* clusters of all devices (from the header) */
    uint64_t clusters_done;      /* clusters read so far */
    uint64_t bytes_archive;      /* archive bytes consumed */
    uint64_t bytes_written;      /* bytes written to targets (data + zeros) */
    uint64_t zero_bytes;         /* device bytes that are zero (clamped) */
    uint64_t partial_zero_bytes; /* zero blocks inside non-zero clusters */
    uint64_t vmstate_bytes;      /* length of the vmstate stream restored */
    double elapsed;              /* seconds since the start */
} vma_stats;

/* return non-zero to abort the restore (it fails with VMA_ERR_INTERRUPTED) */
typedef int (*vma_progress_fn)(const vma_stats *st, void *ud);

/* Read every extent of r and write it to targets[dev_id] (NULL entries,
 * and fd -1 without ops, mean: check only).  Targets are written at their offsets,
 * truncated at the device size; runs of blocks are coalesced; fresh targets
 * get holes for zero blocks.  Every target is fsynced before success.
 * progress (may be NULL) is called after each extent. */
int vma_restore(vma_reader *r, vma_target *const targets[VMA_MAX_DEV_ID + 1],
                vma_progress_fn progress, void *ud, vma_stats *stats,
                GError **err);


/* ---- writer ------------------------------------------------------------ */

typedef struct vma_writer vma_writer;

typedef struct {
    const uint8_t *uuid;    /* NULL: a new random uuid */
    int64_t ctime;          /* -1: now */
    vma_compress compress;
    int level;              /* compression level, 0 = default (see vma_compress_levels) */
    int threads;            /* compression threads, 0 = one per core;
                               the archive's bytes do not depend on it */
    gboolean overwrite;     /* replace an existing archive */
    gboolean canonical;     /* vma_writer_write_fd/_source lay out every device the same
                               way whatever holes its image has: an extent for each 59
                               clusters from cluster 0 (the last fewer), so that the same
                               content gives the same bytes (vma create --stable) */
} vma_writer_opts;

/* Create an archive at path ("-" = standard output).  A file is written
 * under a temporary name in the same folder and renamed to path only by a
 * successful vma_writer_close(); an existing path is refused unless
 * opts->overwrite. */
vma_writer *vma_writer_create(const char *path, const vma_writer_opts *opts,
                              GError **err);
/* write to fd (not closed by the writer) */
vma_writer *vma_writer_new_fd(int fd, const vma_writer_opts *opts, GError **err);

int vma_writer_add_config(vma_writer *w, const char *name, const void *data,
                          size_t len, GError **err);
/* returns the dev_id (1..254); size is recorded rounded up to 512 */
int vma_writer_add_device(vma_writer *w, const char *name, uint64_t size,
                          GError **err);

/* Write one cluster of dev_id; data is 65536 bytes or NULL for all zero.
 * Each cluster of a disk must be written exactly once; vmstate clusters in
 * order.  The header is written before the first cluster; no config or
 * device can be added after that. */
int vma_writer_write_cluster(vma_writer *w, uint8_t dev_id, uint32_t cluster,
                             const uint8_t *data, GError **err);

typedef struct {
    uint64_t size;        /* device size */
    uint64_t done;        /* bytes of the device processed */
    uint64_t zero_bytes;  /* of which zero (not stored) */
    uint64_t total_done;  /* bytes processed in this archive, all devices */
    double elapsed;
} vma_write_progress;
typedef int (*vma_write_progress_fn)(const vma_write_progress *p, void *ud);

/* Write every cluster of dev_id from fd (a file or block device), skipping
 * holes without reading them (SEEK_DATA/SEEK_HOLE).  label names the image
 * in messages (its path; NULL: "the image of 'NAME'").  A failure to write
 * the archive names the archive. */
int vma_writer_write_fd(vma_writer *w, uint8_t dev_id, int fd, const char *label,
                        vma_write_progress_fn progress, void *ud, GError **err);

/* an image that is not a descriptor (an RBD snapshot, say); the writer
 * calls it from a thread of its own */
typedef struct {
    /* the first data at or after off: 1 with [*start, *end) holding data
     * (start may lie before off), 0 when only zeros follow, -1 with err */
    int (*next_data)(void *ctx, uint64_t off, uint64_t *start, uint64_t *end, GError **err);
    /* read n bytes at off: the count read (less only at the image's end),
     * or -1 with err */
    ssize_t (*pread)(void *ctx, void *buf, size_t n, uint64_t off, GError **err);
} vma_source_ops;

typedef struct {
    const vma_source_ops *ops;
    void *ctx;
    uint64_t size;        /* bytes of the image */
    const char *label;    /* the image in messages */
} vma_source;

int vma_writer_write_source(vma_writer *w, uint8_t dev_id, const vma_source *src,
                            vma_write_progress_fn progress, void *ud, GError **err);

typedef struct {
    uint64_t size;
    uint64_t zero_bytes;
    uint64_t clusters;
} vma_device_stats;
void vma_writer_device_stats(const vma_writer *w, uint8_t dev_id,
                             vma_device_stats *out);
void vma_writer_uuid(const vma_writer *w, uint8_t out[16]);

/* Copy the archive that r reads (nothing read of it yet), extent by extent
 * and with every rule of the reader checked, into the empty writer w: the
 * new archive holds the same bytes, compressed as w compresses them (as
 * `vma recompress` does).  vma_writer_close() then finishes it. */
int vma_writer_copy(vma_writer *w, vma_reader *r, vma_progress_fn progress, void *ud,
                    GError **err);

/* Flush, check that every cluster of every disk was written, fsync, and
 * rename into place.  Returns 0 or -1.  The writer must still be freed. */
int vma_writer_close(vma_writer *w, GError **err);
/* Free; if not successfully closed, the temporary file is removed. */
void vma_writer_free(vma_writer *w);

/* ---- the archive: one handle, every view (access/) ---------------------- */

/* One open archive: its file (never opened again by path), its identity
 * and its header.  Opening reads the header only.  From it come a stream
 * for one pass (verify, extract, copy) and reads at any offset of any
 * device: a plain .vma or a seekable .vma.zst through the index of its
 * extents (one pass over their headers, or the cache); any other archive
 * (vzdump's one-stream .vma.zst, .vma.gz, .vma.lzo, standard input)
 * through a copy that a background decoder makes, at once: a read of what
 * it has decoded is answered, a read ahead of it waits for it.  Reads are
 * safe from several threads. */
typedef struct vma_archive vma_archive;

typedef enum {
    VMA_PIECE_DATA = 0,   /* stored blocks: data_offset tells where */
    VMA_PIECE_ZERO,       /* zero blocks (not stored) */
    VMA_PIECE_MISSING,    /* clusters the archive does not hold (incomplete) */
} vma_piece_kind;

typedef struct {
    vma_piece_kind kind;
    uint64_t offset;      /* in the device */
    uint64_t length;
    uint64_t data_offset; /* DATA: in the (decompressed) archive */
} vma_piece;
/* return non-zero to stop the walk */
typedef int (*vma_piece_fn)(const vma_piece *p, void *ud);
/* bytes of the archive indexed so far; non-zero stops */
typedef int (*vma_index_progress_fn)(uint64_t done, uint64_t total, void *ud);

/* what a read that waits for the background decoder waits for (the
 * function returns non-zero to stop waiting: the read fails as interrupted) */
typedef struct {
    uint64_t input_done;  /* bytes of the archive file decoded so far */
    uint64_t input_total; /* its size */
    uint64_t stream_done; /* decompressed bytes so far */
    double seconds;       /* since the decoder started */
    const char *device;   /* what the read wants (NULL: the whole copy) */
    uint64_t offset;
    double eta;           /* seconds until the decoder gets there (a guess; < 0: unknown) */
    gboolean other_process; /* another vma makes the copy: this one waits for it */
} vma_wait_info;
/* called about every 0.2 s, from the thread whose read waits */
typedef int (*vma_wait_fn)(const vma_wait_info *w, void *ud);

typedef enum {
    VMA_CACHE_AUTO = 0,   /* use the cache; keep an index when it was slow to make */
    VMA_CACHE_ON,         /* always keep the index */
    VMA_CACHE_OFF,        /* no cache: neither read nor written (a decoded copy is an
                             unlinked file that goes with the process) */
} vma_cache_mode;

typedef struct {
    vma_cache_mode cache;
    const char *cache_dir;           /* NULL: vma_cache_dir() */
    uint64_t frame_cache;            /* seekable zstd: bytes of decompressed frames
                                        kept (0: 64 MiB) */
    int64_t spill;                   /* seekable zstd: bytes of frames, read out of
                                        order, kept decoded in an unlinked file
                                        (0: 4 GiB, at most half the space free
                                        there; < 0: none) */
    const char *spill_dir;           /* NULL: $TMPDIR, else /var/tmp (also where a
                                        copy goes without a cache) */
    vma_index_progress_fn progress;  /* while indexing, may be NULL */
    void *ud;
    vma_wait_fn wait;                /* while a read waits for the decoder, may be NULL */
    void *wait_ud;
    GDestroyNotify wait_ud_free;     /* frees wait_ud with the archive (or at once
                                        when the open fails), may be NULL */
} vma_archive_opts;

/* path "-": standard input.  opts may be NULL (the defaults); its strings
 * are copied. */
vma_archive *vma_archive_open(const char *path, const vma_archive_opts *opts, GError **err);
/* the same on a descriptor, which the archive owns from then on; label
 * names it in messages */
vma_archive *vma_archive_open_fd(int fd, const char *label, const vma_archive_opts *opts,
                                 GError **err);
/* another reference: every view derived from an archive (a disk in Lua, a
 * guest file system, a volume) holds one; vma_archive_free drops one, and
 * the last frees it */
vma_archive *vma_archive_ref(vma_archive *a);
void vma_archive_free(vma_archive *a);

const vma_header *vma_archive_header(const vma_archive *a);
const vma_device *vma_archive_device(const vma_archive *a, uint8_t dev_id, GError **err);
vma_compress vma_archive_compression(const vma_archive *a);
const char *vma_archive_label(const vma_archive *a);
/* the header as read, and its MD5 (the field in the header) */
const uint8_t *vma_archive_raw_header(const vma_archive *a, size_t *len);
void vma_archive_header_md5(const vma_archive *a, uint8_t out[16]);
/* standard input or a pipe: one pass only, no cache */
gboolean vma_archive_is_stream(const vma_archive *a);
/* a plain .vma or a seekable .vma.zst (read at random without a copy) */
gboolean vma_archive_seekable(const vma_archive *a);

/* A reader for one pass over the whole archive (verify, extract, copy),
 * freed by the caller with vma_reader_free.  A stream can be had once;
 * a file as often as asked, each time the same file with the same header
 * (else VMA_ERR_FORMAT: it changed). */
vma_reader *vma_archive_stream(vma_archive *a, GError **err);

/* why random access to this archive is refused, when that is known
 * already (a seek table that is there but broken), else NULL */
const GError *vma_archive_random_error(vma_archive *a);

/* Make random access ready (the reads below do it themselves): the index
 * built or loaded, or the background decoder started. */
int vma_archive_prepare(vma_archive *a, GError **err);
/* the same, with the progress of the index pass when this call makes it */
int vma_archive_prepare_with(vma_archive *a, vma_index_progress_fn progress, void *ud,
                             GError **err);
/* wait until the decoded copy is complete (nothing to wait for with a
 * plain or seekable archive) */
int vma_archive_wait_complete(vma_archive *a, GError **err);
/* a copy made here with frames stored raw (the decoder outran the
 * compression) is compressed again once complete, by the decoder's thread,
 * while the process lives: wait for that too */
int vma_archive_wait_compacted(vma_archive *a, GError **err);

typedef struct {
    gboolean seekable;    /* read at random without a copy */
    gboolean ready;       /* random access is prepared */
    gboolean from_cache;  /* its index (and copy) came from the cache folder */
    gboolean decoding;    /* the background decoder runs */
    gboolean complete;    /* every cluster's place is known */
    uint64_t input_done, input_total, stream_done;
    double seconds;
    uint64_t index_memory;
} vma_access_status;
void vma_archive_status(vma_archive *a, vma_access_status *st);
gboolean vma_archive_from_cache(const vma_archive *a);
uint64_t vma_archive_index_memory(vma_archive *a);

/* the bytes a device holds: its size, or for vmstate the stream's length
 * (once known) */
uint64_t vma_archive_device_length(vma_archive *a, uint8_t dev_id);
/* read n bytes at off of a device: zeros for zero blocks, VMA_ERR_MISSING
 * for clusters the archive lacks; the count read (less only at the end) */
ssize_t vma_archive_pread(vma_archive *a, uint8_t dev_id, void *buf, size_t n, uint64_t off,
                          GError **err);
/* the pieces of [off, off + len) of a device, in order, each kind merged:
 * 0 when all were given, 1 when fn stopped, -1 with err */
int vma_archive_map(vma_archive *a, uint8_t dev_id, uint64_t off, uint64_t len,
                    vma_piece_fn fn, void *ud, GError **err);

/* ---- the cache folder (access/cache.c) ---- */

/* $VMA_CACHE_DIR, else $XDG_CACHE_HOME/vma, else ~/.cache/vma (NULL when
 * none is set); free with g_free */
char *vma_cache_dir(void);
/* the most the folder may hold: $VMA_CACHE_MB, else a quarter of its file
 * system */
uint64_t vma_cache_limit(const char *dir);
typedef struct {
    char key[33];         /* the archive's identity, hashed */
    char *archive;        /* the archive's path when the copy was made (or NULL) */
    char *codec;          /* its compression (or NULL) */
    uint64_t archive_size;
    uint64_t bytes;       /* on disk, every file of the key */
    int64_t last_used;    /* seconds since the epoch */
    uint64_t raw_frames;  /* frames of the copy stored uncompressed */
    gboolean has_index, has_data;
    gboolean partial;     /* a copy being made (or left by a killed decoder) */
    gboolean busy;        /* a process holds its lock */
} vma_cache_entry;
/* every key in the folder (an array of vma_cache_entry *, freed with
 * g_ptr_array_free); NULL with err when the folder cannot be read */
GPtrArray *vma_cache_list(const char *dir, GError **err);
/* remove every file of a key; a key whose copy is being made is refused
 * unless force */
int vma_cache_remove_key(const char *dir, const char *key, gboolean force, GError **err);
/* the key of an archive (its identity, hashed) */
const char *vma_archive_key(const vma_archive *a);

/* ---- the store: many archives at once (store/) ------------------------- */

/* What a catalog records of one archive (store/survey.c): one pass over it
 * (vma_archive_stream) with every rule of the reader checked.  Without
 * digests the data is skipped (a plain .vma is read at its extent headers
 * only); with digests every cluster of every disk is read and its digest
 * kept: 8 bytes, the big-endian XXH3-64 of the cluster's 64 KiB (zeros
 * where the archive has zero blocks), 0 for an all-zero cluster, all ones
 * for a cluster the archive lacks.  Missing clusters are not an error here:
 * they are counted. */
#define VMA_DIGEST_SIZE 8u

typedef struct {
    uint8_t dev_id;
    gboolean vmstate;
    uint64_t size;           /* as recorded */
    uint64_t clusters;       /* of the device (vmstate: the clusters seen) */
    uint64_t data_bytes;     /* bytes of stored 4 KiB blocks, inside the device */
    uint64_t zero_bytes;     /* bytes of zero blocks, inside the device */
    uint64_t missing_bytes;  /* bytes of clusters the archive lacks (disks) */
    uint64_t zero_clusters;  /* clusters all of whose blocks are zero */
    uint8_t *digests;        /* VMA_DIGEST_SIZE * clusters, or NULL (vmstate, or
                                without digests) */
} vma_survey_device;

typedef struct {
    unsigned n_devices;      /* in dev_id order */
    vma_survey_device devices[VMA_MAX_DEV_ID];
    uint64_t bytes_archive;  /* bytes of the (decompressed) archive read */
    double elapsed;
} vma_survey;

/* progress is called after each extent with clusters_done / clusters_total
 * (the disks'), bytes_archive and elapsed filled in; non-zero stops it */
int vma_archive_survey(vma_archive *a, gboolean digests, vma_progress_fn progress, void *ud,
                       vma_survey *out, GError **err);
void vma_survey_clear(vma_survey *s);

/* The clusters that differ between two disks (store/compare.c), compared
 * over the larger of the two sizes: a cluster past the end of one of them
 * differs.  fn gets each run of differing clusters as bytes (the last one
 * cut at that size), in order; it returns non-zero to stop (the call then
 * fails as interrupted). */
typedef int (*vma_range_fn)(uint64_t offset, uint64_t length, void *ud);
typedef struct {
    uint64_t length;          /* the larger size */
    uint64_t clusters;        /* of that length */
    uint64_t changed_clusters;
    uint64_t changed_bytes;   /* of the differing clusters, inside length */
    uint64_t ranges;          /* runs given to fn */
    uint64_t bytes_read;      /* of both disks (0 from digests) */
    double elapsed;
} vma_diff_stats;
/* by reading both (zero against zero is not read); progress gets bytes of
 * length compared */
int vma_archive_diff(vma_archive *a, uint8_t dev_a, vma_archive *b, uint8_t dev_b,
                     vma_range_fn fn, void *ud, vma_index_progress_fn progress, void *pud,
                     vma_diff_stats *st, GError **err);
/* from the digests of two surveys (na, nb clusters of disks of size_a,
 * size_b bytes); a missing cluster differs from everything */
int vma_digests_diff(const uint8_t *da, uint64_t na, uint64_t size_a,
                     const uint8_t *db, uint64_t nb, uint64_t size_b,
                     vma_range_fn fn, void *ud, vma_diff_stats *st, GError **err);

/* The digest of an image's content (store/image.c), 16 bytes (XXH3-128):
 * of the number and bytes of each cluster that is not all zero, so that
 * holes and written zeros give the same digest.  For `vma create
 * --stable`: the same disks give the same uuid. */
int vma_source_digest(const vma_source *src, uint8_t out[16], vma_write_progress_fn progress,
                      void *ud, GError **err);
/* the same of a regular file or a block device */
int vma_fd_digest(int fd, const char *label, uint8_t out[16], vma_write_progress_fn progress,
                  void *ud, GError **err);
/* ---- guest volumes and file systems (guest/) -------------------------- */

/* A volume: bytes of an archive's disks seen as one device: a whole disk, a
 * partition (a range of one), or an LVM logical volume (ranges of several
 * physical volumes, on one disk or several), laid end to end.  Every volume
 * holds a reference to its archive; reads are safe from several threads. */
typedef struct vma_volume vma_volume;

typedef struct {
    uint8_t dev_id;       /* the device of the archive */
    uint64_t offset;      /* where the range starts in the device */
    uint64_t length;      /* bytes */
} vma_segment;

/* the segments one after another (n >= 1, each inside its device, the
 * total at most VMA_MAX_DEVICE_SIZE) */
vma_volume *vma_volume_new(vma_archive *a, const vma_segment *segs, size_t n, GError **err);
/* a whole disk of the archive */
vma_volume *vma_volume_disk(vma_archive *a, uint8_t dev_id, GError **err);
/* [off, off + len) of v, which must lie inside it */
vma_volume *vma_volume_slice(vma_volume *v, uint64_t off, uint64_t len, GError **err);
vma_volume *vma_volume_ref(vma_volume *v);
void vma_volume_free(vma_volume *v);
uint64_t vma_volume_size(const vma_volume *v);
vma_archive *vma_volume_archive(const vma_volume *v);
const vma_segment *vma_volume_segments(const vma_volume *v, size_t *n);
/* as vma_archive_pread: the count read (less only at the end), -1 with err */
ssize_t vma_volume_pread(vma_volume *v, void *buf, size_t n, uint64_t off, GError **err);
/* the pieces of [off, off + len) (offsets in the volume, data_offset 0),
 * each kind merged: 0, 1 when fn stopped, -1 with err */
int vma_volume_map(vma_volume *v, uint64_t off, uint64_t len, vma_piece_fn fn, void *ud,
                   GError **err);

/* ---- partition tables (guest/parts.c) ---- */
typedef struct {
    unsigned number;      /* GPT: entry index + 1; MBR: 1-4 primary, 5... logical */
    uint64_t start;       /* bytes from the start of the volume */
    uint64_t length;      /* bytes (cut at the end of the volume: see truncated) */
    char type[40];        /* GPT: the type GUID (lowercase); MBR: "0x83" */
    char uuid[40];        /* GPT: the partition GUID; MBR: "1a2b3c4d-02" (PARTUUID=) */
    char name[160];       /* GPT: the name in UTF-8; MBR: "" */
    gboolean extended;    /* an MBR extended partition (a container, no file system) */
    gboolean bootable;    /* MBR active flag, GPT legacy BIOS bootable */
    gboolean truncated;   /* the table says it runs past the end of the volume */
} vma_partition;

typedef struct {
    char scheme[8];       /* "gpt" or "mbr" */
    char disk_uuid[40];   /* GPT disk GUID, MBR disk signature "1a2b3c4d" */
    unsigned sector;      /* 512 (or 4096 for a GPT of 4 KiB sectors) */
    unsigned n;
    vma_partition *parts; /* in the order of the table */
    char *warning;        /* a problem met and worked around (backup GPT used...), or NULL */
} vma_partition_table;

/* 1 with t filled (free with vma_partition_table_clear), 0 when the volume
 * holds no partition table (t empty), -1 with err (a read failed, or a
 * table is damaged beyond use) */
int vma_partitions_read(vma_volume *v, vma_partition_table *t, GError **err);
void vma_partition_table_clear(vma_partition_table *t);

/* ---- what a volume holds (guest/probe.c) ---- */
typedef struct {
    char type[16];        /* "ext4", "ext3", "ext2", "xfs", "vfat", "exfat", "ntfs",
                             "btrfs", "iso9660", "hfsplus", "ufs", "lvm2", "luks",
                             "swap", "md", "bitlocker", or "" (unknown) */
    char usage[12];       /* "filesystem", "lvm", "crypto", "swap", "raid", "" */
    char label[256];      /* UTF-8, "" when none */
    char uuid[48];        /* as blkid prints it, "" when none */
    uint64_t size;        /* bytes the file system says it has (0: unknown) */
    uint64_t free;        /* bytes free, when has_free */
    gboolean has_free;
} vma_probe;

/* 0 with p filled (p->type "" when nothing is recognised), -1 with err
 * when a read failed */
int vma_volume_probe(vma_volume *v, vma_probe *p, GError **err);

/* ---- LVM2 physical volumes (guest/lvm.c) ---- */
typedef struct {
    char pv_uuid[40];     /* as LVM prints it: 6-4-4-4-4-4-6 */
    uint64_t device_size; /* bytes, as the label says */
    uint64_t data_offset; /* where the first data area starts (bytes) */
    char *metadata;       /* the current metadata text (NUL-ended), NULL when the
                             PV holds none (a PV created with --metadatacopies 0) */
    size_t metadata_len;
} vma_lvm_pv;

/* 1 with pv filled (free with vma_lvm_pv_clear), 0 when the volume has no
 * LVM2 label, -1 with err (a damaged label or metadata area) */
int vma_lvm_pv_read(vma_volume *v, vma_lvm_pv *pv, GError **err);
void vma_lvm_pv_clear(vma_lvm_pv *pv);

/* ---- guest file systems (guest/fs.c, fs_tsk.c, fs_xfs.c) ---- */
typedef struct vma_fs vma_fs;
typedef struct vma_file vma_file;

typedef enum {
    VMA_FT_UNKNOWN = 0,
    VMA_FT_FILE,
    VMA_FT_DIR,
    VMA_FT_LINK,
    VMA_FT_CHR,
    VMA_FT_BLK,
    VMA_FT_FIFO,
    VMA_FT_SOCK,
} vma_ftype;

typedef struct {
    uint64_t ino;
    vma_ftype type;
    uint32_t mode;        /* permission bits with setuid, setgid, sticky (07777) */
    uint32_t uid, gid;
    uint32_t nlink;
    uint64_t size;        /* bytes (a link: the length of its target) */
    uint64_t blocks;      /* 512-byte units allocated (holes take none) */
    int64_t atime, mtime, ctime, btime;       /* seconds since 1970 (btime 0: unknown) */
    uint32_t atime_ns, mtime_ns, ctime_ns, btime_ns;
    uint32_t rdev_major, rdev_minor;
} vma_stat;

typedef struct {
    const char *name;     /* as stored (UTF-8 where the file system says so) */
    uint64_t ino;
    vma_ftype type;       /* from the directory (VMA_FT_UNKNOWN when it does not say) */
} vma_dirent;

/* the file systems the in-process reader opens: the names vma_probe gives */
gboolean vma_fs_supported(const char *type);
/* open the file system of v; type is the probed type (NULL: probe it).
 * VMA_ERR_FORMAT when it is none the in-process reader knows or is
 * damaged beyond reading */
vma_fs *vma_fs_open(vma_volume *v, const char *type, GError **err);
vma_fs *vma_fs_ref(vma_fs *fs);
void vma_fs_free(vma_fs *fs);
const char *vma_fs_type(const vma_fs *fs);
/* the volume label, "" when none (NTFS: from $Volume) */
const char *vma_fs_label(const vma_fs *fs);
uint64_t vma_fs_root(const vma_fs *fs);
/* do names match without regard to case (NTFS, FAT, exFAT, HFS+) */
gboolean vma_fs_case_insensitive(const vma_fs *fs);

int vma_fs_stat(vma_fs *fs, uint64_t ino, vma_stat *st, GError **err);
/* a path from the root ('/'-separated, "" or "/" the root): symbolic links
 * in it are followed (inside this file system: an absolute target starts
 * again at its root; at most 40), the last one only when follow.  0 with st
 * filled, -1 with err (VMA_ERR_ARG: no such file, or not a folder) */
int vma_fs_lookup(vma_fs *fs, const char *path, gboolean follow, vma_stat *st, GError **err);
/* the entry name in the folder dir_ino: 0 with st, -1 with err (VMA_ERR_ARG
 * when there is none) */
int vma_fs_lookup_at(vma_fs *fs, uint64_t dir_ino, const char *name, vma_stat *st, GError **err);
/* the target of a symbolic link (NUL-ended, free with g_free), NULL with err */
char *vma_fs_readlink(vma_fs *fs, uint64_t ino, GError **err);

/* A folder's entries, read once and kept (a bounded cache): without "." and
 * "..", without names that hold '/' or NUL (counted in skipped), sorted by
 * name (bytewise).  NULL with err. */
typedef struct vma_dir vma_dir;
vma_dir *vma_fs_opendir(vma_fs *fs, uint64_t ino, GError **err);
size_t vma_dir_count(const vma_dir *d);
const vma_dirent *vma_dir_entry(const vma_dir *d, size_t i);
/* entries dropped because their name cannot be a path component */
size_t vma_dir_skipped(const vma_dir *d);
void vma_dir_free(vma_dir *d);

/* A regular file (or a link's target bytes) open for reading. */
vma_file *vma_fs_open_file(vma_fs *fs, uint64_t ino, GError **err);
uint64_t vma_file_size(const vma_file *f);
/* the count read (less only at the end of the file), -1 with err; holes
 * read as zeros */
ssize_t vma_file_pread(vma_file *f, void *buf, size_t n, uint64_t off, GError **err);
/* the data and holes of [off, off + len) of the file, in order: DATA (bytes
 * that are stored), ZERO (holes, unwritten extents), MISSING (stored in
 * clusters the archive lacks); 0, 1 when fn stopped, -1 with err */
int vma_file_map(vma_file *f, uint64_t off, uint64_t len, vma_piece_fn fn, void *ud,
                 GError **err);
void vma_file_free(vma_file *f);

/* A depth-first walk of a tree, each folder's entries in name order.
 * vma_walk_next gives 1 with the path (relative to the start, '/'-joined,
 * valid until the next call) and st, 0 at the end, -1 with err for an
 * entry that could not be read (a folder, a stat): the walk goes on at the
 * next call.  Folders are entered after they are given, unless
 * vma_walk_prune is called before the next vma_walk_next; a folder met a
 * second time (a loop of hard-linked folders) is given but not entered,
 * and nothing is entered past depth VMA_WALK_MAX_DEPTH. */
#define VMA_WALK_MAX_DEPTH 4096
typedef struct vma_walk vma_walk;
vma_walk *vma_fs_walk(vma_fs *fs, uint64_t ino, GError **err);
int vma_walk_next(vma_walk *w, const char **path, vma_stat *st, GError **err);
void vma_walk_prune(vma_walk *w);
/* the depth of the entry last given (1: in the start folder) */
unsigned vma_walk_depth(const vma_walk *w);
void vma_walk_free(vma_walk *w);

/* ---- file helpers (base/files.c) ---------------------------------------- */

/* size of a regular file or block device open on fd, -1 on error */
int64_t vma_fd_size(int fd, GError **err);
/* the whole buffer, retrying short writes and EINTR */
int vma_write_all(int fd, const void *buf, size_t n, GError **err);
/* read n bytes at off: the count read (less only at the end), -1 on error */
ssize_t vma_pread_all(int fd, void *buf, size_t n, uint64_t off, GError **err);
/* rename that never replaces an existing file (link + unlink where the
 * file system has no RENAME_NOREPLACE) */
int vma_rename_noreplace(const char *from, const char *to, GError **err);
int vma_fsync_dir(const char *dir, GError **err);
int vma_fsync_parent(const char *path, GError **err);
/* a new file (never an existing one) with this content and exactly this
 * mode (the umask does not apply), fsynced; removed again when it cannot be
 * written whole */
int vma_file_create(const char *path, const void *data, size_t len, unsigned mode,
                    GError **err);
/* 1 when fd is a regular file without any data (all holes), 0 when it has
 * data or is not a regular file, -1 on error */
int vma_is_all_holes(int fd, GError **err);

#endif
