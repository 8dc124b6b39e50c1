"""pytest plugin: SMTP peers (tests/fakes/smtp_peer.py) for integration tests.

Owns: the `smtp_peer` factory fixture and the teardown of every peer it made.
Never: leaves a peer process running after the test.
"""
import pytest

from smtp_ctl import SmtpPeer


@pytest.fixture
def smtp_peer(tmp_path, certs):
    """Factory: smtp_peer(**opts) -> a started SmtpPeer (see tests/fakes/smtp_ctl.py
    and tests/fakes/README.md for the options). Every peer is killed at teardown."""
    started = []

    def start(**opts):
        peer = SmtpPeer(tmp_path / ("smtp-peer-%d" % (len(started) + 1)), certs=certs, **opts)
        started.append(peer)
        return peer.start()

    yield start
    for peer in started:
        peer.kill()
