"""`mailspoold --check -c FILE` against the seed's configuration rules.

Owns: a table of configurations, each valid or broken in exactly the ways its
markers say. A marker is a trailing comment on the line the diagnostic must
name:

    SMTPPort = 587  #! error SMTPPort must not be set
    [profile x]     #! error FromAddress missing

"#! error KEY [TEXT]" or "#! warning KEY [TEXT]": mailspoold must print
"FILE:LINE: profile NAME: ..." (errors) or "FILE:LINE: warning: profile
NAME: ..." (warnings) on that line, naming KEY (and TEXT when given); inside
an [area NAME] section the text must name "area NAME". Every FILE:LINE
diagnostic printed must be one a marker asked for, the exit code is 78 when
any error is expected and 0 otherwise, and no secret is ever printed.
The markers are comments, so they also exercise the " #" comment rule.
"""
import datetime
import os
import re

import pytest

from conftest import MAILSPOOLD, run

SECRET = "S3cret-value-never-printed"

CLIENT = "11111111-2222-3333-4444-555555555555"
TENANT = "66666666-7777-8888-9999-000000000000"

# The three transports of the seed, each valid on its own. Line 1 is the
# header, so the key lines can be removed or amended by name.
BASE = {
    "auth": ("billing", [
        "FromAddress = rechnung@airport.example",
        "FromDisplayName = Flughafen Musterstadt – Buchhaltung",
        "SMTPHost = smtp.provider.example",
        "SMTPPort = 587",
        "Username = rechnung@airport.example",
        "Passwort = file:{secret}",
        "SMTPAuthReq = SSL",
    ]),
    "anon": ("relay", [
        "FromAddress = noreply@airport.example",
        "SMTPHost = 10.1.2.3",
        "SMTPAuthReq = NIL",
    ]),
    "m365": ("ppr", [
        "FromAddress = ppr@airport.example",
        "365Client = " + CLIENT,
        "365Tenant = " + TENANT,
        "365Secret = file:{secret}",
    ]),
}

# The seed's "Bitte stellen Sie sicher, dass folgende Parameter nicht gesetzt
# sind" lists, and a line that sets each such key.
FORBIDDEN = {
    "auth": ["365Client", "365Tenant", "365Secret"],
    "anon": ["365Client", "365Tenant", "365Secret", "Username", "Passwort"],
    "m365": ["SMTPHost", "SMTPPort", "Username", "Passwort", "SMTPAuthReq"],
}
REQUIRED = {
    "auth": ["FromAddress", "SMTPHost", "Username", "Passwort"],
    "anon": ["FromAddress", "SMTPHost"],
    "m365": ["FromAddress", "365Client", "365Tenant", "365Secret"],
}
SETTING = {
    "365Client": "365Client = " + CLIENT,
    "365Tenant": "365Tenant = " + TENANT,
    "365Secret": "365Secret = file:{secret}",
    "Username": "Username = someone",
    "Passwort": "Passwort = file:{secret}",
    "SMTPHost": "SMTPHost = smtp.example.org",
    "SMTPPort": "SMTPPort = 587",
    "SMTPAuthReq": "SMTPAuthReq = SSL",
}


def profile(kind, drop=(), add=(), header_marker="", edit=None):
    """A [profile] section of kind without the keys in drop, plus lines add."""
    name, lines = BASE[kind]
    out = ["[profile %s]%s" % (name, "  " + header_marker if header_marker else "")]
    for ln in lines:
        key = ln.split("=")[0].strip()
        if key in drop:
            continue
        if edit and key in edit:
            ln = edit[key]
        out.append(ln)
    return "\n".join(out + list(add)) + "\n"


def areas(*profiles):
    return "".join("[area a%d]\nprofile = %s\n" % (i, p) for i, p in enumerate(profiles)) + \
        "[area *]\nprofile = %s\n" % profiles[0]


def single(kind, **kw):
    return profile(kind, **kw) + areas(BASE[kind][0])


def days_from_now(n):
    return (datetime.datetime.now(datetime.timezone.utc).date() +
            datetime.timedelta(days=n)).isoformat()


CASES = []


def case(cid, body, mode=0o600, cred_dir=False):
    CASES.append(pytest.param(body, mode, cred_dir, id=cid))


# --- valid configurations, one per transport and all together -----------
case("valid-smtp-auth", single("auth"))
case("valid-smtp-anonymous", single("anon"))
case("valid-microsoft-365", single("m365"))
case("valid-seed-example", profile("auth") + profile("anon") + profile("m365") +
     "[area invoice]\nprofile = billing\n[area ppr]\nprofile = ppr\nlifetime = 6h\n"
     "[area *]\nprofile = relay\n")
case("valid-password-alias-port-465-case-insensitive",
     single("auth", edit={"Passwort": "password = file:{secret}", "SMTPPort": "smtpport = 465",
                          "SMTPAuthReq": "SMTPAUTHREQ = ssl"}))
