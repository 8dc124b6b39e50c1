"""Fault matrix, storage (issue 6 "Faults"; docs/RELIABILITY.md): the spool's
file system runs full; spools of another schema version; damaged spool files.

The full file system is a small tmpfs the test mounts (root only; the test
is skipped with the reason when mount(2) is not permitted). Damage is done to
a copy of a real spool; every check ends with the file's SHA-256 unchanged:
mailspool never empties, recreates or "repairs" a spool it cannot trust.
"""
import errno
import hashlib
import json
import os
import sqlite3
import subprocess

import pytest

from conftest import MAILSPOOL, MAILSPOOLD, run
from faulthelpers import alive, daemons, make_daemon  # noqa: F401
from mshelpers import smtp_profile, wait_for

TABLES = ("messages", "recipients", "headers", "attachments")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def counts(spool):
    c = sqlite3.connect("file:%s?mode=ro" % spool, uri=True, timeout=30)
    try:
        return {t: c.execute("SELECT count(*) FROM %s" % t).fetchone()[0] for t in TABLES}
    finally:
        c.close()


def integrity(spool):
    c = sqlite3.connect("file:%s?mode=ro" % spool, uri=True, timeout=30)
    try:
        return c.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        c.close()


@pytest.fixture
def small_fs(tmp_path):
    """A 6 MiB tmpfs mounted for this test only (list it before `daemons`, so
    that the daemons stop before it is unmounted)."""
    mnt = tmp_path / "smallfs"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN): %s"
                    % p.stderr.strip())
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path):
    """Writes path until the file system is full (down to the last KiB)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 1024):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    finally:
        os.close(fd)


def truncate_wal(spool):
    """Checkpoints and empties the WAL (retried while a reader is in the way)."""
    def done():
        c = sqlite3.connect(spool, timeout=30)
        try:
            return c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        finally:
            c.close()
    wait_for(done, timeout=20, what="an emptied WAL")


def cli_enqueue(d, subject, attach=None):
    args = [MAILSPOOL, "-c", d.conf, "-s", d.spool, "enqueue", "--area", "invoice", "--to",
            "a@example.org", "--subject", subject, "--text", "-"]
    if attach:
        args += ["--attach", attach]
    return run(args, input="Hallo\n")


# ---- the file system runs full ----------------------------------------------------

def test_spool_file_system_full(small_fs, smtp_peer, workdir, daemons):
    peer = smtp_peer()
    port = peer.port
    d = make_daemon(daemons, workdir, smtp_profile("relay", port),
                    queue={"retry_min": "1s", "retry_max": "2s"})
    d.spool = str(small_fs / "spool.db")
    d.write_config(smtp_profile("relay", port), queue={"retry_min": "1s", "retry_max": "2s"})
    d.start()
    first = [d.enqueue("a%d@example.org" % i, subject="before %d" % i) for i in range(3)]
    d.wait_states("sent", first)
    # The relay goes away: new messages wait in the spool.
    peer.stop()
    waiting = [d.enqueue("w%d@example.org" % i, subject="waiting %d" % i) for i in range(4)]
    wait_for(lambda: d.lines_of("profile-suspended"), what="suspension")
    att = workdir / "attachment.bin"
    att.write_bytes(os.urandom(1024 * 1024))
    # An empty WAL (as after a TRUNCATE checkpoint): every write must now grow
    # a file on a full file system.
    truncate_wal(d.spool)
    filler = small_fs / "filler"
    fill(str(filler))
    before = counts(d.spool)

    # A producer gets a clear error and writes nothing.
    p = cli_enqueue(d, "no space", str(att))
    assert p.returncode in (73, 74), (p.returncode, p.stderr)
    assert "disk is full" in p.stderr and "free space" in p.stderr, p.stderr
    assert counts(d.spool) == before
    p = cli_enqueue(d, "no space either")
    assert p.returncode in (0, 73, 74), p.stderr
    if p.returncode != 0:
        assert counts(d.spool) == before
    else:  # a small message may still fit in free pages of the file
        before = counts(d.spool)
    assert integrity(d.spool) == "ok"

    # The relay comes back while the disk is still full: the daemon keeps
    # running and keeps its state, whatever it manages to write.
    peer.start(port=port)

    def full_errors():
        return [l for l in d.log_lines() if "disk is full" in l]
    wait_for(lambda: any("op=claim" in l or "op=finish" in l for l in full_errors()), timeout=30,
             what="a delivery's write error")
    assert "free space on the file system holding the spool" in full_errors()[0]
    assert alive(d)
    assert counts(d.spool) == before

    # Space returns: producers and the daemon go on, nothing was lost.
    os.remove(filler)
    p = cli_enqueue(d, "after", str(att))
    assert p.returncode == 0, p.stderr
    ids = list(d.states())
    d.wait_states("sent", ids, timeout=60)
    assert alive(d)
    got = [m["message"]["subject"] for m in peer.messages()]
    for s in ["before %d" % i for i in range(3)] + ["waiting %d" % i for i in range(4)] + ["after"]:
        assert s in got, (s, got)
    assert integrity(d.spool) == "ok"
    print("disk full: write errors logged by the daemon: %d"
          % sum(1 for l in d.log_lines() if "disk is full" in l))


# ---- schema versions ----------------------------------------------------------------

def spool_with_messages(workdir, n=3, attach_kib=0):
    """A real spool with n queued messages, checkpointed (no -wal left)."""
    spool = str(workdir / "spool.db")
    extra = []
    if attach_kib:
        path = workdir / "att.bin"
        path.write_bytes(bytes((i * 131 + 17) % 251 for i in range(attach_kib * 1024)))
        extra = ["--attach", str(path)]
    for i in range(n):
        run([MAILSPOOL, "-s", spool, "enqueue", "--area", "invoice", "--to",
             "a%d@example.org" % i, "--subject", "Nachricht %d" % i, "--text", "-"] + extra,
            input="Hallo\n", check=0)
    c = sqlite3.connect(spool)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    return spool


def set_user_version(spool, v):
    c = sqlite3.connect(spool)
    c.execute("PRAGMA user_version = %d" % v)
    c.commit()
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()


def start_refused(d):
    """Runs mailspoold on d's config; returns (exit code, stderr)."""
    p = run([MAILSPOOLD, "-c", d.conf], timeout=60)
    return p.returncode, p.stderr


