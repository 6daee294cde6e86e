/* test_store.c - unit tests of the store layer: the survey of an archive
 * (allocation, cluster digests, with and without reading the data; plain
 * and compressed), the clusters that differ between two disks by reading
 * and from digests (the same answer), disks of different sizes, a stop
 * asked by progress, and the content digest of an image (holes and written
 * zeros alike). */
#define _GNU_SOURCE
#include "vma.h"
#include "check.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SA (50u * VMA_CLUSTER_SIZE + 3000u)   /* a short last cluster */
#define SB (53u * VMA_CLUSTER_SIZE)           /* B's disk is larger */

static char *archive(const char *name, vma_compress comp, const uint8_t *img, size_t size)
{
    char *path = g_strdup_printf("%s/%s", tmpdir, name);
    GError *e = NULL;
    vma_writer_opts o = {.ctime = 1, .compress = comp};
    vma_writer *w = vma_writer_create(path, &o, &e);
    CHECK(w != NULL, "create %s: %s", name, e ? e->message : "");
    if (!w)
        return path;
    vma_writer_add_device(w, "drive-scsi0", size, NULL);
    uint8_t buf[VMA_CLUSTER_SIZE];
    for (uint32_t c = 0; c < vma_clusters(size); c++) {
        memset(buf, 0, sizeof(buf));
        memcpy(buf, img + (size_t)c * VMA_CLUSTER_SIZE,
               MIN((size_t)VMA_CLUSTER_SIZE, size - (size_t)c * VMA_CLUSTER_SIZE));
        vma_writer_write_cluster(w, 1, c, vma_is_zero(buf, sizeof(buf)) ? NULL : buf, NULL);
    }
    CHECK(vma_writer_close(w, &e) == 0, "close %s: %s", name, e ? e->message : "");
    g_clear_error(&e);
    vma_writer_free(w);
    return path;
}

static vma_archive *open_a(const char *path)
{
    GError *e = NULL;
    vma_archive_opts o = {.cache = VMA_CACHE_OFF};
    vma_archive *a = vma_archive_open(path, &o, &e);
    CHECK(a != NULL, "open %s: %s", path, e ? e->message : "");
    g_clear_error(&e);
    return a;
}

/* what the image holds: bytes of 4 KiB blocks with data, inside the
 * device (size rounded up to 512 bytes: a last block with data counts up to
 * the device's end, as data + zero = the device's size) */
static uint64_t data_bytes(const uint8_t *img, size_t size)
{
    uint64_t n = 0;
    size_t dev = (size + 511) & ~(size_t)511;
    for (size_t off = 0; off < size; off += VMA_BLOCK_SIZE) {
        if (!vma_is_zero(img + off, MIN((size_t)VMA_BLOCK_SIZE, size - off)))
            n += MIN((size_t)VMA_BLOCK_SIZE, dev - off);
    }
    return n;
}

typedef struct {
    uint64_t off[64], len[64];
    int n;
} ranges;

static int on_range(uint64_t off, uint64_t len, void *ud)
{
    ranges *r = ud;
    if (r->n < 64) {
        r->off[r->n] = off;
        r->len[r->n] = len;
    }
    r->n++;
    return 0;
}

static int stop_now(const vma_stats *st, void *ud)
{
    (void)st;
    (void)ud;
    return 1;
}

