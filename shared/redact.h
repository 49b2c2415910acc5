/*
 * redact.h - hides passwords that sit inside longer strings: connection
 * strings (libpq key=value and postgresql:// URIs), broker URLs
 * (amqp[s]://user:PASS@host) and librdkafka-style properties
 * (sasl.password=...).  Every output that may echo such a string (config
 * dump, config errors, wq_seterr messages, log lines, metric labels)
 * goes through it, so one function decides what a secret looks like.
 */
#ifndef WQ_REDACT_H
#define WQ_REDACT_H

#include <stddef.h>

#define WQ_REDACTED "<hidden>"

/*
 * wq_redact copies s into out (at most cap bytes with the NUL; cap may be
 * 0 with out NULL) with every password replaced by WQ_REDACTED:
 *   - the password of a URI's userinfo, SCHEME://user:PASS@host (but the
 *     placeholder "password" of help texts);
 *   - the value of any key ending in "password" (password, sslpassword,
 *     sasl.password, ...) written KEY=VALUE, with libpq's rules: spaces
 *     around '=', a value quoted with ' or " (backslash escapes inside),
 *     else up to white space (a backslash escapes the next byte); after
 *     '?' or '&' (a URI query) the value also ends at '&' or '#'.
 * Returns the length of the whole result, as snprintf does (so a result
 * was cut when it is >= cap).  Never fails, allocates nothing, thread-safe.
 */
size_t wq_redact(char *out, size_t cap, const char *s);

/*
 * wq_redact_dup returns a malloc'd redacted copy of s (NULL when out of
 * memory); caller frees.
 */
char *wq_redact_dup(const char *s);

/* wq_redact_inplace redacts buf (of cap bytes) in place, cutting the
 * result to fit.  Returns 1 if anything was hidden. */
int wq_redact_inplace(char *buf, size_t cap);

#endif
