/*
 * uuid.c - UUIDv7 generation, formatting and parsing (see uuid.h).
 *
 * The generator keeps three things behind one mutex: the timestamp and
 * counter of the last id (for strict ordering) and a block of random
 * bytes from getrandom(2), so that one system call serves many ids.  A
 * pthread_atfork handler holds the mutex across fork() and empties the
 * block in the child: a child must not hand out the random bits its
 * parent will also use.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <stdlib.h>
#include <sys/random.h>

#include <openssl/evp.h>

#include "clock.h"

#include "uuid.h"

#define RAND_BLOCK   256
#define COUNTER_MAX  0xfff          /* rand_a is 12 bits */
#define COUNTER_SEED 0x7ff          /* a new ms starts at or below this */
#define MS_MAX       ((int64_t)0xffffffffffff)

static struct {
    pthread_mutex_t lock;
    int64_t last_ms;
    unsigned counter;
    uint8_t rand[RAND_BLOCK];
    size_t rand_pos;                /* RAND_BLOCK: empty */
} gen = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .rand_pos = RAND_BLOCK,
};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
/* Forks this process has come through as the child (wq_uuid_seq_stamp). */
static unsigned forks;

static void
fork_prepare(void)
{
    pthread_mutex_lock(&gen.lock);
}

static void
fork_parent(void)
{
    pthread_mutex_unlock(&gen.lock);
}

static void
fork_child(void)
{
    memset(gen.rand, 0, sizeof gen.rand);
    gen.rand_pos = RAND_BLOCK;
    forks++;
    pthread_mutex_unlock(&gen.lock);
}

