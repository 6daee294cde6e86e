/* test_access.c - unit tests of random access: the index (plain and seekable
 * zstd archives), reads at any offset from several threads, the map of
 * data, zero and missing pieces, the index cache, and the block maps of a
 * seekable .vma.zst (raw and RLE blocks read without decoding), and its
 * spill file (frames read out of order kept decoded). */
#define _GNU_SOURCE
#include "vma.h"
#include "access/access.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#define DISK0 (40u * VMA_CLUSTER_SIZE + 5120u)  /* a short last cluster */
#define DISK1 (300u * VMA_CLUSTER_SIZE)
/* the frames a seek table may have (random.c's MAX_FRAMES) */
#define MAX_FRAMES_TESTED (1u << 24)

static uint32_t rnd(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* an image with every kind of cluster: zero, full, mixed, and a checkerboard
 * (check.h: test_store.c's images too) */
uint8_t *make_image(size_t size, uint32_t seed)
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

/* a read's wait for the background decoder: counted, from the threads
 * that read (the decoder's status taken while it decodes) */
static int count_wait(const vma_wait_info *w, void *ud)
{
    (void)w;
    g_atomic_int_inc((gint *)ud);
    return 0;
}

static void check_archive(const char *path, const uint8_t *d0, const uint8_t *d1, const char *what)
{
    GError *e = NULL;
    gint waits = 0;
    vma_archive_opts o = {.cache = VMA_CACHE_OFF, .wait = count_wait, .wait_ud = &waits};
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
 * of frame_bytes (with zstd's content checksum unless told not to), then
 * the seek table; *starts (if given) gets the frames' stream offsets and
 * the seek table's entries are at *table_at (the offset in the file) */
static char *make_seekable_ex(const char *plain, const char *name, size_t frame_bytes,
                              gboolean checksum, GArray *starts, uint64_t *table_at)
{
    gchar *data;
    gsize len;
    char *path = g_strdup_printf("%s/%s", tmpdir, name);
    if (!g_file_get_contents(plain, &data, &len, NULL))
        return path;
    GByteArray *out = g_byte_array_new(), *table = g_byte_array_new();
    uint32_t n = 0;
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, checksum ? 1 : 0);
    for (size_t off = 0; off < len; off += frame_bytes, n++) {
        size_t k = MIN(frame_bytes, len - off);
        size_t cap = ZSTD_compressBound(k);
        uint8_t *c = g_malloc(cap);
        size_t cs = ZSTD_compress2(cc, c, cap, data + off, k);
        if (starts) {
            uint64_t o = off;
            g_array_append_val(starts, o);
        }
        g_byte_array_append(out, c, (guint)cs);
        uint32_t le[2] = {GUINT32_TO_LE((uint32_t)cs), GUINT32_TO_LE((uint32_t)k)};
        g_byte_array_append(table, (uint8_t *)le, 8);
        g_free(c);
    }
    ZSTD_freeCCtx(cc);
    uint32_t head[2] = {GUINT32_TO_LE(0x184D2A5Eu), GUINT32_TO_LE(table->len + 9)};
    g_byte_array_append(out, (uint8_t *)head, 8);
    if (table_at)
        *table_at = out->len;
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

static char *make_seekable(const char *plain, const char *name, size_t frame_bytes)
{
    return make_seekable_ex(plain, name, frame_bytes, TRUE, NULL, NULL);
}

static void check_refused_with(const char *path, int code, const char *msg, const char *what)
{
    GError *e = NULL;
    vma_archive_opts o = {.cache = VMA_CACHE_OFF};
    vma_archive *a = vma_archive_open(path, &o, &e);
    /* the header opens; random access is refused when it is made */
    if (a && vma_archive_prepare(a, &e) == 0) {
        vma_archive_free(a);
        a = NULL;
        g_set_error(&e, VMA_ERROR, 0, "prepared");
    }
    CHECK(e && e->code == code && (!msg || strstr(e->message, msg)),
          "%s: refused (%s)", what, e ? e->message : "opened");
    g_clear_error(&e);
    vma_archive_free(a);
}

static void check_refused(const char *path, int code, const char *what)
{
    check_refused_with(path, code, NULL, what);
}

/* what is at the cache's path is opened only if it is a regular file, not
 * through a symbolic link, and read only if no larger than an index can be
 * (a is open on path, its index saved at idx) */
static void test_cache_files(vma_archive *a, const char *path, const vma_archive_opts *o,
                             const char *idx)
{
    const vma_header *h = vma_archive_header(a);
    uint8_t stamp[VMA_STAMP_SIZE] = {0};
    GError *e = NULL;
    gchar *good = NULL;
    gsize good_len = 0;
    CHECK(g_file_get_contents(idx, &good, &good_len, NULL), "the cache file reads");
    /* a link to a valid index elsewhere: not followed, the index is built
     * again and saved in the link's place */
    char *other = g_strdup_printf("%s.elsewhere", idx);
    g_file_set_contents(other, good, (gssize)good_len, NULL);
    unlink(idx);
    CHECK(symlink(other, idx) == 0, "a symbolic link to the index");
    CHECK(vma_index_load(idx, h, stamp, &e) == NULL && e && strstr(e->message, "symbolic link"),
          "cache: a symbolic link is not followed (%s)", e ? e->message : "loaded");
    g_clear_error(&e);
    vma_archive *b = vma_archive_open(path, o, &e);
    if (b)
        vma_archive_prepare(b, &e);
    struct stat st;
    CHECK(b && !vma_archive_from_cache(b) && lstat(idx, &st) == 0 && S_ISREG(st.st_mode),
          "cache: an index behind a link is built again, saved as a file (%s)",
          e ? e->message : "");
    g_clear_error(&e);
    vma_archive_free(b);
    gchar *still = NULL;
    gsize still_len = 0;
    CHECK(g_file_get_contents(other, &still, &still_len, NULL) && still_len == good_len &&
          memcmp(still, good, good_len) == 0, "cache: the file behind the link is untouched");
    g_free(still);
    /* a folder, a file of 3 GB (sparse): refused before anything is read */
    unlink(idx);
    CHECK(mkdir(idx, 0700) == 0, "a folder at the cache's path");
    CHECK(vma_index_load(idx, h, stamp, &e) == NULL && e && strstr(e->message, "not a regular file"),
          "cache: a folder is refused (%s)", e ? e->message : "loaded");
    g_clear_error(&e);
    rmdir(idx);
    int fd = open(idx, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)3 << 30) == 0, "a 3 GB cache file");
    if (fd >= 0)
        close(fd);
    CHECK(vma_index_load(idx, h, stamp, &e) == NULL && e &&
          strstr(e->message, "larger than an index can be"),
          "cache: a 3 GB file is not read (%s)", e ? e->message : "loaded");
    g_clear_error(&e);
    b = vma_archive_open(path, o, &e);
    if (b)
        vma_archive_prepare(b, &e);
    CHECK(b && !vma_archive_from_cache(b) && stat(idx, &st) == 0 && st.st_size < (1 << 20),
          "cache: a 3 GB file is replaced by the index (%s)", e ? e->message : "");
    g_clear_error(&e);
    vma_archive_free(b);
    unlink(other);
    g_free(other);
    g_free(good);
}

static void test_cache(const char *path, const uint8_t *d0)
{
    char *dir = g_strdup_printf("%s/cache", tmpdir);
    vma_archive_opts o = {.cache = VMA_CACHE_ON, .cache_dir = dir};
    GError *e = NULL;
    vma_archive *a = vma_archive_open(path, &o, &e);
    CHECK(a && vma_archive_prepare(a, &e) == 0 && !vma_archive_from_cache(a),
          "first open builds the index");
    vma_archive_free(a);
    a = vma_archive_open(path, &o, &e);
    CHECK(a && vma_archive_prepare(a, &e) == 0 && vma_archive_from_cache(a),
          "second open reads the cache");
    uint8_t buf[8192];
    CHECK(a && vma_archive_pread(a, 1, buf, sizeof(buf), 70000, &e) == (ssize_t)sizeof(buf) &&
          memcmp(buf, d0 + 70000, sizeof(buf)) == 0, "reads through the cached index");
    vma_archive_free(a);
    /* a damaged cache is not used */
    GDir *gd = g_dir_open(dir, 0, NULL);
    const char *n = NULL;
    while (gd && (n = g_dir_read_name(gd)) && !g_str_has_suffix(n, ".idx"))
        ;
    char *idx = gd && n ? g_build_filename(dir, n, NULL) : NULL;
    if (gd)
        g_dir_close(gd);
    int fd = idx ? open(idx, O_WRONLY) : -1;
    CHECK(fd >= 0, "the cache file is there");
    if (fd >= 0) {
        CHECK(pwrite(fd, "\xff\xff\xff\xff", 4, 100) == 4, "damage it");
        close(fd);
    }
    a = vma_archive_open(path, &o, &e);
    CHECK(a && vma_archive_prepare(a, &e) == 0 && !vma_archive_from_cache(a),
          "a damaged cache is built again");
    g_clear_error(&e);
    if (a && idx)
        test_cache_files(a, path, &o, idx);
    vma_archive_free(a);
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

/* ---- block maps ---- */

#define BM_CLUSTERS 480u
#define BM_DISK ((size_t)BM_CLUSTERS * VMA_CLUSTER_SIZE)

/* 80 random clusters (whole frames of raw blocks), then groups of four
 * clusters: random, text-like, one byte repeated (RLE blocks), zero */
static uint8_t *bm_image(void)
{
    static const char *words[] = {"the", "disk", "of", "backup", "and", "cluster", "a", "zero",
                                  "archive", "block", "to", "frame", "in", "read"};
    static const char pattern[] = "RRTAZRTTA";
    uint8_t *img = g_malloc0(BM_DISK);
    uint32_t seed = 99;
    uint64_t x = 88172645463325252ull; /* xorshift64: incompressible bytes */
    for (size_t c = 0; c < BM_CLUSTERS; c++) {
        char kind = c < 80 ? 'R' : pattern[(c / 4) % (sizeof(pattern) - 1)];
        uint8_t *p = img + c * VMA_CLUSTER_SIZE, *e = p + VMA_CLUSTER_SIZE;
        if (kind == 'R')
            for (; p < e; p++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *p = (uint8_t)(x >> 24);
            }
        else if (kind == 'A')
            memset(p, 0xaa, VMA_CLUSTER_SIZE);
        else if (kind == 'T')
            while (p < e) {
                const char *w = words[rnd(&seed) % G_N_ELEMENTS(words)];
                for (; *w && p < e; w++)
                    *p++ = (uint8_t)*w;
                if (p < e)
                    *p++ = ' ';
            }
    }
    return img;
}

static char *bm_archive(const char *name, vma_compress c, const uint8_t *img)
{
    static const uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    char *path = g_strdup_printf("%s/%s", tmpdir, name);
    vma_writer_opts o = {.uuid = uuid, .ctime = 1700000000, .compress = c};
    GError *e = NULL;
    vma_writer *w = vma_writer_create(path, &o, &e);
    CHECK(w != NULL, "create %s: %s", name, e ? e->message : "");
    if (!w) {
        g_clear_error(&e);
        return path;
    }
    vma_writer_add_device(w, "drive-scsi0", BM_DISK, NULL);
    for (uint32_t i = 0; i < BM_CLUSTERS; i++) {
        const uint8_t *p = img + (size_t)i * VMA_CLUSTER_SIZE;
        vma_writer_write_cluster(w, 1, i, vma_is_zero(p, VMA_CLUSTER_SIZE) ? NULL : p, NULL);
    }
    CHECK(vma_writer_close(w, &e) == 0, "close %s: %s", name, e ? e->message : "");
    g_clear_error(&e);
    vma_writer_free(w);
    return path;
}

/* the zstd blocks of a file of frames, as the test sees them (decoded with
 * the buffer-less API on its own): where each lies in the stream and in the
 * file, its kind, and for the frames where they start in the file */
typedef struct {
    uint64_t doff, coff;  /* coff: of its header */
    uint32_t dsize;
    int kind;
    int last;
    int frame;
} bm_block;

static GArray *bm_blocks(const uint8_t *z, size_t len, GArray *frames)
{
    GArray *out = g_array_new(FALSE, FALSE, sizeof(bm_block));
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    uint8_t *dst = g_malloc(64u << 20);
    uint64_t pos = 0, doff = 0;
    for (int fr = 0; pos + 8 <= len; fr++) {
        if ((z[pos + 0] & 0xf0) == 0x50 && z[pos + 1] == 0x2a && z[pos + 2] == 0x4d &&
            z[pos + 3] == 0x18)
            break; /* the seek table */
        g_array_append_val(frames, pos);
        ZSTD_decompressBegin(dc);
        size_t need, o = 0;
        bm_block b = {0};
        while ((need = ZSTD_nextSrcSizeToDecompress(dc)) != 0 && pos + need <= len) {
            ZSTD_nextInputType_e t = ZSTD_nextInputType(dc);
            if (t == ZSTDnit_blockHeader) {
                uint32_t h = z[pos] | (uint32_t)z[pos + 1] << 8 | (uint32_t)z[pos + 2] << 16;
                b = (bm_block){doff + o, pos, 0, (int)(h >> 1 & 3), (int)(h & 1), fr};
            }
            size_t r = ZSTD_decompressContinue(dc, dst + o, (64u << 20) - o, z + pos, need);
            if (ZSTD_isError(r))
                break;
            if (t == ZSTDnit_block || t == ZSTDnit_lastBlock) {
                b.dsize = (uint32_t)r;
                g_array_append_val(out, b);
            }
            pos += need;
            o += r;
        }
        if (need != 0)
            break;
        doff += o;
    }
    g_free(dst);
    ZSTD_freeDCtx(dc);
    return out;
}

static const bm_block *bm_find(GArray *bl, int kind, int nth)
{
    for (guint i = 0; i < bl->len; i++) {
        const bm_block *b = &g_array_index(bl, bm_block, i);
        if (b->kind == kind && b->dsize > 8192 && nth-- == 0)
            return b;
    }
    return NULL;
}

static vma_src *bm_open(const char *path, int *fd)
{
    GError *e = NULL;
    *fd = open(path, O_RDONLY);
    vma_src *s = *fd >= 0 ? vma_src_open(*fd, &e) : NULL;
    CHECK(s != NULL, "open %s: %s", path, e ? e->message : "");
    g_clear_error(&e);
    return s;
}

/* read n at off and compare with the plain archive; TRUE when equal */
static gboolean bm_same(vma_src *s, const uint8_t *plain, uint64_t off, size_t n, uint8_t *buf)
{
    GError *e = NULL;
    ssize_t got = vma_src_pread(s, buf, n, off, &e);
    gboolean ok = got == (ssize_t)n && memcmp(buf, plain + off, n) == 0;
    if (!ok)
        fprintf(stderr, "read %zu at %" G_GUINT64_FORMAT ": %zd%s%s\n", n, off, got,
                e ? ": " : "", e ? e->message : "");
    g_clear_error(&e);
    return ok;
}

/* a frame whose bytes were changed: reading all of it is an error (code
 * VMA_ERR_FORMAT, a message with `what`), not a crash */
static void bm_hostile(const char *path, const uint8_t *z, size_t len, uint64_t at,
                       const uint8_t *bytes, size_t n, uint64_t doff, uint32_t dsize,
                       const char *what)
{
    uint8_t *copy = g_memdup2(z, len);
    memcpy(copy + at, bytes, n);
    g_file_set_contents(path, (gchar *)copy, (gssize)len, NULL);
    int fd;
    vma_src *s = bm_open(path, &fd);
    uint8_t *buf = g_malloc(dsize);
    GError *e = NULL;
    CHECK(s && vma_src_pread(s, buf, dsize, doff, &e) < 0 && e && e->code == VMA_ERR_FORMAT &&
          strstr(e->message, what), "%s: an error (%s)", what, e ? e->message : "none");
    g_clear_error(&e);
    vma_src_free(s);
    if (fd >= 0)
        close(fd);
    g_free(buf);
    g_free(copy);
}

/* the image of the block-map tests, its archives plain and zstd (made with
 * the names PREFIX.vma and PREFIX.vma.zst), their bytes, and the zstd
 * archive's frames and blocks as the test decodes them */
typedef struct {
    uint8_t *img;
    char *plain_path, *zst_path;
    gchar *plain, *z;
    gsize plain_len, zlen;
    GArray *frames, *bl;
} bm_set;

static gboolean bm_make(bm_set *b, const char *prefix)
{
    memset(b, 0, sizeof(*b));
    b->img = bm_image();
    char *name = g_strdup_printf("%s.vma", prefix);
    b->plain_path = bm_archive(name, VMA_COMPRESS_NONE, b->img);
    g_free(name);
    name = g_strdup_printf("%s.vma.zst", prefix);
    b->zst_path = bm_archive(name, VMA_COMPRESS_ZSTD, b->img);
    g_free(name);
    g_file_get_contents(b->plain_path, &b->plain, &b->plain_len, NULL);
    g_file_get_contents(b->zst_path, &b->z, &b->zlen, NULL);
    CHECK(b->plain && b->z, "the archives %s are there", prefix);
    if (!b->plain || !b->z)
        return FALSE;
    b->frames = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    b->bl = bm_blocks((uint8_t *)b->z, b->zlen, b->frames);
    return TRUE;
}

static void bm_free(bm_set *b)
{
    if (b->bl)
        g_array_free(b->bl, TRUE);
    if (b->frames)
        g_array_free(b->frames, TRUE);
    g_free(b->plain);
    g_free(b->z);
    g_free(b->plain_path);
    g_free(b->zst_path);
    g_free(b->img);
}

static void test_block_maps(void)
{
    bm_set set;
    if (!bm_make(&set, "bm")) {
        bm_free(&set);
        return;
    }
    uint8_t *img = set.img;
    const char *zst_path = set.zst_path;
    const gchar *plain = set.plain, *z = set.z;
    gsize plain_len = set.plain_len, zlen = set.zlen;
    GArray *frames = set.frames, *bl = set.bl;
    unsigned kinds[3] = {0};
    uint64_t decoded = 0;
    for (guint i = 0; i < bl->len; i++) {
        const bm_block *b = &g_array_index(bl, bm_block, i);
        kinds[b->kind]++;
        decoded = b->doff + b->dsize;
    }
    CHECK(decoded == plain_len && frames->len >= 4,
          "the test decodes the archive: %" G_GUINT64_FORMAT " bytes, %u frames", decoded,
          frames->len);
    CHECK(kinds[0] > 20 && kinds[1] > 0 && kinds[2] > 10,
          "the archive has raw, RLE and compressed blocks (%u, %u, %u)", kinds[0], kinds[1],
          kinds[2]);

    int fd;
    vma_src *s = bm_open(zst_path, &fd);
    if (!s)
        goto out2;
    vma_src_set_cache(s, 1); /* two frames */
    CHECK(vma_src_frames(s) == frames->len, "the seek table's frames");
    uint8_t *buf = g_malloc(1u << 20);
    /* the first pass decodes every frame once and keeps its map */
    int bad = 0;
    for (uint64_t off = 0; off < plain_len; off += 1u << 20)
        bad += !bm_same(s, (uint8_t *)plain, off, MIN((size_t)1 << 20, plain_len - off), buf);
    CHECK(bad == 0, "the whole stream: %d reads differ", bad);
    vma_src_stats st0, st;
    vma_src_get_stats(s, &st0);
    CHECK(st0.frames_decoded == frames->len && st0.maps == frames->len && st0.map_bytes > 0 &&
          st0.map_bytes < 64u * frames->len * sizeof(uint32_t) * 3,
          "each frame decoded once, its map kept (%" G_GUINT64_FORMAT " decoded, %"
          G_GUINT64_FORMAT " maps, %" G_GUINT64_FORMAT " bytes)",
          st0.frames_decoded, st0.maps, st0.map_bytes);

    /* the first frames are out of the cache now: their raw and RLE blocks
     * are read without decoding them again */
    const bm_block *raw = bm_find(bl, 0, 1), *rle = bm_find(bl, 1, 0);
    const bm_block *comp = NULL;
    for (guint i = 0; i < bl->len; i++) {
        const bm_block *b = &g_array_index(bl, bm_block, i);
        if (b->kind == 2 && b->frame < (int)frames->len - 2 && b->doff > 0) {
            comp = b;
            break;
        }
    }
    CHECK(raw && rle && comp && raw->frame < (int)frames->len - 2 &&
          rle->frame < (int)frames->len - 2, "blocks to read");
    if (raw && rle && comp) {
        CHECK(bm_same(s, (uint8_t *)plain, raw->doff + 100, 4096, buf) &&
              bm_same(s, (uint8_t *)plain, raw->doff, raw->dsize, buf) &&
              bm_same(s, (uint8_t *)plain, rle->doff + 7, rle->dsize - 7, buf),
              "raw and RLE blocks read");
        vma_src_get_stats(s, &st);
        CHECK(st.frames_decoded == st0.frames_decoded && st.direct_reads >= st0.direct_reads + 3,
              "raw and RLE blocks are read without decoding (%" G_GUINT64_FORMAT
              " frames decoded, %" G_GUINT64_FORMAT " direct reads)",
              st.frames_decoded - st0.frames_decoded, st.direct_reads - st0.direct_reads);
        /* a read that ends in a compressed block needs its frame */
        CHECK(bm_same(s, (uint8_t *)plain, comp->doff - 10, 20, buf), "into a compressed block");
        vma_src_stats st2;
        vma_src_get_stats(s, &st2);
        CHECK(st2.frames_decoded == st.frames_decoded + 1 && st2.maps == st0.maps,
              "a compressed block decodes its frame once more (the map is kept)");
    }
    /* random reads: offsets anywhere, lengths up to 300 KiB (across blocks,
     * runs and frames), and short ones on block and frame boundaries */
    uint32_t seed = 5;
    bad = 0;
    for (int i = 0; i < 3000; i++) {
        uint64_t off;
        size_t n;
        if (i % 3 == 0) {
            const bm_block *b = &g_array_index(bl, bm_block, rnd(&seed) % bl->len);
            off = b->doff >= 2000 ? b->doff - rnd(&seed) % 2000 : 0;
            n = 1 + rnd(&seed) % 6000;
        } else {
            off = rnd(&seed) % plain_len;
            n = i % 3 == 1 ? 1 + rnd(&seed) % 300000 : 1 + rnd(&seed) % 9000;
        }
        n = (size_t)MIN((uint64_t)n, plain_len - off);
        bad += !bm_same(s, (uint8_t *)plain, off, n, buf);
    }
    CHECK(bad == 0, "random reads: %d differ", bad);
    vma_src_get_stats(s, &st);
    CHECK(st.direct_reads > st0.direct_reads + 300, "many random reads were direct (%" G_GUINT64_FORMAT ")",
          st.direct_reads - st0.direct_reads);

    /* the disk through the archive API equals the image */
    vma_archive_opts ao = {.cache = VMA_CACHE_OFF, .frame_cache = 1};
    GError *e = NULL;
    vma_archive *a = vma_archive_open(zst_path, &ao, &e);
    CHECK(a != NULL, "the archive opens: %s", e ? e->message : "");
    g_clear_error(&e);
    bad = 0;
    for (int i = 0; a && i < 1500; i++) {
        uint64_t off = rnd(&seed) % BM_DISK;
        size_t n = (size_t)MIN((uint64_t)(1 + rnd(&seed) % (i % 2 ? 200000 : 8192)), BM_DISK - off);
        ssize_t got = vma_archive_pread(a, 1, buf, n, off, &e);
        bad += got != (ssize_t)n || memcmp(buf, img + off, n) != 0;
        g_clear_error(&e);
    }
    CHECK(bad == 0, "disk reads: %d differ", bad);
    /* several threads at once, with a cache of two frames: maps made and
     * read while other threads decode */
    reads r[4];
    GThread *th[4];
    for (int i = 0; a && i < 4; i++) {
        r[i] = (reads){a, img, BM_DISK, 1, (uint32_t)i * 131u + 3, 0};
        th[i] = g_thread_new("reads", random_reads, &r[i]);
    }
    for (int i = 0; a && i < 4; i++) {
        g_thread_join(th[i]);
        CHECK(r[i].bad == 0, "block maps: thread %d: %d reads differ", i, r[i].bad);
    }
    vma_archive_free(a);
    g_free(buf);
    vma_src_free(s);
    close(fd);

    /* damaged frames: a block larger than 128 KiB, a raw block that runs past
     * the frame, sizes that differ from the seek table */
    char *bad_path = g_strdup_printf("%s/bm-bad.vma.zst", tmpdir);
    const bm_block *lastb = NULL;
    for (guint i = 0; i < bl->len; i++) {
        const bm_block *b = &g_array_index(bl, bm_block, i);
        if (b->frame == 1 && b->last)
            lastb = b;
    }
    CHECK(lastb != NULL, "the last block of frame 1");
    if (lastb) {
        uint64_t fend = g_array_index(frames, uint64_t, 2);
        uint64_t fdoff = 0;
        for (guint i = 0; i < bl->len; i++)
            if (g_array_index(bl, bm_block, i).frame == 1) {
                fdoff = g_array_index(bl, bm_block, i).doff;
                break;
            }
        uint32_t fdsize = (uint32_t)(lastb->doff + lastb->dsize - fdoff);
        uint32_t h = 1 | 2u << 1 | (uint32_t)0x30000 << 3; /* compressed, 192 KiB */
        uint8_t hb[3] = {(uint8_t)h, (uint8_t)(h >> 8), (uint8_t)(h >> 16)};
        bm_hostile(bad_path, (uint8_t *)z, zlen, lastb->coff, hb, 3, fdoff, fdsize,
                   "a block of 196608 bytes");
        /* raw, one byte longer than what is left of the frame */
        uint32_t left = (uint32_t)(fend - lastb->coff - 3);
        h = 1 | 0u << 1 | (left + 1) << 3;
        uint8_t hr[3] = {(uint8_t)h, (uint8_t)(h >> 8), (uint8_t)(h >> 16)};
        CHECK(left + 1 <= 131072, "a short last block (%u)", left);
        bm_hostile(bad_path, (uint8_t *)z, zlen, lastb->coff, hr, 3, fdoff, fdsize, "runs past");
        /* the seek table: frame 1 one byte shorter, frame 2 one longer (the
         * total stays right, so the archive opens) */
        const uint8_t *ent = (uint8_t *)z + zlen - 9 - 8 * frames->len + 8; /* entry 1 */
        uint32_t d1 = ent[4] | (uint32_t)ent[5] << 8 | (uint32_t)ent[6] << 16 |
                      (uint32_t)ent[7] << 24;
        uint32_t d2 = ent[12] | (uint32_t)ent[13] << 8 | (uint32_t)ent[14] << 16 |
                      (uint32_t)ent[15] << 24;
        CHECK(d1 == fdsize, "the seek table's frame 1 (%u, %u)", d1, fdsize);
        uint8_t two[12];
        memcpy(two + 4, ent + 8, 4);
        for (int k = 0; k < 4; k++) {
            two[k] = (uint8_t)((d1 - 1) >> (8 * k));
            two[8 + k] = (uint8_t)((d2 + 1) >> (8 * k));
        }
        bm_hostile(bad_path, (uint8_t *)z, zlen, (uint64_t)(ent + 4 - (uint8_t *)z),
                   two, sizeof(two), fdoff, fdsize - 1,
                   "more bytes than the seek table says");
        /* the same lie, a read of the frame's first 4 KiB: the frame is
         * decoded whole and checked first (issue #19) */
        bm_hostile(bad_path, (uint8_t *)z, zlen, (uint64_t)(ent + 4 - (uint8_t *)z),
                   two, sizeof(two), fdoff, 4096, "more bytes than the seek table says");
        /* one byte flipped 2,000 bytes into the frame: a read of its first
         * 16 KiB fails as the whole frame does (its checksum) */
        uint64_t fcoff = g_array_index(frames, uint64_t, 1);
        uint8_t flip = (uint8_t)(z[fcoff + 2000] ^ 0x20);
        bm_hostile(bad_path, (uint8_t *)z, zlen, fcoff + 2000, &flip, 1, fdoff, 16384,
                   "zstd frame 1 ");
    }
    g_free(bad_path);
out2:
    bm_free(&set);
}

/* the spill file: frames decoded for reads out of order are kept in an
 * unlinked file, read from there later instead of being decoded again */
static int count_entries(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    int n = 0;
    while (d && g_dir_read_name(d))
        n++;
    if (d)
        g_dir_close(d);
    return n;
}

/* the first compressed block of frame f past the frame's first 64 KiB (a
 * read there needs the whole frame decoded) */
static const bm_block *spill_block(GArray *bl, int f)
{
    uint64_t start = UINT64_MAX;
    for (guint i = 0; i < bl->len; i++) {
        const bm_block *b = &g_array_index(bl, bm_block, i);
        if (b->frame != f)
            continue;
        start = MIN(start, b->doff);
        if (b->kind == 2 && b->dsize >= 4096 && b->doff >= start + (64u << 10))
            return b;
    }
    return NULL;
}

/* one read into a compressed block of every frame, from the last frame to
 * the first; the count of reads that differ from the plain archive */
static int spill_pass(vma_src *s, GArray *bl, guint n_frames, const uint8_t *plain, uint8_t *buf)
{
    int bad = 0;
    for (int f = (int)n_frames - 1; f >= 0; f--) {
        const bm_block *b = spill_block(bl, f);
        if (b)
            bad += !bm_same(s, plain, b->doff, 4096, buf);
    }
    return bad;
}

/* open the archive with a cache of two frames and a spill file in dir up
 * to limit, read two backward passes, take the stats: the count of reads
 * that differ, -1 when it does not open */
static int spill_passes(const bm_set *b, const char *dir, uint64_t limit, uint8_t *buf,
                        vma_src_stats *st)
{
    int fd;
    vma_src *s = bm_open(b->zst_path, &fd);
    if (!s)
        return -1;
    vma_src_set_cache(s, 1);
    vma_src_enable_spill(s, dir, limit);
    int bad = spill_pass(s, b->bl, b->frames->len, (uint8_t *)b->plain, buf);
    bad += spill_pass(s, b->bl, b->frames->len, (uint8_t *)b->plain, buf);
    vma_src_get_stats(s, st);
    vma_src_free(s);
    close(fd);
    return bad;
}

static void test_spill(void)
{
    bm_set set;
    char *dir = g_strdup_printf("%s/spill", tmpdir);
    mkdir(dir, 0700);
    if (!bm_make(&set, "sp"))
        goto out;
    uint8_t *img = set.img;
    const char *zst_path = set.zst_path;
    const gchar *plain = set.plain;
    gsize plain_len = set.plain_len;
    GArray *frames = set.frames, *bl = set.bl;
    guint with_comp = 0;
    for (guint f = 0; f < frames->len; f++)
        with_comp += spill_block(bl, (int)f) != NULL;
    CHECK(with_comp >= 4, "frames with compressed blocks: %u", with_comp);
    uint8_t *buf = g_malloc(1u << 16);

    /* from start to end: nothing spilled (the file is not even made) */
    int fd;
    vma_src *s = bm_open(zst_path, &fd);
    if (!s)
        goto out2;
    vma_src_set_cache(s, 1);
    vma_src_enable_spill(s, dir, (uint64_t)1 << 30);
    int bad = 0;
    for (uint64_t off = 0; off < plain_len; off += 1u << 16)
        bad += !bm_same(s, (uint8_t *)plain, off, MIN((size_t)1 << 16, plain_len - off), buf);
    vma_src_stats st;
    vma_src_get_stats(s, &st);
    CHECK(bad == 0 && st.spilled == 0, "spill: a read from start to end spills nothing (%d differ, %"
          G_GUINT64_FORMAT " spilled)", bad, st.spilled);

    /* out of order: every frame read is spilled, then read from the spill
     * file, nothing decoded again, and no name is left in the folder */
    bad = spill_pass(s, bl, frames->len, (uint8_t *)plain, buf);
    vma_src_stats st1, st2;
    vma_src_get_stats(s, &st1);
    CHECK(bad == 0 && st1.spilled + 2 >= with_comp, /* two were in the cache */
          "spill: frames read backwards are spilled (%d differ, %" G_GUINT64_FORMAT " of %u)", bad,
          st1.spilled, with_comp);
    bad = spill_pass(s, bl, frames->len, (uint8_t *)plain, buf);
    uint32_t seed = 77;
    for (int i = 0; i < 500; i++) {
        uint64_t off = rnd(&seed) % plain_len;
        bad += !bm_same(s, (uint8_t *)plain, off, (size_t)MIN((uint64_t)(1 + rnd(&seed) % 65536),
                                                              plain_len - off), buf);
    }
    vma_src_get_stats(s, &st2);
    CHECK(bad == 0 && st2.spill_reads >= st1.spill_reads + with_comp - 2 &&
          st2.frames_decoded <= st1.frames_decoded + 2,
          "spill: read again from the spill file (%d differ, %" G_GUINT64_FORMAT " spill reads, %"
          G_GUINT64_FORMAT " frames decoded again)", bad, st2.spill_reads - st1.spill_reads,
          st2.frames_decoded - st1.frames_decoded);
    CHECK(count_entries(dir) == 0, "spill: the spill file has no name");
    vma_src_free(s);
    close(fd);

    /* a limit of one frame's bytes (the writer's frames hold 4 to 8 MiB):
     * one frame spilled */
    bad = spill_passes(&set, dir, 4u << 20, buf, &st);
    CHECK(bad == 0 && st.spilled == 1, "spill: the limit holds (%d differ, %" G_GUINT64_FORMAT
          " spilled)", bad, st.spilled);

    /* a folder that does not exist: reads as without a spill file */
    char *none = g_strdup_printf("%s/no-such-folder", tmpdir);
    bad = spill_passes(&set, none, (uint64_t)1 << 30, buf, &st);
    CHECK(bad == 0 && st.spilled == 0 && !g_file_test(none, G_FILE_TEST_EXISTS),
          "spill: no folder, no spill file, reads right (%d differ)", bad);
    g_free(none);

    /* writes that fail (a file size limit, as a full disk would): spilling
     * stops, every read is still right */
    struct rlimit old_rl;
    getrlimit(RLIMIT_FSIZE, &old_rl);
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {1u << 16, old_rl.rlim_max};
    setrlimit(RLIMIT_FSIZE, &rl);
    bad = spill_passes(&set, dir, (uint64_t)1 << 30, buf, &st);
    setrlimit(RLIMIT_FSIZE, &old_rl);
    signal(SIGXFSZ, old_sig);
    CHECK(bad == 0 && st.spilled == 0,
          "spill: failed writes stop spilling and reads stay right (%d differ, %" G_GUINT64_FORMAT
          " spilled)", bad, st.spilled);
    CHECK(count_entries(dir) == 0, "spill: nothing left in the folder");

    /* the archive API spills by default, in spill_dir, and not with < 0 */
    for (int off_mode = 0; off_mode < 2; off_mode++) {
        vma_archive_opts ao = {.cache = VMA_CACHE_OFF, .frame_cache = 1, .spill_dir = dir,
                               .spill = off_mode ? -1 : 0};
        GError *e = NULL;
        vma_archive *a = vma_archive_open(zst_path, &ao, &e);
        CHECK(a != NULL, "spill: the archive opens: %s", e ? e->message : "");
        g_clear_error(&e);
        bad = 0;
        for (int i = 0; a && i < 400; i++) {
            uint64_t off = (uint64_t)(rnd(&seed) % (BM_DISK / 4096)) * 4096;
            ssize_t got = vma_archive_pread(a, 1, buf, 4096, off, &e);
            bad += got != 4096 || memcmp(buf, img + off, 4096) != 0;
            g_clear_error(&e);
        }
        vma_src_stats as = {0};
        if (a)
            vma_src_get_stats(vma_archive_src(a), &as);
        CHECK(bad == 0 && (off_mode ? as.spilled == 0 : as.spilled > 0),
              "spill: the archive API %s (%" G_GUINT64_FORMAT " spilled, %d differ)",
              off_mode ? "with spill < 0 spills nothing" : "spills by default", as.spilled, bad);
        vma_archive_free(a);
    }
out2:
    g_free(buf);
out:
    g_free(dir);
    bm_free(&set);
}

/* ---- no byte of a frame before the frame is checked (issue #19) ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

/* write n bytes at off of the file at path */
static void patch_file(const char *path, uint64_t off, const void *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, bytes, n, (off_t)off) == (ssize_t)n, "patch %s", path);
    if (fd >= 0)
        close(fd);
}

/* frames without zstd's content checksum are not read at random: the
 * archive is read as a stream, and at random through a decoded copy; the index build
 * checks every frame, also those it skips (wholly inside an extent's data),
 * whose sizes place every frame after them */
static void test_checked_frames(const char *plain)
{
    char *nock = make_seekable_ex(plain, "nock.vma.zst", 1 << 20, FALSE, NULL, NULL);
    {
        vma_archive_opts o = {.cache = VMA_CACHE_OFF};
        GError *e = NULL;
        vma_archive *a = vma_archive_open(nock, &o, &e), *p = vma_archive_open(plain, &o, &e);
        uint8_t x[65536], y[65536];
        CHECK(a && p && !vma_archive_seekable(a) &&
              vma_archive_pread(a, 2, x, sizeof(x), 300000, &e) == (ssize_t)sizeof(x) &&
              vma_archive_pread(p, 2, y, sizeof(y), 300000, NULL) == (ssize_t)sizeof(y) &&
              memcmp(x, y, sizeof(x)) == 0,
              "frames without checksum: read through a decoded copy (%s)", e ? e->message : "");
        g_clear_error(&e);
        vma_archive_free(a);
        vma_archive_free(p);
    }
    g_free(nock);

    /* one frame that asks for a window of 256 MiB (no content size, so zstd
     * keeps the window it is given): verify refuses it, so does random access */
    gchar *data = NULL;
    gsize len = 0;
    g_file_get_contents(plain, &data, &len, NULL);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 28);
    size_t cap = ZSTD_compressBound(len) + 64;
    uint8_t *z = g_malloc(cap + 32);
    ZSTD_outBuffer ob = {z, cap, 0};
    ZSTD_inBuffer ib = {data, len, 0};
    size_t rc = ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_continue);
    ZSTD_inBuffer none = {NULL, 0, 0};
    while (!ZSTD_isError(rc) && (rc = ZSTD_compressStream2(cc, &ob, &none, ZSTD_e_end)) != 0)
        ;
    ZSTD_freeCCtx(cc);
    ZSTD_frameHeader zh;
    CHECK(!ZSTD_isError(rc) && ZSTD_getFrameHeader(&zh, z, ob.pos) == 0 &&
          zh.windowSize == (1u << 28), "a frame with a window of 256 MiB");
    uint8_t *t = z + ob.pos;
    put_le32(t, 0x184D2A5Eu);
    put_le32(t + 4, 17);
    put_le32(t + 8, (uint32_t)ob.pos);
    put_le32(t + 12, (uint32_t)len);
    put_le32(t + 16, 1);
    t[20] = 0;
    put_le32(t + 21, 0x8F92EAB1u);
    char *wide = g_strdup_printf("%s/wide.vma.zst", tmpdir);
    g_file_set_contents(wide, (gchar *)z, (gssize)(ob.pos + 25), NULL);
    GError *e = NULL;
    vma_reader *vr = vma_reader_open(wide, &e);
    vma_extent ext;
    int vrc = 0;
    while (vr && (vrc = vma_reader_next(vr, &ext, &e)) > 0)
        ;
    CHECK((!vr || vrc < 0) && e, "the wide window: read from start to end, refused (%s)",
          e ? e->message : "read");
    g_clear_error(&e);
    vma_reader_free(vr);
    check_refused_with(wide, VMA_ERR_FORMAT, "window larger than 128 MiB",
                       "the wide window at random");
    g_free(wide);
    g_free(z);
    g_free(data);

    GArray *starts = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    uint64_t table = 0;
    char *lie = make_seekable_ex(plain, "lie.vma.zst", 12345, TRUE, starts, &table);
    GArray *heads = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    vma_reader *r = vma_reader_open(plain, NULL);
    while (r && vma_reader_next(r, &ext, NULL) > 0)
        g_array_append_val(heads, ext.offset);
    vma_reader_free(r);
    /* frames m and m + 1 with no extent header in them */
    guint m = 0;
    for (guint i = 1; !m && i + 3 < starts->len; i++) {
        uint64_t lo = g_array_index(starts, uint64_t, i), hi = g_array_index(starts, uint64_t, i + 2);
        gboolean header = FALSE;
        for (guint k = 0; k < heads->len && !header; k++) {
            uint64_t o = g_array_index(heads, uint64_t, k);
            header = o < hi && o + VMA_EXTENT_HEADER_SIZE > lo;
        }
        if (!header)
            m = i;
    }
    CHECK(m > 0, "two frames without an extent header (%u frames)", starts->len);
    if (m) {
        /* one 512 bytes shorter, the next 512 longer: the total is right */
        uint8_t two[12];
        gchar *z = NULL;
        gsize zlen = 0;
        g_file_get_contents(lie, &z, &zlen, NULL);
        memcpy(two, z + table + 8 * m + 4, 12);
        uint32_t d1 = two[0] | (uint32_t)two[1] << 8 | (uint32_t)two[2] << 16 | (uint32_t)two[3] << 24;
        uint32_t d2 = two[8] | (uint32_t)two[9] << 8 | (uint32_t)two[10] << 16 | (uint32_t)two[11] << 24;
        put_le32(two, d1 - 512);
        put_le32(two + 8, d2 + 512);
        patch_file(lie, table + 8 * m + 4, two, sizeof(two));
        char *want = g_strdup_printf("zstd frame %u ", m);
        check_refused_with(lie, VMA_ERR_FORMAT, want, "a skipped frame longer than its entry");
        g_free(want);
        g_free(z);
    }
    g_free(lie);
    g_array_free(starts, TRUE);
    g_array_free(heads, TRUE);
}

