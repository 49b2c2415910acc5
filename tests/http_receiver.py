#!/usr/bin/python3
"""http_receiver.py - an HTTPS receiver for the http handler's tests.

Usage: http_receiver.py CERT KEY SECRET LOG [PORT]

Listens on 127.0.0.1 (PORT, else a free port; printed as "PORT N" on
stdout once it listens), HTTP/1.1 with keep-alive, TLS with CERT and KEY.  Every
request is checked the way a service should: X-Workq-Signature must be
"v1=" + hex HMAC-SHA256(SECRET, X-Workq-Timestamp "." body), compared in
constant time, with a timestamp within 5 minutes; a request that fails
the check is answered 401.  One JSON line per request goes to LOG: the
workq headers, whether the signature held, the client's port (one per
connection) and the answer.

The payload says how to answer:
  ok:TEXT            200, body "done:" + payload
  status:N[:ra=S]    status N, body "refused by receiver", with
                     Retry-After: S when given (302 also has a Location)
  slow               200 after 0.5 s
  hang               no answer for 30 s
  cut                headers saying 1000 bytes, 10 of them, then close

Completion hooks (test_hooks.c) are told apart by their path: /slow...
logs the request at once (status 0), then answers 200 after 3 s (and
logs again); /hangonce... is held without an answer for 30 s the
first time (logged with status 0), answered 200 every later time; any
other path is answered by the payload rules above,
which for a hook's JSON body means 200.
"""
import hashlib
import hmac
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CERT, KEY, SECRET, LOG = sys.argv[1:5]
PORT = int(sys.argv[5]) if len(sys.argv) > 5 else 0
log_lock = threading.Lock()
hung = set()    # the /hangonce... paths answered once already


def log(entry):
    with log_lock, open(LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        ts = self.headers.get("X-Workq-Timestamp", "")
        sig = self.headers.get("X-Workq-Signature", "")
        want = "v1=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body,
                                hashlib.sha256).hexdigest()
        fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
        sig_ok = fresh and hmac.compare_digest(sig, want)
        entry = {h: self.headers.get(h) for h in (
            "X-Workq-Id", "X-Workq-Key", "X-Workq-Queue", "X-Workq-Type",
            "X-Workq-Attempt", "X-Workq-Max-Attempts", "traceparent",
            "X-Workq-Delivery", "X-Workq-Event")}
        entry.update(sig_ok=sig_ok, port=self.client_address[1],
                     body=body.decode("utf-8", "replace"), path=self.path)
        cmd = body.decode("utf-8", "replace")
        if not sig_ok:
            entry["status"] = 401
            log(entry)
            return self.answer(401, b"bad signature")
        if self.path.startswith("/hangonce"):
            with log_lock:
                first = self.path not in hung
                hung.add(self.path)
            if first:
                log(dict(entry, status=0))
                time.sleep(30)
                self.close_connection = True
                return None
            entry["status"] = 200
            log(entry)
            return self.answer(200, b"ok")
        if self.path.startswith("/slow"):
            log(dict(entry, status=0))
            time.sleep(3)
            entry["status"] = 200
            log(entry)
            return self.answer(200, b"ok")
        if cmd.startswith("status:"):
            parts = cmd.split(":")
            status = int(parts[1])
            extra = []
            if len(parts) > 2 and parts[2].startswith("ra="):
                extra.append(("Retry-After", parts[2][3:]))
            if status == 302:
                extra.append(("Location", "https://127.0.0.1:1/elsewhere"))
            entry["status"] = status
            log(entry)
            return self.answer(status, b"refused by receiver", extra)
        if cmd == "hang":
            entry["status"] = 0
            log(entry)
            time.sleep(30)
            self.close_connection = True
            return None
        if cmd == "cut":
            entry["status"] = 200
            log(entry)
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return None
        if cmd == "slow":
            time.sleep(0.5)
        entry["status"] = 200
        log(entry)
        return self.answer(200, b"done:" + body)


def main():
    ThreadingHTTPServer.allow_reuse_address = True
    srv = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(f"PORT {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
