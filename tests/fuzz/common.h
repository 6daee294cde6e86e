/* common.h - what the libFuzzer harnesses of tests/fuzz/ share (common.c):
 * inputs as in-memory files, the rule on errors, an archive with its
 * checksums repaired, a seekable .vma.zst made of plain bytes, and a folder
 * of the process's own.  Every harness is also built without libFuzzer into
 * build/fuzz_replay (tests/fuzz/replay.c), which `make check` runs over the
 * seeds and the regressions. */
#ifndef VMA_FUZZ_COMMON_H
#define VMA_FUZZ_COMMON_H

#include "vma.h"

#include <stddef.h>
#include <stdint.h>

/* an in-memory file (memfd) holding the bytes, at offset 0; aborts when the
 * system refuses one (a harness failure, not the library's) */
int fuzz_memfd(const uint8_t *data, size_t size);
/* "/proc/self/fd/N": a path that opens the memfd (for the APIs that take a
 * path); free with g_free */
char *fuzz_fd_path(int fd);
/* an error must carry our domain and a message; frees it */
void fuzz_check_error(GError *e);
/* a copy of data with the header and extent MD5s recomputed; NULL if
 * nothing changed or it does not look like an uncompressed archive */
uint8_t *fuzz_fix_checksums(const uint8_t *data, size_t size);

/* a seekable .vma.zst of plain (malloc'd, *len bytes): frames of frame
 * bytes compressed at level 1 with zstd's content checksum, then the seek
 * table.  lie (0: none) changes the table or one frame, at frame `which`:
 *   1  its decoded size one smaller, the next frame's one larger
 *   2  its decoded size by delta (signed)
 *   3  a skippable frame of pad bytes appended inside its entry
 *   4  that frame written without a content checksum
 *   5  its compressed size one larger, the next frame's one smaller */
enum { LIE_NONE = 0, LIE_SHIFT, LIE_DSIZE, LIE_PAD, LIE_NOCHECK, LIE_CSHIFT, LIE_COUNT };
uint8_t *fuzz_make_seekable(const uint8_t *plain, size_t n, size_t frame, int lie, unsigned which,
                            int delta, unsigned pad, size_t *len);

/* a folder of this process, made at the first call, removed at exit */
const char *fuzz_tmpdir(void);

/* a small pseudo-random stream from the input, for offsets and lengths */
typedef struct {
    uint64_t x;
} fuzz_rng;
void fuzz_rng_init(fuzz_rng *r, const uint8_t *data, size_t size);
uint64_t fuzz_rng_next(fuzz_rng *r);

#endif
