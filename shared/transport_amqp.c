/*
 * transport_amqp.c - the RabbitMQ backend of transport.h, on rabbitmq-c
 * (AMQP 0-9-1): durable queues "workq.Q" (quorum or classic), persistent
 * messages with publisher confirms, manual acks with a bounded prefetch.
 *
 * Two connections per handle.  rabbitmq-c reads frames, not messages per
 * channel, so one connection that both publishes and consumes would have
 * to sort deliveries out of the confirm stream and back (and the broker's
 * flow control, which throttles a publishing connection, would then also
 * stall our acks).  RabbitMQ recommends separate connections for
 * publishers and consumers, so:
 *   - the publishing connection, opened by open(): channel 1 in confirm
 *     mode carries basic.publish and receives basic.ack/nack/return;
 *     channel 2 carries queue.declare, whose errors close that channel
 *     only (it is reopened on the next declare);
 *   - the consuming connection, opened by the first subscribe(): channel 1
 *     with basic.qos and one basic.consume per queue.
 * A producer therefore holds one connection, a worker two.
 *
 * Confirms: publish() returns right after the write; each message's
 * delivery tag (1, 2, ... per channel) indexes a ring holding its opaque,
 * and basic.ack/basic.nack (possibly `multiple`) settle ranges of it.
 * Messages are published with mandatory=1: an unroutable one (no such
 * queue) comes back as basic.return before its ack, and is reported as
 * refused.  A return carries no delivery tag, so every message carries its
 * tag in the header "x-workq-seq".  At most CONFIRM_WINDOW messages are
 * in flight; publish() blocks for confirms when the window is full.
 *
 * Acks: ack() records the delivery tag as finished; the acks go out in
 * batches (every ACK_BATCH tags, after ACK_DELAY_MS, when the prefetch
 * window is exhausted, and at close): one basic.ack multiple=1 for every
 * finished tag below the oldest unfinished delivery, and single acks for
 * the finished tags above it.  A multiple ack therefore never covers a
 * delivery the caller has not acked.  close() settles what is left in
 * runs (multiple ack / multiple nack with requeue) and lets a burst of
 * settlements land before the channel closes (see close_settle).
 *
 * Heartbeats: rabbitmq-c services them only inside its own calls.  Waits
 * in one connection are cut into slices so that the other connection
 * gets a heartbeat frame in time; an idle handle must still be called
 * (poll(), or flush(t, 0) for a producer) at least once per heartbeat
 * interval, or the broker drops the connection.
 *
 * on_confirm runs inside publish(), flush(), poll() or close() and must
 * not call back into the same handle.
 *
 * Memory: as in the Kafka backend, our own allocations abort on
 * exhaustion (alloc.h), as librdkafka's do; once warm only a returned
 * message, a new consumer or a larger ack batch allocates (deliveries
 * are pooled).  rabbitmq-c's own allocation failures
 * (a connection, a socket) come back as WQ_ENOMEM from open().
 *
 * A failed connection is never repaired here: every later call returns
 * WQ_EBROKER with the reason, deliveries can still be acked or nacked
 * (which only frees them), and close() frees everything.  Reconnecting is
 * the caller's job (close, then open again).  Not thread-safe, like every
 * transport handle, except wakeup(): an eventfd that poll() waits on next
 * to the consuming socket.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#if __has_include(<rabbitmq-c/ssl_socket.h>)
#include <rabbitmq-c/ssl_socket.h>
#define HAVE_AMQP_SSL 1
#endif
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#if __has_include(<amqp_ssl_socket.h>)
#include <amqp_ssl_socket.h>
#define HAVE_AMQP_SSL 1
#endif
#endif

#include "alloc.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "transport.h"

#define CH_PUBLISH 1            /* publishing connection: confirm mode */
#define CH_DECLARE 2            /* publishing connection: queue.declare */
#define CH_CONSUME 1            /* consuming connection */

#define FRAME_MAX          131072
#define CONNECT_TIMEOUT_MS 10000    /* TCP (and TLS) connect, login, when
                                       conf->connect_timeout_ms is 0 */
#define RPC_TIMEOUT_MS     30000    /* declare, qos, consume, ... */
#define CLOSE_RPC_MAX_MS   5000     /* channel/connection close at most */
#define CONFIRM_WINDOW     10000    /* unconfirmed messages at most */
#define CONFIRM_RING       16384    /* power of two >= CONFIRM_WINDOW */
#define PUBLISH_BLOCK_MS   30000    /* publish() waits this long for room */
#define DRAIN_EVERY        16       /* publishes between confirm reads */
#define ACK_BATCH          100      /* finished tags that force an ack */
#define ACK_DELAY_MS       50       /* oldest finished tag waits this long */
#define FREE_DELIVERIES    64       /* delivery structs kept for reuse */
#define SETTLE_BURST       24       /* ack/nack frames that make close wait */
#define SETTLE_WINDOW_MS   100      /* ... when sent within this long */
#define SETTLE_LINGER_MS   200      /* ... this long, at most */
#define SHORTSTR_MAX       255      /* AMQP shortstr (message-id) */

#define SEQ_HEADER "x-workq-seq"    /* delivery tag, to match basic.return */
#define KEY_HEADER "x-workq-key"    /* keys too long for message-id */
#define CONTENT_TYPE "application/msgpack"
#define CAPATH_DEFAULT "/etc/ssl/certs/ca-certificates.crt"

/* A ring entry: one published message between publish and verdict. */
enum { E_DONE = 0, E_WAIT, E_RETURNED };

struct pending {
    void *opaque;
    int state;
};

/* A basic.return waiting for its ack (rare: kept in a short list). */
struct returned {
    struct returned *next;
    uint64_t seq;
    char why[256];
};

struct conn {
    amqp_connection_state_t c;  /* NULL until opened */
    int up;                     /* 0: unusable, see why */
    uint64_t last_beat_ns;      /* our last explicit heartbeat */
    char why[WQ_ERRLEN];
};

struct consumer {
    char *queue;                /* without the "workq." prefix */
    char tag[32];
    int active;                 /* 0 after the broker cancelled it */
};

/* A delivery handed to the caller; `d` first so the pointers convert. */
struct delivery {
    wq_delivery d;
    struct wq_transport *owner;
    int live;                   /* 1 between poll and ack/nack */
    uint64_t tag;
    amqp_envelope_t env;
    struct delivery *prev, *next;   /* outstanding list, in tag order */
};

struct wq_transport {
    struct wq_transport_base base;

    /* From the configuration. */
    char *urlbuf;               /* amqp_parse_url points into it */
    struct amqp_connection_info ci; /* host, port: the node tried last */
    /* The nodes: the URL's first, then rabbitmq.hosts; a connection
     * tries them in turn from the one that answered last. */
    char *hostsbuf;             /* node_host points into it */
    char **node_host;
    int *node_port;
    int nnodes, node_cur;
    char *cacert;
    char *client_id;
    int quorum;
    int prefetch;
    int heartbeat;
    int connect_timeout_ms;     /* connect and login, each */
    wq_confirm_fn *on_confirm;
    void *on_confirm_user;
    void (*dead_bounds)(void *, const char *, int64_t *, int64_t *);
    void *dead_bounds_user;

    /* Publishing. */
    struct conn pub;
    int pub_ch_open;
    int decl_ch_open;
    int blocked;                /* connection.blocked from the broker */
    char blocked_why[128];
    struct pending *ring;       /* CONFIRM_RING entries, by tag */
    uint64_t lo;                /* lowest tag without a verdict */
    uint64_t next_seq;          /* tag of the next publish */
    size_t unconfirmed;
    struct returned *returns;
    int nbad;                   /* refused or failed since last flush */
    int bad_code;
    char bad_why[WQ_ERRLEN];

    /* Consuming. */
    struct conn con;
    int con_ch_open;
    struct consumer *consumers;
    size_t nconsumers;
    size_t ack_batch;
    struct delivery *out_head, *out_tail;   /* handed out, not acked */
    size_t nout;
    uint64_t *pend;             /* finished tags, ack not yet sent */
    size_t npend, pendcap;
    uint64_t pend_since_ns;     /* when pend became non-empty */
    uint64_t burst_start_ns;    /* settle frames sent since then: */
    size_t burst_frames;
    struct delivery *free_list;
    size_t nfree;
    int wake_fd;                /* eventfd: wakeup() from other threads */
    char cancel_why[WQ_ERRLEN];
};

/* --- small helpers ------------------------------------------------------ */

