/* reader.c - streaming VMA reader: header validation and checked extents.
 * Works on any descriptor (files, pipes, stdin); memory is bounded by the
 * header (itself bounded) and one extent.
 *
 * Two modes change what happens on damage or at the end, never what is
 * checked: with salvage, a bad extent is skipped (the reader looks for the
 * next valid extent header) and a cut archive simply ends (a failed read and
 * an interrupt still fail); without the data
 * (vma_reader_skip_data), extents are decoded and checked but their blocks
 * are skipped over, for building an index. */
#define _GNU_SOURCE
#include "format/format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_EXTENT_BLOCKS (VMA_SLOTS_PER_EXTENT * VMA_BLOCKS_PER_CLUSTER)

struct vma_reader {
    vma_in *in;
    vma_header h;
    GByteArray *raw_header;             /* the header's bytes, as read */
    uint64_t offset;
    uint8_t *ext;                       /* one extent: header + data */
    vma_runs *seen[VMA_MAX_DEV_ID + 1];
    gboolean optional[VMA_MAX_DEV_ID + 1]; /* missing clusters are not an error */
    uint64_t vmstate_next;              /* next vmstate cluster expected */
    gboolean at_end;
    uint64_t runs;                      /* runs held over all devices */
    gboolean skip_data;
    vma_damage_fn damage;               /* salvage mode when set */
    void *damage_ud;
    uint64_t damage_events;
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

vma_header *vma_header_copy(const vma_header *h)
{
    vma_header *c = g_new(vma_header, 1);
    *c = *h;
    for (unsigned i = 0; i < h->n_configs; i++) {
        c->configs[i].name = g_strdup(h->configs[i].name);
        c->configs[i].data = g_memdup2(h->configs[i].data, h->configs[i].len);
    }
    for (unsigned i = 0; i <= VMA_MAX_DEV_ID; i++) {
        if (h->devices[i]) {
            c->devices[i] = g_memdup2(h->devices[i], sizeof(vma_device));
            c->devices[i]->name = g_strdup(h->devices[i]->name);
        }
    }
    return c;
}

void vma_header_free(vma_header *h)
{
    if (h) {
        header_clear(h);
        g_free(h);
    }
}

void vma_reader_free(vma_reader *r)
{
    if (!r)
        return;
    vma_in_free(r->in);
    header_clear(&r->h);
    if (r->raw_header)
        g_byte_array_free(r->raw_header, TRUE);
    for (unsigned i = 0; i <= VMA_MAX_DEV_ID; i++)
        vma_runs_free(r->seen[i]);
    g_free(r->ext);
    g_free(r);
}

/* ---- the header ---- */

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

/* the fixed part: magic, version and a sane header size */
static gboolean read_fixed(vma_reader *r, uint8_t fixed[VMA_HEADER_FIXED_SIZE],
                           uint32_t *header_size, GError **err)
{
    ssize_t got = vma_in_read(r->in, fixed, VMA_HEADER_FIXED_SIZE, err);
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
    if ((size_t)got < VMA_HEADER_FIXED_SIZE) {
        g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE,
                    "archive is truncated: the header ends after %zd bytes", got);
        return FALSE;
    }
    uint32_t version = vma_get_be32(fixed + VMA_H_VERSION);
    if (version != 1) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "unsupported vma version %u", version);
        return FALSE;
    }
    *header_size = vma_get_be32(fixed + VMA_H_HEADER_SIZE);
    if (*header_size < VMA_HEADER_FIXED_SIZE || *header_size > VMA_MAX_HEADER_SIZE ||
        *header_size % 512 != 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "bad header: header size %u is invalid",
                    *header_size);
        return FALSE;
    }
    return TRUE;
}

/* the whole header, read as it arrives so that a size the file does not
 * back costs no memory; NULL on error */
