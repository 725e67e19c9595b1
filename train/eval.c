// train/eval.c: `bolt eval CKPT ...`: validation loss and perplexity of a checkpoint on
// token shards (in order, no shuffle), or the logits of a given token sequence computed
// with the recurrent form (model_decode_step), written as raw fp32 for parity checks
// against other implementations (tools/hf_parity.py).
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../data/loader.h"
#include "../core/util.h"
#include "../model/checkpoint.h"
#include "commands.h"
#include "mc_eval.h"

enum { PATH_CAP = 4096 };

typedef struct EvalArgs {
    const char *ckpt, *data, *tokens, *logits_out, *device;
    const char *mc, *mc_out; // multiple-choice set and per-example scores (train/mc_eval.h)
    int batch_size, seq_len;
    int64_t batches; // 0: the whole data set
} EvalArgs;

// "3,14,15" -> ids (each in [0, V)); *n gets the count.
static int *parse_tokens(const char *list, int V, int *n) {
    int cap = 16, count = 0;
    int *ids = xmalloc((size_t)cap * sizeof(int));
    const char *p = list;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        check(end != p && errno == 0 && (*end == ',' || *end == '\0'),
              "eval: --tokens: '%s' is not a comma-separated list of token ids", list);
        check(x >= 0 && x < V, "eval: --tokens: id %ld is outside the vocabulary [0, %d)", x, V);
        if (count == cap) {
            cap *= 2;
            ids = xrealloc(ids, (size_t)cap * sizeof(int));
        }
        ids[count++] = (int)x;
        p = *end == ',' ? end + 1 : end;
        check(*end != ',' || *p != '\0', "eval: --tokens: '%s' ends with a comma", list);
    }
    check(count > 0, "eval: --tokens is empty");
    *n = count;
    return ids;
}

// -log softmax(logits)[target], in double.
static double cross_entropy(const float *logits, int V, int target) {
    double max = logits[0];
    for (int i = 1; i < V; i++) max = fmax(max, logits[i]);
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - max);
    return log(sum) + max - logits[target];
}

// Write rows x V floats as little-endian fp32, atomically.
static void write_logits(const char *path, const float *logits, size_t count) {
    AtomicFile af = atomic_open(path);
    enum { CHUNK = 4096 };
    unsigned char buf[4 * CHUNK];
    for (size_t i = 0; i < count; i += CHUNK) {
        size_t k = count - i < CHUNK ? count - i : CHUNK;
        for (size_t j = 0; j < k; j++) {
            uint32_t u;
            memcpy(&u, &logits[i + j], 4);
            for (int b = 0; b < 4; b++) buf[4 * j + b] = (unsigned char)(u >> (8 * b));
        }
        xfwrite(buf, 4 * k, af.f, af.tmp_path);
    }
    atomic_commit(&af);
}

// Feed the tokens one by one through the recurrent form; every position's next-token
// logits go to --logits_out (if given); prints the mean loss of predicting each next token.
static void eval_tokens(Model *m, const EvalArgs *a) {
    int V = m->cfg.vocab_size, n;
    int *ids = parse_tokens(a->tokens, V, &n);
    float *logits = xmalloc((size_t)n * V * sizeof(float));
    DecodeState *s = decode_state_new(m, n);
    for (int i = 0; i < n; i++) model_decode_step(m, s, ids[i], logits + (size_t)i * V);
    decode_state_free(s);
    for (size_t i = 0; i < (size_t)n * V; i++) {
        check(isfinite(logits[i]), "eval: non-finite logit at position %zu (bad weights?)",
              i / (size_t)V);
    }
    if (a->logits_out) write_logits(a->logits_out, logits, (size_t)n * V);
    double loss = 0;
    for (int i = 0; i + 1 < n; i++) loss += cross_entropy(logits + (size_t)i * V, V, ids[i + 1]);
    printf("eval %s: %d tokens (recurrent form)", a->ckpt, n);
    if (n > 1) printf(" | loss %.6f | ppl %.4f", loss / (n - 1), exp(loss / (n - 1)));
    if (a->logits_out) printf(" | logits [%d, %d] fp32 -> %s", n, V, a->logits_out);
    printf("\n");
    free(logits);
    free(ids);
}

