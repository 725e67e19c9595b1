// optim/schedule.c: learning-rate schedules (see schedule.h for the exact shapes).
#include "schedule.h"

#include <math.h>
#include <string.h>

#include "../core/util.h"

bool schedule_valid(const char *name) {
    return strcmp(name, "cosine") == 0 || strcmp(name, "linear") == 0 || strcmp(name, "wsd") == 0 ||
           strcmp(name, "constant") == 0;
}

// Fraction in [0, 1] of the way from step `start` (0) to step `end` (1).
static double progress(int step, int start, int end) {
    if (end <= start) return step >= end ? 1.0 : 0.0;
    double t = (double)(step - start) / (double)(end - start);
    return t < 0 ? 0 : (t > 1 ? 1 : t);
}

float lr_at(const char *schedule, float lr, float min_lr_ratio, int warmup, int steps,
            float decay_frac, int step) {
    check(schedule_valid(schedule),
          "unknown lr schedule '%s' (expected cosine, linear, wsd or constant)", schedule);
    if (step < warmup) return (float)((double)lr * (double)(step + 1) / (double)warmup);
    double peak = lr;
    double min_lr = (double)lr * (double)min_lr_ratio;
    int last = steps - 1; // the step that ends at min_lr
    if (strcmp(schedule, "constant") == 0) return lr;
    if (strcmp(schedule, "cosine") == 0) {
        double t = progress(step, warmup, last);
        return (float)(min_lr + (peak - min_lr) * 0.5 * (1.0 + cos(M_PI * t)));
    }
    if (strcmp(schedule, "linear") == 0) {
        double t = progress(step, warmup, last);
        return (float)(min_lr + (peak - min_lr) * (1.0 - t));
    }
    // wsd: the decay covers steps [decay_start, last]; its first step is already below lr.
    int decay_steps = (int)lround((double)decay_frac * (double)steps);
    if (decay_steps <= 0) return lr;
    int decay_start = steps - decay_steps;
    if (decay_start < warmup) decay_start = warmup;
    if (step < decay_start) return lr;
    double t = progress(step + 1, decay_start, steps);
    return (float)(min_lr + (peak - min_lr) * (1.0 - t));
}
