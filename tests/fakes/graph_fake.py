#!/usr/bin/python3
"""A fake of Microsoft Entra ID (token endpoint) and Microsoft Graph mail sending.

Owns: the HTTPS server (HTTP/1.1, test certificate, ALPN http/1.1), request
parsing and routing, fault injection, in-flight accounting and the control
API (plain HTTP or HTTPS under /_fake/, no auth) on the same port.
The endpoints themselves live in graph_entra.py, graph_mail.py and
graph_upload.py; the state in graph_state.py.
Never: listens on anything but the given loopback address, serves Graph or
token requests over plain HTTP, or outlives --max-seconds.

  /usr/bin/python3 tests/fakes/graph_fake.py --port 0 --cert C --key K --state DIR
      [--config FILE] [--graph-base URL] [--host 127.0.0.1] [--max-seconds 600]

prints "READY <port>" on stdout once it listens; see README.md.
"""
import argparse
import json
import os
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import graph_control  # noqa: E402
import graph_mail  # noqa: E402
import graph_upload  # noqa: E402
from graph_entra import token_endpoint  # noqa: E402
from graph_state import Resp, State, graph_error  # noqa: E402

MAX_BODY = 200 * 1024 * 1024
TOKEN_RE = re.compile(r"^/([^/]+)/oauth2/v2\.0/token/?$")
UPLOAD_RE = re.compile(r"^/api/v2\.0/Users\('([^']*)'\)/Messages\('([^']*)'\)"
                       r"/AttachmentSessions\('([^']*)'\)$")
USER_RE = re.compile(r"^/v1\.0/users/([^/]+)(/.*)?$", re.I)
GRAPH_OPS = [  # (method, path below the user, operation)
    ("POST", re.compile(r"^/sendMail$", re.I), "sendMail"),
    ("POST", re.compile(r"^/messages$", re.I), "createMessage"),
    ("GET", re.compile(r"^/messages/([^/]+)$", re.I), "getMessage"),
    ("DELETE", re.compile(r"^/messages/([^/]+)$", re.I), "deleteMessage"),
    ("POST", re.compile(r"^/messages/([^/]+)/attachments$", re.I), "addAttachment"),
    ("POST", re.compile(r"^/messages/([^/]+)/attachments/createUploadSession$", re.I),
     "createUploadSession"),
    ("POST", re.compile(r"^/messages/([^/]+)/send$", re.I), "send"),
]


class Request:
    """What an endpoint sees of one HTTP request."""

    def __init__(self, handler, endpoint, params, body):
        split = urlsplit(handler.path)
        self.method = handler.command
        self.path = split.path
        self.query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self.headers = handler.headers
        self.header_items = list(handler.headers.items())
        self.body = body
        self.endpoint = endpoint
        self.params = params
        self.tls = isinstance(handler.connection, ssl.SSLSocket)
        self.host = handler.headers.get("Host") or "127.0.0.1:%d" % handler.server.server_port
        self.request_id = str(uuid.uuid4())
        self.client_request_id = handler.headers.get("client-request-id") or self.request_id
        self.log = {}


