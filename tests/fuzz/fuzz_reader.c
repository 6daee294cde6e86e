/* fuzz_reader.c - libFuzzer harness for the VMA reader and restore engine.
 *
 * Each input is written to an in-memory file (memfd), opened with
 * vma_reader_open_fd() and read extent by extent with vma_reader_next()
 * until the end or the first error; a second open of the same bytes goes
 * through vma_restore() writing every device to a memfd, a third through
 * vma_restore() with no targets (check only).  Nothing may crash, leak,
 * read out of bounds or trip UBSan, whatever the bytes; every error must
 * carry a message, and every extent and restored target must keep the
 * promises of vma.h.
 *
 * Almost any mutation breaks an MD5, which would stop every input at the
 * first checksum; so each input that looks like an uncompressed archive is
 * also run a second time with its checksums repaired (the header's, then
 * each extent's along the chain of block counts), which lets the fuzzer
 * reach the rules behind the checksums.
 *
 * zstd, gzip and lzop inputs are fuzzed too: their decoders are linked in
 * (lzop's container is parsed by src/lib/lzop.c, the blocks by liblzo2).
 *
 * Build and run: tests/fuzz/run.sh (see docs/security.md).
 */
#define _GNU_SOURCE
#include "common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void one_input(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_input(data, size);
    uint8_t *fixed = fuzz_fix_checksums(data, size);
    if (fixed) {
        one_input(fixed, size);
        free(fixed);
    }
    return 0;
}

static void one_input(const uint8_t *data, size_t size)
{
    /* pass 1: the extent iterator */
    GError *e = NULL;
    vma_reader *r = vma_reader_open_fd(fuzz_memfd(data, size), &e);
    if (!r) {
        fuzz_check_error(e);
    } else {
        const vma_header *h = vma_reader_header(r);
        /* touch everything the header parsed */
        for (unsigned i = 0; i < h->n_configs; i++) {
            if (!h->configs[i].name || strlen(h->configs[i].name) == 0)
                abort();
            if (h->configs[i].len && !h->configs[i].data)
                abort();
            volatile uint8_t sink = 0;
            for (size_t k = 0; k < h->configs[i].len; k++)
                sink ^= h->configs[i].data[k];
            (void)sink;
            if (vma_reader_find_config(r, h->configs[i].name) == NULL)
                abort();
        }
        for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
            const vma_device *d = h->devices[id];
            if (!d)
                continue;
            if (d->id != id || d->size == 0 || d->size > VMA_MAX_DEVICE_SIZE)
                abort();
            if (!vma_name_is_safe(d->name, NULL))
                abort();
            if (vma_reader_find_device(r, d->name) == NULL)
                abort();
        }
        vma_extent ext;
        int rc;
        while ((rc = vma_reader_next(r, &ext, &e)) > 0) {
            if (ext.n_slots > VMA_SLOTS_PER_EXTENT)
                abort();
            unsigned blocks = 0;
            for (unsigned i = 0; i < ext.n_slots; i++) {
                const vma_slot *s = &ext.slots[i];
                const vma_device *d = h->devices[s->dev_id];
                if (!d || (uint64_t)s->cluster * VMA_CLUSTER_SIZE >= d->size)
                    abort();
                unsigned n = (unsigned)__builtin_popcount(s->mask);
                blocks += n;
                /* read the first and last byte of the slot's data */
                if (n) {
                    volatile uint8_t sink = s->data[0];
                    sink ^= s->data[(size_t)n * VMA_BLOCK_SIZE - 1];
                    (void)sink;
                }
            }
            if (blocks != ext.block_count)
                abort();
        }
        if (rc < 0)
            fuzz_check_error(e);
        else if (e)
            abort();
        vma_reader_free(r);
    }

    /* pass 2: the restore engine, writing every device to a memfd (zero
     * blocks become holes, so memory follows the stored data; small odd
     * devices get explicit zeros too) */
    e = NULL;
    r = vma_reader_open_fd(fuzz_memfd(data, size), &e);
    if (!r) {
        fuzz_check_error(e);
        return;
    }
    const vma_header *h = vma_reader_header(r);
    vma_target store[VMA_MAX_DEV_ID + 1];
    vma_target *targets[VMA_MAX_DEV_ID + 1] = {0};
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = h->devices[id];
        if (!d)
            continue;
        store[id] = (vma_target){0};
        store[id].fd = memfd_create("vma-fuzz-target", MFD_CLOEXEC);
        if (store[id].fd < 0) {
            perror("memfd_create");
            abort();
        }
        store[id].fresh = TRUE;
        store[id].write_zero = (id & 1) && d->size <= 256 * 1024;
        store[id].bps = 0;
        targets[id] = &store[id];
    }
    vma_stats st;
    if (vma_restore(r, targets, NULL, NULL, &st, &e) < 0) {
        fuzz_check_error(e);
    } else {
        if (e)
            abort();
        /* a disk target has the device's size; vmstate no more than it */
        for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
            const vma_device *d = h->devices[id];
            if (!d)
                continue;
            off_t end = lseek(store[id].fd, 0, SEEK_END);
            if (d->is_vmstate ? (uint64_t)end > d->size : (uint64_t)end != d->size)
                abort();
        }
    }
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++)
        if (targets[id])
            close(store[id].fd);
    vma_reader_free(r);

    /* pass 3: the restore engine with no targets at all (check only) */
    e = NULL;
    r = vma_reader_open_fd(fuzz_memfd(data, size), &e);
    if (!r) {
        fuzz_check_error(e);
        return;
    }
    if (vma_restore(r, NULL, NULL, NULL, &st, &e) < 0)
        fuzz_check_error(e);
    else if (e)
        abort();
    vma_reader_free(r);
}
