// tests/test_seam.c: what the backend seam promises the code around the model:
// recomputation (of layers, or of the linear layers' chunk states) gives the same
// gradients bit for bit, linear layers' state in/out through
// the training path equals running the whole sequence, frozen tensors get no gradient
// work, the gradients-ready hook reports each range once and only when final, the
// residual-gradient hook adds an extra loss's gradient, and the no-gradient forward
// reports every layer.
#include "model_testing.h"

enum { B = 2, T = 12 };

// A model of the family with spread weights and a random batch (all targets counted).
static void setup(Model *m, Family family, const char *mixers, bool tied, int *tokens,
                  int *targets) {
    ModelConfig cfg = tiny_config(family, mixers, tied);
    model_create(m, &cfg, cpu_backend());
    spread_weights(m, 17);
    Rng rng = rng_seeded(23);
    random_tokens(&rng, tokens, targets, B * T, cfg.vocab_size);
}

// Gradients (a fresh copy) and loss of one forward/backward.
static float *gradients(Model *m, const int *tokens, const int *targets, int b, int t,
                        float *loss) {
    model_zero_grad(m);
    model_forward_backward(m, tokens, targets, b, t, 1.0f);
    float norm;
    model_read_stats(m, loss, &norm);
    return copy_tensor(m->grads, (long)m->n_weights);
}

// ---- recomputation --------------------------------------------------------------------

static void check_recompute(Family family, const char *mixers) {
    Model m;
    int tokens[B * T], targets[B * T];
    setup(&m, family, mixers, false, tokens, targets);
    float loss0, loss1;
    float *g0 = gradients(&m, tokens, targets, B, T, &loss0);
    m.cfg.recompute = true; // the arena is rebuilt with one shared set of internals
    float *g1 = gradients(&m, tokens, targets, B, T, &loss1);
    ck_assert_msg(memcmp(&loss0, &loss1, sizeof loss0) == 0, "%s: loss %.9g vs %.9g",
                  family_name(family), loss0, loss1);
    ck_assert_msg(memcmp(g0, g1, m.n_weights * sizeof(float)) == 0,
                  "%s/%s: recompute changes the gradients", family_name(family),
                  mixers ? mixers : "-");
    free(g0);
    free(g1);
    model_free(&m);
}

START_TEST(test_recompute_tnl) {
    check_recompute(FAMILY_TNL, NULL);
}
END_TEST
START_TEST(test_recompute_gla) {
    check_recompute(FAMILY_GLA, NULL);
}
END_TEST
START_TEST(test_recompute_llama) {
    check_recompute(FAMILY_LLAMA, NULL);
}
END_TEST
START_TEST(test_recompute_hybrid) {
    check_recompute(FAMILY_TNL, "lightning,softmax");
    check_recompute(FAMILY_GLA, "softmax,gla");
}
END_TEST

// The chunk states a linear layer keeps for its backward (ops.h): H * kdim * vdim / 64
// values a token, lightning with kdim = vdim = D / H, GLA with kdim = D / 2H, vdim = D / H.
static size_t chunk_state_values(const ModelConfig *c, int l) {
    size_t D = c->dim, H = c->n_heads;
    if (c->mixer[l] == MIXER_LIGHTNING) return (H * (D / H) * (D / H) + 63) / 64;
    if (c->mixer[l] == MIXER_GLA) return (H * (D / 2 / H) * (D / H) + 63) / 64;
    return 0;
}

// recompute_states drops the kept chunk states: the same loss and gradients bit for bit
// (the CPU reference never reads them), and the arena, rebuilt, smaller by each linear
// layer's buffer (N tokens' worth, rounded up to the arena's 256-byte alignment).
static void check_recompute_states(Family family, const char *mixers) {
    Model m;
    int tokens[B * T], targets[B * T];
    setup(&m, family, mixers, false, tokens, targets);
    Backend *be = m.be;
    float loss0, loss1;
    float *g0 = gradients(&m, tokens, targets, B, T, &loss0);
    size_t kept = be->ops->memory_in_use(be);
    m.cfg.recompute_states = true;
    float *g1 = gradients(&m, tokens, targets, B, T, &loss1);
    size_t dropped = be->ops->memory_in_use(be);
    ck_assert(memcmp(&loss0, &loss1, sizeof loss0) == 0);
    ck_assert_msg(memcmp(g0, g1, m.n_weights * sizeof(float)) == 0,
                  "%s/%s: recompute_states changes the gradients", family_name(family),
                  mixers ? mixers : "-");
    size_t want = 0, linear = 0;
    for (int l = 0; l < m.cfg.n_layers; l++) {
        size_t bytes = B * T * chunk_state_values(&m.cfg, l) * be->act_size;
        want += bytes;
        linear += bytes > 0;
    }
    ck_assert_msg(want > 0 && kept >= dropped + want && kept < dropped + want + 256 * linear,
                  "%s/%s: the arena shrank by %zu bytes, the chunk states are %zu",
                  family_name(family), mixers ? mixers : "-", kept - dropped, want);
    free(g0);
    free(g1);
    model_free(&m);
}

