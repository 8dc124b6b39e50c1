"""Fault matrix, Microsoft 365 (issue 6 "Faults"; docs/RELIABILITY.md): the
real mailspoold against the Entra ID / Graph fake (tests/fakes/graph_fake.py)
with faults queued through its control API.

Each test ends with every message delivered, none failed, the daemon still
running, and the log naming the fault. The expired upload URL row is
test_graph_delivery.py::test_expired_upload_url_restarts_session.
"""
import collections
import signal

import pytest

from faulthelpers import (alive, daemons, graph_profile, start_daemon,  # noqa: F401
                          write_random)
from mshelpers import wait_for

QUEUE = {"retry_min": "1s", "retry_max": "2s", "lifetime": "1h"}
DAEMON = {"max_connections": "8"}


def enqueue_n(d, n, tag, extra=()):
    return [d.enqueue("kunde%d@example.org" % i, subject="%s %d" % (tag, i), area="ppr",
                      extra=list(extra)) for i in range(n)]


def delivered_subjects(fake):
    return collections.Counter(m["message"]["subject"] for m in fake.messages())


def assert_all_once(d, fake, ids):
    """Every message sent and at the fake exactly once; nothing failed."""
    d.wait_states("sent", ids, timeout=60)
    want = {d.message(i)["subject"] for i in ids}
    got = delivered_subjects(fake)
    assert set(got) == want, (sorted(want - set(got)), sorted(set(got) - want))
    assert all(n == 1 for n in got.values()), got
    assert not d.lines_of("failed") and not d.lines_of("expired")
    assert alive(d)


def test_token_endpoint_failing(graph_fake, certs, tmp_path, daemons):
    # Entra answers 503 temporarily_unavailable (AADSTS90024) twice.
    graph_fake.fault(endpoint="token", status=503, count=2)
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs, extra="RateLimit = 0"),
                     queue=QUEUE, daemon=DAEMON)
    ids = enqueue_n(d, 4, "token 503")
    assert_all_once(d, graph_fake, ids)
    deferred = [l for l in d.lines_of("deferred") if "Entra ID" in l]
    assert deferred and "AADSTS90024" in deferred[0], d.lines_of("deferred")
    assert not d.lines_of("profile-suspended")  # a busy Entra is no profile fault
    toks = [r["status"] for r in graph_fake.requests() if r["endpoint"] == "token"]
    assert toks == [503, 503, 200]  # one token request per round, then the token is shared


def test_token_endpoint_down(graph_fake, certs, tmp_path, daemons):
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs, extra="RateLimit = 0"),
                     queue=QUEUE, daemon=DAEMON)
    graph_fake.stop()  # nothing listens: neither token endpoint nor Graph
    ids = enqueue_n(d, 3, "token down")
    deferred = wait_for(lambda: d.lines_of("deferred"), what="a deferral")
    assert "token request failed" in deferred[0] and "connect" in deferred[0].lower(), deferred[0]
    assert alive(d)
    assert all(d.message(i)["state"] in ("queued", "sending") for i in ids)
    graph_fake.restart()
    assert_all_once(d, graph_fake, ids)


def test_5xx_bursts(graph_fake, certs, tmp_path, daemons):
    for status in (500, 502, 503, 504):
        graph_fake.fault(endpoint="sendMail", status=status, count=1)
    d = start_daemon(daemons, tmp_path, graph_profile(
        graph_fake, certs, extra="RateLimit = 0\nMaxConnections = 4"), queue=QUEUE, daemon=DAEMON)
    ids = enqueue_n(d, 6, "burst")
    assert_all_once(d, graph_fake, ids)
    reasons = " ".join(d.lines_of("deferred"))
    for status in (500, 502, 503, 504):
        assert "HTTP %d" % status in reasons, reasons
    assert "request-id" in reasons
    got = [r["status"] for r in graph_fake.requests() if r["endpoint"] == "graph:sendMail"]
    assert sorted(s for s in got if s >= 500) == [500, 502, 503, 504]
    assert not d.lines_of("profile-suspended")


