/* fuzz_disk.c - libFuzzer harness for the disks of an archive opened for
 * random access (src/lib/access/archive.c over index.c and random.c):
 * vma_archive_open, vma_archive_map and vma_archive_pread, over a fuzzed
 * plain archive, the same with its checksums repaired, and a seekable
 * .vma.zst the harness makes of it (frames of a size the input picks).
 *
 * The truth is a restore of the same bytes from start to end (vma_restore
 * into memfds, as `vma extract` does).  The rules, whatever the bytes:
 *   - an error carries our domain and a message;
 *   - the map of a device is pieces in order, without gaps or overlaps,
 *     that cover it, each data piece inside the archive;
 *   - a read returns what was asked (clamped at the device's end) or fails;
 *   - when the restore succeeded (the archive is valid and complete), the
 *     archive opens, its map has nothing missing, and every read succeeds
 *     and gives the restored bytes.
 * Build and run: tests/fuzz/run.sh. */
#define _GNU_SOURCE
#include "common.h"
#include "access/access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_DEVS 8
#define N_READS 6
#define READ_MAX (300u << 10)

/* restore every device into a memfd (fds[id], -1 for none); TRUE when the
 * restore succeeded */
static gboolean restore(const uint8_t *data, size_t size, int fds[VMA_MAX_DEV_ID + 1])
{
    for (unsigned id = 0; id <= VMA_MAX_DEV_ID; id++)
        fds[id] = -1;
    GError *e = NULL;
    vma_reader *r = vma_reader_open_fd(fuzz_memfd(data, size), &e);
    if (!r) {
        fuzz_check_error(e);
        return FALSE;
    }
    const vma_header *h = vma_reader_header(r);
    vma_target store[VMA_MAX_DEV_ID + 1];
    vma_target *targets[VMA_MAX_DEV_ID + 1] = {0};
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        if (!h->devices[id])
            continue;
        store[id] = (vma_target){0};
        store[id].fd = fds[id] = memfd_create("vma-fuzz-truth", MFD_CLOEXEC);
        if (fds[id] < 0) {
            perror("memfd_create");
            abort();
        }
        store[id].fresh = TRUE;
        targets[id] = &store[id];
    }
    vma_stats st;
    gboolean ok = vma_restore(r, targets, NULL, NULL, &st, &e) == 0;
    if (!ok)
        fuzz_check_error(e);
    vma_reader_free(r);
    return ok;
}

typedef struct {
    uint64_t next;        /* where the next piece must start */
    uint64_t archive;     /* bytes of the (decompressed) archive */
    uint64_t missing;
} map_check;

static int check_piece(const vma_piece *p, void *ud)
{
    map_check *c = ud;
    if (p->offset != c->next || p->length == 0 || p->kind > VMA_PIECE_MISSING) {
        fprintf(stderr, "a piece at %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT " bytes) after %"
                G_GUINT64_FORMAT "\n", p->offset, p->length, c->next);
        abort();
    }
    if (p->kind == VMA_PIECE_DATA &&
        (p->data_offset > c->archive || p->length > c->archive - p->data_offset)) {
        fprintf(stderr, "a data piece outside the archive\n");
        abort();
    }
    if (p->kind == VMA_PIECE_MISSING)
        c->missing += p->length;
    c->next += p->length;
    return 0;
}

/* the restored bytes [off, off + n) of a device (zeros past its file) */
static void truth_read(int fd, uint8_t *buf, size_t n, uint64_t off)
{
    memset(buf, 0, n);
    size_t done = 0;
    while (done < n) {
        ssize_t got = pread(fd, buf + done, n - done, (off_t)(off + done));
        if (got < 0) {
            perror("pread");
            abort();
        }
        if (got == 0)
            break;
        done += (size_t)got;
    }
}

