/* parts.c - partition tables: GPT (its CRCs checked, the backup header
 * used when the primary is damaged, 512- and 4096-byte sectors) and MBR
 * with the chain of extended boot records of its logical partitions.
 * Every number read is checked against the volume; a loop in the chain
 * of extended boot records ends it. */
#define _GNU_SOURCE
#include "guest/guest.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define MAX_GPT_ENTRIES 4096u        /* entries read at most */
#define MAX_GPT_TABLE   (1u << 20)   /* bytes of entries read at most */
#define MAX_LOGICAL     256u         /* logical partitions followed at most */

static void add_part(GArray *a, const vma_partition *p) { g_array_append_vals(a, p, 1); }

static const uint8_t zero16[16];

/* a UTF-16LE name of at most n units to UTF-8, stopping at a NUL */
static void utf16_name(const uint8_t *p, size_t units, char *out, size_t outsz)
{
    gunichar2 buf[72];
    size_t n = 0;
    while (n < units && n < G_N_ELEMENTS(buf)) {
        gunichar2 u = g_le16(p + 2 * n);
        if (!u)
            break;
        buf[n++] = u;
    }
    out[0] = 0;
    char *s = g_utf16_to_utf8(buf, (glong)n, NULL, NULL, NULL);
    if (s) {
        g_strlcpy(out, s, outsz);
        g_free(s);
    }
}

/* the header of a GPT at lba (sector bytes each): 1 when valid (hdr filled
 * with its sector), 0 when absent or damaged */
static int gpt_header(vma_volume *v, unsigned sector, uint64_t lba, uint8_t *hdr, GError **err)
{
    uint64_t size = vma_volume_size(v);
    if (lba > size / sector - 1)
        return 0;
    if (vma_volume_read_exact(v, hdr, sector, lba * sector, "the GPT header", err) < 0)
        return -1;
    if (memcmp(hdr, "EFI PART", 8) != 0)
        return 0;
    uint32_t hsize = g_le32(hdr + 12);
    if (hsize < 92 || hsize > sector)
        return 0;
    uint32_t crc = g_le32(hdr + 16);
    uint8_t tmp[4096];
    memcpy(tmp, hdr, hsize);
    memset(tmp + 16, 0, 4);
    if ((uint32_t)crc32(0, tmp, hsize) != crc)
        return 0;
    if (g_le64(hdr + 24) != lba)
        return 0;
    return 1;
}

/* the entries of a valid GPT header into a: 1, 0 when their CRC is wrong, -1 */
static int gpt_entries(vma_volume *v, unsigned sector, const uint8_t *hdr, GArray *a,
                       GError **err)
{
    uint64_t size = vma_volume_size(v);
    uint64_t lba = g_le64(hdr + 72);
    uint32_t count = g_le32(hdr + 80);
    uint32_t esize = g_le32(hdr + 84);
    if (esize < 128 || esize > 4096 || esize % 8 != 0 || count == 0 || count > MAX_GPT_ENTRIES ||
        (uint64_t)count * esize > MAX_GPT_TABLE)
        return 0;
    uint64_t bytes = (uint64_t)count * esize;
    if (lba > size / sector || bytes > size - lba * sector)
        return 0;
    uint8_t *t = g_malloc(bytes);
    if (vma_volume_read_exact(v, t, bytes, lba * sector, "the GPT entries", err) < 0) {
        g_free(t);
        return -1;
    }
    if ((uint32_t)crc32(0, t, (uInt)bytes) != g_le32(hdr + 88)) {
        g_free(t);
        return 0;
    }
    uint64_t sectors = size / sector;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = t + (size_t)i * esize;
        if (memcmp(e, zero16, 16) == 0)
            continue;
        uint64_t first = g_le64(e + 32), last = g_le64(e + 40);
        if (last < first || first >= sectors)
            continue; /* nothing of it is on the disk */
        vma_partition p = {0};
        p.number = i + 1;
        p.start = first * sector;
        if (last >= sectors) {
            last = sectors - 1;
            p.truncated = TRUE;
        }
        p.length = (last - first + 1) * sector;
        vma_guid_format(e, p.type);
        vma_guid_format(e + 16, p.uuid);
        utf16_name(e + 56, 36, p.name, sizeof(p.name));
        p.bootable = (g_le64(e + 48) & 4) != 0;
        add_part(a, &p);
    }
    g_free(t);
    return 1;
}

