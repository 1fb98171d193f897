"""The GPU input path on the CPU: Rust-tokenizer batches, prefetched batches and the packed CSR copy must give
exactly what the plain path gives."""

import numpy as np
import pytest
import torch

from lsr.core.sparse import SparseBatch
from lsr.encoding.encoder import PADDED_KEY, _to_csr
from lsr.encoding.tokens import BatchTokenizer

TEXTS = [
    "what causes type 2 diabetes?",
    "The mitochondria is the powerhouse of the cell. " * 40,             # longer than max_length
    "Ünïcödé text, 中文字符 and emojis 🙂 mixed with numbers 3.14159 and 2,718",
    "a",
    "",
    "\u200b",                                                              # no token but the special ones
    "literal special tokens [PAD] [SEP] [CLS] [MASK] inside a text",
    "BRCA1 mutations increase the risk of breast and ovarian cancer in carriers. " * 3,
    "Gene expression\nin tumour cells, measured by RNA-seq (n = 48), rose 2.5-fold. " * 60,   # cut before tokenizing
    "x" * 3000,                                                            # nothing to cut at
    ("z" * 120 + " ") * 40,                       # cut text no longer overflows: 1 token per 121 characters
]


@pytest.mark.parametrize("max_length,pad_to", [(256, 8), (16, 8), (16, None), (3, None)])
def test_batch_tokenizer_equals_transformers(encoder, max_length, pad_to):
    tok = encoder.tokenizer
    want = tok(TEXTS, truncation=True, max_length=max_length, padding=True, pad_to_multiple_of=pad_to,
               return_token_type_ids=False, return_overflowing_tokens=True, return_tensors="np")
    first = np.r_[True, np.diff(want["overflow_to_sample_mapping"]) != 0]
    got = BatchTokenizer(tok, max_length, pad_to)(TEXTS)
    assert got.input_ids.dtype == np.int64 and got.attention_mask.dtype == np.int64
    assert np.array_equal(got.input_ids, want["input_ids"][first])
    assert np.array_equal(got.attention_mask, want["attention_mask"][first])
    lengths = [len(tok(t)["input_ids"]) for t in TEXTS]
    assert got.truncated == sum(n > max_length for n in lengths) > 0


def test_cut_texts_give_a_byte_level_bpe_its_own_tokens():
    """A RoBERTa-style tokenizer (byte-level BPE, trained here on the test texts) gets the same tokens after the
    cut as transformers gives on the full texts."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    rust = Tokenizer(models.BPE())
    rust.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    rust.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>"]))
    rust.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok = PreTrainedTokenizerFast(tokenizer_object=rust, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    for max_length in (16, 40):
        want = tok(TEXTS, truncation=True, max_length=max_length, padding=True, return_token_type_ids=False)
        got = BatchTokenizer(tok, max_length)(TEXTS)
        assert np.array_equal(got.input_ids, np.array(want["input_ids"]))
        assert got.truncated == sum(len(tok(t)["input_ids"]) > max_length for t in TEXTS)


def test_batch_tokenizer_leaves_the_shared_tokenizer_alone(encoder):
    before = encoder.tokenizer.backend_tokenizer.to_str()
    BatchTokenizer(encoder.tokenizer, 7, 8)(TEXTS)
    assert encoder.tokenizer.backend_tokenizer.to_str() == before


def test_batch_tokenizer_bad_input(encoder):
    with pytest.raises(ValueError, match="max_length"):
        BatchTokenizer(encoder.tokenizer, 0)
    with pytest.raises(ValueError, match="at least one"):
        BatchTokenizer(encoder.tokenizer, 16)([])
    with pytest.raises(TypeError, match="fast"):
        BatchTokenizer(object(), 16)


def test_prefetched_batches_equal_plain_batches(encoder):
    texts = TEXTS * 5
    order = np.argsort([-len(t) for t in texts], kind="stable")
    runs = []
    for source in (encoder._batches, encoder._prefetched_batches):
        encoder.stats.truncated = encoder.stats.tokens = 0
        runs.append(([(c, {k: v.clone() if torch.is_tensor(v) else v for k, v in b.items()})
                      for c, b in source(texts, order, 3, 16)],
                     encoder.stats.truncated, encoder.stats.tokens))
    (plain, *plain_stats), (fetched, *fetched_stats) = runs
    assert plain_stats == fetched_stats and plain_stats[0] == 5 * sum(
        len(encoder.tokenizer(t)["input_ids"]) > 16 for t in TEXTS) > 0
    assert len(plain) == len(fetched) == -(-len(texts) // 3)
    for (c1, b1), (c2, b2) in zip(plain, fetched):
        assert np.array_equal(c1, c2)
        assert b1.keys() == b2.keys() and b1.pop(PADDED_KEY) == b2.pop(PADDED_KEY)
        assert all(torch.equal(b1[k], b2[k]) for k in b1)


def test_a_batch_without_padding_skips_the_models_mask_with_the_same_weights(encoder):
    long = [t * 20 for t in TEXTS[:3]]   # all truncated at 16 tokens: no padding
    order = np.arange(len(long))
    (_, full), = encoder._batches(long, order, 3, 16)
    (_, short), = encoder._batches(long + ["a b"], np.arange(4), 4, 16)
    assert full.pop(PADDED_KEY) is False and short.pop(PADDED_KEY) is True
    assert torch.equal(encoder.weights(full, padded=False), encoder.weights(full, padded=True))


def test_encode_through_prefetched_batches_gives_the_same_vectors(encoder, monkeypatch):
    want = encoder.encode_documents(TEXTS, max_length=32, batch_size=3)
    monkeypatch.setattr(encoder, "_batches", encoder._prefetched_batches)
    got = encoder.encode_documents(TEXTS, max_length=32, batch_size=3)
    assert encoder.stats.truncated == sum(len(encoder.tokenizer(t)["input_ids"]) > 32 for t in TEXTS) > 0
    for a, b in ((got.indptr, want.indptr), (got.indices, want.indices), (got.values, want.values)):
        assert np.array_equal(a, b)


def test_tokenizer_errors_reach_the_caller(encoder, monkeypatch):
    def broken(self, texts):
        raise RuntimeError("tokenizer broke")

    monkeypatch.setattr(BatchTokenizer, "__call__", broken)
    monkeypatch.setattr(encoder, "_batches", encoder._prefetched_batches)
    with pytest.raises(RuntimeError, match="tokenizer broke"):
        encoder.encode_documents(TEXTS * 10, batch_size=2)


def test_packed_csr_equals_dense():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 50, generator=g).clamp_min(0.8) - 0.8
    w[2] = 0                                                  # an empty row
    got, want = _to_csr(w, 50), SparseBatch.from_dense(w.numpy())
    for a, b in ((got.indptr, want.indptr), (got.indices, want.indices), (got.values, want.values)):
        assert np.array_equal(a, b)
    assert _to_csr(torch.zeros(0, 50), 50).indptr.tolist() == [0]


def test_a_padded_batch_through_a_key_mask_gives_the_mask_s_weights(encoder, monkeypatch):
    """The CUDA path's (B, 1, 1, L) key mask, forced on the CPU: the padded rows keep the 2D mask's weights."""
    (_, batch), = encoder._batches(TEXTS, np.arange(len(TEXTS)), len(TEXTS), 32)
    assert batch.pop(PADDED_KEY) is True
    want = encoder.weights(batch, padded=True)
    monkeypatch.setattr(encoder, "key_mask", True)
    got = encoder.weights(batch, padded=True)
    unmasked = encoder.weights(batch, padded=False)    # pads attended to: other weights, so the mask is used
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(unmasked, want, atol=1e-3)
