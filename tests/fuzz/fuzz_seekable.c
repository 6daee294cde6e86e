/* fuzz_seekable.c - libFuzzer harness for the random reads of a plain file or
 * a seekable .vma.zst (src/lib/codec/random.c: the seek table, the frames,
 * the frame cache, the block maps of raw and RLE blocks, the spill file).
 *
 * Each input is opened as a random source (vma_src_open) with a frame cache
 * of two frames and a spill file, read at a dozen offsets twice (the second
 * pass meets the block maps, the spill file and frames decoded again), then
 * at its end (which checks every frame not read yet), and decoded from start
 * to end as `vma verify` decodes it (vma_in, zstd's streaming decoder).  The
 * rules, whatever the bytes:
 *   - an error carries our domain and a message;
 *   - a read returns what was asked, clamped at the end, or fails;
 *   - when the read of the end succeeded (every frame checked), every read
 *     succeeded, the sequential decode succeeded too, to the same size, and
 *     every read gave its bytes: random access serves nothing that verify
 *     would not, and never other bytes.
 * An input that is not zstd is also made into a seekable .vma.zst by the
 * harness (frames of a size the input picks, with checksums, so the fuzzer
 * gets past them), honest or with one of the lies of fuzz_make_seekable:
 * sizes shifted between two frames, a size off by some bytes, skippable
 * padding inside a frame, a frame without checksum, compressed sizes
 * shifted.  And the input read as steps (kind, length, byte) that make a
 * stream of zstd blocks of every kind (runs of one byte, noise, the input's
 * bytes), in frames of 128 KiB to 2 MiB, so that the block maps get many
 * runs.  Build and run: tests/fuzz/run.sh. */
#define _GNU_SOURCE
#include "common.h"
#include "codec/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEQ_MAX (64u << 20)   /* the sequential decode is kept up to this */
#define N_READS 12
#define READ_MAX (200u << 10)

/* the whole stream decoded from start to end, as verify reads it; NULL
 * when it fails (or is longer than SEQ_MAX: *too_long) */
static uint8_t *sequential(const uint8_t *data, size_t size, size_t *len, int *too_long)
{
    GError *e = NULL;
    *too_long = 0;
    vma_in *in = vma_in_new(fuzz_memfd(data, size), &e);
    if (!in) {
        fuzz_check_error(e);
        return NULL;
    }
    size_t cap = 1u << 20, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap >= SEQ_MAX) {
                *too_long = 1;
                break;
            }
            cap *= 2;
            buf = realloc(buf, cap);
        }
        if (!buf)
            abort();
        size_t want = cap - n;
        ssize_t got = vma_in_read(in, buf + n, want, &e);
        if (got < 0) {
            fuzz_check_error(e);
            free(buf);
            buf = NULL;
            break;
        }
        n += (size_t)got;
        if ((size_t)got < want)
            break; /* the end */
    }
    vma_in_free(in);
    if (buf && *too_long) {
        free(buf);
        buf = NULL;
    }
    *len = n;
    return buf;
}

typedef struct {
    uint64_t off;
    size_t n;
    ssize_t got[2];
    uint8_t *buf[2];
} one_read;

