"""Microsoft Graph mail endpoints of the fake (v1.0, application permissions).

Owns: bearer token checks, mailbox resolution, permission checks, validation
of the documented message resource, and the operations user: sendMail,
Create message (draft), Get/Delete message, Add attachment, message: send.
Upload sessions live in graph_upload.py.
Sources (Microsoft Learn): "user: sendMail", "Create message", "message: send",
"Add attachment", "message resource type", "recipient", "itemBody",
"fileAttachment", "internetMessageHeader", "Microsoft Graph error responses",
"Obtain immutable identifiers for Outlook resources".
Never: delivers anything; a "sent" message is a record in the state.
"""
import base64
import json
import re
import time

from graph_state import Resp, b64decode_strict, graph_error, iso_now, json_resp, new_id

MESSAGE_PROPS = {
    "@odata.type", "subject", "body", "toRecipients", "ccRecipients", "bccRecipients",
    "replyTo", "from", "sender", "importance", "internetMessageHeaders", "internetMessageId",
    "attachments", "categories", "isDeliveryReceiptRequested", "isReadReceiptRequested",
    "isRead", "flag", "inferenceClassification", "singleValueExtendedProperties",
    "multiValueExtendedProperties", "extensions", "conversationId", "uniqueBody",
}
FILE_ATTACHMENT_PROPS = {"@odata.type", "name", "contentType", "contentBytes", "isInline",
                         "contentId", "contentLocation", "size", "id", "lastModifiedDateTime"}
ADDRESS_RE = re.compile(r"^[^\s@<>()\[\]\\,;:\"]+@[^\s@<>()\[\]\\,;:\"]+$")
WWW_AUTH = ('Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
            'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"')


class Ctx:
    """An authenticated Graph request: token, app (current config) and mailbox."""

    def __init__(self, token, app, mailbox):
        self.token = token
        self.app = app
        self.mailbox = mailbox


def _unauthorized(req, message):
    return graph_error(req, 401, "InvalidAuthenticationToken", message,
                       [("WWW-Authenticate", WWW_AUTH)])


def authenticate(state, req, user):
    """(error Resp, None) or (None, Ctx) for /v1.0/users/{user}/..."""
    auth = req.headers.get("Authorization", "")
    scheme, _, tok = auth.strip().partition(" ")
    tok = tok.strip()
    if scheme.lower() != "bearer" or not tok:
        return _unauthorized(req, "Access token is empty."), None
    info = state.token_info(tok)
    if info is None:
        return _unauthorized(req, "Access token validation failure. Invalid audience."), None
    if info["expires_at"] <= time.time():
        return _unauthorized(req, "Lifetime validation failed, the token is expired."), None
    with state.lock:
        app = state.apps.get((info["tenant"].lower(), info["client_id"].lower()))
        app = dict(app) if app else {"client_id": info["client_id"], "permissions": []}
    req.log["app"] = info["client_id"]
    mb = state.find_mailbox(user, info["tenant"])
    if mb is None:
        return graph_error(req, 404, "ErrorInvalidUser",
                           "The requested user '%s' is invalid." % user), None
    req.log["mailbox"] = mb["address"]
    if not mb["rest_enabled"]:
        return graph_error(req, 404, "MailboxNotEnabledForRESTAPI",
                           "The mailbox is either inactive, soft-deleted, or is hosted "
                           "on-premise."), None
    allowed = mb.get("allowed_apps")
    if allowed is not None and info["client_id"].lower() not in [a.lower() for a in allowed]:
        return graph_error(req, 403, "ErrorAccessDenied",
                           "Access to OData is disabled: [RAOP] : Blocked by tenant "
                           "configured AppOnly AccessPolicy settings."), None
    return None, Ctx(tok, app, mb)


def require(req, ctx, *perms):
    """403 ErrorAccessDenied unless the app holds one of perms."""
    held = {p.lower() for p in ctx.app.get("permissions") or []}
    if any(p.lower() in held for p in perms):
        return None
    return graph_error(req, 403, "ErrorAccessDenied",
                       "Access is denied. Check credentials and try again.")


def too_large(state, req):
    limit = state.settings["max_request_bytes"]
    if len(req.body) > limit:
        return graph_error(req, 413, "RequestEntityTooLarge",
                           "The request body of %d bytes exceeds the maximum request length "
                           "supported (%d bytes)." % (len(req.body), limit))
    return None


