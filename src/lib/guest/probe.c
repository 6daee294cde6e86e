/* probe.c - what a volume holds, from the signatures at its start (as
 * blkid finds them): the file system (type, label, UUID, size, free space
 * where the superblock says), an LVM2 physical volume, a LUKS container,
 * swap, an md RAID member.  Reads the first 68 KiB and, for md 0.90 and
 * 1.0, the end. */
#define _GNU_SOURCE
#include "guest/guest.h"

#include <stdio.h>
#include <string.h>

#define HEAD 0x11000u

static uint32_t be32(const uint8_t *p) { return vma_get_be32(p); }
static uint64_t be64(const uint8_t *p) { return vma_get_be64(p); }

static void set(vma_probe *p, const char *type, const char *usage)
{
    g_strlcpy(p->type, type, sizeof(p->type));
    g_strlcpy(p->usage, usage, sizeof(p->usage));
}

static void uuid_bytes(const uint8_t *u, char *out)
{
    snprintf(out, 48, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
             u[13], u[14], u[15]);
}

/* a label of at most n bytes, NUL- or space-padded, as UTF-8 (invalid
 * bytes dropped) */
static void label(vma_probe *p, const uint8_t *s, size_t n, gboolean trim_spaces)
{
    char tmp[257];
    n = MIN(n, sizeof(tmp) - 1);
    memcpy(tmp, s, n);
    tmp[n] = 0;
    size_t len = strlen(tmp);
    while (trim_spaces && len && tmp[len - 1] == ' ')
        tmp[--len] = 0;
    char *valid = g_utf8_make_valid(tmp, -1);
    g_strlcpy(p->label, valid, sizeof(p->label));
    g_free(valid);
}

static gboolean pow2(uint64_t v) { return v && !(v & (v - 1)); }

static gboolean probe_ext(const uint8_t *b, vma_probe *p)
{
    const uint8_t *sb = b + 1024;
    if (g_le16(sb + 56) != 0xef53)
        return FALSE;
    uint32_t log = g_le32(sb + 24);
    if (log > 6)
        return FALSE;
    uint64_t bs = 1024u << log;
    uint32_t compat = g_le32(sb + 0x5c), incompat = g_le32(sb + 0x60), ro = g_le32(sb + 0x64);
    gboolean is64 = (incompat & 0x80) != 0;
    uint64_t blocks = g_le32(sb + 4) | (is64 ? (uint64_t)g_le32(sb + 0x150) << 32 : 0);
    uint64_t free = g_le32(sb + 12) | (is64 ? (uint64_t)g_le32(sb + 0x158) << 32 : 0);
    if ((incompat & (0x40 | 0x80 | 0x200 | 0x400 | 0x1000 | 0x8000)) ||
        (ro & (0x8 | 0x10 | 0x20 | 0x40 | 0x400)))
        set(p, "ext4", "filesystem");
    else if (compat & 0x4)
        set(p, "ext3", "filesystem");
    else
        set(p, "ext2", "filesystem");
    uuid_bytes(sb + 0x68, p->uuid);
    label(p, sb + 0x78, 16, FALSE);
    if (blocks <= VMA_MAX_DEVICE_SIZE / bs && free <= blocks) {
        p->size = blocks * bs;
        p->free = free * bs;
        p->has_free = TRUE;
    }
    return TRUE;
}

static gboolean probe_xfs(const uint8_t *b, vma_probe *p)
{
    if (memcmp(b, "XFSB", 4) != 0)
        return FALSE;
    uint32_t bs = be32(b + 4);
    uint64_t blocks = be64(b + 8), free = be64(b + 144);
    set(p, "xfs", "filesystem");
    uuid_bytes(b + 32, p->uuid);
    label(p, b + 108, 12, FALSE);
    if (pow2(bs) && bs >= 512 && bs <= 65536 && blocks <= VMA_MAX_DEVICE_SIZE / bs &&
        free <= blocks) {
        p->size = blocks * bs;
        p->free = free * bs;
        p->has_free = TRUE;
    }
    return TRUE;
}

static gboolean probe_btrfs(const uint8_t *b, size_t n, vma_probe *p)
{
    if (n < 0x10000 + 0x22b || memcmp(b + 0x10040, "_BHRfS_M", 8) != 0)
        return FALSE;
    const uint8_t *sb = b + 0x10000;
    set(p, "btrfs", "filesystem");
    uuid_bytes(sb + 0x20, p->uuid);
    label(p, sb + 0x12b, 256, FALSE);
    uint64_t total = g_le64(sb + 0x70), used = g_le64(sb + 0x78);
    if (total <= VMA_MAX_DEVICE_SIZE && used <= total) {
        p->size = total;
        p->free = total - used;
        p->has_free = TRUE;
    }
    return TRUE;
}

