/* test_core.c - unit tests of libvma (reader, writer, restore engine).
 * Prints one line per failure and ends with "N passed, N failed". */
#define _GNU_SOURCE
#include "vma.h"
#include "access/access.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "check.h"

int passed, failed;
char tmpdir[] = "/tmp/vma-unit.XXXXXX";

static char *tpath(const char *name)
{
    return g_strdup_printf("%s/%s", tmpdir, name);
}

static void fill_random(uint8_t *buf, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
}

static gboolean file_equals(const char *path, const uint8_t *want, size_t len)
{
    gchar *data;
    gsize n;
    if (!g_file_get_contents(path, &data, &n, NULL))
        return FALSE;
    gboolean eq = n == len && memcmp(data, want, len) == 0;
    g_free(data);
    return eq;
}

static void test_names(void)
{
    const char *good[] = {"qemu-server.conf", "drive-scsi0", "vmstate", "a b", "été", NULL};
    const char *bad[] = {"", ".", "..", "../x", "a/b", "x\n", "\x7f", "\xff\xfe", "evil\xc2\x9b" "31m", NULL};
    for (int i = 0; good[i]; i++)
        CHECK(vma_name_is_safe(good[i], NULL), "'%s' should be safe", good[i]);
    for (int i = 0; bad[i]; i++) {
        GError *e = NULL;
        CHECK(!vma_name_is_safe(bad[i], &e) && e, "name %d should be unsafe", i);
        g_clear_error(&e);
    }
    char longname[300];
    memset(longname, 'a', 299);
    longname[299] = 0;
    CHECK(!vma_name_is_safe(longname, NULL), "299-byte name should be unsafe");
}

/* vma_header_find_device: the exact name first, then the drive- alias; a
 * short name two devices answer to is an error naming both */
static void test_find_device(void)
{
    vma_header *h = g_new0(vma_header, 1);
    vma_device devs[] = {{1, "drive-scsi0", 65536, FALSE}, {2, "scsi0", 65536, FALSE},
                         {3, "drive-tpmstate0", 65536, FALSE},
                         {4, "drive-tpmstate0-backup", 65536, FALSE},
                         {5, "vmstate", 65536, TRUE}, {6, "drive-virtio1", 65536, FALSE}};
    for (unsigned i = 0; i < G_N_ELEMENTS(devs); i++) {
        h->devices[devs[i].id] = &devs[i];
        h->n_devices++;
    }
    struct {
        const char *name;
        gboolean disks_only;
        int id; /* 0: an error */
        const char *msg;
    } cases[] = {
        {"scsi0", FALSE, 2, NULL},
        {"drive-scsi0", FALSE, 1, NULL},
        {"virtio1", FALSE, 6, NULL},
        {"drive-virtio1", TRUE, 6, NULL},
        {"tpmstate0", FALSE, 0, "'tpmstate0' is ambiguous: the archive has drive-tpmstate0 or "
                                "drive-tpmstate0-backup (give the full name)"},
        {"drive-tpmstate0", FALSE, 3, NULL},
        {"vmstate", FALSE, 5, NULL},
        {"vmstate", TRUE, 0, "no disk named 'vmstate' in the archive (the disks: drive-scsi0, "
                             "scsi0, drive-tpmstate0, drive-tpmstate0-backup, drive-virtio1)"},
        {"drive-virtio", FALSE, 0, NULL},
        {"", FALSE, 0, NULL},
        {"drive-", FALSE, 0, NULL},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        GError *e = NULL;
        const vma_device *d = vma_header_find_device(h, cases[i].name, cases[i].disks_only, &e);
        if (cases[i].id) {
            CHECK(d && d->id == cases[i].id && !e, "find_device '%s': id %d", cases[i].name,
                  d ? d->id : -1);
        } else {
            CHECK(!d && e && e->code == VMA_ERR_ARG, "find_device '%s' should fail", cases[i].name);
            if (e && cases[i].msg)
                CHECK(strcmp(e->message, cases[i].msg) == 0, "find_device '%s': %s", cases[i].name,
                      e->message);
        }
        g_clear_error(&e);
    }
    /* no device at all */
    vma_header *empty = g_new0(vma_header, 1);
    GError *e = NULL;
    CHECK(!vma_header_find_device(empty, "scsi0", TRUE, &e) && e &&
          strcmp(e->message, "no disk named 'scsi0' in the archive (the disks: none)") == 0,
          "empty header: %s", e ? e->message : "(no error)");
    g_clear_error(&e);
    g_free(empty);
    g_free(h);
}

static void test_zero(void)
{
    uint8_t buf[VMA_BLOCK_SIZE] = {0};
    CHECK(vma_is_zero(buf, sizeof(buf)), "zero block");
    CHECK(vma_is_zero(buf, 7), "short zero");
    size_t pos[] = {0, 1, 63, 64, 65, 2048, 4095};
    for (unsigned i = 0; i < G_N_ELEMENTS(pos); i++) {
        buf[pos[i]] = 1;
        CHECK(!vma_is_zero(buf, sizeof(buf)), "non-zero byte at %zu", pos[i]);
        buf[pos[i]] = 0;
    }
}

static void test_md5(void)
{
    uint8_t out[16];
    vma_md5("abc", 3, out);
    static const uint8_t want[16] = {0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0,
                                     0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1, 0x7f, 0x72};
    CHECK(memcmp(out, want, 16) == 0, "md5(abc)");
}

/* write an archive with two devices whose clusters are written in an
 * interleaved, reversed order, then restore and compare */
