// kernels/backend.c: choosing a backend by device name ("cpu", "cuda", "auto") and freeing
// it. The CUDA backend is linked in only when the build found nvcc (BOLT_CUDA); without it
// "cuda" dies with a message that says so, and "auto" means the CPU.
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "ops.h"

extern const Ops ops_cpu;           // kernels/ops_cpu.c
void ops_cpu_release_scratch(void); // kernels/ops_cpu.c: its reusable buffers

#ifdef BOLT_CUDA
// kernels/ops_cuda.cu (extern "C" there): the CUDA backend, or NULL with the reason in
// why; and whether the CUDA runtime sees a GPU at all.
Backend *cuda_backend_create(char *why, size_t why_cap);
void cuda_backend_free(Backend *be);
bool cuda_device_visible(void);
#endif

// True if this build includes the CUDA backend and a GPU is visible.
bool cuda_available(void) {
#ifdef BOLT_CUDA
    return cuda_device_visible();
#else
    return false;
#endif
}

// The CPU backend: the fp32 reference kernels on host memory.
static Backend *cpu_backend_create(void) {
    Backend *be = xcalloc(1, sizeof(Backend));
    be->ops = &ops_cpu;
    be->name = "cpu";
    be->act_size = sizeof(float);
    snprintf(be->device_name, sizeof be->device_name, "CPU");
    be->peak_flops = 0.0;
    return be;
}

// The CUDA backend, or death with the reason it cannot be had.
static Backend *cuda_create_or_die(void) {
#ifdef BOLT_CUDA
    char why[256] = "unknown error";
    Backend *be = cuda_backend_create(why, sizeof why);
    if (!be) die("device 'cuda': %s", why);
    return be;
#else
    die("device 'cuda': this build of bolt has no CUDA backend (nvcc was not found at build "
        "time; use --device=cpu)");
#endif
}

// "cpu", "cuda" or "auto" (cuda if this build has it and a GPU is visible, else cpu).
Backend *backend_create(const char *device) {
    if (strcmp(device, "cpu") == 0) return cpu_backend_create();
    if (strcmp(device, "cuda") == 0) return cuda_create_or_die();
    if (strcmp(device, "auto") == 0)
        return cuda_available() ? cuda_create_or_die() : cpu_backend_create();
    die("device '%s': unknown (valid: cpu, cuda, auto)", device);
}

// Frees a backend from backend_create (NULL: nothing): the CPU backend's scratch buffers
// (this thread's), or the CUDA backend's stream, handles and workspace.
void backend_free(Backend *be) {
    if (!be) return;
    if (be->ops == &ops_cpu) {
        ops_cpu_release_scratch();
        free(be);
        return;
    }
#ifdef BOLT_CUDA
    cuda_backend_free(be);
#else
    free(be);
#endif
}
