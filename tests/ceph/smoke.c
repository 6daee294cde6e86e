/*
 * A smoke test of librados + librbd against a test cluster (tests/ceph/cluster.sh).
 *
 *   cc -O2 -o smoke tests/ceph/smoke.c -lrbd -lrados
 *   smoke [CONF]                 the smoke test: exit 0 only if everything matched
 *   smoke --errors [CONF]        print (and check) the error codes of common mistakes
 *   smoke --writes SECONDS [CONF]
 *                                aio writes for SECONDS, printing every failure with its
 *                                error and how long it took (for kill-osd / full tests)
 *
 * CONF defaults to $CEPH_CONF. SMOKE_TIMEOUT (default 30) sets rados_osd_op_timeout,
 * rados_mon_op_timeout and client_mount_timeout; SMOKE_POOL (default rbd) the pool.
 *
 * The smoke test: an image of 64 MiB, 256 aio writes of 64 KiB (one every 256 KiB) in
 * flight at once, an aio discard of one written block and of one whole 4 MiB object,
 * rbd_flush, read back and compare; rbd_diff_iterate2 from the beginning (whole_object 0);
 * a snapshot, three more changes, rbd_diff_iterate2 from the snapshot (must be exact);
 * the image is removed at the end.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#define MiB (1024 * 1024)
#define IMAGE_SIZE (64 * MiB)
#define NWRITES 256
#define WSIZE (64 * 1024)
#define WSTRIDE (IMAGE_SIZE / NWRITES) /* 256 KiB */

static const char *pool_name = "rbd";
static const char *timeout_s = "30";
static int failures;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *err_name(int e)
{
    switch (e) {
    case 0: return "0";
    case -ENOENT: return "-ENOENT";
    case -EINVAL: return "-EINVAL";
    case -EACCES: return "-EACCES";
    case -EPERM: return "-EPERM";
    case -ETIMEDOUT: return "-ETIMEDOUT";
    case -ENOSPC: return "-ENOSPC";
    case -EDQUOT: return "-EDQUOT";
    case -EIO: return "-EIO";
    case -ENOTCONN: return "-ENOTCONN";
    case -ECONNREFUSED: return "-ECONNREFUSED";
    case -ESHUTDOWN: return "-ESHUTDOWN"; /* also librados's EBLOCKLISTED */
    case -EAGAIN: return "-EAGAIN";
    case -EEXIST: return "-EEXIST";
    case -EBUSY: return "-EBUSY";
    default: return "?";
    }
}

#define CHECK(what, expr)                                                           \
    do {                                                                            \
        int r_ = (expr);                                                            \
        if (r_ < 0) {                                                               \
            fprintf(stderr, "smoke: %s: %d %s (%s)\n", what, r_, err_name(r_),      \
                    strerror(-r_));                                                 \
            return r_;                                                              \
        }                                                                           \
    } while (0)

/* the byte at image offset off as written by write number gen */
static unsigned char pattern(uint64_t off, unsigned gen)
{
    uint64_t x = (off / 8) * 0x9E3779B97F4A7C15ull + gen * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 29;
    return (unsigned char)(x >> (8 * (off % 8)));
}

static void fill(unsigned char *buf, uint64_t off, size_t len, unsigned gen)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern(off + i, gen);
}

/* create a handle, read the conf, set the timeouts, connect; *secs = time of all that */
static int connect_cluster(const char *conf, rados_t *cluster, double *secs)
{
    double t0 = now();
    CHECK("rados_create2", rados_create2(cluster, "ceph", "client.admin", 0));
    int r = rados_conf_read_file(*cluster, conf);
    if (r < 0) {
        fprintf(stderr, "smoke: rados_conf_read_file(%s): %d %s\n", conf ? conf : "(default)", r,
                err_name(r));
        rados_shutdown(*cluster);
        return r;
    }
    const char *opts[] = {"rados_osd_op_timeout", "rados_mon_op_timeout", "client_mount_timeout"};
    for (int i = 0; i < 3; i++) {
        r = rados_conf_set(*cluster, opts[i], timeout_s);
        if (r < 0) {
            fprintf(stderr, "smoke: rados_conf_set %s: %d\n", opts[i], r);
            rados_shutdown(*cluster);
            return r;
        }
    }
    r = rados_connect(*cluster);
    if (r < 0) {
        fprintf(stderr, "smoke: rados_connect: %d %s (%s)\n", r, err_name(r), strerror(-r));
        rados_shutdown(*cluster);
        return r;
    }
    *secs = now() - t0;
    return 0;
}

