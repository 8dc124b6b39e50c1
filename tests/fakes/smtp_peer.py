#!/usr/bin/python3
"""A scriptable SMTP peer for mailspool's integration tests, built on aiosmtpd.

Owns: one listening socket on loopback, the SMTP dialogue with whatever
connects, and the record of it in --outdir (accepted messages, events,
per-connection raw input, counters).
Never: relays mail anywhere, listens on anything but the address it is given,
or outlives --max-seconds.  It records credentials and raw bytes on purpose:
tests must be able to assert what crossed the wire.

  /usr/bin/python3 tests/fakes/smtp_peer.py --port 0 --outdir DIR [options]

prints "READY <port>" on stdout once it listens; see --help and README.md.
"""
import argparse
import asyncio
import functools
import itertools
import json
import logging
import os
import signal
import ssl
import sys
import time
from asyncio import sslproto

from aiosmtpd.smtp import SMTP, AuthResult, TLSSetupException

IDENT = "mailspool-test-peer"


class Recorder:
    """Writes everything the peer observes into outdir."""

    def __init__(self, outdir, capture_path):
        self.outdir = outdir
        os.makedirs(os.path.join(outdir, "conn"), exist_ok=True)
        self._events = open(os.path.join(outdir, "events.jsonl"), "a", encoding="utf-8")
        self._capture = open(capture_path, "ab") if capture_path else None
        # A restarted peer (same outdir) continues the numbering of its predecessor.
        self._seq = itertools.count(_max_number(outdir, ".json") + 1)
        self.conn_ids = itertools.count(_max_number(os.path.join(outdir, "conn"), ".in") + 1)
        self.stats = {"connections": 0, "disconnects": 0, "tls": 0, "tls_failed": 0,
                      "messages": 0, "commands": {}, "auth_ok": 0, "auth_failed": 0,
                      "tempfails": 0, "rejected_rcpts": 0, "dropped_after_data": 0,
                      "closed_before_greeting": 0, "replies_421": 0, "starts": 0}
        try:
            with open(os.path.join(outdir, "stats.json"), encoding="utf-8") as f:
                self.stats.update(json.load(f))
        except (OSError, ValueError):
            pass
        self.stats["starts"] += 1
        self._write_stats()

    def event(self, conn, kind, **fields):
        rec = {"t": round(time.time(), 6), "conn": conn, "event": kind}
        rec.update(fields)
        self._events.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._events.flush()

    def count(self, key, verb=None):
        if verb is None:
            self.stats[key] += 1
        else:
            self.stats[key][verb] = self.stats[key].get(verb, 0) + 1
        self._write_stats()

    def _write_stats(self):
        _atomic_write(os.path.join(self.outdir, "stats.json"),
                      json.dumps(self.stats, indent=1).encode())

    def raw(self, conn, data):
        with open(os.path.join(self.outdir, "conn", "%06d.in" % conn), "ab") as f:
            f.write(data)
        if self._capture:
            self._capture.write(data)
            self._capture.flush()

    def save_message(self, content, meta):
        """Stores one accepted message as NNNNNN.eml (+ .json, written last)."""
        seq = next(self._seq)
        base = os.path.join(self.outdir, "%06d" % seq)
        _atomic_write(base + ".eml", content)
        meta = dict(meta, seq=seq, size=len(content))
        _atomic_write(base + ".json", json.dumps(meta, indent=1, ensure_ascii=False).encode())
        self.count("messages")
        return seq


def _max_number(d, suffix):
    best = 0
    for name in os.listdir(d):
        stem = name[:-len(suffix)]
        if name.endswith(suffix) and len(stem) == 6 and stem.isdigit():
            best = max(best, int(stem))
    return best


