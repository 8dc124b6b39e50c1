"""State of the Entra ID / Microsoft Graph fake, shared by its request threads.

Owns: the configured tenants, apps and mailboxes, the settings, issued
tokens, mailbox items (drafts, sent items), upload sessions, received
messages (also persisted under the --state directory), queued faults,
in-flight counters and the request log; plus the response helpers that
every endpoint uses (Resp, Graph error bodies, timestamps, ids).
Never: performs network I/O; every mutation happens under State.lock (a
message's files are written outside it, in message-number order: see
record_message).
"""
import base64
import collections
import datetime
import hashlib
import json
import os
import re
import secrets
import threading
import time
import uuid

MiB = 1024 * 1024

DEFAULT_SETTINGS = {
    "token_lifetime": 3599,          # seconds, the docs' example value
    "ext_token_lifetime": None,      # None: same as token_lifetime
    "graph_delay": 0.0,              # seconds every Graph request is held (in flight)
    "token_delay": 0.0,              # seconds every token request is held
    "hold_graph": False,             # True: Graph requests wait (in flight) until False
    "hold_token": False,             # True: token requests wait until False
    "mailbox_concurrency_limit": 4,  # per app and mailbox; None: unlimited
    "throttle_retry_after": 2,       # Retry-After (s) on the fake's own 429s
    "rate_per_minute": None,         # default submissions per minute per mailbox
    "max_request_bytes": 4 * MiB,    # Graph's 4 MB request limit -> 413
    "upload_min_bytes": 3 * MiB,     # createUploadSession below this -> 400
    "upload_max_bytes": 150 * MiB,
    "upload_max_chunk": 4 * MiB,     # a PUT must be smaller than this
    "upload_chunk_multiple": 327680,  # 320 KiB: every PUT but the last
    "upload_session_lifetime": 900,
    "upload_base": None,             # None: https:// + the request's Host header
    "sent_copy_delay": 0.0,          # s before a sent draft shows in Sent Items
    "graph_base": None,              # set at start: https://127.0.0.1:PORT
    "accepted_resources": None,      # None: [graph_base]; token scope = R + "/.default"
    "max_internet_headers": None,    # not documented; None: no limit
}

APP_DEFAULTS = {"secret": None, "permissions": ["Mail.Send"], "secret_expired": False,
                "disabled": False, "display_name": "mailspool test app"}
MAILBOX_DEFAULTS = {"id": None, "tenant": None, "name": None, "rest_enabled": True,
                    "rate_per_minute": None, "allowed_apps": None, "send_as": []}


class Resp:
    """One HTTP response, or an action on the connection ("drop", "reset")."""

    def __init__(self, status=200, body=b"", headers=None, action=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode("utf-8")
        self.headers = list(headers or [])
        self.action = action


def json_resp(status, obj, headers=None):
    h = [("Content-Type", "application/json; charset=utf-8")] + list(headers or [])
    return Resp(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), h)


