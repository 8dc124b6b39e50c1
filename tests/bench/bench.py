#!/usr/bin/python3
"""make bench — throughput, latency and memory of mailspool on this machine,
side by side with the raw limit (Postfix's smtp-source) and, when Postfix is
installed, a Postfix null client.

    /usr/bin/python3 tests/bench/bench.py --build BUILD_DIR [--quick] [--only F,..]
        [--no-write] [--no-profile] [--out docs/BENCHMARKS.md] [--work DIR]

Owns: the workloads W1-W3 (generated deterministically), every figure of
issue 7, the table it prints and docs/BENCHMARKS.md it writes, and the
profiles of missed targets (perf record, else valgrind --tool=callgrind).
Never: fails on a threshold (it is a benchmark: it exits 0 whenever it could
measure, and a figure it could not measure says why), installs Postfix, or
talks to anything but 127.0.0.1. Every wait is bounded.

Postfix's smtp-sink and smtp-source come from the Debian package, fetched
with `apt-get download postfix` and unpacked with `dpkg -x` into
BUILD_DIR/bench/postfix (never installed). Graph figures run against our own
fake (tests/fakes/graph_fake.py), whose own ceiling is measured too: it is
Python, and may well be the bottleneck.
"""
import argparse
import glob
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))

# ---- workloads and targets ---------------------------------------------------------

# name: (messages, text bytes, attachment bytes or 0)
WORKLOADS = {
    "W1": (2000, 2000, 0),
    "W2": (300, 400, 200 * 1024),
    "W3": (100, 400, 5 * 1024 * 1024),
}
QUICK = {"W1": 300, "W2": 60, "W3": 12}

TARGETS = {
    ("delivery", "W1"): 5000.0, ("delivery", "W2"): 400.0, ("delivery", "W3"): 20.0,
    ("ratio", "W1"): 1 / 3, ("ratio", "W2"): 0.6, ("ratio", "W3"): 0.7,
    ("e2e", "W1"): 1050.0,
    ("wake", "p99"): 20.0,
    ("rss", "W3"): 32.0, ("rss", "idle100k"): 16.0, ("startup", "100k"): 1.0,
    ("graph", "W1"): 1000.0,
}

SMTP_CONNS = 4  # "over SMTP with connection reuse", "W3 with 4 connections"
RUNS = 3  # delivery, raw limit and scaling: the median of this many runs


def mps_of(res):
    return res["mps"]