case("valid-credential-secret", single("m365", edit={"365Secret": "365Secret = credential:ppr"}),
     cred_dir=True)
case("valid-secret-expires-in-90-days",
     single("m365", add=["365SecretExpires = %s" % days_from_now(90)]))

# --- each forbidden key of each kind --------------------------------------
for kind, keys in FORBIDDEN.items():
    for key in keys:
        case("%s-forbids-%s" % (kind, key),
             single(kind, add=[SETTING[key] + "  #! error %s must not be set" % key]))

# --- each required key of each kind ---------------------------------------
for kind, keys in REQUIRED.items():
    for key in keys:
        case("%s-requires-%s" % (kind, key),
             single(kind, drop=[key], header_marker="#! error %s missing" % key))

# --- the other rules ------------------------------------------------------
case("no-transport-says-what-is-missing",
     single("auth", drop=["SMTPAuthReq"],
            header_marker="#! error SMTPAuthReq matches no transport"))
case("bad-smtpauthreq",
     single("auth", edit={"SMTPAuthReq": "SMTPAuthReq = TLS  #! error SMTPAuthReq SSL nor NIL"}))
case("typo-key-suggestion",
     single("anon", add=["SMTPHots = 10.1.2.4  #! error SMTPHost did you mean 'SMTPHost'?"]))
case("area-names-missing-profile",
     single("anon") + "[area border]\nprofile = nobody  #! error profile nobody\n")
case("area-without-profile",
     single("anon") + "[area border]  #! error profile missing\nlifetime = 6h\n")
case("ssl-with-smtptls-none",
     single("auth", add=["SMTPTLS = none  #! error SMTPTLS SMTPAuthReq = SSL"]))
case("unreadable-file-secret",
     single("auth", edit={"Passwort": "Passwort = file:{tmp}/no-such-secret  "
                                      "#! error Passwort {tmp}/no-such-secret"}))
case("file-secret-is-a-directory",
     single("m365", edit={"365Secret": "365Secret = file:{tmp}  #! error 365Secret {tmp}"}))
case("credential-without-credentials-directory",
     single("m365", edit={"365Secret": "365Secret = credential:ppr  "
                                       "#! error 365Secret CREDENTIALS_DIRECTORY"}))
case("secret-expires-on-smtp-profile",
     single("anon", add=["365SecretExpires = 2030-01-01  #! error 365SecretExpires"]))
case("invalid-from-address",
     single("anon", edit={"FromAddress": "FromAddress = no-at-sign  #! error FromAddress"}))
case("bad-port",
     single("auth", edit={"SMTPPort": "SMTPPort = 99999  #! error SMTPPort out of range"}))
case("duplicate-key",
     single("anon", add=["smtphost = 10.9.9.9  #! error SMTPHost given twice"]))
case("unknown-section-and-bad-duration",
     "[queue]\nretry_min = 5x  #! error retry_min not a duration\n"
     "[profil relay]  #! error - unknown section [profil relay]; did you mean [profile NAME]?\n"
     "SMTPHost = ignored\n" + single("anon"))
case("duplicate-profile",
     single("anon") + profile("anon").replace("[profile relay]",
                                               "[profile relay]  #! error - appears twice", 1))

# --- every warning (exit 0) -------------------------------------------------
case("warn-display-name-on-365",
     single("m365", add=["FromDisplayName = PPR  #! warning FromDisplayName "
                         "has no effect with Microsoft 365"]))
case("warn-tlsverify-no", single("anon", add=["TLSVerify = no  #! warning TLSVerify"]))
case("warn-literal-secret-in-world-readable-file",
     single("auth", edit={"Passwort": "Passwort = " + SECRET +
                                      "  #! warning Passwort chmod 640"}), mode=0o644)
case("warn-office365-smtp-host",
     single("auth", edit={"SMTPHost": "SMTPHost = smtp.office365.com  "
                                      "#! warning SMTPHost Basic authentication"}))
case("warn-ratelimit-0-on-365",
     single("m365", add=["RateLimit = 0  #! warning RateLimit"]))
case("warn-secret-expires-soon",
     single("m365", add=["365SecretExpires = %s  #! warning 365SecretExpires expires on" %
                         days_from_now(10)]))
case("warn-secret-expired",
     single("m365", add=["365SecretExpires = %s  #! warning 365SecretExpires expired on" %
                         days_from_now(-3)]))

MARK = re.compile(r"#!\s*(error|warning)\s+(\S+)\s*(.*?)\s*(?=#!|$)")
SECTION = re.compile(r"^\s*\[(profile|area)\s+(\S+?)\]")


