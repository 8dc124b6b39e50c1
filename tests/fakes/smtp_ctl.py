"""Driving one smtp_peer.py process from a test (or a demo script).

Owns: turning keyword options into smtp_peer.py arguments, the process
(start, stop, restart on the same port, kill) and reading what the peer
recorded in its outdir.
Never: talks SMTP itself or waits without a deadline.
"""
import email
import email.policy
import glob
import json
import os

from procutil import FakeProcess, wait_until

_FLAGS = {"auth_plaintext": "--auth-plaintext", "auth_optional": "--auth-optional",
          "refuse_auth": "--refuse-auth", "drop_after_data": "--drop-after-data",
          "require_tls": "--require-tls", "smtputf8": "--smtputf8",
          "rcpt_limit_552": "--rcpt-limit-552"}
_VALUES = {"tempfail_first": "--tempfail-first", "tempfail_stage": "--tempfail-stage",
           "data_delay": "--data-delay", "reply_421_after": "--reply-421-after",
           "size_limit": "--size-limit", "idle_timeout": "--idle-timeout",
           "max_seconds": "--max-seconds", "rcpt_limit": "--rcpt-limit"}


def peer_args(outdir, port=0, host="127.0.0.1", tls_mode="none", cert=None, key=None,
              starttls=True, auth=None, reject_rcpt=(), full_rcpt=(),
              close_before_greeting=None, capture=None, **opts):
    """smtp_peer.py's command line for the given options (see SmtpPeer)."""
    args = ["--host", host, "--port", port, "--outdir", outdir, "--tls-mode", tls_mode]
    if cert:
        args += ["--cert", cert, "--key", key]
    if not starttls:
        args.append("--no-starttls")
    if auth:
        args += ["--auth", auth if isinstance(auth, str) else "%s:%s" % tuple(auth)]
    if isinstance(reject_rcpt, str):
        reject_rcpt = [reject_rcpt]
    for r in reject_rcpt or ():
        args += ["--reject-rcpt", r]
    for r in ([full_rcpt] if isinstance(full_rcpt, str) else full_rcpt or ()):
        args += ["--full-rcpt", r]
    if close_before_greeting is True:
        args.append("--close-before-greeting")
    elif close_before_greeting:
        args += ["--close-before-greeting", int(close_before_greeting)]
    if capture:
        args += ["--capture", capture]
    for k, v in opts.items():
        if k in _FLAGS:
            if v:
                args.append(_FLAGS[k])
        elif k in _VALUES:
            if v is not None:
                args += [_VALUES[k], v]
        else:
            raise TypeError("smtp peer: unknown option %r" % k)
    return args


