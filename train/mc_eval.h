// train/mc_eval.h: multiple-choice accuracy of a model (HellaSwag style, as lm-eval and
// llm.c score it): each ending is scored by the summed negative log-likelihood of its
// tokens after the context; acc takes the lowest sum, acc_norm the lowest sum per byte
// of ending text.
#pragma once
#include <stdio.h>

#include "../data/evalfile.h"
#include "../model/model.h"

typedef struct McResult {
    int n;            // examples scored
    int correct;      // acc: argmin of the summed loss is the label
    int correct_norm; // acc_norm: argmin of the loss per byte is the label
} McResult;

// Score every example of s with m (an EOT goes before each context, as prep writes one
// before every document). `scores_out` (may be NULL) gets one JSON line per example:
// index, label, both predictions and each ending's summed loss and loss per byte.
McResult mc_evaluate(Model *m, const McSet *s, FILE *scores_out);
// During training: score the set, print "step S/N | mc acc ... | acc_norm ..." and add
// {"step", "mc_acc", "mc_acc_norm", "mc_n"} to metrics (may be NULL).
void mc_log(Model *m, const McSet *s, long long step, int steps, FILE *metrics);
// `bolt eval CKPT --mc=FILE [--mc_out=FILE]`: read the set with the checkpoint's
// tokenizer, score it, print acc and acc_norm with the count (`ckpt` names it).
void mc_eval_command(Model *m, const Tokenizer *tok, const char *ckpt, const char *mc_path,
                     const char *mc_out);
