/* lvma_proc.c - child processes for the commands that drive other programs
 * (serve and convert start nbdkit and qemu-img, mount starts vma-fuse, the
 * targets run lvcreate and zfs): the one way Lua runs a program, without a
 * shell: start one (in the background, or to its end with its output
 * captured), see whether it has ended without blocking, send it a signal;
 * sleep; a private temporary folder.  The children start with
 * the default signal dispositions and an empty signal mask, whatever
 * vma.os.catch_signals() set in this process. */
#define _GNU_SOURCE
#include "lvma.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const struct {
    const char *name;
    int sig;
} signals[] = {
    {"TERM", SIGTERM}, {"INT", SIGINT}, {"KILL", SIGKILL}, {"HUP", SIGHUP}, {"QUIT", SIGQUIT},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
};

/* a redirection of opts[field] onto fd: a path (opened for reading when fd
 * is 0, else created or truncated); *given tells whether there was one */
static int redirect(lua_State *L, int opts, const char *field, int fd,
                    posix_spawn_file_actions_t *fa, gboolean *given)
{
    *given = FALSE;
    if (!lua_istable(L, opts))
        return 0;
    lua_getfield(L, opts, field);
    const char *path = lua_tostring(L, -1);
    int rc = 0;
    if (path) {
        *given = TRUE;
        rc = posix_spawn_file_actions_addopen(fa, fd, path,
                                              fd == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_TRUNC,
                                              0600);
    }
    lua_pop(L, 1);
    return rc;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* read both pipes to their end, whichever has something (a child that
 * fills one while we wait on the other never blocks) */
static void drain(int out, int err, GString *o, GString *e)
{
    struct pollfd p[2] = {{out, POLLIN, 0}, {err, POLLIN, 0}};
    GString *to[2] = {o, e};
    char buf[4096];
    int open_n = 2;
    while (open_n > 0) {
        int r = poll(p, 2, -1);
        if (r < 0 && errno == EINTR)
            continue; /* the child has the signal too: it ends, or we wait */
        if (r < 0)
            break;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            ssize_t n = read(p[i].fd, buf, sizeof(buf));
            if (n > 0) {
                g_string_append_len(to[i], buf, n);
            } else if (n == 0 || errno != EINTR) {
                p[i].fd = -1;
                open_n--;
            }
        }
    }
}

/* push how the child ended: "exit", status | "signal", signo */
static int push_status(lua_State *L, int st)
{
    if (WIFSIGNALED(st)) {
        lua_pushliteral(L, "signal");
        lua_pushinteger(L, WTERMSIG(st));
    } else {
        lua_pushliteral(L, "exit");
        lua_pushinteger(L, WEXITSTATUS(st));
    }
    return 2;
}

/* vma.os.spawn({prog, arg...} [, {stdin=path, stdout=path, stderr=path,
 * capture=bool}]) -> pid | nil, message: the program is looked up in
 * $PATH, no shell.  With capture, its standard output and error are pipes
 * read here until it ends (standard input /dev/null unless given), and
 * the call returns how it ended, and what it wrote: "exit", status |
 * "signal", signo, then stdout, stderr */
static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n >= 1, 1, "an empty command");
    gboolean capture = FALSE;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "capture");
        capture = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    char **argv = g_new0(char *, n + 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        const char *s = lua_tostring(L, -1);
        if (!s) {
            g_strfreev(argv);
            return luaL_argerror(L, 1, "the command's words must be strings");
        }
        argv[i - 1] = g_strdup(s);
        lua_pop(L, 1);
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    sigset_t def, none;
    sigemptyset(&none);
    sigemptyset(&def);
    for (unsigned i = 0; i < G_N_ELEMENTS(signals); i++)
        sigaddset(&def, signals[i].sig);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    gboolean has_in, has_out, has_err;
    int rc = redirect(L, 2, "stdin", 0, &fa, &has_in);
    if (!rc && capture) {
        /* the pipes' own ends close at exec (O_CLOEXEC); dup2 clears it on
         * the child's 1 and 2 */
        if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
            rc = errno;
        if (!rc)
            rc = posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
        if (!rc)
            rc = posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
        if (!rc && !has_in)
            rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    } else if (!rc) {
        rc = redirect(L, 2, "stdout", 1, &fa, &has_out);
        if (!rc)
            rc = redirect(L, 2, "stderr", 2, &fa, &has_err);
    }
    pid_t pid = -1;
    if (!rc)
        rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close_fd(&outp[1]);
    close_fd(&errp[1]);
    if (rc) {
        close_fd(&outp[0]);
        close_fd(&errp[0]);
        int r = lvma_push_errno(L, rc, "cannot run %s", argv[0]);
        g_strfreev(argv);
        return r;
    }
    g_strfreev(argv);
    if (!capture) {
        lua_pushinteger(L, pid);
        return 1;
    }
    GString *out = g_string_new(NULL), *err = g_string_new(NULL);
    drain(outp[0], errp[0], out, err);
    close_fd(&outp[0]);
    close_fd(&errp[0]);
    int st = 0;
    pid_t w;
    do
        w = waitpid(pid, &st, 0);
    while (w < 0 && errno == EINTR);
    int nret;
    if (w < 0) {
        nret = lvma_push_errno(L, errno, "cannot wait for process %d", (int)pid);
    } else {
        nret = push_status(L, st);
        lua_pushlstring(L, out->str, out->len);
        lua_pushlstring(L, err->str, err->len);
        nret += 2;
    }
    g_string_free(out, TRUE);
    g_string_free(err, TRUE);
    return nret;
}