def iso_now(offset=0.0):
    """Graph's DateTimeOffset with 7 fractional digits, in UTC."""
    t = datetime.datetime.fromtimestamp(time.time() + offset, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%07dZ" % (t.microsecond * 10)


def iso_seconds(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def graph_error(req, status, code, message, headers=None, inner_code=None):
    """The documented Graph error object, with innerError ids and date."""
    inner = {"date": iso_seconds(time.time()), "request-id": req.request_id,
             "client-request-id": req.client_request_id}
    if inner_code:
        inner["code"] = inner_code
    return json_resp(status, {"error": {"code": code, "message": message,
                                        "innerError": inner}}, headers)


def new_id(prefix="AAMkAD", n=40):
    return prefix + secrets.token_urlsafe(n)[:n] + "="


class State:
    """Everything the fake knows; guard every access with .lock."""

    def __init__(self, state_dir):
        self.lock = threading.RLock()
        self.state_dir = state_dir
        self.msg_dir = os.path.join(state_dir, "messages")
        os.makedirs(self.msg_dir, exist_ok=True)
        # A restarted fake (same state dir) continues the numbering on disk.
        self.msg_seq = max([int(n[:6]) for n in os.listdir(self.msg_dir)
                            if n[:6].isdigit() and n.endswith(".json")] or [0])
        # record_message: the number whose files were written last, and its turn.
        self.msg_written = self.msg_seq
        self.msg_turn = threading.Condition(threading.Lock())
        self.request_log_fd = None  # requests.jsonl, opened once (O_APPEND)
        self.settings = dict(DEFAULT_SETTINGS)
        self.tenants = set()
        self.apps = {}
        self.mailboxes = {}
        self.reset_runtime()

    def reset_runtime(self):
        """Clears what happened (not what is configured)."""
        with self.lock:
            self.tokens = {}
            self.token_requests = []
            self.items = {}
            self.deleted_items = []
            self.sessions = {}
            self.received = []
            self.faults = []
            self.requests = []
            self.submissions = collections.defaultdict(collections.deque)
            self.inflight = collections.Counter()
            self.max_inflight = collections.Counter()
            self.fault_seq = 0
            self.request_seq = 0
            self.connections = collections.Counter()
            self.tls_failures = []

    # ---- configuration -------------------------------------------------
    def set_settings(self, changes):
        with self.lock:
            unknown = set(changes) - set(DEFAULT_SETTINGS)
            if unknown:
                raise ValueError("unknown settings: %s" % sorted(unknown))
            self.settings.update(changes)

    def upsert_app(self, spec):
        if not spec.get("tenant") or not spec.get("client_id"):
            raise ValueError("an app needs tenant and client_id")
        with self.lock:
            key = (spec["tenant"].lower(), spec["client_id"].lower())
            app = dict(APP_DEFAULTS, **self.apps.get(key, {}))
            app.update(spec)
            self.apps[key] = app
            self.tenants.add(spec["tenant"].lower())
            return app

    def delete_app(self, tenant, client_id):
        with self.lock:
            return self.apps.pop((tenant.lower(), client_id.lower()), None) is not None

    def upsert_mailbox(self, spec):
        if not spec.get("address"):
            raise ValueError("a mailbox needs address")
        with self.lock:
            key = spec["address"].lower()
            mb = dict(MAILBOX_DEFAULTS, **self.mailboxes.get(key, {}))
            mb.update(spec)
            if not mb["id"]:
                mb["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "mailbox:" + key))
            if not mb["name"]:
                mb["name"] = spec["address"].split("@")[0]
            self.mailboxes[key] = mb
            return mb

    def find_mailbox(self, ident, tenant):
        """By id or user principal name, within the token's tenant."""
        with self.lock:
            ident_l = ident.lower()
            for mb in self.mailboxes.values():
                if ident_l in (mb["address"].lower(), mb["id"].lower()):
                    if mb["tenant"] and tenant and mb["tenant"].lower() != tenant.lower():
                        return None
                    return mb
            return None

    def accepted_resources(self):
        with self.lock:
            res = self.settings["accepted_resources"] or [self.settings["graph_base"]]
            return [r.rstrip("/") for r in res]

    # ---- tokens ----------------------------------------------------------
    def issue_token(self, app):
        with self.lock:
            tok = secrets.token_urlsafe(48)
            life = int(self.settings["token_lifetime"])
            self.tokens[tok] = {"tenant": app["tenant"], "client_id": app["client_id"],
                                "issued_at": time.time(), "expires_at": time.time() + life,
                                "expired_by_control": False}
            return tok, life

    def token_info(self, tok):
        with self.lock:
            info = self.tokens.get(tok)
            return dict(info) if info else None

    def expire_tokens(self):
        with self.lock:
            for info in self.tokens.values():
                info["expires_at"] = min(info["expires_at"], time.time() - 1)
                info["expired_by_control"] = True
            return len(self.tokens)

    # ---- faults ------------------------------------------------------------
    def add_fault(self, spec):
        with self.lock:
            self.fault_seq += 1
            f = dict(spec, id=self.fault_seq, remaining=int(spec.get("count", 1)))
            if f.get("path"):
                f["_re"] = re.compile(f["path"])
            self.faults.append(f)
            return {k: v for k, v in f.items() if not k.startswith("_")}

    def take_fault(self, method, path, endpoint):
        """The first queued fault matching this request, consuming one use."""
        with self.lock:
            for f in self.faults:
                if not endpoint_matches(f.get("endpoint", "any"), endpoint):
                    continue
                if f.get("method") and f["method"].upper() != method:
                    continue
                if f.get("_re") and not f["_re"].search(path):
                    continue
                f["remaining"] -= 1
                if f["remaining"] <= 0:
                    self.faults.remove(f)
                return dict(f)
            return None

    # ---- concurrency and rate ------------------------------------------------
    def enter(self, keys):
        with self.lock:
            for k in keys:
                self.inflight[k] += 1
                self.max_inflight[k] = max(self.max_inflight[k], self.inflight[k])
            return {k: self.inflight[k] for k in keys}

    def leave(self, keys):
        with self.lock:
            for k in keys:
                self.inflight[k] -= 1

    def rate_check(self, mailbox):
        """Seconds to wait if the mailbox's submission rate is exhausted, else 0."""
        with self.lock:
            limit = mailbox.get("rate_per_minute") or self.settings["rate_per_minute"]
            if not limit:
                return 0
            q = self.submissions[mailbox["address"].lower()]
            now = time.time()
            while q and q[0] <= now - 60:
                q.popleft()
            if len(q) < limit:
                q.append(now)
                return 0
            return max(1, int(q[0] + 60 - now + 0.999))

    # ---- received messages -----------------------------------------------------
    def record_message(self, record, raw_request, attachments):
        """Persists one delivered message: NNNNNN.json, .request.json, .att-K.bin.

        Call it without holding .lock. The number is taken under .lock, but the
        files are written outside it: creating files is the most expensive step
        of a sendMail, and every other request needs .lock meanwhile. Messages
        still take turns in number order, and .received only grows (in the same
        list, if a reset came in between: then the message belongs to the old
        one) when the files are complete, so the state directory and the state
        change exactly as if the whole step held .lock."""
        with self.lock:
            self.msg_seq += 1
            seq = self.msg_seq
            received = self.received
        with self.msg_turn:
            while self.msg_written != seq - 1:
                self.msg_turn.wait()
        try:
            base = os.path.join(self.msg_dir, "%06d" % seq)
            if raw_request is not None:
                _write(base + ".request.json", raw_request)
                record["request_file"] = base + ".request.json"
            metas = []
            for k, att in enumerate(attachments, 1):
                data = att.pop("_bytes")
                path = "%s.att-%d.bin" % (base, k)
                _write(path, data)
                metas.append(dict(att, size=len(data), file=path,
                                  sha256=hashlib.sha256(data).hexdigest()))
            record.update(seq=seq, attachments=metas, received_at=time.time())
            # Compact: json's C encoder cannot indent, and its Python one cost a
            # fifth of a sendMail (readers use json.load).
            _write(base + ".json", json.dumps(record, ensure_ascii=False).encode())
            with self.lock:
                received.append(record)
            return record
        finally:
            with self.msg_turn:
                self.msg_written = seq
                self.msg_turn.notify_all()

    def log_request(self, entry):
        with self.lock:
            self.request_seq += 1
            entry["seq"] = self.request_seq
            self.requests.append(entry)
            if self.request_log_fd is None:
                self.request_log_fd = os.open(
                    os.path.join(self.state_dir, "requests.jsonl"),
                    os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
            _write_all(self.request_log_fd,
                       (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))

    def summary(self):
        with self.lock:
            return {
                "settings": dict(self.settings),
                "tenants": sorted(self.tenants),
                "apps": [dict(a, secret="<%d chars>" % len(a["secret"] or ""))
                         for a in self.apps.values()],
                "mailboxes": list(self.mailboxes.values()),
                "token_requests": len(self.token_requests),
                "tokens_issued": sum(1 for t in self.token_requests if t["ok"]),
                "inflight": dict(self.inflight),
                "max_inflight": dict(self.max_inflight),
                "messages": len(self.received),
                "drafts": [item_view(i) for i in self.items.values()
                           if i["folder"] == "drafts"],
                "sent_items": [item_view(i) for i in self.items.values()
                               if i["folder"] == "sentitems"],
                "deleted_items": list(self.deleted_items),
                "upload_sessions": [session_view(s) for s in self.sessions.values()],
                "faults_pending": [{k: v for k, v in f.items() if not k.startswith("_")}
                                   for f in self.faults],
                "requests": len(self.requests),
                "connections": dict(self.connections),
                "tls_failures": list(self.tls_failures),
            }


def endpoint_matches(want, endpoint):
    """Fault endpoint names: "any", "graph" (every /v1.0 call), "token", "upload",
    "upload:cancel", "control" or a Graph operation ("sendMail" = "graph:sendMail")."""
    return (want in ("any", endpoint) or "graph:" + want == endpoint
            or (want == "graph" and endpoint.startswith("graph:")))


def item_view(item):
    return {"id": item["id"], "mailbox": item["mailbox"], "folder": item["folder"],
            "subject": item["message"].get("subject"), "immutable": item["immutable"],
            "attachments": [{k: v for k, v in a.items() if k != "_bytes"}
                            for a in item["attachments"]],
            "created_at": item["created_at"], "visible_at": item.get("visible_at", 0)}


def session_view(s):
    return {k: v for k, v in s.items() if k not in ("data",)} | {"received": len(s["data"])}


def b64decode_strict(text):
    if not isinstance(text, str):
        raise ValueError("not a string")
    return base64.b64decode(text.encode("ascii"), validate=True)


def _write(path, data):
    """Writes path atomically (a .tmp file renamed), with the fewest system calls."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
