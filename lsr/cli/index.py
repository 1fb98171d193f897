"""`lsr index`: build an index from a corpus (encoding it, in one process or on Ray) or from vectors; append to
one; compact one."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lsr.cli.common import echo_json, fail, load_encoder, parse_params, progress_bar, reported, stages
from lsr.core.chunks import CHUNK_DOCS

app = typer.Typer()


@app.command()
def index(
    corpus: Optional[str] = typer.Argument(None, help="a corpus `lsr encode` reads, or an `lsr encode` vectors file "
                                                      "(.npz); with --append also a .ndjson of documents as POST "
                                                      "/documents takes them (text or pre-encoded vector)"),
    output: Path = typer.Option(..., "--output", "-o", help="index folder to create (or to update)"),
    model: Optional[str] = typer.Option(None, help="encoder for a corpus (default splade-tiny; with --append, the "
                                                   "index's); a vectors file records its own"),
    method: list[str] = typer.Option(["exact", "bmp"], "--method", help="search methods to build (repeat): exact, "
                                                                       "bmp, seismic"),
    param: list[str] = typer.Option([], "--param", help="method build parameter KEY=VALUE, e.g. block_size=32 "
                                                        "(bmp), n_postings=4000, pruning=fixed (or global), "
                                                        "max_fraction=1.5, centroid_fraction=0.2, "
                                                        "summary_energy=0.4 (seismic)"),
    quantization: str = typer.Option("uint8", help="uint8 (per-index scale), float16 or float32"),
    reorder: bool = typer.Option(True, help="reorder documents by recursive graph bisection"),
    texts: Optional[str] = typer.Option(None, help="corpus whose texts to store with a vectors file (matched by id)"),
    overwrite: bool = typer.Option(False, help="replace an index already at --output"),
    append: bool = typer.Option(False, "--append", help="add the documents to the index at --output without "
                                                        "rebuilding it (documents whose ids it has are replaced)"),
    compact: bool = typer.Option(False, "--compact", help="merge the index's segments into one, without its deleted "
                                                          "documents (alone, or after --append)"),
    repair: bool = typer.Option(False, "--repair", help="recover an index whose write-ahead log is damaged: keep the "
                                                        "records before the damage, move the rest aside "
                                                        "(wal/damaged-*/), replay and commit; also upgrades a "
                                                        "version 1 manifest (checked first)"),
    max_length: int = typer.Option(256, min=8),
    batch_size: int = typer.Option(32, min=1),
    device: str = typer.Option("auto"),
    chunk_docs: int = typer.Option(CHUNK_DOCS, min=1, help="documents per encoding chunk (the same chunks give the "
                                                           "same vectors, on Ray or not)"),
    shards: Optional[int] = typer.Option(None, min=1, help="build N shards to serve side by side (lsr serve-shards)"),
    ray: bool = typer.Option(False, "--ray", help="encode on a Ray cluster (Ray Data actors); resumable"),
    ray_address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", help="cluster to join (HOST:PORT, "
                                              "ray://HOST:PORT, auto); default: start a local one"),
    actors: int = typer.Option(1, min=1, help="encoder actors on Ray (one GPU each, or a share of the CPUs)"),
    keep_chunks: bool = typer.Option(False, help="keep the encoded chunks (OUTPUT.chunks/) after a Ray build"),
) -> None:
    """Build a searchable index from a corpus (encoding it) or from precomputed vectors; or update one."""
    from lsr.index import Index
    from lsr.index.methods import build_configs

    encode = {"max_length": max_length, "batch_size": batch_size, "device": device, "chunk_docs": chunk_docs}
    if repair:
        if corpus or append or compact or overwrite or param or ray or shards:
            fail("--repair takes only --output (the index to recover)")
        repair_index(output)
        return
    if append or compact:
        if overwrite or param or ray or shards:
            fail("--overwrite, --param, --ray and --shards build a new index; they do not go with --append or --compact")
        if append and not corpus:
            fail("--append needs a CORPUS (or vectors file) to add")
        if corpus and not append:
            fail("--compact alone takes no CORPUS; add --append to add one first")
        update_index(output, corpus, model, texts, compact, encode)
        return
    if not corpus:
        fail("missing argument CORPUS (a corpus or an `lsr encode` vectors file)")
    params = parse_params(param)
    build = {"quantization": quantization, "reorder": reorder, "methods": method, "params": params}
    # everything that can be refused is refused before minutes of encoding; --param names only method parameters
    with reported(ValueError, FileExistsError):
        configs = build_configs(method, params)
        Index.check_build(None if shards else output, quantization=quantization, methods=method, overwrite=overwrite,
                          params=configs)
    if ray:
        if corpus.endswith(".npz"):
            fail("--ray encodes a corpus; a vectors file needs no encoding (drop --ray)")
        return index_on_ray(corpus, output, ray_address, model=model or "splade-tiny", shards=shards, actors=actors,
                            keep_chunks=keep_chunks, overwrite=overwrite, build=build, **encode)
    vectors, ids, docs, model_name, fingerprint = read_documents(corpus, model, texts, **encode)
    typer.echo(f"indexing {len(ids)} documents ({', '.join(method)})", err=True)
    if shards:
        from lsr.cluster.indexer import BuildSettings, shard_vectors

        with reported(ValueError, FileExistsError):
            layout = shard_vectors(output, vectors, ids, shards, texts=docs, model=model_name,
                                   vocab_fingerprint=fingerprint, build=BuildSettings(**build), overwrite=overwrite)
        echo_json({"output": str(output), "documents": layout.num_docs, "shards": len(layout.shards)})
        return
    with reported(ValueError, FileExistsError), stages(f"building {output}") as progress:
        idx = Index.build(output, vectors, ids, texts=docs, model=model_name, vocab_fingerprint=fingerprint,
                          quantization=quantization, reorder=reorder, methods=method, overwrite=overwrite,
                          progress=progress, params=configs)
    echo_json({"output": str(output), "documents": idx.num_docs, "methods": idx.methods, "bytes": idx.nbytes()})


def read_documents(corpus: str, model: Optional[str], texts: Optional[str], *, device: str, max_length: int,
                   batch_size: int, chunk_docs: int = CHUNK_DOCS):
    """(vectors, ids, documents or None, model name, vocabulary fingerprint) of a corpus (encoded with ``model``)
    or of an `lsr encode` vectors file (with ``texts`` matched by id)."""
    from lsr.cli.encode import encode_with_progress
    from lsr.core.errors import CorpusError

    if corpus.endswith(".npz"):
        from lsr.core.corpus import documents_by_id
        from lsr.core.vectors import load_vectors

        with reported(ValueError, OSError):
            vf = load_vectors(corpus)
        if model and vf.meta.get("model") and model != vf.meta["model"]:
            fail(f"{corpus} was encoded with {vf.meta['model']!r}, not {model!r}")
        ids = [str(i) for i in vf.ids]
        with reported(CorpusError, OSError):
            docs = documents_by_id(texts, ids) if texts else None
        return vf.vectors, ids, docs, vf.meta.get("model", model), vf.meta.get("vocab_fingerprint")
    encoder = load_encoder(model or "splade-tiny", device)
    out = encode_with_progress(corpus, encoder, max_length=max_length, batch_size=batch_size, chunk=chunk_docs)
    return out.vectors, out.ids, out.documents, encoder.name, encoder.vocab_fingerprint


def update_index(output: Path, corpus: Optional[str], model: Optional[str], texts: Optional[str], compact: bool,
                 encode: dict) -> None:
    """lsr index --append / --compact: through the index's writer (its lock, write-ahead log and merges)."""
    import numpy as np

    from lsr.index import Index, IndexCorrupt, IndexLocked, VocabularyMismatch

    with reported(IndexCorrupt, IndexLocked, ValueError):
        idx = Index.open(output, writable=True, background_merges=False, refresh_interval=None)
    added = 0
    try:
        if corpus and corpus.endswith(".ndjson"):
            with reported(ValueError, OSError):
                added = append_documents(idx, Path(corpus), model)
        elif corpus:
            if model and idx.model and model != idx.model:
                fail(f"{output} was built with {idx.model!r}; documents to add must be encoded with it, not {model!r}")
            vectors, ids, docs, _, fingerprint = read_documents(corpus, model or idx.model, texts, **encode)
            with reported(ValueError, VocabularyMismatch):
                idx.check_vocabulary(fingerprint)
                step = 10_000
                with progress_bar(f"adding to {output}", len(ids)) as advance:
                    for lo in range(0, len(ids), step):
                        rows = np.arange(lo, min(lo + step, len(ids)))
                        idx.upsert(ids[lo:lo + step], vectors.take(rows), docs[lo:lo + step] if docs else None)
                        advance(len(rows))
            added = len(ids)
        idx.flush()
        if compact:
            typer.echo(f"merging {len(idx.segments)} segments", err=True)
            idx.compact()
    finally:
        idx.close()
    echo_json({"output": str(output), "documents": idx.num_docs, "added": added, "segments": len(idx.segments),
               "generation": idx.generation, "bytes": idx.nbytes()})


