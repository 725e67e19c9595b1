#!/usr/bin/env python3
"""tools/peers/attn_check.py: are the peers' numbers right? fla's chunk kernels against
the token-by-token recurrence in fp64 (torch autograd on the GPU gives the reference
gradients), on fresh seeded random inputs:

  lightning  chunk_simple_gla(q, k, v, g_gamma=log_decay, scale=1): exactly bolt's
             Lightning Attention, S_t = lambda_h S_{t-1} + k_t^T v_t, o_t = q_t S_t, with
             lambda_h = exp(log_decay_h) from ALiBi slopes
  gla        chunk_gla(q, k, v, g, scale): S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t,
             o_t = scale q_t S_t, g = logsigmoid(N(0,1)) / 16

Cases cover fp32 and bf16 inputs, a length that is no multiple of the chunk (64), an
initial state and the final state, and packed sequences (cu_seqlens). Each row gives
||fla - ref|| / ||ref|| (fp64) of the output, the final state and every gradient. The
reference sees the inputs exactly as fla does (bf16 inputs are upcast, not redrawn).
Tolerances: 5e-3 with fp32 inputs (Triton's dots run in tf32; fla's own tests use 5e-3),
2e-2 with bf16; the gate gradient of GLA 5e-2 (a long reverse cumulative sum of small
differences).

Usage: python3 tools/peers/attn_check.py [--only lightning,gla] [--device cuda]
Prints a table and one PASS / FAIL line; exit status 1 on any failure. fla comes from
$FLA_SRC or .peers/fla-src (peer_env.py).
"""
import argparse
import sys
import traceback

import peer_env  # sets TRITON_CACHE_DIR before torch / triton load
import torch
import torch.nn.functional as F

TOL = {torch.float32: 5e-3, torch.bfloat16: 2e-2}
TOL_DG = 5e-2


