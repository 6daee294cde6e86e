/* fuzz_index.c - libFuzzer harness for the index of an archive and its cache
 * file (src/lib/access/index.c: vma_index_build, vma_index_walk,
 * vma_index_save, vma_index_load).
 *
 * Each input (and the same with its checksums repaired) is opened as a random
 * source and indexed; the index is walked over every device, saved to a
 * cache file, loaded back (it must load, and walk the same), and then cache
 * files made from the saved one with a change the input picks (a byte, a
 * field of a run, a count, a cut), and the input itself as a cache file, are
 * loaded against the archive's header, each with its MD5 repaired so that
 * the checks behind it are reached.  The rules, whatever the bytes:
 *   - an error carries our domain and a message;
 *   - a walk gives pieces in order, without gaps or overlaps, covering what
 *     was asked; the data pieces of a built index lie inside the archive;
 *   - an index saved loads again and walks the same.
 * Build and run: tests/fuzz/run.sh. */
#define _GNU_SOURCE
#include "common.h"
#include "access/access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IDX_HEAD (8 + 16 + VMA_STAMP_SIZE + 8 + 4 + 4)

typedef struct {
    uint64_t next;
    uint64_t archive;      /* bound on data offsets; 0: only no overflow */
    GArray *pieces;        /* vma_piece, or NULL */
} walk_check;

static int check_piece(const vma_piece *p, void *ud)
{
    walk_check *c = ud;
    if (p->offset != c->next || p->length == 0 || p->kind > VMA_PIECE_MISSING ||
        p->offset + p->length < p->offset)
        abort();
    if (p->kind == VMA_PIECE_DATA &&
        (p->data_offset + p->length < p->data_offset ||
         (c->archive && p->data_offset + p->length > c->archive))) {
        fprintf(stderr, "a data piece outside the archive: %" G_GUINT64_FORMAT " + %"
                G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT "\n", p->data_offset, p->length,
                c->archive);
        abort();
    }
    if (c->pieces)
        g_array_append_val(c->pieces, *p);
    c->next += p->length;
    return 0;
}

/* walk every device of h whole, and a range of each that the input picks;
 * the whole walks go into pieces (if given) */
static void walk_all(const vma_index *ix, const vma_header *h, uint64_t archive, fuzz_rng *rng,
                     GArray *pieces)
{
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = h->devices[id];
        if (!d)
            continue;
        for (int by_kind = 0; by_kind < 2; by_kind++) {
            walk_check c = {0, archive, by_kind ? NULL : pieces};
            if (vma_index_walk(ix, (uint8_t)id, d->size, 0, d->size, by_kind, check_piece, &c) != 0 ||
                c.next != d->size)
                abort();
        }
        uint64_t off = fuzz_rng_next(rng) % (d->size + 1);
        uint64_t len = fuzz_rng_next(rng) % (4u << 20);
        walk_check c = {off, archive, NULL};
        if (vma_index_walk(ix, (uint8_t)id, d->size, off, len, FALSE, check_piece, &c) != 0 ||
            c.next != (off >= d->size ? off : MIN(d->size, off + len)))
            abort();
        (void)vma_index_end(ix, (uint8_t)id);
    }
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    GError *e = NULL;
    if (!g_file_set_contents(path, (const gchar *)data, (gssize)len, &e)) {
        fprintf(stderr, "%s\n", e->message);
        abort();
    }
}

/* a cache file of these bytes with its MD5 (the last 16 bytes) repaired,
 * loaded against h; walked if it loads */
static void load_fuzzed(const char *path, uint8_t *c, size_t len, const vma_header *h,
                        const uint8_t stamp[VMA_STAMP_SIZE], fuzz_rng *rng)
{
    if (len >= 16)
        vma_md5(c, len - 16, c + len - 16);
    write_file(path, c, len);
    GError *e = NULL;
    vma_index *ix = vma_index_load(path, h, stamp, &e);
    if (!ix) {
        fuzz_check_error(e);
        return;
    }
    walk_all(ix, h, 0, rng, NULL);
    (void)vma_index_memory(ix);
    vma_index_free(ix);
}

