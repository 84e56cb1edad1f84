from pathlib import Path

import pytest

from tests.support.stack import ENGINES, start_stack


@pytest.fixture(scope="session")
def stack_factory():
    """`with stack_factory(localtgi_args=[...], proxy_settings={...}, engine=...) as stack:` starts a fresh stack."""
    return start_stack


@pytest.fixture(scope="module", params=ENGINES)
def engine(request) -> str:
    """Run the test over each engine's wire: TGI's (localtgi) and vLLM's (localvllm)."""
    return request.param


@pytest.fixture(scope="session")
def dev_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small real LoRA adapter `make run` serves (made once per test session)."""
    from adapters import make_dev_adapter  # imports torch: only for the tests that need it

    return make_dev_adapter(tmp_path_factory.mktemp("adapters") / "dev")
