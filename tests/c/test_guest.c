/* test_guest.c - unit tests of the guest layer on images made here: volumes
 * laid over several ranges of several disks (reads and maps across their
 * seams), GPT (the backup used when the primary is damaged), MBR with a
 * chain of logical partitions (and a loop in it), LVM2 labels and metadata
 * (a text that wraps around the ring, damaged checksums), and ext4 extent
 * trees (holes, unwritten extents, extents past the file system). */
#define _GNU_SOURCE
#include "vma.h"
#include "guest/guest.h"
#include "check.h"

#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define DSIZE (64u * VMA_CLUSTER_SIZE)

/* an archive of the given disk images (each DSIZE bytes) */
static vma_archive *archive_of(const char *name, uint8_t *const *disks, unsigned n)
{
    char *path = g_strdup_printf("%s/%s", tmpdir, name);
    GError *e = NULL;
    vma_writer *w = vma_writer_create(path, NULL, &e);
    CHECK(w != NULL, "create: %s", e ? e->message : "");
    for (unsigned i = 0; i < n; i++) {
        char dn[32];
        snprintf(dn, sizeof(dn), "drive-scsi%u", i);
        vma_writer_add_device(w, dn, DSIZE, NULL);
    }
    for (unsigned i = 0; i < n; i++)
        for (uint32_t c = 0; c < DSIZE / VMA_CLUSTER_SIZE; c++) {
            const uint8_t *p = disks[i] + (size_t)c * VMA_CLUSTER_SIZE;
            vma_writer_write_cluster(w, (uint8_t)(i + 1), c, vma_is_zero(p, VMA_CLUSTER_SIZE) ? NULL : p, NULL);
        }
    CHECK(vma_writer_close(w, &e) == 0, "close: %s", e ? e->message : "");
    g_clear_error(&e);
    vma_writer_free(w);
    vma_archive_opts o = {.cache = VMA_CACHE_OFF};
    vma_archive *a = vma_archive_open(path, &o, &e);
    CHECK(a != NULL, "open: %s", e ? e->message : "");
    g_clear_error(&e);
    g_free(path);
    return a;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16) | 1;
    }
}

typedef struct {
    vma_piece p[64];
    int n;
} pieces;

static int collect(const vma_piece *p, void *ud)
{
    pieces *ps = ud;
    if (ps->n < 64)
        ps->p[ps->n++] = *p;
    return 0;
}

static void test_volumes(void)
{
    uint8_t *d0 = g_malloc0(DSIZE), *d1 = g_malloc0(DSIZE);
    fill(d0 + 65536, 3 * 65536, 1);
    fill(d1, 65536, 2);
    uint8_t *disks[] = {d0, d1};
    vma_archive *a = archive_of("vol.vma", disks, 2);
    if (!a)
        return;
    /* 100 KiB of disk 0 from 60 KiB, then 50 KiB of disk 1 from 10 KiB */
    vma_segment segs[] = {{1, 60 * 1024, 100 * 1024}, {2, 10 * 1024, 50 * 1024}};
    GError *e = NULL;
    vma_volume *v = vma_volume_new(a, segs, 2, &e);
    CHECK(v && vma_volume_size(v) == 150 * 1024, "a volume of two ranges");
    uint8_t buf[150 * 1024];
    CHECK(vma_volume_pread(v, buf, sizeof(buf), 0, &e) == (ssize_t)sizeof(buf), "read whole");
    CHECK(memcmp(buf, d0 + 60 * 1024, 100 * 1024) == 0 && memcmp(buf + 100 * 1024, d1 + 10 * 1024, 50 * 1024) == 0,
          "its bytes are the ranges' bytes");
    uint8_t small[8192];
    CHECK(vma_volume_pread(v, small, sizeof(small), 96 * 1024, &e) == 8192 &&
          memcmp(small, buf + 96 * 1024, 8192) == 0, "a read across the seam");
    CHECK(vma_volume_pread(v, small, sizeof(small), 146 * 1024, &e) == 4096, "a short read at the end");
    pieces ps = {.n = 0};
    CHECK(vma_volume_map(v, 0, vma_volume_size(v), collect, &ps, &e) == 0, "map");
    /* zero [0, 4K), then disk 0's data [4K, 100K) and disk 1's [100K, 150K) merged */
    CHECK(ps.n == 2 && ps.p[0].kind == VMA_PIECE_ZERO && ps.p[0].length == 4096 &&
          ps.p[1].kind == VMA_PIECE_DATA && ps.p[1].offset == 4096 && ps.p[1].length == 146 * 1024,
          "map pieces merged across the seam (%d)", ps.n);
    vma_volume *s = vma_volume_slice(v, 90 * 1024, 20 * 1024, &e);
    CHECK(s && vma_volume_pread(s, small, 8192, 6 * 1024, &e) == 8192 &&
          memcmp(small, buf + 96 * 1024, 8192) == 0, "a slice of it");
    vma_volume_free(s);
    CHECK(!vma_volume_slice(v, 140 * 1024, 20 * 1024, &e) && e && e->code == VMA_ERR_ARG, "a slice past the end");
    g_clear_error(&e);
    vma_segment bad = {3, 0, 4096};
    CHECK(!vma_volume_new(a, &bad, 1, &e), "a range of a disk that is not there");
    g_clear_error(&e);
    vma_segment past = {1, DSIZE - 4096, 8192};
    CHECK(!vma_volume_new(a, &past, 1, &e), "a range past the end of its disk");
    g_clear_error(&e);
    vma_volume_free(v);
    vma_archive_free(a);
    g_free(d0);
    g_free(d1);
}

