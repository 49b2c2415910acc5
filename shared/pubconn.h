/*
 * pubconn.h - one publishing connection: the layer that the producer's
 * publisher thread, the scheduler's broker and the C client share over a
 * transport handle (transport.h).
 *
 * It owns the handle, opens it again after a failure (with the reconnect
 * backoff of reconnect.h, which a caller consults before asking), keeps
 * the set of queues declared on it (each declared once per handle;
 * forgotten when a message is refused, so that a queue deleted behind
 * our back is declared again), counts the messages in flight, and hands
 * every broker verdict to the owner's on_confirm.  The owner keeps what
 * is its own: what a message is (a slot, an HTTP request, a batch entry),
 * when to give up on it, and what a verdict means to its caller.  The
 * broker's publish deadline is wq_transport_conf.publish_timeout_ms.
 *
 * The struct is visible so that an owner embeds it and creating one
 * allocates nothing (the C client returns WQ_ENOMEM rather than abort);
 * read its fields, change them only through these functions.  Remembering
 * a declared queue may fail for want of memory: it is then declared again
 * on its next use.  Not thread-safe: one thread calls everything, as for
 * the transport handle.
 */
#ifndef WQ_PUBCONN_H
#define WQ_PUBCONN_H

#include <stddef.h>

#include "reconnect.h"
#include "transport.h"

struct wq_pubconn {
    struct wq_transport_conf tc;    /* on_confirm is ours; see below */
    wq_confirm_fn *on_confirm;      /* the owner's */
    void *on_confirm_user;
    wq_transport *t;                /* NULL while closed */
    struct wq_reconnect retry;      /* when to open again after a failure */
    size_t inflight;                /* published, no verdict yet */
    char **names;                   /* declared queues: open addressing */
    size_t cap, used, last;
};

/*
 * wq_pubconn_init prepares pc for the transport `tc` (copied; the strings
 * it points to are borrowed and must outlive pc), without connecting.
 * tc->on_confirm gets every verdict, with tc->on_confirm_user.  The
 * reconnect backoff starts at min_ms and doubles up to max_ms.
 */
void wq_pubconn_init(struct wq_pubconn *pc, const struct wq_transport_conf *tc,
    int64_t min_ms, int64_t max_ms, enum wq_jitter jitter);

/*
 * wq_pubconn_open opens the handle if it is closed, whatever the backoff
 * says (callers ask wq_reconnect_due(&pc->retry) first when they honour
 * it).  0 when open; else the transport's WQ_E* with err set, and the
 * backoff has grown.  Blocks while connecting.
 */
int wq_pubconn_open(struct wq_pubconn *pc, char *err, size_t errlen);

/*
 * wq_pubconn_declare declares `queue` on the open handle unless it did
 * already.  0, or the transport's WQ_E*.
 */
int wq_pubconn_declare(struct wq_pubconn *pc, const char *queue, char *err,
    size_t errlen);

/*
 * wq_pubconn_publish queues one message on the open handle (declare
 * first); its verdict comes through on_confirm with `opaque`, possibly
 * inside this call.  0, or the transport's WQ_E* and no verdict will
 * come.  Allocates nothing.
 */
int wq_pubconn_publish(struct wq_pubconn *pc, const char *queue,
    const void *key, size_t keylen, const void *body, size_t len,
    void *opaque, char *err, size_t errlen);

/* wq_pubconn_flush is wq_transport_flush on the open handle. */
int wq_pubconn_flush(struct wq_pubconn *pc, int timeout_ms, char *err,
    size_t errlen);

/*
 * wq_pubconn_drop closes the handle, waiting up to timeout_ms (every
 * message in flight gets its verdict, inside this call), forgets the
 * declared queues and holds the next open for the current backoff step.
 * Nothing happens when closed.
 */
void wq_pubconn_drop(struct wq_pubconn *pc, int timeout_ms);

/* wq_pubconn_forget forgets the declared queues: each is declared again
 * on its next use. */
void wq_pubconn_forget(struct wq_pubconn *pc);

/* True for an error after which the handle is no good any more. */
int wq_pubconn_broken(int rc);

/* wq_pubconn_free drops the handle (timeout_ms as for drop) and frees
 * what pc holds; pc itself is the caller's. */
void wq_pubconn_free(struct wq_pubconn *pc, int timeout_ms);

#endif
