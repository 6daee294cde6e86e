/* vrbd_sink.c - a vma_sink_ops over librbd: the restore engine's writes go
 * out as asynchronous writes, many in flight at once.
 *
 * The engine reuses its buffers once pwritev returns, so the data is copied;
 * adjacent writes are gathered into one buffer up to an object boundary (one
 * aio write per object and run).  At most max_bytes of copies and max_ops
 * operations are in flight; a call that would pass the bound waits, in steps
 * of 100 ms, for completions, and meanwhile checks
 *   - the first failed aio operation: every later call fails with it;
 *   - Ctrl-C (the host's interrupt flag);
 *   - an operation in flight longer than `stall` seconds: Ceph blocks writes
 *     to a full pool instead of failing them, so the monitor is asked
 *     (osd dump) whether the pool is full, and the sink fails saying so;
 *   - a watchdog: an operation in flight for T + 5 s (T the client timeout)
 *     fails as if librbd had said -ETIMEDOUT (it may take up to 2 T: it first
 *     re-acquires its lock with operations of its own that time out).
 * Zero runs become rbd_aio_write_zeroes (a discard would skip partial 64 KiB
 * units), adjacent ones merged. */
#define _GNU_SOURCE
#include "rbd.h"

#include <errno.h>
#include <string.h>

#define ZERO_MAX ((uint64_t)64 << 20)  /* one write_zeroes call at most */
#define ZERO_WEIGHT ((size_t)1 << 20)  /* what a zero call counts in the byte budget */

enum { OP_WRITE, OP_ZERO, OP_FLUSH };

typedef struct vrbd_op {
    struct vrbd_op *prev, *next;
    vrbd_sink *s;
    char *buf;
    size_t weight;        /* counted in s->bytes */
    uint64_t off, len;
    double t;             /* submitted */
    int kind;
} vrbd_op;

struct vrbd_sink {
    vrbd_cluster *admin;  /* the shared connection: fences c when it must */
    vrbd_cluster *c;      /* the sink's own connection */
    rados_ioctx_t io;
    rbd_image_t img;
    char *pool, *label;
    uint64_t size, obj;
    const vma_ext_hooks *hooks;
    vrbd_sink_opts o;
    vma_mutex lock;
    vma_cond cond;
    vrbd_op *head, *tail;  /* in flight, oldest first */
    size_t bytes;
    unsigned nops;
    int err;              /* the first failed aio operation */
    uint64_t err_off;
    int err_kind;
    char *failed;         /* the message every call fails with from then on */
    int failed_code;
    double last_check;
    /* gathered data, not sent yet */
    char *pend;
    size_t pend_len, pend_cap;
    uint64_t pend_off;
    /* a zero run not sent yet */
    uint64_t z_off, z_len;
};

static void set_failed(vrbd_sink *s, int code, char *msg)
{
    if (!s->failed) {
        s->failed = msg;
        s->failed_code = code;
    } else {
        g_free(msg);
    }
}

static int report(vrbd_sink *s, GError **err)
{
    g_set_error_literal(err, vrbd_domain(s->hooks), s->failed_code, s->failed);
    return -1;
}

/* (locked) an operation leaves the list in flight, with its weight */
static void unlink_op(vrbd_sink *s, vrbd_op *o, size_t weight)
{
    if (o->prev)
        o->prev->next = o->next;
    else
        s->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        s->tail = o->prev;
    s->bytes -= weight;
    s->nops--;
}

static void op_done(rbd_completion_t c, void *arg)
{
    vrbd_op *o = arg;
    vrbd_sink *s = o->s;
    ssize_t r = vrbd_aio_result(c);
    vma_mutex_lock(&s->lock);
    unlink_op(s, o, o->weight);
    if (r < 0 && !s->err) {
        s->err = (int)r;
        s->err_off = o->off;
        s->err_kind = o->kind;
    }
    vma_cond_broadcast(&s->cond);
    vma_mutex_unlock(&s->lock);
    g_free(o->buf);
    g_free(o);
}

/* the first failure of an aio operation as the sink's message (lock held) */
static void take_aio_error(vrbd_sink *s)
{
    if (!s->err || s->failed)
        return;
    char *what = s->err_kind == OP_FLUSH
                     ? g_strdup("flushing")
                     : g_strdup_printf("%s at offset %" G_GUINT64_FORMAT,
                                       s->err_kind == OP_ZERO ? "writing zeros" : "writing",
                                       s->err_off);
    vma_mutex_unlock(&s->lock);
    char *msg = vrbd_describe(s->c, s->pool, s->err, what);
    vma_mutex_lock(&s->lock);
    g_free(what);
    set_failed(s, VMA_ERR_IO, msg);
}

/* wait (lock held) until at most `until` operations are in flight and
 * `need` more bytes fit; 0, or -1 with the sink failed */