static struct timeval
ms_tv(int ms)
{
    struct timeval tv;

    if (ms < 0)
        ms = 0;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

static uint64_t
deadline_after(int ms)
{
    return wq_clock_mono_ns() + (uint64_t)(ms > 0 ? ms : 0) * 1000000u;
}

static int
min_int(int a, int b)
{
    return a < b ? a : b;
}

static amqp_bytes_t
bytes_of(const void *p, size_t len)
{
    amqp_bytes_t b;

    b.len = len;
    b.bytes = (void *)(uintptr_t)p;
    return b;
}

/* Length of an AMQP string for "%.*s", bounded. */
static int
blen(amqp_bytes_t b)
{
    return b.len > 1024 ? 1024 : (int)b.len;
}

/* tag_is compares a consumer tag of ours with one from the broker. */
static int
tag_is(const char *tag, amqp_bytes_t b)
{
    return strlen(tag) == b.len && memcmp(tag, b.bytes, b.len) == 0;
}

/* The longest slice of a wait before the other connection needs a
 * heartbeat: half the interval, or forever (INT32_MAX) without them. */
static int
beat_slice_ms(const struct wq_transport *t)
{
    return t->heartbeat > 0 ? t->heartbeat * 500 : INT32_MAX;
}

static void fail_pending(struct wq_transport *t, int code, const char *why);
static int conn_down(struct wq_transport *t, struct conn *c, const char *fmt,
    ...) WQ_PRINTFLIKE(3, 4);

/*
 * conn_down marks a connection unusable and keeps the first reason.  For
 * the publishing connection every unconfirmed message is failed with
 * that reason.  Returns WQ_EBROKER.
 */
static int
conn_down(struct wq_transport *t, struct conn *c, const char *fmt, ...)
{
    va_list ap;

    if (c->up) {
        c->up = 0;
        va_start(ap, fmt);
        vsnprintf(c->why, sizeof c->why, fmt, ap);
        va_end(ap);
        wq_log_warn("amqp", "%s connection down: %s",
            c == &t->pub ? "publishing" : "consuming", c->why);
    }
    if (c == &t->pub) {
        t->pub_ch_open = 0;
        t->decl_ch_open = 0;
        fail_pending(t, WQ_EBROKER, c->why);
    } else {
        t->con_ch_open = 0;
    }
    return WQ_EBROKER;
}

/* The error of a connection that is down, into err. */
static int
down_err(const struct conn *c, char *err, size_t errlen)
{
    return wq_seterr(err, errlen, WQ_EBROKER, "amqp: %s", c->why[0] != '\0'
        ? c->why : "the connection to RabbitMQ is not open");
}

static void
send_channel_close_ok(amqp_connection_state_t c, amqp_channel_t ch)
{
    amqp_channel_close_ok_t ok;

    memset(&ok, 0, sizeof ok);
    (void)amqp_send_method(c, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
}

static void
send_connection_close_ok(amqp_connection_state_t c)
{
    amqp_connection_close_ok_t ok;

    memset(&ok, 0, sizeof ok);
    (void)amqp_send_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
}

/*
 * rpc_check turns the reply of a synchronous call on channel `ch` of `c`
 * into 0 or an error in err, answering the broker's close as the protocol
 * asks.  A channel close leaves the connection up with *ch_open = 0 and
 * returns WQ_EBROKER (WQ_ENOENT for NOT_FOUND); anything else marks the
 * connection down.  `what` starts the message ("declare queue 'x'").
 */
static int
rpc_check(struct wq_transport *t, struct conn *c, amqp_channel_t ch,
    int *ch_open, amqp_rpc_reply_t r, const char *what, char *err,
    size_t errlen)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        conn_down(t, c, "%s: no reply from the broker", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        conn_down(t, c, "%s: %s", what,
            amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            int code = m->reply_code == AMQP_NOT_FOUND ? WQ_ENOENT
                : WQ_EBROKER;

            wq_seterr(err, errlen, code,
                "amqp: %s: the broker closed the channel: %u %.*s", what,
                (unsigned)m->reply_code, blen(m->reply_text),
                (const char *)m->reply_text.bytes);
            send_channel_close_ok(c->c, ch);
            if (ch_open != NULL)
                *ch_open = 0;
            return code;
        }
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;

            conn_down(t, c, "%s: the broker closed the connection: %u %.*s",
                what, (unsigned)m->reply_code, blen(m->reply_text),
                (const char *)m->reply_text.bytes);
            send_connection_close_ok(c->c);
            break;
        }
        conn_down(t, c, "%s: unexpected method 0x%08x from the broker",
            what, (unsigned)r.reply.id);
        break;
    }
    return down_err(c, err, errlen);
}

/* keepalive sends a heartbeat frame on a connection that has heartbeats
 * on and has not had one from us for half the interval. */
static void
keepalive(struct wq_transport *t, struct conn *c)
{
    amqp_frame_t hb;
    uint64_t now;
    int rc;

    if (c->c == NULL || !c->up || t->heartbeat <= 0)
        return;
    now = wq_clock_mono_ns();
    if (now - c->last_beat_ns < (uint64_t)t->heartbeat * 500000000u)
        return;
    memset(&hb, 0, sizeof hb);
    hb.frame_type = AMQP_FRAME_HEARTBEAT;
    hb.channel = 0;
    if ((rc = amqp_send_frame(c->c, &hb)) != AMQP_STATUS_OK)
        conn_down(t, c, "sending a heartbeat: %s", amqp_error_string2(rc));
    c->last_beat_ns = now;
}

/* --- connections --------------------------------------------------------- */

/*
 * conn_open_node connects, logs in and tunes one connection of t to the
 * node t->ci names, or returns WQ_EBROKER (WQ_ECONFIG for TLS setup,
 * WQ_ENOMEM) with err filled; on failure c->c is destroyed again.
 */
static int
conn_open_node(struct wq_transport *t, struct conn *c, const char *role,
    char *err, size_t errlen)
{
    amqp_table_entry_t caps[5], props[2];
    amqp_table_t captab, proptab;
    amqp_socket_t *sock;
    amqp_rpc_reply_t r;
    struct timeval tv;
    int rc;

    memset(c, 0, sizeof *c);
    if ((c->c = amqp_new_connection()) == NULL)
        return wq_seterr(err, errlen, WQ_ENOMEM, "amqp: out of memory");

    if (t->ci.ssl) {
#ifdef HAVE_AMQP_SSL
        const char *ca = t->cacert != NULL ? t->cacert : CAPATH_DEFAULT;

        if ((sock = amqp_ssl_socket_new(c->c)) == NULL) {
            rc = wq_seterr(err, errlen, WQ_EBROKER,
                "amqp: cannot create a TLS socket");
            goto fail;
        }
        if ((rc = amqp_ssl_socket_set_cacert(sock, ca)) != AMQP_STATUS_OK) {
            rc = wq_seterr(err, errlen, WQ_ECONFIG,
                "amqp: cannot load CA file '%s': %s", ca,
                amqp_error_string2(rc));
            goto fail;
        }
#else
        rc = wq_seterr(err, errlen, WQ_ECONFIG,
            "amqp: amqps:// URL but rabbitmq-c was built without TLS");
        goto fail;
#endif
    } else if ((sock = amqp_tcp_socket_new(c->c)) == NULL) {
        rc = wq_seterr(err, errlen, WQ_ENOMEM, "amqp: out of memory");
        goto fail;
    }

    tv = ms_tv(t->connect_timeout_ms);
    if ((rc = amqp_socket_open_noblock(sock, t->ci.host, t->ci.port, &tv))
        != AMQP_STATUS_OK) {
        rc = wq_seterr(err, errlen, WQ_EBROKER,
            "amqp: cannot connect to %s:%d: %s%s", t->ci.host, t->ci.port,
            amqp_error_string2(rc), rc == AMQP_STATUS_SOCKET_ERROR
            ? " (refused or unreachable: is RabbitMQ running there?)"
            : rc == AMQP_STATUS_TIMEOUT ? " (no answer in time: "
            "broker.connect_timeout)" : "");
        goto fail;
    }
    (void)amqp_set_handshake_timeout(c->c, &tv);
    tv = ms_tv(RPC_TIMEOUT_MS);
    (void)amqp_set_rpc_timeout(c->c, &tv);

    /* Capabilities the broker acts on: a clear connection.close on a bad
     * login instead of a dropped socket, basic.cancel when a consumed
     * queue goes away, connection.blocked under memory/disk alarms. */
    caps[0].key = amqp_cstring_bytes("authentication_failure_close");
    caps[1].key = amqp_cstring_bytes("consumer_cancel_notify");
    caps[2].key = amqp_cstring_bytes("connection.blocked");
    caps[3].key = amqp_cstring_bytes("publisher_confirms");
    caps[4].key = amqp_cstring_bytes("basic.nack");
    for (size_t i = 0; i < WQ_ARRAY_LEN(caps); i++) {
        caps[i].value.kind = AMQP_FIELD_KIND_BOOLEAN;
        caps[i].value.value.boolean = 1;
    }
    captab.num_entries = (int)WQ_ARRAY_LEN(caps);
    captab.entries = caps;
    props[0].key = amqp_cstring_bytes("capabilities");
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table = captab;
    props[1].key = amqp_cstring_bytes("connection_name");
    props[1].value.kind = AMQP_FIELD_KIND_UTF8;
    props[1].value.value.bytes = amqp_cstring_bytes(t->client_id);
    proptab.num_entries = (int)WQ_ARRAY_LEN(props);
    proptab.entries = props;

    r = amqp_login_with_properties(c->c, t->ci.vhost, 0, FRAME_MAX,
        t->heartbeat, &proptab, AMQP_SASL_METHOD_PLAIN, t->ci.user,
        t->ci.password);
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION
        && r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *m = r.reply.decoded;

        rc = wq_seterr(err, errlen, WQ_EBROKER,
            "amqp: %s as '%s' to %s:%d vhost '%s': %u %.*s",
            m->reply_code == AMQP_ACCESS_REFUSED ? "login refused"
            : "the broker closed the connection at login", t->ci.user,
            t->ci.host, t->ci.port, t->ci.vhost, (unsigned)m->reply_code,
            blen(m->reply_text), (const char *)m->reply_text.bytes);
        send_connection_close_ok(c->c);
        goto fail;
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        rc = wq_seterr(err, errlen, WQ_EBROKER,
            "amqp: login as '%s' to %s:%d vhost '%s' failed: %s%s",
            t->ci.user, t->ci.host, t->ci.port, t->ci.vhost,
            r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
            ? amqp_error_string2(r.library_error) : "unexpected reply",
            r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
            && r.library_error == AMQP_STATUS_TIMEOUT
            ? " (no answer in time: broker.connect_timeout)" : "");
        goto fail;
    }
    c->up = 1;
    c->last_beat_ns = wq_clock_mono_ns();
    wq_log_debug("amqp", "%s connection to %s:%d vhost '%s' open", role,
        t->ci.host, t->ci.port, t->ci.vhost);
    return 0;

