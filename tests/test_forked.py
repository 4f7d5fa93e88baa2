import os

import pytest

from gpupix.forked import can_fork, forked_map

PARENT = os.getpid()


def _square_and_pid(shared, index):
    return shared["offset"] + index * index, os.getpid()


def _dies_in_a_worker(shared, index):
    if index == 5 and os.getpid() != PARENT:
        os._exit(3)
    return index


@pytest.mark.skipif(not can_fork(), reason="workers are forked")
def test_results_in_order_from_worker_processes():
    results = forked_map(_square_and_pid, 20, {"offset": 7}, workers=2)
    assert [value for value, _ in results] == [7 + i * i for i in range(20)]
    assert PARENT not in {pid for _, pid in results}  # computed in the workers


def test_few_calls_stay_in_this_process():
    results = forked_map(_square_and_pid, 3, {"offset": 0}, workers=2)
    assert [value for value, _ in results] == [0, 1, 4]
    assert {pid for _, pid in results} == {PARENT}


@pytest.mark.skipif(not can_fork(), reason="workers are forked")
def test_a_dead_worker_falls_back_to_threads():
    assert forked_map(_dies_in_a_worker, 12, None, workers=2) == list(range(12))