START_TEST(test_recompute_states) {
    check_recompute_states(FAMILY_TNL, NULL);
    check_recompute_states(FAMILY_GLA, NULL);
    check_recompute_states(FAMILY_TNL, "lightning,softmax");
}
END_TEST

// ---- state in / out through the training path -------------------------------------------

// Copy columns [t0, t0 + n) of every row of a [B, T] array.
static void slice_cols(int *dst, const int *src, int t0, int n) {
    for (int b = 0; b < B; b++) memcpy(dst + b * n, src + b * T + t0, (size_t)n * sizeof(int));
}

// The sequence in two halves, the first half's final states passed to the second, and the
// second half's state gradients back to the first: same losses and gradients as whole.
static void check_state_round_trip(Family family, const char *mixers) {
    Model m;
    int tokens[B * T], targets[B * T];
    setup(&m, family, mixers, false, tokens, targets);
    Backend *be = m.be;
    float whole_loss;
    float *whole = gradients(&m, tokens, targets, B, T, &whole_loss);

    int L = m.cfg.n_layers, h = T / 2;
    float *state[MAX_LAYERS], *dstate[MAX_LAYERS];
    for (int l = 0; l < L; l++) {
        size_t bytes = B * layer_state_floats(&m.cfg, l) * sizeof(float);
        state[l] = be->ops->alloc(be, bytes);
        dstate[l] = be->ops->alloc(be, bytes);
    }
    int tok1[B * T / 2], tgt1[B * T / 2], tok2[B * T / 2], tgt2[B * T / 2];
    slice_cols(tok1, tokens, 0, h);
    slice_cols(tgt1, targets, 0, h);
    slice_cols(tok2, tokens, h, h);
    slice_cols(tgt2, targets, h, h);
    // Forward of the first half only to capture the states, then the second half's
    // forward and backward with them, then the first half's backward with its gradient.
    for (int l = 0; l < L; l++) m.states[l] = (LayerState){.state_out = state[l]};
    model_loss(&m, tok1, tgt1, B, h);
    model_zero_grad(&m);
    for (int l = 0; l < L; l++)
        m.states[l] = (LayerState){.state_in = state[l], .dstate_in = dstate[l]};
    model_forward_backward(&m, tok2, tgt2, B, h, 0.5f);
    for (int l = 0; l < L; l++) m.states[l] = (LayerState){.dstate_out = dstate[l]};
    model_forward_backward(&m, tok1, tgt1, B, h, 0.5f);
    float halves_loss, norm;
    model_read_stats(&m, &halves_loss, &norm);
    ck_assert_msg(fabsf(halves_loss - whole_loss) < 1e-5f * fabsf(whole_loss),
                  "%s: halves loss %.7f vs whole %.7f", family_name(family), halves_loss,
                  whole_loss);
    double err = rel_error(m.grads, whole, (long)m.n_weights);
    ck_assert_msg(err < 1e-5, "%s: gradients through the states differ (rel error %g)",
                  family_name(family), err);
    for (int l = 0; l < L; l++) {
        be->ops->free(be, state[l]);
        be->ops->free(be, dstate[l]);
        m.states[l] = (LayerState){0};
    }
    free(whole);
    model_free(&m);
}

START_TEST(test_state_round_trip_tnl) {
    check_state_round_trip(FAMILY_TNL, NULL);
}
END_TEST
START_TEST(test_state_round_trip_gla) {
    check_state_round_trip(FAMILY_GLA, NULL);
}
END_TEST
START_TEST(test_state_round_trip_mixed) {
    check_state_round_trip(FAMILY_TNL, "lightning,gla");
}
END_TEST