static gboolean probe_ntfs(const uint8_t *b, vma_probe *p)
{
    if (memcmp(b + 3, "NTFS    ", 8) != 0)
        return FALSE;
    set(p, "ntfs", "filesystem");
    snprintf(p->uuid, sizeof(p->uuid), "%016" G_GINT64_MODIFIER "X", g_le64(b + 72));
    uint64_t bps = g_le16(b + 11), sectors = g_le64(b + 40);
    if (pow2(bps) && bps >= 256 && bps <= 4096 && sectors <= VMA_MAX_DEVICE_SIZE / bps)
        p->size = sectors * bps;
    return TRUE;
}

static gboolean probe_exfat(const uint8_t *b, vma_probe *p)
{
    if (memcmp(b + 3, "EXFAT   ", 8) != 0)
        return FALSE;
    set(p, "exfat", "filesystem");
    uint32_t serial = g_le32(b + 100);
    snprintf(p->uuid, sizeof(p->uuid), "%04X-%04X", serial >> 16, serial & 0xffff);
    unsigned shift = b[108];
    uint64_t sectors = g_le64(b + 72);
    if (shift >= 9 && shift <= 12 && sectors <= VMA_MAX_DEVICE_SIZE >> shift)
        p->size = sectors << shift;
    return TRUE;
}

static gboolean probe_vfat(const uint8_t *b, vma_probe *p)
{
    if (b[510] != 0x55 || b[511] != 0xaa)
        return FALSE;
    uint32_t bps = g_le16(b + 11);
    uint8_t spc = b[13];
    uint16_t reserved = g_le16(b + 14);
    uint8_t fats = b[16];
    if (!pow2(bps) || bps < 512 || bps > 4096 || !pow2(spc) || reserved == 0 || fats == 0 ||
        fats > 4)
        return FALSE;
    gboolean fat32 = g_le16(b + 22) == 0;
    if (fat32 ? memcmp(b + 82, "FAT", 3) != 0 && memcmp(b + 82, "MSWIN", 5) != 0
              : memcmp(b + 54, "FAT", 3) != 0 && memcmp(b + 54, "MSDOS", 5) != 0 &&
                    b[21] < 0xf0)
        return FALSE;
    set(p, "vfat", "filesystem");
    const uint8_t *ext = b + (fat32 ? 64 : 36); /* the extended boot record */
    if (ext[2] == 0x29) {
        uint32_t serial = g_le32(ext + 3);
        snprintf(p->uuid, sizeof(p->uuid), "%04X-%04X", serial >> 16, serial & 0xffff);
        label(p, ext + 7, 11, TRUE);
        if (strcmp(p->label, "NO NAME") == 0)
            p->label[0] = 0;
    }
    uint64_t sectors = g_le16(b + 19) ? g_le16(b + 19) : g_le32(b + 32);
    p->size = sectors * bps;
    return TRUE;
}

static gboolean probe_luks(const uint8_t *b, vma_probe *p)
{
    if (memcmp(b, "LUKS\xba\xbe", 6) != 0 && memcmp(b, "SKUL\xba\xbe", 6) != 0)
        return FALSE;
    set(p, "luks", "crypto");
    char u[41];
    memcpy(u, b + 168, 40);
    u[40] = 0;
    char *valid = g_utf8_make_valid(u, -1);
    g_strlcpy(p->uuid, valid, sizeof(p->uuid));
    g_free(valid);
    if (vma_get_be16(b + 6) == 2)
        label(p, b + 24, 48, FALSE);
    return TRUE;
}

static gboolean probe_swap(const uint8_t *b, vma_probe *p)
{
    static const unsigned pages[] = {4096, 8192, 16384, 65536};
    for (unsigned i = 0; i < G_N_ELEMENTS(pages); i++) {
        const uint8_t *m = b + pages[i] - 10;
        if (memcmp(m, "SWAPSPACE2", 10) == 0 || memcmp(m, "SWAP-SPACE", 10) == 0) {
            set(p, "swap", "swap");
            if (memcmp(m, "SWAPSPACE2", 10) == 0) {
                uuid_bytes(b + 1036, p->uuid);
                label(p, b + 1052, 16, FALSE);
            }
            return TRUE;
        }
    }
    return FALSE;
}

static gboolean probe_lvm(const uint8_t *b, vma_probe *p)
{
    for (unsigned s = 0; s < 4; s++) {
        const uint8_t *l = b + s * 512;
        if (memcmp(l, "LABELONE", 8) == 0 && memcmp(l + 24, "LVM2 001", 8) == 0) {
            set(p, "lvm2", "lvm");
            uint32_t off = g_le32(l + 20);
            if (off >= 32 && off <= 512 - 32) {
                const uint8_t *u = l + off;
                static const int groups[] = {6, 4, 4, 4, 4, 4, 6};
                char *o = p->uuid;
                int k = 0;
                for (unsigned g = 0; g < G_N_ELEMENTS(groups); g++) {
                    if (g)
                        *o++ = '-';
                    for (int j = 0; j < groups[g]; j++) {
                        char c = (char)u[k++];
                        *o++ = g_ascii_isalnum(c) ? c : '?';
                    }
                }
                *o = 0;
            }
            return TRUE;
        }
    }
    return FALSE;
}