static void one_archive(const uint8_t *data, size_t size, gboolean must_open)
{
    int truth[VMA_MAX_DEV_ID + 1];
    gboolean valid = restore(data, size, truth);
    int fd = fuzz_memfd(data, size);
    char *path = fuzz_fd_path(fd);
    vma_archive_opts o = {.cache = VMA_CACHE_OFF, .frame_cache = 1, .spill = -1};
    GError *e = NULL;
    vma_archive *a = vma_archive_open(path, &o, &e);
    /* random access is made at the first need: here, at once (an archive
     * read through a decoded copy: the copy complete, so that its source
     * is known) */
    if (a && (vma_archive_prepare(a, &e) < 0 || vma_archive_wait_complete(a, &e) < 0)) {
        vma_archive_free(a);
        a = NULL;
    }
    if (!a) {
        if (valid && must_open) {
            fprintf(stderr, "a valid archive does not open at random: %s\n", e->message);
            abort();
        }
        fuzz_check_error(e);
    }
    fuzz_rng rng;
    fuzz_rng_init(&rng, data, size);
    const vma_header *h = a ? vma_archive_header(a) : NULL;
    unsigned devs = 0;
    for (unsigned id = 1; a && id <= VMA_MAX_DEV_ID && devs < MAX_DEVS; id++) {
        const vma_device *d = h->devices[id];
        if (!d)
            continue;
        devs++;
        uint64_t len = vma_archive_device_length(a, (uint8_t)id);
        if (len > d->size)
            abort();
        map_check c = {0, vma_src_size(vma_archive_src(a)), 0};
        int rc = vma_archive_map(a, (uint8_t)id, 0, len, check_piece, &c, &e);
        if (rc != 0 || c.next != len) {
            fprintf(stderr, "the map of device %u: %d, %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                    " bytes\n", id, rc, c.next, len);
            abort();
        }
        if (valid && c.missing) {
            fprintf(stderr, "device %u of a valid archive misses %" G_GUINT64_FORMAT " bytes\n", id,
                    c.missing);
            abort();
        }
        for (int i = 0; i < N_READS; i++) {
            uint64_t r = fuzz_rng_next(&rng);
            uint64_t off = i == 0 ? 0 : i == 1 ? (len ? len - 1 : 0) : i == 2 ? len
                         : (len ? r % len : 0);
            if (i == 3 && len > VMA_CLUSTER_SIZE) /* across a cluster's end */
                off = (r % (len / VMA_CLUSTER_SIZE)) * VMA_CLUSTER_SIZE + VMA_CLUSTER_SIZE - 100;
            size_t n = 1 + (size_t)(fuzz_rng_next(&rng) % (i & 1 ? READ_MAX : 8192));
            uint8_t *buf = malloc(n), *want = malloc(n);
            if (!buf || !want)
                abort();
            ssize_t got = vma_archive_pread(a, (uint8_t)id, buf, n, off, &e);
            uint64_t expect = off >= len ? 0 : MIN((uint64_t)n, len - off);
            if (got < 0) {
                if (valid) {
                    fprintf(stderr, "a read of a valid archive failed: %s\n", e->message);
                    abort();
                }
                fuzz_check_error(e);
            } else if ((uint64_t)got != expect || e) {
                abort();
            } else if (valid && got > 0) {
                truth_read(truth[id], want, (size_t)got, off);
                if (memcmp(buf, want, (size_t)got) != 0) {
                    fprintf(stderr, "device %u: %zd bytes at %" G_GUINT64_FORMAT
                            " differ from the restore\n", id, got, off);
                    abort();
                }
            }
            e = NULL;
            free(buf);
            free(want);
        }
    }
    vma_archive_free(a);
    g_free(path);
    close(fd);
    for (unsigned id = 0; id <= VMA_MAX_DEV_ID; id++)
        if (truth[id] >= 0)
            close(truth[id]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t zstd_magic[4] = {0x28, 0xb5, 0x2f, 0xfd};
    gboolean plain = size < 4 || (memcmp(data, zstd_magic, 4) != 0 &&
                                  !(data[0] == 0x1f && data[1] == 0x8b) &&
                                  !(data[0] == 0x89 && memcmp(data + 1, "LZO", 3) == 0));
    one_archive(data, size, plain);
    uint8_t *fixed = fuzz_fix_checksums(data, size);
    if (fixed)
        one_archive(fixed, size, TRUE);
    if (plain && size >= 4 && memcmp(data, "VMA", 4) == 0) {
        /* a seekable .vma.zst of the same bytes: frames of 4 KiB to 1 MiB */
        size_t frame = (size_t)4096 << (data[size - 1] % 9), len = 0;
        uint8_t *z = fuzz_make_seekable(fixed ? fixed : data, size, frame, LIE_NONE, 0, 0, 0, &len);
        one_archive(z, len, TRUE);
        free(z);
    }
    free(fixed);
    return 0;
}
