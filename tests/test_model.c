// tests/test_model.c: whole-model checks for every family and hybrids: finite-difference
// gradients of the full forward/backward, recurrent decoding == the parallel forward,
// parameter tables, and the mixer pattern / config validation.
#include "model_testing.h"

// Every tensor's gradient against central differences on a few of its entries.
static void check_model_gradients(Family family, const char *mixers, bool tied, bool doc_reset,
                                  LightningQk qk) {
    ModelConfig cfg = tiny_config(family, mixers, tied);
    cfg.lightning_qk = qk;
    cfg.doc_reset = doc_reset; // eot_token 0: the random batch holds a few document starts
    Model m;
    model_create(&m, &cfg, cpu_backend());
    spread_weights(&m, 7);
    Rng rng = rng_seeded(11);
    int B = 2, T = 9;
    int tokens[18], targets[18];
    random_tokens(&rng, tokens, targets, B * T, cfg.vocab_size);
    targets[3] = -1; // ignored position
    tokens[4] = tokens[12] = 0;
    model_zero_grad(&m);
    model_forward_backward(&m, tokens, targets, B, T, 1.0f);
    float loss, norm;
    model_read_stats(&m, &loss, &norm);
    ck_assert(isfinite(loss));
    ck_assert_float_eq_tol(loss, model_loss(&m, tokens, targets, B, T), 1e-5f);
    // Central differences in fp32 through a whole network carry rounding noise of about
    // 1e-7 in the loss (~1e-4 in a derivative at eps 2e-3) and curvature error O(eps^2).
    // Each tensor must satisfy ||numeric - analytic|| <= 5% ||numeric|| + 2e-4
    // sqrt(samples): a wrong gradient (a dropped term, a wrong factor) misses by O(1).
    const float eps = 2e-3f;
    const int samples = 6;
    for (int i = 0; i < m.n_params; i++) {
        const ParamInfo *p = &m.params[i];
        double diff = 0, norm = 0;
        for (int s = 0; s < samples; s++) {
            size_t j = p->offset + rng_next(&rng) % p->numel;
            float saved = m.weights[j];
            m.weights[j] = saved + eps;
            double up = model_loss(&m, tokens, targets, B, T);
            m.weights[j] = saved - eps;
            double down = model_loss(&m, tokens, targets, B, T);
            m.weights[j] = saved;
            double numeric = (up - down) / (2.0 * eps);
            diff += (numeric - m.grads[j]) * (numeric - m.grads[j]);
            norm += numeric * numeric;
        }
        ck_assert_msg(sqrt(diff) <= 0.05 * sqrt(norm) + 2e-4 * sqrt(samples),
                      "%s/%s: gradient of %s: |numeric - analytic| %.3g, |numeric| %.3g",
                      family_name(family), mixers ? mixers : "-", p->name, sqrt(diff), sqrt(norm));
    }
    model_free(&m);
}

START_TEST(test_grad_tnl) {
    check_model_gradients(FAMILY_TNL, NULL, false, false, LIGHTNING_QK_SILU);
}
END_TEST
START_TEST(test_grad_gla) {
    check_model_gradients(FAMILY_GLA, NULL, false, false, LIGHTNING_QK_SILU);
}
END_TEST
START_TEST(test_grad_llama) {
    check_model_gradients(FAMILY_LLAMA, NULL, true, false, LIGHTNING_QK_SILU);
}
END_TEST
START_TEST(test_grad_hybrid) {
    check_model_gradients(FAMILY_TNL, "lightning,softmax", true, false, LIGHTNING_QK_SILU);
}
END_TEST
START_TEST(test_grad_hybrid_gla) {
    check_model_gradients(FAMILY_GLA, "softmax,gla", false, false, LIGHTNING_QK_SILU);
}
END_TEST
START_TEST(test_grad_doc_reset) {
    check_model_gradients(FAMILY_TNL, "lightning,softmax", false, true, LIGHTNING_QK_SILU);
    check_model_gradients(FAMILY_GLA, NULL, false, true, LIGHTNING_QK_SILU);
}
END_TEST

// The distilled student's lightning layers: RoPE on q, k and no feature map.
START_TEST(test_grad_lightning_rope) {
    check_model_gradients(FAMILY_LLAMA, "lightning,softmax", false, false, LIGHTNING_QK_ROPE);
    check_model_gradients(FAMILY_LLAMA, "lightning", true, true, LIGHTNING_QK_ROPE);
}
END_TEST

// Cross-entropy of `target` under `logits`, in double.
static double token_loss(const float *logits, int V, int target) {
    double mx = logits[0];
    for (int i = 1; i < V; i++) mx = fmax(mx, logits[i]);
    double s = 0;
    for (int i = 0; i < V; i++) s += exp(logits[i] - mx);
    return log(s) + mx - logits[target];
}

