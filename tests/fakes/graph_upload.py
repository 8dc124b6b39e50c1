"""Attachment upload sessions of the Graph fake.

Owns: POST .../messages/{id}/attachments/createUploadSession and the
pre-authenticated upload URL it hands out (PUT byte ranges, DELETE to cancel),
as documented in "attachment: createUploadSession", "uploadSession resource
type" and "Attach large files to Outlook messages or events": no Authorization
header on the upload URL, Content-Length and Content-Range "bytes a-b/total",
ranges in order, intermediate 200 with nextExpectedRanges ["{next}"], final
201 with a Location header and an empty body.  The fake also enforces what
mailspool's contract promises (SPEC section 6): every range smaller than
4 MiB and, except the last, a multiple of 320 KiB.
Never: accepts a range that is out of order, overlapping or mis-sized.
"""
import re
import secrets
import time

from graph_mail import add_attachment_record, draft_for_attachment, parse_json
from graph_state import Resp, graph_error, iso_now, json_resp, new_id

ITEM_PROPS = {"attachmentType", "name", "size", "contentType", "isInline", "contentId"}
RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def _iso(t):
    return iso_now(t - time.time())


def create_upload_session(state, req, ctx, mid):
    err, item = draft_for_attachment(state, req, ctx, mid)
    if err:
        return err
    err, doc = parse_json(req)
    if err:
        return err
    ai = doc.get("AttachmentItem") if isinstance(doc, dict) else None
    if not isinstance(ai, dict) or set(doc) != {"AttachmentItem"} or set(ai) - ITEM_PROPS:
        return graph_error(req, 400, "RequestBodyRead",
                           "The body must be {\"AttachmentItem\": {attachmentType, name, size"
                           "[, contentType, isInline, contentId]}}.")
    if str(ai.get("attachmentType", "")).lower() != "file":
        return graph_error(req, 400, "RequestBodyRead",
                           "AttachmentItem.attachmentType must be 'file'.")
    size, name = ai.get("size"), ai.get("name")
    if not isinstance(name, str) or not name or not isinstance(size, int) or size <= 0:
        return graph_error(req, 400, "RequestBodyRead",
                           "AttachmentItem needs a name and a positive integer size.")
    s = state.settings
    if size < s["upload_min_bytes"]:
        return graph_error(req, 400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
                           "Attachment size must be greater than the minimum size (%d bytes); "
                           "post smaller files to the attachments collection."
                           % s["upload_min_bytes"])
    if size > s["upload_max_bytes"]:
        return graph_error(req, 400, "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
                           "Attachment size must not exceed %d bytes." % s["upload_max_bytes"])
    sid = new_id("AAMkADSes", 32)
    tok = secrets.token_urlsafe(40)
    base = (s["upload_base"] or "https://" + req.host).rstrip("/")
    url = "%s/api/v2.0/Users('%s@%s')/Messages('%s')/AttachmentSessions('%s')?authtoken=%s" % (
        base, ctx.mailbox["id"], ctx.app.get("tenant", ""), mid, sid, tok)
    sess = {"id": sid, "authtoken": tok, "mailbox": ctx.mailbox["address"],
            "app": ctx.app.get("client_id"), "item_id": item["id"], "name": name, "size": size,
            "contentType": ai.get("contentType"), "isInline": bool(ai.get("isInline", False)),
            "contentId": ai.get("contentId"), "data": bytearray(), "next": 0,
            "expires_at": time.time() + float(s["upload_session_lifetime"]), "state": "open",
            "chunks": [], "created_at": time.time(), "upload_url": url}
    with state.lock:
        state.sessions[sid] = sess
    return json_resp(201, {
        "@odata.context": "%s/v1.0/$metadata#microsoft.graph.uploadSession" % s["graph_base"],
        "uploadUrl": url, "expirationDateTime": _iso(sess["expires_at"]),
        "nextExpectedRanges": ["0-"]})


def _range_error(req, status, code, inner, message):
    return graph_error(req, status, code, message, inner_code=inner)


def _session(state, req, sid):
    """(error Resp, None) or (None, open session) for the upload URL."""
    with state.lock:
        sess = state.sessions.get(sid)
    if sess is None or sess["state"] in ("complete", "cancelled"):
        return _range_error(req, 404, "itemNotFound", "uploadSessionNotFound",
                            "The upload session was not found."), None
    req.log["app"] = sess["app"]
    req.log["mailbox"] = sess["mailbox"]
    if req.query.get("authtoken") != sess["authtoken"]:
        return graph_error(req, 401, "InvalidAuthenticationToken",
                           "The authtoken of the upload URL is not valid."), None
    if sess["state"] == "expired" or sess["expires_at"] <= time.time():
        sess["state"] = "expired"
        return _range_error(req, 404, "itemNotFound", "uploadSessionNotFound",
                            "The upload session has expired."), None
    return None, sess


