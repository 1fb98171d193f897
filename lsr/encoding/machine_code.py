"""Machine code for the host CPU from llvmlite IR (numba's code generator), as the screen's integer kernel and the
forward's small products are built: at first use, for the CPU the process runs on, so nothing is compiled at
install time. What both need: counted loops in IR, and a module compiled into a ctypes function."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
from pathlib import Path

from lsr.core.atomic import atomic_open
from lsr.core.cache_dir import cache_dir

log = logging.getLogger(__name__)


class Loops:
    """Counted loops on an ``ir.IRBuilder``, with values carried from one iteration to the next (phis)."""

    def __init__(self, builder):
        from llvmlite import ir

        self.b = builder
        self.i64 = ir.IntType(64)
        self.const = functools.partial(ir.Constant, self.i64)

    def open(self, start, stop, name: str, carried=()):
        """Opens ``for idx in range(start, stop, step)`` (i64) and positions the builder in its body; returns (idx,
        the carried values' phis, close(step, next values) -> the phis, read after the loop)."""
        b = self.b
        pre = b.block
        head, body, done = (b.append_basic_block(f"{name}_{s}") for s in ("head", "body", "done"))
        b.branch(head)
        b.position_at_end(head)
        idx = b.phi(self.i64)
        idx.add_incoming(start, pre)
        phis = []
        for c in carried:
            p = b.phi(c.type)
            p.add_incoming(c, pre)
            phis.append(p)
        b.cbranch(b.icmp_signed("<", idx, stop), body, done)
        b.position_at_end(body)

        def close(step: int, values=()):
            idx.add_incoming(b.add(idx, self.const(step)), b.block)
            for p, v in zip(phis, values):
                p.add_incoming(v, b.block)
            b.branch(head)
            b.position_at_end(done)
            return phis

        return idx, phis, close


def compile_function(module, name: str, argtypes: list) -> tuple[object, ctypes._CFuncPtr]:
    """``module`` (an ``ir.Module`` from ``new_module``) optimised for the host CPU (-O3, all its extensions) and its
    function ``name`` as a ctypes function returning nothing; returns (engine, function): the engine owns the machine
    code, so keep it alive with the function.

    The object code is kept under ``cache_dir()/kernels``, keyed by the IR, the CPU and llvmlite's LLVM, so a
    process after the first loads it instead of compiling (the forward's kernel took ~0.3 s to compile, a tenth of
    ``lsr search``). A cached file is checked against its own digest; a bad one is compiled again."""
    import llvmlite
    import llvmlite.binding as llvm

    text = str(module)
    features = llvm.get_host_cpu_features().flatten()
    machine = llvm.Target.from_default_triple().create_target_machine(cpu=llvm.get_host_cpu_name(),
                                                                      features=features, opt=3)
    key = hashlib.sha256("\0".join([text, machine.triple, llvm.get_host_cpu_name(), features,
                                     llvmlite.__version__]).encode()).hexdigest()[:32]
    path = cache_dir() / "kernels" / f"{name}-{key}.o"
    cached = _read_object(path)
    parsed = llvm.parse_assembly(text)
    if cached is None:
        parsed.verify()
        passes = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=3))
        passes.getModulePassManager().run(parsed, passes)
    engine = llvm.create_mcjit_compiler(parsed, machine)
    engine.set_object_cache(lambda _, buffer: cached is None and _write_object(path, buffer), lambda _: cached)
    engine.finalize_object()
    return engine, ctypes.CFUNCTYPE(None, *argtypes)(engine.get_function_address(name))


def _read_object(path: Path) -> bytes | None:
    """A cached object's code, or None where it is missing or does not match the digest it starts with."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    digest, code = data[:32], data[32:]
    return code if code and hashlib.sha256(code).digest() == digest else None


def _write_object(path: Path, code: bytes) -> None:
    """Keeps the object code for the next process (atomically: a reader sees the whole file or none); a cache that
    cannot be written (a read-only home) only costs the next process a compile."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as f:
            f.write(hashlib.sha256(code).digest() + code)
    except OSError as e:
        log.debug("compiled kernel not cached at %s: %s", path, e)


def new_module(name: str):
    """An empty ``ir.Module`` for the host's triple."""
    import llvmlite.binding as llvm
    from llvmlite import ir

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = ir.Module(name)
    module.triple = llvm.get_process_triple()
    return module
