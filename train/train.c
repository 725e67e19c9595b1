// train/train.c: `bolt train CONFIG [--key=value ...]`: pretrain or continue training.
// One loop for every family: accumulate gradients over micro-batches, skip non-finite
// steps, clip, AdamW, log, validate, checkpoint atomically, resume bit-exactly.
//
// Data parallel (several processes under mpirun or srun, dist/): each rank reads its own
// disjoint part of the data (batch_size is per rank; the global batch is batch_size x
// grad_accum x dp), gradients are averaged over ranks as the last micro-batch's backward
// produces them (dist/grad_sync.h), or with zero = 1 reduce-scattered to the rank that
// owns their optimizer shard (dist/zero.h). Every rank then holds the same weights; only
// rank 0 prints, writes metrics and plots, and writes checkpoints, which have the same
// format whatever the number of ranks (so a run resumes on any number of them).
// Sequence parallel (sp > 1, dist/seq_parallel.h): the ranks form dp = world / sp groups
// of sp; a group reads one data-parallel share and each of its ranks computes its slice
// of every sequence (the model exchanges linear-attention states, and softmax layers'
// keys and values, through hooks).
#include <math.h>
#include <signal.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../data/loader.h"
#include "../data/tokenizer.h"
#include "../dist/comm.h"
#include "../dist/dist.h"
#include "../dist/launch.h"
#include "../dist/grad_sync.h"
#include "../dist/seq_parallel.h"
#include "../dist/zero.h"
#include "../model/checkpoint.h"
#include "../optim/optimizer.h"
#include "../optim/schedule.h"
#include "commands.h"
#include "config.h"
#include "mc_eval.h"
#include "options.h"
#include "plot.h"
#include "run_dir.h"
#include "sample.h"
#include "tensorboard.h"
#include "validate.h"

// Everything one run holds.
typedef struct Run {
    Config cfg;
    Dist dist;
    Comm *comm;
    Comm *sp_comm;      // this rank's sequence-parallel group (sp consecutive ranks; sp > 1)
    SeqParallel seqpar; // sp > 1: each sequence split over the group
    GradSync sync;      // plain data parallel (zero = 0); also on one rank, where it only checks
    Zero zero;          // zero = 1: the optimizer state is sharded over the ranks
    Backend *be;
    double flops_per_step; // model FLOPs of one optimizer step (MFU)
    Tokenizer tok;
    Model model;
    Optimizer opt;
    TrainState state;
    Loader *train, *val;
    McSet mc;              // mc_data, scored every mc_every steps (rank 0); n = 0 when none
    int *tokens, *targets; // one micro-batch, host
    FILE *metrics;
    TbWriter tb; // tensorboard = 1 (rank 0): its f is open
    double start_time;
    int64_t start_step;
} Run;

// "41.2k" / "1.3M": a rate in a short human form.
static void format_rate(double x, char *buf, size_t cap) {
    if (x >= 1e6)
        snprintf(buf, cap, "%.2fM", x / 1e6);
    else if (x >= 1e3)
        snprintf(buf, cap, "%.1fk", x / 1e3);
    else
        snprintf(buf, cap, "%.0f", x);
}

// "45s" / "12m" / "2h05m".
static void format_duration(double s, char *buf, size_t cap) {
    if (s < 60)
        snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, cap, "%.0fm", s / 60);
    else
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

// Mean loss over the validation set (val_batches batches, or all of it): each rank
// evaluates its own part, and the ranks' means are averaged.
static float validate(Run *r) {
    Config *c = &r->cfg;
    float mean = validation_loss(&r->model, r->val, c->val_batches, r->tokens, r->targets,
                                 c->batch_size, c->seq_len);
    comm_all_reduce_sum_host(r->comm, &mean, 1);
    return mean / (float)r->dist.dp;
}

