"""`make install` into a staging root (DESTDIR), and using what it installed.

Owns: the list of installed files with their modes, the substituted unit,
the pkg-config file, and a producer program that compiles against the
installed header and libraries (static and shared) and enqueues.
Never: installs outside its temporary DESTDIR or rebuilds anything: make
runs with B= set to the build the suite is testing, which is up to date.
"""
import os
import re
import shutil
import sqlite3
import stat
import subprocess

import pytest

from conftest import BUILD, MAILSPOOL, MAILSPOOLD, ROOT, run

PREFIX = "/usr"

needs_build = pytest.mark.skipif(
    not (os.access(MAILSPOOLD, os.X_OK) and os.access(MAILSPOOL, os.X_OK)),
    reason="build first (make); this test installs the existing build %s" % BUILD)

# path under DESTDIR -> (mode, source file it must equal or None)
FILES = {
    "usr/bin/mailspool": (0o755, None),
    "usr/libexec/mailspool/mailspool-cli": (0o755, None),
    "usr/sbin/mailspoold": (0o755, None),
    "usr/lib/libmailspool.a": (0o644, None),
    "usr/lib/libmailspool.so.0": (0o755, None),
    "usr/include/mailspool.h": (0o644, "spool/mailspool.h"),
    "usr/lib/pkgconfig/mailspool.pc": (0o644, None),
    "usr/share/man/man1/mailspool.1": (0o644, "man/mailspool.1"),
    "usr/share/man/man5/mailspool.conf.5": (0o644, "man/mailspool.conf.5"),
    "usr/share/man/man8/mailspoold.8": (0o644, "man/mailspoold.8"),
    "usr/lib/systemd/system/mailspoold.service": (0o644, None),
    "usr/lib/sysusers.d/mailspool.conf": (0o644, "systemd/mailspool.sysusers"),
    "usr/lib/tmpfiles.d/mailspool.conf": (0o644, "systemd/mailspool.tmpfiles"),
    "etc/mailspool/mailspool.conf.example": (0o640, "conf/mailspool.conf"),
    "etc/logrotate.d/mailspool": (0o644, "conf/logrotate.d/mailspool"),
}

PRODUCER = r'''
#include <mailspool.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 64;
    mailspool *ms = NULL;
    int rc = mailspool_open(argv[1], 0, &ms);
    if (rc != 0) {
        fprintf(stderr, "open: %s\n", mailspool_errmsg(ms));
        mailspool_close(ms);
        return rc;
    }
    mailspool_msg *m = mailspool_msg_new();
    static const char csv[] = "Position;Betrag\n1;42,00\n";
    if ((rc = mailspool_msg_set_area(m, "invoice")) != 0 ||
        (rc = mailspool_msg_add_rcpt(m, MAILSPOOL_TO, "B\xc3\xa4rbel Gro\xc3\x9f <b@example.org>")) != 0 ||
        (rc = mailspool_msg_set_subject(m, "Rechnung 2026-0042")) != 0 ||
        (rc = mailspool_msg_set_text(m, "Sehr geehrte Damen und Herren,\n")) != 0 ||
        (rc = mailspool_msg_set_ref(m, argv[2])) != 0 ||
        (rc = mailspool_msg_attach_data(m, csv, strlen(csv), "Positionen.csv", "text/csv")) != 0) {
        fprintf(stderr, "msg: %s\n", mailspool_msg_errmsg(m));
        mailspool_msg_free(m);
        mailspool_close(ms);
        return rc;
    }
    long long id = 0;
    rc = mailspool_enqueue(ms, m, &id);
    if (rc != 0)
        fprintf(stderr, "enqueue: %s\n", mailspool_errmsg(ms));
    else
        printf("%lld\n", id);
    mailspool_msg_free(m);
    mailspool_close(ms);
    return rc;
}
'''


@pytest.fixture(scope="module")
def destdir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("destdir"))
    args = ["make", "-C", ROOT, "--no-print-directory", "install", "DESTDIR=" + d,
            "PREFIX=" + PREFIX, "SYSCONFDIR=/etc", "B=" + BUILD, "NOBUILD=1"]
    if sanitized():
        args.append("SANITIZE=1")
    p = run(args, timeout=900)
    assert p.returncode == 0, "make install failed:\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:])
    return d


def sanitized():
    """The build under test uses ASan+UBSan (make SANITIZE=1)."""
    return any(n.startswith("libasan") for n in needed(MAILSPOOLD))


def pkg_env(d):
    e = dict(os.environ)
    e["PKG_CONFIG_PATH"] = os.path.join(d, "usr/lib/pkgconfig")
    e["PKG_CONFIG_SYSROOT_DIR"] = d
    return e


def pkg_config(d, *args):
    p = subprocess.run(["pkg-config"] + list(args) + ["mailspool"], capture_output=True,
                       text=True, env=pkg_env(d), timeout=60)
    assert p.returncode == 0, "pkg-config %s: %s" % (" ".join(args), p.stderr)
    return p.stdout.split()


@needs_build
def test_every_file_installed_with_its_mode(destdir):
    wrong = []
    for rel, (mode, src) in FILES.items():
        path = os.path.join(destdir, rel)
        if not os.path.isfile(path) or os.path.islink(path):
            wrong.append("%s: missing" % rel)
            continue
        got = stat.S_IMODE(os.stat(path).st_mode)
        if got != mode:
            wrong.append("%s: mode %o, want %o" % (rel, got, mode))
        if src:
            with open(path, "rb") as a, open(os.path.join(ROOT, src), "rb") as b:
                if a.read() != b.read():
                    wrong.append("%s: differs from %s" % (rel, src))
    assert not wrong, "\n".join(wrong)
    link = os.path.join(destdir, "usr/lib/libmailspool.so")
    assert os.path.islink(link) and os.readlink(link) == "libmailspool.so.0"
    assert not os.path.exists(os.path.join(destdir, "etc/mailspool/mailspool.conf")), \
        "make install must never write a live mailspool.conf"


