/* reader.c - streaming VMA reader: header validation and checked extents.
 * Works on any descriptor (files, pipes, stdin); memory is bounded by the
 * header (itself bounded) and one extent. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_EXTENT_BLOCKS (VMA_SLOTS_PER_EXTENT * VMA_BLOCKS_PER_CLUSTER)

struct vma_reader {
    vma_in *in;
    vma_header h;
    uint64_t offset;
    uint8_t *ext;                       /* one extent: header + data */
    vma_bitmap *seen[VMA_MAX_DEV_ID + 1];
    uint64_t vmstate_next;              /* next vmstate cluster expected */
    uint8_t vmstate_id;
    gboolean at_end;
    uint64_t runs;                      /* runs held over all devices */
};

static void header_clear(vma_header *h)
{
    for (unsigned i = 0; i < h->n_configs; i++) {
        g_free(h->configs[i].name);
        g_free(h->configs[i].data);
    }
    for (unsigned i = 0; i <= VMA_MAX_DEV_ID; i++) {
        if (h->devices[i]) {
            g_free(h->devices[i]->name);
            g_free(h->devices[i]);
        }
    }
    memset(h, 0, sizeof(*h));
}

void vma_reader_free(vma_reader *r)
{
    if (!r)
        return;
    vma_in_free(r->in);
    header_clear(&r->h);
    for (unsigned i = 0; i <= VMA_MAX_DEV_ID; i++)
        vma_bitmap_free(r->seen[i]);
    g_free(r->ext);
    g_free(r);
}

/* the blob buffer, with a map of where blobs start */
typedef struct {
    const uint8_t *buf;
    uint32_t size;
    uint8_t *starts;
} blobs;

static void blobs_index(blobs *b)
{
    b->starts = g_new0(uint8_t, (gsize)b->size + 1);
    uint64_t pos = 1;
    while (pos + 2 <= b->size) {
        uint32_t len = (uint32_t)b->buf[pos] | (uint32_t)b->buf[pos + 1] << 8;
        if (pos + 2 + len > b->size)
            break;
        b->starts[pos] = 1;
        pos += 2 + len;
    }
}

/* look up a blob pointer: -1 on error, 0 for "none", 1 with data/len set */
static int blob_get(const blobs *b, uint32_t ptr, const char *field,
                    const uint8_t **data, uint32_t *len, GError **err)
{
    if (ptr == 0)
        return 0;
    if (ptr >= b->size || !b->starts[ptr]) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                    "bad header: %s points to offset %u, which is not the start of a blob",
                    field, ptr);
        return -1;
    }
    *len = (uint32_t)b->buf[ptr] | (uint32_t)b->buf[ptr + 1] << 8;
    *data = b->buf + ptr + 2;
    return 1;
}

/* a string blob: NUL-terminated, no NUL inside, safe as a file name */
static char *blob_name(const blobs *b, uint32_t ptr, const char *field, GError **err)
{
    const uint8_t *data;
    uint32_t len;
    int rc = blob_get(b, ptr, field, &data, &len, err);
    if (rc <= 0)
        return NULL;
    if (len == 0 || data[len - 1] != 0 || memchr(data, 0, len - 1)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                    "bad header: %s is not a NUL-terminated string", field);
        return NULL;
    }
    GError *e = NULL;
    if (!vma_name_is_safe((const char *)data, &e)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "bad header: %s: %s", field, e->message);
        g_error_free(e);
        return NULL;
    }
    return g_strdup((const char *)data);
}