def _atomic_write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Policy:
    """The scripted behaviour, with the counters that span connections."""

    def __init__(self, args):
        self.a = args
        self.reject = {r.lower() for r in (args.reject_rcpt or [])}
        self.full = {r.lower() for r in (args.full_rcpt or [])}
        self.tempfail_left = args.tempfail_first
        cbg = args.close_before_greeting
        self.close_greeting_left = None if cbg is None else (cbg if cbg > 0 else -1)

    def take_close_before_greeting(self):
        if self.close_greeting_left is None or self.close_greeting_left == 0:
            return False
        if self.close_greeting_left > 0:
            self.close_greeting_left -= 1
        return True

    def take_tempfail(self, stage):
        if stage != self.a.tempfail_stage or self.tempfail_left <= 0:
            return False
        self.tempfail_left -= 1
        return True


class Handler:
    """aiosmtpd hooks: the decisions on MAIL, RCPT and the final dot."""

    def __init__(self, policy, rec):
        self.p = policy
        self.rec = rec

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        """aiosmtpd lists "AUTH" even with every mechanism excluded (a peer
        without --auth): a relay without AUTH shows no AUTH line at all."""
        session.host_name = hostname  # the 5-argument hook must set it
        return [r for r in responses if r[4:].strip().upper() != "AUTH"]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        n = self.p.a.reply_421_after
        if n is not None and server.accepted >= n:
            self.rec.count("replies_421")
            server.close_after_push = True
            return "421 4.7.0 %s closing connection after %d messages" % (IDENT, n)
        if self.p.take_tempfail("mail"):
            self.rec.count("tempfails")
            return "451 4.7.1 Try again later (test peer tempfail)"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.p.reject:
            self.rec.count("rejected_rcpts")
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if address.lower() in self.p.full:
            self.rec.count("tempfails")
            return "452 4.2.2 <%s>: Mailbox full" % address
        limit = self.p.a.rcpt_limit
        if limit is not None and len(envelope.rcpt_tos) >= limit:
            self.rec.count("tempfails")
            if self.p.a.rcpt_limit_552:
                return "552 5.5.3 Too many recipients"
            return "452 4.5.3 Error: too many recipients"
        if self.p.take_tempfail("rcpt"):
            self.rec.count("tempfails")
            return "451 4.7.1 <%s>: Try again later (test peer tempfail)" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        if self.p.a.data_delay > 0:
            await asyncio.sleep(self.p.a.data_delay)
        if self.p.take_tempfail("data"):
            self.rec.count("tempfails")
            return "451 4.7.1 Try again later (test peer tempfail)"
        dropped = self.p.a.drop_after_data
        login = getattr(session.auth_data, "login", None)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                "mail_options": list(envelope.mail_options),
                "rcpt_options": list(envelope.rcpt_options),
                "peer": list(session.peer) if session.peer else None,
                "session_id": server.conn_id, "helo": session.host_name,
                "tls": server.is_tls(),
                "auth_user": login.decode("utf-8", "replace") if login else None,
                "received_at": time.time(), "reply_dropped": dropped}
        seq = self.rec.save_message(envelope.original_content, meta)
        server.accepted += 1
        self.rec.event(server.conn_id, "message", seq=seq)
        if dropped:
            self.rec.count("dropped_after_data")
            server.drop_now()
        return "250 2.0.0 Ok: queued as %06d" % seq