static int read_gpt(vma_volume *v, unsigned sector, vma_partition_table *t, GArray *a,
                    GError **err)
{
    uint8_t hdr[4096];
    uint64_t sectors = vma_volume_size(v) / sector;
    int r = gpt_header(v, sector, 1, hdr, err);
    if (r < 0)
        return -1;
    if (r == 1) {
        r = gpt_entries(v, sector, hdr, a, err);
        if (r < 0)
            return -1;
    }
    if (r == 0) {
        /* the backup at the last sector */
        g_array_set_size(a, 0);
        if (sectors < 2)
            return 0;
        r = gpt_header(v, sector, sectors - 1, hdr, err);
        if (r < 0)
            return -1;
        if (r == 1)
            r = gpt_entries(v, sector, hdr, a, err);
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        t->warning = g_strdup("the primary GPT is damaged: the backup GPT at the end of the disk was used");
    }
    g_strlcpy(t->scheme, "gpt", sizeof(t->scheme));
    vma_guid_format(hdr + 56, t->disk_uuid);
    t->sector = sector;
    return 1;
}

static gboolean is_extended(uint8_t type) { return type == 0x05 || type == 0x0f || type == 0x85; }

/* the boot sector of a FAT, exFAT or NTFS file system (which also ends in
 * 55 AA): no partition table */
static gboolean is_boot_sector(const uint8_t *s)
{
    if (memcmp(s + 3, "NTFS    ", 8) == 0 || memcmp(s + 3, "EXFAT   ", 8) == 0)
        return TRUE;
    if (memcmp(s + 54, "FAT", 3) == 0 || memcmp(s + 82, "FAT32   ", 8) == 0)
        return TRUE;
    return FALSE;
}