static void put_le32(uint8_t *p, uint32_t v) { vma_put_le32(p, v); }
static void put_le64(uint8_t *p, uint64_t v)
{
    vma_put_le32(p, (uint32_t)v);
    vma_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* a GPT of 128 entries: entry 1 (LBA 2048-4095) and 3 (LBA 6000-7000) */
static void write_gpt(uint8_t *d, uint64_t lba, uint64_t entries_lba, uint64_t other)
{
    uint8_t *h = d + lba * 512, *t = d + entries_lba * 512;
    memset(t, 0, 128 * 128);
    for (int k = 0; k < 2; k++) {
        uint8_t *e = t + (k ? 2 : 0) * 128;
        memset(e, 0x11 + k, 16);          /* type */
        memset(e + 16, 0x21 + k, 16);     /* unique */
        put_le64(e + 32, k ? 6000 : 2048);
        put_le64(e + 40, k ? 7000 : 4095);
        e[56] = 'p';
        e[58] = k ? '3' : '1';
    }
    memset(h, 0, 512);
    memcpy(h, "EFI PART", 8);
    put_le32(h + 8, 0x10000);
    put_le32(h + 12, 92);
    put_le64(h + 24, lba);
    put_le64(h + 32, other);
    put_le64(h + 72, entries_lba);
    put_le32(h + 80, 128);
    put_le32(h + 84, 128);
    put_le32(h + 88, (uint32_t)crc32(0, t, 128 * 128));
    put_le32(h + 16, (uint32_t)crc32(0, h, 92));
}

static void test_partitions(void)
{
    uint8_t *d = g_malloc0(DSIZE);
    uint64_t last = DSIZE / 512 - 1;
    d[510] = 0x55;
    d[511] = 0xaa;
    d[446 + 4] = 0xee;
    put_le32(d + 446 + 8, 1);
    put_le32(d + 446 + 12, (uint32_t)last);
    write_gpt(d, 1, 2, last);
    write_gpt(d, last, last - 32, 1);
    d[2 * 512 + 56] ^= 1; /* the primary entries damaged: their CRC fails */
    uint8_t *disks[] = {d};
    vma_archive *a = archive_of("gpt.vma", disks, 1);
    GError *e = NULL;
    vma_volume *v = vma_volume_disk(a, 1, &e);
    vma_partition_table t;
    CHECK(vma_partitions_read(v, &t, &e) == 1, "GPT read: %s", e ? e->message : "");
    CHECK(strcmp(t.scheme, "gpt") == 0 && t.n == 2 && t.warning && strstr(t.warning, "backup"),
          "the backup GPT used, and said so");
    CHECK(t.n == 2 && t.parts[0].number == 1 && t.parts[0].start == 2048 * 512 &&
          t.parts[0].length == 2048 * 512 && t.parts[1].number == 3 &&
          strcmp(t.parts[1].name, "p3") == 0 &&
          strcmp(t.parts[0].type, "11111111-1111-1111-1111-111111111111") == 0, "the entries");
    vma_partition_table_clear(&t);
    vma_volume_free(v);
    vma_archive_free(a);

    /* MBR: a primary, an extended with two logical partitions, then a loop */
    memset(d, 0, DSIZE);
    d[510] = 0x55;
    d[511] = 0xaa;
    put_le32(d + 440, 0xdeadbeef);
    uint8_t *p = d + 446;
    p[4] = 0x83;
    put_le32(p + 8, 64);
    put_le32(p + 12, 64);
    p += 16;
    p[4] = 0x05;
    put_le32(p + 8, 1000);
    put_le32(p + 12, 4000);
    /* EBR 1 at 1000: logical at +10 (size 100), next at ext + 500 */
    uint8_t *b = d + 1000 * 512;
    b[510] = 0x55, b[511] = 0xaa;
    b[446 + 4] = 0x83, put_le32(b + 446 + 8, 10), put_le32(b + 446 + 12, 100);
    b[462 + 4] = 0x05, put_le32(b + 462 + 8, 500), put_le32(b + 462 + 12, 300);
    /* EBR 2 at 1500: logical at +20 (size 9000: cut at the extended's end),
     * next: back to EBR 2 (a loop) */
    b = d + 1500 * 512;
    b[510] = 0x55, b[511] = 0xaa;
    b[446 + 4] = 0x8e, put_le32(b + 446 + 8, 20), put_le32(b + 446 + 12, 9000);
    b[462 + 4] = 0x05, put_le32(b + 462 + 8, 500), put_le32(b + 462 + 12, 300);
    a = archive_of("mbr.vma", disks, 1);
    v = vma_volume_disk(a, 1, &e);
    CHECK(vma_partitions_read(v, &t, &e) == 1, "MBR read");
    CHECK(strcmp(t.scheme, "mbr") == 0 && t.n == 4, "a primary, the extended, two logical (%u)", t.n);
    if (t.n == 4) {
        CHECK(t.parts[2].number == 5 && t.parts[2].start == 1010 * 512 && t.parts[2].length == 100 * 512,
              "logical 5");
        CHECK(t.parts[3].number == 6 && t.parts[3].start == 1520 * 512 && t.parts[3].truncated &&
              t.parts[3].length == (5000 - 1520) * 512, "logical 6 cut at the extended partition's end");
        CHECK(strcmp(t.parts[3].uuid, "deadbeef-06") == 0 && strcmp(t.parts[3].type, "0x8e") == 0,
              "its PARTUUID and type");
        CHECK(t.parts[1].extended, "the container is marked");
    }
    CHECK(t.warning && strstr(t.warning, "loops"), "the loop is said");
    vma_partition_table_clear(&t);
    /* a FAT boot sector is no partition table */
    vma_volume_free(v);
    vma_archive_free(a);
    g_free(d);
}

static uint32_t lvm_crc(const void *p, size_t n)
{
    return ~(uint32_t)crc32(~0xf597a6cfu & 0xffffffffu, p, (uInt)n);
}

static void test_lvm(void)
{
    uint8_t *d = g_malloc0(DSIZE);
    const char *text = "vg { id = \"x\" }\n# the end\n";
    size_t tlen = strlen(text);
    uint64_t mda = 4096, mda_size = 8192;
    /* the text wraps: its first 10 bytes at the end of the ring */
    uint64_t toff = mda_size - 10;
    uint8_t *l = d + 512;
    memcpy(l, "LABELONE", 8);
    put_le64(l + 8, 1);
    put_le32(l + 20, 32);
    memcpy(l + 24, "LVM2 001", 8);
    memcpy(l + 32, "abcdefABCDEF0123456789ghijklmnop", 32);
    put_le64(l + 64, DSIZE);
    put_le64(l + 72, 65536);
    put_le64(l + 104, mda);
    put_le64(l + 112, mda_size);
    put_le32(l + 16, lvm_crc(l + 20, 512 - 20));
    uint8_t *h = d + mda;
    memcpy(h + 4, " LVM2 x[5A%r0N*>", 16);
    put_le32(h + 20, 1);
    put_le64(h + 24, mda);
    put_le64(h + 32, mda_size);
    put_le64(h + 40, toff);
    put_le64(h + 48, tlen);
    put_le32(h + 56, lvm_crc(text, tlen));
    put_le32(h, lvm_crc(h + 4, 508));
    memcpy(d + mda + toff, text, 10);
    memcpy(d + mda + 512, text + 10, tlen - 10);
    uint8_t *disks[] = {d};
    vma_archive *a = archive_of("lvm.vma", disks, 1);
    GError *e = NULL;
    vma_volume *v = vma_volume_disk(a, 1, &e);
    vma_lvm_pv pv;
    CHECK(vma_lvm_pv_read(v, &pv, &e) == 1, "PV read: %s", e ? e->message : "");
    CHECK(pv.metadata && strcmp(pv.metadata, text) == 0, "the text, across the ring's end");
    CHECK(strcmp(pv.pv_uuid, "abcdef-ABCD-EF01-2345-6789-ghij-klmnop") == 0, "the PV UUID: %s", pv.pv_uuid);
    CHECK(pv.data_offset == 65536 && pv.device_size == DSIZE, "its data area and size");
    vma_lvm_pv_clear(&pv);
    vma_volume_free(v);
    vma_archive_free(a);
    /* the text damaged: its checksum fails */
    d[mda + 512 + 3] ^= 1;
    a = archive_of("lvm2.vma", disks, 1);
    v = vma_volume_disk(a, 1, &e);
    CHECK(vma_lvm_pv_read(v, &pv, &e) < 0 && e && strstr(e->message, "checksum"), "damaged text refused");
    g_clear_error(&e);
    vma_volume_free(v);
    vma_archive_free(a);
    /* the label damaged */
    d[mda + 512 + 3] ^= 1;
    l[40] ^= 1;
    a = archive_of("lvm3.vma", disks, 1);
    v = vma_volume_disk(a, 1, &e);
    CHECK(vma_lvm_pv_read(v, &pv, &e) < 0 && e && strstr(e->message, "label"), "damaged label refused");
    g_clear_error(&e);
    vma_volume_free(v);
    vma_archive_free(a);
    g_free(d);
}

static void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

static void test_extents(void)
{
    uint8_t *d = g_malloc0(DSIZE);
    /* an index node in block 10 (1 KiB blocks) with two leaves */
    uint8_t *n = d + 10 * 1024;
    put_le16(n, 0xf30a), put_le16(n + 2, 3), put_le16(n + 4, 84), put_le16(n + 6, 0);
    /* logical 0-3 at 100; logical 10-14 unwritten; logical 20-21 at 200 */
    put_le32(n + 12, 0), put_le16(n + 16, 4), put_le32(n + 20, 100);
    put_le32(n + 24, 10), put_le16(n + 28, 32768 + 5), put_le32(n + 32, 150);
    put_le32(n + 36, 20), put_le16(n + 40, 2), put_le32(n + 44, 200);
    uint8_t *disks[] = {d};
    vma_archive *a = archive_of("ext.vma", disks, 1);
    GError *e = NULL;
    vma_volume *v = vma_volume_disk(a, 1, &e);
    uint8_t ib[60] = {0};
    put_le16(ib, 0xf30a), put_le16(ib + 2, 1), put_le16(ib + 4, 4), put_le16(ib + 6, 1);
    put_le32(ib + 12, 0), put_le32(ib + 16, 10);
    GArray *out = g_array_new(FALSE, FALSE, sizeof(vma_extent_map));
    uint64_t blocks = DSIZE / 1024;
    CHECK(vma_ext4_extents(v, ib, 1024, blocks, 21 * 1024 + 10, out, &e) == 0, "a tree of depth 1: %s",
          e ? e->message : "");
    CHECK(out->len == 2, "the written extents (unwritten ones are holes): %u", out->len);
    if (out->len == 2) {
        vma_extent_map *x = &g_array_index(out, vma_extent_map, 0), *y = &g_array_index(out, vma_extent_map, 1);
        CHECK(x->loff == 0 && x->len == 4096 && x->phys == 100 * 1024, "extent 1");
        CHECK(y->loff == 20 * 1024 && y->len == 2048 && y->phys == 200 * 1024, "extent 2 (to the end of the file)");
    }
    /* the file ends in the middle of extent 3: cut */
    g_array_set_size(out, 0);
    CHECK(vma_ext4_extents(v, ib, 1024, blocks, 20 * 1024 + 1, out, &e) == 0 && out->len == 2 &&
          g_array_index(out, vma_extent_map, 1).len == 1024, "cut at the file's end");
    /* a leaf past the end of the file system */
    g_array_set_size(out, 0);
    CHECK(vma_ext4_extents(v, ib, 1024, 150, 21 * 1024, out, &e) < 0 && e &&
          strstr(e->message, "past the end"), "an extent past the end: %s", e ? e->message : "");
    g_clear_error(&e);
    /* a node that claims a depth it does not have */
    put_le16(n + 6, 3);
    vma_archive_free(a);
    vma_volume_free(v);
    a = archive_of("ext2.vma", disks, 1);
    v = vma_volume_disk(a, 1, &e);
    g_array_set_size(out, 0);
    CHECK(vma_ext4_extents(v, ib, 1024, blocks, 21 * 1024, out, &e) < 0 && e, "a wrong depth refused");
    g_clear_error(&e);
    /* a root whose entry count passes its room */
    put_le16(ib + 2, 9);
    g_array_set_size(out, 0);
    CHECK(vma_ext4_extents(v, ib, 1024, blocks, 21 * 1024, out, &e) < 0 && e, "too many entries refused");
    g_clear_error(&e);
    g_array_free(out, TRUE);
    vma_volume_free(v);
    vma_archive_free(a);
    g_free(d);
}

void test_guest(void)
{
    test_volumes();
    test_partitions();
    test_lvm();
    test_extents();
}