def test_empty_file_is_given_the_schema(smtp_peer, workdir, daemons):
    """Version 0: an empty file, e.g. made by the package's tmpfiles.d. The
    daemon gives it the whole schema."""
    peer = smtp_peer()
    d = make_daemon(daemons, workdir, smtp_profile("relay", peer.port))
    open(d.spool, "wb").close()
    d.start()
    c = sqlite3.connect(d.spool)
    assert c.execute("PRAGMA user_version").fetchone()[0] == 2
    c.close()
    mid = d.enqueue("a@example.org")
    d.wait_states("sent", [mid])


def test_schema_v1_spool_is_migrated(smtp_peer, workdir, daemons):
    """A spool of version 1 (before recipients.state), as the previous
    release leaves it: producers are told to start the daemon (75, nothing
    written), readers read it as it is; the daemon migrates it and sends
    what was queued."""
    peer = smtp_peer()
    d = make_daemon(daemons, workdir, smtp_profile("relay", peer.port))
    spool_with_messages(workdir, 3)
    c = sqlite3.connect(d.spool)
    c.executescript("ALTER TABLE recipients DROP COLUMN state; PRAGMA user_version = 1;")
    c.close()
    p = cli_enqueue(d, "early")
    assert p.returncode == 75 and "start mailspoold, which migrates it" in p.stderr, p.stderr
    # Reading needs no migration: the operator can look before the daemon runs.
    listed = run([MAILSPOOL, "-s", d.spool, "list", "--json"], check=0).stdout
    assert len(json.loads(listed)) == 3
    shown = json.loads(run([MAILSPOOL, "-s", d.spool, "show", "1", "--json"], check=0).stdout)
    assert [r["state"] for r in shown["recipients"]] == [None]
    c = sqlite3.connect(d.spool)
    assert c.execute("PRAGMA user_version").fetchone()[0] == 1
    c.close()
    d.start()
    d.wait_states("sent", timeout=30)
    assert len(peer.wait_for(3)) == 3
    c = sqlite3.connect(d.spool)
    assert c.execute("PRAGMA user_version").fetchone()[0] == 2
    assert c.execute("SELECT count(*) FROM recipients WHERE state = 'sent'").fetchone()[0] == 3
    c.close()
    assert cli_enqueue(d, "later").returncode == 0
    d.wait_states("sent", timeout=30)
    assert len(peer.wait_for(4)) == 4


