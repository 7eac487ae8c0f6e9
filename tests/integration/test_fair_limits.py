"""Fair limits on one process (issue 20): see tests/fair_limits.py; the same scenarios
run on two processes over Redis in tests/cluster/test_fair_limits.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import fair_limits as fl
from tests.support import LivehubProcess

PROGRAMME = str(Path(__file__).parent.parent / "data" / "safeguarding.toml")
VOTE_CAP = 3
ADDRESS_RATE = 10


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivehubProcess]:
    log = tmp_path_factory.mktemp("fair") / "livehub.log"
    proc = LivehubProcess(env={"LIVEHUB_PROGRAMME": PROGRAMME, "LIVEHUB_VOTE_WINDOW": "0.1",
                               "LIVEHUB_GUEST_VOTES_PER_ADDRESS": str(VOTE_CAP),
                               "LIVEHUB_GUEST_ADDRESS_RATE": str(ADDRESS_RATE)},
                          log_path=log).start()
    yield proc
    proc.terminate()


async def test_one_person_one_budget(srv: LivehubProcess) -> None:
    await fl.one_person_one_budget([srv], "person")


async def test_slow_mode_counts_per_person(srv: LivehubProcess) -> None:
    await fl.slow_mode_per_person([srv], "slow")


async def test_guest_votes_per_address(srv: LivehubProcess) -> None:
    await fl.guest_votes_per_address([srv], "gvotes", VOTE_CAP)


async def test_guest_budget_per_address(srv: LivehubProcess) -> None:
    await fl.guest_budget_per_address([srv], "gaddr", ADDRESS_RATE)


async def test_operators_see_the_limits_bite(srv: LivehubProcess) -> None:
    await fl.one_person_one_budget([srv], "names")
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(srv.url + "/metrics")).text
    line = next(x for x in metrics.splitlines()
                if x.startswith('livehub_refusals_total{limit="person"}'))
    assert float(line.split()[-1]) >= 10
    # One log line per address when a limit starts refusing, never one per request.
    assert srv.log_text().count("limit refusing") <= 8
