"""The loaded-model cache: one load per model, LRU eviction under a memory budget, admission
before loading so the budget holds while models are in use."""
import threading
import time

import torch

from jarvis.execution.model_cache import LoadFailures, ModelCache


def model(nbytes: int):
    return torch.nn.Linear(nbytes // 4, 1, bias=False)  # nbytes of float32 weights


def test_loads_once_under_concurrency():
    cache, calls = ModelCache(10 ** 9), []

    def loader():
        calls.append(1)
        time.sleep(0.05)
        return model(400)
    threads = [threading.Thread(target=lambda: cache.get(("t", "m"), loader)) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(calls) == 1 and cache.stats.loads == 1 and cache.stats.hits == 7


def test_least_recently_used_is_evicted():
    cache = ModelCache(1000)
    cache.get(("t", "a"), lambda: model(400))
    cache.get(("t", "b"), lambda: model(400))
    cache.get(("t", "a"), lambda: model(400))       # a is now the most recent
    cache.get(("t", "c"), lambda: model(400))
    assert ("t", "b") not in cache and ("t", "a") in cache and ("t", "c") in cache
    assert cache.used_bytes() <= 1000


def test_admission_waits_for_a_model_in_use():
    cache = ModelCache(1000)
    with cache.using(("t", "a"), lambda: model(600), 600) as loaded:
        assert loaded is not None
        done = []
        t = threading.Thread(target=lambda: done.append(cache.get(("t", "b"), lambda: model(600), 600)))
        t.start()
        time.sleep(0.2)
        assert not done                      # b waits: a is in use and both do not fit
    t.join(5)
    assert done and ("t", "a") not in cache and cache.used_bytes() <= 1000


def test_failed_load_is_not_cached():
    cache = ModelCache(1000, LoadFailures(ttl=0))   # nothing remembered: every call loads again
    calls = []

    def broken():
        calls.append(1)
        raise OSError("no such model")
    for _ in range(2):
        try:
            cache.get(("t", "x"), broken)
        except OSError:
            pass
    assert ("t", "x") not in cache and cache.stats.loads == 0 and len(calls) == 2


def test_a_model_that_loads_as_none_is_usable():
    """Built-in runners (canny-control) load nothing: their entry is still valid."""
    cache = ModelCache(1000)
    for _ in range(2):
        with cache.using(("canny-control", "builtin"), lambda: None) as loaded:
            assert loaded is None
    assert cache.stats.loads == 1
