"""The screened CPU head (``lsr.encoding.screen``): its bound, its vectors against float64 logits, the fallback."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from lsr.encoding import screen
from lsr.encoding.head import resolve_backend, splade_max_pool, splade_max_pool_reference

needs_avx2 = pytest.mark.skipif(screen._host_isa() != "avx2", reason="this CPU has no AVX2")


def inputs(B, L, H, V, seed, shift=0.0, holes=False):
    """Token states with a common offset (as a LayerNorm's output has) and a bias pushing most logits below 0."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, L, H, generator=g) + 3 * torch.randn(H, generator=g)
    weight = torch.randn(V, H, generator=g) / H ** 0.5
    bias = torch.randn(V, generator=g) * 0.5 - shift
    if holes:
        mask = (torch.rand(B, L, generator=g) > 0.3).long()
    else:
        lengths = torch.randint(1, L + 1, (B,), generator=g)
        mask = (torch.arange(L)[None] < lengths[:, None]).long()
    mask[0] = 1
    if B > 1:
        mask[-1] = 0
    return hidden, weight, bias, mask


def float64_weights(hidden, weight, bias, mask):
    return splade_max_pool_reference(hidden.double(), weight.double(), bias.double(), mask)


@needs_avx2
@pytest.mark.parametrize("B,L,H,V,shift", [(4, 37, 48, 101, 0.0), (3, 1, 32, 70, 2.0), (2, 64, 37, 1000, 6.0),
                                           (5, 19, 128, 2049, 4.0), (1, 3, 2, 33, 0.0)])
def test_same_vectors_as_float64_logits(B, L, H, V, shift):
    """Odd hidden sizes, one token, vocabularies not a multiple of the kernel's 32 columns, an all-padding row."""
    hidden, weight, bias, mask = inputs(B, L, H, V, seed=B * L + V, shift=shift)
    got = splade_max_pool(hidden, weight, bias, mask, backend="screen")
    want = float64_weights(hidden, weight, bias, mask)
    assert got.dtype == torch.float32 and got.shape == (B, V)
    assert torch.equal(got > 0, want > 0)
    assert (got.double() - want).abs().max() < 1e-5
    if B > 1:
        assert torch.all(got[-1] == 0)


@needs_avx2
def test_holes_in_the_mask_no_bias_and_two_threads():
    hidden, weight, bias, mask = inputs(3, 21, 40, 300, seed=3, shift=1.0, holes=True)
    want = float64_weights(hidden, weight, torch.zeros_like(bias), mask)
    one = screen.max_pool_screened(hidden, weight, None, mask.bool(), threads=1)
    two = screen.max_pool_screened(hidden, weight, None, mask.bool(), threads=2)
    assert torch.equal(one, two)
    assert torch.equal(one > 0, want > 0) and (one.double() - want).abs().max() < 1e-5


@needs_avx2
@pytest.mark.parametrize("seed", range(4))
def test_bound_is_never_below_the_float64_max_logit(seed):
    """The property the vectors rest on: no column whose logit can be > 0 is screened out."""
    hidden, weight, bias, _ = inputs(1, 50, 64, 3000, seed=seed, shift=3.0)
    h = hidden[0].numpy()
    pw = screen.pack_weight(weight)
    mean = h.mean(0, dtype=np.float32)
    centre = (weight @ torch.from_numpy(mean) + bias).double().numpy()
    bound, survivors = screen.upper_bounds(h, mean, centre, pw, bias.abs().double().numpy())
    exact = (hidden[0].double() @ weight.double().T + bias.double()).amax(0).numpy()
    assert np.all(bound >= exact)
    assert np.array_equal(survivors, np.flatnonzero(bound >= 0))
    assert np.count_nonzero(bound >= 0) < 1.5 * np.count_nonzero(exact > 0) + 10, "the bound is tight"


@needs_avx2
def test_weight_changed_in_place_is_packed_again():
    hidden, weight, bias, mask = inputs(2, 9, 16, 64, seed=5)
    splade_max_pool(hidden, weight, bias, mask, backend="screen")
    weight.mul_(-1)
    got = splade_max_pool(hidden, weight, bias, mask, backend="screen")
    assert torch.equal(got > 0, float64_weights(hidden, weight, bias, mask) > 0)


def test_forced_fallback_gives_the_same_vectors(monkeypatch):
    """LSR_CPU_ISA=generic is what a CPU without AVX2 sees: "auto" takes the float32 chunked head."""
    hidden, weight, bias, mask = inputs(3, 17, 24, 200, seed=9, shift=1.0)
    auto = splade_max_pool(hidden, weight, bias, mask)
    monkeypatch.setenv(screen.ISA_ENV, "generic")
    assert resolve_backend("auto", "cpu") == "torch" and not screen.available()
    fallback = splade_max_pool(hidden, weight, bias, mask)
    assert torch.equal(auto > 0, fallback > 0) and (auto - fallback).abs().max() < 1e-5
    with pytest.raises(RuntimeError, match="AVX2"):
        splade_max_pool(hidden, weight, bias, mask, backend="screen")
    monkeypatch.setenv(screen.ISA_ENV, "sse9")
    with pytest.raises(ValueError, match=screen.ISA_ENV):
        screen.isa()


def test_screen_refuses_gradients_and_auto_trains_on_the_chunked_head():
    hidden, weight, bias, mask = inputs(2, 5, 8, 30, seed=1)
    hidden.requires_grad_()
    with pytest.raises(ValueError, match="inference-only"):
        splade_max_pool(hidden, weight, bias, mask, backend="screen")
    assert resolve_backend("auto", "cpu", grad=True) == "torch"
    splade_max_pool(hidden, weight, bias, mask).sum().backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0


@pytest.mark.parametrize("layer", ["process", "thread"])
def test_one_blas_thread_holds_on_every_thread(monkeypatch, layer):
    """Inside the block numpy's BLAS runs one thread on whichever thread enters it, blocks overlapping on several
    threads included, and the limit is back afterwards. "thread": the path of an OpenBLAS whose limit is per thread
    (OpenMP), taken here by one thread at a time."""
    libs = screen._blas()[0] + screen._blas()[1]
    if layer == "thread":
        monkeypatch.setattr(screen, "_blas", lambda: (libs, ()))

    def counts():
        return [lib.get_num_threads() for lib in libs]

    before = counts()
    g = np.random.default_rng(0)
    x, w = g.standard_normal((8, 128), dtype=np.float32), g.standard_normal((512, 128), dtype=np.float32)

    def product(_=None):
        with screen.one_blas_thread():
            return x @ w.T, counts()

    first, threads = product()
    with ThreadPoolExecutor(1 if layer == "thread" else 3) as pool:
        results = [product()] + list(pool.map(product, range(12)))
    assert set(threads) == {1} and all(set(t) == {1} for _, t in results)
    assert all(np.array_equal(p, first) for p, _ in results)
    assert counts() == before


@needs_avx2
def test_the_kernel_loop_keeps_everything_in_registers(monkeypatch):
    """Two tokens per pass made LLVM spill ~20 vectors an iteration to the stack, and the kernel then ran up to
    2.4 x slower depending on where the caller's stack lay (BENCHMARKS.md, issue 16): its machine code may touch the
    stack only in its prologue and epilogue."""
    import llvmlite.binding as llvm

    compile_engine, assembly = llvm.create_mcjit_compiler, []

    def capture(module, machine):
        assembly.append(machine.emit_assembly(module))
        return compile_engine(module, machine)

    monkeypatch.setattr(llvm, "create_mcjit_compiler", capture)
    screen._kernel.cache_clear()
    try:
        screen._kernel()
    finally:
        screen._kernel.cache_clear()   # the next caller compiles it as usual
    stack = [line for line in assembly[0].splitlines() if "(%rsp)" in line or "(%rbp)" in line]
    assert len(stack) <= 4, stack
