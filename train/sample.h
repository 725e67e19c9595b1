// train/sample.h: text generation with the recurrent form (constant work per token for
// linear layers, a KV cache for softmax layers), temperature, top-k and top-p.
#pragma once
#include "../core/util.h"
#include "../data/tokenizer.h"
#include "../model/model.h"

// How tokens are drawn and when generation stops.
typedef struct SampleSettings {
    int max_tokens;    // tokens to generate at most
    float temperature; // 0: greedy
    int top_k;         // keep the k most likely tokens (0: all)
    float top_p;       // keep the most likely tokens whose probabilities sum to p (1: all)
    bool stop_at_eot;  // end at the first end-of-text token
} SampleSettings;

// What an end-of-text token shows as in generated text (a document break).
#define EOT_MARKER "\n<|endoftext|>\n"

// Pick a token from logits[V] (overwritten): argmax if temperature <= 0, else
// softmax(logits / T) restricted to the top_k largest (top_k <= 0: all), then to the
// smallest set of most likely tokens whose probability reaches top_p (top_p >= 1: all).
int sample_token(float *logits, int V, float temperature, int top_k, float top_p, Rng *rng);

// Feed EOT and the prompt, then generate up to s->max_tokens; returns the decoded generated
// text (caller frees), each end-of-text token shown as EOT_MARKER (generation ends at the
// first one if s->stop_at_eot). *generated (if not NULL) gets the number of tokens drawn.
char *generate_text(Model *m, const Tokenizer *tok, const char *prompt, const SampleSettings *s,
                    Rng *rng, int *generated);
