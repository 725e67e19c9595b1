#!/usr/bin/env python3
"""tools/hf_parity.py: bolt's Hugging Face interop checked against the real libraries.

For each config, a model is built from the config (no download), given seeded non-trivial
weights, and saved with save_pretrained. Then:
  import: `bolt import` of that directory, `bolt eval --tokens --logits_out` (on the CPU by
          default; --device cuda runs it on bolt's CUDA backend) vs the library's fp32
          logits of the same tokens;
  export: `bolt export` of the import, loaded back with from_pretrained: its logits vs the
          original's, and every exported tensor compared exactly with the saved one.
Relative error ||a - b|| / ||b|| must be below 1e-4 everywhere (bolt on the CPU computes in
fp32); with --device cuda bolt computes in bf16, so its import logits pass within 1e-2,
or when at most 1.25x as far from the fp32 logits as the library's own bf16 GPU run of the
same model ("peer bf16": the precision floor of bf16 activations), while the export checks
(the library's own logits of the exported model, and the tensors) stay as they are.
Llama cases use transformers' LlamaForCausalLM (MHA untied, GQA tied and sharded, rope_theta only under
rope_parameters with head_dim != hidden/heads, bf16 weights); GLA uses fla's
GLAForCausalLM when fla is importable (it needs a GPU), else it is skipped.

Usage: python3 tools/hf_parity.py [--bolt ./bolt] [--device cpu|cuda] [--keep DIR]
Prints a table; exit status 1 if any check fails. Needs torch, transformers, safetensors,
numpy; no network.
"""
import argparse
import copy
import inspect
import json
import math
import os
import subprocess
import sys
import tempfile
import traceback

import numpy as np
import torch

TOL = 1e-4          # fp32 against fp32
TOL_BF16 = 1e-2     # bolt's CUDA backend (bf16 weights and activations) against fp32
# bf16 import logits may be this much further from fp32 than the library's own bf16 run:
# fla's GLA peer runs its fused recurrent kernel (fp32 inside), bolt's chunked kernel
# rounds its tensor-core operands to bf16.
PEER_MARGIN = 1.25
N_TOKENS = 33
# The device `bolt eval` runs on (--device); main sets it.
EVAL_DEVICE = "cpu"


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def run(cmd):
    """Run a command; on failure print its output and raise."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stdout.write(p.stdout)
        sys.stderr.write(p.stderr)
        raise RuntimeError("command failed (%d): %s" % (p.returncode, " ".join(cmd)))
    return p.stdout.strip()


def randomize(model, seed):
    """Seeded weights: matrices N(0, 1/fan_in), norm weights 1 + 0.1 N, biases 0.1 N."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.ndim == 1:
                p.copy_(0.1 * r if name.endswith("bias") else 1.0 + 0.1 * r)
            else:
                p.copy_(r / math.sqrt(p.shape[1]))


def torch_logits(model, ids, device="cpu"):
    with torch.no_grad():
        x = torch.tensor([ids], dtype=torch.long, device=device)
        out = model(input_ids=x, use_cache=False)
    return out.logits[0].float().cpu().numpy()


def save_pretrained(model, path, shard_size=None):
    kw = {"max_shard_size": shard_size} if shard_size else {}
    try:
        model.save_pretrained(path, safe_serialization=True, **kw)
    except TypeError:  # versions where safetensors is the only format
        model.save_pretrained(path, **kw)


def load_pretrained(cls, path):
    model = None
    for kw in ({"dtype": torch.float32}, {"torch_dtype": torch.float32}):
        try:
            model = cls.from_pretrained(path, attn_implementation="eager", **kw)
            break
        except TypeError:
            continue
    if model is None:
        model = cls.from_pretrained(path)
    return model.float().eval()


def saved_tensors(path):
    """Every tensor of a save_pretrained directory (single file or sharded)."""
    from safetensors import safe_open

    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for name in files:
        with safe_open(os.path.join(path, name), framework="pt") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    return out


def compare_tensors(original_dir, exported_dir):
    """'exact', or what differs, between two saved models' tensors."""
    a, b = saved_tensors(original_dir), saved_tensors(exported_dir)
    a = {k: v for k, v in a.items() if not k.endswith("rotary_emb.inv_freq")}
    if set(a) != set(b):
        return "names differ: only original %s, only export %s" % (
            sorted(set(a) - set(b))[:3], sorted(set(b) - set(a))[:3])
    for k in sorted(a):
        x, y = a[k].float(), b[k].float()
        if x.shape != y.shape or not torch.equal(x, y):
            return "%s differs" % k
    return "exact"


