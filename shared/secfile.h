/*
 * secfile.h - the permission check of files that hold secrets or decide
 * what runs: the tokens file, *_file secrets, the TLS key and the
 * configuration file.
 *
 * The rule: a file that others (not the owner, not the group) may write
 * is refused, since whoever writes it decides what workq trusts (a token,
 * a password, a handler program); a file with a secret that others may
 * read is accepted with a warning, since the secret may already be out.
 * Group rights are left alone: the packaging gives the files to the
 * workq group.
 */
#ifndef WQ_SECFILE_H
#define WQ_SECFILE_H

#include <stddef.h>

/*
 * wq_secfile_check checks the file open on fd (path and `what`, as
 * "producer.tls_key" or NULL, only name it in messages).  Writable by others:
 * returns WQ_ECONFIG with err saying so and how to fix it.  Readable by
 * others and `secret`: logs a warning and returns 0.  fstat failing is
 * WQ_EIO.  Thread-safe.
 */
int wq_secfile_check(int fd, const char *path, const char *what, int secret,
    char *err, size_t errlen);

/* The same for a path (stat(2), following links). */
int wq_secfile_check_path(const char *path, const char *what, int secret,
    char *err, size_t errlen);

#endif
