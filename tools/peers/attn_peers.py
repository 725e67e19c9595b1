#!/usr/bin/env python3
"""tools/peers/attn_peers.py: the peers of `bolt bench attn`, timed on the GPU in the same
table layout, so the two read side by side.

  lightning  fla's chunk_simple_gla with g_gamma (a constant log-decay per head: the
             Lightning Attention recurrence S_t = lambda S_{t-1} + k_t^T v_t, o_t = q_t S_t,
             scale 1, decays from ALiBi slopes as bolt's benchmark uses)
  softmax    torch scaled_dot_product_attention, causal, with the flash and the cuDNN
             backends (one table each)
  gla        fla's chunk_gla (elementwise log-gates logsigmoid(N(0,1)) / 16, scale
             1/sqrt(D)), by default at T=4096 only (B=8 at 32768 tokens)

Shapes as `bolt bench attn`: H=16 heads of D=128, bf16, B*T = 32768 tokens, B = tokens / T;
inputs in fla's [B, T, H, D] layout (SDPA gets [B, H, T, D] views of them). Each shape gets
fresh seeded random inputs (q, k, v ~ 0.5 N(0,1), dout ~ N(0,1)); "fwd" is the forward of a
training step (autograd on), "fwd+bwd" is that forward and torch.autograd.grad for every
input. Times are the median of triton.testing.do_bench (events, warm-up first, L2 flushed
between calls); the floor columns are bench_attn.c's memory floors (bf16 inputs read once,
outputs written once, at 4.24 TB/s).

Usage: python3 tools/peers/attn_peers.py [--only lightning,softmax,gla]
           [--lengths 1024,4096,16384,32768] [--gla-lengths 4096] [--tokens 32768]
           [--heads 16] [--head-dim 128] [--softmax-backends flash,cudnn] [--rep-ms 200]
fla comes from $FLA_SRC or .peers/fla-src (see peer_env.py); TRITON_CACHE_DIR defaults to
/tmp/triton-cache (fla's first call compiles and autotunes for minutes; the autotuning
results are cached there too). Exit status 1 if a requested part could not run.
"""
import argparse
import math
import os
import sys
import traceback

import peer_env  # sets TRITON_CACHE_DIR before torch / triton load
import torch
import torch.nn.functional as F


def bench_ms(fn, warmup_ms, rep_ms):
    """Median milliseconds of fn() on the GPU."""
    try:
        from triton.testing import do_bench
    except ImportError:
        do_bench = None
    if do_bench is not None:
        return float(do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median"))
    # Without Triton: CUDA events around each call, after a warm-up.
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(max(5, int(rep_ms / 5))):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def randn(shape, gen, std=1.0, dtype=torch.bfloat16):
    x = torch.randn(shape, generator=gen, device="cuda", dtype=torch.float32) * std
    return x.to(dtype)


def time_pair(forward, inputs, dout, args):
    """(fwd ms, fwd+bwd ms) of forward(); every input gets its gradient."""
    o = forward()
    if not torch.isfinite(o.float()).all():
        raise RuntimeError("the output has NaN or Inf")
    del o

    def both():
        out = forward()
        torch.autograd.grad(out, inputs, dout)

    fwd = bench_ms(forward, args.warmup_ms, args.rep_ms)
    fb = bench_ms(both, args.warmup_ms, args.rep_ms)
    return fwd, fb


def run_sweep(title, lengths, args, make_case, n_fwd, n_bwd, context=None):
    """One table: for each T, make_case(T, B, gen) -> (forward, inputs, dout)."""
    H, D, N = args.heads, args.head_dim, args.tokens
    print("\n%s  H=%d D=%d  B*T=%d  (%s)" % (title[0], H, D, N, title[1]))
    print(peer_env.HEADER)
    ok = True
    for T in lengths:
        if T > N or N % T:
            print("%8d: skipped (tokens %d is not a multiple)" % (T, N))
            continue
        B = N // T
        gen = torch.Generator(device="cuda").manual_seed(args.seed + T)
        try:
            forward, inputs, dout = make_case(T, B, gen)
            if context is not None:
                with context():
                    fwd, fb = time_pair(forward, inputs, dout, args)
            else:
                fwd, fb = time_pair(forward, inputs, dout, args)
            print(peer_env.row(T, B, fwd, fb, peer_env.floor_ms(N, H, D, n_fwd, n_bwd, False),
                               peer_env.floor_ms(N, H, D, n_fwd, n_bwd, True)))
        except Exception as e:  # one shape failing (OOM, unsupported) keeps the others
            ok = False
            print("%8d %6d | error: %s: %s" % (T, B, type(e).__name__, str(e).split("\n")[0][:160]))
            if args.verbose:
                traceback.print_exc()
        forward = inputs = dout = None
        torch.cuda.empty_cache()
        sys.stdout.flush()
    return ok


def lightning(args):
    from fla.ops.simple_gla import chunk_simple_gla

    H, D = args.heads, args.head_dim
    g_gamma = torch.tensor(peer_env.alibi_log_decay(H), device="cuda", dtype=torch.float32)

    def make(T, B, gen):
        q, k, v = (randn((B, T, H, D), gen, 0.5).requires_grad_() for _ in range(3))
        dout = randn((B, T, H, D), gen)

        def forward():
            return chunk_simple_gla(q, k, v, g_gamma=g_gamma, scale=1.0)[0]

        return forward, (q, k, v), dout

    # Floors as bench_attn.c: q, k, v in, o out; backward q, k, v, dout, (o) in, 3 grads out.
    return run_sweep(("lightning", "fla chunk_simple_gla g_gamma, %s" % args.device_name),
                     args.lengths, args, make, 4, 8)


def softmax(args, backend):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    H, D = args.heads, args.head_dim
    which = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
             "efficient": SDPBackend.EFFICIENT_ATTENTION}[backend]

    def make(T, B, gen):
        # [B, T, H, D] tensors (a projection's layout), SDPA's [B, H, T, D] as views.
        q, k, v = (randn((B, T, H, D), gen, 0.5).requires_grad_() for _ in range(3))
        dout = randn((B, T, H, D), gen).transpose(1, 2)

        def forward():
            return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                  v.transpose(1, 2), is_causal=True)

        return forward, (q, k, v), dout

    return run_sweep(("softmax", "torch SDPA causal, %s backend, %s" % (backend, args.device_name)),
                     args.lengths, args, make, 4, 8, context=lambda: sdpa_kernel([which]))


