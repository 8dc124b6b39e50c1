"""Helpers for scenario tests that run the real mailspoold on a private
directory: write a configuration, start and stop the daemon, enqueue with the
real CLI, and read the spool with Python's sqlite3 module.

Every wait is bounded; nothing here sleeps for a fixed time to "let things
settle" — it polls a condition with a deadline.
"""
import json
import os
import re
import signal
import sqlite3
import subprocess
import time

from conftest import MAILSPOOL, MAILSPOOLD, VALGRIND, VALGRIND_ARGS, run

# Shutdown under valgrind (leak check of the whole heap) takes longer.
VALGRIND_SLOWDOWN = 3 if VALGRIND else 1


def wait_for(cond, timeout=30.0, interval=0.05, what="condition"):
    """Polls cond() until it returns a truthy value or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def smtp_profile(name, port, auth=None, tls=None, from_addr=None, extra=""):
    """An [profile NAME] section for an SMTP peer on 127.0.0.1:port."""
    lines = ["[profile %s]" % name,
             "FromAddress = %s" % (from_addr or "%s@airport.example" % name),
             "SMTPHost = 127.0.0.1",
             "SMTPPort = %d" % port]
    if auth:
        user, password = auth
        lines += ["Username = %s" % user, "Passwort = %s" % password, "SMTPAuthReq = SSL"]
    else:
        lines += ["SMTPAuthReq = NIL"]
    if tls:
        lines.append("SMTPTLS = %s" % tls)
    return "\n".join(lines) + "\n" + extra + "\n"


class Daemon:
    """One mailspoold with its own config, spool and log under workdir."""

    def __init__(self, workdir, profiles, areas=None, queue=None, daemon=None):
        self.dir = str(workdir)
        self.spool = os.path.join(self.dir, "spool.db")
        self.log = os.path.join(self.dir, "mailspool.log")
        self.conf = os.path.join(self.dir, "mailspool.conf")
        self.proc = None
        self.write_config(profiles, areas, queue, daemon)

    def write_config(self, profiles, areas=None, queue=None, daemon=None):
        q = {"retry_min": "1s", "retry_max": "4s", "lifetime": "1h"}
        q.update(queue or {})
        dm = {"log_file": self.log, "log_level": "debug", "shutdown_timeout": "5s",
              "connect_timeout": "5s", "response_timeout": "30s"}
        dm.update(daemon or {})
        if areas is None:
            first = profiles.split("[profile ", 1)[1].split("]", 1)[0]
            areas = {"*": first}
        text = "[spool]\npath = %s\n\n[daemon]\n" % self.spool
        text += "".join("%s = %s\n" % kv for kv in dm.items())
        text += "\n[queue]\n" + "".join("%s = %s\n" % kv for kv in q.items())
        text += "\n" + profiles + "\n"
        for area, prof in areas.items():
            text += "[area %s]\nprofile = %s\n\n" % (area, prof)
        with open(self.conf, "w") as f:
            f.write(text)
        os.chmod(self.conf, 0o600)

    # ---- process ----
    def start(self, wait_ready=True, env=None):
        e = dict(os.environ)
        e.pop("NOTIFY_SOCKET", None)
        e.update(env or {})
        args = [MAILSPOOLD, "-c", self.conf]
        if VALGRIND:
            args = VALGRIND_ARGS + args
        self.stderr = open(os.path.join(self.dir, "daemon.stderr"), "ab")
        # A restarted daemon's log already holds the earlier runs' "ready": wait
        # for a new one (else a stop could come before the signal handlers exist).
        readies = self.events().count("ready")
        self.proc = subprocess.Popen(args, stdout=self.stderr, stderr=self.stderr, env=e)
        if wait_ready:
            wait_for(lambda: self.proc.poll() is not None or
                     self.events().count("ready") > readies,
                     timeout=30 * VALGRIND_SLOWDOWN, what="daemon ready")
            assert self.proc.poll() is None, "daemon exited early: %s" % self.stderr_text()
        return self

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.assert_valgrind_clean()
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout * VALGRIND_SLOWDOWN)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=10)
            raise AssertionError("daemon did not stop within %ds" % timeout)
        self.assert_valgrind_clean()
        return rc

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc:
            self.assert_valgrind_clean()

    def valgrind_report(self):
        """Memcheck's report in daemon.stderr: with -q it prints nothing but
        errors ("==PID== Invalid read ...", definite leaks at exit), so any
        "==PID==" line is a finding. Empty when not under valgrind."""
        if not VALGRIND:
            return []
        return [l for l in self.stderr_text().splitlines() if re.match(r"==\d+== ", l)]

    def assert_valgrind_clean(self):
        """Under MAILSPOOL_VALGRIND=1: fails the test on any memcheck error or
        definite leak (exit 99 from --error-exitcode, or report lines left by a
        daemon that was killed before it could exit)."""
        report = self.valgrind_report()
        if report or (VALGRIND and self.proc.returncode == 99):
            raise AssertionError("valgrind memcheck found errors (exit %s):\n%s" % (
                self.proc.returncode, "\n".join(report[:200])))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stderr_text(self):
        with open(os.path.join(self.dir, "daemon.stderr"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    # ---- log ----
    def log_lines(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def events(self):
        """Event names in log order."""
        return [l.split(" ", 3)[2] for l in self.log_lines() if l.count(" ") >= 2]

    def lines_of(self, event):
        return [l for l in self.log_lines() if l.split(" ", 3)[2:3] == [event]]

    # ---- producer side ----
    def cli(self, *args, check=None, input=None):
        return run([MAILSPOOL, "-c", self.conf, "-s", self.spool] + list(args),
                   input=input, check=check)

    def enqueue(self, to, subject="Test", text="Hallo Welt\n", area="invoice", extra=()):
        args = ["enqueue", "--area", area, "--subject", subject, "--text", "-"]
        for t in ([to] if isinstance(to, str) else to):
            args += ["--to", t]
        p = self.cli(*(args + list(extra)), input=text, check=0)
        return int(p.stdout.strip())

    # ---- spool ----
    def db(self):
        c = sqlite3.connect(self.spool, timeout=30)
        c.row_factory = sqlite3.Row
        return c

    def states(self):
        with self.db() as c:
            return {r["id"]: r["state"] for r in c.execute("SELECT id, state FROM messages")}

    def message(self, mid):
        with self.db() as c:
            return dict(c.execute("SELECT * FROM messages WHERE id = ?", (mid,)).fetchone())

    def attempts(self, mid):
        with self.db() as c:
            return [dict(r) for r in c.execute(
                "SELECT * FROM attempts WHERE message_id = ? ORDER BY id", (mid,))]

    def wait_states(self, want, ids=None, timeout=60):
        """Waits until every message (or those in ids) is in one of the states in want."""
        want = {want} if isinstance(want, str) else set(want)

        def done():
            st = self.states()
            sel = ids if ids is not None else list(st)
            return sel and all(st.get(i) in want for i in sel)
        return wait_for(done, timeout=timeout, what="states %s" % sorted(want))

    def show_json(self, mid):
        p = self.cli("show", str(mid), "--json", check=0)
        return json.loads(p.stdout)
