"""Secrets never leak (issue 6, "Secrets"; SPEC 3 and 9): the SMTP passwords,
the Microsoft 365 client secrets and the access tokens the Entra fake issued
appear in no log line (at log_level = debug), no `mailspool status` / `show`
/ `list` / `test` output, no `mailspoold --check` output and no daemon stderr;
and what a memory image of the running daemon can and cannot prove.

One daemon with five profiles runs every transport and error path at once:
SMTP STARTTLS + AUTH that works, AUTH refused with 535, an SSL profile whose
server offers no STARTTLS (the password must not be sent at all), Graph with
a token refresh after a forced 401, and Graph with an expired client secret
(AADSTS7000222). The secrets come literal, from a file: and from a
credential:, each a distinctive string searched for in every encoding it could
take on the way out (as is, base64 as in AUTH LOGIN, AUTH PLAIN's base64 of
"\\0user\\0password", URL-encoded as in the token request).
The warning about a world-readable configuration with literal secrets is
test_config_check.py's case "warn-literal-secret-in-world-readable-file";
here it is checked once more that the warning itself does not quote the
secret.
"""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.parse

import pytest

from conftest import MAILSPOOL, MAILSPOOLD, run
from mshelpers import VALGRIND, Daemon, smtp_profile, wait_for
from smtp_ctl import SmtpPeer

USER = "rechnung@airport.example"
PW_GOOD = "pw-Good~Zebra.7f3a9c1e"          # literal in the configuration
PW_WRONG = "pw-Wrong~Quokka.5b2d8e40"       # file:, refused with 535
PW_PLAIN = "pw-Plain~Okapi.91c6e2aa"        # credential:, server without STARTTLS
SECRET_OK = "cs-Ok~Narwhal.0e5d7c3b9a61"    # literal 365Secret
SECRET_EXP = "cs-Expired~Axolotl.4f8a2b6c"  # file:, secret_expired at the fake
PW_GOOD2 = "pw-Renewed~Tapir.2c9e4a7d"      # PW_GOOD after a reload
SECRET_OK2 = "cs-Renewed~Dugong.8b1f5e3a"   # SECRET_OK after a reload
CLIENT_EXP = "22222222-3333-4444-5555-666666666666"
MAILBOX_EXP = "ppr2@airport.example"
# One daemon serves the whole file: keep it on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("secrets")
IMAGE_MAX = 2 << 30  # bytes of a memory image the test will write and read
SECRETS = {"PW_GOOD": PW_GOOD, "PW_WRONG": PW_WRONG, "PW_PLAIN": PW_PLAIN,
           "SECRET_OK": SECRET_OK, "SECRET_EXP": SECRET_EXP, "PW_GOOD2": PW_GOOD2,
           "SECRET_OK2": SECRET_OK2}


def forms(secret, user=USER):
    """Every spelling of a secret that a careless program could print."""
    b = secret.encode()
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
            base64.b64encode(b).decode(), base64.b64encode(b"\0" + user.encode() + b"\0" + b).decode(),
            base64.b64encode(user.encode() + b"\0" + user.encode() + b"\0" + b).decode()}


def leaks(text, tokens):
    """Names of the secrets (and tokens) found in text, in any of their forms."""
    found = [name for name, s in SECRETS.items() if any(f in text for f in forms(s))]
    found += ["access token %s..." % t[:8] for t in tokens if t in text]
    # A fragment long enough to identify a token (a cut or masked copy).
    found += ["token fragment %s..." % t[:8] for t in tokens
              if t not in text and any(t[i:i + 16] in text for i in range(0, len(t) - 16, 8))]
    return found


def graph_profile(fake, certs, name, client, secret, mailbox):
    return "\n".join(["[profile %s]" % name, "FromAddress = %s" % mailbox,
                      "365Client = %s" % client, "365Tenant = %s" % fake.tenant,
                      "365Secret = %s" % secret, "365AuthorityHost = %s" % fake.authority,
                      "365GraphHost = %s" % fake.base_url, "CAFile = %s" % certs.ca,
                      "RateLimit = 0"]) + "\n\n"


