"""The SMTP transport (daemon/smtp*.c) against real aiosmtpd peers on loopback.

Drives build/tools/smtp_send (a real event loop with a real smtp_pool, or
smtp_test() with --test) and checks what the peer recorded and what crossed
the wire: TLS and AUTH policy per profile, the password never in plaintext,
reply capture (final ".", rejected recipients, 4xx), connection reuse,
timeouts and abort, attachments streamed from the spool.
"""
import base64
import hashlib
import json
import os
import select
import socket
import threading

import pytest

from conftest import BUILD, run

SMTP_SEND = os.path.join(BUILD, "tools", "smtp_send")
USER = "rechnung@airport.example"
PASSWORD = "Zq7-secret-Pw!x9"  # distinctive: searched for in raw captures


def secret_forms():
    """Every way the password could appear on the wire."""
    pw = PASSWORD.encode()
    return [pw, base64.b64encode(pw), base64.b64encode(b"\0" + USER.encode() + b"\0" + pw),
            base64.b64encode(USER.encode() + b"\0" + USER.encode() + b"\0" + pw)]


def write_conf(tmp_path, port, auth=False, tls=None, ca=None, verify=True, max_conn=None,
               name="p"):
    lines = ["[spool]", "path = %s" % (tmp_path / "spool.db"), "",
             "[daemon]", "connect_timeout = 5s", "response_timeout = 30s", "",
             "[profile %s]" % name,
             "FromAddress = %s" % USER,
             "FromDisplayName = Flughafen Musterstadt – Buchhaltung",
             "SMTPHost = 127.0.0.1",
             "SMTPPort = %d" % port]
    if auth:
        lines += ["Username = %s" % USER, "Passwort = %s" % PASSWORD, "SMTPAuthReq = SSL"]
    else:
        lines += ["SMTPAuthReq = NIL"]
    if tls:
        lines.append("SMTPTLS = %s" % tls)
    if ca:
        lines.append("CAFile = %s" % ca)
    if not verify:
        lines.append("TLSVerify = no")
    if max_conn:
        lines.append("MaxConnections = %d" % max_conn)
    lines += ["", "[area *]", "profile = %s" % name, ""]
    path = tmp_path / "mailspool.conf"
    path.write_text("\n".join(lines), encoding="utf-8")
    os.chmod(path, 0o600)
    return str(path)


def send(conf, *args, timeout=60, profile="p"):
    """Runs smtp_send; returns (list of result dicts, CompletedProcess)."""
    p = run([SMTP_SEND, "-c", conf, "-p", profile] + [str(a) for a in args], timeout=timeout)
    assert "==ERROR" not in p.stderr, p.stderr  # sanitizer reports
    results = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    return results, p


def smtp_test(conf, to="kunde@example.org", timeout=60):
    p = run([SMTP_SEND, "-c", conf, "-p", "p", "-t", to, "--test"], timeout=timeout)
    assert "==ERROR" not in p.stderr, p.stderr
    return p


