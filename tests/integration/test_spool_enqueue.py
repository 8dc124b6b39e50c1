"""mailspool enqueue against a real spool: bad producer input is refused with
the right exit code and leaves the spool untouched; attachments are copied in
whole; --ref is idempotent; JSON documents; the configuration's areas; two
producers at once lose nothing; creation is race-safe; damaged or foreign
files are refused and left as they are.
"""
import hashlib
import json
import os
import sqlite3
import stat
import subprocess

import pytest

from conftest import run

TABLES = ("messages", "recipients", "headers", "attachments", "attempts")

CONFIG = """\
[spool]
path = {spool}

[profile relay]
FromAddress = noreply@airport.example
SMTPHost = 127.0.0.1
SMTPAuthReq = NIL

[area invoice]
profile = relay

[area report]
profile = relay
"""


def snapshot(db):
    """Row count and a digest of the content of every producer table."""
    con = sqlite3.connect(db)
    try:
        out = {}
        for t in TABLES:
            rows = con.execute("SELECT * FROM %s ORDER BY id" % t).fetchall()
            out[t] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
        return out
    finally:
        con.close()


def count(db, sql="SELECT count(*) FROM messages", args=()):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchone()[0]
    finally:
        con.close()


class Env:
    """A private spool (and optionally a configuration) for one test."""

    def __init__(self, bins, workdir):
        self.ms = bins["mailspool"]
        self.bench = os.path.join(bins["build"], "bench", "enqueue_many")
        self.dir = str(workdir)
        self.spool = os.path.join(self.dir, "spool.db")
        self.conf = os.path.join(self.dir, "absent.conf")  # unreadable: no area check
        self.body = self.write("body.txt", "Sehr geehrte Damen und Herren,\nanbei.\n")

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return path

    def with_config(self):
        self.conf = self.write("mailspool.conf", CONFIG.format(spool=self.spool))
        os.chmod(self.conf, 0o600)
        return self

    def cli(self, *args, input=None, spool=True):
        pre = [self.ms, "-c", self.conf] + (["-s", self.spool] if spool else [])
        return run(pre + list(args), input=input)

    def enqueue(self, *extra, area="invoice", to=("kunde@example.org",), subject="Rechnung 42",
                input=None):
        args = ["enqueue", "--area", area, "--subject", subject]
        for t in to:
            args += ["--to", t]
        if "--text" not in extra and "--html" not in extra:
            args += ["--text", self.body]
        return self.cli(*(args + list(extra)), input=input)

    def enqueue_ok(self, *extra, **kw):
        p = self.enqueue(*extra, **kw)
        assert p.returncode == 0, p.stderr
        assert p.stderr == ""
        lines = p.stdout.splitlines()
        assert len(lines) == 1 and lines[0].isdigit(), p.stdout
        return int(lines[0])


@pytest.fixture
def env(bins, workdir):
    return Env(bins, workdir)


def test_enqueue_stores_every_field(env):
    att = env.write("rechnung.pdf", b"%PDF-1.4 fake\n")
    html = env.write("body.html", "<p>Grüße</p>")
    mid = env.enqueue_ok("--cc", "Bärbel Groß <b@example.org>", "--bcc", "audit@example.org",
                         "--text", env.body, "--html", html, "--attach", att + ";name=Rechnung 42.pdf",
                         "--reply-to", "Buchhaltung <bh@airport.example>", "--ref", "inv-42",
                         "--not-before", "2026-12-05T06:00:00+01:00",
                         "--expires", "2026-12-05T09:30:00Z", "--priority", "5",
                         "--header", "X-Airport-Ref: INV-42",
                         subject="Rechnung 42 – Grüße")
    con = sqlite3.connect(env.spool)
    row = con.execute("SELECT state, area, ref, subject, body_text, body_html, reply_to,"
                      " priority, not_before, expires, message_id FROM messages WHERE id = ?",
                      (mid,)).fetchone()
    assert row == ("queued", "invoice", "inv-42", "Rechnung 42 – Grüße",
                   "Sehr geehrte Damen und Herren,\nanbei.\n", "<p>Grüße</p>",
                   "Buchhaltung <bh@airport.example>", 5, 1796446800, 1796463000, None)
    rcpts = con.execute("SELECT kind, name, address FROM recipients WHERE message_id = ?"
                        " ORDER BY id", (mid,)).fetchall()
    assert rcpts == [("to", None, "kunde@example.org"), ("cc", "Bärbel Groß", "b@example.org"),
                     ("bcc", None, "audit@example.org")]
    assert con.execute("SELECT name, value FROM headers").fetchall() == [("X-Airport-Ref",
                                                                          "INV-42")]
    assert con.execute("SELECT name, content_type, size FROM attachments").fetchall() == [
        ("Rechnung 42.pdf", "application/pdf", 14)]
    con.close()
    st = os.stat(env.spool)
    assert stat.S_IMODE(st.st_mode) == 0o660