fail:
    amqp_destroy_connection(c->c);
    c->c = NULL;
    return rc;
}

/*
 * conn_open: conn_open_node on each node in turn (the URL's, then
 * rabbitmq.hosts), from the one that answered last, until one answers.
 * The error is the last node's, with the count of nodes tried.
 */
static int
conn_open(struct wq_transport *t, struct conn *c, const char *role,
    char *err, size_t errlen)
{
    char msg[WQ_ERRLEN];
    int rc = WQ_EBROKER, i, n;

    if (t->nnodes <= 1)
        return conn_open_node(t, c, role, err, errlen);
    for (n = 0; n < t->nnodes; n++) {
        i = (t->node_cur + n) % t->nnodes;
        t->ci.host = t->node_host[i];
        t->ci.port = t->node_port[i];
        rc = conn_open_node(t, c, role, msg, sizeof msg);
        if (rc == 0) {
            if (i != t->node_cur)
                wq_log_warn("amqp", "%s connection to node %s:%d (the "
                    "node before it did not answer)", role, t->ci.host,
                    t->ci.port);
            t->node_cur = i;
            return 0;
        }
        if (rc != WQ_EBROKER)
            break;
    }
    return wq_seterr(err, errlen, rc, "%s%s", msg, rc == WQ_EBROKER
        ? " (and every other node of rabbitmq.hosts)" : "");
}

/*
 * parse_nodes fills t->node_*: the URL's host, then conf_hosts
 * ("host:port,host:port", the port defaulting to the URL's).
 */
static int
parse_nodes(struct wq_transport *t, const char *conf_hosts, char *err,
    size_t errlen)
{
    char *p, *tok, *save = NULL, *colon, *end;
    size_t max = 1;
    long port;

    if (conf_hosts != NULL)
        for (const char *q = conf_hosts; *q; q++)
            max += *q == ',';
    if (conf_hosts != NULL && conf_hosts[0] != '\0')
        max++;
    t->node_host = xcalloc(max, sizeof *t->node_host);
    t->node_port = xcalloc(max, sizeof *t->node_port);
    t->node_host[0] = t->ci.host;
    t->node_port[0] = t->ci.port;
    t->nnodes = 1;
    if (conf_hosts == NULL || conf_hosts[0] == '\0')
        return 0;
    t->hostsbuf = xstrdup(conf_hosts);
    for (p = t->hostsbuf; (tok = strtok_r(p, ", ", &save)) != NULL;
        p = NULL) {
        port = t->ci.port;
        if ((colon = strrchr(tok, ':')) != NULL) {
            *colon = '\0';
            errno = 0;
            port = strtol(colon + 1, &end, 10);
            if (errno != 0 || end == colon + 1 || *end != '\0' || port < 1
                || port > 65535)
                return wq_seterr(err, errlen, WQ_ECONFIG, "rabbitmq.hosts: "
                    "bad port in \"%s:%s\" (want host:port,host:port)",
                    tok, colon + 1);
        }
        if (tok[0] == '\0')
            return wq_seterr(err, errlen, WQ_ECONFIG, "rabbitmq.hosts: "
                "a node without a host (want host:port,host:port)");
        t->node_host[t->nnodes] = tok;
        t->node_port[t->nnodes] = (int)port;
        t->nnodes++;
    }
    return 0;
}

/* channel_open opens channel ch of c; 0 or an error in err. */
static int
channel_open(struct wq_transport *t, struct conn *c, amqp_channel_t ch,
    int *ch_open, const char *what, char *err, size_t errlen)
{
    if (amqp_channel_open(c->c, ch) == NULL)
        return rpc_check(t, c, ch, NULL, amqp_get_rpc_reply(c->c), what,
            err, errlen);
    *ch_open = 1;
    return 0;
}

/* close_rpc_timeout bounds the next closing handshake by the deadline
 * (at least 100 ms, to give the broker a chance; CLOSE_RPC_MAX_MS at
 * most). */
static void
close_rpc_timeout(struct conn *c, uint64_t deadline)
{
    int ms = wq_clock_ms_until(deadline);
    struct timeval tv = ms_tv(ms < 100 ? 100 : min_int(ms, CLOSE_RPC_MAX_MS));

    (void)amqp_set_rpc_timeout(c->c, &tv);
}

/*
 * conn_close closes the open channels among chs[n] and the connection
 * politely when it is up, each handshake bounded by the deadline, then
 * destroys it.  Never fails.
 */
static void
conn_close(struct conn *c, const amqp_channel_t *chs, const int *open,
    size_t n, uint64_t deadline)
{
    amqp_rpc_reply_t r;

    if (c->c == NULL)
        return;
    for (size_t i = 0; i < n && c->up; i++) {
        if (!open[i])
            continue;
        close_rpc_timeout(c, deadline);
        r = amqp_channel_close(c->c, chs[i], AMQP_REPLY_SUCCESS);
        /* a server exception (the broker closed it first) leaves the
         * connection usable; a library error does not */
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
            || (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION
            && r.reply.id == AMQP_CONNECTION_CLOSE_METHOD))
            c->up = 0;
    }
    if (c->up) {
        close_rpc_timeout(c, deadline);
        (void)amqp_connection_close(c->c, AMQP_REPLY_SUCCESS);
    }
    c->up = 0;
    amqp_destroy_connection(c->c);
    c->c = NULL;
}

/* --- publishing: confirms ------------------------------------------------ */

static void
note_bad(struct wq_transport *t, int code, const char *why)
{
    if (t->nbad++ == 0) {
        t->bad_code = code;
        snprintf(t->bad_why, sizeof t->bad_why, "%s", why);
    }
}

/* verdict reports one message's outcome and frees its ring entry. */
static void
verdict(struct wq_transport *t, uint64_t seq, int code, const char *why)
{
    struct pending *e = &t->ring[seq & (CONFIRM_RING - 1)];
    struct returned **rp, *r = NULL;
    char buf[256];

    if (e->state == E_RETURNED) {
        for (rp = &t->returns; *rp != NULL; rp = &(*rp)->next)
            if ((*rp)->seq == seq) {
                r = *rp;
                *rp = r->next;
                break;
            }
        /* A returned message was not enqueued, whatever comes after. */
        snprintf(buf, sizeof buf, "%s",
            r != NULL ? r->why : "returned by the broker");
        free(r);
        code = WQ_ENACK;
        why = buf;
    }
    e->state = E_DONE;
    t->unconfirmed--;
    if (code != 0)
        note_bad(t, code, why);
    if (t->on_confirm != NULL)
        t->on_confirm(e->opaque, code, code != 0 ? why : NULL,
            t->on_confirm_user);
    e->opaque = NULL;
}

static void
advance_lo(struct wq_transport *t)
{
    while (t->lo < t->next_seq
        && t->ring[t->lo & (CONFIRM_RING - 1)].state == E_DONE)
        t->lo++;
}

/*
 * fail_pending gives every unconfirmed message the verdict `code`, and
 * restarts the tag count (the channel is gone, a new one starts at 1).
 */
static void
fail_pending(struct wq_transport *t, int code, const char *why)
{
    if (t->ring == NULL)
        return;
    for (uint64_t s = t->lo; s < t->next_seq; s++)
        if (t->ring[s & (CONFIRM_RING - 1)].state != E_DONE)
            verdict(t, s, code, why);
    while (t->returns != NULL) {
        struct returned *r = t->returns;

        t->returns = r->next;
        free(r);
    }
    t->lo = t->next_seq = 1;
    t->unconfirmed = 0;
}

/* confirm settles tag (and every earlier one when `multiple`). */
static void
confirm(struct wq_transport *t, uint64_t tag, int multiple, int code)
{
    uint64_t from;

    if (tag == 0 || tag >= t->next_seq) {
        wq_log_warn("amqp", "confirm for unknown delivery tag %" PRIu64,
            tag);
        return;
    }
    if (tag < t->lo)
        return;     /* settled already; its ring slot may be reused */
    from = multiple ? t->lo : tag;
    for (uint64_t s = from; s <= tag; s++)
        if (t->ring[s & (CONFIRM_RING - 1)].state != E_DONE)
            verdict(t, s, code,
                code != 0 ? "nacked by the broker (internal error)" : NULL);
    advance_lo(t);
}

/* header_i64 finds an integer header of a message; 0 if absent. */
static int
header_i64(const amqp_basic_properties_t *p, const char *name, int64_t *v)
{
    size_t n = strlen(name);

    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return 0;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];

        if (e->key.len != n || memcmp(e->key.bytes, name, n) != 0)
            continue;
        switch (e->value.kind) {
        case AMQP_FIELD_KIND_I64: *v = e->value.value.i64; return 1;
        case AMQP_FIELD_KIND_U64: *v = (int64_t)e->value.value.u64; return 1;
        case AMQP_FIELD_KIND_I32: *v = e->value.value.i32; return 1;
        case AMQP_FIELD_KIND_U32: *v = e->value.value.u32; return 1;
        default: return 0;
        }
    }
    return 0;
}

/*
 * on_return handles basic.return: reads the returned message (header and
 * body frames follow the method) and marks its tag as returned; the ack
 * that follows then reports it refused.
 */