class RawProxy:
    """A TCP relay in front of a peer that records every byte the client sent
    (before any TLS is undone) and counts connections."""

    def __init__(self, upstream_port, stall_after_data=False):
        self.upstream = upstream_port
        self.stall_after_data = stall_after_data  # stop reading once DATA went by
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.client_bytes = bytearray()
        self.connections = 0
        self.lock = threading.Lock()
        self.stop = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stop:
            r, _, _ = select.select([self.lsock], [], [], 0.2)
            if not r:
                continue
            c, _ = self.lsock.accept()
            with self.lock:
                self.connections += 1
            t = threading.Thread(target=self._pump, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _pump(self, c):
        u = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
        try:
            while not self.stop:
                stalled = self.stall_after_data and b"\r\nDATA\r\n" in self.captured()
                r, _, _ = select.select([u] if stalled else [c, u], [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is c:
                        with self.lock:
                            self.client_bytes += data
                        u.sendall(data)
                    else:
                        c.sendall(data)
        except OSError:
            return
        finally:
            c.close()
            u.close()

    def captured(self):
        with self.lock:
            return bytes(self.client_bytes)

    def close(self):
        self.stop = True
        for t in self.threads:
            t.join(timeout=5)
        self.lsock.close()


@pytest.fixture
def proxy():
    made = []

    def make(port, **kw):
        made.append(RawProxy(port, **kw))
        return made[-1]
    yield make
    for p in made:
        p.close()


def only(results):
    assert len(results) == 1, results
    return results[0]


# ---- TLS and AUTH policy ----------------------------------------------------

def test_starttls_auth_delivery_captures_final_reply(tmp_path, smtp_peer, certs):
    peer = smtp_peer(tls_mode="starttls", auth=(USER, PASSWORD))
    conf = write_conf(tmp_path, peer.port, auth=True, ca=certs.ca)
    res, p = send(conf, "-t", "kunde@example.org", "-C", "cc@example.org",
                  "-b", "geheim@example.org", "-S", "Rechnung Grüße")
    r = only(res)
    assert r["curl_code"] == 0, r
    assert r["stage"] == "done" and r["data_sent"] and r["accepted"] == 3
    got = peer.wait_for(1)[0]
    assert r["reply"] == "250 2.0.0 Ok: queued as %06d" % got["seq"]
    assert r["reply_code"] == 250
    assert r["bytes"] == got["size"]
    assert got["tls"] and got["auth_user"] == USER
    assert got["envelope"]["mail_from"] == USER
    assert sorted(got["envelope"]["rcpt_tos"]) == ["cc@example.org", "geheim@example.org",
                                                   "kunde@example.org"]
    assert "geheim@example.org" not in got["raw"].decode("utf-8", "replace")
    assert got["message"]["subject"] == "Rechnung Grüße"
    cmds = peer.commands()
    assert cmds.index("STARTTLS") < min(i for i, c in enumerate(cmds) if c.startswith("AUTH"))


def test_implicit_tls_auth_delivery(tmp_path, smtp_peer, certs):
    peer = smtp_peer(tls_mode="implicit", auth=(USER, PASSWORD))
    conf = write_conf(tmp_path, peer.port, auth=True, tls="implicit", ca=certs.ca)
    r = only(send(conf, "-t", "kunde@example.org")[0])
    assert r["curl_code"] == 0 and r["stage"] == "done", r
    got = peer.wait_for(1)[0]
    assert got["tls"] and got["auth_user"] == USER
    assert "STARTTLS" not in peer.commands()


def test_anonymous_uses_neither_starttls_nor_auth_even_if_offered(tmp_path, smtp_peer, certs):
    peer = smtp_peer(tls_mode="starttls", auth=("x", "y"), auth_optional=True,
                     auth_plaintext=True)
    conf = write_conf(tmp_path, peer.port)
    r = only(send(conf, "-t", "kunde@example.org")[0])
    assert r["curl_code"] == 0, r
    got = peer.wait_for(1)[0]
    assert not got["tls"] and got["auth_user"] is None
    assert not any(c.startswith(("STARTTLS", "AUTH")) for c in peer.commands())


def test_anonymous_with_smtptls_starttls_encrypts_without_auth(tmp_path, smtp_peer, certs):
    peer = smtp_peer(tls_mode="starttls", auth=("x", "y"), auth_optional=True)
    conf = write_conf(tmp_path, peer.port, tls="starttls", ca=certs.ca)
    r = only(send(conf, "-t", "kunde@example.org")[0])
    assert r["curl_code"] == 0, r
    got = peer.wait_for(1)[0]
    assert got["tls"] and got["auth_user"] is None
    assert "STARTTLS" in peer.commands()
    assert not any(c.startswith("AUTH") for c in peer.commands())


def test_ssl_profile_without_starttls_never_sends_the_password(tmp_path, smtp_peer, proxy):
    # The tempting server: AUTH offered in plaintext, no STARTTLS.
    peer = smtp_peer(auth=(USER, PASSWORD), auth_plaintext=True)
    px = proxy(peer.port)
    conf = write_conf(tmp_path, px.port, auth=True)
    r = only(send(conf, "-t", "kunde@example.org")[0])
    assert r["curl_code"] == 64, r  # CURLE_USE_SSL_FAILED
    assert r["stage"] == "tls" and not r["data_sent"]
    p = smtp_test(conf)
    assert p.returncode == 78, p.stdout
    assert "STARTTLS" in p.stdout and "password was not sent" in p.stdout
    wire = px.captured()
    assert b"EHLO" in wire  # the capture works
    assert b"AUTH" not in wire and b"MAIL FROM" not in wire
    for form in secret_forms():
        assert form not in wire
        assert form.decode() not in p.stdout
    assert peer.stats()["auth_ok"] + peer.stats()["auth_failed"] == 0


def test_password_not_in_plaintext_with_starttls(tmp_path, smtp_peer, certs, proxy):
    peer = smtp_peer(tls_mode="starttls", auth=(USER, PASSWORD))
    px = proxy(peer.port)
    conf = write_conf(tmp_path, px.port, auth=True, ca=certs.ca)
    r = only(send(conf, "-t", "kunde@example.org")[0])
    assert r["curl_code"] == 0, r
    wire = px.captured()
    assert b"STARTTLS" in wire
    # Everything after STARTTLS is TLS records: no command is readable.
    assert b"AUTH" not in wire and b"MAIL FROM" not in wire
    for form in secret_forms():
        assert form not in wire
    assert peer.wait_for(1)[0]["auth_user"] == USER


def _have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _have_ipv6_loopback(), reason="no ::1 on this host")
def test_ipv6_literal_host_with_starttls_verification(tmp_path, smtp_peer, certs):
    peer = smtp_peer(host="::1", tls_mode="starttls", auth=(USER, PASSWORD))
    conf = write_conf(tmp_path, peer.port, auth=True, ca=certs.ca)
    text = open(conf, encoding="utf-8").read().replace("SMTPHost = 127.0.0.1", "SMTPHost = ::1")
    with open(conf, "w", encoding="utf-8") as f:
        f.write(text)
    r = only(send(conf, "-t", "kunde@example.org")[0])
    assert r["curl_code"] == 0, r
    assert peer.wait_for(1)[0]["peer"][0] == "::1"


def test_untrusted_certificate_fails_in_tls_stage_before_auth(tmp_path, smtp_peer, certs):
    peer = smtp_peer(tls_mode="starttls", auth=(USER, PASSWORD), cert=certs.self_cert,
                     key=certs.self_key)
    conf = write_conf(tmp_path, peer.port, auth=True, ca=certs.ca)
    r = only(send(conf, "-t", "kunde@example.org")[0])
    assert r["curl_code"] == 60, r  # CURLE_PEER_FAILED_VERIFICATION
    assert r["stage"] == "tls"
    assert not any(c.startswith("AUTH") for c in peer.commands())
    p = smtp_test(conf)
    assert p.returncode == 78, p.stdout
    assert "certificate" in p.stdout


def test_tlsverify_no_accepts_untrusted_certificate(tmp_path, smtp_peer, certs):
    peer = smtp_peer(tls_mode="starttls", auth=(USER, PASSWORD), cert=certs.self_cert,
                     key=certs.self_key)
    conf = write_conf(tmp_path, peer.port, auth=True, verify=False)
    p = smtp_test(conf)
    assert p.returncode == 0, p.stdout
    assert "NOT verified" in p.stdout
    assert peer.wait_for(1)[0]["auth_user"] == USER


def test_wrong_password_is_auth_stage(tmp_path, smtp_peer, certs):
    peer = smtp_peer(tls_mode="starttls", auth=(USER, "another-password"))
    conf = write_conf(tmp_path, peer.port, auth=True, ca=certs.ca)
    r = only(send(conf, "-t", "kunde@example.org")[0])
    assert r["curl_code"] == 67 and r["stage"] == "auth", r  # CURLE_LOGIN_DENIED
    assert r["reply_code"] == 535 and r["reply"].startswith("535 5.7.8")
    p = smtp_test(conf)
    assert p.returncode == 78, p.stdout
    for form in secret_forms():
        assert form.decode() not in p.stdout


# ---- replies ---------------------------------------------------------------

def test_partial_recipient_rejection_is_recorded(tmp_path, smtp_peer):
    peer = smtp_peer(reject_rcpt="bad@example.org")
    conf = write_conf(tmp_path, peer.port)
    r = only(send(conf, "-t", "good@example.org", "-t", "bad@example.org",
                  "-b", "hidden@example.org")[0])
    assert r["curl_code"] == 0 and r["accepted"] == 2, r
    assert [(x["addr"], x["code"]) for x in r["rejects"]] == [("bad@example.org", 550)]
    assert r["rejects"][0]["reply"] == ("550 5.1.1 <bad@example.org>: Recipient address "
                                        "rejected: User unknown")
    got = peer.wait_for(1)[0]
    assert got["envelope"]["rcpt_tos"] == ["good@example.org", "hidden@example.org"]
    assert r["reply"].startswith("250 2.0.0 Ok: queued as")


def test_all_recipients_rejected_fails_in_rcpt_stage(tmp_path, smtp_peer):
    peer = smtp_peer(reject_rcpt=["bad@example.org", "worse@example.org"])
    conf = write_conf(tmp_path, peer.port)
    r = only(send(conf, "-t", "bad@example.org", "-t", "worse@example.org")[0])
    assert r["curl_code"] != 0 and r["accepted"] == 0, r
    assert r["stage"] == "rcpt" and r["reply_code"] == 550 and not r["data_sent"]
    assert sorted(x["addr"] for x in r["rejects"]) == ["bad@example.org", "worse@example.org"]
    assert peer.messages() == []
    p = smtp_test(conf, to="bad@example.org")
    assert p.returncode == 69, p.stdout


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_451_is_reported_with_its_stage(tmp_path, smtp_peer, stage):
    peer = smtp_peer(tempfail_first=1, tempfail_stage=stage)
    conf = write_conf(tmp_path, peer.port)
    r = only(send(conf, "-t", "kunde@example.org")[0])
    assert r["curl_code"] != 0, r
    assert r["reply_code"] == 451 and r["reply"].startswith("451 4.7.1"), r
    assert r["stage"] == stage
    assert r["data_sent"] == (stage == "data")
    # The next attempt goes through (the peer tempfails only once).
    r2 = only(send(conf, "-t", "kunde@example.org")[0])
    assert r2["curl_code"] == 0, r2
    assert len(peer.wait_for(1)) == 1


def test_smtp_test_exit_code_for_tempfail(tmp_path, smtp_peer):
    peer = smtp_peer(tempfail_first=1, tempfail_stage="rcpt")
    conf = write_conf(tmp_path, peer.port)
    p = smtp_test(conf)
    assert p.returncode == 75, p.stdout
    assert "451 4.7.1" in p.stdout


def test_smtp_test_exit_code_when_nobody_listens(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    conf = write_conf(tmp_path, port)
    p = smtp_test(conf)
    assert p.returncode == 75, p.stdout
    assert "stage connect" in p.stdout


def test_smtp_test_transcript(tmp_path, smtp_peer, certs):
    peer = smtp_peer(tls_mode="starttls", auth=(USER, PASSWORD))
    conf = write_conf(tmp_path, peer.port, auth=True, ca=certs.ca)
    p = smtp_test(conf)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    for want in ("resolve 127.0.0.1:%d" % peer.port, "connected to 127.0.0.1",
                 "C: STARTTLS", "TLS: TLSv1.", "certificate subject: CN=localhost",
                 "certificate verified", "EHLO capabilities:", "AUTH LOGIN PLAIN",
                 "(credentials hidden)", "AUTH result: 235 (accepted)",
                 "C: MAIL FROM:<%s>" % USER, "S: 354", "result: accepted"):
        assert want in out, (want, out)
    got = peer.wait_for(1)[0]
    assert "S: 250 2.0.0 Ok: queued as %06d" % got["seq"] in out
    for form in secret_forms():
        assert form.decode() not in out
    # What the client sent inside TLS after AUTH is never shown.
    auth_line = [line for line in out.splitlines() if line.startswith("C: AUTH")]
    assert auth_line and all(line.endswith("(credentials hidden)") for line in auth_line)


# ---- connections -------------------------------------------------------------

def test_connection_is_reused_across_messages(tmp_path, smtp_peer, certs):
    peer = smtp_peer(tls_mode="starttls", auth=(USER, PASSWORD))
    conf = write_conf(tmp_path, peer.port, auth=True, ca=certs.ca)
    res, p = send(conf, "-t", "kunde@example.org", "-n", 6, "-j", 1)
    assert [r["curl_code"] for r in res] == [0] * 6, res
    assert len(peer.wait_for(6)) == 6
    assert peer.connections() == 1
    assert peer.stats()["auth_ok"] == 1  # one AUTH for all six


def test_parallel_workers_reuse_their_connections(tmp_path, smtp_peer):
    peer = smtp_peer()
    conf = write_conf(tmp_path, peer.port, max_conn=3)
    res, p = send(conf, "-t", "kunde@example.org", "-n", 30, "-j", 3)
    assert [r["curl_code"] for r in res] == [0] * 30, res
    assert len(peer.wait_for(30)) == 30
    # A handle is only made when no idle one exists, so three workers never
    # need more than three connections (MaxConnections = 3 keeps all cached).
    assert 1 <= peer.connections() <= 3


def test_pool_runs_at_most_max_connections_per_profile(tmp_path, smtp_peer):
    peer = smtp_peer(data_delay=0.3)
    conf = write_conf(tmp_path, peer.port, max_conn=1)
    # Three workers and three jobs queued at once, but the profile allows one
    # connection: the pool starts the next job only when the last one ended,
    # on the same cached connection (the scheduler queues jobs ahead of free
    # connections and relies on this).
    res, _ = send(conf, "-t", "kunde@example.org", "-n", 3, "-j", 3)
    assert [r["curl_code"] for r in res] == [0] * 3
    assert peer.connections() == 1
    assert peer.stats()["commands"].get("MAIL", 0) == 3


def test_forget_profile_drops_cached_connections(tmp_path, smtp_peer):
    peer = smtp_peer()
    conf = write_conf(tmp_path, peer.port)
    res, _ = send(conf, "-t", "kunde@example.org", "-n", 3, "-j", 1, "--sequential")
    assert [r["curl_code"] for r in res] == [0] * 3
    assert peer.connections() == 1
    res, _ = send(conf, "-t", "kunde@example.org", "-n", 3, "-j", 1, "--sequential",
                  "--forget")
    assert [r["curl_code"] for r in res] == [0] * 3
    assert peer.connections() == 1 + 3


def test_forget_profile_drops_a_handle_in_use_when_its_job_ends(tmp_path, smtp_peer):
    # Job 2 runs on job 1's cached connection; the profile is forgotten while
    # job 2 waits for its reply (0.5 s), so that handle must not be cached
    # again: job 3 opens a new connection.
    peer = smtp_peer(data_delay=0.5)
    conf = write_conf(tmp_path, peer.port)
    res, _ = send(conf, "-t", "kunde@example.org", "-n", 3, "-j", 1, "--sequential",
                  "--forget-inflight-ms", 150)
    assert [r["curl_code"] for r in res] == [0] * 3
    assert peer.connections() == 2
    assert peer.stats()["commands"].get("QUIT", 0) == 1


def test_connection_closed_by_server_is_replaced_without_failing_a_message(tmp_path,
                                                                          smtp_peer):
    # The peer answers 421 and closes at the third MAIL of a connection (a
    # relay's messages-per-connection limit): nothing of that message was
    # accepted, so the transport retries it once on a fresh connection.
    peer = smtp_peer(reply_421_after=2)
    conf = write_conf(tmp_path, peer.port)
    res, _ = send(conf, "-t", "kunde@example.org", "-n", 5, "-j", 1, "--sequential")
    assert [r["curl_code"] for r in res] == [0] * 5, res
    assert len(peer.wait_for(5)) == 5
    assert peer.connections() == 3
    assert peer.stats()["replies_421"] == 2


def test_421_on_a_fresh_connection_is_reported(tmp_path, smtp_peer):
    peer = smtp_peer(reply_421_after=0)
    conf = write_conf(tmp_path, peer.port)
    r = only(send(conf, "-t", "kunde@example.org")[0])
    assert r["reply_code"] == 421 and r["stage"] == "mail", r
    assert peer.connections() == 1  # no retry: the connection was new


# ---- timeouts and abort --------------------------------------------------------

def test_slow_final_reply_is_not_cut_by_low_speed_limit(tmp_path, smtp_peer):
    # curl's own CURLOPT_LOW_SPEED_* check also runs while it waits for the
    # reply to "." and would fire once its 5 s speed window has drained
    # (about 7 s here); the transport must only check the body upload.
    peer = smtp_peer(data_delay=10)
    conf = write_conf(tmp_path, peer.port)
    r = only(send(conf, "-t", "kunde@example.org", "--low-speed", 1)[0])
    assert r["curl_code"] == 0, r
    assert r["reply"].startswith("250 2.0.0 Ok: queued as")


def test_stalled_upload_hits_low_speed_limit(tmp_path, smtp_peer, proxy):
    peer = smtp_peer()
    px = proxy(peer.port, stall_after_data=True)
    conf = write_conf(tmp_path, px.port)
    att = tmp_path / "big.bin"
    att.write_bytes(os.urandom(24 * 1024 * 1024))  # more than the socket buffers hold
    r = only(send(conf, "-s", tmp_path / "spool.db", "-t", "kunde@example.org", "-a", att,
                  "--low-speed", 1, timeout=120)[0])
    assert r["curl_code"] == 28, r  # CURLE_OPERATION_TIMEDOUT
    assert r["stage"] == "data" and not r["data_sent"]
    assert "no message data for 1 s" in r["error"]
    assert peer.messages() == []


def test_response_timeout_after_dot_means_maybe_delivered(tmp_path, smtp_peer):
    peer = smtp_peer(data_delay=6)
    conf = write_conf(tmp_path, peer.port)
    r = only(send(conf, "-t", "kunde@example.org", "--response-timeout", 1)[0])
    assert r["curl_code"] == 28, r  # CURLE_OPERATION_TIMEDOUT
    assert r["stage"] == "data" and r["data_sent"]


def test_lost_reply_to_dot_is_data_sent(tmp_path, smtp_peer):
    peer = smtp_peer(drop_after_data=True)
    conf = write_conf(tmp_path, peer.port)
    r = only(send(conf, "-t", "kunde@example.org")[0])
    assert r["curl_code"] != 0 and r["data_sent"] and r["stage"] == "data", r
    assert len(peer.wait_for(1)) == 1  # it did arrive: a retry would duplicate


def test_abort_ends_running_and_queued_jobs(tmp_path, smtp_peer):
    peer = smtp_peer(data_delay=60)
    conf = write_conf(tmp_path, peer.port)
    # Without a working abort the first job alone would wait 60 s for its
    # reply; the run's timeout is far below that.
    res, p = send(conf, "-t", "kunde@example.org", "-n", 3, "-j", 1,
                  "--abort-after-ms", 800, timeout=40)
    assert len(res) == 3, p.stderr
    assert all(r["aborted"] for r in res), res
    first = [r for r in res if r["index"] == 0][0]
    assert first["data_sent"] and first["curl_code"] == 42  # CURLE_ABORTED_BY_CALLBACK
    assert all(not r["data_sent"] for r in res if r["index"] != 0)


# ---- the message ---------------------------------------------------------------

def test_attachments_stream_from_the_spool(tmp_path, smtp_peer):
    peer = smtp_peer()
    conf = write_conf(tmp_path, peer.port)
    data = os.urandom(3 * 1024 * 1024 + 17)
    att = tmp_path / "Prüfbericht.bin"
    att.write_bytes(data)
    r = only(send(conf, "-s", tmp_path / "spool.db", "-t", "kunde@example.org",
                  "-a", att, "-S", "Anhang ✈")[0])
    assert r["curl_code"] == 0, r
    got = peer.wait_for(1)[0]
    assert r["bytes"] == got["size"]
    parts = list(got["message"].iter_attachments())
    assert [p.get_filename() for p in parts] == ["Prüfbericht.bin"]
    assert hashlib.sha256(parts[0].get_content()).hexdigest() == hashlib.sha256(data).hexdigest()
