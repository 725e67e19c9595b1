// train/mc_eval.c: multiple-choice evaluation (see mc_eval.h).
#include "mc_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

// The summed loss of each ending of one example: all endings run as one batch of rows
// [EOT, context, ending, padding], only the ending's tokens counted.
static void score_example(Model *m, const McExample *ex, double *sum) {
    int K = ex->n_endings, eot = m->cfg.eot_token, longest = 0;
    for (int e = 0; e < K; e++) {
        int len = ex->ending_start[e + 1] - ex->ending_start[e];
        if (len > longest) longest = len;
    }
    int T = 1 + ex->ctx_len + longest;
    int *tokens = xmalloc((size_t)K * T * sizeof(int)),
        *targets = xmalloc((size_t)K * T * sizeof(int));
    for (int e = 0; e < K; e++) {
        int *row = tokens + (size_t)e * T, *tgt = targets + (size_t)e * T;
        int start = ex->ending_start[e], len = ex->ending_start[e + 1] - start;
        for (int t = 0; t < T; t++) row[t] = eot, tgt[t] = -1;
        memcpy(row + 1, ex->tokens, (size_t)ex->ctx_len * sizeof(int));
        memcpy(row + 1 + ex->ctx_len, ex->tokens + start, (size_t)len * sizeof(int));
        // Ending token j sits at 1 + ctx_len + j and is predicted one position earlier.
        for (int j = 0; j < len; j++) tgt[ex->ctx_len + j] = row[1 + ex->ctx_len + j];
    }
    model_loss(m, tokens, targets, K, T);
    float *losses = xmalloc((size_t)K * T * sizeof(float));
    model_token_losses(m, losses, K * T);
    for (int e = 0; e < K; e++) {
        sum[e] = 0;
        for (int t = 0; t < T; t++)
            if (targets[(size_t)e * T + t] >= 0) sum[e] += losses[(size_t)e * T + t];
    }
    free(losses);
    free(tokens);
    free(targets);
}

// The index of the smallest of x[0..n) (the first on ties).
static int argmin(const double *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] < x[best]) best = i;
    return best;
}

McResult mc_evaluate(Model *m, const McSet *s, FILE *scores_out) {
    McResult r = {0};
    for (int i = 0; i < s->n; i++) {
        const McExample *ex = &s->examples[i];
        double sum[MC_MAX_ENDINGS], per_byte[MC_MAX_ENDINGS];
        score_example(m, ex, sum);
        for (int e = 0; e < ex->n_endings; e++)
            per_byte[e] = sum[e] / (ex->ending_bytes[e] > 0 ? ex->ending_bytes[e] : 1);
        int pred = argmin(sum, ex->n_endings), pred_norm = argmin(per_byte, ex->n_endings);
        r.n++;
        r.correct += pred == ex->label;
        r.correct_norm += pred_norm == ex->label;
        if (!scores_out) continue;
        fprintf(scores_out, "{\"index\": %d, \"label\": %d, \"pred\": %d, \"pred_norm\": %d, ",
                ex->index, ex->label, pred, pred_norm);
        for (int pass = 0; pass < 2; pass++) {
            fprintf(scores_out, pass ? ", \"loss_per_byte\": [" : "\"loss\": [");
            for (int e = 0; e < ex->n_endings; e++)
                fprintf(scores_out, "%s%.6f", e ? ", " : "", pass ? per_byte[e] : sum[e]);
            fprintf(scores_out, "]");
        }
        fprintf(scores_out, "}\n");
    }
    return r;
}

void mc_log(Model *m, const McSet *s, long long step, int steps, FILE *metrics) {
    McResult r = mc_evaluate(m, s, NULL);
    double acc = (double)r.correct / r.n, acc_norm = (double)r.correct_norm / r.n;
    printf("step %lld/%d | mc acc %.4f | acc_norm %.4f | %d examples\n", step, steps, acc, acc_norm,
           r.n);
    if (!metrics) return;
    fprintf(metrics, "{\"step\": %lld, \"mc_acc\": %.6f, \"mc_acc_norm\": %.6f, \"mc_n\": %d}\n",
            step, acc, acc_norm, r.n);
    fflush(metrics);
}

void mc_eval_command(Model *m, const Tokenizer *tok, const char *ckpt, const char *mc_path,
                     const char *mc_out) {
    McSet set = mc_read(mc_path, tok, m->cfg.vocab_size);
    m->cfg.eot_token = tok->eot;
    AtomicFile af = {0};
    if (mc_out) af = atomic_open(mc_out);
    double t0 = now_seconds();
    McResult r = mc_evaluate(m, &set, mc_out ? af.f : NULL);
    if (mc_out) atomic_commit(&af);
    printf("eval %s on %s: %d examples | acc %.4f (%d) | acc_norm %.4f (%d) | %.1fs\n", ckpt,
           mc_path, r.n, (double)r.correct / r.n, r.correct, (double)r.correct_norm / r.n,
           r.correct_norm, now_seconds() - t0);
    mc_free(&set);
}
