"""Self-tests of the SMTP test peer (tests/fakes/smtp_peer.py) with smtplib.

Owns: proof that every option of the peer behaves as tests/fakes/README.md
says, so that daemon tests built on it can trust it.
Never: talks to anything but peers started by the smtp_peer fixture.
"""
import smtplib
import socket
import ssl
import time

import pytest

from procutil import wait_until

MSG = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: test\r\n\r\n"
       b"line 1\r\n.line starting with a dot\r\n8bit: \xc3\xa4\r\n")


def client(peer, implicit=False, timeout=10):
    if implicit:
        ctx = ssl.create_default_context(cafile=peer.ca)
        return smtplib.SMTP_SSL("127.0.0.1", peer.port, timeout=timeout, context=ctx)
    return smtplib.SMTP("127.0.0.1", peer.port, timeout=timeout)


def tls_ctx(peer):
    return ssl.create_default_context(cafile=peer.ca)


def test_plain_peer_records_message_envelope_and_events(smtp_peer):
    peer = smtp_peer()
    with client(peer) as s:
        s.ehlo("client.test")
        assert "starttls" not in s.esmtp_features and "auth" not in s.esmtp_features
        assert s.sendmail("a@example.org", ["b@example.org", "c@example.org"], MSG) == {}
    (m,) = peer.wait_for(1)
    assert m["raw"] == MSG
    assert m["envelope"] == {"mail_from": "a@example.org",
                             "rcpt_tos": ["b@example.org", "c@example.org"]}
    assert m["tls"] is False and m["auth_user"] is None and m["helo"] == "client.test"
    assert m["message"]["Subject"] == "test" and m["session_id"] == 1
    assert m["peer"][0] == "127.0.0.1"
    wait_until(lambda: any(e["event"] == "disconnect" for e in peer.events()), 5)
    verbs = [c.split()[0] for c in peer.commands()]
    assert verbs == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    assert peer.connections() == 1
    st = peer.stats()
    assert st["messages"] == 1 and st["commands"]["RCPT"] == 2
    assert b".line starting with a dot" not in peer.conn_input(1).replace(b"..line", b"")


def test_starttls_and_auth_only_after_tls(smtp_peer):
    peer = smtp_peer(tls_mode="starttls", auth="user:pa ss")
    with client(peer) as s:
        s.ehlo()
        assert "starttls" in s.esmtp_features and "auth" not in s.esmtp_features
        code, text = s.docmd("AUTH", "PLAIN AHVzZXIAcGEgc3M=")
        assert code == 538
        assert s.docmd("MAIL", "FROM:<a@example.org>")[0] == 530
        s.starttls(context=tls_ctx(peer))
        s.ehlo()
        assert set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        s.login("user", "pa ss")
        s.sendmail("a@example.org", ["b@example.org"], MSG)
    (m,) = peer.wait_for(1)
    assert m["tls"] is True and m["auth_user"] == "user"
    auth = [e for e in peer.events() if e["event"] == "auth"]
    assert [(a["ok"], a["tls"]) for a in auth] == [(True, True)]
    assert any(e["event"] == "tls" for e in peer.events())
    # the refused AUTH before STARTTLS is on record, with its payload
    assert "AUTH PLAIN AHVzZXIAcGEgc3M=" in peer.commands()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_auth_plaintext_and_wrong_password(smtp_peer, mech):
    peer = smtp_peer(auth=("u", "p"), auth_plaintext=True)
    with client(peer) as s:
        s.ehlo()
        assert mech in s.esmtp_features["auth"].split()
        s.user, s.password = "u", "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.auth(mech, getattr(s, "auth_" + mech.lower()))
        assert e.value.smtp_code == 535
        s.user, s.password = "u", "p"
        assert s.auth(mech, getattr(s, "auth_" + mech.lower()))[0] == 235
    assert [a["ok"] for a in peer.events() if a["event"] == "auth"] == [False, True]


