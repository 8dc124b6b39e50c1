"""mailspoold delivering over the seed's two SMTP transports against real
aiosmtpd peers on loopback (issue 3, "What it must show")."""
import hashlib
import os
import signal
import time

import pytest

from mshelpers import Daemon, smtp_profile, wait_for

UMLAUT_SUBJECT = "Grüße aus Musterstadt – Rechnung Nr. 2026-0042 ✈️ 🧾"


def test_anonymous_delivery(smtp_peer, workdir):
    peer = smtp_peer()
    d = Daemon(workdir, smtp_profile("relay", peer.port)).start()
    try:
        mid = d.enqueue("Bärbel Groß <b@example.org>", subject=UMLAUT_SUBJECT,
                        extra=["--bcc", "hidden@example.org", "--cc", "c@example.org"])
        d.wait_states("sent", [mid], timeout=30)
        [m] = peer.wait_for(1)
        msg = m["message"]
        assert msg["subject"] == UMLAUT_SUBJECT
        assert msg["to"].addresses[0].display_name == "Bärbel Groß"
        assert "hidden@example.org" not in m["raw"].decode("ascii", "replace")
        assert msg["bcc"] is None
        assert sorted(m["rcpt_tos"]) == ["b@example.org", "c@example.org", "hidden@example.org"]
        assert m["mail_from"] == "relay@airport.example"
        assert not m["tls"] and not m.get("auth_user")
        # The log line follows the spool's commit: wait for it (bounded).
        sent = wait_for(lambda: d.lines_of("sent"), what="the sent log line")
        assert len(sent) == 1 and "id=%d " % mid in sent[0] and "via=smtp" in sent[0]
        assert "reply=" in sent[0] and "250" in sent[0]
    finally:
        assert d.stop() == 0


