/* error.c - the error domain of libvma and errors made from errno. */
#define _GNU_SOURCE
#include "base/base.h"

#include <errno.h>
#include <stdarg.h>

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
