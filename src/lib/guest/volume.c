/* volume.c - a volume: ranges of an archive's disks laid end to end (a
 * whole disk, a partition, an LVM logical volume), read at any offset and
 * mapped into data, zero and missing pieces, through the archive's random
 * reads.  Immutable once made: safe from several threads. */
#define _GNU_SOURCE
#include "guest/guest.h"

#include <stdio.h>
#include <string.h>

struct vma_volume {
    gint refs;
    vma_archive *a;
    size_t n;
    vma_segment *segs;
    uint64_t *starts;     /* where each segment starts in the volume */
    uint64_t size;
};

vma_volume *vma_volume_new(vma_archive *a, const vma_segment *segs, size_t n, GError **err)
{
    if (!a || !segs || n == 0 || n > (1u << 20)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "a volume needs 1 to 1048576 ranges, not %zu", n);
        return NULL;
    }
    const vma_header *h = vma_archive_header(a);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const vma_segment *s = &segs[i];
        if (!h->devices[s->dev_id] || h->devices[s->dev_id]->is_vmstate) {
            g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "the archive has no disk %u", s->dev_id);
            return NULL;
        }
        uint64_t dsize = vma_archive_device_length(a, s->dev_id);
        if (s->length == 0 || s->offset > dsize || s->length > dsize - s->offset) {
            g_set_error(err, VMA_ERROR, VMA_ERR_ARG,
                        "the range of %" G_GUINT64_FORMAT " bytes at %" G_GUINT64_FORMAT
                        " is not inside %s (%" G_GUINT64_FORMAT " bytes)",
                        s->length, s->offset, h->devices[s->dev_id]->name, dsize);
            return NULL;
        }
        if (s->length > VMA_MAX_DEVICE_SIZE - total) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_ARG, "the volume is too large");
            return NULL;
        }
        total += s->length;
    }
    vma_volume *v = g_new0(vma_volume, 1);
    v->refs = 1;
    v->a = vma_archive_ref(a);
    v->n = n;
    v->segs = g_memdup2(segs, n * sizeof(*segs));
    v->starts = g_new(uint64_t, n);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        v->starts[i] = at;
        at += segs[i].length;
    }
    v->size = total;
    return v;
}

vma_volume *vma_volume_disk(vma_archive *a, uint8_t dev_id, GError **err)
{
    const vma_header *h = vma_archive_header(a);
    if (!h->devices[dev_id] || h->devices[dev_id]->is_vmstate) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "the archive has no disk %u", dev_id);
        return NULL;
    }
    uint64_t size = vma_archive_device_length(a, dev_id);
    if (size == 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "the disk %s is empty", h->devices[dev_id]->name);
        return NULL;
    }
    vma_segment s = {dev_id, 0, size};
    return vma_volume_new(a, &s, 1, err);
}

/* the index of the segment holding volume offset off (off < size) */
static size_t seg_at(const vma_volume *v, uint64_t off)
{
    size_t lo = 0, hi = v->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->starts[mid] <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

vma_volume *vma_volume_slice(vma_volume *v, uint64_t off, uint64_t len, GError **err)
{
    if (len == 0 || off > v->size || len > v->size - off) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG,
                    "the range of %" G_GUINT64_FORMAT " bytes at %" G_GUINT64_FORMAT
                    " is not inside the volume (%" G_GUINT64_FORMAT " bytes)", len, off, v->size);
        return NULL;
    }
    GArray *out = g_array_new(FALSE, FALSE, sizeof(vma_segment));
    uint64_t end = off + len;
    for (size_t i = seg_at(v, off); i < v->n && v->starts[i] < end; i++) {
        uint64_t s0 = MAX(off, v->starts[i]);
        uint64_t s1 = MIN(end, v->starts[i] + v->segs[i].length);
        vma_segment s = {v->segs[i].dev_id, v->segs[i].offset + (s0 - v->starts[i]), s1 - s0};
        g_array_append_val(out, s);
    }
    vma_volume *r = vma_volume_new(v->a, (vma_segment *)out->data, out->len, err);
    g_array_free(out, TRUE);
    return r;
}

vma_volume *vma_volume_ref(vma_volume *v)
{
    g_atomic_int_inc(&v->refs);
    return v;
}

