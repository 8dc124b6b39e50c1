"""The man pages and the documentation: they render without warnings and
miss nothing the product has.

Owns: lint of man/*.[158] with mandoc and groff, and the completeness checks
that tie the documentation to its sources: every configuration key of
common/config_table.c (with its type range and default) documented in
mailspool.conf(5) and present in conf/mailspool.conf, every option of
mailspoold(8) and command and flag of mailspool(1) from SPEC section 2, every
log event, and every setting of the source document in docs/ADMIN.md.
Never: changes a file; needs no build.
"""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

MAN = {
    "mailspoold.8": os.path.join(ROOT, "man", "mailspoold.8"),
    "mailspool.1": os.path.join(ROOT, "man", "mailspool.1"),
    "mailspool.conf.5": os.path.join(ROOT, "man", "mailspool.conf.5"),
}
CONF = os.path.join(ROOT, "conf", "mailspool.conf")
TABLE = os.path.join(ROOT, "common", "config_table.c")

# SPEC section 3 (the seed's keys plus the product's). The key table of
# common/config_table.c may hold more; both must be documented.
SPEC_KEYS = {
    "spool": ["path"],
    "daemon": ["log_file", "log_level", "max_connections", "shutdown_timeout"],
    "queue": ["retry_min", "retry_max", "lifetime", "max_attempts", "keep_sent"],
    "profile": ["FromAddress", "FromDisplayName", "ReplyToAddress", "SMTPHost", "SMTPPort",
                "Username", "Passwort", "SMTPAuthReq", "SMTPTLS", "365Client", "365Tenant",
                "365Secret", "365SecretExpires", "365AuthorityHost", "365GraphHost",
                "365SaveToSentItems", "MaxConnections", "RateLimit", "CAFile", "TLSVerify"],
    "area": ["profile", "lifetime"],
}
# The settings of the source document ("Besondere Einstellungen, Bereich = EMAIL").
SEED_SETTINGS = ["FromAddress", "FromDisplayName", "ReplyToAddress", "SMTPHost", "SMTPPort",
                 "Username", "Passwort", "SMTPAuthReq", "365Client", "365Tenant", "365Secret"]
# SPEC section 7.
EVENTS = ["start", "ready", "reload", "stop", "sent", "deferred", "failed", "expired", "token",
          "profile-suspended", "profile-resumed", "secret-expiry", "config-error"]
# SPEC section 2.2: command -> its flags.
COMMANDS = {
    "enqueue": ["--area", "--to", "--cc", "--bcc", "--subject", "--text", "--html", "--attach",
                "--reply-to", "--ref", "--not-before", "--expires", "--priority", "--header",
                "--json"],
    "list": ["--state", "--area", "--limit", "--json"],
    "show": ["--ref", "--json"],
    "render": [],
    "retry": ["--failed", "--area"],
    "cancel": [],
    "purge": ["--older-than"],
    "status": ["--json"],
    "test": ["--profile", "--to"],
}
EXIT_CODES = {"mailspool.1": [0, 64, 65, 66, 69, 73, 74, 75, 78],
              "mailspoold.8": [0, 64, 66, 69, 73, 74, 75, 78]}
SECTION_KIND = {"CK_SPOOL": "spool", "CK_DAEMON": "daemon", "CK_QUEUE": "queue",
                "CK_PROFILE": "profile", "CK_AREA": "area"}
UNITS = {"MIN_S": 60, "HOUR_S": 3600, "DAY_S": 86400}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def plain(roff):
    """Roff source with the escapes the pages use turned into text."""
    s = roff.replace("\\-", "-").replace("\\(aq", "'").replace("\\(dq", '"')
    s = re.sub(r"\\f[BIRP]", "", s)
    s = s.replace("\\&", "").replace("\\e", "\\")
    return s


def table_keys():
    """(section, name, alias, type, min, max, default) of every key in the C table."""
    src = read(TABLE)
    pat = re.compile(r'\[K_\w+\]\s*=\s*\{\s*"([^"]+)",\s*(NULL|"[^"]*"),\s*(CK_\w+),\s*'
                     r'(CT_\w+),\s*([^,]+?),\s*([^,]+?),\s*(NULL|"[^"]*"|\w+)\s*,', re.S)
    keys = []
    for m in pat.finditer(src):
        name, alias, kind, typ, lo, hi, default = m.groups()
        keys.append((SECTION_KIND[kind], name, None if alias == "NULL" else alias.strip('"'),
                     typ, evaluate(lo), evaluate(hi),
                     None if default == "NULL" else default.strip('"')))
    assert keys, "no key found in %s: has its table format changed?" % TABLE
    return keys


