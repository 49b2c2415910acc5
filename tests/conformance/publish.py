#!/usr/bin/python3
"""publish.py - a producer written from docs/wire-format.md alone.

It publishes workq task envelopes straight to RabbitMQ or Kafka the way a
team in another language would, with only Debian's python3-msgpack,
python3-pika and python3-confluent-kafka (tests/deps.sh installs them),
and is run by tests/integration/test_conformance.c, which then starts a
real worker and checks in PostgreSQL what ran.

First it checks its own encoder against the document's test vectors
(the "<!-- vector NAME -->" blocks), so a document that a Python
encoder cannot follow fails here.  Then it publishes, to queue QUEUE:

  - COUNT tasks of type "echo", keys PREFIX-0 .. PREFIX-(COUNT-1), ids the
    key's UUIDv5, payload b"\\x00\\xff" + b"payload-I" (binary: bin, not
    str), a traceparent header;
  - the key PREFIX-0 a second time (a duplicate: must not run again);
  - one task with a UUIDv7 id and key PREFIX-v7;
  - one malformed envelope: version 3, key PREFIX-bad (must become a
    dead letter, never run).

Usage: publish.py rabbitmq AMQP_URL QUEUE PREFIX COUNT
       publish.py kafka BROKERS QUEUE PREFIX COUNT
Exit status 0 when every message was confirmed by the broker.
"""
import json
import os
import re
import sys
import time
import uuid

try:
    import msgpack
except ImportError:
    sys.exit("publish.py: python3-msgpack is missing (sh tests/deps.sh)")

# The namespace of the key's UUIDv5 (docs/wire-format.md, "The id").
KEY_NAMESPACE = uuid.UUID("5c0b8f1e-6a2d-4f3b-9e7c-1d2a3b4c5d6e")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "docs", "wire-format.md")


def key_id(queue, key):
    """The id every producer gives the task of (queue, key)."""
    return uuid.uuid5(KEY_NAMESPACE, f"{queue}:{key}").bytes


def uuid7():
    """A UUIDv7: 48-bit Unix ms, version 7, variant 10, random bits."""
    b = bytearray(int(time.time() * 1000).to_bytes(6, "big") + os.urandom(10))
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    return bytes(b)


def envelope(queue, type_, key, payload, id_=None, attempt=1, max_attempts=25,
             created_ms=None, run_at_ms=0, headers=None, version=1):
    """One envelope, fields in the document's order, v first."""
    e = {
        "v": version,
        "id": id_ if id_ is not None else key_id(queue, key),
        "q": queue,
        "t": type_,
        "k": key,
        "p": bytes(payload),
        "a": attempt,
        "m": max_attempts,
        "c": created_ms if created_ms is not None
        else int(time.time() * 1000),
    }
    if run_at_ms:
        e["r"] = run_at_ms
    if headers:
        e["h"] = dict(headers)
    # use_bin_type: bytes become msgpack bin, str stays str
    return msgpack.packb(e, use_bin_type=True)


def check_vectors():
    """Our encoder writes the document's accepted vectors byte for byte."""
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    for name in ("minimal", "full"):
        m = re.search(r"<!-- vector %s -->\s*```json\n(.*?)```\s*```hex\n"
                      r"(.*?)```" % re.escape(name), doc, re.S)
        if m is None:
            sys.exit(f"publish.py: {DOC} has no vector {name}")
        v = json.loads(m.group(1))
        want = bytes.fromhex("".join(m.group(2).split()))
        got = envelope(v["q"], v["t"], v["k"], bytes.fromhex(v["p_hex"]),
                       id_=uuid.UUID(v["id"]).bytes, attempt=v["a"],
                       max_attempts=v["m"],
                       created_ms=v["c"], run_at_ms=v.get("r", 0),
                       headers=v.get("h", []))
        if got != want:
            sys.exit(f"publish.py: vector {name}: we encode\n{got.hex()}\n"
                     f"the document says\n{want.hex()}")
        if name == "minimal" and uuid.UUID(v["id"]).bytes != key_id(
                v["q"], v["k"]):
            sys.exit("publish.py: the minimal vector's id is not its key's "
                     "UUIDv5")