def _attach(workdir, name, data):
    path = os.path.join(str(workdir), name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _sha(b):
    return hashlib.sha256(b).hexdigest()


def _parts(msg):
    """Attachment name -> decoded bytes (transfer encoding undone, no charset guessing)."""
    return {p.get_filename(): p.get_payload(decode=True) for p in msg.iter_attachments()}


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_tls_auth_delivery_with_attachments(smtp_peer, certs, workdir, mode):
    peer = smtp_peer(tls_mode=mode, auth=("rechnung@airport.example", "s3cret-Pässwort"))
    prof = smtp_profile("billing", peer.port, auth=("rechnung@airport.example", "s3cret-Pässwort"),
                        tls=mode, extra="CAFile = %s\nFromDisplayName = Flughafen Musterstadt – "
                        "Buchhaltung\nReplyToAddress = buchhaltung@airport.example" % certs.ca)
    d = Daemon(workdir, prof).start()
    try:
        pdf = os.urandom(300 * 1024)
        csv = "Position;Betrag\nLandegebühr;123,45 €\n".encode("utf-8")
        a1 = _attach(workdir, "rechnung.pdf", pdf)
        a2 = _attach(workdir, "pos.csv", csv)
        mid = d.enqueue("kunde@example.org", subject=UMLAUT_SUBJECT, extra=[
            "--attach", a1 + ";name=Rechnung 2026-0042.pdf;type=application/pdf",
            "--attach", a2 + ";name=Positionen März – Übersicht.csv;type=text/csv"])
        d.wait_states("sent", [mid], timeout=30)
        [m] = peer.wait_for(1)
        assert m["tls"] and m["auth_user"] == "rechnung@airport.example"
        msg = m["message"]
        assert msg["subject"] == UMLAUT_SUBJECT
        assert msg["from"].addresses[0].display_name == "Flughafen Musterstadt – Buchhaltung"
        assert msg["from"].addresses[0].addr_spec == "billing@airport.example"
        assert msg["reply-to"].addresses[0].addr_spec == "buchhaltung@airport.example"
        assert msg["message-id"] and msg["date"] and msg["mime-version"] == "1.0"
        parts = _parts(msg)
        assert _sha(parts["Rechnung 2026-0042.pdf"]) == _sha(pdf)
        assert _sha(parts["Positionen März – Übersicht.csv"]) == _sha(csv)
        # the password never appears in the log
        assert "s3cret" not in open(d.log, encoding="utf-8").read()
    finally:
        assert d.stop() == 0


def test_twenty_megabyte_attachment_arrives_intact(smtp_peer, workdir):
    peer = smtp_peer()
    d = Daemon(workdir, smtp_profile("relay", peer.port)).start()
    try:
        big = os.urandom(20 * 1024 * 1024)
        a = _attach(workdir, "big.bin", big)
        mid = d.enqueue("x@example.org", subject="Großer Anhang",
                        extra=["--attach", a + ";name=Jahresbericht 2026 – groß.bin"])
        os.unlink(a)
        d.wait_states("sent", [mid], timeout=120)
        [m] = peer.wait_for(1, timeout=30)
        parts = _parts(m["message"])
        assert _sha(parts["Jahresbericht 2026 – groß.bin"]) == _sha(big)
    finally:
        assert d.stop() == 0


def _suspended_at_first_message(workdir, prof, why):
    """Starts a daemon with prof, enqueues one message and waits until the
    profile is suspended for why and the message is back in the queue (the
    suspension is logged just before the spool records the deferral).
    Returns (daemon, message id); the caller stops the daemon."""
    d = Daemon(workdir, prof).start()
    mid = d.enqueue("kunde@example.org")
    wait_for(lambda: d.lines_of("profile-suspended"), timeout=30, what="suspension")
    line = d.lines_of("profile-suspended")[0]
    assert "profile=billing" in line and why in line, line
    d.wait_states("queued", [mid], timeout=30)
    return d, mid


def test_ssl_profile_without_starttls_never_sends_password(smtp_peer, certs, workdir):
    peer = smtp_peer(tls_mode="starttls", starttls=False, auth=("user", "TopSecret-123"),
                     auth_plaintext=True, capture=True)
    prof = smtp_profile("billing", peer.port, auth=("user", "TopSecret-123"),
                        extra="CAFile = %s" % certs.ca)
    d, mid = _suspended_at_first_message(workdir, prof, "STARTTLS")
    try:
        raw = peer.captured()
        assert b"AUTH" not in raw.upper()
        assert b"TopSecret" not in raw
        import base64
        assert base64.b64encode(b"\0user\0TopSecret-123") not in raw
        assert "TopSecret" not in open(d.log, encoding="utf-8").read()
        assert not peer.messages()
        assert d.message(mid)["attempts"] == 0  # a profile fault burns no attempt
    finally:
        assert d.stop() == 0


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_ssl_profile_never_sends_without_auth(smtp_peer, certs, workdir, mode):
    # A TLS relay that offers no AUTH (and would take the mail without one):
    # libcurl would skip AUTH and send. SMTPAuthReq = SSL means the mail goes
    # out authenticated or not at all: nothing reaches the peer, no MAIL is
    # even sent, the profile is suspended with the reason and no attempt is
    # burnt. The same peer then offering AUTH gets the message.
    peer = smtp_peer(tls_mode=mode)
    prof = smtp_profile("billing", peer.port, auth=("user", "TopSecret-123"), tls=mode,
                        extra="CAFile = %s" % certs.ca)
    d, mid = _suspended_at_first_message(workdir, prof, "no AUTH after TLS")
    try:
        assert not peer.messages()
        assert not [c for c in peer.commands() if c.upper().startswith("MAIL")]
        assert d.message(mid)["attempts"] == 0
        assert "TopSecret" not in open(d.log, encoding="utf-8").read()
        # mailspool test says the same, as a configuration problem (78).
        p = d.cli("test", "--profile", "billing", "--to", "admin@example.org", check=None)
        out = p.stdout + p.stderr
        assert p.returncode == 78, out
        assert "no AUTH after TLS" in out and "TopSecret" not in out
        assert not peer.messages()
    finally:
        assert d.stop() == 0
    good = smtp_peer(tls_mode=mode, auth=("user", "TopSecret-123"))
    d.write_config(smtp_profile("billing", good.port, auth=("user", "TopSecret-123"), tls=mode,
                                extra="CAFile = %s" % certs.ca))
    d.start()
    try:
        d.wait_states("sent", [mid], timeout=30)
        [m] = good.wait_for(1)
        assert m["tls"] and m["auth_user"] == "user"
    finally:
        assert d.stop() == 0


def test_rejected_recipient_fails_with_reply(smtp_peer, workdir):
    peer = smtp_peer(reject_rcpt="nobody@example.org")
    d = Daemon(workdir, smtp_profile("relay", peer.port)).start()
    try:
        bad = d.enqueue("nobody@example.org")
        partial = d.enqueue(["nobody@example.org", "ok@example.org"])
        d.wait_states(["failed", "sent"], [bad, partial], timeout=30)
        assert d.states()[bad] == "failed"
        shown = d.cli("show", str(bad), check=0).stdout
        assert "550" in shown
        assert d.states()[partial] == "sent"
        [m] = peer.wait_for(1)
        assert m["rcpt_tos"] == ["ok@example.org"]
        rej = d.lines_of("rcpt-rejected")
        assert len(rej) == 1 and "nobody@example.org" in rej[0] and "550" in rej[0]
        assert any("550" in (a.get("reply") or "") for a in d.attempts(partial)
                   if a["result"] == "rcpt-rejected")
        failed = d.lines_of("failed")
        assert len(failed) == 1 and "id=%d " % bad in failed[0] and "550" in failed[0]
    finally:
        assert d.stop() == 0


def test_temporary_rcpt_reply_waits_for_that_recipient_alone(smtp_peer, workdir):
    # 550, 451 (greylisting) and 250 to the three RCPTs: the accepted one
    # gets the message at once, the refused one never, and the greylisted one
    # alone at the next attempt. Every copy names all three in To.
    peer = smtp_peer(tempfail_first=1, tempfail_stage="rcpt", reject_rcpt="nobody@example.org")
    d = Daemon(workdir, smtp_profile("relay", peer.port),
               queue={"retry_min": "1s", "retry_max": "2s"}).start()
    try:
        rcpts = ["nobody@example.org", "spaeter@example.org", "ok@example.org"]
        mid = d.enqueue(rcpts)
        d.wait_states("sent", [mid], timeout=30)
        first, second = peer.wait_for(2)
        assert first["rcpt_tos"] == ["ok@example.org"]
        assert second["rcpt_tos"] == ["spaeter@example.org"]
        for m in (first, second):
            assert [a.addr_spec for a in m["message"]["To"].addresses] == rcpts
        assert first["message"]["Message-ID"] == second["message"]["Message-ID"]
        time.sleep(0.5)
        assert len(peer.messages()) == 2
        rcpt_lines = [c for c in peer.commands() if c.upper().startswith("RCPT")]
        assert len(rcpt_lines) == 4 and "spaeter@example.org" in rcpt_lines[3], rcpt_lines
        sent = d.lines_of("sent")
        assert len(sent) == 2, sent
        assert "to=1 later=1 " in sent[0] and "attempt=1" in sent[0]
        assert "to=1 " in sent[1] and "later=" not in sent[1] and "attempt=2" in sent[1]
        [deferred] = d.lines_of("deferred")
        assert "451" in deferred and "RCPT TO:<spaeter@example.org>" in deferred
        [rej] = d.lines_of("rcpt-rejected")
        assert "nobody@example.org" in rej and "550" in rej
        results = [a["result"] for a in d.attempts(mid)]
        assert results == ["sent", "rcpt-rejected", "rcpt-deferred", "sent"], results
        states = {r["address"]: r["state"] for r in d.show_json(mid)["recipients"]}
        assert states == {"nobody@example.org": "failed", "spaeter@example.org": "sent",
                          "ok@example.org": "sent"}
        shown = d.cli("show", str(mid), check=0).stdout
        assert "nobody@example.org  [refused]" in shown and "ok@example.org  [sent]" in shown
    finally:
        assert d.stop() == 0


def test_lasting_temporary_rcpt_reply_holds_back_no_one(smtp_peer, workdir):
    # A full mailbox answers 452 every time: the other recipient has the
    # message after the first attempt; the full one is tried alone until the
    # message expires, and it then fails as expired, saying who had it.
    peer = smtp_peer(full_rcpt="voll@example.org")
    d = Daemon(workdir, smtp_profile("relay", peer.port),
               queue={"retry_min": "1s", "retry_max": "1s"}).start()
    try:
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5))
        mid = d.enqueue(["voll@example.org", "ok@example.org"], extra=["--expires", expires])
        [m] = peer.wait_for(1)
        assert m["rcpt_tos"] == ["ok@example.org"]
        d.wait_states("failed", [mid], timeout=30)
        assert len(peer.messages()) == 1
        rcpt_lines = [c for c in peer.commands() if c.upper().startswith("RCPT")]
        assert len(rcpt_lines) >= 3, rcpt_lines
        assert all("voll@example.org" in c for c in rcpt_lines[2:]), rcpt_lines
        assert all("452" in l and "voll@example.org" in l for l in d.lines_of("deferred"))
        [expired] = d.lines_of("expired")
        assert "1 of 2 recipients had it" in expired and "452" in expired, expired
        assert not d.lines_of("rcpt-rejected")
        assert len(d.lines_of("sent")) == 1
        states = {r["address"]: r["state"] for r in d.show_json(mid)["recipients"]}
        assert states == {"voll@example.org": None, "ok@example.org": "sent"}
    finally:
        assert d.stop() == 0


