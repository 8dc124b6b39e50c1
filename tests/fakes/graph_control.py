"""The control API of the Graph fake: /_fake/... on the fake's own port, no auth.

Owns: configuring tenants, apps, mailboxes and settings; queueing faults;
expiring tokens and upload URLs; reading the state (token requests, in-flight
maxima, received messages, drafts, sent items, the request log); the canned
responses of "status" faults.
Never: is reachable except on the loopback address the fake listens on.
"""
import json
import threading

from graph_entra import aadsts_error
from graph_mail import WWW_AUTH
from graph_state import Resp, graph_error, item_view, json_resp
from graph_upload import expire_sessions

FAULT_ACTIONS = {"status", "drop", "reset", "reset_mid_body", "delay", "expire_tokens"}
DEFAULT_CODES = {400: "BadRequest", 401: "InvalidAuthenticationToken", 403: "ErrorAccessDenied",
                 404: "ErrorItemNotFound", 409: "ErrorIrresolvableConflict",
                 413: "RequestEntityTooLarge", 429: "TooManyRequests",
                 500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable",
                 504: "GatewayTimeout"}


def apply_config(state, cfg):
    """{"tenants": [...], "apps": [...], "mailboxes": [...], "settings": {...}}"""
    for t in cfg.get("tenants", []):
        with state.lock:
            state.tenants.add(t.lower())
    for a in cfg.get("apps", []):
        state.upsert_app(a)
    for m in cfg.get("mailboxes", []):
        state.upsert_mailbox(m)
    if cfg.get("settings"):
        state.set_settings(cfg["settings"])


def fault_response(req, fault):
    """The response of a queued "status" fault."""
    status = int(fault.get("status", 500))
    headers = list((fault.get("headers") or {}).items())
    if fault.get("retry_after") is not None:
        headers.append(("Retry-After", str(fault["retry_after"])))
    body = fault.get("body")
    if fault.get("aadsts") is not None or (body is None and req.endpoint == "token"):
        resp = aadsts_error(req, int(fault.get("aadsts") or 90024), **(fault.get("fields") or {}))
        resp.status = status
        resp.headers += headers
        return resp
    if body is None:
        if status == 401:
            headers.append(("WWW-Authenticate", WWW_AUTH))
        return graph_error(req, status, fault.get("code") or DEFAULT_CODES.get(status, "Error"),
                           fault.get("message") or "Injected by the test (fault %d)."
                           % fault["id"], headers)
    if isinstance(body, (dict, list)):
        return json_resp(status, body, headers)
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "text/plain; charset=utf-8"))
    return Resp(status, str(body).encode("utf-8"), headers)


def _as_list(doc):
    return doc if isinstance(doc, list) else [doc]


def _add_faults(state, doc):
    out = []
    for f in _as_list(doc):
        f = dict(f)
        f.setdefault("action", "status")
        if f["action"] not in FAULT_ACTIONS:
            raise ValueError("unknown fault action %r (one of %s)"
                             % (f["action"], sorted(FAULT_ACTIONS)))
        out.append(state.add_fault(f))
    return out


def _get(server, state, sub, req):
    with state.lock:
        if sub == "/health":
            return {"ok": True, "port": server.server_port,
                    "graph_base": state.settings["graph_base"]}
        if sub == "/state":
            return state.summary()
        if sub == "/requests":
            since = int(req.query.get("since", "0"))
            return [r for r in state.requests if r["seq"] > since]
        if sub == "/messages":
            return list(state.received)
        if sub == "/tokens":
            return [dict(v, access_token=k) for k, v in state.tokens.items()]
        if sub == "/token_requests":
            return list(state.token_requests)
        if sub == "/items":
            return [item_view(i) for i in state.items.values()]
    raise KeyError("no such control resource: GET /_fake%s" % sub)


def _post(server, state, sub, doc):
    if sub == "/apps":
        return [state.upsert_app(a) for a in _as_list(doc)]
    if sub == "/apps/delete":
        return {"deleted": state.delete_app(doc["tenant"], doc["client_id"])}
    if sub == "/tenants":
        apply_config(state, {"tenants": _as_list(doc)})
        return sorted(state.tenants)
    if sub == "/mailboxes":
        return [state.upsert_mailbox(m) for m in _as_list(doc)]
    if sub == "/settings":
        state.set_settings(doc or {})
        return state.settings
    if sub == "/config":
        apply_config(state, doc or {})
        return {"ok": True}
    if sub == "/faults":
        return _add_faults(state, doc)
    if sub == "/force_401":
        n = int((doc or {}).get("count", 1))
        return _add_faults(state, {"endpoint": "graph", "action": "status", "status": 401,
                                   "count": n, "code": "InvalidAuthenticationToken",
                                   "message": "Lifetime validation failed, the token is "
                                              "expired."})
    if sub == "/expire_tokens":
        return {"expired": state.expire_tokens()}
    if sub == "/expire_upload_urls":
        return {"expired": expire_sessions(state)}
    if sub == "/reset":
        state.reset_runtime()
        return {"ok": True}
    if sub == "/shutdown":
        threading.Thread(target=server.shutdown, daemon=True).start()
        return {"ok": True}
    raise KeyError("no such control resource: POST /_fake%s" % sub)


def handle(server, req):
    state = server.fake
    sub = req.params["sub"].rstrip("/") or "/"
    try:
        if req.method == "GET":
            return json_resp(200, _get(server, state, sub, req))
        if req.method == "DELETE" and sub == "/faults":
            with state.lock:
                n = len(state.faults)
                state.faults.clear()
            return json_resp(200, {"cleared": n})
        if req.method == "POST":
            doc = json.loads(req.body.decode("utf-8") or "null")
            return json_resp(200, _post(server, state, sub, doc))
        return json_resp(405, {"error": "method not allowed"})
    except (ValueError, KeyError, TypeError) as e:
        return json_resp(400, {"error": "%s: %s" % (type(e).__name__, e)})