static void test_round_trip(vma_compress comp, const char *name)
{
    const uint64_t size1 = 5000, size2 = 3 * VMA_CLUSTER_SIZE + 12345;
    uint64_t cap1 = vma_clusters(size1) * VMA_CLUSTER_SIZE, cap2 = vma_clusters(size2) * VMA_CLUSTER_SIZE;
    uint8_t *img1 = g_malloc0(cap1), *img2 = g_malloc0(cap2);
    fill_random(img1, size1, 1);
    fill_random(img2, size2, 2);
    memset(img2 + VMA_CLUSTER_SIZE, 0, VMA_CLUSTER_SIZE);           /* a zero cluster */
    for (unsigned j = 0; j < 16; j += 2)                               /* checkerboard */
        memset(img2 + 2 * VMA_CLUSTER_SIZE + j * VMA_BLOCK_SIZE, 0, VMA_BLOCK_SIZE);

    char *arch = tpath(name);
    GError *e = NULL;
    vma_writer_opts o = {.ctime = 1234567890, .compress = comp};
    vma_writer *w = vma_writer_create(arch, &o, &e);
    CHECK(w != NULL, "create %s: %s", name, e ? e->message : "");
    if (!w)
        return;
    CHECK(vma_writer_add_config(w, "qemu-server.conf", "memory: 512\n", 12, NULL) == 0, "config");
    CHECK(vma_writer_add_config(w, "empty.conf", "", 0, NULL) == 0, "empty config");
    int d1 = vma_writer_add_device(w, "drive-scsi0", size1, NULL);
    int d2 = vma_writer_add_device(w, "drive-virtio1", size2, NULL);
    CHECK(d1 == 1 && d2 == 2, "device ids %d %d", d1, d2);
    /* reversed for device 2, interleaved with device 1 */
    for (int c = 3; c >= 0; c--) {
        CHECK(vma_writer_write_cluster(w, 2, (uint32_t)c, img2 + (size_t)c * VMA_CLUSTER_SIZE, &e) == 0,
              "write cluster %d", c);
        if (c == 2)
            CHECK(vma_writer_write_cluster(w, 1, 0, img1, &e) == 0, "write dev1");
    }
    CHECK(vma_writer_write_cluster(w, 1, 0, img1, NULL) < 0, "a duplicate cluster is refused");
    CHECK(vma_writer_add_config(w, "late.conf", "x", 1, NULL) < 0, "config after data refused");
    /* the failed duplicate put the writer in no failed state: only checks */
    CHECK(vma_writer_close(w, &e) == 0, "close: %s", e ? e->message : "");
    g_clear_error(&e);
    vma_writer_free(w);

    vma_reader *r = vma_reader_open(arch, &e);
    CHECK(r != NULL, "open %s: %s", name, e ? e->message : "");
    if (!r)
        return;
    const vma_header *h = vma_reader_header(r);
    CHECK(h->ctime == 1234567890, "ctime");
    CHECK(h->n_configs == 2 && h->configs[1].len == 0, "configs");
    CHECK(h->devices[1] && h->devices[1]->size == 5120, "size rounded up to 512: %" G_GUINT64_FORMAT,
          h->devices[1] ? h->devices[1]->size : 0);
    CHECK(h->devices[2] && h->devices[2]->size == ((size2 + 511) & ~511ull), "size 2");
    CHECK(vma_reader_compression(r) == comp, "compression detected");

    char *p1 = tpath("out1.raw"), *p2 = tpath("out2.raw");
    unlink(p1);
    unlink(p2);
    vma_target t1 = {.fd = open(p1, O_WRONLY | O_CREAT | O_EXCL, 0644), .fresh = TRUE};
    vma_target t2 = {.fd = open(p2, O_WRONLY | O_CREAT | O_EXCL, 0644), .fresh = TRUE};
    vma_target *targets[256] = {0};
    targets[1] = &t1;
    targets[2] = &t2;
    vma_stats st;
    int rc = vma_restore(r, targets, NULL, NULL, &st, &e);
    CHECK(rc == 0, "restore %s: %s", name, e ? e->message : "");
    g_clear_error(&e);
    close(t1.fd);
    close(t2.fd);
    CHECK(file_equals(p1, img1, 5120), "device 1 restored byte for byte");
    CHECK(file_equals(p2, img2, (size2 + 511) & ~511ull), "device 2 restored byte for byte");
    CHECK(st.clusters_done == 5, "clusters %" G_GUINT64_FORMAT, st.clusters_done);
    vma_reader_free(r);
    unlink(p1);
    unlink(p2);
    unlink(arch);
    g_free(p1);
    g_free(p2);
    g_free(arch);
    g_free(img1);
    g_free(img2);
}

/* an archive of one disk (drive-scsi0, img's size bytes, every cluster in
 * order) in compression comp; the device's id, or -1 with err */
static int write_one_disk(const char *path, vma_compress comp, const uint8_t *img, uint64_t size,
                          GError **err)
{
    vma_writer_opts o = {.ctime = 1, .compress = comp};
    vma_writer *w = vma_writer_create(path, &o, err);
    if (!w)
        return -1;
    int dev = vma_writer_add_device(w, "drive-scsi0", size, err);
    for (uint32_t c = 0; dev > 0 && c < size / VMA_CLUSTER_SIZE; c++)
        if (vma_writer_write_cluster(w, (uint8_t)dev, c, img + (size_t)c * VMA_CLUSTER_SIZE, err) < 0)
            dev = -1;
    if (dev > 0 && vma_writer_close(w, err) < 0)
        dev = -1;
    vma_writer_free(w);
    return dev;
}

/* A compressed archive in a file is read by a thread of its own (input.c)
 * in chunks of 1 MiB, four ahead: an archive of many chunks restores byte
 * for byte; cut within a chunk, it fails as truncated (no hang, no bytes
 * made up); a reader freed after a few extents stops both of its threads. */
static void test_read_chunks(vma_compress comp, const char *name)
{
    const uint64_t size = 24u << 20; /* random: about as big compressed */
    uint8_t *img = g_malloc(size);
    fill_random(img, size, 7);
    char *arch = tpath(name);
    GError *e = NULL;
    int dev = write_one_disk(arch, comp, img, size, &e);
    CHECK(dev > 0, "create %s: %s", name, e ? e->message : "");
    g_clear_error(&e);
    if (dev < 0) {
        g_free(img);
        g_free(arch);
        return;
    }
    struct stat st;
    CHECK(stat(arch, &st) == 0 && st.st_size > 12 << 20, "%s: more than 12 chunks", name);

    char *out = tpath("chunks.raw");
    char *cut = g_strdup_printf("%s.cut", arch);
    for (int pass = 0; pass < 2; pass++) {
        const char *path = arch;
        if (pass == 1) {
            /* the first 10 MiB and a bit */
            char *cmd = g_strdup_printf("head -c %u %s >%s", (10u << 20) + 4097, arch, cut);
            CHECK(system(cmd) == 0, "%s: cut", name);
            g_free(cmd);
            path = cut;
        }
        vma_reader *r = vma_reader_open(path, &e);
        CHECK(r != NULL, "%s: open: %s", name, e ? e->message : "");
        g_clear_error(&e);
        if (!r)
            continue;
        unlink(out);
        vma_target t = {.fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0644), .fresh = TRUE};
        vma_target *targets[256] = {0};
        targets[dev] = &t;
        vma_stats rs;
        int rc = vma_restore(r, targets, NULL, NULL, &rs, &e);
        close(t.fd);
        if (pass == 0) {
            CHECK(rc == 0, "%s: restore: %s", name, e ? e->message : "");
            CHECK(file_equals(out, img, size), "%s: restored byte for byte", name);
        } else {
            CHECK(rc < 0 && e && e->code == VMA_ERR_INCOMPLETE,
                  "%s cut within a chunk: truncated (%s)", name, e ? e->message : "no error");
            CHECK(rs.clusters_done < size / VMA_CLUSTER_SIZE, "%s cut: not every cluster", name);
        }
        g_clear_error(&e);
        vma_reader_free(r);
    }

    /* a few extents, then freed: the threads stop (a hang fails the run) */
    vma_reader *r = vma_reader_open(arch, &e);
    CHECK(r != NULL, "%s: open again: %s", name, e ? e->message : "");
    g_clear_error(&e);
    if (r) {
        vma_extent ext;
        int n = 0;
        while (n < 3 && vma_reader_next(r, &ext, NULL) > 0)
            n++;
        CHECK(n == 3, "%s: three extents read", name);
        vma_reader_free(r);
    }
    unlink(out);
    unlink(cut);
    unlink(arch);
    g_free(out);
    g_free(cut);
    g_free(arch);
    g_free(img);
}

