"""The encoder against a plain transformers reference that materialises (batch, tokens, vocab) logits."""

import json

import numpy as np
import pytest
import torch

from lsr.encoding.encoder import Encoder, ModelLoadError, idf_from_documents
from lsr.encoding.models import resolve_model

TEXTS = [
    "what causes type 2 diabetes?",
    "The mitochondria is the powerhouse of the cell. " * 40,             # longer than max_length: truncated
    "Ünïcödé text, 中文字符 and emojis 🙂 mixed with numbers 3.14159 and 2,718",
    "a",
    "BRCA1 mutations increase the risk of breast and ovarian cancer in carriers.",
    "short",
    "Python's asyncio module provides infrastructure for writing single-threaded concurrent code using coroutines.",
]


@pytest.fixture(scope="module")
def reference_model():
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(resolve_model("splade-tiny")).eval()


def reference_vectors(model, tokenizer, texts, max_length, pooling="max"):
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    w = torch.log1p(torch.relu(logits)) * batch["attention_mask"][..., None]
    return (w.amax(1) if pooling == "max" else w.sum(1)).numpy()


@pytest.mark.parametrize("max_length", [256, 16])
def test_vectors_equal_materialising_reference(encoder, reference_model, max_length):
    got = encoder.encode_documents(TEXTS, max_length=max_length, batch_size=3).validate()
    want = reference_vectors(reference_model, encoder.tokenizer, TEXTS, max_length)
    dense = got.to_scipy().toarray()
    assert got.indices.dtype == np.int32 and got.indptr.dtype == np.int64 and got.values.dtype == np.float32
    assert np.array_equal(dense > 0, want > 0), "same non-zeros"
    assert np.abs(dense - want).max() < 1e-5


def test_sum_pooling_equals_reference(reference_model):
    enc = Encoder.from_pretrained("splade-tiny", device="cpu", pooling="sum")
    got = enc.encode_documents(TEXTS[:3], max_length=32).to_scipy().toarray()
    want = reference_vectors(reference_model, enc.tokenizer, TEXTS[:3], 32, pooling="sum")
    assert np.abs(got - want).max() < 1e-4


def test_results_in_input_order_whatever_the_batching(encoder):
    one_by_one = [encoder.encode_documents([t]).to_scipy().toarray()[0] for t in TEXTS]
    batched = encoder.encode_documents(TEXTS, batch_size=2).to_scipy().toarray()
    assert np.abs(np.array(one_by_one) - batched).max() < 1e-5


def test_truncation_is_counted(encoder):
    encoder.encode_documents(TEXTS, max_length=16)
    assert encoder.stats.truncated == sum(len(encoder.tokenizer(t)["input_ids"]) > 16 for t in TEXTS)
    encoder.encode_documents(["short text"], max_length=16)
    assert encoder.stats.truncated == 0


def test_empty_texts_give_empty_vectors(encoder):
    v = encoder.encode_queries(["", "diabetes", "   ", ""])
    assert np.diff(v.indptr).tolist()[0] == 0 and np.diff(v.indptr)[1] > 0
    assert np.diff(v.indptr)[2] == 0 and np.diff(v.indptr)[3] == 0
    assert len(encoder.encode_queries([])) == 0


@pytest.mark.parametrize("bad", [None, "a string, not a list", [None], ["ok", 3], [b"bytes"]])
def test_non_string_input_is_a_type_error(encoder, bad):
    with pytest.raises(TypeError):
        encoder.encode_documents(bad)


def test_pruning_options(encoder):
    full = encoder.encode_documents(TEXTS)
    top = encoder.encode_documents(TEXTS, top_k=10)
    assert np.all(np.diff(top.indptr) <= 10)
    assert np.array_equal(top.to_scipy().toarray(), full.prune(top_k=10).to_scipy().toarray())
    assert np.all(encoder.encode_documents(TEXTS, min_weight=1.0).values >= 1.0)
    with pytest.raises(ValueError):
        encoder.encode_documents(TEXTS, top_k=0)


def test_vocabulary_identity(encoder):
    assert encoder.vocab_size == 30522 == len(encoder.tokenizer.get_vocab())
    assert len(encoder.vocab_fingerprint) == 16


def test_unknown_model_names_list_what_is_available(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="splade-tiny"):
        Encoder.from_pretrained("no-such-org/no-such-model")
    with pytest.raises(ValueError, match="does not exist"):
        Encoder.from_pretrained("./no/such/folder")


