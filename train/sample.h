// train/sample.h: text generation with the recurrent form (constant work per token for
// linear layers, a KV cache for softmax layers), temperature and top-k.
#pragma once
#include "../core/util.h"
#include "../data/tokenizer.h"
#include "../model/model.h"

// Pick a token from logits[V]: argmax if temperature <= 0, else softmax(logits / T)
// restricted to the top_k largest (top_k <= 0: all).
int sample_token(float *logits, int V, float temperature, int top_k, Rng *rng);

// Feed the prompt (or just EOT if it is empty), then generate n_tokens; returns the decoded
// generated text (caller frees). Stops early at EOT if stop_at_eot.
char *generate_text(Model *m, const Tokenizer *tok, const char *prompt, int n_tokens,
                    float temperature, int top_k, bool stop_at_eot, Rng *rng);
