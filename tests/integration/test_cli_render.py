"""mailspool render (the exact message the SMTP transport would send, with the
area's profile as sender) and mailspool test (runs mailspoold --test and
passes its exit code through).
"""
import base64
import email
import email.policy
import hashlib
import os
import shutil
import sqlite3

from conftest import run

CONFIG = """\
[spool]
path = {spool}

[profile billing]
FromAddress = rechnung@airport.example
FromDisplayName = Flughafen Musterstadt – Buchhaltung
ReplyToAddress = buchhaltung@airport.example
SMTPHost = 127.0.0.1
SMTPAuthReq = NIL

[area invoice]
profile = billing
"""


def make_env(bins, workdir, config=True):
    d = str(workdir)
    spool = os.path.join(d, "spool.db")
    conf = os.path.join(d, "mailspool.conf" if config else "absent.conf")
    if config:
        with open(conf, "w") as f:
            f.write(CONFIG.format(spool=spool))
    body = os.path.join(d, "body.txt")
    with open(body, "w") as f:
        f.write("Sehr geehrte Damen und Herren,\nanbei die Rechnung.\n")
    return spool, conf, body


def ms(bins, conf, spool, *args):
    return run([bins["mailspool"], "-c", conf, "-s", spool] + list(args))


def test_render_with_profile(bins, workdir):
    spool, conf, body = make_env(bins, workdir)
    pdf = os.path.join(str(workdir), "r.pdf")
    data = os.urandom(200 * 1024 + 5)
    with open(pdf, "wb") as f:
        f.write(data)
    p = ms(bins, conf, spool, "enqueue", "--area", "invoice", "--to",
           "Bärbel Groß <b@example.org>", "--bcc", "geheim@example.org", "--subject",
           "Rechnung 2026-0042 für Größe", "--text", body, "--attach",
           pdf + ";name=Rechnung 2026-0042.pdf", "--header", "X-Airport-Ref: INV-42")
    assert p.returncode == 0, p.stderr
    mid = p.stdout.strip()
    os.unlink(pdf)
    p = run([bins["mailspool"], "-c", conf, "-s", spool, "render", mid], input=b"")
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""
    raw = p.stdout
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # strict CRLF
    assert b"geheim@example.org" not in raw  # Bcc never appears
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["From"].addresses[0].addr_spec == "rechnung@airport.example"
    assert msg["From"].addresses[0].display_name == "Flughafen Musterstadt – Buchhaltung"
    assert msg["Reply-To"].addresses[0].addr_spec == "buchhaltung@airport.example"
    assert msg["To"].addresses[0].display_name == "Bärbel Groß"
    assert str(msg["Subject"]) == "Rechnung 2026-0042 für Größe"
    assert msg["X-Airport-Ref"] == "INV-42"
    assert msg["Message-ID"] and msg["Date"]
    parts = [part for part in msg.walk() if part.get_filename()]
    assert [part.get_filename() for part in parts] == ["Rechnung 2026-0042.pdf"]
    assert hashlib.sha256(parts[0].get_payload(decode=True)).digest() == \
        hashlib.sha256(data).digest()
    # Rendering is a pure function of the spool: twice gives the same bytes.
    again = run([bins["mailspool"], "-c", conf, "-s", spool, "render", mid], input=b"")
    assert again.stdout == raw


def test_names_with_commas_and_parentheses_are_taken_as_written(bins, workdir):
    # One --to, one address (SPEC 9): "Groß, Bärbel" is a name, not two
    # addresses, and "(Buchhaltung)" is part of it; the header quotes them.
    spool, conf, body = make_env(bins, workdir)
    p = ms(bins, conf, spool, "enqueue", "--area", "invoice",
           "--to", "Smith, John <j@example.org>", "--to", "Groß, Bärbel <b@example.org>",
           "--cc", "Dr. Mueller (Buchhaltung) <m@example.org>", "--subject", "s",
           "--text", body)
    assert p.returncode == 0, p.stderr
    raw = ms(bins, conf, spool, "render", p.stdout.strip())
    assert raw.returncode == 0, raw.stderr
    text = raw.stdout if isinstance(raw.stdout, str) else raw.stdout.decode()
    assert '"Smith, John" <j@example.org>' in text
    assert '"Dr. Mueller (Buchhaltung)" <m@example.org>' in text
    msg = email.message_from_string(text, policy=email.policy.default)
    assert [(a.display_name, a.addr_spec) for a in msg["To"].addresses] == [
        ("Smith, John", "j@example.org"), ("Groß, Bärbel", "b@example.org")]
    assert [(a.display_name, a.addr_spec) for a in msg["Cc"].addresses] == [
        ("Dr. Mueller (Buchhaltung)", "m@example.org")]
    # A second address in the field is still refused.
    p = ms(bins, conf, spool, "enqueue", "--area", "invoice", "--to",
           "a@example.org, Hans <h@example.org>", "--subject", "s", "--text", body)
    assert p.returncode == 65 and "--to" in p.stderr


