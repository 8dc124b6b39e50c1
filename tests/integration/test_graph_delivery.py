"""The Microsoft 365 transport end to end: the real mailspoold (build/mailspoold)
against the Entra ID / Graph fake (tests/fakes/graph_fake.py) over HTTPS on
loopback, the spool filled with the real CLI.

What issue 4 asks to be shown: one token per profile per lifetime (single
flight), renewal before expiry, one refresh after a 401; sendMail bodies the
fake accepts with UTF-8 and attachments intact; large messages through draft,
upload session and send, surviving kill -9; Retry-After honoured; never more
than 4 requests in flight per application; RateLimit; an expired secret
suspends the profile until a reload; FromDisplayName only warns.
Timing is read from the spool's attempt log and the fake's request log, never
asserted against the test's own wall clock.
"""
import hashlib
import json
import os
import signal
import time

import pytest

from conftest import MAILSPOOLD, run
from mshelpers import Daemon, smtp_profile, wait_for

NEW_SECRET = "renewed~Secret.Value_9876543210zyxwvuZYXWVU"


def graph_profile(fake, certs, name="ppr", mailbox=None, secret=None, extra=""):
    lines = ["[profile %s]" % name,
             "FromAddress = %s" % (mailbox or fake.mailbox),
             "365Client = %s" % fake.client_id,
             "365Tenant = %s" % fake.tenant,
             "365Secret = %s" % (secret or fake.secret),
             "365AuthorityHost = %s" % fake.authority,
             "365GraphHost = %s" % fake.base_url,
             "CAFile = %s" % certs.ca]
    return "\n".join(lines) + "\n" + extra + "\n"


@pytest.fixture
def daemons():
    """Daemons a test started; each must stop cleanly (exit 0, no sanitizer report)."""
    started = []
    yield started
    for d in started:
        killed = d.proc is not None and d.proc.returncode is not None
        rc = d.stop()
        if not killed:
            assert rc == 0, d.stderr_text()
        assert "ERROR: " not in d.stderr_text() and "runtime error" not in d.stderr_text()


def start_daemon(daemons, workdir, profiles, areas=None, queue=None, daemon=None):
    d = Daemon(workdir, profiles, areas=areas, queue=queue,
               daemon=dict({"max_connections": "16"}, **(daemon or {})))
    daemons.append(d)
    return d.start()


def enqueue_many(d, n, area="ppr", prefix="Nachricht"):
    return [d.enqueue("kunde%d@example.org" % i, subject="%s %d" % (prefix, i), area=area)
            for i in range(n)]


def statuses(fake, endpoint_prefix=("graph:", "upload")):
    return [r.get("status") for r in fake.requests()
            if r["endpoint"].startswith(endpoint_prefix)]


def attempt_log(d, mid):
    return d.show_json(mid)["attempt_log"]


def write_random(path, size, seed):
    """Deterministic pseudo-random bytes (every byte value) of the given size."""
    out = bytearray()
    block = hashlib.sha256(b"seed-%d" % seed).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    data = bytes(out[:size])
    with open(path, "wb") as f:
        f.write(data)
    return data


def assert_no_secrets_in_log(d, fake):
    text = "\n".join(d.log_lines()) + d.stderr_text()
    assert fake.secret not in text
    assert NEW_SECRET not in text
    for t in fake.tokens():
        assert t["access_token"] not in text


# ---- tokens --------------------------------------------------------------------