static GByteArray *read_header(vma_reader *r, GError **err)
{
    /* read straight into the array, a step at a time (no buffer on the
     * stack of whatever thread reads) */
    uint32_t header_size;
    GByteArray *hb = g_byte_array_sized_new(VMA_HEADER_FIXED_SIZE);
    g_byte_array_set_size(hb, VMA_HEADER_FIXED_SIZE);
    if (!read_fixed(r, hb->data, &header_size, err)) {
        g_byte_array_free(hb, TRUE);
        return NULL;
    }
    while (hb->len < header_size) {
        guint have = hb->len;
        size_t want = MIN((size_t)65536, (size_t)(header_size - have));
        g_byte_array_set_size(hb, have + (guint)want);
        ssize_t n = vma_in_read(r->in, hb->data + have, want, err);
        if (n >= 0 && (size_t)n < want)
            g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE,
                        "archive is truncated: the header ends after %" G_GUINT64_FORMAT
                        " of %u bytes", (uint64_t)have + (uint64_t)n, header_size);
        if (n < 0 || (size_t)n < want) {
            g_byte_array_free(hb, TRUE);
            return NULL;
        }
        r->offset += (uint64_t)n;
    }
    return hb;
}

/* the MD5 of the buffer, computed with the checksum field at md5_at zero */
static gboolean md5_matches(const uint8_t *buf, size_t len, size_t md5_at)
{
    uint8_t copy[VMA_EXTENT_HEADER_SIZE];
    uint8_t got[16];
    if (len == VMA_EXTENT_HEADER_SIZE) {
        memcpy(copy, buf, len);
        memset(copy + md5_at, 0, 16);
        if (!vma_md5(copy, len, got))
            return FALSE;
    } else {
        /* a header: hash around the field without copying it */
        if (!vma_md5_with_hole(buf, md5_at, buf + md5_at + 16, len - md5_at - 16, got))
            return FALSE;
    }
    return memcmp(got, buf + md5_at, 16) == 0;
}

static gboolean parse_configs(vma_header *h, const uint8_t *hd, const blobs *b, GError **err)
{
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
            return FALSE;
        }
        snprintf(field, sizeof(field), "the name of config %u", i);
        char *name = blob_name(b, np, field, err);
        if (!name)
            return FALSE;
        vma_config *c = &h->configs[h->n_configs++];
        c->name = name;
        const uint8_t *data;
        uint32_t len;
        snprintf(field, sizeof(field), "the content of config '%s'", name);
        if (blob_get(b, dp, field, &data, &len, err) < 0)
            return FALSE;
        /* an empty blob may end the header: copy nothing from it */
        c->data = len ? g_memdup2(data, len) : g_malloc0(1);
        c->len = len;
        for (unsigned k = 0; k + 1 < h->n_configs; k++) {
            if (strcmp(h->configs[k].name, name) == 0) {
                g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                            "bad header: two configs are named '%s'", name);
                return FALSE;
            }
        }
    }
    return TRUE;
}

static gboolean parse_devices(vma_reader *r, const uint8_t *hd, const blobs *b, GError **err)
{
    vma_header *h = &r->h;
    char field[64];
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const uint8_t *di = hd + VMA_H_DEV_INFO + 32 * id;
        uint32_t np = vma_get_be32(di);
        uint64_t size = vma_get_be64(di + 8);
        if (!np)
            continue;
        snprintf(field, sizeof(field), "the name of device %u", id);
        char *name = blob_name(b, np, field, err);
        if (!name)
            return FALSE;
        if (!size) { /* no device, as in Proxmox's reader */
            g_free(name);
            continue;
        }
        gboolean twice = FALSE;
        for (unsigned k = 1; k < id && !twice; k++)
            twice = h->devices[k] && strcmp(h->devices[k]->name, name) == 0;
        if (size > VMA_MAX_DEVICE_SIZE || twice) {
            if (twice)
                g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                            "bad header: two devices are named '%s'", name);
            else
                g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "bad header: device '%s' has size %"
                            G_GUINT64_FORMAT ", more than the format can address", name, size);
            g_free(name);
            return FALSE;
        }
        vma_device *d = g_new0(vma_device, 1);
        d->id = (uint8_t)id;
        d->name = name;
        d->size = size;
        d->is_vmstate = strcmp(name, "vmstate") == 0;
        h->devices[id] = d;
        h->n_devices++;
        if (!d->is_vmstate)
            r->seen[id] = vma_runs_new(vma_clusters(size), VMA_READER_MAX_RUNS);
    }
    return TRUE;
}