class PeerSMTP(SMTP):
    """aiosmtpd's SMTP with recording and the failure modes of --help."""

    def __init__(self, handler, policy, rec, conn_ids, live, implicit_ctx, **kw):
        super().__init__(handler, **kw)
        self.p = policy
        self.rec = rec
        self.conn_ids = conn_ids
        self.live = live
        self.implicit_ctx = implicit_ctx
        self.conn_id = None
        self.accepted = 0
        self.close_after_push = False
        self.dropped = False
        for verb, method in list(self._smtp_methods.items()):
            self._smtp_methods[verb] = self._logged(verb, method)

    def _logged(self, verb, method):
        async def wrapper(arg):
            line = verb if arg is None else "%s %s" % (verb, arg)
            self.rec.event(self.conn_id, "command", verb=verb, line=line)
            self.rec.count("commands", verb)
            return await method(arg)
        functools.update_wrapper(wrapper, method.__func__)
        return wrapper

    def is_tls(self):
        return self._tls_protocol is not None

    def connection_made(self, transport):
        first = self.conn_id is None
        if first:
            self.conn_id = next(self.conn_ids)
            self.live.add(self)
        super().connection_made(transport)
        if first:
            self.rec.count("connections")
            self.rec.event(self.conn_id, "connect", peer=list(self.session.peer or ()),
                           implicit_tls=self.implicit_ctx is not None)
        else:
            ssl_obj = transport.get_extra_info("ssl_object")
            self.rec.count("tls")
            self.rec.event(self.conn_id, "tls", version=ssl_obj.version() if ssl_obj else None)

    def connection_lost(self, error):
        self.live.discard(self)
        self.rec.count("disconnects")
        self.rec.event(self.conn_id, "disconnect", error=repr(error) if error else None)
        super().connection_lost(error)

    def data_received(self, data):
        self.rec.raw(self.conn_id, data)
        super().data_received(data)

    async def _handle_client(self):
        if self.p.take_close_before_greeting():
            self.rec.count("closed_before_greeting")
            self.rec.event(self.conn_id, "close_before_greeting")
            self.transport.close()
            return
        if self.implicit_ctx is not None:
            try:
                await self._start_implicit_tls()
            except Exception as e:  # the client refused the handshake (or vanished)
                self.rec.count("tls_failed")
                self.rec.event(self.conn_id, "tls_failed", error=repr(e))
                self.transport.close()
                self.connection_lost(e)
                return
        await super()._handle_client()

    async def _start_implicit_tls(self):
        """TLS from the first byte, on aiosmtpd's own STARTTLS machinery, so that
        handshake failures are seen here (asyncio's server-side ssl= hides them)."""
        waiter = self.loop.create_future()
        self._tls_protocol = sslproto.SSLProtocol(self.loop, self, self.implicit_ctx, waiter,
                                                  server_side=True)
        self._original_transport = self.transport
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        await waiter

    async def push(self, status):
        if self.dropped:
            return
        text = status if isinstance(status, str) else status.decode("utf-8", "replace")
        self.rec.event(self.conn_id, "reply", line=text)
        await super().push(status)
        if self.close_after_push:
            self.transport.close()

    async def handle_exception(self, error):
        if isinstance(error, TLSSetupException):
            self.rec.count("tls_failed")
            self.rec.event(self.conn_id, "tls_failed", error=repr(error.__cause__))
        return await super().handle_exception(error)

    def drop_now(self):
        """Closes without another byte: the reply to the final dot is lost."""
        self.dropped = True
        self.rec.event(self.conn_id, "drop")
        self.transport.abort()


def _authenticator(args, rec):
    want_user, _, want_pass = (args.auth or ":").partition(":")

    def check(server, session, envelope, mechanism, auth_data):
        user = auth_data.login.decode("utf-8", "replace")
        ok = (not args.refuse_auth and auth_data.login == want_user.encode()
              and auth_data.password == want_pass.encode())
        rec.count("auth_ok" if ok else "auth_failed")
        rec.event(server.conn_id, "auth", mechanism=mechanism, user=user, ok=ok,
                  tls=server.is_tls())
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Error: authentication failed")
    return check


def _server_context(args):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    return ctx


