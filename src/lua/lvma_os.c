/* lvma_os.c - the file and process helpers of the Lua module "vma" (the
 * table vma.os; the processes in lvma_proc.c), over the
 * helpers of libvma (os.c): what the bundled commands need beyond Lua's own
 * io and os libraries - stat with block-device sizes, new files that never
 * replace one, renames that never replace, signals that stop long work. */
#define _GNU_SOURCE
#include "lvma.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *type_name(mode_t m)
{
    return S_ISREG(m) ? "file" : S_ISBLK(m) ? "block" : S_ISDIR(m) ? "directory"
         : S_ISFIFO(m) ? "fifo" : S_ISCHR(m) ? "char" : S_ISLNK(m) ? "link"
         : S_ISSOCK(m) ? "socket" : "other";
}

/* vma.os.stat(path) -> {type=, size=, mtime=, mode=, uid=, gid=} | nil, msg;
 * block devices report their size.  vma.os.lstat: the same of a symbolic link
 * itself (type "link") */
static int do_stat(lua_State *L, gboolean follow)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if ((follow ? stat(path, &st) : lstat(path, &st)) < 0)
        return lvma_push_errno(L, errno, "cannot stat %s", path);
    lua_Integer size = st.st_size;
    if (S_ISBLK(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        int64_t sz = fd >= 0 ? vma_fd_size(fd, NULL) : -1;
        if (sz >= 0)
            size = (lua_Integer)sz;
        if (fd >= 0)
            close(fd);
    }
    lua_createtable(L, 0, 4);
    lvma_set_str(L, "type", type_name(st.st_mode));
    lvma_set_int(L, "size", size);
    lvma_set_int(L, "mtime", (lua_Integer)st.st_mtime);
    lvma_set_int(L, "mode", (lua_Integer)(st.st_mode & 07777));
    lvma_set_int(L, "uid", (lua_Integer)st.st_uid);
    lvma_set_int(L, "gid", (lua_Integer)st.st_gid);
    return 1;
}

static int l_stat(lua_State *L) { return do_stat(L, TRUE); }
static int l_lstat(lua_State *L) { return do_stat(L, FALSE); }

/* vma.os.addresses() -> { {name=, family="inet"|"inet6", address=}... }: the
 * addresses of this host's interfaces that are up, loopback left out */
static int l_addresses(lua_State *L)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) < 0)
        return lvma_push_errno(L, errno, "cannot list the network interfaces");
    lua_newtable(L);
    int n = 0;
    for (struct ifaddrs *i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
            continue;
        int fam = i->ifa_addr->sa_family;
        if (fam != AF_INET && fam != AF_INET6)
            continue;
        char host[NI_MAXHOST];
        socklen_t len = fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (getnameinfo(i->ifa_addr, len, host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0)
            continue;
        lua_createtable(L, 0, 3);
        lvma_set_str(L, "name", i->ifa_name);
        lvma_set_str(L, "family", fam == AF_INET ? "inet" : "inet6");
        lvma_set_str(L, "address", host);
        lua_rawseti(L, -2, ++n);
    }
    freeifaddrs(list);
    return 1;
}

/* vma.os.is_all_holes(path) -> true | false | nil, msg: a regular file that
 * holds no data at all (as a volume just allocated by qmrestore) */
static int l_is_all_holes(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lvma_push_errno(L, errno, "cannot open %s", path);
    GError *e = NULL;
    int rc = vma_is_all_holes(fd, &e);
    close(fd);
    if (rc < 0)
        return lvma_push_error(L, e);
    lua_pushboolean(L, rc);
    return 1;
}

/* vma.os.access(path, how) -> true | nil, msg: how is a string of "r", "w",
 * "x" (what this process may do with path; "" : it exists) */
