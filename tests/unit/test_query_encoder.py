"""The numpy query encoder against the torch Encoder's float32 path, on the embedded model and on small random
checkpoints of each covered architecture; the fallback to torch where it does not cover a model."""

import json
import math
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from lsr.encoding import screen
from lsr.encoding.encoder import Encoder
from lsr.encoding.loader import load_query_encoder
from lsr.encoding.models import resolve_model
from lsr.encoding.query import Network, QueryEncoder, Unsupported
from lsr.encoding.texts import QUERY_MAX_LENGTH

LONG = "The mitochondria is the powerhouse of the cell. " * 40        # 402 tokens: longer than any max_length here
TEXTS = [
    "",
    "a",                                                                 # one token between [CLS] and [SEP]
    "what causes type 2 diabetes?",
    LONG,
    "   ",
    "Ünïcödé text, 中文字符 and emojis 🙂 mixed with numbers 3.14159 and 2,718",
    "BRCA1 mutations increase the risk of breast and ovarian cancer in carriers.",
    " ".join(["an argument that runs on for a while, as ArguAna's queries do"] * 6),   # ~80 tokens
    "Autophagy declines in aged organisms.",   # a GELU input past 20: the vectorized erf once gave NaN there
]


@pytest.fixture(scope="module")
def numpy_encoder():
    return QueryEncoder.from_pretrained("splade-tiny")


def assert_same_vectors(got, want: np.ndarray, strict: bool = True) -> None:
    """Same non-zero terms and weights within 1e-5. Not strict (random weights): a weight under 1e-5 may round to
    either side of zero."""
    dense = got.validate().to_scipy().toarray()
    assert dense.shape == want.shape
    assert np.abs(dense - want).max() <= 1e-5
    if strict:
        assert np.array_equal(dense > 0, want > 0)
    else:
        big = np.abs(want) > 1e-5
        assert np.array_equal(dense[big] > 0, want[big] > 0)


@pytest.mark.parametrize("max_length,batch_size", [(QUERY_MAX_LENGTH, 32), (QUERY_MAX_LENGTH, 1), (16, 3)])
def test_vectors_equal_the_torch_encoder(encoder, numpy_encoder, max_length, batch_size):
    want = encoder.encode(TEXTS, max_length=max_length, batch_size=batch_size).to_scipy().toarray()
    torch_stats = encoder.stats
    assert_same_vectors(numpy_encoder.encode_queries(TEXTS, max_length=max_length, batch_size=batch_size), want)
    assert numpy_encoder.stats == torch_stats
    assert np.count_nonzero(want.sum(1) == 0) == 2   # the blank texts, and only they


@pytest.mark.skipif(not screen.available(), reason="the screened head needs AVX2")
def test_a_vector_does_not_depend_on_what_was_encoded_before(encoder, monkeypatch):
    """The screened head (where AVX2 is) and the float32 head agree within 1e-5, and a text's vector is the same
    bit for bit whatever the encoder encoded before it, whatever the process's BLAS threads (the Ray front and a
    local encoder must agree) and whichever thread encodes it (a service worker encodes on pool threads)."""
    fast = QueryEncoder.from_pretrained("splade-tiny")
    first = fast.encode_queries(TEXTS).to_scipy().toarray()
    fast.encode_queries([t for t in TEXTS * 40][:300])
    assert np.array_equal(fast.encode_queries(TEXTS).to_scipy().toarray(), first)
    assert_same_vectors(QueryEncoder.from_pretrained("splade-tiny").encode_queries(TEXTS), first)
    with threadpool_limits(1, user_api="blas"):   # a process with one BLAS thread (a Ray replica) gets the same
        assert np.array_equal(fast.encode_queries(TEXTS).to_scipy().toarray(), first)
    with ThreadPoolExecutor(2) as pool:
        for vectors in pool.map(lambda _: fast.encode_queries(TEXTS).to_scipy().toarray(), range(4)):
            assert np.array_equal(vectors, first)
    monkeypatch.setenv(screen.ISA_ENV, "generic")
    assert_same_vectors(fast.encode_queries(TEXTS), first)


