"""make bench's own machinery, on loopback: the steps that need no Postfix
tools (those come from a Debian mirror, which make check never contacts).

Runs tests/bench/bench.py --quick with enqueue, queue and graph into a
private work directory and report file, and checks that every figure of
those steps was measured (a number, not "n/a"), that nothing was fetched,
and that the report file has its sections. It checks no threshold: the
benchmark never fails on one, and make check's machine is not the
benchmark's.
"""
import os
import re
import shutil

import pytest

from conftest import BUILD, ROOT, run

pytestmark = pytest.mark.slow  # 10-20 s of a loaded machine; not in the sanitizer pass

BENCH = os.path.join(ROOT, "tests", "bench", "bench.py")


def _row(table, figure, workload):
    for line in table.splitlines():
        if line.startswith(figure) and workload in line:
            return line
    raise AssertionError("no row %r %r in:\n%s" % (figure, workload, table))


def test_bench_quick_steps_without_postfix(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    # An apt-get first on PATH that only leaves a mark: these steps must not
    # fetch Postfix's tools.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    mark = tmp_path / "apt-get-was-run"
    (bindir / "apt-get").write_text("#!/bin/sh\ntouch '%s'\nexit 1\n" % mark)
    (bindir / "apt-get").chmod(0o755)
    env = {"PATH": "%s:%s" % (bindir, os.environ.get("PATH", "/usr/bin:/bin"))}
    work = tmp_path / "work"
    try:
        p = run(["/usr/bin/python3", BENCH, "--build", BUILD, "--quick", "--only",
                 "enqueue,queue,graph", "--no-profile", "--work", str(work),
                 "--out", str(out)], env=env, timeout=600)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the 100,000-message spools: ~450 MB
    assert p.returncode == 0, p.stdout + p.stderr
    assert not mark.exists(), "the benchmark ran apt-get for steps that need no Postfix"
    table = p.stdout
    number = re.compile(r"\d+(\.\d+)? (msg/s|MB|s|us/msg)")
    for figure, workload in (("5 enqueue C API", "W1"), ("5 enqueue CLI", "W1"),
                             ("7 idle RSS", "100,000"), ("7 start-up", "100,000"),
                             ("8 queue size", "1000 queued"), ("8 queue size", "100000 queued"),
                             ("Graph (fake)", "W1"), ("Graph (fake)", "W2")):
        row = _row(table, figure, workload)
        cells = re.split(r"\s{2,}", row)
        assert number.search(cells[2]), "not measured: %s" % row
    doc = out.read_text(encoding="utf-8")
    for heading in ("## Machine", "## Figures", "## Targets missed", "## Optimisation log"):
        assert heading in doc, heading
    assert "Graph (fake)" in doc
