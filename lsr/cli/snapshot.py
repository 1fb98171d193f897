"""`lsr snapshot create|list|restore|delete`: consistent point-in-time copies of an index (lsr.index.backup)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer

from lsr.cli.common import echo_json, fail, reported

app = typer.Typer(help="Snapshots of an index: point-in-time copies as hard links (lsr serve makes them too: "
                       "POST /indexes/NAME/snapshots).", no_args_is_help=True)

INDEX = typer.Option(..., "--index", help="index folder")
REPOSITORY = typer.Option(None, "--repository", help="the snapshots' folder (default: INDEX.snapshots beside the "
                                                     "index; on its file system)")


def _repository(index_dir: Path, repository: Path | None) -> Path:
    from lsr.index.backup import default_repository

    return repository if repository is not None else default_repository(index_dir)


@app.command("create")
def create(index_dir: Path = INDEX, name: Optional[str] = typer.Option(None, help="default: UTC time and generation"),
           repository: Optional[Path] = REPOSITORY,
           wait: float = typer.Option(10.0, min=0, help="seconds to wait for another writer's lock")) -> None:
    """Flush the index's acknowledged writes, then link its committed generation into a new snapshot. A server
    that writes the index holds its lock: make the snapshot through it (POST /indexes/NAME/snapshots)."""
    from lsr.index import Index, IndexCorrupt, IndexLocked
    from lsr.index.backup import BackupError, create as create_backup

    with reported(BackupError, IndexCorrupt, OSError):
        try:
            index = Index.open(index_dir, verify=False, writable=True, lock_timeout=wait)
        except IndexLocked as e:
            fail(f"{e}; if a server writes it, ask the server: POST /indexes/NAME/snapshots")
        with index:
            info = create_backup(index, _repository(index_dir, repository), name)
    echo_json(asdict(info))


@app.command("list")
def list_(index_dir: Path = INDEX, repository: Optional[Path] = REPOSITORY) -> None:
    """The index's snapshots, oldest first, one JSON object a line."""
    from lsr.index.backup import BackupError, list_backups

    with reported(BackupError, OSError):
        for info in list_backups(_repository(index_dir, repository)):
            echo_json(asdict(info))


@app.command("restore")
def restore(name: str = typer.Argument(..., help="the snapshot"), index_dir: Path = INDEX,
            output: Path = typer.Option(..., "--output", "-o", help="the restored index's folder"),
            repository: Optional[Path] = REPOSITORY,
            overwrite: bool = typer.Option(False, help="replace OUTPUT if it exists (no writer may hold it)"),
            verify: bool = typer.Option(True, help="check every file's sha256 first")) -> None:
    """Make OUTPUT an index holding the snapshot (hard links; the snapshot stays as it is). To roll a served
    index back: stop the server, restore with --output INDEX --overwrite, start it."""
    from lsr.index import IndexCorrupt, IndexLocked
    from lsr.index.backup import BackupError, restore as restore_backup

    with reported(BackupError, IndexCorrupt, IndexLocked, OSError):
        info = restore_backup(_repository(index_dir, repository), name, output, overwrite=overwrite, verify=verify)
    echo_json({**asdict(info), "restored": str(output)})


@app.command("delete")
def delete(name: str = typer.Argument(..., help="the snapshot"), index_dir: Path = INDEX,
           repository: Optional[Path] = REPOSITORY) -> None:
    """Remove a snapshot."""
    from lsr.index.backup import BackupError, delete as delete_backup

    with reported(BackupError, OSError):
        delete_backup(_repository(index_dir, repository), name)
