/* survey.c - what a catalog records of an archive: one pass over it with
 * every rule of the reader checked, counting per device the bytes stored,
 * zero and missing, and with digests, the digest of every cluster of every
 * disk (8 bytes: XXH3-64 of its 64 KiB, big-endian).  Without digests the
 * data is skipped: a plain .vma is read at its extent headers only. */
#define _GNU_SOURCE
#include "store/store.h"

#include <string.h>
#include <xxhash.h>

static const uint8_t zero_block[VMA_BLOCK_SIZE];

/* the digest of one cluster: mask tells which 4 KiB blocks data holds */
static uint64_t cluster_digest(const uint8_t *data, uint16_t mask, XXH3_state_t *st)
{
    if (mask == 0)
        return VMA_DIGEST_ZERO;
    uint64_t h;
    if (mask == 0xffff) {
        h = XXH3_64bits(data, VMA_CLUSTER_SIZE);
    } else {
        XXH3_64bits_reset(st);
        for (unsigned j = 0; j < VMA_BLOCKS_PER_CLUSTER; j++) {
            if (mask & (1u << j)) {
                XXH3_64bits_update(st, data, VMA_BLOCK_SIZE);
                data += VMA_BLOCK_SIZE;
            } else {
                XXH3_64bits_update(st, zero_block, VMA_BLOCK_SIZE);
            }
        }
        h = XXH3_64bits_digest(st);
    }
    /* the two markers are never a data cluster's digest */
    if (h == VMA_DIGEST_ZERO)
        h = 1;
    else if (h == VMA_DIGEST_MISSING)
        h = VMA_DIGEST_MISSING - 1;
    return h;
}

/* bytes of block j of a cluster that lie inside a device of size bytes */
static uint64_t block_bytes(uint64_t size, uint32_t cluster, unsigned j)
{
    uint64_t start = (uint64_t)cluster * VMA_CLUSTER_SIZE + (uint64_t)j * VMA_BLOCK_SIZE;
    if (start >= size)
        return 0;
    return MIN((uint64_t)VMA_BLOCK_SIZE, size - start);
}

void vma_survey_clear(vma_survey *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->n_devices; i++)
        g_free(s->devices[i].digests);
    memset(s, 0, sizeof(*s));
}

int vma_archive_survey(vma_archive *a, gboolean digests, vma_progress_fn progress, void *ud,
                       vma_survey *out, GError **err)
{
    memset(out, 0, sizeof(*out));
    const vma_header *h = vma_archive_header(a);
    vma_survey_device *by_id[VMA_MAX_DEV_ID + 1] = {0};
    uint64_t total = 0;
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = h->devices[id];
        if (!d)
            continue;
        vma_survey_device *sd = &out->devices[out->n_devices++];
        sd->dev_id = (uint8_t)id;
        sd->vmstate = d->is_vmstate;
        sd->size = d->size;
        if (!d->is_vmstate) {
            sd->clusters = vma_clusters(d->size);
            total += sd->clusters;
        }
        by_id[id] = sd;
    }
    /* digests: ones (missing) until a cluster is seen; the memory is asked
     * for only once the reader has checked the header's sizes */
    vma_reader *r = vma_archive_stream(a, err);
    if (!r)
        return -1;
    for (unsigned i = 0; i < out->n_devices; i++) {
        vma_survey_device *sd = &out->devices[i];
        vma_reader_set_optional(r, sd->dev_id, TRUE);
        if (digests && !sd->vmstate && sd->clusters) {
            sd->digests = g_try_malloc(sd->clusters * VMA_DIGEST_SIZE);
            if (!sd->digests) {
                g_set_error(err, VMA_ERROR, VMA_ERR_IO,
                            "not enough memory for the digests of '%s' (%" G_GUINT64_FORMAT
                            " clusters)", h->devices[sd->dev_id]->name, sd->clusters);
                vma_reader_free(r);
                vma_survey_clear(out);
                return -1;
            }
            memset(sd->digests, 0xff, sd->clusters * VMA_DIGEST_SIZE);
        }
    }
    vma_reader_skip_data(r, !digests);
    XXH3_state_t *xs = digests ? XXH3_createState() : NULL;
    if (digests && !xs) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "not enough memory for a digest state");
        vma_reader_free(r);
        vma_survey_clear(out);
        return -1;
    }
    double t0 = vma_now();
    vma_stats st = {.clusters_total = total};
    vma_extent ext;
    int rc;
    while ((rc = vma_reader_next(r, &ext, err)) == 1) {
        for (unsigned i = 0; i < ext.n_slots; i++) {
            const vma_slot *s = &ext.slots[i];
            vma_survey_device *sd = by_id[s->dev_id];
            if (!sd)
                continue; /* the reader refuses unknown devices: never here */
            if (sd->vmstate)
                sd->clusters++;
            else
                st.clusters_done++;
            unsigned stored = 0;
            for (unsigned j = 0; j < VMA_BLOCKS_PER_CLUSTER; j++) {
                uint64_t n = sd->vmstate ? VMA_BLOCK_SIZE : block_bytes(sd->size, s->cluster, j);
                if (s->mask & (1u << j)) {
                    sd->data_bytes += n;
                    stored++;
                } else {
                    sd->zero_bytes += n;
                }
            }
            if (stored == 0)
                sd->zero_clusters++;
            if (sd->digests && s->cluster < sd->clusters) {
                uint64_t d = cluster_digest(s->data, s->mask, xs);
                vma_put_be64(sd->digests + (uint64_t)s->cluster * VMA_DIGEST_SIZE, d);
            }
        }
        st.bytes_archive = vma_reader_offset(r);
        st.elapsed = vma_now() - t0;
        if (vma_interrupted()) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            rc = -1;
            break;
        }
        if (progress && progress(&st, ud)) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            rc = -1;
            break;
        }
    }
    if (xs)
        XXH3_freeState(xs);
    if (rc < 0) {
        vma_reader_free(r);
        vma_survey_clear(out);
        return -1;
    }
    for (unsigned i = 0; i < out->n_devices; i++) {
        vma_survey_device *sd = &out->devices[i];
        if (sd->vmstate)
            continue;
        uint64_t seen = sd->data_bytes + sd->zero_bytes;
        sd->missing_bytes = sd->size > seen ? sd->size - seen : 0;
    }
    out->bytes_archive = vma_reader_offset(r);
    out->elapsed = vma_now() - t0;
    vma_reader_free(r);
    return 0;
}
