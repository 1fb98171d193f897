"""The evaluation's vector cache: keyed by every setting that changes a vector, so none is reused across them."""

import numpy as np
import pytest
from lsr.eval.cache import VectorCache

from lsr.core.sparse import SparseBatch
from lsr.encoding.encoder import NUMERICS_VERSION, vector_settings

BASE = vector_settings("cpu", max_length=256, window_overlap=64)


def vectors(value: float):
    return SparseBatch(np.array([0, 1], np.int64), np.array([3], np.int32), np.array([value], np.float32), 10)


@pytest.mark.parametrize("change", [
    {"max_length": 128}, {"window_overlap": None}, {"window_overlap": 32}, {"pooling": "sum"}, {"top_k": 64},
    {"min_weight": 0.1}, {"dtype": "bfloat16"}, {"head": "torch" if BASE["head"] != "torch" else "screen"},
    {"numerics": NUMERICS_VERSION + "-next"},
])
def test_any_setting_that_changes_a_vector_misses_the_cache(tmp_path, change):
    cache = VectorCache(tmp_path)
    calls = []

    def encode(value):
        def run():
            calls.append(value)
            return vectors(value), ["d1"], {"model": "m"}
        return run

    _, cached = cache.get("coll", "m", "docs", BASE, encode(1.0))
    assert not cached and calls == [1.0]
    again, cached = cache.get("coll", "m", "docs", dict(BASE), encode(9.0))
    assert cached and calls == [1.0] and again.vectors.values[0] == 1.0
    other, cached = cache.get("coll", "m", "docs", {**BASE, **change}, encode(2.0))
    assert not cached and calls == [1.0, 2.0] and other.vectors.values[0] == 2.0
    assert other.meta["settings"] == {**BASE, **change}


def test_settings_resolve_as_the_encoder_would():
    assert BASE["dtype"] == "float32" and BASE["head"] in ("screen", "torch") and BASE["numerics"] == NUMERICS_VERSION
    assert vector_settings("cpu", max_length=64, pooling="sum")["head"] == "sum"