static void test_survey(const char *path, const uint8_t *img, size_t size, const char *what)
{
    vma_archive *a = open_a(path);
    if (!a)
        return;
    vma_survey s;
    GError *e = NULL;
    CHECK(vma_archive_survey(a, FALSE, NULL, NULL, &s, &e) == 0, "%s: survey: %s", what,
          e ? e->message : "");
    g_clear_error(&e);
    uint64_t want = data_bytes(img, size);
    CHECK(s.n_devices == 1 && s.devices[0].size == ((size + 511) & ~(size_t)511), "%s: device", what);
    CHECK(s.devices[0].data_bytes == want, "%s: data %" G_GUINT64_FORMAT " want %" G_GUINT64_FORMAT,
          what, s.devices[0].data_bytes, want);
    CHECK(s.devices[0].data_bytes + s.devices[0].zero_bytes == s.devices[0].size &&
          s.devices[0].missing_bytes == 0, "%s: data + zero = size", what);
    CHECK(s.devices[0].digests == NULL, "%s: no digests without them", what);
    vma_survey_clear(&s);
    CHECK(vma_archive_survey(a, TRUE, NULL, NULL, &s, &e) == 0, "%s: survey with digests: %s",
          what, e ? e->message : "");
    g_clear_error(&e);
    CHECK(s.devices[0].digests != NULL && s.devices[0].clusters == vma_clusters(size),
          "%s: digests", what);
    int bad = 0;
    uint8_t buf[VMA_CLUSTER_SIZE];
    for (uint64_t c = 0; s.devices[0].digests && c < s.devices[0].clusters; c++) {
        memset(buf, 0, sizeof(buf));
        memcpy(buf, img + c * VMA_CLUSTER_SIZE, MIN((size_t)VMA_CLUSTER_SIZE,
                                                     size - (size_t)c * VMA_CLUSTER_SIZE));
        uint64_t d = 0;
        for (int k = 0; k < 8; k++)
            d = d << 8 | s.devices[0].digests[c * 8 + (uint64_t)k];
        gboolean zero = vma_is_zero(buf, sizeof(buf));
        if ((d == 0) != zero || d == UINT64_MAX)
            bad++;
    }
    CHECK(bad == 0, "%s: %d digests wrong about zero clusters", what, bad);
    vma_survey_clear(&s);
    /* a stop asked by progress */
    CHECK(vma_archive_survey(a, TRUE, stop_now, NULL, &s, &e) < 0 && e &&
          e->code == VMA_ERR_INTERRUPTED, "%s: progress stops it", what);
    g_clear_error(&e);
    vma_archive_free(a);
}

static void test_diff(const char *pa, const char *pb, const uint8_t *ia, const uint8_t *ib)
{
    vma_archive *a = open_a(pa), *b = open_a(pb);
    if (!a || !b) {
        if (a) vma_archive_free(a);
        if (b) vma_archive_free(b);
        return;
    }
    /* what differs: clusters compared with zeros past each end */
    uint64_t n = vma_clusters(SB), want = 0;
    uint8_t ca[VMA_CLUSTER_SIZE], cb[VMA_CLUSTER_SIZE];
    for (uint64_t c = 0; c < n; c++) {
        memset(ca, 0, sizeof(ca));
        memset(cb, 0, sizeof(cb));
        if (c * VMA_CLUSTER_SIZE < SA)
            memcpy(ca, ia + c * VMA_CLUSTER_SIZE, MIN((size_t)VMA_CLUSTER_SIZE, SA - c * VMA_CLUSTER_SIZE));
        memcpy(cb, ib + c * VMA_CLUSTER_SIZE, VMA_CLUSTER_SIZE);
        if (c >= vma_clusters(SA) || memcmp(ca, cb, sizeof(ca)) != 0)
            want++;
    }
    ranges r1 = {0}, r2 = {0};
    vma_diff_stats s1, s2;
    GError *e = NULL;
    CHECK(vma_archive_diff(a, 1, b, 1, on_range, &r1, NULL, NULL, &s1, &e) == 0, "diff: %s",
          e ? e->message : "");
    g_clear_error(&e);
    CHECK(s1.changed_clusters == want, "diff: %" G_GUINT64_FORMAT " clusters differ, want %"
          G_GUINT64_FORMAT, s1.changed_clusters, want);
    CHECK(s1.length == SB && s1.clusters == n, "diff: length");
    CHECK(r1.n > 0 && r1.off[r1.n - 1] + r1.len[r1.n - 1] == SB, "diff: the grown part differs");
    /* the same from digests */
    vma_survey sa, sb;
    CHECK(vma_archive_survey(a, TRUE, NULL, NULL, &sa, NULL) == 0 &&
          vma_archive_survey(b, TRUE, NULL, NULL, &sb, NULL) == 0, "surveys");
    CHECK(vma_digests_diff(sa.devices[0].digests, sa.devices[0].clusters, sa.devices[0].size,
                           sb.devices[0].digests, sb.devices[0].clusters, sb.devices[0].size,
                           on_range, &r2, &s2, &e) == 0, "digest diff: %s", e ? e->message : "");
    g_clear_error(&e);
    gboolean same = r1.n == r2.n && s1.changed_bytes == s2.changed_bytes;
    for (int i = 0; same && i < MIN(r1.n, 64); i++)
        same = r1.off[i] == r2.off[i] && r1.len[i] == r2.len[i];
    CHECK(same, "the digests give the same ranges as reading (%d and %d ranges)", r1.n, r2.n);
    /* an archive against itself: nothing */
    ranges r3 = {0};
    vma_diff_stats s3;
    CHECK(vma_archive_diff(a, 1, a, 1, on_range, &r3, NULL, NULL, &s3, NULL) == 0 &&
          s3.changed_clusters == 0 && r3.n == 0, "a disk against itself");
    /* too few digests is refused */
    CHECK(vma_digests_diff(sa.devices[0].digests, 3, sa.devices[0].size, sb.devices[0].digests,
                           sb.devices[0].clusters, sb.devices[0].size, NULL, NULL, &s3, &e) < 0 &&
          e && e->code == VMA_ERR_ARG, "short digests refused");
    g_clear_error(&e);
    vma_survey_clear(&sa);
    vma_survey_clear(&sb);
    vma_archive_free(a);
    vma_archive_free(b);
}

