import pytest

from tests.support.stack import start_stack


@pytest.fixture(scope="session")
def stack_factory():
    """`with stack_factory(localtgi_args=[...], proxy_settings={...}) as stack:` starts a fresh stack."""
    return start_stack
