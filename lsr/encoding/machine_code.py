"""Machine code for the host CPU from llvmlite IR (numba's code generator), as the screen's integer kernel and the
forward's small products are built: at first use, for the CPU the process runs on, so nothing is compiled at
install time. What both need: counted loops in IR, and a module compiled into a ctypes function."""

from __future__ import annotations

import ctypes
import functools


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
    """``module`` (an ``ir.Module`` from ``new_module``) optimised for the host CPU (-O3, all its extensions) and its function ``name``
    as a ctypes function returning nothing; returns (engine, function): the engine owns the machine code, so keep it
    alive with the function."""
    import llvmlite.binding as llvm

    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    machine = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3)
    passes = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=3))
    passes.getModulePassManager().run(parsed, passes)
    engine = llvm.create_mcjit_compiler(parsed, machine)
    engine.finalize_object()
    return engine, ctypes.CFUNCTYPE(None, *argtypes)(engine.get_function_address(name))


def new_module(name: str):
    """An empty ``ir.Module`` for the host's triple."""
    import llvmlite.binding as llvm
    from llvmlite import ir

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = ir.Module(name)
    module.triple = llvm.get_process_triple()
    return module