def test_recipient_waiting_after_smtp_goes_out_over_graph_alone(graph_fake, certs, smtp_peer,
                                                                tmp_path, daemons):
    # The relay took the message for one recipient and refused the other for
    # now (452); then the area moves to Microsoft 365. Graph's lists are the
    # envelope, so the request names the waiting recipient only, and the
    # first one does not get the message twice.
    peer = smtp_peer(full_rcpt="voll@example.org")
    queue = {"retry_min": "1m", "retry_max": "1m"}
    d = start_daemon(daemons, tmp_path, smtp_profile("relay", peer.port), queue=queue)
    mid = d.enqueue(["ok@example.org", "voll@example.org"], area="ppr")
    [m] = peer.wait_for(1)
    assert m["rcpt_tos"] == ["ok@example.org"]
    wait_for(lambda: d.lines_of("deferred"), what="the deferral for voll@example.org")
    d.wait_states("queued", [mid])
    d.write_config(graph_profile(graph_fake, certs, extra="RateLimit = 0"), queue=queue,
                   daemon={"max_connections": "16"})
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.lines_of("reload"), what="the reload")
    assert d.cli("retry", str(mid)).returncode == 0
    d.wait_states("sent", [mid], timeout=30)
    [rec] = graph_fake.wait_for_messages(1)
    assert rec["message"]["toRecipients"] == [{"emailAddress": {"address": "voll@example.org"}}]
    assert "ccRecipients" not in rec["message"] and "bccRecipients" not in rec["message"]
    assert len(peer.messages()) == 1
    sent = d.lines_of("sent")
    assert len(sent) == 2 and "via=smtp to=1 later=1" in sent[0] and "via=graph to=1" in sent[1]
    assert {r["address"]: r["state"] for r in d.show_json(mid)["recipients"]} == {
        "ok@example.org": "sent", "voll@example.org": "sent"}


def test_fifty_messages_one_token_four_in_flight(graph_fake, certs, tmp_path, daemons):
    graph_fake.settings(graph_delay=0.1)
    d = start_daemon(daemons, tmp_path, graph_profile(
        graph_fake, certs, extra="RateLimit = 0\nMaxConnections = 12"))
    # Held requests stay in flight at the fake, so the cap is reached whatever
    # the machine's speed: exactly 4 arrive, and no fifth while they wait.
    graph_fake.hold(True)
    ids = enqueue_many(d, 50)
    wait_for(lambda: graph_fake.inflight("graph") == 4, timeout=60, what="4 held requests")
    time.sleep(0.5)
    assert graph_fake.inflight("graph") == 4
    graph_fake.hold(False)
    d.wait_states("sent", ids, timeout=120)
    assert len(graph_fake.wait_for_messages(50)) == 50
    reqs = graph_fake.token_requests()
    assert len(reqs) == 1 and reqs[0]["ok"]
    assert reqs[0]["scope"] == graph_fake.scope
    assert reqs[0]["credential"] == "post"
    # The daemon ran up to 12 deliveries, but Graph saw at most 4 at a time.
    assert graph_fake.max_inflight("graph") == 4
    assert 429 not in statuses(graph_fake)
    assert len(d.lines_of("token")) == 1
    assert_no_secrets_in_log(d, graph_fake)


def test_four_in_flight_per_application_whatever_the_case_of_its_id(graph_fake, certs,
                                                                     tmp_path, daemons):
    # Two profiles of one application, its GUID written in lower and upper
    # case (Entra takes both): one budget of 4 requests, not 4 each.
    app = "abcdef12-3456-4890-abcd-ef1234567890"
    graph_fake.add_app(client_id=app)

    def profile(name, client):
        return graph_profile(graph_fake, certs, name=name,
                             extra="RateLimit = 0\nMaxConnections = 4").replace(
            "365Client = %s" % graph_fake.client_id, "365Client = %s" % client)
    lower, upper = profile("ppr", app), profile("ppr2", app.upper())
    d = start_daemon(daemons, tmp_path, lower + upper, areas={"ppr": "ppr", "ppr2": "ppr2"})
    graph_fake.hold(True)
    ids = enqueue_many(d, 8) + enqueue_many(d, 8, area="ppr2")
    wait_for(lambda: graph_fake.inflight("graph") == 4, timeout=60, what="4 held requests")
    time.sleep(0.5)
    assert graph_fake.inflight("graph") == 4
    graph_fake.hold(False)
    d.wait_states("sent", ids, timeout=120)
    assert graph_fake.max_inflight("graph") == 4


