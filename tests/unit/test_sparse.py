import numpy as np
import pytest
import scipy.sparse as sp

from lsr.core.sparse import SparseBatch


def random_batch(n=20, vocab=50, density=0.2, seed=0) -> SparseBatch:
    rng = np.random.default_rng(seed)
    m = sp.random(n, vocab, density=density, random_state=rng, format="csr", dtype=np.float32)
    m.data += 0.01
    return SparseBatch.from_scipy(m)


def test_scipy_round_trip_shares_memory():
    b = random_batch()
    m = b.to_scipy()
    assert m.shape == (20, 50)
    assert np.shares_memory(m.data, b.values)
    assert np.array_equal(SparseBatch.from_scipy(m).to_scipy().toarray(), m.toarray())


def test_from_dense_keeps_positive_entries():
    dense = np.array([[0, 1.5, -2, 0], [0, 0, 0, 0], [3, 0, 0, 0.5]], dtype=np.float32)
    b = SparseBatch.from_dense(dense).validate()
    assert b.indptr.tolist() == [0, 1, 1, 3]
    assert b.indices.tolist() == [1, 0, 3]
    assert b.values.tolist() == [1.5, 3.0, 0.5]


def test_concat_and_take():
    a, b = random_batch(seed=1), random_batch(seed=2)
    c = SparseBatch.concat([a, b])
    assert np.array_equal(c.to_scipy().toarray(), np.vstack([a.to_scipy().toarray(), b.to_scipy().toarray()]))
    order = np.array([3, 0, 39])
    assert np.array_equal(c.take(order).to_scipy().toarray(), c.to_scipy().toarray()[order])
    with pytest.raises(ValueError, match="different vocabularies"):
        SparseBatch.concat([a, SparseBatch(a.indptr, a.indices, a.values, 99)])


def test_prune_top_k_and_min_weight():
    b = random_batch(density=0.5)
    dense = b.to_scipy().toarray()
    top = b.prune(top_k=3).validate().to_scipy().toarray()
    for row, pruned in zip(dense, top):
        assert np.count_nonzero(pruned) == min(3, np.count_nonzero(row))
        kept = pruned[pruned > 0]
        assert np.all(kept >= np.sort(row)[::-1][min(3, np.count_nonzero(row)) - 1])
    assert np.all(b.prune(min_weight=0.5).values >= 0.5)
    with pytest.raises(ValueError):
        b.prune(top_k=0)


@pytest.mark.parametrize("bad", [
    dict(indptr=[0, 2], indices=[3, 1], values=[1, 1]),        # unsorted
    dict(indptr=[0, 2], indices=[1, 1], values=[1, 1]),        # duplicate
    dict(indptr=[0, 1], indices=[7], values=[1]),              # out of range
    dict(indptr=[0, 1], indices=[1], values=[np.nan]),         # NaN
    dict(indptr=[0, 1], indices=[1], values=[-1]),             # negative
    dict(indptr=[0, 3], indices=[1], values=[1]),              # indptr past the end
])
def test_validate_rejects_malformed(bad):
    with pytest.raises(ValueError):
        SparseBatch(np.array(bad["indptr"]), np.array(bad["indices"]), np.array(bad["values"], dtype=np.float32),
                    5).validate()


def test_validate_accepts_empty_rows():
    SparseBatch(np.array([0, 0, 2, 2]), np.array([0, 4]), np.array([1, 2], np.float32), 5).validate()
