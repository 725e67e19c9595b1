// train/validate.c: the validation loss of bolt train and bolt distill (see validate.h).
#include "validate.h"

float validation_loss(Model *m, Loader *val, int64_t batches, int *tokens, int *targets, int B,
                      int T) {
    loader_reset(val);
    int64_t n = loader_batches_per_epoch(val);
    if (batches > 0 && batches < n) n = batches;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        loader_next(val, tokens, targets);
        sum += model_loss(m, tokens, targets, B, T);
    }
    return (float)(sum / (double)n);
}
