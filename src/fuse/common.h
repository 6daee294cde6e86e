/* common.h - what the two FUSE programs share (common.c): vma-fuse (the
 * disks of an archive) and vma-fuse-files (the guest's files): messages,
 * the command line (read by libfuse's fuse_opt_parse), the mount folder,
 * the archive opened and checked against --expect, the mount options, and
 * serving until unmounted. */
#ifndef VMA_FUSE_COMMON_H
#define VMA_FUSE_COMMON_H

#define FUSE_USE_VERSION 31
#include <fuse.h>

#include "vma.h"

#include <sys/statvfs.h>

/* the program's name in messages (--label changes it), and whether it
 * serves in the background (messages then go to syslog) */
extern const char *vf_label;
extern gboolean vf_background;
void vf_say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* a --mount PATH TYPE SEGMENTS of vma-fuse-files */
typedef struct {
    char *path, *type, *segs;
} vf_mount_arg;

/* the command line: -f -d -s -o LIST --label NAME --expect MD5 --no-cache
 * -h, then ARCHIVE DIR; with mounts_wanted also --mount PATH TYPE SEGMENTS
 * (at least one) */
typedef struct {
    int foreground, debug, single, no_cache, help;
    char *label, *expect;
    GPtrArray *mount_opts;  /* each option of -o */
    GArray *margs;          /* vf_mount_arg */
    const char *path, *dir; /* ARCHIVE DIR */
    /* while parsing */
    gboolean mounts_wanted;
    const char *pos[2];
    int npos, bad, mount_words;
} vf_options;

/* fill o from the command line; 0 with o filled, or (*done TRUE) the exit
 * status: 0 after -h, 2 after a usage error, usage printed */
int vf_parse(int argc, char **argv, vf_options *o, gboolean mounts_wanted, const char *usage,
             gboolean *done);
void vf_options_free(vf_options *o);

/* the archive, opened (its header), and its header's MD5 compared with
 * --expect; NULL with err */
vma_archive *vf_open_archive(const vf_options *o, GError **err);
/* SEEK_DATA or SEEK_HOLE from off in a file of size bytes whose pieces
 * map walks (from an offset, for a length): the offset, or a negative
 * errno (-EIO with err set when map failed).  Missing clusters count as
 * data (reading them fails). */
typedef int (*vf_map_fn)(void *ctx, uint64_t off, uint64_t len, vma_piece_fn fn, void *ud,
                         GError **err);
off_t vf_seek(int whence, off_t off, uint64_t size, vf_map_fn map, void *ctx, GError **err);

/* fs_init's settings of both: requests and read-ahead of up to 1 MiB,
 * pages and attributes kept as long as possible (nothing ever changes) */
void vf_init_config(struct fuse_conn_info *conn, struct fuse_config *cfg);

/* a read-only file system's statfs: blocks of bsize bytes, files */
void vf_statfs(struct statvfs *sv, unsigned bsize, uint64_t blocks, uint64_t files);

/* what a program serves, for vf_main */
typedef struct {
    const char *name;              /* in messages and syslog */
    const char *usage;
    gboolean mounts_wanted;        /* --mount PATH TYPE SEGMENTS */
    const char *subtype;           /* of the mount */
    gboolean always_check;         /* default_permissions without allow_other */
    const struct fuse_operations *ops;
    /* DIR checked: open what is served (the archive ...); 0, -1 with err */
    int (*prepare)(const vf_options *o, GError **err);
    void (*cleanup)(void);
} vf_program;

/* the whole program: the command line, DIR checked, prepare, mount, go to
 * the background once the mount is ready (messages to syslog from then
 * on), serve until unmounted or signalled; the exit status */
int vf_main(int argc, char **argv, const vf_program *p);

#endif