def upload_put(state, req, sid):
    err, sess = _session(state, req, sid)
    if err:
        return err
    if "Authorization" in req.headers:
        return graph_error(req, 400, "invalidRequest",
                           "Do not specify an Authorization request header for the "
                           "pre-authenticated upload URL.")
    if not req.headers.get("Content-Type", "").lower().startswith("application/octet-stream"):
        return graph_error(req, 400, "invalidRequest",
                           "Content-Type must be application/octet-stream.")
    m = RANGE_RE.match(req.headers.get("Content-Range", "").strip())
    if not m:
        return graph_error(req, 400, "invalidRequest",
                           "The Content-Range header is missing or malformed; expected "
                           "'bytes {start}-{end}/{total}'.")
    if "Content-Length" not in req.headers:
        return graph_error(req, 411, "invalidRequest", "A Content-Length header is required.")
    start, end, total = (int(x) for x in m.groups())
    req.log["content_range"] = [start, end, total]
    n = end - start + 1
    if total != sess["size"]:
        return _range_error(req, 400, "invalidRange", "fragmentLengthMismatch",
                            "Declared total size for this fragment is different from that of "
                            "the upload session.")
    if end < start or end >= total:
        return _range_error(req, 416, "invalidRange", "invalidRange",
                            "The specified byte range is invalid or unavailable.")
    if len(req.body) != n or int(req.headers.get("Content-Length", "-1")) != n:
        return graph_error(req, 400, "invalidRequest",
                           "Content-Length (%s) and the body (%d bytes) must match the "
                           "Content-Range (%d bytes)." % (req.headers.get("Content-Length"),
                                                          len(req.body), n))
    return _store(state, req, sess, start, end, total, n)


def _store(state, req, sess, start, end, total, n):
    s = state.settings
    with state.lock:
        if start != sess["next"]:
            inner = "fragmentOverlap" if start < sess["next"] else "fragmentOutOfOrder"
            return _range_error(req, 416, "invalidRange", inner,
                                "Expected the range to start at %d, got %d."
                                % (sess["next"], start))
        if n >= s["upload_max_chunk"]:
            return _range_error(req, 400, "invalidRequest", "maxFragmentLengthExceeded",
                                "A range must be smaller than %d bytes." % s["upload_max_chunk"])
        final = end + 1 == total
        if not final and n % s["upload_chunk_multiple"] != 0:
            return _range_error(req, 400, "invalidRequest", "invalidFragmentSize",
                                "Every range but the last must be a multiple of %d bytes "
                                "(320 KiB); got %d." % (s["upload_chunk_multiple"], n))
        item = state.items.get(sess["item_id"])
        if final and (item is None or item["folder"] != "drafts"):
            return graph_error(req, 404, "ErrorItemNotFound",
                               "The specified object was not found in the store.")
        sess["data"] += req.body
        sess["next"] += n
        sess["chunks"].append([start, end])
        if not final:
            return json_resp(200, {
                "@odata.context": "%s/api/v2.0/$metadata#AttachmentSessions/$entity"
                                  % s["graph_base"],
                "ExpirationDateTime": _iso(sess["expires_at"]),
                "nextExpectedRanges": [str(sess["next"])]})
        sess["state"] = "complete"
        rec = add_attachment_record(item, {
            "name": sess["name"], "contentType": sess["contentType"],
            "isInline": sess["isInline"], "contentId": sess["contentId"],
            "_bytes": bytes(sess["data"]), "via": "upload-session"})
        sess["attachment_id"] = rec["id"]
    loc = sess["upload_url"].split("/AttachmentSessions(")[0] + "/Attachments('%s')" % rec["id"]
    return Resp(201, b"", [("Location", loc)])


def upload_cancel(state, req, sid):
    err, sess = _session(state, req, sid)
    if err:
        return err
    if "Authorization" in req.headers:
        return graph_error(req, 400, "invalidRequest",
                           "Do not specify an Authorization request header for the "
                           "pre-authenticated upload URL.")
    with state.lock:
        sess["state"] = "cancelled"
    return Resp(204, b"")


def expire_sessions(state):
    with state.lock:
        n = 0
        for sess in state.sessions.values():
            if sess["state"] == "open":
                sess["state"] = "expired"
                n += 1
        return n