static int wait_room(vrbd_sink *s, unsigned until, size_t need)
{
    for (;;) {
        take_aio_error(s);
        if (s->failed)
            return -1;
        if (s->nops <= until && (s->nops == 0 || s->bytes + need <= s->o.max_bytes))
            return 0;
        if (vrbd_interrupted(s->hooks)) {
            set_failed(s, VMA_ERR_INTERRUPTED, g_strdup("interrupted"));
            return -1;
        }
        vma_cond_wait_ms(&s->cond, &s->lock, 100);
        if (!s->head)
            continue;
        double now = vrbd_now(), age = now - s->head->t;
        if (age >= s->o.stall && now - s->last_check >= s->o.stall) {
            /* writes that block: a full pool (or OSDs that do not answer) */
            s->last_check = now;
            vma_mutex_unlock(&s->lock);
            int full = vrbd_pool_full(s->c, s->pool);
            vma_mutex_lock(&s->lock);
            if (full == 1) {
                set_failed(s, VMA_ERR_IO,
                           g_strdup_printf("pool %s is full: Ceph blocks writes to it (a write has "
                                           "waited %.0f s); free space in the cluster (ceph df, "
                                           "ceph osd df) and restore again",
                                           s->pool, age));
                return -1;
            }
        }
        if (s->c->timeout > 0 && age > s->c->timeout + 5 && !s->err) {
            s->err = -ETIMEDOUT;
            s->err_off = s->head->off;
            s->err_kind = s->head->kind;
        }
    }
}

/* submit one operation; buf (g_malloc'd, or NULL) is owned by it from then on */
static int submit(vrbd_sink *s, int kind, uint64_t off, uint64_t len, char *buf)
{
    size_t weight = kind == OP_WRITE ? (size_t)len : kind == OP_ZERO ? ZERO_WEIGHT : 0;
    vma_mutex_lock(&s->lock);
    if (wait_room(s, s->o.max_ops - 1, weight) < 0) {
        vma_mutex_unlock(&s->lock);
        g_free(buf);
        return -1;
    }
    vrbd_op *o = g_new(vrbd_op, 1);
    *o = (vrbd_op){.s = s, .buf = buf, .weight = weight, .off = off, .len = len, .kind = kind,
                   .t = vrbd_now()};
    o->prev = s->tail;
    if (s->tail)
        s->tail->next = o;
    else
        s->head = o;
    s->tail = o;
    s->bytes += weight;
    s->nops++;
    vma_mutex_unlock(&s->lock);

    rbd_completion_t c;
    int r = rbd_aio_create_completion(o, op_done, &c);
    if (r == 0) {
        if (kind == OP_WRITE)
            r = rbd_aio_write(s->img, off, (size_t)len, buf, c);
        else if (kind == OP_ZERO)
            r = rbd_aio_write_zeroes(s->img, off, (size_t)len, c, 0, 0);
        else
            r = rbd_aio_flush(s->img, c);
        if (r >= 0)
            return 0;
        rbd_aio_release(c);
    }
    /* not submitted: take it out again */
    vma_mutex_lock(&s->lock);
    unlink_op(s, o, weight);
    vma_mutex_unlock(&s->lock);
    char *what = g_strdup_printf("submitting a write at offset %" G_GUINT64_FORMAT, off);
    set_failed(s, VMA_ERR_IO, vrbd_describe(s->c, s->pool, r, what));
    g_free(what);
    g_free(o->buf);
    g_free(o);
    return -1;
}

static int send_pending(vrbd_sink *s)
{
    if (s->pend_len) {
        char *buf = s->pend;
        uint64_t off = s->pend_off, len = s->pend_len;
        s->pend = NULL;
        s->pend_len = s->pend_cap = 0;
        if (submit(s, OP_WRITE, off, len, buf) < 0)
            return -1;
    }
    if (s->z_len) {
        uint64_t off = s->z_off, len = s->z_len;
        s->z_len = 0;
        if (submit(s, OP_ZERO, off, len, NULL) < 0)
            return -1;
    }
    return 0;
}

/* the end of the object that holds off */
static uint64_t object_end(const vrbd_sink *s, uint64_t off)
{
    return (off / s->obj + 1) * s->obj;
}

static gboolean failed_now(vrbd_sink *s)
{
    vma_mutex_lock(&s->lock);
    take_aio_error(s);
    gboolean f = s->failed != NULL;
    vma_mutex_unlock(&s->lock);
    return f;
}