// ---- frozen tensors -------------------------------------------------------------------

// Freeze the embedding, one tensor inside a stacked projection (GLA's k), and an MLP
// output: their gradients are never written (a poison value survives), and every other
// tensor's gradient is what it was with everything trainable.
START_TEST(test_frozen_tensors) {
    Model m;
    int tokens[B * T], targets[B * T];
    setup(&m, FAMILY_GLA, NULL, false, tokens, targets);
    float loss;
    float *all = gradients(&m, tokens, targets, B, T, &loss);
    int frozen[] = {m.embed, m.layer_params[0].mixer[1], m.layer_params[1].mlp_out};
    for (size_t i = 0; i < 3; i++) m.params[frozen[i]].trainable = false;
    model_zero_grad(&m);
    for (size_t i = 0; i < 3; i++) {
        const ParamInfo *p = &m.params[frozen[i]];
        for (size_t j = 0; j < p->numel; j++) m.grads[p->offset + j] = NAN;
    }
    model_forward_backward(&m, tokens, targets, B, T, 1.0f);
    for (int i = 0; i < m.n_params; i++) {
        const ParamInfo *p = &m.params[i];
        const float *g = m.grads + p->offset;
        if (!p->trainable) {
            for (size_t j = 0; j < p->numel; j++)
                ck_assert_msg(isnan(g[j]), "frozen %s: gradient written", p->name);
        } else {
            double err = rel_error(g, all + p->offset, (long)p->numel);
            ck_assert_msg(err < 1e-6, "%s: gradient changed by freezing others (%g)", p->name, err);
        }
    }
    free(all);
    model_free(&m);
}
END_TEST

// ---- hooks ----------------------------------------------------------------------------

typedef struct Ready {
    Model *m;
    int seen[MAX_PARAMS]; // times each param was reported
    float *snapshot;      // the gradients as they were when reported
} Ready;

static void on_ready(void *ctx, int first, int end, size_t offset, size_t count) {
    Ready *r = ctx;
    ck_assert_uint_eq(offset, r->m->params[first].offset);
    for (int i = first; i < end; i++) r->seen[i]++;
    memcpy(r->snapshot + offset, r->m->grads + offset, count * sizeof(float));
}

// Every tensor is reported exactly once, and its gradient was final when it was.
static void check_grads_ready(Family family, const char *mixers, bool tied) {
    Model m;
    int tokens[B * T], targets[B * T];
    setup(&m, family, mixers, tied, tokens, targets);
    Ready r = {.m = &m, .snapshot = zeros((long)m.n_weights)};
    m.hooks = (ModelHooks){.ctx = &r, .grads_ready = on_ready};
    model_zero_grad(&m);
    model_forward_backward(&m, tokens, targets, B, T, 1.0f);
    for (int i = 0; i < m.n_params; i++)
        ck_assert_msg(r.seen[i] == 1, "%s reported %d times", m.params[i].name, r.seen[i]);
    ck_assert_msg(memcmp(r.snapshot, m.grads, m.n_weights * sizeof(float)) == 0,
                  "%s: a gradient changed after it was reported ready", family_name(family));
    free(r.snapshot);
    model_free(&m);
}

START_TEST(test_grads_ready) {
    check_grads_ready(FAMILY_TNL, NULL, true);
    check_grads_ready(FAMILY_GLA, NULL, false);
    check_grads_ready(FAMILY_LLAMA, "softmax,gla", true);
}
END_TEST

// The residual hook adds R into d(loss)/d(layer 0's output); the result must be the
// gradient of loss + dot(R, layer 0's output) (checked by central differences).
typedef struct Extra {
    float *R;        // [N, D]
    float *captured; // layer 1's input (= layer 0's output), host
    int layer;
} Extra;

static void add_extra(void *ctx, int layer, Act *d_resid, int N) {
    Extra *e = ctx;
    if (layer != e->layer) return;
    float *d = (float *)d_resid; // the CPU backend: Act is fp32
    for (long i = 0; i < (long)N * 16; i++) d[i] += e->R[i];
}

