"""tools/peers/peer_env.py: what the peer scripts share: the Triton cache folder, fla's
source on sys.path, seeded inputs, relative error and bolt's table layout.

Import this before torch or triton: TRITON_CACHE_DIR must be set before Triton starts.
fla is found, in this order, as $FLA_SRC/fla, as .peers/fla-src/fla under the repository
root (an ignored folder, never committed), or installed.
"""
import os
import sys

os.environ.setdefault("TRITON_CACHE_DIR", "/tmp/triton-cache")
os.environ.setdefault("PYTHONUNBUFFERED", "1")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def add_fla_to_path():
    """Put fla's source first on sys.path; returns the folder used, or None."""
    for src in (os.environ.get("FLA_SRC"), os.path.join(ROOT, ".peers", "fla-src")):
        if src and os.path.isdir(os.path.join(src, "fla")):
            if src not in sys.path:
                sys.path.insert(0, src)
            return src
    return None


def import_fla():
    """(module or None, why not): fla's ops packages this folder uses."""
    src = add_fla_to_path()
    try:
        import fla  # noqa: F401
        from fla.ops.gla import chunk_gla  # noqa: F401
        from fla.ops.simple_gla import chunk_simple_gla  # noqa: F401
    except Exception as e:  # ImportError, or a Triton / device error at import time
        where = src or "no $FLA_SRC or .peers/fla-src, nor an installed fla"
        return None, "%s: %s (%s)" % (type(e).__name__, e, where)
    return fla, None


def parse_list(text, cast=str):
    return [cast(x) for x in text.split(",") if x.strip()]


def rel_err(a, b):
    """||a - b|| / ||b|| in fp64; inf when a has NaN or Inf."""
    import torch

    a = a.detach().double()
    b = b.detach().double()
    if not torch.isfinite(a).all():
        return float("inf")
    den = b.norm().item()
    return (a - b).norm().item() / max(den, 1e-300)


def alibi_log_decay(H):
    """bolt's TNL decays: log lambda_h = -2^(-8 (h+1) / H) (ALiBi slopes), as in
    `bolt bench attn`."""
    return [-(2.0 ** (-8.0 * (h + 1) / H)) for h in range(H)]


# The layout of `bolt bench attn` (train/bench_attn.c), so the tables read side by side.
HEADER = "%8s %6s | %10s %10s | %12s %12s" % ("T", "B", "fwd ms", "fwd+bwd ms", "fwd floor ms",
                                              "f+b floor ms")
COPY_BYTES_PER_S = 4.24e12  # device copy rate measured on an H200 (as bench_attn.c)


def floor_ms(tokens, H, D, n_fwd, n_bwd, backward, elem=2):
    """bench_attn.c's memory floor: fwd reads/writes n_fwd [tokens, H*D] tensors, the
    backward n_bwd more; elem bytes each (bf16)."""
    tensor = float(tokens) * H * D * elem
    n = n_fwd + (n_bwd if backward else 0)
    return n * tensor / COPY_BYTES_PER_S * 1e3


def row(T, B, fwd, both, floor_f, floor_b):
    def ms(x):
        return "%10.3f" % x if x is not None else "%10s" % "-"

    return "%8d %6d | %s %s | %12.3f %12.3f" % (T, B, ms(fwd), ms(both), floor_f, floor_b)
