/* access.h - the random-access layer of libvma: the index of an archive
 * (index.c) and the archive opened for reads at any offset of any device
 * (archive.c).  Built on the format and codec layers. */
#ifndef VMA_ACCESS_H
#define VMA_ACCESS_H

#include "format/format.h"

/* ---- the index of an archive (index.c) ---- */
typedef struct vma_index vma_index;
/* one pass over r (opened on a random source, nothing read yet): every
 * extent decoded and checked, the data skipped; total is for progress */
vma_index *vma_index_build(vma_reader *r, uint64_t total, vma_index_progress_fn progress,
                           void *ud, GError **err);
/* the same, an extent at a time: new, add every extent, finish (sorts) */
vma_index *vma_index_new(const vma_header *h);
int vma_index_add(vma_index *ix, const vma_extent *ext, GError **err);
void vma_index_finish(vma_index *ix, uint64_t archive_size);
/* a finished copy of an index still being built (readers walk it while
 * the builder goes on) */
vma_index *vma_index_snapshot(const vma_index *ix, uint64_t archive_size);
/* references: vma_index_free drops one */
vma_index *vma_index_ref(vma_index *ix);
void vma_index_free(vma_index *ix);
uint64_t vma_index_memory(const vma_index *ix);
/* the end of the last cluster the device has */
uint64_t vma_index_end(const vma_index *ix, uint8_t dev);
/* the pieces of [off, off + len) below dev_size; by_kind joins data pieces
 * that are not contiguous in the archive.  -1 when fn stopped it */
int vma_index_walk(const vma_index *ix, uint8_t dev, uint64_t dev_size, uint64_t off,
                   uint64_t len, gboolean by_kind, vma_piece_fn fn, void *ud);
int vma_index_save(const vma_index *ix, const char *path, const uint8_t stamp[64], GError **err);
vma_index *vma_index_load(const char *path, const vma_header *h, const uint8_t stamp[64],
                          GError **err);

/* the source an archive opened for random access reads now (for tests) */
vma_src *vma_archive_src(vma_archive *a);

/* ---- identity and the cache folder (cache.c) ---- */
typedef struct {
    uint8_t header_md5[16];
    uint64_t dev, ino, size;
    int64_t mtime_ns, ctime_ns;
    gboolean regular;
} vma_identity;
#define VMA_STAMP_SIZE 64
gboolean vma_identity_of(int fd, const uint8_t header_md5[16], vma_identity *id, GError **err);
void vma_identity_key(const vma_identity *id, char key[33]);
/* what an index file repeats of the archive (and the stream's size) */
void vma_identity_stamp(const vma_identity *id, uint64_t stream_size,
                        uint8_t stamp[VMA_STAMP_SIZE]);
char *vma_cache_path(const char *dir, const char *key, const char *suffix);
/* the folder made (0700) and checked to be this user's */
gboolean vma_cache_prepare_dir(const char *dir, GError **err);
/* open a cache file for reading: no symlink, a regular file, at most
 * max_size bytes; *size (may be NULL) gets its size */
int vma_cache_open_file(const char *path, uint64_t max_size, int64_t *size, GError **err);
void vma_cache_touch(const char *dir, const char *key);
/* flock KEY.lock: the descriptor, -2 when another process holds it
 * (without wait), -1 with err */
int vma_cache_lock(const char *dir, const char *key, gboolean wait, GError **err);
/* does a process hold KEY.lock? (without making the file) */
gboolean vma_cache_busy(const char *dir, const char *key);
/* remove least recently used keys (not keep, not busy ones) until need
 * more bytes fit the limit and the free space */
int vma_cache_make_room(const char *dir, const char *keep, uint64_t need, GError **err);
int vma_cache_write_info(const char *dir, const char *key, const char *archive,
                         const vma_identity *id, vma_compress codec, uint64_t raw_frames,
                         GError **err);

/* ---- the copy being made (live.c, decoder.c) ---- */
typedef struct vma_live vma_live;
vma_live *vma_live_new(int fd); /* owns fd */
void vma_live_free(vma_live *l);
void vma_live_append(vma_live *l, uint64_t csize, uint64_t dsize);
void vma_live_end(vma_live *l, const GError *failure);
uint64_t vma_live_size(vma_live *l);
/* n bytes at off of the stream, waiting for them; -1 with err */
ssize_t vma_live_pread(vma_live *l, void *buf, size_t n, uint64_t off, GError **err);

typedef struct vma_decoder vma_decoder;
typedef struct {
    gboolean done, complete;
    uint64_t input_done, input_total, stream_done;
    double seconds;
} vma_decode_status;
/* r: the stream (owned), its header read; part_fd: the copy's file (owned);
 * lock_fd (owned, -1: none); dir NULL: an unlinked copy, nothing kept.
 * NULL with err (all it owns freed, KEY.part removed) when no thread can
 * be started */
vma_decoder *vma_decoder_start(vma_reader *r, int part_fd, int lock_fd, const char *dir,
                               const char *key, const char *label, const vma_identity *id,
                               GError **err);
/* the latest snapshot of the index (a reference), its number, and whether
 * the decoder has ended */
vma_index *vma_decoder_index(vma_decoder *d, uint64_t *seq, gboolean *done);
/* wait for a snapshot after seq (or the end): 1, 0 after seconds, -1 on an interrupt */
int vma_decoder_wait(vma_decoder *d, uint64_t seq, double seconds);
void vma_decoder_status(vma_decoder *d, vma_decode_status *st);
/* TRUE (and err set) when it ended with an error */
gboolean vma_decoder_failure(vma_decoder *d, GError **err);
vma_live *vma_decoder_live(vma_decoder *d);
/* the complete copy's path in the cache folder, or NULL */
const char *vma_decoder_final_path(vma_decoder *d);
int vma_decoder_part_fd(vma_decoder *d);
/* after a complete copy with raw frames, the decoder's thread compresses it
 * again (compact): is it at it, and wait until it is done (-1: interrupted) */
gboolean vma_decoder_compacting(vma_decoder *d);
int vma_decoder_wait_compacted(vma_decoder *d);
/* stops the decoder (a copy not complete is removed) and frees it */
void vma_decoder_free(vma_decoder *d);

#endif
