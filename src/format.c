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

int vma_writev_all(int fd, struct iovec *iov, int n, int64_t off, GError **err)
{
    while (n > 0) {
        int cnt = MIN(n, IOV_MAX);
        ssize_t w = off < 0 ? writev(fd, iov, cnt) : pwritev(fd, iov, cnt, (off_t)off);
        if (w <= 0) {
            if (w < 0 && errno == EINTR && !vma_interrupted())
                continue;
            /* a write of nothing means the device is full */
            int errnum = w < 0 ? errno : ENOSPC;
            if (off < 0)
                vma_set_errno(err, errnum, "write failed");
            else
                vma_set_errno(err, errnum, "write failed at offset %" G_GINT64_FORMAT, off);
            return -1;
        }
        if (off >= 0)
            off += w;
        size_t k = (size_t)w;
        while (n > 0 && k >= iov->iov_len) {
            k -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= k;
        }
    }
    return 0;
}

int vma_write_all(int fd, const void *buf, size_t n, GError **err)
{
    struct iovec iov = {(void *)buf, n};
    return vma_writev_all(fd, &iov, 1, -1, err);
}

/* ---- cluster sets: sorted runs [start, end) in a balanced tree ----
 *
 * Backups write clusters mostly in order, so a device's clusters collapse
 * into a handful of runs whatever its size.  A hostile archive that
 * scatters clusters costs one tree node per cluster it actually sends, and
 * no more than max_runs of them. */

struct vma_bitmap {
    uint64_t nbits;
    uint64_t max_runs;
    GTree *runs; /* key: start, value: end (exclusive), both as pointers */
};

#define U2P(x) ((gpointer)(uintptr_t)(x))
#define P2U(p) ((uint64_t)(uintptr_t)(p))

static gint cmp_u64(gconstpointer a, gconstpointer b, gpointer ud)
{
    (void)ud;
    uint64_t x = P2U(a), y = P2U(b);
    return x < y ? -1 : x > y;
}

vma_bitmap *vma_bitmap_new(uint64_t nbits, uint64_t max_runs)
{
    vma_bitmap *b = g_new0(vma_bitmap, 1);
    b->nbits = nbits;
    b->max_runs = max_runs;
    b->runs = g_tree_new_full(cmp_u64, NULL, NULL, NULL);
    return b;
}

void vma_bitmap_free(vma_bitmap *b)
{
    if (!b)
        return;
    g_tree_destroy(b->runs);
    g_free(b);
}

int vma_bitmap_test_and_set(vma_bitmap *b, uint64_t i)
{
    GTreeNode *next = g_tree_upper_bound(b->runs, U2P(i)); /* first start > i */
    GTreeNode *prev = next ? g_tree_node_previous(next) : g_tree_node_last(b->runs);
    uint64_t pend = prev ? P2U(g_tree_node_value(prev)) : 0;
    if (prev && pend > i)
        return 1; /* already in a run */
    gboolean joins_prev = prev && pend == i;
    gboolean joins_next = next && P2U(g_tree_node_key(next)) == i + 1;
    if (joins_prev && joins_next) {
        uint64_t nend = P2U(g_tree_node_value(next));
        g_tree_remove(b->runs, g_tree_node_key(next));
        g_tree_replace(b->runs, g_tree_node_key(prev), U2P(nend));
    } else if (joins_prev) {
        g_tree_replace(b->runs, g_tree_node_key(prev), U2P(i + 1));
    } else if (joins_next) {
        uint64_t nend = P2U(g_tree_node_value(next));
        g_tree_remove(b->runs, g_tree_node_key(next));
        g_tree_insert(b->runs, U2P(i), U2P(nend));
    } else {
        if ((uint64_t)g_tree_nnodes(b->runs) >= b->max_runs)
            return -1;
        g_tree_insert(b->runs, U2P(i), U2P(i + 1));
    }
    return 0;
}

uint64_t vma_bitmap_runs(const vma_bitmap *b)
{
    return (uint64_t)g_tree_nnodes(b->runs);
}

typedef struct {
    uint64_t pos, clear, first;
    gboolean found;
} count_ctx;

static gboolean count_gap(gpointer key, gpointer value, gpointer ud)
{
    count_ctx *c = ud;
    uint64_t start = P2U(key), end = P2U(value);
    if (start > c->pos) {
        if (!c->found) {
            c->first = c->pos;
            c->found = TRUE;
        }
        c->clear += start - c->pos;
    }
    c->pos = end;
    return FALSE;
}

uint64_t vma_bitmap_count_clear(const vma_bitmap *b, uint64_t *first)
{
    count_ctx c = {0, 0, 0, FALSE};
    g_tree_foreach(b->runs, count_gap, &c);
    if (c.pos < b->nbits) {
        if (!c.found)
            c.first = c.pos;
        c.clear += b->nbits - c.pos;
    }
    *first = c.first;
    return c.clear;
}
