"""Fault matrix, SMTP peer (issue 6 "Faults"; docs/RELIABILITY.md): the real
mailspoold against tests/fakes/smtp_peer.py misbehaving on purpose.

Every test follows one pattern: inject the fault, check that the daemon keeps
running and that its log says why (in the words an administrator needs), check
that nothing failed or was lost, remove the fault (restart the peer without it
or reload a fixed configuration) and check that every message then arrives -
exactly once, or more than once only where the log announced a possible
duplicate.
"""
import json

import pytest

from faulthelpers import (alive, announced_duplicates, check_arrivals, daemons,  # noqa: F401
                          reload, start_daemon)
from mshelpers import smtp_profile, wait_for

QUEUE = {"retry_min": "1s", "retry_max": "2s", "lifetime": "1h"}


def enqueue_n(d, n, tag):
    return [d.enqueue("r%d@example.org" % i, subject="%s %d" % (tag, i)) for i in range(n)]


def subjects(peer):
    return [m["message"]["subject"] for m in peer.messages()]


def assert_untouched(d, ids, attempts=0):
    """Queued (or being retried), never failed; profile faults burn no attempt."""
    for i in ids:
        row = d.message(i)
        assert row["state"] in ("queued", "sending"), row
        assert row["attempts"] == attempts, row
    assert not d.lines_of("failed") and not d.lines_of("expired")


def test_refused_connection(smtp_peer, workdir, daemons):
    peer = smtp_peer()
    port = peer.port
    peer.stop()  # nothing listens on the port now
    d = start_daemon(daemons, workdir, smtp_profile("relay", port), queue=QUEUE)
    ids = enqueue_n(d, 3, "refused")
    [line] = wait_for(lambda: d.lines_of("profile-suspended")[:1], what="suspension")
    assert "profile=relay" in line and "cannot connect to 127.0.0.1" in line
    assert alive(d)
    assert_untouched(d, ids)
    peer.start(port=port)
    d.wait_states("sent", ids, timeout=30)
    n, dups = check_arrivals(d, subjects(peer), "refused")
    assert (n, dups) == (3, 0)


def test_close_before_greeting(smtp_peer, workdir, daemons):
    peer = smtp_peer(close_before_greeting=True)
    d = start_daemon(daemons, workdir, smtp_profile("relay", peer.port, extra="MaxConnections = 1"),
                     queue=QUEUE)
    ids = enqueue_n(d, 3, "greeting")
    wait_for(lambda: peer.stats().get("closed_before_greeting", 0) >= 2, what="two closes")
    deferred = wait_for(lambda: d.lines_of("deferred"), what="a deferral")
    assert "at connect with 127.0.0.1" in deferred[0], deferred[0]
    assert alive(d)
    assert all(d.message(i)["state"] != "failed" for i in ids)
    peer.restart(close_before_greeting=None)
    d.wait_states("sent", ids, timeout=30)
    n, dups = check_arrivals(d, subjects(peer), "close before greeting")
    assert (n, dups) == (3, 0)
    assert not d.lines_of("failed")


def test_421_mid_session(smtp_peer, workdir, daemons):
    # First every MAIL gets 421 and the peer hangs up: deferred, nothing failed.
    peer = smtp_peer(reply_421_after=0)
    d = start_daemon(daemons, workdir, smtp_profile("relay", peer.port, extra="MaxConnections = 1"),
                     queue=QUEUE)
    ids = enqueue_n(d, 4, "421")
    deferred = wait_for(lambda: [l for l in d.lines_of("deferred") if "421" in l],
                        what="a 421 deferral")
    assert 'reason="421 4.7.0' in deferred[0], deferred[0]
    assert alive(d)
    assert not peer.messages()
    # Then a peer that takes one message per connection and answers the next
    # MAIL with 421: the daemon goes on over new connections.
    peer.restart(reply_421_after=1)
    d.wait_states("sent", ids, timeout=60)
    assert alive(d)
    assert peer.stats()["replies_421"] >= 2
    n, dups = check_arrivals(d, subjects(peer), "421")
    assert (n, dups) == (4, 0)  # 421 came before DATA: no copy can exist
    assert not d.lines_of("possible-duplicate") and not d.lines_of("failed")


def test_drop_after_final_dot_is_retried_as_possible_duplicate(smtp_peer, workdir, daemons):
    peer = smtp_peer(drop_after_data=True)
    d = start_daemon(daemons, workdir, smtp_profile("relay", peer.port), queue=QUEUE)
    [mid] = enqueue_n(d, 1, "dropped")
    [dup] = wait_for(lambda: d.lines_of("possible-duplicate")[:1], what="possible-duplicate")
    assert "id=%d " % mid in dup and "may have been delivered" in dup
    assert peer.stats()["dropped_after_data"] >= 1
    assert alive(d)
    assert d.message(mid)["state"] in ("queued", "sending")
    peer.restart(drop_after_data=False)
    d.wait_states("sent", [mid], timeout=30)
    n, dups = check_arrivals(d, subjects(peer), "drop after data")
    assert n == 1 and dups >= 1  # the peer stored the dropped copy too
    assert mid in announced_duplicates(d)
    log = [a["result"] for a in d.attempts(mid)]
    assert log[-1] == "sent" and "deferred" in log


