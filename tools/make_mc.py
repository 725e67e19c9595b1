#!/usr/bin/env python3
"""Build a multiple-choice set from held-out documents (python3 standard library only).

Each question takes one held-out document: the context is its first part (cut at a space
near the middle), the correct ending is its true continuation, and the distractors are
the continuations of other held-out documents, all cut to about the same length at a
word boundary. The output is jsonl with HellaSwag's keys, {"ctx", "endings", "label"},
which `bolt eval CKPT --mc=FILE` tokenizes with the checkpoint's tokenizer (joining
context and ending with one space, which the cut removed).

Held out means what `bolt prep --val_fraction=F` puts in the validation shard: the last
F of the documents of the input jsonl, so a model trained on the train shard never saw
them.

    python3 tools/make_mc.py data_cache/fortunes/fortunes.jsonl out.jsonl --n=400
"""
import argparse
import json
import random
import sys


def split_document(text, min_ctx, ending_chars, cut):
    """(context, continuation) cut at a space near `cut` of the text, or None if too short."""
    middle = int(len(text) * cut)
    spaces = [i for i, ch in enumerate(text) if ch == " " and i >= min_ctx]
    if not spaces:
        return None
    cut = min(spaces, key=lambda i: abs(i - middle))
    ctx, rest = text[:cut], text[cut + 1:]
    ending = clip_words(rest, ending_chars)
    if len(ending) < ending_chars // 2:
        return None
    return ctx, ending


def clip_words(text, limit):
    """text cut to at most `limit` characters at a space (whole words)."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    return text[:cut] if cut > 0 else text[:limit]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", help="documents, one {\"text\": ...} per line (prep's input)")
    ap.add_argument("output", help="the multiple-choice set (.jsonl)")
    ap.add_argument("--val_fraction", type=float, default=0.05,
                    help="the fraction prep held out (default 0.05)")
    ap.add_argument("--n", type=int, default=600, help="questions (default 600)")
    ap.add_argument("--endings", type=int, default=4, help="endings per question (default 4)")
    ap.add_argument("--ending_chars", type=int, default=20,
                    help="length of each ending in characters (default 20: the words right after\n"
                    "the cut are the ones the context decides)")
    ap.add_argument("--min_ctx", type=int, default=32,
                    help="shortest context in characters (default 32)")
    ap.add_argument("--cut", type=float, default=0.5,
                    help="where the context ends, as a fraction of the document (default 0.5)")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    with open(args.input, encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f if line.strip()]
    held_out = docs[len(docs) - int(len(docs) * args.val_fraction + 0.5):]  # as prep rounds
    pairs = [p for p in (split_document(d, args.min_ctx, args.ending_chars, args.cut) for d in held_out) if p]
    if len(pairs) < args.endings:
        sys.exit(f"make_mc: only {len(pairs)} usable held-out documents in {args.input}")
    rng = random.Random(args.seed)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    n = min(args.n, len(pairs))
    with open(args.output, "w", encoding="utf-8") as out:
        for q in order[:n]:
            ctx, true_ending = pairs[q]
            others = rng.sample([i for i in range(len(pairs)) if i != q], args.endings - 1)
            endings = [pairs[i][1] for i in others]
            label = rng.randrange(args.endings)
            endings.insert(label, true_ending)
            out.write(json.dumps({"ctx": ctx, "endings": endings, "label": label}) + "\n")
    print(f"make_mc: {n} questions from {len(pairs)} usable held-out documents "
          f"(of {len(held_out)}) -> {args.output}")


if __name__ == "__main__":
    main()
