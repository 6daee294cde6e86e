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
void vma_index_free(vma_index *ix);
uint64_t vma_index_memory(const vma_index *ix);
/* the end of the last cluster the device has */
uint64_t vma_index_end(const vma_index *ix, uint8_t dev);
/* the pieces of [off, off + len) below dev_size; by_kind joins data pieces
 * that are not contiguous in the archive.  -1 when fn stopped it */
int vma_index_walk(const vma_index *ix, uint8_t dev, uint64_t dev_size, uint64_t off,
                   uint64_t len, gboolean by_kind, vma_piece_fn fn, void *ud);
int vma_index_save(const vma_index *ix, const char *path, const uint8_t stamp[32], GError **err);
vma_index *vma_index_load(const char *path, const vma_header *h, const uint8_t stamp[32],
                          GError **err);
vma_reader *vma_archive_reader(const vma_archive *a);

/* the source an archive opened for random access reads (for tests) */
vma_src *vma_archive_src(vma_archive *a);

#endif
