/* thread.h - the threads of libvma and how they talk (thread.c): a thread
 * that takes no signal, a mutex and a condition on the monotonic clock, and
 * a queue of pointers that can be closed.  Every thread of the library (the
 * decoder of an input, the compression workers, the lzo helper, the spill
 * writer, the reader of a source, the background decoder of a copy) and the
 * vma.rbd module use these and nothing else, so that the hand-offs are the
 * same everywhere and visible to ThreadSanitizer (plain pthread calls, not
 * GLib's futexes, which it cannot see).  Needs nothing else of libvma:
 * vma.rbd compiles thread.c in. */
#ifndef VMA_THREAD_H
#define VMA_THREAD_H

#include <glib.h>
#include <pthread.h>

/* ---- mutex and condition ---- */
typedef struct {
    pthread_mutex_t m;
} vma_mutex;
typedef struct {
    pthread_cond_t c;
} vma_cond;

void vma_mutex_init(vma_mutex *m);
void vma_mutex_clear(vma_mutex *m);
static inline void vma_mutex_lock(vma_mutex *m) { pthread_mutex_lock(&m->m); }
static inline void vma_mutex_unlock(vma_mutex *m) { pthread_mutex_unlock(&m->m); }

/* a condition whose timed waits use the monotonic clock (the clock of
 * g_get_monotonic_time) */
void vma_cond_init(vma_cond *c);
void vma_cond_clear(vma_cond *c);
static inline void vma_cond_signal(vma_cond *c) { pthread_cond_signal(&c->c); }
static inline void vma_cond_broadcast(vma_cond *c) { pthread_cond_broadcast(&c->c); }
static inline void vma_cond_wait(vma_cond *c, vma_mutex *m) { pthread_cond_wait(&c->c, &m->m); }
/* wait until end_us (g_get_monotonic_time's microseconds): FALSE once it
 * has passed */
gboolean vma_cond_wait_until(vma_cond *c, vma_mutex *m, gint64 end_us);
/* wait at most ms milliseconds: FALSE when they passed */
gboolean vma_cond_wait_ms(vma_cond *c, vma_mutex *m, unsigned ms);

/* ---- threads ---- */
typedef struct vma_thread vma_thread;
/* a thread with every signal blocked (but those of a fault in it): a signal
 * for the process reaches a thread of the caller's, and the library's threads see Ctrl-C through
 * vma_interrupted().  NULL with err (domain G_THREAD_ERROR) when the system
 * has no thread to give; the caller then does without. */
vma_thread *vma_thread_new(const char *name, void *(*fn)(void *), void *data, GError **err);
/* wait for it to end and free it: what fn returned */
void *vma_thread_join(vma_thread *t);
/* let it end on its own (nobody joins it) and free the handle */
void vma_thread_detach(vma_thread *t);

/* ---- a queue of pointers ----
 * Any number of threads push and pop.  A closed queue still gives what it
 * holds; then its pops return NULL at once instead of waiting: closing is
 * how the other side is told that no more will come (the end of a stream,
 * a worker's stop).  Counted: the last vma_queue_unref frees it (the items
 * left in it are the caller's). */
typedef struct vma_queue vma_queue;
vma_queue *vma_queue_new(void);
vma_queue *vma_queue_ref(vma_queue *q);
void vma_queue_unref(vma_queue *q);
/* item must not be NULL */
void vma_queue_push(vma_queue *q, void *item);
/* the oldest item, waiting for one; NULL once the queue is closed and empty */
void *vma_queue_pop(vma_queue *q);
/* the same, waiting at most ms milliseconds: NULL when none came (then
 * *closed, if given, says whether the queue is closed and empty) */
void *vma_queue_pop_timeout(vma_queue *q, unsigned ms, gboolean *closed);
/* an item if one is there, else NULL at once */
void *vma_queue_try_pop(vma_queue *q);
void vma_queue_close(vma_queue *q);
unsigned vma_queue_length(vma_queue *q);

#endif