/* vma.os.wait(pid [, nohang]) -> "exit", status | "signal", signo | false (with
 * nohang: still running) | nil, message */
static int l_wait(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int nohang = lua_toboolean(L, 2);
    int st;
    pid_t r;
    do
        r = waitpid(pid, &st, nohang ? WNOHANG : 0);
    while (r < 0 && errno == EINTR && !vma_interrupted());
    if (r < 0)
        return lvma_push_errno(L, errno, "cannot wait for process %d", (int)pid);
    if (r == 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    return push_status(L, st);
}

/* vma.os.kill(pid, sig): sig a number or "TERM", "INT", "KILL", "HUP" ...
 * -> true | nil, message */
static int l_kill(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    luaL_argcheck(L, pid > 0, 1, "not a process id");
    int sig = -1;
    if (lua_isinteger(L, 2)) {
        sig = (int)lua_tointeger(L, 2);
    } else {
        const char *name = luaL_optstring(L, 2, "TERM");
        if (strncmp(name, "SIG", 3) == 0)
            name += 3;
        for (unsigned i = 0; i < G_N_ELEMENTS(signals); i++)
            if (strcmp(name, signals[i].name) == 0)
                sig = signals[i].sig;
    }
    luaL_argcheck(L, sig >= 0 && sig < 65, 2, "unknown signal");
    if (kill(pid, sig) < 0)
        return lvma_push_errno(L, errno, "cannot signal process %d", (int)pid);
    lua_pushboolean(L, 1);
    return 1;
}

/* vma.os.sleep(seconds): returns early when a signal arrives */
static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    if (s > 0) {
        struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* vma.os.mkdtemp(template) -> path | nil, message: a new folder (mode 0700);
 * the template ends with XXXXXX */
static int l_mkdtemp(lua_State *L)
{
    const char *t = luaL_checkstring(L, 1);
    char *p = g_strdup(t);
    if (!mkdtemp(p)) {
        g_free(p);
        return lvma_push_errno(L, errno, "cannot create a folder like %s", t);
    }
    lua_pushstring(L, p);
    g_free(p);
    return 1;
}

static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

/* vma.os.fork() -> pid (0 in the child) | nil, message: for workers that run
 * Lua code of their own (vma catalog --jobs); stdio is flushed first so
 * that nothing buffered is written twice.  Fork before any archive is
 * opened: a child has only the thread that forked. */
static int l_fork(lua_State *L)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return lvma_push_errno(L, errno, "fork");
    lua_pushinteger(L, pid);
    return 1;
}

/* vma.os.realpath(path) -> absolute path | nil, message */
static int l_realpath(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char *r = realpath(path, NULL);
    if (!r)
        return lvma_push_errno(L, errno, "%s", path);
    lua_pushstring(L, r);
    free(r);
    return 1;
}

static const luaL_Reg proc_funcs[] = {
    {"spawn", l_spawn},
    {"wait", l_wait},
    {"kill", l_kill},
    {"sleep", l_sleep},
    {"mkdtemp", l_mkdtemp},
    {"getpid", l_getpid},
    {"realpath", l_realpath},
    {"fork", l_fork},
    {NULL, NULL},
};

void lvma_open_proc(lua_State *L)
{
    luaL_setfuncs(L, proc_funcs, 0);
}