def test_refuse_auth_answers_535_5_7_8(smtp_peer):
    peer = smtp_peer(tls_mode="starttls", auth="u:p", refuse_auth=True)
    with client(peer) as s:
        s.starttls(context=tls_ctx(peer))
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("u", "p")
    assert e.value.smtp_code == 535 and e.value.smtp_error.startswith(b"5.7.8")


def test_implicit_tls_offers_auth_at_once(smtp_peer):
    peer = smtp_peer(tls_mode="implicit", auth="u:p")
    with client(peer, implicit=True) as s:
        s.ehlo()
        assert "starttls" not in s.esmtp_features and "auth" in s.esmtp_features
        s.login("u", "p")
        s.sendmail("a@example.org", ["b@example.org"], MSG)
    (m,) = peer.wait_for(1)
    assert m["tls"] is True and m["auth_user"] == "u"


def test_implicit_tls_peer_does_not_speak_plaintext(smtp_peer):
    peer = smtp_peer(tls_mode="implicit")
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError, socket.timeout)):
        client(peer, timeout=3).ehlo()


def test_no_starttls_hides_it(smtp_peer):
    peer = smtp_peer(tls_mode="starttls", starttls=False, auth="u:p")
    with client(peer) as s:
        s.ehlo()
        assert "starttls" not in s.esmtp_features and "auth" not in s.esmtp_features
        assert s.docmd("STARTTLS")[0] in (454, 500, 502)


def test_require_tls_refuses_mail_before_starttls(smtp_peer):
    peer = smtp_peer(tls_mode="starttls", require_tls=True)
    with client(peer) as s:
        s.ehlo()
        assert s.docmd("MAIL", "FROM:<a@example.org>")[0] == 530


@pytest.mark.parametrize("which,error", [("wrong", "match"), ("self", "self-signed"),
                                         ("expired", "expired")])
def test_bad_certificates_fail_verification(smtp_peer, certs, which, error):
    peer = smtp_peer(tls_mode="starttls", cert=getattr(certs, which + "_cert"),
                     key=getattr(certs, which + "_key"))
    with client(peer) as s:
        with pytest.raises(ssl.SSLCertVerificationError) as e:
            s.starttls(context=tls_ctx(peer))
    assert error in str(e.value)
    wait_until(lambda: peer.stats()["tls_failed"] == 1, 5, what="tls_failed at the peer")


def test_implicit_tls_handshake_failure_is_recorded(smtp_peer, certs):
    peer = smtp_peer(tls_mode="implicit", cert=certs.wrong_cert, key=certs.wrong_key)
    with pytest.raises(ssl.SSLCertVerificationError):
        client(peer, implicit=True)
    wait_until(lambda: peer.stats()["tls_failed"] == 1, 5, what="tls_failed at the peer")
    assert peer.connections() == 1 and peer.stats()["tls"] == 0 and peer.commands() == []


def test_ipv6_loopback(smtp_peer):
    peer = smtp_peer(host="::1")
    with smtplib.SMTP("::1", peer.port, timeout=10) as s:
        s.sendmail("a@example.org", ["b@example.org"], MSG)
    assert peer.wait_for(1)[0]["peer"][0] == "::1"


def test_reject_rcpt_550_others_accepted(smtp_peer):
    peer = smtp_peer(reject_rcpt=["bad@example.org", "Worse@Example.org"])
    with client(peer) as s:
        refused = s.sendmail("a@example.org", ["bad@example.org", "ok@example.org",
                                               "worse@example.org"], MSG)
    assert set(refused) == {"bad@example.org", "worse@example.org"}
    assert all(r[0] == 550 and r[1].startswith(b"5.1.1") for r in refused.values())
    (m,) = peer.wait_for(1)
    assert m["rcpt_tos"] == ["ok@example.org"]


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_tempfail_first_n_then_accept(smtp_peer, stage):
    peer = smtp_peer(tempfail_first=2, tempfail_stage=stage)
    codes = []
    for _ in range(3):
        with client(peer) as s:
            try:
                s.sendmail("a@example.org", ["b@example.org"], MSG)
                codes.append(250)
            except smtplib.SMTPResponseException as e:
                codes.append((e.smtp_code, e.smtp_error[:5]))
            except smtplib.SMTPRecipientsRefused as e:
                (code, text), = e.recipients.values()
                codes.append((code, text[:5]))
    assert codes == [(451, b"4.7.1"), (451, b"4.7.1"), 250]
    assert len(peer.wait_for(1)) == 1 and peer.stats()["tempfails"] == 2


