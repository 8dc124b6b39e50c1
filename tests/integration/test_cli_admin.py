"""mailspool list, show, retry, cancel, purge and status on a real spool, in
text and --json form, with the exit codes of SPEC §2. Daemon-side state
(attempts, failed/sent messages, heartbeat, profiles) is written with the
sqlite3 module the way mailspoold's spool calls write it.
"""
import json
import os
import sqlite3
import time

import pytest

from conftest import run


class Cli:
    def __init__(self, bins, workdir):
        self.ms = bins["mailspool"]
        self.dir = str(workdir)
        self.spool = os.path.join(self.dir, "spool.db")
        self.conf = os.path.join(self.dir, "absent.conf")
        self.body = os.path.join(self.dir, "body.txt")
        with open(self.body, "w") as f:
            f.write("Text\n")

    def __call__(self, *args, input=None):
        return run([self.ms, "-c", self.conf, "-s", self.spool] + list(args), input=input)

    def ok(self, *args):
        p = self(*args)
        assert p.returncode == 0, (args, p.stderr)
        return p.stdout

    def json(self, *args):
        return json.loads(self.ok(*(list(args) + ["--json"])))

    def enqueue(self, area="invoice", subject="Rechnung", to="kunde@example.org", *extra):
        out = self.ok("enqueue", "--area", area, "--to", to, "--subject", subject, "--text",
                      self.body, *extra)
        return int(out)

    def sql(self, statement, args=()):
        con = sqlite3.connect(self.spool)
        try:
            with con:
                return con.execute(statement, args).fetchall()
        finally:
            con.close()


@pytest.fixture
def cli(bins, workdir):
    return Cli(bins, workdir)


def test_list(cli):
    a = cli.enqueue("invoice", "Rechnung 1")
    b = cli.enqueue("report", "Auswertung", "Leitung <leitung@airport.example>")
    c = cli.enqueue("invoice", "Rechnung 2")
    lines = cli.ok("list").splitlines()
    assert [int(l.split()[0]) for l in lines] == [a, b, c]
    assert "queued" in lines[1] and "report" in lines[1] and "Auswertung" in lines[1]
    assert "leitung@airport.example" in lines[1]
    assert [int(l.split()[0]) for l in cli.ok("list", "--area", "invoice").splitlines()] == [a, c]
    assert [int(l.split()[0]) for l in cli.ok("list", "--limit", "2").splitlines()] == [b, c]
    rows = cli.json("list", "--area", "invoice")
    assert [r["id"] for r in rows] == [a, c]
    assert rows[0]["subject"] == "Rechnung 1" and rows[0]["state"] == "queued"
    assert rows[0]["first_recipient"] == "kunde@example.org"
    cli.ok("cancel", str(a))
    assert [r["id"] for r in cli.json("list", "--state", "cancelled")] == [a]
    assert cli.json("list", "--state", "failed") == []


def test_list_usage_and_missing_spool(cli):
    assert cli("list", "--state", "lost").returncode == 64
    assert cli("list", "--limit", "-3").returncode == 64
    assert cli("list", "extra").returncode == 64
    p = cli("list")
    assert p.returncode == 66 and cli.spool in p.stderr
    assert not os.path.exists(cli.spool)  # reading never creates


def add_attempt(cli, mid, at_ms, transport, result, reply, profile="billing"):
    cli.sql("INSERT INTO attempts (message_id, at_ms, profile, transport, result, reply,"
            " duration_ms) VALUES (?, ?, ?, ?, ?, ?, 152)",
            (mid, at_ms, profile, transport, result, reply))