static gboolean parse_header(vma_reader *r, GError **err)
{
    GByteArray *hb = read_header(r, err);
    if (!hb)
        return FALSE;
    const uint8_t *hd = hb->data;
    uint32_t header_size = hb->len;
    gboolean ok = FALSE;
    blobs b = {0};

    if (!md5_matches(hd, header_size, VMA_H_MD5)) {
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
    if (!parse_configs(h, hd, &b, err) || !parse_devices(r, hd, &b, err))
        goto out;
    if (h->n_configs == 0 && h->n_devices == 0) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT,
                    "bad header: the archive holds neither configs nor devices");
        goto out;
    }
    ok = TRUE;
out:
    g_free(b.starts);
    r->raw_header = hb;
    return ok;
}

static vma_reader *reader_on(vma_in *in, GError **err)
{
    vma_reader *r = g_new0(vma_reader, 1);
    r->in = in;
    if (!parse_header(r, err)) {
        vma_reader_free(r);
        return NULL;
    }
    r->ext = g_malloc(VMA_EXTENT_HEADER_SIZE + VMA_MAX_EXTENT_DATA);
    return r;
}

vma_reader *vma_reader_open_fd(int fd, GError **err)
{
    vma_in *in = vma_in_new(fd, err);
    return in ? reader_on(in, err) : NULL;
}

vma_reader *vma_reader_open_src(vma_src *src, GError **err)
{
    return reader_on(vma_in_new_src(src), err);
}

int vma_open_archive_fd(const char *path, GError **err)
{
    int fd;
    if (strcmp(path, "-") == 0) {
        fd = dup(0);
        if (fd < 0)
            vma_set_errno(err, errno, "cannot read standard input");
        return fd;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        vma_set_errno(err, errno, "cannot open %s", path);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "%s is a folder, not an archive", path);
        close(fd);
        return -1;
    }
    return fd;
}

vma_reader *vma_reader_open(const char *path, GError **err)
{
    int fd = vma_open_archive_fd(path, err);
    if (fd < 0)
        return NULL;
    GError *e = NULL;
    vma_reader *r = vma_reader_open_fd(fd, &e);
    if (!r && strcmp(path, "-") != 0 && e && e->code == VMA_ERR_IO)
        g_prefix_error(&e, "%s: ", path);
    if (!r)
        g_propagate_error(err, e);
    return r;
}

const vma_header *vma_reader_header(const vma_reader *r) { return &r->h; }

const uint8_t *vma_reader_raw_header(const vma_reader *r, size_t *len)
{
    *len = r->raw_header->len;
    return r->raw_header->data;
}

const uint8_t *vma_reader_raw_extent(const vma_reader *r, const vma_extent *ext, size_t *len)
{
    *len = VMA_EXTENT_HEADER_SIZE + (size_t)ext->block_count * VMA_BLOCK_SIZE;
    return r->ext;
}
uint64_t vma_reader_offset(const vma_reader *r) { return r->offset; }
uint64_t vma_reader_input_offset(const vma_reader *r) { return vma_in_raw_offset(r->in); }
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

void vma_reader_set_optional(vma_reader *r, uint8_t dev_id, gboolean optional)
{
    r->optional[dev_id] = optional;
}

void vma_reader_set_salvage(vma_reader *r, vma_damage_fn fn, void *ud)
{
    r->damage = fn;
    r->damage_ud = ud;
}

void vma_reader_skip_data(vma_reader *r, gboolean skip)
{
    r->skip_data = skip;
}

uint64_t vma_reader_damage_events(const vma_reader *r) { return r->damage_events; }

void vma_reader_foreach_missing(const vma_reader *r, uint8_t dev_id, vma_gap_fn fn, void *ud)
{
    if (r->seen[dev_id])
        vma_runs_foreach_gap(r->seen[dev_id], fn, ud);
}