def test_render_message_reply_to_wins(bins, workdir):
    spool, conf, body = make_env(bins, workdir)
    p = ms(bins, conf, spool, "enqueue", "--area", "invoice", "--to", "a@example.org",
           "--subject", "s", "--text", body, "--reply-to", "Team <team@airport.example>")
    assert p.returncode == 0, p.stderr
    out = ms(bins, conf, spool, "render", p.stdout.strip()).stdout
    msg = email.message_from_string(out, policy=email.policy.default)
    assert msg["Reply-To"].addresses[0].addr_spec == "team@airport.example"


def test_render_without_config_uses_placeholder(bins, workdir):
    spool, conf, body = make_env(bins, workdir, config=False)
    p = ms(bins, conf, spool, "enqueue", "--area", "invoice", "--to", "a@example.org",
           "--subject", "s", "--text", body)
    assert p.returncode == 0, p.stderr
    p = ms(bins, conf, spool, "render", p.stdout.strip())
    assert p.returncode == 0, p.stderr
    assert "From: sender@placeholder.invalid" in p.stdout
    assert "placeholder" in p.stderr and conf in p.stderr


def test_render_errors(bins, workdir):
    spool, conf, body = make_env(bins, workdir)
    assert ms(bins, conf, spool, "render", "1").returncode == 66  # no spool yet
    assert ms(bins, conf, spool, "purge").returncode == 0
    assert ms(bins, conf, spool, "render", "1").returncode == 66
    assert ms(bins, conf, spool, "render").returncode == 64
    # A row that reached the spool by SQL with a header injection is refused.
    con = sqlite3.connect(spool)
    with con:
        con.execute("INSERT INTO messages (area, subject, body_text) VALUES"
                    " ('invoice', 'Hallo' || char(13) || char(10) || 'Bcc: x@example.org', 't')")
        con.execute("INSERT INTO recipients (message_id, address) VALUES (1, 'a@example.org')")
    con.close()
    p = ms(bins, conf, spool, "render", "1")
    assert p.returncode == 65 and "subject" in p.stderr and "message 1" in p.stderr
    assert "Bcc: x@example.org" not in p.stdout


def fake_daemon(directory, code):
    path = os.path.join(directory, "mailspoold")
    with open(path, "w") as f:
        # ${0%/*}: no external commands, PATH may hold only this directory.
        f.write("#!/bin/sh\nprintf '%%s\\n' \"$@\" > \"${0%%/*}/args\"\nexit %d\n" % code)
    os.chmod(path, 0o755)
    return path


def test_test_runs_daemon_next_to_binary(bins, workdir):
    d = str(workdir)
    binary = os.path.join(d, "mailspool")
    shutil.copy(bins["mailspool"], binary)
    fake_daemon(d, 69)
    conf = os.path.join(d, "m.conf")
    p = run([binary, "-c", conf, "test", "--profile", "billing", "--to", "a@example.org"],
            env={"PATH": "/usr/bin:/bin"})
    assert p.returncode == 69, p.stderr
    with open(os.path.join(d, "args")) as f:
        assert f.read().split("\n")[:6] == ["-c", conf, "--test", "billing", "--to",
                                            "a@example.org"]


def test_test_finds_daemon_in_path_and_reports_absence(bins, workdir):
    d = str(workdir)
    binary = os.path.join(d, "mailspool")
    shutil.copy(bins["mailspool"], binary)
    pathdir = os.path.join(d, "bin")
    os.mkdir(pathdir)
    p = run([binary, "test", "--profile", "x", "--to", "a@example.org"],
            env={"PATH": pathdir, "MAILSPOOL_CONF": "/etc/x.conf"})
    assert p.returncode == 72 and "mailspoold" in p.stderr
    fake_daemon(pathdir, 0)
    p = run([binary, "test", "--profile", "x", "--to", "a@example.org"],
            env={"PATH": pathdir, "MAILSPOOL_CONF": "/etc/x.conf"})
    assert p.returncode == 0, p.stderr
    with open(os.path.join(pathdir, "args")) as f:
        assert f.read().split("\n")[:2] == ["-c", "/etc/x.conf"]
    assert run([binary, "test", "--profile", "x"]).returncode == 64
