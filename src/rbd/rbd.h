/* rbd.h - what the files of the vma.rbd module share (src/rbd): the
 * connection to a cluster, the sink (restore into an image) and the source
 * (back up an image or a snapshot).  The module links librbd, librados and
 * GLib, never libvma: it includes vma.h and lvma_ext.h for the types only,
 * and compiles in libvma's threads (base/thread.c) and the class rules of
 * the binding (lvma_class.c). */
#ifndef VMA_RBD_H
#define VMA_RBD_H

#include "lvma_ext.h"
#include "base/thread.h"

#include <rados/librados.h>
#include <rbd/librbd.h>

/* a connection; shared (counted) by the cluster userdata and every image
 * open through it.  It is shut down with the last reference, unless an
 * image could not be closed (a dead OSD): then it is left to the exit. */
typedef struct {
    rados_t cl;
    gint refs;
    gint stuck;           /* an image or an operation was left unfinished:
                             never shut down */
    double timeout;       /* rados_osd_op_timeout, seconds (0: none) */
    char *who;            /* "client.admin" */
} vrbd_cluster;

void vrbd_cluster_unref(vrbd_cluster *c);
/* a second connection with the config of c (rados_create_with_context): a
 * sink writes through one of its own, so that it can be fenced (blocklisted)
 * alone when it cannot be closed.  NULL with *r set on failure. */
vrbd_cluster *vrbd_cluster_child(vrbd_cluster *c, int *r);
/* blocklist the client of c through admin (for expire seconds): its
 * operations in flight can never land, and the watches it holds go once the
 * OSDs see it; 0 or a negative errno */
int vrbd_fence(vrbd_cluster *admin, vrbd_cluster *c, unsigned expire);

/* the result of a finished aio operation, which is released */
ssize_t vrbd_aio_result(rbd_completion_t c);

/* seconds, monotonic */
double vrbd_now(void);

/* the error domain and interrupt poll given by the host (defaults when the
 * binding has not filled them) */
GQuark vrbd_domain(const vma_ext_hooks *h);
gboolean vrbd_interrupted(const vma_ext_hooks *h);

/* "pool X is full" when the monitor says so: 1 full, 0 not, -1 unknown */
int vrbd_pool_full(vrbd_cluster *c, const char *pool);

/* the message for a librbd error met while doing what (e.g. "writing at
 * offset 123"), with hints for the codes a dead or full cluster gives */
char *vrbd_describe(vrbd_cluster *c, const char *pool, int r, const char *what);

/* ---- the sink (vrbd_sink.c) ---- */
typedef struct vrbd_sink vrbd_sink;
typedef struct {
    size_t max_bytes;     /* copies of data in flight at most (64 MiB) */
    unsigned max_ops;     /* aio operations in flight at most */
    double stall;         /* an aio write this old: ask the monitor whether the pool is full */
} vrbd_sink_opts;

extern const vma_sink_ops vrbd_sink_ops;
/* img is open read-write through c (a connection of the sink's own, from
 * vrbd_cluster_child of admin); the sink owns img, io and that reference of
 * c from then on, and takes one of admin */
vrbd_sink *vrbd_sink_new(vrbd_cluster *admin, vrbd_cluster *c, rados_ioctx_t io, rbd_image_t img, const char *pool,
                       const char *label, uint64_t size, const vrbd_sink_opts *o,
                       const vma_ext_hooks *hooks);
const char *vrbd_sink_label(const vrbd_sink *s);
/* wait for what is in flight (bounded), close the image; 0 or -1 with err.
 * The sink is freed, or left behind when the image could not be closed. */
int vrbd_sink_close(vrbd_sink *s, GError **err);

/* ---- the source (vrbd_source.c) ---- */
typedef struct vrbd_source vrbd_source;
extern const vma_source_ops vrbd_source_ops;
/* img is open read-only (at the snapshot); the source owns it and io; the
 * data extents are found at once (rbd_diff_iterate2): NULL with err */
vrbd_source *vrbd_source_new(vrbd_cluster *c, rados_ioctx_t io, rbd_image_t img, const char *pool,
                           const char *label, uint64_t size, size_t window,
                           const vma_ext_hooks *hooks, GError **err);
const char *vrbd_source_label(const vrbd_source *s);
/* the bytes the extents cover (what will be read) */
uint64_t vrbd_source_data_bytes(const vrbd_source *s);
int vrbd_source_close(vrbd_source *s, GError **err);

/* how long a close waits for what is in flight: a failed one 3 s, else
 * twice the client timeout and some (60 s without one) */
double vrbd_close_bound(const vrbd_cluster *c, gboolean failed);
/* wait (under lock, woken through cond) until *count operations in flight
 * are none or bound seconds have passed: how many are left */
unsigned vrbd_drain(vma_mutex *lock, vma_cond *cond, const unsigned *count, double bound);

/* close an image (and destroy io) with a bound on the wait; takes over one
 * reference of c.  0 closed, 1 still closing in the background after bound
 * seconds: the cluster is then never shut down (it is left to the exit) */
int vrbd_close_image(vrbd_cluster *c, rados_ioctx_t io, rbd_image_t img, double bound);

#endif
