#!/usr/bin/python3
"""soak — `make soak`: many messages through mailspoold with faults injected.

Owns: one long run of the real daemon against two SMTP peers (plain and
STARTTLS with AUTH) and the Microsoft Graph fake, fed by a producer writing
the spool with plain SQL while the daemon runs, with random faults drawn from
a seeded generator: refused connections (peer down), 4xx replies, 421 and
connections closed before the greeting, replies to "." that never come (the
duplicate window), Graph 429 storms, 5xx bursts, reset and dropped
connections, the token endpoint down, and kill -9 of the daemon every few
thousand messages. It ends with the accounting:

- every enqueued message is `sent` (none failed, none left queued);
- the messages the peers and the fake received are exactly the enqueued set;
  copies beyond the first are counted and reported, and each one belongs to
  a message the daemon logged as a possible duplicate;
- the daemon's RSS at the end is within 10% of its RSS after its first
  10,000 messages (VmRSS from /proc/PID/status).

The RSS rule needs one daemon process that lives through a long stretch, so
the kill -9 rounds are confined to the middle of the run: the first
incarnation runs the first 10,000 messages, kills come every few thousand
from there to half of the run, and the last incarnation delivers the
remaining half: its RSS after its first 10,000 messages against its RSS at
the end is the rule. The first incarnation's RSS after 10,000 is printed
beside it. Below 10,000 messages of baseline (SOAK_MESSAGES < 100,000) the
figures are printed but the rule is not applied: the warm-up dominates.

Never: runs in `make check` (it takes minutes), sleeps to let things settle
(every wait polls with a deadline), or touches anything outside its work
directory and the processes it started.

    SOAK_MESSAGES=10000 make soak       or
    /usr/bin/python3 tests/soak/soak.py --build build --messages 10000 --seed 1
"""
import argparse
import glob
import json
import os
import random
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))

from certs import make_certs  # noqa: E402
from graph_ctl import GraphFake  # noqa: E402
from smtp_ctl import SmtpPeer  # noqa: E402

SUBJECT_RE = re.compile(rb"^Subject: soak (\d+)\r?$", re.M)
ID_RE = re.compile(r"\bid=(\d+)\b")
# The RSS rule needs a baseline past the warm-up: after this many messages.
RSS_WARMUP = 10000
# Every fault option of the SMTP peer, at its "no fault" value: a restart
# passes all of them so that one fault never lingers into the next.
PEER_CLEAN = {"tempfail_first": None, "tempfail_stage": None, "reply_421_after": None,
              "close_before_greeting": None, "drop_after_data": False}


def log(msg):
    print("soak: %s" % msg, flush=True)


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def check(self, what):
        if time.monotonic() > self.end:
            raise SystemExit("soak: FAILED: out of time while %s" % what)


class Daemon:
    """mailspoold on the soak's config; kill -9 and restart; RSS."""

    def __init__(self, build, conf, logpath, workdir):
        # SOAK_DAEMON_WRAPPER (e.g. "heaptrack -o DIR/ht"): for finding where
        # memory goes; the RSS figures are then the wrapper's, not the daemon's.
        self.argv = shlex.split(os.environ.get("SOAK_DAEMON_WRAPPER", "")) + [
            os.path.join(build, "mailspoold"), "-c", conf]
        self.logpath = logpath
        self.stderr_path = os.path.join(workdir, "daemon.stderr")
        self.proc = None
        self.incarnations = 0

    def _log_size(self):
        try:
            return os.path.getsize(self.logpath)
        except OSError:
            return 0

    def start(self):
        offset = self._log_size()
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=err,
                                         stderr=err, env=env)
        self.incarnations += 1
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("soak: FAILED: mailspoold exited %d at start; see %s" % (
                    self.proc.returncode, self.stderr_path))
            if self._log_size() > offset:
                with open(self.logpath, "rb") as f:
                    f.seek(offset)
                    if re.search(rb"^\S+ \S+ ready\b", f.read(), re.M):
                        return
            if time.monotonic() > deadline:
                raise SystemExit("soak: FAILED: mailspoold not ready within 60 s")
            time.sleep(0.05)

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)

    def memory(self):
        """VmRSS and its parts (RssAnon: heap and stacks; RssFile, RssShmem:
        mapped files, e.g. SQLite's -shm index) in KiB."""
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmData"):
                    out[key] = int(line.split()[1])
        if "VmRSS" not in out:
            raise SystemExit("soak: FAILED: no VmRSS for pid %d" % self.proc.pid)
        return out

    def rss_kib(self):
        m = self.memory()
        log("memory of pid %d: %s" % (self.proc.pid, " ".join(
            "%s=%d" % kv for kv in sorted(m.items()))))
        return m["VmRSS"]