static void
atfork_register(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Takes `n` random bytes from the block, refilling it as needed.  Called
 * with gen.lock held.  Returns 0 or WQ_EIO. */
static int
take_random(uint8_t *out, size_t n)
{
    while (n > 0) {
        size_t k;

        if (gen.rand_pos == RAND_BLOCK) {
            size_t got = 0;

            while (got < RAND_BLOCK) {
                ssize_t r = getrandom(gen.rand + got, RAND_BLOCK - got, 0);

                if (r < 0) {
                    if (errno == EINTR)
                        continue;
                    return WQ_EIO;
                }
                got += (size_t)r;
            }
            gen.rand_pos = 0;
        }
        k = RAND_BLOCK - gen.rand_pos;
        if (k > n)
            k = n;
        memcpy(out, gen.rand + gen.rand_pos, k);
        /* used bits do not linger in memory */
        memset(gen.rand + gen.rand_pos, 0, k);
        gen.rand_pos += k;
        out += k;
        n -= k;
    }
    return 0;
}

int
wq_uuid_v7(uint8_t out[16])
{
    uint8_t r[10];      /* 2 bytes for a counter seed, 8 for rand_b */
    int64_t now, ms;
    unsigned counter;
    int rc;

    pthread_once(&atfork_once, atfork_register);
    now = wq_clock_wall_ms();
    if (now < 0)
        now = 0;
    if (now > MS_MAX)
        now = MS_MAX;

    pthread_mutex_lock(&gen.lock);
    if ((rc = take_random(r, sizeof r)) != 0) {
        pthread_mutex_unlock(&gen.lock);
        return rc;
    }
    if (now > gen.last_ms) {
        gen.last_ms = now;
        gen.counter = ((unsigned)r[0] << 8 | r[1]) & COUNTER_SEED;
    } else if (gen.counter < COUNTER_MAX) {
        /* same millisecond, or the clock went back: count on */
        gen.counter++;
    } else {
        /* counter spent: borrow the next millisecond (RFC 9562 6.2) */
        if (gen.last_ms < MS_MAX)
            gen.last_ms++;
        gen.counter = ((unsigned)r[0] << 8 | r[1]) & COUNTER_SEED;
    }
    ms = gen.last_ms;
    counter = gen.counter;
    pthread_mutex_unlock(&gen.lock);

    out[0] = (uint8_t)(ms >> 40);
    out[1] = (uint8_t)(ms >> 32);
    out[2] = (uint8_t)(ms >> 24);
    out[3] = (uint8_t)(ms >> 16);
    out[4] = (uint8_t)(ms >> 8);
    out[5] = (uint8_t)ms;
    out[6] = (uint8_t)(0x70 | (counter >> 8));
    out[7] = (uint8_t)counter;
    out[8] = (uint8_t)(0x80 | (r[2] & 0x3f));
    memcpy(out + 9, r + 3, 7);
    memset(r, 0, sizeof r);
    return 0;
}

void
wq_uuid_seq_stamp(struct wq_uuid_seq *seq, uint8_t id[16])
{
    uint64_t b;

    if (!seq->seeded || seq->forks != forks) {
        /* the id's own random bits start the sequence */
        seq->next = wq_uuid_rand_b(id) & ((UINT64_C(1) << 61) - 1);
        seq->seeded = 1;
        seq->forks = forks;
    }
    b = seq->next++;
    id[8] = (uint8_t)(0x80 | ((b >> 56) & 0x3f));
    for (int i = 9; i < 16; i++)
        id[i] = (uint8_t)(b >> (8 * (15 - i)));
}

void
wq_uuid_format(const uint8_t in[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[in[i] >> 4];
        *p++ = hex[in[i] & 0x0f];
    }
    *p = '\0';
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
wq_uuid_parse(const char *s, uint8_t out[16])
{
    uint8_t id[16];
    int n = 0;

    if (s == NULL)
        return WQ_EINVAL;
    /* Reads at most up to the first NUL, so a short string is safe. */
    for (int i = 0; i < 36; i++) {
        int hi, lo;

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return WQ_EINVAL;
            continue;
        }
        if ((hi = hexval(s[i])) < 0 || (lo = hexval(s[i + 1])) < 0)
            return WQ_EINVAL;
        id[n++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    if (s[36] != '\0')
        return WQ_EINVAL;
    memcpy(out, id, sizeof id);
    return 0;
}

int64_t
wq_uuid_v7_time_ms(const uint8_t in[16])
{
    if ((in[6] >> 4) != 7 || (in[8] & 0xc0) != 0x80)
        return WQ_EINVAL;
    return (int64_t)in[0] << 40 | (int64_t)in[1] << 32 |
        (int64_t)in[2] << 24 | (int64_t)in[3] << 16 |
        (int64_t)in[4] << 8 | (int64_t)in[5];
}

int
wq_uuid_for_key(const char *queue, const char *key, uint8_t out[16])
{
    if (queue == NULL || key == NULL)
        return WQ_EINVAL;
    wq_uuid_for_key_n(queue, strlen(queue), key, strlen(key), out);
    return 0;
}

/*
 * SHA-1 fetched once from the default provider (kept for the process's
 * life).  EVP_sha1() in EVP_DigestInit_ex makes OpenSSL 3 fetch the
 * implementation again at every call, under its store's lock and
 * through its name tables: 0.46-0.52 µs a call in a loop against
 * 0.17-0.18 fetched once.  A worker checks the UUIDv5 of every keyed
 * envelope it decodes; at 2,000 tasks/s, where each call finds those
 * tables cold, libcrypto's share of its CPU fell by a quarter (perf,
 * make bench-e2e).
 */
static EVP_MD *sha1_md;
static uint8_t key_ns[16];          /* WQ_UUID_KEY_NAMESPACE's bytes */
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;

static void
sha1_fetch(void)
{
    if (wq_uuid_parse(WQ_UUID_KEY_NAMESPACE, key_ns) != 0)
        abort();                /* a constant: cannot happen */
    sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL);
}

void
wq_uuid_for_key_n(const char *queue, size_t qlen, const char *key,
    size_t klen, uint8_t out[16])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx;
    int ok;

    if ((ctx = EVP_MD_CTX_new()) == NULL)
        abort();                /* out of memory: as xmalloc */
    (void)pthread_once(&sha1_once, sha1_fetch);
    ok = EVP_DigestInit_ex(ctx, sha1_md != NULL ? sha1_md : EVP_sha1(),
        NULL) == 1
        && EVP_DigestUpdate(ctx, key_ns, sizeof key_ns) == 1
        && EVP_DigestUpdate(ctx, queue, qlen) == 1
        && EVP_DigestUpdate(ctx, ":", 1) == 1
        && EVP_DigestUpdate(ctx, key, klen) == 1
        && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= 16;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        abort();                /* SHA-1 always exists in libcrypto */
    memcpy(out, md, 16);
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x50);     /* version 5 */
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);     /* variant 10 */
}
