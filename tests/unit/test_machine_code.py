"""Generated kernels' object code is cached per IR and CPU: a second process loads it; a corrupt or truncated file is
compiled again, never loaded."""

import subprocess
import sys

from lsr.encoding import machine_code

PROGRAM = """
import ctypes, sys
import numpy as np
from llvmlite import ir
from lsr.encoding import machine_code

mod = machine_code.new_module("probe")
fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ir.IntType(64)]), "store_42")
b = ir.IRBuilder(fn.append_basic_block("entry"))
b.store(ir.Constant(ir.FloatType(), 42.5), b.inttoptr(fn.args[0], ir.FloatType().as_pointer()))
b.ret_void()
engine, f = machine_code.compile_function(mod, "store_42", [ctypes.c_int64])
out = np.zeros(1, np.float32)
f(out.ctypes.data)
assert out[0] == 42.5, out
"""


def run_program(cache, monkeypatch) -> None:
    monkeypatch.setenv("LSR_CACHE_DIR", str(cache))
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]


def test_object_code_is_cached_and_a_bad_file_is_compiled_again(tmp_path, monkeypatch):
    run_program(tmp_path, monkeypatch)
    (path,) = (tmp_path / "kernels").glob("store_42-*.o")
    good = path.read_bytes()
    assert machine_code._read_object(path) == good[32:]
    inode = path.stat().st_ino
    run_program(tmp_path, monkeypatch)   # loaded, not compiled: a compile would have replaced the file
    assert path.stat().st_ino == inode
    for bad in (good[:-7], good[:32] + bytes(len(good) - 32), b""):
        path.write_bytes(bad)
        assert machine_code._read_object(path) is None
        run_program(tmp_path, monkeypatch)
        assert path.read_bytes() == good, "a bad cached object is compiled again and replaced"


def test_an_unwritable_cache_only_costs_a_compile(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    run_program(blocker, monkeypatch)   # cache_dir() is a file: nothing can be written under it
    assert not (tmp_path / "kernels").exists()
