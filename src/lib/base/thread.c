/* thread.c - threads, mutexes, conditions and the queue of libvma (see
 * thread.h): plain pthread calls, which ThreadSanitizer follows. */
#define _GNU_SOURCE
#include "base/thread.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

void vma_mutex_init(vma_mutex *m) { pthread_mutex_init(&m->m, NULL); }
void vma_mutex_clear(vma_mutex *m) { pthread_mutex_destroy(&m->m); }

void vma_cond_init(vma_cond *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&c->c, &a);
    pthread_condattr_destroy(&a);
}

void vma_cond_clear(vma_cond *c) { pthread_cond_destroy(&c->c); }

gboolean vma_cond_wait_until(vma_cond *c, vma_mutex *m, gint64 end_us)
{
    struct timespec ts = {(time_t)(end_us / G_USEC_PER_SEC), (long)(end_us % G_USEC_PER_SEC) * 1000};
    return pthread_cond_timedwait(&c->c, &m->m, &ts) != ETIMEDOUT;
}

gboolean vma_cond_wait_ms(vma_cond *c, vma_mutex *m, unsigned ms)
{
    return vma_cond_wait_until(c, m, g_get_monotonic_time() + (gint64)ms * 1000);
}

/* ---- threads ---- */

struct vma_thread {
    pthread_t th;
};

vma_thread *vma_thread_new(const char *name, void *(*fn)(void *), void *data, GError **err)
{
    vma_thread *t = g_new(vma_thread, 1);
    /* the new thread inherits the mask: every signal blocked but those a
     * fault raises in the thread itself (a sanitizer's report, a core) */
    sigset_t all, old;
    sigfillset(&all);
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
    for (unsigned i = 0; i < G_N_ELEMENTS(faults); i++)
        sigdelset(&all, faults[i]);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t->th, NULL, fn, data);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        g_set_error(err, G_THREAD_ERROR, G_THREAD_ERROR_AGAIN, "cannot start a thread (%s): %s",
                    name, g_strerror(rc));
        g_free(t);
        return NULL;
    }
    char n[16];
    g_strlcpy(n, name, sizeof(n));
    pthread_setname_np(t->th, n);
    return t;
}

void *vma_thread_join(vma_thread *t)
{
    void *ret = NULL;
    pthread_join(t->th, &ret);
    g_free(t);
    return ret;
}

void vma_thread_detach(vma_thread *t)
{
    pthread_detach(t->th);
    g_free(t);
}

/* ---- the queue ---- */

struct vma_queue {
    vma_mutex lock;
    vma_cond more;        /* an item came, or the queue was closed */
    GQueue items;
    gboolean closed;
    gint refs;
};

vma_queue *vma_queue_new(void)
{
    vma_queue *q = g_new0(vma_queue, 1);
    vma_mutex_init(&q->lock);
    vma_cond_init(&q->more);
    g_queue_init(&q->items);
    q->refs = 1;
    return q;
}

vma_queue *vma_queue_ref(vma_queue *q)
{
    g_atomic_int_inc(&q->refs);
    return q;
}

void vma_queue_unref(vma_queue *q)
{
    if (!q || !g_atomic_int_dec_and_test(&q->refs))
        return;
    g_queue_clear(&q->items);
    vma_cond_clear(&q->more);
    vma_mutex_clear(&q->lock);
    g_free(q);
}

void vma_queue_push(vma_queue *q, void *item)
{
    vma_mutex_lock(&q->lock);
    g_queue_push_tail(&q->items, item);
    vma_cond_signal(&q->more);
    vma_mutex_unlock(&q->lock);
}

void *vma_queue_pop_timeout(vma_queue *q, unsigned ms, gboolean *closed)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    vma_mutex_lock(&q->lock);
    while (g_queue_is_empty(&q->items) && !q->closed && vma_cond_wait_until(&q->more, &q->lock, end))
        ;
    void *item = g_queue_pop_head(&q->items);
    if (closed)
        *closed = !item && q->closed;
    vma_mutex_unlock(&q->lock);
    return item;
}

void *vma_queue_pop(vma_queue *q)
{
    vma_mutex_lock(&q->lock);
    while (g_queue_is_empty(&q->items) && !q->closed)
        vma_cond_wait(&q->more, &q->lock);
    void *item = g_queue_pop_head(&q->items);
    vma_mutex_unlock(&q->lock);
    return item;
}

void *vma_queue_try_pop(vma_queue *q)
{
    vma_mutex_lock(&q->lock);
    void *item = g_queue_pop_head(&q->items);
    vma_mutex_unlock(&q->lock);
    return item;
}

void vma_queue_close(vma_queue *q)
{
    vma_mutex_lock(&q->lock);
    q->closed = TRUE;
    vma_cond_broadcast(&q->more);
    vma_mutex_unlock(&q->lock);
}

unsigned vma_queue_length(vma_queue *q)
{
    vma_mutex_lock(&q->lock);
    unsigned n = g_queue_get_length(&q->items);
    vma_mutex_unlock(&q->lock);
    return n;
}