static gboolean parse_header(vma_reader *r, GError **err)
{
    uint8_t fixed[VMA_HEADER_FIXED_SIZE];
    ssize_t got = vma_in_read(r->in, fixed, sizeof(fixed), err);
    if (got < 0)
        return FALSE;
    r->offset = (uint64_t)got;
    if (got == 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "not a vma archive: the file is empty");
        return FALSE;
    }
    if (got < 4 && memcmp(fixed, VMA_MAGIC, (size_t)got) == 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE,
                    "archive is truncated: the file ends after %zd bytes", got);
        return FALSE;
    }
    if (got < 4 || memcmp(fixed, VMA_MAGIC, 4) != 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "not a vma archive (wrong magic)");
        return FALSE;
    }
    if ((size_t)got < sizeof(fixed)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE,
                    "archive is truncated: the header ends after %zd bytes", got);
        return FALSE;
    }
    uint32_t version = vma_get_be32(fixed + VMA_H_VERSION);
    if (version != 1) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "unsupported vma version %u", version);
        return FALSE;
    }
    uint32_t header_size = vma_get_be32(fixed + VMA_H_HEADER_SIZE);
    if (header_size < VMA_HEADER_FIXED_SIZE || header_size > VMA_MAX_HEADER_SIZE ||
        header_size % 512 != 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "bad header: header size %u is invalid",
                    header_size);
        return FALSE;
    }

    /* read the rest of the header as it arrives, so that a size the file
     * does not back costs no memory */
    GByteArray *hb = g_byte_array_new();
    g_byte_array_append(hb, fixed, sizeof(fixed));
    uint8_t chunk[65536];
    while (hb->len < header_size) {
        size_t want = MIN(sizeof(chunk), header_size - hb->len);
        ssize_t n = vma_in_read(r->in, chunk, want, err);
        if (n >= 0 && (size_t)n < want)
            g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE,
                        "archive is truncated: the header ends after %" G_GUINT64_FORMAT
                        " of %u bytes", (uint64_t)hb->len + (uint64_t)n, header_size);
        if (n < 0 || (size_t)n < want) {
            g_byte_array_free(hb, TRUE);
            return FALSE;
        }
        r->offset += (uint64_t)n;
        g_byte_array_append(hb, chunk, (guint)want);
    }
    uint8_t *hd = hb->data;

    gboolean ok = FALSE;
    blobs b = {0};
    uint8_t md5[16], want_md5[16];
    memcpy(want_md5, hd + VMA_H_MD5, 16);
    memset(hd + VMA_H_MD5, 0, 16);
    vma_md5(hd, header_size, md5);
    memcpy(hd + VMA_H_MD5, want_md5, 16);
    if (memcmp(md5, want_md5, 16) != 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "bad header: checksum mismatch");
        goto out;
    }

    uint32_t blob_off = vma_get_be32(hd + VMA_H_BLOB_OFFSET);
    uint32_t blob_size = vma_get_be32(hd + VMA_H_BLOB_SIZE);
    if (blob_off < VMA_HEADER_FIXED_SIZE || blob_off > header_size ||
        blob_size > header_size - blob_off) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                    "bad header: blob buffer (offset %u, size %u) lies outside the header (%u bytes)",
                    blob_off, blob_size, header_size);
        goto out;
    }
    b.buf = hd + blob_off;
    b.size = blob_size;
    blobs_index(&b);

    vma_header *h = &r->h;
    memcpy(h->uuid, hd + VMA_H_UUID, 16);
    h->ctime = (int64_t)vma_get_be64(hd + VMA_H_CTIME);
    h->header_size = header_size;

    char field[64];
    for (unsigned i = 0; i < VMA_MAX_CONFIGS; i++) {
        uint32_t np = vma_get_be32(hd + VMA_H_CONFIG_NAMES + 4 * i);
        uint32_t dp = vma_get_be32(hd + VMA_H_CONFIG_DATA + 4 * i);
        if (!np && !dp)
            continue;
        if (!np || !dp) {
            g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                        "bad header: config %u has %s but no %s", i,
                        np ? "a name" : "content", np ? "content" : "name");
            goto out;
        }
        snprintf(field, sizeof(field), "the name of config %u", i);
        char *name = blob_name(&b, np, field, err);
        if (!name)
            goto out;
        vma_config *c = &h->configs[h->n_configs++];
        c->name = name;
        const uint8_t *data;
        uint32_t len;
        snprintf(field, sizeof(field), "the content of config '%s'", name);
        if (blob_get(&b, dp, field, &data, &len, err) < 0)
            goto out;
        /* an empty blob may end the header: copy nothing from it */
        c->data = len ? g_memdup2(data, len) : g_malloc0(1);
        c->len = len;
        for (unsigned k = 0; k + 1 < h->n_configs; k++) {
            if (strcmp(h->configs[k].name, name) == 0) {
                g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                            "bad header: two configs are named '%s'", name);
                goto out;
            }
        }
    }

    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const uint8_t *di = hd + VMA_H_DEV_INFO + 32 * id;
        uint32_t np = vma_get_be32(di);
        uint64_t size = vma_get_be64(di + 8);
        if (!np)
            continue;
        snprintf(field, sizeof(field), "the name of device %u", id);
        char *name = blob_name(&b, np, field, err);
        if (!name)
            goto out;
        if (!size) { /* no device, as in Proxmox's reader */
            g_free(name);
            continue;
        }
        if (size > VMA_MAX_DEVICE_SIZE) {
            g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                        "bad header: device '%s' has size %" G_GUINT64_FORMAT
                        ", more than the format can address", name, size);
            g_free(name);
            goto out;
        }
        for (unsigned k = 1; k < id; k++) {
            if (h->devices[k] && strcmp(h->devices[k]->name, name) == 0) {
                g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                            "bad header: two devices are named '%s'", name);
                g_free(name);
                goto out;
            }
        }
        vma_device *d = g_new0(vma_device, 1);
        d->id = (uint8_t)id;
        d->name = name;
        d->size = size;
        d->is_vmstate = strcmp(name, "vmstate") == 0;
        h->devices[id] = d;
        h->n_devices++;
        if (d->is_vmstate) {
            r->vmstate_id = (uint8_t)id;
        } else {
            r->seen[id] = vma_bitmap_new(vma_clusters(size), VMA_READER_MAX_RUNS);
        }
    }
    if (h->n_configs == 0 && h->n_devices == 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                    "bad header: the archive holds neither configs nor devices");
        goto out;
    }
    ok = TRUE;
