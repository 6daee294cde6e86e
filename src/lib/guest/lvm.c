/* lvm.c - an LVM2 physical volume: its label (in one of the first four
 * sectors), the PV header after it (the PV's UUID, size, data and metadata
 * areas), and the current metadata text from the first metadata area (a
 * ring buffer: the text may wrap around its end), every checksum checked.
 * The text is parsed in Lua (vma.guest); nothing is activated anywhere. */
#define _GNU_SOURCE
#include "guest/guest.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define MDA_HEADER_SIZE 512u
#define MAX_METADATA    (64u << 20)
static const char MDA_MAGIC[16] = " LVM2 x[5A%r0N*>";

/* LVM's CRC: CRC-32 (zlib's table) from 0xf597a6cf, without the final
 * inversion */
static uint32_t lvm_crc(uint32_t crc, const void *buf, size_t n)
{
    return ~(uint32_t)crc32(~crc & 0xffffffffu, buf, (uInt)n);
}
#define LVM_INITIAL_CRC 0xf597a6cfu

static void format_uuid(const uint8_t *u, char out[40])
{
    static const int groups[] = {6, 4, 4, 4, 4, 4, 6};
    char *o = out;
    int k = 0;
    for (unsigned g = 0; g < G_N_ELEMENTS(groups); g++) {
        if (g)
            *o++ = '-';
        for (int j = 0; j < groups[g]; j++) {
            char c = (char)u[k++];
            *o++ = g_ascii_isalnum(c) || c == '!' || c == '#' ? c : '?';
        }
    }
    *o = 0;
}

static int read_metadata(vma_volume *v, uint64_t mda_off, uint64_t mda_size, vma_lvm_pv *pv,
                         GError **err)
{
    uint8_t h[MDA_HEADER_SIZE];
    if (mda_size < 2 * MDA_HEADER_SIZE) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the LVM metadata area is too small");
        return -1;
    }
    if (vma_volume_read_exact(v, h, sizeof(h), mda_off, "the LVM metadata area", err) < 0)
        return -1;
    if (memcmp(h + 4, MDA_MAGIC, 16) != 0) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the LVM metadata area has no valid header");
        return -1;
    }
    if (lvm_crc(LVM_INITIAL_CRC, h + 4, MDA_HEADER_SIZE - 4) != g_le32(h)) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the LVM metadata area header is damaged (checksum)");
        return -1;
    }
    /* the raw locations after version, start and size; the first one not
     * flagged ignored is the current text */
    for (size_t at = 40; at + 24 <= MDA_HEADER_SIZE; at += 24) {
        uint64_t off = g_le64(h + at), size = g_le64(h + at + 8);
        uint32_t sum = g_le32(h + at + 16), flags = g_le32(h + at + 20);
        if (off == 0)
            break;
        if (flags & 1)
            continue; /* RAW_LOCN_IGNORED */
        if (size == 0 || size > MAX_METADATA || size > mda_size - MDA_HEADER_SIZE ||
            off < MDA_HEADER_SIZE || off >= mda_size) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the LVM metadata location is out of its area");
            return -1;
        }
        char *text = g_malloc(size + 1);
        /* the part up to the end of the area, then the rest from just
         * after the header (the ring wraps) */
        uint64_t first = MIN(size, mda_size - off);
        if (vma_volume_read_exact(v, text, first, mda_off + off, "the LVM metadata", err) < 0 ||
            (first < size && vma_volume_read_exact(v, text + first, size - first,
                                                   mda_off + MDA_HEADER_SIZE, "the LVM metadata",
                                                   err) < 0)) {
            g_free(text);
            return -1;
        }
        if (lvm_crc(LVM_INITIAL_CRC, text, size) != sum) {
            g_free(text);
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the LVM metadata is damaged (checksum)");
            return -1;
        }
        text[size] = 0;
        /* the text ends at its first NUL (LVM writes one) */
        pv->metadata_len = strlen(text);
        pv->metadata = text;
        return 1;
    }
    return 0;
}

int vma_lvm_pv_read(vma_volume *v, vma_lvm_pv *pv, GError **err)
{
    memset(pv, 0, sizeof(*pv));
    uint64_t vsize = vma_volume_size(v);
    if (vsize < 4 * 512)
        return 0;
    uint8_t s[4 * 512];
    if (vma_volume_read_exact(v, s, sizeof(s), 0, "the LVM label", err) < 0)
        return -1;
    const uint8_t *l = NULL;
    for (unsigned i = 0; i < 4; i++)
        if (memcmp(s + i * 512, "LABELONE", 8) == 0) {
            l = s + i * 512;
            if (g_le64(l + 8) != i)
                l = NULL; /* a label that says it is elsewhere */
            else
                break;
        }
    if (!l)
        return 0;
    if (memcmp(l + 24, "LVM2 001", 8) != 0)
        return 0;
    if (lvm_crc(LVM_INITIAL_CRC, l + 20, 512 - 20) != g_le32(l + 16)) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the LVM label is damaged (checksum)");
        return -1;
    }
    uint32_t hoff = g_le32(l + 20);
    if (hoff < 32 || hoff > 512 - 48) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the LVM label points out of its sector");
        return -1;
    }
    const uint8_t *ph = l + hoff, *end = l + 512;
    format_uuid(ph, pv->pv_uuid);
    pv->device_size = g_le64(ph + 32);
    /* the data areas, then the metadata areas, each list ending with a
     * zero entry */
    const uint8_t *p = ph + 40;
    int list = 0;
    uint64_t mda_off = 0, mda_size = 0;
    gboolean have_data = FALSE, have_mda = FALSE;
    while (list < 2) {
        if (p + 16 > end) {
            g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the LVM PV header runs out of its sector");
            return -1;
        }
        uint64_t off = g_le64(p), size = g_le64(p + 8);
        p += 16;
        if (off == 0) {
            list++;
            continue;
        }
        if (list == 0 && !have_data) {
            pv->data_offset = off;
            have_data = TRUE;
        } else if (list == 1 && !have_mda) {
            mda_off = off;
            mda_size = size;
            have_mda = TRUE;
        }
    }
    if (!have_data || pv->data_offset >= vsize) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the LVM PV has no data area inside it");
        return -1;
    }
    if (!have_mda)
        return 1;
    if (mda_off >= vsize || mda_size > vsize - mda_off) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "the LVM metadata area lies past the end of the PV");
        return -1;
    }
    if (read_metadata(v, mda_off, mda_size, pv, err) < 0) {
        vma_lvm_pv_clear(pv);
        return -1;
    }
    return 1;
}

void vma_lvm_pv_clear(vma_lvm_pv *pv)
{
    if (!pv)
        return;
    g_free(pv->metadata);
    memset(pv, 0, sizeof(*pv));
}
