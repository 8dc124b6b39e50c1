"""Fault matrix, the process (issue 6 "Faults"; docs/RELIABILITY.md): kill -9
at random moments over SMTP and Microsoft 365 (large uploads included), and a
daemon started while producers are writing.

The other process rows live in test_daemon_lifecycle.py: SIGTERM mid-transfer
(test_sigterm_mid_transfer_leaves_message_queued; Graph:
test_graph_delivery.py::test_sigterm_mid_transfer_keeps_message_queued), two
daemons started at once (test_two_daemons_started_at_once_one_wins) and ten
more kill -9 rounds over SMTP (test_kill9_ten_times_loses_nothing).

Kill moments come from a seeded random generator, so a failure can be rerun
as it was. A kill lands anywhere: during start-up, between transfers, with
transfers in flight (SMTP DATA, Graph sendMail, draft creation, upload
chunks, send).
"""
import os
import random
import subprocess
import threading
import time

from conftest import BUILD, MAILSPOOL
from faulthelpers import (alive, announced_duplicates, check_arrivals, daemons,  # noqa: F401
                          enqueue_many, graph_profile, make_daemon, write_random)
from mshelpers import smtp_profile, wait_for

ROUNDS = 10  # per transport here; 10 more in test_daemon_lifecycle.py


def kill_rounds(d, rounds, seed):
    """Starts and kill -9s the daemon `rounds` times at seeded random moments:
    even rounds count from the exec (kills during start-up too), odd rounds
    from the `ready` line (kills with transfers in flight)."""
    rnd = random.Random(seed)
    for r in range(rounds):
        ready_before = d.events().count("ready")
        d.start(wait_ready=False)
        if r % 2:
            wait_for(lambda: d.events().count("ready") > ready_before or d.proc.poll() is not None,
                     timeout=30, what="ready")
            assert d.proc.poll() is None, d.stderr_text()[-3000:]
        time.sleep(rnd.uniform(0.02, 0.5))
        assert d.proc.poll() is None, "daemon died before the kill: %s" % d.stderr_text()[-3000:]
        d.kill9()


def test_kill9_rounds_smtp(smtp_peer, workdir, daemons):
    peer = smtp_peer(data_delay=0.02)
    d = make_daemon(daemons, workdir, smtp_profile("relay", peer.port, extra="MaxConnections = 4"),
                    daemon={"log_level": "info", "max_connections": "4"},
                    queue={"retry_min": "1s", "retry_max": "2s"})
    enqueue_many(d, 200, "invoice", "smtp-kill")
    kill_rounds(d, ROUNDS, seed=6001)
    d.start()
    d.wait_states("sent", timeout=120)
    n, dups = check_arrivals(d, [m["message"]["subject"] for m in peer.messages()], "smtp kill -9")
    print("kill -9 x%d over SMTP: %d messages, %d duplicates (all announced), %d announced"
          % (ROUNDS, n, dups, len(announced_duplicates(d))))
    assert n == 200


def test_kill9_rounds_graph_with_large_uploads(graph_fake, certs, tmp_path, daemons):
    graph_fake.update_app(permissions=["Mail.Send", "Mail.ReadWrite"])
    graph_fake.settings(graph_delay=0.03)
    d = make_daemon(daemons, tmp_path, graph_profile(
        graph_fake, certs, extra="RateLimit = 0\nMaxConnections = 8"),
        daemon={"log_level": "info", "max_connections": "8"},
        queue={"retry_min": "1s", "retry_max": "2s"})
    enqueue_many(d, 60, "ppr", "graph-kill")
    big = {}
    for i in range(4):
        path = str(tmp_path / ("big%d.bin" % i))
        big["graph-kill large %d" % i] = write_random(path, 4 * 1024 * 1024 + 4096 * i, 60 + i)
        d.enqueue("kunde@example.org", subject="graph-kill large %d" % i, area="ppr",
                  extra=["--attach", "%s;name=gross%d.bin" % (path, i)])
    kill_rounds(d, ROUNDS, seed=6002)
    d.start()
    d.wait_states("sent", timeout=120)
    recs = graph_fake.messages()
    n, dups = check_arrivals(d, [r["message"]["subject"] for r in recs], "graph kill -9")
    assert n == 64
    for r in recs:
        if r["message"]["subject"] in big:
            assert r["kind"] == "draft"
            assert r["attachments"][0]["data"] == big[r["message"]["subject"]]
    with d.db() as c:
        assert c.execute("SELECT count(*) FROM messages WHERE draft_id IS NOT NULL").fetchone()[0] == 0
    uploads = sum(1 for r in graph_fake.requests() if r["endpoint"] == "upload")
    print("kill -9 x%d over Graph: %d messages (4 large, %d upload chunks), %d duplicates "
          "(all announced), %d drafts left at the fake"
          % (ROUNDS, n, uploads, dups, len(graph_fake.drafts())))


def test_daemon_started_while_producers_write(smtp_peer, workdir, daemons):
    peer = smtp_peer()
    d = make_daemon(daemons, workdir, smtp_profile("relay", peer.port, extra="MaxConnections = 4"),
                    daemon={"log_level": "info"})
    # Two C API producers and one CLI producer start on a spool that does not
    # exist yet; the daemon starts while they are writing.
    env = dict(os.environ)
    env.pop("MAILSPOOL_SPOOL", None)
    producers = [subprocess.Popen([os.path.join(BUILD, "bench", "enqueue_many"), d.spool, "200",
                                   "invoice", "producer%d" % k],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                 for k in range(2)]
    cli_errors = []

    def cli_producer():
        for i in range(20):
            p = subprocess.run([MAILSPOOL, "-c", d.conf, "-s", d.spool, "enqueue", "--area",
                                "invoice", "--to", "cli%d@example.org" % i, "--subject",
                                "cli message %d" % i, "--text", "-"], input="Hallo\n",
                               capture_output=True, text=True, timeout=60, env=env)
            if p.returncode != 0:
                cli_errors.append((i, p.returncode, p.stderr))
    t = threading.Thread(target=cli_producer)
    t.start()
    wait_for(lambda: os.path.exists(d.spool), timeout=20, what="the spool")
    d.start()
    for p in producers:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    t.join(timeout=120)
    assert not t.is_alive() and not cli_errors, cli_errors
    d.wait_states("sent", timeout=120)
    assert alive(d)
    n, dups = check_arrivals(d, [m["message"]["subject"] for m in peer.messages()],
                             "producers while starting")
    assert (n, dups) == (420, 0)
    assert not d.lines_of("requeued")