static void
on_return(struct wq_transport *t, const amqp_basic_return_t *m)
{
    amqp_message_t msg;
    amqp_rpc_reply_t r;
    struct returned *ret;
    char why[256];
    int64_t seq;

    if (m->reply_code == AMQP_NO_ROUTE)
        snprintf(why, sizeof why, "no such queue '%.*s' (%u %.*s)",
            blen(m->routing_key), (const char *)m->routing_key.bytes,
            (unsigned)m->reply_code, blen(m->reply_text),
            (const char *)m->reply_text.bytes);
    else
        snprintf(why, sizeof why, "returned by the broker: %u %.*s",
            (unsigned)m->reply_code, blen(m->reply_text),
            (const char *)m->reply_text.bytes);

    r = amqp_read_message(t->pub.c, CH_PUBLISH, &msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        (void)rpc_check(t, &t->pub, CH_PUBLISH, &t->pub_ch_open, r,
            "reading a returned message", NULL, 0);
        if (!t->pub_ch_open && t->pub.up)
            fail_pending(t, WQ_EBROKER, "the broker closed the channel");
        return;
    }
    if (header_i64(&msg.properties, SEQ_HEADER, &seq) && seq > 0
        && (uint64_t)seq >= t->lo && (uint64_t)seq < t->next_seq
        && t->ring[(uint64_t)seq & (CONFIRM_RING - 1)].state == E_WAIT) {
        ret = xcalloc(1, sizeof *ret);
        ret->seq = (uint64_t)seq;
        snprintf(ret->why, sizeof ret->why, "%s", why);
        ret->next = t->returns;
        t->returns = ret;
        t->ring[(uint64_t)seq & (CONFIRM_RING - 1)].state = E_RETURNED;
    } else {
        wq_log_warn("amqp", "a returned message could not be matched: %s",
            why);
    }
    amqp_destroy_message(&msg);
}

/* pub_frame handles one frame of the publishing connection. */
static void
pub_frame(struct wq_transport *t, const amqp_frame_t *f)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return;     /* stray content: nothing of ours */

    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD:
        if (f->channel == CH_PUBLISH) {
            const amqp_basic_ack_t *m = f->payload.method.decoded;

            confirm(t, m->delivery_tag, m->multiple, 0);
        }
        break;
    case AMQP_BASIC_NACK_METHOD:
        if (f->channel == CH_PUBLISH) {
            const amqp_basic_nack_t *m = f->payload.method.decoded;

            confirm(t, m->delivery_tag, m->multiple, WQ_ENACK);
        }
        break;
    case AMQP_BASIC_RETURN_METHOD:
        if (f->channel == CH_PUBLISH)
            on_return(t, f->payload.method.decoded);
        break;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *m = f->payload.method.decoded;
        char why[WQ_ERRLEN];

        snprintf(why, sizeof why, "the broker closed channel %u: %u %.*s",
            (unsigned)f->channel, (unsigned)m->reply_code,
            blen(m->reply_text), (const char *)m->reply_text.bytes);
        send_channel_close_ok(t->pub.c, f->channel);
        if (f->channel == CH_PUBLISH) {
            t->pub_ch_open = 0;
            wq_log_warn("amqp", "%s", why);
            fail_pending(t, WQ_EBROKER, why);
        } else if (f->channel == CH_DECLARE) {
            t->decl_ch_open = 0;
        }
        break;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *m = f->payload.method.decoded;

        send_connection_close_ok(t->pub.c);
        conn_down(t, &t->pub, "the broker closed the connection: %u %.*s",
            (unsigned)m->reply_code, blen(m->reply_text),
            (const char *)m->reply_text.bytes);
        break;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD: {
        const amqp_connection_blocked_t *m = f->payload.method.decoded;

        t->blocked = 1;
        snprintf(t->blocked_why, sizeof t->blocked_why, "%.*s",
            blen(m->reason), (const char *)m->reason.bytes);
        wq_log_warn("amqp", "the broker blocks publishing: %s",
            t->blocked_why);
        break;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        t->blocked = 0;
        wq_log_info("amqp", "the broker unblocked publishing");
        break;
    default:
        break;
    }
}

/*
 * pub_read reads frames of the publishing connection: waits up to
 * wait_ms for the first (0: only what has arrived), then takes whatever
 * else is there without blocking.  Returns 0, or WQ_EBROKER when the
 * connection went down.
 */
static int
pub_read(struct wq_transport *t, int wait_ms)
{
    amqp_frame_t f;
    struct timeval tv;
    int rc;

    if (t->pub.c == NULL || !t->pub.up)
        return WQ_EBROKER;
    for (;;) {
        tv = ms_tv(wait_ms);
        rc = amqp_simple_wait_frame_noblock(t->pub.c, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            conn_down(t, &t->pub, "reading from the broker: %s",
                amqp_error_string2(rc));
            break;
        }
        pub_frame(t, &f);
        if (!t->pub.up)
            break;
        wait_ms = 0;
    }
    if (t->pub.up)
        amqp_maybe_release_buffers(t->pub.c);
    return t->pub.up ? 0 : WQ_EBROKER;
}

/* What pub_wait waits for. */
enum { W_CONFIRMED, W_WINDOW, W_UNBLOCKED };

/*
 * pub_wait reads frames of the publishing connection until `what` holds:
 * no unconfirmed message, room in the window, or publishing not blocked
 * by the broker.  Returns 0, WQ_ETIMEOUT at the deadline, WQ_EBROKER when
 * the connection fails.
 */
static int
pub_wait(struct wq_transport *t, uint64_t deadline, int what)
{
    int ms;

    if (pub_read(t, 0) != 0)
        return WQ_EBROKER;
    for (;;) {
        if (what == W_CONFIRMED ? t->unconfirmed == 0
            : what == W_WINDOW ? t->next_seq - t->lo < CONFIRM_WINDOW
            : !t->blocked)
            return 0;
        if ((ms = wq_clock_ms_until(deadline)) == 0)
            return WQ_ETIMEOUT;
        keepalive(t, &t->con);
        if (pub_read(t, min_int(ms, beat_slice_ms(t))) != 0)
            return WQ_EBROKER;
    }
}

/* pub_channel opens the confirm-mode publishing channel if needed. */
static int
pub_channel(struct wq_transport *t, char *err, size_t errlen)
{
    int rc;

    if (t->pub_ch_open)
        return 0;
    if ((rc = channel_open(t, &t->pub, CH_PUBLISH, &t->pub_ch_open,
        "open the publishing channel", err, errlen)) != 0)
        return rc;
    if (amqp_confirm_select(t->pub.c, CH_PUBLISH) == NULL)
        return rpc_check(t, &t->pub, CH_PUBLISH, &t->pub_ch_open,
            amqp_get_rpc_reply(t->pub.c), "confirm.select", err,
            errlen);
    t->lo = t->next_seq = 1;
    return 0;
}

/* --- the ops: open, declare, publish, flush ------------------------------ */

static int
queue_name(char *buf, size_t len, const char *queue, char *err,
    size_t errlen)
{
    size_t n;

    if (queue == NULL || (n = strlen(queue)) == 0 || n > WQ_BROKER_QUEUE_MAX)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "amqp: queue name must be 1 to %d bytes", WQ_BROKER_QUEUE_MAX);
    snprintf(buf, len, "%s%s", WQ_QUEUE_PREFIX, queue);
    return 0;
}

static void amqp_close(wq_transport *t, int timeout_ms);

/*
 * amqp_open parses conf->amqp_url, connects the publishing connection
 * (TCP, or TLS for amqps:// with conf->amqp_cacert, else the system CA
 * bundle) within conf->connect_timeout_ms (0: CONNECT_TIMEOUT_MS), logs
 * in within as long again and opens the confirm-mode
 * channel.  Blocks.  Returns 0 with *out owning the handle, WQ_ECONFIG for
 * a bad URL or setting, WQ_EBROKER when the broker cannot be reached or
 * refuses the login (err says which), WQ_EIO.
 */
static int
amqp_open(const struct wq_transport_conf *conf, wq_transport **out,
    char *err, size_t errlen)
{
    struct wq_transport *t;
    int rc;

    *out = NULL;
    if (conf->amqp_url == NULL || conf->amqp_url[0] == '\0')
        return wq_seterr(err, errlen, WQ_ECONFIG, "amqp: no amqp_url set");
    if (conf->amqp_prefetch < 0 || conf->amqp_prefetch > 65535)
        return wq_seterr(err, errlen, WQ_ECONFIG,
            "amqp: prefetch %d is not in 0..65535", conf->amqp_prefetch);
    if (conf->amqp_heartbeat_s < 0 || conf->amqp_heartbeat_s > 65535)
        return wq_seterr(err, errlen, WQ_ECONFIG,
            "amqp: heartbeat %d is not in 0..65535 s",
            conf->amqp_heartbeat_s);

    t = xcalloc(1, sizeof *t);
    t->base.ops = &wq_transport_amqp_ops;
    t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->wake_fd < 0) {
        free(t);
        return wq_seterr(err, errlen, WQ_EIO, "amqp: eventfd: %s",
            strerror(errno));
    }
    t->quorum = conf->amqp_quorum;
    t->prefetch = conf->amqp_prefetch;
    t->heartbeat = conf->amqp_heartbeat_s;
    t->connect_timeout_ms = conf->connect_timeout_ms > 0
        ? conf->connect_timeout_ms : CONNECT_TIMEOUT_MS;
    t->on_confirm = conf->on_confirm;
    t->on_confirm_user = conf->on_confirm_user;
    t->dead_bounds = conf->dead_bounds;
    t->dead_bounds_user = conf->dead_bounds_user;
    t->lo = t->next_seq = 1;
    t->urlbuf = xstrdup(conf->amqp_url);
    t->client_id = xstrdup(conf->client_id != NULL && conf->client_id[0]
        != '\0' ? conf->client_id : "workq");
    t->cacert = conf->amqp_cacert != NULL && conf->amqp_cacert[0] != '\0'
        ? xstrdup(conf->amqp_cacert) : NULL;
    t->ring = xcalloc(CONFIRM_RING, sizeof *t->ring);

    amqp_default_connection_info(&t->ci);
    if (amqp_parse_url(t->urlbuf, &t->ci) != AMQP_STATUS_OK) {
        rc = wq_seterr(err, errlen, WQ_ECONFIG, "amqp: cannot parse "
            "amqp_url (want amqp[s]://user:password@host:port/vhost)");
        goto fail;
    }
    /* "amqp://host/" parses as vhost "", which no broker has: it is meant
     * as the default vhost, as "amqp://host" is. */
    if (t->ci.vhost == NULL || t->ci.vhost[0] == '\0')
        t->ci.vhost = (char *)"/";
    if ((rc = parse_nodes(t, conf->amqp_hosts, err, errlen)) != 0)
        goto fail;
    if ((rc = conn_open(t, &t->pub, "publishing", err, errlen)) != 0)
        goto fail;
    if ((rc = pub_channel(t, err, errlen)) != 0)
        goto fail;
    *out = t;
    return 0;