static int read_mbr(vma_volume *v, const uint8_t *s, vma_partition_table *t, GArray *a,
                    GError **err)
{
    uint64_t sectors = vma_volume_size(v) / 512;
    /* every entry's status is 0 or 0x80, or this is no partition table */
    for (int i = 0; i < 4; i++) {
        uint8_t st = s[446 + 16 * i];
        if (st != 0 && st != 0x80)
            return 0;
    }
    uint32_t sig = g_le32(s + 440);
    uint64_t ext_start = 0, ext_len = 0;
    unsigned found = 0;
    for (int i = 0; i < 4; i++) {
        const uint8_t *e = s + 446 + 16 * i;
        uint8_t type = e[4];
        uint64_t start = g_le32(e + 8), count = g_le32(e + 12);
        if (type == 0 || count == 0)
            continue;
        if (start >= sectors || start == 0)
            continue;
        found++;
        vma_partition p = {0};
        p.number = (unsigned)i + 1;
        p.start = start * 512;
        if (count > sectors - start) {
            count = sectors - start;
            p.truncated = TRUE;
        }
        p.length = count * 512;
        snprintf(p.type, sizeof(p.type), "0x%02x", type);
        snprintf(p.uuid, sizeof(p.uuid), "%08x-%02x", sig, i + 1);
        p.bootable = e[0] == 0x80;
        p.extended = is_extended(type);
        if (p.extended && !ext_len) {
            ext_start = start;
            ext_len = count;
        }
        add_part(a, &p);
    }
    if (!found)
        return 0;
    g_strlcpy(t->scheme, "mbr", sizeof(t->scheme));
    snprintf(t->disk_uuid, sizeof(t->disk_uuid), "%08x", sig);
    t->sector = 512;
    /* the chain of extended boot records: each holds a logical partition
     * (relative to itself) and the next record (relative to the extended
     * partition) */
    uint64_t ebr = ext_start;
    GHashTable *seen = g_hash_table_new(g_int64_hash, g_int64_equal);
    uint64_t *keys = g_new(uint64_t, MAX_LOGICAL);
    unsigned number = 5;
    uint8_t b[512];
    for (unsigned n = 0; ebr && n < MAX_LOGICAL; n++) {
        if (ebr < ext_start || ebr - ext_start >= ext_len || g_hash_table_contains(seen, &ebr)) {
            if (!t->warning)
                t->warning = g_strdup("the chain of logical partitions is broken or loops: it ends there");
            break;
        }
        keys[n] = ebr;
        g_hash_table_add(seen, &keys[n]);
        if (vma_volume_read_exact(v, b, 512, ebr * 512, "an extended boot record", err) < 0) {
            g_hash_table_destroy(seen);
            g_free(keys);
            return -1;
        }
        if (b[510] != 0x55 || b[511] != 0xaa) {
            if (!t->warning)
                t->warning = g_strdup("an extended boot record has no signature: the logical partitions end there");
            break;
        }
        const uint8_t *e = b + 446;
        uint64_t start = g_le32(e + 8), count = g_le32(e + 12);
        if (e[4] != 0 && count != 0 && start != 0 && ebr + start < sectors) {
            vma_partition p = {0};
            p.number = number++;
            p.start = (ebr + start) * 512;
            uint64_t room = MIN(sectors, ext_start + ext_len) - (ebr + start);
            if (ebr + start >= ext_start + ext_len)
                room = 0;
            if (count > room) {
                count = room;
                p.truncated = TRUE;
            }
            if (count) {
                p.length = count * 512;
                snprintf(p.type, sizeof(p.type), "0x%02x", e[4]);
                snprintf(p.uuid, sizeof(p.uuid), "%08x-%02x", sig, p.number);
                p.bootable = e[0] == 0x80;
                add_part(a, &p);
            }
        }
        const uint8_t *nx = b + 446 + 16;
        uint64_t next = g_le32(nx + 8);
        ebr = is_extended(nx[4]) && next ? ext_start + next : 0;
    }
    g_hash_table_destroy(seen);
    g_free(keys);
    return 1;
}

int vma_partitions_read(vma_volume *v, vma_partition_table *t, GError **err)
{
    memset(t, 0, sizeof(*t));
    if (vma_volume_size(v) < 1024)
        return 0;
    uint8_t s[512];
    if (vma_volume_read_exact(v, s, 512, 0, "the partition table", err) < 0)
        return -1;
    GArray *a = g_array_new(FALSE, TRUE, sizeof(vma_partition));
    int r = 0;
    gboolean sig = s[510] == 0x55 && s[511] == 0xaa;
    gboolean protective = FALSE;
    if (sig)
        for (int i = 0; i < 4; i++)
            if (s[446 + 16 * i + 4] == 0xee)
                protective = TRUE;
    /* a GPT: behind a protective MBR, or (damaged MBR) found by its header */
    if (protective || !sig) {
        r = read_gpt(v, 512, t, a, err);
        if (r == 0 && vma_volume_size(v) >= 3 * 4096)
            r = read_gpt(v, 4096, t, a, err);
    }
    if (r == 0 && protective) {
        g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT,
                            "the disk has a protective MBR but neither its GPT nor the backup GPT is valid");
        r = -1;
    }
    if (r == 0 && sig && !protective && !is_boot_sector(s))
        r = read_mbr(v, s, t, a, err);
    if (r != 1) {
        g_array_free(a, TRUE);
        g_free(t->warning);
        memset(t, 0, sizeof(*t));
        return r;
    }
    t->n = a->len;
    t->parts = (vma_partition *)g_array_free(a, FALSE);
    return 1;
}

void vma_partition_table_clear(vma_partition_table *t)
{
    if (!t)
        return;
    g_free(t->parts);
    g_free(t->warning);
    memset(t, 0, sizeof(*t));
}