// Feeding tokens one at a time through the recurrent state / KV cache gives the same
// predictions as the parallel forward over the whole sequence.
static void check_decode(Family family, const char *mixers, LightningQk qk) {
    ModelConfig cfg = tiny_config(family, mixers, false);
    cfg.lightning_qk = qk;
    Model m;
    model_create(&m, &cfg, cpu_backend());
    spread_weights(&m, 3);
    Rng rng = rng_seeded(5);
    enum { T = 13 };
    int tokens[T], targets[T];
    random_tokens(&rng, tokens, targets, T, cfg.vocab_size);
    for (int t = 0; t + 1 < T; t++) targets[t] = tokens[t + 1];
    targets[T - 1] = -1;
    float parallel = model_loss(&m, tokens, targets, 1, T);
    DecodeState *s = decode_state_new(&m, T);
    float *logits = xmalloc(cfg.vocab_size * sizeof(float));
    double sum = 0;
    for (int t = 0; t + 1 < T; t++) {
        model_decode_step(&m, s, tokens[t], logits);
        sum += token_loss(logits, cfg.vocab_size, targets[t]);
    }
    double recurrent = sum / (T - 1);
    ck_assert_msg(fabs(recurrent - parallel) < 1e-4 * fabs(parallel),
                  "%s: recurrent %.7f vs parallel %.7f", family_name(family), recurrent, parallel);
    free(logits);
    decode_state_free(s);
    model_free(&m);
}

START_TEST(test_decode_tnl) {
    check_decode(FAMILY_TNL, NULL, LIGHTNING_QK_SILU);
}
END_TEST
START_TEST(test_decode_gla) {
    check_decode(FAMILY_GLA, NULL, LIGHTNING_QK_SILU);
}
END_TEST
START_TEST(test_decode_llama) {
    check_decode(FAMILY_LLAMA, NULL, LIGHTNING_QK_SILU);
}
END_TEST
START_TEST(test_decode_hybrid) {
    check_decode(FAMILY_TNL, "lightning,softmax", LIGHTNING_QK_SILU);
}
END_TEST

START_TEST(test_decode_lightning_rope) {
    check_decode(FAMILY_LLAMA, "lightning,softmax", LIGHTNING_QK_ROPE);
}
END_TEST

// With doc_reset, a row packing several documents (each starting with EOT) gives every
// token the same loss as running each document alone: no state crosses a boundary.
static void check_packed(Family family, const char *mixers, LightningQk qk) {
    ModelConfig cfg = tiny_config(family, mixers, false);
    cfg.lightning_qk = qk;
    cfg.doc_reset = true;
    cfg.eot_token = 0;
    Model m;
    model_create(&m, &cfg, cpu_backend());
    spread_weights(&m, 9);
    Rng rng = rng_seeded(21);
    enum { T = 24 };
    const int starts[] = {0, 5, 14, T}; // three documents: 5, 9 and 10 tokens
    int tokens[T], targets[T];
    random_tokens(&rng, tokens, targets, T, cfg.vocab_size);
    for (int t = 0; t < T; t++) {
        if (tokens[t] == 0) tokens[t] = 1;
    }
    for (int d = 0; d < 3; d++) tokens[starts[d]] = 0;
    model_loss(&m, tokens, targets, 1, T);
    float packed[T], alone[T];
    model_token_losses(&m, packed, T);
    for (int d = 0; d < 3; d++) {
        int s = starts[d], len = starts[d + 1] - s;
        model_loss(&m, tokens + s, targets + s, 1, len);
        model_token_losses(&m, alone, len);
        for (int t = 0; t < len; t++) {
            ck_assert_msg(fabsf(packed[s + t] - alone[t]) <= 1e-5f * fabsf(alone[t]) + 1e-6f,
                          "%s: doc %d token %d: packed %.7f alone %.7f", family_name(family), d, t,
                          packed[s + t], alone[t]);
        }
    }
    // And without doc_reset the documents do see each other (the test can fail).
    m.cfg.doc_reset = false;
    model_loss(&m, tokens, targets, 1, T);
    model_token_losses(&m, alone, T);
    ck_assert(fabsf(alone[T - 1] - packed[T - 1]) > 1e-6f);
    model_free(&m);
}

START_TEST(test_packed_tnl) {
    check_packed(FAMILY_TNL, NULL, LIGHTNING_QK_SILU);
}
END_TEST
START_TEST(test_packed_gla) {
    check_packed(FAMILY_GLA, NULL, LIGHTNING_QK_SILU);
}
END_TEST
START_TEST(test_packed_hybrid) {
    check_packed(FAMILY_LLAMA, "gla,softmax", LIGHTNING_QK_SILU);
}
END_TEST

// Parameter tables carry the Hugging Face names and shapes the spec gives.
START_TEST(test_packed_lightning_rope) {
    check_packed(FAMILY_LLAMA, "lightning", LIGHTNING_QK_ROPE);
}
END_TEST