static void one_archive(const uint8_t *data, size_t size)
{
    int fd = fuzz_memfd(data, size);
    GError *e = NULL;
    vma_src *src = vma_src_open(fd, &e);
    vma_reader *r = src ? vma_reader_open_src(src, &e) : NULL;
    vma_index *ix = r ? vma_index_build(r, size, NULL, NULL, &e) : NULL;
    if (!ix)
        fuzz_check_error(e);
    fuzz_rng rng;
    fuzz_rng_init(&rng, data, size);
    if (ix) {
        const vma_header *h = vma_reader_header(r);
        uint64_t archive = vma_src_size(src);
        GArray *built = g_array_new(FALSE, FALSE, sizeof(vma_piece));
        walk_all(ix, h, archive, &rng, built);

        /* saved and loaded again: the same walks */
        char *path = g_strdup_printf("%s/index.idx", fuzz_tmpdir());
        uint8_t stamp[VMA_STAMP_SIZE];
        for (int i = 0; i < VMA_STAMP_SIZE / 8; i++) {
            uint64_t v = fuzz_rng_next(&rng);
            memcpy(stamp + 8 * i, &v, 8);
        }
        if (vma_index_save(ix, path, stamp, &e) != 0) {
            fprintf(stderr, "save: %s\n", e->message);
            abort();
        }
        vma_index *back = vma_index_load(path, h, stamp, &e);
        if (!back) {
            fprintf(stderr, "an index saved does not load: %s\n", e->message);
            abort();
        }
        GArray *loaded = g_array_new(FALSE, FALSE, sizeof(vma_piece));
        fuzz_rng again = rng;
        walk_all(back, h, archive, &again, loaded);
        gboolean same = loaded->len == built->len;
        for (guint i = 0; same && i < built->len; i++) {
            const vma_piece *p = &g_array_index(built, vma_piece, i);
            const vma_piece *q = &g_array_index(loaded, vma_piece, i);
            same = p->kind == q->kind && p->offset == q->offset && p->length == q->length &&
                   (p->kind != VMA_PIECE_DATA || p->data_offset == q->data_offset);
        }
        if (!same) {
            fprintf(stderr, "the loaded index walks otherwise than the built one\n");
            abort();
        }
        vma_index_free(back);
        g_array_free(built, TRUE);
        g_array_free(loaded, TRUE);

        /* cache files made from the saved one with one change */
        gchar *saved;
        gsize slen;
        if (!g_file_get_contents(path, &saved, &slen, NULL))
            abort();
        for (int v = 0; v < 6; v++) {
            uint8_t *c = g_memdup2(saved, slen);
            size_t len = slen;
            uint64_t x = fuzz_rng_next(&rng), y = fuzz_rng_next(&rng);
            switch (v) {
            case 0: /* a byte anywhere */
                c[x % len] ^= (uint8_t)(y | 1);
                break;
            case 1: /* a field of the runs and masks (after the counts) */
            case 2: {
                size_t at = IDX_HEAD + (x % (len - IDX_HEAD - 16 + 1));
                at -= (at - IDX_HEAD) % 4;
                uint32_t w = (uint32_t)y;
                if (y & (1ull << 40))
                    w = (uint32_t)(y >> 44) % 64; /* small values: counts, clusters */
                if (at + 4 <= len - 16)
                    memcpy(c + at, &w, 4);
                break;
            }
            case 3: { /* the archive size, the mask count, the device count */
                static const size_t fields[3] = {56, 64, 68};
                size_t at = fields[x % 3];
                uint32_t w = (uint32_t)y;
                memcpy(c + at, &w, 4);
                break;
            }
            case 4: /* cut */
                len = 16 + x % (len - 15);
                break;
            default: /* a run of the device list: its id or count */
                if (len > IDX_HEAD + 8 + 16) {
                    uint32_t w = (uint32_t)(y % 300);
                    memcpy(c + IDX_HEAD + (x & 1 ? 4 : 0), &w, 4);
                }
                break;
            }
            load_fuzzed(path, c, len, h, stamp, &rng);
            g_free(c);
        }
        g_free(saved);

        /* the input itself as a cache file of this archive */
        if (size >= IDX_HEAD + 16) {
            uint8_t *c = g_memdup2(data, size);
            memcpy(c, "VMAIDX02", 8);
            memcpy(c + 8, h->uuid, 16);
            memcpy(c + 24, stamp, VMA_STAMP_SIZE);
            load_fuzzed(path, c, size, h, stamp, &rng);
            g_free(c);
        }
        unlink(path);
        g_free(path);
        vma_index_free(ix);
    }
    vma_reader_free(r);
    vma_src_free(src);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_archive(data, size);
    uint8_t *fixed = fuzz_fix_checksums(data, size);
    if (fixed) {
        one_archive(fixed, size);
        free(fixed);
    }
    return 0;
}