def test_graceful_stop_returns_graph_messages_claimed_ahead(graph_fake, certs, tmp_path,
                                                           daemons):
    # MaxConnections = 4 and no RateLimit: four requests held at the fake, more
    # messages claimed ahead and waiting for a slot of the application. A stop
    # lets the four finish and returns the waiting ones untouched.
    d = start_daemon(daemons, tmp_path, graph_profile(
        graph_fake, certs, extra="RateLimit = 0\nMaxConnections = 4"),
        daemon={"shutdown_timeout": "30s"})
    graph_fake.hold(True)
    ids = enqueue_many(d, 10)
    wait_for(lambda: graph_fake.inflight("graph") == 4, timeout=60, what="4 held requests")
    wait_for(lambda: list(d.states().values()).count("sending") > 4, timeout=30,
             what="messages claimed ahead")
    d.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "stop" in d.events(), timeout=30, what="the stop line")
    graph_fake.hold(False)
    assert d.proc.wait(timeout=60) == 0
    states = d.states()
    sent = [i for i in ids if states[i] == "sent"]
    assert len(sent) == 4
    assert len(graph_fake.wait_for_messages(4)) == 4
    for i in ids:
        if states[i] != "sent":
            assert states[i] == "queued"
            assert d.message(i)["attempts"] == 0
            assert d.attempts(i) == []


def test_application_budget_shared_by_profiles(graph_fake, certs, tmp_path, daemons):
    graph_fake.add_mailbox("billing@airport.example")
    graph_fake.settings(graph_delay=0.2)
    profiles = (graph_profile(graph_fake, certs, extra="RateLimit = 0\nMaxConnections = 8") +
                graph_profile(graph_fake, certs, name="billing",
                              mailbox="billing@airport.example",
                              extra="RateLimit = 0\nMaxConnections = 8"))
    d = start_daemon(daemons, tmp_path, profiles, areas={"ppr": "ppr", "invoice": "billing"})
    app = "app:" + graph_fake.client_id.lower()
    graph_fake.hold(True)
    ids = enqueue_many(d, 16, area="ppr") + enqueue_many(d, 16, area="invoice")
    wait_for(lambda: graph_fake.inflight(app) == 4, timeout=60, what="4 held requests")
    time.sleep(0.5)
    assert graph_fake.inflight(app) == 4
    graph_fake.hold(False)
    d.wait_states("sent", ids, timeout=120)
    assert graph_fake.max_inflight(app) == 4
    assert graph_fake.max_inflight("graph") == 4
    # One token per profile: each profile is its own cache entry.
    assert sum(1 for t in graph_fake.token_requests() if t["ok"]) == 2
    mailboxes = {m["mailbox"] for m in graph_fake.messages()}
    assert mailboxes == {"ppr@airport.example", "billing@airport.example"}


def test_short_token_lifetime_renews_before_expiry(graph_fake, certs, tmp_path, daemons):
    # 5 s tokens; 60 messages at 4 x 0.4 s take about 6 s: at least one renewal.
    graph_fake.settings(token_lifetime=5, graph_delay=0.4)
    d = start_daemon(daemons, tmp_path, graph_profile(
        graph_fake, certs, extra="RateLimit = 0\nMaxConnections = 8"))
    ids = enqueue_many(d, 60)
    d.wait_states("sent", ids, timeout=120)
    reqs = graph_fake.token_requests()
    assert all(r["ok"] for r in reqs)
    assert len(reqs) >= 2
    # Renewed proactively: Graph never had to refuse an expired token.
    assert 401 not in statuses(graph_fake)
    assert all(a["result"] == "sent" for i in ids for a in attempt_log(d, i))


def test_forced_401_refreshes_once_and_succeeds(graph_fake, certs, tmp_path, daemons):
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs, extra="RateLimit = 0"))
    first = d.enqueue("a@example.org", subject="eins", area="ppr")
    d.wait_states("sent", [first])
    graph_fake.force_401(count=1)
    mid = d.enqueue("b@example.org", subject="zwei", area="ppr")
    d.wait_states("sent", [mid])
    assert [a["result"] for a in attempt_log(d, mid)] == ["sent"]
    assert graph_fake.token_count() == 2
    assert statuses(graph_fake).count(401) == 1
    assert [m["message"]["subject"] for m in graph_fake.messages()] == ["eins", "zwei"]


