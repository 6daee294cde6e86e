/* test_lzop.c - the lzop decoder (src/lib/codec/lzop.c) on files written by
 * the real lzop program (every option that changes the format), read in
 * pieces of every size, cut at many places, damaged, and forged; and the
 * lzop files our writer makes (src/lib/codec/output.c), for every level,
 * against the lzop program. */
#include "check.h"
#include "access/access.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

typedef struct {
    const uint8_t *p;
    size_t len, pos;
} mem_in;

static ssize_t mem_read(void *ctx, void *buf, size_t n, GError **err)
{
    (void)err;
    mem_in *m = ctx;
    size_t k = MIN(n, m->len - m->pos);
    memcpy(buf, m->p + m->pos, k);
    m->pos += k;
    return (ssize_t)k;
}

/* decode all of data in reads of `piece` bytes: the bytes (len in *out_len),
 * and the error that ended it (NULL at a clean end) */
static uint8_t *decode_all(const uint8_t *data, size_t len, size_t piece, size_t *out_len,
                           GError **err)
{
    mem_in m = {data, len, 0};
    vma_lzop *z = vma_lzop_new(mem_read, &m);
    GByteArray *out = g_byte_array_new();
    uint8_t *buf = g_malloc(piece);
    for (;;) {
        GError *e = NULL;
        ssize_t r = vma_lzop_read(z, buf, piece, &e);
        if (r > 0)
            g_byte_array_append(out, buf, (guint)r);
        if (e) {
            g_propagate_error(err, e);
            break;
        }
        if ((size_t)r < piece)
            break;
    }
    g_free(buf);
    vma_lzop_free(z);
    *out_len = out->len;
    return g_byte_array_free(out, FALSE);
}

/* 3 MiB: random, text-like and zero pieces, so that lzop writes stored and
 * compressed blocks */
static uint8_t *sample(size_t *len)
{
    size_t n = 3u << 20;
    uint8_t *p = g_malloc0(n);
    GRand *rnd = g_rand_new_with_seed(7);
    static const char *const words[] = {"backup ", "archive ", "cluster ", "the ", "disk "};
    for (size_t off = 0; off < n; off += 64 * 1024) {
        switch ((off / (64 * 1024)) % 3) {
        case 0:
            for (size_t i = 0; i < 64 * 1024; i++)
                p[off + i] = (uint8_t)g_rand_int(rnd);
            break;
        case 1:
            for (size_t i = 0; i < 64 * 1024;) {
                const char *w = words[g_rand_int_range(rnd, 0, 5)];
                size_t k = MIN(strlen(w), 64 * 1024 - i);
                memcpy(p + off + i, w, k);
                i += k;
            }
            break;
        default:
            break; /* zeros */
        }
    }
    g_rand_free(rnd);
    *len = n;
    return p;
}

