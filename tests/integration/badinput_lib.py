"""The bad-input corpus runner: hostile producer inputs through the four
producer paths (CLI flags, JSON documents, the C API, plain SQL rows) into one
real mailspoold per path and one real SMTP peer, then judged at the peer.

Owns: reading tests/corpus/badinput/*.jsonl (format: tests/corpus/README.md),
feeding every entry through its path, letting the daemon settle, and the
checks: per entry (exit code or state and reason as the entry expects; what
the server received for it) and per path (no command or header that nobody
asked for ever reached the server, no bare CR or LF on the wire, exactly one
message per accepted entry, the daemon alive and well-behaved).
Never: decides an expectation itself (the corpus entry does, with a "why"),
or waits without a deadline.
"""
import base64
import concurrent.futures
import email
import email.policy
import json
import os
import re
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import BUILD, MAILSPOOL, ROOT
from mshelpers import VALGRIND_SLOWDOWN, Daemon, smtp_profile, wait_for
from smtp_ctl import SmtpPeer

CORPUS = os.path.join(ROOT, "tests", "corpus", "badinput")
API_ENQUEUE = os.path.join(BUILD, "tools", "api_enqueue")
TAG = "X-Corpus-Id"
FROM = "noreply@airport.example"
AREAS = {"invoice": "relay", "report": "relay"}   # deliberately no [area *]
EXPECTS = ("reject", "deliver", "fail", "hold", "defer")
# Strings the hostile inputs use for what must never reach a server as a
# header or a command.
MARKERS = ("x-injected", "victim@evil.example", "attacker@evil.example")
VERBS = {"EHLO", "HELO", "MAIL", "RCPT", "DATA", "QUIT", "RSET", "NOOP"}
# Header fields the composer writes; anything else must be asked for.
COMPOSER_FIELDS = {"date", "from", "to", "cc", "reply-to", "subject", "message-id",
                   "mime-version", "content-type", "content-transfer-encoding"}
SQL_DEFAULTS = {"area": "invoice", "subject": "corpus", "body_text": "Hello\n"}
SQL_RCPT_DEFAULT = [{"address": "rcpt@example.org"}]


def b(s):
    """Corpus text to bytes: U+DC80..U+DCFF stand for the raw bytes 0x80..0xFF."""
    return s.encode("utf-8", "surrogateescape")


def u(data):
    return data.decode("utf-8", "surrogateescape")


def expand(v, files=None):
    """Expands the corpus' generators ($repeat, $concat, $seq, $splice) and
    the {files} placeholder (the entry's own directory)."""
    if isinstance(v, dict):
        if "$repeat" in v:
            return expand(v["$repeat"], files) * v["n"]
        if "$concat" in v:
            return "".join(expand(x, files) for x in v["$concat"])
        if "$seq" in v:
            return [with_i(expand(v["$seq"], files), i) for i in range(v["n"])]
        return {expand(k, files): expand(x, files) for k, x in v.items()}
    if isinstance(v, list):
        out = []
        for x in v:
            if isinstance(x, dict) and "$splice" in x:
                for i in range(x["n"]):
                    out += [with_i(expand(t, files), i) for t in x["$splice"]]
            else:
                out.append(expand(x, files))
        return out
    if isinstance(v, str) and files is not None:
        return v.replace("{files}", files)
    return v


def with_i(v, i):
    """v with "{i}" replaced by i in every string it holds."""
    if isinstance(v, str):
        return v.replace("{i}", str(i))
    if isinstance(v, dict):
        return {k: with_i(x, i) for k, x in v.items()}
    if isinstance(v, list):
        return [with_i(x, i) for x in v]
    return v