# ---- the sendMail request -----------------------------------------------------------

def test_sendmail_body_utf8_and_attachments(graph_fake, certs, tmp_path, daemons):
    d = start_daemon(daemons, tmp_path, graph_profile(
        graph_fake, certs, extra="ReplyToAddress = Buchhaltung <buchhaltung@airport.example>\n"
                                 "365SaveToSentItems = no"))
    pdf = write_random(str(tmp_path / "r.pdf"), 150000, 1)
    csv = "Position;Betrag\nÜberführung;12,50 €\n".encode("utf-8")
    (tmp_path / "p.csv").write_bytes(csv)
    html = tmp_path / "body.html"
    html.write_text("<p>Sehr geehrte Frau Groß, 🛫 Grüße</p>", encoding="utf-8")
    subject = "Rechnung Nr. 42 – Grüße aus Müllheim 🎉"
    mid = d.enqueue(["Bärbel Groß 🙂 <baerbel@example.org>", "kunde@example.org"],
                    subject=subject, text="Text-Teil", area="ppr",
                    extra=["--cc", "Çeşme Ünal <cc@example.org>", "--bcc", "bcc@example.org",
                           "--html", str(html),
                           "--header", "X-Airport-Ref: INV-2026-0042 – Ü",
                           "--attach", "%s;name=Rechnung Größe 🧾.pdf;type=application/pdf"
                           % (tmp_path / "r.pdf"),
                           "--attach", "%s;name=Positionen.csv;type=text/csv"
                           % (tmp_path / "p.csv")])
    d.wait_states("sent", [mid])
    [rec] = graph_fake.wait_for_messages(1)
    assert rec["kind"] == "sendMail"
    assert rec["save_to_sent_items"] is False
    assert rec["request_json"] is not None  # valid JSON, accepted by the fake's checks
    msg = rec["message"]
    assert msg["subject"] == subject
    assert msg["body"] == {"contentType": "HTML",
                           "content": "<p>Sehr geehrte Frau Groß, 🛫 Grüße</p>"}
    assert msg["toRecipients"] == [
        {"emailAddress": {"address": "baerbel@example.org", "name": "Bärbel Groß 🙂"}},
        {"emailAddress": {"address": "kunde@example.org"}}]
    assert msg["ccRecipients"] == [
        {"emailAddress": {"address": "cc@example.org", "name": "Çeşme Ünal"}}]
    assert msg["bccRecipients"] == [{"emailAddress": {"address": "bcc@example.org"}}]
    assert msg["replyTo"] == [{"emailAddress": {"address": "buchhaltung@airport.example",
                                                "name": "Buchhaltung"}}]
    assert msg["internetMessageHeaders"] == [{"name": "X-Airport-Ref",
                                              "value": "INV-2026-0042 – Ü"}]
    assert "from" not in msg
    atts = {a["name"]: a for a in rec["attachments"]}
    assert set(atts) == {"Rechnung Größe 🧾.pdf", "Positionen.csv"}
    assert atts["Rechnung Größe 🧾.pdf"]["data"] == pdf
    assert atts["Rechnung Größe 🧾.pdf"]["contentType"] == "application/pdf"
    assert atts["Positionen.csv"]["data"] == csv
    assert rec["request_headers"].get("Content-Type", "").startswith("application/json")
    sent = [l for l in d.lines_of("sent") if "id=%d " % mid in l]
    assert len(sent) == 1 and "via=graph" in sent[0] and "request-id=" in sent[0]
    assert_no_secrets_in_log(d, graph_fake)


def test_more_than_500_recipients_fail_without_request(graph_fake, certs, tmp_path, daemons):
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs))
    to = ["r%d@example.org" % i for i in range(501)]
    mid = d.enqueue(to, subject="zu viele", area="ppr")
    d.wait_states("failed", [mid])
    assert "500 recipients" in d.message(mid)["last_error"]
    assert not any(r["endpoint"] == "graph:sendMail" for r in graph_fake.requests())


# ---- large messages ---------------------------------------------------------------------