/* restore every device of path into unlinked files; 0 or -1 with err */
static int restore_path(const char *path, GError **err)
{
    vma_reader *r = vma_reader_open(path, err);
    if (!r)
        return -1;
    vma_target t[256];
    vma_target *targets[256] = {0};
    const vma_header *h = vma_reader_header(r);
    for (unsigned id = 1; id < 256; id++)
        if (h->devices[id]) {
            char *name = g_strdup_printf("restored-%u.raw", id), *p = tpath(name);
            t[id] = (vma_target){.fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600), .fresh = TRUE};
            targets[id] = &t[id];
            unlink(p);
            g_free(p);
            g_free(name);
        }
    vma_stats st;
    int rc = vma_restore(r, targets, NULL, NULL, &st, err);
    for (unsigned id = 1; id < 256; id++)
        if (targets[id])
            close(t[id].fd);
    vma_reader_free(r);
    return rc;
}

static void flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    uint8_t b = 0;
    if (fd < 0 || pread(fd, &b, 1, at) != 1)
        return;
    b ^= 0x40;
    if (pwrite(fd, &b, 1, at) != 1)
        b = 0;
    close(fd);
}

/* gzip is inflated by ISA-L (input.c): its CRC-32 and length are checked,
 * members made by other tools and concatenated are read, and what follows
 * the last member is refused */