void vma_volume_free(vma_volume *v)
{
    if (!v || !g_atomic_int_dec_and_test(&v->refs))
        return;
    vma_archive_free(v->a);
    g_free(v->segs);
    g_free(v->starts);
    g_free(v);
}

uint64_t vma_volume_size(const vma_volume *v) { return v->size; }
vma_archive *vma_volume_archive(const vma_volume *v) { return v->a; }

const vma_segment *vma_volume_segments(const vma_volume *v, size_t *n)
{
    *n = v->n;
    return v->segs;
}

ssize_t vma_volume_pread(vma_volume *v, void *buf, size_t n, uint64_t off, GError **err)
{
    if (off >= v->size || n == 0)
        return 0;
    if (n > v->size - off)
        n = (size_t)(v->size - off);
    size_t done = 0;
    size_t i = seg_at(v, off);
    while (done < n) {
        uint64_t at = off + done;
        while (i < v->n && v->starts[i] + v->segs[i].length <= at)
            i++;
        if (i >= v->n)
            break;
        uint64_t in = at - v->starts[i];
        size_t want = (size_t)MIN((uint64_t)(n - done), v->segs[i].length - in);
        ssize_t got = vma_archive_pread(v->a, v->segs[i].dev_id, (uint8_t *)buf + done, want,
                                        v->segs[i].offset + in, err);
        if (got < 0)
            return -1;
        if ((size_t)got < want) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE, "a disk of the archive ends early");
            return -1;
        }
        done += want;
    }
    return (ssize_t)done;
}

int vma_volume_read_exact(vma_volume *v, void *buf, size_t n, uint64_t off, const char *what,
                          GError **err)
{
    if (off > v->size || n > v->size - off) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "%s lies past the end of the volume", what);
        return -1;
    }
    ssize_t got = vma_volume_pread(v, buf, n, off, err);
    if (got < 0)
        return -1;
    if ((size_t)got != n) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "%s lies past the end of the volume", what);
        return -1;
    }
    return 0;
}

/* pieces of one segment, moved to volume offsets and merged across
 * segments before they are given */
typedef struct {
    vma_piece_fn fn;
    void *ud;
    uint64_t shift;       /* volume offset - device offset */
    vma_piece pending;
    gboolean have;
    gboolean stopped;
} map_state;

static int flush_pending(map_state *m)
{
    if (!m->have)
        return 0;
    m->have = FALSE;
    if (m->fn(&m->pending, m->ud)) {
        m->stopped = TRUE;
        return 1;
    }
    return 0;
}

static int on_piece(const vma_piece *p, void *ud)
{
    map_state *m = ud;
    uint64_t start = p->offset + m->shift;
    if (m->have && m->pending.kind == p->kind && m->pending.offset + m->pending.length == start) {
        m->pending.length += p->length;
        return 0;
    }
    if (flush_pending(m))
        return 1;
    m->pending = (vma_piece){p->kind, start, p->length, 0};
    m->have = TRUE;
    return 0;
}

int vma_volume_map(vma_volume *v, uint64_t off, uint64_t len, vma_piece_fn fn, void *ud,
                   GError **err)
{
    if (off >= v->size || len == 0)
        return 0;
    uint64_t end = len > v->size - off ? v->size : off + len;
    map_state m = {fn, ud, 0, {0}, FALSE, FALSE};
    for (size_t i = seg_at(v, off); i < v->n && v->starts[i] < end; i++) {
        uint64_t s0 = MAX(off, v->starts[i]);
        uint64_t s1 = MIN(end, v->starts[i] + v->segs[i].length);
        uint64_t doff = v->segs[i].offset + (s0 - v->starts[i]);
        m.shift = s0 - doff;
        int r = vma_archive_map(v->a, v->segs[i].dev_id, doff, s1 - s0, on_piece, &m, err);
        if (r < 0)
            return -1;
        if (m.stopped)
            return 1;
    }
    flush_pending(&m);
    return m.stopped ? 1 : 0;
}

void vma_guid_format(const uint8_t g[16], char out[37])
{
    snprintf(out, 37, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             g_le32(g), g_le16(g + 4), g_le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13],
             g[14], g[15]);
}