def test_show(cli):
    mid = cli.enqueue("invoice", "Rechnung 42", "Bärbel Groß <b@example.org>",
                      "--ref", "inv-42", "--header", "X-Airport-Ref: INV-42", "--cc",
                      "c@example.org", "--priority", "3")
    add_attempt(cli, mid, 1796446800123, "smtp", "deferred", "451 4.7.1 try later")
    add_attempt(cli, mid, 1796446920456, "smtp", "sent", "250 2.0.0 Ok: queued as 4F2A1")
    cli.sql("UPDATE messages SET state = 'sent', attempts = 2 WHERE id = ?", (mid,))
    cli.sql("UPDATE recipients SET state = 'sent' WHERE address = 'b@example.org'")
    cli.sql("UPDATE recipients SET state = 'failed' WHERE address = 'c@example.org'")
    out = cli.ok("show", str(mid))
    for needle in ("Rechnung 42", "inv-42", "invoice", "Bärbel Groß <b@example.org>  [sent]",
                   "c@example.org  [refused]", "X-Airport-Ref: INV-42", "sent", "451 4.7.1 try later",
                   "250 2.0.0 Ok: queued as 4F2A1", "profile=billing", ".123", ".456"):
        assert needle in out, needle
    assert sum(1 for l in out.splitlines() if l.startswith("attempt:")) == 2
    j = cli.json("show", "--ref", "inv-42")
    assert j["id"] == mid and j["state"] == "sent" and j["priority"] == 3
    assert j["recipients"] == [{"kind": "to", "address": "b@example.org", "name": "Bärbel Groß",
                                "state": "sent"},
                               {"kind": "cc", "address": "c@example.org", "state": "failed"}]
    assert j["headers"] == [{"name": "X-Airport-Ref", "value": "INV-42"}]
    assert j["text"] == "Text\n" and j["html"] is None
    assert [(a["at_ms"], a["transport"], a["result"], a["reply"]) for a in j["attempt_log"]] == [
        (1796446800123, "smtp", "deferred", "451 4.7.1 try later"),
        (1796446920456, "smtp", "sent", "250 2.0.0 Ok: queued as 4F2A1")]


def test_show_errors(cli):
    cli.enqueue("invoice", "a", "a@example.org", "--ref", "same")
    cli.enqueue("report", "b", "a@example.org", "--ref", "same")
    assert cli("show", "99").returncode == 66
    assert cli("show", "abc").returncode == 64
    assert cli("show").returncode == 64
    assert cli("show", "--ref", "nope").returncode == 66
    p = cli("show", "--ref", "same")
    assert p.returncode == 64 and "--area" in p.stderr
    assert cli.json("show", "--ref", "same", "--area", "report")["area"] == "report"


def test_cancel(cli):
    mid = cli.enqueue()
    assert "cancelled" in cli.ok("cancel", str(mid))
    assert cli.sql("SELECT state FROM messages WHERE id = ?", (mid,)) == [("cancelled",)]
    cli.ok("cancel", str(mid))  # idempotent
    sending = cli.enqueue()
    cli.sql("UPDATE messages SET state = 'sending' WHERE id = ?", (sending,))
    p = cli("cancel", str(sending))
    assert p.returncode == 75 and str(sending) in p.stderr
    sent = cli.enqueue()
    cli.sql("UPDATE messages SET state = 'sent' WHERE id = ?", (sent,))
    p = cli("cancel", str(sent))
    assert p.returncode == 65 and "sent" in p.stderr
    assert cli("cancel", "999").returncode == 66
    assert cli("cancel").returncode == 64
    assert cli.sql("SELECT state FROM messages ORDER BY id") == [("cancelled",), ("sending",),
                                                                 ("sent",)]


