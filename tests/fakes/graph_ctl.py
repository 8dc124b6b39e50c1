"""Driving one graph_fake.py process from a test (or a demo script).

Owns: the process (start, stop, kill, restart on the same port with the same
configuration), the control API calls (/_fake/...) and reading the messages
the fake persisted in its state directory.
Never: talks to the Graph or token endpoints itself, or waits without a deadline.
"""
import glob
import http.client
import json
import os

from procutil import FakeProcess, wait_until

DEFAULT_TENANT = "66666666-7777-8888-9999-000000000000"
DEFAULT_CLIENT = "11111111-2222-3333-4444-555555555555"
DEFAULT_SECRET = "test~Secret.Value_0123456789abcdefABCDEF"
DEFAULT_MAILBOX = "ppr@airport.example"


class GraphFake:
    """A running graph_fake.py.

    Attributes: port, base_url (https://127.0.0.1:PORT, also the Graph base),
    authority (the same: token URL = authority + /{tenant}/oauth2/v2.0/token),
    scope (base_url + "/.default"), ca (CA file for the client), state_dir.
    """

    def __init__(self, state_dir, cert, key, ca=None, config=None, graph_base=None,
                 host="127.0.0.1", max_seconds=600):
        self.state_dir = str(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self.cert, self.key, self.ca = cert, key, ca
        self.host = host
        self._graph_base = graph_base
        self._max_seconds = max_seconds
        self._config = {"tenants": [], "apps": [], "mailboxes": [], "settings": {}}
        if config:
            self._merge_config(config)
        self.port = None
        self._proc = None
        self.tenant, self.client_id = DEFAULT_TENANT, DEFAULT_CLIENT
        self.secret, self.mailbox = DEFAULT_SECRET, DEFAULT_MAILBOX

    # ---- process ------------------------------------------------------------
    def start(self, port=0):
        cfg = os.path.join(self.state_dir, "config.json")
        with open(cfg, "w", encoding="utf-8") as f:
            json.dump(self._config, f, indent=1)
        args = ["--host", self.host, "--port", port, "--cert", self.cert, "--key", self.key,
                "--state", self.state_dir, "--config", cfg, "--max-seconds", self._max_seconds]
        if self._graph_base:
            args += ["--graph-base", self._graph_base]
        self._proc = FakeProcess("graph_fake.py", args, os.path.join(self.state_dir, "fake.log"))
        self.port = self._proc.start()
        self.base_url = self.control("GET", "/health")["graph_base"]
        self.authority = self.base_url
        self.scope = self.base_url + "/.default"
        return self

    @property
    def alive(self):
        return self._proc is not None and self._proc.alive

    def stop(self):
        return self._proc.stop() if self._proc else None

    def kill(self):
        if self._proc:
            self._proc.kill()

    def restart(self):
        """Stops and starts on the same port with the configuration given so far
        (runtime state such as tokens and drafts is lost; persisted messages stay)."""
        self.stop()
        return self.start(port=self.port)

    def log(self):
        return self._proc.log_tail() if self._proc else ""

    def token_url(self, tenant=DEFAULT_TENANT):
        return "%s/%s/oauth2/v2.0/token" % (self.authority, tenant)

    # ---- control API ----------------------------------------------------------
    def control(self, method, path, doc=None, timeout=10):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            body = json.dumps(doc).encode() if doc is not None else None
            conn.request(method, "/_fake" + path, body=body,
                         headers={"Content-Type": "application/json"} if body else {})
            r = conn.getresponse()
            data = json.loads(r.read() or b"null")
        finally:
            conn.close()
        if r.status != 200:
            raise RuntimeError("graph fake control %s %s: %s %s" % (method, path, r.status, data))
        return data

    def _merge_config(self, cfg):
        for k in ("tenants", "apps", "mailboxes"):
            self._config[k] += list(cfg.get(k, []))
        self._config["settings"].update(cfg.get("settings", {}))

    def _configure(self, kind, doc):
        self._merge_config({kind: [doc]} if kind != "settings" else {"settings": doc})
        if self.alive:
            path = {"tenants": "/tenants", "apps": "/apps", "mailboxes": "/mailboxes",
                    "settings": "/settings"}[kind]
            return self.control("POST", path, doc)
        return None

    def add_tenant(self, tenant):
        return self._configure("tenants", tenant)

    def add_app(self, tenant=DEFAULT_TENANT, client_id=DEFAULT_CLIENT, secret=DEFAULT_SECRET,
                permissions=("Mail.Send",), secret_expired=False, disabled=False, **extra):
        """Creates or updates an app registration (upsert by tenant + client_id)."""
        doc = dict(extra, tenant=tenant, client_id=client_id, secret=secret,
                   permissions=list(permissions), secret_expired=secret_expired,
                   disabled=disabled)
        return self._configure("apps", doc)

    def update_app(self, tenant=DEFAULT_TENANT, client_id=DEFAULT_CLIENT, **changes):
        """Changes some fields of an existing app, e.g. secret_expired=True."""
        return self._configure("apps", dict(changes, tenant=tenant, client_id=client_id))

    def add_mailbox(self, address=DEFAULT_MAILBOX, **extra):
        """extra: id, tenant, name, rest_enabled, rate_per_minute, allowed_apps, send_as."""
        return self._configure("mailboxes", dict(extra, address=address))

    def settings(self, **changes):
        """See graph_state.DEFAULT_SETTINGS (token_lifetime, graph_delay, ...)."""
        return self._configure("settings", changes)

    def fault(self, **spec):
        """Queues a fault: endpoint ("any", "graph", "token", "upload", "sendMail",
        "createMessage", "getMessage", "deleteMessage", "addAttachment",
        "createUploadSession", "send", "upload:cancel"), method, path (regex),
        count, action ("status", "drop", "reset", "reset_mid_body", "delay",
        "expire_tokens") and for "status": status, headers, body, retry_after,
        code, message, aadsts (token endpoint); for "delay": seconds."""
        return self.control("POST", "/faults", spec)

    def throttle(self, count=1, retry_after=1, endpoint="graph"):
        return self.fault(endpoint=endpoint, action="status", status=429, count=count,
                          retry_after=retry_after)

    def clear_faults(self):
        return self.control("DELETE", "/faults")

    def expire_tokens(self):
        return self.control("POST", "/expire_tokens", {})["expired"]

    def force_401(self, count=1):
        return self.control("POST", "/force_401", {"count": count})

    def expire_upload_urls(self):
        return self.control("POST", "/expire_upload_urls", {})["expired"]

    def reset(self):
        return self.control("POST", "/reset", {})

    # ---- reading state ------------------------------------------------------------
    def state(self):
        return self.control("GET", "/state")

    def requests(self, since=0):
        return self.control("GET", "/requests?since=%d" % since)

    def graph_requests(self):
        return [r for r in self.requests() if r["endpoint"].startswith(("graph:", "upload"))]

    def token_requests(self):
        return self.control("GET", "/token_requests")

    def token_count(self):
        """Number of token requests that got a token."""
        return sum(1 for t in self.token_requests() if t["ok"])

    def tokens(self):
        return self.control("GET", "/tokens")

    def items(self):
        return self.control("GET", "/items")

    def drafts(self):
        return [i for i in self.items() if i["folder"] == "drafts"]

    def sent_items(self):
        return [i for i in self.items() if i["folder"] == "sentitems"]

    def hold(self, graph=True, token=None):
        """hold(True): Graph requests wait (counted in flight) until hold(False);
        token=True/False does the same for token requests. Bounded: 60 s each."""
        changes = {"hold_graph": bool(graph)}
        if token is not None:
            changes["hold_token"] = bool(token)
        return self.settings(**changes)

    def inflight(self, key="graph"):
        """Requests in flight now (keys as for max_inflight)."""
        return self.state()["inflight"].get(key.lower(), 0)

    def max_inflight(self, key="graph"):
        """Highest number of simultaneous requests seen for key: "graph" (all Graph
        and upload requests), "token", "upload", "app:CLIENT_ID", "mailbox:ADDRESS",
        "app_mailbox:CLIENT_ID|ADDRESS" (ids and addresses lower-case)."""
        return self.state()["max_inflight"].get(key.lower(), 0)

    def messages(self):
        """Delivered messages, read from the state directory (works after the fake
        died): the record (kind "sendMail" | "draft" | "mime", mailbox, app,
        message, save_to_sent_items, request_headers, attachments [{name,
        contentType, size, sha256, via, file}], ...) plus request_raw (bytes of the
        sendMail or draft-creating request body), request_json (parsed, or None)
        and each attachment's bytes under "data"."""
        out = []
        pattern = os.path.join(self.state_dir, "messages", "[0-9]" * 6 + ".json")
        for path in sorted(glob.glob(pattern)):
            with open(path, encoding="utf-8") as f:
                rec = json.load(f)
            rec["request_raw"] = rec["request_json"] = None
            if rec.get("request_file"):
                with open(rec["request_file"], "rb") as f:
                    rec["request_raw"] = f.read()
                try:
                    rec["request_json"] = json.loads(rec["request_raw"])
                except ValueError:
                    pass
            for a in rec["attachments"]:
                with open(a["file"], "rb") as f:
                    a["data"] = f.read()
            out.append(rec)
        return out

    def wait_for_messages(self, n, timeout=10.0):
        pattern = os.path.join(self.state_dir, "messages", "[0-9]" * 6 + ".json")
        try:
            wait_until(lambda: len(glob.glob(pattern)) >= n, timeout,
                       what="%d message(s) at the Graph fake" % n)
        except AssertionError as e:
            tail = [json.dumps({k: r.get(k) for k in ("method", "path", "status")})
                    for r in (self.requests()[-15:] if self.alive else [])]
            raise AssertionError("%s; last requests:\n%s" % (e, "\n".join(tail))) from None
        return self.messages()
