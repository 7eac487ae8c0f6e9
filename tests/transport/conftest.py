from tests.hardening.conftest import spawn

__all__ = ["spawn"]
