// train/sample.c: `bolt sample CKPT --prompt=...`: load a checkpoint and generate.
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../model/checkpoint.h"
#include "commands.h"
#include "options.h"
#include "sample.h"

// Descending order of floats, for qsort.
static int compare_descending(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

// The k-th largest of logits[V] (k in 1..V-1): a partial selection sort, as k is small.
static float kth_largest(const float *logits, int V, int k) {
    float *sorted = xmalloc((size_t)V * sizeof(float));
    memcpy(sorted, logits, (size_t)V * sizeof(float));
    for (int i = 0; i < k; i++) {
        int arg = i;
        for (int j = i + 1; j < V; j++) {
            if (sorted[j] > sorted[arg]) arg = j;
        }
        float t = sorted[i];
        sorted[i] = sorted[arg];
        sorted[arg] = t;
    }
    float threshold = sorted[k - 1];
    free(sorted);
    return threshold;
}

// The smallest probability that the nucleus of top_p keeps: walking the probabilities
// p[V] (summing to `sum`) from the largest down until they reach top_p of the total.
static float nucleus_threshold(const float *p, int V, double sum, float top_p) {
    float *sorted = xmalloc((size_t)V * sizeof(float));
    memcpy(sorted, p, (size_t)V * sizeof(float));
    qsort(sorted, (size_t)V, sizeof(float), compare_descending);
    double acc = 0;
    float threshold = sorted[0];
    for (int i = 0; i < V && sorted[i] > 0; i++) {
        threshold = sorted[i];
        acc += sorted[i];
        if (acc >= top_p * sum) break;
    }
    free(sorted);
    return threshold;
}

int sample_token(float *logits, int V, float temperature, int top_k, float top_p, Rng *rng) {
    int best = 0;
    for (int i = 1; i < V; i++) {
        if (logits[i] > logits[best]) best = i;
    }
    if (temperature <= 0) return best;
    float threshold = top_k > 0 && top_k < V ? kth_largest(logits, V, top_k) : -INFINITY;
    double sum = 0, max = logits[best];
    for (int i = 0; i < V; i++) {
        double p = logits[i] >= threshold ? exp((logits[i] - max) / temperature) : 0;
        logits[i] = (float)p;
        sum += p;
    }
    if (top_p < 1) {
        float keep = nucleus_threshold(logits, V, sum, top_p);
        sum = 0;
        for (int i = 0; i < V; i++) {
            if (logits[i] < keep) logits[i] = 0;
            sum += logits[i];
        }
    }
    double r = rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < V; i++) {
        acc += logits[i];
        if (r < acc && logits[i] > 0) return i;
    }
    return best;
}

// Decode ids[n] with every EOT shown as EOT_MARKER.
static char *decode_with_breaks(const Tokenizer *tok, const uint32_t *ids, int n) {
    size_t cap = 256, len = 0;
    char *text = xmalloc(cap);
    text[0] = '\0';
    for (int start = 0; start <= n;) {
        int end = start;
        while (end < n && ids[end] != (uint32_t)tok->eot) end++;
        size_t piece_len;
        char *piece = tokenizer_decode(tok, ids + start, (size_t)(end - start), &piece_len);
        const char *marker = end < n ? EOT_MARKER : "";
        size_t need = len + piece_len + strlen(marker) + 1;
        if (need > cap) {
            cap = need * 2;
            text = xrealloc(text, cap);
        }
        memcpy(text + len, piece, piece_len);
        len += piece_len;
        memcpy(text + len, marker, strlen(marker) + 1);
        len += strlen(marker);
        free(piece);
        start = end + 1;
    }
    return text;
}

char *generate_text(Model *m, const Tokenizer *tok, const char *prompt, const SampleSettings *s,
                    Rng *rng, int *generated) {
    uint32_t *ids = NULL;
    size_t n = 0, cap = 0;
    tokenizer_encode(tok, prompt, strlen(prompt), &ids, &n, &cap);
    int V = m->cfg.vocab_size, max_tokens = s->max_tokens;
    DecodeState *state = decode_state_new(m, (int)n + max_tokens + 1);
    float *logits = xmalloc((size_t)V * sizeof(float));
    // Documents start after an EOT in training data, so the prompt does too.
    model_decode_step(m, state, tok->eot, logits);
    for (size_t i = 0; i < n; i++) model_decode_step(m, state, (int)ids[i], logits);
    uint32_t *out = xmalloc((size_t)(max_tokens > 0 ? max_tokens : 1) * sizeof(uint32_t));
    int drawn = 0, kept = 0;
    while (drawn < max_tokens) {
        int next = sample_token(logits, V, s->temperature, s->top_k, s->top_p, rng);
        drawn++;
        if (s->stop_at_eot && next == tok->eot) break;
        out[kept++] = (uint32_t)next;
        if (drawn < max_tokens) model_decode_step(m, state, next, logits);
    }
    char *text = decode_with_breaks(tok, out, kept);
    if (generated) *generated = drawn;
    free(out);
    free(logits);
    free(ids);
    decode_state_free(state);
    return text;
}