static int write_file(const char *path, const uint8_t *img, size_t size, gboolean holes)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0)
        return -1;
    for (size_t off = 0; off < size; off += VMA_BLOCK_SIZE) {
        size_t len = MIN((size_t)VMA_BLOCK_SIZE, size - off);
        if (holes && vma_is_zero(img + off, len))
            continue;
        if (pwrite(fd, img + off, len, (off_t)off) != (ssize_t)len) {
            close(fd);
            return -1;
        }
    }
    int rc = ftruncate(fd, (off_t)size);
    close(fd);
    return rc;
}

static void test_image_digest(const uint8_t *img)
{
    char *p1 = g_strdup_printf("%s/holes.img", tmpdir), *p2 = g_strdup_printf("%s/zeros.img", tmpdir);
    CHECK(write_file(p1, img, SA, TRUE) == 0 && write_file(p2, img, SA, FALSE) == 0, "images");
    uint8_t d1[16], d2[16], d3[16];
    GError *e = NULL;
    int f1 = open(p1, O_RDONLY), f2 = open(p2, O_RDONLY);
    CHECK(vma_fd_digest(f1, p1, d1, NULL, NULL, &e) == 0 && vma_fd_digest(f2, p2, d2, NULL, NULL, &e) == 0,
          "digests: %s", e ? e->message : "");
    g_clear_error(&e);
    CHECK(memcmp(d1, d2, 16) == 0, "holes and written zeros give the same digest");
    close(f1);
    close(f2);
    /* one byte changed: another digest */
    uint8_t *copy = g_memdup2(img, SA);
    copy[SA - 1] ^= 0x40;
    CHECK(write_file(p2, copy, SA, FALSE) == 0, "changed image");
    f2 = open(p2, O_RDONLY);
    CHECK(vma_fd_digest(f2, p2, d3, NULL, NULL, &e) == 0 && memcmp(d1, d3, 16) != 0,
          "a changed byte changes the digest");
    g_clear_error(&e);
    close(f2);
    /* a folder is refused */
    int fd = open(tmpdir, O_RDONLY | O_DIRECTORY);
    CHECK(vma_fd_digest(fd, tmpdir, d3, NULL, NULL, &e) < 0 && e && e->code == VMA_ERR_ARG,
          "a folder is refused");
    g_clear_error(&e);
    close(fd);
    g_free(copy);
    g_free(p1);
    g_free(p2);
}

void test_store(void)
{
    uint8_t *ia = make_image(SA, 11), *ib = g_malloc0(SB);
    memcpy(ib, ia, SA);
    /* B: a few clusters rewritten, one zeroed, the tail grown */
    for (size_t k = 0; k < 3000; k++)
        ib[5 * VMA_CLUSTER_SIZE + k] ^= 0x5a;
    memset(ib + 9 * VMA_CLUSTER_SIZE, 0, VMA_CLUSTER_SIZE);
    ib[40 * VMA_CLUSTER_SIZE + 4096] = 7;
    memset(ib + SA, 0x33, 4000);
    char *pa = archive("sa.vma", VMA_COMPRESS_NONE, ia, SA);
    char *pz = archive("sa.vma.zst", VMA_COMPRESS_ZSTD, ia, SA);
    char *pb = archive("sb.vma", VMA_COMPRESS_NONE, ib, SB);
    test_survey(pa, ia, SA, "plain");
    test_survey(pz, ia, SA, "zstd");
    test_diff(pa, pb, ia, ib);
    test_diff(pz, pb, ia, ib);
    test_image_digest(ia);
    g_free(pa);
    g_free(pz);
    g_free(pb);
    g_free(ia);
    g_free(ib);
}