fail:
    amqp_close(t, 0);
    return rc;
}

/* 1 if `queue` names a dead-letter queue "Q.dead"; its Q goes to base. */
static int
dead_base(const char *queue, char *base, size_t baselen)
{
    size_t n = strlen(queue);

    if (n <= 5 || strcmp(queue + n - 5, ".dead") != 0 || n - 5 >= baselen)
        return 0;
    memcpy(base, queue, n - 5);
    base[n - 5] = '\0';
    return 1;
}

/* queue.declare on the declare channel; 0 or the broker's error. */
static int
declare_rpc(wq_transport *t, const char *name, int passive,
    amqp_table_t args, const char *what, int *mismatch,
    amqp_queue_declare_ok_t *ok_out, char *err, size_t errlen)
{
    amqp_queue_declare_ok_t *ok;
    amqp_rpc_reply_t r;
    int rc;

    *mismatch = 0;
    if (!t->decl_ch_open && (rc = channel_open(t, &t->pub, CH_DECLARE,
        &t->decl_ch_open, "open the declare channel", err, errlen))
        != 0)
        return rc;
    ok = amqp_queue_declare(t->pub.c, CH_DECLARE, amqp_cstring_bytes(name),
        passive, 1, 0, 0, args);
    if (ok != NULL) {
        if (ok_out != NULL)
            *ok_out = *ok;
        return 0;
    }
    r = amqp_get_rpc_reply(t->pub.c);
    *mismatch = r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION
        && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD
        && ((amqp_channel_close_t *)r.reply.decoded)->reply_code
            == AMQP_PRECONDITION_FAILED;
    return rpc_check(t, &t->pub, CH_DECLARE, &t->decl_ch_open, r, what, err,
        errlen);
}

/*
 * amqp_declare declares durable queue "workq.<queue>" of the configured
 * type (x-queue-type quorum or classic); idempotent.  Blocks for one
 * round trip.  A dead-letter queue "Q.dead" also gets the bounds that
 * conf->dead_bounds gives (x-message-ttl, x-max-length; the head is
 * dropped when full).  A queue that exists with another type or
 * arguments is WQ_EBROKER with the broker's PRECONDITION_FAILED text; the
 * handle stays usable (the declare channel is reopened next time) -
 * except for a dead-letter queue: its arguments cannot be changed in
 * place, so it is used as it is (checked with a passive declare) and a
 * warning says how to apply the new bounds.
 */
static int
amqp_declare(wq_transport *t, const char *queue, char *err, size_t errlen)
{
    char name[sizeof WQ_QUEUE_PREFIX + WQ_BROKER_QUEUE_MAX], what[256];
    char base[WQ_BROKER_QUEUE_MAX + 1], msg[WQ_ERRLEN];
    amqp_table_entry_t arg[3];
    amqp_table_t args;
    int64_t ttl_ms = 0, max_len = 0;
    int rc, mismatch, dead;

    if ((rc = queue_name(name, sizeof name, queue, err, errlen)) != 0)
        return rc;
    if (!t->pub.up)
        return down_err(&t->pub, err, errlen);

    arg[0].key = amqp_cstring_bytes("x-queue-type");
    arg[0].value.kind = AMQP_FIELD_KIND_UTF8;
    arg[0].value.value.bytes = amqp_cstring_bytes(t->quorum ? "quorum"
        : "classic");
    args.num_entries = 1;
    args.entries = arg;
    dead = dead_base(queue, base, sizeof base) && t->dead_bounds != NULL;
    if (dead)
        t->dead_bounds(t->dead_bounds_user, base, &ttl_ms, &max_len);
    if (ttl_ms > 0) {
        arg[args.num_entries].key = amqp_cstring_bytes("x-message-ttl");
        arg[args.num_entries].value.kind = AMQP_FIELD_KIND_I64;
        arg[args.num_entries].value.value.i64 = ttl_ms;
        args.num_entries++;
    }
    if (max_len > 0) {
        arg[args.num_entries].key = amqp_cstring_bytes("x-max-length");
        arg[args.num_entries].value.kind = AMQP_FIELD_KIND_I64;
        arg[args.num_entries].value.value.i64 = max_len;
        args.num_entries++;
    }

    snprintf(what, sizeof what, "declare %s queue '%s'",
        t->quorum ? "quorum" : "classic", name);
    rc = declare_rpc(t, name, 0, args, what, &mismatch, NULL, msg,
        sizeof msg);
    if (rc == 0)
        return 0;
    if (mismatch && dead && t->pub.up) {
        snprintf(what, sizeof what, "declare queue '%s' (passive)", name);
        if (declare_rpc(t, name, 1, amqp_empty_table, what, &mismatch, NULL,
                err, errlen) == 0) {
            wq_log_warn("amqp", "queue %s exists with other arguments "
                "than x-message-ttl %" PRId64 " ms, x-max-length %" PRId64
                ": used as it is; to apply these bounds, delete the queue "
                "(it holds only copies: PostgreSQL keeps the dead tasks)",
                name, ttl_ms, max_len);
            return 0;
        }
    }
    return wq_seterr(err, errlen, rc, "%s%s", msg, mismatch ? " (the queue "
        "exists with another type or arguments: make amqp quorum match "
        "it, or delete the queue)" : "");
}

/*
 * amqp_backlog: a passive queue.declare gives the ready count and the
 * consumers; RabbitMQ says nothing of unacked messages or ages over AMQP
 * (see struct wq_backlog).  Blocks for one round trip.
 */
static int
amqp_backlog(wq_transport *t, const char *queue, struct wq_backlog *out,
    char *err, size_t errlen)
{
    char name[sizeof WQ_QUEUE_PREFIX + WQ_BROKER_QUEUE_MAX], what[256];
    amqp_queue_declare_ok_t ok;
    int rc, mismatch;

    memset(out, 0, sizeof *out);
    out->ready = out->unacked = out->consumers = out->oldest_ms = -1;
    if ((rc = queue_name(name, sizeof name, queue, err, errlen)) != 0)
        return rc;
    if (!t->pub.up)
        return down_err(&t->pub, err, errlen);
    snprintf(what, sizeof what, "declare queue '%s' (passive)", name);
    if ((rc = declare_rpc(t, name, 1, amqp_empty_table, what, &mismatch,
            &ok, err, errlen)) != 0)
        return rc;
    out->ready = ok.message_count;
    out->consumers = ok.consumer_count;
    return 0;
}

/*
 * amqp_publish sends one persistent message (content type msgpack,
 * message-id = key) to "workq.<queue>" through the default exchange,
 * mandatory, and returns without waiting for the confirm.  It blocks only
 * while CONFIRM_WINDOW messages are unconfirmed or the broker has blocked
 * publishing, at most PUBLISH_BLOCK_MS, then WQ_ETIMEOUT.  On 0, on_confirm
 * is called exactly once for `opaque` later (or from inside this call);
 * on an error it is never called for this message.
 */