def bf16_peer_err(model, ids, ref, device):
    """How far the library's own bf16 run (on the GPU) is from its fp32 logits: the
    precision floor bolt's bf16 import is judged against. NaN without a GPU."""
    if EVAL_DEVICE != "cuda" or not torch.cuda.is_available():
        return float("nan")
    m16 = copy.deepcopy(model).to(torch.bfloat16)
    for name, buf in model.named_buffers():  # RoPE's inv_freq stays fp32, as in bolt
        if buf.is_floating_point():
            mod, _, leaf = name.rpartition(".")
            m16.get_submodule(mod).register_buffer(leaf, buf.clone(), persistent=False)
    try:
        m16.set_attn_implementation("sdpa")  # fp32 scores, as bolt's kernel keeps them
    except (AttributeError, ValueError, TypeError):
        pass
    return rel_err(torch_logits(m16.to("cuda").eval(), ids, "cuda"), ref)


def bolt_logits(bolt, ckpt, ids, work):
    path = os.path.join(work, "logits.f32")
    run([bolt, "eval", ckpt, "--tokens=" + ",".join(map(str, ids)),
         "--logits_out=" + path, "--device=" + EVAL_DEVICE])
    return np.fromfile(path, dtype="<f4")


# ---------------------------------------------------------------------------------------
# Llama (transformers)


def llama_config(c):
    """A LlamaConfig from our case dict; rope_theta through whichever API this
    transformers has (rope_parameters in 5.x, rope_theta before)."""
    from transformers import LlamaConfig

    kw = dict(vocab_size=c["vocab"], hidden_size=c["hidden"], intermediate_size=c["inter"],
              num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
              num_key_value_heads=c["kv"], rms_norm_eps=c["eps"],
              tie_word_embeddings=c["tied"], max_position_embeddings=256,
              bos_token_id=1, eos_token_id=2)
    if c.get("head_dim"):
        kw["head_dim"] = c["head_dim"]
    fields = set(getattr(LlamaConfig, "__dataclass_fields__", {}))
    fields |= set(inspect.signature(LlamaConfig.__init__).parameters)
    if "rope_parameters" in fields:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": c["theta"]}
    else:
        kw["rope_theta"] = c["theta"]
    try:
        cfg = LlamaConfig(attn_implementation="eager", **kw)
    except TypeError:
        cfg = LlamaConfig(**kw)
        cfg._attn_implementation = "eager"
    return cfg


