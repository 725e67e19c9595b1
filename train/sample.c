// train/sample.c: `bolt sample CKPT --prompt=...`: load a checkpoint and generate.
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../model/checkpoint.h"
#include "commands.h"
#include "sample.h"

int sample_token(float *logits, int V, float temperature, int top_k, Rng *rng) {
    int best = 0;
    for (int i = 1; i < V; i++) {
        if (logits[i] > logits[best]) best = i;
    }
    if (temperature <= 0) return best;
    // Keep the top_k largest: find the k-th largest value as a threshold.
    float threshold = -INFINITY;
    if (top_k > 0 && top_k < V) {
        float *sorted = xmalloc((size_t)V * sizeof(float));
        memcpy(sorted, logits, (size_t)V * sizeof(float));
        for (int k = 0; k < top_k; k++) { // partial selection sort: k is small
            int arg = k;
            for (int i = k + 1; i < V; i++) {
                if (sorted[i] > sorted[arg]) arg = i;
            }
            float t = sorted[k];
            sorted[k] = sorted[arg];
            sorted[arg] = t;
        }
        threshold = sorted[top_k - 1];
        free(sorted);
    }
    double sum = 0, max = logits[best];
    for (int i = 0; i < V; i++) {
        double p = logits[i] >= threshold ? exp((logits[i] - max) / temperature) : 0;
        logits[i] = (float)p;
        sum += p;
    }
    double r = rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < V; i++) {
        acc += logits[i];
        if (r < acc && logits[i] > 0) return i;
    }
    return best;
}

char *generate_text(Model *m, const Tokenizer *tok, const char *prompt, int n_tokens,
                    float temperature, int top_k, bool stop_at_eot, Rng *rng) {
    uint32_t *ids = NULL;
    size_t n = 0, cap = 0;
    tokenizer_encode(tok, prompt, strlen(prompt), &ids, &n, &cap);
    int V = m->cfg.vocab_size;
    DecodeState *s = decode_state_new(m, (int)n + n_tokens + 1);
    float *logits = xmalloc((size_t)V * sizeof(float));
    // Documents start after an EOT in training data, so the prompt does too.
    model_decode_step(m, s, tok->eot, logits);
    for (size_t i = 0; i < n; i++) model_decode_step(m, s, (int)ids[i], logits);
    uint32_t *out = xmalloc((size_t)(n_tokens > 0 ? n_tokens : 1) * sizeof(uint32_t));
    int produced = 0;
    for (; produced < n_tokens; produced++) {
        int next = sample_token(logits, V, temperature, top_k, rng);
        if (stop_at_eot && next == tok->eot) break;
        out[produced] = (uint32_t)next;
        if (produced + 1 < n_tokens) model_decode_step(m, s, next, logits);
    }
    size_t len;
    char *text = tokenizer_decode(tok, out, (size_t)produced, &len);
    free(out);
    free(logits);
    free(ids);
    decode_state_free(s);
    return text;
}

static void sample_usage(void) {
    printf("usage: bolt sample CKPT [--prompt=TEXT] [--tokens=N] [--temperature=T] "
           "[--top_k=K] [--seed=S] [--device=cpu|cuda]\n"
           "  CKPT: a checkpoint directory (step_*) or a run's out_dir (uses its latest).\n"
           "  Generates with the recurrent form: constant work per token for linear layers.\n");
}

int sample_main(int argc, char **argv) {
    const char *ckpt = NULL, *prompt = "", *device = "auto";
    int n_tokens = 256, top_k = 40;
    float temperature = 0.8f;
    uint64_t seed = 1337;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            sample_usage();
            return 0;
        } else if (strncmp(a, "--prompt=", 9) == 0)
            prompt = a + 9;
        else if (strncmp(a, "--tokens=", 9) == 0)
            n_tokens = (int)parse_int_arg("sample: --tokens", a + 9, 0, 1 << 24);
        else if (strncmp(a, "--temperature=", 14) == 0)
            temperature = (float)parse_float_arg("sample: --temperature", a + 14);
        else if (strncmp(a, "--top_k=", 8) == 0)
            top_k = (int)parse_int_arg("sample: --top_k", a + 8, 0, INT_MAX);
        else if (strncmp(a, "--seed=", 7) == 0)
            seed = (uint64_t)parse_int_arg("sample: --seed", a + 7, 0, INT64_MAX);
        else if (strncmp(a, "--device=", 9) == 0)
            device = a + 9;
        else if (strncmp(a, "--", 2) == 0)
            die("sample: unknown option '%s' (see --help)", a);
        else if (!ckpt)
            ckpt = a;
        else
            die("sample: unexpected argument '%s' (see --help)", a);
    }
    if (!ckpt) {
        sample_usage();
        return 2;
    }
    char dir[4096], tok_spec[512], tok_path[4096];
    checkpoint_resolve(ckpt, dir, sizeof dir);
    Model m;
    Backend *be = backend_create(device);
    model_load(&m, dir, be, tok_spec, sizeof tok_spec);
    checkpoint_tokenizer_path(dir, tok_spec, tok_path, sizeof tok_path);
    Tokenizer tok = tokenizer_load(tok_path);
    Rng rng = rng_seeded(seed);
    char *text = generate_text(&m, &tok, prompt, n_tokens, temperature, top_k, false, &rng);
    printf("%s%s\n", prompt, text);
    free(text);
    tokenizer_free(&tok);
    model_free(&m);
    backend_free(be);
    return 0;
}