def test_retry(cli):
    later = cli.enqueue("invoice", "a", "a@example.org", "--not-before",
                        "2099-01-01T00:00:00Z")
    cli.sql("UPDATE messages SET next_attempt = 4102444800, attempts = 2 WHERE id = ?", (later,))
    assert "due now" in cli.ok("retry", str(later))
    assert cli.sql("SELECT state, next_attempt, not_before, attempts FROM messages WHERE id = ?",
                   (later,)) == [("queued", 0, 0, 2)]
    failed = [cli.enqueue(area) for area in ("invoice", "invoice", "report")]
    cli.sql("UPDATE messages SET state = 'failed', attempts = 5, last_error = '550 no'"
            " WHERE id IN (?, ?, ?)", failed)
    assert cli.ok("retry", str(failed[0])).strip() == "message %d is due now" % failed[0]
    assert cli.sql("SELECT state, attempts FROM messages WHERE id = ?", (failed[0],)) == [
        ("queued", 0)]
    assert "requeued 1 failed message" in cli.ok("retry", "--failed", "--area", "report")
    assert cli.sql("SELECT state FROM messages WHERE id = ?", (failed[2],)) == [("queued",)]
    assert cli.sql("SELECT state FROM messages WHERE id = ?", (failed[1],)) == [("failed",)]
    assert "requeued 1 failed message" in cli.ok("retry", "--failed")
    assert cli.sql("SELECT count(*) FROM messages WHERE state = 'failed'") == [(0,)]
    cli.sql("UPDATE messages SET state = 'sent' WHERE id = ?", (later,))
    cli.sql("UPDATE recipients SET state = 'sent' WHERE message_id = ?", (later,))
    p = cli("retry", str(later))
    assert p.returncode == 65 and "sent to every recipient" in p.stderr, p.stderr
    # A sent message that a server refused for some recipient goes to that
    # one again, and only to that one.
    partial = cli.enqueue("invoice", "b", "ok@example.org", "--cc", "no@example.org")
    cli.sql("UPDATE messages SET state = 'sent', attempts = 1 WHERE id = ?", (partial,))
    cli.sql("UPDATE recipients SET state = CASE address WHEN 'ok@example.org' THEN 'sent'"
            " ELSE 'failed' END WHERE message_id = ?", (partial,))
    assert cli.ok("retry", str(partial)).strip() == "message %d is due now" % partial
    assert cli.sql("SELECT state, attempts FROM messages WHERE id = ?", (partial,)) == [
        ("queued", 0)]
    assert cli.sql("SELECT address, state FROM recipients WHERE message_id = ? ORDER BY id",
                   (partial,)) == [("ok@example.org", "sent"), ("no@example.org", None)]
    assert cli("retry", "999").returncode == 66
    assert cli("retry", "1", "--failed").returncode == 64
    assert cli("retry", "1", "--area", "x").returncode == 64


def test_purge(cli):
    ids = [cli.enqueue() for _ in range(6)]
    old = int(time.time()) - 40 * 86400
    states = ["sent", "failed", "cancelled", "queued", "sent", "sending"]
    for mid, st in zip(ids, states):
        cli.sql("UPDATE messages SET state = ?, updated = ? WHERE id = ?",
                (st, old if mid != ids[4] else int(time.time()), mid))
    assert cli.ok("purge").strip() == "purged 3 messages"
    left = cli.sql("SELECT id FROM messages ORDER BY id")
    assert left == [(ids[3],), (ids[4],), (ids[5],)]
    # Cascade: recipients of purged messages are gone.
    assert cli.sql("SELECT count(*) FROM recipients") == [(3,)]
    assert cli.ok("purge", "--older-than", "1d").strip() == "purged 0 messages"
    assert cli.ok("purge", "--older-than", "0").strip() == "purged 1 message"
    assert cli.sql("SELECT id FROM messages ORDER BY id") == [(ids[3],), (ids[5],)]
    assert cli("purge", "--older-than", "soon").returncode == 64


