// kernels/ops_cpu.c: the CPU backend's op table (host memory, the fp32 reference kernels).
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "ops.h"

static void *cpu_alloc(size_t bytes) {
    return xcalloc(1, bytes);
}
static void cpu_free(void *p) {
    free(p);
}
static void cpu_zero(void *p, size_t bytes) {
    memset(p, 0, bytes);
}
static void cpu_copy(void *dst, const void *src, size_t bytes) {
    memcpy(dst, src, bytes);
}

const Ops ops_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .matmul_forward = matmul_forward,
    .matmul_backward = matmul_backward,
    .embedding_forward = embedding_forward,
    .embedding_backward = embedding_backward,
    .norm_forward = norm_forward,
    .norm_backward = norm_backward,
    .add_forward = add_forward,
    .silu_forward = silu_forward,
    .silu_backward = silu_backward,
    .swiglu_forward = swiglu_forward,
    .swiglu_backward = swiglu_backward,
    .mul_forward = mul_forward,
    .mul_backward = mul_backward,
    .logsigmoid_forward = logsigmoid_forward,
    .logsigmoid_backward = logsigmoid_backward,
    .rope_forward = rope_forward,
    .rope_backward = rope_backward,
    .lightning_attn_forward = lightning_attn_forward,
    .lightning_attn_backward = lightning_attn_backward,
    .gla_forward = gla_forward,
    .gla_backward = gla_backward,
    .softmax_attn_forward = softmax_attn_forward,
    .softmax_attn_backward = softmax_attn_backward,
    .lm_head_cross_entropy = lm_head_cross_entropy,
    .adamw_update = adamw_update,
    .sum_squares = sum_squares,
    .scale_inplace = scale_inplace,
};

const Ops *ops_for_device(const char *device) {
    if (strcmp(device, "cpu") == 0 || strcmp(device, "auto") == 0) return &ops_cpu;
    if (strcmp(device, "cuda") == 0)
        die("device 'cuda': this build of bolt has no CUDA backend (use --device=cpu)");
    die("device '%s': unknown (valid: cpu, cuda, auto)", device);
}
