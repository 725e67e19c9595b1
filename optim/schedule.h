// optim/schedule.h: the learning rate at each step: a linear warmup, then one of the
// schedules cosine | linear | wsd (warmup-stable-decay) | constant, down to lr *
// min_lr_ratio at the last step.
#pragma once
#include <stdbool.h>

// The learning rate of 0-based `step` in a run of `steps` steps with peak `lr`.
// Warmup: lr * (step + 1) / warmup for step < warmup, so step warmup-1 reaches lr. Then:
//   cosine:   lr -> min_lr along half a cosine, min_lr at step steps-1
//   linear:   lr -> min_lr linearly, min_lr at step steps-1
//   wsd:      lr held, then a linear decay over the last round(decay_frac * steps) steps
//             ending at min_lr at step steps-1 (decay_frac 0: no decay)
//   constant: lr
// Steps past the end keep the final value. Dies on an unknown schedule name.
float lr_at(const char *schedule, float lr, float min_lr_ratio, int warmup, int steps,
            float decay_frac, int step);

// True if `name` is one of the schedules lr_at knows.
bool schedule_valid(const char *name);
