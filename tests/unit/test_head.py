"""The SPLADE head (chunked PyTorch and fused Triton) against a float64 reference that materialises the logits.

Without a GPU the Triton kernels run under the Triton interpreter (TRITON_INTERPRET=1, set here before triton
is first imported), on small shapes whose tiles still cover the edge cases: ragged and all-padding masks, L = 1,
vocabulary and hidden sizes that are not multiples of the tiles. Tolerances are METHOD.md's per dtype, on
||got - want|| / ||want||.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from lsr.encoding.head import splade_max_pool, splade_max_pool_reference, splade_sum_pool  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
try:
    import triton

    TRITON_SKIP = None
    if DEVICE == "cpu" and tuple(int(x) for x in triton.__version__.split(".")[:2]) < (3, 9):
        TRITON_SKIP = f"the interpreter of triton {triton.__version__} fails under numpy 2 (triton >= 3.9 works)"
except ImportError:
    TRITON_SKIP = "triton is not installed (pip install 'lsr[gpu]')"
needs_triton = pytest.mark.skipif(TRITON_SKIP is not None, reason=str(TRITON_SKIP))
BACKENDS = ["torch", pytest.param("triton", marks=needs_triton)]
# float32: tf32 with error compensation on GPU, plain float32 in the interpreter; 16-bit: one rounding of inputs
# (both) and of the gradients (returned in the input dtype); the Triton scatter also rounds g to 16 bits.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def make_inputs(B, L, H, V, dtype, seed, bias=True, holes=False):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, L, H, generator=g)
    weight = torch.randn(V, H, generator=g) / H ** 0.5
    b = torch.randn(V, generator=g) * 0.5 if bias else None
    mask = (torch.rand(B, L, generator=g) > 0.3).long()
    if not holes:  # right padding, as a tokenizer makes it
        lengths = torch.randint(1, L + 1, (B,), generator=g)
        mask = (torch.arange(L)[None] < lengths[:, None]).long()
    mask[0] = 1
    if B > 1:
        mask[-1] = 0  # an all-padding row: output and gradients are zero
    to = dict(device=DEVICE, dtype=dtype)
    return hidden.to(**to), weight.to(**to), None if b is None else b.to(**to), mask.to(DEVICE)


def check_against_float64(B, L, H, V, dtype, backend, seed=0, bias=True, holes=False, mask_dtype=None):
    hidden, weight, bias_, mask = make_inputs(B, L, H, V, dtype, seed, bias, holes)
    if mask_dtype is not None:
        mask = mask.to(mask_dtype)
    leaves = [t.clone().requires_grad_() for t in (hidden, weight) + ((bias_,) if bias else ())]
    refs = [t.detach().double().requires_grad_() for t in leaves]
    out = splade_max_pool(leaves[0], leaves[1], leaves[2] if bias else None, mask, backend=backend)
    ref = splade_max_pool_reference(refs[0], refs[1], refs[2] if bias else None, mask)
    assert out.dtype == torch.float32 and out.shape == (B, V)
    tol = TOLERANCE[dtype]
    assert rel(out, ref) < tol
    if B > 1:
        assert torch.all(out[-1] == 0)
    grad_out = torch.randn(B, V, generator=torch.Generator().manual_seed(seed + 1)).to(DEVICE)
    grads = torch.autograd.grad(out, leaves, grad_out)
    ref_grads = torch.autograd.grad(ref, refs, grad_out.double())
    for name, got, want in zip(("hidden", "weight", "bias"), grads, ref_grads):
        assert got.dtype == dtype, name
        assert rel(got, want) < tol, (name, rel(got, want))
    if B > 1:
        assert torch.all(grads[0][-1] == 0)
    with torch.no_grad():  # the inference path (no arg-max) gives the same numbers
        plain = splade_max_pool(hidden, weight, bias_, mask, backend=backend)
    assert torch.equal(plain, out.detach())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("B,L,H,V", [(3, 37, 48, 101), (2, 1, 32, 70), (4, 19, 40, 33), (1, 16, 16, 64)])
def test_forward_and_gradients_match_float64(B, L, H, V, backend):
    check_against_float64(B, L, H, V, torch.float32, backend, seed=B * L + V)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("H", [48, 36])  # 36: rows not 16-byte aligned, so no tensor-memory-accelerator tiles
def test_half_precision_matches_float64(dtype, backend, H):
    check_against_float64(3, 37, H, 101, dtype, backend, seed=7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_bias_bool_mask_and_holes_in_the_mask(backend):
    check_against_float64(3, 21, 32, 90, torch.float32, backend, seed=3, bias=False, holes=True,
                          mask_dtype=torch.bool)


@needs_triton
@pytest.mark.parametrize("kind", ["tma", "persistent", "pointer"])
def test_every_triton_forward_matches(kind, monkeypatch):
    """The forward kernels the automatic choice picks from (and the fallback for unaligned rows) agree."""
    from lsr.encoding.head import max_pool_torch
    from lsr.encoding.kernels import fused_head

    monkeypatch.setattr(fused_head, "FORWARD", kind)
    for B, L, H, V in [(3, 37, 48, 101), (5, 1, 32, 70), (2, 16, 40, 33)]:
        hidden, weight, bias, mask = make_inputs(B, L, H, V, torch.float32, seed=L + V)
        y1, a1 = max_pool_torch(hidden, weight, bias, mask)
        y2, a2 = fused_head.max_pool_triton(hidden, weight, bias, mask)
        assert torch.equal(a1, a2)
        assert rel(y2, y1) < 1e-6


@needs_triton
def test_triton_matches_torch_argmax():
    """Both backends pick the same winning token (the first one on ties) for every output."""
    from lsr.encoding.head import max_pool_torch
    from lsr.encoding.kernels.fused_head import max_pool_triton

    hidden, weight, bias, mask = make_inputs(3, 29, 32, 77, torch.float32, seed=11)
    hidden[:, 5] = hidden[:, 2]  # exact ties between tokens 2 and 5
    y1, a1 = max_pool_torch(hidden, weight, bias, mask)
    y2, a2 = max_pool_triton(hidden, weight, bias, mask)
    assert torch.equal(a1, a2)
    assert rel(y2, y1) < 1e-6


def test_no_grad_path_equals_autograd_path():
    g = torch.Generator().manual_seed(0)
    hidden, weight, bias = torch.randn(2, 5, 8, generator=g), torch.randn(300, 8, generator=g), torch.randn(300, generator=g)
    mask = torch.ones(2, 5)
    with torch.no_grad():
        plain = splade_max_pool(hidden, weight, bias, mask, backend="torch")
    tracked = splade_max_pool(hidden.requires_grad_(), weight, bias, mask, backend="torch")
    assert torch.equal(plain, tracked.detach())


def test_empty_inputs_give_zero_weights():
    out = splade_max_pool(torch.zeros(2, 0, 4), torch.zeros(10, 4), None, torch.ones(2, 0), backend="torch")
    assert out.shape == (2, 10) and torch.all(out == 0)


def test_sum_pooling_matches_reference():
    g = torch.Generator().manual_seed(1)
    hidden, weight, bias = torch.randn(2, 6, 8, generator=g), torch.randn(500, 8, generator=g), torch.randn(500, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    ref = (torch.log1p(torch.relu(hidden.double() @ weight.double().T + bias.double())) * mask[..., None]).sum(1)
    assert (splade_sum_pool(hidden, weight, bias, mask) - ref).abs().max().item() < 1e-4


def test_shape_and_backend_errors():
    h, w, b, m = torch.zeros(2, 3, 4), torch.zeros(10, 4), torch.zeros(10), torch.ones(2, 3)
    with pytest.raises(ValueError, match="weight"):
        splade_max_pool(h, torch.zeros(10, 5), b, m)
    with pytest.raises(ValueError, match="attention_mask"):
        splade_max_pool(h, w, b, torch.ones(3, 2))
    with pytest.raises(ValueError, match="bias"):
        splade_max_pool(h, w, torch.zeros(9), m)
    with pytest.raises(ValueError, match="backend"):
        splade_max_pool(h, w, b, m, backend="cuda")


def test_triton_backend_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="CUDA"):
        splade_max_pool(torch.zeros(2, 3, 4), torch.zeros(10, 4), None, torch.ones(2, 3), backend="triton")


def splade_training_losses(pool, steps=4, seed=0):
    """Losses of a few Adam steps of SPLADE training: in-batch contrastive loss plus the FLOPS regulariser,
    through a tiny token encoder (embedding + tanh projection) and a trainable vocabulary head."""
    torch.manual_seed(seed)
    n_tokens, H, V, B = 60, 32, 90, 6
    emb = torch.nn.Embedding(n_tokens, H).to(DEVICE)
    proj = torch.nn.Linear(H, H).to(DEVICE)
    weight = torch.nn.Parameter(torch.randn(V, H, device=DEVICE) / H ** 0.5)
    bias = torch.nn.Parameter(torch.zeros(V, device=DEVICE))
    opt = torch.optim.Adam([*emb.parameters(), *proj.parameters(), weight, bias], lr=1e-2)
    q_ids, d_ids = torch.randint(0, n_tokens, (B, 5)).to(DEVICE), torch.randint(0, n_tokens, (B, 17)).to(DEVICE)
    q_mask = (torch.arange(5)[None] < torch.randint(1, 6, (B,))[:, None]).long().to(DEVICE)
    d_mask = (torch.arange(17)[None] < torch.randint(1, 18, (B,))[:, None]).long().to(DEVICE)
    losses = []
    for _ in range(steps):
        q = pool(torch.tanh(proj(emb(q_ids))), weight, bias, q_mask)
        d = pool(torch.tanh(proj(emb(d_ids))), weight, bias, d_mask)
        contrastive = torch.nn.functional.cross_entropy(q @ d.T, torch.arange(B, device=DEVICE))
        flops = (q.mean(0) ** 2).sum() + (d.mean(0) ** 2).sum()
        loss = contrastive + 0.1 * flops
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_through_the_head_matches_the_reference(backend):
    ours = splade_training_losses(lambda h, w, b, m: splade_max_pool(h, w, b, m, backend=backend))
    ref = splade_training_losses(splade_max_pool_reference)
    assert ours[-1] < ours[0]  # it learns
    assert ours == pytest.approx(ref, rel=1e-4)