typedef struct SampleArgs {
    const char *prompt, *prompt_file, *device;
    int tokens, num_samples, top_k, threads;
    float temperature, top_p;
    uint64_t seed;
    bool stop_at_eot;
} SampleArgs;

static const Option SAMPLE_OPTIONS[] = {
    {"prompt", OPT_STRING, offsetof(SampleArgs, prompt), 0, 0, 0, NULL, NULL,
     "text the samples continue"},
    {"prompt_file", OPT_STRING, offsetof(SampleArgs, prompt_file), 0, 0, 0, NULL, NULL,
     "read the prompt from this file (not with --prompt)"},
    {"tokens", OPT_INT, offsetof(SampleArgs, tokens), 0, 0, 1 << 24, NULL, NULL,
     "tokens to generate per sample (at most)"},
    {"num_samples", OPT_INT, offsetof(SampleArgs, num_samples), 0, 1, 1 << 20, NULL, NULL,
     "independent samples of the same prompt"},
    {"temperature", OPT_FLOAT, offsetof(SampleArgs, temperature), 0, 0, 1e30, NULL, NULL,
     "softmax temperature; 0: greedy (the most likely token)"},
    {"top_k", OPT_INT, offsetof(SampleArgs, top_k), 0, 0, INT_MAX, NULL, NULL,
     "draw from the k most likely tokens; 0: all"},
    {"top_p", OPT_FLOAT, offsetof(SampleArgs, top_p), 0, 0, 1, NULL, NULL,
     "draw from the most likely tokens whose probabilities sum to p (nucleus); 1: all"},
    {"seed", OPT_U64, offsetof(SampleArgs, seed), 0, 0, 0, NULL, NULL, "random seed"},
    {"stop_at_eot", OPT_BOOL, offsetof(SampleArgs, stop_at_eot), 0, 0, 0, NULL, NULL,
     "end a sample at its first end-of-text token; 0: go on, showing document breaks as "
     "<|endoftext|>"},
    {"device", OPT_CHOICE, offsetof(SampleArgs, device), 0, 0, 0, "cpu|cuda|auto", NULL,
     "backend (auto: cuda if a GPU is visible)"},
    {"threads", OPT_INT, offsetof(SampleArgs, threads), 0, 0, 4096, NULL, NULL,
     "CPU threads; 0: the cores not busy with other work"},
};

static const OptionTable SAMPLE_TABLE = {
    .command = "sample",
    .args = "CKPT",
    .min_args = 1,
    .max_args = 1,
    .about = "Generates text from a checkpoint with the recurrent form: constant work per token\n"
             "for linear layers, a KV cache for softmax layers. CKPT: a checkpoint directory\n"
             "(step_*, or an import) or a run's out_dir (its newest complete checkpoint).",
    .options = SAMPLE_OPTIONS,
    .count = sizeof SAMPLE_OPTIONS / sizeof SAMPLE_OPTIONS[0],
};

int sample_main(int argc, char **argv) {
    SampleArgs a = {.prompt = "",
                    .prompt_file = "",
                    .device = "auto",
                    .tokens = 256,
                    .num_samples = 1,
                    .top_k = 40,
                    .temperature = 0.8f,
                    .top_p = 1.0f,
                    .seed = 1337,
                    .stop_at_eot = true};
    char *args[1];
    if (options_parse(&SAMPLE_TABLE, &a, argc, argv, args) < 0) return 0;
    check(!(a.prompt[0] && a.prompt_file[0]), "sample: give --prompt or --prompt_file, not both");
    char *prompt = a.prompt_file[0] ? read_file(a.prompt_file, NULL) : xstrdup(a.prompt);
    set_threads(a.threads);
    char dir[4096], tok_spec[512], tok_path[4096];
    checkpoint_resolve(args[0], dir, sizeof dir);
    Model m;
    Backend *be = backend_create(a.device);
    model_load(&m, dir, be, tok_spec, sizeof tok_spec);
    checkpoint_tokenizer_path(dir, tok_spec, tok_path, sizeof tok_path);
    Tokenizer tok = tokenizer_load(tok_path);
    SampleSettings s = {a.tokens, a.temperature, a.top_k, a.top_p, a.stop_at_eot};
    Rng rng = rng_seeded(a.seed);
    int total = 0;
    double t0 = now_seconds();
    for (int i = 0; i < a.num_samples; i++) {
        int generated;
        char *text = generate_text(&m, &tok, prompt, &s, &rng, &generated);
        if (a.num_samples > 1) printf("--- sample %d of %d ---\n", i + 1, a.num_samples);
        printf("%s%s\n", prompt, text);
        fflush(stdout);
        free(text);
        total += generated;
    }
    double seconds = now_seconds() - t0;
    fprintf(stderr, "sample: %d tokens in %.2f s: %.1f tokens/s (%s, %d thread%s)\n", total,
            seconds, seconds > 0 ? total / seconds : 0.0, be->name, omp_get_max_threads(),
            omp_get_max_threads() == 1 ? "" : "s");
    free(prompt);
    tokenizer_free(&tok);
    model_free(&m);
    backend_free(be);
    return 0;
}