START_TEST(test_param_names) {
    ModelConfig cfg = tiny_config(FAMILY_GLA, NULL, false);
    Model m;
    model_create(&m, &cfg, cpu_backend());
    const ParamInfo *p = model_find_param(&m, "model.layers.1.attn.gk_proj.0.weight");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(p->shape[0], 16);
    ck_assert_int_eq(p->shape[1], cfg.dim);
    p = model_find_param(&m, "model.layers.0.attn.gk_proj.1.bias");
    ck_assert_ptr_nonnull(p);
    ck_assert(p->no_decay);
    ck_assert_ptr_nonnull(model_find_param(&m, "lm_head.weight"));
    ck_assert_ptr_nonnull(model_find_param(&m, "model.embeddings.weight"));
    size_t total = 0;
    for (int i = 0; i < m.n_params; i++) total += m.params[i].numel;
    ck_assert_uint_eq(total, m.n_weights);
    model_free(&m);

    cfg = tiny_config(FAMILY_LLAMA, NULL, true);
    model_create(&m, &cfg, cpu_backend());
    p = model_find_param(&m, "model.layers.0.self_attn.k_proj.weight");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(p->shape[0], cfg.n_kv_heads * cfg.head_dim);
    ck_assert_ptr_null(model_find_param(&m, "lm_head.weight")); // tied
    model_free(&m);
}
END_TEST

// A bare TNL config of L layers and H heads, finalized with `mixers`.
static ModelConfig tnl_config(int dim, int n_layers, int n_heads, const char *mixers) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.family = FAMILY_TNL;
    c.vocab_size = 10;
    c.dim = dim;
    c.n_layers = n_layers;
    c.n_heads = n_heads;
    model_config_finalize(&c, mixers);
    return c;
}

START_TEST(test_mixer_pattern) {
    ModelConfig c = tnl_config(8, 8, 2, "lightning*3,softmax");
    for (int l = 0; l < 8; l++)
        ck_assert_int_eq(c.mixer[l], l % 4 == 3 ? MIXER_SOFTMAX : MIXER_LIGHTNING);
}
END_TEST

START_TEST(test_mixer_pattern_bad) {
    tnl_config(8, 8, 2, "lightning*3,softmx");
}
END_TEST

// TNL decays: ALiBi slopes for 8 heads, layer 0 of L decays fastest, all in (0, 1).
START_TEST(test_decays) {
    ModelConfig c = tnl_config(16, 4, 8, NULL);
    float first[8], last[8];
    lightning_log_decays(&c, 0, first);
    lightning_log_decays(&c, 3, last);
    for (int h = 0; h < 8; h++) {
        double slope = pow(2.0, -8.0 * (h + 1) / 8);
        ck_assert(fabs(first[h] - (-slope * (1 + 1e-5))) < 1e-6);
        ck_assert(fabs(last[h] - (-slope * 1e-5)) < 1e-7);
    }
}
END_TEST

// Model FLOPs per token count the LM head once, whether it is the embedding (tied) or a
// tensor of its own: tying changes storage, not work.
START_TEST(test_flops_tied_untied) {
    for (int f = 0; f < 3; f++) {
        Family fam = f == 0 ? FAMILY_TNL : f == 1 ? FAMILY_GLA : FAMILY_LLAMA;
        ModelConfig tied = tiny_config(fam, NULL, true), untied = tiny_config(fam, NULL, false);
        Model a, b;
        model_create(&a, &tied, cpu_backend());
        model_create(&b, &untied, cpu_backend());
        double fa = model_flops_per_token(&a, 64), fb = model_flops_per_token(&b, 64);
        ck_assert_msg(fa == fb, "family %d: %.0f FLOPs/token tied, %.0f untied", f, fa, fb);
        model_free(&a);
        model_free(&b);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("gradients");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_grad_tnl);
    tcase_add_test(tc, test_flops_tied_untied);
    tcase_add_test(tc, test_grad_gla);
    tcase_add_test(tc, test_grad_llama);
    tcase_add_test(tc, test_grad_hybrid);
    tcase_add_test(tc, test_grad_hybrid_gla);
    tcase_add_test(tc, test_grad_doc_reset);
    tcase_add_test(tc, test_grad_lightning_rope);
    suite_add_tcase(s, tc);
    tc = tcase_create("decode");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_decode_tnl);
    tcase_add_test(tc, test_decode_gla);
    tcase_add_test(tc, test_decode_llama);
    tcase_add_test(tc, test_decode_hybrid);
    tcase_add_test(tc, test_decode_lightning_rope);
    suite_add_tcase(s, tc);
    tc = tcase_create("packed");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_packed_tnl);
    tcase_add_test(tc, test_packed_gla);
    tcase_add_test(tc, test_packed_hybrid);
    tcase_add_test(tc, test_packed_lightning_rope);
    suite_add_tcase(s, tc);
    tc = tcase_create("layout");
    tcase_add_test(tc, test_param_names);
    tcase_add_test(tc, test_mixer_pattern);
    tcase_add_exit_test(tc, test_mixer_pattern_bad, 1);
    tcase_add_test(tc, test_decays);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