BAD_INPUTS = [
    # (what, extra args, kwargs for enqueue, exit code)
    ("CR/LF in subject", (), {"subject": "Rechnung\r\nBcc: evil@example.org"}, 65),
    ("LF in subject", (), {"subject": "Rechnung\nX-Evil: 1"}, 65),
    ("CR/LF in name", (), {"to": ("Evil\r\nBcc: x@example.org <kunde@example.org>",)}, 65),
    ("CR/LF in address", (), {"to": ("kunde@example.org\r\nRCPT TO:<x@example.org>",)}, 65),
    ("CR/LF in cc", ("--cc", "a@example.org\nb@example.org"), {}, 65),
    ("CR/LF in header", ("--header", "X-Ref: 1\r\nBcc: evil@example.org"), {}, 65),
    ("reserved header", ("--header", "From: evil@example.org"), {}, 65),
    ("header without colon", ("--header", "X-Ref"), {}, 65),
    ("CR/LF in reply-to", ("--reply-to", "a@example.org\r\nBcc: b@example.org"), {}, 65),
    ("CR/LF in ref", ("--ref", "a\r\nb"), {}, 65),
    ("invalid address", (), {"to": ("not an address",)}, 65),
    ("bad time", ("--not-before", "2026-12-05T06:00:00"), {}, 65),
    ("bad priority", ("--priority", "high"), {}, 65),
    ("missing attachment", ("--attach", "/nonexistent/rechnung.pdf"), {}, 66),
    ("missing text file", ("--text", "/nonexistent/body.txt"), {}, 66),
    ("unknown option", ("--bogus",), {}, 64),
]