static int l_access(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *how = luaL_optstring(L, 2, "");
    int mode = F_OK;
    for (const char *p = how; *p; p++) {
        if (*p == 'r')
            mode |= R_OK;
        else if (*p == 'w')
            mode |= W_OK;
        else if (*p == 'x')
            mode |= X_OK;
        else
            return luaL_argerror(L, 2, "r, w or x");
    }
    if (access(path, mode) < 0)
        return lvma_push_errno(L, errno, "%s", path);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer mode = luaL_optinteger(L, 2, 0755);
    if (mkdir(path, (mode_t)mode) < 0)
        return lvma_push_errno(L, errno, "cannot create directory %s", path);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_rmdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (rmdir(path) < 0)
        return lvma_push_errno(L, errno, "cannot remove directory %s", path);
    lua_pushboolean(L, 1);
    return 1;
}

/* vma.os.write_file(path, data [, mode]): a new file (never an existing one),
 * fsynced; mode 0600 unless given */
static int l_write_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_Integer mode = luaL_optinteger(L, 3, 0600);
    GError *e = NULL;
    if (vma_file_create(path, data, len, (unsigned)mode, &e) < 0)
        return lvma_push_error(L, e);
    lua_pushboolean(L, 1);
    return 1;
}

/* vma.os.rename(old, new): never replaces an existing file */
static int l_rename(lua_State *L)
{
    GError *e = NULL;
    if (vma_rename_noreplace(luaL_checkstring(L, 1), luaL_checkstring(L, 2), &e) < 0)
        return lvma_push_error(L, e);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_fsync_dir(lua_State *L)
{
    GError *e = NULL;
    if (vma_fsync_dir(luaL_checkstring(L, 1), &e) < 0)
        return lvma_push_error(L, e);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_isatty(lua_State *L)
{
    int fd = (int)luaL_optinteger(L, 1, 1);
    lua_pushboolean(L, isatty(fd));
    return 1;
}

/* columns of the terminal on fd (default stderr): $COLUMNS when it is not
 * one, 80 when nothing tells */
static int l_terminal_width(lua_State *L)
{
    int fd = (int)luaL_optinteger(L, 1, 2);
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        lua_pushinteger(L, ws.ws_col);
        return 1;
    }
    const char *c = getenv("COLUMNS");
    long n = c ? strtol(c, NULL, 10) : 0;
    lua_pushinteger(L, n >= 10 && n <= 10000 ? n : 80);
    return 1;
}

static void on_signal(int sig)
{
    (void)sig;
    /* every signal only sets the flag: a second Ctrl-C or SIGTERM during
     * the clean-up must not cut the clean-up short */
    vma_interrupt();
}

/* vma.os.catch_signals(): SIGINT, SIGTERM and SIGHUP stop long work at the next
 * extent (and interrupt blocked reads and writes), so that the caller can
 * clean up; SIGPIPE is ignored, so that a closed output is an error that
 * is handled like any other */
static int l_catch_signals(lua_State *L)
{
    (void)L;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* vma.os.clock(): seconds on a monotonic clock (for durations) */
static int l_clock(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int l_interrupted(lua_State *L)
{
    lua_pushboolean(L, vma_interrupted());
    return 1;
}

static const luaL_Reg os_funcs[] = {
    {"stat", l_stat},
    {"lstat", l_lstat},
    {"access", l_access},
    {"addresses", l_addresses},
    {"is_all_holes", l_is_all_holes},
    {"mkdir", l_mkdir},
    {"rmdir", l_rmdir},
    {"write_file", l_write_file},
    {"rename", l_rename},
    {"fsync_dir", l_fsync_dir},
    {"isatty", l_isatty},
    {"terminal_width", l_terminal_width},
    {"catch_signals", l_catch_signals},
    {"interrupted", l_interrupted},
    {"clock", l_clock},
    {NULL, NULL},
};

/* vma.os: the helpers of this file and of lvma_proc.c, in a table of their
 * own beside the archive functions of vma */
void lvma_open_os(lua_State *L)
{
    luaL_newlib(L, os_funcs);
    lvma_open_proc(L);
    lua_setfield(L, -2, "os");
}
