"""Shared pieces of the fault-matrix tests (tests/integration/test_faults_*.py,
issue 6 "Faults", results in docs/RELIABILITY.md).

Owns: the `daemons` fixture (every daemon a fault test started is stopped at
the end and must exit 0 without a sanitizer report), the Microsoft 365 profile
text for the Graph fake, and the bookkeeping every fault test ends with:
"every message arrived at least once, and every extra copy was announced in
the log as a possible duplicate".
Never: sleeps to let things settle (every wait polls with a deadline) or
injects faults itself (the fakes do that).
"""
import hashlib
import os
import re
import signal

import pytest

from conftest import BUILD, run
from mshelpers import Daemon, wait_for

SANITIZED = os.path.basename(BUILD.rstrip("/")).endswith("-san") or os.environ.get(
    "MAILSPOOL_SANITIZED") == "1"


@pytest.fixture
def daemons():
    """Daemons a test started; at teardown each is stopped and must exit 0
    (unless the test killed it) with no ASan/UBSan report."""
    started = []
    yield started
    for d in started:
        if d.proc is None:
            continue  # configured, never started
        killed = d.proc.returncode is not None
        rc = d.stop()
        text = d.stderr_text()
        if not killed:
            assert rc == 0, text
        assert "ERROR: AddressSanitizer" not in text and "runtime error" not in text, text


def make_daemon(daemons, workdir, profiles, areas=None, queue=None, daemon=None):
    """A configured daemon, not started yet; the fixture stops it at the end."""
    d = Daemon(workdir, profiles, areas=areas, queue=queue, daemon=daemon)
    daemons.append(d)
    return d


def start_daemon(daemons, workdir, profiles, areas=None, queue=None, daemon=None, env=None):
    return make_daemon(daemons, workdir, profiles, areas, queue, daemon).start(env=env)


def graph_profile(fake, certs, name="ppr", extra=""):
    """A Microsoft 365 profile pointing at the Graph fake (authority and Graph host)."""
    lines = ["[profile %s]" % name,
             "FromAddress = %s" % fake.mailbox,
             "365Client = %s" % fake.client_id,
             "365Tenant = %s" % fake.tenant,
             "365Secret = %s" % fake.secret,
             "365AuthorityHost = %s" % fake.authority,
             "365GraphHost = %s" % fake.base_url,
             "CAFile = %s" % certs.ca]
    return "\n".join(lines) + "\n" + extra + "\n"


def write_random(path, size, seed):
    """size bytes of deterministic pseudo-random data (every byte value)."""
    out = bytearray()
    block = hashlib.sha256(b"fault-%d" % seed).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    with open(path, "wb") as f:
        f.write(bytes(out[:size]))
    return bytes(out[:size])


def enqueue_many(d, n, area, tag):
    """n messages through the public C API (tests/bench/enqueue_many), subjects
    "TAG message I"."""
    run([os.path.join(BUILD, "bench", "enqueue_many"), d.spool, str(n), area, tag],
        check=0, timeout=300)


def subject_ids(d):
    with d.db() as c:
        return {r["subject"]: r["id"] for r in c.execute("SELECT id, subject FROM messages")}


def alive(d):
    assert d.proc.poll() is None, "daemon died: %s" % d.stderr_text()[-3000:]
    return True


def ids_in(lines):
    return {int(x) for l in lines for x in re.findall(r"\bid=(\d+)", l)}


def announced_duplicates(d):
    """Ids the daemon said may be duplicated: `possible-duplicate id=N` (the
    reply to the final "." never came) and `requeued id=N possible-duplicate=yes`
    (a start found it in state sending)."""
    marked = [l for l in d.lines_of("requeued") if "possible-duplicate=yes" in l]
    return ids_in(d.lines_of("possible-duplicate")) | ids_in(marked)


def check_arrivals(d, subjects_seen, what):
    """Every message of the spool arrived at least once; every extra copy
    belongs to a message the log announced as a possible duplicate. Returns
    (messages, extra copies)."""
    ids = subject_ids(d)
    got = {}
    for s in subjects_seen:
        got[s] = got.get(s, 0) + 1
    missing = sorted(set(ids) - set(got))
    assert not missing, "%s: never arrived: %s" % (what, missing[:10])
    stray = sorted(set(got) - set(ids))
    assert not stray, "%s: arrived but never enqueued: %s" % (what, stray[:10])
    announced = announced_duplicates(d)
    dups = {s: n - 1 for s, n in got.items() if n > 1}
    for s in dups:
        assert ids[s] in announced, "%s: unannounced duplicate of message %d" % (what, ids[s])
    assert not any(st != "sent" for st in d.states().values()), d.states()
    return len(ids), sum(dups.values())


def reload(d):
    n = len(d.lines_of("reload"))
    d.signal(signal.SIGHUP)
    wait_for(lambda: len(d.lines_of("reload")) > n, timeout=20, what="reload")