static void capture(void *ctx, int layer, const Act *resid_in, const Act *mixer_in,
                    const Act *mixer_out, int N) {
    Extra *e = ctx;
    if (layer == e->layer + 1) memcpy(e->captured, resid_in, (size_t)N * 16 * sizeof(float));
}

// loss + dot(R, layer 0's output), forward only.
static double total_loss(Model *m, Extra *e, const int *tokens, const int *targets) {
    double ce = model_loss(m, tokens, targets, B, T);
    model_forward_layers(m, tokens, B, T, capture, e);
    return ce + dot_double(e->R, e->captured, (long)B * T * 16);
}

START_TEST(test_resid_grad_hook) {
    Model m;
    int tokens[B * T], targets[B * T];
    setup(&m, FAMILY_TNL, NULL, false, tokens, targets);
    ck_assert_int_eq(m.cfg.dim, 16);
    Rng rng = rng_seeded(5);
    Extra e = {.R = rand_tensor(&rng, (long)B * T * 16, 0.05f),
               .captured = zeros((long)B * T * 16),
               .layer = 0};
    m.hooks = (ModelHooks){.ctx = &e, .resid_grad = add_extra};
    model_zero_grad(&m);
    model_forward_backward(&m, tokens, targets, B, T, 1.0f);
    m.hooks = (ModelHooks){0};
    const float eps = 2e-3f;
    double diff = 0, norm = 0;
    for (int s = 0; s < 24; s++) {
        size_t j = rng_next(&rng) % m.n_weights;
        float saved = m.weights[j];
        m.weights[j] = saved + eps;
        double up = total_loss(&m, &e, tokens, targets);
        m.weights[j] = saved - eps;
        double down = total_loss(&m, &e, tokens, targets);
        m.weights[j] = saved;
        double numeric = (up - down) / (2.0 * eps);
        diff += (numeric - m.grads[j]) * (numeric - m.grads[j]);
        norm += numeric * numeric;
    }
    ck_assert_msg(sqrt(diff) <= 0.05 * sqrt(norm) + 1e-3, "extra gradient: |diff| %g |num| %g",
                  sqrt(diff), sqrt(norm));
    free(e.R);
    free(e.captured);
    model_free(&m);
}
END_TEST

// The no-gradient forward reports every layer once, in order, and layer 0's input is the
// scaled embedding.
typedef struct Seen {
    int calls, last;
    bool embed_ok;
    Model *m;
    const int *tokens;
} Seen;

static void count_layer(void *ctx, int layer, const Act *resid_in, const Act *mixer_in,
                        const Act *mixer_out, int N) {
    Seen *s = ctx;
    ck_assert_int_eq(layer, s->last + 1);
    s->last = layer;
    s->calls++;
    if (layer == 0) {
        const float *x = (const float *)resid_in, *table = s->m->weights;
        int D = s->m->cfg.dim;
        float scale = sqrtf((float)D); // TNL
        for (int n = 0; n < N; n++)
            for (int d = 0; d < D; d++)
                s->embed_ok &= x[n * D + d] == scale * table[s->tokens[n] * D + d];
    }
}

START_TEST(test_forward_layers) {
    Model m;
    int tokens[B * T], targets[B * T];
    setup(&m, FAMILY_TNL, NULL, false, tokens, targets);
    Seen s = {.last = -1, .embed_ok = true, .m = &m, .tokens = tokens};
    model_forward_layers(&m, tokens, B, T, count_layer, &s);
    ck_assert_int_eq(s.calls, m.cfg.n_layers);
    ck_assert(s.embed_ok);
    model_free(&m);
}
END_TEST

static Suite *seam_suite(void) {
    Suite *s = suite_create("seam");
    TCase *tc = tcase_create("seam");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_recompute_tnl);
    tcase_add_test(tc, test_recompute_gla);
    tcase_add_test(tc, test_recompute_llama);
    tcase_add_test(tc, test_recompute_hybrid);
    tcase_add_test(tc, test_recompute_states);
    tcase_add_test(tc, test_state_round_trip_tnl);
    tcase_add_test(tc, test_state_round_trip_gla);
    tcase_add_test(tc, test_state_round_trip_mixed);
    tcase_add_test(tc, test_frozen_tensors);
    tcase_add_test(tc, test_grads_ready);
    tcase_add_test(tc, test_resid_grad_hook);
    tcase_add_test(tc, test_forward_layers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return run_suite(seam_suite());
}