static int
amqp_publish(wq_transport *t, const char *queue, const void *key,
    size_t keylen, const void *body, size_t len, void *opaque, char *err,
    size_t errlen)
{
    char name[sizeof WQ_QUEUE_PREFIX + WQ_BROKER_QUEUE_MAX];
    amqp_basic_properties_t p;
    amqp_table_entry_t hdr[2];
    uint64_t seq;
    int rc;

    if ((rc = queue_name(name, sizeof name, queue, err, errlen)) != 0)
        return rc;
    if (!t->pub.up)
        return down_err(&t->pub, err, errlen);
    if ((rc = pub_channel(t, err, errlen)) != 0)
        return rc;
    if (t->blocked) {
        /* A blocked connection is not read by the broker: a write could
         * hang for as long as the alarm lasts. */
        rc = pub_wait(t, deadline_after(PUBLISH_BLOCK_MS), W_UNBLOCKED);
        if (rc == WQ_EBROKER)
            return down_err(&t->pub, err, errlen);
        if (rc == WQ_ETIMEOUT)
            return wq_seterr(err, errlen, WQ_ETIMEOUT, "amqp: publish: the "
                "broker has blocked publishing for %d ms: %s",
                PUBLISH_BLOCK_MS, t->blocked_why);
        if ((rc = pub_channel(t, err, errlen)) != 0)
            return rc;
    }
    if (t->next_seq - t->lo >= CONFIRM_WINDOW) {
        rc = pub_wait(t, deadline_after(PUBLISH_BLOCK_MS), W_WINDOW);
        if (rc == WQ_EBROKER)
            return down_err(&t->pub, err, errlen);
        if (rc == WQ_ETIMEOUT)
            return wq_seterr(err, errlen, WQ_ETIMEOUT, "amqp: publish: "
                "%zu messages unconfirmed for %d ms%s%s", t->unconfirmed,
                PUBLISH_BLOCK_MS, t->blocked ? "; the broker blocks "
                "publishing: " : "", t->blocked ? t->blocked_why : "");
        if (!t->pub_ch_open && (rc = pub_channel(t, err, errlen)) != 0)
            return rc;
    }

    seq = t->next_seq;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG
        | AMQP_BASIC_HEADERS_FLAG;
    p.content_type = amqp_cstring_bytes(CONTENT_TYPE);
    p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    hdr[0].key = amqp_cstring_bytes(SEQ_HEADER);
    hdr[0].value.kind = AMQP_FIELD_KIND_I64;
    hdr[0].value.value.i64 = (int64_t)seq;
    p.headers.entries = hdr;
    p.headers.num_entries = 1;
    if (key != NULL && keylen > 0 && keylen <= SHORTSTR_MAX) {
        p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        p.message_id = bytes_of(key, keylen);
    } else if (key != NULL && keylen > 0) {
        /* message-id is a shortstr: a longer key travels as a header */
        hdr[1].key = amqp_cstring_bytes(KEY_HEADER);
        hdr[1].value.kind = AMQP_FIELD_KIND_BYTES;
        hdr[1].value.value.bytes = bytes_of(key, keylen);
        p.headers.num_entries = 2;
    }

    rc = amqp_basic_publish(t->pub.c, CH_PUBLISH, amqp_empty_bytes,
        amqp_cstring_bytes(name), 1, 0, &p, bytes_of(body, len));
    if (rc != AMQP_STATUS_OK) {
        conn_down(t, &t->pub, "publish to '%s': %s", name,
            amqp_error_string2(rc));
        return down_err(&t->pub, err, errlen);
    }
    t->ring[seq & (CONFIRM_RING - 1)].opaque = opaque;
    t->ring[seq & (CONFIRM_RING - 1)].state = E_WAIT;
    t->next_seq++;
    t->unconfirmed++;

    /* Take the confirms that have arrived, so the window drains; a
     * failure here reaches this message through on_confirm.  Looking at
     * the socket costs two system calls, so only every DRAIN_EVERY
     * messages unless the library already holds data. */
    if (seq % DRAIN_EVERY == 0 || amqp_data_in_buffer(t->pub.c)
        || amqp_frames_enqueued(t->pub.c))
        (void)pub_read(t, 0);
    return 0;
}

/*
 * amqp_flush waits up to timeout_ms until every published message has its
 * verdict.  Returns 0 if all since the last flush were confirmed,
 * WQ_ENACK if some were refused (nacked, or returned: no such queue),
 * WQ_ETIMEOUT with some still outstanding, WQ_EBROKER when the connection
 * is lost.  flush(t, 0) is also how an idle producer keeps heartbeats.
 */
static int
amqp_flush(wq_transport *t, int timeout_ms, char *err, size_t errlen)
{
    int rc, nbad;

    keepalive(t, &t->con);
    rc = t->pub.up ? pub_wait(t, deadline_after(timeout_ms), W_CONFIRMED)
        : WQ_EBROKER;
    nbad = t->nbad;
    if (rc == WQ_EBROKER) {
        t->nbad = 0;
        return down_err(&t->pub, err, errlen);
    }
    if (rc == WQ_ETIMEOUT)
        return wq_seterr(err, errlen, WQ_ETIMEOUT, "amqp: flush: %zu "
            "messages still unconfirmed after %d ms%s%s", t->unconfirmed,
            timeout_ms, t->blocked ? "; the broker blocks publishing: "
            : "", t->blocked ? t->blocked_why : "");
    if (nbad > 0) {
        t->nbad = 0;
        return wq_seterr(err, errlen, t->bad_code, "amqp: %d message%s "
            "not accepted; first: %s", nbad, nbad == 1 ? "" : "s",
            t->bad_why);
    }
    return 0;
}

/* --- consuming ----------------------------------------------------------- */

/*
 * amqp_subscribe opens the consuming connection on the first call (basic.qos
 * prefetch_count = conf->amqp_prefetch) and starts one consumer, manual
 * acks, per queue; later calls add queues.  Blocks.  A missing queue is
 * WQ_ENOENT, and leaves the consuming side down (close and reopen).
 */
static int
amqp_subscribe(wq_transport *t, const char *const *queues, size_t n,
    char *err, size_t errlen)
{
    char name[sizeof WQ_QUEUE_PREFIX + WQ_BROKER_QUEUE_MAX], what[256];
    char msg[WQ_ERRLEN];
    struct consumer *cs;
    int rc;

    if (n == 0 || queues == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "amqp: no queue to "
            "subscribe to");
    for (size_t i = 0; i < n; i++)
        if ((rc = queue_name(name, sizeof name, queues[i], err, errlen))
            != 0)
            return rc;

    if (t->con.c == NULL) {
        if ((rc = conn_open(t, &t->con, "consuming", err, errlen)) != 0)
            return rc;
        if ((rc = channel_open(t, &t->con, CH_CONSUME, &t->con_ch_open,
            "open the consuming channel", err, errlen)) != 0)
            return rc;
        if (amqp_basic_qos(t->con.c, CH_CONSUME, 0,
            (uint16_t)t->prefetch, 0) == NULL)
            return rpc_check(t, &t->con, CH_CONSUME, &t->con_ch_open,
                amqp_get_rpc_reply(t->con.c), "basic.qos", err,
                errlen);
        t->ack_batch = t->prefetch > 0 ? (size_t)t->prefetch / 2 : ACK_BATCH;
        if (t->ack_batch > ACK_BATCH)
            t->ack_batch = ACK_BATCH;
        if (t->ack_batch == 0)
            t->ack_batch = 1;
    }
    if (!t->con.up || !t->con_ch_open)
        return down_err(&t->con, err, errlen);

    cs = xreallocarray(t->consumers, t->nconsumers + n, sizeof *cs);
    t->consumers = cs;
    for (size_t i = 0; i < n; i++) {
        struct consumer *c = &t->consumers[t->nconsumers];

        snprintf(name, sizeof name, "%s%s", WQ_QUEUE_PREFIX, queues[i]);
        memset(c, 0, sizeof *c);
        c->queue = xstrdup(queues[i]);
        snprintf(c->tag, sizeof c->tag, "workq-%zu", t->nconsumers);
        if (amqp_basic_consume(t->con.c, CH_CONSUME,
            amqp_cstring_bytes(name), amqp_cstring_bytes(c->tag), 0, 0, 0,
            amqp_empty_table) == NULL) {
            free(c->queue);
            snprintf(what, sizeof what, "consume queue '%s'", name);
            rc = rpc_check(t, &t->con, CH_CONSUME, &t->con_ch_open,
                amqp_get_rpc_reply(t->con.c), what, msg, sizeof msg);
            /* Without its channel the consuming side is gone: every
             * consumer and unacked delivery with it. */
            if (t->con.up)
                conn_down(t, &t->con, "%s", msg + strlen("amqp: "));
            return wq_seterr(err, errlen, rc, "%s", msg);
        }
        c->active = 1;
        t->nconsumers++;
    }
    return 0;
}

static void
delivery_free(struct wq_transport *t, struct delivery *x)
{
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        t->out_head = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    else
        t->out_tail = x->prev;
    t->nout--;
    amqp_destroy_envelope(&x->env);
    x->live = 0;
    if (t->nfree < FREE_DELIVERIES) {
        x->next = t->free_list;
        x->prev = NULL;
        t->free_list = x;
        t->nfree++;
    } else {
        free(x);
    }
}

/*
 * settle sends one basic.ack (ack 1) or basic.nack with requeue (ack 0)
 * and counts it in the current burst of settle frames (see close).
 * Returns 0 or WQ_EBROKER with err filled.
 */
static int
settle(struct wq_transport *t, uint64_t tag, int multiple, int ack,
    char *err, size_t errlen)
{
    uint64_t now = wq_clock_mono_ns();
    int rc;

    if (now - t->burst_start_ns > (uint64_t)SETTLE_WINDOW_MS * 1000000u) {
        t->burst_start_ns = now;
        t->burst_frames = 0;
    }
    t->burst_frames++;
    rc = ack ? amqp_basic_ack(t->con.c, CH_CONSUME, tag, multiple)
        : amqp_basic_nack(t->con.c, CH_CONSUME, tag, multiple, 1);
    if (rc != AMQP_STATUS_OK) {
        conn_down(t, &t->con, "%s: %s", ack ? "ack" : "nack",
            amqp_error_string2(rc));
        return down_err(&t->con, err, errlen);
    }
    return 0;
}

/*
 * ack_flush sends the finished tags: one multiple ack for all of them
 * below the oldest outstanding delivery, single acks for the rest.
 * Returns 0 or WQ_EBROKER with err filled.
 */