def expectations(text):
    """[(line, severity, key, extra, section_kind, section_name)] from the markers."""
    out, kind, name = [], None, None
    for n, line in enumerate(text.splitlines(), 1):
        m = SECTION.match(line)
        if m:
            kind, name = m.group(1), m.group(2)
        elif line.lstrip().startswith("["):
            kind, name = None, None
        for sev, key, extra in MARK.findall(line):
            out.append((n, sev, key, extra, kind, name))
    return out


def test_case_table_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("body,mode,cred_dir", CASES)
def test_check(tmp_path, body, mode, cred_dir):
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    env = {}
    if cred_dir:
        creds = tmp_path / "credentials"
        creds.mkdir()
        (creds / "ppr").write_text(SECRET + "\n")
        (creds / "ppr").chmod(0o600)
        env["CREDENTIALS_DIRECTORY"] = str(creds)
    text = ("[spool]\npath = {tmp}/spool.db\n" + body).format(secret=secret, tmp=tmp_path)
    conf = tmp_path / "mailspool.conf"
    conf.write_text(text)
    conf.chmod(mode)
    if not cred_dir:
        env["CREDENTIALS_DIRECTORY"] = ""
    p = run([MAILSPOOLD, "--check", "-c", str(conf)], env=env)
    out = p.stdout + p.stderr
    want = expectations(text)
    report = "config:\n%s\noutput (exit %d):\n%s" % (
        "\n".join("%3d  %s" % (i, l) for i, l in enumerate(text.splitlines(), 1)),
        p.returncode, out)

    assert SECRET not in out, report
    errors = any(sev == "error" for _, sev, *_ in want)
    assert p.returncode == (78 if errors else 0), report

    lines = out.splitlines()
    for n, sev, key, extra, kind, name in want:
        prefix = "%s:%d: " % (conf, n)
        if kind == "profile":
            prefix += ("warning: profile %s: " if sev == "warning" else "profile %s: ") % name
        elif sev == "warning":
            prefix += "warning: "
        hits = [l for l in lines if l.startswith(prefix) and
                (key == "-" or key in l) and extra in l and
                (kind != "area" or "area %s" % name in l)]
        assert hits, "no %s naming %r%s at %s\n%s" % (
            sev, key, " and %r" % extra if extra else "", prefix, report)

    # Nothing unexpected: every FILE:LINE diagnostic was asked for by a marker.
    asked = {(n, sev) for n, sev, *_ in want}
    diag = re.compile(r"^%s:(\d+): (warning: )?" % re.escape(str(conf)))
    for l in lines:
        m = diag.match(l)
        if m:
            got = (int(m.group(1)), "warning" if m.group(2) else "error")
            assert got in asked, "unexpected diagnostic %r\n%s" % (l, report)


def test_check_names_the_spool_path_line(tmp_path):
    # The spool is checked too (SPEC 2.1): its problems are FILE:LINE: like
    # every other one, with what to do.
    conf = tmp_path / "mailspool.conf"
    conf.write_text("[profile relay]\nFromAddress = a@example.org\nSMTPHost = 127.0.0.1\n"
                    "SMTPAuthReq = NIL\n[area *]\nprofile = relay\n"
                    "[spool]\npath = %s/nodir/spool.db\n" % tmp_path)
    p = run([MAILSPOOLD, "--check", "-c", str(conf)])
    assert p.returncode == 78, p.stdout + p.stderr
    [line] = [l for l in p.stdout.splitlines() if "[spool] path" in l]
    assert line.startswith("%s:8: [spool] path %s/nodir/spool.db: cannot create it in" %
                           (conf, tmp_path)), line
    assert "create that directory" in line


def test_mailspool_conf_is_the_default_configuration(tmp_path):
    # SPEC 2.1: CONFIG defaults to /etc/mailspool/mailspool.conf, and
    # MAILSPOOL_CONF overrides that default (-c overrides both).
    good = tmp_path / "good.conf"
    good.write_text("[spool]\npath = %s/spool.db\n[profile relay]\nFromAddress = a@example.org\n"
                    "SMTPHost = 127.0.0.1\nSMTPAuthReq = NIL\n[area *]\nprofile = relay\n"
                    % tmp_path)
    bad = tmp_path / "bad.conf"
    bad.write_text("[profile relay]\nSMTPHots = x\n")
    p = run([MAILSPOOLD, "--check"], env={"MAILSPOOL_CONF": str(good)})
    assert p.returncode == 0 and str(good) in p.stdout, p.stdout + p.stderr
    p = run([MAILSPOOLD, "--check"], env={"MAILSPOOL_CONF": str(bad)})
    assert p.returncode == 78 and str(bad) in p.stdout, p.stdout + p.stderr
    p = run([MAILSPOOLD, "--check", "-c", str(good)], env={"MAILSPOOL_CONF": str(bad)})
    assert p.returncode == 0, p.stdout + p.stderr