class Producer:
    """Enqueues with plain SQL as docs/SPOOL.md shows: one transaction per
    message. synchronous=NORMAL: this run tests the daemon, not power loss."""

    def __init__(self, spool, rng):
        self.con = sqlite3.connect(spool, timeout=30, isolation_level=None)
        self.con.execute("PRAGMA foreign_keys = ON")
        self.con.execute("PRAGMA synchronous = NORMAL")
        self.rng = rng
        self.enqueued = 0
        self.ids = {}  # soak number -> spool id
        self.areas = {}  # soak number -> area

    def enqueue(self, n):
        area = self.rng.choices(["plain", "tls", "graph"], weights=[45, 35, 20])[0]
        self.con.execute("BEGIN IMMEDIATE")
        try:
            cur = self.con.execute(
                "INSERT INTO messages (area, ref, subject, body_text) VALUES (?, ?, ?, ?)",
                (area, "soak-%d" % n, "soak %d" % n,
                 "Soak message %d.\n.\nA dot line, and a second line.\n" % n))
            mid = cur.lastrowid
            self.con.execute("INSERT INTO recipients (message_id, kind, address) "
                             "VALUES (?, 'to', ?)", (mid, "rcpt%d@example.org" % (n % 97)))
            self.con.execute("INSERT INTO headers (message_id, name, value) VALUES (?, ?, ?)",
                             (mid, "X-Soak-Id", str(n)))
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.ids[n] = mid
        self.areas[n] = area
        self.enqueued += 1

    def states(self):
        return dict(self.con.execute("SELECT state, count(*) FROM messages GROUP BY state"))


class Faults:
    """Draws faults from the seeded generator and undoes the timed ones."""

    KINDS = ["refuse", "tempfail", "reply421", "close_greeting", "drop_after_data",
             "graph_429", "graph_5xx", "graph_reset", "graph_token_down"]

    def __init__(self, rng, peers, fake):
        self.rng = rng
        self.peers = peers
        self.fake = fake
        self.undo = []  # (monotonic time, peer) to restart clean
        self.counts = {k: 0 for k in self.KINDS}

    def _restart(self, peer, **opts):
        peer.restart(**dict(PEER_CLEAN, **opts))

    def inject(self):
        kind = self.rng.choice(self.KINDS)
        self.counts[kind] += 1
        peer = self.rng.choice(self.peers)
        later = time.monotonic() + self.rng.uniform(1.0, 4.0)
        if kind == "refuse":
            peer.stop()
            self.undo.append((later, peer))
        elif kind == "tempfail":
            self._restart(peer, tempfail_first=self.rng.randint(5, 60),
                          tempfail_stage=self.rng.choice(["mail", "rcpt", "data"]))
        elif kind == "reply421":
            self._restart(peer, reply_421_after=self.rng.randint(1, 20))
            self.undo.append((later, peer))
        elif kind == "close_greeting":
            self._restart(peer, close_before_greeting=self.rng.randint(1, 10))
        elif kind == "drop_after_data":
            self._restart(peer, drop_after_data=True)
            self.undo.append((time.monotonic() + self.rng.uniform(0.2, 0.8), peer))
        elif kind == "graph_429":
            self.fake.throttle(count=self.rng.randint(5, 40), retry_after=1,
                               endpoint="sendMail")
        elif kind == "graph_5xx":
            self.fake.fault(endpoint="sendMail", status=self.rng.choice([500, 502, 503, 504]),
                            count=self.rng.randint(3, 30))
        elif kind == "graph_reset":
            self.fake.fault(endpoint="sendMail", action=self.rng.choice(["reset", "drop"]),
                            count=self.rng.randint(1, 10))
        elif kind == "graph_token_down":
            self.fake.fault(endpoint="token", status=503, count=self.rng.randint(1, 5))
            self.fake.expire_tokens()
        return kind

    def tick(self, force=False):
        now = time.monotonic()
        keep = []
        for when, peer in self.undo:
            if force or when <= now:
                if peer.alive:
                    self._restart(peer)
                else:
                    peer._opts.update(PEER_CLEAN)
                    peer.start(port=peer.port)
            else:
                keep.append((when, peer))
        self.undo = keep