uint64_t vma_reader_missing(const vma_reader *r, uint8_t dev_id)
{
    return r->seen[dev_id] ? vma_runs_missing(r->seen[dev_id], NULL) : 0;
}

gboolean vma_reader_has_cluster(const vma_reader *r, uint8_t dev_id, uint32_t cluster)
{
    return r->seen[dev_id] && vma_runs_contains(r->seen[dev_id], cluster);
}

static void report_damage(vma_reader *r, uint64_t offset, const char *what)
{
    r->damage_events++;
    r->damage(offset, what, r->damage_ud);
}

/* the rules checked once the stream has ended: every device that is not
 * optional is complete (all of them are named, not only the first) */
static int check_end(vma_reader *r, GError **err)
{
    if (r->damage)
        return 0; /* salvage: what is missing is reported by the caller */
    GString *msg = NULL;
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = r->h.devices[id];
        if (!d || d->is_vmstate || r->optional[id])
            continue;
        uint64_t first = 0;
        uint64_t missing = vma_runs_missing(r->seen[id], &first);
        if (!missing)
            continue;
        if (!msg)
            msg = g_string_new("archive is incomplete: ");
        else
            g_string_append(msg, "; ");
        g_string_append_printf(msg, "device '%s' misses %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                               " clusters (first missing: cluster %" G_GUINT64_FORMAT ")",
                               d->name, missing, vma_clusters(d->size), first);
    }
    if (!msg)
        return 0;
    g_set_error_literal(err, VMA_ERROR, VMA_ERR_INCOMPLETE, msg->str);
    g_string_free(msg, TRUE);
    return -1;
}

/* ---- extents ---- */

#define EXT_ERR(code, ...) do { \
        char *m_ = g_strdup_printf(__VA_ARGS__); \
        g_set_error(err, VMA_ERROR, code, "extent at offset %" G_GUINT64_FORMAT ": %s", off, m_); \
        g_free(m_); \
        return -1; \
    } while (0)

int vma_extent_decode(const uint8_t *eh, const uint8_t uuid[16], uint64_t off,
                      vma_extent *ext, GError **err)
{
    if (memcmp(eh + VMA_E_MAGIC, VMA_EXTENT_MAGIC, 4) != 0)
        EXT_ERR(VMA_ERR_FORMAT, "not an extent header (wrong magic)");
    if (!md5_matches(eh, VMA_EXTENT_HEADER_SIZE, VMA_E_MD5))
        EXT_ERR(VMA_ERR_FORMAT, "checksum mismatch");
    if (vma_get_be16(eh + VMA_E_RESERVED) != 0)
        EXT_ERR(VMA_ERR_FORMAT, "reserved field is not zero");
    if (memcmp(eh + VMA_E_UUID, uuid, 16) != 0)
        EXT_ERR(VMA_ERR_FORMAT, "uuid does not match the archive's");
    unsigned block_count = vma_get_be16(eh + VMA_E_BLOCK_COUNT);
    if (block_count > MAX_EXTENT_BLOCKS)
        EXT_ERR(VMA_ERR_FORMAT, "block count %u is more than an extent can hold", block_count);

    unsigned blocks = 0;
    ext->n_slots = 0;
    ext->offset = off;
    ext->block_count = block_count;
    uint64_t data_off = off + VMA_EXTENT_HEADER_SIZE;
    for (unsigned i = 0; i < VMA_SLOTS_PER_EXTENT; i++) {
        uint64_t bi = vma_get_be64(eh + VMA_E_BLOCKINFO + 8 * i);
        uint16_t mask = (uint16_t)(bi >> 48);
        uint8_t dev_id = (uint8_t)(bi >> 32);
        if ((bi >> 40) & 0xff)
            EXT_ERR(VMA_ERR_FORMAT, "slot %u: reserved bits are set", i);
        if (!dev_id) {
            if (mask)
                EXT_ERR(VMA_ERR_FORMAT, "slot %u: an empty slot claims stored blocks", i);
            continue;
        }
        vma_slot *s = &ext->slots[ext->n_slots++];
        s->dev_id = dev_id;
        s->cluster = (uint32_t)bi;
        s->mask = mask;
        s->data = NULL;
        s->data_offset = data_off;
        unsigned n = (unsigned)__builtin_popcount(mask);
        data_off += (uint64_t)n * VMA_BLOCK_SIZE;
        blocks += n;
    }
    if (blocks != block_count)
        EXT_ERR(VMA_ERR_FORMAT, "block count %u does not match the %u blocks its slots store",
                block_count, blocks);
    return 0;
}

