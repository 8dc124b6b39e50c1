"""pytest plugin: the Entra ID / Microsoft Graph fake (tests/fakes/graph_fake.py).

Owns: the `graph_fake` fixture (one fake with the default tenant, app and
mailbox), the `graph_fake_factory` fixture (more or differently configured
fakes) and the teardown of every fake they started.
Never: leaves a fake process running after the test.
"""
import pytest

from graph_ctl import GraphFake


@pytest.fixture
def graph_fake_factory(tmp_path, certs):
    """Factory: graph_fake_factory(cert=None, key=None, defaults=True, graph_base=None,
    config=None, host="127.0.0.1", **settings) -> a started GraphFake. cert/key default to the session's localhost
    certificate; defaults=True configures the default tenant, app (Mail.Send only,
    as the seed document grants) and mailbox; settings go to /_fake/settings."""
    started = []

    def start(cert=None, key=None, defaults=True, graph_base=None, config=None,
              host="127.0.0.1", **settings):
        fake = GraphFake(tmp_path / ("graph-fake-%d" % (len(started) + 1)),
                         cert or certs.server_cert, key or certs.server_key, ca=certs.ca,
                         graph_base=graph_base, config=config, host=host)
        if defaults:
            fake.add_app()
            fake.add_mailbox()
        if settings:
            fake.settings(**settings)
        started.append(fake)
        return fake.start()

    yield start
    for fake in started:
        fake.kill()


@pytest.fixture
def graph_fake(graph_fake_factory):
    """A started GraphFake with tenant/client_id/secret/mailbox attributes set to the
    configured defaults (see tests/fakes/README.md)."""
    return graph_fake_factory()