def recurrence(q, k, v, g, scale, h0):
    """The definition, in whatever dtype the inputs have (fp64 here). q, k: [B, T, H, K],
    v: [B, T, H, V], g: log-gates [B, T, H] (one per head) or [B, T, H, K]; h0 [B, H, K, V]
    or None. Returns o [B, T, H, V] and the final state [B, H, K, V]."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    S = h0 if h0 is not None else q.new_zeros(B, H, K, V)
    outs = []
    for t in range(T):
        gate = g[:, t].exp()
        gate = gate[..., None, None] if gate.dim() == 2 else gate[..., None]
        S = S * gate + k[:, t, :, :, None] * v[:, t, :, None, :]
        outs.append(scale * torch.einsum("bhk,bhkv->bhv", q[:, t], S))
    return torch.stack(outs, 1), S


def reference(q, k, v, g, scale, h0, cu):
    """The recurrence per packed sequence (cu: offsets or None), in fp64."""
    if cu is None:
        return recurrence(q, k, v, g, scale, h0)
    outs, states = [], []
    for i in range(len(cu) - 1):
        a, b = cu[i], cu[i + 1]
        o, s = recurrence(q[:, a:b], k[:, a:b], v[:, a:b], g[:, a:b], scale,
                          None if h0 is None else h0[i:i + 1])
        outs.append(o)
        states.append(s)
    return torch.cat(outs, 1), torch.cat(states, 0)


def run_case(kind, case, args):
    from fla.ops.gla import chunk_gla
    from fla.ops.simple_gla import chunk_simple_gla

    dev = args.device
    H, D, dtype = case["H"], case["D"], case["dtype"]
    lens = case.get("lens")
    B, T = (1, sum(lens)) if lens else (case["B"], case["T"])
    gen = torch.Generator(device=dev).manual_seed(case["seed"])

    def rnd(*shape, std=1.0):
        return torch.randn(shape, generator=gen, device=dev, dtype=torch.float32) * std

    q, k, v = (rnd(B, T, H, D, std=0.5).to(dtype) for _ in range(3))
    N = len(lens) if lens else B
    h0 = rnd(N, H, D, D, std=0.5) if case.get("h0") else None
    do = rnd(B, T, H, D).to(dtype)
    dht = rnd(N, H, D, D)
    cu = None
    if lens:
        offs = [0]
        for n in lens:
            offs.append(offs[-1] + n)
        cu = torch.tensor(offs, device=dev, dtype=torch.long)
    if kind == "lightning":
        scale = 1.0
        g_gamma = torch.tensor(peer_env.alibi_log_decay(H), device=dev, dtype=torch.float32)
        g_full = g_gamma.double().expand(B, T, H)
        g = None
    else:
        scale = D ** -0.5
        g = (F.logsigmoid(rnd(B, T, H, D)) / 16).to(dtype)
        g_full = g.double()

    # fla
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    g_leaf = g.clone().requires_grad_() if g is not None else None
    h0_leaf = h0.clone().requires_grad_() if h0 is not None else None
    kw = dict(initial_state=h0_leaf, output_final_state=True, cu_seqlens=cu)
    if kind == "lightning":
        o, ht = chunk_simple_gla(*leaves, g_gamma=g_gamma, scale=scale, **kw)
    else:
        o, ht = chunk_gla(*leaves, g_leaf, scale=scale, **kw)
    wrt = leaves + ([g_leaf] if g_leaf is not None else []) + ([h0_leaf] if h0_leaf is not None else [])
    grads = torch.autograd.grad((o.float() * do.float()).sum() + (ht.float() * dht).sum(), wrt,
                                allow_unused=True)

    # fp64 reference on the same (rounded) inputs
    rq, rk, rv = (x.double().requires_grad_() for x in (q, k, v))
    rg = g_full.clone().requires_grad_() if g is not None else g_full
    rh0 = h0.double().requires_grad_() if h0 is not None else None
    ro, rht = reference(rq, rk, rv, rg, scale, rh0, offs if lens else None)
    rwrt = [rq, rk, rv] + ([rg] if g is not None else []) + ([rh0] if rh0 is not None else [])
    rgrads = torch.autograd.grad((ro * do.double()).sum() + (rht * dht.double()).sum(), rwrt)

    names = ["dq", "dk", "dv"] + (["dg"] if g is not None else []) + (["dh0"] if h0 is not None else [])
    errs = {"o": peer_env.rel_err(o, ro), "ht": peer_env.rel_err(ht, rht)}
    for n, a, b in zip(names, grads, rgrads):
        errs[n] = peer_env.rel_err(a, b) if a is not None else float("inf")
    tol = TOL[dtype]
    ok = all(e <= (TOL_DG if n == "dg" else tol) for n, e in errs.items())
    return errs, ok


CASES = [
    dict(name="B2 T300 H4 D64 fp32 h0", B=2, T=300, H=4, D=64, dtype=torch.float32, h0=True, seed=1),
    dict(name="B2 T300 H4 D64 bf16", B=2, T=300, H=4, D=64, dtype=torch.bfloat16, seed=2),
    dict(name="B1 T1000 H16 D128 bf16", B=1, T=1000, H=16, D=128, dtype=torch.bfloat16, seed=3),
    dict(name="packed 100,257,643 bf16 h0", H=4, D=64, lens=[100, 257, 643], dtype=torch.bfloat16,
         h0=True, seed=4),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="lightning,gla", help="comma list: lightning, gla")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    kinds = peer_env.parse_list(args.only)
    for kd in kinds:
        if kd not in ("lightning", "gla"):
            ap.error("--only: unknown part %r (lightning, gla)" % kd)
    fla_mod, why = peer_env.import_fla()
    if fla_mod is None:
        print("FAIL attn-check: fla not importable: %s" % why)
        sys.exit(1)
    print("attn check: fla %s, torch %s, %s" % (getattr(fla_mod, "__version__", "?"),
                                                torch.__version__, args.device))
    cols = ["o", "ht", "dq", "dk", "dv", "dg", "dh0"]
    print("%-10s %-28s " % ("op", "case") + " ".join("%9s" % c for c in cols) + "  result")
    n_fail = 0
    for kind in kinds:
        for case in CASES:
            try:
                errs, ok = run_case(kind, case, args)
                cells = " ".join("%9.2e" % errs[c] if c in errs else "%9s" % "-" for c in cols)
            except Exception as e:
                traceback.print_exc()
                ok, cells = False, "error: %s: %s" % (type(e).__name__, str(e).split("\n")[0][:120])
            n_fail += not ok
            print("%-10s %-28s %s  %s" % (kind, case["name"], cells, "ok" if ok else "FAIL"))
            sys.stdout.flush()
    print("tolerance (relative L2 vs the fp64 recurrence): fp32 inputs %.0e, bf16 %.0e, GLA dg %.0e"
          % (TOL[torch.float32], TOL[torch.bfloat16], TOL_DG))
    n = len(kinds) * len(CASES)
    print("%s attn-check: fla vs fp64 recurrence, %d of %d cases within tolerance"
          % ("PASS" if n_fail == 0 else "FAIL", n - n_fail, n))
    sys.exit(1 if n_fail else 0)


if __name__ == "__main__":
    main()