/* the rules of one slot against the header and what came before; 0 when it
 * is good (and now counted as seen), -1 with err */
static int check_slot(vma_reader *r, const vma_slot *s, uint64_t off, GError **err)
{
    const vma_device *d = r->h.devices[s->dev_id];
    if (!d)
        EXT_ERR(VMA_ERR_FORMAT, "unknown device id %u", s->dev_id);
    if ((uint64_t)s->cluster * VMA_CLUSTER_SIZE >= d->size)
        EXT_ERR(VMA_ERR_FORMAT, "cluster %u is past the end of device '%s'", s->cluster, d->name);
    if (d->is_vmstate) {
        if (s->cluster != r->vmstate_next)
            EXT_ERR(VMA_ERR_FORMAT, "vmstate cluster %u out of order (expected %" G_GUINT64_FORMAT ")",
                    s->cluster, r->vmstate_next);
        r->vmstate_next++;
        return 0;
    }
    vma_runs *seen = r->seen[s->dev_id];
    uint64_t before = vma_runs_count(seen);
    int old = vma_runs_add(seen, s->cluster);
    r->runs = r->runs + vma_runs_count(seen) - before;
    if (old < 0 || r->runs > VMA_READER_MAX_RUNS)
        EXT_ERR(VMA_ERR_FORMAT, "clusters of device '%s' are scattered beyond what a "
                "backup writes (more than %u separate runs)", d->name, VMA_READER_MAX_RUNS);
    if (old)
        EXT_ERR(VMA_ERR_FORMAT, "duplicate cluster %u of device '%s'", s->cluster, d->name);
    return 0;
}

/* salvage: an error that is no damage of the archive (a read that failed:
 * VMA_ERR_IO; an interrupt) fails the salvage; anything else (a cut, an
 * undecodable stream) is damage, reported, and the archive ends there */
static gboolean fails_salvage(const GError *e)
{
    return e->code == VMA_ERR_IO || e->code == VMA_ERR_INTERRUPTED;
}

/* salvage: read 512-byte steps after a bad header at off until a valid
 * extent header turns up; 1 with it in r->ext and ext decoded, 0 at the end
 * (or where the stream breaks), -1 with err on a read error or an
 * interrupt.  Extents start at multiples of 512, so none is missed. */
static int resync(vma_reader *r, vma_extent *ext, uint64_t off, const char *why, GError **err)
{
    uint64_t start = off;
    for (;;) {
        if (vma_interrupted()) {
            g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
            return -1;
        }
        off = r->offset;
        GError *e = NULL;
        ssize_t got = vma_in_read(r->in, r->ext, VMA_EXTENT_HEADER_SIZE, &e);
        if (got < 0 && fails_salvage(e)) {
            g_propagate_error(err, e);
            return -1;
        }
        if (got > 0)
            r->offset += (uint64_t)got;
        if (got < (ssize_t)VMA_EXTENT_HEADER_SIZE) {
            char *m = e ? g_strdup_printf("%s; nothing valid in the %" G_GUINT64_FORMAT
                                          " bytes after it, then: %s", why, r->offset - start,
                                          e->message)
                        : g_strdup_printf("%s; nothing valid in the %" G_GUINT64_FORMAT
                                          " bytes after it, up to the end", why,
                                          r->offset - start);
            report_damage(r, start, m);
            g_free(m);
            g_clear_error(&e);
            return 0;
        }
        if (vma_extent_decode(r->ext, r->h.uuid, off, ext, NULL) == 0) {
            char *m = g_strdup_printf("%s; skipped %" G_GUINT64_FORMAT " bytes to the next extent",
                                      why, off - start);
            report_damage(r, start, m);
            g_free(m);
            return 1;
        }
    }
}