static int
ack_flush(struct wq_transport *t, char *err, size_t errlen)
{
    uint64_t low = t->out_head != NULL ? t->out_head->tag : UINT64_MAX;
    uint64_t upto = 0;
    int rc = 0;

    if (t->npend == 0)
        return 0;
    if (!t->con.up) {
        t->npend = 0;
        return down_err(&t->con, err, errlen);
    }
    for (size_t i = 0; i < t->npend; i++)
        if (t->pend[i] < low && t->pend[i] > upto)
            upto = t->pend[i];
    if (upto != 0)
        rc = settle(t, upto, 1, 1, err, errlen);
    for (size_t i = 0; i < t->npend && rc == 0; i++)
        if (t->pend[i] > low)
            rc = settle(t, t->pend[i], 0, 1, err, errlen);
    t->npend = 0;
    return rc;
}

static int
cmp_tag(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/*
 * close_settle settles every delivery handed out, in tag order and in as
 * few frames as it can, before the channel closes: each run of finished
 * tags gets one multiple ack, each run of unfinished ones one multiple
 * nack with requeue (which the channel close would do anyway).  Then, if
 * many settle frames went out just now, it waits a moment: RabbitMQ 3.10
 * quorum queues keep only ~32 settlements in flight per channel and drop
 * the rest when the channel closes (measured: 80 single acks then
 * channel.close settle 33), which would redeliver acked messages.
 */
static void
close_settle(struct wq_transport *t, uint64_t deadline)
{
    struct delivery *u = t->out_head;
    size_t i = 0;
    int ms;

    if (!t->con.up)
        return;
    if (t->npend > 1)
        qsort(t->pend, t->npend, sizeof *t->pend, cmp_tag);
    while (t->con.up && (i < t->npend || u != NULL)) {
        if (u == NULL || (i < t->npend && t->pend[i] < u->tag)) {
            while (i + 1 < t->npend && (u == NULL || t->pend[i + 1] < u->tag))
                i++;
            (void)settle(t, t->pend[i++], 1, 1, NULL, 0);
        } else {
            while (u->next != NULL && (i >= t->npend
                || u->next->tag < t->pend[i]))
                u = u->next;
            (void)settle(t, u->tag, 1, 0, NULL, 0);
            u = u->next;
        }
    }
    t->npend = 0;
    if (t->con.up && t->burst_frames > SETTLE_BURST
        && wq_clock_mono_ns() - t->burst_start_ns
            <= (uint64_t)SETTLE_WINDOW_MS * 1000000u
        && (ms = min_int(wq_clock_ms_until(deadline), SETTLE_LINGER_MS)) > 0) {
        struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
}

static int
acks_due(const struct wq_transport *t)
{
    if (t->npend == 0)
        return 0;
    return t->npend >= t->ack_batch
        || (t->prefetch > 0 && t->nout + t->npend >= (size_t)t->prefetch)
        || wq_clock_mono_ns() - t->pend_since_ns
            >= (uint64_t)ACK_DELAY_MS * 1000000u;
}

/* con_frame handles a frame that is not a delivery on the consuming
 * connection; returns 0 to go on waiting or an error for poll(). */
static int
con_frame(struct wq_transport *t, const amqp_frame_t *f, char *err,
    size_t errlen)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return 0;
    switch (f->payload.method.id) {
    case AMQP_BASIC_CANCEL_METHOD: {
        const amqp_basic_cancel_t *m = f->payload.method.decoded;
        const char *q = "?";

        for (size_t i = 0; i < t->nconsumers; i++) {
            struct consumer *c = &t->consumers[i];

            if (tag_is(c->tag, m->consumer_tag)) {
                c->active = 0;
                q = c->queue;
            }
        }
        snprintf(t->cancel_why, sizeof t->cancel_why, "the broker "
            "cancelled the consumer of queue '%s%s' (queue deleted?)",
            WQ_QUEUE_PREFIX, q);
        wq_log_warn("amqp", "%s", t->cancel_why);
        return wq_seterr(err, errlen, WQ_EBROKER, "amqp: %s",
            t->cancel_why);
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *m = f->payload.method.decoded;

        send_channel_close_ok(t->con.c, f->channel);
        conn_down(t, &t->con, "the broker closed the consuming channel: "
            "%u %.*s", (unsigned)m->reply_code, blen(m->reply_text),
            (const char *)m->reply_text.bytes);
        return down_err(&t->con, err, errlen);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *m = f->payload.method.decoded;

        send_connection_close_ok(t->con.c);
        conn_down(t, &t->con, "the broker closed the consuming connection: "
            "%u %.*s", (unsigned)m->reply_code, blen(m->reply_text),
            (const char *)m->reply_text.bytes);
        return down_err(&t->con, err, errlen);
    }
    default:
        return 0;
    }
}

static struct delivery *
delivery_new(struct wq_transport *t, const amqp_envelope_t *env)
{
    struct delivery *x;

    if ((x = t->free_list) != NULL) {
        t->free_list = x->next;
        t->nfree--;
        memset(x, 0, sizeof *x);
    } else {
        x = xcalloc(1, sizeof *x);
    }
    x->owner = t;
    x->live = 1;
    x->tag = env->delivery_tag;
    x->env = *env;
    x->d.queue = "";
    for (size_t i = 0; i < t->nconsumers; i++)
        if (tag_is(t->consumers[i].tag, env->consumer_tag))
            x->d.queue = t->consumers[i].queue;
    x->d.body = env->message.body.bytes;
    x->d.len = env->message.body.len;
    x->d.key = NULL;
    x->d.keylen = 0;
    x->d.partition = -1;
    x->d.offset = (int64_t)env->delivery_tag;
    x->d.redelivered = env->redelivered != 0;
    x->d.first = !x->d.redelivered;
    x->prev = t->out_tail;
    x->next = NULL;
    if (t->out_tail != NULL)
        t->out_tail->next = x;
    else
        t->out_head = x;
    t->out_tail = x;
    t->nout++;
    return x;
}

static int
any_consumer(const struct wq_transport *t)
{
    for (size_t i = 0; i < t->nconsumers; i++)
        if (t->consumers[i].active)
            return 1;
    return 0;
}

/*
 * con_wait waits up to ms for the consuming socket or a wakeup().  A
 * broker gone silent is noticed by rabbitmq-c on the next read (every
 * read checks its heartbeat deadline), which the caller does next.
 * Returns 0 (go on) or WQ_EAGAIN after a wakeup.
 */
static int
con_wait(struct wq_transport *t, int ms, char *err, size_t errlen)
{
    struct pollfd pfd[2];
    uint64_t v;

    pfd[0].fd = amqp_get_sockfd(t->con.c);
    pfd[0].events = POLLIN;
    pfd[1].fd = t->wake_fd;
    pfd[1].events = POLLIN;
    if (poll(pfd, 2, ms) > 0 && (pfd[1].revents & POLLIN)) {
        if (read(t->wake_fd, &v, sizeof v) < 0)
            (void)0;    /* EAGAIN: another poll() took it */
        return wq_seterr(err, errlen, WQ_EAGAIN, "amqp: woken up");
    }
    return 0;
}

/*
 * amqp_poll returns the next delivery within timeout_ms (WQ_EAGAIN if
 * none, or at once after a wakeup()), sending due acks and taking in
 * confirms meanwhile.  WQ_EBROKER when the connection is lost or the
 * broker cancelled a consumer (its queue was deleted); WQ_EINVAL before
 * subscribe().  The delivery stays valid until ack/nack or close.
 */
static int
amqp_poll(wq_transport *t, wq_delivery **out, int timeout_ms, char *err,
    size_t errlen)
{
    uint64_t deadline = deadline_after(timeout_ms);
    amqp_envelope_t env;
    amqp_rpc_reply_t r;
    amqp_frame_t f;
    struct timeval tv;
    struct delivery *x;
    char msg[WQ_ERRLEN];
    int rc, ms;

    *out = NULL;
    if (t->nconsumers == 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "amqp: poll before "
            "subscribe");
    for (;;) {
        if (!t->con.up)
            return down_err(&t->con, err, errlen);
        /* The publishing side: confirms that came in, and heartbeats. */
        if (t->pub.up && t->unconfirmed > 0)
            (void)pub_read(t, 0);
        keepalive(t, &t->pub);
        if (acks_due(t) && (rc = ack_flush(t, err, errlen)) != 0)
            return rc;
        if (!any_consumer(t))
            return wq_seterr(err, errlen, WQ_EBROKER, "amqp: no consumer "
                "left%s%s", t->cancel_why[0] != '\0' ? ": " : "",
                t->cancel_why);

        ms = wq_clock_ms_until(deadline);
        if (t->npend > 0) {
            uint64_t due = t->pend_since_ns
                + (uint64_t)ACK_DELAY_MS * 1000000u;

            ms = min_int(ms, wq_clock_ms_until(due));
        }
        ms = min_int(ms, beat_slice_ms(t));

        /* Take what has arrived without waiting (this also drains what a
         * TLS library holds out of sight of poll(2)); only then wait, on
         * the socket and on wakeup() at once. */
        tv = ms_tv(0);
        amqp_maybe_release_buffers(t->con.c);
        r = amqp_consume_message(t->con.c, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
            && r.library_error == AMQP_STATUS_TIMEOUT && ms > 0) {
            if ((rc = con_wait(t, ms, err, errlen)) != 0)
                return rc;
            continue;
        }

        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            x = delivery_new(t, &env);
            *out = &x->d;
            return 0;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
            && r.library_error == AMQP_STATUS_TIMEOUT) {
            if (wq_clock_ms_until(deadline) == 0) {
                if (acks_due(t) && (rc = ack_flush(t, err, errlen)) != 0)
                    return rc;
                return wq_seterr(err, errlen, WQ_EAGAIN, "amqp: no "
                    "delivery within %d ms", timeout_ms);
            }
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
            && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            if ((rc = amqp_simple_wait_frame(t->con.c, &f))
                != AMQP_STATUS_OK) {
                conn_down(t, &t->con, "reading from the broker: %s",
                    amqp_error_string2(rc));
                return down_err(&t->con, err, errlen);
            }
            if ((rc = con_frame(t, &f, err, errlen)) != 0)
                return rc;
            continue;
        }
        /* A close while reading a message, or a socket error: the
         * consuming side is gone either way. */
        (void)rpc_check(t, &t->con, CH_CONSUME, &t->con_ch_open, r,
            "consume", msg, sizeof msg);
        if (t->con.up)
            conn_down(t, &t->con, "%s", msg + strlen("amqp: "));
        return down_err(&t->con, err, errlen);
    }
}

