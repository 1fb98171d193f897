"""The search page in a real browser: Debian's chromium, headless, against a real ``lsr serve`` (two indexes, the
access log on). The page runs the search its URL names; the rendered DOM must hold the API's hits in order, each
with its stored text, the words that matched highlighted with their weights, and the query's expansion terms; the
screenshot must show the highlights (their colour, over a real share of the page). Skipped when chromium is absent
(Debian: apt-get install -y chromium)."""

from __future__ import annotations

import html
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest

from lsr.core.sample import stdlib_passages
from lsr.index import Index

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HIGHLIGHT = (0xFF, 0xD5, 0x4A)   # --hl in service/static/style.css
QUERY = "read a json file"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def server(tmp_path_factory, encoder):
    from bench.load import free_port

    root = tmp_path_factory.mktemp("page")
    docs = list(stdlib_passages(limit=80))
    for name, part in (("docs", docs[:50]), ("more", docs[50:])):
        Index.build(root / name, encoder.encode_documents([d.full_text for d in part]), [d.id for d in part],
                    texts=part, model="splade-tiny", vocab_fingerprint=encoder.vocab_fingerprint,
                    methods=["exact", "bmp"])
    port = free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "lsr", "serve", "--index", f"docs={root / 'docs'}", "--index",
                             f"more={root / 'more'}", "--port", str(port), "--access-log", "--log-level", "warning"],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    yield url, root / "server.log", root
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()


def browse(args: list[str], url: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=15000", *args, url], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_the_page_renders_hits_highlights_and_expansion_terms(server):
    url, log, root = server
    page = f"{url}/?{urlencode({'q': QUERY, 'index': 'docs', 'method': 'bmp', 'k': 5})}"
    api = httpx.post(f"{url}/indexes/docs/search", json={"query": QUERY, "k": 5, "method": "bmp", "explain": True,
                                                           "fields": ["title", "text"]}, timeout=30).json()
    assert len(api["hits"]) == 5

    dom = browse(["--dump-dom"], page, root).stdout
    listed = re.search(r'<ol id="hits">(.*?)</ol>', dom, re.S).group(1)   # not the <template>'s
    hits = re.findall(r'<li class="hit">(.*?)</li>', listed, re.S)
    assert len(hits) == 5, dom[-3000:]
    marked_any = False
    for got, want in zip(hits, api["hits"]):
        assert f'<span class="id">{html.escape(want["id"], quote=False)}</span>' in got
        assert f'score {want["score"]:.3g}' in got
        text = re.search(r'<p class="text">(.*?)</p>', got, re.S).group(1)
        plain = html.unescape(re.sub(r"<sup>.*?</sup>", "", re.sub(r"</?mark[^>]*>", "", text)))
        assert plain == want["text"]   # the stored text, whole, with highlights only added
        chips = re.findall(r'<span class="term matched"[^>]*><b>(.*?)</b><span class="w">', got)
        assert chips == [html.escape(p["term"], quote=False) for p in want["explanation"]]
        for term in re.findall(r'<mark [^>]*data-term="([^"]+)"', text):
            assert term in {p["term"] for p in want["explanation"]}
            marked_any = True
    assert marked_any, "no word of any hit was highlighted"
    expansion = re.search(r'<div id="terms" class="terms">(.*?)</div>', dom, re.S).group(1)
    shown = re.findall(r"<b>(.*?)</b><span class=\"w\">([^<]+)</span>", expansion)
    assert [t for t, _ in shown] == [html.escape(t["term"], quote=False) for t in api["query_terms"]]
    assert [float(w) for _, w in shown] == pytest.approx([t["weight"] for t in api["query_terms"]], rel=5e-3)
    assert "5 hits in" in dom

    shot = root / "page.png"
    browse(["--window-size=1200,1400", f"--screenshot={shot}"], page, root)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50, "the screenshot is blank"
    share = np.all(pixels == HIGHLIGHT, axis=1).mean()
    assert share > 0.002, f"highlight colour on {share:.4%} of the page"

    lines = [ln for ln in log.read_text().splitlines() if '" ' in ln and "HTTP/1.1" in ln]
    for request in ('"GET / HTTP/1.1" 200', '"GET /static/app.js HTTP/1.1" 200', '"GET /indexes HTTP/1.1" 200',
                    '"POST /indexes/docs/search HTTP/1.1" 200'):
        assert any(request in ln for ln in lines), (request, lines)


def test_a_refused_search_shows_the_servers_reason(server):
    url, _, root = server
    dom = browse(["--dump-dom"], f"{url}/?{urlencode({'q': QUERY, 'index': 'more', 'k': 5000})}", root).stdout
    status = re.search(r'<p id="status"[^>]*>(.*?)</p>', dom, re.S).group(1)
    assert "422" in status and "k may be at most 1000, got 5000" in html.unescape(status), status
    assert re.search(r'<ol id="hits"></ol>', dom)