def _parse(argv):
    ap = argparse.ArgumentParser(description="scriptable SMTP test peer")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--tls-mode", choices=("none", "starttls", "implicit"), default="none")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--no-starttls", action="store_true", help="do not offer STARTTLS")
    ap.add_argument("--require-tls", action="store_true",
                    help="530 to every command but EHLO/NOOP/QUIT before STARTTLS")
    ap.add_argument("--auth", metavar="USER:PASS", help="offer AUTH PLAIN LOGIN")
    ap.add_argument("--auth-plaintext", action="store_true",
                    help="offer AUTH without TLS too")
    ap.add_argument("--auth-optional", action="store_true",
                    help="with --auth: MAIL does not require AUTH")
    ap.add_argument("--refuse-auth", action="store_true", help="535 5.7.8 to every AUTH")
    ap.add_argument("--reject-rcpt", action="append", metavar="ADDR")
    ap.add_argument("--full-rcpt", action="append", metavar="ADDR",
                    help="452 (mailbox full) to every RCPT of ADDR")
    ap.add_argument("--rcpt-limit", type=int, metavar="N",
                    help="452 4.5.3 (too many recipients) to every RCPT after the first N "
                         "of a transaction, as Postfix's smtpd_recipient_limit")
    ap.add_argument("--rcpt-limit-552", action="store_true",
                    help="with --rcpt-limit: answer 552 5.5.3 instead, as RFC 821 servers did")
    ap.add_argument("--tempfail-first", type=int, default=0, metavar="N")
    ap.add_argument("--tempfail-stage", choices=("mail", "rcpt", "data"), default="data")
    ap.add_argument("--data-delay", type=float, default=0.0, metavar="SECONDS")
    ap.add_argument("--drop-after-data", action="store_true")
    ap.add_argument("--close-before-greeting", type=int, nargs="?", const=0, metavar="N",
                    help="close the first N connections before the greeting (all if N "
                         "is omitted or 0)")
    ap.add_argument("--reply-421-after", type=int, metavar="N",
                    help="421 and close at the MAIL after N messages on one connection")
    ap.add_argument("--size-limit", type=int, default=100 * 1024 * 1024)
    ap.add_argument("--smtputf8", action="store_true")
    ap.add_argument("--idle-timeout", type=float, default=60.0)
    ap.add_argument("--capture", metavar="FILE", help="append every byte received here")
    ap.add_argument("--max-seconds", type=float, default=600.0)
    a = ap.parse_args(argv)
    if a.tls_mode != "none" and not (a.cert and a.key):
        ap.error("--tls-mode %s needs --cert and --key" % a.tls_mode)
    return a


async def _serve(args):
    rec = Recorder(args.outdir, args.capture)
    policy = Policy(args)
    handler = Handler(policy, rec)
    loop = asyncio.get_running_loop()
    ctx = _server_context(args) if args.tls_mode != "none" else None
    implicit_ctx = ctx if args.tls_mode == "implicit" else None
    starttls_ctx = ctx if args.tls_mode == "starttls" and not args.no_starttls else None
    conn_ids = rec.conn_ids
    live = set()
    kw = dict(hostname="smtp-peer.test", ident=IDENT, decode_data=False,
              data_size_limit=args.size_limit, enable_SMTPUTF8=args.smtputf8,
              tls_context=starttls_ctx, require_starttls=args.require_tls,
              timeout=args.idle_timeout, loop=loop)
    if args.auth:
        kw.update(authenticator=_authenticator(args, rec),
                  auth_required=not args.auth_optional,
                  auth_require_tls=not args.auth_plaintext)
    else:
        kw.update(auth_exclude_mechanism=["PLAIN", "LOGIN"])

    def factory():
        return PeerSMTP(handler, policy, rec, conn_ids, live, implicit_ctx, **kw)

    server = await loop.create_server(factory, host=args.host, port=args.port,
                                      reuse_address=True)
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    loop.call_later(args.max_seconds, done.set)
    port = server.sockets[0].getsockname()[1]
    rec.event(None, "listening", port=port, options=vars(args))
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    await done.wait()
    server.close()
    for proto in list(live):
        if proto.transport is not None:
            proto.transport.abort()
    rec.event(None, "exit")
    await asyncio.sleep(0)


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    # aiosmtpd itself warns on every AUTH about its own deprecated login_data.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    os.makedirs(args.outdir, exist_ok=True)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
