// train/distill.c: `bolt distill CONFIG [--key=value ...]`: distil a softmax (Llama-layout)
// teacher into a student with linear token mixers (SPEC sec. 8): stage 1 attention
// transfer for stage1_steps, then stage 2 fine-tuning (CE + KD) for stage2_steps, one
// step count over both. The student is built by model/distill_init.c; the losses are
// train/distill_loss.c. Logging, validation, multiple-choice scoring, checkpoints and
// bit-exact resume (either stage) work as in `bolt train`, on one process.
//
// What trains: stage 1 the segments of the linear mixers that transfer_train names (new;
// new + q/k; all), at lr_new; stage 2 every segment, new ones at lr_new and copied ones at
// lr_copied (0: frozen). Both rates follow the schedule, restarted at each stage, and the
// AdamW moments and step count restart at stage 2. A tensor none of whose segments trains
// is frozen (no gradient work); the teacher never gets gradients or updates.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../data/loader.h"
#include "../data/tokenizer.h"
#include "../dist/dist.h"
#include "../model/checkpoint.h"
#include "../model/distill_init.h"
#include "../optim/optimizer.h"
#include "../optim/schedule.h"
#include "commands.h"
#include "config.h"
#include "distill_loss.h"
#include "mc_eval.h"
#include "run_dir.h"
#include "validate.h"
#include "plot.h"

typedef struct DistillRun {
    Config cfg;
    Backend *be;
    Tokenizer tok;
    Model teacher, student;
    DistillPair pair;
    Optimizer opt;
    Segment *segs;
    int n_segs;
    int stage; // the stage whose flags and groups are set (0: none yet)
    TrainState state;
    Loader *train, *val;
    McSet mc;
    int *tokens, *targets;
    FILE *metrics;
    double start_time;
    int64_t start_step;
} DistillRun;

// Does segment s train in `stage`, and at which peak rate?
static bool segment_trains(const Config *c, const Segment *s, int stage, float *lr) {
    if (stage == 1) {
        *lr = c->lr_new;
        if (!s->linear_mixer) return false;
        if (strcmp(c->transfer_train, "all") == 0) return true;
        return s->is_new || (s->is_qk && strcmp(c->transfer_train, "qk") == 0);
    }
    *lr = s->is_new ? c->lr_new : c->lr_copied;
    return *lr > 0;
}

// Set the student's trainable flags and the optimizer's groups for a stage: adjacent
// trained segments with the same rate and decay form one group (lr_scale = peak rate).
static void set_stage(DistillRun *r, int stage) {
    const Config *c = &r->cfg;
    Model *m = &r->student;
    Optimizer *o = &r->opt;
    for (int i = 0; i < m->n_params; i++) m->params[i].trainable = false;
    o->n_groups = 0;
    for (int i = 0; i < r->n_segs; i++) {
        const Segment *s = &r->segs[i];
        float lr;
        if (!segment_trains(c, s, stage, &lr)) continue;
        m->params[s->param].trainable = true;
        float wd = m->params[s->param].no_decay ? 0.0f : c->weight_decay;
        ParamGroup *last = o->n_groups ? &o->groups[o->n_groups - 1] : NULL;
        if (last && last->offset + last->count == s->offset && last->weight_decay == wd &&
            last->lr_scale == lr) {
            last->count += s->count;
        } else {
            check(o->n_groups < MAX_PARAM_GROUPS, "distill: more than %d groups", MAX_PARAM_GROUPS);
            o->groups[o->n_groups++] = (ParamGroup){s->offset, s->count, wd, lr};
        }
    }
    check(o->n_groups > 0,
          "distill: nothing trains in stage %d (transfer_train = %s, lr_new %g, "
          "lr_copied %g)",
          stage, c->transfer_train, c->lr_new, c->lr_copied);
    size_t n = 0;
    for (int g = 0; g < o->n_groups; g++) n += o->groups[g].count;
    printf("stage %d: %.3fM of %.3fM student weights train in %d groups\n", stage, n / 1e6,
           m->n_weights / 1e6, o->n_groups);
    r->stage = stage;
}

// The teacher (read only, no gradients) with this run's tokenizer and document handling.
static void load_teacher(DistillRun *r) {
    const Config *c = &r->cfg;
    char dir[4096], tok_spec[CONFIG_STR];
    check(c->teacher[0] != '\0', "config: teacher is not set (a Hugging Face Llama directory or "
                                 "a bolt checkpoint)");
    checkpoint_resolve(c->teacher, dir, sizeof dir);
    model_load(&r->teacher, dir, r->be, tok_spec, sizeof tok_spec);
    Model *t = &r->teacher;
    t->cfg.doc_reset = c->model.doc_reset;
    t->cfg.eot_token = r->tok.eot;
    for (int i = 0; i < t->n_params; i++) t->params[i].trainable = false;
    check(r->tok.vocab_size <= t->cfg.vocab_size,
          "teacher %s: vocab_size %d is smaller than "
          "tokenizer '%s' (%d)",
          dir, t->cfg.vocab_size, c->tokenizer, r->tok.vocab_size);
    printf("teacher %s: ", dir);
    model_config_print(&t->cfg, stdout);
}

