// train/distill_loss.h: the two losses of `bolt distill` on one micro-batch, teacher and
// student together (SPEC sec. 8).
//
// Stage 1, attention transfer: the teacher runs forward without gradients
// (model_forward_layers); as each of its layers finishes, the student's mixer of that
// layer runs on the teacher's normed hidden states and its output is compared with the
// teacher's attention output: loss = mean over the student's linear layers of
// MSE(student mixer output, teacher attention output). Only that mixer runs backward, so
// there is no backward through the network.
//
// Stage 2, fine-tuning: loss = ce_weight * CE(data) + kd_weight * T^2 * KL(p_teacher ||
// p_student), both distributions at temperature T. The teacher runs forward only; the
// student's forward and backward are model_forward_backward with the cross-entropy
// weighted by ce_weight, and a head_grad hook adds the KL term's gradient at the LM head.
#pragma once
#include "../model/model.h"

typedef struct DistillPair {
    Model *teacher, *student; // the teacher is only read
    int n_linear;             // the student's lightning / GLA layers (stage 1's mean)
    float ce_weight, kd_weight, temperature;
    int capacity; // tokens the buffers below hold
    // backend memory: sums[0..3) = this step's CE, KL and transfer MSE (means, weighted by
    // each micro-batch's grad_scale); the rest are one micro-batch's scratch
    float *sums;
    Act *d_out;                           // [N, D] gradient of a mixer's output
    float *t_logits, *s_logits, *kl, *ce; // [N, V], [N, V], [N], [N]
    Act *d_logits;                        // [N, V]
    float scale;                          // the current micro-batch's grad_scale
    bool backward;                        // stage 1: run the mixers' backward too
} DistillPair;

// Buffers for micro-batches of up to max_tokens tokens on the student's backend.
void distill_pair_init(DistillPair *p, Model *teacher, Model *student, int max_tokens);
void distill_pair_free(DistillPair *p);
// Zero sums (the start of an optimizer step).
void distill_zero_sums(DistillPair *p);
// The sums, downloaded: ce, kl, mse.
void distill_read_sums(DistillPair *p, float *ce, float *kl, float *mse);

// Stage 1 on one micro-batch [B, T]: adds grad_scale * d(transfer loss)/d(weights) into the
// student's gradients (trainable tensors only) and grad_scale * loss into sums[2].
void distill_transfer_step(DistillPair *p, const int *tokens, int B, int T, float grad_scale);
// Stage 2 on one micro-batch: the same for ce_weight * CE + kd_weight * T^2 * KL; sums[0]
// and sums[1] get grad_scale x the mean CE and the mean KL (without T^2).
void distill_finetune_step(DistillPair *p, const int *tokens, const int *targets, int B, int T,
                           float grad_scale);
// The two losses without gradients (tests, checks).
double distill_transfer_loss(DistillPair *p, const int *tokens, int B, int T);
double distill_finetune_loss(DistillPair *p, const int *tokens, const int *targets, int B, int T);
