/* test_access.c - unit tests of random access: the index (plain and seekable
 * zstd archives), reads at any offset from several threads, the map of
 * data, zero and missing pieces, and the index cache. */
#define _GNU_SOURCE
#include "vma.h"
#include "internal.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define DISK0 (40u * VMA_CLUSTER_SIZE + 5120u)  /* a short last cluster */
#define DISK1 (300u * VMA_CLUSTER_SIZE)

static uint32_t rnd(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* an image with every kind of cluster: zero, full, mixed, and a checkerboard */
static uint8_t *make_image(size_t size, uint32_t seed)
{
    uint8_t *img = g_malloc0(size);
    for (size_t c = 0; c * VMA_CLUSTER_SIZE < size; c++) {
        unsigned kind = rnd(&seed) % 4;
        for (unsigned j = 0; j < VMA_BLOCKS_PER_CLUSTER; j++) {
            size_t off = c * VMA_CLUSTER_SIZE + j * VMA_BLOCK_SIZE;
            gboolean data = kind == 1 || (kind == 2 && (rnd(&seed) & 1)) || (kind == 3 && j % 2);
            for (size_t k = off; data && k < MIN(size, off + VMA_BLOCK_SIZE); k++)
                img[k] = (uint8_t)(rnd(&seed) | 1);
        }
    }
    return img;
}

/* an archive of two disks, clusters interleaved, disk1's in reverse order
 * (as a live backup may send them) */
static char *make_archive(const char *name, const uint8_t *d0, const uint8_t *d1)
{
    char *path = g_strdup_printf("%s/%s", tmpdir, name);
    GError *e = NULL;
    vma_writer *w = vma_writer_create(path, NULL, &e);
    CHECK(w != NULL, "create %s: %s", name, e ? e->message : "");
    if (!w)
        return path;
    vma_writer_add_device(w, "drive-scsi0", DISK0, NULL);
    vma_writer_add_device(w, "drive-scsi1", DISK1, NULL);
    uint8_t buf[VMA_CLUSTER_SIZE];
    uint32_t n0 = (uint32_t)vma_clusters(DISK0), n1 = (uint32_t)vma_clusters(DISK1);
    for (uint32_t c = 0; c < MAX(n0, n1); c++) {
        if (c < n0) {
            memset(buf, 0, sizeof(buf));
            memcpy(buf, d0 + (size_t)c * VMA_CLUSTER_SIZE,
                   MIN((size_t)VMA_CLUSTER_SIZE, DISK0 - (size_t)c * VMA_CLUSTER_SIZE));
            vma_writer_write_cluster(w, 1, c, vma_is_zero(buf, sizeof(buf)) ? NULL : buf, NULL);
        }
        if (c < n1)
            vma_writer_write_cluster(w, 2, n1 - 1 - c, d1 + (size_t)(n1 - 1 - c) * VMA_CLUSTER_SIZE,
                                     NULL);
    }
    CHECK(vma_writer_close(w, &e) == 0, "close %s: %s", name, e ? e->message : "");
    g_clear_error(&e);
    vma_writer_free(w);
    return path;
}

typedef struct {
    vma_archive *a;
    const uint8_t *img;
    size_t size;
    uint8_t dev;
    uint32_t seed;
    int bad;
} reads;

static gpointer random_reads(gpointer p)
{
    reads *r = p;
    uint8_t *buf = g_malloc(300000);
    for (int i = 0; i < 400; i++) {
        uint64_t off = rnd(&r->seed) % r->size;
        size_t n = rnd(&r->seed) % 300000;
        GError *e = NULL;
        ssize_t got = vma_archive_pread(r->a, r->dev, buf, n, off, &e);
        size_t want = (size_t)MIN((uint64_t)n, r->size - off);
        if (got != (ssize_t)want || memcmp(buf, r->img + off, want) != 0)
            r->bad++;
        g_clear_error(&e);
    }
    g_free(buf);
    return NULL;
}

static int count_piece(const vma_piece *p, void *ud)
{
    uint64_t *sums = ud;
    sums[p->kind] += p->length;
    sums[3]++;
    return 0;
}

static void check_archive(const char *path, const uint8_t *d0, const uint8_t *d1, const char *what)
{
    GError *e = NULL;
    vma_archive_opts o = {.cache = VMA_CACHE_OFF};
    vma_archive *a = vma_archive_open(path, &o, &e);
    CHECK(a != NULL, "%s: open: %s", what, e ? e->message : "");
    g_clear_error(&e);
    if (!a)
        return;
    CHECK(vma_archive_device_length(a, 1) == ((DISK0 + 511) & ~511u), "%s: length", what);
    /* several threads at once */
    reads r[4];
    GThread *th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (reads){a, i % 2 ? d1 : d0, i % 2 ? DISK1 : DISK0, (uint8_t)(i % 2 + 1),
                       (uint32_t)i * 7919u + 1, 0};
        th[i] = g_thread_new("reads", random_reads, &r[i]);
    }
    for (int i = 0; i < 4; i++) {
        g_thread_join(th[i]);
        CHECK(r[i].bad == 0, "%s: thread %d: %d reads differ", what, i, r[i].bad);
    }
    /* the whole disk, and past its end */
    uint8_t *all = g_malloc(DISK1);
    CHECK(vma_archive_pread(a, 2, all, DISK1, 0, &e) == (ssize_t)DISK1 &&
          memcmp(all, d1, DISK1) == 0, "%s: whole disk", what);
    CHECK(vma_archive_pread(a, 2, all, 10, DISK1, &e) == 0, "%s: at the end", what);
    g_free(all);
    /* the map: zero and data add up to the disk; zero pieces read as zeros */
    uint64_t sums[4] = {0};
    CHECK(vma_archive_map(a, 2, 0, DISK1, count_piece, sums, &e) == 0, "%s: map", what);
    CHECK(sums[VMA_PIECE_DATA] + sums[VMA_PIECE_ZERO] == DISK1 && sums[VMA_PIECE_MISSING] == 0,
          "%s: map covers the disk", what);
    uint64_t zeros = 0;
    for (size_t b = 0; b < DISK1; b += VMA_BLOCK_SIZE)
        zeros += vma_is_zero(d1 + b, VMA_BLOCK_SIZE) ? VMA_BLOCK_SIZE : 0;
    CHECK(sums[VMA_PIECE_ZERO] <= zeros, "%s: no data block called zero", what);
    CHECK(vma_archive_pread(a, 7, all, 1, 0, &e) < 0 && e && e->code == VMA_ERR_ARG,
          "%s: no such device", what);
    g_clear_error(&e);
    vma_archive_free(a);
}