def test_one_blas_thread_also_limits_the_blas_the_forward_loads_later():
    """Numba's np.dot calls scipy's OpenBLAS, a second library loaded only when the forward first runs. A process
    whose first one_blas_thread block came before that (as when the screen ran first) must still get the same
    vector bit for bit at 1 BLAS thread and at the machine's count."""
    code = ("import numpy as np\n"
            "from threadpoolctl import threadpool_limits\n"
            "from lsr.encoding import screen\n"
            "with screen.one_blas_thread():\n"
            "    pass\n"
            "from lsr.encoding.query import QueryEncoder\n"
            "enc = QueryEncoder.from_pretrained('splade-tiny')\n"
            f"texts = {TEXTS!r}\n"
            "with threadpool_limits(4, user_api='blas'):\n"
            "    many = enc.encode_queries(texts).to_scipy().toarray()\n"
            "with threadpool_limits(1, user_api='blas'):\n"
            "    one = enc.encode_queries(texts).to_scipy().toarray()\n"
            "assert np.array_equal(many, one), np.abs(many - one).max()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]


def test_gelu_equals_torch_at_any_magnitude():
    """The vectorized erf must give GELU(v) for large |v| too, where its rational function overflows float32."""
    from lsr.encoding import forward

    x = np.array([[0.0, 0.5, 3.0, 5.6, 14.0, 20.0, 30.0, 100.0, 1e4, 3e38] * 4], dtype=np.float32)
    x = np.concatenate([x, -x])
    got = x.copy()
    forward._gelu_erf(got)
    want = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    assert np.all(np.isfinite(got)) and np.allclose(got, want, rtol=1e-6, atol=1e-6)


def test_sum_pooling_equals_torch():
    """Sum pooling (the chunked float32 head, texts end to end) against the torch Encoder's: the same non-zeros,
    each weight a sum over up to 32 tokens, each within 1e-6 of torch's."""
    texts = [t for t in TEXTS if t != LONG]
    want = Encoder.from_pretrained("splade-tiny", device="cpu", pooling="sum").encode(texts, max_length=32)
    got = QueryEncoder.from_pretrained("splade-tiny", pooling="sum").encode_queries(texts, max_length=32, batch_size=3)
    got, want = got.validate().to_scipy().toarray(), want.to_scipy().toarray()
    assert np.array_equal(got > 0, want > 0)
    np.testing.assert_allclose(got, want, rtol=0, atol=32e-6)


def test_documents_equal_the_torch_encoders(encoder, numpy_encoder):
    """The service writes documents through the numpy encoder: they must stay the vectors `lsr index` makes."""
    want = encoder.encode_documents(TEXTS).to_scipy().toarray()
    assert_same_vectors(numpy_encoder.encode_documents(TEXTS), want)
    assert numpy_encoder.stats.max_length == encoder.max_length and numpy_encoder.stats.truncated == 1


def test_long_queries_are_counted_not_silently_cut(encoder, numpy_encoder):
    tokens = len(encoder.tokenizer(LONG)["input_ids"])
    numpy_encoder.encode_queries(TEXTS)
    assert numpy_encoder.stats.truncated == 1 and numpy_encoder.stats.max_length == QUERY_MAX_LENGTH
    numpy_encoder.encode_queries(TEXTS, max_length=64)
    assert numpy_encoder.stats.truncated == 2   # the 64-token default of before cut the ~80-token argument too
    numpy_encoder.encode_queries([LONG], max_length=tokens)
    assert numpy_encoder.stats.truncated == 0


def test_the_encoder_routes_cpu_queries_through_numpy(encoder):
    fast = encoder.query_encoder()
    assert isinstance(fast, QueryEncoder)
    assert np.shares_memory(fast.network.words, encoder.model.get_input_embeddings().weight.detach().numpy())
    want = encoder.encode(TEXTS, max_length=encoder.query_max_length).to_scipy().toarray()
    assert_same_vectors(encoder.encode_queries(TEXTS), want)
    assert encoder.stats.truncated == 1 and encoder.stats.texts == len(TEXTS)


def test_pruning_options_as_the_torch_encoder(encoder, numpy_encoder):
    want = encoder.encode(TEXTS, max_length=64, top_k=5, min_weight=0.3)
    got = numpy_encoder.encode_queries(TEXTS, max_length=64, top_k=5, min_weight=0.3)
    assert np.array_equal(got.indptr, want.indptr) and np.array_equal(got.indices, want.indices)
    assert np.abs(got.values - want.values).max() <= 1e-5 and np.diff(got.indptr).max() == 5
    done = []
    numpy_encoder.encode_queries(TEXTS, batch_size=3, progress=done.append)
    assert sum(done) == len(TEXTS)


@pytest.mark.parametrize("bad", [None, "a string, not a list", [None], ["ok", 3], [b"bytes"]])
def test_non_string_input_is_a_type_error(numpy_encoder, bad):
    with pytest.raises(TypeError):
        numpy_encoder.encode_queries(bad)


@pytest.mark.parametrize("options", [{"max_length": 1}, {"max_length": 513}, {"top_k": 0}])
def test_bad_options_are_value_errors(numpy_encoder, options):
    with pytest.raises(ValueError):
        numpy_encoder.encode_queries(["a query"], **options)


def test_empty_input(numpy_encoder):
    assert len(numpy_encoder.encode_queries([])) == 0 and numpy_encoder.stats.texts == 0


def test_a_text_attends_to_its_own_tokens_only(numpy_encoder):
    """Texts of a batch lie end to end with no padding: each text's vector is the one it gets alone (to float32
    rounding: BLAS sums a product's rows in another order for another number of rows)."""
    together = numpy_encoder.encode_queries(TEXTS, batch_size=len(TEXTS)).to_scipy().toarray()
    alone = np.concatenate([numpy_encoder.encode_queries([t]).to_scipy().toarray() for t in TEXTS])
    assert np.array_equal(together > 0, alone > 0) and np.abs(together - alone).max() <= 1e-5


# ---- other checkpoints of the covered architectures, and the fallback ----------------------------------------------
def _checkpoint(folder, config) -> str:
    """A small random masked-LM with the embedded model's tokenizer, saved as Hugging Face does (safetensors)."""
    from transformers import AutoModelForMaskedLM

    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_config(config).eval()
    with torch.no_grad():   # sparse, like a trained SPLADE head: most logits well below zero
        model.get_output_embeddings().bias.fill_(-1.0)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"{resolve_model('splade-tiny')}/{name}", folder / name)
    return str(folder)


