"""The chunked PyTorch head against a float64 reference that materialises the logits."""

import pytest
import torch

from lsr.head import splade_max_pool, splade_sum_pool


def reference(hidden, weight, bias, mask):
    logits = hidden.double() @ weight.double().T + bias.double()
    logits = logits.masked_fill(~mask.bool()[..., None], float("-inf"))
    return torch.log1p(torch.relu(logits.amax(1)))


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("B,L,H,V", [(3, 7, 16, 1000), (2, 1, 8, 2049), (4, 33, 32, 4099)])
def test_forward_and_gradients_match_float64(B, L, H, V):
    g = torch.Generator().manual_seed(B * L + V)
    hidden = torch.randn(B, L, H, generator=g, requires_grad=True)
    weight = (torch.randn(V, H, generator=g) / H ** 0.5).requires_grad_()
    bias = torch.randn(V, generator=g).requires_grad_()
    mask = (torch.rand(B, L, generator=g) > 0.3).long()
    mask[:, 0] = 1
    mask[-1] = 0  # an all-padding row: output and gradients are zero
    ref = reference(hidden, weight, bias, mask)
    out = splade_max_pool(hidden, weight, bias, mask, backend="torch")
    assert out.dtype == torch.float32 and out.shape == (B, V)
    assert (out - ref).abs().max().item() < 1e-5
    assert torch.all(out[-1] == 0)
    grad_out = torch.randn(B, V, generator=g)
    ref_grads = torch.autograd.grad(ref, (hidden, weight, bias), grad_out.double())
    grads = torch.autograd.grad(out, (hidden, weight, bias), grad_out)
    for got, want in zip(grads, ref_grads):
        assert rel(got, want) < 1e-5
    assert torch.all(grads[0][-1] == 0)


def test_no_grad_path_equals_autograd_path():
    g = torch.Generator().manual_seed(0)
    hidden, weight, bias = torch.randn(2, 5, 8, generator=g), torch.randn(300, 8, generator=g), torch.randn(300, generator=g)
    mask = torch.ones(2, 5)
    with torch.no_grad():
        plain = splade_max_pool(hidden, weight, bias, mask)
    tracked = splade_max_pool(hidden.requires_grad_(), weight, bias, mask)
    assert torch.equal(plain, tracked.detach())


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