def test_newer_schema_is_refused_untouched(smtp_peer, workdir, daemons):
    peer = smtp_peer()
    d = make_daemon(daemons, workdir, smtp_profile("relay", peer.port))
    spool_with_messages(workdir, 3)
    set_user_version(d.spool, 3)
    digest = sha256(d.spool)
    rc, err = start_refused(d)
    assert rc == 65, (rc, err)
    assert "schema version 3 is newer than this build knows (2)" in err, err
    assert "install the mailspool version that wrote it" in err
    p = cli_enqueue(d, "newer")
    assert p.returncode == 65 and "schema version 3" in p.stderr, p.stderr
    assert sha256(d.spool) == digest
    assert not peer.messages()


def test_foreign_sqlite_database_is_refused_untouched(smtp_peer, workdir, daemons):
    peer = smtp_peer()
    d = make_daemon(daemons, workdir, smtp_profile("relay", peer.port))
    c = sqlite3.connect(d.spool)
    c.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    c.execute("INSERT INTO invoices (total) VALUES (12.5)")
    c.commit()
    c.close()
    digest = sha256(d.spool)
    rc, err = start_refused(d)
    assert rc == 74, (rc, err)
    assert "holds other tables and no mailspool schema" in err and "left untouched" in err, err
    assert sha256(d.spool) == digest


# ---- damaged files --------------------------------------------------------------------

def page_of(spool, table):
    c = sqlite3.connect("file:%s?mode=ro" % spool, uri=True)
    try:
        size = c.execute("PRAGMA page_size").fetchone()[0]
        root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        return size, root
    finally:
        c.close()


def damage(spool, where):
    size, root = page_of(spool, "messages")
    total = os.path.getsize(spool)
    if where == "header":
        offset, data = 0, b"this is no database, really"  # the 16-byte magic string and more
    elif where == "messages-root-page":
        offset, data = (root - 1) * size, bytes((i * 37 + 11) % 256 for i in range(size))
    else:  # a page in the middle of the file
        page = (total // size) // 2
        offset, data = page * size, bytes((i * 53 + 7) % 256 for i in range(size))
    with open(spool, "r+b") as f:
        f.seek(offset)
        f.write(data)


@pytest.mark.parametrize("where", ["header", "messages-root-page", "middle-page"])
def test_damaged_spool_is_refused_at_start_untouched(smtp_peer, workdir, daemons, where):
    peer = smtp_peer()
    d = make_daemon(daemons, workdir, smtp_profile("relay", peer.port))
    spool_with_messages(workdir, 40, attach_kib=12)
    assert not os.path.exists(d.spool + "-wal") or os.path.getsize(d.spool + "-wal") == 0
    damage(d.spool, where)
    digest, size = sha256(d.spool), os.path.getsize(d.spool)
    rc, err = start_refused(d)
    assert rc == 74, (rc, err)
    assert "spool %s" % d.spool in err
    if where == "header":
        assert "not an SQLite database or is damaged" in err or "not a database" in err, err
    else:
        assert "integrity check failed" in err and "restore a backup" in err, err
    assert "left untouched" in err, err
    # The reason is in the log file too.
    assert any("reason=" in l and d.spool in l for l in d.lines_of("start")), d.log_lines()
    assert sha256(d.spool) == digest and os.path.getsize(d.spool) == size
    assert not peer.messages()


def test_disk_full_between_claim_and_outcome(small_fs, smtp_peer, workdir, daemons):
    """The relay accepted the message, then the spool cannot take the outcome:
    the daemon keeps it and writes it when space returns (no resend)."""
    peer = smtp_peer(data_delay=1)
    d = make_daemon(daemons, workdir, smtp_profile("relay", peer.port))
    d.spool = str(small_fs / "spool.db")
    d.write_config(smtp_profile("relay", peer.port), queue={"retry_min": "1s", "retry_max": "2s"})
    d.start()
    mid = d.enqueue("a@example.org", subject="mid-transfer")
    wait_for(lambda: any(c.startswith("DATA") for c in peer.commands()), what="DATA")
    truncate_wal(d.spool)
    filler = small_fs / "filler"
    fill(str(filler))
    peer.wait_for(1)
    [err] = wait_for(lambda: [l for l in d.lines_of("spool") if "op=finish" in l], timeout=30,
                     what="the outcome's write error")
    assert "id=%d state=sent" % mid in err and "disk is full" in err, err
    assert alive(d)
    assert d.states()[mid] == "sending"
    os.remove(filler)
    d.wait_states("sent", [mid], timeout=30)
    assert any("outcome written" in l for l in d.lines_of("spool"))
    assert [a["result"] for a in d.attempts(mid)] == ["sent"]
    assert d.stop() == 0
    assert not d.lines_of("requeued")
    assert len(peer.messages()) == 1