def cpu_times():
    """The first line of /proc/stat: jiffies per kind, all CPUs together
    (user nice system idle iowait irq softirq steal ...), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_until(cond, timeout, interval=0.005, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def proc_status(pid, key):
    """A kB figure from /proc/PID/status (VmHWM = peak RSS, VmRSS), in MB."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def proc_cpu(pid):
    """User + system CPU seconds of a process (all threads)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def write_random(path, size, seed):
    """Deterministic incompressible bytes (SHA-256 chain)."""
    import hashlib
    block = hashlib.sha256(b"mailspool-bench-%d" % seed).digest()
    with open(path, "wb") as f:
        left = size
        buf = bytearray()
        while left > 0:
            while len(buf) < 1 << 16:
                block = hashlib.sha256(block).digest()
                buf += block
            n = min(left, len(buf))
            f.write(buf[:n])
            del buf[:n]
            left -= n


# ---- Postfix's test tools ----------------------------------------------------------

class PostfixTools:
    """smtp-sink and smtp-source from the Debian package, unpacked, not installed."""

    def __init__(self, build):
        self.dir = os.path.join(build, "bench", "postfix")
        self.root = os.path.join(self.dir, "root")
        self.sink = os.path.join(self.root, "usr", "sbin", "smtp-sink")
        self.source = os.path.join(self.root, "usr", "sbin", "smtp-source")
        self.env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(self.root, "usr", "lib",
                                                                 "postfix"))
        self.error = None
        self.version = None

    def fetch(self):
        if not (os.path.exists(self.sink) and os.path.exists(self.source)):
            os.makedirs(self.dir, exist_ok=True)
            for f in glob.glob(os.path.join(self.dir, "postfix_*.deb")):
                os.unlink(f)
            p = subprocess.run(["apt-get", "download", "postfix"], cwd=self.dir,
                               capture_output=True, text=True, timeout=300)
            debs = glob.glob(os.path.join(self.dir, "postfix_*.deb"))
            if p.returncode != 0 or not debs:
                self.error = "apt-get download postfix failed: %s" % (
                    p.stderr.strip().splitlines() or ["?"])[-1]
                return False
            shutil.rmtree(self.root, ignore_errors=True)
            subprocess.run(["dpkg", "-x", debs[0], self.root], check=True, timeout=120)
        debs = glob.glob(os.path.join(self.dir, "postfix_*.deb"))
        if debs:
            self.version = os.path.basename(debs[0]).split("_")[1]
        return True


class Sink:
    """One smtp-sink on 127.0.0.1; counts messages from its -c counter line and
    remembers when each count was first seen (CLOCK_MONOTONIC)."""

    def __init__(self, tools):
        self.tools = tools
        self.port = free_port()
        args = [tools.sink, "-c"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # smtp-sink refuses to run as root without -u
        args += ["127.0.0.1:%d" % self.port, "256"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, env=tools.env)
        self.count = 0
        self.times = []  # monotonic time at which count reached i+1
        self.cv = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        wait_until(self._listening, 10, 0.02, "smtp-sink to listen")

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def _read(self):
        pat = re.compile(rb"mesg=(\d+)")
        buf = b""
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            now = time.monotonic()
            buf += chunk
            m = None
            for m in pat.finditer(buf):
                pass
            if m is None:
                buf = buf[-64:]
                continue
            n = int(m.group(1))
            buf = buf[m.end():]
            with self.cv:
                if n > self.count:
                    self.times.extend([now] * (n - self.count))
                    self.count = n
                    self.cv.notify_all()

    def wait_count(self, target, timeout):
        deadline = time.monotonic() + timeout
        with self.cv:
            while self.count < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("smtp-sink saw %d of %d messages" % (self.count, target))
                self.cv.wait(min(left, 0.5))
            return self.times[target - 1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


# ---- mailspool ----------------------------------------------------------------------

class Mailspool:
    """One mailspoold with its own directory, configuration and spool."""

    def __init__(self, env, name, profile, conns, log_level="info"):
        self.env = env
        self.dir = os.path.join(env.work, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.spool = os.path.join(self.dir, "spool.db")
        self.log = os.path.join(self.dir, "mailspool.log")
        self.conf = os.path.join(self.dir, "mailspool.conf")
        self.proc = None
        with open(self.conf, "w") as f:
            # [daemon] max_connections stays at its default (16): the profile's
            # MaxConnections (conns) is the number of connections to the sink.
            f.write("[spool]\npath = %s\n\n[daemon]\nlog_file = %s\nlog_level = %s\n"
                    "shutdown_timeout = 5s\n\n"
                    "[queue]\nretry_min = 1s\nretry_max = 2s\nlifetime = 1d\n\n%s\n"
                    "[area *]\nprofile = bench\n" % (self.spool, self.log, log_level, profile))
        os.chmod(self.conf, 0o600)

    def copy_spool_from(self, template):
        shutil.copyfile(template, self.spool)

    def start(self, wrapper=()):
        self.stderr = open(os.path.join(self.dir, "daemon.stderr"), "ab")
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(list(wrapper) + [self.env.mailspoold, "-c", self.conf],
                                     stdout=self.stderr, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL)
        return self

    def wait_ready(self, timeout=60):
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("mailspoold exited %s: %s" % (
                    self.proc.returncode, self.stderr_text()[-500:]))
            try:
                with open(self.log, "rb") as f:
                    return b" info ready " in f.read()
            except FileNotFoundError:
                return False
        wait_until(ready, timeout, 0.002, "mailspoold ready")
        return time.monotonic() - self.t_start

    def stderr_text(self):
        with open(os.path.join(self.dir, "daemon.stderr"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def states(self):
        c = sqlite3.connect(self.spool, timeout=30)
        try:
            return dict(c.execute("SELECT state, count(*) FROM messages GROUP BY state"))
        finally:
            c.close()

    def cli(self, *args, input=None, timeout=60):
        return subprocess.run([self.env.mailspool, "-c", self.conf, "-s", self.spool] +
                              list(args), input=input, capture_output=True, timeout=timeout)


def smtp_profile(port, conns):
    return ("[profile bench]\nFromAddress = rechnung@airport.example\nSMTPHost = 127.0.0.1\n"
            "SMTPPort = %d\nSMTPAuthReq = NIL\nMaxConnections = %d\n" % (port, conns))


def graph_profile(fake, ca, conns):
    return ("[profile bench]\nFromAddress = %s\n365Client = %s\n365Tenant = %s\n"
            "365Secret = %s\n365AuthorityHost = %s\n365GraphHost = %s\nCAFile = %s\n"
            "RateLimit = 0\nMaxConnections = %d\n" % (
                fake.mailbox, fake.client_id, fake.tenant, fake.secret, fake.authority,
                fake.base_url, ca, conns))


# ---- a Postfix null client (figure 3), when Postfix is installed ------------------------

POSTFIX = "/usr/sbin/postfix"
SENDMAIL = "/usr/sbin/sendmail"

# Runs ARGV as a child subreaper and reaps every process handed to it until
# none is left, exiting with ARGV's status: after `postfix stop` the master's
# daemons finish on their own as orphans, and PID 1 here need not reap them.
REAPER = r"""
import ctypes, os, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
pid = os.spawnv(os.P_NOWAIT, sys.argv[1], sys.argv[1:])
rc = 1
while True:
    try:
        p, st = os.wait()
    except ChildProcessError:
        break
    if p == pid:
        rc = os.waitstatus_to_exitcode(st)
