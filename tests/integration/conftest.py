"""Shared pytest fixtures for mailspool's integration tests.

Owns: locating the built binaries (MAILSPOOL_BUILD, set by the Makefile),
private per-test directories, and helpers to run the programs.
Peers (aiosmtpd SMTP servers, the Entra ID / Graph fake) are plugins in
tests/fakes and tests/integration/fixtures_*.py.
"""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
sys.path.insert(0, HERE)

BUILD = os.environ.get("MAILSPOOL_BUILD", os.path.join(ROOT, "build"))
MAILSPOOL = os.path.join(BUILD, "mailspool")
MAILSPOOLD = os.path.join(BUILD, "mailspoold")
VALGRIND = os.environ.get("MAILSPOOL_VALGRIND") == "1"  # mailspoold (mshelpers.Daemon)
VALGRIND_CLI = os.environ.get("MAILSPOOL_VALGRIND_CLI") == "1"  # mailspool via run()
# make check-valgrind: memcheck; exit 99 on any error or definite leak.
VALGRIND_ARGS = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                 "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
                 "--num-callers=30"]

pytest_plugins = [p[:-3] for p in sorted(os.listdir(HERE))
                  if p.startswith("fixtures_") and p.endswith(".py")]


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that needs a minute of schedule")


def run(args, input=None, env=None, timeout=60, check=None):
    """Runs a command, returns CompletedProcess with text stdout/stderr."""
    e = dict(os.environ)
    e.pop("MAILSPOOL_SPOOL", None)
    e.pop("MAILSPOOL_CONF", None)
    e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    if env:
        e.update(env)
    if VALGRIND_CLI and args and args[0] in (MAILSPOOL, MAILSPOOLD):
        # make check-valgrind, second pass: the CLI (and mailspoold --check)
        # under memcheck; an error or a definite leak makes the exit code 99.
        # Not in the daemon pass: a producer 50 times slower changes what the
        # concurrency tests can observe.
        args = VALGRIND_ARGS + list(args)
        timeout *= 3
    p = subprocess.run(args, input=input, capture_output=True, env=e, timeout=timeout,
                       text=not isinstance(input, bytes))
    if check is not None and p.returncode != check:
        raise AssertionError("%r exited %d, wanted %d\nstdout: %s\nstderr: %s" %
                             (args, p.returncode, check, p.stdout, p.stderr))
    return p


@pytest.fixture
def bins():
    return {"mailspool": MAILSPOOL, "mailspoold": MAILSPOOLD, "build": BUILD, "root": ROOT}


@pytest.fixture
def workdir(tmp_path):
    """A private directory for one test: spool, config, logs."""
    return tmp_path