@pytest.mark.parametrize("what,extra,kw,code", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_leaves_spool_untouched(env, what, extra, kw, code):
    env.enqueue_ok("--ref", "first", "--attach", env.body)
    before = snapshot(env.spool)
    p = env.enqueue(*extra, **kw)
    assert p.returncode == code, (p.stdout, p.stderr)
    assert p.stdout == ""
    assert p.stderr.startswith("mailspool"), p.stderr
    assert snapshot(env.spool) == before


def test_bad_input_does_not_even_create_the_spool(env):
    p = env.enqueue(subject="x\r\ny")
    assert p.returncode == 65
    assert "subject" in p.stderr and "line break" in p.stderr
    p = env.enqueue("--attach", "/nonexistent/x.pdf")
    assert p.returncode == 66
    assert "/nonexistent/x.pdf" in p.stderr
    assert not os.path.exists(env.spool)


def test_error_messages_name_the_field(env):
    p = env.enqueue(to=("kunde@example.org\r\nRCPT TO:<x@example.org>",))
    assert p.returncode == 65 and "to" in p.stderr
    p = env.enqueue("--header", "X-Ref: 1\r\nBcc: evil@example.org")
    assert p.returncode == 65 and "X-Ref" in p.stderr
    p = env.enqueue("--expires", "morgen")
    assert p.returncode == 65 and "--expires" in p.stderr and "morgen" in p.stderr


def test_unknown_area_with_readable_config(env):
    env.with_config()
    mid = env.enqueue_ok(area="invoice")
    before = snapshot(env.spool)
    p = env.enqueue(area="parking")
    assert p.returncode == 65, p.stderr
    assert "parking" in p.stderr and env.conf in p.stderr
    assert snapshot(env.spool) == before
    assert mid == 1


def test_unknown_area_accepted_when_config_unreadable(env):
    # The default config path does not exist for this test: producers may not
    # be able to read the configuration, and then the area is not checked.
    assert env.enqueue_ok(area="parking") == 1


def test_spool_path_from_config(env):
    env.with_config()
    p = env.cli("enqueue", "--area", "report", "--to", "a@example.org", "--subject", "s",
                "--text", env.body, spool=False)
    assert p.returncode == 0, p.stderr
    assert count(env.spool) == 1
    # The environment wins over the configuration, -s over both.
    other = os.path.join(env.dir, "other.db")
    p = run([env.ms, "-c", env.conf, "enqueue", "--area", "report", "--to", "a@example.org",
             "--subject", "s", "--text", env.body], env={"MAILSPOOL_SPOOL": other})
    assert p.returncode == 0, p.stderr
    assert count(other) == 1 and count(env.spool) == 1


def test_config_broken_elsewhere_still_gives_its_spool_path(env):
    # An administrator's typo in a profile must not stop the producers: the
    # [spool] path is still used (SPEC 2.2: "if it is readable"), with a note.
    env.conf = env.write("broken.conf", "[spool]\npath = %s\n[profile x]\nBogusKey = 1\n"
                         % env.spool)
    p = env.cli("enqueue", "--area", "invoice", "--to", "a@example.org", "--subject", "s",
                "--text", env.body, spool=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "1"
    assert "has errors" in p.stderr and env.spool in p.stderr and "--check" in p.stderr
    assert count(env.spool) == 1
    p = env.cli("list", spool=False)
    assert p.returncode == 0 and "a@example.org" in p.stdout, p.stderr


@pytest.mark.parametrize("spool_section", [
    "[spool]\npath {spool}\n",               # a line that is no assignment
    "[spool]\npath = {spool}\nfrobnicate = 1\n",  # an error in the section
    "[spool]\npath = {spool}\n[spool]\npath = {spool}\n",  # two of it
])
def test_invalid_spool_section_is_78(env, spool_section):
    env.conf = env.write("broken.conf", spool_section.format(spool=env.spool))
    p = env.cli("enqueue", "--area", "invoice", "--to", "a@example.org", "--subject", "s",
                "--text", env.body, spool=False)
    assert p.returncode == 78, p.stderr
    assert env.conf in p.stderr and "-s" in p.stderr and "[spool]" in p.stderr
    assert not os.path.exists(env.spool)


def test_attachment_deleted_after_enqueue_is_complete(env):
    data = os.urandom(3 * 1024 * 1024 + 123)
    path = env.write("big.bin", data)
    mid = env.enqueue_ok("--attach", path + ";type=application/octet-stream")
    os.unlink(path)
    con = sqlite3.connect(env.spool)
    name, size, digest, blob = con.execute(
        "SELECT name, size, sha256, data FROM attachments WHERE message_id = ?",
        (mid,)).fetchone()
    con.close()
    assert name == "big.bin"
    assert size == len(data) == len(blob)
    assert digest == hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(blob).hexdigest() == digest
    shown = json.loads(env.cli("show", str(mid), "--json").stdout)
    assert shown["attachments"][0]["size"] == len(data)
    assert shown["attachments"][0]["sha256"] == digest


def test_same_ref_returns_first_id_and_adds_nothing(env):
    first = env.enqueue_ok("--ref", "invoice-2026-0042")
    before = snapshot(env.spool)
    again = env.enqueue_ok("--ref", "invoice-2026-0042", subject="anders",
                           to=("other@example.org",))
    assert again == first
    assert snapshot(env.spool) == before
    # The same ref in another area is another message.
    other = env.enqueue_ok("--ref", "invoice-2026-0042", area="report")
    assert other != first
    assert count(env.spool) == 2


def test_enqueue_text_from_stdin(env):
    mid = env.enqueue_ok("--text", "-", input="aus stdin\n")
    assert count(env.spool, "SELECT body_text FROM messages WHERE id = ?", (mid,)) == \
        "aus stdin\n"


def test_json_document(env):
    att = env.write("r.pdf", b"%PDF fake")
    doc = {
        "area": "invoice",
        "to": ["kunde@example.org", {"address": "b@example.org", "name": "Bärbel Groß"}],
        "cc": [], "bcc": ["audit@example.org"],
        "reply_to": "buchhaltung@airport.example",
        "subject": "Rechnung 2026-0042",
        "text": "Sehr geehrte Damen und Herren, ...",
        "html": "<p>Sehr geehrte Damen und Herren, ...</p>",
        "attachments": [
            {"path": att, "name": "Rechnung 2026-0042.pdf", "content_type": "application/pdf"},
            {"content_base64": "bW9uYXQ7Zmx1Zwo=", "name": "Positionen.csv",
             "content_type": "text/csv"},
        ],
        "headers": {"X-Airport-Ref": "INV-2026-0042"},
        "ref": "invoice-2026-0042",
        "not_before": "2026-12-05T06:00:00+01:00",
        "expires": "2026-12-05T09:30:00+01:00",
        "priority": 0,
    }
    p = env.cli("enqueue", "--json", "-", input=json.dumps(doc))
    assert p.returncode == 0, p.stderr
    mid = int(p.stdout)
    shown = json.loads(env.cli("show", str(mid), "--json").stdout)
    assert [r["address"] for r in shown["recipients"]] == ["kunde@example.org", "b@example.org",
                                                           "audit@example.org"]
    assert shown["recipients"][1]["name"] == "Bärbel Groß"
    assert [a["name"] for a in shown["attachments"]] == ["Rechnung 2026-0042.pdf",
                                                         "Positionen.csv"]
    assert shown["attachments"][1]["size"] == len(b"monat;flug\n")
    assert shown["not_before"] == 1796446800
    # From a file, with the same ref: the same id.
    path = env.write("doc.json", json.dumps(doc))
    p = env.cli("enqueue", "--json", path)
    assert p.returncode == 0 and int(p.stdout) == mid


@pytest.mark.parametrize("mutate,code,needle", [
    (lambda d: d.update(colour="blue"), 65, "colour"),
    (lambda d: d.update(to=[{"address": "a@example.org", "mail": "x"}]), 65, "mail"),
    (lambda d: d.update(subject="a\r\nBcc: x@example.org"), 65, "subject"),
    (lambda d: d.update(to=[{"address": "a@example.org", "name": "E\r\nBcc: x@y.org"}]), 65,
     "to[0].name"),
    (lambda d: d.update(headers={"X-A": "b\nBcc: c@example.org"}), 65, "X-A"),
    (lambda d: d.update(priority="high"), 65, "priority"),
    (lambda d: d.update(attachments=[{"path": "/nonexistent/a.pdf"}]), 66, "/nonexistent/a.pdf"),
    (lambda d: d.update(attachments=[{"content_base64": "%%%", "name": "a"}]), 65,
     "content_base64"),
], ids=["unknown field", "unknown rcpt field", "crlf subject", "crlf name", "crlf header",
        "priority type", "missing file", "bad base64"])
def test_json_rejections_leave_spool_untouched(env, mutate, code, needle):
    env.enqueue_ok()
    before = snapshot(env.spool)
    doc = {"area": "invoice", "to": ["a@example.org"], "subject": "s", "text": "t"}
    mutate(doc)
    p = env.cli("enqueue", "--json", "-", input=json.dumps(doc))
    assert p.returncode == code, p.stderr
    assert needle in p.stderr
    assert snapshot(env.spool) == before


def test_json_excludes_other_flags(env):
    p = env.cli("enqueue", "--json", "-", "--area", "invoice", input="{}")
    assert p.returncode == 64


def test_two_producers_concurrently(env):
    """Two processes enqueueing 1,000 messages each through the C API at the
    same time: all 2,000 arrive and no SQLITE_BUSY error surfaces."""
    assert os.access(env.bench, os.X_OK), "build tests/bench/enqueue_many first"
    procs = [subprocess.Popen([env.bench, env.spool, "1000", "invoice", tag],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in ("A", "B")]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip() == "enqueued 1000"
        assert "busy" not in err.lower() and "locked" not in err.lower()
    assert count(env.spool) == 2000
    assert count(env.spool, "SELECT count(DISTINCT ref) FROM messages") == 2000
    assert count(env.spool, "SELECT count(*) FROM attachments") == 2000
    assert count(env.spool, "SELECT count(*) FROM recipients") == 2000


def test_concurrent_creators_all_succeed(env):
    """Eight CLI producers racing to create a missing spool: none fails."""
    procs = [subprocess.Popen([env.ms, "-c", env.conf, "-s", env.spool, "enqueue", "--area",
                               "invoice", "--to", "a@example.org", "--subject", "s%d" % i,
                               "--text", env.body],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert count(env.spool) == 8
    assert count(env.spool, "PRAGMA user_version") == 2


def test_not_a_database_is_refused_and_untouched(env):
    junk = b"this is not a database\n" * 200
    env.write("spool.db", junk)
    p = env.enqueue()
    assert p.returncode == 74, p.stderr
    assert env.spool in p.stderr and "not an SQLite database" in p.stderr
    with open(env.spool, "rb") as f:
        assert f.read() == junk
    for args in (["list"], ["status"], ["show", "1"]):
        p = env.cli(*args)
        assert p.returncode == 74, (args, p.stderr)


def test_newer_schema_is_refused(env):
    env.enqueue_ok()
    con = sqlite3.connect(env.spool)
    con.execute("PRAGMA user_version = 7")
    con.close()
    p = env.enqueue()
    assert p.returncode == 65 and "newer" in p.stderr, p.stderr
    assert count(env.spool) == 1


def test_foreign_database_is_refused(env):
    con = sqlite3.connect(env.spool)
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    con.close()
    p = env.enqueue()
    assert p.returncode == 74 and "other tables" in p.stderr, p.stderr
    assert count(env.spool, "SELECT count(*) FROM sqlite_master WHERE name = 'messages'") == 0


def test_missing_directory_is_73(env):
    missing_dir = os.path.join(env.dir, "no", "such", "spool.db")
    p = run([env.ms, "-c", env.conf, "-s", missing_dir, "enqueue", "--area", "invoice",
             "--to", "a@example.org", "--subject", "s", "--text", env.body])
    assert p.returncode == 73, p.stderr
    assert missing_dir in p.stderr and "cannot create" in p.stderr


def test_producer_needs_no_access_to_secrets(env):
    """The CLI reads the configuration without resolving secrets: a file:
    secret the producer cannot read does not stop the area check or enqueue."""
    env.conf = env.write("secret.conf", CONFIG.format(spool=env.spool).replace(
        "SMTPAuthReq = NIL",
        "Username = relay@airport.example\nPasswort = file:/nonexistent/secret\n"
        "SMTPAuthReq = SSL"))
    assert env.enqueue_ok(area="invoice") == 1
    p = env.enqueue(area="parking")
    assert p.returncode == 65 and "parking" in p.stderr


@pytest.mark.slow  # waits out the 10 s busy limit
def test_locked_spool_is_75_after_the_busy_limit(env):
    # SPEC 2: spool busy or locked -> 75 (retry). The busy handler waits 10 s;
    # the BEGIN retries must not multiply that (it was about a minute).
    import time
    env.enqueue_ok()
    holder = sqlite3.connect(env.spool, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        t0 = time.monotonic()
        p = env.enqueue()
        took = time.monotonic() - t0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert p.returncode == 75, p.stderr
    assert "busy" in p.stderr and "10 s" in p.stderr and "retry" in p.stderr
    assert 9 <= took < 20, took
    assert count(env.spool) == 1
