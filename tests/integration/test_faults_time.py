"""Fault matrix, time (issue 6 "Faults"; docs/RELIABILITY.md): a jump of the
wall clock while mailspoold runs neither fires retries early nor starves them.

The daemon runs under libfaketime (Debian package libfaketime, in
tests/deps.sh) with FAKETIME_TIMESTAMP_FILE and FAKETIME_NO_CACHE=1, so the
test moves the daemon's wall clock by rewriting one file; the monotonic clock
stays real (FAKETIME_DONT_FAKE_MONOTONIC=1), as after `date -s` or an NTP step.
Producers (the CLI here) keep the real clock. Every check that the jump took
effect reads the daemon's own log timestamps, so the tests cannot pass with a
libfaketime that silently did nothing.
"""
import datetime
import os

import pytest

from faulthelpers import SANITIZED, alive, daemons, start_daemon  # noqa: F401
from mshelpers import smtp_profile, wait_for

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
DAY = 86400

pytestmark = pytest.mark.skipif(not os.path.exists(LIBFAKETIME),
                                reason="libfaketime is not installed (tests/deps.sh installs it)")


def faketime_env(rc):
    env = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": rc, "FAKETIME_NO_CACHE": "1",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_RESET": "1"}
    if SANITIZED:
        # ASan wants to be first in the link order; libfaketime only wraps
        # time functions, which ASan does not need to see first.
        env["ASAN_OPTIONS"] = "verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", "")
    return env


def remove_stale_faketime_shm():
    """libfaketime keeps /dev/shm/faketime_shm_PID and sem.faketime_sem_PID
    while a process runs and removes them at a normal exit; after a SIGKILL
    they stay, and a later process that gets the same pid fails to start
    ("shm_open failed: File exists"). Removes those of processes that are gone."""
    for name in os.listdir("/dev/shm"):
        for prefix in ("faketime_shm_", "sem.faketime_sem_"):
            pid = name[len(prefix):]
            if name.startswith(prefix) and pid.isdigit() and not os.path.exists("/proc/" + pid):
                try:
                    os.remove(os.path.join("/dev/shm", name))
                except OSError:
                    pass


def set_offset(rc, spec):
    tmp = rc + ".tmp"
    with open(tmp, "w") as f:
        f.write(spec + "\n")
    os.replace(tmp, rc)


def log_time(line):
    """The daemon's wall clock when it wrote this log line (Unix seconds)."""
    return datetime.datetime.fromisoformat(line.split(" ", 1)[0]).timestamp()


def sent_line(d, mid):
    lines = [l for l in d.lines_of("sent") if " id=%d " % mid in l]
    return lines[0] if lines else None


def deferred_once(d, mid):
    wait_for(lambda: d.message(mid)["state"] == "queued" and d.message(mid)["attempts"] == 1,
             what="first attempt deferred")


def start_faked(smtp_peer, workdir, daemons, retry):
    remove_stale_faketime_shm()
    rc = str(workdir / "faketime.rc")
    set_offset(rc, "+0")
    peer = smtp_peer(tempfail_first=1)  # 451 to the first message's final dot
    d = start_daemon(daemons, workdir, smtp_profile("relay", peer.port),
                     queue={"retry_min": retry, "retry_max": retry, "lifetime": "7d"},
                     env=faketime_env(rc))
    return rc, peer, d


def test_wall_clock_jump_forward_does_not_fire_retries(smtp_peer, workdir, daemons):
    rc, peer, d = start_faked(smtp_peer, workdir, daemons, "60s")
    mid = d.enqueue("a@example.org", subject="deferred")
    deferred_once(d, mid)
    set_offset(rc, "+1d")
    # A new message makes the daemon run a scheduler pass after the jump:
    # the pass must send it and leave the deferred one alone (59 s to go).
    probe = d.enqueue("b@example.org", subject="probe")
    d.wait_states("sent", [probe], timeout=20)
    jumped = log_time(sent_line(d, probe)) - log_time(d.lines_of("deferred")[0])
    assert jumped > DAY - 600, "libfaketime did not move the daemon's clock"
    row = d.message(mid)
    assert (row["state"], row["attempts"]) == ("queued", 1), row
    assert [m["message"]["subject"] for m in peer.messages()] == ["probe"]
    assert alive(d)
    assert d.lines_of("clock-jump"), "the jump is not logged"
    # The message is not stuck: an operator's retry sends it now.
    d.cli("retry", str(mid), check=0)
    d.wait_states("sent", [mid], timeout=20)
    assert [m["message"]["subject"] for m in peer.messages()] == ["probe", "deferred"]


def test_wall_clock_jump_backward_does_not_starve_retries(smtp_peer, workdir, daemons):
    rc, peer, d = start_faked(smtp_peer, workdir, daemons, "3s")
    mid = d.enqueue("a@example.org", subject="deferred")
    deferred_once(d, mid)
    set_offset(rc, "-1h")
    # Due 3 s after the deferral by the monotonic clock; an hour and 3 s
    # later by a wall clock that was set back an hour.
    d.wait_states("sent", [mid], timeout=30)
    went_back = log_time(d.lines_of("deferred")[0]) - log_time(sent_line(d, mid))
    assert went_back > 3600 - 600, "libfaketime did not move the daemon's clock"
    assert [m["message"]["subject"] for m in peer.messages()] == ["deferred"]
    assert [a["result"] for a in d.attempts(mid)] == ["deferred", "sent"]
    assert alive(d)
    assert d.lines_of("clock-jump"), "the jump is not logged"