def test_429_storm_with_retry_after(graph_fake, certs, tmp_path, daemons):
    graph_fake.throttle(count=8, retry_after=1, endpoint="sendMail")
    d = start_daemon(daemons, tmp_path, graph_profile(
        graph_fake, certs, extra="RateLimit = 0\nMaxConnections = 4"), queue=QUEUE, daemon=DAEMON)
    ids = enqueue_n(d, 5, "storm")
    assert_all_once(d, graph_fake, ids)
    statuses = [r["status"] for r in graph_fake.requests() if r["endpoint"] == "graph:sendMail"]
    assert statuses.count(429) == 8
    for i in ids:
        log = d.show_json(i)["attempt_log"]
        for prev, nxt in zip(log, log[1:]):
            if "429" in (prev["reply"] or ""):
                assert "Retry-After 1" in prev["reply"]
                # Retry-After honoured: the next try started at least 1 s later.
                assert nxt["at_ms"] - nxt["duration_ms"] - prev["at_ms"] >= 1000, log


def test_retry_after_holds_the_whole_profile(graph_fake, certs, tmp_path, daemons):
    # Graph throttles per application and mailbox, and requests sent while
    # throttled extend it: one message's Retry-After holds the others too.
    graph_fake.throttle(count=1, retry_after=3, endpoint="sendMail")
    d = start_daemon(daemons, tmp_path, graph_profile(
        graph_fake, certs, extra="RateLimit = 0\nMaxConnections = 1"), queue=QUEUE, daemon=DAEMON)
    ids = enqueue_n(d, 3, "gedrosselt")
    assert_all_once(d, graph_fake, ids)
    sends = sorted((r["t"], r["status"]) for r in graph_fake.requests()
                   if r["endpoint"] == "graph:sendMail")
    assert [st for _, st in sends].count(429) == 1 and sends[0][1] == 429, sends
    assert sends[1][0] - sends[0][0] >= 2.9, sends


def test_wild_retry_after_is_capped_and_a_reload_ends_the_hold(graph_fake, certs, tmp_path,
                                                               daemons):
    # A day of Retry-After counts as an hour (it holds the whole profile);
    # the administrator's reload (and retry) sends at once.
    graph_fake.throttle(count=1, retry_after=86400, endpoint="sendMail")
    d = start_daemon(daemons, tmp_path, graph_profile(
        graph_fake, certs, extra="RateLimit = 0\nMaxConnections = 1"), queue=QUEUE, daemon=DAEMON)
    [mid] = enqueue_n(d, 1, "wild")
    wait_for(lambda: d.lines_of("deferred"), what="the 429")
    [deferred] = d.lines_of("deferred")
    assert "Retry-After 3600" in deferred, deferred
    d.wait_states("queued", [mid])
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.lines_of("reload"), what="the reload")
    assert d.cli("retry", str(mid)).returncode == 0
    d.wait_states("sent", [mid], timeout=20)


@pytest.mark.parametrize("resets", [1, 2])
def test_connection_reset_mid_upload(graph_fake, certs, tmp_path, daemons, resets):
    graph_fake.update_app(permissions=["Mail.Send", "Mail.ReadWrite"])
    graph_fake.fault(endpoint="upload", action="reset_mid_body", count=resets)
    d = start_daemon(daemons, tmp_path, graph_profile(graph_fake, certs, extra="RateLimit = 0"),
                     queue=QUEUE, daemon=DAEMON)
    data = write_random(str(tmp_path / "big.bin"), 4 * 1024 * 1024, resets)
    ids = enqueue_n(d, 1, "reset", extra=["--attach", "%s;name=gross.bin" % (tmp_path / "big.bin")])
    assert_all_once(d, graph_fake, ids)
    [rec] = graph_fake.messages()
    assert rec["kind"] == "draft"
    assert rec["attachments"][0]["data"] == data
    assert [r["status"] for r in graph_fake.requests()
            if r["endpoint"] == "upload"].count("reset") == resets
    # A reset on a reused connection is absorbed inside the attempt (libcurl
    # sends the chunk again on a new connection); a reset on a fresh one
    # defers the message, and the next attempt deletes the half-filled draft
    # and starts over.
    deferred = d.lines_of("deferred")
    assert resets - 1 <= len(deferred) <= resets, deferred
    assert all("Graph request failed: Fail" in l and "the peer" in l for l in deferred), deferred
    wait_for(lambda: graph_fake.drafts() == [], what="no draft left behind")