def load(path_name):
    """The entries of one path, checked for the fields every entry needs."""
    entries, seen = [], set()
    with open(os.path.join(CORPUS, path_name + ".jsonl"), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.startswith("//"):
                continue
            e = json.loads(line)
            where = "%s.jsonl:%d" % (path_name, n)
            assert e.get("id") and e["id"] not in seen, "%s: missing or repeated id" % where
            assert e.get("expect") in EXPECTS, "%s: expect must be one of %s" % (where, EXPECTS)
            assert e.get("why"), "%s: say why this is the expectation" % where
            if e["expect"] == "deliver":
                assert "rcpts" in e, "%s: a deliver entry lists its envelope rcpts" % where
            seen.add(e["id"])
            entries.append(e)
    return entries


def header_block(raw):
    """(name, value) pairs of the top-level header block, unfolded, as bytes."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + line)
        else:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields


def norm_body(s):
    return s.replace("\r\n", "\n").replace("\r", "\n")


def child_env():
    e = dict(os.environ)
    e.pop("MAILSPOOL_SPOOL", None)
    e.pop("MAILSPOOL_CONF", None)
    e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    return e


class PathRun:
    """One producer path: its peer, its daemon, its entries and their results."""

    def __init__(self, name, workdir, entries):
        self.name = name
        self.dir = str(workdir)
        self.entries = entries
        self.by_id = {e["id"]: e for e in entries}
        self.results = {}
        self.peer = None
        self.daemon = None
        self.settle_problem = None
        self.canary_id = None

    # ---- set-up and tear-down ----------------------------------------------
    def start(self):
        self.peer = SmtpPeer(os.path.join(self.dir, "peer"), max_seconds=600).start()
        self.daemon = Daemon(self.dir, smtp_profile("relay", self.peer.port, from_addr=FROM),
                             areas=AREAS, queue={"retry_min": "1s", "retry_max": "2s"},
                             daemon={"max_connections": "4"})
        self.daemon.start()
        return self

    def close(self):
        if self.daemon:
            self.daemon.kill9()
        if self.peer:
            self.peer.kill()

    def files_for(self, e):
        """Creates the entry's "files" in its own directory; returns the directory."""
        d = os.path.join(self.dir, "files", re.sub(r"[^A-Za-z0-9_.-]", "_", e["id"]))
        os.makedirs(d, exist_ok=True)
        for name, content in (e.get("files") or {}).items():
            data = expand(content)
            with open(os.path.join(d, name), "wb") as f:
                f.write(base64.b64decode(data["$base64"]) if isinstance(data, dict) else b(data))
        return d

    # ---- producers -----------------------------------------------------------
    def cli_argv(self, *args):
        return [MAILSPOOL, "-c", self.daemon.conf, "-s", self.daemon.spool] + list(args)

    def run_cli(self, args, stdin=None):
        """Runs mailspool with corpus-text arguments; a result dict."""
        p = subprocess.run([b(a) for a in args],
                           input=b(stdin) if stdin is not None else None,
                           stdin=subprocess.DEVNULL if stdin is None else None,
                           capture_output=True, env=child_env(), timeout=120)
        out = u(p.stdout).strip()
        return {"rc": p.returncode, "stdout": out, "stderr": u(p.stderr),
                "msg_id": int(out) if p.returncode == 0 and out.isdigit() else None}

    def produce_cli(self):
        for e in self.entries:
            files = self.files_for(e)
            args = expand(e["args"], files)
            if e.get("tag", True):
                args = args + ["--header", "%s: %s" % (TAG, e["id"])]
            stdin = expand(e["stdin"], files) if "stdin" in e else None
            self.results[e["id"]] = self.run_cli(self.cli_argv("enqueue", *args), stdin)

    def produce_json(self):
        for e in self.entries:
            files = self.files_for(e)
            if "raw" in e:
                data = b(expand(e["raw"], files))
            else:
                doc = expand(e["doc"], files)
                if e.get("tag", True) and isinstance(doc, dict):
                    if doc.get("headers") is None:
                        doc["headers"] = {}
                    if isinstance(doc["headers"], dict):
                        doc["headers"][TAG] = e["id"]
                data = b(json.dumps(doc, ensure_ascii=False))
            if e.get("via") == "stdin":
                self.results[e["id"]] = self.run_cli(self.cli_argv("enqueue", "--json", "-"),
                                                     u(data))
                continue
            path = os.path.join(files, "message.json")
            if "json_path" in e:
                path = expand(e["json_path"], files)
            else:
                with open(path, "wb") as f:
                    f.write(data)
            self.results[e["id"]] = self.run_cli(self.cli_argv("enqueue", "--json", path))

    def produce_api(self):
        lines = []
        for e in self.entries:
            calls = expand(e["calls"], self.files_for(e))
            if e.get("tag", True):
                calls = calls + [["header", TAG, e["id"]]]
            lines.append(json.dumps({"id": e["id"], "calls": calls,
                                     "continue": bool(e.get("continue"))}, ensure_ascii=False))
        p = subprocess.run([API_ENQUEUE, self.daemon.spool], input=b("\n".join(lines) + "\n"),
                           capture_output=True, env=child_env(), timeout=300)
        self.api_run = {"rc": p.returncode, "stderr": u(p.stderr)}
        for line in u(p.stdout).splitlines():
            r = json.loads(line)
            # With "continue", the entry's outcome is mailspool_enqueue's; the
            # refused calls before it are checked through "first_failure".
            rc = r.get("enqueue_rc", r["rc"]) if self.by_id[r["id"]].get("continue") else r["rc"]
            self.results[r["id"]] = {"rc": rc, "stderr": r["error"], "stdout": "",
                                     "msg_id": int(r["msg_id"]) or None, "api": r}

    def _sql_value(self, v):
        """(SQL expression, parameter) for one corpus value."""
        if isinstance(v, dict) and "$blob" in v:
            return "?", bytes.fromhex(v["$blob"])
        if isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v):
            return "CAST(? AS TEXT)", b(v)
        return "?", v

    def _sql_insert(self, c, table, row):
        cols, exprs, params = [], [], []
        for k, v in row.items():
            x, p = self._sql_value(v)
            cols.append(k)
            exprs.append(x)
            params.append(p)
        sql = "INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(cols), ", ".join(exprs))
        return c.execute(sql, params).lastrowid

    def produce_sql(self):
        c = sqlite3.connect(self.daemon.spool, timeout=30, isolation_level=None)
        c.execute("PRAGMA foreign_keys = ON")
        for e in self.entries:
            msg = dict(SQL_DEFAULTS)
            msg.update(expand(e.get("message", {})))
            for k in e.get("omit", []):
                msg.pop(k, None)
            if e.get("tag", True):
                hdrs = [{"name": TAG, "value": e["id"]}] + expand(e.get("headers", []))
            else:
                hdrs = expand(e.get("headers", []))
            try:
                c.execute("BEGIN IMMEDIATE")
                mid = self._sql_insert(c, "messages", msg)
                for r in expand(e.get("recipients", SQL_RCPT_DEFAULT)):
                    self._sql_insert(c, "recipients", dict(r, message_id=mid))
                for h in hdrs:
                    self._sql_insert(c, "headers", dict(h, message_id=mid))
                for a in expand(e.get("attachments", [])):
                    row = {"name": "a.txt", "data": {"$blob": b"hello".hex()}}
                    row.update(a)
                    self._sql_insert(c, "attachments", dict(row, message_id=mid))
                c.execute("COMMIT")
                self.results[e["id"]] = {"rc": 0, "stderr": "", "stdout": "", "msg_id": mid}
            except sqlite3.Error as err:
                c.execute("ROLLBACK")
                self.results[e["id"]] = {"rc": 65, "stderr": "sqlite: %s" % err, "stdout": "",
                                         "msg_id": None}
        c.close()

    # ---- the daemon at work ----------------------------------------------------
    def rows(self):
        with self.daemon.db() as c:
            return {r["id"]: dict(r) for r in c.execute(
                "SELECT id, state, attempts, last_error, next_attempt FROM messages")}

    def _settled(self):
        rows = self.rows()
        for e in self.entries:
            mid = self.results[e["id"]]["msg_id"]
            if mid is None:
                continue
            r = rows.get(mid)
            if r is None or r["state"] == "sending":
                return False
            if e["expect"] in ("deliver", "fail") and r["state"] not in ("sent", "failed"):
                return False
            if e["expect"] == "defer" and not r["last_error"]:
                return False
            if e["expect"] == "reject" and r["state"] == "queued" and not r["last_error"] \
                    and r["next_attempt"] <= time.time() + 60:
                return False  # accepted against expectation: let it play out
        return True

    def settle(self, timeout=120):
        """Waits until every accepted entry reached what it can reach, then
        sends a canary message that must go out (the daemon still works)."""
        try:
            wait_for(self._settled, timeout=timeout * VALGRIND_SLOWDOWN, interval=0.1,
                     what="corpus settled")
        except AssertionError as err:
            self.settle_problem = str(err)
        r = self.run_cli(self.cli_argv("enqueue", "--area", "invoice", "--to",
                                       "canary@example.org", "--subject", "canary",
                                       "--text", "-", "--header", "%s: canary" % TAG),
                         "still alive\n")
        assert r["rc"] == 0, r
        self.canary_id = r["msg_id"]
        self.daemon.wait_states("sent", [self.canary_id], timeout=60 * VALGRIND_SLOWDOWN)
        self.delivered = self.peer.messages()

    # ---- checks ------------------------------------------------------------------
    def tagged(self, tag):
        out = []
        for m in self.delivered:
            for name, value in header_block(m["raw"]):
                if name.lower() == TAG.lower().encode() and value.strip() == b(tag):
                    out.append(m)
        return out

    def check_entry(self, e):
        """Everything one entry promises; raises AssertionError with the story."""
        r = self.results[e["id"]]
        story = "entry %s (%s): result %r" % (e["id"], e["why"], {k: v for k, v in r.items()
                                                                   if k != "api"})
        assert r["rc"] >= 0, "killed by signal %d: %s" % (-r["rc"], story)
        if "first_failure" in e:
            api = r["api"]
            assert [api["failed_call"], api["calls"][api["failed_call"]]] == e["first_failure"], story
        if e["expect"] == "reject":
            assert r["rc"] == e.get("exit", 65), story
            assert r["msg_id"] is None and r["stdout"] == "", story
            assert r["stderr"].strip(), "no error message: " + story
            if e.get("error"):
                assert re.search(e["error"], r["stderr"], re.I | re.S), story
            return
        assert r["rc"] == 0 and r["msg_id"], story
        row = self.rows().get(r["msg_id"])
        assert row is not None, story
        story += "; row %r" % row
        want_state = {"deliver": ("sent",), "fail": ("failed",), "hold": ("queued",),
                      # deferred, and tried again after retry_min: the rows are
                      # read after the canary went out, when the daemon may just
                      # have claimed it again (last_error stays meanwhile)
                      "defer": ("queued", "sending")}[e["expect"]]
        assert row["state"] in want_state, story
        if e["expect"] == "hold":
            assert row["attempts"] == 0 and not row["last_error"], story
        if e["expect"] in ("fail", "defer"):
            assert row["last_error"], story
            if e.get("reason"):
                assert re.search(e["reason"], row["last_error"], re.I), story
        got = self.tagged(e["id"])
        if e["expect"] != "deliver":
            assert got == [], "a message reached the server: " + story
            return
        assert len(got) == 1, "%d messages reached the server: %s" % (len(got), story)
        self.check_message(e, got[0], story)

    def check_message(self, e, m, story):
        env = m["envelope"]
        assert env["mail_from"] == FROM, story
        assert env["rcpt_tos"] == expand(e["rcpts"]), story
        allowed = COMPOSER_FIELDS | {TAG.lower()} | {
            h.lower() for h in e.get("check", {}).get("headers", {})}
        for name, value in header_block(m["raw"]):
            assert name.decode("ascii", "replace").lower() in allowed, \
                "unexpected header field %r: %s" % (name, story)
        msg = m["message"]
        chk = expand(e.get("check", {}))
        if "subject" in chk:
            assert str(msg["subject"]) == chk["subject"], story
        for name, value in chk.get("headers", {}).items():
            assert str(msg[name]) == value, story
        if "to" in chk:
            assert [a.addr_spec for a in msg["to"].addresses] == chk["to"], story
        if "to_names" in chk:
            assert [a.display_name for a in msg["to"].addresses] == chk["to_names"], story
        if "reply_to" in chk:
            assert [a.addr_spec for a in msg["reply-to"].addresses] == [chk["reply_to"]], story
        for kind in ("text", "html"):
            if kind in chk:
                part = msg.get_body(preferencelist=("plain",) if kind == "text" else ("html",))
                assert part is not None, story
                got = part.get_content()
                assert norm_body(got) == norm_body(chk[kind]), story
        if "attachments" in chk:
            atts = [(a.get_filename(), a.get_content_type()) for a in msg.iter_attachments()]
            assert atts == [(a["name"], a["type"]) for a in chk["attachments"]], story

    def check_peer(self):
        """What the server saw over all connections: only the expected commands,
        no marker in any command or header name, strict CRLF, one message per
        accepted entry."""
        problems = []
        want = [e["id"] for e in self.entries if e["expect"] == "deliver"] + ["canary"]
        tags = []
        for m in self.delivered:
            t = [v.strip() for n, v in header_block(m["raw"]) if n.lower() == TAG.lower().encode()]
            if len(t) != 1:
                problems.append("message %s has %d %s fields" % (m["seq"], len(t), TAG))
            tags += [u(x) for x in t]
            for name, value in header_block(m["raw"]):
                low = name.lower()
                if any(k.encode() in low for k in MARKERS) or low == b"bcc":
                    problems.append("message %s: injected header %r" % (m["seq"], name))
        if sorted(tags) != sorted(want):
            problems.append("messages at the peer %r, wanted one each of %r" % (
                sorted(set(tags) ^ set(want)) or "duplicates", "the accepted entries"))
        rcpts = {"canary@example.org"}
        for e in self.entries:
            if e["expect"] == "deliver":
                rcpts.update(expand(e["rcpts"]))
        mails = 0
        mail_re = re.compile(r"MAIL FROM:<%s>( [A-Z0-9]+(=[A-Za-z0-9+]+)?)*$" % re.escape(FROM))
        for line in self.peer.commands():
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            if verb not in VERBS:
                problems.append("unexpected command %r" % line[:200])
            elif verb == "MAIL":
                mails += 1
                if not mail_re.match(line):
                    problems.append("unexpected MAIL %r" % line[:200])
            elif verb == "RCPT":
                m = re.match(r"RCPT TO:<(.*)>$", line)
                if not m or m.group(1) not in rcpts:
                    problems.append("unexpected RCPT %r" % line[:200])
            if any(k in line.lower() for k in MARKERS):
                problems.append("marker in command %r" % line[:200])
        # An entry whose fault shows only while its data is streamed (an
        # attachment row changed after enqueue) starts a transaction that the
        # daemon then aborts by dropping the connection: no final dot.
        aborted = sum(1 for e in self.entries if e.get("aborted_transfer"))
        if mails != len(self.delivered) + aborted:
            problems.append("%d MAIL commands for %d messages and %d aborted transfers" % (
                mails, len(self.delivered), aborted))
        conn_dir = os.path.join(self.peer.outdir, "conn")
        for name in sorted(os.listdir(conn_dir)):
            with open(os.path.join(conn_dir, name), "rb") as f:
                data = f.read()
            bare = re.search(rb"\r(?!\n)|(?<!\r)\n", data)
            if bare:
                problems.append("connection %s: bare CR or LF at byte %d: %r" % (
                    name, bare.start(), data[max(0, bare.start() - 40):bare.start() + 40]))
            longest = max((len(x) for x in data.split(b"\r\n")), default=0)
            if longest > 998:
                problems.append("connection %s: a line of %d octets" % (name, longest))
        assert not problems, "\n".join(problems[:40])

    def check_daemon(self):
        """The daemon is still up, stops cleanly, and its log is well-formed."""
        assert self.settle_problem is None, self.settle_problem
        assert self.daemon.proc.poll() is None, "daemon died: " + self.daemon.stderr_text()
        rc = self.daemon.stop()
        err = self.daemon.stderr_text()
        assert rc == 0, err
        assert "ERROR: " not in err and "runtime error" not in err, err
        with open(self.daemon.log, "rb") as f:
            log = f.read()
        line_re = re.compile(rb"^\d{4}-\d\d-\d\dT[0-9:.]+[+-]\d\d:\d\d (debug|info|warn|error) "
                             rb"[a-z][a-z-]*( |$)")
        try:
            log.decode("utf-8")
        except UnicodeDecodeError as err:
            raise AssertionError("the log is not UTF-8 text (grep calls it binary): %s: %r" % (
                err, log[max(0, err.start - 80):err.start + 20]))
        for line in log.split(b"\n")[:-1]:
            assert line_re.match(line), "malformed (injected?) log line %r" % line[:300]
            assert not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", line), \
                "control character in log line %r" % line[:300]

    def check_admin_cli(self):
        """list and status over all rows, and show / show --json / render on
        the rows marked "admin_cli": no signal, a clear exit code, JSON that
        parses."""
        problems = []

        def run(*args):
            r = self.run_cli(self.cli_argv(*args))
            if r["rc"] < 0 or r["rc"] not in (0, 65):
                problems.append("%s: exit %d %s" % (" ".join(args), r["rc"], r["stderr"][:200]))
            return r

        for args in (("list",), ("list", "--json"), ("status",), ("status", "--json")):
            r = run(*args)
            if "--json" in args and r["rc"] == 0:
                json.loads(r["stdout"])

        def one_row(e):
            mid = self.results[e["id"]]["msg_id"]
            if mid is None or not e.get("admin_cli"):
                return
            run("show", str(mid))
            r = run("show", str(mid), "--json")
            if r["rc"] == 0:
                try:
                    json.loads(r["stdout"])
                except ValueError as err:
                    problems.append("show %d --json (%s): not JSON: %s" % (mid, e["id"], err))
            r = run("render", str(mid))
            if e["expect"] in ("deliver", "hold") and r["rc"] != 0:
                problems.append("render %d (%s) exit %d" % (mid, e["id"], r["rc"]))
        # A few at a time: under ASan every start of the CLI costs tens of ms.
        rows = [e for e in self.entries if e.get("admin_cli") and self.results[e["id"]]["msg_id"]]
        assert len(rows) >= 50, "only %d rows are marked admin_cli" % len(rows)
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one_row, rows))
        assert not problems, "\n".join(problems[:40])

    def check_spool_writes(self):
        """Only accepted entries (and the canary) left rows in the spool."""
        accepted = {r["msg_id"] for r in self.results.values() if r["msg_id"]}
        assert set(self.rows()) == accepted | {self.canary_id}


def corpus_fixture(path, entries):
    """The module-scoped fixture of one corpus file (test_badinput_PATH.py):
    one SMTP peer and one mailspoold serve every entry of the path; the
    entries are produced through PATH, then the daemon settles."""
    @pytest.fixture(scope="module")
    def corpus_run(tmp_path_factory):
        run = PathRun(path, tmp_path_factory.mktemp("badinput-" + path), entries)
        try:
            run.start()
            getattr(run, "produce_" + path)()
            run.settle()
            yield run
        finally:
            run.close()
    return corpus_run