def test_data_delay_holds_the_reply_to_the_dot(smtp_peer):
    peer = smtp_peer(data_delay=1.0)
    with client(peer) as s:
        s.ehlo()
        s.mail("a@example.org")
        s.rcpt("b@example.org")
        t0 = time.monotonic()
        assert s.data(MSG)[0] == 250
        assert time.monotonic() - t0 >= 0.9


def test_drop_after_data_loses_the_reply_but_keeps_the_message(smtp_peer):
    peer = smtp_peer(drop_after_data=True)
    s = client(peer)
    s.ehlo()
    s.mail("a@example.org")
    s.rcpt("b@example.org")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        s.data(MSG)
    s.close()
    (m,) = peer.wait_for(1)
    assert m["reply_dropped"] is True and m["raw"] == MSG
    assert not any(r.startswith("250 2.0.0") for r in peer.replies())


def test_close_before_greeting_first_n(smtp_peer):
    peer = smtp_peer(close_before_greeting=1)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client(peer)
    with client(peer) as s:
        assert s.noop()[0] == 250
    assert peer.connections() == 2 and peer.stats()["closed_before_greeting"] == 1


def test_close_before_greeting_all(smtp_peer):
    peer = smtp_peer(close_before_greeting=True)
    for _ in range(2):
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client(peer)


def test_reply_421_after_n_messages_per_connection(smtp_peer):
    peer = smtp_peer(reply_421_after=2)
    with client(peer) as s:
        s.sendmail("a@example.org", ["b@example.org"], MSG)
        s.sendmail("a@example.org", ["b@example.org"], MSG)
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("a@example.org", ["b@example.org"], MSG)
        assert e.value.smtp_code == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.noop()
    with client(peer) as s:
        s.sendmail("a@example.org", ["b@example.org"], MSG)
    assert len(peer.wait_for(3)) == 3


def test_capture_records_every_byte_after_tls(smtp_peer):
    peer = smtp_peer(tls_mode="starttls", auth="u:p", capture=True)
    with client(peer) as s:
        s.starttls(context=tls_ctx(peer))
        s.login("u", "p")
        s.sendmail("a@example.org", ["b@example.org"], MSG)
    peer.wait_for(1)
    wait_until(lambda: b"QUIT\r\n" in peer.captured(), 5)
    cap = peer.captured()
    assert cap.startswith(b"ehlo ") and b"STARTTLS\r\n" in cap
    assert b"AUTH PLAIN AHUAcA==\r\n" in cap
    assert b"\r\n..line starting with a dot\r\n" in cap   # dot-stuffed on the wire
    assert cap == peer.conn_input(1)


def test_stop_restart_same_port_continues_numbering(smtp_peer):
    peer = smtp_peer()
    with client(peer) as s:
        s.sendmail("a@example.org", ["b@example.org"], MSG)
    port = peer.port
    assert peer.stop() == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=3)
    peer.restart()
    assert peer.port == port
    with client(peer) as s:
        s.sendmail("a@example.org", ["c@example.org"], MSG)
    msgs = peer.wait_for(2)
    assert [m["seq"] for m in msgs] == [1, 2] and msgs[1]["rcpt_tos"] == ["c@example.org"]
    assert peer.connections() == 2 and peer.stats()["starts"] == 2


def test_restart_with_changed_options(smtp_peer):
    peer = smtp_peer(close_before_greeting=True)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client(peer)
    peer.restart(close_before_greeting=None)
    with client(peer) as s:
        assert s.noop()[0] == 250


def test_kill_and_max_seconds(smtp_peer):
    peer = smtp_peer()
    peer.kill()
    assert not peer.alive
    short = smtp_peer(max_seconds=0.5)
    wait_until(lambda: not short.alive, 10, what="peer exit after --max-seconds")
    assert short._proc.proc.returncode == 0
