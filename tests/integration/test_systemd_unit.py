"""The systemd integration: unit, sysusers.d and tmpfiles.d, and the sandbox.

Owns: `systemd-analyze verify` and `security --offline` on the unit as
`make install` writes it; creating the user, group and directories in a
scratch root with systemd-sysusers and systemd-tmpfiles; and running the
real resolver and the real daemon inside the unit's seccomp sandbox
(SystemCallFilter, RestrictAddressFamilies, MemoryDenyWriteExecute),
rebuilt here with libseccomp the way systemd builds it, since no systemd
runs as PID 1 in a test.
Never: touches the host's users, /etc or running services.
"""
import ctypes
import ctypes.util
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import BUILD, MAILSPOOL, MAILSPOOLD, ROOT, run

UNIT_IN = os.path.join(ROOT, "systemd", "mailspoold.service.in")
SYSUSERS = os.path.join(ROOT, "systemd", "mailspool.sysusers")
TMPFILES = os.path.join(ROOT, "systemd", "mailspool.tmpfiles")
DEMO_CONF = os.path.join(ROOT, "conf", "demo.conf")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
MAX_EXPOSURE = 2.0

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (package systemd)")


def unit_settings(key):
    """Every value of key= in the unit, in order."""
    with open(UNIT_IN, encoding="utf-8") as f:
        return [l.split("=", 1)[1].strip() for l in f if l.startswith(key + "=")]


@pytest.fixture
def unit(tmp_path):
    """The unit rendered as `make install` renders it, with ExecStart pointing
    at an existing mailspoold (the built one, else a stand-in executable) and
    the man pages on MANPATH so that Documentation= resolves."""
    sbindir = BUILD if os.access(MAILSPOOLD, os.X_OK) else str(tmp_path / "sbin")
    if sbindir != BUILD:
        os.makedirs(sbindir)
        shutil.copy("/bin/true", os.path.join(sbindir, "mailspoold"))
    with open(UNIT_IN, encoding="utf-8") as f:
        text = f.read().replace("@SBINDIR@", sbindir).replace("@SYSCONFDIR@", "/etc")
    assert not re.search(r"@[A-Z]+@", text), "an unsubstituted @VAR@ is left in the unit"
    path = tmp_path / "mailspoold.service"
    path.write_text(text)
    man = tmp_path / "man"
    for sec in "158":
        os.makedirs(man / ("man" + sec))
    for page in ["mailspool.1", "mailspool.conf.5", "mailspoold.8"]:
        shutil.copy(os.path.join(ROOT, "man", page), man / ("man" + page[-1]) / page)
    return str(path), {"MANPATH": str(man) + ":", "SYSTEMD_LOG_LEVEL": "notice"}


def exposure(unit_path, env=None):
    p = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", unit_path], env=env)
    m = re.search(r"Overall exposure level for mailspoold\.service: (\d+\.\d+)", p.stdout)
    assert m, "no exposure figure in: %s %s" % (p.stdout[-500:], p.stderr)
    return float(m.group(1)), p


@needs_analyze
def test_unit_verifies(unit):
    path, env = unit
    p = run(["systemd-analyze", "verify", path], env=env)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr


@needs_analyze
def test_unit_exposure_is_ok_and_as_documented(unit):
    path, env = unit
    level, p = exposure(path, env)
    assert level <= MAX_EXPOSURE, p.stdout
    with open(os.path.join(ROOT, "docs", "ADMIN.md"), encoding="utf-8") as f:
        doc = re.search(r"Overall exposure level for mailspoold\.service: (\d+\.\d)", f.read())
    assert doc and float(doc.group(1)) == level, \
        "docs/ADMIN.md states %s, systemd-analyze measures %.1f: update the docs" % (
            doc and doc.group(1), level)


@needs_analyze
def test_exposure_check_can_fail(unit, tmp_path):
    """The same measurement on a unit without its sandbox is far above 2.0."""
    path, env = unit
    with open(path, encoding="utf-8") as f:
        bare = "".join(l for l in f if not l.split("=", 1)[0] in {
            "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
            "PrivateUsers", "SystemCallFilter", "RestrictAddressFamilies", "CapabilityBoundingSet",
            "ProtectKernelTunables", "ProtectKernelModules", "RestrictNamespaces"})
    other = tmp_path / "bare" / "mailspoold.service"
    os.makedirs(other.parent)
    other.write_text(bare)
    level, _ = exposure(str(other), env)
    assert level > MAX_EXPOSURE


