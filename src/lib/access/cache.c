/* cache.c - the folder where an archive's index and, for an archive that
 * can only be read in order, its decoded copy are kept.
 *
 * The folder is $VMA_CACHE_DIR, else $XDG_CACHE_HOME/vma, else
 * ~/.cache/vma: made 0700, refused when it is not a folder of ours.  Every
 * archive has a key: the first 16 bytes of SHA-256 over its identity (the
 * header's MD5 and the file's device, inode, size, mtime and ctime), so that
 * two archives with one uuid, or one file rewritten, never share a cache.
 * Its files:
 *
 *   KEY.idx       the index (index.c), which repeats the identity: a load
 *                 checks it field by field
 *   KEY.vma.zst   the decoded archive as a seekable .vma.zst (decoder.c)
 *   KEY.info      what `vma cache ls` shows: the archive's path, its size...
 *   KEY.lock      flock()ed by the process that writes KEY.vma.zst
 *   KEY.part      KEY.vma.zst being written (renamed once complete)
 *
 * Every file is opened with O_NOFOLLOW and must be a regular file (fstat):
 * a cache is input like any other.  The folder is bounded (vma_cache_limit):
 * before a new decoded copy is made, the least recently used keys are
 * removed until it fits. */
#define _GNU_SOURCE
#include "access/access.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <openssl/evp.h>

char *vma_cache_dir(void)
{
    const char *v = g_getenv("VMA_CACHE_DIR");
    if (v && *v == '/')
        return g_strdup(v);
    const char *x = g_getenv("XDG_CACHE_HOME");
    if (x && *x == '/')
        return g_build_filename(x, "vma", NULL);
    const char *home = g_getenv("HOME");
    if (home && *home == '/')
        return g_build_filename(home, ".cache", "vma", NULL);
    return NULL;
}

gboolean vma_cache_prepare_dir(const char *dir, GError **err)
{
    if (g_mkdir_with_parents(dir, 0700) < 0) {
        vma_set_errno(err, errno, "cannot make the cache folder %s", dir);
        return FALSE;
    }
    struct stat st;
    if (lstat(dir, &st) < 0) {
        vma_set_errno(err, errno, "%s", dir);
        return FALSE;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO,
                    "the cache folder %s is not a folder of this user's", dir);
        return FALSE;
    }
    if ((st.st_mode & 0077) && chmod(dir, 0700) < 0) {
        vma_set_errno(err, errno, "cannot make the cache folder %s private", dir);
        return FALSE;
    }
    return TRUE;
}

gboolean vma_identity_of(int fd, const uint8_t header_md5[16], vma_identity *id, GError **err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        vma_set_errno(err, errno, "stat of the archive failed");
        return FALSE;
    }
    memset(id, 0, sizeof(*id));
    memcpy(id->header_md5, header_md5, 16);
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    id->size = (uint64_t)st.st_size;
    id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    id->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
    id->regular = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
    return TRUE;
}

void vma_identity_key(const vma_identity *id, char key[33])
{
    uint8_t buf[16 + 8 * 5], md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    memcpy(buf, id->header_md5, 16);
    uint64_t v[5] = {id->dev, id->ino, id->size, (uint64_t)id->mtime_ns, (uint64_t)id->ctime_ns};
    for (int i = 0; i < 5; i++)
        vma_put_be64(buf + 16 + 8 * i, v[i]);
    if (EVP_Digest(buf, sizeof(buf), md, &n, EVP_sha256(), NULL) != 1 || n < 16) {
        /* no libcrypto: the fields themselves, folded (a key, not a check) */
        memset(md, 0, 16);
        for (size_t i = 0; i < sizeof(buf); i++)
            md[i % 16] ^= buf[i];
    }
    for (int i = 0; i < 16; i++)
        snprintf(key + 2 * i, 3, "%02x", md[i]);
}

void vma_identity_stamp(const vma_identity *id, uint64_t stream_size, uint8_t stamp[VMA_STAMP_SIZE])
{
    memset(stamp, 0, VMA_STAMP_SIZE);
    memcpy(stamp, id->header_md5, 16);
    uint64_t v[6] = {id->dev, id->ino, id->size, (uint64_t)id->mtime_ns, (uint64_t)id->ctime_ns,
                     stream_size};
    for (int i = 0; i < 6; i++)
        vma_put_be64(stamp + 16 + 8 * i, v[i]);
}

char *vma_cache_path(const char *dir, const char *key, const char *suffix)
{
    char *name = g_strconcat(key, suffix, NULL);
    char *p = g_build_filename(dir, name, NULL);
    g_free(name);
    return p;
}

int vma_cache_open_file(const char *path, uint64_t max_size, int64_t *size, GError **err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        vma_set_errno(err, errno, "%s", path);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max_size) {
        g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "%s: not a cache file (%s)", path,
                    !S_ISREG(st.st_mode) ? "not a regular file" : "too large");
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (size)
        *size = (int64_t)st.st_size;
    return fd;
}