def check_rope(model, c):
    """The model really uses our theta (and head_dim): its inv_freq."""
    rot = getattr(model.model, "rotary_emb", None)
    inv = getattr(rot, "inv_freq", None) if rot is not None else None
    if inv is None:
        return
    hd = c.get("head_dim") or c["hidden"] // c["heads"]
    want = 1.0 / (c["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    got = inv.double().cpu()
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-5):
        raise RuntimeError("transformers did not take rope_theta %g / head_dim %d"
                           % (c["theta"], hd))


def set_rope_style(path, style):
    """Make config.json give rope_theta only under rope_parameters (style "parameters",
    as transformers 5 writes it) or only as a top-level key ("top-level", as transformers
    4 wrote it). Returns what was done."""
    p = os.path.join(path, "config.json")
    with open(p) as f:
        j = json.load(f)
    rp = j.pop("rope_parameters", None) or {}
    top = j.pop("rope_theta", None)
    theta = top if top is not None else rp.get("rope_theta")
    if theta is None:
        raise RuntimeError("config.json has no rope_theta at all")
    if style == "parameters":
        rp.setdefault("rope_type", "default")
        rp["rope_theta"] = theta
        j["rope_parameters"] = rp
        done = "as saved" if top is None else "moved under rope_parameters"
    else:
        j["rope_theta"] = theta
        done = "as saved" if top is not None and not rp else "moved to top level"
    if "rope_scaling" in j and j["rope_scaling"] is None:
        del j["rope_scaling"]
    with open(p, "w") as f:
        json.dump(j, f, indent=2)
    return done


LLAMA_CASES = [
    dict(name="llama MHA untied", vocab=517, hidden=96, inter=250, layers=3, heads=4, kv=4,
         eps=1e-5, theta=2000.0, tied=False, rope="top-level"),
    dict(name="llama GQA tied sharded", vocab=300, hidden=128, inter=341, layers=2, heads=8,
         kv=2, head_dim=16, eps=1e-6, theta=500000.0, tied=True, shard="60KB"),
    dict(name="llama rope_parameters", vocab=800, hidden=64, inter=173, layers=2, heads=4,
         kv=1, head_dim=32, eps=1e-5, theta=777.0, tied=False, rope="parameters"),
    dict(name="llama bf16 weights", vocab=400, hidden=64, inter=150, layers=2, heads=4, kv=2,
         eps=1e-5, theta=10000.0, tied=False, bf16=True),
]


def llama_case(c, seed, bolt, work):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(c)).float().eval()
    randomize(model, seed)
    if c["tied"]:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    check_rope(model, c)
    hf_dir = os.path.join(work, "hf")
    if c.get("bf16"):
        # Stored in bf16; the reference is the fp32 model with the same rounded weights
        # (converting the model itself would round RoPE's inv_freq buffer too).
        save_pretrained(copy.deepcopy(model).to(torch.bfloat16), hf_dir, c.get("shard"))
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    else:
        save_pretrained(model, hf_dir, c.get("shard"))
    notes = []
    if c.get("shard"):
        if not os.path.exists(os.path.join(hf_dir, "model.safetensors.index.json")):
            raise RuntimeError("save_pretrained wrote no shard index")
        shards = [f for f in os.listdir(hf_dir) if f.endswith(".safetensors")]
        notes.append("%d shards" % len(shards))
    if c.get("rope"):
        notes.append("rope: " + set_rope_style(hf_dir, c["rope"]))

    rng = np.random.RandomState(seed)
    ids = [int(x) for x in rng.randint(0, c["vocab"], size=N_TOKENS)]
    ref = torch_logits(model, ids)

    out = os.path.join(work, "bolt")
    summary = run([bolt, "import", hf_dir, out])
    got = bolt_logits(bolt, out, ids, work)
    if got.size != ref.size:
        raise RuntimeError("bolt wrote %d logits, expected %d" % (got.size, ref.size))
    err_import = rel_err(got.reshape(ref.shape), ref)
    e_peer = bf16_peer_err(model, ids, ref, "cpu")

    exp = os.path.join(work, "export")
    run([bolt, "export", out, exp])
    with open(os.path.join(exp, "config.json")) as f:
        exp_cfg = json.load(f)
    if bool(exp_cfg.get("tie_word_embeddings")) != c["tied"]:
        raise RuntimeError("export: tie_word_embeddings is %r" % exp_cfg.get("tie_word_embeddings"))
    back = load_pretrained(LlamaForCausalLM, exp)
    err_export = rel_err(torch_logits(back, ids), ref)
    tensors = compare_tensors(hf_dir, exp)
    if c.get("bf16"):  # the export is fp32: values must equal the bf16 originals
        notes.append("export fp32 of bf16")
    return err_import, err_export, tensors, notes, summary, e_peer


# ---------------------------------------------------------------------------------------
# GLA (fla)


