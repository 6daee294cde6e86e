/* fuzz_guest.c - libFuzzer harness for the guest layer: partition tables,
 * probing, LVM2 labels and metadata areas, and the file system readers
 * (ext2/3/4 and XFS read here, NTFS/FAT/exFAT/HFS+/ISO 9660/UFS through
 * The Sleuth Kit).
 *
 * Each input is a disk image: the bytes themselves, or, when it starts
 * with "VMAS", a sparse image of records {u32 LE block (4 KiB units, below
 * 1 GiB), u16 LE length, bytes} (so that an XFS, whose smallest size is
 * 300 MiB, fits in a seed of a few KiB).  The image is backed up into an
 * in-memory archive (vma_writer_new_fd), opened for random access, and
 * read as vma does: the partition table and every partition, the LVM
 * label, and for each volume its file system: a walk of the whole tree
 * (bounded), every link read, every file opened, read at its start and
 * end and mapped, paths looked up.  Nothing may crash, leak, hang, read
 * out of bounds or trip UBSan; every error must carry a message.
 *
 * Build and run: FUZZ_TARGET=guest sh tests/fuzz/run.sh (docs/security.md). */
#define _GNU_SOURCE
#include "vma.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_ENTRIES 4000
#define MAX_IMAGE   ((uint64_t)1 << 30)

static void check_error(GError *e)
{
    if (!e || e->domain != VMA_ERROR || !e->message || !e->message[0])
        abort();
    g_error_free(e);
}

static int new_memfd(void)
{
    int fd = memfd_create("vma-fuzz-guest", MFD_CLOEXEC);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    return fd;
}

static void pwrite_all(int fd, const uint8_t *p, size_t n, off_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w <= 0) {
            perror("pwrite");
            abort();
        }
        p += w;
        n -= (size_t)w;
        off += w;
    }
}

/* the image of the input in a memfd; its size in *size */
static int image_of(const uint8_t *data, size_t size, uint64_t *isize)
{
    int fd = new_memfd();
    uint64_t end = 0;
    if (size >= 4 && memcmp(data, "VMAS", 4) == 0) {
        size_t at = 4;
        while (at + 6 <= size) {
            uint32_t blk = (uint32_t)data[at] | (uint32_t)data[at + 1] << 8 |
                           (uint32_t)data[at + 2] << 16 | (uint32_t)data[at + 3] << 24;
            size_t len = (size_t)data[at + 4] | (size_t)data[at + 5] << 8;
            at += 6;
            len = MIN(len, size - at);
            uint64_t off = (uint64_t)(blk % (uint32_t)(MAX_IMAGE / 4096)) * 4096;
            if (len)
                pwrite_all(fd, data + at, len, (off_t)off);
            end = MAX(end, off + len);
            at += len;
        }
    } else {
        if (size)
            pwrite_all(fd, data, size, 0);
        end = size;
    }
    end = MAX(end, 65536);
    end = (end + 65535) / 65536 * 65536;
    if (ftruncate(fd, (off_t)end) < 0)
        abort();
    *isize = end;
    return fd;
}

static int map_check(const vma_piece *p, void *ud)
{
    uint64_t *next = ud;
    if (p->offset != *next || p->length == 0)
        abort();
    *next = p->offset + p->length;
    return 0;
}

static void exercise_file(vma_fs *fs, uint64_t ino)
{
    GError *e = NULL;
    vma_file *f = vma_fs_open_file(fs, ino, &e);
    if (!f) {
        check_error(e);
        return;
    }
    static uint8_t buf[65536];
    uint64_t size = vma_file_size(f);
    ssize_t n = vma_file_pread(f, buf, sizeof(buf), 0, &e);
    if (n < 0) {
        check_error(e);
        e = NULL;
    } else if ((uint64_t)n != MIN(size, sizeof(buf))) {
        abort(); /* a read is short only at the end */
    }
    if (size > 100) {
        n = vma_file_pread(f, buf, 4096, size - 100, &e);
        if (n < 0) {
            check_error(e);
            e = NULL;
        } else if (n != 100) {
            abort();
        }
    }
    uint64_t next = 0, len = MIN(size, (uint64_t)1 << 30);
    int r = vma_file_map(f, 0, len, map_check, &next, &e);
    if (r < 0)
        check_error(e);
    else if (r == 0 && next != len)
        abort(); /* the map covers the range */
    vma_file_free(f);
}