void vma_cache_touch(const char *dir, const char *key)
{
    static const char *const suffixes[] = {".idx", ".vma.zst", ".info"};
    for (unsigned i = 0; i < G_N_ELEMENTS(suffixes); i++) {
        char *p = vma_cache_path(dir, key, suffixes[i]);
        utimensat(AT_FDCWD, p, NULL, AT_SYMLINK_NOFOLLOW);
        g_free(p);
    }
}

int vma_cache_lock(const char *dir, const char *key, gboolean wait, GError **err)
{
    char *p = vma_cache_path(dir, key, ".lock");
    int fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        vma_set_errno(err, errno, "%s", p);
        g_free(p);
        return -1;
    }
    g_free(p);
    if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            g_set_error(err, VMA_ERROR, VMA_ERR_IO, "busy");
            return -2;
        }
        vma_set_errno(err, e, "lock of the cache failed");
        return -1;
    }
    return fd;
}

gboolean vma_cache_busy(const char *dir, const char *key)
{
    char *p = vma_cache_path(dir, key, ".lock");
    int fd = open(p, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    g_free(p);
    if (fd < 0)
        return FALSE; /* no lock file: nobody writes a copy */
    gboolean busy = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);
    return busy;
}

/* ---- what is in the folder ---- */

static gboolean is_key(const char *s, size_t n)
{
    if (n != 32)
        return FALSE;
    for (size_t i = 0; i < n; i++)
        if (!g_ascii_isxdigit(s[i]) || g_ascii_isupper(s[i]))
            return FALSE;
    return TRUE;
}

static void entry_free(gpointer p)
{
    vma_cache_entry *e = p;
    g_free(e->archive);
    g_free(e->codec);
    g_free(e);
}

/* the key of a cache file's name, and what kind it is; FALSE for another file */
static gboolean split_name(const char *name, char key[33], const char **suffix)
{
    const char *dot = strchr(name, '.');
    if (!dot || !is_key(name, (size_t)(dot - name)))
        return FALSE;
    static const char *const known[] = {".idx", ".vma.zst", ".info", ".lock", ".part",
                                        ".compact", ".info-tmp", ".idx-tmp"};
    for (unsigned i = 0; i < G_N_ELEMENTS(known); i++)
        if (strcmp(dot, known[i]) == 0) {
            memcpy(key, name, 32);
            key[32] = 0;
            *suffix = known[i];
            return TRUE;
        }
    return FALSE;
}

/* the fields of KEY.info: "key=value" lines (values escaped by g_strescape) */
static void read_info(const char *dir, vma_cache_entry *e)
{
    char *p = vma_cache_path(dir, e->key, ".info");
    int64_t size;
    int fd = vma_cache_open_file(p, 64 << 10, &size, NULL);
    g_free(p);
    if (fd < 0)
        return;
    char *buf = g_malloc((size_t)size + 1);
    ssize_t got = vma_pread_all(fd, buf, (size_t)size, 0, NULL);
    close(fd);
    buf[got > 0 ? got : 0] = 0;
    char **lines = g_strsplit(buf, "\n", 0);
    for (char **l = lines; *l; l++) {
        char *eq = strchr(*l, '=');
        if (!eq)
            continue;
        *eq = 0;
        const char *v = eq + 1;
        if (strcmp(*l, "archive") == 0 && !e->archive)
            e->archive = g_strcompress(v);
        else if (strcmp(*l, "codec") == 0 && !e->codec)
            e->codec = g_strcompress(v);
        else if (strcmp(*l, "archive_size") == 0)
            e->archive_size = g_ascii_strtoull(v, NULL, 10);
        else if (strcmp(*l, "raw_frames") == 0)
            e->raw_frames = g_ascii_strtoull(v, NULL, 10);
    }
    g_strfreev(lines);
    g_free(buf);
}

GPtrArray *vma_cache_list(const char *dir, GError **err)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(entry_free);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return out;
        vma_set_errno(err, errno, "%s", dir);
        g_ptr_array_free(out, TRUE);
        return NULL;
    }
    GHashTable *by_key = g_hash_table_new(g_str_hash, g_str_equal);
    struct dirent *de;
    while ((de = readdir(d))) {
        char key[33];
        const char *suffix;
        struct stat st;
        if (!split_name(de->d_name, key, &suffix) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        vma_cache_entry *e = g_hash_table_lookup(by_key, key);
        if (!e) {
            e = g_new0(vma_cache_entry, 1);
            memcpy(e->key, key, 33);
            g_ptr_array_add(out, e);
            g_hash_table_insert(by_key, e->key, e);
        }
        e->bytes += (uint64_t)st.st_blocks * 512;
        if (strcmp(suffix, ".lock") != 0)
            e->last_used = MAX(e->last_used, (int64_t)st.st_mtim.tv_sec);
        if (strcmp(suffix, ".vma.zst") == 0)
            e->has_data = TRUE;
        else if (strcmp(suffix, ".idx") == 0)
            e->has_index = TRUE;
        else if (strcmp(suffix, ".part") == 0)
            e->partial = TRUE;
    }
    closedir(d);
    g_hash_table_destroy(by_key);
    for (guint i = 0; i < out->len; i++) {
        vma_cache_entry *e = g_ptr_array_index(out, i);
        read_info(dir, e);
        e->busy = vma_cache_busy(dir, e->key);
    }
    return out;
}