static gboolean probe_md(const uint8_t *b, size_t n, vma_probe *p)
{
    static const unsigned offs[] = {0, 4096};
    for (unsigned i = 0; i < G_N_ELEMENTS(offs); i++)
        if (n >= offs[i] + 256 && g_le32(b + offs[i]) == 0xa92b4efc && g_le32(b + offs[i] + 4) == 1) {
            set(p, "md", "raid");
            uuid_bytes(b + offs[i] + 16, p->uuid);
            label(p, b + offs[i] + 32, 32, FALSE);
            return TRUE;
        }
    return FALSE;
}

static gboolean probe_iso(const uint8_t *b, size_t n, vma_probe *p)
{
    const uint8_t *d = b + 32768;
    if (n < 32768 + 2048 || memcmp(d + 1, "CD001", 5) != 0)
        return FALSE;
    set(p, "iso9660", "filesystem");
    label(p, d + 40, 32, TRUE);
    p->size = (uint64_t)g_le32(d + 80) * g_le16(d + 128);
    return TRUE;
}

static gboolean probe_hfs(const uint8_t *b, vma_probe *p)
{
    const uint8_t *h = b + 1024;
    if (!(h[0] == 'H' && (h[1] == '+' || h[1] == 'X') && vma_get_be16(h + 2) >= 4))
        return FALSE;
    set(p, "hfsplus", "filesystem");
    uint64_t bs = be32(h + 40), blocks = be32(h + 44), free = be32(h + 48);
    if (pow2(bs) && free <= blocks) {
        p->size = blocks * bs;
        p->free = free * bs;
        p->has_free = TRUE;
    }
    return TRUE;
}

static gboolean probe_ufs(const uint8_t *b, size_t n, vma_probe *p)
{
    static const unsigned offs[] = {8192, 65536};
    for (unsigned i = 0; i < G_N_ELEMENTS(offs); i++) {
        size_t m = offs[i] + 1372;
        if (n >= m + 4) {
            uint32_t magic = g_le32(b + m);
            if (magic == 0x011954 || magic == 0x19540119 || be32(b + m) == 0x011954 ||
                be32(b + m) == 0x19540119) {
                set(p, "ufs", "filesystem");
                return TRUE;
            }
        }
    }
    return FALSE;
}

/* md 0.90 (64 KiB from the end, aligned) and 1.0 (8 KiB from the end) */
static int probe_md_end(vma_volume *v, vma_probe *p, GError **err)
{
    uint64_t size = vma_volume_size(v);
    if (size < 128 * 1024)
        return 0;
    uint8_t b[256];
    uint64_t o90 = (size & ~(uint64_t)65535) - 65536;
    if (vma_volume_read_exact(v, b, sizeof(b), o90, "the md superblock", err) < 0)
        return -1;
    if (g_le32(b) == 0xa92b4efc && g_le32(b + 4) == 0) {
        set(p, "md", "raid");
        return 1;
    }
    uint64_t o10 = ((size - 8192) & ~(uint64_t)4095);
    if (vma_volume_read_exact(v, b, sizeof(b), o10, "the md superblock", err) < 0)
        return -1;
    if (g_le32(b) == 0xa92b4efc && g_le32(b + 4) == 1) {
        set(p, "md", "raid");
        uuid_bytes(b + 16, p->uuid);
        label(p, b + 32, 32, FALSE);
        return 1;
    }
    return 0;
}

int vma_volume_probe(vma_volume *v, vma_probe *p, GError **err)
{
    memset(p, 0, sizeof(*p));
    size_t n = (size_t)MIN((uint64_t)HEAD, vma_volume_size(v));
    uint8_t *b = g_malloc0(HEAD);
    if (n && vma_volume_read_exact(v, b, n, 0, "the start of the volume", err) < 0) {
        g_free(b);
        return -1;
    }
    /* the order of blkid: containers and RAID first, then the file
     * systems whose signature is at a fixed place, the boot-sector ones last */
    gboolean found = probe_luks(b, p) || probe_lvm(b, p) || probe_md(b, n, p);
    if (!found) {
        int r = probe_md_end(v, p, err);
        if (r < 0) {
            g_free(b);
            return -1;
        }
        found = r == 1;
    }
    if (!found)
        found = probe_xfs(b, p) || probe_btrfs(b, n, p) || probe_ext(b, p) ||
                probe_swap(b, p) || probe_ntfs(b, p) || probe_exfat(b, p) ||
                probe_hfs(b, p) || probe_iso(b, n, p) || probe_ufs(b, n, p);
    if (!found && memcmp(b + 3, "-FVE-FS-", 8) == 0) {
        set(p, "bitlocker", "crypto");
        found = TRUE;
    }
    if (!found)
        probe_vfat(b, p);
    g_free(b);
    return 0;
}