struct extent {
    uint64_t off, len;
    int exists;
};
struct extents {
    struct extent e[4096];
    int n;
};

static int diff_cb(uint64_t off, size_t len, int exists, void *arg)
{
    struct extents *x = arg;
    if (x->n > 0 && x->e[x->n - 1].off + x->e[x->n - 1].len == off &&
        x->e[x->n - 1].exists == exists) {
        x->e[x->n - 1].len += len; /* coalesce */
        return 0;
    }
    if (x->n == (int)(sizeof x->e / sizeof x->e[0]))
        return -E2BIG;
    x->e[x->n++] = (struct extent){off, len, exists};
    return 0;
}

static void print_extents(const char *what, const struct extents *x)
{
    printf("%s: %d extents\n", what, x->n);
    for (int i = 0; i < x->n; i++)
        printf("  %10" PRIu64 " +%8" PRIu64 " (%5.2f MiB +%7.1f KiB) %s\n", x->e[i].off, x->e[i].len,
               x->e[i].off / (double)MiB, x->e[i].len / 1024.0, x->e[i].exists ? "data" : "zero");
}

/* is [off, off+len) inside the union of extents with data? */
static int covered(const struct extents *x, uint64_t off, uint64_t len)
{
    while (len > 0) {
        int found = 0;
        for (int i = 0; i < x->n; i++) {
            if (x->e[i].exists && x->e[i].off <= off && off < x->e[i].off + x->e[i].len) {
                uint64_t end = x->e[i].off + x->e[i].len;
                uint64_t step = end - off < len ? end - off : len;
                off += step;
                len -= step;
                found = 1;
                break;
            }
        }
        if (!found)
            return 0;
    }
    return 1;
}

static int aio_wait(rbd_completion_t c, const char *what)
{
    rbd_aio_wait_for_complete(c);
    ssize_t r = rbd_aio_get_return_value(c);
    rbd_aio_release(c);
    if (r < 0) {
        fprintf(stderr, "smoke: %s: %zd %s\n", what, r, err_name((int)r));
        return (int)r;
    }
    return 0;
}

static int compare(rbd_image_t img, const unsigned char *expect, unsigned char *got)
{
    double t0 = now();
    for (uint64_t off = 0; off < IMAGE_SIZE; off += 4 * MiB) {
        ssize_t r = rbd_read(img, off, 4 * MiB, (char *)got + off);
        if (r != 4 * MiB) {
            fprintf(stderr, "smoke: rbd_read at %" PRIu64 ": %zd\n", off, r);
            return r < 0 ? (int)r : -EIO;
        }
    }
    for (uint64_t i = 0; i < IMAGE_SIZE; i++)
        if (got[i] != expect[i]) {
            fprintf(stderr, "smoke: MISMATCH at byte %" PRIu64 ": read %02x, expected %02x\n", i,
                    got[i], expect[i]);
            failures++;
            return 0;
        }
    printf("read back %d MiB in %.2f s: identical\n", IMAGE_SIZE / MiB, now() - t0);
    return 0;
}