static void test_gzip_checks(void)
{
    char *plain = tpath("gzc.vma"), *bad = tpath("gzc-bad.vma.gz");
    uint8_t *img = g_malloc(3u << 20);
    fill_random(img, 3u << 20, 11);
    for (size_t i = 0; i < (3u << 20); i += 2) /* compressible */
        img[i] = 'a';
    GError *e = NULL;
    int dev = write_one_disk(plain, VMA_COMPRESS_NONE, img, 3u << 20, &e);
    CHECK(dev > 0, "gzip checks: create: %s", e ? e->message : "");
    g_clear_error(&e);
    if (dev < 0)
        goto out;

    struct {
        const char *cmd; /* %1$s the plain archive, %2$s the file made */
        off_t flip;      /* from the end, 0: none */
        int code;        /* 0: restores */
        const char *msg;
        const char *what;
    } cases[] = {
        {"gzip -c %1$s > %2$s", 0, 0, NULL, "one member from gzip"},
        {"(head -c 1000000 %1$s | gzip -c; tail -c +1000001 %1$s | gzip -1 -c) > %2$s", 0, 0, NULL,
         "two members from gzip, concatenated"},
        {"gzip -c %1$s > %2$s", 8, VMA_ERR_FORMAT, "CRC-32", "a CRC-32 flipped"},
        {"gzip -c %1$s > %2$s", 3, VMA_ERR_FORMAT, "length", "the length flipped"},
        {"gzip -c %1$s > %2$s", 200000, VMA_ERR_FORMAT, "gzip: ", "a byte of the data flipped"},
        {"(gzip -c %1$s; printf 'garbage after it') > %2$s", 0, VMA_ERR_FORMAT, "gzip header",
         "bytes after the last member"},
        {"(gzip -c %1$s; printf junk) > %2$s", 0, VMA_ERR_INCOMPLETE, "truncated",
         "fewer bytes than a gzip header after the last member"},
        {"gzip -c %1$s | head -c -3 > %2$s", 0, VMA_ERR_INCOMPLETE, "truncated", "cut in the trailer"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *cmd = g_strdup_printf(cases[i].cmd, plain, bad);
        CHECK(system(cmd) == 0, "gzip checks: %s", cmd);
        g_free(cmd);
        struct stat st;
        if (cases[i].flip && stat(bad, &st) == 0)
            flip_byte(bad, st.st_size - cases[i].flip);
        int rc = restore_path(bad, &e);
        if (cases[i].code == 0)
            CHECK(rc == 0, "gzip, %s: restores (%s)", cases[i].what, e ? e->message : "");
        else
            CHECK(rc < 0 && e && e->code == cases[i].code && strstr(e->message, cases[i].msg),
                  "gzip, %s: refused with '%s' (%s)", cases[i].what, cases[i].msg,
                  e ? e->message : "restored");
        g_clear_error(&e);
    }
out:
    unlink(plain);
    unlink(bad);
    g_free(plain);
    g_free(bad);
    g_free(img);
}

static void test_incomplete_writer(void)
{
    char *arch = tpath("incomplete.vma");
    GError *e = NULL;
    vma_writer *w = vma_writer_create(arch, NULL, &e);
    CHECK(w != NULL, "create");
    vma_writer_add_device(w, "disk0", 3 * VMA_CLUSTER_SIZE, NULL);
    vma_writer_write_cluster(w, 1, 0, NULL, NULL);
    CHECK(vma_writer_close(w, &e) < 0 && e && e->code == VMA_ERR_INCOMPLETE,
          "close with missing clusters fails");
    g_clear_error(&e);
    vma_writer_free(w);
    CHECK(access(arch, F_OK) < 0, "no archive under the final name");
    /* this run's folder only: other runs may be going on */
    GDir *gd = g_dir_open(tmpdir, 0, NULL);
    int tmps = 0;
    for (const char *n; gd && (n = g_dir_read_name(gd));)
        tmps += strstr(n, "tmp") != NULL;
    if (gd)
        g_dir_close(gd);
    CHECK(gd && tmps == 0, "no temporary file left");

    /* an existing file is never replaced */
    g_file_set_contents(arch, "precious", 8, NULL);
    w = vma_writer_create(arch, NULL, &e);
    CHECK(w == NULL && e, "an existing archive is refused");
    g_clear_error(&e);
    CHECK(file_equals(arch, (const uint8_t *)"precious", 8), "existing file untouched");
    unlink(arch);
    g_free(arch);
}

/* a new archive has the mode of a new file (0666 less the umask), and
 * making it leaves the umask as it was */
static void test_archive_mode(void)
{
    static const mode_t masks[] = {022, 027, 077, 0};
    mode_t saved = umask(022);
    for (unsigned i = 0; i < G_N_ELEMENTS(masks); i++) {
        char *arch = tpath("mode.vma");
        umask(masks[i]);
        GError *e = NULL;
        vma_writer *w = vma_writer_create(arch, NULL, &e);
        CHECK(w && vma_writer_add_config(w, "a.conf", "x", 1, &e) == 0 &&
              vma_writer_close(w, &e) == 0, "umask %03o: write: %s", (unsigned)masks[i],
              e ? e->message : "");
        g_clear_error(&e);
        vma_writer_free(w);
        struct stat st;
        CHECK(stat(arch, &st) == 0 && (st.st_mode & 07777) == (0666 & ~masks[i]),
              "umask %03o: the archive's mode is %04o", (unsigned)masks[i],
              (unsigned)(st.st_mode & 07777));
        mode_t now = umask(0);
        CHECK(now == masks[i], "umask %03o: the umask is left as it was (%03o)",
              (unsigned)masks[i], (unsigned)now);
        unlink(arch);
        g_free(arch);
    }
    umask(saved);
}

/* a sparse image goes through write_fd and comes back identical */
static void test_sparse_fd(void)
{
    char *img = tpath("sparse.img"), *arch = tpath("sparse.vma"), *out = tpath("sparse.out");
    uint64_t size = 64ull * 1024 * 1024 + 777;
    int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)size) == 0, "make sparse image");
    uint8_t data[100000];
    fill_random(data, sizeof(data), 7);
    uint64_t offs[] = {0, 5 * VMA_CLUSTER_SIZE + 100, 40ull * 1024 * 1024, size - 777};
    for (unsigned i = 0; i < G_N_ELEMENTS(offs); i++) {
        size_t n = MIN(sizeof(data), size - offs[i]);
        CHECK(pwrite(fd, data, n, (off_t)offs[i]) == (ssize_t)n, "pwrite");
    }
    GError *e = NULL;
    vma_writer *w = vma_writer_create(arch, NULL, &e);
    int id = vma_writer_add_device(w, "disk0", size, &e);
    CHECK(vma_writer_write_fd(w, (uint8_t)id, fd, NULL, NULL, NULL, &e) == 0, "write_fd: %s", e ? e->message : "");
    CHECK(vma_writer_close(w, &e) == 0, "close: %s", e ? e->message : "");
    vma_writer_free(w);

    vma_reader *r = vma_reader_open(arch, &e);
    CHECK(r != NULL, "open sparse archive");
    vma_target t = {.fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), .fresh = TRUE};
    vma_target *targets[256] = {0};
    targets[1] = &t;
    CHECK(vma_restore(r, targets, NULL, NULL, NULL, &e) == 0, "restore sparse");
    close(t.fd);
    vma_reader_free(r);
    gchar *a = NULL, *b = NULL;
    gsize na = 0, nb = 0;
    g_file_get_contents(img, &a, &na, NULL);
    g_file_get_contents(out, &b, &nb, NULL);
    uint64_t want = (size + 511) & ~511ull;
    CHECK(nb == want && na == size && memcmp(a, b, na) == 0 && vma_is_zero(b + na, nb - na),
          "sparse image restored byte for byte (%zu, %zu)", na, nb);
    struct stat st;
    CHECK(stat(out, &st) == 0 && (uint64_t)st.st_blocks * 512 < 4 * 1024 * 1024,
          "restored image is sparse (%lld blocks)", (long long)st.st_blocks);
    g_free(a);
    g_free(b);
    close(fd);
    unlink(img);
    unlink(arch);
    unlink(out);
    g_free(img);
    g_free(arch);
    g_free(out);
}

/* ---- salvage on a stream that fails in resync ---- */

/* a good archive (one extent of one cluster), then a bad extent header and
 * 2 KiB of garbage: salvage goes looking for the next extent header */
static gchar *salvage_stream(gsize *n)
{
    char *arch = tpath("salvage-src.vma");
    vma_writer *w = vma_writer_create(arch, NULL, NULL);
    vma_writer_add_device(w, "disk0", VMA_CLUSTER_SIZE, NULL);
    uint8_t cl[VMA_CLUSTER_SIZE];
    fill_random(cl, sizeof(cl), 9);
    vma_writer_write_cluster(w, 1, 0, cl, NULL);
    CHECK(vma_writer_close(w, NULL) == 0, "salvage: the archive");
    vma_writer_free(w);
    gchar *good = NULL;
    gsize len = 0;
    g_file_get_contents(arch, &good, &len, NULL);
    unlink(arch);
    g_free(arch);
    gchar *all = g_malloc(len + 2560);
    memcpy(all, good, len);
    memset(all + len, 0xaa, 2560);
    g_free(good);
    *n = len + 2560;
    return all;
}

static void no_damage_note(uint64_t off, const char *what, void *ud)
{
    (void)off;
    (void)what;
    (*(int *)ud)++;
}

/* the salvage reader on fd: the first extent, then the second call's
 * result (its error in *e) */
static int salvage_second(int fd, int *damage, GError **e)
{
    vma_reader *r = vma_reader_open_fd(fd, e);
    CHECK(r != NULL, "salvage: open: %s", *e ? (*e)->message : "");
    if (!r)
        return 99;
    vma_reader_set_salvage(r, no_damage_note, damage);
    vma_extent *ext = g_new(vma_extent, 1);
    int first = vma_reader_next(r, ext, e);
    CHECK(first == 1, "salvage: the first extent");
    int rc = vma_reader_next(r, ext, e);
    g_free(ext);
    vma_reader_free(r);
    return rc;
}

static pthread_t salvage_main;
static int salvage_fd;

static void on_usr1(int sig) { (void)sig; }