def parse_json(req):
    """(error Resp, None) or (None, object); JSON bodies need application/json."""
    if "application/json" not in req.headers.get("Content-Type", "").lower():
        return graph_error(req, 415, "UnsupportedMediaType",
                           "Content-Type must be application/json for a JSON body."), None
    try:
        return None, json.loads(req.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return graph_error(req, 400, "BadRequest",
                           "Unable to read JSON request payload. Please ensure Content-Type "
                           "header is set and payload is of valid JSON format."), None


def _body_read(req, message):
    return graph_error(req, 400, "RequestBodyRead", message)


def _check_recipients(req, msg, key):
    value = msg.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        return _body_read(req, "Property '%s' must be a collection of recipient." % key)
    for r in value:
        if not isinstance(r, dict) or set(r) - {"emailAddress", "@odata.type"}:
            return _body_read(req, "Invalid recipient in '%s'." % key)
        ea = r.get("emailAddress")
        if not isinstance(ea, dict) or set(ea) - {"address", "name", "@odata.type"}:
            return _body_read(req, "Invalid emailAddress in '%s'." % key)
        addr = ea.get("address")
        if not isinstance(addr, str) or not ADDRESS_RE.match(addr):
            return graph_error(req, 400, "ErrorInvalidRecipients",
                               "At least one recipient isn't valid., Recipient '%s' isn't "
                               "resolved. All recipients must be resolved before a message "
                               "can be submitted." % addr)
        if "name" in ea and not isinstance(ea["name"], (str, type(None))):
            return _body_read(req, "emailAddress.name must be a string.")
    return None


def _check_headers(state, req, msg):
    hdrs = msg.get("internetMessageHeaders")
    if hdrs is None:
        return None
    if not isinstance(hdrs, list):
        return _body_read(req, "internetMessageHeaders must be a collection.")
    limit = state.settings["max_internet_headers"]
    if limit is not None and len(hdrs) > limit:
        return graph_error(req, 400, "InvalidInternetMessageHeaderCollection",
                           "Maximum number of headers in one message should be less than or "
                           "equal to %d." % limit)
    for h in hdrs:
        if not isinstance(h, dict) or set(h) - {"name", "value"} or \
                not isinstance(h.get("name"), str) or not isinstance(h.get("value"), str):
            return _body_read(req, "Invalid internetMessageHeader.")
        if not h["name"].lower().startswith("x-"):
            return graph_error(req, 400, "InvalidInternetMessageHeader",
                               "The internet message header name '%s' should start with "
                               "'x-' or 'X-'." % h["name"])
        if any(c in h["name"] + h["value"] for c in "\r\n"):
            return graph_error(req, 400, "InvalidInternetMessageHeader",
                               "The internet message header '%s' contains a line break."
                               % h["name"])
    return None


def check_file_attachment(req, att):
    """(error Resp, None) or (None, attachment record with _bytes)."""
    if not isinstance(att, dict):
        return _body_read(req, "An attachment must be an object."), None
    extra = set(att) - FILE_ATTACHMENT_PROPS
    if extra:
        return _body_read(req, "The property '%s' does not exist on type "
                               "'microsoft.graph.fileAttachment'." % sorted(extra)[0]), None
    if att.get("@odata.type") != "#microsoft.graph.fileAttachment":
        return _body_read(req, "Attachment @odata.type must be "
                               "'#microsoft.graph.fileAttachment'."), None
    if not isinstance(att.get("name"), str) or not att["name"]:
        return _body_read(req, "A fileAttachment needs a name."), None
    try:
        data = b64decode_strict(att.get("contentBytes"))
    except ValueError:
        return _body_read(req, "Cannot convert the literal contentBytes of '%s' to "
                               "Edm.Binary." % att["name"]), None
    return None, {"name": att["name"], "contentType": att.get("contentType"),
                  "isInline": bool(att.get("isInline", False)),
                  "contentId": att.get("contentId"), "_bytes": data}


def validate_message(state, req, ctx, msg, need_recipients):
    """(error Resp, None) or (None, [attachment records]) for a message resource."""
    if not isinstance(msg, dict):
        return _body_read(req, "The message must be a JSON object."), None
    extra = set(msg) - MESSAGE_PROPS
    if extra:
        return _body_read(req, "The property '%s' does not exist on type "
                               "'microsoft.graph.message'. Make sure to only use property "
                               "names that are defined by the type or mark the type as open "
                               "type." % sorted(extra)[0]), None
    if "subject" in msg and not isinstance(msg["subject"], (str, type(None))):
        return _body_read(req, "subject must be a string."), None
    body = msg.get("body")
    if body is not None:
        if not isinstance(body, dict) or set(body) - {"contentType", "content", "@odata.type"}:
            return _body_read(req, "body must be an itemBody {contentType, content}."), None
        if str(body.get("contentType", "text")).lower() not in ("text", "html"):
            return _body_read(req, "Cannot convert the literal '%s' to the expected type "
                                   "'microsoft.graph.bodyType'." % body.get("contentType")), None
        if not isinstance(body.get("content", ""), str):
            return _body_read(req, "body.content must be a string."), None
    if "importance" in msg and str(msg["importance"]).lower() not in ("low", "normal", "high"):
        return _body_read(req, "Cannot convert the literal '%s' to the expected type "
                               "'microsoft.graph.importance'." % msg["importance"]), None
    for key in ("toRecipients", "ccRecipients", "bccRecipients", "replyTo"):
        err = _check_recipients(req, msg, key)
        if err:
            return err, None
    for key in ("from", "sender"):
        if key in msg:
            err = _check_recipients(req, {key: [msg[key]]}, key)
            if err:
                return err, None
    err = _check_send_as(req, ctx, msg)
    if err:
        return err, None
    err = _check_headers(state, req, msg)
    if err:
        return err, None
    if need_recipients and not any(msg.get(k) for k in
                                   ("toRecipients", "ccRecipients", "bccRecipients")):
        return no_recipients(req), None
    atts = []
    for a in msg.get("attachments") or []:
        err, rec = check_file_attachment(req, a)
        if err:
            return err, None
        atts.append(dict(rec, via="inline"))
    return None, atts


def no_recipients(req):
    return graph_error(req, 400, "ErrorInvalidRecipients",
                       "At least one recipient isn't valid., A message can't be sent "
                       "because it contains no recipients.")


def _check_send_as(req, ctx, msg):
    own = ctx.mailbox["address"].lower()
    allowed = {own} | {a.lower() for a in ctx.mailbox.get("send_as") or []}
    for key in ("from", "sender"):
        addr = ((msg.get(key) or {}).get("emailAddress") or {}).get("address")
        if addr and addr.lower() not in allowed:
            return graph_error(req, 403, "ErrorSendAsDenied",
                               "The user account which was used to submit this request does "
                               "not have the right to send mail on behalf of the specified "
                               "sending account., Cannot submit message.")
    return None


def strip_bytes(msg):
    """The message without attachment contentBytes (those go to files)."""
    out = dict(msg)
    if "attachments" in out:
        out["attachments"] = [{k: v for k, v in a.items() if k != "contentBytes"}
                              if isinstance(a, dict) else a for a in out["attachments"]]
    return out


def throttled(req, state, seconds, message):
    return graph_error(req, 429, "ApplicationThrottled", message,
                       [("Retry-After", str(int(seconds)))])


def rate_limited(state, req, ctx):
    wait = state.rate_check(ctx.mailbox)
    if wait:
        return throttled(req, state, wait, "Mailbox '%s' is over its message submission rate "
                         "limit." % ctx.mailbox["address"])
    return None


def _record(state, req, ctx, kind, message, raw, atts, **extra):
    rec = {"kind": kind, "mailbox": ctx.mailbox["address"], "app": ctx.app.get("client_id"),
           "message": strip_bytes(message) if isinstance(message, dict) else message,
           "request_headers": dict(req.header_items), "request_id": req.request_id}
    rec.update(extra)
    return state.record_message(rec, raw, [dict(a) for a in atts])


def _new_item(state, req, ctx, folder, message, atts, immutable, raw=None, visible_at=0.0):
    item = {"id": new_id("AAkALg" if immutable else "AAMkAD"), "mailbox": ctx.mailbox["address"],
            "folder": folder, "message": {k: v for k, v in message.items()
                                          if k != "attachments"},
            "attachments": [], "immutable": immutable, "created_at": time.time(),
            "created_iso": iso_now(), "visible_at": visible_at, "app": ctx.app.get("client_id"),
            "create_raw": raw, "conversation": new_id("AAQkAD", 24)}
    for a in atts:
        add_attachment_record(item, a)
    with state.lock:
        state.items[item["id"]] = item
    return item


def add_attachment_record(item, rec):
    rec = dict(rec, id=new_id("AAMkADAtt", 32), size=len(rec["_bytes"]),
               lastModifiedDateTime=iso_now())
    item["attachments"].append(rec)
    return rec


def send_mail(state, req, ctx):
    err = require(req, ctx, "Mail.Send") or too_large(state, req)
    if err:
        return err
    if req.headers.get("Content-Type", "").lower().startswith("text/plain"):
        return _send_mime(state, req, ctx)
    err, doc = parse_json(req)
    if err:
        return err
    if not isinstance(doc, dict):
        return _body_read(req, "The request body must be a JSON object.")
    extra = set(doc) - {"message", "saveToSentItems", "SaveToSentItems"}
    if extra:
        return _body_read(req, "The parameter '%s' in the request payload is not a valid "
                               "parameter for the operation 'sendMail'." % sorted(extra)[0])
    if "message" not in doc:
        return _body_read(req, "The parameter 'message' in the request payload is missing.")
    save = doc.get("saveToSentItems", doc.get("SaveToSentItems", True))
    if isinstance(save, str) and save.lower() in ("true", "false"):
        save = save.lower() == "true"
    if not isinstance(save, bool):
        return _body_read(req, "Cannot convert the literal '%s' to the expected type "
                               "'Edm.Boolean'." % save)
    err, atts = validate_message(state, req, ctx, doc["message"], True)
    if err:
        return err
    err = rate_limited(state, req, ctx)
    if err:
        return err
    if save:
        _new_item(state, req, ctx, "sentitems", doc["message"], atts, False)
    _record(state, req, ctx, "sendMail", doc["message"], req.body, atts, save_to_sent_items=save)
    return Resp(202, b"")


def _send_mime(state, req, ctx):
    try:
        mime = base64.b64decode(b"".join(req.body.split()), validate=True)
    except ValueError:
        mime = b""
    if not mime:
        return graph_error(req, 400, "ErrorMimeContentInvalidBase64String",
                           "Invalid base64 string for MIME content.")
    err = rate_limited(state, req, ctx)
    if err:
        return err
    _record(state, req, ctx, "mime", None, req.body,
            [{"name": "message.eml", "via": "mime", "_bytes": mime}], save_to_sent_items=True)
    return Resp(202, b"")


def message_view(state, item, req):
    """The message resource as Graph returns it for an item."""
    m = item["message"]
    mb = state.mailboxes.get(item["mailbox"].lower(), {})
    me = {"emailAddress": {"name": mb.get("name"), "address": item["mailbox"]}}
    body = m.get("body") or {"contentType": "text", "content": ""}
    draft = item["folder"] == "drafts"
    return {
        "@odata.context": "%s/v1.0/$metadata#users('%s')/messages/$entity" % (
            state.settings["graph_base"], mb.get("id")),
        "@odata.etag": 'W/"%s"' % item["id"][-12:],
        "id": item["id"], "createdDateTime": item["created_iso"],
        "lastModifiedDateTime": item["created_iso"], "changeKey": item["id"][-12:],
        "categories": m.get("categories") or [], "receivedDateTime": item["created_iso"],
        "sentDateTime": item["created_iso"], "hasAttachments": bool(item["attachments"]),
        "internetMessageId": "<%s@fake.outlook.test>" % item["id"][6:26],
        "subject": m.get("subject"), "bodyPreview": (body.get("content") or "")[:255],
        "importance": str(m.get("importance", "normal")).lower(),
        "parentFolderId": item["folder"], "conversationId": item["conversation"],
        "isDeliveryReceiptRequested": bool(m.get("isDeliveryReceiptRequested", False)),
        "isReadReceiptRequested": bool(m.get("isReadReceiptRequested", False)),
        "isRead": True, "isDraft": draft,
        "webLink": "https://outlook.office365.com/owa/?ItemID=%s" % item["id"],
        "inferenceClassification": "focused",
        "body": {"contentType": str(body.get("contentType", "text")).lower(),
                 "content": body.get("content", "")},
        "sender": m.get("sender") or me, "from": m.get("from") or me,
        "toRecipients": m.get("toRecipients") or [], "ccRecipients": m.get("ccRecipients") or [],
        "bccRecipients": m.get("bccRecipients") or [], "replyTo": m.get("replyTo") or [],
        "flag": {"flagStatus": "notFlagged"},
    }


def _immutable_requested(req):
    return 'idtype="immutableid"' in req.headers.get("Prefer", "").replace(" ", "").lower()


def create_message(state, req, ctx):
    err = require(req, ctx, "Mail.ReadWrite") or too_large(state, req)
    if err:
        return err
    err, msg = parse_json(req)
    if err:
        return err
    err, atts = validate_message(state, req, ctx, msg, False)
    if err:
        return err
    immutable = _immutable_requested(req)
    item = _new_item(state, req, ctx, "drafts", msg, atts, immutable, raw=req.body)
    headers = [("Location", "%s/v1.0/users('%s')/messages('%s')" % (
        state.settings["graph_base"], ctx.mailbox["id"], item["id"]))]
    if immutable:
        headers.append(("Preference-Applied", 'IdType="ImmutableId"'))
    return json_resp(201, message_view(state, item, req), headers)


def find_item(state, req, ctx, mid):
    """(error Resp, None) or (None, item) for an item of this mailbox."""
    with state.lock:
        item = state.items.get(mid)
    if (item is None or item["mailbox"].lower() != ctx.mailbox["address"].lower()
            or item["visible_at"] > time.time()):
        return graph_error(req, 404, "ErrorItemNotFound",
                           "The specified object was not found in the store."), None
    return None, item


def get_message(state, req, ctx, mid):
    err = require(req, ctx, "Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite")
    if err:
        return err
    err, item = find_item(state, req, ctx, mid)
    return err or json_resp(200, message_view(state, item, req))


def delete_message(state, req, ctx, mid):
    err = require(req, ctx, "Mail.ReadWrite")
    if err:
        return err
    err, item = find_item(state, req, ctx, mid)
    if err:
        return err
    with state.lock:
        state.items.pop(item["id"], None)
        state.deleted_items.append({"id": item["id"], "folder": item["folder"],
                                    "mailbox": item["mailbox"], "t": time.time(),
                                    "subject": item["message"].get("subject")})
    return Resp(204, b"")


def draft_for_attachment(state, req, ctx, mid):
    """(error response, None) or (None, draft item): the checks every way of
    adding an attachment shares (Mail.ReadWrite, request size, a draft)."""
    err = require(req, ctx, "Mail.ReadWrite") or too_large(state, req)
    if err:
        return err, None
    err, item = find_item(state, req, ctx, mid)
    if err:
        return err, None
    if item["folder"] != "drafts":
        return graph_error(req, 400, "ErrorInvalidOperation",
                           "Attachments can only be added to a draft."), None
    return None, item


def add_attachment(state, req, ctx, mid):
    err, item = draft_for_attachment(state, req, ctx, mid)
    if err:
        return err
    err, att = parse_json(req)
    if err:
        return err
    err, rec = check_file_attachment(req, att)
    if err:
        return err
    with state.lock:
        rec = add_attachment_record(item, dict(rec, via="post"))
    view = {k: v for k, v in rec.items() if k not in ("_bytes", "via")}
    view.update({"@odata.type": "#microsoft.graph.fileAttachment",
                 "contentBytes": base64.b64encode(rec["_bytes"]).decode("ascii")})
    return json_resp(201, view)


def send_draft(state, req, ctx, mid):
    err = require(req, ctx, "Mail.Send")
    if err:
        return err
    err, item = find_item(state, req, ctx, mid)
    if err:
        return err
    if item["folder"] != "drafts":
        return graph_error(req, 400, "ErrorInvalidOperation",
                           "Only a draft message can be sent.")
    if not any(item["message"].get(k) for k in ("toRecipients", "ccRecipients",
                                                  "bccRecipients")):
        return no_recipients(req)
    err = rate_limited(state, req, ctx)
    if err:
        return err
    with state.lock:
        incomplete = [{"name": s["name"], "size": s["size"], "received": len(s["data"]),
                       "state": s["state"]} for s in state.sessions.values()
                      if s["item_id"] == item["id"] and s["state"] in ("open", "expired")]
        state.items.pop(item["id"], None)
        old_id = item["id"]
        if not item["immutable"]:
            item["id"] = new_id("AAMkAD")
        item["folder"] = "sentitems"
        item["visible_at"] = time.time() + float(state.settings["sent_copy_delay"])
        state.items[item["id"]] = item
    msg = dict(item["message"])
    msg["attachments"] = [{k: v for k, v in a.items() if k != "_bytes"}
                          for a in item["attachments"]]
    _record(state, req, ctx, "draft", msg, item["create_raw"],
            [{k: v for k, v in a.items() if k not in ("id", "size", "lastModifiedDateTime")}
             for a in item["attachments"]],
            draft_id=old_id, sent_item_id=item["id"], immutable_id=item["immutable"],
            incomplete_uploads=incomplete, save_to_sent_items=True)
    return Resp(202, b"")