// Rank 0 writes the checkpoint (with ZeRO the ranks first gather the full moments, so the
// files are those of a single process); the barrier after it means no rank goes on before
// the checkpoint, DONE marker included, is complete.
static void save_checkpoint(Run *r) {
    size_t bytes = r->model.n_weights * sizeof(float);
    float *m = xmalloc(bytes), *v = xmalloc(bytes);
    if (r->cfg.zero) {
        zero_gather_moments(&r->zero, m, v);
    } else if (r->dist.rank == 0) {
        r->be->ops->download(r->be, m, r->opt.m, bytes);
        r->be->ops->download(r->be, v, r->opt.v, bytes);
    }
    if (r->dist.rank == 0) {
        checkpoint_save(r->cfg.out_dir, &r->model, m, v, &r->state, r->cfg.tokenizer);
        checkpoint_prune(r->cfg.out_dir, r->cfg.keep_checkpoints);
        printf("saved checkpoint %s/step_%08lld\n", r->cfg.out_dir, (long long)r->state.step);
        plot_run_dir(r->cfg.out_dir); // out_dir/loss.png, at every save and at the end
    }
    free(m);
    free(v);
    comm_barrier(r->comm);
}

// The optimizer: AdamW over every weight with gradients averaged by the hook, or (zero =
// 1) over this rank's shard.
static void setup_optimizer(Run *r) {
    Config *c = &r->cfg;
    if (c->zero) {
        zero_init(&r->zero, &r->model, r->comm, c->beta1, c->beta2, c->adam_eps, c->weight_decay);
    } else {
        optimizer_create(&r->opt, &r->model, c->beta1, c->beta2, c->adam_eps, c->weight_decay);
        grad_sync_init(&r->sync, &r->model, r->comm, (size_t)(c->bucket_mb * 262144.0f));
    }
}

// Adam moments from a checkpoint (full [n_weights] on the host, whatever the number of
// ranks that wrote it): all of them, or this rank's shard.
static void load_moments(Run *r, const char *ckpt) {
    size_t bytes = r->model.n_weights * sizeof(float);
    float *m = xmalloc(bytes), *v = xmalloc(bytes);
    checkpoint_load_train_state(ckpt, &r->model, m, v, &r->state);
    if (r->cfg.zero) {
        zero_load_moments(&r->zero, m, v);
    } else {
        r->be->ops->upload(r->be, r->opt.m, m, bytes);
        r->be->ops->upload(r->be, r->opt.v, v, bytes);
    }
    free(m);
    free(v);
}

// Say so when a checkpoint's architecture overrides what the config describes.
static void note_model_differences(const ModelConfig *want, const ModelConfig *got,
                                   const char *source) {
    bool same = want->family == got->family && want->dim == got->dim &&
                want->n_layers == got->n_layers && want->n_heads == got->n_heads &&
                want->vocab_size == got->vocab_size && want->mlp_dim == got->mlp_dim &&
                want->lightning_qk == got->lightning_qk &&
                memcmp(want->mixer, got->mixer, sizeof(MixerKind) * (size_t)got->n_layers) == 0;
    if (same) return;
    printf("note: the model comes from %s (%s, dim %d, %d layers, %d heads, vocab %d), not "
           "from the config (%s, dim %d, %d layers, %d heads, vocab %d)\n",
           source, family_name(got->family), got->dim, got->n_layers, got->n_heads, got->vocab_size,
           family_name(want->family), want->dim, want->n_layers, want->n_heads, want->vocab_size);
}

