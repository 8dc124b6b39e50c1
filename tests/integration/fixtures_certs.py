"""pytest plugin: the session's test certificates (tests/fakes/certs.py).

Owns: generating the CA and leaf certificates once per test session.
Never: reuses material across sessions or writes outside pytest's temp dir.
"""
import pytest

from certs import make_certs


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """certs.Certs with .ca, .server_cert/.server_key (localhost, 127.0.0.1, ::1),
    .wrong_cert/.wrong_key (wrong.example), .self_cert/.self_key (self-signed),
    .expired_cert/.expired_key, .dir."""
    return make_certs(str(tmp_path_factory.mktemp("certs")))
