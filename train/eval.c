// train/eval.c: `bolt eval CKPT ...`: loss (nats per token, perplexity, bits per byte) of a
// checkpoint on token shards (in order, no shuffle), or on a given token sequence or text
// with each position's loss; the logits of a sequence, computed with the recurrent form
// (model_decode_step), can be written as raw fp32 for parity checks against other
// implementations (tools/hf_parity.py).
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../data/loader.h"
#include "../core/util.h"
#include "../model/checkpoint.h"
#include "../data/tokenizer.h"
#include "commands.h"
#include "mc_eval.h"
#include "options.h"

enum { PATH_CAP = 4096, MAX_SEQ_LEN = 1 << 24 }; // MAX_SEQ_LEN: the most --seq_len takes

typedef struct EvalArgs {
    const char *data, *tokens, *text, *logits_out, *device;
    const char *mc, *mc_out; // multiple-choice set and per-example scores (train/mc_eval.h)
    int batch_size, seq_len, threads;
    int64_t batches;  // 0: the whole data set
    const char *ckpt; // the positional argument
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

// Bytes of text each token id stands for (0 for EOT), from the tokenizer's decoder: the
// denominator of bits per byte.
static int *token_byte_counts(const Tokenizer *tok, int V) {
    int *bytes = xcalloc((size_t)V, sizeof(int));
    for (int id = 0; id < V && id < tok->vocab_size; id++) {
        if (id == tok->eot) continue;
        uint32_t u = (uint32_t)id;
        size_t len;
        free(tokenizer_decode(tok, &u, 1, &len));
        bytes[id] = (int)len;
    }
    return bytes;
}

// "loss 1.234567 nats/token | ppl 3.4370 | 1.7800 bits/byte" (bits per byte when known).
static void print_loss(double nats, double tokens, double bytes) {
    printf(" | loss %.6f nats/token | ppl %.4f", nats / tokens, exp(nats / tokens));
    if (bytes > 0) printf(" | %.4f bits/byte", nats / log(2.0) / bytes);
}

// Feed the tokens one by one through the recurrent form; every position's next-token
// logits go to --logits_out (if given); prints the loss of predicting each next token,
// then their mean.
static void eval_tokens(Model *m, const Tokenizer *tok, const EvalArgs *a) {
    int V = m->cfg.vocab_size, n;
    int *ids;
    if (a->text[0]) {
        uint32_t *encoded = NULL;
        size_t count = 0, cap = 0;
        check(tok != NULL, "eval: --text needs the checkpoint's tokenizer, which is missing");
        tokenizer_encode(tok, a->text, strlen(a->text), &encoded, &count, &cap);
        n = (int)count + 1; // EOT first: documents start after one in training
        ids = xmalloc((size_t)n * sizeof(int));
        ids[0] = tok->eot;
        for (int i = 1; i < n; i++) ids[i] = (int)encoded[i - 1];
        free(encoded);
    } else {
        ids = parse_tokens(a->tokens, V, &n);
    }
    float *logits = xmalloc((size_t)n * V * sizeof(float));
    DecodeState *s = decode_state_new(m, n);
    for (int i = 0; i < n; i++) model_decode_step(m, s, ids[i], logits + (size_t)i * V);
    decode_state_free(s);
    for (size_t i = 0; i < (size_t)n * V; i++) {
        check(isfinite(logits[i]), "eval: non-finite logit at position %zu (bad weights?)",
              i / (size_t)V);
    }
    if (a->logits_out) write_logits(a->logits_out, logits, (size_t)n * V);
    int *bytes = tok ? token_byte_counts(tok, V) : NULL;
    double loss = 0, total_bytes = 0;
    if (n > 1) printf("%8s %8s %10s  %s\n", "position", "token", "loss", "text");
    for (int i = 0; i + 1 < n; i++) {
        double l = cross_entropy(logits + (size_t)i * V, V, ids[i + 1]);
        loss += l;
        char shown[64] = "";
        if (tok && ids[i + 1] != tok->eot) {
            uint32_t u = (uint32_t)ids[i + 1];
            char *piece = tokenizer_decode(tok, &u, 1, NULL);
            int o = 0;
            for (const char *p = piece; *p && o < (int)sizeof shown - 5; p++) // escape controls
                o += snprintf(shown + o, sizeof shown - (size_t)o,
                              (unsigned char)*p < 32 ? "\\x%02x" : "%c", (unsigned char)*p);
            free(piece);
        }
        if (bytes) total_bytes += bytes[ids[i + 1]];
        printf("%8d %8d %10.4f  %s\n", i + 1, ids[i + 1], l, shown);
    }
    printf("eval %s: %d tokens (recurrent form)", a->ckpt, n);
    if (n > 1) print_loss(loss, n - 1, total_bytes);
    if (a->logits_out) printf(" | logits [%d, %d] fp32 -> %s", n, V, a->logits_out);
    printf("\n");
    free(bytes);
    free(logits);
    free(ids);
}

// Mean loss over the shards' windows, in order: token-weighted over all batches.
static void eval_data(Model *m, const Tokenizer *tok, const EvalArgs *a) {
    int B = a->batch_size, T = a->seq_len, V = m->cfg.vocab_size;
    // The loader checks every token of a shard against the model's vocabulary as it loads it.
    Loader *l = loader_open(a->data, B, T, 0, 1, 0, false, V);
    int64_t n = loader_batches_per_epoch(l);
    check(n > 0,
          "%s: fewer windows than one batch of %d x %d tokens (lower --batch_size or "
          "--seq_len)",
          a->data, B, T);
    if (a->batches > 0 && a->batches < n) n = a->batches;
    int *tokens = xmalloc((size_t)B * T * sizeof(int)),
        *targets = xmalloc((size_t)B * T * sizeof(int));
    int *bytes = tok ? token_byte_counts(tok, V) : NULL;
    double sum = 0, counted = 0, total_bytes = 0, t0 = now_seconds();
    for (int64_t b = 0; b < n; b++) {
        loader_next(l, tokens, targets);
        double c = (double)B * T; // every target counts
        sum += (double)model_loss(m, tokens, targets, B, T) * c;
        counted += c;
        for (int i = 0; bytes && i < B * T; i++) total_bytes += bytes[targets[i]];
    }
    printf("eval %s on %s: %lld batches x %d x %d = %.0f tokens", a->ckpt, a->data, (long long)n, B,
           T, counted);
    print_loss(sum, counted, total_bytes);
    printf(" | %.1fs\n", now_seconds() - t0);
    free(bytes);
    free(tokens);
    free(targets);
    loader_close(l);
}

static const Option EVAL_OPTIONS[] = {
    {"data", OPT_STRING, offsetof(EvalArgs, data), 0, 0, 0, NULL, NULL,
     "glob of token shards: mean loss over their windows, in order"},
    {"tokens", OPT_STRING, offsetof(EvalArgs, tokens), 0, 0, 0, NULL, NULL,
     "comma list of token ids, run one by one through the recurrent form; prints the loss "
     "of each next id"},
    {"text", OPT_STRING, offsetof(EvalArgs, text), 0, 0, 0, NULL, NULL,
     "text, tokenized with the checkpoint's tokenizer after an EOT, evaluated as --tokens"},
    {"logits_out", OPT_STRING, offsetof(EvalArgs, logits_out), 0, 0, 0, NULL, NULL,
     "with --tokens or --text: write every position's logits as raw little-endian fp32 "
     "[n_tokens, vocab_size]"},
    {"mc", OPT_STRING, offsetof(EvalArgs, mc), 0, 0, 0, NULL, NULL,
     "multiple-choice set (llm.c's eval file, or jsonl {\"ctx\", \"endings\", \"label\"}): "
     "acc and length-normalised acc_norm"},
    {"mc_out", OPT_STRING, offsetof(EvalArgs, mc_out), 0, 0, 0, NULL, NULL,
     "with --mc: write each example's scores as jsonl"},
    {"batch_size", OPT_INT, offsetof(EvalArgs, batch_size), 0, 1, 1 << 16, NULL, NULL,
     "--data: sequences per batch"},
    {"seq_len", OPT_INT, offsetof(EvalArgs, seq_len), 0, 0, MAX_SEQ_LEN, NULL, NULL,
     "--data: tokens per sequence; 0: the length the model was trained at (256 if unknown; "
     "at most 16777216)"},
    {"batches", OPT_INT64, offsetof(EvalArgs, batches), 0, 0, (double)INT64_MAX, NULL, NULL,
     "--data: evaluate the first N batches; 0: all"},
    {"device", OPT_CHOICE, offsetof(EvalArgs, device), 0, 0, 0, "cpu|cuda|auto", NULL,
     "backend (auto: cuda if a GPU is visible)"},
    {"threads", OPT_INT, offsetof(EvalArgs, threads), 0, 0, 4096, NULL, NULL,
     "CPU threads; 0: the cores not busy with other work"},
};

static const OptionTable EVAL_TABLE = {
    .command = "eval",
    .args = "CKPT",
    .min_args = 1,
    .max_args = 1,
    .about = "Loss of a checkpoint in nats per token, with perplexity and bits per byte, on token\n"
             "shards (--data) or on a given sequence (--tokens or --text); multiple-choice\n"
             "accuracy (--mc). CKPT: a checkpoint directory (step_*, or an import) or a run's\n"
             "out_dir (its newest complete one).",
    .options = EVAL_OPTIONS,
    .count = sizeof EVAL_OPTIONS / sizeof EVAL_OPTIONS[0],
};

// The checkpoint's tokenizer, if its file is there (bits per byte and --text need it);
// false if the checkpoint names a tokenizer file that is missing.
static bool load_tokenizer(const char *dir, const char *spec, Tokenizer *tok) {
    char path[PATH_CAP];
    checkpoint_tokenizer_path(dir, spec, path, sizeof path);
    if (strcmp(path, "byte") != 0 && file_size(path) < 0) return false;
    *tok = tokenizer_load(path);
    return true;
}

int eval_main(int argc, char **argv) {
    EvalArgs a = {.data = "",
                  .tokens = "",
                  .text = "",
                  .logits_out = "",
                  .mc = "",
                  .mc_out = "",
                  .device = "auto",
                  .batch_size = 4};
    char *args[1];
    if (options_parse(&EVAL_TABLE, &a, argc, argv, args) < 0) return 0;
    a.ckpt = args[0];
    int modes = (a.data[0] != 0) + (a.tokens[0] != 0) + (a.text[0] != 0) + (a.mc[0] != 0);
    check(modes == 1,
          "eval: give one of --data, --tokens or --text, or --mc (see bolt eval --help)");
    check(!a.mc_out[0] || a.mc[0], "eval: --mc_out needs --mc");
    check(!a.logits_out[0] || !a.data[0], "eval: --logits_out needs --tokens or --text");
    set_threads(a.threads);
    char dir[PATH_CAP], tok_spec[PATH_CAP];
    checkpoint_resolve(a.ckpt, dir, sizeof dir);
    Model m;
    Backend *be = backend_create(a.device);
    model_load(&m, dir, be, tok_spec, sizeof tok_spec);
    // The checkpoint's training length, held to what --seq_len takes: config.json is input
    // too, and the batch buffers are sized by it.
    if (a.seq_len == 0) a.seq_len = m.cfg.seq_len > 0 ? m.cfg.seq_len : 256;
    if (a.seq_len > MAX_SEQ_LEN) a.seq_len = MAX_SEQ_LEN;
    Tokenizer tok;
    bool have_tok = load_tokenizer(dir, tok_spec, &tok);
    if (!a.logits_out[0]) a.logits_out = NULL;
    if (a.mc[0]) {
        check(have_tok, "eval: --mc needs the checkpoint's tokenizer '%s', which is missing",
              tok_spec);
        mc_eval_command(&m, &tok, dir, a.mc, a.mc_out[0] ? a.mc_out : NULL);
    } else if (a.data[0])
        eval_data(&m, have_tok ? &tok : NULL, &a);
    else
        eval_tokens(&m, have_tok ? &tok : NULL, &a);
    if (have_tok) tokenizer_free(&tok);
    model_free(&m);
    backend_free(be);
    return 0;
}
