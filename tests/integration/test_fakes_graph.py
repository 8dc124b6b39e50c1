"""Self-tests of the Entra ID / Microsoft Graph fake (tests/fakes/graph_fake.py).

Owns: proof, with http.client over TLS, that the fake answers as Microsoft's
documentation says (token responses and AADSTS error bodies, sendMail, the
draft and upload-session path with its range rules, throttling, errors) and
that its control API and faults work, so daemon tests can trust it.
Never: talks to anything but fakes started by the graph fixtures.
"""
import base64
import http.client
import json
import re
import ssl
import threading
import urllib.parse
import uuid

import pytest

from procutil import wait_until

KiB, MiB = 1024, 1024 * 1024


class Client:
    """A keep-alive HTTPS client for one fake."""

    def __init__(self, fake):
        self.fake = fake
        ctx = ssl.create_default_context(cafile=fake.ca)
        self.conn = http.client.HTTPSConnection("127.0.0.1", fake.port, context=ctx, timeout=20)

    def call(self, method, url, body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = dict({"Content-Type": "application/json"}, **(headers or {}))
        path = url[len(self.fake.base_url):] if url.startswith("https://") else url
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
        return r.status, hdrs, data, doc

    def token(self, tenant=None, headers=None, **form):
        """A client credentials token request; form=None drops a field."""
        f = self.fake
        fields = {"client_id": f.client_id, "client_secret": f.secret, "scope": f.scope,
                  "grant_type": "client_credentials"}
        fields.update(form)
        fields = {k: v for k, v in fields.items() if v is not None}
        return self.call("POST", "/%s/oauth2/v2.0/token" % (tenant or f.tenant),
                         urllib.parse.urlencode(fields).encode(),
                         dict({"Content-Type": "application/x-www-form-urlencoded"},
                              **(headers or {})))

    def bearer(self):
        st, _, _, doc = self.token()
        assert st == 200, doc
        return {"Authorization": "Bearer " + doc["access_token"]}

    def user(self, rest, mailbox=None):
        return "/v1.0/users/%s%s" % (urllib.parse.quote(mailbox or self.fake.mailbox), rest)


def message(to=("kunde@example.org",), **extra):
    m = {"subject": "Rechnung 2026-0042",
         "body": {"contentType": "Text", "content": "Sehr geehrte Damen und Herren"},
         "toRecipients": [{"emailAddress": {"address": a}} for a in to]}
    m.update(extra)
    return m


def file_att(name, data, ctype="application/octet-stream"):
    return {"@odata.type": "#microsoft.graph.fileAttachment", "name": name,
            "contentType": ctype, "contentBytes": base64.b64encode(data).decode()}


def assert_graph_error(status, hdrs, doc, want_status, want_code):
    assert status == want_status, doc
    assert doc["error"]["code"] == want_code, doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    inner = doc["error"]["innerError"]
    assert inner["request-id"] == hdrs["request-id"]
    assert inner["client-request-id"] == hdrs["client-request-id"]


# ---- Entra ID token endpoint ------------------------------------------------------

def test_token_success_shape_and_lifetime(graph_fake):
    graph_fake.settings(token_lifetime=5)
    c = Client(graph_fake)
    st, hdrs, _, doc = c.token()
    assert st == 200 and set(doc) == {"token_type", "expires_in", "ext_expires_in",
                                      "access_token"}
    assert doc["token_type"] == "Bearer" and doc["expires_in"] == 5
    assert doc["ext_expires_in"] == 5 and len(doc["access_token"]) > 40
    assert hdrs["content-type"].startswith("application/json")
    basic = base64.b64encode(("%s:%s" % (graph_fake.client_id, graph_fake.secret)).encode())
    st, _, _, doc = c.call("POST", "/%s/oauth2/v2.0/token" % graph_fake.tenant,
                           urllib.parse.urlencode({"scope": graph_fake.scope,
                                                   "grant_type": "client_credentials"}),
                           {"Content-Type": "application/x-www-form-urlencoded",
                            "Authorization": "Basic " + basic.decode()})
    assert st == 200, doc
    reqs = graph_fake.token_requests()
    assert [(r["ok"], r["credential"]) for r in reqs] == [(True, "post"), (True, "basic")]
    assert graph_fake.token_count() == 2


AADSTS_CASES = [
    # (what the test changes, form overrides, status, error, code)
    ("unknown tenant", {"tenant": "00000000-0000-0000-0000-00000000dead"}, 400,
     "invalid_request", 90002),
    ("unknown app", {"client_id": "99999999-0000-0000-0000-000000000000"}, 400,
     "unauthorized_client", 700016),
    ("wrong secret", {"client_secret": "not-the-secret"}, 401, "invalid_client", 7000215),
    ("expired secret", {}, 401, "invalid_client", 7000222),
    ("disabled app", {}, 400, "unauthorized_client", 7000112),
    ("no secret", {"client_secret": None}, 401, "invalid_client", 7000218),
    ("no scope", {"scope": None}, 400, "invalid_request", 900144),
    ("scope of graph.microsoft.com", {"scope": "https://graph.microsoft.com/.default"}, 400,
     "invalid_resource", 500011),
    ("scope without .default", {"scope": "Mail.Send"}, 400, "invalid_scope", 1002012),
    ("wrong grant", {"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
]


@pytest.mark.parametrize("what,form,status,error,code", AADSTS_CASES,
                         ids=[c[0] for c in AADSTS_CASES])
def test_token_errors_are_documented_aadsts_bodies(graph_fake, what, form, status, error,
                                                   code):
    if what == "expired secret":
        graph_fake.update_app(secret_expired=True)
    if what == "disabled app":
        graph_fake.update_app(disabled=True)
    c = Client(graph_fake)
    corr = str(uuid.uuid4())
    st, hdrs, raw, doc = c.token(headers={"client-request-id": corr}, **form)
    assert st == status, doc
    assert set(doc) == {"error", "error_description", "error_codes", "timestamp", "trace_id",
                        "correlation_id", "error_uri"}
    assert doc["error"] == error and doc["error_codes"] == [code]
    desc = doc["error_description"]
    assert desc.startswith("AADSTS%d: " % code)
    m = re.search(r"\r\nTrace ID: (\S+)\r\nCorrelation ID: (\S+)\r\nTimestamp: "
                  r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)$", desc)
    assert m, desc
    assert m.group(1) == doc["trace_id"] and m.group(2) == doc["correlation_id"] == corr
    assert m.group(3) == doc["timestamp"]
    assert doc["error_uri"] == "https://login.microsoftonline.com/error?code=%d" % code
    assert "access_token" not in raw.decode()
    if code == 7000222:
        assert "are expired" in desc and graph_fake.client_id in desc
    (rec,) = graph_fake.token_requests()
    assert rec["ok"] is False and rec["error_code"] == code


def test_token_endpoint_refuses_get_and_plain_http(graph_fake):
    c = Client(graph_fake)
    st, _, _, doc = c.call("GET", "/%s/oauth2/v2.0/token" % graph_fake.tenant)
    assert st == 400 and doc["error_codes"] == [900561]
    plain = http.client.HTTPConnection("127.0.0.1", graph_fake.port, timeout=10)
    plain.request("POST", "/%s/oauth2/v2.0/token" % graph_fake.tenant, body=b"x=1",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    r = plain.getresponse()
    assert r.status == 400 and b"HTTPS" in r.read()
    (only,) = graph_fake.token_requests()      # the plain one never reached the endpoint
    assert only["error_code"] == 900561


def test_graph_base_option_changes_the_expected_scope(graph_fake_factory):
    fake = graph_fake_factory(graph_base="https://localhost:{port}")
    assert fake.base_url == "https://localhost:%d" % fake.port
    c = Client(fake)
    assert c.token()[0] == 200
    st, _, _, doc = c.token(scope="https://127.0.0.1:%d/.default" % fake.port)
    assert st == 400 and doc["error_codes"] == [500011]


# ---- Graph: authentication and sendMail ----------------------------------------------

def test_graph_rejects_missing_unknown_and_expired_tokens(graph_fake):
    graph_fake.settings(token_lifetime=1)
    c = Client(graph_fake)
    url = c.user("/sendMail")
    for headers in ({}, {"Authorization": "Bearer nonsense"}):
        st, hdrs, _, doc = c.call("POST", url, {"message": message()}, headers)
        assert_graph_error(st, hdrs, doc, 401, "InvalidAuthenticationToken")
        assert hdrs["www-authenticate"].startswith("Bearer ")
    auth = c.bearer()
    assert c.call("POST", url, {"message": message()}, auth)[0] == 202
    wait_until(lambda: c.call("POST", url, {"message": message()}, auth)[0] == 401, 10,
               what="token expiry")
    st, hdrs, _, doc = c.call("POST", url, {"message": message()}, auth)
    assert doc["error"]["message"] == "Lifetime validation failed, the token is expired."


def test_expire_tokens_and_force_401(graph_fake):
    c = Client(graph_fake)
    auth = c.bearer()
    url = c.user("/sendMail")
    graph_fake.force_401(count=1)
    assert c.call("POST", url, {"message": message()}, auth)[0] == 401
    assert c.call("POST", url, {"message": message()}, auth)[0] == 202
    assert graph_fake.expire_tokens() == 1
    assert c.call("POST", url, {"message": message()}, auth)[0] == 401
    assert c.call("POST", url, {"message": message()}, c.bearer())[0] == 202
    assert len(graph_fake.wait_for_messages(2)) == 2


def test_send_mail_records_exact_json_attachments_and_ids(graph_fake):
    c = Client(graph_fake)
    pdf = bytes(range(256)) * 40
    doc = {"message": message(
        to=("kunde@example.org", "b@example.org"),
        ccRecipients=[{"emailAddress": {"address": "cc@example.org", "name": "Bärbel Groß"}}],
        replyTo=[{"emailAddress": {"address": "buchhaltung@airport.example"}}],
        internetMessageHeaders=[{"name": "X-Airport-Ref", "value": "INV-2026-0042"}],
        attachments=[file_att("Rechnung 2026-0042.pdf", pdf, "application/pdf")]),
        "saveToSentItems": True}
    raw = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    st, hdrs, body, _ = c.call("POST", c.user("/sendMail"), raw,
                               dict(c.bearer(), **{"Content-Type": "application/json",
                                                   "client-request-id": "my-req-1"}))
    assert st == 202 and body == b""
    assert hdrs["client-request-id"] == "my-req-1" and uuid.UUID(hdrs["request-id"])
    (m,) = graph_fake.wait_for_messages(1)
    assert m["kind"] == "sendMail" and m["mailbox"] == graph_fake.mailbox
    assert m["request_raw"] == raw and m["request_json"] == doc
    assert m["save_to_sent_items"] is True and m["app"] == graph_fake.client_id
    (a,) = m["attachments"]
    assert a["data"] == pdf and a["name"] == "Rechnung 2026-0042.pdf" and a["via"] == "inline"
    assert len(graph_fake.sent_items()) == 1 and graph_fake.drafts() == []


def test_send_mail_save_to_sent_items_false(graph_fake):
    c = Client(graph_fake)
    assert c.call("POST", c.user("/sendMail"), {"message": message(), "saveToSentItems": False},
                  c.bearer())[0] == 202
    assert graph_fake.wait_for_messages(1)[0]["save_to_sent_items"] is False
    assert graph_fake.sent_items() == []


SENDMAIL_ERRORS = [
    ("unknown property", {"message": message(foo=1)}, 400, "RequestBodyRead"),
    ("unknown parameter", {"message": message(), "bar": True}, 400, "RequestBodyRead"),
    ("no recipients", {"message": message(to=())}, 400, "ErrorInvalidRecipients"),
    ("bad address", {"message": message(to=("not an address",))}, 400,
     "ErrorInvalidRecipients"),
    ("non-X header", {"message": message(internetMessageHeaders=[
        {"name": "Reply-To", "value": "x@example.org"}])}, 400, "InvalidInternetMessageHeader"),
    ("bad body type", {"message": message(body={"contentType": "rtf", "content": "x"})}, 400,
     "RequestBodyRead"),
    ("bad base64", {"message": message(attachments=[
        dict(file_att("a", b"x"), contentBytes="***")])}, 400, "RequestBodyRead"),
    ("foreign from", {"message": message(**{"from": {"emailAddress": {
        "address": "ceo@airport.example"}}})}, 403, "ErrorSendAsDenied"),
]


@pytest.mark.parametrize("what,doc,status,code", SENDMAIL_ERRORS,
                         ids=[e[0] for e in SENDMAIL_ERRORS])
def test_send_mail_validation_errors(graph_fake, what, doc, status, code):
    c = Client(graph_fake)
    st, hdrs, _, err = c.call("POST", c.user("/sendMail"), doc, c.bearer())
    assert_graph_error(st, hdrs, err, status, code)
    if code == "InvalidInternetMessageHeader":
        assert err["error"]["message"] == ("The internet message header name 'Reply-To' "
                                           "should start with 'x-' or 'X-'.")
    assert graph_fake.state()["messages"] == 0


def test_send_mail_request_limits(graph_fake):
    c = Client(graph_fake)
    auth = c.bearer()
    big = {"message": message(attachments=[file_att("big.bin", b"\0" * (3 * MiB + 1))])}
    st, hdrs, _, doc = c.call("POST", c.user("/sendMail"), big, auth)
    assert_graph_error(st, hdrs, doc, 413, "RequestEntityTooLarge")
    st, hdrs, _, doc = c.call("POST", c.user("/sendMail"), b"{not json",
                              dict(auth, **{"Content-Type": "application/json"}))
    assert_graph_error(st, hdrs, doc, 400, "BadRequest")
    st, hdrs, _, doc = c.call("POST", c.user("/sendMail"), json.dumps({"message": message()}),
                              dict(auth, **{"Content-Type": "application/xml"}))
    assert_graph_error(st, hdrs, doc, 415, "UnsupportedMediaType")


def test_mailbox_and_permission_errors(graph_fake):
    graph_fake.add_mailbox("onprem@airport.example", rest_enabled=False)
    graph_fake.add_mailbox("locked@airport.example", allowed_apps=["someone-else"])
    c = Client(graph_fake)
    auth = c.bearer()
    cases = [("nobody@airport.example", 404, "ErrorInvalidUser"),
             ("onprem@airport.example", 404, "MailboxNotEnabledForRESTAPI"),
             ("locked@airport.example", 403, "ErrorAccessDenied")]
    for mb, status, code in cases:
        st, hdrs, _, doc = c.call("POST", c.user("/sendMail", mb), {"message": message()}, auth)
        assert_graph_error(st, hdrs, doc, status, code)
    graph_fake.update_app(permissions=[])
    st, hdrs, _, doc = c.call("POST", c.user("/sendMail"), {"message": message()}, auth)
    assert_graph_error(st, hdrs, doc, 403, "ErrorAccessDenied")


def test_mime_send_mail(graph_fake):
    c = Client(graph_fake)
    mime = b"From: ppr@airport.example\r\nTo: a@example.org\r\nSubject: x\r\n\r\nhi\r\n"
    st, _, _, _ = c.call("POST", c.user("/sendMail"), base64.b64encode(mime),
                         dict(c.bearer(), **{"Content-Type": "text/plain"}))
    assert st == 202
    (m,) = graph_fake.wait_for_messages(1)
    assert m["kind"] == "mime" and m["attachments"][0]["data"] == mime


# ---- Graph: drafts and upload sessions ---------------------------------------------

def test_draft_path_needs_mail_readwrite(graph_fake):
    c = Client(graph_fake)
    st, hdrs, _, doc = c.call("POST", c.user("/messages"), message(), c.bearer())
    assert_graph_error(st, hdrs, doc, 403, "ErrorAccessDenied")


def upload(c, url, data, start, end, total, headers=None):
    h = {"Content-Type": "application/octet-stream", "Content-Length": str(end - start + 1),
         "Content-Range": "bytes %d-%d/%d" % (start, end, total)}
    h.update(headers or {})
    return c.call("PUT", url, data[start:end + 1], h)


def test_draft_with_small_and_large_attachment_immutable_id(graph_fake):
    graph_fake.update_app(permissions=["Mail.Send", "Mail.ReadWrite"])
    c = Client(graph_fake)
    auth = c.bearer()
    st, hdrs, _, d = c.call("POST", c.user("/messages"), message(),
                            dict(auth, Prefer='IdType="ImmutableId"'))
    assert st == 201 and d["isDraft"] is True and d["id"] and d["subject"] == message()["subject"]
    assert hdrs["preference-applied"] == 'IdType="ImmutableId"'
    mid = urllib.parse.quote(d["id"], safe="")
    small = b"small attachment\n" * 10
    st, _, _, a = c.call("POST", c.user("/messages/%s/attachments" % mid),
                         file_att("small.txt", small, "text/plain"), auth)
    assert st == 201 and a["size"] == len(small) and a["id"]
    size = 4 * MiB + 12345
    data = bytes((i * 7) % 251 for i in range(size))
    st, _, _, sess = c.call("POST", c.user("/messages/%s/attachments/createUploadSession" % mid),
                            {"AttachmentItem": {"attachmentType": "file", "name": "big.pdf",
                                                "size": size, "contentType": "application/pdf"}},
                            auth)
    assert st == 201 and sess["nextExpectedRanges"] == ["0-"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$", sess["expirationDateTime"])
    url = sess["uploadUrl"]
    assert url.startswith(graph_fake.base_url + "/") and "authtoken=" in url
    # the rules of the upload URL
    st, hdrs, _, e = upload(c, url, data, 0, 327679, size, auth)
    assert_graph_error(st, hdrs, e, 400, "invalidRequest")
    st, hdrs, _, e = upload(c, url, data, 0, 1_000_000 - 1, size)
    assert st == 400 and e["error"]["innerError"]["code"] == "invalidFragmentSize"
    st, hdrs, _, e = upload(c, url, data, 0, 4 * MiB - 1, size)
    assert st == 400 and e["error"]["innerError"]["code"] == "maxFragmentLengthExceeded"
    st, hdrs, _, e = upload(c, url, data, 327680, 655359, size)
    assert st == 416 and e["error"]["innerError"]["code"] == "fragmentOutOfOrder"
    st, hdrs, _, e = upload(c, url, data, 0, 327679, size + 1)
    assert st == 400 and e["error"]["innerError"]["code"] == "fragmentLengthMismatch"
    st, _, _, e = c.call("PUT", url, data[:10], {"Content-Length": "10",
                                                 "Content-Type": "application/octet-stream"})
    assert st == 400 and "Content-Range" in e["error"]["message"]
    st, _, _, e = upload(c, url, data, 0, 327679, size, {"Content-Type": "text/plain"})
    assert st == 400 and "octet-stream" in e["error"]["message"]
    # in order: 10 x 320 KiB, then the rest
    first = 10 * 327680
    st, hdrs, body, r = upload(c, url, data, 0, first - 1, size)
    assert st == 200 and r["nextExpectedRanges"] == [str(first)] and "ExpirationDateTime" in r
    st, hdrs, _, e = upload(c, url, data, 0, 327679, size)
    assert st == 416 and e["error"]["innerError"]["code"] == "fragmentOverlap"
    st, hdrs, body, _ = upload(c, url, data, first, size - 1, size)
    assert st == 201 and body == b"" and hdrs["content-length"] == "0"
    assert "/Attachments('" in hdrs["location"]
    st, _, _, _ = c.call("POST", c.user("/messages/%s/send" % mid), b"",
                         dict(auth, **{"Content-Length": "0"}))
    assert st == 202
    (m,) = graph_fake.wait_for_messages(1)
    assert m["kind"] == "draft" and m["incomplete_uploads"] == [] and m["immutable_id"]
    assert [(a["name"], a["via"], a["data"]) for a in m["attachments"]] == [
        ("small.txt", "post", small), ("big.pdf", "upload-session", data)]
    assert m["request_json"]["subject"] == message()["subject"]
    # the immutable id still names the copy in Sent Items; it can be deleted
    st, _, _, got = c.call("GET", c.user("/messages/%s" % mid), None, auth)
    assert st == 200 and got["isDraft"] is False and got["parentFolderId"] == "sentitems"
    assert c.call("DELETE", c.user("/messages/%s" % mid), None, auth)[0] == 204
    st, hdrs, _, e = c.call("GET", c.user("/messages/%s" % mid), None, auth)
    assert_graph_error(st, hdrs, e, 404, "ErrorItemNotFound")
    assert graph_fake.sent_items() == [] and graph_fake.drafts() == []
    assert [r["headers"].get("Authorization") for r in graph_fake.requests()
            if r["endpoint"] == "upload" and r["status"] in (200, 201)] == [None, None]


def test_regular_ids_change_when_the_draft_is_sent(graph_fake):
    graph_fake.update_app(permissions=["Mail.Send", "Mail.ReadWrite"])
    c = Client(graph_fake)
    auth = c.bearer()
    _, _, _, d = c.call("POST", c.user("/messages"), message(), auth)
    mid = urllib.parse.quote(d["id"], safe="")
    assert c.call("DELETE", c.user("/messages/%s" % mid), None, auth)[0] == 204
    _, _, _, d = c.call("POST", c.user("/messages"), message(), auth)
    mid = urllib.parse.quote(d["id"], safe="")
    assert c.call("POST", c.user("/messages/%s/send" % mid), b"", auth)[0] == 202
    assert c.call("GET", c.user("/messages/%s" % mid), None, auth)[0] == 404
    (sent,) = graph_fake.sent_items()
    assert sent["id"] != d["id"]
    assert graph_fake.state()["deleted_items"][0]["folder"] == "drafts"


def test_upload_session_minimum_size_expiry_cancel_and_reset(graph_fake):
    graph_fake.update_app(permissions=["Mail.Send", "Mail.ReadWrite"])
    c = Client(graph_fake)
    auth = c.bearer()
    _, _, _, d = c.call("POST", c.user("/messages"), message(), auth)
    cus = c.user("/messages/%s/attachments/createUploadSession"
                 % urllib.parse.quote(d["id"], safe=""))
    st, hdrs, _, e = c.call("POST", cus, {"AttachmentItem": {
        "attachmentType": "file", "name": "x", "size": 3 * MiB - 1}}, auth)
    assert_graph_error(st, hdrs, e, 400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize")
    size = 3 * MiB
    data = b"\x5a" * size

    def session():
        return c.call("POST", cus, {"AttachmentItem": {"attachmentType": "file", "name": "x",
                                                       "size": size}}, auth)[3]["uploadUrl"]
    url = session()
    graph_fake.fault(endpoint="upload", action="reset_mid_body")
    with pytest.raises((ConnectionError, http.client.HTTPException, ssl.SSLError)):
        upload(c, url, data, 0, 327679, size)
    c = Client(graph_fake)      # the reset killed the connection
    st, _, _, r = upload(c, url, data, 0, 327679, size)
    assert st == 200 and r["nextExpectedRanges"] == ["327680"]
    assert graph_fake.expire_upload_urls() == 1
    st, hdrs, _, e = upload(c, url, data, 327680, 655359, size)
    assert_graph_error(st, hdrs, e, 404, "itemNotFound")
    url = session()
    assert c.call("DELETE", url)[0] == 204
    assert upload(c, url, data, 0, 327679, size)[0] == 404
    url = session()
    assert upload(c, url, data, 0, 327679, size)[0] == 200
    assert c.call("POST", c.user("/messages/%s/send" % urllib.parse.quote(d["id"], safe="")),
                  b"", auth)[0] == 202
    (m,) = graph_fake.wait_for_messages(1)
    assert m["incomplete_uploads"] == [
        {"name": "x", "size": size, "received": 327680, "state": "expired"},
        {"name": "x", "size": size, "received": 327680, "state": "open"}]


# ---- throttling, concurrency, faults --------------------------------------------------

def test_injected_throttle_has_retry_after(graph_fake):
    c = Client(graph_fake)
    auth = c.bearer()
    graph_fake.throttle(count=2, retry_after=7)
    for _ in range(2):
        st, hdrs, _, doc = c.call("POST", c.user("/sendMail"), {"message": message()}, auth)
        assert_graph_error(st, hdrs, doc, 429, "TooManyRequests")
        assert hdrs["retry-after"] == "7"
    assert c.call("POST", c.user("/sendMail"), {"message": message()}, auth)[0] == 202


def test_mailbox_rate_limit(graph_fake):
    graph_fake.add_mailbox(rate_per_minute=2)
    c = Client(graph_fake)
    auth = c.bearer()
    codes = [c.call("POST", c.user("/sendMail"), {"message": message()}, auth) for _ in range(3)]
    assert [x[0] for x in codes] == [202, 202, 429]
    assert 1 <= int(codes[2][1]["retry-after"]) <= 60
    assert codes[2][3]["error"]["code"] == "ApplicationThrottled"


def test_hold_inflight_and_mailbox_concurrency_limit(graph_fake):
    c0 = Client(graph_fake)
    auth = c0.bearer()
    graph_fake.hold(True)
    results = []

    def send():
        c = Client(graph_fake)
        results.append(c.call("POST", c.user("/sendMail"), {"message": message()}, auth)[0])
    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    key = "app_mailbox:%s|%s" % (graph_fake.client_id, graph_fake.mailbox)
    wait_until(lambda: graph_fake.inflight(key) == 4, 10, what="4 held requests")
    st, hdrs, _, doc = c0.call("POST", c0.user("/sendMail"), {"message": message()}, auth)
    assert_graph_error(st, hdrs, doc, 429, "ApplicationThrottled")
    assert "MailboxConcurrency" in doc["error"]["message"] and hdrs["retry-after"]
    graph_fake.hold(False)
    for t in threads:
        t.join(timeout=20)
    assert results == [202] * 4
    assert graph_fake.max_inflight(key) == 5 and graph_fake.max_inflight("graph") == 5
    assert graph_fake.max_inflight("app:" + graph_fake.client_id) == 5
    wait_until(lambda: graph_fake.inflight("graph") == 0, 5, what="in-flight back to 0")


def test_hold_token_makes_concurrent_token_requests_visible(graph_fake):
    graph_fake.hold(graph=False, token=True)
    out = []
    threads = [threading.Thread(target=lambda: out.append(Client(graph_fake).token()[0]))
               for _ in range(2)]
    for t in threads:
        t.start()
    wait_until(lambda: graph_fake.inflight("token") == 2, 10, what="2 held token requests")
    graph_fake.hold(graph=False, token=False)
    for t in threads:
        t.join(timeout=20)
    assert out == [200, 200] and graph_fake.max_inflight("token") == 2


def test_fault_actions(graph_fake):
    c = Client(graph_fake)
    auth = c.bearer()
    url = c.user("/sendMail")
    graph_fake.fault(endpoint="sendMail", status=503, retry_after=3,
                     body={"error": {"code": "ServiceUnavailable", "message": "x"}})
    st, hdrs, _, doc = c.call("POST", url, {"message": message()}, auth)
    assert st == 503 and hdrs["retry-after"] == "3" and doc["error"]["code"] == "ServiceUnavailable"
    graph_fake.fault(endpoint="graph", action="drop")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
        c.call("POST", url, {"message": message()}, auth)
    c = Client(graph_fake)
    graph_fake.fault(endpoint="graph", action="reset")
    with pytest.raises((ConnectionError, http.client.HTTPException, ssl.SSLError)):
        c.call("POST", url, {"message": message()}, auth)
    c = Client(graph_fake)
    graph_fake.fault(endpoint="token", status=401, aadsts=7000222,
                     fields={"client_id": graph_fake.client_id})
    st, _, _, doc = c.token()
    assert st == 401 and doc["error_codes"] == [7000222] and doc["error"] == "invalid_client"
    graph_fake.fault(endpoint="token", status=503)
    st, _, _, doc = c.token()
    assert st == 503 and doc["error"] == "temporarily_unavailable"
    graph_fake.fault(path=r"/sendMail$", method="POST", action="delay", seconds=0.2)
    assert c.call("POST", url, {"message": message()}, auth)[0] == 202
    assert graph_fake.state()["faults_pending"] == []
    assert len(graph_fake.wait_for_messages(1)) == 1
    statuses = [r["status"] for r in graph_fake.graph_requests()]
    assert statuses == [503, "drop", "reset", 202]


# ---- transport and control API -----------------------------------------------------------

def test_keep_alive_plain_control_and_persistence(graph_fake, certs):
    c = Client(graph_fake)
    auth = c.bearer()
    for _ in range(3):
        assert c.call("POST", c.user("/sendMail"), {"message": message()}, auth)[0] == 202
    st = graph_fake.state()
    assert st["connections"]["tls"] == 1 and st["messages"] == 3
    plain = http.client.HTTPConnection("127.0.0.1", graph_fake.port, timeout=10)
    plain.request("GET", "/_fake/health")
    assert json.loads(plain.getresponse().read())["ok"] is True
    graph_fake.kill()
    assert [m["kind"] for m in graph_fake.messages()] == ["sendMail"] * 3


def test_stop_and_restart_on_the_same_port_keeps_configuration(graph_fake):
    graph_fake.settings(token_lifetime=77)
    c = Client(graph_fake)
    assert c.call("POST", c.user("/sendMail"), {"message": message()}, c.bearer())[0] == 202
    port = graph_fake.port
    assert graph_fake.stop() == 0 and not graph_fake.alive
    graph_fake.restart()
    assert graph_fake.port == port
    c = Client(graph_fake)
    st, _, _, doc = c.token()
    assert st == 200 and doc["expires_in"] == 77
    assert graph_fake.state()["messages"] == 0 and len(graph_fake.messages()) == 1
    assert c.call("POST", c.user("/sendMail"), {"message": message(subject="2")},
                  c.bearer())[0] == 202
    assert [(m["seq"], m["message"]["subject"]) for m in graph_fake.messages()] == [
        (1, message()["subject"]), (2, "2")]


def test_wrong_certificate_is_refused_by_a_verifying_client(graph_fake_factory, certs):
    fake = graph_fake_factory(cert=certs.wrong_cert, key=certs.wrong_key)
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(fake).token()
    wait_until(lambda: fake.state()["tls_failures"], 5, what="a recorded TLS failure")
    assert fake.token_requests() == []


def test_ipv6_loopback(graph_fake_factory, certs):
    fake = graph_fake_factory(host="::1")
    assert fake.base_url == "https://[::1]:%d" % fake.port
    ctx = ssl.create_default_context(cafile=certs.ca)
    conn = http.client.HTTPSConnection("::1", fake.port, context=ctx, timeout=10)
    body = urllib.parse.urlencode({"client_id": fake.client_id, "client_secret": fake.secret,
                                   "scope": fake.scope, "grant_type": "client_credentials"})
    conn.request("POST", "/%s/oauth2/v2.0/token" % fake.tenant, body=body,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["token_type"] == "Bearer"
