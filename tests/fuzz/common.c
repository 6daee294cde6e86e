/* common.c - see common.h */
#define _GNU_SOURCE
#include "common.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

int fuzz_memfd(const uint8_t *data, size_t size)
{
    int fd = memfd_create("vma-fuzz", MFD_CLOEXEC);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) {
            perror("write to memfd");
            abort();
        }
        done += (size_t)w;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        perror("lseek");
        abort();
    }
    return fd;
}

char *fuzz_fd_path(int fd)
{
    return g_strdup_printf("/proc/self/fd/%d", fd);
}

void fuzz_check_error(GError *e)
{
    if (!e || e->domain != VMA_ERROR || !e->message || !e->message[0]) {
        fprintf(stderr, "an error without our domain or a message: %s\n",
                e && e->message ? e->message : "(none)");
        abort();
    }
    g_error_free(e);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint8_t *fuzz_fix_checksums(const uint8_t *data, size_t size)
{
    if (size < VMA_HEADER_FIXED_SIZE || memcmp(data, "VMA", 4) != 0)
        return NULL;
    uint32_t hsize = be32(data + 56);
    if (hsize < VMA_HEADER_FIXED_SIZE || hsize > size)
        return NULL;
    uint8_t *d = malloc(size);
    if (!d)
        abort();
    memcpy(d, data, size);
    memset(d + 32, 0, 16);
    vma_md5(d, hsize, d + 32);
    size_t off = hsize;
    while (off + VMA_EXTENT_HEADER_SIZE <= size && memcmp(d + off, "VMAE", 4) == 0) {
        uint8_t *eh = d + off;
        memset(eh + 24, 0, 16);
        vma_md5(eh, VMA_EXTENT_HEADER_SIZE, eh + 24);
        off += VMA_EXTENT_HEADER_SIZE + (size_t)((unsigned)eh[6] << 8 | eh[7]) * VMA_BLOCK_SIZE;
    }
    if (memcmp(d, data, size) == 0) {
        free(d);
        return NULL;
    }
    return d;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

uint8_t *fuzz_make_seekable(const uint8_t *plain, size_t n, size_t frame, int lie, unsigned which,
                            int delta, unsigned pad, size_t *len)
{
    if (frame == 0)
        frame = 1;
    size_t n_frames = n ? (n + frame - 1) / frame : 1;
    uint32_t *cs = calloc(n_frames, sizeof(uint32_t)), *ds = calloc(n_frames, sizeof(uint32_t));
    size_t cap = 64 + n_frames * (ZSTD_compressBound(frame) + 8 + pad + 8) + 9;
    uint8_t *out = malloc(cap);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    if (!cs || !ds || !out || !cc)
        abort();
    size_t pos = 0;
    for (size_t i = 0; i < n_frames; i++) {
        size_t k = n ? MIN(frame, n - i * frame) : 0;
        ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
        ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 1);
        ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, lie == LIE_NOCHECK && i == which ? 0 : 1);
        size_t c = ZSTD_compress2(cc, out + pos, cap - pos, plain + i * frame, k);
        if (ZSTD_isError(c))
            abort();
        pos += c;
        cs[i] = (uint32_t)c;
        ds[i] = (uint32_t)k;
        if (lie == LIE_PAD && i == which) {
            put_le32(out + pos, 0x184D2A50u);
            put_le32(out + pos + 4, pad);
            memset(out + pos + 8, 0, pad);
            pos += 8 + pad;
            cs[i] += 8 + pad;
        }
    }
    ZSTD_freeCCtx(cc);
    if (which < n_frames) {
        int has_next = which + 1 < n_frames;
        if (lie == LIE_SHIFT && has_next && ds[which] > 0) {
            ds[which]--;
            ds[which + 1]++;
        } else if (lie == LIE_DSIZE) {
            int64_t d = (int64_t)ds[which] + delta;
            ds[which] = d < 0 ? 0 : (uint32_t)d;
        } else if (lie == LIE_CSHIFT && has_next && cs[which + 1] > 0) {
            cs[which]++;
            cs[which + 1]--;
        }
    }
    uint32_t tsize = (uint32_t)(n_frames * 8 + 9);
    put_le32(out + pos, 0x184D2A5Eu);
    put_le32(out + pos + 4, tsize);
    pos += 8;
    for (size_t i = 0; i < n_frames; i++) {
        put_le32(out + pos, cs[i]);
        put_le32(out + pos + 4, ds[i]);
        pos += 8;
    }
    put_le32(out + pos, (uint32_t)n_frames);
    out[pos + 4] = 0;
    put_le32(out + pos + 5, 0x8F92EAB1u);
    pos += 9;
    free(cs);
    free(ds);
    *len = pos;
    return out;
}

static char tmp_dir[256];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_tmpdir(void)
{
    if (tmp_dir[0])
        nftw(tmp_dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_tmpdir(void)
{
    if (!tmp_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tmp_dir, sizeof(tmp_dir), "%s/vma-fuzz.XXXXXX", t && *t == '/' ? t : "/tmp");
        if (!mkdtemp(tmp_dir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(rm_tmpdir);
    }
    return tmp_dir;
}

void fuzz_rng_init(fuzz_rng *r, const uint8_t *data, size_t size)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ull;
    r->x = h ^ size;
}

uint64_t fuzz_rng_next(fuzz_rng *r)
{
    uint64_t z = (r->x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