def test_final_dot_reply_after_response_timeout(smtp_peer, workdir, daemons):
    peer = smtp_peer(data_delay=5)
    d = start_daemon(daemons, workdir, smtp_profile("relay", peer.port), queue=QUEUE,
                     daemon={"response_timeout": "2s"})
    [mid] = enqueue_n(d, 1, "slow")
    [dup] = wait_for(lambda: d.lines_of("possible-duplicate")[:1], what="possible-duplicate")
    assert "id=%d " % mid in dup and "timeout at DATA" in dup, dup
    assert "may have been delivered" in dup
    assert alive(d)
    peer.restart(data_delay=0)
    d.wait_states("sent", [mid], timeout=30)
    n, dups = check_arrivals(d, subjects(peer), "response timeout")
    assert n == 1
    assert not d.lines_of("failed")


@pytest.mark.parametrize("fault", ["implicit-tls-to-plaintext-peer", "expired-certificate"])
def test_tls_handshake_failure(smtp_peer, certs, workdir, daemons, fault):
    if fault == "expired-certificate":
        peer = smtp_peer(tls_mode="implicit", cert=certs.expired_cert, key=certs.expired_key)
    else:
        peer = smtp_peer(tls_mode="none")
    d = start_daemon(daemons, workdir, smtp_profile(
        "relay", peer.port, tls="implicit", extra="CAFile = %s" % certs.ca), queue=QUEUE)
    ids = enqueue_n(d, 2, fault)
    [line] = wait_for(lambda: d.lines_of("profile-suspended")[:1], what="suspension")
    assert "TLS with 127.0.0.1 failed for profile relay" in line, line
    assert "CAFile" in line
    if fault == "expired-certificate":
        assert "expired" in line, line
    assert alive(d)
    assert_untouched(d, ids)
    assert not peer.messages()
    # The administrator fixes the server; the suspension ends by itself.
    peer.restart(tls_mode="implicit", cert=certs.server_cert, key=certs.server_key)
    d.wait_states("sent", ids, timeout=30)
    n, dups = check_arrivals(d, subjects(peer), fault)
    assert (n, dups) == (2, 0)
    assert all(m["tls"] for m in peer.messages())
    assert d.lines_of("profile-resumed")


def test_certificate_for_wrong_name_is_a_profile_fault(smtp_peer, certs, workdir, daemons):
    peer = smtp_peer(tls_mode="starttls", cert=certs.wrong_cert, key=certs.wrong_key)
    d = start_daemon(daemons, workdir, smtp_profile(
        "relay", peer.port, tls="starttls", extra="CAFile = %s" % certs.ca),
        queue={"retry_min": "1h", "retry_max": "2h"})
    ids = enqueue_n(d, 3, "wrong name")
    [line] = wait_for(lambda: d.lines_of("profile-suspended")[:1], what="suspension")
    assert "TLS with 127.0.0.1 failed for profile relay" in line, line
    assert "certificate" in line.lower()
    wait_for(lambda: all(d.message(i)["state"] == "queued" for i in ids), what="all queued")
    assert_untouched(d, ids)  # a profile fault: 0 attempts, nothing failed
    assert all("TLS" in d.message(i)["last_error"] for i in ids if d.message(i)["last_error"])
    assert alive(d)
    assert not peer.messages()
    # `mailspool status` tells the administrator the same.
    def relay_status():
        doc = json.loads(d.cli("status", "--json", check=0).stdout)
        [p] = [p for p in doc["profiles"] if p["name"] == "relay"]
        return p if p["suspended"] else None
    st = wait_for(relay_status, what="status showing the suspension")
    assert "TLS with 127.0.0.1 failed" in st["last_error"], st
    peer.restart(cert=certs.server_cert, key=certs.server_key)
    reload(d)  # a reload resumes the profile at once (the suspension would last 1 h)
    d.wait_states("sent", ids, timeout=30)
    n, dups = check_arrivals(d, subjects(peer), "wrong name")
    assert (n, dups) == (3, 0)


def test_unresolvable_host_is_a_profile_fault(smtp_peer, workdir, daemons):
    peer = smtp_peer()
    good = smtp_profile("relay", peer.port)
    bad = good.replace("SMTPHost = 127.0.0.1", "SMTPHost = does-not-exist.invalid")
    queue = {"retry_min": "1h", "retry_max": "2h"}
    d = start_daemon(daemons, workdir, bad, queue=queue)
    ids = enqueue_n(d, 3, "dns")
    [line] = wait_for(lambda: d.lines_of("profile-suspended")[:1], what="suspension")
    assert "cannot resolve SMTPHost does-not-exist.invalid of profile relay" in line, line
    wait_for(lambda: all(d.message(i)["state"] == "queued" for i in ids), what="all queued")
    assert_untouched(d, ids)
    assert alive(d)
    d.write_config(good, queue=queue)
    reload(d)
    d.wait_states("sent", ids, timeout=30)
    n, dups = check_arrivals(d, subjects(peer), "dns")
    assert (n, dups) == (3, 0)
