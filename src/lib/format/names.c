/* names.c - what the format allows in config and device names, and the
 * zero test that decides which blocks an archive stores. */
#include "format/format.h"

#include <string.h>

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

/* name is "tpmstate" followed by digits: vzdump names that disk's device
 * "drive-tpmstateN-backup" */
static gboolean is_tpmstate_key(const char *name)
{
    if (strncmp(name, "tpmstate", 8) != 0 || !name[8])
        return FALSE;
    for (const char *p = name + 8; *p; p++)
        if (!g_ascii_isdigit(*p))
            return FALSE;
    return TRUE;
}

/* dev is what a user means by the short name: "scsi0" for "drive-scsi0",
 * "tpmstate0" for "drive-tpmstate0-backup" too */
static gboolean is_alias(const char *dev, const char *name)
{
    if (strncmp(name, "drive-", 6) == 0 || strncmp(dev, "drive-", 6) != 0)
        return FALSE;
    const char *rest = dev + 6;
    size_t n = strlen(name);
    if (strncmp(rest, name, n) != 0)
        return FALSE;
    return rest[n] == '\0' || (strcmp(rest + n, "-backup") == 0 && is_tpmstate_key(name));
}

static char *device_list(const vma_header *h, gboolean disks_only)
{
    GString *s = g_string_new(NULL);
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = h->devices[id];
        if (d && !(disks_only && d->is_vmstate))
            g_string_append_printf(s, "%s%s", s->len ? ", " : "", d->name);
    }
    if (!s->len)
        g_string_append(s, "none");
    return g_string_free(s, FALSE);
}

const vma_device *vma_header_find_device(const vma_header *h, const char *name,
                                         gboolean disks_only, GError **err)
{
    const char *what = disks_only ? "disk" : "device";
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = h->devices[id];
        if (d && !(disks_only && d->is_vmstate) && strcmp(d->name, name) == 0)
            return d;
    }
    const vma_device *found = NULL;
    GString *cands = NULL;
    for (unsigned id = 1; id <= VMA_MAX_DEV_ID; id++) {
        const vma_device *d = h->devices[id];
        if (!d || (disks_only && d->is_vmstate) || !is_alias(d->name, name))
            continue;
        if (found) {
            if (!cands)
                cands = g_string_new(found->name);
            g_string_append_printf(cands, " or %s", d->name);
        }
        found = d;
    }
    if (cands) {
        g_set_error(err, VMA_ERROR, VMA_ERR_ARG,
                    "'%s' is ambiguous: the archive has %s (give the full name)", name,
                    cands->str);
        g_string_free(cands, TRUE);
        return NULL;
    }
    if (found)
        return found;
    char *list = device_list(h, disks_only);
    g_set_error(err, VMA_ERROR, VMA_ERR_ARG, "no %s named '%s' in the archive (the %ss: %s)",
                what, name, what, list);
    g_free(list);
    return NULL;
}