static void one_file(const uint8_t *data, size_t size)
{
    int fd = fuzz_memfd(data, size);
    GError *e = NULL;
    vma_src *s = vma_src_open(fd, &e);
    if (!s) {
        fuzz_check_error(e);
        close(fd);
        return;
    }
    uint64_t total = vma_src_size(s);
    vma_src_set_cache(s, 1); /* two frames: the others are decoded again, mapped or spilled */
    vma_src_enable_spill(s, fuzz_tmpdir(), 4u << 20);
    fuzz_rng rng;
    fuzz_rng_init(&rng, data, size);
    one_read rd[N_READS];
    for (int i = 0; i < N_READS; i++) {
        uint64_t r = fuzz_rng_next(&rng);
        /* the start, the end, and places anywhere (half of them past a frame's
         * first 64 KiB and across frames: long reads) */
        rd[i].off = i == 0 ? 0 : i == 1 ? (total ? total - 1 : 0) : (total ? r % total : 0);
        rd[i].n = 1 + (size_t)(fuzz_rng_next(&rng) % (i & 1 ? READ_MAX : 4096));
        for (int pass = 0; pass < 2; pass++) {
            rd[i].buf[pass] = malloc(rd[i].n);
            if (!rd[i].buf[pass])
                abort();
        }
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < N_READS; i++) {
            int k = pass ? N_READS - 1 - i : i; /* the second pass backwards: out of order */
            one_read *x = &rd[k];
            x->got[pass] = vma_src_pread(s, x->buf[pass], x->n, x->off, &e);
            uint64_t want = x->off >= total ? 0 : MIN((uint64_t)x->n, total - x->off);
            if (x->got[pass] < 0)
                fuzz_check_error(e);
            else if ((uint64_t)x->got[pass] != want || e)
                abort();
            e = NULL;
        }
    uint8_t end;
    ssize_t at_end = vma_src_pread(s, &end, 1, total, &e);
    if (at_end < 0)
        fuzz_check_error(e);
    else if (at_end != 0 || e)
        abort();
    vma_src_stats st;
    vma_src_get_stats(s, &st);
    vma_compress comp = vma_src_compression(s);
    vma_src_free(s);
    close(fd);

    if (at_end == 0) {
        /* every frame checked: every read succeeded, the two passes agree */
        for (int i = 0; i < N_READS; i++)
            if (rd[i].got[0] < 0 || rd[i].got[1] != rd[i].got[0] ||
                memcmp(rd[i].buf[0], rd[i].buf[1], (size_t)rd[i].got[0]) != 0) {
                fprintf(stderr, "read %d (%zu at %" G_GUINT64_FORMAT "): %zd then %zd\n", i,
                        rd[i].n, rd[i].off, rd[i].got[0], rd[i].got[1]);
                abort();
            }
        size_t len = 0;
        int too_long = 0;
        uint8_t *seq = sequential(data, size, &len, &too_long);
        if (!seq && !too_long) {
            /* random access accepted what a reader from start to end refuses */
            fprintf(stderr, "the random source read all of a %s file that does not decode "
                    "from start to end\n", comp == VMA_COMPRESS_ZSTD ? "zstd" : "plain");
            abort();
        }
        if (seq && len != total) {
            fprintf(stderr, "sizes differ: %zu from start to end, %" G_GUINT64_FORMAT " at random\n",
                    len, total);
            abort();
        }
        for (int i = 0; seq && i < N_READS; i++)
            if (rd[i].got[0] > 0 && memcmp(rd[i].buf[0], seq + rd[i].off, (size_t)rd[i].got[0]) != 0) {
                fprintf(stderr, "read %d (%zu at %" G_GUINT64_FORMAT "): other bytes than from "
                        "start to end\n", i, rd[i].n, rd[i].off);
                abort();
            }
        free(seq);
    }
    (void)st;
    for (int i = 0; i < N_READS; i++) {
        free(rd[i].buf[0]);
        free(rd[i].buf[1]);
    }
}

/* bytes of zstd blocks of every kind, from the input read as steps of
 * three bytes (kind, length, byte): a run of one byte (RLE blocks), the
 * input's next bytes (text or noise), or noise (raw blocks); at most 4 MiB */
static uint8_t *blocks_of(const uint8_t *data, size_t size, size_t *len)
{
    size_t cap = 4u << 20, n = 0, at = 0;
    uint8_t *out = malloc(cap);
    if (!out)
        abort();
    uint32_t x = 2463534242u;
    for (size_t i = 0; i + 3 <= size && n < cap; i += 3) {
        size_t k = MIN((size_t)(data[i + 1] + 1) * 1024, cap - n);
        switch (data[i] % 3) {
        case 0:
            memset(out + n, data[i + 2], k);
            break;
        case 1:
            for (size_t j = 0; j < k; j++)
                out[n + j] = data[(at++) % size];
            break;
        default:
            for (size_t j = 0; j < k; j++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                out[n + j] = (uint8_t)(x >> 24);
            }
        }
        n += k;
    }
    *len = n;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_file(data, size);
    static const uint8_t zstd_magic[4] = {0x28, 0xb5, 0x2f, 0xfd};
    if (size >= 4 && memcmp(data, zstd_magic, 4) == 0)
        return 0;
    /* the input as the bytes of a seekable .vma.zst the harness makes: the
     * frame size, the lie and where from the input's last bytes */
    const uint8_t *t = size >= 4 ? data + size - 4 : (const uint8_t *)"\0\0\0\0";
    size_t frame = (size_t)256 << (t[0] % 9);          /* 256 bytes to 64 KiB */
    int lie = t[1] % (2 * LIE_COUNT) < LIE_COUNT ? LIE_NONE : t[1] % LIE_COUNT;
    unsigned which = t[2] % 8;
    int delta = (int)(int8_t)t[3];
    unsigned pad = (unsigned)t[3] * 17;
    size_t len = 0;
    uint8_t *z = fuzz_make_seekable(data, size, frame, lie, which, delta, pad, &len);
    one_file(z, len);
    free(z);
    /* the same made of blocks of every kind, in frames of 128 KiB to 2 MiB
     * (several zstd blocks each: block maps of many runs) */
    size_t blen = 0;
    uint8_t *b = blocks_of(data, size, &blen);
    z = fuzz_make_seekable(b, blen, (size_t)128 << (10 + t[0] % 5), lie, which, delta, pad, &len);
    one_file(z, len);
    free(z);
    free(b);
    return 0;
}