def config_text(spool, logpath, plain, tls, fake, certs):
    return """[spool]
path = {spool}

[daemon]
log_file = {log}
log_level = info
max_connections = 12
shutdown_timeout = 5s
connect_timeout = 5s
response_timeout = 10s

[queue]
retry_min = 1s
retry_max = 3s
lifetime = 1d

[profile plain]
FromAddress = plain@airport.example
SMTPHost = 127.0.0.1
SMTPPort = {plain}
SMTPAuthReq = NIL
MaxConnections = 4

[profile tls]
FromAddress = tls@airport.example
SMTPHost = 127.0.0.1
SMTPPort = {tls}
Username = soak
Passwort = soak-password-123
SMTPAuthReq = SSL
CAFile = {ca}
MaxConnections = 4

[profile graph]
FromAddress = {mailbox}
365Client = {client}
365Tenant = {tenant}
365Secret = {secret}
365AuthorityHost = {base}
365GraphHost = {base}
CAFile = {ca}
RateLimit = 0
MaxConnections = 4

[area plain]
profile = plain

[area tls]
profile = tls

[area graph]
profile = graph
""".format(spool=spool, log=logpath, plain=plain.port, tls=tls.port, ca=certs.ca,
           mailbox=fake.mailbox, client=fake.client_id, tenant=fake.tenant, secret=fake.secret,
           base=fake.base_url)


def delivered(peers, fake):
    """Soak number -> copies received, over both peers and the Graph fake."""
    got = {}
    for p in peers:
        for path in glob.glob(os.path.join(p.outdir, "[0-9]" * 6 + ".eml")):
            with open(path, "rb") as f:
                m = SUBJECT_RE.search(f.read(16384))
            if m is None:
                raise SystemExit("soak: FAILED: %s has no soak subject" % path)
            n = int(m.group(1))
            got[n] = got.get(n, 0) + 1
    for path in glob.glob(os.path.join(fake.state_dir, "messages", "[0-9]" * 6 + ".json")):
        with open(path, encoding="utf-8") as f:
            subject = json.load(f)["message"].get("subject", "")
        if not subject.startswith("soak "):
            raise SystemExit("soak: FAILED: %s has no soak subject" % path)
        n = int(subject[5:])
        got[n] = got.get(n, 0) + 1
    return got


def announced(logpath):
    """Spool ids the daemon logged as possible duplicates."""
    ids = set()
    with open(logpath, encoding="utf-8", errors="replace") as f:
        for line in f:
            if "possible-duplicate" in line:
                m = ID_RE.search(line)
                if m:
                    ids.add(int(m.group(1)))
    return ids