/* lzop OPTS of the file `in`, through a pipe (as vzdump pipes it) */
static uint8_t *lzop_of(const char *in, const char *opts, size_t *len)
{
    char *out = g_strdup_printf("%s/s.lzo", tmpdir);
    char *cmd = g_strdup_printf("cat %s | lzop -c %s > %s", in, opts, out);
    uint8_t *data = NULL;
    gsize n = 0;
    if (system(cmd) == 0)
        g_file_get_contents(out, (char **)&data, &n, NULL);
    *len = n;
    g_free(cmd);
    g_free(out);
    return data;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* a forged file: magic, a header with method and flags, its checksum, then
 * `tail` */
static GByteArray *forged(uint8_t method, uint32_t flags, const uint8_t *tail, size_t tail_len)
{
    static const uint8_t magic[9] = {0x89, 'L', 'Z', 'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a};
    uint8_t h[64];
    size_t n = 0;
    h[n++] = 0x10, h[n++] = 0x40;       /* version 0x1040 */
    h[n++] = 0x20, h[n++] = 0xa0;       /* lib version */
    h[n++] = 0x09, h[n++] = 0x40;       /* version needed */
    h[n++] = method, h[n++] = 1;        /* method, level */
    put_be32(h + n, flags), n += 4;
    put_be32(h + n, 0100644), n += 4;   /* mode */
    put_be32(h + n, 0), n += 4;         /* mtime low */
    put_be32(h + n, 0), n += 4;         /* mtime high */
    h[n++] = 0;                          /* no name */
    put_be32(h + n, (uint32_t)adler32(1, h, (uInt)n)), n += 4;
    GByteArray *a = g_byte_array_new();
    g_byte_array_append(a, magic, 9);
    g_byte_array_append(a, h, (guint)n);
    g_byte_array_append(a, tail, (guint)tail_len);
    return a;
}

static int error_code(const uint8_t *data, size_t len, char **msg)
{
    size_t n;
    GError *e = NULL;
    g_free(decode_all(data, len, 1u << 20, &n, &e));
    int code = e ? e->code : 0;
    if (msg)
        *msg = e ? g_strdup(e->message) : NULL;
    g_clear_error(&e);
    return code;
}

static void test_real_files(const char *in, const uint8_t *orig, size_t olen)
{
    static const char *const opts[] = {"-1", "-3", "-9", "--crc32", "-F", "--no-name"};
    static const size_t pieces[] = {1, 4096, 65536 + 7, 4u << 20};
    for (size_t i = 0; i < G_N_ELEMENTS(opts); i++) {
        size_t len;
        uint8_t *z = lzop_of(in, opts[i], &len);
        CHECK(z && len > 0, "lzop %s ran", opts[i]);
        if (!z)
            continue;
        for (size_t k = 0; k < G_N_ELEMENTS(pieces); k++) {
            if (pieces[k] == 1 && i > 0)
                continue; /* byte by byte once is enough */
            size_t n;
            GError *e = NULL;
            uint8_t *d = decode_all(z, len, pieces[k], &n, &e);
            CHECK(!e && n == olen && memcmp(d, orig, olen) == 0,
                  "lzop %s read in pieces of %zu: the same bytes (%zu of %zu; %s)", opts[i],
                  pieces[k], n, olen, e ? e->message : "no error");
            g_clear_error(&e);
            g_free(d);
        }
        g_free(z);
    }
}

static void test_concatenated_and_cut(const char *in, const uint8_t *orig, size_t olen)
{
    size_t len;
    uint8_t *z = lzop_of(in, "-3", &len);
    if (!z) {
        CHECK(0, "lzop ran");
        return;
    }
    /* two files one after the other: both, as lzop -dc reads them */
    uint8_t *two = g_malloc(2 * len);
    memcpy(two, z, len);
    memcpy(two + len, z, len);
    size_t n;
    GError *e = NULL;
    uint8_t *d = decode_all(two, 2 * len, 1u << 20, &n, &e);
    CHECK(!e && n == 2 * olen && memcmp(d, orig, olen) == 0 && memcmp(d + olen, orig, olen) == 0,
          "two concatenated lzop files decode to both");
    g_clear_error(&e);
    g_free(d);
    g_free(two);

    /* cut anywhere: VMA_ERR_INCOMPLETE, and what was decoded is a prefix of
     * the original */
    int bad = 0;
    for (size_t cut = 0; cut < len; cut += len / 97 + 1) {
        d = decode_all(z, cut, 1u << 20, &n, &e);
        if (!e || e->code != VMA_ERR_INCOMPLETE || n > olen || (n > 0 && memcmp(d, orig, n) != 0))
            bad++;
        g_clear_error(&e);
        g_free(d);
    }
    CHECK(bad == 0, "a cut lzop file: truncated, a prefix decoded (%d bad cuts)", bad);
    d = decode_all(z, len - 4, 1u << 20, &n, &e);
    CHECK(e && e->code == VMA_ERR_INCOMPLETE && n == olen,
          "only the end marker missing: every byte, and truncated");
    g_clear_error(&e);
    g_free(d);

    /* damage: one flipped byte in the data, in the header */
    uint8_t *x = g_memdup2(z, len);
    x[len / 2] ^= 0x55;
    char *msg = NULL;
    CHECK(error_code(x, len, &msg) == VMA_ERR_FORMAT &&
          (strstr(msg, "checksum") || strstr(msg, "does not decompress")),
          "a damaged block: refused (%s)", msg ? msg : "none");
    g_free(msg);
    /* the first block is random data, stored as it is: only the checksum
     * of the decompressed bytes sees damage there */
    memcpy(x, z, len);
    x[len / 100] ^= 0x55;
    CHECK(error_code(x, len, &msg) == VMA_ERR_FORMAT && strstr(msg, "checksum of a block"),
          "a damaged stored block: the checksum (%s)", msg ? msg : "none");
    g_free(msg);
    /* damage in two later blocks (decoded by the two threads of a batch):
     * the blocks before the first decoded, whole, the first one named */
    memcpy(x, z, len);
    size_t first = len * 5 / 8, second = len * 7 / 8;
    x[first] ^= 0x55;
    x[second] ^= 0x55;
    size_t got;
    GError *de = NULL;
    uint8_t *dd = decode_all(x, len, 4u << 20, &got, &de);
    const char *at = de ? strstr(de->message, "at byte ") : NULL;
    uint64_t where = at ? g_ascii_strtoull(at + 8, NULL, 10) : 0;
    CHECK(de && de->code == VMA_ERR_FORMAT && got > 0 && got % (256u << 10) == 0 &&
          got < olen && memcmp(dd, orig, got) == 0 && where > first && where < second,
          "damage in two blocks: %zu bytes before the first, it is named (%s)", got,
          de ? de->message : "none");
    g_clear_error(&de);
    g_free(dd);
    memcpy(x, z, len);
    x[20] ^= 0x01;
    CHECK(error_code(x, len, &msg) == VMA_ERR_FORMAT && strstr(msg, "header checksum"),
          "a damaged header: its checksum (%s)", msg ? msg : "none");
    g_free(msg);
    memcpy(x, z, len);
    x[0] = 'X';
    CHECK(error_code(x, len, &msg) == VMA_ERR_FORMAT && strstr(msg, "not an lzop file"),
          "no magic: not an lzop file (%s)", msg ? msg : "none");
    g_free(msg);
    g_free(x);
    g_free(z);
}

static void test_forged(void)
{
    uint8_t t[16];
    char *msg = NULL;
    /* a block claiming 1 GiB */
    put_be32(t, 1u << 30), put_be32(t + 4, 100);
    GByteArray *a = forged(1, 0x03000001u, t, 8);
    CHECK(error_code(a->data, a->len, &msg) == VMA_ERR_FORMAT && strstr(msg, "64 MiB"),
          "a block over 64 MiB is refused (%s)", msg ? msg : "none");
    g_free(msg);
    g_byte_array_free(a, TRUE);
    /* compressed longer than decompressed */
    put_be32(t, 4096), put_be32(t + 4, 8192);
    a = forged(1, 0x03000000u, t, 8);
    CHECK(error_code(a->data, a->len, &msg) == VMA_ERR_FORMAT && strstr(msg, "out of range"),
          "a compressed length above the block's is refused (%s)", msg ? msg : "none");
    g_free(msg);
    g_byte_array_free(a, TRUE);
    /* garbage that lzo1x_decompress_safe must reject, no checksums to stop it first */
    uint8_t g[8 + 64];
    put_be32(g, 4096), put_be32(g + 4, 64);
    memset(g + 8, 0xff, 64);
    a = forged(1, 0x03000000u, g, sizeof g);
    CHECK(error_code(a->data, a->len, &msg) == VMA_ERR_FORMAT && strstr(msg, "decompress"),
          "garbage LZO data is refused (%s)", msg ? msg : "none");
    g_free(msg);
    g_byte_array_free(a, TRUE);
    /* an unknown method, a filter */
    put_be32(t, 0);
    a = forged(9, 0x03000000u, t, 4);
    CHECK(error_code(a->data, a->len, &msg) == VMA_ERR_FORMAT && strstr(msg, "method 9"),
          "an unknown method is refused (%s)", msg ? msg : "none");
    g_free(msg);
    g_byte_array_free(a, TRUE);
    /* an empty file (header, end marker): no bytes, no error */
    a = forged(1, 0x03000001u, t, 4);
    CHECK(error_code(a->data, a->len, NULL) == 0, "an lzop file of nothing decodes to nothing");
    g_byte_array_free(a, TRUE);
}

/* our writer's lzop file of orig at a level (threads workers, written in
 * pieces of 100000 bytes): its bytes, or NULL */
static uint8_t *our_lzop(const uint8_t *orig, size_t olen, int level, int threads, size_t *len)
{
    char *path = g_strdup_printf("%s/ours.lzo", tmpdir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    GError *e = NULL;
    vma_out *o = fd >= 0 ? vma_out_new(fd, VMA_COMPRESS_LZO, level, threads, &e) : NULL;
    int rc = o ? 0 : -1;
    for (size_t at = 0; rc == 0 && at < olen; at += 100000)
        rc = vma_out_write(o, orig + at, MIN((size_t)100000, olen - at), &e);
    if (rc == 0)
        rc = vma_out_finish(o, &e);
    CHECK(rc == 0, "level %d: our lzop file: %s", level, e ? e->message : "");
    g_clear_error(&e);
    vma_out_free(o);
    if (fd >= 0)
        close(fd);
    uint8_t *data = NULL;
    gsize n = 0;
    char *cmd = g_strdup_printf("lzop -t -q %s", path);
    CHECK(rc == 0 && system(cmd) == 0, "level %d: lzop -t accepts our file", level);
    if (rc == 0)
        g_file_get_contents(path, (char **)&data, &n, NULL);
    g_free(cmd);
    unlink(path);
    g_free(path);
    *len = n;
    return data;
}

/* what our writer makes is what `lzop -c -LEVEL` makes of the same bytes
 * read from a pipe, but for the header's mode and time: lzop -t and lzop
 * -d take it, for every level; the bytes do not depend on the threads */
static void test_our_files(const char *in, const uint8_t *orig, size_t olen)
{
    enum { HEADER = 9 + 29 }; /* no name: the same length as lzop's */
    for (int level = 1; level <= 9; level++) {
        size_t n, n3, rn;
        uint8_t *ours = our_lzop(orig, olen, level, 1, &n);
        uint8_t *ours3 = our_lzop(orig, olen, level, 3, &n3);
        char *opt = g_strdup_printf("-%d", level);
        uint8_t *ref = lzop_of(in, opt, &rn);
        g_free(opt);
        CHECK(ours && ref && n == rn && memcmp(ours + HEADER, ref + HEADER, n - HEADER) == 0 &&
              memcmp(ours, ref, 15) == 0 && ours[15] == ref[15] && ours[16] == ref[16],
              "level %d: our file is lzop's (%zu and %zu bytes)", level, n, rn);
        CHECK(ours && ours3 && n == n3 && memcmp(ours + HEADER, ours3 + HEADER, n - HEADER) == 0,
              "level %d: the same bytes with 1 and 3 threads", level);
        size_t dlen = 0;
        GError *e = NULL;
        uint8_t *back = ours ? decode_all(ours, n, 65536, &dlen, &e) : NULL;
        CHECK(back && !e && dlen == olen && memcmp(back, orig, olen) == 0,
              "level %d: our file decodes to the bytes written", level);
        g_clear_error(&e);
        g_free(back);
        g_free(ours);
        g_free(ours3);
        g_free(ref);
    }
}

void test_lzop(void)
{
    size_t olen;
    uint8_t *orig = sample(&olen);
    char *in = g_strdup_printf("%s/lzop-in.bin", tmpdir);
    if (!g_file_set_contents(in, (const char *)orig, (gssize)olen, NULL)) {
        CHECK(0, "cannot write %s", in);
    } else if (system("lzop -V >/dev/null 2>&1") != 0) {
        CHECK(0, "the lzop program is needed for these tests (apt-get install lzop)");
    } else {
        test_real_files(in, orig, olen);
        test_concatenated_and_cut(in, orig, olen);
        test_our_files(in, orig, olen);
    }
    test_forged();
    unlink(in);
    g_free(in);
    g_free(orig);
}
