"""The submission socket: with mailspoold running, `mailspool enqueue` hands
its message to the daemon (spool.db.sock beside the spool), which stores the
same rows a direct enqueue writes and answers once they are durable. Without
a daemon, or for a message too large for a request, the producer writes the
spool itself. Attachments travel as descriptors the producer opened: a daemon
that may not read the producer's files still stores them. Garbage on the
socket, a producer that stops half way and a daemon killed before its answer
lose nothing and stop nothing.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import MAILSPOOL, MAILSPOOLD, run
from mshelpers import Daemon, smtp_profile, wait_for

LATER = "2099-01-01T00:00:00Z"  # queued, never due: the rows stay as stored


def submitted(d):
    return d.lines_of("submitted")


def enqueue_args(d, attach, html, extra=()):
    return ["enqueue", "--area", "invoice", "--to", "Bärbel Groß <b@example.org>",
            "--cc", "c@example.org", "--bcc", "audit@example.org",
            "--subject", "Rechnung 2026-0042 – März", "--text", "-", "--html", html,
            "--attach", "%s;name=Rechnung 0042.pdf;type=application/pdf" % attach,
            "--reply-to", "Buchhaltung <buchhaltung@airport.example>",
            "--header", "X-Airport-Ref: INV-2026-0042", "--priority", "3",
            "--not-before", LATER, "--expires", "2099-01-02T00:00:00Z"] + list(extra)


def shown(d, mid):
    doc = json.loads(d.cli("show", str(mid), "--json", check=0).stdout)
    for k in ("id", "created", "updated", "next_attempt", "message_id"):
        doc.pop(k, None)
    for a in doc.get("attachments", []):
        a.pop("id")
    return doc


@pytest.fixture
def daemon(workdir):
    d = Daemon(workdir, smtp_profile("relay", 1))
    yield d
    d.stop()


def test_enqueue_through_the_daemon_stores_what_a_direct_enqueue_stores(daemon, workdir):
    d = daemon
    pdf = os.path.join(str(workdir), "r.pdf")
    with open(pdf, "wb") as f:
        f.write(os.urandom(300 * 1024))
    html = os.path.join(str(workdir), "r.html")
    with open(html, "w") as f:
        f.write("<p>Sehr geehrte Damen und Herren,</p>\n")
    text = "Sehr geehrte Damen und Herren,\nanbei die Rechnung.\n"
    # Direct: no daemon, no socket.
    direct = int(d.cli(*enqueue_args(d, pdf, html), input=text, check=0).stdout)
    assert not os.path.exists(d.spool + ".sock")
    d.start()
    st = os.stat(d.spool + ".sock")
    assert stat.S_ISSOCK(st.st_mode)
    p = d.cli(*enqueue_args(d, pdf, html), input=text, check=0)
    via = int(p.stdout)
    assert via == direct + 1 and p.stderr == ""
    lines = submitted(d)
    assert len(lines) == 1
    assert "id=%d area=invoice uid=%d pid=" % (via, os.getuid()) in lines[0]
    a, b = shown(d, direct), shown(d, via)
    assert a == b
    with open(pdf, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert b["attachments"][0]["sha256"] == digest
    assert b["attachments"][0]["size"] == 300 * 1024
    with d.db() as c:
        rows = [bytes(r[0]) for r in c.execute("SELECT data FROM attachments ORDER BY id")]
    assert rows[0] == rows[1]
    # A bad message is refused by the producer before it reaches the socket,
    # with the same words and code as a direct enqueue.
    bad = d.cli("enqueue", "--area", "invoice", "--to", "kein-at", "--subject", "s",
                "--text", "-", input="x")
    assert bad.returncode == 65 and "kein-at" in bad.stderr
    assert len(submitted(d)) == 1


def test_ref_through_the_daemon_is_idempotent(daemon):
    d = daemon.start()
    first = d.enqueue("a@example.org", extra=["--ref", "inv-1", "--not-before", LATER])
    again = d.enqueue("a@example.org", extra=["--ref", "inv-1", "--not-before", LATER])
    assert first == again
    assert len(d.states()) == 1
    lines = submitted(d)
    assert len(lines) == 2 and "existing=yes" in lines[1] and "existing" not in lines[0]


def test_message_too_large_for_a_request_is_written_by_the_producer(daemon, workdir):
    d = daemon.start()
    big = os.path.join(str(workdir), "big.bin")
    data = os.urandom(1536 * 1024)
    with open(big, "wb") as f:
        f.write(data)
    # A text on standard input over the request limit: the producer has read
    # it before it knows, and the full CLI gets it replayed.
    text = "".join("Zeile %06d mit Rechnungspositionen und Betraegen\n" % i
                   for i in range(26000))
    assert len(text) > 1024 * 1024
    mid_text = d.enqueue("a@example.org", text=text, extra=["--not-before", LATER])
    mid_att = d.enqueue("a@example.org", extra=["--attach", big, "--not-before", LATER])
    assert submitted(d) == []
    with d.db() as c:
        body = c.execute("SELECT body_text FROM messages WHERE id = ?", (mid_text,)).fetchone()[0]
        att = c.execute("SELECT data FROM attachments WHERE message_id = ?",
                        (mid_att,)).fetchone()[0]
    assert body == text and bytes(att) == data
    # Small ones still go through the daemon.
    d.enqueue("a@example.org", extra=["--not-before", LATER])
    assert len(submitted(d)) == 1


def test_socket_has_the_spools_mode_and_goes_away(workdir):
    d = Daemon(workdir, smtp_profile("relay", 1))
    d.enqueue("a@example.org")  # creates the spool (no daemon yet: directly)
    os.chmod(d.spool, 0o640)
    d.start()
    try:
        st = os.stat(d.spool + ".sock")
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert st.st_gid == os.stat(d.spool).st_gid
        assert not os.path.exists(d.spool + ".sock.new")
        d.stop()
        assert not os.path.exists(d.spool + ".sock")
        # kill -9 leaves the socket behind: the next daemon replaces it.
        d.start()
        d.kill9()
        assert os.path.exists(d.spool + ".sock")
        p = d.cli("enqueue", "--area", "x", "--to", "a@example.org", "--subject", "s",
                  "--text", "-", input="x", check=0)  # nobody listens: written directly
        assert p.stdout.strip().isdigit()
        d.start()
        d.enqueue("a@example.org")
        assert len(submitted(d)) == 1
    finally:
        d.stop()


def test_a_file_in_the_socket_place_is_left_alone(daemon):
    d = daemon
    with open(d.spool + ".sock", "w") as f:
        f.write("mine")
    d.start()
    assert any("not a socket" in l for l in d.lines_of("start"))
    mid = d.enqueue("a@example.org")  # written by the producer itself
    assert mid >= 1 and submitted(d) == []
    with open(d.spool + ".sock") as f:
        assert f.read() == "mine"


def test_garbage_and_half_requests_do_not_disturb_the_daemon(daemon):
    d = daemon.start()
    path = d.spool + ".sock"

    def conn():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        return s

    def dropped(s):
        """Closed without an answer (a reset when our bytes were unread)."""
        try:
            return s.recv(100) == b""
        except ConnectionResetError:
            return True
        finally:
            s.close()

    s = conn()
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert dropped(s)  # not a request
    s = conn()
    s.sendall(b"MSQ1" + struct.pack("=II", 1 << 30, 0))
    assert dropped(s)  # too large
    s = conn()
    s.sendall(b"MSQ1" + struct.pack("=II", 1000, 0) + b"\xff" * 10)
    s.close()  # half a request, then gone
    # A complete request whose body is nonsense is answered with a refusal.
    s = conn()
    s.sendall(b"MSQ1" + struct.pack("=II", 8, 0) + b"\xff" * 8)
    reply = s.recv(2000)
    assert reply[:4] == b"MSA1" and struct.unpack("=I", reply[4:8])[0] == 76
    s.close()
    assert d.lines_of("submit-refused")
    mid = d.enqueue("a@example.org", extra=["--not-before", LATER])
    assert submitted(d) and "id=%d " % mid in submitted(d)[-1]
    assert d.proc.poll() is None


def test_out_of_descriptors_pauses_the_socket_and_recovers(daemon):
    """A daemon out of file descriptors cannot accept: it says so, pauses
    the socket for a second instead of spinning on it, and takes producers
    again once descriptors are free."""
    d = daemon
    d.start()
    d.stop()
    d.proc = None
    args = ["prlimit", "--nofile=40", "--", MAILSPOOLD, "-c", d.conf]
    stderr = open(os.path.join(d.dir, "daemon.stderr"), "ab")
    proc = subprocess.Popen(args, stdout=stderr, stderr=stderr)
    d.proc = proc
    wait_for(lambda: d.events().count("ready") >= 2, timeout=30)
    held = []
    try:
        for _ in range(60):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.spool + ".sock")  # the backlog takes them all
            held.append(s)
        wait_for(lambda: any("out of file descriptors" in l
                             for l in d.lines_of("submit-refused")), timeout=10)
        cpu0 = sum(map(int, open("/proc/%d/stat" % proc.pid).read().split(")")[1].split()[11:13]))
        time.sleep(1.0)
        cpu1 = sum(map(int, open("/proc/%d/stat" % proc.pid).read().split(")")[1].split()[11:13]))
        assert cpu1 - cpu0 < 50, "the daemon spun on its listener: %d ticks in 1 s" % (cpu1 - cpu0)
    finally:
        for s in held:
            s.close()
    # The held connections are dropped (closed unanswered); producers come again.
    mid = d.enqueue("a@example.org", extra=["--not-before", LATER])
    wait_for(lambda: any("id=%d " % mid in l for l in submitted(d)), timeout=10)
    assert proc.poll() is None


def request(area, to, subject, text, atts=()):
    """A submission request as spool/submit_wire.c describes it; atts are
    (name, content type) pairs whose bytes come as descriptors."""
    def string(x):
        if x is None:
            return struct.pack("=I", 0xffffffff)
        b = x.encode()
        return struct.pack("=I", len(b)) + b

    body = b"".join(string(x) for x in (area, None, subject, text, None, None, None))
    body += struct.pack("=iqq", 0, 0, 0)
    body += struct.pack("=I", 1) + bytes([0]) + string(None) + string(to)
    body += struct.pack("=I", 0)
    body += struct.pack("=I", len(atts))
    for name, ctype in atts:
        body += string(name) + string(ctype) + bytes([1])
    return b"MSQ1" + struct.pack("=II", len(body), len(atts)) + body


def test_attachments_must_come_as_sealed_memory_files(daemon, workdir):
    """The daemon copies attachments on its loop: it takes only sealed memory
    files, which can neither block it (a hung network mount) nor change
    under it. A file descriptor of any other kind is refused."""
    import fcntl
    d = daemon.start()
    data = b"Position;Betrag\n1;42,00\n"
    plain = os.path.join(str(workdir), "p.csv")
    with open(plain, "wb") as f:
        f.write(data)
    sealed = os.memfd_create("att", os.MFD_ALLOW_SEALING)
    os.write(sealed, data)
    fcntl.fcntl(sealed, fcntl.F_ADD_SEALS,
                fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    unsealed = os.memfd_create("att")
    os.write(unsealed, data)
    answers = []
    for fd in (os.open(plain, os.O_RDONLY), unsealed, sealed):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(d.spool + ".sock")
        socket.send_fds(s, [request("invoice", "a@example.org", "s", "x\n",
                                    [("p.csv", "text/csv")])], [fd])
        os.close(fd)
        reply = s.recv(2000)
        s.close()
        code, mid = struct.unpack("=Iq", reply[4:16])
        answers.append((code, mid, reply[21:].decode(errors="replace")))
    assert answers[0][0] == 76 and "not a sealed memory file" in answers[0][2]
    assert answers[1][0] == 76
    assert answers[2][0] == 0 and answers[2][1] > 0, answers
    with d.db() as c:
        got = c.execute("SELECT data FROM attachments WHERE message_id = ?",
                        (answers[2][1],)).fetchone()[0]
        assert c.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    assert bytes(got) == data


def test_daemon_killed_before_its_answer(daemon):
    d = daemon.start()
    args = [MAILSPOOL, "-c", d.conf, "-s", d.spool, "enqueue", "--area", "invoice",
            "--to", "a@example.org", "--subject", "s", "--text", "-", "--not-before", LATER]
    d.proc.send_signal(signal.SIGSTOP)
    try:
        # The request goes into the socket; the stopped daemon never reads it.
        p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        p.stdin.write("Hallo\n")
        p.stdin.close()
        p.stdin = None
        time.sleep(1.0)
        assert p.poll() is None
        d.kill9()
        out, err = p.communicate(timeout=30)
        # It cannot know whether the message was stored: it says so, exit 75.
        assert p.returncode == 75, err
        assert "may or may not be queued" in err and "--ref" in err
        # With a ref, the producer can find out: it writes the spool itself.
        d.start()
        d.proc.send_signal(signal.SIGSTOP)
        p = subprocess.Popen(args + ["--ref", "r-1"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdin.write("Hallo\n")
        p.stdin.close()
        p.stdin = None
        time.sleep(1.0)
        d.kill9()
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        with d.db() as c:
            assert c.execute("SELECT count(*) FROM messages WHERE ref = 'r-1'").fetchone()[0] == 1
    finally:
        if d.proc and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGCONT)


def test_kill9_during_a_burst_of_producers_loses_nothing(daemon):
    """Four producers enqueue 240 messages with refs while the daemon is
    killed twice and restarted: every producer exits 0, and every ref is in
    the spool exactly once, under the id its producer printed."""
    import concurrent.futures
    import threading

    d = daemon.start()
    lock = threading.Lock()
    results = {}

    def one(i):
        p = run([MAILSPOOL, "-c", d.conf, "-s", d.spool, "enqueue", "--area", "invoice",
                 "--to", "a@example.org", "--subject", "s %d" % i, "--text", "-",
                 "--ref", "burst-%d" % i, "--not-before", LATER], input="Hallo %d\n" % i)
        with lock:
            results[i] = (p.returncode, p.stdout.strip(), p.stderr)

    n = 240
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(one, i) for i in range(n)]
        for kill_at in (n // 3, 2 * n // 3):
            wait_for(lambda: len(results) >= kill_at, timeout=120)
            d.kill9()
            d.start()
        for f in futures:
            f.result(timeout=120)
    bad = {i: r for i, r in results.items() if r[0] != 0}
    assert not bad, sorted(bad.items())[:3]
    with d.db() as c:
        rows = c.execute("SELECT ref, count(*), min(id) FROM messages GROUP BY ref").fetchall()
    assert len(rows) == n and all(r[1] == 1 for r in rows)
    ids = {r[0]: r[2] for r in rows}
    assert all(ids["burst-%d" % i] == int(results[i][1]) for i in range(n))
    assert submitted(d)  # most went through the socket


def test_long_spool_path(tmp_path):
    deep = tmp_path
    while len(str(deep)) < 140:
        deep = deep / "verzeichnis-mit-langem-namen"
    deep.mkdir(parents=True)
    d = Daemon(deep, smtp_profile("relay", 1))
    assert len(d.spool + ".sock") > 108
    d.start()
    try:
        mid = d.enqueue("a@example.org", extra=["--not-before", LATER])
        assert "id=%d " % mid in submitted(d)[-1]
    finally:
        d.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the daemon as another user")
def test_daemon_stores_attachments_it_may_not_read(tmp_path):
    """As installed: the daemon and the producer are different users. The
    producer's file is in a directory the daemon cannot enter; the daemon
    still stores it, from the descriptor the producer passed."""
    base = tempfile.mkdtemp(prefix="mailspool-submit-")
    try:
        os.chmod(base, 0o755)
        spooldir = os.path.join(base, "spool")
        os.mkdir(spooldir)
        os.chown(spooldir, 65534, 65534)
        daemon_bin = os.path.join(base, "mailspoold")
        shutil.copy(MAILSPOOLD, daemon_bin)
        d = Daemon(spooldir, smtp_profile("relay", 1))
        os.chown(d.conf, 65534, 65534)
        private = tmp_path / "private"
        private.mkdir(mode=0o700)
        att = private / "Rechnung.pdf"
        att.write_bytes(b"%PDF-1.4 vertraulich\n" * 100)
        stderr = open(os.path.join(spooldir, "daemon.stderr"), "ab")
        proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 daemon_bin, "-c", d.conf], stdout=stderr, stderr=stderr)
        try:
            wait_for(lambda: "ready" in d.events() or proc.poll() is not None, timeout=30)
            assert proc.poll() is None, d.stderr_text()
            p = run([MAILSPOOL, "-c", d.conf, "-s", d.spool, "enqueue", "--area", "invoice",
                     "--to", "a@example.org", "--subject", "s", "--text", "-",
                     "--attach", str(att), "--not-before", LATER], input="x", check=0)
            mid = int(p.stdout)
            assert "id=%d area=invoice uid=0 " % mid in d.lines_of("submitted")[-1]
            with d.db() as c:
                data = c.execute("SELECT data FROM attachments WHERE message_id = ?",
                                 (mid,)).fetchone()[0]
            assert bytes(data) == att.read_bytes()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            stderr.close()
        assert proc.returncode == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)