def test_unit_contract():
    """The settings SPEC 8 and the ownership model depend on."""
    want = {"Type": "notify", "NotifyAccess": "main", "User": "mailspool",
            "Group": "mailspool", "StateDirectory": "mailspool", "LogsDirectory": "mailspool",
            "ConfigurationDirectory": "mailspool", "StateDirectoryMode": "2770",
            "UMask": "0007", "Restart": "on-failure", "ExecReload": "/bin/kill -HUP $MAINPID",
            "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6"}
    for k, v in want.items():
        assert unit_settings(k) == [v], k
    assert unit_settings("ExecStart") == [
        "@SBINDIR@/mailspoold -c @SYSCONFDIR@/mailspool/mailspool.conf"]
    assert int(unit_settings("WatchdogSec")[0].rstrip("s")) > 0
    # TimeoutStopSec above the default shutdown_timeout of 10s.
    assert int(unit_settings("TimeoutStopSec")[0].rstrip("s")) > 10


# ---- sysusers.d and tmpfiles.d ------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="creating owners in a scratch root needs root")
@pytest.mark.skipif(not (shutil.which("systemd-sysusers") and shutil.which("systemd-tmpfiles")),
                    reason="systemd-sysusers / systemd-tmpfiles not installed (package systemd)")
def test_sysusers_and_tmpfiles_create_the_layout(tmp_path):
    root = tmp_path / "root"
    for d in ["etc", "usr/lib/sysusers.d", "usr/lib/tmpfiles.d"]:
        os.makedirs(root / d)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    shutil.copy(SYSUSERS, root / "usr/lib/sysusers.d/mailspool.conf")
    shutil.copy(TMPFILES, root / "usr/lib/tmpfiles.d/mailspool.conf")
    run(["systemd-sysusers", "--root", str(root)], check=0)
    users = {l.split(":")[0]: l.split(":") for l in (root / "etc/passwd").read_text().splitlines()}
    groups = {l.split(":")[0]: l.split(":") for l in (root / "etc/group").read_text().splitlines()}
    assert "mailspool" in users and "mailspool" in groups
    uid, gid = int(users["mailspool"][2]), int(groups["mailspool"][2])
    assert int(users["mailspool"][3]) == gid and users["mailspool"][5] == "/var/lib/mailspool"
    assert users["mailspool"][6] in ("/usr/sbin/nologin", "/sbin/nologin")
    assert 0 < uid < 1000, "a system user"
    run(["systemd-tmpfiles", "--root", str(root), "--create"], check=0)
    want = {"var/lib/mailspool": (0o2770, uid, gid, True),
            "var/lib/mailspool/spool.db": (0o660, uid, gid, False),
            "var/log/mailspool": (0o750, uid, gid, True),
            "etc/mailspool": (0o750, 0, gid, True),
            "etc/mailspool/secrets": (0o700, uid, gid, True)}
    for rel, (mode, owner, group, is_dir) in want.items():
        st = os.stat(root / rel)
        assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == (oct(mode), owner, group), rel
        assert os.path.isdir(root / rel) == is_dir, rel
    # The pre-created empty spool.db is a valid, empty SQLite database.
    assert os.path.getsize(root / "var/lib/mailspool/spool.db") == 0


# ---- the seccomp sandbox -------------------------------------------------------

def filter_groups():
    """{"@group": [entries]} as `systemd-analyze syscall-filter` lists them."""
    out = run(["systemd-analyze", "syscall-filter", "--no-pager"], check=0).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), [])
        elif cur is not None and line.startswith("    ") and not line.strip().startswith("#"):
            cur.append(line.strip())
    return groups


def expand(names, groups):
    out = set()
    for n in names:
        out |= expand(groups[n], groups) if n.startswith("@") else {n}
    return out


def unit_syscalls():
    """The allow list SystemCallFilter= lines of the unit produce."""
    groups = filter_groups()
    allowed = expand(["@default"], groups)
    for value in unit_settings("SystemCallFilter"):
        if value.startswith("~"):
            allowed -= expand(value[1:].split(), groups)
        else:
            allowed |= expand(value.split(), groups)
    return sorted(allowed)


def unit_families():
    fams = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17}
    return sorted(fams[f] for f in unit_settings("RestrictAddressFamilies")[0].split())