static int sink_pwritev(void *ctx, struct iovec *iov, int n, uint64_t off, GError **err)
{
    vrbd_sink *s = ctx;
    if (failed_now(s))
        return report(s, err);
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    if (s->z_len && send_pending(s) < 0)
        return report(s, err);
    /* not adjacent to what is gathered: send that first */
    if (s->pend_len && s->pend_off + s->pend_len != off && send_pending(s) < 0)
        return report(s, err);
    for (int i = 0; i < n; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left) {
            if (!s->pend_len)
                s->pend_off = off;
            /* up to the end of the object, so that one aio write hits one object */
            uint64_t room = object_end(s, s->pend_off + s->pend_len) - (s->pend_off + s->pend_len);
            size_t take = (size_t)MIN((uint64_t)left, room);
            if (s->pend_len + take > s->pend_cap) {
                s->pend_cap = (size_t)s->obj;
                s->pend = g_realloc(s->pend, s->pend_cap);
            }
            memcpy(s->pend + s->pend_len, p, take);
            s->pend_len += take;
            p += take;
            left -= take;
            off += take;
            if ((s->pend_off + s->pend_len) % s->obj == 0 && send_pending(s) < 0)
                return report(s, err);
        }
    }
    return 0;
}

static int sink_zero(void *ctx, uint64_t off, uint64_t len, GError **err)
{
    vrbd_sink *s = ctx;
    if (failed_now(s))
        return report(s, err);
    if (s->pend_len && send_pending(s) < 0)
        return report(s, err);
    if (s->z_len && (s->z_off + s->z_len != off || s->z_len + len > ZERO_MAX) &&
        send_pending(s) < 0)
        return report(s, err);
    if (!s->z_len)
        s->z_off = off;
    s->z_len += len;
    return 0;
}

static int sink_flush(void *ctx, GError **err)
{
    vrbd_sink *s = ctx;
    if (failed_now(s) || send_pending(s) < 0)
        return report(s, err);
    vma_mutex_lock(&s->lock);
    int rc = wait_room(s, 0, 0);
    vma_mutex_unlock(&s->lock);
    if (rc < 0 || submit(s, OP_FLUSH, 0, 0, NULL) < 0)
        return report(s, err);
    vma_mutex_lock(&s->lock);
    rc = wait_room(s, 0, 0);
    vma_mutex_unlock(&s->lock);
    return rc < 0 ? report(s, err) : 0;
}

const char *vrbd_sink_label(const vrbd_sink *s)
{
    return s->label;
}

const vma_sink_ops vrbd_sink_ops = {sink_pwritev, sink_zero, sink_flush};

vrbd_sink *vrbd_sink_new(vrbd_cluster *admin, vrbd_cluster *c, rados_ioctx_t io, rbd_image_t img,
                         const char *pool, const char *label, uint64_t size,
                         const vrbd_sink_opts *o, const vma_ext_hooks *hooks)
{
    vrbd_sink *s = g_new0(vrbd_sink, 1);
    g_atomic_int_inc(&admin->refs);
    s->admin = admin;
    s->c = c;
    s->io = io;
    s->img = img;
    s->pool = g_strdup(pool);
    s->label = g_strdup(label);
    s->size = size;
    s->hooks = hooks;
    s->o = *o;
    if (s->o.max_ops < 1)
        s->o.max_ops = 1;
    if (s->o.stall <= 0)
        s->o.stall = 5;
    rbd_image_info_t info;
    s->obj = rbd_stat(img, &info, sizeof info) == 0 && info.obj_size ? info.obj_size : 4u << 20;
    vma_mutex_init(&s->lock);
    vma_cond_init(&s->cond);
    return s;
}

int vrbd_sink_close(vrbd_sink *s, GError **err)
{
    /* after a success everything was flushed; after a failure nothing
     * gathered is sent any more */
    g_free(s->pend);
    s->pend = NULL;
    s->pend_len = 0;
    s->z_len = 0;
    /* what is in flight completes (or fails: at most 2 T with a dead OSD);
     * after a failure (a dead OSD, a full pool, Ctrl-C) it is given 3 s */
    double bound = vrbd_close_bound(s->c, s->failed != NULL);
    unsigned left = vrbd_drain(&s->lock, &s->cond, &s->nops, bound);
    /* a dead OSD, or a full pool: what cannot be closed is fenced, so that
     * none of its writes lands later and its watch on the image goes (an
     * image it created can then be removed once the OSDs answer again) */
    if (left) {
        /* the callbacks still point at the sink and their buffers: leave it
         * all to the exit of the process */
        g_atomic_int_inc(&s->c->stuck);
        vrbd_fence(s->admin, s->c, 600);
        g_set_error(err, vrbd_domain(s->hooks), VMA_ERR_IO,
                    "%s: %u writes still unanswered after %.0f s; not waiting any longer",
                    s->label, left, bound);
        return -1;
    }
    /* after a failure the OSD may be gone: rbd_close would wait for it (3 T) */
    vrbd_cluster *c = s->c;
    g_atomic_int_inc(&c->refs); /* for vrbd_fence below */
    if (vrbd_close_image(c, s->io, s->img, s->failed ? 3 : bound) == 1)
        vrbd_fence(s->admin, c, 600);
    vrbd_cluster_unref(c);
    vrbd_cluster_unref(s->admin);
    vma_mutex_clear(&s->lock);
    vma_cond_clear(&s->cond);
    g_free(s->failed);
    g_free(s->pool);
    g_free(s->label);
    g_free(s);
    return 0;
}