/* a plain archive recompressed by hand into zstd's seekable format: frames
 * of frame_bytes, then the seek table */
static char *make_seekable(const char *plain, const char *name, size_t frame_bytes)
{
    gchar *data;
    gsize len;
    char *path = g_strdup_printf("%s/%s", tmpdir, name);
    if (!g_file_get_contents(plain, &data, &len, NULL))
        return path;
    GByteArray *out = g_byte_array_new(), *table = g_byte_array_new();
    uint32_t n = 0;
    for (size_t off = 0; off < len; off += frame_bytes, n++) {
        size_t k = MIN(frame_bytes, len - off);
        size_t cap = ZSTD_compressBound(k);
        uint8_t *c = g_malloc(cap);
        size_t cs = ZSTD_compress(c, cap, data + off, k, 3);
        g_byte_array_append(out, c, (guint)cs);
        uint32_t le[2] = {GUINT32_TO_LE((uint32_t)cs), GUINT32_TO_LE((uint32_t)k)};
        g_byte_array_append(table, (uint8_t *)le, 8);
        g_free(c);
    }
    uint32_t head[2] = {GUINT32_TO_LE(0x184D2A5Eu), GUINT32_TO_LE(table->len + 9)};
    g_byte_array_append(out, (uint8_t *)head, 8);
    g_byte_array_append(out, table->data, table->len);
    uint32_t nf = GUINT32_TO_LE(n), magic = GUINT32_TO_LE(0x8F92EAB1u);
    uint8_t desc = 0;
    g_byte_array_append(out, (uint8_t *)&nf, 4);
    g_byte_array_append(out, &desc, 1);
    g_byte_array_append(out, (uint8_t *)&magic, 4);
    g_file_set_contents(path, (gchar *)out->data, out->len, NULL);
    g_byte_array_free(out, TRUE);
    g_byte_array_free(table, TRUE);
    g_free(data);
    return path;
}

static void check_refused(const char *path, int code, const char *what)
{
    GError *e = NULL;
    vma_archive_opts o = {.cache = VMA_CACHE_OFF};
    vma_archive *a = vma_archive_open(path, &o, &e);
    CHECK(a == NULL && e && e->code == code, "%s: refused (%s)", what, e ? e->message : "opened");
    g_clear_error(&e);
    vma_archive_free(a);
}

static void test_cache(const char *path, const uint8_t *d0)
{
    char *dir = g_strdup_printf("%s/cache", tmpdir);
    vma_archive_opts o = {.cache = VMA_CACHE_ON, .cache_dir = dir};
    GError *e = NULL;
    vma_archive *a = vma_archive_open(path, &o, &e);
    CHECK(a && !vma_archive_from_cache(a), "first open builds the index");
    vma_archive_free(a);
    a = vma_archive_open(path, &o, &e);
    CHECK(a && vma_archive_from_cache(a), "second open reads the cache");
    uint8_t buf[8192];
    CHECK(a && vma_archive_pread(a, 1, buf, sizeof(buf), 70000, &e) == (ssize_t)sizeof(buf) &&
          memcmp(buf, d0 + 70000, sizeof(buf)) == 0, "reads through the cached index");
    vma_archive_free(a);
    /* a damaged cache is not used */
    GDir *gd = g_dir_open(dir, 0, NULL);
    const char *n = gd ? g_dir_read_name(gd) : NULL;
    char *idx = n ? g_build_filename(dir, n, NULL) : NULL;
    if (gd)
        g_dir_close(gd);
    int fd = idx ? open(idx, O_WRONLY) : -1;
    CHECK(fd >= 0, "the cache file is there");
    if (fd >= 0) {
        CHECK(pwrite(fd, "\xff\xff\xff\xff", 4, 100) == 4, "damage it");
        close(fd);
    }
    a = vma_archive_open(path, &o, &e);
    CHECK(a && !vma_archive_from_cache(a), "a damaged cache is built again");
    vma_archive_free(a);
    g_clear_error(&e);
    g_free(idx);
    g_free(dir);
}