# Runs argv under a seccomp filter like systemd's for this unit: the syscall
# allow list (others fail with EPERM, SystemCallErrorNumber=EPERM), socket()
# of other address families failing with EAFNOSUPPORT, and
# MemoryDenyWriteExecute's rules. Arguments: JSON {"allow", "families",
# "mdwe"}, then the command.
LAUNCHER = r'''
import ctypes, errno, json, os, sys
spec = json.loads(sys.argv[1]); argv = sys.argv[2:]
lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]
lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                       ctypes.c_uint, ctypes.POINTER(Cmp)]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
ALLOW, EQ, GE, MASKED_EQ = 0x7fff0000, 4, 5, 7
def ERRNO(e): return 0x00050000 | e
def nr(name): return lib.seccomp_syscall_resolve_name(name.encode())
def rule(ctx, action, name, *cmps):
    n = nr(name)
    if n == -1:
        return
    arr = (Cmp * max(1, len(cmps)))(*[Cmp(*c) for c in cmps])
    rc = lib.seccomp_rule_add_array(ctx, action, n, len(cmps), arr if cmps else None)
    if rc != 0 and cmps:
        sys.exit("seccomp rule for %s failed: %d" % (name, rc))
# 1. RestrictAddressFamilies= and MemoryDenyWriteExecute=: default allow.
ctx = lib.seccomp_init(ALLOW)
fams = set(spec["families"])
for f in range(0, 64):
    if f not in fams:
        rule(ctx, ERRNO(errno.EAFNOSUPPORT), "socket", (0, EQ, f, 0))
rule(ctx, ERRNO(errno.EAFNOSUPPORT), "socket", (0, GE, 64, 0))
if spec["mdwe"]:
    rule(ctx, ERRNO(errno.EPERM), "mmap", (2, MASKED_EQ, 6, 6))     # PROT_WRITE|PROT_EXEC
    rule(ctx, ERRNO(errno.EPERM), "mprotect", (2, MASKED_EQ, 4, 4))  # PROT_EXEC
    rule(ctx, ERRNO(errno.EPERM), "pkey_mprotect", (2, MASKED_EQ, 4, 4))
    rule(ctx, ERRNO(errno.EPERM), "shmat", (2, MASKED_EQ, 0o100000, 0o100000))  # SHM_EXEC
assert lib.seccomp_load(ctx) == 0, "seccomp_load (families) failed"
# 2. SystemCallFilter=: allow list, EPERM for the rest.
if spec["allow"]:
    ctx = lib.seccomp_init(ERRNO(errno.EPERM))
    for name in spec["allow"]:
        rule(ctx, ALLOW, name)
    assert lib.seccomp_load(ctx) == 0, "seccomp_load (syscalls) failed"
os.execv(argv[0], argv)
'''


def sandboxed(argv, syscalls=True):
    import json
    if ctypes.util.find_library("seccomp") is None:
        pytest.skip("libseccomp is not installed")
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (needed for the syscall groups)")
    spec = {"allow": unit_syscalls() if syscalls else [], "families": unit_families(),
            "mdwe": unit_settings("MemoryDenyWriteExecute") == ["yes"]}
    return [PYTHON, "-c", LAUNCHER, json.dumps(spec)] + list(argv)


PROBE = r'''
import errno, os, socket, sys
what = sys.argv[1]
try:
    if what == "netlink":
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    elif what == "setuid":
        os.setuid(0)
    elif what == "affinity":
        os.sched_setaffinity(0, {0})
    print("allowed")
except OSError as e:
    print(errno.errorcode[e.errno])
'''


@pytest.mark.parametrize("what,want", [("netlink", "EAFNOSUPPORT"), ("setuid", "EPERM"),
                                       ("affinity", "EPERM")])
def test_sandbox_refuses_what_the_unit_refuses(what, want):
    """Positive control: the rebuilt sandbox really bites."""
    p = run(sandboxed([PYTHON, "-c", PROBE, what]), check=0)
    assert p.stdout.strip() == want


HOSTS_PROBE = r'''
import socket, sys
name = sys.argv[1]
for flags in (0, socket.AI_ADDRCONFIG):
    res = socket.getaddrinfo(name, 25, type=socket.SOCK_STREAM, flags=flags)
    print(len(res), sorted({r[4][0] for r in res}))
'''


def test_resolver_works_without_netlink():
    """glibc's getaddrinfo (what libcurl's resolver calls) asks rtnetlink for
    local addresses (AI_ADDRCONFIG, sorting); refused, it falls back. So the
    unit needs no AF_NETLINK."""
    p = run(sandboxed([PYTHON, "-c", HOSTS_PROBE, "localhost"]), check=0)
    assert "127.0.0.1" in p.stdout, p.stdout + p.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="a private /etc/hosts needs root and unshare")