static int smoke(rados_t cluster)
{
    rados_ioctx_t io;
    rbd_image_t img;
    char name[64];
    int order = 22; /* 4 MiB objects */
    unsigned char *expect = calloc(1, IMAGE_SIZE), *got = malloc(IMAGE_SIZE);
    static struct extents diff; /* large: not on the stack */
    if (!expect || !got)
        return -ENOMEM;

    CHECK("rados_ioctx_create", rados_ioctx_create(cluster, pool_name, &io));
    snprintf(name, sizeof name, "smoke-%ld", (long)getpid());
    CHECK("rbd_create", rbd_create(io, name, IMAGE_SIZE, &order));
    int r = rbd_open(io, name, &img, NULL);
    if (r < 0) {
        fprintf(stderr, "smoke: rbd_open: %d\n", r);
        rbd_remove(io, name);
        return r;
    }
    uint64_t features = 0;
    rbd_get_features(img, &features);
    printf("image %s/%s: %d MiB, order %d, features 0x%" PRIx64 "\n", pool_name, name,
           IMAGE_SIZE / MiB, order, features);

    /* 256 aio writes of 64 KiB, all in flight at once */
    unsigned char *wbuf = malloc((size_t)NWRITES * WSIZE);
    rbd_completion_t c[NWRITES];
    if (!wbuf)
        return -ENOMEM;
    double t0 = now();
    for (int i = 0; i < NWRITES; i++) {
        uint64_t off = (uint64_t)i * WSTRIDE;
        fill(wbuf + (size_t)i * WSIZE, off, WSIZE, 1);
        memcpy(expect + off, wbuf + (size_t)i * WSIZE, WSIZE);
        CHECK("rbd_aio_create_completion", rbd_aio_create_completion(NULL, NULL, &c[i]));
        CHECK("rbd_aio_write", rbd_aio_write(img, off, WSIZE, (char *)wbuf + (size_t)i * WSIZE, c[i]));
    }
    int werr = 0;
    for (int i = 0; i < NWRITES; i++) {
        rbd_aio_wait_for_complete(c[i]);
        ssize_t rv = rbd_aio_get_return_value(c[i]);
        if (rv != 0 && !werr) {
            fprintf(stderr, "smoke: aio write %d: %zd %s\n", i, rv, err_name((int)rv));
            werr = rv < 0 ? (int)rv : -EIO;
        }
        rbd_aio_release(c[i]);
    }
    double tw = now() - t0;
    if (werr)
        return werr;
    printf("%d aio writes of %d KiB in flight at once: %.3f s (%.0f writes/s, %.1f MiB/s)\n",
           NWRITES, WSIZE / 1024, tw, NWRITES / tw, NWRITES * (double)WSIZE / MiB / tw);

    /* aio discards: one written 64 KiB block (write 10), one whole 4 MiB object (8-12 MiB) */
    rbd_completion_t d;
    uint64_t d1 = 10 * (uint64_t)WSTRIDE;
    CHECK("rbd_aio_create_completion", rbd_aio_create_completion(NULL, NULL, &d));
    CHECK("rbd_aio_discard", rbd_aio_discard(img, d1, WSIZE, d));
    CHECK("aio discard", aio_wait(d, "aio discard"));
    memset(expect + d1, 0, WSIZE);
    CHECK("rbd_aio_create_completion", rbd_aio_create_completion(NULL, NULL, &d));
    CHECK("rbd_aio_discard", rbd_aio_discard(img, 8 * MiB, 4 * MiB, d));
    CHECK("aio discard", aio_wait(d, "aio discard"));
    memset(expect + 8 * MiB, 0, 4 * MiB);
    printf("aio discard of %d KiB at %" PRIu64 " and of 4 MiB at 8 MiB: done\n", WSIZE / 1024, d1);

    t0 = now();
    CHECK("rbd_flush", rbd_flush(img));
    printf("rbd_flush: %.3f s\n", now() - t0);
    CHECK("compare", compare(img, expect, got));

    /* the diff from the image's creation, whole_object 0: must cover every written byte */
    diff.n = 0;
    t0 = now();
    CHECK("rbd_diff_iterate2(NULL)", rbd_diff_iterate2(img, NULL, 0, IMAGE_SIZE, 0, 0, diff_cb, &diff));
    printf("rbd_diff_iterate2 from NULL: %.3f s\n", now() - t0);
    print_extents("diff from creation (NULL, whole_object 0, coalesced)", &diff);
    for (int i = 0; i < NWRITES; i++) {
        uint64_t off = (uint64_t)i * WSTRIDE;
        if (expect[off] == 0 && expect[off + WSIZE - 1] == 0 && (off == d1 || (off >= 8 * MiB && off < 12 * MiB)))
            continue; /* discarded */
        if (!covered(&diff, off, WSIZE)) {
            fprintf(stderr, "smoke: diff from NULL misses write %d at %" PRIu64 "\n", i, off);
            failures++;
        }
    }

    /* a snapshot, then three changes: the diff from the snapshot must be exactly them */
    CHECK("rbd_snap_create", rbd_snap_create(img, "s1"));
    uint64_t w1 = 1 * MiB + 100 * 1024, w2 = 30 * MiB;
    fill(wbuf, w1, 4096, 2);
    memcpy(expect + w1, wbuf, 4096);
    CHECK("rbd_write", (int)rbd_write(img, w1, 4096, (char *)wbuf));
    fill(wbuf, w2, WSIZE, 2);
    memcpy(expect + w2, wbuf, WSIZE);
    CHECK("rbd_write", (int)rbd_write(img, w2, WSIZE, (char *)wbuf));
    CHECK("rbd_aio_create_completion", rbd_aio_create_completion(NULL, NULL, &d));
    CHECK("rbd_aio_discard", rbd_aio_discard(img, 0, WSIZE, d)); /* write 0's block */
    CHECK("aio discard", aio_wait(d, "aio discard"));
    memset(expect, 0, WSIZE);
    CHECK("rbd_flush", rbd_flush(img));
    CHECK("compare", compare(img, expect, got));

    diff.n = 0;
    CHECK("rbd_diff_iterate2(s1)", rbd_diff_iterate2(img, "s1", 0, IMAGE_SIZE, 0, 0, diff_cb, &diff));
    print_extents("diff from snapshot s1 (whole_object 0, coalesced)", &diff);
    struct extent want[] = {{0, WSIZE, 0}, {w1, 4096, 1}, {w2, WSIZE, 1}};
    int exact = diff.n == 3;
    for (int i = 0; exact && i < 3; i++)
        exact = diff.e[i].off == want[i].off && diff.e[i].len == want[i].len;
    if (!exact) {
        fprintf(stderr, "smoke: the diff from s1 is not exactly the 3 changes "
                        "(0 +64 KiB, %" PRIu64 " +4 KiB, %" PRIu64 " +64 KiB)\n", w1, w2);
        failures++;
    } else if (diff.e[0].exists) {
        printf("note: the discarded 64 KiB at 0 is reported with exists=1 (zeroed in an object that stays)\n");
    }
    diff.n = 0;
    CHECK("rbd_diff_iterate2(s1, whole_object)", rbd_diff_iterate2(img, "s1", 0, IMAGE_SIZE, 0, 1, diff_cb, &diff));
    print_extents("diff from snapshot s1 (whole_object 1, coalesced)", &diff);

    CHECK("rbd_snap_remove", rbd_snap_remove(img, "s1"));
    CHECK("rbd_close", rbd_close(img));
    t0 = now();
    CHECK("rbd_remove", rbd_remove(io, name));
    printf("image removed in %.3f s\n", now() - t0);
    rados_ioctx_destroy(io);
    free(wbuf);
    free(expect);
    free(got);
    return 0;
}