def messages(queue, prefix, count):
    """(key, body) pairs to publish, in order."""
    out = []
    for i in range(count):
        key = f"{prefix}-{i}"
        out.append((key, envelope(queue, "echo", key,
                                  b"\x00\xff" + b"payload-%d" % i,
                                  headers=[("traceparent", TRACEPARENT)])))
    # the same key again, another payload: a duplicate, runs nothing
    k0 = f"{prefix}-0"
    out.append((k0, envelope(queue, "echo", k0, b"duplicate")))
    kv7 = f"{prefix}-v7"
    out.append((kv7, envelope(queue, "echo", kv7, b"v7", id_=uuid7())))
    kbad = f"{prefix}-bad"
    out.append((kbad, envelope(queue, "echo", kbad, b"bad", version=3)))
    return out


def publish_rabbitmq(url, queue, msgs):
    try:
        import pika
    except ImportError:
        sys.exit("publish.py: python3-pika is missing (sh tests/deps.sh)")
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    name = "workq." + queue
    # exactly the arguments of the document, or PRECONDITION_FAILED
    ch.queue_declare(queue=name, durable=True,
                     arguments={"x-queue-type": "quorum"})
    ch.confirm_delivery()
    props_of = lambda key: pika.BasicProperties(  # noqa: E731
        delivery_mode=2, content_type="application/msgpack",
        message_id=key if len(key.encode()) <= 255 else None)
    for key, body in msgs:
        # with confirms on, basic_publish waits for the broker's ack and
        # raises on a nack or a return (mandatory)
        ch.basic_publish(exchange="", routing_key=name, body=body,
                         properties=props_of(key), mandatory=True)
    conn.close()


def publish_kafka(brokers, queue, msgs):
    try:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError:
        sys.exit("publish.py: python3-confluent-kafka is missing "
                 "(sh tests/deps.sh)")
    topic = "workq." + queue
    # the topic as workq creates it: 4 partitions, replication 1 (the
    # defaults of kafka.partitions and kafka.replication_factor)
    admin = AdminClient({"bootstrap.servers": brokers})
    fut = admin.create_topics([NewTopic(topic, num_partitions=4,
                                        replication_factor=1)])
    for f in fut.values():
        try:
            f.result(30)
        except Exception as e:      # an existing topic is fine
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
    failed = []
    # one request in flight: a retried batch (a topic just created
    # answers the first produce with a retriable error) cannot land after
    # a later one, so the duplicate of PREFIX-0 stays behind the original
    # (librdkafka CONFIGURATION.md, max.in.flight.requests.per.connection;
    # a CI run saw the duplicate claimed first without it)
    p = Producer({"bootstrap.servers": brokers, "acks": "all",
                  "max.in.flight.requests.per.connection": 1,
                  "message.timeout.ms": 60000})

    def report(err, msg):
        if err is not None:
            failed.append((msg.key(), err))
    for key, body in msgs:
        p.produce(topic, key=key.encode(), value=body, on_delivery=report)
        p.poll(0)
    left = p.flush(90)
    if left != 0 or failed:
        sys.exit(f"publish.py: kafka: {left} unconfirmed, failed: {failed}")


def main(argv):
    if len(argv) != 6 or argv[1] not in ("rabbitmq", "kafka"):
        sys.exit(__doc__)
    kind, addr, queue, prefix, count = argv[1:]
    check_vectors()
    msgs = messages(queue, prefix, int(count))
    if kind == "rabbitmq":
        publish_rabbitmq(addr, queue, msgs)
    else:
        publish_kafka(addr, queue, msgs)
    print(f"published {len(msgs)} messages to {kind} queue {queue}")


if __name__ == "__main__":
    main(sys.argv)