/* the data of the extent: read into the buffer after the header, or
 * skipped; 0, or -1 with err (a cut archive) */
static int read_data(vma_reader *r, vma_extent *ext, GError **err)
{
    uint64_t off = ext->offset;
    size_t dlen = (size_t)ext->block_count * VMA_BLOCK_SIZE;
    uint8_t *data = r->ext + VMA_EXTENT_HEADER_SIZE;
    ssize_t got = r->skip_data ? vma_in_skip(r->in, dlen, err) : vma_in_read(r->in, data, dlen, err);
    if (got < 0)
        return -1;
    r->offset += (uint64_t)got;
    if ((size_t)got < dlen)
        EXT_ERR(VMA_ERR_INCOMPLETE, "archive is truncated: extent data ends after %zd of %zu bytes",
                got, dlen);
    if (!r->skip_data)
        for (unsigned i = 0; i < ext->n_slots; i++)
            ext->slots[i].data = data + (ext->slots[i].data_offset - off - VMA_EXTENT_HEADER_SIZE);
    return 0;
}

/* every slot's rules; in salvage mode a bad slot is dropped and reported */
static int check_slots(vma_reader *r, vma_extent *ext, GError **err)
{
    unsigned keep = 0;
    for (unsigned i = 0; i < ext->n_slots; i++) {
        GError *e = NULL;
        if (check_slot(r, &ext->slots[i], ext->offset, &e) == 0) {
            ext->slots[keep++] = ext->slots[i];
            continue;
        }
        if (!r->damage) {
            g_propagate_error(err, e);
            return -1;
        }
        report_damage(r, ext->offset, e->message);
        g_error_free(e);
    }
    ext->n_slots = keep;
    return 0;
}

/* salvage: an error that ends the archive (a cut, a decompression error)
 * is reported and makes it end here; a read that failed or an interrupt
 * fails */
static int end_damaged(vma_reader *r, GError *e, uint64_t off, GError **err)
{
    if (!r->damage || fails_salvage(e)) {
        g_propagate_error(err, e);
        return -1;
    }
    report_damage(r, off, e->message);
    g_error_free(e);
    r->at_end = TRUE;
    return 0;
}

int vma_reader_next(vma_reader *r, vma_extent *ext, GError **err)
{
    vma_in_start(r->in); /* the extents: decode ahead from here on */
    if (r->at_end)
        return 0;
    if (vma_interrupted()) {
        g_set_error(err, VMA_ERROR, VMA_ERR_INTERRUPTED, "interrupted");
        return -1;
    }
    uint64_t off = r->offset;
    GError *e = NULL;
    ssize_t got = vma_in_read(r->in, r->ext, VMA_EXTENT_HEADER_SIZE, &e);
    if (got < 0)
        return end_damaged(r, e, off, err);
    r->offset += (uint64_t)got;
    if (got == 0) {
        if (check_end(r, err) < 0)
            return -1;
        r->at_end = TRUE;
        return 0;
    }
    if (got < (ssize_t)VMA_EXTENT_HEADER_SIZE) {
        g_set_error(&e, VMA_ERROR, VMA_ERR_INCOMPLETE, "extent at offset %" G_GUINT64_FORMAT
                    ": archive is truncated: the extent header ends after %zd of 512 bytes", off, got);
        return end_damaged(r, e, off, err);
    }
    if (vma_extent_decode(r->ext, r->h.uuid, off, ext, &e) < 0) {
        if (!r->damage) {
            g_propagate_error(err, e);
            return -1;
        }
        int rc = resync(r, ext, off, e->message, err);
        g_error_free(e);
        if (rc <= 0) {
            r->at_end = rc == 0;
            return rc;
        }
    }
    if (read_data(r, ext, &e) < 0)
        return end_damaged(r, e, ext->offset, err);
    return check_slots(r, ext, err) < 0 ? -1 : 1;
}