/* an archive cut at an extent boundary: the clusters after the cut are
 * missing (an error to read, "missing" in the map), the others read fine */
static void test_missing(const char *plain, const uint8_t *d1)
{
    GError *e = NULL;
    vma_reader *r = vma_reader_open(plain, &e);
    vma_extent ext;
    uint64_t cut = 0;
    for (int i = 0; r && i < 4 && vma_reader_next(r, &ext, NULL) > 0; i++)
        cut = vma_reader_offset(r);
    vma_reader_free(r);
    char *path = g_strdup_printf("%s/cut.vma", tmpdir);
    gchar *data;
    gsize len;
    if (cut && g_file_get_contents(plain, &data, &len, NULL)) {
        g_file_set_contents(path, data, (gssize)cut, NULL);
        g_free(data);
    }
    vma_archive_opts o = {.cache = VMA_CACHE_OFF};
    vma_archive *a = vma_archive_open(path, &o, &e);
    CHECK(a != NULL, "a cut archive opens: %s", e ? e->message : "");
    g_clear_error(&e);
    if (a) {
        uint64_t sums[4] = {0};
        vma_archive_map(a, 2, 0, DISK1, count_piece, sums, NULL);
        CHECK(sums[VMA_PIECE_MISSING] > 0 && sums[VMA_PIECE_MISSING] < DISK1, "missing pieces");
        uint8_t buf[4096];
        /* disk1 was written from its end: its end is there, its start is not */
        CHECK(vma_archive_pread(a, 2, buf, sizeof(buf), DISK1 - sizeof(buf), &e) == sizeof(buf) &&
              memcmp(buf, d1 + DISK1 - sizeof(buf), sizeof(buf)) == 0, "the end reads");
        CHECK(vma_archive_pread(a, 2, buf, sizeof(buf), 0, &e) < 0 && e &&
              e->code == VMA_ERR_MISSING, "the start is missing");
        g_clear_error(&e);
    }
    vma_archive_free(a);
    g_free(path);
}

void test_access(void)
{
    uint8_t *d0 = make_image(DISK0, 11), *d1 = make_image(DISK1, 22);
    char *plain = make_archive("ra.vma", d0, d1);
    check_archive(plain, d0, d1, "plain");
    char *zst = make_seekable(plain, "ra.vma.zst", 1 << 20);
    check_archive(zst, d0, d1, "seekable zstd, 1 MiB frames");
    char *zst2 = make_seekable(plain, "ra2.vma.zst", 12345);
    check_archive(zst2, d0, d1, "seekable zstd, odd frames");
    test_cache(plain, d0);

    /* one zstd stream (Proxmox's .vma.zst) and gzip are refused with a reason */
    char *one = g_strdup_printf("%s/one.vma.zst", tmpdir);
    char *cmd = g_strdup_printf("zstd -q -c %s > %s && gzip -c %s > %s/one.vma.gz", plain, one,
                                plain, tmpdir);
    CHECK(system(cmd) == 0, "zstd and gzip");
    check_refused(one, VMA_ERR_NOT_SEEKABLE, "one zstd stream");
    char *gz = g_strdup_printf("%s/one.vma.gz", tmpdir);
    check_refused(gz, VMA_ERR_NOT_SEEKABLE, "gzip");
    check_refused("-", VMA_ERR_NOT_SEEKABLE, "standard input");

    test_missing(plain, d1);

    /* a damaged extent header is refused, as the reader refuses it */
    char *bad = g_strdup_printf("%s/bad.vma", tmpdir);
    gchar *data;
    gsize len;
    if (g_file_get_contents(plain, &data, &len, NULL)) {
        const vma_header *h;
        vma_reader *r = vma_reader_open(plain, NULL);
        h = r ? vma_reader_header(r) : NULL;
        size_t at = h ? h->header_size + 100 : 13000; /* in the first extent header */
        vma_reader_free(r);
        data[at % len] ^= 0x40;
        g_file_set_contents(bad, data, (gssize)len, NULL);
        g_free(data);
        check_refused(bad, VMA_ERR_FORMAT, "a damaged extent");
    }
    g_free(bad);
    g_free(cmd);
    g_free(gz);
    g_free(one);
    g_free(zst);
    g_free(zst2);
    g_free(plain);
    g_free(d0);
    g_free(d1);
}
