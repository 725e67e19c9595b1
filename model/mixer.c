// model/mixer.c: the mixer table and the helpers every mixer uses to reach its weights:
// the compute copy and gradient of a tensor, and matmuls over stacks of adjacent tensors.
#include "mixer.h"

#include "../core/util.h"

// Indexed by MixerKind. A new mixer: its file, its kind in model.h, its entry here.
const Mixer *const mixer_table[N_MIXER_KINDS] = {
    [MIXER_LIGHTNING] = &mixer_lightning,
    [MIXER_GLA] = &mixer_gla,
    [MIXER_SOFTMAX] = &mixer_softmax,
};

BufSpec chunk_states_spec(const ModelConfig *c, size_t H, size_t kdim, size_t vdim) {
    return (BufSpec){"chunk_states", c->recompute_states ? 0 : (H * kdim * vdim + 63) / 64, false};
}

const Act *param_weight(const Model *m, int i) {
    return i < 0 ? NULL : act_at(m->be, m->weights_act, m->params[i].offset);
}

float *param_grad(const Model *m, int i) {
    return i < 0 || !m->params[i].trainable ? NULL : m->grads + m->params[i].offset;
}

// Rows of the stack of `count` adjacent tensors from param `first` (its OC).
static int linear_rows(const Model *m, int first, int count) {
    int rows = 0;
    for (int i = first; i < first + count; i++) rows += m->params[i].shape[0];
    return rows;
}

void linear_forward(Model *m, Act *out, const Act *inp, int first, int count, int N) {
    int C = m->params[first].shape[1];
    m->be->ops->matmul_forward(m->be, out, inp, param_weight(m, first), NULL, N, C,
                               linear_rows(m, first, count));
}

void linear_backward(Model *m, Act *dinp, bool accumulate, const Act *dout, const Act *inp,
                     int first, int count, int N) {
    Backend *be = m->be;
    int C = m->params[first].shape[1], OC = linear_rows(m, first, count);
    bool all_trainable = true;
    for (int i = first; i < first + count; i++) all_trainable &= m->params[i].trainable;
    if (all_trainable) {
        // One product for the whole stack: the tensors' gradients are adjacent too.
        be->ops->matmul_backward(be, dinp, param_grad(m, first), NULL, dout, OC, inp,
                                 param_weight(m, first), N, C, OC, accumulate);
        return;
    }
    if (dinp) {
        be->ops->matmul_backward(be, dinp, NULL, NULL, dout, OC, inp, param_weight(m, first), N, C,
                                 OC, accumulate);
    }
    // Weight gradients tensor by tensor, each from its column block of dout.
    int col = 0;
    for (int i = first; i < first + count; i++) {
        int rows = m->params[i].shape[0];
        if (m->params[i].trainable) {
            be->ops->matmul_backward(be, NULL, param_grad(m, i), NULL, act_at(be, dout, col), OC,
                                     inp, param_weight(m, i), N, C, rows, false);
        }
        col += rows;
    }
}

size_t layer_state_floats(const ModelConfig *c, int layer) {
    return mixer_table[c->mixer[layer]]->state_floats(c);
}
