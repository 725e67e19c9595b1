// model/distill_init.h: the student of a distillation (SPEC sec. 8). The student is the
// teacher's architecture (a Llama-layout softmax model, GQA included) with its token
// mixers replaced (lightning or GLA, or a pattern that keeps some softmax layers).
// Embeddings, norms, MLPs, the LM head and the attention projections are copied from the
// teacher; the tensors a linear mixer adds are freshly initialised. Each student tensor:
//
//   embedding, every norm weight, MLP gate/up/down, final norm, LM head: the teacher's.
//   softmax layers (hybrids): q, k, v, o: the teacher's (the layer is the teacher's).
//   lightning qkvu_proj [4D, D]: rows q = teacher q_proj; k, v = teacher k_proj, v_proj
//     with each key/value head repeated for the query heads that share it (GQA); the
//     output-gate rows u are new, normal(0, 0.02). out_proj = teacher o_proj.
//     (Needs head_dim = dim / n_heads; decays are the fixed ALiBi slopes. With
//     lightning_qk = rope, which a distillation should use, q and k keep the teacher's
//     RoPE and no feature map, so the copied rows score keys as the teacher's did.)
//   gla q_proj, k_proj [D/2, D]: per head the first head_dim/2 rows of the teacher's head
//     (k after the GQA repeat); v_proj [D, D] = teacher v_proj repeated over the heads;
//     o_proj = teacher o_proj; g_proj (swish output gate) and gk_proj.0/1 (low-rank
//     forget gate) new, normal(0, 0.02); gk_proj.1.bias zeros; g_norm weight ones.
//
// Distillation trains parts of tensors (the u rows of qkvu_proj but not q, k, v), so the
// student is described as segments of the flat weight buffer, each marked new or copied.
#pragma once
#include "model.h"

// A run of floats of the student's flat buffers with one role.
typedef struct Segment {
    size_t offset, count;
    int param;         // the tensor it lies in
    bool is_new;       // freshly initialised (not from the teacher)
    bool is_qk;        // query / key rows copied from the teacher
    bool linear_mixer; // part of a linear (lightning / GLA) layer's mixer
} Segment;

// The student's config: the teacher's with mixers from `pattern` ("gla", "lightning",
// "lightning*3,softmax", ...); its family is llama, or gla when no layer is lightning
// (the same network in fla's GLA layout, so `bolt export` writes a GLAForCausalLM). Dies if the
// teacher is not a softmax Llama-layout model or the pattern cannot hold the teacher's shapes.
void distill_student_config(const ModelConfig *teacher, const char *pattern, ModelConfig *out);
// Dies naming the first setting (vocab, dim, layers, heads, head_dim, mlp, tied
// embeddings) in which a student does not have the teacher's architecture. `what` names
// the student in the message (its checkpoint, say).
void distill_check_match(const ModelConfig *teacher, const ModelConfig *student, const char *what);
// The student's segments in buffer order (they tile it exactly); returns their count
// and sets *out to a new array.
int distill_segments(const Model *student, Segment **out);
// Initialise the student from the teacher as the table above says (new tensors from
// `seed`). The teacher is only read.
void distill_init_student(Model *student, const Model *teacher, uint64_t seed);
