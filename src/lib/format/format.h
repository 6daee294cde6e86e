/* format.h - the format layer of libvma: the VMA header and extents, read
 * (reader.c) and written (writer.c), restored (restore.c), names
 * (names.c), cluster sets (runs.c).  Built on the codec layer. */
#ifndef VMA_FORMAT_H
#define VMA_FORMAT_H

#include "codec/codec.h"

#define VMA_MAGIC        "VMA\0"
#define VMA_EXTENT_MAGIC "VMAE"

/* byte offsets inside the fixed header */
enum {
    VMA_H_MAGIC = 0, VMA_H_VERSION = 4, VMA_H_UUID = 8, VMA_H_CTIME = 24,
    VMA_H_MD5 = 32, VMA_H_BLOB_OFFSET = 48, VMA_H_BLOB_SIZE = 52,
    VMA_H_HEADER_SIZE = 56, VMA_H_CONFIG_NAMES = 2044, VMA_H_CONFIG_DATA = 3068,
    VMA_H_DEV_INFO = 4096,
};
/* byte offsets inside the extent header */
enum {
    VMA_E_MAGIC = 0, VMA_E_RESERVED = 4, VMA_E_BLOCK_COUNT = 6, VMA_E_UUID = 8,
    VMA_E_MD5 = 24, VMA_E_BLOCKINFO = 40,
};

/* A set of cluster numbers below a limit, kept as runs so that memory
 * follows what the archive sends, not what its header claims (runs.c). */
typedef struct vma_runs vma_runs;
vma_runs *vma_runs_new(uint64_t limit, uint64_t max_runs);
void vma_runs_free(vma_runs *r);
/* adds i; returns 1 when it was there already, 0 when added, -1 when more
 * than max_runs separate runs would be needed */
int vma_runs_add(vma_runs *r, uint64_t i);
gboolean vma_runs_contains(const vma_runs *r, uint64_t i);
/* the number of separate runs held */
uint64_t vma_runs_count(const vma_runs *r);
/* every range below the limit that is not in the set, in order */
void vma_runs_foreach_gap(const vma_runs *r, vma_gap_fn fn, void *ud);
/* the count of numbers below the limit not in the set; *first (may be
 * NULL) gets the first of them */
uint64_t vma_runs_missing(const vma_runs *r, uint64_t *first);

/* how many separate runs of clusters a reader tracks before it gives up on
 * an archive as too fragmented (about 50 MiB of bookkeeping) */
#define VMA_READER_MAX_RUNS (1u << 20)

/* check the 512-byte extent header eh at archive offset off (the rules that
 * need only it and the archive's uuid) and decode its slots into ext */
int vma_extent_decode(const uint8_t *eh, const uint8_t uuid[16], uint64_t off,
                      vma_extent *ext, GError **err);

/* a copy of a header that lives on its own, and its free */
vma_header *vma_header_copy(const vma_header *h);
void vma_header_free(vma_header *h);

/* bytes of the archive file (compressed) read so far, from any thread */
uint64_t vma_reader_input_offset(const vma_reader *r);

/* a reader over a random source (not owned), for building an index */
vma_reader *vma_reader_open_src(vma_src *src, GError **err);

/* open an archive's file ("-": a copy of standard input); a folder is refused */
int vma_open_archive_fd(const char *path, GError **err);

#endif
