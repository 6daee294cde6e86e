/* store.h - the store layer of libvma: what a catalog of many archives
 * records of each (survey.c: the allocation of every device, and with the
 * data read, a digest of every cluster), differences between two backups
 * (compare.c: by reading both, or from their digests), and the digest of
 * a disk image's content (image.c, for `vma create --stable`).  Built on
 * the access layer. */
#ifndef VMA_STORE_H
#define VMA_STORE_H

#include "access/access.h"

/* the digest of a cluster: XXH3-64 of its 64 KiB, big-endian; these two
 * values are never a data cluster's (one that hashes to them is moved by
 * one) */
#define VMA_DIGEST_ZERO    UINT64_C(0)
#define VMA_DIGEST_MISSING UINT64_MAX

static inline uint64_t vma_digest_get(const uint8_t *p)
{
    return vma_get_be64(p);
}

#endif
