// train/validate.h: the validation loss that bolt train and bolt distill log.
#pragma once
#include <stdint.h>

#include "../data/loader.h"
#include "../model/model.h"

// Mean of model_loss over the first `batches` batches of val (all of it when batches <= 0
// or more than an epoch), from val's start; tokens and targets are [B * T] scratch.
float validation_loss(Model *m, Loader *val, int64_t batches, int *tokens, int *targets, int B,
                      int T);
