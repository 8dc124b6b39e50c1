"""The plain-SQL producer examples of docs/SPOOL.md, run exactly as written
(only the file paths are replaced), so the documentation and the schema
cannot drift apart; `mailspool show` then displays what they enqueued.
"""
import json
import os
import re
import shutil
import sqlite3
import subprocess

import pytest

from conftest import ROOT, run

DOC = os.path.join(ROOT, "docs", "SPOOL.md")
SQLITE3 = shutil.which("sqlite3")


def doc_block(marker, lang):
    """The first ```lang block after the <!-- marker ... --> comment."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- %s\b[^>]*-->\s*```%s\n(.*?)```" % (re.escape(marker), lang), text,
                  re.S)
    assert m, "docs/SPOOL.md lost its %s block" % marker
    return m.group(1)


def fresh_spool(bins, workdir):
    """A spool created the way the doc says (a writing mailspool command)."""
    spool = os.path.join(str(workdir), "spool.db")
    conf = os.path.join(str(workdir), "absent.conf")
    p = run([bins["mailspool"], "-c", conf, "-s", spool, "purge"])
    assert p.returncode == 0, p.stderr
    return spool, conf


def show_json(bins, conf, spool, *args):
    p = run([bins["mailspool"], "-c", conf, "-s", spool, "show", "--json"] + list(args))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.skipif(SQLITE3 is None, reason="sqlite3 command-line tool not installed")
def test_sqlite3_cli_example(bins, workdir):
    spool, conf = fresh_spool(bins, workdir)
    pdf = os.path.join(str(workdir), "2026-0042.pdf")
    data = b"%PDF-1.4\n" + bytes(range(256)) * 40
    with open(pdf, "wb") as f:
        f.write(data)
    sql = doc_block("producer-sql-example", "sql")
    assert "/srv/out/2026-0042.pdf" in sql
    sql = sql.replace("/srv/out/2026-0042.pdf", pdf)
    p = subprocess.run([SQLITE3, "-bail", spool], input=sql, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""

    # mailspool show finds it by ref and shows every part.
    p = run([bins["mailspool"], "-c", conf, "-s", spool, "show", "--ref", "invoice-2026-0042"])
    assert p.returncode == 0, p.stderr
    assert "Rechnung 2026-0042" in p.stdout
    assert "Bärbel Groß <b@example.org>" in p.stdout
    assert "bcc:" in p.stdout and "archiv@airport.example" in p.stdout
    assert "X-Airport-Ref: INV-2026-0042" in p.stdout
    assert "queued" in p.stdout
    shown = show_json(bins, conf, spool, "--ref", "invoice-2026-0042")
    assert shown["state"] == "queued" and shown["area"] == "invoice"
    assert shown["text"] == "Sehr geehrte Damen und Herren,\nanbei Ihre Rechnung."
    att = shown["attachments"][0]
    assert att["name"] == "Rechnung 2026-0042.pdf"
    assert att["size"] == len(data)  # filled in by the schema's trigger
    assert att["sha256"] == ""       # the plain-SQL producer did not compute one

    # The stored row is a valid message: render composes it.
    p = run([bins["mailspool"], "-c", conf, "-s", spool, "render", str(shown["id"])])
    assert p.returncode == 0, p.stderr
    assert "Subject: Rechnung 2026-0042" in p.stdout

    # Running the same script again violates UNIQUE (area, ref): nothing added.
    p = subprocess.run([SQLITE3, "-bail", spool], input=sql, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0 and "UNIQUE" in p.stderr
    con = sqlite3.connect(spool)
    assert con.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM recipients").fetchone()[0] == 2
    assert con.execute("SELECT count(*) FROM attachments").fetchone()[0] == 1
    con.close()


def test_python_example(bins, workdir):
    spool, conf = fresh_spool(bins, workdir)
    code = doc_block("producer-python-example", "python")
    assert '"/var/lib/mailspool/spool.db"' in code
    code = code.replace('"/var/lib/mailspool/spool.db"', repr(spool))
    exec(compile(code, "docs/SPOOL.md", "exec"), {})
    p = run([bins["mailspool"], "-c", conf, "-s", spool, "list", "--json"])
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert len(rows) == 1
    shown = show_json(bins, conf, spool, str(rows[0]["id"]))
    assert shown["subject"] == "Monatsauswertung November"
    assert shown["html"] == "<p>Siehe Anhang.</p>"
    assert shown["recipients"] == [{"kind": "to", "address": "leitung@airport.example",
                                    "state": None}]
    assert shown["attachments"][0]["size"] == len(b"monat;flug\n11;42\n")


def test_sql_producer_cannot_break_rules(bins, workdir):
    """The schema itself refuses what the doc forbids producers to write."""
    spool, _ = fresh_spool(bins, workdir)
    con = sqlite3.connect(spool)
    con.execute("PRAGMA foreign_keys = ON")
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO messages (area, subject, state) VALUES ('a', 's', 'bogus')")
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO recipients (message_id, address) VALUES (999, 'a@b.example')")
    con.execute("INSERT INTO messages (area, subject, body_text) VALUES ('a', 's', 't')")
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO recipients (message_id, kind, address) VALUES (1, 'x', 'a@b')")
    con.rollback()
    con.close()