@pytest.mark.parametrize("code", [452, 552])
def test_too_many_recipients_go_on_in_the_next_transaction_at_once(smtp_peer, workdir, code):
    # A relay that takes 2 recipients per message (Postfix's
    # smtpd_recipient_limit) answers 452 4.5.3 to the rest (an RFC 821 one
    # 552 5.5.3, which RFC 5321 asks clients to take as temporary): they go
    # out in the next transactions right away, not after retry_min (a minute
    # here), each recipient once, and the rounds use no attempt.
    peer = smtp_peer(rcpt_limit=2, rcpt_limit_552=code == 552)
    d = Daemon(workdir, smtp_profile("relay", peer.port),
               queue={"retry_min": "1m", "retry_max": "1h"}).start()
    try:
        rcpts = ["r%d@example.org" % i for i in range(5)]
        mid = d.enqueue(rcpts)
        d.wait_states("sent", [mid], timeout=20)
        got = peer.wait_for(3)
        assert [m["rcpt_tos"] for m in got] == [rcpts[0:2], rcpts[2:4], rcpts[4:5]]
        sent = d.lines_of("sent")
        assert len(sent) == 3, sent
        assert "to=2 later=3 " in sent[0] and "to=2 later=1 " in sent[1]
        assert "to=1 " in sent[2] and "later=" not in sent[2]
        assert all("%d %d.5.3" % (code, code // 100) in l for l in d.lines_of("deferred"))
        assert d.message(mid)["attempts"] == 1
        assert not d.lines_of("rcpt-rejected")
    finally:
        assert d.stop() == 0


def test_mailbox_named_twice_gets_one_rcpt_and_one_copy(smtp_peer, workdir):
    # The same mailbox in To and Cc (its domain in another case) is one RCPT:
    # with a relay that takes one recipient per message, a gets one copy and
    # b the next, and both rows of a end sent.
    peer = smtp_peer(rcpt_limit=1)
    d = Daemon(workdir, smtp_profile("relay", peer.port),
               queue={"retry_min": "1m", "retry_max": "1h"}).start()
    try:
        mid = d.enqueue(["a@example.org", "b@example.org"], extra=["--cc", "a@EXAMPLE.org"])
        d.wait_states("sent", [mid], timeout=20)
        got = peer.wait_for(2)
        assert [m["rcpt_tos"] for m in got] == [["a@example.org"], ["b@example.org"]]
        time.sleep(0.3)
        assert len(peer.messages()) == 2
        assert [r["state"] for r in d.show_json(mid)["recipients"]] == ["sent", "sent", "sent"]
    finally:
        assert d.stop() == 0


def test_too_many_and_a_full_mailbox_in_one_message(smtp_peer, workdir):
    # 452 4.5.3 to some recipients and 452 4.2.2 (mailbox full) to another:
    # the rounds go on at once while they reach someone, so with
    # max_attempts = 1 every deliverable recipient still gets the message
    # once, and only the full mailbox is given up.
    peer = smtp_peer(rcpt_limit=2, full_rcpt="voll@example.org")
    d = Daemon(workdir, smtp_profile("relay", peer.port),
               queue={"retry_min": "1m", "retry_max": "1h", "max_attempts": "1"}).start()
    try:
        rcpts = ["a@example.org", "b@example.org", "voll@example.org", "c@example.org",
                 "d@example.org"]
        mid = d.enqueue(rcpts)
        d.wait_states("failed", [mid], timeout=20)
        got = [r for m in peer.messages() for r in m["rcpt_tos"]]
        assert sorted(got) == ["a@example.org", "b@example.org", "c@example.org",
                               "d@example.org"], got
        states = {r["address"]: r["state"] for r in d.show_json(mid)["recipients"]}
        assert states["voll@example.org"] is None
        assert [states[a] for a in rcpts if a != "voll@example.org"] == ["sent"] * 4
        assert "gave up after 1 attempts" in d.message(mid)["last_error"]
    finally:
        assert d.stop() == 0


def test_domain_without_ascii_form_refuses_that_recipient_only(smtp_peer, workdir):
    # A full-width "＠" inside a domain passes enqueue (any letter may be in
    # an internationalized label) but maps to a second '@' under IDNA: that
    # recipient is refused before any server sees it, the other gets the
    # message, and nothing mangled goes out.
    peer = smtp_peer()
    d = Daemon(workdir, smtp_profile("relay", peer.port)).start()
    try:
        bad = "x@evil\uff20victim.example"
        mid = d.enqueue(["ok@example.org", bad])
        d.wait_states("sent", [mid], timeout=20)
        [m] = peer.wait_for(1)
        assert m["rcpt_tos"] == ["ok@example.org"]
        assert not any("victim" in c for c in peer.commands())
        [rej] = d.lines_of("rcpt-rejected")
        assert "no valid ASCII form" in rej, rej
        states = {r["address"]: r["state"] for r in d.show_json(mid)["recipients"]}
        assert states == {"ok@example.org": "sent", bad: "failed"}
        assert [a["result"] for a in d.attempts(mid)] == ["sent", "rcpt-rejected"]
    finally:
        assert d.stop() == 0


def test_retry_sends_a_sent_message_to_its_refused_recipient_only(smtp_peer, workdir):
    # The relay refused one recipient for good (550) and the message went
    # out to the other. Once the administrator has fixed the route (here: a
    # reload onto another relay), `mailspool retry` sends it to the refused
    # recipient alone.
    first = smtp_peer(reject_rcpt="nobody@example.org")
    second = smtp_peer()
    d = Daemon(workdir, smtp_profile("relay", first.port)).start()
    try:
        mid = d.enqueue(["ok@example.org", "nobody@example.org"])
        d.wait_states("sent", [mid], timeout=20)
        assert [m["rcpt_tos"] for m in first.wait_for(1)] == [["ok@example.org"]]
        d.write_config(smtp_profile("relay", second.port))
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.lines_of("reload"), what="the reload")
        assert d.cli("retry", str(mid), check=0).returncode == 0
        [m] = second.wait_for(1)
        assert m["rcpt_tos"] == ["nobody@example.org"]
        d.wait_states("sent", [mid], timeout=20)
        assert len(first.messages()) == 1
        assert [r["state"] for r in d.show_json(mid)["recipients"]] == ["sent", "sent"]
        assert d.cli("retry", str(mid), check=None).returncode == 65  # nobody left
    finally:
        assert d.stop() == 0


def test_tempfail_twice_then_sent_on_third_attempt(smtp_peer, workdir):
    peer = smtp_peer(tempfail_first=2, tempfail_stage="data")
    d = Daemon(workdir, smtp_profile("relay", peer.port),
               queue={"retry_min": "1s", "retry_max": "2s"}).start()
    try:
        mid = d.enqueue("a@example.org")
        d.wait_states("sent", [mid], timeout=30)
        atts = [a for a in d.attempts(mid) if a["result"] in ("sent", "deferred")]
        assert [a["result"] for a in atts] == ["deferred", "deferred", "sent"]
        assert "451" in atts[0]["reply"]
        sent = d.lines_of("sent")[0]
        assert "attempt=3" in sent
        assert len(d.lines_of("deferred")) == 2
    finally:
        assert d.stop() == 0


def test_peer_down_then_up_delivers_nothing_failed(smtp_peer, workdir):
    peer = smtp_peer()
    port = peer.port
    peer.stop()
    d = Daemon(workdir, smtp_profile("relay", port),
               queue={"retry_min": "1s", "retry_max": "2s"}).start()
    try:
        ids = [d.enqueue("a%d@example.org" % i) for i in range(5)]
        wait_for(lambda: d.lines_of("profile-suspended"), timeout=30, what="suspension")
        # Transfers claimed before the suspension finish failing to connect a
        # moment later (much later under valgrind): wait, bounded, for them.
        wait_for(lambda: all(s == "queued" for s in d.states().values()), timeout=30,
                 what="every message queued again")
        peer.start(port=port)
        d.wait_states("sent", ids, timeout=60)
        assert not d.lines_of("failed")
        assert len(peer.wait_for(5)) == 5
    finally:
        assert d.stop() == 0


def test_slow_peer_does_not_slow_other_profile(smtp_peer, workdir):
    slow = smtp_peer(data_delay=2)
    fast = smtp_peer()
    profiles = (smtp_profile("slow", slow.port, extra="MaxConnections = 1") +
                smtp_profile("fast", fast.port))
    d = Daemon(workdir, profiles, areas={"report": "slow", "invoice": "fast"}).start()
    try:
        slow_ids = [d.enqueue("s%d@example.org" % i, area="report") for i in range(3)]
        fast_ids = [d.enqueue("f%d@example.org" % i, area="invoice") for i in range(30)]
        fast.wait_for(30, timeout=30)
        # All 30 fast messages are through while the slow peer (2 s per
        # message, one connection) has accepted at most one of its three.
        assert len(slow.messages()) <= 1
        d.wait_states("sent", slow_ids + fast_ids, timeout=60)
    finally:
        assert d.stop() == 0


def test_connection_reuse(smtp_peer, workdir):
    peer = smtp_peer()
    d = Daemon(workdir, smtp_profile("relay", peer.port, extra="MaxConnections = 4"),
               daemon={"log_level": "info"})
    from conftest import BUILD, run
    run([os.path.join(BUILD, "bench", "enqueue_many"), d.spool, "1000", "invoice", "reuse"],
        check=0, timeout=120)
    d.start()
    try:
        d.wait_states("sent", timeout=120)
        assert len(peer.wait_for(1000, timeout=30)) == 1000
        conns = peer.connections()
        assert conns <= 4 * 3, "1000 messages used %d connections" % conns
    finally:
        assert d.stop() == 0


def test_garbage_sql_row_fails_and_daemon_goes_on(smtp_peer, workdir):
    peer = smtp_peer()
    d = Daemon(workdir, smtp_profile("relay", peer.port)).start()
    try:
        good1 = d.enqueue("ok1@example.org")
        with d.db() as c:
            c.execute("INSERT INTO messages (area, subject, body_text) VALUES "
                      "('invoice', 'Evil\r\nBcc: victim@example.org', 'x')")
            bad_subject = c.execute("SELECT last_insert_rowid()").fetchone()[0]
            c.execute("INSERT INTO recipients (message_id, kind, address) VALUES (?, 'to', "
                      "'a@example.org')", (bad_subject,))
            c.execute("INSERT INTO messages (area, subject, body_text) VALUES "
                      "('invoice', 'Bad address', 'x')")
            bad_addr = c.execute("SELECT last_insert_rowid()").fetchone()[0]
            c.execute("INSERT INTO recipients (message_id, kind, address) VALUES (?, 'to', "
                      "'not an address')", (bad_addr,))
            c.execute("INSERT INTO messages (area, subject, body_text) VALUES "
                      "('invoice', 'No recipient', 'x')")
            no_rcpt = c.execute("SELECT last_insert_rowid()").fetchone()[0]
        good2 = d.enqueue("ok2@example.org")
        d.wait_states(["sent", "failed"], [good1, bad_subject, bad_addr, no_rcpt, good2])
        st = d.states()
        assert st[good1] == st[good2] == "sent"
        for bad in (bad_subject, bad_addr, no_rcpt):
            assert st[bad] == "failed"
            assert d.message(bad)["last_error"]
        assert "victim" not in b"".join(m["raw"] for m in peer.wait_for(2)).decode()
        assert d.proc.poll() is None
    finally:
        assert d.stop() == 0


IDN_FROM = "rechnung@flughafen-m\u00fcnchen.example"
IDN_FROM_ACE = "rechnung@xn--flughafen-mnchen-tzb.example"


def test_internationalized_domains_go_out_in_ascii_form(smtp_peer, workdir):
    # A relay without SMTPUTF8: domains with umlauts go out as A-labels in
    # EHLO, MAIL FROM, RCPT TO and every header, so the message is plain
    # ASCII. A non-ASCII local part has no ASCII form: that recipient is
    # refused by this relay, and the other one still gets the message.
    peer = smtp_peer()
    d = Daemon(workdir, smtp_profile("relay", peer.port, from_addr=IDN_FROM)).start()
    try:
        idn = d.enqueue("\u00dcnal <a@B\u00fccher.example>",
                        extra=["--reply-to", "B\u00fcro <b@b\u00fcro.example>"])
        mixed = d.enqueue(["m\u00fcller@example.org", "ok@example.org"])
        d.wait_states("sent", [idn, mixed], timeout=30)
        first, second = peer.wait_for(2)
        assert first["mail_from"] == IDN_FROM_ACE and first["mail_options"] == []
        assert first["rcpt_tos"] == ["a@xn--bcher-kva.example"]
        assert all(b < 0x80 for b in first["raw"]), first["raw"]
        msg = first["message"]
        assert [a.addr_spec for a in msg["To"].addresses] == ["a@xn--bcher-kva.example"]
        assert msg["To"].addresses[0].display_name == "\u00dcnal"
        assert [a.addr_spec for a in msg["From"].addresses] == [IDN_FROM_ACE]
        assert [a.addr_spec for a in msg["Reply-To"].addresses] == ["b@xn--bro-hoa.example"]
        assert msg["Message-ID"].endswith("@xn--flughafen-mnchen-tzb.example>")
        helos = [c for c in peer.commands() if c.upper().startswith("EHLO")]
        assert helos and all(h == "EHLO xn--flughafen-mnchen-tzb.example" for h in helos), helos
        assert second["rcpt_tos"] == ["ok@example.org"]
        [rej] = d.lines_of("rcpt-rejected")
        assert "m\u00fcller@example.org" in rej and "500" in rej, rej
        states = {r["address"]: r["state"] for r in d.show_json(mixed)["recipients"]}
        assert states == {"m\u00fcller@example.org": "failed", "ok@example.org": "sent"}
        # mailspool test sends the same way.
        p = d.cli("test", "--profile", "relay", "--to", "t@b\u00fccher.example", check=0)
        assert "result: accepted" in p.stdout, p.stdout + p.stderr
        third = peer.wait_for(3)[2]
        assert third["rcpt_tos"] == ["t@xn--bcher-kva.example"]
        assert all(b < 0x80 for b in third["raw"]), third["raw"]
    finally:
        assert d.stop() == 0


def test_non_ascii_local_part_goes_out_with_smtputf8(smtp_peer, workdir):
    # A relay that offers SMTPUTF8 (RFC 6531) gets the UTF-8 address as it
    # is, with SMTPUTF8 on MAIL FROM; a message with ASCII addresses only
    # does not ask for it.
    peer = smtp_peer(smtputf8=True)
    d = Daemon(workdir, smtp_profile("relay", peer.port, from_addr=IDN_FROM)).start()
    try:
        plain = d.enqueue("a@b\u00fccher.example")
        utf8 = d.enqueue("M\u00fcller <m\u00fcller@example.org>")
        d.wait_states("sent", [plain, utf8], timeout=30)
        first, second = peer.wait_for(2)
        assert first["mail_options"] == [] and first["rcpt_tos"] == ["a@xn--bcher-kva.example"]
        assert second["mail_options"] == ["SMTPUTF8"]
        assert second["rcpt_tos"] == ["m\u00fcller@example.org"]
        # RFC 6532: the address in the header as UTF-8 (the name as an encoded word).
        assert b"To: =?UTF-8?" in second["raw"]
        assert "<m\u00fcller@example.org>\r\n".encode() in second["raw"]
    finally:
        assert d.stop() == 0