// Build the model: from the latest checkpoint when resuming, from init_from, or fresh.
// Rank 0 picks the checkpoint and every rank reads it (out_dir must be on a file system
// every node sees); rank 0's weights are then broadcast, so the ranks start identical.
static void setup_model(Run *r) {
    Config *c = &r->cfg;
    char ckpt[4096] = "", tok_spec[CONFIG_STR];
    if (r->dist.rank == 0 && c->resume && !checkpoint_latest_valid(c->out_dir, ckpt, sizeof ckpt))
        ckpt[0] = '\0';
    comm_broadcast_host(r->comm, ckpt, sizeof ckpt, 0);
    bool resuming = ckpt[0] != '\0';
    const char *source = resuming ? ckpt : c->init_from[0] ? c->init_from : NULL;
    ModelConfig mc = c->model;
    mc.seq_len = c->seq_len;
    if (source) {
        model_config_load(&mc, tok_spec, sizeof tok_spec, source);
        // The weights fix the architecture; how to run it stays the config's choice.
        mc.doc_reset = c->model.doc_reset;
        mc.recompute = c->model.recompute;
        mc.recompute_states = c->model.recompute_states;
        mc.attn_block = c->model.attn_block;
        mc.eot_token = c->model.eot_token;
        mc.seq_len = c->seq_len;
        note_model_differences(&c->model, &mc, source);
    }
    check(r->tok.vocab_size <= mc.vocab_size && mc.eot_token < mc.vocab_size,
          "tokenizer '%s' (vocab %d, EOT %d) does not fit the model's vocab_size %d", c->tokenizer,
          r->tok.vocab_size, mc.eot_token, mc.vocab_size);
    if (source) model_check_weights(&mc, source); // before allocating what its config claims
    model_create(&r->model, &mc, r->be);
    if (source)
        model_load_weights(&r->model, source);
    else
        model_init_weights(&r->model, c->seed);
    comm_broadcast(r->comm, r->model.weights, r->model.n_weights * sizeof(float), 0);
    model_refresh_compute_weights(&r->model);
    setup_optimizer(r);
    memset(&r->state, 0, sizeof r->state);
    if (resuming) {
        load_moments(r, ckpt);
        printf("resuming from %s (step %lld)\n", ckpt, (long long)r->state.step);
    } else if (c->resume) {
        printf("resume: no complete checkpoint in %s, starting fresh\n", c->out_dir);
    }
}

// Tokens in one optimizer step over all ranks.
static double tokens_per_step(const Run *r) {
    const Config *c = &r->cfg;
    return (double)c->batch_size * c->seq_len * c->grad_accum * r->dist.dp;
}

// The step's log line (every log_every steps) and metrics record (rank 0 only). MFU is
// per GPU: this rank's FLOPs against one device's peak.
static void log_step(Run *r, int64_t step, float loss, float lr, double norm, double dt) {
    Config *c = &r->cfg;
    if (!r->metrics) return;
    double tokens = tokens_per_step(r);
    double elapsed = now_seconds() - r->start_time;
    double per_step = elapsed / (double)(step + 1 - r->start_step);
    double peak = r->be->peak_flops, mfu = peak > 0 ? r->flops_per_step / dt / peak : 0;
    double mem_gib = (double)r->be->ops->memory_in_use(r->be) / (1024.0 * 1024 * 1024);
    char rate[32], eta[32], mfu_s[32] = "";
    format_rate(tokens / dt, rate, sizeof rate);
    format_duration(per_step * (double)(c->steps - step - 1), eta, sizeof eta);
    if (peak > 0) snprintf(mfu_s, sizeof mfu_s, " | MFU %.1f%%", 100 * mfu);
    if (c->log_every > 0 && ((step + 1) % c->log_every == 0 || step + 1 == c->steps)) {
        printf("step %lld/%d | loss %.4f | lr %.1e | norm %.2f | %s tok/s%s | mem %.1f GiB | eta "
               "%s\n",
               (long long)(step + 1), c->steps, loss, lr, norm, rate, mfu_s, mem_gib, eta);
        fflush(stdout);
    }
    fprintf(r->metrics,
            "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.6e, \"norm\": %.6f, \"tok_per_s\": %.1f, "
            "\"mfu\": %.4f, \"mem_gib\": %.3f, \"tokens\": %.0f, \"elapsed_s\": %.3f}\n",
            (long long)(step + 1), loss, lr, norm, tokens / dt, mfu, mem_gib, r->state.tokens_seen,
            elapsed);
    fflush(r->metrics);
    if (r->tb.f) {
        TbScalar s[5] = {{"train/loss", loss},
                         {"train/lr", lr},
                         {"train/grad_norm", (float)norm},
                         {"train/tokens_per_s", (float)(tokens / dt)},
                         {"train/mfu", (float)mfu}};
        tb_write_scalars(&r->tb, step + 1, s, peak > 0 ? 5 : 4);
    }
}

