/* format.c - small pieces of the format shared by reader and writer:
 * errors, names, zero detection, checksums, the cluster bitmap. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

G_DEFINE_QUARK(vma-error-quark, vma_error)

void vma_set_errno(GError **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (errnum == EINTR)  /* a signal stopped a blocking call: see vma_interrupt() */
        g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted (%s)", msg);
    else
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "%s: %s", msg, g_strerror(errnum));
    g_free(msg);
}

double vma_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile sig_atomic_t interrupted;

void vma_interrupt(void) { interrupted = 1; }
void vma_interrupt_clear(void) { interrupted = 0; }
gboolean vma_interrupted(void) { return interrupted != 0; }

gboolean vma_name_is_safe(const char *name, GError **err)
{
    size_t len = strlen(name);
    const char *why = NULL;

    if (len == 0)
        why = "empty name";
    else if (len > 255)
        why = "name longer than 255 bytes";
    else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        why = "name is '.' or '..'";
    else if (strchr(name, '/'))
        why = "name contains '/'";
    else if (!g_utf8_validate(name, (gssize)len, NULL))
        why = "name is not valid UTF-8";
    else {
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)name[i];
            if (c < 0x20 || c == 0x7f) {
                why = "name contains a control character";
                break;
            }
        }
    }
    if (!why)
        return TRUE;
    char *esc = g_strescape(name, NULL);
    g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "unsafe name '%s': %s", esc, why);
    g_free(esc);
    return FALSE;
}

gboolean vma_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    /* check a short head word by word, then compare the buffer with itself
     * shifted: memcmp is vectorised by the C library */
    size_t head = len < 64 ? len : 64;
    for (size_t i = 0; i < head; i++)
        if (p[i])
            return FALSE;
    if (len <= 64)
        return TRUE;
    return memcmp(p, p + 64, len - 64) == 0;
}

void vma_md5(const void *data, size_t len, uint8_t out[16])
{
    unsigned int n = 16;
    EVP_Digest(data, len, out, &n, EVP_md5(), NULL);
}

void vma_uuid_format(const uint8_t u[16], char out[37])
{
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
             u[11], u[12], u[13], u[14], u[15]);
}

const char *vma_compress_name(vma_compress c)
{
    switch (c) {
    case VMA_COMPRESS_ZSTD: return "zstd";
    case VMA_COMPRESS_GZIP: return "gzip";
    case VMA_COMPRESS_LZO: return "lzo";
    default: return "none";
    }
}

int vma_compress_from_name(const char *name)
{
    if (!strcmp(name, "zst") || !strcmp(name, "zstd"))
        return VMA_COMPRESS_ZSTD;
    if (!strcmp(name, "gz") || !strcmp(name, "gzip"))
        return VMA_COMPRESS_GZIP;
    if (!strcmp(name, "lzo") || !strcmp(name, "lzop"))
        return VMA_COMPRESS_LZO;
    if (!strcmp(name, "none") || !strcmp(name, "raw") || !strcmp(name, "vma"))
        return VMA_COMPRESS_NONE;
    return -1;
}

int vma_pwrite_all(int fd, const void *buf, size_t n, uint64_t off, GError **err)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR && !vma_interrupted())
                continue;
            vma_set_errno(err, errno, "write failed at offset %" G_GUINT64_FORMAT, off);
            return -1;
        }
        if (w == 0) {
            vma_set_errno(err, ENOSPC, "write failed at offset %" G_GUINT64_FORMAT, off);
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

int vma_write_all(int fd, const void *buf, size_t n, GError **err)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR && !vma_interrupted())
                continue;
            vma_set_errno(err, errno, "write failed");
            return -1;
        }
        if (w == 0) {
            vma_set_errno(err, ENOSPC, "write failed");
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- bitmap: chunks of 2^20 bits (128 KiB), allocated on first use ---- */

#define CHUNK_BITS_LOG 20
#define CHUNK_BITS ((uint64_t)1 << CHUNK_BITS_LOG)
#define CHUNK_WORDS (CHUNK_BITS / 64)

struct vma_bitmap {
    uint64_t nbits;
    uint64_t nchunks;
    uint64_t **chunks;
};

vma_bitmap *vma_bitmap_new(uint64_t nbits)
{
    vma_bitmap *b = g_try_new0(vma_bitmap, 1);
    if (!b)
        return NULL;
    b->nbits = nbits;
    b->nchunks = (nbits + CHUNK_BITS - 1) / CHUNK_BITS;
    if (b->nchunks) {
        b->chunks = g_try_new0(uint64_t *, b->nchunks);
        if (!b->chunks) {
            g_free(b);
            return NULL;
        }
    }
    return b;
}

void vma_bitmap_free(vma_bitmap *b)
{
    if (!b)
        return;
    for (uint64_t i = 0; i < b->nchunks; i++)
        g_free(b->chunks[i]);
    g_free(b->chunks);
    g_free(b);
}

int vma_bitmap_test_and_set(vma_bitmap *b, uint64_t i)
{
    uint64_t c = i >> CHUNK_BITS_LOG;
    uint64_t *chunk = b->chunks[c];
    if (!chunk) {
        chunk = b->chunks[c] = g_try_new0(uint64_t, CHUNK_WORDS);
        if (!chunk)
            return -1;
    }
    uint64_t bit = i & (CHUNK_BITS - 1);
    uint64_t m = (uint64_t)1 << (bit & 63);
    int old = (chunk[bit >> 6] & m) != 0;
    chunk[bit >> 6] |= m;
    return old;
}

uint64_t vma_bitmap_count_clear(const vma_bitmap *b, uint64_t *first)
{
    uint64_t clear = 0;
    gboolean found = FALSE;
    for (uint64_t c = 0; c < b->nchunks; c++) {
        uint64_t base = c * CHUNK_BITS;
        uint64_t bits = b->nbits - base < CHUNK_BITS ? b->nbits - base : CHUNK_BITS;
        const uint64_t *chunk = b->chunks[c];
        if (!chunk) {
            if (!found) {
                *first = base;
                found = TRUE;
            }
            clear += bits;
            continue;
        }
        for (uint64_t w = 0; w * 64 < bits; w++) {
            uint64_t valid = bits - w * 64 >= 64 ? ~(uint64_t)0
                                                : (((uint64_t)1 << (bits - w * 64)) - 1);
            uint64_t missing = ~chunk[w] & valid;
            if (missing) {
                if (!found) {
                    *first = base + w * 64 + (uint64_t)__builtin_ctzll(missing);
                    found = TRUE;
                }
                clear += (uint64_t)__builtin_popcountll(missing);
            }
        }
    }
    return clear;
}
