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