def gla_case(tied, seed, bolt, work):
    from fla.models import GLAConfig, GLAForCausalLM

    # transformers 5 wants _tied_weights_keys as {tied: source}; fla may still give a list.
    if isinstance(getattr(GLAForCausalLM, "_tied_weights_keys", None), list):
        major = int(__import__("transformers").__version__.split(".")[0])
        if major >= 5:
            GLAForCausalLM._tied_weights_keys = {"lm_head.weight": "model.embeddings.weight"}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    vocab = 333
    kw = dict(hidden_size=64, num_hidden_layers=2, num_heads=2, vocab_size=vocab,
              intermediate_size=200, expand_k=0.5, expand_v=1, use_short_conv=False,
              use_output_gate=True, use_gk=True, use_gv=False, fuse_norm=True,
              attn_mode="fused_recurrent", tie_word_embeddings=tied, norm_eps=1e-6,
              hidden_act="swish", bos_token_id=1, eos_token_id=2)
    cfg = None
    for extra in ({"fuse_cross_entropy": False}, {}):
        try:
            cfg = GLAConfig(**kw, **extra)
            break
        except TypeError:
            continue
    model = GLAForCausalLM(cfg).float().eval()
    randomize(model, seed)
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embeddings.weight.data_ptr()
    hf_dir = os.path.join(work, "hf")
    save_pretrained(model, hf_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    rng = np.random.RandomState(seed)
    ids = [int(x) for x in rng.randint(0, vocab, size=N_TOKENS)]
    ref = torch_logits(model, ids, device)

    out = os.path.join(work, "bolt")
    summary = run([bolt, "import", hf_dir, out])
    got = bolt_logits(bolt, out, ids, work)
    if got.size != ref.size:
        raise RuntimeError("bolt wrote %d logits, expected %d" % (got.size, ref.size))
    err_import = rel_err(got.reshape(ref.shape), ref)
    notes = ["fla on " + device]
    e_peer = bf16_peer_err(model, ids, ref, device)
    exp = os.path.join(work, "export")
    run([bolt, "export", out, exp])
    back = GLAForCausalLM.from_pretrained(exp).float().eval().to(device)
    err_export = rel_err(torch_logits(back, ids, device), ref)
    return err_import, err_export, compare_tensors(hf_dir, exp), notes, summary, e_peer


# ---------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bolt", default=os.environ.get("BOLT", "./bolt"))
    ap.add_argument("--keep", default=None, help="keep the work directories under DIR")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="the device bolt eval runs on (cuda: import tolerance %g)" % TOL_BF16)
    args = ap.parse_args()
    global EVAL_DEVICE
    EVAL_DEVICE = args.device
    tol_import = TOL_BF16 if args.device == "cuda" else TOL
    bolt = os.path.abspath(args.bolt)
    if not os.access(bolt, os.X_OK):
        sys.exit("hf_parity: %s is not an executable (build bolt first)" % bolt)
    torch.set_grad_enabled(False)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        try:
            transformers.utils.logging.disable_progress_bar()
        except AttributeError:
            pass
        print("transformers %s, torch %s, bolt eval on %s" % (transformers.__version__,
                                                             torch.__version__, args.device))
    except ImportError:
        sys.exit("hf_parity: transformers is not installed")

    root = args.keep or tempfile.mkdtemp(prefix="hf_parity_")
    rows, failed = [], False

    def record(name, fn):
        nonlocal failed
        work = os.path.join(root, "".join(ch if ch.isalnum() else "_" for ch in name))
        os.makedirs(work, exist_ok=True)
        try:
            e_in, e_out, tensors, notes, summary, e_peer = fn(work)
            # On the GPU, bf16 import logits pass within 1e-2 of the fp32 reference, or
            # within PEER_MARGIN of the library's own bf16 run's distance from it.
            near_peer = args.device == "cuda" and e_in <= PEER_MARGIN * e_peer
            ok_in = e_in < tol_import or near_peer
            ok = ok_in and e_out < TOL and tensors == "exact"
            print("  " + summary)
        except Exception as e:  # one failing case does not hide the others
            traceback.print_exc()
            e_in = e_out = e_peer = float("nan")
            tensors, notes, ok = "error: %s" % e, [], False
        failed |= not ok
        rows.append((name, e_in, e_peer, e_out, tensors, ", ".join(notes), "ok" if ok else "FAIL"))

    for i, c in enumerate(LLAMA_CASES):
        record(c["name"], lambda work, c=c, i=i: llama_case(c, 1000 + i, bolt, work))
    try:
        import fla  # noqa: F401

        have_fla = True
    except ImportError:
        have_fla = False
    if have_fla:
        record("gla untied (fla)", lambda work: gla_case(False, 2000, bolt, work))
        record("gla tied (fla)", lambda work: gla_case(True, 2001, bolt, work))

    print()
    print("%-24s %12s %12s %12s  %-14s %-30s %s" % ("case", "import rel", "peer bf16",
                                                    "export rel", "tensors", "notes", "result"))
    for name, a, p, b, t, notes, res in rows:
        print("%-24s %12.3e %12.3e %12.3e  %-14s %-30s %s" % (name, a, p, b, t, notes, res))
    if not have_fla:
        print("fla not installed: GLA parity skipped")
    peer_rule = ""
    if args.device == "cuda":
        peer_rule = ", or <= %.2f x peer bf16, the library's own bf16 GPU run" % PEER_MARGIN
    print("tolerance: import %.0e (bolt on %s%s), export %.0e (relative L2 over all logits "
          "of %d tokens)" % (tol_import, args.device, peer_rule, TOL, N_TOKENS))
    n_ok = sum(1 for r in rows if r[-1] == "ok")
    print("parity: %d passed, %d failed%s" % (n_ok, len(rows) - n_ok,
                                             "" if have_fla else " (GLA skipped: no fla)"))
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
