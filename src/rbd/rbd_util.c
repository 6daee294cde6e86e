/* rbd_util.c - what the sink and the source share: the clock, the host's
 * hooks, the monitor's view of a full pool, messages for librbd's errors,
 * closing an image with a bound on the wait. */
#define _GNU_SOURCE
#include "rbd.h"

#include <errno.h>
#include <string.h>
#include <time.h>

double vrbd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

GQuark vrbd_domain(const vma_ext_hooks *h)
{
    return h && h->domain ? h->domain : g_quark_from_static_string("vma-rbd-error");
}

gboolean vrbd_interrupted(const vma_ext_hooks *h)
{
    return h && h->interrupted && h->interrupted();
}

void vrbd_cluster_unref(vrbd_cluster *c)
{
    if (!c || !g_atomic_int_dec_and_test(&c->refs))
        return;
    /* with an image still closing (or aio still unanswered), librados' threads
     * call back into it: shutting down would pull the rug; leave it to exit */
    if (g_atomic_int_get(&c->stuck))
        return;
    rados_shutdown(c->cl);
    g_free(c->who);
    g_free(c);
}

vrbd_cluster *vrbd_cluster_child(vrbd_cluster *c, int *r)
{
    rados_t cl;
    *r = rados_create_with_context(&cl, rados_cct(c->cl));
    if (*r < 0)
        return NULL;
    *r = rados_connect(cl);
    if (*r < 0) {
        rados_shutdown(cl);
        return NULL;
    }
    vrbd_cluster *k = g_new0(vrbd_cluster, 1);
    k->cl = cl;
    k->refs = 1;
    k->timeout = c->timeout;
    k->who = g_strdup(c->who);
    return k;
}

int vrbd_fence(vrbd_cluster *admin, vrbd_cluster *c, unsigned expire)
{
    char *addrs = NULL;
    int r = rados_getaddrs(c->cl, &addrs);
    if (r < 0)
        return r;
    r = rados_blocklist_add(admin->cl, addrs, expire);
    rados_buffer_free(addrs);
    return r;
}

/* the JSON string value of key after p in the compact JSON of the monitor
 * ("key":"value"); a copy, or NULL */
static char *json_string_after(const char *p, const char *end, const char *key)
{
    char *pat = g_strdup_printf("\"%s\":\"", key);
    const char *k = g_strstr_len(p, end - p, pat);
    size_t pl = strlen(pat);
    g_free(pat);
    if (!k)
        return NULL;
    k += pl;
    const char *q = k;
    while (q < end && *q != '"') {
        if (*q == '\\' && q + 1 < end)
            q++;
        q++;
    }
    return g_strndup(k, (gsize)(q - k));
}

static gboolean has_flag(const char *list, const char *flag)
{
    gboolean yes = FALSE;
    char **v = g_strsplit(list ? list : "", ",", -1);
    for (char **f = v; *f; f++)
        if (strcmp(*f, flag) == 0)
            yes = TRUE;
    g_strfreev(v);
    return yes;
}

int vrbd_pool_full(vrbd_cluster *c, const char *pool)
{
    const char *cmd[] = {"{\"prefix\": \"osd dump\", \"format\": \"json\"}"};
    char *out = NULL, *status = NULL;
    size_t outlen = 0, statuslen = 0;
    int r = rados_mon_command(c->cl, cmd, 1, "", 0, &out, &outlen, &status, &statuslen);
    if (r < 0) {
        rados_buffer_free(out);
        rados_buffer_free(status);
        return -1;
    }
    int full = 0;
    const char *end = out + outlen;
    /* the cluster's flags come first, then the pools */
    const char *pools = g_strstr_len(out, (gssize)outlen, "\"pools\":[");
    if (pools) {
        char *flags = json_string_after(out, pools, "flags");
        if (flags && has_flag(flags, "full"))
            full = 1;
        g_free(flags);
        /* the pool's entry: "pool_name":"NAME", then its "flags_names" */
        GString *want = g_string_new("\"pool_name\":\"");
        for (const char *p = pool; *p; p++) {
            if (*p == '"' || *p == '\\')
                g_string_append_c(want, '\\');
            g_string_append_c(want, *p);
        }
        g_string_append_c(want, '"');
        const char *at = g_strstr_len(pools, end - pools, want->str);
        g_string_free(want, TRUE);
        if (at) {
            char *pf = json_string_after(at, end, "flags_names");
            if (pf && (has_flag(pf, "full") || has_flag(pf, "full_quota")))
                full = 1;
            g_free(pf);
        }
    } else {
        full = -1;
    }
    rados_buffer_free(out);
    rados_buffer_free(status);
    return full;
}

