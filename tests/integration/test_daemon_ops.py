"""Operations: systemd notification (READY, STATUS, WATCHDOG, RELOADING,
STOPPING), the periodic stats line, and `mailspool status` from a live daemon."""
import json
import os
import signal
import socket

from mshelpers import Daemon, smtp_profile, wait_for


class NotifySocket:
    """A datagram socket playing systemd's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.msgs = []

    def drain(self):
        while True:
            try:
                self.msgs.append(self.sock.recv(4096).decode())
            except socket.timeout:
                return self.msgs

    def seen(self, prefix):
        return [m for m in self.drain() if any(l.startswith(prefix) for l in m.split("\n"))]

    def close(self):
        self.sock.close()


def test_notify_ready_status_watchdog_reload_stop(smtp_peer, workdir):
    peer = smtp_peer()
    ns = NotifySocket(os.path.join(str(workdir), "notify.sock"))
    d = Daemon(workdir, smtp_profile("relay", peer.port))
    try:
        d.start(env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000"})
        wait_for(lambda: ns.seen("READY=1"), timeout=20, what="READY=1")
        wait_for(lambda: ns.seen("STATUS="), timeout=20, what="STATUS=")
        status = ns.seen("STATUS=")[0]
        assert "queued=" in status and "suspended-profiles=" in status
        wait_for(lambda: len(ns.seen("WATCHDOG=1")) >= 3, timeout=20, what="3 watchdog pings")
        d.enqueue("a@example.org")
        d.signal(signal.SIGHUP)
        wait_for(lambda: ns.seen("RELOADING=1"), timeout=20, what="RELOADING=1")
        wait_for(lambda: len(ns.seen("READY=1")) >= 2, timeout=20, what="READY=1 after reload")
        assert d.stop() == 0
        assert ns.seen("STOPPING=1")
        assert ns.seen("STATUS=")  # status lines were updated along the way
    finally:
        d.stop()
        ns.close()


def _stats_totals(d):
    """Sums the stats lines (consecutive windows) per area: {area: {sent, deferred, failed}}."""
    tot = {}
    for line in d.lines_of("stats"):
        kv = dict(f.split("=", 1) for f in line.split()[3:] if "=" in f)
        t = tot.setdefault(kv["area"], {"sent": 0, "deferred": 0, "failed": 0})
        for k in t:
            t[k] += int(kv[k])
    return tot


def test_stats_line_per_area(smtp_peer, workdir):
    peer = smtp_peer(reject_rcpt="bad@example.org")
    d = Daemon(workdir, smtp_profile("relay", peer.port), daemon={"stats_interval": "2s"},
               areas={"invoice": "relay", "report": "relay"}).start()
    try:
        ids = [d.enqueue("ok@example.org"), d.enqueue("ok2@example.org", area="report"),
               d.enqueue("bad@example.org")]
        d.wait_states(["sent", "failed"], ids)
        want = {"invoice": {"sent": 1, "deferred": 0, "failed": 1},
                "report": {"sent": 1, "deferred": 0, "failed": 0},
                "all": {"sent": 2, "deferred": 0, "failed": 1}}
        wait_for(lambda: _stats_totals(d) == want, timeout=20,
                 what="stats lines adding up to %s (got %s)" % (want, _stats_totals(d)))
        assert all("period=" in l for l in d.lines_of("stats"))
    finally:
        assert d.stop() == 0


def test_status_shows_live_daemon_and_profiles(smtp_peer, workdir):
    peer = smtp_peer()
    d = Daemon(workdir, smtp_profile("relay", peer.port)).start()
    try:
        mid = d.enqueue("a@example.org")
        d.wait_states("sent", [mid])

        def published():
            st = json.loads(d.cli("status", "--json", check=0).stdout)
            prof = [p for p in st["profiles"] if p["name"] == "relay"]
            return st if prof and prof[0].get("last_success") else None
        st = wait_for(published, timeout=20, what="profile state published")
        assert st["daemon"]["running"] is True or st["daemon"].get("alive") is True
        assert st["daemon"]["pid"] == d.proc.pid
        text = d.cli("status", check=0).stdout
        assert "relay" in text and "running" in text
    finally:
        assert d.stop() == 0


def test_mailspool_test_smtp_prints_steps_never_the_password(smtp_peer, certs, workdir):
    peer = smtp_peer(tls_mode="starttls", auth=("rechnung@airport.example", "Geheim-Pässwort-42"))
    prof = smtp_profile("billing", peer.port,
                        auth=("rechnung@airport.example", "Geheim-Pässwort-42"),
                        extra="CAFile = %s" % certs.ca)
    d = Daemon(workdir, prof)
    p = d.cli("test", "--profile", "billing", "--to", "admin@example.org")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "Geheim" not in out
    for step in ("connect", "TLS", "AUTH", "250"):
        assert step in out, "step %r missing from:\n%s" % (step, out)
    [m] = peer.wait_for(1)
    assert m["rcpt_tos"] == ["admin@example.org"] and m["auth_user"]
    # A refused password: exit 78 (configuration), still no secret printed.
    peer2 = smtp_peer(tls_mode="starttls", auth=("rechnung@airport.example", "x"),
                      refuse_auth=True)
    d.write_config(smtp_profile("billing", peer2.port,
                                auth=("rechnung@airport.example", "Falsch-Pässwort-43"),
                                extra="CAFile = %s" % certs.ca))
    p = d.cli("test", "--profile", "billing", "--to", "admin@example.org")
    assert p.returncode == 78, p.stdout + p.stderr
    assert "Falsch" not in p.stdout + p.stderr
    assert "535" in p.stdout + p.stderr
