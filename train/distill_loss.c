// train/distill_loss.c: attention transfer and logit distillation on one micro-batch
// (see distill_loss.h).
#include "distill_loss.h"

#include "../core/util.h"
#include "../model/mixer.h"

void distill_pair_init(DistillPair *p, Model *teacher, Model *student, int max_tokens) {
    Backend *be = student->be;
    p->teacher = teacher;
    p->student = student;
    p->n_linear = 0;
    for (int l = 0; l < student->cfg.n_layers; l++)
        p->n_linear += student->cfg.mixer[l] != MIXER_SOFTMAX;
    size_t N = (size_t)max_tokens, D = student->cfg.dim, V = student->cfg.vocab_size;
    p->capacity = max_tokens;
    p->sums = be->ops->alloc(be, 4 * sizeof(float));
    p->d_out = be->ops->alloc(be, N * D * be->act_size);
    p->t_logits = be->ops->alloc(be, N * V * sizeof(float));
    p->s_logits = be->ops->alloc(be, N * V * sizeof(float));
    p->kl = be->ops->alloc(be, N * sizeof(float));
    p->ce = be->ops->alloc(be, N * sizeof(float));
    p->d_logits = be->ops->alloc(be, N * V * be->act_size);
}

void distill_pair_free(DistillPair *p) {
    Backend *be = p->student->be;
    void *bufs[] = {p->sums, p->d_out, p->t_logits, p->s_logits, p->kl, p->ce, p->d_logits};
    for (int i = 0; i < 7; i++) be->ops->free(be, bufs[i]);
}

void distill_zero_sums(DistillPair *p) {
    p->student->be->ops->zero(p->student->be, p->sums, 4 * sizeof(float));
}

void distill_read_sums(DistillPair *p, float *ce, float *kl, float *mse) {
    float host[4];
    p->student->be->ops->download(p->student->be, host, p->sums, sizeof host);
    *ce = host[0];
    *kl = host[1];
    *mse = host[2];
}

// The teacher's layer l has run: the student's mixer l runs on the same normed input,
// its MSE to the teacher's attention output goes into sums[2], and (in training) its
// gradient flows back through that mixer alone.
static void transfer_layer(void *ctx, int l, const Act *resid_in, const Act *mixer_in,
                           const Act *mixer_out, int N) {
    DistillPair *p = ctx;
    Model *s = p->student;
    if (s->cfg.mixer[l] == MIXER_SOFTMAX) return; // the teacher's own layer: nothing to learn
    long n = (long)N * s->cfg.dim;
    const Act *out = model_mixer_forward(s, l, mixer_in, N);
    float scale = p->scale / ((float)p->n_linear * (float)n);
    s->be->ops->mse_loss(s->be, p->sums + 2, p->d_out, out, mixer_out, n, scale);
    if (p->backward) model_mixer_backward(s, l, p->d_out, N);
}

// Both models see the micro-batch; the teacher's forward drives the student's mixers.
static void run_transfer(DistillPair *p, const int *tokens, int B, int T, float scale,
                         bool backward) {
    check(B * T <= p->capacity, "distill: batch of %d tokens over the %d allocated", B * T,
          p->capacity);
    check(p->n_linear > 0, "distill: the student has no linear layers to transfer to");
    p->scale = scale;
    p->backward = backward;
    model_load_tokens(p->student, tokens, B, T);
    model_forward_layers(p->teacher, tokens, B, T, transfer_layer, p);
}

void distill_transfer_step(DistillPair *p, const int *tokens, int B, int T, float grad_scale) {
    run_transfer(p, tokens, B, T, grad_scale, true);
}

double distill_transfer_loss(DistillPair *p, const int *tokens, int B, int T) {
    distill_zero_sums(p);
    run_transfer(p, tokens, B, T, 1.0f, false);
    float ce, kl, mse;
    distill_read_sums(p, &ce, &kl, &mse);
    return mse;
}

// The KL term at the student's LM head (model_forward_backward's head_grad hook): the
// student's logits from h, the KL to the teacher's logits and its gradient, which flows
// into dh and the LM head's gradient. Also records the step's CE and KL.
static void kd_head_grad(void *ctx, const Act *h, Act *dh, const int *targets, int N) {
    DistillPair *p = ctx;
    Model *s = p->student;
    Backend *be = s->be;
    int D = s->cfg.dim, V = s->cfg.vocab_size;
    const Act *W = param_weight(s, s->lm_head);
    be->ops->logits_forward(be, p->s_logits, h, W, N, D, V);
    be->ops->kd_loss(be, p->kl, p->ce, p->d_logits, p->s_logits, p->t_logits, targets, N, V,
                     p->temperature, p->kd_weight * p->scale / (float)N);
    be->ops->sum_into(be, p->sums, p->ce, N, p->scale / (float)N);
    be->ops->sum_into(be, p->sums + 1, p->kl, N, p->scale / (float)N);
    be->ops->matmul_backward(be, dh, param_grad(s, s->lm_head), NULL, p->d_logits, V, h, W, N, D, V,
                             true);
}

// The teacher's logits of the micro-batch into t_logits (forward only).
static void teacher_logits(DistillPair *p, const int *tokens, int B, int T) {
    check(B * T <= p->capacity, "distill: batch of %d tokens over the %d allocated", B * T,
          p->capacity);
    model_forward_layers(p->teacher, tokens, B, T, NULL, NULL);
    model_last_logits(p->teacher, p->t_logits, B * T);
}

void distill_finetune_step(DistillPair *p, const int *tokens, const int *targets, int B, int T,
                           float grad_scale) {
    teacher_logits(p, tokens, B, T);
    Model *s = p->student;
    ModelHooks saved = s->hooks;
    s->hooks.ctx = p;
    s->hooks.head_grad = kd_head_grad;
    p->scale = grad_scale;
    model_forward_backward(s, tokens, targets, B, T, p->ce_weight * grad_scale);
    s->hooks = saved;
}

double distill_finetune_loss(DistillPair *p, const int *tokens, const int *targets, int B, int T) {
    teacher_logits(p, tokens, B, T);
    Model *s = p->student;
    Backend *be = s->be;
    int N = B * T, V = s->cfg.vocab_size;
    model_forward_layers(s, tokens, B, T, NULL, NULL);
    model_last_logits(s, p->s_logits, N);
    int *d_targets = be->ops->alloc(be, (size_t)N * sizeof(int));
    be->ops->upload(be, d_targets, targets, (size_t)N * sizeof(int));
    distill_zero_sums(p);
    be->ops->kd_loss(be, p->kl, p->ce, p->d_logits, p->s_logits, p->t_logits, d_targets, N, V,
                     p->temperature, 0.0f);
    be->ops->sum_into(be, p->sums, p->ce, N, 1.0f / (float)N);
    be->ops->sum_into(be, p->sums + 1, p->kl, N, 1.0f / (float)N);
    be->ops->free(be, d_targets);
    float ce, kl, mse;
    distill_read_sums(p, &ce, &kl, &mse);
    double T2 = (double)p->temperature * p->temperature;
    return p->ce_weight * (double)ce + p->kd_weight * T2 * (double)kl;
}
