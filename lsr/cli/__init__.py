"""The ``lsr`` command: the top layer, one module per command group. Each command imports the layers it needs
inside its body, so ``lsr --help`` stays instant and imports neither torch nor the web stack.

Other packages add command groups through the entry-point group ``lsr.commands`` (a name and a Typer app): the
benchmarks of a source checkout (``bench/``, not part of the wheel) come in as ``lsr bench``.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from lsr.cli import encode, eval, index, search, serve, snapshot, train

app = typer.Typer(help="Learned sparse retrieval: encode, index, search, serve, evaluate, train.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
for group in (encode, index, search, serve, eval, train):
    app.registered_commands += group.app.registered_commands
app.add_typer(snapshot.app, name="snapshot")
for plugin in entry_points(group="lsr.commands"):
    app.add_typer(plugin.load(), name=plugin.name)

__all__ = ["app"]