@needs_build
def test_installed_programs_run(destdir):
    p = run([os.path.join(destdir, "usr/sbin/mailspoold"), "--version"], check=0)
    m = re.search(r"^VERSION\s*:=\s*(\S+)", open(os.path.join(ROOT, "Makefile")).read(), re.M)
    assert m.group(1) in p.stdout


@needs_build
def test_installed_unit_is_substituted_and_hardened(destdir):
    path = os.path.join(destdir, "usr/lib/systemd/system/mailspoold.service")
    text = open(path, encoding="utf-8").read()
    assert not re.search(r"@[A-Z]+@", text)
    assert "\nExecStart=/usr/sbin/mailspoold -c /etc/mailspool/mailspool.conf\n" in text
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    p = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", path])
    m = re.search(r"Overall exposure level for mailspoold\.service: (\d+\.\d+)", p.stdout)
    assert m and float(m.group(1)) <= 2.0, p.stdout[-800:] + p.stderr


@needs_build
def test_pkg_config_points_into_the_installation(destdir):
    cflags = pkg_config(destdir, "--cflags")
    libs = pkg_config(destdir, "--libs")
    assert "-I%s/usr/include" % destdir in cflags, cflags
    assert "-L%s/usr/lib" % destdir in libs and "-lmailspool" in libs, libs
    assert pkg_config(destdir, "--modversion") == [re.search(
        r"^VERSION\s*:=\s*(\S+)", open(os.path.join(ROOT, "Makefile")).read(), re.M).group(1)]
    pc = open(os.path.join(destdir, "usr/lib/pkgconfig/mailspool.pc")).read()
    assert re.search(r"^prefix=%s$" % PREFIX, pc, re.M), "the .pc names another prefix:\n" + pc


def compile_producer(d, tmp_path, static):
    src = tmp_path / "producer.c"
    src.write_text(PRODUCER)
    out = str(tmp_path / ("producer-static" if static else "producer-shared"))
    libs = pkg_config(d, "--libs", "--static") if static else pkg_config(d, "--libs")
    if static:  # the archive, not the shared library next to it
        libs = ["-l:libmailspool.a" if a == "-lmailspool" else a for a in libs]
    san = ["-fsanitize=address,undefined"] if sanitized() else []
    args = ([os.environ.get("CC", "cc"), "-std=c11", "-Wall", "-Wextra", "-Werror"] + san +
            [str(src), "-o", out] + pkg_config(d, "--cflags") + libs)
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, "%s\n%s" % (" ".join(args), p.stderr)
    return out


def needed(binary):
    """The shared libraries an ELF file names (empty when readelf is missing)."""
    if shutil.which("readelf") is None or not os.path.exists(binary):
        return []
    p = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, timeout=60)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout)


@needs_build
@pytest.mark.skipif(shutil.which("nm") is None, reason="nm (binutils) is not installed")
def test_shared_library_exports_the_api_only(destdir):
    """libmailspool.so.0 exports the functions of mailspool.h and nothing
    else (spool/libmailspool.map): internal names such as address_parse or
    spool_open must not clash with a producer's own."""
    with open(os.path.join(ROOT, "spool", "mailspool.h"), encoding="utf-8") as f:
        api = set(re.findall(r"\b(mailspool_[a-z0-9_]+)\(", f.read()))
    lib = os.path.join(destdir, "usr/lib/libmailspool.so.0")
    p = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    exported = {line.split()[-1] for line in p.stdout.splitlines() if line.strip()}
    assert len(api) >= 20
    assert exported == api, (sorted(exported - api), sorted(api - exported))


@needs_build
@pytest.mark.parametrize("static", [True, False], ids=["static", "shared"])
def test_producer_compiles_against_the_installation_and_enqueues(destdir, tmp_path, static):
    prog = compile_producer(destdir, tmp_path, static)
    if shutil.which("readelf"):
        assert ("libmailspool.so.0" in needed(prog)) != static, needed(prog)
    spool = str(tmp_path / "spool.db")
    env = {"LD_LIBRARY_PATH": os.path.join(destdir, "usr/lib")} if not static else {}
    first = run([prog, spool, "inv-0042"], env=env, check=0).stdout.strip()
    again = run([prog, spool, "inv-0042"], env=env, check=0).stdout.strip()
    assert first == again and first.isdigit(), "the same ref must give the same id"
    with sqlite3.connect(spool) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] >= 1
        rows = c.execute("SELECT id, state, area, subject FROM messages").fetchall()
        assert rows == [(int(first), "queued", "invoice", "Rechnung 2026-0042")]
        rcpt = c.execute("SELECT kind, name, address FROM recipients").fetchall()
        assert rcpt == [("to", "Bärbel Groß", "b@example.org")]
        att = c.execute("SELECT name, content_type, data FROM attachments").fetchall()
        assert att == [("Positionen.csv", "text/csv", b"Position;Betrag\n1;42,00\n")]
    # The installed CLI reads what the library wrote.
    p = run([os.path.join(destdir, "usr/bin/mailspool"), "-s", spool, "show", first], check=0)
    assert "Rechnung 2026-0042" in p.stdout