def log_counts(logpath):
    counts = {}
    with open(logpath, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split(" ", 3)
            if len(parts) >= 3:
                counts[parts[2]] = counts.get(parts[2], 0) + 1
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--messages", type=int,
                    default=int(os.environ.get("SOAK_MESSAGES", "100000")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "20261204")))
    ap.add_argument("--baseline", type=int, default=None,
                    help="messages before the baseline RSS (default min(10000, N/10))")
    ap.add_argument("--kill-every", type=int, default=None,
                    help="messages between kill -9 rounds (default 3000, N/30 for small N)")
    ap.add_argument("--fault-every", type=int, default=None,
                    help="messages between faults (default N/200, at least 50)")
    ap.add_argument("--max-seconds", type=int, default=3 * 3600)
    ap.add_argument("--workdir", default=None, help="kept afterwards (default: a temp dir)")
    a = ap.parse_args()

    n_total = a.messages
    baseline_at = a.baseline or min(10000, max(1, n_total // 10))
    kill_every = a.kill_every or min(3000, max(100, n_total // 30))
    fault_every = a.fault_every or max(50, n_total // 200)
    kill_until = int(n_total * 0.5)
    backlog = 2000
    rng = random.Random(a.seed)
    deadline = Deadline(a.max_seconds)

    workdir = a.workdir or tempfile.mkdtemp(prefix="mailspool-soak-")
    os.makedirs(workdir, exist_ok=True)
    log("%d messages, seed %d, work directory %s" % (n_total, a.seed, workdir))
    log("baseline RSS after %d sent; kill -9 every %d sent until %d; a fault every %d sent" % (
        baseline_at, kill_every, kill_until, fault_every))

    certs = make_certs(os.path.join(workdir, "certs"))
    life = a.max_seconds + 600
    plain = SmtpPeer(os.path.join(workdir, "peer-plain"), certs=certs, max_seconds=life)
    tls = SmtpPeer(os.path.join(workdir, "peer-tls"), certs=certs, tls_mode="starttls",
                   auth="soak:soak-password-123", max_seconds=life)
    fake = GraphFake(os.path.join(workdir, "graph"), certs.server_cert, certs.server_key,
                     ca=certs.ca, max_seconds=life)
    fake.add_app()
    fake.add_mailbox()
    peers = [plain, tls]
    d = None
    try:
        plain.start()
        tls.start()
        fake.start()
        spool = os.path.join(workdir, "spool.db")
        logpath = os.path.join(workdir, "mailspool.log")
        conf = os.path.join(workdir, "mailspool.conf")
        with open(conf, "w") as f:
            f.write(config_text(spool, logpath, plain, tls, fake, certs))
        os.chmod(conf, 0o600)

        d = Daemon(a.build, conf, logpath, workdir)
        d.start()  # creates the spool
        producer = Producer(spool, rng)
        faults = Faults(rng, peers, fake)
        t0 = time.monotonic()
        next_fault, next_kill = fault_every, baseline_at + kill_every
        rss_base = rss_last_start = rss_end = None
        # Sent count when the last incarnation started (0: no kill planned).
        last_start_sent = 0 if next_kill >= kill_until else None
        kills, next_report = 0, 0
        while True:
            deadline.check("delivering")
            states = producer.states()
            sent = states.get("sent", 0)
            if states.get("failed", 0):
                raise SystemExit("soak: FAILED: %d message(s) failed; see %s" % (
                    states["failed"], logpath))
            want = min(n_total, sent + backlog)
            while producer.enqueued < want:
                producer.enqueue(producer.enqueued + 1)
            if rss_base is None and sent >= baseline_at:
                rss_base = d.rss_kib()
                log("baseline: %d sent, RSS %d KiB (pid %d)" % (sent, rss_base, d.proc.pid))
            # Faults while the producer is still writing: the tail only drains.
            if sent >= next_fault and producer.enqueued < n_total:
                faults.inject()
                next_fault = sent + fault_every
            if sent >= next_report:
                m = d.memory()
                log("%d sent after %.0f s, %s; pid %d VmRSS %d RssAnon %d KiB" % (
                    sent, time.monotonic() - t0, json.dumps(states, sort_keys=True),
                    d.proc.pid, m["VmRSS"], m.get("RssAnon", 0)))
                next_report = sent + max(1000, n_total // 20)
            if sent >= next_kill and sent < kill_until:
                d.kill9()
                kills += 1
                d.start()
                next_kill = sent + kill_every
                if next_kill >= kill_until:
                    last_start_sent = sent
            if (last_start_sent is not None and rss_last_start is None
                    and sent >= last_start_sent + baseline_at):
                rss_last_start = d.rss_kib()
            faults.tick()
            if producer.enqueued == n_total and sent == n_total:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        faults.tick(force=True)
        rss_end = d.rss_kib()
        rc = d.stop()
        if rc != 0:
            raise SystemExit("soak: FAILED: mailspoold exited %d on SIGTERM" % rc)

        # ---- accounting ----
        got = delivered(peers, fake)
        missing = [n for n in range(1, n_total + 1) if n not in got]
        extra = [n for n in got if n < 1 or n > n_total]
        dups = {n: c - 1 for n, c in got.items() if c > 1}
        marked = announced(logpath)
        unannounced = [n for n in dups if producer.ids[n] not in marked]
        counts = log_counts(logpath)
        peer_stats = {p.outdir.rsplit("-", 1)[1]: p.stats() for p in peers}
        fstate = fake.state()

        log("---- summary ----")
        log("messages: %d enqueued, %d sent in %.0f s (%.0f/s); per area %s" % (
            producer.enqueued, sent, elapsed, sent / elapsed,
            json.dumps({k: list(producer.areas.values()).count(k)
                        for k in ("plain", "tls", "graph")})))
        log("received: %d distinct, %d copies in all, %d duplicate copies of %d messages" % (
            len(got), sum(got.values()), sum(dups.values()), len(dups)))
        log("possible duplicates announced in the log: %d messages" % len(marked))
        log("faults injected: %s; kill -9: %d; daemon incarnations: %d" % (
            json.dumps(faults.counts, sort_keys=True), kills, d.incarnations))
        log("peers: %s" % json.dumps({k: {x: v[x] for x in (
            "connections", "messages", "tempfails", "dropped_after_data",
            "closed_before_greeting", "replies_421", "starts")} for k, v in peer_stats.items()},
            sort_keys=True))
        log("graph fake: %d messages, %d token requests, %d tokens issued" % (
            fstate["messages"], fstate["token_requests"], fstate["tokens_issued"]))
        log("log events: %s" % json.dumps(counts, sort_keys=True))
        growth_last = (None if rss_last_start is None
                       else 100.0 * (rss_end - rss_last_start) / rss_last_start)
        log("RSS: baseline %s KiB after %d sent; last incarnation %s KiB after its first %d, "
            "%d KiB at the end (%+.1f%% against the baseline%s)" % (
                rss_base, baseline_at, rss_last_start, baseline_at, rss_end,
                100.0 * (rss_end - rss_base) / rss_base,
                "" if growth_last is None else ", %+.1f%% within the last" % growth_last))

        problems = []
        if missing:
            problems.append("%d message(s) never arrived, e.g. %s" % (len(missing), missing[:10]))
        if extra:
            problems.append("unknown messages arrived: %s" % extra[:10])
        if unannounced:
            problems.append("%d duplicate(s) not announced as possible duplicates, e.g. %s" % (
                len(unannounced), sorted(unannounced)[:10]))
        # Below 10,000 messages the baseline falls into the warm-up (worker
        # threads' malloc arenas and connections, SQLite's page caches filling
        # as the spool grows): the figures are printed, the rule is not applied.
        # The rule compares one process with itself: the last incarnation
        # after its first baseline_at messages and at the end. The first
        # incarnation's figure is printed beside it; it ran on a smaller spool,
        # so SQLite's page caches (2 MB per connection) were less full.
        if baseline_at >= RSS_WARMUP:
            if rss_last_start is None:
                problems.append("the last incarnation delivered fewer than %d messages" %
                                baseline_at)
            elif rss_end > rss_last_start * 1.10:
                problems.append("RSS grew from %d KiB after %d messages to %d KiB at the end "
                                "(more than 10%%)" % (rss_last_start, baseline_at, rss_end))
        else:
            log("RSS rule (10%%) not applied: baseline after %d < %d messages" % (
                baseline_at, RSS_WARMUP))
        if problems:
            for p in problems:
                log("FAILED: " + p)
            return 1
        log("ok: every message accounted for")
        if a.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0
    finally:
        if d is not None and d.proc is not None and d.proc.poll() is None:
            d.kill9()
        for p in peers:
            p.kill()
        fake.kill()


if __name__ == "__main__":
    sys.exit(main())