/* the error codes of common mistakes; each is checked against what was measured */
static int errors(const char *conf)
{
    rados_t cl;
    rados_ioctx_t io;
    rbd_image_t img;
    double t0, secs;
    int r;
    int bad = 0;
#define EXPECT(what, got, want)                                                            \
    do {                                                                                   \
        printf("%-52s %4d %-10s %.2f s%s\n", what, got, err_name(got), now() - t0,         \
               (got) == (want) ? "" : "   <-- UNEXPECTED");                                \
        bad += (got) != (want);                                                            \
    } while (0)

    /* a conf file that does not exist */
    rados_create2(&cl, "ceph", "client.admin", 0);
    t0 = now();
    r = rados_conf_read_file(cl, "/nonexistent/ceph.conf");
    EXPECT("rados_conf_read_file(no such file)", r, -ENOENT);
    rados_shutdown(cl);

    /* the same through $CEPH_CONF and a NULL path */
    char *saved = getenv("CEPH_CONF") ? strdup(getenv("CEPH_CONF")) : NULL;
    setenv("CEPH_CONF", "/nonexistent/ceph.conf", 1);
    rados_create2(&cl, "ceph", "client.admin", 0);
    t0 = now();
    r = rados_conf_read_file(cl, NULL);
    EXPECT("rados_conf_read_file(NULL, CEPH_CONF=no such file)", r, -ENOENT);
    rados_shutdown(cl);
    if (saved) {
        setenv("CEPH_CONF", saved, 1);
        free(saved);
    } else {
        unsetenv("CEPH_CONF");
    }

    /* a keyring path that does not exist */
    rados_create2(&cl, "ceph", "client.admin", 0);
    rados_conf_read_file(cl, conf);
    rados_conf_set(cl, "keyring", "/nonexistent/keyring");
    t0 = now();
    r = rados_connect(cl);
    EXPECT("rados_connect(keyring = no such file)", r, -ENOENT);
    rados_shutdown(cl);

    /* a keyring with a wrong key */
    char kpath[] = "/tmp/smoke-keyring-XXXXXX";
    int kfd = mkstemp(kpath);
    if (kfd >= 0) {
        const char *k = "[client.admin]\n\tkey = AQBzKl9mAAAAABAAZ3sN5QwAAAAAAAAAAAAAAA==\n";
        if (write(kfd, k, strlen(k)) < 0)
            perror("write");
        close(kfd);
        rados_create2(&cl, "ceph", "client.admin", 0);
        rados_conf_read_file(cl, conf);
        rados_conf_set(cl, "keyring", kpath);
        t0 = now();
        r = rados_connect(cl);
        EXPECT("rados_connect(keyring with a wrong key)", r, -EACCES);
        rados_shutdown(cl);
        unlink(kpath);
    }

    /* an unknown user */
    rados_create2(&cl, "ceph", "client.nobody", 0);
    rados_conf_read_file(cl, conf);
    t0 = now();
    r = rados_connect(cl);
    EXPECT("rados_connect(client.nobody, not in keyring)", r, -EACCES);
    rados_shutdown(cl);

    /* no monitor at the address (client_mount_timeout 5 s for this one) */
    rados_create2(&cl, "ceph", "client.admin", 0);
    rados_conf_read_file(cl, conf);
    rados_conf_set(cl, "mon_host", "v2:127.0.0.1:9");
    rados_conf_set(cl, "client_mount_timeout", "5");
    t0 = now();
    r = rados_connect(cl);
    EXPECT("rados_connect(no monitor listening, mount timeout 5)", r, -ETIMEDOUT);
    rados_shutdown(cl);

    /* a pool and an image that do not exist */
    r = connect_cluster(conf, &cl, &secs);
    if (r < 0)
        return 1;
    t0 = now();
    r = rados_ioctx_create(cl, "nosuchpool", &io);
    EXPECT("rados_ioctx_create(no such pool)", r, -ENOENT);
    if (r == 0)
        rados_ioctx_destroy(io);
    r = rados_ioctx_create(cl, pool_name, &io);
    if (r < 0)
        return 1;
    t0 = now();
    r = rbd_open(io, "nosuchimage", &img, NULL);
    EXPECT("rbd_open(no such image)", r, -ENOENT);
    t0 = now();
    r = rbd_open_read_only(io, "nosuchimage", &img, NULL);
    EXPECT("rbd_open_read_only(no such image)", r, -ENOENT);
    t0 = now();
    r = rbd_remove(io, "nosuchimage");
    EXPECT("rbd_remove(no such image)", r, -ENOENT);
    int order = 22;
    char name[64];
    snprintf(name, sizeof name, "smoke-err-%ld", (long)getpid());
    rbd_create(io, name, MiB, &order);
    t0 = now();
    r = rbd_create(io, name, MiB, &order);
    EXPECT("rbd_create(image exists)", r, -EEXIST);
    if (rbd_open(io, name, &img, NULL) == 0) {
        char b[4096] = {0};
        t0 = now();
        r = (int)rbd_write(img, MiB - 1024, sizeof b, b);
        EXPECT("rbd_write(4 KiB, 1 KiB before the end): short", r, 1024);
        t0 = now();
        r = (int)rbd_write(img, MiB, sizeof b, b);
        EXPECT("rbd_write(at the end of the image)", r, -EINVAL);
        t0 = now();
        r = rbd_snap_set(img, "nosuchsnap");
        EXPECT("rbd_snap_set(no such snapshot)", r, -ENOENT);
        t0 = now();
        r = rbd_diff_iterate2(img, "nosuchsnap", 0, MiB, 0, 0, diff_cb, &(struct extents){0});
        EXPECT("rbd_diff_iterate2(from no such snapshot)", r, -ENOENT);
        rbd_close(img);
    }
    rbd_remove(io, name);
    rados_ioctx_destroy(io);
    rados_shutdown(cl);
    printf("%s\n", bad ? "some error codes differ from those measured before" : "all error codes as expected");
    return bad ? 1 : 0;
}

