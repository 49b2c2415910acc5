/*
 * secfile.c - permission checks of files with secrets (see secfile.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "secfile.h"
#include "wq.h"

static int
check(const struct stat *st, const char *path, const char *what, int secret,
    char *err, size_t errlen)
{
    unsigned mode = (unsigned)st->st_mode & 07777;
    const char *sp = what != NULL ? " " : "";

    if (what == NULL)
        what = "";
    if (st->st_mode & S_IWOTH)
        return wq_seterr(err, errlen, WQ_ECONFIG, "%s%s%s is writable by "
            "others (mode %04o): refused; chmod o-w it", what, sp, path,
            mode);
    if (secret && (st->st_mode & S_IROTH))
        wq_log_warn("config", "%s%s%s is readable by others (mode %04o): "
            "chmod o-r it", what, sp, path, mode);
    return 0;
}

int
wq_secfile_check(int fd, const char *path, const char *what, int secret,
    char *err, size_t errlen)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return wq_seterr(err, errlen, WQ_EIO, "%s: %s", path,
            strerror(errno));
    return check(&st, path, what, secret, err, errlen);
}

int
wq_secfile_check_path(const char *path, const char *what, int secret,
    char *err, size_t errlen)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return wq_seterr(err, errlen, WQ_EIO, "%s: %s", path,
            strerror(errno));
    return check(&st, path, what, secret, err, errlen);
}