sys.exit(rc if rc >= 0 else 128 - rc)
"""


def postfix_missing():
    """Why figure 3 cannot be taken here, or None."""
    for path in (POSTFIX, SENDMAIL):
        if not os.path.exists(path):
            return "Postfix is not installed here"
    try:
        owner = subprocess.run(["dpkg-query", "-S", os.path.realpath(SENDMAIL)],
                               capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        owner = ""
    if not owner.startswith("postfix:"):
        return "%s is not Postfix's" % SENDMAIL
    if os.geteuid() != 0:
        return "starting a private Postfix instance needs root"
    return None


class PostfixPeer:
    """A private Postfix null client relaying to one sink: its own
    config_directory, queue_directory, data_directory and log under the work
    dir, started with the installed binaries (`postfix -c DIR start-fg`, so the
    benchmark owns the master process). Nothing of the system's Postfix is
    read but its binaries and meta_directory, nothing of it is written, and it
    listens on no port (master.cf has no smtpd)."""

    SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       %(conns)d       smtp
relay     unix  -       -       n       -       %(conns)d       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

    def __init__(self, env, name, sink_port, conns):
        self.dir = os.path.join(env.work, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.logdir = os.path.join(self.dir, "log")
        self.maillog = os.path.join(self.logdir, "maillog")
        for d in (self.etc, self.queue, self.logdir):
            os.makedirs(d)
        # `postfix` chdirs into the queue before creating its subdirectories,
        # which the postfix user must reach; data_directory is left to
        # post-install, which gives it to the postfix user.
        for d in (self.dir, self.queue):
            os.chmod(d, 0o755)
        self.proc = None
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("""\
# Written by tests/bench/bench.py (figure 3): a private null client.
compatibility_level = 3.6
queue_directory = %(queue)s
data_directory = %(data)s
maillog_file = %(maillog)s
maillog_file_prefixes = %(logdir)s
myhostname = bench.localdomain
mydomain = localdomain
myorigin = $myhostname
biff = no
# Null client: nothing is delivered here, everything goes to the relay host.
mydestination =
relay_domains =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
relayhost = [127.0.0.1]:%(port)d
# Like mailspool's profile: %(conns)d connections to the sink, kept and reused.
default_process_limit = %(conns)d
smtp_destination_concurrency_limit = %(conns)d
initial_destination_concurrency = %(conns)d
smtp_connection_cache_on_demand = yes
# The relay host as this parameter wants it: no [] and no port.
smtp_connection_cache_destinations = 127.0.0.1
message_size_limit = 20000000
""" % {"queue": self.queue, "data": os.path.join(self.dir, "data"), "maillog": self.maillog,
       "logdir": self.logdir, "port": sink_port, "conns": conns})
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(self.SERVICES % {"conns": conns})
        self.env = {k: v for k, v in os.environ.items() if k != "MAIL_CONFIG"}

    def version(self):
        p = subprocess.run(["/usr/sbin/postconf", "-c", self.etc, "-h", "mail_version"],
                           capture_output=True, text=True, env=self.env, timeout=30)
        return p.stdout.strip() or None

    def logtext(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def start(self, timeout=120):
        self.out = open(os.path.join(self.dir, "start-fg.out"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-c", REAPER, POSTFIX, "-c", self.etc,
                                      "start-fg"], stdout=self.out, stderr=self.out,
                                     stdin=subprocess.DEVNULL, env=self.env)

        def ready():
            if self.proc.poll() is not None:
                with open(os.path.join(self.dir, "start-fg.out"), errors="replace") as f:
                    out = f.read()
                raise RuntimeError("postfix start-fg exited %s: %s" % (
                    self.proc.returncode, (out + self.logtext()).strip()[-300:]))
            return "daemon started" in self.logtext()
        wait_until(ready, timeout, 0.05, "the private Postfix to start")

    def queued(self):
        """Files still in the instance's queues."""
        return sum(len(files) for q in ("maildrop", "incoming", "active", "deferred", "hold")
                   for _, _, files in os.walk(os.path.join(self.queue, q)))

    def check_delivered(self, n, timeout=30):
        """Every message left the queue and the log says sent, none bounced."""
        def done():
            log_ = self.logtext()
            return self.queued() == 0 and log_.count(" status=sent ") >= n
        try:
            wait_until(done, timeout, 0.05, "the private Postfix's queue to empty")
        finally:
            log_ = self.logtext()
            for bad in ("status=bounced", "status=deferred", "fatal:", "panic:"):
                if bad in log_:
                    line = next(l for l in log_.splitlines() if bad in l)
                    raise RuntimeError("Postfix logged %s" % line[-200:])

    def stop(self, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            subprocess.run([POSTFIX, "-c", self.etc, "stop"], capture_output=True,
                           env=self.env, timeout=timeout)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The reaper's children are Postfix's master and the daemons it left:
            # ours to end, by pid.
            for pid in self.children(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    @staticmethod
    def children(ppid):
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
        return out

    def cleanup(self):
        """Drops the queue, keeps main.cf, master.cf and the log."""
        for d in ("queue", "data"):
            shutil.rmtree(os.path.join(self.dir, d), ignore_errors=True)


# ---- the benchmark --------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.mailspoold = os.path.join(self.build, "mailspoold")
        self.mailspool = os.path.join(self.build, "mailspool")
        self.fill_bin = os.path.join(self.build, "bench", "bench_fill")
        self.claim_bin = os.path.join(self.build, "bench", "bench_claim")
        self.submit_bin = os.path.join(self.build, "bench", "bench_submit")
        self.work = os.path.abspath(getattr(args, "work", None) or
                                    os.path.join(self.build, "bench", "work"))
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.tools = PostfixTools(self.build)
        self.quick = args.quick
        self.r = {}          # results: key -> value (floats) or error strings
        self.notes = []      # lines for the doc
        self.profiles = {}   # target key -> profile text
        self.templates = {}
        self.sizes = {}      # workload -> rendered message bytes
        self.msgfiles = {}   # workload -> message file for smtp-source
        self.only = set(args.only.split(",")) if args.only else None

    def n(self, w):
        return QUICK[w] if self.quick else WORKLOADS[w][0]

    def want(self, fig):
        return self.only is None or fig in self.only

    def guarded(self, key, fn, *a):
        """Runs one measurement; a failure becomes the figure's text, never an exit."""
        try:
            return fn(*a)
        except Exception as ex:  # a benchmark reports, it does not fail
            log("  %s: could not measure: %s" % (key, ex))
            self.r[key] = "n/a (%s)" % str(ex).splitlines()[0][:160]
            return None

    # ---- workloads ----
    def attachment(self, w):
        size = WORKLOADS[w][2]
        if not size:
            return "-"
        path = os.path.join(self.work, "%s-attachment.bin" % w)
        if not os.path.exists(path):
            write_random(path, size, int(w[1]))
        return path

    def fill(self, spool, w, n=None, not_before=0, area="bench"):
        n = self.n(w) if n is None else n
        p = subprocess.run([self.fill_bin, spool, area, str(n), str(WORKLOADS[w][1]),
                            self.attachment(w), str(not_before)], capture_output=True,
                           text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError("bench_fill: %s" % p.stderr.strip())
        return float(p.stdout.split()[3])

    def template(self, w):
        """A spool holding workload w (filled once, copied for each run)."""
        if w not in self.templates:
            d = os.path.join(self.work, "template-%s" % w)
            os.makedirs(d, exist_ok=True)
            spool = os.path.join(d, "spool.db")
            secs = self.fill(spool, w)
            self.r[("enqueue_api", w)] = self.n(w) / secs
            log("  filled %s: %d messages in %.2fs (C API, one transaction each: %.0f msg/s)"
                % (w, self.n(w), secs, self.n(w) / secs))
            self.templates[w] = spool
            # The exact bytes mailspool sends: size for MB/s and smtp-source's -F file.
            ms = Mailspool(self, "render-%s" % w, smtp_profile(25, 1), 1)
            ms.copy_spool_from(spool)
            p = ms.cli("render", "1", timeout=120)
            if p.returncode != 0:
                raise RuntimeError("mailspool render: %s" % p.stderr.decode())
            self.sizes[w] = len(p.stdout)
            path = os.path.join(self.work, "%s-message.txt" % w)
            with open(path, "wb") as f:  # smtp-source appends CRLF to each line
                f.write(p.stdout.replace(b"\r\n", b"\n"))
            self.msgfiles[w] = path
        return self.templates[w]

    # ---- figure 1 and 8: delivery over SMTP ----
    def delivery_smtp(self, w, conns, profile_with=None):
        n = self.n(w)
        template = self.template(w)
        sink = Sink(self.tools)
        ms = Mailspool(self, "deliver-%s-%d" % (w, conns), smtp_profile(sink.port, conns), conns)
        try:
            ms.copy_spool_from(template)
            base = sink.count
            ms.start(wrapper=profile_with or ())
            t_end = sink.wait_count(base + n, timeout=600)
            secs = t_end - ms.t_start
            hwm = proc_status(ms.pid, "VmHWM")
            cpu = proc_cpu(ms.pid)
        finally:
            ms.stop()
            sink.stop()
        states = ms.states()
        return {"secs": secs, "mps": n / secs, "MBps": n * self.sizes[w] / secs / 1e6,
                "rss": hwm, "cpu": cpu, "sent": states.get("sent", 0), "dir": ms.dir}

    def median_run(self, by, fn, *a):
        """fn(*a) RUNS times (once with --quick), the run with the median figure
        (by(run), or the run itself):
        a single run of a second or less on this shared machine moved by tens
        of percent (W1 share of raw 0.27-0.51 in one afternoon)."""
        runs = [fn(*a) for _ in range(1 if self.quick else RUNS)]
        runs.sort(key=by)
        return runs[len(runs) // 2]

    def fig_delivery(self):
        for w in ("W1", "W2", "W3"):
            res = self.guarded(("delivery", w), self.median_run, mps_of, self.delivery_smtp, w,
                               SMTP_CONNS)
            if res:
                self.r[("delivery", w)] = res["mps"]
                self.r[("delivery_MBps", w)] = res["MBps"]
                self.r[("rss", w)] = res["rss"]
                self.r[("cpu_per_msg_us", w)] = res["cpu"] / self.n(w) * 1e6
                self.r[("sent_check", w)] = res["sent"]
                log("  delivery %s: %.0f msg/s, %.1f MB/s, peak RSS %.1f MB, CPU %.0f us/msg,"
                    " %d sent" % (w, res["mps"], res["MBps"], res["rss"] or 0,
                                  res["cpu"] / self.n(w) * 1e6, res["sent"]))

    def fig_scaling(self):
        for c in (1, 2, 4, 8):
            if c == SMTP_CONNS and isinstance(self.r.get(("delivery", "W1")), float):
                self.r[("scale", c)] = self.r[("delivery", "W1")]
                continue
            res = self.guarded(("scale", c), self.median_run, mps_of, self.delivery_smtp, "W1",
                               c)
            if res:
                self.r[("scale", c)] = res["mps"]
                log("  W1 with %d connections: %.0f msg/s" % (c, res["mps"]))

    # ---- figure 2: the raw limit ----
    def raw_limit(self, w):
        n = self.n(w)
        self.template(w)
        sink = Sink(self.tools)
        try:
            t0 = time.monotonic()
            p = subprocess.run([self.tools.source, "-s", "4", "-d", "-m", str(n),
                                "-F", self.msgfiles[w], "-f", "rechnung@airport.example",
                                "-t", "kunde@example.org", "127.0.0.1:%d" % sink.port],
                               capture_output=True, env=self.tools.env, timeout=600)
            t_end = sink.wait_count(n, timeout=60)
            if p.returncode != 0:
                raise RuntimeError("smtp-source: %s" % p.stderr.decode().strip())
        finally:
            sink.stop()
        return n / (t_end - t0)

    def fig_raw(self):
        for w in ("W1", "W2", "W3"):
            v = self.guarded(("raw", w), self.median_run, None, self.raw_limit, w)
            if v:
                self.r[("raw", w)] = v
                log("  raw limit %s: %.0f msg/s" % (w, v))

    # ---- figure 4: end to end, figure 5: CLI enqueue rate ----
    def cli_args(self, ms, w, textfile):
        """`mailspool enqueue` for bench_submit, which puts each run's index for {}."""
        a = [self.mailspool, "-c", ms.conf, "-s", ms.spool, "enqueue", "--area", "bench",
             "--to", "Kunde {} <kunde{}@example.org>",
             "--subject", "Benchmark message {}", "--text", textfile]
        if WORKLOADS[w][2]:
            a += ["--attach", "%s;name=anhang.bin;type=application/octet-stream"
                  % self.attachment(w)]
        return a

    def textfile(self, w):
        path = os.path.join(self.work, "%s-text.txt" % w)
        if not os.path.exists(path):
            lines, n, i = [], 0, 1
            while n < WORKLOADS[w][1]:
                s = ("Zeile %03d der Nachricht: Rechnungsposition, Landeentgelt, "
                     "Abstellgebuehr.\n" % i)
                lines.append(s)
                n += len(s)
                i += 1
            with open(path, "w") as f:
                f.write("".join(lines))
        return path

    def submit(self, argv, count, parallel, timeout):
        """Runs argv count times, parallel at a time, through bench_submit (C,
        posix_spawn): one process per message like sendmail, without Python's
        per-process cost on the submitters' cores. Returns its seconds."""
        p = subprocess.run([self.submit_bin, str(parallel), str(count), "--"] + argv,
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("mailspool enqueue failed: %s" % p.stderr.strip()[:400])
        return float(p.stdout.split()[3])

    def e2e(self, w, submitters=4, recorder=None):
        n = self.n(w)
        self.template(w)  # for the rendered size
        sink = Sink(self.tools)
        ms = Mailspool(self, "e2e-%s" % w, smtp_profile(sink.port, SMTP_CONNS), SMTP_CONNS)
        textfile = self.textfile(w)
        rec = None
        try:
            ms.start()
            ms.wait_ready()
            rec = recorder() if recorder else None
            t0 = time.monotonic()
            t_sub = self.submit(self.cli_args(ms, w, textfile), n, submitters, 1200)
            t_end = sink.wait_count(n, timeout=600)
            hwm = proc_status(ms.pid, "VmHWM")
            cpu = proc_cpu(ms.pid)
        finally:
            if rec:
                rec.send_signal(signal.SIGINT)
                rec.wait(timeout=120)
            ms.stop()
            sink.stop()
        return {"mps": n / (t_end - t0), "submit_mps": n / t_sub, "rss": hwm,
                "cpu_us": cpu / n * 1e6}

    def fig_e2e(self):
        for w in ("W1", "W2", "W3"):
            res = self.guarded(("e2e", w), self.e2e, w)
            if res:
                self.r[("e2e", w)] = res["mps"]
                self.r[("e2e_submit", w)] = res["submit_mps"]
                log("  end to end %s: %.0f msg/s (submission alone %.0f msg/s), daemon CPU"
                    " %.0f us/msg" % (w, res["mps"], res["submit_mps"], res["cpu_us"]))

    def enqueue_cli(self, w="W1", daemon=False):
        """Sequential `mailspool enqueue`: with no daemon each process writes
        the spool (through the full CLI); with one, over its submission socket
        (its relay refuses connections, so the messages stay queued)."""
        n = 300 if not self.quick else 60
        ms = Mailspool(self, "enqueue-cli", smtp_profile(9, 1), 1)
        textfile = self.textfile(w)
        try:
            if daemon:
                ms.start()
                ms.wait_ready()
            return n / self.submit(self.cli_args(ms, w, textfile), n, 1, 600)
        finally:
            if daemon:
                ms.stop()

    def fig_enqueue(self):
        self.guarded(("enqueue_api", "W1"), self.template, "W1")
        for key, daemon, how in (("enqueue_cli", False, "no daemon: the process writes the spool"),
                                 ("enqueue_cli_socket", True, "through mailspoold's socket")):
            v = self.guarded((key, "W1"), self.enqueue_cli, "W1", daemon)
            if v:
                self.r[(key, "W1")] = v
                log("  enqueue CLI (one process per message, sequential, %s): %.0f msg/s"
                    % (how, v))

    # ---- figure 6: wake latency ----
    def wake(self):
        n = 200 if not self.quick else 40
        sink = Sink(self.tools)
        ms = Mailspool(self, "wake", smtp_profile(sink.port, SMTP_CONNS), SMTP_CONNS)
        lat = []
        try:
            ms.start()
            ms.wait_ready()
            prod = subprocess.Popen([self.fill_bin, ms.spool, "bench", str(n), "2000", "-", "0",
                                     "wake"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True)
            try:
                for i in range(n):
                    # Idle: the previous message is delivered and recorded.
                    time.sleep(0.01)
                    prod.stdin.write("go\n")
                    prod.stdin.flush()
                    line = prod.stdout.readline().split()
                    if len(line) != 2 or line[0] != "commit":
                        raise RuntimeError("bench_fill wake: unexpected output %r" % line)
                    t_commit = int(line[1]) / 1e9
                    t_recv = sink.wait_count(i + 1, timeout=30)
                    lat.append((t_recv - t_commit) * 1000)
            finally:
                prod.stdin.close()
                prod.wait(timeout=30)
        finally:
            ms.stop()
            sink.stop()
        lat.sort()
        return {"p50": statistics.median(lat), "p99": lat[min(len(lat) - 1,
                                                             int(len(lat) * 0.99))],
                "max": lat[-1]}

    def fig_wake(self):
        res = self.guarded(("wake", "p99"), self.wake)
        if res:
            self.r[("wake", "p50")] = res["p50"]
            self.r[("wake", "p99")] = res["p99"]
            self.r[("wake", "max")] = res["max"]
            log("  wake latency: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
                % (res["p50"], res["p99"], res["max"]))

    # ---- figures 7 and 8: 100,000 queued ----
    def bulk_insert(self, spool, upto, not_before):
        """Adds plain-SQL messages (the documented producer interface) up to `upto`
        queued, in one transaction: the C API's one fsync per message would take
        minutes for 100,000."""
        c = sqlite3.connect(spool, timeout=60)
        try:
            have = c.execute("SELECT count(*) FROM messages").fetchone()[0]
            body = open(self.textfile("W1")).read()
            c.execute("BEGIN IMMEDIATE")
            now = int(time.time())
            rows = (("bench", "Benchmark message %06d" % i, body, now, not_before, now)
                    for i in range(have, upto))
            c.executemany("INSERT INTO messages (area, subject, body_text, created, not_before,"
                          " updated) VALUES (?, ?, ?, ?, ?, ?)", rows)
            c.execute("INSERT INTO recipients (message_id, kind, address) SELECT id, 'to',"
                      " 'kunde' || id || '@example.org' FROM messages WHERE id > ?", (have,))
            c.execute("COMMIT")
        finally:
            c.close()

    def cli_status_ms(self, ms, runs=5):
        t = []
        for _ in range(runs):
            t0 = time.monotonic()
            p = ms.cli("status", timeout=60)
            t.append((time.monotonic() - t0) * 1000)
            if p.returncode != 0:
                raise RuntimeError("mailspool status: %s" % p.stderr.decode().strip())
        return statistics.median(t)

    def queue_scaling(self):
        ms = Mailspool(self, "queued", smtp_profile(free_port(), SMTP_CONNS), SMTP_CONNS)
        self.fill(ms.spool, "W1", n=1)  # creates the spool with its schema
        for size in (1000, 10000, 100000):
            self.bulk_insert(ms.spool, size, 0)
            p = subprocess.run([self.claim_bin, ms.spool, "20", "20"], capture_output=True,
                               text=True, timeout=300)
            if p.returncode != 0:
                raise RuntimeError("bench_claim: %s" % p.stderr.strip())
            f = p.stdout.split()
            vals = dict(zip(f[0::2], map(float, f[1::2])))
            self.r[("claim_us", size)] = vals["per_msg_claim_us"]
            self.r[("due_us", size)] = vals["due_us"]
            self.r[("counts_us", size)] = vals["counts_us"]
            self.r[("status_ms", size)] = self.cli_status_ms(ms)
            log("  %6d queued: due query %.0f us, claim %.0f us/msg, status counts %.0f us,"
                " `mailspool status` %.1f ms" % (size, vals["due_us"], vals["per_msg_claim_us"],
                                                   vals["counts_us"],
                                                   self.r[("status_ms", size)]))
        return ms

    def idle_100k(self, ms):
        c = sqlite3.connect(ms.spool, timeout=60)
        c.execute("UPDATE messages SET not_before = ?", (int(time.time()) + 86400,))
        c.commit()
        c.close()
        ms.start()
        startup = ms.wait_ready()
        time.sleep(2.0)  # a couple of ticks: heartbeat, status, expiry sweep
        rss = proc_status(ms.pid, "VmRSS")
        hwm = proc_status(ms.pid, "VmHWM")
        ms.stop()
        return {"startup": startup, "rss": rss, "hwm": hwm}

    def fig_queue(self):
        ms = self.guarded(("claim_us", 1000), self.queue_scaling)
        if ms is None:
            return
        res = self.guarded(("rss", "idle100k"), self.idle_100k, ms)
        if res:
            self.r[("rss", "idle100k")] = res["rss"]
            self.r[("startup", "100k")] = res["startup"]
            log("  100,000 queued (not due): start-up %.3f s, idle RSS %.1f MB (peak %.1f)"
                % (res["startup"], res["rss"], res["hwm"]))

    # ---- Graph ----
    def graph_state_root(self):
        """Where the fake keeps what it receives: /dev/shm when that is a tmpfs,
        else the work directory. The fake stands in for Microsoft's servers,
        whose disk is not ours to measure, and it creates three files per
        message: on this VM's ext4, creating files within a minute or so of
        mass deletions (the benchmark's own clean-ups) cost 150-500 us of
        kernel time each instead of 20-40, and moved the Graph figures with
        it. mailspool's spool stays in the work directory on the real disk."""
        try:
            with open("/proc/mounts", encoding="utf-8") as f:
                shm = any(line.split()[1:3] == ["/dev/shm", "tmpfs"] for line in f)
        except OSError:
            shm = False
        return "/dev/shm" if shm and os.access("/dev/shm", os.W_OK) else self.work

    def graph_fake(self):
        import certs as certs_mod
        from graph_ctl import GraphFake
        cdir = os.path.join(self.work, "certs")
        c = certs_mod.make_certs(cdir)
        state = tempfile.mkdtemp(prefix="mailspool-bench-graph-", dir=self.graph_state_root())
        fake = GraphFake(state, c.server_cert, c.server_key, ca=c.ca)
        fake.add_app()
        fake.add_mailbox()
        fake.settings(mailbox_concurrency_limit=None)
        return fake.start(), c.ca

    def graph_delivered(self, fake):
        try:
            return sum(1 for f in os.listdir(os.path.join(fake.state_dir, "messages"))
                       if f.endswith(".request.json"))
        except FileNotFoundError:
            return 0

    def delivery_graph(self, w, profile_with=None):
        n = self.n(w)
        template = self.template(w)
        fake, ca = self.graph_fake()
        ms = Mailspool(self, "graph-%s" % w, graph_profile(fake, ca, SMTP_CONNS), SMTP_CONNS)
        try:
            ms.copy_spool_from(template)
            ms.start(wrapper=profile_with or ())
            # Counting means listing the fake's message directory (thousands of
            # files): polled at 1 % of the time so far (at most 0.1 s), so that
            # the count costs the two CPUs little and the clock stays within 1 %.
            while self.graph_delivered(fake) < n:
                if time.monotonic() - ms.t_start > 600:
                    raise TimeoutError("the Graph fake holds %d of %d messages"
                                       % (self.graph_delivered(fake), n))
                time.sleep(min(0.1, max(0.005, (time.monotonic() - ms.t_start) * 0.01)))
            secs = time.monotonic() - ms.t_start
            hwm = proc_status(ms.pid, "VmHWM")
            ms.stop()
            ceiling = self.graph_ceiling(fake, w, n) if not profile_with else None
        finally:
            ms.stop()
            fake.kill()
            shutil.rmtree(fake.state_dir, ignore_errors=True)
        return {"mps": n / secs, "rss": hwm, "ceiling": ceiling}

    def graph_ceiling(self, fake, w, n):
        """The fake's own ceiling: curl (C, HTTP/1.1 keep-alive, 4 transfers in
        parallel, like mailspool's 4 per application) replays the exact sendMail
        body mailspool sent, n times."""
        reqs = sorted(glob.glob(os.path.join(fake.state_dir, "messages", "*.request.json")))
        if not reqs or not shutil.which("curl"):
            return None
        tok = subprocess.run(
            ["curl", "-sS", "--cacert", fake.ca, "-d", "grant_type=client_credentials",
             "-d", "client_id=" + fake.client_id, "-d", "client_secret=" + fake.secret,
             "--data-urlencode", "scope=" + fake.scope, fake.token_url(fake.tenant)],
            capture_output=True, text=True, timeout=30)
        token = json.loads(tok.stdout)["access_token"]
        cfg = os.path.join(self.work, "curl-%s.cfg" % w)
        url = "%s/v1.0/users/%s/sendMail" % (fake.base_url, fake.mailbox)
        with open(cfg, "w") as f:
            for _ in range(n):
                f.write('url = "%s"\noutput = "/dev/null"\n' % url)
        hdr = os.path.join(self.work, "curl-headers.txt")
        with open(hdr, "w") as f:
            f.write("Authorization: Bearer %s\nContent-Type: application/json\n" % token)
        t0 = time.monotonic()
        p = subprocess.run(["curl", "-sS", "--parallel", "--parallel-max", "4", "--cacert",
                            fake.ca, "-H", "@" + hdr, "--data-binary", "@" + reqs[0],
                            "-K", cfg], capture_output=True, timeout=600)
        secs = time.monotonic() - t0
        os.unlink(hdr)
        if p.returncode != 0:
            return None
        return n / secs

    def fig_graph(self):
        for w in ("W1", "W2"):
            res = self.guarded(("graph", w), self.delivery_graph, w)
            if res:
                self.r[("graph", w)] = res["mps"]
                self.r[("graph_rss", w)] = res["rss"]
                if res["ceiling"]:
                    self.r[("graph_ceiling", w)] = res["ceiling"]
                log("  Graph %s: %.0f msg/s (the fake's own ceiling with curl: %s msg/s)"
                    % (w, res["mps"], "%.0f" % res["ceiling"] if res["ceiling"] else "n/a"))

    # ---- figure 3: a Postfix null client, when installed ----
    def postfix_messages(self, w, n, mdir):
        """Message i as the RFC 5322 file sendmail reads: mailspool's own rendering
        of what the end-to-end run enqueues (same arguments, so the same text,
        attachment, encoding and recipient pattern), with the index of message i
        in its headers. Date and Message-ID are left to Postfix, as mailspool
        adds its own."""
        mark = b"987654"  # the index while rendering, replaced by i below
        ms = Mailspool(self, "postfix-render-%s" % w, smtp_profile(25, 1), 1)
        p = subprocess.run([a.replace("{}", mark.decode())
                            for a in self.cli_args(ms, w, self.textfile(w))],
                           capture_output=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("mailspool enqueue: %s" % p.stderr.decode().strip())
        p = ms.cli("render", "1", timeout=120)
        if p.returncode != 0:
            raise RuntimeError("mailspool render: %s" % p.stderr.decode().strip())
        head, body = p.stdout.replace(b"\r\n", b"\n").split(b"\n\n", 1)
        lines = [l for l in head.split(b"\n")
                 if not l.lower().startswith((b"date:", b"message-id:"))]
        # The index goes into To and Subject only (a MIME boundary is hex).
        indexed = [l.lower().startswith((b"to:", b"subject:")) and mark in l for l in lines]
        if not any(indexed):
            raise RuntimeError("unexpected rendering: %r" % head[:300])
        os.makedirs(mdir)
        for i in range(n):
            idx = b"%d" % i
            with open(os.path.join(mdir, "%d.eml" % i), "wb") as f:
                f.write(b"\n".join(l.replace(mark, idx) if x else l
                                   for l, x in zip(lines, indexed)))
                f.write(b"\n\n")
                f.write(body)
        shutil.rmtree(ms.dir, ignore_errors=True)

    def postfix_e2e(self, w, submitters=4):
        """Like e2e(): 4 submitters, one `sendmail` process per message, from the
        first submission to the last message at the sink."""
        n = self.n(w)
        sink = Sink(self.tools)
        pf = PostfixPeer(self, "postfix-%s" % w, sink.port, SMTP_CONNS)
        mdir = os.path.join(pf.dir, "msgs")
        try:
            self.postfix_messages(w, n, mdir)
            self.postfix_version = pf.version()
            os.sync()  # the message files' writeback must not land in the timed part
            pf.start()
            t0 = time.monotonic()
            p = subprocess.run([self.submit_bin, "-i", os.path.join(mdir, "{}.eml"),
                                str(submitters), str(n), "--", SENDMAIL, "-C", pf.etc, "-f",
                                "rechnung@airport.example", "-oi", "-t"],
                               capture_output=True, text=True, env=pf.env, timeout=900)
            if p.returncode != 0:
                raise RuntimeError("sendmail: %s" % (p.stderr.strip().splitlines() or
                                                     ["bench_submit exited %d" % p.returncode])[0])
            t_sub = float(p.stdout.split()[3])
            t_end = sink.wait_count(n, timeout=600)
            pf.check_delivered(n)
        finally:
            pf.stop()
            sink.stop()
            shutil.rmtree(mdir, ignore_errors=True)  # W3's are 700 MB
        pf.cleanup()
        return {"mps": n / (t_end - t0), "submit_mps": n / t_sub}

    def fig_postfix(self):
        why = postfix_missing()
        for w in ("W1", "W2", "W3"):
            if why:
                self.r[("postfix", w)] = "n/a (%s)" % why
                continue
            res = self.guarded(("postfix", w), self.postfix_e2e, w)
            if not res:
                continue
            self.r[("postfix", w)] = res["mps"]
            self.r[("postfix_submit", w)] = res["submit_mps"]
            e2e = self.r.get(("e2e", w))
            if isinstance(e2e, float):
                self.r[("postfix_ratio", w)] = e2e / res["mps"]
            log("  Postfix null client %s: %.0f msg/s end to end (submission alone %.0f msg/s)"
                "%s" % (w, res["mps"], res["submit_mps"], ", mailspool/Postfix %.2f" % (
                    e2e / res["mps"]) if isinstance(e2e, float) else ""))
        if why:
            log("  " + why)

    # ---- run everything ----
    def settle(self):
        """Before each step: the previous step's dirty pages are written back
        (sync), so that the kernel's writeback does not run inside the next
        step's clock. Measured 2026-12-05: right after the queue step (spools
        of 100,000 messages) Graph W1 gave 940 msg/s, alone 1,382; the wake
        latency p99 after the end-to-end step 23.7 ms, alone 5.0 ms."""
        os.sync()
        time.sleep(0.5)

    def run(self):
        log("mailspool benchmark%s, build %s" % (" (quick)" if self.quick else "", self.build))
        steps = [("enqueue", self.fig_enqueue, False), ("delivery", self.fig_delivery, True),
                 ("raw", self.fig_raw, True), ("scaling", self.fig_scaling, True),
                 ("e2e", self.fig_e2e, True), ("wake", self.fig_wake, True),
                 ("queue", self.fig_queue, False), ("graph", self.fig_graph, False),
                 ("postfix", self.fig_postfix, True)]
        # Postfix's tools come from a Debian mirror: only fetched when a chosen
        # step needs them (the smoke test in make check stays on loopback).
        if any(needs and self.want(name) for name, _, needs in steps) and not self.tools.fetch():
            log("  " + self.tools.error)
        smtp = self.tools.error is None
        self.load_start = os.getloadavg()
        self.cpu_start = cpu_times()
        t0 = time.monotonic()
        for name, fn, needs_smtp in steps:
            if not self.want(name):
                continue
            if needs_smtp and not smtp:
                self.notes.append("%s: not measured: %s" % (name, self.tools.error))
                continue
            log("== %s" % name)
            self.settle()
            t = time.monotonic()
            fn()
            log("   (%.1fs)" % (time.monotonic() - t))
        self.elapsed = time.monotonic() - t0
        self.load_end = os.getloadavg()
        self.cpu_end = cpu_times()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--quick", action="store_true", help="small workloads (a smoke run)")
    ap.add_argument("--only", help="comma-separated steps: enqueue,delivery,raw,scaling,e2e,"
                    "wake,queue,graph,postfix")
    ap.add_argument("--no-write", action="store_true", help="do not write docs/BENCHMARKS.md")
    ap.add_argument("--no-profile", action="store_true", help="no profiles of missed targets")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--work", help="scratch directory (default BUILD/bench/work; emptied first)")
    args = ap.parse_args()
    b = Bench(args)
    b.run()
    import bench_report
    bench_report.finish(b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