// One optimizer step over grad_accum micro-batches (skipped if not finite). The device
// keeps the loss and the gradient norm; they come back in the step's one download. Each
// rank's gradients carry 1/(grad_accum x dp), so their sum over ranks is the mean over
// the global batch; the norm is taken after that sum (every rank sees the same one).
static void train_step(Run *r, int64_t step) {
    Config *c = &r->cfg;
    double t0 = now_seconds();
    float lr =
        lr_at(c->schedule, c->lr, c->min_lr_ratio, c->warmup, c->steps, c->decay_frac, (int)step);
    float scale = 1.0f / ((float)c->grad_accum * (float)r->dist.dp);
    model_zero_grad(&r->model);
    for (int a = 0; a < c->grad_accum; a++) {
        loader_next(r->train, r->tokens, r->targets);
        if (!c->zero) grad_sync_micro_batch(&r->sync, a == c->grad_accum - 1);
        model_forward_backward(&r->model, r->tokens, r->targets, c->batch_size, c->seq_len, scale);
    }
    if (c->zero) {
        zero_reduce_gradients(&r->zero);
    } else {
        grad_sync_finish(&r->sync);
        model_grad_norm_squared(&r->model);
    }
    float loss, norm;
    model_read_stats(&r->model, &loss, &norm);
    r->state.tokens_seen += tokens_per_step(r);
    r->state.step = step + 1;
    r->state.loader = loader_tell(r->train);
    if (skip_non_finite_step(&r->state.bad_steps, r->metrics, step, c->steps, loss, norm,
                             c->max_bad_steps, "lower lr or check the data"))
        return;
    if (c->zero)
        zero_step(&r->zero, lr, clip_scale(norm, c->grad_clip), (int)step + 1);
    else
        optimizer_step(&r->opt, &r->model, lr, clip_scale(norm, c->grad_clip), (int)step + 1);
    log_step(r, step, loss, lr, norm, now_seconds() - t0);
}

// A hash of the resolved config, so ranks started with different settings stop at once.
static uint64_t config_hash(const Config *c) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    check(f != NULL, "cannot hash the config (open_memstream)");
    config_print(c, f);
    fclose(f);
    uint64_t h = 1469598103934665603ULL; // FNV-1a
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)text[i]) * 1099511628211ULL;
    free(text);
    return h;
}

// Processes, threads, backend and communicator: one GPU (or a share of the cores) per
// local rank; only rank 0 keeps its stdout.
static void setup_dist(Run *r) {
    Config *c = &r->cfg;
    int share = default_threads() / r->dist.local_size; // the free cores of one local rank
    set_threads(c->threads > 0 ? c->threads : share > 0 ? share : 1);
    r->be = backend_create(c->device);
    dist_set_sp(&r->dist, c->sp);
    r->comm = comm_create(&r->dist, r->be, (double)c->collective_timeout);
    if (r->dist.sp > 1) // plain data parallel needs no group of its own
        r->sp_comm =
            comm_split(r->comm, r->dist.dp_rank, r->dist.sp_rank, r->dist.sp_rank, r->dist.sp);
    if (r->dist.rank != 0)
        check(freopen("/dev/null", "w", stdout) != NULL, "cannot silence stdout");
    uint64_t mine = config_hash(c), first = mine;
    comm_broadcast_host(r->comm, &first, sizeof first, 0);
    check(mine == first,
          "rank %d: the config differs from rank 0's (every rank must get the same "
          "config file and options)",
          r->dist.rank);
}