// The student: from the newest checkpoint in out_dir when resuming (checked against the
// teacher and the student_mixer pattern), else initialised from the teacher.
static void setup_student(DistillRun *r) {
    Config *c = &r->cfg;
    ModelConfig want;
    distill_student_config(&r->teacher.cfg, c->student_mixer, &want);
    want.doc_reset = c->model.doc_reset;
    want.recompute = c->model.recompute;
    want.recompute_states = c->model.recompute_states;
    want.attn_block = c->model.attn_block;
    want.lightning_qk = c->model.lightning_qk;
    want.eot_token = r->tok.eot;
    char ckpt[4096] = "", tok_spec[CONFIG_STR];
    if (c->resume && !checkpoint_latest_valid(c->out_dir, ckpt, sizeof ckpt)) ckpt[0] = '\0';
    if (ckpt[0]) {
        ModelConfig got;
        model_config_load(&got, tok_spec, sizeof tok_spec, ckpt);
        distill_check_match(&r->teacher.cfg, &got, ckpt);
        for (int l = 0; l < got.n_layers; l++)
            check(got.mixer[l] == want.mixer[l],
                  "%s: layer %d uses %s, but student_mixer = %s gives %s", ckpt, l,
                  mixer_name(got.mixer[l]), c->student_mixer, mixer_name(want.mixer[l]));
        check(got.lightning_qk == want.lightning_qk,
              "%s: the student was saved with lightning_qk = %s, this run asks for %s", ckpt,
              lightning_qk_name(got.lightning_qk), lightning_qk_name(want.lightning_qk));
    }
    model_create(&r->student, &want, r->be);
    optimizer_create(&r->opt, &r->student, c->beta1, c->beta2, c->adam_eps, c->weight_decay);
    r->n_segs = distill_segments(&r->student, &r->segs);
    memset(&r->state, 0, sizeof r->state);
    if (!ckpt[0]) {
        distill_init_student(&r->student, &r->teacher, c->seed);
        if (c->resume) printf("resume: no complete checkpoint in %s, starting fresh\n", c->out_dir);
        return;
    }
    model_load_weights(&r->student, ckpt);
    size_t bytes = r->student.n_weights * sizeof(float);
    float *m = xmalloc(bytes), *v = xmalloc(bytes);
    checkpoint_load_train_state(ckpt, &r->student, m, v, &r->state);
    r->be->ops->upload(r->be, r->opt.m, m, bytes);
    r->be->ops->upload(r->be, r->opt.v, v, bytes);
    free(m);
    free(v);
    printf("resuming from %s (step %lld)\n", ckpt, (long long)r->state.step);
}

// Mean validation loss of a model (val_batches batches, or the whole set).
static float validate(DistillRun *r, Model *m) {
    const Config *c = &r->cfg;
    return validation_loss(m, r->val, c->val_batches, r->tokens, r->targets, c->batch_size,
                           c->seq_len);
}

// The squared gradient norm over the trained groups only (rows of a tensor that do not
// train may hold gradients) into the student's stats[1].
static void group_grad_norm(DistillRun *r) {
    Model *m = &r->student;
    for (int g = 0; g < r->opt.n_groups; g++)
        r->be->ops->sum_squares_into(r->be, m->stats + 1, m->grads + r->opt.groups[g].offset,
                                     (long)r->opt.groups[g].count);
}

// The step's log line and metrics record. Stage 1 records "mse"; stage 2 records the
// data cross-entropy as "loss" (comparable with a bolt train run's, so runs plot side by
// side), "kl", and the optimized "total" = ce_weight * ce + kd_weight * T^2 * kl.
static void log_step(DistillRun *r, int64_t step, float total, float ce, float kl, float lr,
                     float norm, double dt) {
    const Config *c = &r->cfg;
    double tokens = (double)c->batch_size * c->seq_len * c->grad_accum;
    double elapsed = now_seconds() - r->start_time;
    double eta = elapsed / (double)(step + 1 - r->start_step) * (double)(c->steps - step - 1);
    char what[96];
    if (r->stage == 1)
        snprintf(what, sizeof what, "mse %.5f", total);
    else
        snprintf(what, sizeof what, "total %.4f | ce %.4f | kl %.4f", total, ce, kl);
    if ((step + 1) % c->log_every == 0 || step + 1 == c->steps) {
        printf("stage %d step %lld/%d | %s | lr %.1e | norm %.2f | %.1fk tok/s | eta %.0fs\n",
               r->stage, (long long)(step + 1), c->steps, what, lr, norm, tokens / dt / 1e3, eta);
        fflush(stdout);
    }
    fprintf(r->metrics, "{\"step\": %lld, \"stage\": %d, ", (long long)(step + 1), r->stage);
    if (r->stage == 1)
        fprintf(r->metrics, "\"mse\": %.6f, ", total);
    else
        fprintf(r->metrics, "\"loss\": %.6f, \"kl\": %.6f, \"total\": %.6f, ", ce, kl, total);
    fprintf(r->metrics, "\"lr\": %.6e, \"norm\": %.6f, \"tokens\": %.0f, \"elapsed_s\": %.3f}\n",
            lr, norm, r->state.tokens_seen, elapsed);
    fflush(r->metrics);
}

