/* fs_xfs.c - XFS, read here (stub) */
#define _GNU_SOURCE
#include "guest/guest.h"

static int x_open(vma_fs *fs, GError **err)
{
    (void)fs;
    g_set_error_literal(err, VMA_ERROR, VMA_ERR_FORMAT, "XFS: not yet");
    return -1;
}
const vma_fs_ops vma_fs_xfs_ops = {.name = "xfs", .open = x_open};