def classify(method, path):
    """(endpoint name, params) of a request path."""
    if path == "/_fake" or path.startswith("/_fake/"):
        return "control", {"sub": path[len("/_fake"):] or "/"}
    m = TOKEN_RE.match(path)
    if m:
        return "token", {"tenant": unquote(m.group(1))}
    m = UPLOAD_RE.match(unquote(path))
    if m:
        return ("upload" if method == "PUT" else "upload:cancel" if method == "DELETE"
                else "upload:other"), {"sid": m.group(3)}
    m = USER_RE.match(path)
    if m:
        user, rest = unquote(m.group(1)), m.group(2) or ""
        for verb, rx, op in GRAPH_OPS:
            mm = rx.match(rest)
            if mm and verb == method:
                return "graph:" + op, {"user": user,
                                       "mid": unquote(mm.group(1)) if mm.groups() else None}
        return "graph:unsupported", {"user": user}
    if path.startswith("/v1.0/"):
        return "graph:unsupported", {"user": None}
    return "other", {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "graph-fake/1.0"
    timeout = 30

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    # ---- connection-level helpers ------------------------------------------------
    def _hangup(self, reset):
        """Closes without a response: FIN ("drop") or RST ("reset")."""
        self._release()
        self.close_connection = True
        if reset:
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            except OSError:
                pass
        for f in (self.rfile, self.wfile):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.connection.close()
        except OSError:
            pass

    def _read_body(self, limit=MAX_BODY):
        """(body, None) or (None, (status, message)); bodies are read completely."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline(100).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1000) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out), None
                if len(out) + size > limit:
                    self.close_connection = True
                    return None, (413, "Request body too large.")
                out += self.rfile.read(size)
                self.rfile.readline(10)
        cl = self.headers.get("Content-Length")
        if cl is None:
            if self.command in ("POST", "PUT", "PATCH"):
                self.close_connection = True
                return None, (411, "A Content-Length header is required.")
            return b"", None
        try:
            n = int(cl)
        except ValueError:
            self.close_connection = True
            return None, (400, "Malformed Content-Length.")
        if n > limit:
            self.close_connection = True
            return None, (413, "Request body too large.")
        return self.rfile.read(n), None

    def _send(self, req, resp, graph_ids=True):
        self._release()
        self.send_response(resp.status)
        for k, v in resp.headers:
            self.send_header(k, v)
        if graph_ids and req is not None:
            self.send_header("request-id", req.request_id)
            self.send_header("client-request-id", req.client_request_id)
        if resp.status not in (204, 304):
            self.send_header("Content-Length", str(len(resp.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if resp.body and self.command != "HEAD" and resp.status not in (204, 304):
            self.wfile.write(resp.body)

    # ---- dispatch ------------------------------------------------------------------
    def _dispatch(self):
        fake = self.server.fake
        t0 = time.time()
        endpoint, params = classify(self.command, urlsplit(self.path).path)
        if endpoint == "control":
            return self._control(params)
        tls = isinstance(self.connection, ssl.SSLSocket)
        entry = {"t": t0, "method": self.command, "path": self.path, "endpoint": endpoint,
                 "tls": tls, "headers": dict(self.headers.items())}
        keys = self._inflight_keys(endpoint, params)
        fake.enter(keys)
        self._in_flight = keys
        try:
            self._handle(fake, endpoint, params, tls, entry)
        finally:
            self._release()
            self._log_once(fake, entry)

    def _log_once(self, fake, entry):
        """Logs the request, once, before the first byte of its answer (or the
        hang-up) leaves: a client that has its answer finds it in the log."""
        if getattr(self, "_logged", None) is entry:
            return
        self._logged = entry
        entry["t_end"] = time.time()
        fake.log_request(entry)

    def _release(self):
        """Ends the request's in-flight count; called before the first byte of the
        answer leaves, so a client's next request never overlaps this one."""
        keys, self._in_flight = getattr(self, "_in_flight", None), None
        if keys:
            self.server.fake.leave(keys)

    def _inflight_keys(self, endpoint, params):
        state = self.server.fake
        if endpoint == "token":
            return ["token"]
        if endpoint.startswith("graph:"):
            app = mailbox = None
            tok = self.headers.get("Authorization", "").partition(" ")[2].strip()
            info = state.token_info(tok) if tok else None
            if info:
                app = info["client_id"].lower()
                mb = state.find_mailbox(params.get("user") or "", info["tenant"])
                mailbox = mb["address"].lower() if mb else None
            keys = ["graph"]
        elif endpoint.startswith("upload"):
            with state.lock:
                sess = state.sessions.get(params["sid"])
                app, mailbox = (sess["app"].lower(), sess["mailbox"].lower()) if sess \
                    else (None, None)
            keys = ["graph", "upload"]
        else:
            return []
        if app:
            keys.append("app:" + app)
        if mailbox:
            keys.append("mailbox:" + mailbox)
        if app and mailbox:
            keys.append("app_mailbox:%s|%s" % (app, mailbox))
        return keys

    def _handle(self, fake, endpoint, params, tls, entry):
        fault = fake.take_fault(self.command, self.path, endpoint)
        if fault:
            entry["fault"] = {k: v for k, v in fault.items() if k not in ("_re", "remaining")}
            if fault["action"] == "reset_mid_body":
                cl = int(self.headers.get("Content-Length", "0") or 0)
                self.rfile.read(cl // 2)
                entry["status"] = "reset"
                self._log_once(fake, entry)
                return self._hangup(reset=True)
        body, problem = self._read_body()
        req = Request(self, endpoint, params, body if body is not None else b"")
        entry.update(request_id=req.request_id, client_request_id=req.client_request_id,
                     body_bytes=len(req.body))
        entry["log"] = req.log
        if problem:
            resp = graph_error(req, problem[0], "BadRequest" if problem[0] == 400 else
                               {411: "LengthRequired", 413: "RequestEntityTooLarge"}
                               .get(problem[0], "BadRequest"), problem[1])
        elif not tls:
            self.close_connection = True
            resp = Resp(400, b"HTTPS is required (only /_fake/ answers plain HTTP).\n",
                        [("Content-Type", "text/plain")])
        else:
            resp = self._apply_fault(fake, req, fault) if fault else None
            if resp is None:
                resp = self._delay_and_limit(fake, req, endpoint)
            if resp is None:
                resp = _route_safely(fake, req)
        if resp is not None and resp.action:
            entry["status"] = resp.action
            self._log_once(fake, entry)
            return self._hangup(reset=resp.action == "reset")
        entry["status"] = resp.status
        self._log_once(fake, entry)
        return self._send(req, resp, graph_ids=endpoint != "token")

    def _apply_fault(self, fake, req, fault):
        action = fault["action"]
        if action in ("drop", "reset"):
            return Resp(action=action)
        if action == "delay":
            time.sleep(min(float(fault.get("seconds", 1)), 60.0))
            return None
        if action == "expire_tokens":
            fake.expire_tokens()
            return None
        if action == "status":
            return graph_control.fault_response(req, fault)
        raise ValueError("unknown fault action %r" % action)

    def _delay_and_limit(self, fake, req, endpoint):
        """Concurrency limit at arrival, then the configured hold and delay."""
        s = fake.settings
        if endpoint == "token":
            _hold(fake, "hold_token", s["token_delay"])
            return None
        if not (endpoint.startswith("graph:") or endpoint.startswith("upload")):
            return None
        limit = s["mailbox_concurrency_limit"]
        if limit:
            with fake.lock:
                over = [k for k in self._inflight_keys(endpoint, req.params)
                        if k.startswith("app_mailbox:") and fake.inflight[k] > limit]
            if over:
                return graph_mail.throttled(req, fake, s["throttle_retry_after"],
                                            "Application is over its MailboxConcurrency "
                                            "limit.")
        _hold(fake, "hold_graph", s["graph_delay"])
        return None

    def _control(self, params):
        body, problem = self._read_body()
        req = Request(self, "control", params, body or b"")
        if problem:
            return self._send(None, Resp(problem[0], problem[1].encode()), graph_ids=False)
        resp = graph_control.handle(self.server, req)
        self._send(None, resp, graph_ids=False)


def _hold(fake, flag, delay):
    """Sleeps delay seconds, then waits while the flag setting is set (max 60 s)."""
    if delay:
        time.sleep(min(float(delay), 60.0))
    deadline = time.monotonic() + 60.0
    while fake.settings[flag] and time.monotonic() < deadline:
        time.sleep(0.01)


def _route_safely(state, req):
    """route(), with a bug in the fake answered as 500 and logged with its traceback."""
    try:
        return route(state, req)
    except Exception:  # noqa: BLE001 - the traceback goes to the fake's log
        traceback.print_exc()
        return graph_error(req, 500, "InternalServerError", "graph_fake bug; see its log.")


def route(state, req):
    """Calls the endpoint of an HTTPS request."""
    ep, p = req.endpoint, req.params
    if ep == "token":
        return token_endpoint(state, req, p["tenant"])
    if ep == "upload":
        return graph_upload.upload_put(state, req, p["sid"])
    if ep == "upload:cancel":
        return graph_upload.upload_cancel(state, req, p["sid"])
    if ep.startswith("graph:"):
        if p.get("user") is None:
            return graph_error(req, 400, "BadRequest", "Resource not found for the segment.")
        err, ctx = graph_mail.authenticate(state, req, p["user"])
        if err:
            return err
        op = ep[len("graph:"):]
        mid = p.get("mid")
        if op == "sendMail":
            return graph_mail.send_mail(state, req, ctx)
        if op == "createMessage":
            return graph_mail.create_message(state, req, ctx)
        if op == "getMessage":
            return graph_mail.get_message(state, req, ctx, mid)
        if op == "deleteMessage":
            return graph_mail.delete_message(state, req, ctx, mid)
        if op == "addAttachment":
            return graph_mail.add_attachment(state, req, ctx, mid)
        if op == "createUploadSession":
            return graph_upload.create_upload_session(state, req, ctx, mid)
        if op == "send":
            return graph_mail.send_draft(state, req, ctx, mid)
        return graph_error(req, 400, "BadRequest",
                           "The fake does not implement %s %s." % (req.method, req.path))
    return graph_error(req, 404, "NotFound", "No such endpoint: %s %s" % (req.method, req.path))


class FakeServer(ThreadingHTTPServer):
    """Accepts TLS and plain HTTP on one port: a TLS ClientHello starts with 0x16."""
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, addr, ssl_ctx, state):
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, Handler)
        self.ssl_ctx = ssl_ctx
        self.fake = state

    def finish_request(self, request, client_address):
        request.settimeout(30)
        try:
            first = request.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if not first:
            return
        tls = first[0] == 0x16
        with self.fake.lock:
            self.fake.connections["tls" if tls else "plain"] += 1
        if tls:
            try:
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                with self.fake.lock:
                    self.fake.tls_failures.append({"t": time.time(), "error": repr(e)})
                return
        try:
            Handler(request, client_address, self)
        finally:
            if tls:
                try:
                    request.close()
                except OSError:
                    pass


def main(argv=None):
    ap = argparse.ArgumentParser(description="Entra ID / Microsoft Graph mail fake")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--state", required=True, help="directory for received messages")
    ap.add_argument("--config", help="JSON: {tenants, apps, mailboxes, settings}")
    ap.add_argument("--graph-base", help="expected Graph base URL; {port} is replaced "
                                         "(default https://127.0.0.1:{port})")
    ap.add_argument("--max-seconds", type=float, default=600.0)
    args = ap.parse_args(argv)
    os.makedirs(args.state, exist_ok=True)
    state = State(args.state)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])
    server = FakeServer((args.host, args.port), ctx, state)
    port = server.server_address[1]
    host = "[%s]" % args.host if ":" in args.host else args.host
    state.settings["graph_base"] = (args.graph_base or "https://%s:{port}" % host).format(
        port=port).rstrip("/")
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            graph_control.apply_config(state, json.load(f))

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(args.max_seconds, stop)
    timer.daemon = True
    timer.start()
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