def evaluate(expr):
    """'10 * MIN_S' -> 600."""
    v = 1
    for factor in expr.split("*"):
        factor = factor.strip()
        v *= UNITS[factor] if factor in UNITS else int(factor)
    return v


def fmt_duration(v):
    """The largest unit that divides exactly, as config_table.c prints it."""
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if v and v % n == 0:
            return "%d%s" % (v // n, unit)
    return "%ds" % v


def man_key_entries():
    """{(section, key): header line} from the SECTIONS part of mailspool.conf(5)."""
    src = plain(read(MAN["mailspool.conf.5"]))
    part = src.split(".SH SECTIONS", 1)[1].split("\n.SH ", 1)[0]
    entries = {}
    for block in re.split(r"^\.SS ", part, flags=re.M)[1:]:
        title = block.split("\n", 1)[0].strip('"[] ')
        section = title.split()[0]
        for m in re.finditer(r"^\.TP\n\.BR? (\S+)(.*)$", block, re.M):
            entries[(section, m.group(1))] = " ".join(m.group(2).replace('"', " ").split())
    return entries


# ---- lint -----------------------------------------------------------------

@pytest.mark.parametrize("page", sorted(MAN))
def test_mandoc_lint_clean(page):
    p = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", MAN[page]],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", p.stdout + p.stderr


@pytest.mark.parametrize("page", sorted(MAN))
def test_groff_renders_without_warnings(page):
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed (mandoc lint still runs)")
    p = subprocess.run(["groff", "-ww", "-man", "-Tutf8", "-z", MAN[page]],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr


@pytest.mark.parametrize("page", sorted(MAN))
def test_man_l_renders_the_page(page):
    """What an administrator types: man -l, at a narrow width."""
    if shutil.which("man") is None:
        pytest.skip("man is not installed")
    env = dict(os.environ, MANWIDTH="72", MAN_KEEP_FORMATTING="0", LC_ALL="C.UTF-8")
    p = subprocess.run(["man", "-l", MAN[page]], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    text = re.sub(".\x08", "", p.stdout)  # overstrike bold and underline
    assert "NAME" in text and "SEE ALSO" in text


# ---- completeness: configuration ------------------------------------------

def test_table_holds_every_spec_key():
    have = {(s, n) for s, n, *_ in table_keys()}
    missing = [(s, k) for s, ks in SPEC_KEYS.items() for k in ks if (s, k) not in have]
    assert not missing, "SPEC keys missing from %s: %s" % (TABLE, missing)


def test_man_page_documents_exactly_the_keys_of_the_table():
    entries = man_key_entries()
    keys = {(s, n) for s, n, *_ in table_keys()}
    assert not keys - set(entries), "undocumented in mailspool.conf(5): %s" % sorted(
        keys - set(entries))
    assert not set(entries) - keys, "documented but not in the key table: %s" % sorted(
        set(entries) - keys)


def test_man_page_states_each_default_and_range():
    entries = man_key_entries()
    wrong = []
    for section, name, alias, typ, lo, hi, default in table_keys():
        head = entries[(section, name)]
        if default is not None and not default.isupper() and "default " + default not in head:
            wrong.append("%s/%s: default %s not in %r" % (section, name, default, head))
        if typ == "CT_DURATION":
            rng = "%s..%s" % (fmt_duration(lo), fmt_duration(hi))
        elif typ == "CT_INT":
            rng = "%d..%d" % (lo, hi)
        else:
            rng = None
        if rng and rng not in head:
            wrong.append("%s/%s: range %s not in %r" % (section, name, rng, head))
        if alias and alias not in head:
            wrong.append("%s/%s: alias %s not in %r" % (section, name, alias, head))
    assert not wrong, "\n".join(wrong)


def test_example_configuration_names_every_key():
    """conf/mailspool.conf shows every key, set or commented out."""
    text = read(CONF)
    found = {m.group(1).lower()
             for m in re.finditer(r"^[#;]?\s*([A-Za-z0-9_]+)\s*=", text, re.M)}
    missing = sorted({n for _, n, *_ in table_keys() if n.lower() not in found})
    assert not missing, "conf/mailspool.conf does not show: %s" % missing


def test_example_configuration_has_the_three_transports_and_the_seed_areas():
    text = read(CONF)
    assert re.search(r"^SMTPAuthReq\s*=\s*SSL", text, re.M)
    assert re.search(r"^SMTPAuthReq\s*=\s*NIL", text, re.M)
    assert re.search(r"^365Client\s*=", text, re.M)
    for area in ["invoice", "report", "border", "ppr", "reservation", r"\*"]:
        assert re.search(r"^\[area %s\]" % area, text, re.M), area


# ---- completeness: programs -----------------------------------------------

def test_mailspoold_page_has_every_option_signal_and_variable():
    src = plain(read(MAN["mailspoold.8"]))
    for word in ["-c", "--config", "--check", "--version", "-v", "--verbose", "--test", "--to",
                 "--help", "SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "MAILSPOOL_CONF",
                 "NOTIFY_SOCKET", "WATCHDOG_USEC", "CREDENTIALS_DIRECTORY", "READY=1",
                 "RELOADING=1", "STOPPING=1", "STATUS=", "WATCHDOG=1"]:
        assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(word), src), word


def logged_events():
    """Every event name the daemon's sources pass to log_event."""
    names = set()
    for d in ("daemon", "common"):
        for f in os.listdir(os.path.join(ROOT, d)):
            if f.endswith(".c"):
                names |= set(re.findall(r'log_event\([^,]+,\s*LL_[A-Z]+,\s*"([a-z-]+)"',
                                        read(os.path.join(ROOT, d, f))))
    return names


def test_mailspoold_page_documents_every_event():
    src = plain(read(MAN["mailspoold.8"]))
    log = src.split(".SH LOG", 1)[1].split("\n.SH ", 1)[0]
    # an entry of its own (.TP .B name), or named in "Further events"
    tagged = set(re.findall(r"^\.B (\S+)", log, re.M))
    logged = logged_events()
    assert "submitted" in logged and "spool" in logged
    want = set(EVENTS) | logged
    assert not want - tagged, sorted(want - tagged)


def test_mailspool_page_has_every_command_and_flag():
    src = plain(read(MAN["mailspool.1"]))
    commands = src.split(".SH COMMANDS", 1)[1].split("\n.SH ", 1)[0]
    blocks = {b.split()[0].strip('"'): b for b in re.split(r"^\.SS ", commands, flags=re.M)[1:]}
    assert set(blocks) == set(COMMANDS), sorted(set(blocks) ^ set(COMMANDS))
    for cmd, flags in COMMANDS.items():
        for flag in flags:
            assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), blocks[cmd]), \
                "%s %s" % (cmd, flag)
    for word in ["-c", "-s", "MAILSPOOL_SPOOL", "MAILSPOOL_CONF"]:
        assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(word), src), word


