#!/usr/bin/python3
"""make demo — mailspool end to end on loopback, with nothing external.

Starts a local capture SMTP server (tests/fakes/smtp_peer.py, aiosmtpd) on
127.0.0.1, runs mailspoold with conf/demo.conf, enqueues one message per mail
area of the source document (invoice with a PDF attachment, periodic report,
border notification, PPR confirmation, reservation confirmation) through the
real `mailspool` CLI, waits until all are delivered, shows the log lines,
`mailspool status` and what the server received, and stops everything.
Exits 0 only when all five messages arrived.
"""
import argparse
import email
import email.policy
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
from smtp_ctl import SmtpPeer  # noqa: E402

MESSAGES = [
    ("invoice", "Rechnung 2026-0042 – Landegebühren November",
     "Sehr geehrte Damen und Herren,\n\nanbei erhalten Sie die Rechnung für die "
     "Landegebühren im November.\n\nMit freundlichen Grüßen\nIhre Buchhaltung\n",
     "Müller Flugdienst GmbH <buchhaltung@mueller-flug.example>", True),
    ("report", "Monatsauswertung November: Flugbewegungen & Gebühren",
     "Die periodische Auswertung für November liegt bei: 1.284 Flugbewegungen.\n",
     "Geschäftsführung <gf@airport.example>", False),
    ("border", "Grenzanmeldung D-EABC – Ankunft 05.12. 09:30 aus Zürich",
     "Grenzanmeldung für D-EABC, Ankunft 05.12.2026 09:30 UTC, 3 Personen an Bord.\n",
     "Bundespolizei Flughafen <grenze@bundespolizei.example>", False),
    ("ppr", "PPR-Bestätigung D-EABC – Slot 05.12. 09:30",
     "Ihre PPR-Anfrage für D-EABC wurde bestätigt. Slot: 05.12.2026 09:30 UTC.\n",
     "Jörg Schäfer <pilot@schaefer-aviation.example>", False),
    ("reservation", "Reservierungsbestätigung Hangarplatz H2 – 05.–07.12.",
     "Ihre Reservierung für Hangarplatz H2 vom 05. bis 07.12.2026 ist bestätigt.\n",
     "Françoise Weiß <f.weiss@example.org>", False),
]


def sh(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def make_pdf(path):
    """A small, valid one-page PDF (the invoice attachment)."""
    body = b"BT /F1 18 Tf 72 720 Td (Rechnung 2026-0042) Tj ET"
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(body) + body + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    with open(path, "wb") as f:
        f.write(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--keep", action="store_true", help="keep the demo directory")
    a = ap.parse_args()
    mailspool = os.path.join(a.build, "mailspool")
    mailspoold = os.path.join(a.build, "mailspoold")
    demo = tempfile.mkdtemp(prefix="mailspool-demo-")
    peer = SmtpPeer(os.path.join(demo, "smtp-capture"))
    daemon = None
    ok = False
    try:
        peer.start()
        print("== capture SMTP server (aiosmtpd) on 127.0.0.1:%d" % peer.port)
        conf = os.path.join(demo, "mailspool.conf")
        with open(os.path.join(ROOT, "conf", "demo.conf"), encoding="utf-8") as f:
            text = f.read().replace("@DEMODIR@", demo).replace("@SMTPPORT@", str(peer.port))
        with open(conf, "w", encoding="utf-8") as f:
            f.write(text)
        chk = sh([mailspoold, "--check", "-c", conf])
        print("== mailspoold --check\n" + chk.stdout.strip())
        if chk.returncode != 0:
            print(chk.stderr)
            return 1
        log = os.path.join(demo, "mailspool.log")
        daemon = subprocess.Popen([mailspoold, "-c", conf], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not (os.path.exists(log) and " ready " in open(log, encoding="utf-8").read()):
            if daemon.poll() is not None or time.monotonic() > deadline:
                print("mailspoold did not start: " + daemon.stderr.read())
                return 1
            time.sleep(0.05)
        pdf = os.path.join(demo, "Rechnung-2026-0042.pdf")
        make_pdf(pdf)
        print("== enqueue (mailspool enqueue, one per mail area)")
        for area, subject, text, to, attach in MESSAGES:
            args = [mailspool, "-c", conf, "enqueue", "--area", area, "--to", to,
                    "--subject", subject, "--text", "-", "--ref", "demo-" + area]
            if attach:
                args += ["--attach", pdf + ";name=Rechnung 2026-0042.pdf;type=application/pdf"]
            p = sh(args, input=text)
            if p.returncode != 0:
                print("enqueue %s failed (%d): %s" % (area, p.returncode, p.stderr))
                return 1
            print("  %-12s id %s  %s" % (area, p.stdout.strip(), subject))
        peer.wait_for(len(MESSAGES), timeout=30)
        deadline = time.monotonic() + 20
        while open(log, encoding="utf-8").read().count(" sent ") < len(MESSAGES):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(1.5)  # the daemon publishes profile state for `status` once a second
        print("== log (%s)" % log)
        print(open(log, encoding="utf-8").read().rstrip())
        st = sh([mailspool, "-c", conf, "status"])
        print("== mailspool status\n" + st.stdout.rstrip())
        print("== received by the capture server")
        got = peer.messages()
        for m in got:
            msg = m["message"]
            atts = ["%s (%s, %d bytes)" % (p.get_filename(), p.get_content_type(),
                                            len(p.get_payload(decode=True)))
                    for p in msg.iter_attachments()]
            print("  From: %s\n  To: %s\n  Subject: %s%s\n" % (
                msg["from"], msg["to"], msg["subject"],
                ("\n  Attachments: " + ", ".join(atts)) if atts else ""))
        ok = len(got) == len(MESSAGES)
        print("== %d of %d messages delivered" % (len(got), len(MESSAGES)))
    finally:
        if daemon and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            rc = daemon.wait(timeout=30)
            print("== mailspoold stopped (exit %d)" % rc)
            ok = ok and rc == 0
        peer.kill()
        if a.keep:
            print("demo directory kept: " + demo)
        else:
            shutil.rmtree(demo, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