// One optimizer step of the current stage over grad_accum micro-batches (skipped if not
// finite, as in bolt train).
static void distill_step(DistillRun *r, int64_t step) {
    const Config *c = &r->cfg;
    double t0 = now_seconds();
    int s1 = c->stage1_steps, stage_start = r->stage == 1 ? 0 : s1;
    int stage_steps = r->stage == 1 ? s1 : c->stage2_steps, in_stage = (int)(step - stage_start);
    float factor =
        lr_at(c->schedule, 1.0f, c->min_lr_ratio, c->warmup, stage_steps, c->decay_frac, in_stage);
    float scale = 1.0f / (float)c->grad_accum;
    model_zero_grad(&r->student);
    distill_zero_sums(&r->pair);
    for (int a = 0; a < c->grad_accum; a++) {
        loader_next(r->train, r->tokens, r->targets);
        if (r->stage == 1)
            distill_transfer_step(&r->pair, r->tokens, c->batch_size, c->seq_len, scale);
        else
            distill_finetune_step(&r->pair, r->tokens, r->targets, c->batch_size, c->seq_len,
                                  scale);
    }
    group_grad_norm(r);
    float unused, norm, ce, kl, mse;
    model_read_stats(&r->student, &unused, &norm);
    distill_read_sums(&r->pair, &ce, &kl, &mse);
    float T2 = c->kd_temperature * c->kd_temperature;
    float loss = r->stage == 1 ? mse : c->ce_weight * ce + c->kd_weight * T2 * kl;
    r->state.tokens_seen += (double)c->batch_size * c->seq_len * c->grad_accum;
    r->state.step = step + 1;
    r->state.loader = loader_tell(r->train);
    if (skip_non_finite_step(&r->state.bad_steps, r->metrics, step, c->steps, loss, norm,
                             c->max_bad_steps, "lower lr_new / lr_copied"))
        return;
    optimizer_step(&r->opt, &r->student, factor, clip_scale(norm, c->grad_clip), in_stage + 1);
    log_step(r, step, loss, ce, kl, factor * c->lr_new, norm, now_seconds() - t0);
}

// Rank-free checkpoint of the student (weights, moments, step, loader position).
static void save_checkpoint(DistillRun *r) {
    size_t bytes = r->student.n_weights * sizeof(float);
    float *m = xmalloc(bytes), *v = xmalloc(bytes);
    r->be->ops->download(r->be, m, r->opt.m, bytes);
    r->be->ops->download(r->be, v, r->opt.v, bytes);
    checkpoint_save(r->cfg.out_dir, &r->student, m, v, &r->state, r->cfg.tokenizer);
    checkpoint_prune(r->cfg.out_dir, r->cfg.keep_checkpoints);
    printf("saved checkpoint %s/step_%08lld\n", r->cfg.out_dir, (long long)r->state.step);
    plot_run_dir(r->cfg.out_dir);
    free(m);
    free(v);
}

// Validation (student, and the teacher once at the start) and multiple-choice scores.
static void evaluate(DistillRun *r, int64_t step, bool last) {
    const Config *c = &r->cfg;
    bool stage_end = step == c->stage1_steps;
    if (r->val && (last || stage_end || (c->val_every > 0 && step % c->val_every == 0))) {
        float val = validate(r, &r->student);
        printf("step %lld/%d | val loss %.4f\n", (long long)step, c->steps, val);
        fprintf(r->metrics, "{\"step\": %lld, \"val_loss\": %.6f}\n", (long long)step, val);
        fflush(r->metrics);
    }
    if (r->mc.n > 0 && (last || (c->mc_every > 0 && step % c->mc_every == 0)))
        mc_log(&r->student, &r->mc, step, c->steps, r->metrics);
}

