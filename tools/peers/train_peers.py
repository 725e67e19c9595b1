#!/usr/bin/env python3
"""tools/peers/train_peers.py: the PyTorch peers of `bolt bench train`: one training step of
each model on random tokens, in bench train's table layout (train/bench_train.c), so the
two read side by side.

  tnl    TransNormerLLM-385M written here in PyTorch on fla's lightning kernel
         chunk_simple_gla(g_gamma=log_decay, scale=1), as bolt's TNL (see TNL below)
  gla    fla's GLAForCausalLM (fused norm, SwiGLU and cross-entropy: fla's defaults)
  llama  transformers' LlamaForCausalLM, attn_implementation="sdpa"

Shapes come from configs/tnl-385m.conf, configs/gla-340m.conf and configs/llama-360m.conf
(read here, with bolt's defaults for the keys they leave out); --batch / --seq-len set B
and T (default 16 x 2048, as the configs). Parameters are pure bf16 (no fp32 master
copy, unlike bolt), the optimizer is torch.optim.AdamW(fused=True) with the config's lr,
betas, eps and weight decay (on matrices only, as bolt), gradients clipped to the config's
grad_clip (1.0).

A step: random tokens and targets (a seeded CUDA generator, fresh each step, as bolt
draws fresh ones), forward, mean cross-entropy, backward, clip_grad_norm_, optimizer
step, zero_grad. The TNL peer's loss covers all B*T targets (as bolt); the library
models take the targets as `labels` and shift them themselves, so theirs covers B*(T-1).
tok/s counts B*T tokens per step for all three.

Columns as bench_train.c:
  first s   from just before the model is built to the end of the first step (init, any
            Triton compile and autotune, one step); unlike bolt's it leaves out the Python
            imports and the CUDA context, made before it starts
  step ms   the median (bench_train.c's: sorted[n/2]) of --steps steps timed with
            time.perf_counter and torch.cuda.synchronize, after the first step and one
            more warm-up step (2 untimed steps, as bolt)
  tok/s     B*T / step
  MFU       bolt's model_flops_per_token (model/model.c) on the peer's own weights, times
            tok/s, over bolt's dense bf16 peak for the device (989 TFLOP/s on H200 / H100
            SXM): 6 x (every matrix but the input embedding, plus vocab x dim for a tied
            LM head; an untied one is among the matrices) + 3 x token mixing
  mem GiB   torch.cuda.max_memory_allocated from the model's creation on (bolt reports its
            allocator's peak bytes in use)
An out-of-memory or any other failure prints a row saying so; exit status 1 if a requested
model could not run.

TNL (bolt's, model/mixer_lightning.c and model/model.c): embedding x sqrt(dim); per layer
x += mixer(SRMSNorm(x)), x += l3(l1(h) * l2(h)) with h = SRMSNorm(x) (SGLU, no activation);
SRMSNorm(x) = x / (sqrt(mean(x^2)) + eps), no weight, in fp32; the mixer is one [4D, D]
projection split q|k|v|u, o = lightning(SiLU(q), SiLU(k), v) per head, out =
W_o(SRMSNorm(o) * u) with the norm over all D features of o (not per head, as bolt's);
final SRMSNorm, LM head tied to the embedding. Layer l of L has log-decays
-s_h * (1 - l/(L-1) + 1e-5), s_h the ALiBi slopes (model_config.c, decay = alibi).
Matrices init N(0, 0.02) as bolt's. Its cross-entropy is fla's FusedCrossEntropyLoss, as
the GLA peer's; everything else is eager PyTorch (no torch.compile). Its vocabulary is the
config's 50304 (issue 8's peer row says 32000).

Usage: python3 tools/peers/train_peers.py [--only tnl,gla,llama] [--batch 16]
           [--seq-len 2048] [--steps 10] [--seed 1337] [--verbose]
fla comes from $FLA_SRC or .peers/fla-src (peer_env.py); TRITON_CACHE_DIR defaults to
/tmp/triton-cache (fla's first step compiles and autotunes for minutes without a cache).
"""
import argparse
import gc
import math
import os
import sys
import time
import traceback

import peer_env  # sets TRITON_CACHE_DIR before torch / triton load
import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = ("tnl", "gla", "llama")
CONFIGS = {"tnl": "configs/tnl-385m.conf", "gla": "configs/gla-340m.conf",
           "llama": "configs/llama-360m.conf"}
MIXER = {"tnl": "lightning", "gla": "gla", "llama": "softmax"}  # bolt's mixer per family


# ---- the configs ----------------------------------------------------------------------