char *vrbd_describe(vrbd_cluster *c, const char *pool, int r, const char *what)
{
    if (r == -ETIMEDOUT || r == -ENOSPC || r == -EDQUOT) {
        if (pool && vrbd_pool_full(c, pool) == 1)
            return g_strdup_printf("%s: pool %s is full: Ceph blocks writes to it; free space in "
                                   "the cluster (ceph df, ceph osd df) and try again",
                                   what, pool);
    }
    if (r == -ETIMEDOUT)
        return g_strdup_printf("%s: Ceph did not answer within the client timeout (%.0f s, "
                               "rados_osd_op_timeout): is an OSD down? (ceph -s)",
                               what, c->timeout);
    if (r == -ENOSPC || r == -EDQUOT)
        return g_strdup_printf("%s: pool %s is full (%s)", what, pool ? pool : "?",
                               g_strerror(-r));
    if (r == -ESHUTDOWN)
        return g_strdup_printf("%s: the cluster has blocklisted this client (%s)", what,
                               g_strerror(-r));
    return g_strdup_printf("%s: %s", what, g_strerror(-r));
}

ssize_t vrbd_aio_result(rbd_completion_t c)
{
    ssize_t r = rbd_aio_get_return_value(c);
    rbd_aio_release(c);
    return r;
}

/* ---- closing with a bound ---- */

double vrbd_close_bound(const vrbd_cluster *c, gboolean failed)
{
    return failed ? 3 : c->timeout > 0 ? 2 * c->timeout + 15 : 60;
}

unsigned vrbd_drain(vma_mutex *lock, vma_cond *cond, const unsigned *count, double bound)
{
    double start = vrbd_now();
    vma_mutex_lock(lock);
    while (*count && vrbd_now() - start < bound)
        vma_cond_wait_ms(cond, lock, 100);
    unsigned left = *count;
    vma_mutex_unlock(lock);
    return left;
}

/* what a closing thread owns: it frees it, and says it is done through
 * `done` (a reference of its own), which the waiter may have left */
typedef struct {
    rados_ioctx_t io;
    rbd_image_t img;
    vma_queue *done;
} closer;

static int closed_token;

static void *close_thread(void *data)
{
    closer *k = data;
    rbd_close(k->img);
    rados_ioctx_destroy(k->io);
    vma_queue_push(k->done, &closed_token);
    vma_queue_unref(k->done);
    g_free(k);
    return NULL;
}

int vrbd_close_image(vrbd_cluster *c, rados_ioctx_t io, rbd_image_t img, double bound)
{
    vma_queue *done = vma_queue_new();
    closer *k = g_new0(closer, 1);
    k->io = io;
    k->img = img;
    k->done = vma_queue_ref(done);
    vma_thread *th = vma_thread_new("vma-rbd-close", close_thread, k, NULL);
    if (!th) {
        close_thread(k); /* no thread to spare: close here, without a bound */
    } else if (!vma_queue_pop_timeout(done, (unsigned)(bound * 1000), NULL)) {
        /* still closing: the thread ends on its own; the cluster stays */
        vma_thread_detach(th);
        vma_queue_unref(done);
        g_atomic_int_inc(&c->stuck);
        return 1;
    } else {
        vma_thread_join(th);
    }
    vma_queue_unref(done);
    vrbd_cluster_unref(c);
    return 0;
}
