// model/slice_kv.c: softmax layers on a slice (sequence parallelism, Model.slice). A
// slice's queries attend causally to the keys of its own and every earlier slice of the
// row, from the start of the document holding the slice's first token (the row's start
// without doc_reset) to the slice's end: the keys and values (after RoPE, at their global
// positions) of every slice are all-gathered through the kv_exchange hook and laid out
// row by row, so the attention op runs with Tk >= Tq (query t at position Tk - Tq + t).
// Backward gathers them again, computes the gradients of all of them, and sums each
// slice's over the group back to it (slices after this one get zeros from it). The
// exchange buffer is fp32, so the collectives are those of the gradients; the copies to
// and from it convert from and to the compute type. The collectives live in
// dist/seq_parallel.c; here only buffers and copies.
#include <stdlib.h>

#include "../core/util.h"
#include "mixer.h"

void slice_set_keys(Model *m, const int *h_cu) {
    SliceBufs *sb = m->sliced;
    int off = m->slice.index * sb->tokens, n = sb->last_seq[sb->rows - 1] + 1, max_len = 0;
    int *kc = sb->key_cu_host;
    kc[0] = 0;
    for (int b = 0; b < sb->rows; b++) {
        sb->key_row[b] = kc[sb->first_seq[b]];
        for (int i = sb->first_seq[b]; i <= sb->last_seq[b]; i++) {
            int len = h_cu[i + 1] - h_cu[i];
            if (i == sb->first_seq[b]) len += off - sb->key_from[b]; // earlier slices' keys
            kc[i + 1] = kc[i] + len;
            if (len > max_len) max_len = len;
        }
    }
    m->be->ops->upload(m->be, sb->key_cu, kc, ((size_t)n + 1) * sizeof(int));
    sb->keys = (Seqs){sb->key_cu, n, max_len, kc[n]};
}

void slice_free_kv(Backend *be, SliceBufs *sb) {
    void *bufs[4] = {sb->kv_f32, sb->kv_all, sb->kv_keys, sb->kv_grad};
    for (int i = 0; i < 4; i++) {
        if (bufs[i]) be->ops->free(be, bufs[i]);
    }
    sb->kv_f32 = NULL;
    sb->kv_all = sb->kv_keys = sb->kv_grad = NULL;
    sb->kv_cap = 0;
}

// Room for every slice's keys and values of `width` elements per token.
static void reserve_kv(const Model *m, int width) {
    Backend *be = m->be;
    SliceBufs *sb = m->sliced;
    size_t need = (size_t)m->slice.count * sb->rows * sb->tokens * width;
    if (need <= sb->kv_cap) return;
    slice_free_kv(be, sb);
    sb->kv_f32 = be->ops->alloc(be, need * sizeof(float));
    sb->kv_all = be->ops->alloc(be, need * be->act_size);
    sb->kv_keys = be->ops->alloc(be, need * be->act_size);
    sb->kv_grad = be->ops->alloc(be, need * be->act_size);
    sb->kv_cap = need;
}

// The kv_exchange hook, which softmax layers on a slice cannot do without.
static void call_hook(const MixerCall *mc, bool reduce, size_t shard) {
    const Model *m = mc->m;
    check(m->hooks.kv_exchange != NULL,
          "layer %d: a softmax layer on a sliced sequence (sp > 1) needs the kv_exchange "
          "hook (dist/seq_parallel.h)",
          mc->layer);
    m->hooks.kv_exchange(m->hooks.state_ctx, mc->layer, reduce, m->sliced->kv_f32, shard);
}

// Copy between the slices' tokens [slices, rows * tokens, width] (all) and the row-major
// keys (keys): to_keys picks each row's keys out of all, otherwise they go back.
static void move_keys(const Model *m, Act *all, Act *keys, int width, bool to_keys) {
    Backend *be = m->be;
    const SliceBufs *sb = m->sliced;
    int Tl = sb->tokens, end = (m->slice.index + 1) * Tl;
    size_t N = (size_t)sb->rows * Tl, tok = (size_t)width * be->act_size;
    for (int b = 0; b < sb->rows; b++) {
        for (int g0 = sb->key_from[b]; g0 < end;) {
            int j = g0 / Tl, g1 = (j + 1) * Tl; // tokens [g0, g1) lie in slice j
            Act *a = act_at(be, all, ((size_t)j * N + (size_t)b * Tl + (g0 - j * Tl)) * width);
            Act *k = act_at(be, keys, ((size_t)sb->key_row[b] + (g0 - sb->key_from[b])) * width);
            size_t bytes = (size_t)(g1 - g0) * tok;
            if (to_keys)
                be->ops->copy(be, k, a, bytes);
            else
                be->ops->copy(be, a, k, bytes);
            g0 = g1;
        }
    }
}

Act *slice_gather_kv(const MixerCall *mc, const Act *kv, int ld, int width) {
    const Model *m = mc->m;
    Backend *be = m->be;
    SliceBufs *sb = m->sliced;
    reserve_kv(m, width);
    size_t N = (size_t)sb->rows * sb->tokens, shard = N * width;
    Act *own = act_at(be, sb->kv_all, (size_t)m->slice.index * shard);
    be->ops->copy_2d(be, own, (size_t)width * be->act_size, kv, (size_t)ld * be->act_size,
                     (size_t)width * be->act_size, N);
    float *own_f32 = sb->kv_f32 + (size_t)m->slice.index * shard;
    be->ops->act_to_float(be, own_f32, own, (long)shard);
    call_hook(mc, false, shard);
    be->ops->float_to_act(be, sb->kv_all, sb->kv_f32, (long)(shard * m->slice.count));
    move_keys(m, sb->kv_all, sb->kv_keys, width, true);
    return sb->kv_keys;
}

Act *slice_kv_grad(const Model *m) {
    return m->sliced->kv_grad;
}

void slice_reduce_kv_grad(const MixerCall *mc, Act *dkv, int ld, int width) {
    const Model *m = mc->m;
    Backend *be = m->be;
    SliceBufs *sb = m->sliced;
    size_t N = (size_t)sb->rows * sb->tokens, shard = N * width;
    // Every slice's tokens: this slice's gradients where it has keys, zero elsewhere.
    be->ops->zero(be, sb->kv_all, shard * m->slice.count * be->act_size);
    move_keys(m, sb->kv_all, sb->kv_grad, width, false);
    be->ops->act_to_float(be, sb->kv_f32, sb->kv_all, (long)(shard * m->slice.count));
    call_hook(mc, true, shard);
    Act *own = act_at(be, sb->kv_all, (size_t)m->slice.index * shard);
    be->ops->float_to_act(be, own, sb->kv_f32 + (size_t)m->slice.index * shard, (long)shard);
    be->ops->copy_2d(be, dkv, (size_t)ld * be->act_size, own, (size_t)width * be->act_size,
                     (size_t)width * be->act_size, N);
}
