/* child.c - a helper program (lzop) run as a child process: its standard
 * input is a socket we write to, its standard output a descriptor of ours,
 * its standard error a pipe that we read only to explain a failure (so that
 * nothing of it reaches our own standard error). */
#define _GNU_SOURCE
#include "codec/codec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void close_pair(int p[2])
{
    for (int i = 0; i < 2; i++)
        if (p[i] >= 0) {
            close(p[i]);
            p[i] = -1;
        }
}

gboolean vma_child_start(vma_child *c, const char *const argv[], int out_fd, int *from_child,
                         GError **err)
{
    int sv[2] = {-1, -1}, pp[2] = {-1, -1}, ep[2] = {-1, -1};
    c->pid = 0;
    c->to_child = -1;
    c->errors = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        vma_set_errno(err, errno, "socketpair");
        return FALSE;
    }
    if ((out_fd < 0 && pipe2(pp, O_CLOEXEC) < 0) || pipe2(ep, O_CLOEXEC) < 0) {
        vma_set_errno(err, errno, "pipe");
        close_pair(sv);
        close_pair(pp);
        return FALSE;
    }
    pid_t pid = fork();
    if (pid < 0) {
        vma_set_errno(err, errno, "fork");
        close_pair(sv);
        close_pair(pp);
        close_pair(ep);
        return FALSE;
    }
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        if (dup2(sv[1], 0) < 0 || dup2(out_fd >= 0 ? out_fd : pp[1], 1) < 0 || dup2(ep[1], 2) < 0)
            _exit(127);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(sv[1]);
    if (pp[1] >= 0)
        close(pp[1]);
    close(ep[1]);
    /* read only once the child has ended: never wait for it */
    fcntl(ep[0], F_SETFL, O_NONBLOCK);
    c->pid = pid;
    c->to_child = sv[0];
    c->errors = ep[0];
    if (from_child)
        *from_child = pp[0];
    return TRUE;
}

int vma_child_send(vma_child *c, const void *buf, size_t n, GError **err)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(c->to_child, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR && !vma_interrupted())
                continue;
            vma_set_errno(err, errno, "write to compressor");
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* the first line the child wrote on its standard error, without the
 * "lzop: " in front ("" when it wrote nothing) */
static char *child_message(vma_child *c)
{
    char buf[1024];
    ssize_t n = c->errors >= 0 ? read(c->errors, buf, sizeof(buf) - 1) : -1;
    if (n < 0)
        n = 0;
    buf[n] = 0;
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = 0;
    const char *s = buf;
    if (g_str_has_prefix(s, "lzop: "))
        s += 6;
    return g_strdup(s);
}

int vma_child_finish(vma_child *c, const char *what, GError **err)
{
    if (c->to_child >= 0) {
        close(c->to_child);
        c->to_child = -1;
    }
    if (c->pid <= 0)
        return 0; /* never started, or finished already */
    int status, ret = -1;
    gboolean waited = TRUE;
    while (waitpid(c->pid, &status, 0) < 0) {
        if (errno != EINTR) {
            vma_set_errno(err, errno, "waitpid");
            waited = FALSE;
            break;
        }
    }
    c->pid = 0;
    if (!waited) {
        /* the error is set */
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        ret = 0;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO,
                    "%s: the lzop program could not be run (is lzop installed?)", what);
    } else if (WIFEXITED(status)) {
        char *msg = child_message(c);
        /* lzop reports an input that ends early with the errno that an
         * isatty() probe left behind: "Inappropriate ioctl for device" */
        if (strstr(msg, "Inappropriate ioctl for device") || strstr(msg, g_strerror(ENOTTY)))
            g_set_error(err, VMA_ERROR, VMA_ERR_INCOMPLETE, "%s: the lzo stream is truncated", what);
        else if (*msg)
            g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "%s: lzop failed with exit status %d: %s",
                        what, WEXITSTATUS(status), msg);
        else
            g_set_error(err, VMA_ERROR, VMA_ERR_FORMAT, "%s: lzop failed with exit status %d",
                        what, WEXITSTATUS(status));
        g_free(msg);
    } else {
        g_set_error(err, VMA_ERROR, VMA_ERR_IO, "%s: lzop killed by signal %d", what,
                    WTERMSIG(status));
    }
    if (c->errors >= 0) {
        close(c->errors);
        c->errors = -1;
    }
    return ret;
}
