"""Several indexes in one server, by name: ``lsr serve --index NAME=DIR`` (repeatable; a plain DIR is named after
its folder). Each index has its own engine (snapshots, micro-batcher), document writer and snapshot repository; the
process shares the search thread pool's settings, the limits, the keys and the metrics.

Routes: the per-index router (service/routes.py) is mounted twice, at ``/`` for the first index (the single-index
API, unchanged) and at ``/indexes/{name}/``; ``resolve`` is the second mount's dependency. Indexes whose model is
the same share one loaded query encoder (each keeps its own micro-batcher)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Path as PathParam, Request, status

from lsr.index.backup import default_repository
from lsr.service.documents import Documents
from lsr.service.engine import Engine

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_index(value: str) -> tuple[str, Path]:
    """``NAME=DIR`` or a plain ``DIR`` (named after its folder) -> (name, folder); ValueError for a bad name."""
    name, sep, folder = value.partition("=")
    if sep and NAME.match(name):
        return name, Path(folder)
    path = Path(value)
    name = path.resolve().name
    if not NAME.match(name):
        raise ValueError(f"the folder name {name!r} is not an index name (letters, digits, '.', '_', '-'; up to 64): "
                         f"name it with --index NAME={value}")
    return name, path


def check_names(names: list[str]) -> None:
    bad = [n for n in names if not NAME.match(n)]
    if bad:
        raise ValueError(f"bad index names {bad}: letters, digits, '.', '_' or '-', up to 64, starting with a letter "
                         "or digit")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"index names given twice: {repeated}")


@dataclass
class Served:
    """One index of the server."""

    name: str
    engine: Engine
    documents: Documents
    snapshots: Path      # its snapshot repository (lsr.index.backup)


class Indexes:
    def __init__(self, served: list[Served]):
        if not served:
            raise ValueError("a server needs at least one index")
        check_names([s.name for s in served])
        self.by_name = {s.name: s for s in served}
        self.first = served[0]

    def get(self, name: str) -> Served:
        """The index called ``name``; 404 naming the ones there are."""
        try:
            return self.by_name[name]
        except KeyError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no index named {name!r}; this server serves "
                                f"{list(self.by_name)} (GET /indexes)") from None

    def __iter__(self):
        return iter(self.by_name.values())

    def public(self, message: str) -> str:
        """``message`` with every index's folder left out (answers never name paths of the server)."""
        for s in self:
            message = s.engine.public(message)
        return message

    def load_encoders(self) -> None:
        """Loads each distinct model once and gives it to every index of that model (on a thread at start-up)."""
        loaded: dict[str, Engine] = {}
        for s in self:
            e = s.engine
            if e.encoder is not None:
                continue
            model = e.settings.model or e.index.model
            donor = loaded.get(model)
            if donor is not None and donor.encoder is not None:
                e.load_encoder(donor.encoder)
            else:
                e.load_encoder()
                loaded[model] = e

    async def close(self) -> None:
        for s in self:
            await s.documents.path.close()   # the writer this worker owns commits its buffer
            await s.engine.close()


def snapshot_repository(name: str, index_dir: Path, snapshot_dir: Path | None) -> Path:
    return snapshot_dir / name if snapshot_dir is not None else default_repository(index_dir)


def served(request: Request) -> Served:
    """The index a request is about: the one its ``/indexes/{name}`` named (``resolve``), else the first."""
    return getattr(request.state, "served", None) or request.app.state.indexes.first


async def resolve(request: Request, name: str = PathParam(description="index name (GET /indexes lists them)")) -> None:
    """Dependency of the ``/indexes/{name}`` routes. A caller who may not read learns nothing of which names exist:
    the route's own key check answers first."""
    if request.app.state.keys.allows(request):
        request.state.served = request.app.state.indexes.get(name)
