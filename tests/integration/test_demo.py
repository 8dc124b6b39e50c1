"""`make demo` runs the product end to end: all five mail areas delivered, exit 0."""
import os

from conftest import BUILD, ROOT, run


def test_demo_delivers_all_five():
    p = run(["/usr/bin/python3", os.path.join(ROOT, "tests", "demo.py"), "--build", BUILD],
            timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "5 of 5 messages delivered" in p.stdout
    assert "mailspoold stopped (exit 0)" in p.stdout
    for area in ("invoice", "report", "border", "ppr", "reservation"):
        assert "area=%s " % area in p.stdout
    assert "Rechnung 2026-0042.pdf (application/pdf" in p.stdout
    assert "Jörg Schäfer" in p.stdout
