/*
 * token.h - the bearer tokens of the HTTP API: making one, hashing it,
 * the tokens file, and the scopes a token grants.
 *
 * The tokens file (producer.tokens_file) holds one token a line, as the
 * SHA-256 of its text, so that the file never holds a usable secret:
 *
 *   # producer.tokens_file
 *   sha256:5c1e...(64 hex digits)...9a0b submit,read   # ci-deployer 2025-03
 *   sha256:0f4a...(64 hex digits)...77c2 admin         # ops
 *
 * `workq token new` makes a random token and prints it with its line;
 * `workq token hash` prints the line of a token it reads on stdin.
 *
 * Scopes: submit (POST tasks), read (GET tasks), admin (every scope, and
 * routes reserved to operators).  A line without scopes grants
 * submit,read.  A line whose first word does not start with "sha256:" is a
 * plaintext token, the form from before hashes: it is still accepted (the
 * loader hashes it and wipes the text) and counted, so that the producer
 * can warn; it is deprecated.  '#' starts a comment at the start of a
 * line or after white space; blank lines are skipped.  Any other content
 * rejects the whole file, with the line number.
 *
 * Tokens are compared by hash: the presented token is hashed (time
 * depends on its length only) and compared with every entry with
 * CRYPTO_memcmp, all entries every time, so the time taken says neither
 * whether nor which entry matched.  SHA-256 without salt is right for
 * random tokens of 256 bits (what `workq token new` makes); it is not a
 * password hash, so a token must never be a human-chosen password.
 *
 * Thread-safety: a loaded wq_tokens is read-only; check it from any
 * number of threads.
 */
#ifndef WQ_TOKEN_H
#define WQ_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "wq.h"

#define WQ_TOKEN_SCOPE_SUBMIT   0x1u
#define WQ_TOKEN_SCOPE_READ     0x2u
#define WQ_TOKEN_SCOPE_ADMIN    0x4u
/* What admin grants, and what a line without scopes grants. */
#define WQ_TOKEN_SCOPES_ALL     0x7u
#define WQ_TOKEN_SCOPES_DEFAULT (WQ_TOKEN_SCOPE_SUBMIT | WQ_TOKEN_SCOPE_READ)

#define WQ_TOKEN_HASH_LEN  32           /* SHA-256 */
#define WQ_TOKEN_MAX       1024         /* bytes in a token's text */
/* "sha256:" + 64 hex digits + NUL */
#define WQ_TOKEN_ENTRY_LEN (7 + 2 * WQ_TOKEN_HASH_LEN + 1)
/* A new token: "wq_" + 43 base64url characters (32 random bytes) + NUL */
#define WQ_TOKEN_NEW_LEN   (3 + 43 + 1)

typedef struct wq_tokens wq_tokens;

/*
 * wq_token_generate writes a new random token ("wq_" and 32 bytes of
 * getrandom(2) in base64url) into out, which must hold
 * WQ_TOKEN_NEW_LEN bytes.  Returns 0 or WQ_EIO.  Thread-safe.
 */
int wq_token_generate(char out[WQ_TOKEN_NEW_LEN]);

/*
 * wq_token_entry writes the tokens-file form of a token's hash,
 * "sha256:<64 hex digits>", into out (WQ_TOKEN_ENTRY_LEN bytes).
 * Returns 0, WQ_EINVAL for an empty token or one longer than
 * WQ_TOKEN_MAX or holding white space or control characters (it could
 * not be sent in a header), WQ_EIO if the hash failed.  Pure.
 */
int wq_token_entry(const char *token, size_t len,
    char out[WQ_TOKEN_ENTRY_LEN]);

/*
 * wq_token_scopes_parse reads "submit,read" (names separated by commas,
 * case-insensitive) into a mask; "admin" sets every bit.  Returns 0, or
 * WQ_EINVAL with err naming the unknown scope.
 */
int wq_token_scopes_parse(const char *s, unsigned *scopes, char *err,
    size_t errlen);

/* wq_token_scopes_text writes the mask as "submit,read" or "admin" into
 * buf and returns buf. */
const char *wq_token_scopes_text(unsigned scopes, char *buf, size_t len);

/*
 * wq_tokens_parse reads a tokens file's text (`len` bytes, may hold
 * NULs, which are an error).  `name` names it in errors ("NAME:LINE:
 * ..."); all errors are reported, one a line.  Returns 0 with *out owning
 * the result (wq_tokens_free), or WQ_EINVAL with err filled and *out
 * NULL.  Plaintext lines are hashed and their text not kept.
 */
int wq_tokens_parse(const char *text, size_t len, const char *name,
    wq_tokens **out, char *err, size_t errlen);

/*
 * wq_tokens_load reads and parses the file at `path` (at most 16 MiB).
 * Returns 0, WQ_EIO (cannot read) or WQ_EINVAL (content), err filled.
 * Blocks on the read.
 */
int wq_tokens_load(const char *path, wq_tokens **out, char *err,
    size_t errlen);

/* How many tokens, and how many of them were written in plaintext. */
size_t wq_tokens_count(const wq_tokens *t);
size_t wq_tokens_plaintext(const wq_tokens *t);

/*
 * wq_tokens_check hashes `presented` (len bytes) and returns the scopes
 * of the entry it matches, or 0 when none does (also for an empty or
 * too long token).  Every entry is compared, in constant time each.
 * A NULL t matches nothing.
 */
unsigned wq_tokens_check(const wq_tokens *t, const char *presented,
    size_t len);

/* wq_tokens_free wipes and frees the hashes.  NULL is fine. */
void wq_tokens_free(wq_tokens *t);

#endif