/* once the reader has taken every byte sent, and waits for more in its
 * search for an extent: Ctrl-C (the flag, then a signal that interrupts
 * the read) */
static void *interrupt_when_drained(void *p)
{
    (void)p;
    int left = 1;
    while (ioctl(salvage_fd, FIONREAD, &left) == 0 && left > 0)
        g_usleep(1000);
    g_usleep(100 * 1000);
    vma_interrupt();
    pthread_kill(salvage_main, SIGUSR1);
    return NULL;
}

/* a read error (the peer of a socket gone: ECONNRESET) or Ctrl-C while
 * salvage looks for the next extent fails the salvage; it is not "nothing
 * valid up to the end" */
static void test_salvage_errors(void)
{
    gsize n;
    gchar *bytes = salvage_stream(&n);
    int sv[2];
    /* the read error: all the bytes sent, then the peer closes with data
     * of ours unread, which makes our next read fail after them */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    CHECK(vma_write_all(sv[1], bytes, n, NULL) == 0 && write(sv[0], "x", 1) == 1, "send");
    close(sv[1]);
    int damage = 0;
    GError *e = NULL;
    int rc = salvage_second(sv[0], &damage, &e);
    CHECK(rc == -1 && e && e->code == VMA_ERR_IO,
          "salvage: a read error while looking for an extent fails it (%d: %s)", rc,
          e ? e->message : "no error");
    g_clear_error(&e);

    /* Ctrl-C while the search waits for more bytes */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    CHECK(vma_write_all(sv[1], bytes, n, NULL) == 0, "send");
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_usr1; /* no SA_RESTART: the read returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old);
    salvage_main = pthread_self();
    salvage_fd = sv[0];
    pthread_t th;
    pthread_create(&th, NULL, interrupt_when_drained, NULL);
    damage = 0;
    rc = salvage_second(sv[0], &damage, &e);
    pthread_join(th, NULL);
    CHECK(rc == -1 && e && e->code == VMA_ERR_INTERRUPTED,
          "salvage: Ctrl-C while looking for an extent fails it (%d: %s)", rc,
          e ? e->message : "no error");
    g_clear_error(&e);
    vma_interrupt_clear();
    sigaction(SIGUSR1, &old, NULL);
    close(sv[1]);
    g_free(bytes);
}

/* corruptions of a good archive are reported with the right kind */
static void test_corruption(void)
{
    char *arch = tpath("good.vma"), *bad = tpath("bad.vma");
    GError *e = NULL;
    vma_writer *w = vma_writer_create(arch, NULL, &e);
    vma_writer_add_config(w, "qemu-server.conf", "x", 1, NULL);
    vma_writer_add_device(w, "disk0", 2 * VMA_CLUSTER_SIZE, NULL);
    uint8_t cl[VMA_CLUSTER_SIZE];
    fill_random(cl, sizeof(cl), 3);
    vma_writer_write_cluster(w, 1, 0, cl, NULL);
    vma_writer_write_cluster(w, 1, 1, cl, NULL);
    CHECK(vma_writer_close(w, &e) == 0, "close");
    vma_writer_free(w);
    gchar *good;
    gsize n;
    g_file_get_contents(arch, &good, &n, NULL);

    struct { size_t off; size_t trunc; int code; const char *what; } cases[] = {
        {100, 0, VMA_ERR_FORMAT, "header checksum"},
        {0, 0, VMA_ERR_FORMAT, "magic"},
        {12800 + 30, 0, VMA_ERR_FORMAT, "extent checksum"},
        {n - 5, 0, -1, "data byte (not protected by the format)"},
        {0, 12800 + 100, VMA_ERR_INCOMPLETE, "truncated extent header"},
        {0, n - 4096, VMA_ERR_INCOMPLETE, "truncated extent data"},
        {0, 5000, VMA_ERR_INCOMPLETE, "truncated header"},
        {0, 12800, VMA_ERR_INCOMPLETE, "no extents: missing clusters"},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        gchar *copy = g_memdup2(good, n);
        size_t len = cases[i].trunc ? cases[i].trunc : n;
        if (!cases[i].trunc)
            copy[cases[i].off] ^= 0x5a;
        g_file_set_contents(bad, copy, (gssize)len, NULL);
        g_free(copy);
        vma_reader *r = vma_reader_open(bad, &e);
        if (r) {
            vma_restore(r, NULL, NULL, NULL, NULL, &e);
            vma_reader_free(r);
        }
        if (cases[i].code < 0)
            CHECK(e == NULL, "%s: should pass", cases[i].what);
        else
            CHECK(e && e->code == cases[i].code, "%s: expected code %d, got %s", cases[i].what,
                  cases[i].code, e ? e->message : "success");
        g_clear_error(&e);
    }
    g_free(good);
    unlink(arch);
    unlink(bad);
    g_free(arch);
    g_free(bad);
}

/* the Proxmox fixtures read with the statistics Proxmox's vma prints */
static void test_fixtures(const char *root)
{
    char *path = g_strdup_printf("%s/proxmox/a-two-drives/a-two-drives.vma", root);
    GError *e = NULL;
    vma_reader *r = vma_reader_open(path, &e);
    CHECK(r != NULL, "open fixture %s: %s", path, e ? e->message : "");
    g_free(path);
    if (!r)
        return;
    const vma_header *h = vma_reader_header(r);
    CHECK(h->n_configs == 2 && h->n_devices == 2, "fixture counts");
    CHECK(vma_reader_find_device(r, "drive-virtio1") && vma_reader_find_device(r, "drive-virtio1")->size == 144384,
          "fixture device size");
    vma_stats st;
    CHECK(vma_restore(r, NULL, NULL, NULL, &st, &e) == 0, "verify fixture");
    CHECK(st.clusters_done == 20 && st.zero_bytes == 713728, "fixture stats %" G_GUINT64_FORMAT,
          st.zero_bytes);
    vma_reader_free(r);
}

/* the cluster set: runs merge in any order, duplicates are seen, gaps counted */
static void test_cluster_set(void)
{
    vma_runs *b = vma_runs_new(100, 1000);
    uint64_t first = 0;
    CHECK(vma_runs_missing(b, &first) == 100 && first == 0, "empty set");
    for (int i = 99; i >= 50; i--) /* reversed */
        CHECK(vma_runs_add(b, (uint64_t)i) == 0, "set %d", i);
    CHECK(vma_runs_count(b) == 1, "reversed clusters are one run");
    for (int i = 0; i < 50; i += 2) /* every other one */
        vma_runs_add(b, (uint64_t)i);
    CHECK(vma_runs_count(b) == 26, "25 lone clusters + 1 run: %" G_GUINT64_FORMAT, vma_runs_count(b));
    CHECK(vma_runs_missing(b, &first) == 25 && first == 1, "25 missing, first 1");
    CHECK(vma_runs_add(b, 10) == 1 && vma_runs_add(b, 75) == 1, "duplicates seen");
    for (int i = 1; i < 50; i += 2)
        CHECK(vma_runs_add(b, (uint64_t)i) == 0, "fill %d", i);
    CHECK(vma_runs_count(b) == 1 && vma_runs_missing(b, &first) == 0, "all merged, none missing");
    vma_runs_free(b);

    /* the bound on runs */
    b = vma_runs_new(1ull << 32, 3);
    CHECK(vma_runs_add(b, 0) == 0 && vma_runs_add(b, 10) == 0 &&
          vma_runs_add(b, 20) == 0, "three runs");
    CHECK(vma_runs_add(b, 30) < 0, "a fourth run is refused");
    CHECK(vma_runs_add(b, 11) == 0, "extending a run is fine");
    CHECK(vma_runs_missing(b, &first) == (1ull << 32) - 4 && first == 1, "huge set counted");
    vma_runs_free(b);
}

static void test_bitmap_scale(void)
{
    /* a 1 TiB device: the reader's bookkeeping must stay small */
    char *arch = tpath("huge-header.vma");
    GError *e = NULL;
    vma_writer *w = vma_writer_create(arch, NULL, &e);
    CHECK(vma_writer_add_device(w, "disk0", 1ull << 40, &e) == 1, "1 TiB device");
    CHECK(vma_writer_add_device(w, "disk1", 1ull << 49, NULL) < 0, "2^49 bytes is refused");
    vma_writer_free(w); /* abandoned: nothing stays */
    CHECK(access(arch, F_OK) < 0, "abandoned archive removed");
    g_free(arch);
}

/* ---- compressed output: frames, seek table, threads, levels ---- */

#define FB ((size_t)VMA_FRAME_BYTES)

/* the frame rule of compress.c, as a model: ext[0] is the header; returns
 * the number of frames and their decompressed sizes in frames[] */
static unsigned model_frames(const size_t *ext, unsigned n, size_t *frames)
{
    size_t cur = 0;
    unsigned nf = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t len = ext[i];
        if (cur >= FB) {            /* it starts when the frame holds FB */
            frames[nf++] = cur;
            cur = 0;
        }
        if (cur > 0 && len >= FB) { /* it is FB or more: a frame of its own */
            frames[nf++] = cur;
            cur = 0;
        }
        if (cur == 0) {             /* it begins a frame: cut every FB */
            while (len > 0) {
                size_t k = MIN(len, FB - cur);
                cur += k;
                len -= k;
                if (cur == FB) {
                    frames[nf++] = cur;
                    cur = 0;
                }
            }
        } else {
            cur += len;
        }
    }
    if (cur)
        frames[nf++] = cur;
    return nf;
}

