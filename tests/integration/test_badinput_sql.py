"""Bad input through plain SQL rows written by another process (SPEC 5): the daemon must fail
malformed rows with a reason (and `mailspool show` / `render` must cope with them).

The entries are data: tests/corpus/badinput/sql.jsonl (format and conventions in
tests/corpus/README.md). One SMTP peer and one mailspoold serve the whole
file; every entry is then judged on its own (exit code, or state and reason,
and what the server received for it), and the path as a whole on what the
server saw: only the expected MAIL and RCPT commands, no injected header, no
bare CR or LF, one message per accepted entry, the daemon still up.
"""
import pytest

import badinput_lib as bl

ENTRIES = bl.load("sql")
# One daemon serves the whole file: under pytest-xdist, keep the file on one
# worker (make check runs with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("badinput-sql")


corpus_run = bl.corpus_fixture("sql", ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_entry(corpus_run, entry):
    corpus_run.check_entry(entry)


def test_server_saw_no_injection(corpus_run):
    corpus_run.check_peer()


def test_only_accepted_entries_in_spool(corpus_run):
    corpus_run.check_spool_writes()


def test_admin_cli_copes_with_hostile_rows(corpus_run):
    corpus_run.check_admin_cli()


def test_daemon_survived(corpus_run):
    corpus_run.check_daemon()
