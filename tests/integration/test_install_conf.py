"""The shipped configurations pass `mailspoold --check`.

Owns: conf/mailspool.conf (the installed example) and conf/demo.conf checked
by the real daemon; the example's secrets made available the two ways the
unit provides them (a file: path and a systemd credential); the match
between the example's credential: names and the unit's LoadCredential=
lines.
Never: reads /etc or /var: every path of a checked copy points into the
test's directory.
"""
import os
import re

import pytest

from conftest import MAILSPOOLD, ROOT, run

EXAMPLE = os.path.join(ROOT, "conf", "mailspool.conf")
DEMO = os.path.join(ROOT, "conf", "demo.conf")
UNIT_IN = os.path.join(ROOT, "systemd", "mailspoold.service.in")

needs_daemon = pytest.mark.skipif(not os.access(MAILSPOOLD, os.X_OK),
                                  reason="needs the built mailspoold")


def local_copy(src, workdir, secrets_dir=None):
    """src with the spool and log in workdir and file: secrets under secrets_dir."""
    with open(src, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"^path\s*=.*$", "path = %s/spool.db" % workdir, text, flags=re.M)
    text = re.sub(r"^log_file\s*=.*$", "log_file = %s/mailspool.log" % workdir, text, flags=re.M)
    if secrets_dir:
        text = text.replace("file:/etc/mailspool/secrets/", "file:%s/" % secrets_dir)
    path = os.path.join(str(workdir), os.path.basename(src))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o640)
    return path


def secret(path, value):
    with open(path, "w") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)


def problems(p):
    """Error lines of --check output; warnings about the secret's expiry date
    are left out (they appear by themselves as the date comes closer)."""
    lines = (p.stdout + p.stderr).splitlines()
    return [l for l in lines if re.match(r"^\S+:\d+: ", l) and "365SecretExpires" not in l]


def credential_names():
    with open(EXAMPLE, encoding="utf-8") as f:
        return re.findall(r"^\s*(?:Passwort|Password|365Secret)\s*=\s*credential:(\S+)",
                          f.read(), re.M)


def file_secrets():
    with open(EXAMPLE, encoding="utf-8") as f:
        return re.findall(r"^\s*(?:Passwort|Password|365Secret)\s*=\s*file:(\S+)", f.read(), re.M)


@needs_daemon
def test_example_checks_clean_with_its_secrets_provided(tmp_path):
    secrets = tmp_path / "secrets"
    creds = tmp_path / "credentials"
    os.makedirs(secrets)
    os.makedirs(creds)
    assert file_secrets() and credential_names(), "the example shows both secret forms"
    for path in file_secrets():
        secret(os.path.join(secrets, os.path.basename(path)), "Sommer 2026!")
    for name in credential_names():
        secret(os.path.join(creds, name), "Xy8Q~client-secret-value")
    conf = local_copy(EXAMPLE, tmp_path, secrets)
    p = run([MAILSPOOLD, "--check", "-c", conf], env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert p.returncode == 0 and problems(p) == [], p.stdout + p.stderr


@needs_daemon
def test_example_as_installed_lacks_only_its_secrets(tmp_path):
    """Unchanged (but for spool and log paths), --check fails on exactly the
    secrets it cannot read: everything else in the example is valid."""
    conf = local_copy(EXAMPLE, tmp_path)
    p = run([MAILSPOOLD, "--check", "-c", conf])
    assert p.returncode == 78, p.stdout + p.stderr
    errs = [l for l in problems(p) if l.startswith(conf + ":") and ": warning: " not in l]
    assert errs, p.stdout + p.stderr
    for line in errs:
        assert re.search(r"key (Passwort|365Secret)\b", line), line
    assert len(errs) == len(file_secrets()) + len(credential_names()), errs


@needs_daemon
def test_demo_configuration_checks_clean(tmp_path):
    with open(DEMO, encoding="utf-8") as f:
        text = f.read().replace("@DEMODIR@", str(tmp_path)).replace("@SMTPPORT@", "2525")
    assert "@" not in re.sub(r"[\w.+-]+@[\w.-]+", "", text), "placeholder left in demo.conf"
    conf = tmp_path / "demo.conf"
    conf.write_text(text)
    p = run([MAILSPOOLD, "--check", "-c", str(conf)])
    out = (p.stdout + p.stderr).strip().splitlines()
    assert p.returncode == 0 and len(out) == 1 and "configuration ok" in out[0], out


def test_every_credential_has_a_load_credential_line_in_the_unit():
    with open(UNIT_IN, encoding="utf-8") as f:
        unit = f.read()
    for name in credential_names():
        assert re.search(r"^#?LoadCredential=%s:/etc/mailspool/secrets/" % re.escape(name),
                         unit, re.M), name
