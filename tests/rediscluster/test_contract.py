"""The broker contract (tests/broker/test_contract.py) on the Redis Cluster broker.

The same test functions, with ``backend`` given by this directory's conftest.
"""

from tests.broker.test_contract import *  # noqa: F403