def test_resolver_sorts_several_addresses_without_netlink(tmp_path):
    """Several addresses for one name take glibc's RFC 3484 sorting path,
    the other user of the netlink socket."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.2 multi.test\n::1 multi.test\n"
                     "127.0.0.3 multi.test\n")
    inner = " ".join("'%s'" % a.replace("'", "'\\''")
                     for a in sandboxed([PYTHON, "-c", HOSTS_PROBE, "multi.test"]))
    p = run(["unshare", "-m", "sh", "-c", "mount --bind %s /etc/hosts && exec %s" % (hosts, inner)])
    if p.returncode != 0 and "mount" in p.stderr:
        pytest.skip("cannot bind-mount a private /etc/hosts here: %s" % p.stderr.strip())
    assert p.returncode == 0, p.stderr
    assert "'127.0.0.2'" in p.stdout and "'127.0.0.3'" in p.stdout, p.stdout


@pytest.mark.skipif(not (os.access(MAILSPOOLD, os.X_OK) and os.access(MAILSPOOL, os.X_OK)),
                    reason="needs the built mailspoold and mailspool")
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls-auth-credential"])
def test_daemon_delivers_inside_the_units_sandbox(tmp_path, smtp_peer, certs, tls):
    """conf/demo.conf, one message per mail area, the daemon under the unit's
    seccomp rules: everything arrives, the daemon stops cleanly. The TLS
    variant also runs OpenSSL in the sandbox and reads billing's password
    the way the unit hands it over (credential:, $CREDENTIALS_DIRECTORY)."""
    demo = tmp_path / "demo"
    os.makedirs(demo)
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    # Under ASan, LeakSanitizer stops the world with ptrace, which the unit's
    # SystemCallFilter refuses (as it would under systemd); every other test
    # checks for leaks.
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0"
    if tls:
        peer = smtp_peer(tls_mode="starttls", require_tls=True, auth_optional=True,
                         auth=("rechnung@airport.example", "Sommer 2026!"))
    else:
        peer = smtp_peer()
    with open(DEMO_CONF, encoding="utf-8") as f:
        text = f.read().replace("@DEMODIR@", str(demo)).replace("@SMTPPORT@", str(peer.port))
    if tls:
        text = text.replace("SMTPAuthReq     = NIL", "SMTPAuthReq = NIL\nSMTPTLS = starttls")
        text = re.sub(r"(\[profile billing\](?:\n[^\[\n][^\n]*)*?)\nSMTPAuthReq = NIL\n"
                      r"SMTPTLS = starttls",
                      "\\1\nUsername = rechnung@airport.example\n"
                      "Passwort = credential:billing-password\nSMTPAuthReq = SSL", text)
        text = text.replace("SMTPAuthReq = NIL\n", "SMTPAuthReq = NIL\nCAFile = %s\n" % certs.ca)
        text = text.replace("SMTPAuthReq = SSL", "SMTPAuthReq = SSL\nCAFile = %s" % certs.ca)
        creds = tmp_path / "credentials"
        os.makedirs(creds)
        (creds / "billing-password").write_text("Sommer 2026!\n")
        os.chmod(creds / "billing-password", 0o400)
        env["CREDENTIALS_DIRECTORY"] = str(creds)
        assert text.count("SMTPAuthReq = SSL") == 1 and text.count("CAFile") == 3, text
    conf = demo / "mailspool.conf"
    conf.write_text(text)
    os.chmod(conf, 0o600)
    spool = str(demo / "spool.db")
    areas = ["invoice", "report", "border", "ppr", "reservation", "lost-and-found"]
    for area in areas:
        run([MAILSPOOL, "-c", str(conf), "-s", spool, "enqueue", "--area", area,
             "--to", "Bärbel Groß <b@example.org>", "--subject", "Prüfung %s" % area,
             "--text", "-"], input="Grüße aus dem Sandkasten\n", check=0)
    err = open(demo / "daemon.stderr", "wb")
    proc = subprocess.Popen(sandboxed([MAILSPOOLD, "-c", str(conf)]), stdout=err, stderr=err,
                            env=env)
    try:
        got = peer.wait_for(len(areas), timeout=60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
        err.close()
    log = (demo / "mailspool.log").read_text(encoding="utf-8", errors="replace")
    stderr = (demo / "daemon.stderr").read_text(encoding="utf-8", errors="replace")
    assert rc == 0, "exit %s\n%s\n%s" % (rc, stderr, log)
    assert sorted(m["message"]["subject"] for m in got) == sorted("Prüfung %s" % a for a in areas)
    froms = {m["envelope"]["mail_from"] for m in got}
    assert froms == {"rechnung@airport.example", "noreply@airport.example", "ppr@airport.example"}
    if tls:
        assert all(m["tls"] for m in got), [m["tls"] for m in got]
        authed = {m["message"]["subject"] for m in got if m["auth_user"]}
        assert authed == {"Prüfung invoice", "Prüfung report"}, authed
    assert "Operation not permitted" not in log + stderr
    assert "Address family not supported" not in log + stderr
