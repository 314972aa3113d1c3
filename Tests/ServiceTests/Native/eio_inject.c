// Test-only (IOErrorTests): loaded into the daemon with LD_PRELOAD, it makes file system calls
// on paths under $EIO_INJECT_UNDER fail with EIO, as a failing disk does, while the file named
// by $EIO_INJECT_SWITCH exists (so a test can turn the fault on and off while the daemon runs).
// $EIO_INJECT_OPS says what fails: "write" (write, pwrite, writev, fsync, fdatasync, and
// creating or renaming names: open with O_CREAT, mkdir, rename), "read" (read, pread, readv),
// or both. Each EIO returned is counted by appending a line to $EIO_INJECT_SWITCH".log".
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

static int op_on(const char *op) {
    const char *ops = getenv("EIO_INJECT_OPS");
    return ops && strstr(ops, op) != NULL;
}

static int armed(void) {
    const char *s = getenv("EIO_INJECT_SWITCH");
    struct stat st;
    return s && stat(s, &st) == 0;
}

static int is_under(const char *path) {
    const char *root = getenv("EIO_INJECT_UNDER");
    if (!root || !path) return 0;
    size_t n = strlen(root);
    return strncmp(path, root, n) == 0 && (path[n] == 0 || path[n] == '/' || path[n] == '-' || path[n] == '.');
}

// The folder a descriptor names (or the working folder for AT_FDCWD) into `out`.
static int fd_path(int fd, char *out, size_t size) {
    if (fd == AT_FDCWD) return getcwd(out, size) ? 0 : -1;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, size - 1);
    if (n <= 0) return -1;
    out[n] = 0;
    return 0;
}

// Whether `path`, relative to the folder `dir` names, lies under $EIO_INJECT_UNDER.
static int under_at(int dir, const char *path) {
    if (!path) return 0;
    if (path[0] == '/') return is_under(path);
    char base[PATH_MAX], full[2 * PATH_MAX];
    if (fd_path(dir, base, sizeof base) != 0) return 0;
    snprintf(full, sizeof full, "%s/%s", base, path);
    return is_under(full);
}

static int under(const char *path) { return under_at(AT_FDCWD, path); }

static int fd_under(int fd) {
    char target[PATH_MAX];
    return fd >= 0 && fd_path(fd, target, sizeof target) == 0 && is_under(target);
}

static int inject(const char *op, const char *what) {
    if (!op_on(op) || !armed()) return 0;
    const char *s = getenv("EIO_INJECT_SWITCH");
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s.log", s);
    int fd = REAL(open)(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        char line[64];
        int len = snprintf(line, sizeof line, "%s\n", what);
        REAL(write)(fd, line, (size_t)len);
        close(fd);
    }
    errno = EIO;
    return 1;
}

#define FD_CHECK(op, fd, what) \
    if (fd_under(fd) && inject(op, what)) return -1

ssize_t write(int fd, const void *buf, size_t n) { FD_CHECK("write", fd, "write"); return REAL(write)(fd, buf, n); }
ssize_t pwrite(int fd, const void *buf, size_t n, off_t o) { FD_CHECK("write", fd, "pwrite"); return REAL(pwrite)(fd, buf, n, o); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t o) { FD_CHECK("write", fd, "pwrite64"); return REAL(pwrite64)(fd, buf, n, o); }
ssize_t writev(int fd, const struct iovec *v, int c) { FD_CHECK("write", fd, "writev"); return REAL(writev)(fd, v, c); }
int fsync(int fd) { FD_CHECK("write", fd, "fsync"); return REAL(fsync)(fd); }
int fdatasync(int fd) { FD_CHECK("write", fd, "fdatasync"); return REAL(fdatasync)(fd); }

ssize_t read(int fd, void *buf, size_t n) { FD_CHECK("read", fd, "read"); return REAL(read)(fd, buf, n); }
ssize_t pread(int fd, void *buf, size_t n, off_t o) { FD_CHECK("read", fd, "pread"); return REAL(pread)(fd, buf, n, o); }
ssize_t pread64(int fd, void *buf, size_t n, off64_t o) { FD_CHECK("read", fd, "pread64"); return REAL(pread64)(fd, buf, n, o); }
ssize_t readv(int fd, const struct iovec *v, int c) { FD_CHECK("read", fd, "readv"); return REAL(readv)(fd, v, c); }

int mkdir(const char *p, mode_t m) {
    if (under(p) && inject("write", "mkdir")) return -1;
    return REAL(mkdir)(p, m);
}

int rename(const char *a, const char *b) {
    if ((under(a) || under(b)) && inject("write", "rename")) return -1;
    return REAL(rename)(a, b);
}

int renameat(int da, const char *a, int db, const char *b) {
    if ((under_at(da, a) || under_at(db, b)) && inject("write", "renameat")) return -1;
    return REAL(renameat)(da, a, db, b);
}

#define OPEN_BODY(real, ...)                                              \
    mode_t mode = 0;                                                      \
    if (flags & (O_CREAT | O_TMPFILE)) {                                  \
        va_list ap;                                                       \
        va_start(ap, flags);                                              \
        mode = va_arg(ap, mode_t);                                        \
        va_end(ap);                                                       \
    }                                                                     \
    if ((flags & O_CREAT) && under_at(dir, p) && inject("write", "open")) return -1; \
    return REAL(real)(__VA_ARGS__, flags, mode)

int open(const char *p, int flags, ...) { int dir = AT_FDCWD; OPEN_BODY(open, p); }
int open64(const char *p, int flags, ...) { int dir = AT_FDCWD; OPEN_BODY(open64, p); }
int openat(int dir, const char *p, int flags, ...) { OPEN_BODY(openat, dir, p); }
int openat64(int dir, const char *p, int flags, ...) { OPEN_BODY(openat64, dir, p); }
