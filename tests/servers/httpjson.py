#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A scripted JSON HTTP server for the http_poll integration tests.

    httpjson.py DIR PORT

Serves DIR/docs/NAME at /NAME (GET, POST or PUT) on 127.0.0.1:PORT, with
HTTP/1.1 keep-alive and one thread per connection, so a slow response does
not hold up the others. The query string scripts the behaviour:

    ?status=500          answer with that status and a short JSON error body
    ?delay=2.5           wait that many seconds before answering
    ?auth=basic:USER:PW  require HTTP basic auth (401 otherwise)
    ?auth=bearer:TOKEN   require "Authorization: Bearer TOKEN" (401 otherwise)
    ?type=text/html      Content-Type of the answer (default application/json)

With DIR/tls/server.pem and server.key it serves HTTPS instead, and with
DIR/tls/client-ca.pem it also requires a client certificate signed by it.

GET /_stats answers what was asked, per path: {"paths": {"/a.json":
{"requests": 3, "connections": 1, "methods": [...], "headers": {...last...},
"body": "...last..."}}, "connections": 2, "max_inflight": 2}
(connections: distinct client connections). Access lines go to
DIR/access.log.
"""
import base64
import http.server
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse

DIR = sys.argv[1]
PORT = int(sys.argv[2])
DOCS = os.path.realpath(os.path.join(DIR, "docs"))

lock = threading.Lock()
paths = {}
conns = set()
inflight = 0
max_inflight = 0


def record(path, handler, body):
    global inflight, max_inflight
    with lock:
        p = paths.setdefault(path, {"requests": 0, "conns": set(), "methods": []})
        p["requests"] += 1
        p["conns"].add(handler.client_address[1])
        conns.add(handler.client_address[1])
        p["methods"].append(handler.command)
        p["headers"] = {k: v for k, v in handler.headers.items()}
        p["body"] = body.decode("utf-8", "replace")
        inflight += 1
        max_inflight = max(max_inflight, inflight)


def done():
    global inflight
    with lock:
        inflight -= 1


def stats():
    with lock:
        out = {}
        for k, p in paths.items():
            out[k] = {"requests": p["requests"], "connections": len(p["conns"]),
                      "methods": p["methods"], "headers": p.get("headers", {}),
                      "body": p.get("body", "")}
        return {"paths": out, "connections": len(conns), "max_inflight": max_inflight}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        # The TLS handshake runs here, on the connection's thread, so a
        # client that fails it does not hold up the accept loop.
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def send(self, status, data, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def serve(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if url.path == "/_stats":
            self.send(200, json.dumps(stats()).encode())
            return
        record(url.path, self, body)
        try:
            delay = float(q.get("delay", ["0"])[0])
            if delay > 0:
                time.sleep(delay)
            auth = q.get("auth", [None])[0]
            if auth:
                kind, _, cred = auth.partition(":")
                want = ("Basic " + base64.b64encode(cred.encode()).decode()
                        if kind == "basic" else "Bearer " + cred)
                if self.headers.get("Authorization") != want:
                    self.send(401, b'{"error":"unauthorized"}')
                    return
            status = int(q.get("status", ["200"])[0])
            if status != 200:
                self.send(status, b'{"error":"scripted failure"}')
                return
            path = os.path.realpath(os.path.join(DOCS, url.path.lstrip("/")))
            if not path.startswith(DOCS + os.sep) or not os.path.isfile(path):
                self.send(404, b'{"error":"no such document"}')
                return
            with open(path, "rb") as f:
                data = f.read()
            self.send(200, data, q.get("type", ["application/json"])[0])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout under test)
        finally:
            done()

    do_GET = serve
    do_POST = serve
    do_PUT = serve

    def log_message(self, fmt, *args):
        with lock, open(os.path.join(DIR, "access.log"), "a") as f:
            f.write("%s %s\n" % (self.client_address[1], fmt % args))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client that went away mid-answer is not an error here


def tls_context():
    tls = os.path.join(DIR, "tls")
    if not os.path.exists(os.path.join(tls, "server.pem")):
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(tls, "server.pem"), os.path.join(tls, "server.key"))
    client_ca = os.path.join(tls, "client-ca.pem")
    if os.path.exists(client_ca):
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


if __name__ == "__main__":
    server = Server(("127.0.0.1", PORT), Handler)
    ctx = tls_context()
    if ctx:
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    server.serve_forever()