class SecretsRun:
    """Everything the module's tests look at, produced once."""

    def __init__(self, tmp, certs, fake):
        self.dir = str(tmp)
        self.fake = fake
        self.outputs = {}   # name -> text that must hold no secret
        self.codes = {}     # name -> exit code
        self.peers = {
            "good": SmtpPeer(os.path.join(self.dir, "peer-good"), certs=certs,
                             tls_mode="starttls", auth=(USER, PW_GOOD)).start(),
            "wrongpw": SmtpPeer(os.path.join(self.dir, "peer-wrong"), certs=certs,
                                tls_mode="starttls", auth=(USER, "the-right-one")).start(),
            "nostarttls": SmtpPeer(os.path.join(self.dir, "peer-plain"), certs=certs,
                                   tls_mode="starttls", starttls=False, auth=(USER, PW_PLAIN),
                                   auth_plaintext=True, capture=True).start(),
        }
        fake.add_app(client_id=CLIENT_EXP, secret=SECRET_EXP, secret_expired=True)
        fake.add_mailbox(MAILBOX_EXP)
        fake.add_app(secret=SECRET_OK)  # the default app, with our distinctive secret
        with open(os.path.join(self.dir, "wrong.secret"), "w") as f:
            f.write(PW_WRONG + "\n")
        with open(os.path.join(self.dir, "expired.secret"), "w") as f:
            f.write(SECRET_EXP + "\n")
        self.creds = os.path.join(self.dir, "credentials")
        os.makedirs(self.creds)
        with open(os.path.join(self.creds, "plain-pw"), "w") as f:
            f.write(PW_PLAIN)
        self.certs = certs
        areas = {p: p for p in ("good", "wrongpw", "nostarttls", "m365", "m365exp")}
        self.d = Daemon(self.dir, self.profiles(PW_GOOD, SECRET_OK), areas=areas,
                        daemon={"log_level": "debug", "max_connections": "8"})
        self.env = {"CREDENTIALS_DIRECTORY": self.creds}
        # glibc fills freed memory with a pattern (no tcache: tcache'd chunks
        # are not filled), so that a copy found in a memory image is one that
        # something still holds, not a freed buffer nobody wiped; one arena
        # keeps the image small (~75 MB instead of ~600 MB).
        self.daemon_env = dict(self.env, GLIBC_TUNABLES="glibc.malloc.tcache_count=0:"
                               "glibc.malloc.arena_max=1:"
                               "glibc.malloc.perturb=165")

    def profiles(self, pw_good, secret_ok):
        fake, extra = self.fake, "CAFile = %s\n" % self.certs.ca
        return (
            smtp_profile("good", self.peers["good"].port, auth=(USER, pw_good), extra=extra) +
            smtp_profile("wrongpw", self.peers["wrongpw"].port,
                         auth=(USER, "file:" + os.path.join(self.dir, "wrong.secret")),
                         extra=extra) +
            smtp_profile("nostarttls", self.peers["nostarttls"].port,
                         auth=(USER, "credential:plain-pw"), extra=extra) +
            graph_profile(fake, self.certs, "m365", fake.client_id, secret_ok, fake.mailbox) +
            graph_profile(fake, self.certs, "m365exp", CLIENT_EXP,
                          "file:" + os.path.join(self.dir, "expired.secret"), MAILBOX_EXP))

    def cli(self, name, *args):
        p = run([MAILSPOOL, "-c", self.d.conf, "-s", self.d.spool] + list(args), env=self.env)
        self.outputs[name] = p.stdout + p.stderr
        self.codes[name] = p.returncode
        return p

    def go(self):
        d = self.d
        p = run([MAILSPOOLD, "-c", d.conf, "--check"], env=self.env)
        self.outputs["mailspoold --check"] = p.stdout + p.stderr
        self.codes["mailspoold --check"] = p.returncode
        d.start(env=self.daemon_env)
        self.ids = {a: d.enqueue("kunde@example.org", subject="secret test %s" % a, area=a)
                    for a in ("good", "wrongpw", "nostarttls", "m365", "m365exp")}
        d.wait_states("sent", [self.ids["good"], self.ids["m365"]], timeout=60)
        # One more Graph message after a forced 401: the token is refreshed once.
        self.fake.force_401(1)
        self.ids["m365-after-401"] = d.enqueue("kunde@example.org", subject="after 401",
                                               area="m365")
        d.wait_states("sent", [self.ids["m365-after-401"]], timeout=60)
        wait_for(lambda: {"profile=wrongpw", "profile=nostarttls", "profile=m365exp"} <= {
            w for l in d.lines_of("profile-suspended") for w in l.split()},
            timeout=60, what="three profiles suspended")
        # Tokens issued so far went to the daemon (in order); `mailspool test`
        # below runs in a process of its own and gets its own.
        self.daemon_tokens = [t["access_token"] for t in self.fake.tokens()]
        self.memory = self.memory_image()
        self.reload_with_new_secrets()
        for prof in ("good", "wrongpw", "nostarttls", "m365", "m365exp"):
            self.cli("mailspool test --profile %s" % prof, "test", "--profile", prof,
                     "--to", "kunde@example.org")
        self.cli("mailspool status", "status")
        self.cli("mailspool status --json", "status", "--json")
        self.cli("mailspool list", "list")
        self.cli("mailspool list --json", "list", "--json")
        for name, mid in self.ids.items():
            self.cli("mailspool show %s" % name, "show", str(mid))
            self.cli("mailspool show %s --json" % name, "show", str(mid), "--json")
        self.tokens = [t["access_token"] for t in self.fake.tokens()]
        self.rc = d.stop()
        self.outputs["log file"] = "\n".join(d.log_lines())
        self.outputs["daemon stderr"] = d.stderr_text()
        return self

    def reload_with_new_secrets(self):
        """The operator replaces the password of "good" and the client secret
        of "m365" and reloads; one message each goes out with the new ones.
        Then nothing may hold the old ones any more."""
        d = self.d
        self.peers["good"].restart(auth=(USER, PW_GOOD2))
        self.fake.update_app(secret=SECRET_OK2)
        d.write_config(self.profiles(PW_GOOD2, SECRET_OK2),
                       areas={p: p for p in ("good", "wrongpw", "nostarttls", "m365", "m365exp")},
                       daemon={"log_level": "debug", "max_connections": "8"})
        reloads = len(d.lines_of("reload"))
        d.signal(signal.SIGHUP)
        wait_for(lambda: len(d.lines_of("reload")) > reloads, timeout=30, what="reload")
        self.ids["good-after-reload"] = d.enqueue("kunde@example.org", subject="after reload",
                                                  area="good")
        self.ids["m365-after-reload"] = d.enqueue("kunde@example.org", subject="after reload",
                                                  area="m365")
        d.wait_states("sent", [self.ids["good-after-reload"], self.ids["m365-after-reload"]],
                      timeout=60)
        before = set(self.daemon_tokens)
        self.tokens_after_reload = [t["access_token"] for t in self.fake.tokens()
                                    if t["access_token"] not in before]
        self.memory_after_reload = self.memory_image()

    def memory_image(self):
        """The live daemon's memory: a core file from gcore (gdb), which works
        whatever /proc/sys/kernel/core_pattern says (a pipe to systemd-coredump
        or apport would take a crash core away from the test) and leaves the
        daemon running. None under ASan (its shadow memory makes a core of
        terabytes, and its quarantine changes what freed memory holds) or
        valgrind, or when gdb cannot attach."""
        if VALGRIND or shutil.which("gcore") is None:
            return None
        with open(MAILSPOOLD, "rb") as f:
            if b"__asan_init" in f.read():
                return None
        # Whatever the build: never dump a process that maps more than
        # IMAGE_MAX (an ASan process maps terabytes of shadow memory).
        with open("/proc/%d/status" % self.d.proc.pid) as f:
            vm = [int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:")]
        if not vm or vm[0] > IMAGE_MAX:
            return None
        out = os.path.join(self.dir, "daemon-core")
        path = "%s.%d" % (out, self.d.proc.pid)
        try:
            p = subprocess.run(["gcore", "-o", out, str(self.d.proc.pid)], capture_output=True,
                               timeout=120)
            if p.returncode != 0 or not os.path.exists(path) or \
                    os.path.getsize(path) > IMAGE_MAX:
                return None
            with open(path, "rb") as f:
                return f.read()
        finally:
            if os.path.exists(path):
                os.unlink(path)

    def close(self):
        self.d.kill9()
        for peer in self.peers.values():
            peer.kill()


@pytest.fixture(scope="module")
def secrets_run(tmp_path_factory, certs):
    from graph_ctl import GraphFake
    tmp = tmp_path_factory.mktemp("secrets")
    fake = GraphFake(tmp / "graph", certs.server_cert, certs.server_key, ca=certs.ca)
    fake.add_app()
    fake.add_mailbox()
    fake.start()
    r = SecretsRun(tmp, certs, fake)
    try:
        yield r.go()
    finally:
        r.close()
        fake.kill()


def test_every_path_was_exercised(secrets_run):
    """Without this, the leak checks below could pass because nothing happened."""
    r = secrets_run
    log = r.outputs["log file"]
    assert r.rc == 0
    assert r.codes["mailspoold --check"] == 0, r.outputs["mailspoold --check"]
    # The most verbose level is configured (the daemon has no debug-only
    # events today; any added later are covered by this test).
    assert "log_level = debug" in open(r.d.conf).read()
    good = r.peers["good"].messages()
    assert good and good[0]["auth_user"] == USER and good[0]["tls"]
    assert [e for e in r.peers["wrongpw"].events()
            if e["event"] == "auth" and not e["ok"]], "no refused AUTH at the 535 peer"
    assert re.search(r"profile-suspended profile=wrongpw .*535", log), log
    assert re.search(r"profile-suspended profile=nostarttls .*STARTTLS", log), log
    assert re.search(r"profile-suspended profile=m365exp .*7000222", log), log
    assert b"AUTH" not in r.peers["nostarttls"].captured().upper()
    assert len(r.fake.messages()) >= 3  # two queued messages + the test message
    reqs = r.fake.token_requests()
    assert sum(1 for t in reqs if t["ok"] and t["client_id"] == r.fake.client_id) >= 2, \
        "no token refresh after the forced 401"
    assert any(t["error_code"] == 7000222 for t in reqs if not t["ok"])
    assert len(r.tokens) >= 2
    assert r.codes["mailspool test --profile good"] == 0
    assert r.codes["mailspool test --profile m365"] == 0
    for prof in ("wrongpw", "nostarttls", "m365exp"):
        assert r.codes["mailspool test --profile %s" % prof] not in (0, 75), \
            r.outputs["mailspool test --profile %s" % prof]


def output_names():
    names = ["mailspoold --check", "log file", "daemon stderr", "mailspool status",
             "mailspool status --json", "mailspool list", "mailspool list --json"]
    names += ["mailspool test --profile %s" % p
              for p in ("good", "wrongpw", "nostarttls", "m365", "m365exp")]
    for m in ("good", "wrongpw", "nostarttls", "m365", "m365exp", "m365-after-401",
              "good-after-reload", "m365-after-reload"):
        names += ["mailspool show %s" % m, "mailspool show %s --json" % m]
    return names


@pytest.mark.parametrize("name", output_names())
def test_no_secret_in_output(secrets_run, name):
    text = secrets_run.outputs[name]
    assert text.strip(), "%s printed nothing" % name
    assert leaks(text, secrets_run.tokens) == [], name


def test_status_shows_secret_expiry_and_token_but_not_values(secrets_run):
    """status --json names what an operator needs (transport, suspension, token
    expiry) without any value: the profile part is checked field by field."""
    doc = json.loads(secrets_run.outputs["mailspool status --json"])
    profiles = {p["name"]: p for p in doc["profiles"]}
    assert set(profiles) >= {"good", "wrongpw", "nostarttls", "m365", "m365exp"}
    flat = json.dumps(doc)
    assert leaks(flat, secrets_run.tokens) == []


def image_or_skip(mem):
    if mem is None:
        pytest.skip("no memory image: sanitizer or valgrind build, or gdb cannot attach")
    return mem


def test_memory_image_keeps_only_the_token_in_use(secrets_run):
    """What a memory image of the running daemon proves (docs/RELIABILITY.md,
    "Secrets in memory"). The configured passwords and client secrets must be
    in memory - the next AUTH or token request needs them - so any core file
    of mailspoold holds them; that is asserted, so that a broken dump cannot
    pass for a clean one. The daemon runs with glibc filling freed memory, so
    what the image holds is what something still holds: the token replaced
    after the forced 401 must be gone (token cache, token response, JSON
    parse, request headers, libcurl handles), the token in use present."""
    r = secrets_run
    mem = image_or_skip(r.memory)
    assert PW_GOOD.encode() in mem and SECRET_OK.encode() in mem, \
        "the configured secrets are not in the image: the dump is not the daemon's memory"
    assert len(r.daemon_tokens) >= 2, r.daemon_tokens
    current, retired = r.daemon_tokens[-1], r.daemon_tokens[:-1]
    counts = {name: mem.count(v.encode()) for name, v in SECRETS.items()}
    print("copies in the live daemon's memory: %r; retired tokens %r, token in use %d" % (
        counts, [mem.count(t.encode()) for t in retired], mem.count(current.encode())))
    assert current.encode() in mem, "the token in use is not in the image"
    for t in retired:
        i = mem.find(t.encode())
        assert i < 0, "a retired access token is still held: %r" % mem[max(0, i - 80):i + 100]
    # Never one copy per message: the configuration's own, and libcurl's per
    # handle and connection.
    for name, n in counts.items():
        assert n <= 8, "%d copies of %s in memory" % (n, name)


def test_memory_image_after_reload_holds_no_replaced_secret(secrets_run):
    """After a reload that replaced the password of "good" and the client
    secret of "m365" (and a message sent with each of the new ones), nothing
    in the daemon holds the old values or any token obtained with the old
    secret; the new ones are there."""
    r = secrets_run
    mem = image_or_skip(r.memory_after_reload)
    assert PW_GOOD2.encode() in mem and SECRET_OK2.encode() in mem
    assert r.tokens_after_reload and r.tokens_after_reload[0].encode() in mem
    for name, value in (("PW_GOOD", PW_GOOD), ("SECRET_OK", SECRET_OK)):
        i = mem.find(value.encode())
        assert i < 0, "replaced %s still held: %r" % (name, mem[max(0, i - 80):i + 60])
    for t in r.daemon_tokens:
        assert t.encode() not in mem, "a token of the replaced secret is still held"


def test_world_readable_literal_secret_warned_without_quoting_it(tmp_path):
    """The warning itself (test_config_check.py: warn-literal-secret-in-world-
    readable-file) must not quote the secret it warns about."""
    d = Daemon(tmp_path, smtp_profile("billing", 2525, auth=(USER, PW_GOOD)))
    os.chmod(d.conf, 0o644)
    p = run([MAILSPOOLD, "-c", d.conf, "--check"])
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "warning" in out and "Passwort" in out, out
    assert leaks(out, []) == [], out
