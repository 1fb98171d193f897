"""The fused head's kernels compiled for Hopper (sm_90) on a machine without a GPU: registers, stack (spills),
shared memory, and counts of the instructions that matter in the SASS (HGMMA = wgmma, UTMALDG = TMA loads,
LDGSTS = cp.async, LDL/STL = local memory), per tile configuration. Uses the ptxas and cuobjdump bundled with
triton; compile with the device's triton version (3.6 on the lent H100s):

    pip install --no-deps --target build/t36 triton==3.6.0
    PYTHONPATH=build/t36:. python -m bench.head_sass [fwd|tma|dh|dw ...]    (PERSIST=1: the persistent forward)
"""
import os
import re
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

import lsr.encoding.kernels.fused_head as fh

BIN = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin")
TARGET = GPUTarget("cuda", 90, 32)

def jitfn(k):
    while not isinstance(k, triton.runtime.jit.JITFunction):
        k = k.fn
    return k

def compile_one(kernel, sig, consts, div16, warps, stages):
    fn = jitfn(kernel)
    signature = {}
    for name in fn.arg_names:
        signature[name] = "constexpr" if name in consts else sig[name]
    attrs = {(fn.arg_names.index(n),): [["tt.divisibility", 16]] for n in div16}
    src = ASTSource(fn=fn, signature=signature, constexprs=consts, attrs=attrs)
    k = triton.compile(src, target=TARGET, options={"num_warps": warps, "num_stages": stages})
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(k.asm["cubin"])
    res = subprocess.run([f"{BIN}/cuobjdump", "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    sass = subprocess.run([f"{BIN}/cuobjdump", "--dump-sass", f.name], capture_output=True, text=True).stdout
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", res)
    ops = {op: len(re.findall(r"\b" + op + r"\b", sass)) for op in ("HGMMA", "HMMA", "LDL", "STL", "LDGSTS", "UTMALDG")}
    return dict(reg=int(m[1]), stack=int(m[2]), smem=int(k.metadata.shared), local=int(m[4]), **ops), k

DT = {"bf16": "*bf16", "fp32": "*fp32"}
def fwd(dt, cfg, need_arg=True):
    (bv, bt, bk), w, s = cfg
    sig = dict(h_ptr=DT[dt], w_ptr=DT[dt], bias_ptr=DT[dt], mask_ptr="*i64", ntok_ptr="*i32", out_ptr="*fp32",
               arg_ptr="*i32",
               B="i32", L="i32", H="i32", V="i32", L_KEY="i32", B_KEY="i32", s_hb="i32", s_hl="i32", s_mb="i32")
    consts = dict(HAS_BIAS=True, NEED_ARG=need_arg, PRECISION="tf32x3" if dt == "fp32" else "tf32", EVEN_K=True,
                  BLOCK_V=bv, BLOCK_T=bt, BLOCK_K=bk)
    div = ["h_ptr", "w_ptr", "bias_ptr", "mask_ptr", "ntok_ptr", "out_ptr", "arg_ptr", "B", "L", "H", "L_KEY", "B_KEY",
           "s_hb", "s_hl", "s_mb"]
    return compile_one(fh._forward_kernel, sig, consts, div, w, s)

def fwd_tma(dt, cfg, need_arg=True):
    (bv, bt, bk), w, s = cfg
    sig = dict(h_desc=f"tensordesc<{DT[dt][1:]}[{bt},{bk}]>", w_desc=f"tensordesc<{DT[dt][1:]}[{bv},{bk}]>",
               bias_ptr=DT[dt],
               mask_ptr="*i64", ntok_ptr="*i32", out_ptr="*fp32", arg_ptr="*i32",
               B="i32", L="i32", H="i32", V="i32", L_KEY="i32", B_KEY="i32", s_mb="i32")
    consts = dict(HAS_BIAS=True, NEED_ARG=need_arg, PRECISION="tf32x3" if dt == "fp32" else "tf32",
                  BLOCK_V=bv, BLOCK_T=bt, BLOCK_K=bk)
    div = ["bias_ptr", "mask_ptr", "ntok_ptr", "out_ptr", "arg_ptr", "B", "L", "H", "L_KEY", "B_KEY", "s_mb"]
    kernel = fh._forward_kernel_persistent if os.environ.get("PERSIST") == "1" else fh._forward_kernel_tma
    return compile_one(kernel, sig, consts, div, w, s)

def dh(dt, cfg):
    (bt, bh, bk), w, s = cfg
    sig = dict(w_ptr=DT[dt], g_ptr="*fp32", arg_ptr="*i32", last_ptr="*i32", scale_ptr="*fp32", dh_ptr=DT[dt],
               B="i32", L="i32", H="i32", V="i32", L_KEY="i32", B_KEY="i32")
    consts = dict(PRECISION="tf32x3" if dt == "fp32" else "tf32", BLOCK_T=bt, BLOCK_H=bh, BLOCK_K=bk)
    div = ["w_ptr", "g_ptr", "arg_ptr", "last_ptr", "scale_ptr", "dh_ptr", "B", "L", "H", "L_KEY", "B_KEY"]
    return compile_one(fh._grad_hidden_kernel, sig, consts, div, w, s)

def dw(dt, cfg):
    (bv, bh), w, s = cfg
    sig = dict(h_ptr=DT[dt], g_ptr="*fp32", arg_ptr="*i32", dw_ptr=DT[dt], B="i32", H="i32", V="i32", s_hb="i32",
               s_hl="i32")
    consts = dict(BLOCK_V=bv, BLOCK_H=bh)
    div = ["h_ptr", "g_ptr", "arg_ptr", "dw_ptr", "B", "H", "s_hb", "s_hl"]
    return compile_one(fh._grad_weight_kernel, sig, consts, div, w, s)

def rows(table, n):
    return [(tuple(r[:n]), r[n], r[n + 1]) for r in table]

if __name__ == "__main__":
    which = sys.argv[1:] or ["fwd", "dh", "dw"]
    jobs = []
    if "fwd" in which:
        jobs += [("fwd", "bf16", c) for c in rows(fh._FWD_HALF, 3)] + [("fwd", "fp32", c) for c in rows(fh._FWD_F32, 3)]
    if "tma" in which:
        jobs += [("tma", "bf16", c) for c in rows(fh._FWD_HALF, 3)] + [("tma", "fp32", c) for c in rows(fh._FWD_F32, 3)]
    if "dh" in which:
        jobs += [("dh", "bf16", c) for c in rows(fh._DH_HALF, 3)] + [("dh", "fp32", c) for c in rows(fh._DH_F32, 3)]
    if "dw" in which:
        jobs += [("dw", "bf16", c) for c in rows(fh._DW, 2)] + [("dw", "fp32", c) for c in rows(fh._DW, 2)]
    for kind, dt, cfg in jobs:
        try:
            r, _ = {"fwd": fwd, "tma": fwd_tma, "dh": dh, "dw": dw}[kind](dt, cfg)
            print(f"{kind:3s} {dt} {str(cfg):28s} " + " ".join(f"{k}={v}" for k, v in r.items()), flush=True)
        except Exception as e:
            print(f"{kind:3s} {dt} {str(cfg):28s} FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