// `bolt distill CONFIG [--key=value ...]`: load the teacher, build or resume the student,
// then run both stages with validation, multiple-choice scores and checkpoints.
int distill_main(int argc, char **argv) {
    DistillRun run, *r = &run;
    memset(r, 0, sizeof *r);
    Config *c = &r->cfg;
    config_defaults(c);
    if (!config_from_args(c, "distill", argc, argv)) return 0; // --help
    remove_temp_files_on_signal();
    r->tok = tokenizer_load(c->tokenizer);
    config_resolve_vocab(c, r->tok.vocab_size);
    config_finalize(c);
    c->steps = c->stage1_steps + c->stage2_steps;
    check(c->steps > 0, "config: stage1_steps + stage2_steps is 0");
    check(c->kd_temperature > 0, "config: kd_temperature = %g must be > 0", c->kd_temperature);
    check(c->ce_weight >= 0 && c->kd_weight >= 0, "config: ce_weight and kd_weight must be >= 0");
    check(c->lr_new >= 0 && c->lr_copied >= 0, "config: lr_new and lr_copied must be >= 0");
    check(c->nproc == 1 && c->sp == 1 && c->zero == 0,
          "distill runs on one process: nproc = %d, sp = %d, zero = %d are for bolt train",
          c->nproc, c->sp, c->zero);
    Dist d = dist_init();
    check(d.world == 1, "distill runs on one process, not as rank %d of %d (%s)", d.rank, d.world,
          d.launcher);
    if (c->threads > 0) omp_set_num_threads(c->threads);
    r->be = backend_create(c->device);
    make_dirs(c->out_dir);
    if (!c->resume && run_dir_holds_run(c->out_dir)) {
        check(c->overwrite,
              "out_dir %s already holds a run: continue it with --resume=1, or use "
              "another --out_dir or --overwrite=1",
              c->out_dir);
        run_dir_clear(c->out_dir);
    }
    printf("# bolt distill: resolved config\n");
    config_print(c, stdout);
    load_teacher(r);
    setup_student(r);
    printf("student: ");
    model_config_print(&r->student.cfg, stdout);
    int V = r->student.cfg.vocab_size;
    r->train = loader_open(c->train_data, c->batch_size, c->seq_len, 0, 1, c->seed, true, V);
    loader_seek(r->train, r->state.loader);
    if (c->val_data[0])
        r->val = loader_open(c->val_data, c->batch_size, c->seq_len, 0, 1, c->seed, false, V);
    if (c->mc_data[0]) r->mc = mc_read(c->mc_data, &r->tok, V);
    size_t N = (size_t)c->batch_size * c->seq_len;
    r->tokens = xmalloc(N * sizeof(int));
    r->targets = xmalloc(N * sizeof(int));
    distill_pair_init(&r->pair, &r->teacher, &r->student, (int)N);
    r->pair.ce_weight = c->ce_weight;
    r->pair.kd_weight = c->kd_weight;
    r->pair.temperature = c->kd_temperature;

    char path[4096];
    path_join(path, sizeof path, c->out_dir, "metrics.jsonl");
    if (r->state.step > 0) metrics_truncate(path, r->state.step);
    r->metrics = xfopen(path, r->state.step > 0 ? "a" : "w");
    if (r->state.step == 0 && r->val) {
        float teacher_val = validate(r, &r->teacher);
        printf("teacher val loss %.4f\n", teacher_val);
        fprintf(r->metrics, "{\"step\": 0, \"teacher_val_loss\": %.6f}\n", teacher_val);
        evaluate(r, 0, false);
    }
    r->start_time = now_seconds();
    r->start_step = r->state.step;
    for (int64_t step = r->state.step; step < c->steps; step++) {
        int stage = step < c->stage1_steps ? 1 : 2;
        if (stage != r->stage) set_stage(r, stage);
        if (step == c->stage1_steps && step > 0) { // stage 2 starts with fresh moments
            r->be->ops->zero(r->be, r->opt.m, r->student.n_weights * sizeof(float));
            r->be->ops->zero(r->be, r->opt.v, r->student.n_weights * sizeof(float));
        }
        distill_step(r, step);
        bool last = step + 1 == c->steps;
        evaluate(r, step + 1, last);
        if (last || (c->save_every > 0 && (step + 1) % c->save_every == 0)) save_checkpoint(r);
    }
    check(r->state.bad_steps == 0, "the last %d steps were skipped (non-finite loss or gradient)",
          r->state.bad_steps);
    printf("done: %lld steps in %.1fs\n", (long long)(c->steps - r->start_step),
           now_seconds() - r->start_time);
    fclose(r->metrics);
    free(r->tokens);
    free(r->targets);
    free(r->segs);
    mc_free(&r->mc);
    loader_close(r->train);
    if (r->val) loader_close(r->val);
    distill_pair_free(&r->pair);
    optimizer_free(&r->opt, &r->student);
    model_free(&r->student);
    model_free(&r->teacher);
    backend_free(r->be);
    tokenizer_free(&r->tok);
    return 0;
}