/* compressible bytes: runs of repeated small values with random bits */
static void fill_compressible(uint8_t *buf, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)("abcdefgh  \n"[(seed >> 16) % 11]);
    }
}

/* write the stream as extents (each in `pieces` calls) through vma_out */
static gboolean write_stream(const char *path, vma_compress c, int threads, const uint8_t *data,
                             const size_t *ext, unsigned n, unsigned pieces)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    GError *e = NULL;
    vma_out *o = vma_out_new(fd, c, 1, threads, &e);
    CHECK(o != NULL, "vma_out_new: %s", e ? e->message : "");
    if (!o) {
        g_clear_error(&e);
        close(fd);
        return FALSE;
    }
    size_t off = 0;
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        if (i > 0)
            vma_out_mark(o);
        size_t left = ext[i], step = ext[i] / pieces + 1;
        while (left > 0 && rc == 0) {
            size_t k = MIN(left, step);
            if (k > 100) {
                /* half of it as two iovecs */
                struct iovec iov[2] = {{(void *)(data + off), k / 2}, {(void *)(data + off + k / 2), k - k / 2}};
                rc = vma_out_writev(o, iov, 2, &e);
            } else {
                rc = vma_out_write(o, data + off, k, &e);
            }
            off += k;
            left -= k;
        }
    }
    if (rc == 0)
        rc = vma_out_finish(o, &e);
    CHECK(rc == 0, "write: %s", e ? e->message : "");
    g_clear_error(&e);
    vma_out_free(o);
    close(fd);
    return rc == 0;
}

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* what vma_out_set_direct's writer told: each frame, in order, once it is
 * in the file (read back through a descriptor of its own, as the readers
 * of a copy in the making read it) */
typedef struct {
    int rfd;
    uint64_t at;
    unsigned frames;
    gboolean in_file;
} told;

static void on_told(void *ud, uint64_t csize, uint64_t dsize)
{
    told *t = ud;
    uint8_t m[4];
    if (pread(t->rfd, m, 4, (off_t)t->at) != 4 ||
        (m[0] | m[1] << 8 | m[2] << 16 | (uint32_t)m[3] << 24) != 0xFD2FB528u || dsize == 0)
        t->in_file = FALSE;
    t->at += csize;
    t->frames++;
}

/* the stream of write_stream (zstd, one worker) through O_DIRECT, a flush
 * after every flush_every-th extent (0: none): the file, and the frames told */
static gboolean write_stream_direct(const char *path, const uint8_t *data, const size_t *ext,
                                    unsigned n, unsigned flush_every, told *t)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    t->rfd = open(path, O_RDONLY);
    GError *e = NULL;
    vma_out *o = vma_out_new(fd, VMA_COMPRESS_ZSTD, 1, 1, &e);
    CHECK(o != NULL && t->rfd >= 0, "vma_out_new: %s", e ? e->message : "");
    if (!o) {
        g_clear_error(&e);
        close(fd);
        return FALSE;
    }
    vma_out_set_frame_fn(o, on_told, t);
    /* where the file system takes O_DIRECT, the writer must use it */
    char *probe = g_strdup_printf("%s.probe", path);
    int pfd = open(probe, O_WRONLY | O_CREAT | O_DIRECT, 0600);
    gboolean direct = vma_out_set_direct(o);
    CHECK(pfd < 0 || direct, "O_DIRECT works in %s but the writer does not use it", path);
    if (pfd >= 0)
        close(pfd);
    unlink(probe);
    g_free(probe);
    size_t off = 0;
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        if (i > 0)
            vma_out_mark(o);
        rc = vma_out_write(o, data + off, ext[i], &e);
        off += ext[i];
        if (rc == 0 && flush_every && i % flush_every == 0)
            rc = vma_out_flush(o, &e);
    }
    if (rc == 0)
        rc = vma_out_finish(o, &e);
    CHECK(rc == 0, "direct write: %s", e ? e->message : "");
    CHECK(rc < 0 || !direct || vma_out_direct(o),
          "a flush every %u extents: some writes went around O_DIRECT", flush_every);
    g_clear_error(&e);
    vma_out_free(o);
    close(fd);
    close(t->rfd);
    return rc == 0;
}

