/* format.c - small pieces of the format shared by reader and writer:
 * errors, names, zero detection, checksums, compression names. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <limits.h>
#include <sys/uio.h>
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
        /* C0, DEL and the C1 controls (U+0080..U+009F, e.g. the terminal's
         * CSI) could rewrite a terminal when the name is printed */
        for (const char *p = name; *p; p = g_utf8_next_char(p)) {
            if (g_unichar_iscntrl(g_utf8_get_char(p))) {
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

gboolean vma_md5_with_hole(const void *a, size_t alen, const void *b, size_t blen,
                           uint8_t out[16])
{
    static const uint8_t zero16[16];
    unsigned int n = 16;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    gboolean ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
                  EVP_DigestUpdate(ctx, a, alen) && EVP_DigestUpdate(ctx, zero16, 16) &&
                  EVP_DigestUpdate(ctx, b, blen) && EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(ctx);
    return ok;
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
