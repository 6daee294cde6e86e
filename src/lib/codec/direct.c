/* direct.c - a file written once, front to back, around the page cache:
 * the bytes are gathered in aligned buffers of STAGE_BYTES and written with
 * O_DIRECT by a thread of their own, so that the thread that produces them
 * (the background decoder of a one-stream archive, access/decoder.c) never
 * waits for the kernel's copy into the page cache nor for the disk, and a
 * copy of hundreds of GiB does not push everything else out of memory.
 *
 * The file's end is written padded to the next block and the padding is
 * written over as the file grows (a flush hands over a partial buffer; the
 * next one starts at the block that holds its last bytes); vma_dsink_finish
 * truncates the file to its length.  What the thread has written is told
 * through done(ud, end) in order: bytes before end are in the file, and a
 * reader may pread them (Linux drops the cached pages of what a direct write
 * covers).  Where O_DIRECT is refused (a file system without it, a write the
 * kernel will not take), vma_dsink_new returns NULL or the thread goes on
 * with plain writes: the bytes are the same. */
#define _GNU_SOURCE
#include "codec/codec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STAGE_BYTES ((size_t)4 << 20)
#define STAGE_ALIGN ((size_t)4096)
#define N_STAGES 4

typedef struct {
    uint8_t *buf;  /* STAGE_BYTES, aligned */
    size_t len;    /* bytes of the file in it */
    uint64_t off;  /* where buf[0] goes (aligned) */
} stage;

struct vma_dsink {
    int fd;               /* the caller's (truncated at the end) */
    int dfd;              /* the same file opened with O_DIRECT */
    uint64_t pos;         /* bytes handed in so far: the file's length */
    stage stages[N_STAGES];
    stage *cur;           /* being filled */
    vma_queue *todo;      /* stage * for the thread, in order */
    vma_queue *free;      /* stage * written */
    vma_thread *thread;
    gint failed;          /* the thread's write failed (errnum says why) */
    int errnum;
    uint64_t err_off;
    gboolean plain;       /* the thread's: O_DIRECT refused, plain pwrite */
    vma_dsink_done_fn done;
    void *ud;
};

/* write stage st, n bytes (its length rounded up to a block) */
static int write_stage(vma_dsink *s, stage *st, size_t n)
{
    size_t at = 0;
    while (at < n) {
        ssize_t w = pwrite(s->plain ? s->fd : s->dfd, st->buf + at, n - at, (off_t)(st->off + at));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EINVAL && !s->plain) {
            s->plain = TRUE; /* O_DIRECT opened but not taken here */
            continue;
        }
        if (w <= 0) {
            s->errnum = w < 0 ? errno : ENOSPC;
            s->err_off = st->off + at;
            g_atomic_int_set(&s->failed, 1);
            return -1;
        }
        at += (size_t)w;
    }
    return 0;
}

static void *sink_main(void *data)
{
    vma_dsink *s = data;
    stage *st;
    while ((st = vma_queue_pop(s->todo))) {
        if (!g_atomic_int_get(&s->failed)) {
            size_t n = (st->len + STAGE_ALIGN - 1) & ~(STAGE_ALIGN - 1);
            memset(st->buf + st->len, 0, n - st->len);
            if (write_stage(s, st, n) == 0 && s->done)
                s->done(s->ud, st->off + st->len);
        }
        vma_queue_push(s->free, st);
    }
    return NULL;
}

vma_dsink *vma_dsink_new(int fd, vma_dsink_done_fn done, void *ud)
{
    off_t pos = lseek(fd, 0, SEEK_CUR);
    if (pos < 0 || (uint64_t)pos % STAGE_ALIGN)
        return NULL;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int dfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (dfd < 0)
        return NULL;
    vma_dsink *s = g_new0(vma_dsink, 1);
    s->fd = fd;
    s->dfd = dfd;
    s->pos = (uint64_t)pos;
    s->done = done;
    s->ud = ud;
    s->todo = vma_queue_new();
    s->free = vma_queue_new();
    for (int i = 0; i < N_STAGES; i++) {
        void *p = NULL;
        if (posix_memalign(&p, STAGE_ALIGN, STAGE_BYTES) != 0) {
            vma_dsink_free(s);
            return NULL;
        }
        s->stages[i].buf = p;
        if (i > 0)
            vma_queue_push(s->free, &s->stages[i]);
    }
    s->cur = &s->stages[0];
    s->cur->off = s->pos;
    if (!(s->thread = vma_thread_new("vma-write", sink_main, s, NULL))) {
        vma_dsink_free(s);
        return NULL;
    }
    return s;
}

static int check(vma_dsink *s, GError **err)
{
    if (!g_atomic_int_get(&s->failed))
        return 0;
    vma_set_errno(err, s->errnum, "write failed at offset %" G_GUINT64_FORMAT, s->err_off);
    return -1;
}

/* hand the buffer being filled to the thread; keep_tail: a flush, the
 * next buffer starts with the last bytes' block again */
static void hand_over(vma_dsink *s, gboolean keep_tail)
{
    stage *cur = s->cur, *next = vma_queue_pop(s->free);
    size_t keep = keep_tail ? cur->len % STAGE_ALIGN : 0;
    next->off = cur->off + (cur->len - keep);
    next->len = keep;
    memcpy(next->buf, cur->buf + cur->len - keep, keep);
    vma_queue_push(s->todo, cur);
    s->cur = next;
}

int vma_dsink_writev(vma_dsink *s, const struct iovec *iov, int n, GError **err)
{
    if (check(s, err) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            stage *cur = s->cur;
            size_t k = MIN(left, STAGE_BYTES - cur->len);
            memcpy(cur->buf + cur->len, p, k);
            cur->len += k;
            s->pos += k;
            p += k;
            left -= k;
            if (cur->len == STAGE_BYTES)
                hand_over(s, FALSE);
        }
    }
    return 0;
}

int vma_dsink_flush(vma_dsink *s, GError **err)
{
    if (check(s, err) < 0)
        return -1;
    if (s->cur->len > 0)
        hand_over(s, TRUE);
    return 0;
}

uint64_t vma_dsink_offset(const vma_dsink *s) { return s->pos; }

gboolean vma_dsink_direct(const vma_dsink *s) { return !s->thread && !s->plain; }

/* the thread ended (every buffer written or dropped) */
static void stop(vma_dsink *s)
{
    if (!s->thread)
        return;
    vma_queue_close(s->todo);
    vma_thread_join(s->thread);
    s->thread = NULL;
}

int vma_dsink_finish(vma_dsink *s, GError **err)
{
    if (s->cur->len > 0)
        hand_over(s, FALSE);
    stop(s);
    if (check(s, err) < 0)
        return -1;
    if (ftruncate(s->fd, (off_t)s->pos) < 0) {
        vma_set_errno(err, errno, "cannot truncate the file to %" G_GUINT64_FORMAT " bytes", s->pos);
        return -1;
    }
    return 0;
}

void vma_dsink_free(vma_dsink *s)
{
    if (!s)
        return;
    stop(s);
    for (int i = 0; i < N_STAGES; i++)
        free(s->stages[i].buf);
    vma_queue_unref(s->todo);
    vma_queue_unref(s->free);
    if (s->dfd >= 0)
        close(s->dfd);
    g_free(s);
}
