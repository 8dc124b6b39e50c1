"""Starting and stopping the fake peers as child processes, for the fixtures.

Owns: launching one fake (smtp_peer.py, graph_fake.py) under /usr/bin/python3,
waiting (bounded) for its "READY <port>" line, and ending it.
Never: leaves a child running after stop()/kill(), waits without a deadline,
or sends a signal to anything but the process it started.
"""
import os
import selectors
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


class FakeProcess:
    """One fake program; start() returns the port it announced."""

    def __init__(self, script, args, log_path, ready_timeout=20.0):
        self.argv = [PYTHON, os.path.join(HERE, script)] + [str(a) for a in args]
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.proc = None

    def start(self, argv_override=None):
        argv = argv_override or self.argv
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=log, close_fds=True)
        finally:
            log.close()
        try:
            return self._read_ready()
        except Exception:
            self.kill()
            raise

    def _read_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        buf = b""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("%s: no READY line within %.0fs; log %s:\n%s" % (
                        self.argv[1], self.ready_timeout, self.log_path, self.log_tail()))
                if sel.select(timeout=min(left, 0.5)):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        raise RuntimeError("%s exited (%s) before READY; log %s:\n%s" % (
                            self.argv[1], self.proc.wait(timeout=5), self.log_path,
                            self.log_tail()))
                    buf += chunk
        finally:
            sel.close()
            self.proc.stdout.close()
        line = buf.split(b"\n", 1)[0].decode("ascii", "replace").split()
        if len(line) != 2 or line[0] != "READY":
            raise RuntimeError("%s: unexpected first line %r" % (self.argv[1], buf))
        return int(line[1])

    def log_tail(self, limit=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-limit:].decode("utf-8", "replace")
        except OSError:
            return ""

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL if it has not exited within timeout."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        return self.proc.returncode

    def kill(self):
        """SIGKILL: the peer vanishes without closing anything gracefully."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns a true value; bounded by timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)