def append_documents(idx, path: Path, model: Optional[str]) -> int:
    """lsr index --append FILE.ndjson: the documents POST /documents takes, read and checked by the same code
    (lsr.service.ingest: a bad line names itself and nothing is written), texts encoded by the index's model, then
    one upsert; returns the documents written."""
    from lsr.encoding.loader import load_query_encoder
    from lsr.encoding.vocabulary import Vocabulary as Tokens
    from lsr.service.ingest import Limits, Vocabulary, read_file

    loaded = []

    def encoder():
        if not loaded:
            loaded.append(load_query_encoder(model or idx.model or "splade-tiny"))
            idx.check_vocabulary(loaded[0].vocab_fingerprint)
        return loaded[0]

    vocab = Vocabulary(idx.vocab_size, idx.vocab_fingerprint, lambda: Tokens.of_tokenizer(encoder().tokenizer).ids)
    incoming = read_file(path, vocab, Limits(documents=10**9, document_chars=10**8, line_bytes=1 << 30))
    texts = incoming.texts
    idx.upsert(incoming.ids, incoming.vectors(encoder().encode_documents(texts) if texts else None), incoming.docs)
    return len(incoming.docs)


def repair_index(output: Path) -> None:
    """lsr index --repair: under the writer lock, checks the manifest and every segment (checksums and arrays),
    upgrades a version 1 manifest, cuts the log at its first damage (the rest moved aside), then replays and
    commits through the writer. What cannot be repaired (a damaged manifest or segment) stays a one-line error."""
    from lsr.index import Index, IndexCorrupt, IndexLocked
    from lsr.index.lock import WriterLock
    from lsr.index.manifest import Manifest
    from lsr.index.snapshot import Snapshot
    from lsr.index.wal import repair

    with reported(IndexCorrupt, IndexLocked, OSError):
        lock = WriterLock(output).acquire(0)
        try:
            try:
                Manifest.read(output)
                upgraded = False
            except IndexCorrupt:   # a version 1 manifest is upgraded; any other problem is raised again
                Manifest.read(output, upgrade=True).write(output)
                upgraded = True
            Snapshot.open(output, verify=True)
            report = repair(output)
        finally:
            lock.release()
        idx = Index.open(output, writable=True, background_merges=False, refresh_interval=None)
        idx.close()
    if report["damaged"]:
        typer.echo(f"{output}: the write-ahead log was damaged at {report['file']} offset {report['offset']} "
                   f"({report['reason']}); kept {report['kept_records']} records before it, set "
                   f"{report['complete_records_set_aside']} complete records after it aside in "
                   f"{report['set_aside_in']} (acknowledged writes: send them again)", err=True)
    echo_json({"output": str(output), "documents": idx.num_docs, "manifest_upgraded": upgraded,
               "log_repaired": report["damaged"], "generation": idx.generation,
               **({k: report[k] for k in ("file", "offset", "reason", "complete_records_set_aside", "set_aside_in")}
                  if report["damaged"] else {})})