def test_checkpoint_without_mlm_head_is_refused(tmp_path):
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

    cfg = dict(vocab_size=99, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    BertModel(BertConfig(**cfg)).save_pretrained(tmp_path / "bert")
    _copy_tokenizer(tmp_path / "bert")
    with pytest.raises(ModelLoadError, match="masked-LM head"):
        Encoder.from_pretrained(str(tmp_path / "bert"))
    GPT2Model(GPT2Config(vocab_size=99, n_embd=8, n_layer=1, n_head=2)).save_pretrained(tmp_path / "gpt2")
    _copy_tokenizer(tmp_path / "gpt2")
    with pytest.raises(ModelLoadError, match="masked-LM"):
        Encoder.from_pretrained(str(tmp_path / "gpt2"))


def _copy_tokenizer(folder):
    import shutil
    from pathlib import Path

    src = Path(resolve_model("splade-tiny"))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, folder / name)


def test_local_folder_loads_like_the_embedded_name(encoder):
    other = Encoder.from_pretrained(resolve_model("splade-tiny"), device="cpu")
    a = encoder.encode_queries(["heart disease"]).to_scipy().toarray()
    assert np.array_equal(a, other.encode_queries(["heart disease"]).to_scipy().toarray())


def test_inference_free_queries(tmp_path, encoder):
    docs = encoder.encode_documents(TEXTS)
    idf = idf_from_documents(docs)
    assert idf.shape == (encoder.vocab_size,) and np.all(idf >= 0)
    free = Encoder.from_pretrained("splade-tiny", device="cpu", query_mode="idf", idf=idf)
    q = free.encode_queries(["breast cancer risk", ""])
    ids = set(free.tokenizer("breast cancer risk", add_special_tokens=False)["input_ids"])
    terms, weights = q.row(0)
    assert set(terms.tolist()) == {t for t in ids if idf[t] > 0}
    assert np.allclose(weights, idf[terms])
    assert len(q.row(1)[0]) == 0
    # an inference-free model folder ships idf.json ({token: weight})
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(resolve_model("splade-tiny"), folder)
    (folder / "idf.json").write_text(json.dumps({"cancer": 2.5, "risk": 1.25, "not-a-token": 9.0}))
    shipped = Encoder.from_pretrained(str(folder), device="cpu", query_mode="idf")
    terms, weights = shipped.encode_queries(["cancer risk today"]).row(0)
    assert dict(zip(shipped.tokenizer.convert_ids_to_tokens(terms.tolist()), weights.tolist())) == {
        "cancer": 2.5, "risk": 1.25}
    with pytest.raises(ValueError, match="IDF"):
        Encoder.from_pretrained("splade-tiny", device="cpu", query_mode="idf").encode_queries(["x"])


def test_long_documents_as_windows_max_pooled(encoder, reference_model):
    """Each window is a sequence of its own (special tokens included); the document is their elementwise max."""
    long = TEXTS[1] + " Diabetes and insulin resistance follow. " * 10
    got = encoder.encode_documents([TEXTS[0], long, ""], max_length=32, window_overlap=8, batch_size=2)
    assert encoder.stats.windowed == 1 and encoder.stats.truncated == 0
    windows = encoder.tokenizer(long, truncation=True, max_length=32, stride=8, return_overflowing_tokens=True)
    assert len(windows["input_ids"]) > 3
    with torch.no_grad():
        per_window = np.stack([torch.log1p(torch.relu(reference_model(input_ids=torch.tensor([ids])).logits[0]))
                               .amax(0).numpy() for ids in windows["input_ids"]])
    dense = got.to_scipy().toarray()
    assert np.array_equal(dense[1] > 0, per_window.max(0) > 0)
    assert np.abs(dense[1] - per_window.max(0)).max() < 1e-5
    assert dense[2].sum() == 0
    short = encoder.encode_documents([TEXTS[0]], max_length=32, window_overlap=None).to_scipy().toarray()
    assert np.abs(dense[0] - short[0]).max() < 1e-5, "a text within max_length is one window, as before"
    truncated = encoder.encode_documents([long], max_length=32, window_overlap=None)
    assert encoder.stats.truncated == 1 and encoder.stats.windowed == 0 and truncated.nnz < got.nnz


@pytest.mark.parametrize("overlap", [-1, 17])
def test_window_overlap_out_of_range_is_refused(encoder, overlap):
    with pytest.raises(ValueError, match="window_overlap"):
        encoder.encode_documents(TEXTS[:2], max_length=32, window_overlap=overlap)


def test_queries_are_never_windowed(tmp_path):
    enc = Encoder.from_pretrained("splade-tiny", device="cpu", window_overlap=4)
    enc.encode_queries([TEXTS[1]], max_length=16)
    assert enc.stats.truncated == 1 and enc.stats.windowed == 0
    meta = enc.vector_meta(16)
    assert meta["window_overlap"] is None and meta["numerics"] and meta["head"] in ("screen", "torch")