def _bert(**kw):
    from transformers import BertConfig

    return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=128, initializer_range=0.1, **kw)


def _distilbert():
    from transformers import DistilBertConfig

    return DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                            max_position_embeddings=128, initializer_range=0.1)


@pytest.mark.parametrize("config", [_bert, lambda: _bert(hidden_act="gelu_new"),
                                    lambda: _bert(hidden_act="relu", tie_word_embeddings=False), _distilbert],
                         ids=["bert", "bert-gelu_new", "bert-relu-untied", "distilbert"])
def test_covered_architectures_equal_torch(tmp_path, config):
    path = _checkpoint(tmp_path, config())
    reference = Encoder.from_pretrained(path, device="cpu")
    fast = load_query_encoder(path)
    assert isinstance(fast, QueryEncoder) and fast.vocab_fingerprint == reference.vocab_fingerprint
    texts = [t for t in TEXTS if t != LONG] + [LONG[:400]]
    for max_length in (64, 8):
        want = reference.encode(texts, max_length=max_length, batch_size=3).to_scipy().toarray()
        assert_same_vectors(fast.encode_queries(texts, max_length=max_length, batch_size=3), want, strict=False)
        assert (want > 0).sum() > 10 * len(texts)


def test_uncovered_architectures_fall_back_to_torch(tmp_path, capfd):
    path = _checkpoint(tmp_path, _bert(hidden_act="silu"))
    with pytest.raises(Unsupported, match="activation 'silu'"):
        QueryEncoder.from_pretrained(path)
    capfd.readouterr()
    fallback = load_query_encoder(path)
    assert "Loading weights" not in capfd.readouterr().err
    assert isinstance(fallback, Encoder) and fallback.query_encoder() is None
    assert len(fallback.encode_queries(["still encoded, by torch"]).indices) > 0
    with pytest.raises(Unsupported, match="model_type 'roberta'"):
        Network.from_tensors({"model_type": "roberta"}, {})


def test_missing_files_are_unsupported(tmp_path):
    source = resolve_model("splade-tiny")
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(f"{source}/{name}", tmp_path / name)
    with pytest.raises(Unsupported, match="model.safetensors"):
        QueryEncoder.from_pretrained(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    with pytest.raises(Unsupported, match="no tensor"):
        Network.from_tensors(config, {})
