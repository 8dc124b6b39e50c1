"""The Entra ID (Microsoft identity platform) token endpoint of the fake.

Owns: POST /{tenant}/oauth2/v2.0/token for the client credentials grant with a
shared secret, as documented in "Microsoft identity platform and the OAuth 2.0
client credentials flow", and its error responses with the AADSTS codes of
"Microsoft Entra authentication and authorization error codes".
Never: issues a token that the Graph side would not check (tokens are opaque
random strings whose expiry and app the state tracks).
"""
import base64
import json
import time
import uuid
from urllib.parse import parse_qs, unquote

from graph_state import json_resp

# AADSTS code -> (OAuth error, HTTP status, message template).
AADSTS = {
    900144: ("invalid_request", 400,
             "The request body must contain the following parameter: '{param}'."),
    900561: ("invalid_request", 400,
             "The endpoint only accepts POST requests. Received a {method} request."),
    70003: ("unsupported_grant_type", 400,
            "The app requested an unsupported grant type '{grant}'."),
    90002: ("invalid_request", 400,
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
            "and are signing into the correct cloud. Check with your subscription "
            "administrator, this may happen if there are no active subscriptions for the "
            "tenant."),
    700016: ("unauthorized_client", 400,
             "Application with identifier '{client_id}' was not found in the directory "
             "'{tenant}'. This can happen if the application has not been installed by the "
             "administrator of the tenant or consented to by any user in the tenant. You may "
             "have sent your authentication request to the wrong tenant."),
    7000112: ("unauthorized_client", 400,
              "Application '{client_id}'({name}) is disabled."),
    7000218: ("invalid_client", 401,
              "The request body must contain the following parameter: 'client_assertion' "
              "or 'client_secret'."),
    7000215: ("invalid_client", 401,
              "Invalid client secret provided. Ensure the secret being sent in the request "
              "is the client secret value, not the client secret ID, for a secret added to "
              "app '{client_id}'."),
    7000222: ("invalid_client", 401,
              "The provided client secret keys for app '{client_id}' are expired. Visit the "
              "Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, "
              "or consider using certificate credentials for added security: "
              "https://aka.ms/certCreds"),
    1002012: ("invalid_scope", 400,
              "The provided value for scope {scope} is not valid. Client credential flows "
              "must have a scope value with /.default suffixed to the resource identifier "
              "(application ID URI)."),
    70011: ("invalid_scope", 400,
            "The provided value for the input parameter 'scope' is not valid. The scope "
            "{scope} is not valid."),
    500011: ("invalid_resource", 400,
             "The resource principal named {resource} was not found in the tenant named "
             "{tenant}. This can happen if the application has not been installed by the "
             "administrator of the tenant or consented to by any user in the tenant. You "
             "might have sent your authentication request to the wrong tenant."),
    90100: ("invalid_request", 400, "The parameter is empty or not valid."),
    90024: ("temporarily_unavailable", 503,
            "RequestBudgetExceededError - A transient error has occurred. Try again."),
}


def aadsts_error(req, code, **fields):
    """The documented error response of the token endpoint for one AADSTS code."""
    error, status, template = AADSTS.get(code, ("invalid_request", 400, "Error {code}."))
    fields.setdefault("code", code)
    msg = template.format_map(_Blank(fields))
    trace = str(uuid.uuid4())
    corr = req.headers.get("client-request-id") or str(uuid.uuid4())
    ts = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    body = {"error": error,
            "error_description": "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\n"
                                 "Timestamp: %s" % (code, msg, trace, corr, ts),
            "error_codes": [code], "timestamp": ts, "trace_id": trace,
            "correlation_id": corr,
            "error_uri": "https://login.microsoftonline.com/error?code=%d" % code}
    return json_resp(status, body, _headers(trace))


class _Blank(dict):
    def __missing__(self, key):
        return ""


def _headers(trace):
    return [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"),
            ("x-ms-request-id", trace)]


def _client_credentials(req, form):
    """client_id/client_secret from the form or HTTP Basic (RFC 6749 2.3.1)."""
    cid = form.get("client_id")
    secret = form.get("client_secret")
    how = "post" if secret is not None else None
    auth = req.headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user, _, pw = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
            cid, secret, how = cid or unquote(user), unquote(pw), "basic"
        except (ValueError, UnicodeDecodeError):
            pass
    return cid, secret, how


def token_endpoint(state, req, tenant):
    """Handles one token request; records it in state.token_requests."""
    form = {}
    if req.method == "POST" and req.headers.get("Content-Type", "").lower().startswith(
            "application/x-www-form-urlencoded"):
        try:
            parsed = parse_qs(req.body.decode("utf-8"), keep_blank_values=True,
                              strict_parsing=False)
            form = {k: v[0] for k, v in parsed.items()}
        except UnicodeDecodeError:
            form = {}
    cid, secret, how = _client_credentials(req, form)
    entry = {"t": time.time(), "tenant": tenant, "client_id": cid, "scope": form.get("scope"),
             "grant_type": form.get("grant_type"), "credential": how, "ok": False,
             "error_code": None}
    resp, app = _check(state, req, tenant, form, cid, secret)
    if resp is None:
        tok, life = state.issue_token(app)
        ext = state.settings["ext_token_lifetime"] or life
        resp = json_resp(200, {"token_type": "Bearer", "expires_in": life,
                               "ext_expires_in": int(ext), "access_token": tok},
                         _headers(str(uuid.uuid4())))
        entry["ok"] = True
        entry["expires_in"] = life
    else:
        entry["error_code"] = int(_code_of(resp))
    with state.lock:
        state.token_requests.append(entry)
    req.log["token"] = {k: v for k, v in entry.items() if k != "t"}
    return resp


def _code_of(resp):
    return json.loads(resp.body)["error_codes"][0]


def _check(state, req, tenant, form, cid, secret):
    """Returns (error response, None) or (None, app)."""
    if req.method != "POST":
        return aadsts_error(req, 900561, method=req.method), None
    grant = form.get("grant_type")
    if not grant:
        return aadsts_error(req, 900144, param="grant_type"), None
    if grant != "client_credentials":
        return aadsts_error(req, 70003, grant=grant), None
    if not cid:
        return aadsts_error(req, 900144, param="client_id"), None
    with state.lock:
        known_tenant = tenant.lower() in state.tenants
        app = state.apps.get((tenant.lower(), cid.lower()))
        app = dict(app) if app else None
    if not known_tenant:
        return aadsts_error(req, 90002, tenant=tenant), None
    scope = form.get("scope")
    if not scope:
        return aadsts_error(req, 900144, param="scope"), None
    if app is None:
        return aadsts_error(req, 700016, client_id=cid, tenant=tenant), None
    if app["disabled"]:
        return aadsts_error(req, 7000112, client_id=cid, name=app["display_name"]), None
    if not secret:
        return aadsts_error(req, 7000218), None
    if secret != app["secret"]:
        return aadsts_error(req, 7000215, client_id=cid), None
    if app["secret_expired"]:
        return aadsts_error(req, 7000222, client_id=cid), None
    scopes = scope.split()
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        return aadsts_error(req, 1002012, scope=scope), None
    resource = scopes[0][:-len("/.default")].rstrip("/")
    if resource not in state.accepted_resources():
        return aadsts_error(req, 500011, resource=resource, tenant=tenant), None
    return None, app