def test_status(cli):
    now = int(time.time())
    cli.enqueue("invoice")
    cli.enqueue("invoice")
    f = cli.enqueue("report")
    cli.sql("UPDATE messages SET state = 'failed' WHERE id = ?", (f,))
    cli.sql("UPDATE messages SET created = ? WHERE id = 1", (now - 3700,))
    cli.sql("INSERT INTO daemon (id, pid, started, heartbeat) VALUES (1, ?, ?, ?)",
            (os.getpid(), now - 7200, now - 2))
    cli.sql("INSERT INTO profiles (name, transport, last_success, last_error_at, last_error,"
            " suspended_until, token_expires, secret_expires) VALUES"
            " ('billing', 'smtp', ?, ?, '535 5.7.8 authentication failed', ?, 0, 0),"
            " ('ppr', 'graph', ?, 0, NULL, 0, ?, ?)",
            (now - 60, now - 30, now + 600, now - 10, now + 3000, (now // 86400 + 10) * 86400))
    j = cli.json("status")
    assert j["spool"] == cli.spool
    assert j["counts"]["queued"] == 2 and j["counts"]["failed"] == 1
    assert j["areas"]["invoice"]["queued"] == 2 and j["areas"]["report"]["failed"] == 1
    assert j["areas"]["report"]["oldest_queued_age"] is None
    assert 3700 <= j["oldest_queued_age"] < 3800
    assert j["daemon"]["running"] is True and j["daemon"]["pid"] == os.getpid()
    assert 7200 <= j["daemon"]["uptime"] < 7300
    prof = {p["name"]: p for p in j["profiles"]}
    assert prof["billing"]["suspended"] is True
    assert prof["billing"]["last_error"] == "535 5.7.8 authentication failed"
    assert prof["ppr"]["suspended"] is False and prof["ppr"]["transport"] == "graph"
    assert prof["ppr"]["secret_days_left"] == 10
    assert prof["ppr"]["secret_expires_date"] == time.strftime(
        "%Y-%m-%d", time.gmtime((now // 86400 + 10) * 86400))
    text = cli.ok("status")
    for needle in ("running", "invoice", "report", "billing", "535 5.7.8", "suspended until",
                   "10 days left", "renew", prof["ppr"]["secret_expires_date"]):
        assert needle in text, needle
    # A stale heartbeat, or a pid that is gone, is not a running daemon.
    cli.sql("UPDATE daemon SET heartbeat = ?", (now - 3600,))
    assert cli.json("status")["daemon"]["running"] is False
    assert "NOT running" in cli.ok("status")
    cli.sql("UPDATE daemon SET heartbeat = ?, pid = ?", (now, 2 ** 22 + 12345))
    assert cli.json("status")["daemon"]["running"] is False


def test_status_empty_spool(cli):
    cli.ok("purge")  # creates the spool
    j = cli.json("status")
    assert j["counts"]["queued"] == 0 and j["oldest_queued_age"] is None
    assert j["daemon"] == {"running": False}
    assert j["profiles"] == [] and j["areas"] == {}
    assert "not running" in cli.ok("status")


def test_top_level_usage(cli):
    assert run([cli.ms]).returncode == 64
    assert run([cli.ms, "frobnicate"]).returncode == 64
    assert run([cli.ms, "-x", "list"]).returncode == 64
    p = run([cli.ms, "--version"])
    assert p.returncode == 0 and p.stdout.startswith("mailspool ")
    p = run([cli.ms, "--help"])
    assert p.returncode == 0 and "enqueue" in p.stdout and "status" in p.stdout
    for cmd in ("enqueue", "list", "show", "render", "retry", "cancel", "purge", "status",
                "test"):
        p = run([cli.ms, cmd, "--help"])
        assert p.returncode == 0 and "usage: mailspool " + cmd in p.stdout, cmd


def test_enqueue_missing_required_flags_is_usage(cli):
    for args in (["--to", "a@example.org", "--subject", "s", "--text", cli.body],
                 ["--area", "x", "--subject", "s", "--text", cli.body],
                 ["--area", "x", "--to", "a@example.org", "--text", cli.body],
                 ["--area", "x", "--to", "a@example.org", "--subject", "s"]):
        p = cli("enqueue", *args)
        assert p.returncode == 64, (args, p.stderr)
    assert not os.path.exists(cli.spool)