def test_large_attachments_draft_upload_send(graph_fake, certs, tmp_path, daemons):
    graph_fake.update_app(permissions=["Mail.Send", "Mail.ReadWrite"])
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs, extra="RateLimit = 0"))
    small = write_random(str(tmp_path / "small.bin"), 40000, 99)
    datas, ids = [], []
    for i in range(3):
        path = tmp_path / ("big%d.bin" % i)
        datas.append(write_random(str(path), 5 * 1024 * 1024 + 1000 * i, i))
        ids.append(d.enqueue("kunde@example.org", subject="Groß %d 📦" % i, area="ppr",
                             extra=["--attach", "%s;name=Archiv %d.bin" % (path, i),
                                    "--attach", "%s;name=klein.bin" % (tmp_path / "small.bin")]))
    # Two 2 MB attachments: together over 4 MB, each under 3 MB (no upload session):
    # one rides in the draft, the other is posted to the draft's attachments.
    twos = [write_random(str(tmp_path / ("two%d.bin" % k)), 2000000, 20 + k) for k in range(2)]
    mixed = d.enqueue("kunde@example.org", subject="Zwei 📎", area="ppr",
                      extra=["--attach", str(tmp_path / "two0.bin"),
                             "--attach", str(tmp_path / "two1.bin")])
    d.wait_states("sent", ids + [mixed], timeout=120)
    recs = sorted(graph_fake.wait_for_messages(4), key=lambda r: r["message"]["subject"])
    two = recs.pop()
    assert two["kind"] == "draft" and two["message"]["subject"] == "Zwei 📎"
    assert sorted((a["name"], a["via"]) for a in two["attachments"]) == [
        ("two0.bin", "inline"), ("two1.bin", "post")]
    assert [a["data"] for a in sorted(two["attachments"], key=lambda a: a["name"])] == twos
    for i, rec in enumerate(recs):
        assert rec["kind"] == "draft" and rec["immutable_id"]
        assert rec["message"]["subject"] == "Groß %d 📦" % i
        atts = {a["name"]: a for a in rec["attachments"]}
        assert atts["Archiv %d.bin" % i]["data"] == datas[i]
        assert atts["Archiv %d.bin" % i]["via"] == "upload-session"
        assert atts["klein.bin"]["data"] == small
        assert not rec["incomplete_uploads"]
    puts = [r for r in graph_fake.requests() if r["endpoint"] == "upload"]
    assert len(puts) == 3 * 2  # 5 MiB in chunks of 10 x 320 KiB
    assert all("Authorization" not in r["headers"] for r in puts)
    assert all(r["status"] in (200, 201) for r in puts)
    assert graph_fake.drafts() == []
    assert len(graph_fake.sent_items()) == 4  # 365SaveToSentItems = yes (default)
    assert all(d.message(i)["draft_id"] is None for i in ids)


def test_expired_upload_url_restarts_session(graph_fake, certs, tmp_path, daemons):
    graph_fake.update_app(permissions=["Mail.Send", "Mail.ReadWrite"])
    graph_fake.fault(endpoint="upload", action="delay", seconds=1, count=1)
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs))
    data = write_random(str(tmp_path / "big.bin"), 4 * 1024 * 1024, 11)
    mid = d.enqueue("kunde@example.org", subject="abgelaufen", area="ppr",
                    extra=["--attach", str(tmp_path / "big.bin")])
    wait_for(lambda: graph_fake.state()["inflight"].get("upload", 0) == 1, what="upload held")
    assert graph_fake.expire_upload_urls() == 1  # the held chunk will find it expired
    d.wait_states("sent", [mid])
    [rec] = graph_fake.wait_for_messages(1)
    assert rec["attachments"][0]["data"] == data
    ops = [(r["endpoint"], r["status"]) for r in graph_fake.requests()]
    assert ops.count(("graph:createUploadSession", 201)) == 2
    assert ("upload", 404) in ops
    assert [a["result"] for a in attempt_log(d, mid)] == ["sent"]


