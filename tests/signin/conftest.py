"""Fixtures for the sign-in tests: a real OpenID provider process and livehub servers
configured to use it, each started on a free port and stopped by pid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.signin.flow import CLIENT_ID, CLIENT_SECRET, TestProvider
from tests.support import LivehubProcess

PROGRAMME = Path(__file__).with_name("programme.toml")


def oidc_env(issuer: str, public_url: str, **extra: str) -> dict[str, str]:
    return {"LIVEHUB_PROGRAMME": str(PROGRAMME), "LIVEHUB_OIDC_ISSUER": issuer,
            "LIVEHUB_OIDC_CLIENT_ID": CLIENT_ID, "LIVEHUB_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "LIVEHUB_PUBLIC_URL": public_url, **extra}


@pytest.fixture(scope="package")
def provider() -> Iterator[TestProvider]:
    proc = TestProvider().start()
    yield proc
    proc.stop()


@pytest.fixture(scope="package")
def livehub(provider: TestProvider, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[LivehubProcess]:
    """A livehub with sign-in on, its public URL its own address."""
    log = tmp_path_factory.mktemp("signin") / "livehub.log"
    proc = LivehubProcess(log_path=log)
    proc.env = oidc_env(provider.issuer, proc.url)
    proc.start()
    yield proc
    proc.terminate()
