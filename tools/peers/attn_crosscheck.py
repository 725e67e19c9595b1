#!/usr/bin/env python3
"""tools/peers/attn_crosscheck.py: bolt's CUDA token-mixing ops against their peers on the
same inputs.

`bolt bench attn --dump=DIR` writes, for each kind, the first shape's inputs (the
[N, W] q|k|v projection, dout, GLA's log-gates g) and bolt's outputs (o, the q|k|v
gradients, dg) as raw fp32, with a meta.json. This script runs the peer on exactly those
inputs (bf16, as bolt computed them) and reports ||bolt - peer|| / ||peer|| per output:
  lightning  fla chunk_simple_gla(q, k, v, g_gamma=log_decay, scale=1)
  gla        fla chunk_gla(q, k, v, g, scale=1/sqrt(d))
  softmax    torch scaled_dot_product_attention(is_causal=True)
The peer runs on fp32 copies of the inputs (tf32 off), so it is the more accurate side;
PASS when every relative error is <= 1e-2 (bf16 compute). One line per kind, starting
with PASS or FAIL.

Usage: python3 tools/peers/attn_crosscheck.py DIR
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import peer_env  # noqa: E402  (sets TRITON_CACHE_DIR before torch)

import numpy as np  # noqa: E402
import torch  # noqa: E402

TOL = 1e-2


def load(d, name, shape):
    return torch.from_numpy(np.fromfile(os.path.join(d, name + ".f32"), dtype=np.float32).reshape(shape))


def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / max(float(b.norm()), 1e-30))


def check(kind, d):
    meta = json.load(open(os.path.join(d, "meta.json")))
    B, T, H, D, W = meta["B"], meta["T"], meta["H"], meta["d"], meta["W"]
    N, Hd = B * T, H * D
    qkv = load(d, "qkv", (N, W))
    dqkv = load(d, "dqkv", (N, W))
    dout = load(d, "dout", (B, T, H, D)).cuda()
    o_bolt = load(d, "o", (B, T, H, D))
    got = {"o": o_bolt, "dq": dqkv[:, :Hd], "dk": dqkv[:, Hd:2 * Hd], "dv": dqkv[:, 2 * Hd:3 * Hd]}

    def leaf(x):
        return x.reshape(B, T, H, D).cuda().float().requires_grad_(True)

    q, k, v = leaf(qkv[:, :Hd]), leaf(qkv[:, Hd:2 * Hd]), leaf(qkv[:, 2 * Hd:3 * Hd])
    g = None
    if kind == "lightning":
        from fla.ops.simple_gla import chunk_simple_gla
        gamma = torch.tensor(meta["log_decay"], dtype=torch.float32, device="cuda")
        o, _ = chunk_simple_gla(q, k, v, g_gamma=gamma, scale=1.0)
        peer = "fla chunk_simple_gla"
    elif kind == "gla":
        from fla.ops.gla import chunk_gla
        g = load(d, "g", (B, T, H, D)).cuda().float().requires_grad_(True)
        o, _ = chunk_gla(q, k, v, g, scale=D ** -0.5)
        got["dg"] = load(d, "dg", (N, Hd))
        peer = "fla chunk_gla"
    else:
        tq, tk, tv = (x.transpose(1, 2) for x in (q, k, v))
        o = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True).transpose(1, 2)
        peer = "torch SDPA"
    o.backward(dout.float())
    want = {"o": o.detach(), "dq": q.grad, "dk": k.grad, "dv": v.grad}
    if g is not None:
        want["dg"] = g.grad
    errs = {n: rel(got[n].reshape(-1), want[n].detach().cpu().reshape(-1)) for n in got}
    ok = all(e <= TOL for e in errs.values())
    detail = ", ".join("%s %.2e" % (n, e) for n, e in errs.items())
    print("%s crosscheck %s vs %s (B=%d T=%d H=%d D=%d): %s" %
          ("PASS" if ok else "FAIL", kind, peer, B, T, H, D, detail))
    return ok


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    _, why = peer_env.import_fla()
    ok = True
    for kind in ("softmax", "lightning", "gla"):  # fla's slow first compile last
        d = os.path.join(sys.argv[1], kind)
        if not os.path.isdir(d):
            continue
        if kind != "softmax" and why:
            print("FAIL crosscheck %s: fla not importable (%s)" % (kind, why))
            ok = False
            continue
        try:
            ok &= check(kind, d)
        except Exception as e:  # report and go on to the next kind
            print("FAIL crosscheck %s: %s: %s" % (kind, type(e).__name__, e))
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