def test_draft_path_without_sent_copy(graph_fake, certs, tmp_path, daemons):
    graph_fake.update_app(permissions=["Mail.Send", "Mail.ReadWrite"])
    graph_fake.settings(sent_copy_delay=1.5)  # the copy shows up a moment after send
    d = start_daemon(daemons, tmp_path, graph_profile(
        graph_fake, certs, extra="365SaveToSentItems = no"))
    data = write_random(str(tmp_path / "big.bin"), 4 * 1024 * 1024, 7)
    mid = d.enqueue("kunde@example.org", subject="ohne Kopie", area="ppr",
                    extra=["--attach", str(tmp_path / "big.bin")])
    d.wait_states("sent", [mid])
    [rec] = graph_fake.wait_for_messages(1)
    assert rec["attachments"][0]["data"] == data
    wait_for(lambda: any(x["folder"] == "sentitems" and x["id"] == rec["sent_item_id"]
                         for x in graph_fake.state()["deleted_items"]),
             timeout=40, what="the sent copy deleted")
    assert graph_fake.sent_items() == [] and graph_fake.drafts() == []


def test_draft_path_needs_mail_readwrite(graph_fake, certs, tmp_path, daemons):
    # The seed grants Mail.Send only: the draft path is refused with 403.
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs),
                     queue={"retry_min": "1s", "retry_max": "2s"})
    small = d.enqueue("a@example.org", subject="klein", area="ppr")
    write_random(str(tmp_path / "big.bin"), 5 * 1024 * 1024, 3)
    big = d.enqueue("a@example.org", subject="groß", area="ppr",
                    extra=["--attach", str(tmp_path / "big.bin")])
    d.wait_states("sent", [small])
    wait_for(lambda: d.message(big)["attempts"] >= 1, what="a failed draft attempt")
    row = d.message(big)
    assert row["state"] in ("queued", "sending")
    assert "Mail.ReadWrite" in row["last_error"]
    assert not d.lines_of("profile-suspended")
    graph_fake.update_app(permissions=["Mail.Send", "Mail.ReadWrite"])
    d.wait_states("sent", [big], timeout=60)
    assert any(r["kind"] == "draft" for r in graph_fake.messages())


def test_kill9_mid_upload_loses_nothing_and_leaves_no_draft(graph_fake, certs, tmp_path,
                                                            daemons):
    graph_fake.update_app(permissions=["Mail.Send", "Mail.ReadWrite"])
    graph_fake.fault(endpoint="upload", action="delay", seconds=20, count=1)
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs))
    data = write_random(str(tmp_path / "big.bin"), 5 * 1024 * 1024, 5)
    mid = d.enqueue("kunde@example.org", subject="Absturz", area="ppr",
                    extra=["--attach", "%s;name=daten.bin" % (tmp_path / "big.bin")])
    # The first chunk is held at the fake; the draft exists and the spool knows it.
    wait_for(lambda: graph_fake.state()["inflight"].get("upload", 0) == 1, what="upload held")
    stale = d.message(mid)["draft_id"]
    assert stale and [x["id"] for x in graph_fake.drafts()] == [stale]
    d.kill9()
    assert d.states()[mid] == "sending"
    d.start()
    d.wait_states("sent", [mid], timeout=60)
    [rec] = graph_fake.wait_for_messages(1)
    assert rec["attachments"][0]["data"] == data
    assert rec["draft_id"] != stale
    assert graph_fake.drafts() == []
    deleted = graph_fake.state()["deleted_items"]
    assert [x["id"] for x in deleted if x["folder"] == "drafts"] == [stale]
    assert d.message(mid)["draft_id"] is None


# ---- throttling and budgets --------------------------------------------------------------

def test_retry_after_is_honoured(graph_fake, certs, tmp_path, daemons):
    graph_fake.throttle(count=1, retry_after=3, endpoint="sendMail")
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs),
                     queue={"retry_min": "1s"})
    mid = d.enqueue("kunde@example.org", subject="gedrosselt", area="ppr")
    d.wait_states("sent", [mid])
    log = attempt_log(d, mid)
    assert [a["result"] for a in log] == ["deferred", "sent"]
    assert "429" in log[0]["reply"] and "Retry-After 3" in log[0]["reply"]
    second_start = log[1]["at_ms"] - log[1]["duration_ms"]
    assert second_start - log[0]["at_ms"] >= 3000