def index_on_ray(corpus: str, output: Path, address: Optional[str], *, model: str, max_length: int, batch_size: int,
                 device: str, chunk_docs: int, shards: Optional[int], actors: int, keep_chunks: bool,
                 overwrite: bool, build: dict) -> None:
    """`lsr index --ray`: encoding on Ray actors, resumable from OUTPUT.chunks/, then one index or N shards."""
    try:
        from lsr.cluster.chunklog import ChunkLogError
        from lsr.cluster.connect import connect
        from lsr.cluster.encode import EncodeSettings
        from lsr.cluster.indexer import BuildSettings, index_on_ray as run
    except ImportError as e:
        fail(f"--ray needs Ray: pip install 'lsr[ray]' ({e})")
    from lsr.core.errors import CorpusError

    connect(address)
    with progress_bar(f"encoding {corpus} on Ray", None) as advance, \
            reported(CorpusError, ChunkLogError, ValueError, FileExistsError, OSError):
        report = run(corpus, output, encode=EncodeSettings(model, max_length, batch_size, device),
                     build=BuildSettings(**build), shards=shards, actors=actors, chunk_docs=chunk_docs,
                     keep_chunks=keep_chunks, overwrite=overwrite, progress=advance)
    e = report.encode
    echo_json({"output": str(output), "documents": report.documents, "shards": report.shards, "chunks": e.chunks,
               "encoded_chunks": e.encoded, "resumed_chunks": e.skipped, "encode_seconds": round(e.seconds, 2),
               "docs_per_second": round(e.docs / e.seconds, 1) if e.seconds else None})