// Mean loss over the shards' windows, in order: token-weighted over all batches.
static void eval_data(Model *m, const EvalArgs *a) {
    int B = a->batch_size, T = a->seq_len, V = m->cfg.vocab_size;
    // The loader checks every token of a shard against the model's vocabulary as it loads it.
    Loader *l = loader_open(a->data, B, T, 0, 1, 0, false, V);
    int64_t n = loader_batches_per_epoch(l);
    check(n > 0, "%s: fewer windows than one batch of %d x %d tokens (lower --batch_size)", a->data,
          B, T);
    if (a->batches > 0 && a->batches < n) n = a->batches;
    int *tokens = xmalloc((size_t)B * T * sizeof(int)),
        *targets = xmalloc((size_t)B * T * sizeof(int));
    double sum = 0, counted = 0, t0 = now_seconds();
    for (int64_t b = 0; b < n; b++) {
        loader_next(l, tokens, targets);
        double c = (double)B * T; // every target counts
        sum += (double)model_loss(m, tokens, targets, B, T) * c;
        counted += c;
    }
    double loss = sum / counted;
    printf("eval %s on %s: %lld batches x %d x %d = %.0f tokens | loss %.6f | ppl %.4f | %.1fs\n",
           a->ckpt, a->data, (long long)n, B, T, counted, loss, exp(loss), now_seconds() - t0);
    free(tokens);
    free(targets);
    loader_close(l);
}

static void eval_usage(void) {
    printf("usage: bolt eval CKPT --data=GLOB [--batch_size=4] [--seq_len=256] [--batches=N]\n"
           "                    [--device=cpu|cuda]\n"
           "       bolt eval CKPT --tokens=ID,ID,... [--logits_out=FILE] [--device=...]\n"
           "       bolt eval CKPT --mc=FILE [--mc_out=FILE] [--device=...]\n"
           "  CKPT: a checkpoint directory (step_*, or an import) or a run's out_dir (its\n"
           "  latest complete checkpoint).\n"
           "  --data: mean loss and perplexity over the shards' windows in order (all of\n"
           "  them, or the first --batches batches).\n"
           "  --tokens: runs the ids one by one through the recurrent form and prints the\n"
           "  loss of each next id; --logits_out writes every position's logits as raw\n"
           "  little-endian fp32 [n_tokens, vocab_size].\n"
           "  --mc: multiple-choice accuracy (acc and length-normalised acc_norm) on llm.c's\n"
           "  eval file format or jsonl {\"ctx\", \"endings\", \"label\"}; --mc_out writes\n"
           "  each example's scores as jsonl.\n");
}

int eval_main(int argc, char **argv) {
    EvalArgs a = {.device = "auto", .batch_size = 4, .seq_len = 256};
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            eval_usage();
            return 0;
        } else if (strncmp(s, "--data=", 7) == 0)
            a.data = s + 7;
        else if (strncmp(s, "--tokens=", 9) == 0)
            a.tokens = s + 9;
        else if (strncmp(s, "--logits_out=", 13) == 0)
            a.logits_out = s + 13;
        else if (strncmp(s, "--mc=", 5) == 0)
            a.mc = s + 5;
        else if (strncmp(s, "--mc_out=", 9) == 0)
            a.mc_out = s + 9;
        else if (strncmp(s, "--device=", 9) == 0)
            a.device = s + 9;
        else if (strncmp(s, "--batch_size=", 13) == 0)
            a.batch_size = (int)parse_int_arg("eval: --batch_size", s + 13, 1, 1 << 16);
        else if (strncmp(s, "--seq_len=", 10) == 0)
            a.seq_len = (int)parse_int_arg("eval: --seq_len", s + 10, 1, 1 << 24);
        else if (strncmp(s, "--batches=", 10) == 0)
            a.batches = parse_int_arg("eval: --batches", s + 10, 0, INT64_MAX);
        else if (strncmp(s, "--", 2) == 0)
            die("eval: unknown option '%s' (see --help)", s);
        else if (!a.ckpt)
            a.ckpt = s;
        else
            die("eval: unexpected argument '%s' (see --help)", s);
    }
    if (!a.ckpt || (!a.data && !a.tokens && !a.mc)) {
        eval_usage();
        return 2;
    }
    check((a.data != NULL) + (a.tokens != NULL) + (a.mc != NULL) == 1,
          "eval: give one of --data, --tokens and --mc");
    check(!a.mc_out || a.mc, "eval: --mc_out needs --mc");
    check(!a.logits_out || a.tokens, "eval: --logits_out needs --tokens");
    check(!a.logits_out || a.logits_out[0], "eval: --logits_out is empty");
    char dir[PATH_CAP], tok[PATH_CAP];
    checkpoint_resolve(a.ckpt, dir, sizeof dir);
    Model m;
    Backend *be = backend_create(a.device);
    model_load(&m, dir, be, tok, sizeof tok);
    if (a.mc)
        mc_eval_command(&m, dir, tok, a.mc, a.mc_out);
    else if (a.tokens)
        eval_tokens(&m, &a);
    else
        eval_data(&m, &a);
    model_free(&m);
    backend_free(be);
    return 0;
}
