"""The shipped logrotate file rotates mailspoold's log under load, losing
no line.

Owns: running the real logrotate(8) with conf/logrotate.d/mailspool (its
path, owner and postrotate command pointed at this test's daemon) while the
daemon delivers; checking that every delivered message has exactly one
`sent` line across the rotated and the new file, and that lines written
after the rotation land in the new file.
Never: touches /var/log or the host's logrotate state.
"""
import grp
import os
import pwd
import re
import shutil
import signal
import sqlite3
import stat
import subprocess

import pytest

from conftest import MAILSPOOL, MAILSPOOLD, ROOT, run
from mshelpers import wait_for

ROTATE = os.path.join(ROOT, "conf", "logrotate.d", "mailspool")
DEMO_CONF = os.path.join(ROOT, "conf", "demo.conf")

pytestmark = [
    pytest.mark.skipif(shutil.which("logrotate") is None,
                       reason="logrotate is not installed (Debian package logrotate)"),
    pytest.mark.skipif(not (os.access(MAILSPOOLD, os.X_OK) and os.access(MAILSPOOL, os.X_OK)),
                       reason="needs the built mailspoold and mailspool"),
]


def rotate_config(logdir, pid):
    """The shipped file, aimed at logdir, this user, and this daemon's pid."""
    with open(ROTATE, encoding="utf-8") as f:
        text = f.read()
    assert "/var/log/mailspool/*.log {" in text
    assert re.search(r"^\s*create 0640 mailspool mailspool$", text, re.M)
    assert re.search(r"^\s*systemctl kill --kill-who=main --signal=USR1 mailspoold\.service",
                     text, re.M)
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    text = text.replace("/var/log/mailspool/", logdir + "/")
    text = re.sub(r"create 0640 mailspool mailspool", "create 0640 %s %s" % (user, group), text)
    text = re.sub(r"systemctl kill .*$", "kill -USR1 %d" % pid, text, flags=re.M)
    return text


def sent_ids(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        return [int(m.group(1)) for m in re.finditer(r"^\S+ info sent id=(\d+) ", f.read(), re.M)]


def test_logrotate_under_load_loses_no_line(tmp_path, smtp_peer):
    peer = smtp_peer()
    logdir = str(tmp_path / "log")
    os.makedirs(logdir, mode=0o750)
    with open(DEMO_CONF, encoding="utf-8") as f:
        conf_text = (f.read().replace("@DEMODIR@", str(tmp_path))
                     .replace("@SMTPPORT@", str(peer.port)))
    conf_text = re.sub(r"^log_file\s*=.*$", "log_file = %s/mailspool.log" % logdir, conf_text,
                       flags=re.M)
    conf = tmp_path / "mailspool.conf"
    conf.write_text(conf_text)
    spool = str(tmp_path / "spool.db")
    log = os.path.join(logdir, "mailspool.log")

    def enqueue(n, tag):
        ids = []
        for i in range(n):
            p = run([MAILSPOOL, "-c", str(conf), "-s", spool, "enqueue", "--area", "report",
                     "--to", "r%d@example.org" % i, "--subject", "%s %d" % (tag, i),
                     "--text", "-"], input="Auswertung\n", check=0)
            ids.append(int(p.stdout.strip()))
        return ids

    first = enqueue(60, "vorher")
    err = open(tmp_path / "daemon.stderr", "wb")
    proc = subprocess.Popen([MAILSPOOLD, "-c", str(conf)], stdout=err, stderr=err)
    try:
        wait_for(lambda: proc.poll() is not None or len(sent_ids(log)) >= 10, timeout=60,
                 what="the first deliveries")
        assert proc.poll() is None, (tmp_path / "daemon.stderr").read_text()
        rconf = tmp_path / "logrotate.conf"
        rconf.write_text(rotate_config(logdir, proc.pid))
        os.chmod(rconf, 0o644)
        p = run(["logrotate", "-f", "-s", str(tmp_path / "logrotate.state"), str(rconf)])
        assert p.returncode == 0, p.stdout + p.stderr
        assert os.path.exists(log + ".1"), os.listdir(logdir)
        second = enqueue(20, "nachher")

        def all_sent():
            with sqlite3.connect(spool, timeout=30) as c:
                states = [r[0] for r in c.execute("SELECT state FROM messages")]
            return len(states) == len(first) + len(second) and set(states) == {"sent"}
        wait_for(all_sent, timeout=120, what="every message sent")
        # The sent line follows the spool commit; give the last one time to be written.
        wait_for(lambda: len(sent_ids(log + ".1") + sent_ids(log)) >= len(first + second),
                 timeout=30, what="every sent line")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
        err.close()
    assert rc == 0
    old, new = sent_ids(log + ".1"), sent_ids(log)
    assert sorted(old + new) == sorted(first + second), "lost or doubled sent lines"
    assert old, "nothing was logged before the rotation"
    assert set(second) <= set(new), "lines after the rotation must go to the new file"
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o640