@pytest.mark.parametrize("page", sorted(EXIT_CODES))
def test_exit_codes_documented(page):
    src = plain(read(MAN[page]))
    part = src.split(".SH EXIT STATUS", 1)[1].split("\n.SH ", 1)[0]
    tagged = {int(x) for x in re.findall(r"^\.TP\n\.B (\d+)", part, re.M)}
    assert tagged == set(EXIT_CODES[page]), tagged ^ set(EXIT_CODES[page])


# ---- completeness: the guides ---------------------------------------------

def test_admin_guide_maps_every_setting_of_the_source_document():
    text = read(os.path.join(ROOT, "docs", "ADMIN.md"))
    mapping = text.split("## 3.", 1)[1].split("\n## ", 1)[0]
    rows = [l for l in mapping.splitlines() if l.startswith("| ")]
    for key in SEED_SETTINGS:
        assert any("`%s" % key in r for r in rows), "ADMIN.md section 3 lacks a row for " + key
    for word in ["Mail.Send", "Mail.ReadWrite", "365SecretExpires", "LoadCredential",
                 "AADSTS7000215", "AADSTS7000222", "535", "mailspool test", "logrotate",
                 "mailspool purge", "mailspool retry", "mailspool status"]:
        assert word in text, word


def test_admin_guide_states_the_exposure_the_unit_header_states():
    text = read(os.path.join(ROOT, "docs", "ADMIN.md"))
    unit = read(os.path.join(ROOT, "systemd", "mailspoold.service.in"))
    doc = re.search(r"Overall exposure level for mailspoold\.service: (\d+\.\d)", text)
    head = re.search(r"overall exposure (\d+\.\d)", unit)
    assert doc and head and doc.group(1) == head.group(1)


def test_readme_starts_with_the_two_commands():
    text = read(os.path.join(ROOT, "README.md"))
    first_block = text.split("```", 2)[1]
    assert "make demo" in first_block and "make check" in first_block
    for link in ["docs/ADMIN.md", "docs/SPOOL.md", "docs/ARCHITECTURE.md"]:
        assert "(%s)" % link in text, link


@pytest.mark.parametrize("page", sorted(MAN))
def test_page_names_the_current_version(page):
    version = re.search(r"^VERSION\s*:=\s*(\S+)", read(os.path.join(ROOT, "Makefile")), re.M)
    th = re.search(r"^\.TH .*\"mailspool ([^\"]+)\"", read(MAN[page]), re.M)
    assert th and version and th.group(1) == version.group(1), "update .TH of " + page