def gla(args):
    from fla.ops.gla import chunk_gla

    H, D = args.heads, args.head_dim

    def make(T, B, gen):
        q, k, v = (randn((B, T, H, D), gen, 0.5).requires_grad_() for _ in range(3))
        g = (F.logsigmoid(randn((B, T, H, D), gen, 1.0, torch.float32)) / 16).to(torch.bfloat16)
        g.requires_grad_()
        dout = randn((B, T, H, D), gen)

        def forward():
            return chunk_gla(q, k, v, g, scale=1.0 / math.sqrt(D))[0]

        return forward, (q, k, v, g), dout

    # Floors as bench_attn.c with the gates: q, k, v, g in, o out; 6 in, 4 grads out.
    return run_sweep(("gla", "fla chunk_gla, kdim = vdim = D, %s" % args.device_name),
                     args.gla_lengths, args, make, 5, 10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="lightning,softmax,gla",
                    help="comma list of parts: lightning, softmax, gla")
    ap.add_argument("--lengths", default="1024,4096,16384,32768",
                    help="sequence lengths of the lightning and softmax tables")
    ap.add_argument("--gla-lengths", default="4096", help="sequence lengths of the gla table")
    ap.add_argument("--tokens", type=int, default=32768, help="B*T tokens per call")
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--softmax-backends", default="flash,cudnn",
                    help="SDPA backends, one table each: flash, cudnn, efficient")
    ap.add_argument("--warmup-ms", type=float, default=25)
    ap.add_argument("--rep-ms", type=float, default=200)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--verbose", action="store_true", help="tracebacks of failing shapes")
    args = ap.parse_args()
    args.lengths = peer_env.parse_list(args.lengths, int)
    args.gla_lengths = peer_env.parse_list(args.gla_lengths, int)
    parts = peer_env.parse_list(args.only)
    for p in parts:
        if p not in ("lightning", "softmax", "gla"):
            ap.error("--only: unknown part %r (lightning, softmax, gla)" % p)
    if not torch.cuda.is_available():
        sys.exit("attn_peers: no GPU visible to torch")
    args.device_name = torch.cuda.get_device_name()
    print("attn peers: torch %s, %s, TRITON_CACHE_DIR=%s" % (
        torch.__version__, args.device_name, os.environ["TRITON_CACHE_DIR"]))

    ok = True
    fla_mod = None
    if "lightning" in parts or "gla" in parts:
        fla_mod, why = peer_env.import_fla()
        if fla_mod is None:
            print("fla not importable, lightning and gla peers skipped: %s" % why)
            ok = False
        else:
            print("fla %s at %s" % (getattr(fla_mod, "__version__", "?"), fla_mod.__file__))
    for p in parts:
        try:
            if p == "lightning" and fla_mod is not None:
                ok &= lightning(args)
            elif p == "gla" and fla_mod is not None:
                ok &= gla(args)
            elif p == "softmax":
                for backend in peer_env.parse_list(args.softmax_backends):
                    ok &= softmax(args, backend)
        except Exception:
            traceback.print_exc()
            ok = False
    print("\nattn peers: %s" % ("all parts ran" if ok else "some parts failed"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