/* a write that fails in the writer's thread (a file size limit, as a full
 * disk would): the failure reaches the caller, at a later write or at the
 * end, with the system's reason; nothing hangs */
static void test_direct_failure(const uint8_t *data, size_t total)
{
    char *path = tpath("direct-limit.zst");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    GError *e = NULL;
    vma_out *o = fd >= 0 ? vma_out_new(fd, VMA_COMPRESS_ZSTD, 1, 1, &e) : NULL;
    struct rlimit old_rl;
    getrlimit(RLIMIT_FSIZE, &old_rl);
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {1u << 20, old_rl.rlim_max};
    setrlimit(RLIMIT_FSIZE, &rl);
    int rc = o ? 0 : -1;
    if (o)
        vma_out_set_direct(o);
    for (size_t off = 0; rc == 0 && off < total; off += 1u << 20) {
        vma_out_mark(o);
        rc = vma_out_write(o, data + off, MIN((size_t)1 << 20, total - off), &e);
    }
    if (rc == 0)
        rc = vma_out_finish(o, &e);
    setrlimit(RLIMIT_FSIZE, &old_rl);
    signal(SIGXFSZ, old_sig);
    CHECK(rc < 0 && e && strstr(e->message, "write failed") && strstr(e->message, "too large"),
          "a write the writer's thread could not make fails the output: %s",
          e ? e->message : "no error");
    g_clear_error(&e);
    vma_out_free(o);
    if (fd >= 0)
        close(fd);
    unlink(path);
    g_free(path);
}

/* the same bytes through O_DIRECT as through the page cache, whatever the
 * flushes; the file cut to its length (no padding left); every frame told
 * in order and readable when told */
static void test_direct(const uint8_t *data, const size_t *ext, unsigned n, const gchar *plain,
                        gsize plain_len, unsigned nframes)
{
    const unsigned every[] = {0, 1, 3};
    for (unsigned k = 0; k < G_N_ELEMENTS(every); k++) {
        char *name = g_strdup_printf("direct%u.zst", every[k]);
        char *path = tpath(name);
        told t = {.in_file = TRUE};
        gchar *got = NULL;
        gsize len = 0;
        if (write_stream_direct(path, data, ext, n, every[k], &t))
            g_file_get_contents(path, &got, &len, NULL);
        CHECK(got && plain && len == plain_len && memcmp(got, plain, len) == 0,
              "O_DIRECT, a flush every %u extents: the same %zu bytes (got %zu)", every[k],
              (size_t)plain_len, (size_t)len);
        CHECK(t.frames == nframes && t.in_file,
              "O_DIRECT, a flush every %u extents: %u frames told (of %u), in the file when told",
              every[k], t.frames, nframes);
        g_free(got);
        unlink(path);
        g_free(path);
        g_free(name);
    }
}

static void test_seekable(void)
{
    /* the header, small and full extents, one that starts a frame because
     * the frame holds FB, extents of FB and more (starting mid-frame) */
    size_t ext[] = {12800, 512, 512 + 65536, 3867136, 3867136, 512 + 20 * 4096, 3867136, 512,
                    FB + 12345, 100000, 2 * FB + 3 * 4096, 512, 3867136, 700000, FB, 512};
    unsigned n = G_N_ELEMENTS(ext);
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += ext[i];
    uint8_t *data = g_malloc(total);
    fill_compressible(data, total, 7);
    size_t want[64];
    unsigned nwant = model_frames(ext, n, want);

    char *a = tpath("s1.zst"), *b = tpath("s3.zst"), *c = tpath("s3p.zst");
    gboolean ok = write_stream(a, VMA_COMPRESS_ZSTD, 1, data, ext, n, 1) &&
                  write_stream(b, VMA_COMPRESS_ZSTD, 3, data, ext, n, 1) &&
                  write_stream(c, VMA_COMPRESS_ZSTD, 2, data, ext, n, 3);
    gchar *fa = NULL, *fb = NULL, *fc = NULL;
    gsize la = 0, lb = 0, lc = 0;
    if (ok) {
        g_file_get_contents(a, &fa, &la, NULL);
        g_file_get_contents(b, &fb, &lb, NULL);
        g_file_get_contents(c, &fc, &lc, NULL);
    }
    CHECK(fa && fb && la == lb && memcmp(fa, fb, la) == 0, "zstd: the same bytes with 1 and 3 threads");
    CHECK(fa && fc && la == lc && memcmp(fa, fc, la) == 0,
          "zstd: the same bytes when the extents come in several calls");
    if (fa && la > 17) {
        const uint8_t *f = (const uint8_t *)fa;
        uint32_t nf = le32(f + la - 9);
        CHECK(le32(f + la - 4) == 0x8F92EAB1u, "seekable magic");
        CHECK(f[la - 5] == 0, "descriptor: no checksums");
        CHECK(nf == nwant, "%u frames, the rule says %u", nf, nwant);
        size_t tsize = 8 * (size_t)nf + 9;
        const uint8_t *t = f + la - tsize;
        CHECK(le32(t - 8) == 0x184D2A5Eu && le32(t - 4) == tsize, "skippable frame of the seek table");
        size_t coff = 0, doff = 0;
        uint8_t *out = g_malloc(2 * FB);
        gboolean sizes_ok = TRUE, frames_ok = TRUE;
        for (uint32_t i = 0; i < nf && i < nwant && coff < la; i++) {
            uint32_t csize = le32(t + 8 * i), dsize = le32(t + 8 * i + 4);
            if (dsize != want[i])
                sizes_ok = FALSE;
            /* each frame alone: its size, its content size, its bytes */
            size_t r = ZSTD_decompress(out, 2 * FB, f + coff, csize);
            if (ZSTD_findFrameCompressedSize(f + coff, csize) != csize ||
                ZSTD_getFrameContentSize(f + coff, csize) != dsize || r != dsize ||
                doff + dsize > total || memcmp(out, data + doff, dsize) != 0)
                frames_ok = FALSE;
            coff += csize;
            doff += dsize;
        }
        g_free(out);
        CHECK(sizes_ok, "frame sizes follow the rule");
        CHECK(frames_ok, "every frame decompresses alone to its bytes");
        CHECK(coff + tsize + 8 == la && doff == total, "the frames cover the file and the data");
    }
    test_direct(data, ext, n, fa, la, nwant);
    test_direct_failure(data, total);
    g_free(fa);
    g_free(fb);
    g_free(fc);

    /* gzip: one member per frame, the same bytes with any thread count */
    char *g1 = tpath("s1.gz"), *g4 = tpath("s4.gz");
    ok = write_stream(g1, VMA_COMPRESS_GZIP, 1, data, ext, n, 1) &&
         write_stream(g4, VMA_COMPRESS_GZIP, 4, data, ext, n, 2);
    gchar *ga = NULL, *gb = NULL;
    gsize gla = 0, glb = 0;
    if (ok) {
        g_file_get_contents(g1, &ga, &gla, NULL);
        g_file_get_contents(g4, &gb, &glb, NULL);
    }
    CHECK(ga && gb && gla == glb && memcmp(ga, gb, gla) == 0, "gzip: the same bytes with 1 and 4 threads");
    if (ga) {
        z_stream zs = {0};
        inflateInit2(&zs, 15 + 16);
        uint8_t *out = g_malloc(2 * FB);
        zs.next_in = (Bytef *)ga;
        zs.avail_in = (uInt)gla;
        unsigned members = 0;
        size_t doff = 0;
        gboolean members_ok = TRUE;
        while (zs.avail_in > 0 && members < 64) {
            zs.next_out = out;
            zs.avail_out = (uInt)(2 * FB);
            int ret = inflate(&zs, Z_FINISH);
            size_t got = 2 * FB - zs.avail_out;
            if (ret != Z_STREAM_END || members >= nwant || got != want[members] ||
                memcmp(out, data + doff, got) != 0) {
                members_ok = FALSE;
                break;
            }
            doff += got;
            members++;
            inflateReset(&zs);
        }
        inflateEnd(&zs);
        g_free(out);
        CHECK(members_ok && members == nwant && doff == total, "gzip: %u members as the frames", members);
    }
    g_free(ga);
    g_free(gb);
    unlink(a);
    unlink(b);
    unlink(c);
    unlink(g1);
    unlink(g4);
    g_free(a);
    g_free(b);
    g_free(c);
    g_free(g1);
    g_free(g4);
    g_free(data);
}