/* aio writes for a while; every failure and every stall is printed with its duration */
struct op {
    rbd_completion_t c;
    double t_submit, t_done;
};

static void op_done(rbd_completion_t c, void *arg)
{
    (void)c;
    ((struct op *)arg)->t_done = now();
}

static int writes(rados_t cluster, double seconds)
{
    rados_ioctx_t io;
    rbd_image_t img;
    char name[64];
    int order = 22;
    const uint64_t size = 256 * MiB;
    enum { BATCH = 16 };
    static char buf[BATCH][WSIZE];
    struct op ops[BATCH];
    for (int i = 0; i < BATCH; i++)
        memset(buf[i], 'a' + i, WSIZE);

    CHECK("rados_ioctx_create", rados_ioctx_create(cluster, pool_name, &io));
    snprintf(name, sizeof name, "smoke-writes-%ld", (long)getpid());
    CHECK("rbd_create", rbd_create(io, name, size, &order));
    CHECK("rbd_open", rbd_open(io, name, &img, NULL));
    printf("writing batches of %d aio writes of 64 KiB for %.0f s (timeouts %s s)\n", BATCH, seconds,
           timeout_s);
    fflush(stdout);
    double start = now(), last_ok = start;
    uint64_t off = 0, nok = 0, nerr = 0;
    int state = 0; /* last batch: 0 ok, else its first error */
    while (now() - start < seconds) {
        for (int i = 0; i < BATCH; i++) {
            ops[i].t_submit = now();
            ops[i].t_done = 0;
            rbd_aio_create_completion(&ops[i], op_done, &ops[i].c);
            int r = rbd_aio_write(img, off, WSIZE, buf[i], ops[i].c);
            if (r < 0) {
                printf("t=%6.2f rbd_aio_write returned %d %s at once\n", now() - start, r, err_name(r));
                ops[i].t_done = -1;
            }
            off = (off + WSIZE) % size;
        }
        int first = 0;
        double slow = 0;
        for (int i = 0; i < BATCH; i++) {
            rbd_aio_wait_for_complete(ops[i].c);
            ssize_t rv = rbd_aio_get_return_value(ops[i].c);
            rbd_aio_release(ops[i].c);
            double took = (ops[i].t_done > 0 ? ops[i].t_done : now()) - ops[i].t_submit;
            if (took > slow)
                slow = took;
            if (rv < 0) {
                nerr++;
                if (!first)
                    first = (int)rv;
            } else {
                nok++;
            }
        }
        double t = now() - start;
        if (first != state || slow > 1.0) {
            if (first)
                printf("t=%6.2f batch FAILED: first error %d %s, slowest op %.2f s\n", t, first,
                       err_name(first), slow);
            else
                printf("t=%6.2f batch ok, slowest op %.2f s (%.2f s since the previous ok batch)\n", t,
                       slow, t - last_ok);
            fflush(stdout);
        }
        if (!first)
            last_ok = t;
        state = first;
        if (first)
            sleep(1);
    }
    printf("%" PRIu64 " writes ok, %" PRIu64 " failed\n", nok, nerr);
    double t0 = now();
    int r = rbd_close(img);
    printf("rbd_close: %d %s after %.2f s\n", r, err_name(r), now() - t0);
    /* after an OSD restart the OSD may still hold this client's old watch on the image
       header (until osd_client_watch_timeout, 30 s): rbd_remove says -EBUSY until then */
    t0 = now();
    int tries = 0;
    do {
        if (tries++)
            sleep(1);
        r = rbd_remove(io, name);
    } while (r == -EBUSY && now() - t0 < 60);
    printf("rbd_remove: %d %s after %.2f s (%d tries)\n", r, err_name(r), now() - t0, tries);
    rados_ioctx_destroy(io);
    return nerr ? 1 : 0;
}