class SmtpPeer:
    """A running smtp_peer.py.

    Options (keywords): tls_mode ("none" | "starttls" | "implicit"), cert, key
    (default: the session's localhost certificate when tls_mode is not "none"),
    starttls (False: do not offer it), require_tls, auth ("user:pass" or a
    (user, pass) pair), auth_plaintext, auth_optional, refuse_auth,
    reject_rcpt (address or list), tempfail_first (N), tempfail_stage
    ("mail" | "rcpt" | "data"), data_delay (s), drop_after_data,
    close_before_greeting (True: every connection; N: the first N),
    reply_421_after (N per connection), rcpt_limit (N per transaction),
    rcpt_limit_552 (answer the rest 552 5.5.3, not 452 4.5.3), size_limit,
    smtputf8, idle_timeout,
    capture (True or a path), max_seconds, host, port.
    """

    def __init__(self, outdir, certs=None, **opts):
        self.outdir = str(outdir)
        os.makedirs(self.outdir, exist_ok=True)
        self.host = opts.get("host", "127.0.0.1")
        self.tls_mode = opts.get("tls_mode", "none")
        if self.tls_mode != "none" and not opts.get("cert") and certs is not None:
            opts["cert"], opts["key"] = certs.server_cert, certs.server_key
        self.ca = certs.ca if certs is not None else None
        cap = opts.get("capture")
        if cap is True:
            opts["capture"] = os.path.join(self.outdir, "capture.bin")
        self.capture_path = opts.get("capture") or None
        self._opts = opts
        self.port = None
        self._proc = None

    def start(self, port=None):
        opts = dict(self._opts)
        if port is not None:
            opts["port"] = port
        self._proc = FakeProcess("smtp_peer.py", peer_args(self.outdir, **opts),
                                 os.path.join(self.outdir, "peer.log"))
        self.port = self._proc.start()
        return self

    @property
    def alive(self):
        return self._proc is not None and self._proc.alive

    def stop(self):
        """Graceful stop (SIGTERM); open connections are aborted."""
        return self._proc.stop() if self._proc else None

    def kill(self):
        if self._proc:
            self._proc.kill()

    def restart(self, **changes):
        """Stops and starts again on the same port (and outdir), optionally with
        changed options, e.g. restart(tempfail_first=0)."""
        self.stop()
        self._opts.update(changes)
        return self.start(port=self.port)

    def log(self):
        return self._proc.log_tail() if self._proc else ""

    # ---- what the peer recorded ------------------------------------------
    def messages(self):
        """Accepted messages in arrival order: dicts with the .json fields
        (mail_from, rcpt_tos, peer, session_id, tls, auth_user, seq, ...) plus
        raw (bytes exactly as received after the dot), message (parsed with
        email.policy.default) and envelope {mail_from, rcpt_tos}."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.outdir, "[0-9]" * 6 + ".json"))):
            with open(path, encoding="utf-8") as f:
                meta = json.load(f)
            with open(path[:-5] + ".eml", "rb") as f:
                raw = f.read()
            meta["raw"] = raw
            meta["message"] = email.message_from_bytes(raw, policy=email.policy.default)
            meta["envelope"] = {"mail_from": meta["mail_from"], "rcpt_tos": meta["rcpt_tos"]}
            out.append(meta)
        return out

    def events(self):
        path = os.path.join(self.outdir, "events.jsonl")
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def commands(self, conn=None):
        """Command lines received (verb and argument, as sent), optionally of one
        connection."""
        return [e["line"] for e in self.events()
                if e["event"] == "command" and (conn is None or e["conn"] == conn)]

    def replies(self, conn=None):
        return [e["line"] for e in self.events()
                if e["event"] == "reply" and (conn is None or e["conn"] == conn)]

    def connections(self):
        """Number of SMTP connections accepted so far (all restarts together)."""
        return sum(1 for e in self.events() if e["event"] == "connect")

    def stats(self):
        with open(os.path.join(self.outdir, "stats.json"), encoding="utf-8") as f:
            return json.load(f)

    def conn_input(self, conn):
        """Every byte received on connection conn (after TLS decryption)."""
        path = os.path.join(self.outdir, "conn", "%06d.in" % conn)
        with open(path, "rb") as f:
            return f.read()

    def captured(self):
        """The --capture file (every byte received, all connections in order)."""
        with open(self.capture_path, "rb") as f:
            return f.read()

    def wait_for(self, n, timeout=10.0):
        """Waits until at least n messages were accepted; returns messages()."""
        def enough():
            found = glob.glob(os.path.join(self.outdir, "[0-9]" * 6 + ".json"))
            return len(found) >= n
        try:
            wait_until(enough, timeout, what="%d message(s) at the SMTP peer" % n)
        except AssertionError as e:
            tail = [json.dumps(x) for x in self.events()[-15:]]
            raise AssertionError("%s; last events:\n%s" % (e, "\n".join(tail))) from None
        return self.messages()

    def wait_for_connections(self, n, timeout=10.0):
        wait_until(lambda: self.connections() >= n, timeout,
                   what="%d connection(s) at the SMTP peer" % n)
        return self.connections()
