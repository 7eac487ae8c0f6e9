"""Fair limits on two processes over Redis (issue 20): two processes never both say yes.

The same scenarios as tests/integration/test_fair_limits.py, each with its connections
spread over both processes, so each limit is decided where the event is committed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import fair_limits as fl
from tests.cluster.conftest import Cluster, delete_namespace

pytestmark = pytest.mark.timeout(90)

VOTE_CAP = 3
ADDRESS_RATE = 10


@pytest.fixture(scope="module")
def limited(shared_redis: str, namespace: str, programme: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cl = Cluster(shared_redis, namespace, programme, tmp_path_factory.mktemp("logs"),
                 env={"LIVEHUB_RATE_LIMIT": "20",
                      "LIVEHUB_GUEST_VOTES_PER_ADDRESS": str(VOTE_CAP),
                      "LIVEHUB_GUEST_ADDRESS_RATE": str(ADDRESS_RATE),
                      "LIVEHUB_VOTE_WINDOW": "0.1"})
    try:
        yield cl.start()
    finally:
        cl.stop()
        delete_namespace(shared_redis, namespace)


async def test_one_person_one_budget_across_processes(limited: Cluster,
                                                       fresh_room: Callable[[], str]) -> None:
    await fl.one_person_one_budget(limited.procs, fresh_room())


async def test_slow_mode_per_person_across_processes(limited: Cluster,
                                                     fresh_room: Callable[[], str]) -> None:
    await fl.slow_mode_per_person(limited.procs, fresh_room())


async def test_guest_votes_per_address_across_processes(
        limited: Cluster, fresh_room: Callable[[], str]) -> None:
    await fl.guest_votes_per_address(limited.procs, fresh_room(), VOTE_CAP)


async def test_guest_budget_per_address_across_processes(
        limited: Cluster, fresh_room: Callable[[], str]) -> None:
    await fl.guest_budget_per_address(limited.procs, fresh_room(), ADDRESS_RATE)