static void test_levels(void)
{
    GError *e = NULL;
    CHECK(vma_compress_check(VMA_COMPRESS_ZSTD, 0, 0, NULL), "zstd default");
    CHECK(vma_compress_check(VMA_COMPRESS_ZSTD, 19, 256, NULL), "zstd 19, 256 threads");
    CHECK(!vma_compress_check(VMA_COMPRESS_ZSTD, 20, 0, &e) && e && e->code == VMA_ERR_ARG &&
          strstr(e->message, "1..19"), "zstd 20 refused");
    g_clear_error(&e);
    CHECK(!vma_compress_check(VMA_COMPRESS_ZSTD, -1, 0, NULL), "zstd -1 refused");
    CHECK(vma_compress_check(VMA_COMPRESS_GZIP, 9, 1, NULL), "gzip 9");
    CHECK(!vma_compress_check(VMA_COMPRESS_GZIP, 10, 1, NULL), "gzip 10 refused");
    CHECK(vma_compress_check(VMA_COMPRESS_LZO, 1, 1, NULL), "lzo 1");
    CHECK(!vma_compress_check(VMA_COMPRESS_LZO, 10, 1, NULL), "lzo 10 refused");
    CHECK(vma_compress_check(VMA_COMPRESS_NONE, 0, 0, NULL), "none without a level");
    CHECK(!vma_compress_check(VMA_COMPRESS_NONE, 3, 0, NULL), "none with a level refused");
    CHECK(!vma_compress_check(VMA_COMPRESS_GZIP, 0, -1, NULL), "-1 threads refused");
    CHECK(!vma_compress_check(VMA_COMPRESS_GZIP, 0, 257, NULL), "257 threads refused");
    int lo, hi, def;
    CHECK(vma_compress_levels(VMA_COMPRESS_GZIP, &lo, &hi, &def) && lo == 1 && hi == 9 && def == 6,
          "gzip levels");
    CHECK(!vma_compress_levels(VMA_COMPRESS_NONE, &lo, &hi, &def) && lo == 0 && hi == 0, "none: no levels");
    /* the writer refuses them too, before writing anything */
    char *arch = tpath("level.vma.zst");
    vma_writer_opts o = {.ctime = -1, .compress = VMA_COMPRESS_ZSTD, .level = 25};
    vma_writer *w = vma_writer_create(arch, &o, &e);
    CHECK(!w && e && e->code == VMA_ERR_ARG, "writer with zstd level 25 refused");
    g_clear_error(&e);
    CHECK(access(arch, F_OK) < 0, "and nothing written");
    g_free(arch);
}

int main(int argc, char **argv)
{
    const char *fixtures = argc > 1 ? argv[1] : "tests/fixtures";
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_names();
    test_find_device();
    test_zero();
    test_md5();
    test_round_trip(VMA_COMPRESS_NONE, "rt.vma");
    test_round_trip(VMA_COMPRESS_ZSTD, "rt.vma.zst");
    test_round_trip(VMA_COMPRESS_GZIP, "rt.vma.gz");
    test_round_trip(VMA_COMPRESS_LZO, "rt.vma.lzo");
    test_read_chunks(VMA_COMPRESS_ZSTD, "chunks.vma.zst");
    test_read_chunks(VMA_COMPRESS_GZIP, "chunks.vma.gz");
    test_read_chunks(VMA_COMPRESS_LZO, "chunks.vma.lzo");
    test_gzip_checks();
    test_seekable();
    test_levels();
    test_incomplete_writer();
    test_archive_mode();
    test_sparse_fd();
    test_corruption();
    test_salvage_errors();
    test_fixtures(fixtures);
    test_bitmap_scale();
    test_cluster_set();
    test_access();
    test_lzop();
    test_store();
    test_guest();
    char *cmd = g_strdup_printf("rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    g_free(cmd);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