/* a file of size bytes (sparse) that starts with zstd's magic and ends
 * with a seek table of n entries whose first entries are given */
static char *table_file(const char *name, uint64_t size, uint32_t n, const uint32_t *entries,
                        unsigned n_given)
{
    char *path = g_strdup_printf("%s/%s", tmpdir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    uint64_t tsize = (uint64_t)n * 8 + 9;
    uint8_t magic[4] = {0x28, 0xb5, 0x2f, 0xfd}, head[8], foot[9];
    put_le32(head, 0x184D2A5Eu);
    put_le32(head + 4, (uint32_t)tsize);
    put_le32(foot, n);
    foot[4] = 0;
    put_le32(foot + 5, 0x8F92EAB1u);
    gboolean ok = fd >= 0 && ftruncate(fd, (off_t)size) == 0 && pwrite(fd, magic, 4, 0) == 4 &&
                  pwrite(fd, head, 8, (off_t)(size - tsize - 8)) == 8 &&
                  pwrite(fd, foot, 9, (off_t)(size - 9)) == 9;
    for (unsigned i = 0; ok && i < n_given; i++) {
        uint8_t e[8];
        put_le32(e, entries[2 * i]);
        put_le32(e + 4, entries[2 * i + 1]);
        ok = pwrite(fd, e, 8, (off_t)(size - tsize + 8 * i)) == 8;
    }
    CHECK(ok, "write %s", name);
    if (fd >= 0)
        close(fd);
    return path;
}

static void check_table_refused(const char *path, const char *msg, const char *what)
{
    int fd = open(path, O_RDONLY);
    GError *e = NULL;
    vma_src *s = fd >= 0 ? vma_src_open(fd, &e) : NULL;
    CHECK(!s && e && e->code == VMA_ERR_FORMAT && strstr(e->message, msg),
          "seek table: %s (%s)", what, e ? e->message : "opened");
    g_clear_error(&e);
    vma_src_free(s);
    if (fd >= 0)
        close(fd);
    unlink(path);
}

/* what a seek table claims is bounded before memory follows it */
static void test_table_bounds(void)
{
    uint64_t big = (uint64_t)(MAX_FRAMES_TESTED + 1);
    char *p = table_file("tb-many.vma.zst", big * 16 + 17 + 4096, (uint32_t)big, NULL, 0);
    check_table_refused(p, "16777216 frames", "more frames than are read at random");
    g_free(p);
    p = table_file("tb-huge.vma.zst", (uint64_t)0xffffffffu * 8 + 17 + 4096, 0xffffffffu, NULL, 0);
    check_table_refused(p, "more than the file holds", "2^32-1 frames in a sparse file");
    g_free(p);
    uint32_t tiny[4] = {4, 100, 4000, 100};
    p = table_file("tb-tiny.vma.zst", 4000 + 4 + 16 + 17, 2, tiny, 2);
    check_table_refused(p, "no zstd frame is that short", "a frame of 4 bytes");
    g_free(p);
    uint32_t padded[2] = {(1u << 30) + 4096, 196608};
    p = table_file("tb-pad.vma.zst", (1u << 30) + 4096 + 8 + 17, 1, padded, 1);
    check_table_refused(p, "zstd needs at most", "1 GiB for a frame of 192 KiB");
    g_free(p);
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

    /* one zstd stream (Proxmox's .vma.zst), gzip and lzop read through a
     * copy the background decoder makes, while it makes it (cache off: an
     * unlinked file) */
    char *one = g_strdup_printf("%s/one.vma.zst", tmpdir);
    char *cmd = g_strdup_printf("zstd -q -c %s > %s && gzip -c %s > %s/one.vma.gz && "
                                "lzop -c %s > %s/one.vma.lzo", plain, one, plain, tmpdir, plain,
                                tmpdir);
    CHECK(system(cmd) == 0, "zstd, gzip and lzop");
    check_archive(one, d0, d1, "one zstd stream");
    char *gz = g_strdup_printf("%s/one.vma.gz", tmpdir);
    check_archive(gz, d0, d1, "gzip");
    char *lzo = g_strdup_printf("%s/one.vma.lzo", tmpdir);
    check_archive(lzo, d0, d1, "lzop");
    g_free(lzo);

    test_missing(plain, d1);
    test_checked_frames(plain);
    test_table_bounds();
    test_block_maps();
    test_spill();

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