// A fresh run never writes over another: rank 0 looks at out_dir and every rank learns
// what it saw, so a refusal ends every rank with the same message; with overwrite = 1 rank
// 0 first clears the old run's own files.
static void setup_out_dir(Run *r) {
    Config *c = &r->cfg;
    int holds_run = 0;
    if (r->dist.rank == 0) {
        make_dirs(c->out_dir);
        holds_run = !c->resume && run_dir_holds_run(c->out_dir);
    }
    comm_broadcast_host(r->comm, &holds_run, sizeof holds_run, 0);
    if (!holds_run) return;
    check(c->overwrite,
          "out_dir %s already holds a run (metrics.jsonl or step_* checkpoints): continue it "
          "with --resume=1, or start a new run with another --out_dir or --overwrite=1 (which "
          "deletes that run's checkpoints, metrics and plots)",
          c->out_dir);
    if (r->dist.rank == 0) {
        run_dir_clear(c->out_dir);
        printf("overwrite: removed the previous run's checkpoints, metrics and plots from %s\n",
               c->out_dir);
    }
    comm_barrier(r->comm);
}

// The per-layer mixers as a pattern config files take: runs of one mixer as "name*count".
static void mixer_pattern(const ModelConfig *m, char *out, size_t cap) {
    size_t len = 0;
    out[0] = '\0';
    for (int l = 0; l < m->n_layers;) {
        int run = 1;
        while (l + run < m->n_layers && m->mixer[l + run] == m->mixer[l]) run++;
        int n = run > 1 ? snprintf(out + len, cap - len, "%s%s*%d", len ? "," : "",
                                   mixer_name(m->mixer[l]), run)
                        : snprintf(out + len, cap - len, "%s%s", len ? "," : "",
                                   mixer_name(m->mixer[l]));
        check(n >= 0 && (size_t)n < cap - len, "the mixer pattern of %d layers is too long",
              m->n_layers);
        len += (size_t)n;
        l += run;
    }
}

// The config as trained: when the model came from a checkpoint or init_from, its
// architecture replaces the config's model keys, so what is printed and saved in
// config.conf is what runs (and reloads as the same model).
static void adopt_model_config(Config *c, const ModelConfig *m) {
    c->model = *m;
    mixer_pattern(m, c->mixers, sizeof c->mixers);
    c->softmax_layers[0] = '\0';
}

// True once any rank got SIGINT/SIGTERM. With several processes the flags are summed in
// one tiny all-reduce per step (a float, next to a step's gradient traffic), so every
// rank stops after the same step.
static bool stop_agreed(Run *r) {
    float stop = stop_requested() ? 1.0f : 0.0f;
    if (r->dist.world > 1) comm_all_reduce_sum_host(r->comm, &stop, 1);
    return stop > 0;
}

// The run header of metrics.jsonl.
static void write_run_header(Run *r, int argc, char **argv) {
    char device[256];
    snprintf(device, sizeof device, "%s (%s)", r->be->name, r->be->device_name);
    RunHeader h = {
        argc,          argv,         device, (double)r->model.n_weights, tokens_per_step(r),
        r->dist.world, r->state.step};
    metrics_write_header(r->metrics, &h);
}