out:
    g_free(b.starts);
    g_byte_array_free(hb, TRUE);
    return ok;
}

vma_reader *vma_reader_open_fd(int fd, GError **err)
{
    vma_reader *r = g_new0(vma_reader, 1);
    r->in = vma_in_new(fd, err);
    if (!r->in) {
        g_free(r);
        return NULL;
    }
    if (!parse_header(r, err)) {
        vma_reader_free(r);
        return NULL;
    }
    r->ext = g_malloc(VMA_EXTENT_HEADER_SIZE + VMA_MAX_EXTENT_DATA);
    return r;
}

vma_reader *vma_reader_open(const char *path, GError **err)
{
    int fd;
    if (strcmp(path, "-") == 0) {
        fd = dup(0);
        if (fd < 0) {
            vma_set_errno(err, errno, "cannot read standard input");
            return NULL;
        }
    } else {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            vma_set_errno(err, errno, "cannot open %s", path);
            return NULL;
        }
    }
    return vma_reader_open_fd(fd, err);
}

const vma_header *vma_reader_header(const vma_reader *r) { return &r->h; }
uint64_t vma_reader_offset(const vma_reader *r) { return r->offset; }
vma_compress vma_reader_compression(const vma_reader *r) { return vma_in_compression(r->in); }

const vma_config *vma_reader_find_config(const vma_reader *r, const char *name)
{
    for (unsigned i = 0; i < r->h.n_configs; i++)
        if (strcmp(r->h.configs[i].name, name) == 0)
            return &r->h.configs[i];
    return NULL;
}

const vma_device *vma_reader_find_device(const vma_reader *r, const char *name)
{
    for (unsigned i = 1; i <= VMA_MAX_DEV_ID; i++)
        if (r->h.devices[i] && strcmp(r->h.devices[i]->name, name) == 0)
            return r->h.devices[i];
    return NULL;
}

/* the rules checked once the stream has ended */
static int check_end(vma_reader *r, GError **err)
{
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = r->h.devices[id];
        if (!d || d->is_vmstate)
            continue;
        uint64_t first = 0;
        uint64_t missing = vma_bitmap_count_clear(r->seen[id], &first);
        if (missing) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE,
                        "archive is incomplete: device '%s' misses %" G_GUINT64_FORMAT
                        " of %" G_GUINT64_FORMAT " clusters (first missing: cluster %"
                        G_GUINT64_FORMAT ")", d->name, missing, vma_clusters(d->size), first);
            return -1;
        }
    }
    return 0;
}

#define EXT_ERR(code, ...) do { \
        char *m_ = g_strdup_printf(__VA_ARGS__); \
        g_set_error(err, VMA_ERROR, code, "extent at offset %" G_GUINT64_FORMAT ": %s", off, m_); \
        g_free(m_); \
        return -1; \
    } while (0)

