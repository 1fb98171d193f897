"""What every command shares: one-line errors with exit code 2, progress bars, KEY=VALUE parameters, the encoder.

Library code raises typed exceptions and reports progress through a callback; only this layer knows typer, exit
codes and rich.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, NoReturn

import typer

USAGE_ERROR = 2


def fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@contextmanager
def reported(*errors: type[BaseException]) -> Iterator[None]:
    """Turns the given exception types into a one-line error and exit code 2 (anything else stays a bug)."""
    try:
        yield
    except errors as e:
        fail(str(e))


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (count, total, rate and ETA); yields advance(n). Hidden when stderr is not a
    terminal."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
                  disable=not sys.stderr.isatty()) as p:
        task = p.add_task(description, total=total)
        yield lambda n: p.advance(task, n)


@contextmanager
def stages(description: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar for work that reports (stage, done, total), such as ``Index.build``: one bar, relabelled at
    each stage."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False, disable=not sys.stderr.isatty()) as p:
        task = p.add_task(description, total=None)

        def update(stage: str, done: int, total: int) -> None:
            p.update(task, description=f"{description}: {stage}", completed=done, total=total)

        yield update


def parse_params(pairs: list[str]) -> dict:
    """KEY=VALUE pairs to a dict; values parse as JSON when they can (numbers, booleans), else stay strings."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--param expects KEY=VALUE, got {pair!r}")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def load_encoder(model: str, device: str, **options):
    """The Encoder of ``model``, or a one-line error (unknown model, offline hub, no masked-LM head)."""
    from lsr.encoding.encoder import Encoder, ModelLoadError

    with reported(ModelLoadError, ValueError):
        return Encoder.from_pretrained(model, device=device, **options)


def echo_json(obj: dict) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False))