int train_main(int argc, char **argv) {
    Run run, *r = &run;
    memset(r, 0, sizeof *r);
    Config *c = &r->cfg;
    config_defaults(c);
    if (!config_from_args(c, "train", argc, argv)) return 0; // --help
    // --nproc: this process starts the ranks and waits for them (dist/launch.h).
    if (c->nproc > 1 && !getenv("BOLT_SHM")) return launch_ranks(c->nproc, "train", argc, argv);
    r->dist = dist_init(); // before the backend: it picks this rank's GPU
    check(c->nproc == 1 || r->dist.world == c->nproc,
          "--nproc=%d, but this is rank %d of %d processes", c->nproc, r->dist.rank, r->dist.world);
    // Ctrl-C (or SIGTERM) saves a checkpoint after the current step and exits; a second
    // one exits at once, leaving no temp file.
    stop_gracefully_on_signal();
    r->tok = tokenizer_load(c->tokenizer);
    config_resolve_vocab(c, r->tok.vocab_size);
    config_finalize(c);
    // Documents are separated by the tokenizer's EOT; setup_model checks it fits the model.
    c->model.eot_token = r->tok.eot;
    setup_dist(r);
    setup_out_dir(r);
    setup_model(r);
    seq_parallel_init(&r->seqpar, &r->model, r->sp_comm, r->dist.sp_rank, r->dist.sp);
    if (r->state.step > 0 || c->init_from[0]) adopt_model_config(c, &r->model.cfg);
    check_steps_and_schedule(c, r->state.step);
    printf("# bolt train: resolved config\n");
    config_print(c, stdout);
    dist_print(&r->dist, stdout);
    if (r->dist.rank == 0) run_dir_write_config(c->out_dir, c);
    // The loaders check every token against the vocabulary of the model actually built
    // (a checkpoint's, when resuming or starting from init_from). Data-parallel rank r of
    // dp reads its own disjoint part.
    int V = r->model.cfg.vocab_size;
    r->train = loader_open(c->train_data, c->batch_size, c->seq_len, r->dist.dp_rank, r->dist.dp,
                           c->seed, true, V);
    loader_seek(r->train, r->state.loader);
    if (c->val_data[0]) {
        r->val = loader_open(c->val_data, c->batch_size, c->seq_len, r->dist.dp_rank, r->dist.dp,
                             c->seed, false, V);
        check(loader_batches_per_epoch(r->val) > 0,
              "val_data %s: fewer windows than one batch of %d x %d tokens per rank (world %d); "
              "lower batch_size or seq_len, or add validation data",
              c->val_data, c->batch_size, c->seq_len, r->dist.world);
    }
    model_config_print(&r->model.cfg, stdout);
    // Per rank: with sequence parallelism each rank computes 1/sp of every sequence.
    r->flops_per_step = model_flops_per_token(&r->model, c->seq_len) * c->batch_size * c->seq_len *
                        c->grad_accum / r->dist.sp;
    printf("parameters: %.2fM | device %s (%s) | threads %d | train tokens %lld\n",
           r->model.n_weights / 1e6, r->be->name, r->be->device_name, omp_get_max_threads(),
           (long long)loader_total_tokens(r->train));
    if (r->dist.world > 1)
        printf("global batch: %d x %d tokens x grad_accum %d x dp %d = %.0f tokens per step%s "
               "| each sequence over sp %d\n",
               c->batch_size, c->seq_len, c->grad_accum, r->dist.dp, tokens_per_step(r),
               c->zero ? " | ZeRO-1" : "", r->dist.sp);
    fflush(stdout);

    char path[4096];
    path_join(path, sizeof path, c->out_dir, "metrics.jsonl");
    if (r->dist.rank == 0 && r->state.step > 0) metrics_truncate(path, r->state.step);
    if (r->dist.rank == 0) {
        r->metrics = xfopen(path, r->state.step > 0 ? "a" : "w");
        write_run_header(r, argc, argv);
    }
    if (r->dist.rank == 0 && c->tensorboard) tb_open(&r->tb, c->out_dir);
    if (r->dist.rank == 0 && c->mc_data[0]) r->mc = mc_read(c->mc_data, &r->tok, V);
    size_t N = (size_t)c->batch_size * c->seq_len;
    r->tokens = xmalloc(N * sizeof(int));
    r->targets = xmalloc(N * sizeof(int));
    Rng sample_rng = rng_seeded(c->seed + 1);
    if (r->state.rng) sample_rng.state = r->state.rng;
    r->start_time = now_seconds();
    r->start_step = r->state.step;
    float val_loss = NAN;
    bool stopped = false; // by SIGINT / SIGTERM, after saving a checkpoint

    for (int64_t step = r->state.step; step < c->steps; step++) {
        train_step(r, step);
        bool last = step + 1 == c->steps;
        if (r->val && (last || (c->val_every > 0 && (step + 1) % c->val_every == 0))) {
            val_loss = validate(r);
            printf("step %lld/%d | val loss %.4f\n", (long long)(step + 1), c->steps, val_loss);
            if (r->metrics) {
                if (isfinite(val_loss))
                    fprintf(r->metrics, "{\"step\": %lld, \"val_loss\": %.6f}\n",
                            (long long)(step + 1), val_loss);
                else
                    fprintf(r->metrics, "{\"step\": %lld, \"val_loss\": null}\n",
                            (long long)(step + 1));
                fflush(r->metrics);
            }
            TbScalar val = {"val/loss", val_loss};
            if (r->tb.f && isfinite(val_loss)) tb_write_scalars(&r->tb, step + 1, &val, 1);
        }
        if (r->mc.n > 0 && (last || (c->mc_every > 0 && (step + 1) % c->mc_every == 0)))
            mc_log(&r->model, &r->mc, step + 1, c->steps, r->metrics);
        if (r->dist.rank == 0 && c->sample_every > 0 &&
            ((step + 1) % c->sample_every == 0 || last)) {
            SampleSettings settings = {c->sample_len, 0.8f, 40, 1.0f, true};
            char *text = generate_text(&r->model, &r->tok, "", &settings, &sample_rng, NULL);
            printf("--- sample at step %lld ---\n%s\n---\n", (long long)(step + 1), text);
            free(text);
        }
        r->state.rng = sample_rng.state;
        bool save = last || (c->save_every > 0 && (step + 1) % c->save_every == 0);
        if (save) save_checkpoint(r);
        if (!last && stop_agreed(r)) {
            printf("interrupted: saving a checkpoint at step %lld and stopping (interrupt again "
                   "to quit at once)\n",
                   (long long)(step + 1));
            fflush(stdout);
            if (!save) save_checkpoint(r);
            stopped = true;
            break;
        }
    }
    double elapsed = now_seconds() - r->start_time;
    if (stopped) {
        printf("stopped at step %lld of %d after %.1fs: continue with --resume=1\n",
               (long long)r->state.step, c->steps, elapsed);
    } else {
        // Skipped steps leave the weights as they were, so what was saved is the last good
        // model; but a run whose final steps were all skipped did not finish its training.
        check(r->state.bad_steps == 0,
              "the last %d steps were skipped (non-finite loss or gradient): the run did not "
              "finish; %s keeps the weights of step %lld",
              r->state.bad_steps, c->out_dir, (long long)(c->steps - r->state.bad_steps));
        printf("done: %lld steps in %.1fs", (long long)(r->state.step - r->start_step), elapsed);
        if (!isnan(val_loss)) printf(" | final val loss %.4f", val_loss);
        printf("\n");
    }
    if (r->metrics) fclose(r->metrics);
    tb_close(&r->tb);
    free(r->tokens);
    free(r->targets);
    loader_close(r->train);
    if (r->val) loader_close(r->val);
    mc_free(&r->mc);
    if (c->zero)
        zero_free(&r->zero);
    else
        optimizer_free(&r->opt, &r->model);
    seq_parallel_free(&r->seqpar);
    model_free(&r->model);
    comm_free(r->sp_comm);
    comm_free(r->comm);
    backend_free(r->be);
    tokenizer_free(&r->tok);
    dist_finalize(&r->dist);
    // Interrupted: the shell's 128 + signal, so scripts see the run did not finish.
    return stopped ? 128 + (stop_requested() ? stop_requested() : SIGINT) : 0;
}