int vma_reader_next(vma_reader *r, vma_extent *ext, GError **err)
{
    if (r->at_end)
        return 0;
    if (vma_interrupted()) {
        g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
        return -1;
    }
    uint64_t off = r->offset;
    uint8_t *eh = r->ext;
    ssize_t got = vma_in_read(r->in, eh, VMA_EXTENT_HEADER_SIZE, err);
    if (got < 0)
        return -1;
    r->offset += (uint64_t)got;
    if (got == 0) {
        if (check_end(r, err) < 0)
            return -1;
        r->at_end = TRUE;
        return 0;
    }
    if (got < (ssize_t)VMA_EXTENT_HEADER_SIZE)
        EXT_ERR(VMA_ERR_INCOMPLETE, "archive is truncated: the extent header ends after %zd of 512 bytes", got);
    if (memcmp(eh + VMA_E_MAGIC, VMA_EXTENT_MAGIC, 4) != 0)
        EXT_ERR(VMA_ERR_FORMAT, "not an extent header (wrong magic)");
    uint8_t md5[16], want_md5[16];
    memcpy(want_md5, eh + VMA_E_MD5, 16);
    memset(eh + VMA_E_MD5, 0, 16);
    vma_md5(eh, VMA_EXTENT_HEADER_SIZE, md5);
    memcpy(eh + VMA_E_MD5, want_md5, 16);
    if (memcmp(md5, want_md5, 16) != 0)
        EXT_ERR(VMA_ERR_FORMAT, "checksum mismatch");
    if (vma_get_be16(eh + VMA_E_RESERVED) != 0)
        EXT_ERR(VMA_ERR_FORMAT, "reserved field is not zero");
    if (memcmp(eh + VMA_E_UUID, r->h.uuid, 16) != 0)
        EXT_ERR(VMA_ERR_FORMAT, "uuid does not match the archive's");
    unsigned block_count = vma_get_be16(eh + VMA_E_BLOCK_COUNT);
    if (block_count > MAX_EXTENT_BLOCKS)
        EXT_ERR(VMA_ERR_FORMAT, "block count %u is more than an extent can hold", block_count);

    unsigned blocks = 0;
    ext->n_slots = 0;
    ext->offset = off;
    ext->block_count = block_count;
    for (unsigned i = 0; i < VMA_SLOTS_PER_EXTENT; i++) {
        uint64_t bi = vma_get_be64(eh + VMA_E_BLOCKINFO + 8 * i);
        uint16_t mask = (uint16_t)(bi >> 48);
        uint8_t dev_id = (uint8_t)(bi >> 32);
        uint32_t cluster = (uint32_t)bi;
        if ((bi >> 40) & 0xff)
            EXT_ERR(VMA_ERR_FORMAT, "slot %u: reserved bits are set", i);
        if (!dev_id) {
            if (mask)
                EXT_ERR(VMA_ERR_FORMAT, "slot %u: an empty slot claims stored blocks", i);
            continue;
        }
        vma_slot *s = &ext->slots[ext->n_slots++];
        s->dev_id = dev_id;
        s->cluster = cluster;
        s->mask = mask;
        blocks += (unsigned)__builtin_popcount(mask);
    }
    if (blocks != block_count)
        EXT_ERR(VMA_ERR_FORMAT, "block count %u does not match the %u blocks its slots store",
                block_count, blocks);

    uint8_t *data = eh + VMA_EXTENT_HEADER_SIZE;
    size_t dlen = (size_t)block_count * VMA_BLOCK_SIZE;
    got = vma_in_read(r->in, data, dlen, err);
    if (got < 0)
        return -1;
    r->offset += (uint64_t)got;
    if ((size_t)got < dlen)
        EXT_ERR(VMA_ERR_INCOMPLETE, "archive is truncated: extent data ends after %zd of %zu bytes",
                got, dlen);

    for (unsigned i = 0; i < ext->n_slots; i++) {
        vma_slot *s = &ext->slots[i];
        const vma_device *d = r->h.devices[s->dev_id];
        if (!d)
            EXT_ERR(VMA_ERR_FORMAT, "unknown device id %u", s->dev_id);
        if ((uint64_t)s->cluster * VMA_CLUSTER_SIZE >= d->size)
            EXT_ERR(VMA_ERR_FORMAT, "cluster %u is past the end of device '%s'",
                    s->cluster, d->name);
        if (d->is_vmstate) {
            if (s->cluster != r->vmstate_next)
                EXT_ERR(VMA_ERR_FORMAT, "vmstate cluster %u out of order (expected %" G_GUINT64_FORMAT ")",
                        s->cluster, r->vmstate_next);
            r->vmstate_next++;
        } else {
            vma_bitmap *seen = r->seen[s->dev_id];
            uint64_t before = vma_bitmap_runs(seen);
            int old = vma_bitmap_test_and_set(seen, s->cluster);
            r->runs = r->runs + vma_bitmap_runs(seen) - before;
            if (old < 0 || r->runs > VMA_READER_MAX_RUNS)
                EXT_ERR(VMA_ERR_FORMAT, "clusters of device '%s' are scattered beyond what a "
                        "backup writes (more than %u separate runs)", d->name, VMA_READER_MAX_RUNS);
            if (old)
                EXT_ERR(VMA_ERR_FORMAT, "duplicate cluster %u of device '%s'", s->cluster, d->name);
        }
        s->data = data;
        data += (size_t)__builtin_popcount(s->mask) * VMA_BLOCK_SIZE;
    }
    return 1;
}