@pytest.mark.slow
def test_rate_limit_thirty_per_minute(graph_fake, certs, tmp_path, daemons):
    """Long (about 62 s): 60 messages with RateLimit = 30 need a minute of schedule."""
    d = start_daemon(daemons, tmp_path, graph_profile(
        graph_fake, certs, extra="RateLimit = 30\nMaxConnections = 8"))
    ids = enqueue_many(d, 60)
    d.wait_states("sent", ids, timeout=100)
    starts = sorted(a["at_ms"] - a["duration_ms"] for i in ids for a in attempt_log(d, i))
    assert len(starts) == 60
    # Any 31 consecutive starts span at least a minute.
    for k in range(30, 60):
        assert starts[k] - starts[k - 30] >= 60000 - 50
    assert 429 not in statuses(graph_fake)


# ---- profile faults -------------------------------------------------------------------

def test_expired_secret_suspends_until_reload(graph_fake, certs, tmp_path, daemons):
    graph_fake.update_app(secret_expired=True)
    graph_fake.hold(graph=False, token=True)  # token requests wait until released
    queue = {"retry_min": "30s", "retry_max": "60s"}
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs, extra="MaxConnections = 8"),
                     queue=queue)
    ids = enqueue_many(d, 5)
    d.wait_states("sending", ids)  # all five wait for the one token request
    assert len(graph_fake.token_requests()) == 0
    graph_fake.hold(graph=False, token=False)
    wait_for(lambda: all(d.message(i)["state"] == "queued" for i in ids), what="all deferred")
    for i in ids:
        row = d.message(i)
        assert row["attempts"] == 0 and "AADSTS7000222" in row["last_error"]
    [tok] = graph_fake.token_requests()
    assert not tok["ok"] and tok["error_code"] == 7000222
    [suspended] = d.lines_of("profile-suspended")  # once for this suspension
    assert "Certificates & secrets" in suspended and "365Secret" in suspended
    assert "profile=ppr" in suspended
    assert not graph_fake.messages()
    # The administrator renews the secret and reloads: the profile resumes at once.
    graph_fake.update_app(secret=NEW_SECRET, secret_expired=False)
    d.write_config(graph_profile(graph_fake, certs, secret=NEW_SECRET, extra="MaxConnections = 8"),
                   queue=queue, daemon={"max_connections": "16"})
    d.signal(signal.SIGHUP)
    d.wait_states("sent", ids, timeout=20)
    assert len(d.lines_of("profile-suspended")) == 1
    assert d.lines_of("profile-resumed")
    assert [t["ok"] for t in graph_fake.token_requests()] == [False, True]
    assert_no_secrets_in_log(d, graph_fake)


def test_from_display_name_warns_and_delivers(graph_fake, certs, tmp_path, daemons):
    profile = graph_profile(graph_fake, certs,
                            extra="FromDisplayName = Flughafen Musterstadt – PPR")
    d = Daemon(tmp_path, profile)
    p = run([MAILSPOOLD, "-c", d.conf, "--check"])
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout + p.stderr
    assert "warning" in out and "FromDisplayName" in out
    daemons.append(d)
    d.start()
    mid = d.enqueue("kunde@example.org", subject="mit Anzeigename", area="ppr")
    d.wait_states("sent", [mid])
    [rec] = graph_fake.wait_for_messages(1)
    assert "from" not in rec["message"] and "sender" not in rec["message"]


def test_sigterm_mid_transfer_keeps_message_queued(graph_fake, certs, tmp_path, daemons):
    graph_fake.hold(True)
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs),
                     daemon={"shutdown_timeout": "1s"})
    mid = d.enqueue("kunde@example.org", subject="angehalten", area="ppr")
    wait_for(lambda: graph_fake.inflight("graph") == 1, what="sendMail held at the fake")
    assert d.stop(signal.SIGTERM) == 0
    assert d.states()[mid] == "queued"
    assert json.dumps(attempt_log(d, mid)).count("requeued") == 1
    graph_fake.hold(False)