def read_conf(path):
    """A bolt config's `key = value` lines (text after # is a comment) as a dict."""
    conf = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if "=" in line:
                key, value = line.split("=", 1)
                conf[key.strip()] = value.strip()
    return conf


def model_dims(name):
    """The sizes and optimizer settings of CONFIGS[name], with bolt's defaults
    (train/config.c config_defaults, model/model_config.c model_config_check) for the
    keys the file leaves out."""
    c = read_conf(os.path.join(peer_env.ROOT, CONFIGS[name]))
    D, H = int(c["dim"]), int(c["n_heads"])
    mlp = int(c.get("mlp_dim", 0))
    if mlp == 0:  # default_mlp_dim(dim, 4): fla's rule
        mlp = 256 * ((int(D * 4 * 2.0 / 3.0) + 255) // 256)
    eps = float(c.get("norm_eps", 0))
    if eps == 0:
        eps = 1e-5 if name == "llama" else 1e-6
    return dict(vocab=int(c["vocab_size"]), dim=D, layers=int(c["n_layers"]), heads=H,
                kv_heads=int(c.get("n_kv_heads", 0)) or H,
                head_dim=int(c.get("head_dim", 0)) or D // H, mlp=mlp,
                tied=c.get("tie_embeddings", "false") in ("true", "1"), norm_eps=eps,
                rope_theta=float(c.get("rope_theta", 0)) or 10000.0,
                gate_low_rank=int(c.get("gate_low_rank", 0)) or 16,
                gate_normalizer=float(c.get("gate_normalizer", 0)) or 16.0,
                attn_block=int(c.get("attn_block", 0)) or 64,
                decay=c.get("decay", "alibi"), lr=float(c.get("lr", 3e-3)),
                beta1=float(c.get("beta1", 0.9)), beta2=float(c.get("beta2", 0.95)),
                adam_eps=float(c.get("adam_eps", 1e-8)),
                weight_decay=float(c.get("weight_decay", 0.1)),
                grad_clip=float(c.get("grad_clip", 1.0)))


# ---- TNL in PyTorch on fla's lightning kernel ---------------------------------------------

def alibi_slope(H, h):
    """model_config.c decay_slope(DECAY_ALIBI): ALiBi's slopes, interpolated as ALiBi does
    when H is not a power of two."""
    p = 1
    while p * 2 <= H:
        p *= 2
    if h < p:
        return 2.0 ** (-8.0 * (h + 1) / p)
    return 2.0 ** (-8.0 * (2 * (h - p) + 1) / (2 * p))


def tnl_log_decays(H, L, layer):
    """model_config.c lightning_log_decays: log lambda_h of layer `layer`."""
    depth = layer / (L - 1) if L > 1 else 0.0
    return [-alibi_slope(H, h) * (1.0 - depth + 1e-5) for h in range(H)]


def srms_norm(x, eps):
    """bolt's NORM_SRMS: x / (sqrt(mean(x^2)) + eps) over the last dim, no weight (fp32)."""
    xf = x.float()
    return (xf / (xf.pow(2).mean(-1, keepdim=True).sqrt() + eps)).to(x.dtype)


class TNLMixer(nn.Module):
    """model/mixer_lightning.c: q|k|v|u = x W_qkvu; o = lightning(SiLU(q), SiLU(k), v);
    out = W_o(SRMSNorm(o) * u)."""

    def __init__(self, d, layer):
        super().__init__()
        D = d["dim"]
        self.heads, self.eps = d["heads"], d["norm_eps"]
        self.qkvu_proj = nn.Linear(D, 4 * D, bias=False)
        self.out_proj = nn.Linear(D, D, bias=False)
        decay = tnl_log_decays(d["heads"], d["layers"], layer)
        self.register_buffer("log_decay", torch.tensor(decay, dtype=torch.float32),
                             persistent=False)
        from fla.ops.simple_gla import chunk_simple_gla

        self.lightning = chunk_simple_gla

    def forward(self, x):
        B, T, D = x.shape
        H = self.heads
        q, k, v, u = self.qkvu_proj(x).chunk(4, dim=-1)
        q = F.silu(q).contiguous().view(B, T, H, D // H)  # fla's [B, T, H, d] layout
        k = F.silu(k).contiguous().view(B, T, H, D // H)
        v = v.contiguous().view(B, T, H, D // H)
        o = self.lightning(q, k, v, g_gamma=self.log_decay, scale=1.0)[0]
        o = o.reshape(B, T, D)
        return self.out_proj(srms_norm(o, self.eps) * u)


class TNLBlock(nn.Module):
    """model.c layer_forward for TNL: SRMSNorm, mixer, residual; SRMSNorm, SGLU, residual."""

    def __init__(self, d, layer):
        super().__init__()
        D, Fd = d["dim"], d["mlp"]
        self.eps = d["norm_eps"]
        self.token_mixer = TNLMixer(d, layer)
        self.l1 = nn.Linear(D, Fd, bias=False)
        self.l2 = nn.Linear(D, Fd, bias=False)
        self.l3 = nn.Linear(Fd, D, bias=False)

    def forward(self, x):
        x = x + self.token_mixer(srms_norm(x, self.eps))
        h = srms_norm(x, self.eps)
        return x + self.l3(self.l1(h) * self.l2(h))


class TNL(nn.Module):
    """Embedding x sqrt(D), the blocks, final SRMSNorm, LM head tied to the embedding;
    forward returns the mean cross-entropy over every target (fla's fused kernel)."""

    def __init__(self, d):
        super().__init__()
        from fla.modules import FusedCrossEntropyLoss

        if not d["tied"] or d["decay"] != "alibi":
            raise ValueError("this TNL peer has a tied LM head and ALiBi decays only")
        self.eps, self.scale = d["norm_eps"], math.sqrt(d["dim"])
        self.embed_tokens = nn.Embedding(d["vocab"], d["dim"])
        self.layers = nn.ModuleList([TNLBlock(d, i) for i in range(d["layers"])])
        self.criterion = FusedCrossEntropyLoss(inplace_backward=True)
        for p in self.parameters():  # model_init_weights: matrices N(0, 0.02)
            nn.init.normal_(p, mean=0.0, std=0.02)

    def forward(self, tokens, targets):
        x = self.embed_tokens(tokens) * self.scale
        for layer in self.layers:
            x = layer(x)
        logits = F.linear(srms_norm(x, self.eps), self.embed_tokens.weight)
        return self.criterion(logits.view(-1, logits.shape[-1]), targets.view(-1))


def params_to_bf16(model):
    """Every parameter to bf16 in place (a tied one once); buffers (the decays, RoPE's
    frequencies) stay fp32."""
    for p in model.parameters():
        p.data = p.data.to(torch.bfloat16)


def build_tnl(d):
    """(model, loss(tokens, targets), input embedding, words)"""
    with torch.device("cuda"):
        model = TNL(d)
    params_to_bf16(model)
    return model, model, model.embed_tokens.weight, "PyTorch + fla chunk_simple_gla"


# ---- the library models ---------------------------------------------------------------------

def build_gla(d):
    import fla
    from fla.models import GLAConfig, GLAForCausalLM

    # transformers 5 wants _tied_weights_keys as {tied: source}; fla may still give a list
    # (as tools/hf_parity.py).
    if isinstance(getattr(GLAForCausalLM, "_tied_weights_keys", None), list):
        if int(__import__("transformers").__version__.split(".")[0]) >= 5:
            GLAForCausalLM._tied_weights_keys = {"lm_head.weight": "model.embeddings.weight"}
    cfg = GLAConfig(hidden_size=d["dim"], num_hidden_layers=d["layers"], num_heads=d["heads"],
                    expand_k=0.5, expand_v=1, hidden_ratio=4, intermediate_size=d["mlp"],
                    attn_mode="chunk", use_short_conv=False, use_output_gate=True, use_gk=True,
                    use_gv=False, hidden_act="swish", norm_eps=d["norm_eps"],
                    vocab_size=d["vocab"], tie_word_embeddings=d["tied"], fuse_norm=True,
                    use_cache=False, max_position_embeddings=2048)
    with torch.device("cuda"):
        model = GLAForCausalLM(cfg)
    params_to_bf16(model)
    embed = model.get_input_embeddings().weight
    if d["tied"] and model.lm_head.weight is not embed:
        model.lm_head.weight = embed
    # GLAConfig has no key for the gate's rank and normalizer: fla's layer defaults (16, 16)
    # must be the config's.
    attn = model.model.layers[0].attn
    rank, norm = attn.gk_proj[0].out_features, attn.gate_logit_normalizer
    if rank != d["gate_low_rank"] or norm != d["gate_normalizer"]:
        raise ValueError("fla's GLA layer has gate rank %d, normalizer %s; the config %d, %s"
                         % (rank, norm, d["gate_low_rank"], d["gate_normalizer"]))

    def loss(tokens, targets):
        return model(input_ids=tokens, labels=targets, use_cache=False).loss

    return model, loss, embed, "fla %s GLAForCausalLM" % getattr(fla, "__version__", "?")


def llama_config(d, T):
    """A LlamaConfig for configs/llama-360m.conf; rope_theta through whichever API this
    transformers has (rope_parameters in 5.x, rope_theta before), as tools/hf_parity.py."""
    import inspect

    from transformers import LlamaConfig

    kw = dict(vocab_size=d["vocab"], hidden_size=d["dim"], intermediate_size=d["mlp"],
              num_hidden_layers=d["layers"], num_attention_heads=d["heads"],
              num_key_value_heads=d["kv_heads"], head_dim=d["head_dim"],
              rms_norm_eps=d["norm_eps"], tie_word_embeddings=d["tied"],
              max_position_embeddings=max(2048, T), attention_bias=False, mlp_bias=False,
              hidden_act="silu", use_cache=False)
    fields = set(getattr(LlamaConfig, "__dataclass_fields__", {}))
    fields |= set(inspect.signature(LlamaConfig.__init__).parameters)
    if "rope_parameters" in fields:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": d["rope_theta"]}
    else:
        kw["rope_theta"] = d["rope_theta"]
    try:
        cfg = LlamaConfig(attn_implementation="sdpa", **kw)
    except TypeError:
        cfg = LlamaConfig(**kw)
        cfg._attn_implementation = "sdpa"
    return cfg


def build_llama(d, T):
    import transformers
    from transformers import LlamaForCausalLM

    with torch.device("cuda"):
        model = LlamaForCausalLM(llama_config(d, T))
    params_to_bf16(model)

    def loss(tokens, targets):
        return model(input_ids=tokens, labels=targets, use_cache=False).loss

    return (model, loss, model.get_input_embeddings().weight,
            "transformers %s LlamaForCausalLM, SDPA" % transformers.__version__)


# ---- measuring ------------------------------------------------------------------------------

def peak_bf16_flops(name):
    """kernels/ops_cuda.cu peak_bf16_flops: the dense bf16 peak bolt's MFU divides by."""
    if "H200" in name:
        return 989e12
    if "H100" in name:
        if "PCIe" in name:
            return 756e12
        if "NVL" in name:
            return 835e12
        return 989e12
    if "A100" in name:
        return 312e12
    return 0.0


def flops_per_token(model, embed, d, mixer, T):
    """model/model.c model_flops_per_token on the peer's weights: 6 x (every matrix but the
    input embedding, plus vocab x dim for a tied LM head) + 3 x token mixing per layer."""
    matmul = sum(p.numel() for p in model.parameters() if p.dim() == 2 and p is not embed)
    if d["tied"]:  # an untied LM head is one of the matrices above
        matmul += d["vocab"] * d["dim"]
    D, blk, hd = float(d["dim"]), d["attn_block"], d["dim"] / d["heads"]
    if mixer == "softmax":  # causal QK^T and PV
        mixing = 2.0 * T * d["heads"] * d["head_dim"]
    elif mixer == "gla":  # the state read and update, the chunk's causal part
        mixing = 2.0 * (D / 2) * hd * 2 + 2.0 * blk * (D / 2 + D) / 2
    else:
        mixing = 2.0 * D * hd * 2 + 2.0 * blk * 2 * D / 2
    return 6.0 * matmul + 3.0 * mixing * d["layers"]


def make_optimizer(params, d):
    """Fused AdamW; weight decay on matrices, none on vectors (bolt's no_decay tensors)."""
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": d["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=d["lr"], betas=(d["beta1"], d["beta2"]),
                             eps=d["adam_eps"], fused=True)


def train_step(loss_fn, params, opt, d, B, T, gen):
    """One optimizer step on fresh random tokens; returns the loss (not synchronized)."""
    tokens = torch.randint(0, d["vocab"], (B, T), device="cuda", generator=gen)
    targets = torch.randint(0, d["vocab"], (B, T), device="cuda", generator=gen)
    loss = loss_fn(tokens, targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, d["grad_clip"])
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.detach()


def measure(name, args, info):
    """Builds model `name`, runs 2 + args.steps steps; returns the table's numbers. Fills
    info["params"] and info["about"] as soon as the model exists (for an error row)."""
    d = model_dims(name)
    B, T = args.batch, args.seq_len
    torch.manual_seed(args.seed)  # the initial weights
    gen = torch.Generator(device="cuda")
    gen.manual_seed(args.seed)  # the tokens
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    if name == "tnl":
        model, loss_fn, embed, about = build_tnl(d)
    elif name == "gla":
        model, loss_fn, embed, about = build_gla(d)
    else:
        model, loss_fn, embed, about = build_llama(d, T)
    model.train()
    params = list(model.parameters())  # a tied weight once
    info["params"] = sum(p.numel() for p in params)
    info["about"] = about
    opt = make_optimizer(params, d)
    losses = [train_step(loss_fn, params, opt, d, B, T, gen)]
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    losses.append(train_step(loss_fn, params, opt, d, B, T, gen))
    torch.cuda.synchronize()
    secs = []
    for _ in range(args.steps):
        t = time.perf_counter()
        losses.append(train_step(loss_fn, params, opt, d, B, T, gen))
        torch.cuda.synchronize()
        secs.append(time.perf_counter() - t)
    values = [x.item() for x in losses]
    if not all(math.isfinite(x) for x in values):
        raise RuntimeError("the loss is not finite: %s" % values)
    secs.sort()
    step = secs[len(secs) // 2]
    peak = peak_bf16_flops(torch.cuda.get_device_name())
    flops = flops_per_token(model, embed, d, MIXER[name], T) * B * T
    return dict(first=first, step=step, tok_s=B * T / step,
                mfu="%.1f%%" % (100 * flops / step / peak) if peak > 0 else "-",
                mem=torch.cuda.max_memory_allocated() / 2.0 ** 30,
                loss="%.3f -> %.3f" % (values[0], values[-1]))


def is_oom(e):
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or "out of memory" in str(e)


def run_model(name, args, fla_why):
    """Prints the header line, the column heads and one row; True if the model ran."""
    info = {"params": None, "about": ""}
    result = error = None
    if name in ("tnl", "gla") and fla_why:
        error = "fla not importable: %s" % fla_why
    else:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            result = measure(name, args, info)
        except Exception as e:  # out of memory, a missing library, a kernel error
            error = "out of memory" if is_oom(e) else "%s: %s" % (
                type(e).__name__, str(e).split("\n")[0][:160])
            if args.verbose:
                traceback.print_exc()
    gc.collect()
    torch.cuda.empty_cache()
    params = "%.1fM params" % (info["params"] / 1e6) if info["params"] else "params -"
    print("\ntrain peer: %s, %s, %s (%s)" % (name, params, info["about"] or "-", args.device_name))
    print("%6s %6s %6s | %10s %10s %10s %7s %9s" % ("B", "T", "accum", "first s", "step ms",
                                                   "tok/s", "MFU", "mem GiB"))
    if result is None:
        print("%6d %6d %6d | %s" % (args.batch, args.seq_len, 1, error))
        return False
    r = result
    print("%6d %6d %6d | %10.2f %10.2f %10.0f %7s %9.2f" % (
        args.batch, args.seq_len, 1, r["first"], r["step"] * 1e3, r["tok_s"], r["mfu"], r["mem"]))
    print("  loss %s over %d steps" % (r["loss"], args.steps + 2))
    sys.stdout.flush()
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="tnl,gla,llama", help="comma list of: tnl, gla, llama")
    ap.add_argument("--batch", type=int, default=16, help="B, sequences per step")
    ap.add_argument("--seq-len", type=int, default=2048, help="T, tokens per sequence")
    ap.add_argument("--steps", type=int, default=10, help="timed steps after 2 warm-up steps")
    ap.add_argument("--seed", type=int, default=1337, help="seed of the random tokens")
    ap.add_argument("--verbose", action="store_true", help="tracebacks of failing models")
    args = ap.parse_args()
    names = peer_env.parse_list(args.only)
    for n in names:
        if n not in MODELS:
            ap.error("--only: unknown model %r (tnl, gla, llama)" % n)
    if args.batch < 1 or args.seq_len < 2 or args.steps < 1:
        ap.error("--batch and --steps must be >= 1, --seq-len >= 2")
    if not torch.cuda.is_available():
        sys.exit("train_peers: no GPU visible to torch")
    args.device_name = torch.cuda.get_device_name()
    print("train peers: torch %s, %s, B=%d T=%d, %d timed steps, TRITON_CACHE_DIR=%s" % (
        torch.__version__, args.device_name, args.batch, args.seq_len, args.steps,
        os.environ["TRITON_CACHE_DIR"]))
    fla_why = None
    if "tnl" in names or "gla" in names:
        fla_mod, fla_why = peer_env.import_fla()
        if fla_mod is not None:
            print("fla %s at %s" % (getattr(fla_mod, "__version__", "?"), fla_mod.__file__))
    ok = True
    for n in names:
        ok &= run_model(n, args, fla_why)
    print("\ntrain peers: %s" % ("all models ran" if ok else "some models failed"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