/* delivery_check finds our struct behind a delivery of this handle. */
static struct delivery *
delivery_check(struct wq_transport *t, wq_delivery *d)
{
    struct delivery *x = (struct delivery *)d;

    if (x == NULL || x->owner != t || !x->live)
        return NULL;
    return x;
}

/*
 * amqp_ack marks the delivery finished and frees it; the basic.ack goes
 * out batched (see ack_flush).  WQ_EINVAL for a delivery that is not
 * outstanding here; WQ_EBROKER if the connection is lost (the broker
 * redelivers the message then).
 */
static int
amqp_ack(wq_transport *t, wq_delivery *d, char *err, size_t errlen)
{
    struct delivery *x = delivery_check(t, d);
    uint64_t tag;

    if (x == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "amqp: ack of a delivery "
            "that is not outstanding on this handle");
    tag = x->tag;
    delivery_free(t, x);
    if (!t->con.up)
        return down_err(&t->con, err, errlen);
    if (t->npend == t->pendcap) {
        size_t cap = t->pendcap ? t->pendcap * 2 : 128;
        t->pend = xreallocarray(t->pend, cap, sizeof *t->pend);
        t->pendcap = cap;
    }
    if (t->npend == 0)
        t->pend_since_ns = wq_clock_mono_ns();
    t->pend[t->npend++] = tag;
    if (acks_due(t))
        return ack_flush(t, err, errlen);
    return 0;
}

/*
 * amqp_nack gives the delivery back at once (basic.nack, requeue) and
 * frees it; the broker redelivers it with redelivered set.  Errors as for
 * amqp_ack.
 */
static int
amqp_nack(wq_transport *t, wq_delivery *d, char *err, size_t errlen)
{
    struct delivery *x = delivery_check(t, d);
    uint64_t tag;

    if (x == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "amqp: nack of a delivery "
            "that is not outstanding on this handle");
    tag = x->tag;
    delivery_free(t, x);
    if (!t->con.up)
        return down_err(&t->con, err, errlen);
    return settle(t, tag, 0, 0, err, errlen);
}

/*
 * amqp_close: confirms are awaited until the deadline (the rest are
 * reported WQ_ETIMEOUT), finished deliveries are acked and unfinished
 * ones given back (close_settle), then channels and connections close
 * and everything is freed.  Deliveries not yet acked become invalid.
 */
/* Another thread wants the poller back (transport.h): one eventfd
 * write; amqp_poll waits on it next to the socket. */
static void
amqp_wakeup(wq_transport *t)
{
    uint64_t one = 1;

    if (write(t->wake_fd, &one, sizeof one) < 0)
        (void)0;    /* EAGAIN: the counter is full, a wakeup is pending */
}

static void
amqp_close(wq_transport *t, int timeout_ms)
{
    uint64_t deadline = deadline_after(timeout_ms);
    amqp_channel_t pubchs[2] = { CH_PUBLISH, CH_DECLARE };
    amqp_channel_t conchs[1] = { CH_CONSUME };
    int pubopen[2], conopen[1];
    char why[128];

    if (t == NULL)
        return;
    if (t->pub.up && t->unconfirmed > 0)
        (void)pub_wait(t, deadline, W_CONFIRMED);
    if (t->unconfirmed > 0) {
        snprintf(why, sizeof why, "not confirmed within %d ms of close",
            timeout_ms);
        fail_pending(t, WQ_ETIMEOUT, why);
    }
    close_settle(t, deadline);

    conopen[0] = t->con_ch_open;
    conn_close(&t->con, conchs, conopen, 1, deadline);
    pubopen[0] = t->pub_ch_open;
    pubopen[1] = t->decl_ch_open;
    conn_close(&t->pub, pubchs, pubopen, 2, deadline);

    while (t->out_head != NULL)
        delivery_free(t, t->out_head);
    while (t->free_list != NULL) {
        struct delivery *x = t->free_list;

        t->free_list = x->next;
        free(x);
    }
    while (t->returns != NULL) {
        struct returned *r = t->returns;

        t->returns = r->next;
        free(r);
    }
    for (size_t i = 0; i < t->nconsumers; i++)
        free(t->consumers[i].queue);
    free(t->consumers);
    free(t->pend);
    free(t->ring);
    free(t->urlbuf);
    free(t->hostsbuf);
    free(t->node_host);
    free(t->node_port);
    free(t->cacert);
    free(t->client_id);
    if (t->wake_fd >= 0)
        close(t->wake_fd);
    free(t);
}

/* --- settings ------------------------------------------------------------ */

/* A new copy of s, percent-encoded for the userinfo of a URL. */
static char *
pct_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = xmalloc(strlen(s) * 3 + 1), *o = out;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
            (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/*
 * The AMQP URL with its password replaced: amqp[s]://[user[:pass]@]rest,
 * kept by cfg.  Without userinfo the user is RabbitMQ's default, "guest".
 */
static int
url_with_password(struct wq_config *cfg, const char *url,
    const char *password, const char **out, char *err, size_t errlen)
{
    const char *auth = strstr(url, "://"), *end, *at, *colon;
    char *user, *pass, *full;

    if (password[0] == '\0') {
        *out = wq_config_keep(cfg, url, strlen(url) + 1);
        return 0;
    }
    if (auth == NULL)
        return wq_seterr(err, errlen, WQ_ECONFIG,
            "rabbitmq.url: \"%s\" is not a URL", url);
    auth += 3;
    end = auth + strcspn(auth, "/?#");
    at = NULL;
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    if (at != NULL) {
        colon = memchr(auth, ':', (size_t)(at - auth));
        user = xstrndup(auth, (size_t)((colon ? colon : at) - auth));
    } else {
        user = xstrdup("guest");
    }
    pass = pct_encode(password);
    full = xasprintf("%.*s%s:%s@%s", (int)(auth - url), url, user, pass,
        at != NULL ? at + 1 : auth);
    *out = wq_config_keep(cfg, full, strlen(full) + 1);
    free(user);
    wq_wipe_free(pass);
    wq_wipe_free(full);
    return 0;
}

/* Fills the amqp_* fields from the rabbitmq.* rows. */
static int
amqp_settings(struct wq_config *cfg, struct wq_transport_conf *out,
    char *err, size_t errlen)
{
    int rc;

    rc = url_with_password(cfg, cfg->rabbitmq.url, cfg->rabbitmq.password,
        &out->amqp_url, err, errlen);
    if (rc != 0)
        return rc;
    out->amqp_hosts = cfg->rabbitmq.hosts != NULL && cfg->rabbitmq.hosts[0] != '\0'
        ? cfg->rabbitmq.hosts
        : NULL;
    out->amqp_quorum = cfg->rabbitmq.queue_type == WQ_RABBITMQ_QUORUM;
    out->amqp_prefetch = cfg->rabbitmq.prefetch;
    /* whole seconds, rounded up so that 500ms does not mean "off" */
    out->amqp_heartbeat_s = (int)((cfg->rabbitmq.heartbeat_ms + 999) / 1000);
    out->amqp_cacert = cfg->rabbitmq.tls_ca[0] != '\0'
        ? cfg->rabbitmq.tls_ca : NULL;
    return 0;
}

/* The consumer holds at most `prefetch` unacked deliveries. */
static void
amqp_check_worker(const struct wq_config *cfg)
{
    if (cfg->rabbitmq.prefetch < cfg->worker.concurrency)
        wq_log_warn("main", "rabbitmq.prefetch %d is below "
            "worker.concurrency %d: at most %d tasks can run at once",
            cfg->rabbitmq.prefetch, cfg->worker.concurrency,
            cfg->rabbitmq.prefetch);
}

/* An idle handle must be served three times per heartbeat interval. */
static int64_t
amqp_keepalive_ms(const struct wq_config *cfg)
{
    return cfg->rabbitmq.heartbeat_ms > 0 ? cfg->rabbitmq.heartbeat_ms / 3
        : 0;
}

const struct wq_transport_ops wq_transport_amqp_ops = {
    .name = "rabbitmq",
    .open = amqp_open,
    .declare = amqp_declare,
    .publish = amqp_publish,
    .flush = amqp_flush,
    .subscribe = amqp_subscribe,
    .poll = amqp_poll,
    .ack = amqp_ack,
    .nack = amqp_nack,
    .close = amqp_close,
    .wakeup = amqp_wakeup,
    .backlog = amqp_backlog,
};

const struct wq_transport_backend wq_transport_amqp = {
    .ops = &wq_transport_amqp_ops,
    .settings = amqp_settings,
    .check_worker = amqp_check_worker,
    .keepalive_ms = amqp_keepalive_ms,
};