int main(int argc, char **argv)
{
    int mode = 0; /* 0 smoke, 1 errors, 2 writes */
    double seconds = 0;
    int a = 1;
    if (a < argc && strcmp(argv[a], "--errors") == 0) {
        mode = 1;
        a++;
    } else if (a < argc && strcmp(argv[a], "--writes") == 0 && a + 1 < argc) {
        mode = 2;
        seconds = atof(argv[a + 1]);
        a += 2;
    }
    const char *conf = a < argc ? argv[a] : getenv("CEPH_CONF");
    if (a + 1 < argc || (a < argc && argv[a][0] == '-')) {
        fprintf(stderr, "usage: %s [--errors | --writes SECONDS] [CONF]\n", argv[0]);
        return 2;
    }
    if (getenv("SMOKE_TIMEOUT"))
        timeout_s = getenv("SMOKE_TIMEOUT");
    if (getenv("SMOKE_POOL"))
        pool_name = getenv("SMOKE_POOL");
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (mode == 1)
        return errors(conf);

    rados_t cluster;
    double secs;
    int r = connect_cluster(conf, &cluster, &secs);
    if (r < 0)
        return 1;
    printf("connected in %.3f s (rados_create2 + conf + rados_connect)\n", secs);
    r = mode == 2 ? writes(cluster, seconds) : smoke(cluster);
    double t0 = now();
    rados_shutdown(cluster);
    printf("rados_shutdown: %.3f s\n", now() - t0);
    if (mode == 2)
        return r ? 1 : 0;
    if (r < 0 || failures) {
        printf("FAILED\n");
        return 1;
    }
    printf("OK\n");
    return 0;
}