int vma_cache_remove_key(const char *dir, const char *key, gboolean force, GError **err)
{
    int lk = vma_cache_busy(dir, key) ? -1 : vma_cache_lock(dir, key, FALSE, NULL);
    if (lk < 0 && !force) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO,
                    "the cache %s is being written by another vma", key);
        return -1;
    }
    static const char *const suffixes[] = {".vma.zst", ".idx", ".info", ".part", ".compact",
                                           ".info-tmp", ".idx-tmp"};
    int rc = 0;
    for (unsigned i = 0; i < G_N_ELEMENTS(suffixes); i++) {
        char *p = vma_cache_path(dir, key, suffixes[i]);
        if (unlink(p) < 0 && errno != ENOENT) {
            vma_set_errno(err, errno, "cannot remove %s", p);
            rc = -1;
        }
        g_free(p);
    }
    char *p = vma_cache_path(dir, key, ".lock");
    unlink(p);
    g_free(p);
    if (lk >= 0)
        close(lk);
    return rc;
}

uint64_t vma_cache_limit(const char *dir)
{
    const char *env = g_getenv("VMA_CACHE_MB");
    if (env && *env) {
        char *end;
        guint64 mb = g_ascii_strtoull(env, &end, 10);
        if (!*end)
            return mb << 20;
    }
    /* a quarter of the file system the folder is on */
    struct statvfs v;
    if (statvfs(dir, &v) == 0)
        return (uint64_t)v.f_blocks * v.f_frsize / 4;
    return (uint64_t)16 << 30;
}

static gint by_last_use(gconstpointer a, gconstpointer b)
{
    const vma_cache_entry *x = *(vma_cache_entry *const *)a, *y = *(vma_cache_entry *const *)b;
    return x->last_used < y->last_used ? -1 : x->last_used > y->last_used;
}

int vma_cache_make_room(const char *dir, const char *keep, uint64_t need, GError **err)
{
    GPtrArray *list = vma_cache_list(dir, err);
    if (!list)
        return -1;
    uint64_t limit = vma_cache_limit(dir), used = 0;
    for (guint i = 0; i < list->len; i++)
        used += ((vma_cache_entry *)g_ptr_array_index(list, i))->bytes;
    g_ptr_array_sort(list, by_last_use);
    struct statvfs v;
    uint64_t free_bytes = statvfs(dir, &v) == 0 ? (uint64_t)v.f_bavail * v.f_frsize : UINT64_MAX;
    for (guint i = 0; i < list->len && (used + need > limit || need > free_bytes); i++) {
        vma_cache_entry *e = g_ptr_array_index(list, i);
        if (e->busy || (keep && strcmp(e->key, keep) == 0))
            continue;
        if (vma_cache_remove_key(dir, e->key, FALSE, NULL) == 0) {
            used -= MIN(used, e->bytes);
            free_bytes += e->bytes;
        }
    }
    g_ptr_array_free(list, TRUE);
    if (used + need > limit || need > free_bytes) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO,
                    "no room in the cache folder %s for about %" G_GUINT64_FORMAT
                    " MiB (limit %" G_GUINT64_FORMAT " MiB, VMA_CACHE_MB; %" G_GUINT64_FORMAT
                    " MiB free)", dir, need >> 20, limit >> 20,
                    free_bytes == UINT64_MAX ? 0 : free_bytes >> 20);
        return -1;
    }
    return 0;
}

int vma_cache_write_info(const char *dir, const char *key, const char *archive,
                         const vma_identity *id, vma_compress codec, uint64_t raw_frames,
                         GError **err)
{
    char *esc = g_strescape(archive, NULL);
    char *text = g_strdup_printf("archive=%s\narchive_size=%" G_GUINT64_FORMAT
                                 "\ncodec=%s\nraw_frames=%" G_GUINT64_FORMAT "\n",
                                 esc, id->size, vma_compress_name(codec), raw_frames);
    g_free(esc);
    char *p = vma_cache_path(dir, key, ".info");
    char *tmp = vma_cache_path(dir, key, ".info-tmp");
    unlink(tmp);
    int rc = vma_file_create(tmp, text, strlen(text), 0600, err);
    if (rc == 0 && rename(tmp, p) < 0) {
        vma_set_errno(err, errno, "cannot rename %s", tmp);
        unlink(tmp);
        rc = -1;
    }
    g_free(tmp);
    g_free(p);
    g_free(text);
    return rc;
}

void vma_cache_entries_free(GPtrArray *list)
{
    if (list)
        g_ptr_array_free(list, TRUE);
}