def test_stop_after_reload_cancels_the_old_token_request(graph_fake, certs, tmp_path, daemons):
    # A reload that changes the profile takes its token out of the cache while
    # its token request is still held at the authority; a stop must still
    # cancel that request (under ASan a leaked request or token fails the exit).
    graph_fake.hold(graph=False, token=True)
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs),
                     daemon={"shutdown_timeout": "1s"})
    mid = d.enqueue("kunde@example.org", subject="Token angehalten", area="ppr")
    wait_for(lambda: graph_fake.inflight("token") == 1, what="the token request held")
    d.write_config(graph_profile(graph_fake, certs, extra="MaxConnections = 2"))
    d.signal(signal.SIGHUP)
    wait_for(lambda: len(d.lines_of("reload")) == 1, what="the reload")
    assert d.stop(signal.SIGTERM) == 0
    assert d.states()[mid] == "queued"
    graph_fake.hold(graph=False, token=False)
    assert not graph_fake.messages()


# ---- mailspool test ------------------------------------------------------------------

def run_test(d, to="kunde@example.org"):
    p = run([MAILSPOOLD, "-c", d.conf, "--test", "ppr", "--to", to])
    out = p.stdout + p.stderr
    assert "ERROR: " not in p.stderr
    return p.returncode, out


def test_mailspool_test_prints_steps(graph_fake, certs, tmp_path):
    d = Daemon(tmp_path, graph_profile(graph_fake, certs))
    rc, out = run_test(d)
    assert rc == 0, out
    assert "token: POST %s" % graph_fake.token_url() in out
    assert "token: HTTP 200" in out and "valid for 3599 s" in out
    assert "roles: not readable" in out  # the fake's tokens are opaque, Entra's are JWTs
    assert "sendMail: HTTP 202 request-id=" in out
    assert fake_secret_free(out, graph_fake)
    [rec] = graph_fake.wait_for_messages(1)
    assert rec["message"]["toRecipients"] == [{"emailAddress": {"address": "kunde@example.org"}}]
    # The CLI runs the same through mailspoold.
    p = run(["%s" % os.path.join(os.path.dirname(MAILSPOOLD), "mailspool"), "-c", d.conf,
             "test", "--profile", "ppr", "--to", "x@example.org"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "sendMail: HTTP 202" in p.stdout


def fake_secret_free(out, fake):
    return fake.secret not in out and all(t["access_token"] not in out for t in fake.tokens())


def test_mailspool_test_exit_codes(graph_fake, certs, tmp_path):
    d = Daemon(tmp_path, graph_profile(graph_fake, certs))
    graph_fake.fault(endpoint="sendMail", action="status", status=400,
                     code="ErrorInvalidRecipients", message="Recipient is not valid.")
    rc, out = run_test(d)
    assert rc == 69 and "ErrorInvalidRecipients" in out, out
    graph_fake.throttle(count=1, retry_after=5, endpoint="sendMail")
    rc, out = run_test(d)
    assert rc == 75 and "429" in out, out
    graph_fake.update_app(secret_expired=True)
    rc, out = run_test(d)
    assert rc == 78 and "AADSTS7000222" in out and "Certificates & secrets" in out, out
    assert "trace_id=" in out and "correlation_id=" in out
    assert fake_secret_free(out, graph_fake)


def test_internationalized_domain_goes_out_in_ascii_form(graph_fake, certs, tmp_path, daemons):
    # The same A-labels as over SMTP (daemon/idna.c), so that a message's
    # recipients read alike whichever transport sent it.
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs, extra="RateLimit = 0"))
    mid = d.enqueue("\u00dcnal <a@B\u00fccher.example>", area="ppr")
    d.wait_states("sent", [mid])
    [rec] = graph_fake.wait_for_messages(1)
    assert rec["message"]["toRecipients"] == [
        {"emailAddress": {"address": "a@xn--bcher-kva.example", "name": "\u00dcnal"}}]
