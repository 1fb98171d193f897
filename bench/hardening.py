"""The red-team checks of the hardening issue, re-run against a real ``lsr serve`` on 127.0.0.1 (and the CLI) over an
index of real documents (``lsr bench hardening``; the issue used the first 500 scifact documents, exact + bmp +
seismic). Each check reports what it measured; ``summary`` adds up server errors, dropped in-flight requests and
the resident-memory growth under the heaviest requests.

Checks: a bad text among concurrent good ones (and in /search/batch, in a document); SIGTERM under batch-search and
write load with 1 and 2 workers (a request counts as sent before the signal once the client has written all of it;
every one of those must get its answer, and every acknowledged write must be in the index afterwards); manifest
edits before `lsr search`; the most expensive request the limits allow, alone and 4 at once (response bytes, time,
RSS above the idle server); ids holding "/" through every endpoint; a damaged record in the middle of the WAL, a
damaged last record and an edited wal_seq; what answers disclose (paths, PIDs) and what --protect-reads covers;
--protect-reads with no key.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.load import REPO, Server, load_avg, rss_mb

KEY = "red-team-key"
QUERIES = ["what causes cancer", "vitamin d and bone fractures", "aspirin and heart attack risk",
           "gene expression in tumor cells", "antibiotic resistance in bacteria", "obesity and type 2 diabetes",
           "sleep deprivation and memory", "stem cell therapy for heart disease"]


def _post(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict | None = None) -> float:
    """Sends one request; returns the time its last byte was handed to the kernel."""
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    return time.monotonic()


def _statuses(url: str, bodies: list[bytes], path: str = "/search") -> list[int]:
    """The status of each body, all sent at once (one connection each)."""
    import httpx

    def one(body: bytes) -> int:
        return httpx.post(url + path, content=body, headers={"content-type": "application/json"}, timeout=60).status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


# ---- 1: a bad text among good ones --------------------------------------------------------------------------------
def bad_text(url: str, trials: int = 5) -> dict:
    import httpx

    bad = b'{"query": "x\\ud800y"}'
    good = [json.dumps({"query": QUERIES[i % len(QUERIES)] + f" {i}"}).encode() for i in range(15)]
    rounds = []
    for _ in range(trials):
        codes = _statuses(url, [bad] + good)
        rounds.append({"bad": codes[0], "good_500": sum(c >= 500 for c in codes[1:]),
                       "good_200": sum(c == 200 for c in codes[1:])})
    auth = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
    doc_text = httpx.post(f"{url}/documents", content=b'[{"id": "s1", "text": "a\\udc00b"}]', headers=auth, timeout=60)
    doc_title = httpx.post(f"{url}/documents", content=b'[{"id": "s2", "title": "\\ud83d", "text": "ok"}]', headers=auth,
                           timeout=60)
    batch = httpx.post(f"{url}/search/batch", headers={"content-type": "application/json"}, timeout=60,
                       content=b'{"queries": [{"query": "cancer"}, {"query": "x\\ud800"}, {"query": "fractures"}]}')
    controls = _statuses(url, [json.dumps({"query": "tumor\x00 cells\x1b[31m \x7f\u0085"}).encode()])
    return {"rounds": rounds, "good_500": sum(r["good_500"] for r in rounds), "bad_status": [r["bad"] for r in rounds],
            "document_text_status": doc_text.status_code, "document_title_status": doc_title.status_code,
            "batch_status": batch.status_code, "batch_items": [r.get("status") for r in batch.json().get("results", [])]
            if batch.status_code == 200 else None, "control_characters_status": controls[0]}


# ---- 2: SIGTERM under load ----------------------------------------------------------------------------------------
def _client(port: int, body: bytes, path: str, stop: threading.Event, log: list, headers: dict | None = None,
            writes: bool = False, fresh: bool = False, name: str = "") -> None:
    """Sends requests one after the other until ``stop``, on one keep-alive connection or (``fresh``) on a new
    connection each; logs (sent, status or error, id) per request. A write sends one new document each time."""
    headers = {**(headers or {}), **({"Connection": "close"} if fresh else {})}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    n = 0
    while not stop.is_set():
        doc_id = f"{name}-{n}"
        payload = json.dumps([{"id": doc_id, "text": f"sigterm probe {doc_id} about cancer"}]).encode() if writes \
            else body
        sent = None
        try:
            sent = _post(conn, path, payload, headers)
            r = conn.getresponse()
            r.read()
            log.append((sent, r.status, doc_id if writes else None))
            if fresh or r.getheader("connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        except (OSError, http.client.HTTPException) as e:
            log.append((sent, type(e).__name__, None))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            time.sleep(0.01)
        n += 1
    conn.close()


def sigterm_trial(index_dir: Path, workers: int, searchers: int = 20, writers: int = 4, load_s: float = 1.0) -> dict:
    """One server, ``searchers`` clients sending 16-query batches (half of them on a new connection per request)
    and ``writers`` sending one document per request; SIGTERM once every client has had two answers, plus
    ``load_s``. Every request sent before the signal must be answered, and every acknowledged write kept."""
    from lsr.index import Index

    folder = Path(tempfile.mkdtemp(prefix="lsr-sigterm-")) / "index"
    shutil.copytree(index_dir, folder)
    server = Server(folder, workers, {"LSR_API_KEYS": KEY}, ("--graceful-timeout", "60"))
    port = server.port
    batch = json.dumps({"queries": [{"query": QUERIES[i % len(QUERIES)], "k": 10} for i in range(16)]}).encode()
    stop, logs, threads = threading.Event(), [], []
    for i in range(searchers + writers):
        log: list = []
        logs.append(log)
        w = i >= searchers
        threads.append(threading.Thread(target=_client, args=(port, batch, "/documents" if w else "/search/batch",
                                                              stop, log, {"Authorization": f"Bearer {KEY}"} if w
                                                              else None, w, i % 2 == 1, f"w{i}"), daemon=True))
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while min(len(log) for log in logs) < 2 and time.monotonic() < deadline:   # warmed up: every client answered
        time.sleep(0.05)
    time.sleep(load_s)
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=120)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    entries = [e for log in logs for e in log]
    before = [e for e in entries if e[0] is not None and e[0] < signalled]
    dropped = [e for e in before if not isinstance(e[1], int)]
    acked = [e[2] for e in entries if e[2] is not None and e[1] == 200]
    idx = Index.open(folder)
    lost = [d for d in acked if _missing(idx, d)]
    shutil.rmtree(folder.parent, ignore_errors=True)
    statuses: dict[str, int] = {}
    for e in entries:
        if e[0] is not None:
            statuses[str(e[1])] = statuses.get(str(e[1]), 0) + 1
    return {"workers": workers, "requests": sum(e[0] is not None for e in entries), "sent_before_signal": len(before),
            "dropped_before_signal": len(dropped), "errors": sorted({str(e[1]) for e in dropped}),
            "statuses": statuses, "server_errors": sum(isinstance(e[1], int) and e[1] >= 500 for e in entries),
            "writes_acknowledged": len(acked), "acknowledged_lost": len(lost), "exit_code": code}


def _missing(idx, doc_id: str) -> bool:
    try:
        idx.document(doc_id)
        return False
    except KeyError:
        return True


# ---- 3: manifest edits --------------------------------------------------------------------------------------------
def manifest_edits(index_dir: Path) -> dict:
    out = {}
    for field, value in (("num_docs", 400), ("num_docs", 600), ("nnz", 10)):
        folder = Path(tempfile.mkdtemp(prefix="lsr-manifest-")) / "index"
        shutil.copytree(index_dir, folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["segments"][0][field] = value
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
        runs = []
        for method in ("exact", "bmp", "seismic"):
            for q in QUERIES[:3]:
                r = subprocess.run([sys.executable, "-m", "lsr", "search", "--index", str(folder), q, "--method", method],
                                   capture_output=True, text=True, cwd=REPO, timeout=300)
                last = (r.stderr.strip().splitlines() or [""])[-1].replace(str(folder), "INDEX")
                runs.append({"code": r.returncode, "stderr": last[:200]})
        out[f"{field}={value}"] = {"runs": len(runs), "exit_codes": sorted({r["code"] for r in runs}),
                                   "crashes": sum(r["code"] < 0 or r["code"] == 134 or r["code"] == 139 for r in runs),
                                   "tracebacks": sum("Error" in r["stderr"] and not r["stderr"].startswith("error:")
                                                     for r in runs),
                                   "stderr": runs[0]["stderr"]}
        shutil.rmtree(folder.parent, ignore_errors=True)
    return out


# ---- 4: amplification --------------------------------------------------------------------------------------------
def _rss_while(pid: int, fn) -> tuple[object, float]:
    """Runs fn() while sampling the server's resident memory; returns (fn's result, peak MiB)."""
    peak, done = [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], sum(rss_mb(pid).values()))
            time.sleep(0.01)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        return fn(), peak[0]
    finally:
        done.set()
        t.join()


def amplification(url: str, pid: int, limits: dict) -> dict:
    """The issue's request (64 queries, k 1000, explain, title + text), then the heaviest requests the limits allow,
    alone and 4 at once; RSS peak above the idle server's."""
    import httpx

    def request(body: dict):
        start = time.perf_counter()
        with httpx.stream("POST", f"{url}/search/batch", json=body, timeout=300) as r:
            size = sum(len(chunk) for chunk in r.iter_bytes())
            return {"status": r.status_code, "bytes": size, "seconds": round(time.perf_counter() - start, 2)}

    def queries(n: int, **options) -> dict:
        return {"queries": [{"query": f"{QUERIES[i % len(QUERIES)]} {i}", **options} for i in range(n)]}

    request(queries(4, k=10))   # warm-up
    idle = sum(rss_mb(pid).values())
    heavy = {"issue": queries(64, k=1000, explain=True, fields=["title", "text"])}
    per_query = limits.get("max_k", 1000)
    heavy["hits"] = queries(limits.get("max_batch", 64), k=per_query)
    heavy["fields"] = queries(max(1, limits.get("max_field_hits", 64 * 1000) // per_query), k=per_query,
                              fields=["title", "text"])
    heavy["explain"] = queries(max(1, limits.get("max_explain_hits", 64 * 1000) // per_query), k=per_query,
                               explain=True)
    out = {"idle_rss_mb": round(idle, 1)}
    for name, body in heavy.items():
        one, peak1 = _rss_while(pid, lambda body=body: request(body))
        with ThreadPoolExecutor(4) as pool:
            four, peak4 = _rss_while(pid, lambda body=body: list(pool.map(request, [body] * 4)))
        out[name] = {"request_bytes": len(json.dumps(body)), **one, "rss_above_idle_mb": round(peak1 - idle, 1),
                     "four_at_once": [f["status"] for f in four], "four_rss_above_idle_mb": round(peak4 - idle, 1)}
    return out


# ---- 5: ids with "/" -----------------------------------------------------------------------------------------------
def slash_ids(url: str) -> dict:
    import urllib.parse

    import httpx

    auth = {"Authorization": f"Bearer {KEY}"}
    out = {}
    for doc_id in ("a/b", "10.1000/xyz/2", "a%2Fb", "x?y#z", "sp ace"):
        r = httpx.post(f"{url}/documents", json=[{"id": doc_id, "text": f"slash probe {doc_id} lighthouse keeper"}],
                       headers=auth, timeout=60)
        quoted = urllib.parse.quote(doc_id, safe="")
        got = httpx.get(f"{url}/documents/{quoted}", timeout=30)
        raw = httpx.get(f"{url}/documents/{urllib.parse.quote(doc_id, safe='/')}", timeout=30)
        hit = httpx.post(f"{url}/search", json={"query": f"slash probe {doc_id} lighthouse keeper", "k": 1},
                         timeout=30).json()["hits"]
        deleted = httpx.delete(f"{url}/documents/{quoted}", headers=auth, timeout=60)
        after = httpx.get(f"{url}/documents/{quoted}", timeout=30)
        out[doc_id] = {"post": r.status_code, "get_encoded": got.status_code, "get_slashes": raw.status_code,
                       "same_document": got.status_code == 200 and got.json()["id"] == doc_id,
                       "search_finds": bool(hit) and hit[0]["id"] == doc_id, "delete": deleted.status_code,
                       "get_after_delete": after.status_code}
    return out


# ---- 6 and 8: write-ahead-log damage ------------------------------------------------------------------------------
def _with_log(index_dir: Path, records: int = 3) -> tuple[Path, list[str]]:
    """A copy of the index with ``records`` acknowledged writes (3 documents each) in its log, not yet committed."""
    from lsr.core.sparse import SparseBatch
    from lsr.index import Index

    folder = Path(tempfile.mkdtemp(prefix="lsr-wal-")) / "index"
    shutil.copytree(index_dir, folder)
    idx = Index.open(folder, writable=True, verify=False)
    base = Index.open(index_dir)
    ids = []
    for r in range(records):
        rows = [r * 3 + i for i in range(3)]
        new = [f"wal-{r}-{i}" for i in range(3)]
        idx.add(new, SparseBatch.from_rows([base.vector(n) for n in rows], base.vocab_size))
        ids += new
    idx.close(commit=False)
    return folder, ids


def _record_offsets(log: Path) -> list[int]:
    import struct

    data, at, out = log.read_bytes(), 0, []
    while at + 12 <= len(data):
        out.append(at)
        at += 12 + struct.unpack_from("<I", data, at + 4)[0]
    return out


def wal_damage(index_dir: Path) -> dict:
    import httpx

    from lsr.index import Index, IndexCorrupt
    from lsr.index.wal import log_files

    out = {}
    # 6: a damaged record in the middle, then the service
    folder, ids = _with_log(index_dir)
    (log,) = log_files(folder)
    offsets = _record_offsets(log)
    data = bytearray(log.read_bytes())
    data[offsets[1] + 40] ^= 0xFF
    log.write_bytes(bytes(data))
    try:
        server = Server(folder, 1, {"LSR_API_KEYS": KEY})
    except RuntimeError as e:
        cli = subprocess.run([sys.executable, "-m", "lsr", "serve", "--index", str(folder), "--port", "1"],
                             capture_output=True, text=True, cwd=REPO, env={**os.environ, "LSR_API_KEYS": KEY},
                             timeout=300)
        out["middle"] = {"serve": str(e), "exit_code": cli.returncode,
                         "stderr": cli.stderr.strip().replace(str(folder), "INDEX")[-300:]}
    else:
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        write = httpx.post(f"{server.url}/documents", json=[{"id": "after", "text": "x"}],
                           headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
        out["middle"] = {"readyz": ready.status_code, "readyz_body": ready.text[:300], "write": write.status_code,
                         "write_body": write.text[:300]}
        server.stop()
    shutil.rmtree(folder.parent, ignore_errors=True)
    # 8: a flipped byte in the last record
    folder, ids = _with_log(index_dir)
    (log,) = log_files(folder)
    data = bytearray(log.read_bytes())
    data[_record_offsets(log)[-1] + 40] ^= 0xFF
    log.write_bytes(bytes(data))
    try:
        idx = Index.open(folder, writable=True)
        out["last_flipped"] = {"opened": True, "lost": sum(_missing(idx, d) for d in ids)}
        idx.close()
    except IndexCorrupt as e:
        out["last_flipped"] = {"opened": False, "error": str(e).replace(str(folder), "INDEX")[:300]}
    shutil.rmtree(folder.parent, ignore_errors=True)
    # 8: wal_seq edited (in the JSON; and rewritten with a valid checksum, as a crafted manifest would be)
    for seq, signed in ((2, False), (9, False), (2, True), (9, True)):
        folder, ids = _with_log(index_dir)
        path = folder / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["wal_seq"] = seq
        path.write_text(json.dumps(manifest, indent=1))
        if signed:
            _signed(folder, manifest)
        name = f"wal_seq={seq}{' signed' if signed else ''}"
        try:
            idx = Index.open(folder, writable=True)
            out[name] = {"opened": True, "lost": sum(_missing(idx, d) for d in ids)}
            idx.close()
        except IndexCorrupt as e:
            out[name] = {"opened": False, "error": str(e).replace(str(folder), "INDEX")[:300]}
        shutil.rmtree(folder.parent, ignore_errors=True)
    return out


def _signed(folder: Path, raw: dict) -> None:
    """Writes ``raw`` as the manifest with its checksum recomputed (what a crafted manifest would carry)."""
    from lsr.index.manifest import Manifest, SegmentInfo

    fields = {k: v for k, v in raw.items() if k != "checksum"}
    segments = [SegmentInfo(**s) for s in fields.pop("segments")]
    Manifest(**fields, segments=segments).write(folder)


# ---- 9 and 10: disclosure, --protect-reads ------------------------------------------------------------------------
def disclosure(index_dir: Path) -> dict:
    import httpx

    from lsr.index import Index

    folder = Path(tempfile.mkdtemp(prefix="lsr-disclose-")) / "index"
    shutil.copytree(index_dir, folder)
    out = {}
    server = Server(folder, 1, {"LSR_API_KEYS": KEY, "LSR_WRITE_LOCK_TIMEOUT": "0.5"})
    try:
        holder = Index.open(folder, writable=True, verify=False)   # another writer keeps the lock
        busy = httpx.post(f"{server.url}/documents", json=[{"id": "busy", "text": "x"}],
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
        holder.close()
        stats = httpx.get(f"{server.url}/stats", timeout=10)
        pids = {str(p) for p in rss_mb(server.proc.pid)} | {str(os.getpid())}
        answers = busy.text + stats.text
        out["busy_writer"] = {"status": busy.status_code, "body": busy.text[:300]}
        out["leaks"] = {"path": str(folder.parent) in answers or str(folder) in answers,
                        "pid": any('"pid"' in answers or f"pid {p}" in answers for p in pids)}
    finally:
        server.stop()
    server = Server(folder, 1, {"LSR_API_KEYS": KEY}, ("--protect-reads",))
    try:
        out["protect_reads_without_key"] = {p: (r.status_code, r.text[:80]) for p in ("/docs", "/openapi.json",
                                                                                       "/readyz", "/search")
                                            for r in [httpx.get(server.url + p, timeout=10)]}
    finally:
        server.stop()
    env = {k: v for k, v in os.environ.items() if k not in ("LSR_API_KEYS", "LSR_API_KEYS_FILE")}
    r = subprocess.run([sys.executable, "-m", "lsr", "serve", "--index", str(folder), "--protect-reads", "--port", "1"],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    out["protect_reads_no_keys"] = {"exit_code": r.returncode, "traceback": "Traceback" in r.stderr,
                                    "stderr": r.stderr.strip().splitlines()[-1][:200] if r.stderr.strip() else ""}
    shutil.rmtree(folder.parent, ignore_errors=True)
    return out


def run(index_dir: Path, output: Path, *, sigterm_trials: int = 10, checks: tuple[str, ...] | None = None) -> dict:
    from lsr.service.settings import Settings

    chosen = set(checks or ("bad_text", "sigterm", "manifest", "amplification", "ids", "wal", "disclosure"))
    limits = {k: v for k, v in Settings().model_dump().items() if k.startswith("max_")}
    report: dict = {"index": index_dir.name, "cores": os.cpu_count(), "load_avg_start": round(load_avg(), 2),
                    "limits": limits}
    if chosen & {"bad_text", "amplification", "ids"}:
        folder = Path(tempfile.mkdtemp(prefix="lsr-redteam-")) / "index"
        shutil.copytree(index_dir, folder)
        server = Server(folder, 1, {"LSR_API_KEYS": KEY})
        try:
            if "bad_text" in chosen:
                report["bad_text"] = bad_text(server.url)
                print("bad_text", json.dumps(report["bad_text"]), flush=True)
            if "ids" in chosen:
                report["ids"] = slash_ids(server.url)
                print("ids", json.dumps(report["ids"]), flush=True)
            if "amplification" in chosen:
                report["amplification"] = amplification(server.url, server.proc.pid, limits)
                print("amplification", json.dumps(report["amplification"]), flush=True)
        finally:
            server.stop()
            shutil.rmtree(folder.parent, ignore_errors=True)
    if "sigterm" in chosen:
        report["sigterm"] = []
        for workers in (1, 2):
            for _ in range(sigterm_trials):
                trial = sigterm_trial(index_dir, workers)
                report["sigterm"].append(trial)
                print("sigterm", json.dumps(trial), flush=True)
    if "manifest" in chosen:
        report["manifest"] = manifest_edits(index_dir)
        print("manifest", json.dumps(report["manifest"]), flush=True)
    if "wal" in chosen:
        report["wal"] = wal_damage(index_dir)
        print("wal", json.dumps(report["wal"]), flush=True)
    if "disclosure" in chosen:
        report["disclosure"] = disclosure(index_dir)
        print("disclosure", json.dumps(report["disclosure"]), flush=True)
    report["load_avg_end"] = round(load_avg(), 2)
    trials = report.get("sigterm", [])
    report["summary"] = {
        "sigterm_trials": {w: sum(t["workers"] == w for t in trials) for w in (1, 2)},
        "sent_before_signal": sum(t["sent_before_signal"] for t in trials),
        "dropped_in_flight": sum(t["dropped_before_signal"] for t in trials),
        "sigterm_answers_500": sum(t.get("statuses", {}).get("500", 0) for t in trials),
        "sigterm_answers_503_writer_busy": sum(t.get("statuses", {}).get("503", 0) for t in trials),
        "acknowledged_lost": sum(t["acknowledged_lost"] for t in trials),
        "sigterm_server_errors": sum(t["server_errors"] for t in trials),
        "bad_text_good_500": report.get("bad_text", {}).get("good_500"),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["summary"], indent=1))
    return report