static void exercise_fs(vma_volume *v)
{
    GError *e = NULL;
    vma_fs *fs = vma_fs_open(v, NULL, &e);
    if (!fs) {
        check_error(e);
        return;
    }
    vma_stat st;
    static const char *const paths[] = {"/etc/os-release", "/etc/fstab", "/Windows/System32",
                                        "/a/../../b", "/x/y/z"};
    for (unsigned i = 0; i < G_N_ELEMENTS(paths); i++) {
        if (vma_fs_lookup(fs, paths[i], TRUE, &st, &e) < 0) {
            check_error(e);
            e = NULL;
        }
    }
    vma_walk *w = vma_fs_walk(fs, vma_fs_root(fs), &e);
    if (!w) {
        check_error(e);
        vma_fs_free(fs);
        return;
    }
    const char *path;
    int r, count = 0;
    while (count++ < MAX_ENTRIES && (r = vma_walk_next(w, &path, &st, &e)) != 0) {
        if (r < 0) {
            check_error(e);
            e = NULL;
            continue;
        }
        if (!path || !*path)
            abort();
        if (st.type == VMA_FT_LINK) {
            char *t = vma_fs_readlink(fs, st.ino, &e);
            if (!t)
                check_error(e), e = NULL;
            g_free(t);
        } else if (st.type == VMA_FT_FILE && count < 300) {
            exercise_file(fs, st.ino);
        }
        if (count % 7 == 0) {
            /* a path through what was just given, links followed */
            if (vma_fs_lookup(fs, path, TRUE, &st, &e) < 0)
                check_error(e), e = NULL;
        }
    }
    if (getenv("FUZZ_GUEST_VERBOSE"))
        fprintf(stderr, "fuzz_guest: %s file system, %d entries walked\n", vma_fs_type(fs), count - 1);
    vma_walk_free(w);
    vma_fs_free(fs);
}

static void exercise_volume(vma_volume *v)
{
    GError *e = NULL;
    vma_probe p;
    if (vma_volume_probe(v, &p, &e) < 0) {
        check_error(e);
        return;
    }
    if (!g_utf8_validate(p.label, -1, NULL))
        abort();
    vma_lvm_pv pv;
    int r = vma_lvm_pv_read(v, &pv, &e);
    if (r < 0)
        check_error(e), e = NULL;
    else if (r > 0 && pv.metadata && strlen(pv.metadata) != pv.metadata_len)
        abort();
    vma_lvm_pv_clear(&pv);
    exercise_fs(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t isize;
    int img = image_of(data, size, &isize);
    int afd = new_memfd();
    GError *e = NULL;
    vma_writer_opts wo = {.ctime = 1};
    vma_writer *w = vma_writer_new_fd(afd, &wo, &e);
    if (!w)
        abort();
    int id = vma_writer_add_device(w, "drive-scsi0", isize, &e);
    if (id < 0 || vma_writer_write_fd(w, (uint8_t)id, img, "image", NULL, NULL, &e) < 0 ||
        vma_writer_close(w, &e) < 0) {
        fprintf(stderr, "cannot make the archive: %s\n", e ? e->message : "?");
        abort();
    }
    vma_writer_free(w);
    close(img);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", afd);
    vma_archive_opts ao = {.cache = VMA_CACHE_OFF, .spill = -1};
    vma_archive *a = vma_archive_open(path, &ao, &e);
    if (!a) {
        fprintf(stderr, "cannot open the archive: %s\n", e->message);
        abort();
    }
    vma_volume *disk = vma_volume_disk(a, (uint8_t)id, &e);
    if (!disk)
        abort();
    vma_partition_table t;
    int r = vma_partitions_read(disk, &t, &e);
    if (r < 0) {
        check_error(e);
        e = NULL;
    } else if (r > 0) {
        for (unsigned i = 0; i < t.n && i < 16; i++) {
            const vma_partition *p = &t.parts[i];
            if (p->extended)
                continue;
            if (p->start + p->length > vma_volume_size(disk))
                abort(); /* every partition lies inside the disk */
            vma_volume *pv = vma_volume_slice(disk, p->start, p->length, &e);
            if (!pv) {
                check_error(e);
                e = NULL;
                continue;
            }
            exercise_volume(pv);
            vma_volume_free(pv);
        }
        vma_partition_table_clear(&t);
    }
    exercise_volume(disk);
    vma_volume_free(disk);
    vma_archive_free(a);
    close(afd);
    return 0;
}
