// tests/test_distill.c: distillation: the student copies exactly what it should from the
// teacher (tensor by tensor, GQA repeat included), tensors and rows that do not train do
// not change, the stage-1 loss falls, the stage-2 gradient (CE + T^2 KL) matches finite
// differences, resume is bit-exact in either stage, mismatches are clear errors, and the
// losses distill logs agree with `bolt eval` on the same data.
#include <cjson/cJSON.h>
#include <sys/wait.h>

#include "../model/checkpoint.h"
#include "../model/distill_init.h"
#include "../train/commands.h"
#include "../train/distill_loss.h"
#include "model_testing.h"
#include "train_testing.h"

// A tiny GQA Llama teacher (2 query heads sharing 1 key/value head) with spread weights.
static void make_teacher(Model *t, int vocab) {
    ModelConfig c = tiny_config(FAMILY_LLAMA, NULL, false);
    c.vocab_size = vocab;
    model_create(t, &c, cpu_backend());
    spread_weights(t, 11);
    model_refresh_compute_weights(t);
}

// The student of `pattern` for teacher t, initialised from it.
static void make_student(Model *s, const Model *t, const char *pattern) {
    ModelConfig c;
    distill_student_config(&t->cfg, pattern, &c);
    model_create(s, &c, cpu_backend());
    distill_init_student(s, t, 7);
}

// Rows [r0, r0 + n) of tensor `name` of m, or the whole tensor from r0 = 0.
static const float *rows_of(const Model *m, const char *name, int r0) {
    const ParamInfo *p = model_find_param(m, name);
    ck_assert_msg(p != NULL, "no tensor %s", name);
    return m->weights + p->offset + (size_t)r0 * (p->ndim == 2 ? p->shape[1] : 1);
}

// buf = layer l's tensor `name` of the mixer ("q_proj") or the block ("norm1", "norm2"),
// in the naming of m's family (Llama's, or fla's GLA); returns buf (128 bytes).
static char *layer_name(char *buf, const Model *m, int l, const char *name) {
    bool gla = m->cfg.family == FAMILY_GLA;
    if (strcmp(name, "norm1") == 0)
        snprintf(buf, 128, "model.layers.%d.%s.weight", l, gla ? "attn_norm" : "input_layernorm");
    else if (strcmp(name, "norm2") == 0)
        snprintf(buf, 128, "model.layers.%d.%s.weight", l,
                 gla ? "mlp_norm" : "post_attention_layernorm");
    else if (strncmp(name, "mlp.", 4) == 0)
        snprintf(buf, 128, "model.layers.%d.%s.weight", l, name);
    else
        snprintf(buf, 128, "model.layers.%d.%s.%s.weight", l, gla ? "attn" : "self_attn", name);
    return buf;
}

// Student tensor `sname` (whole) equals teacher tensor `tname`.
static void expect_same(const Model *s, const char *sname, const Model *t, const char *tname) {
    const ParamInfo *p = model_find_param(s, sname);
    ck_assert_msg(p != NULL, "no tensor %s", sname);
    ck_assert_msg(memcmp(rows_of(s, sname, 0), rows_of(t, tname, 0), p->numel * sizeof(float)) == 0,
                  "%s differs from the teacher's %s", sname, tname);
}

// Every student tensor is the teacher's where it is copied, and a fresh init's (the same
// seed, no teacher) where it is new.
static void check_init(const char *pattern, Family family) {
    Model t, s, fresh;
    make_teacher(&t, 23);
    make_student(&s, &t, pattern);
    ck_assert_int_eq(s.cfg.family, family);
    model_create(&fresh, &s.cfg, cpu_backend());
    model_init_weights(&fresh, 7);
    int D = s.cfg.dim, hd = s.cfg.head_dim, hk = hd / 2;
    size_t row = (size_t)D * sizeof(float);
    char a[128], b[128];
    expect_same(&s, family == FAMILY_GLA ? "model.embeddings.weight" : "model.embed_tokens.weight",
                &t, "model.embed_tokens.weight");
    expect_same(&s, "lm_head.weight", &t, "lm_head.weight");
    expect_same(&s, "model.norm.weight", &t, "model.norm.weight");
    for (int l = 0; l < s.cfg.n_layers; l++) {
        const char *block[] = {"norm1", "norm2", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        for (int i = 0; i < 5; i++)
            expect_same(&s, layer_name(a, &s, l, block[i]), &t, layer_name(b, &t, l, block[i]));
        // 2 query heads share key/value head 0: the student's k/v heads 0 and 1 are both it.
        MixerKind kind = s.cfg.mixer[l];
        if (kind == MIXER_LIGHTNING) {
            char qkvu[128], tq[128], tk[128], tv[128];
            layer_name(qkvu, &s, l, "qkvu_proj");
            layer_name(tq, &t, l, "q_proj");
            layer_name(tk, &t, l, "k_proj");
            layer_name(tv, &t, l, "v_proj");
            ck_assert_mem_eq(rows_of(&s, qkvu, 0), rows_of(&t, tq, 0), (size_t)D * row);
            for (int h = 0; h < 2; h++) {
                ck_assert_mem_eq(rows_of(&s, qkvu, D + h * hd), rows_of(&t, tk, 0), hd * row);
                ck_assert_mem_eq(rows_of(&s, qkvu, 2 * D + h * hd), rows_of(&t, tv, 0), hd * row);
            }
            ck_assert_mem_eq(rows_of(&s, qkvu, 3 * D), rows_of(&fresh, qkvu, 3 * D),
                             (size_t)D * row); // u: new
            expect_same(&s, layer_name(a, &s, l, "out_proj"), &t, layer_name(b, &t, l, "o_proj"));
        } else if (kind == MIXER_GLA) {
            char sq[128], tq[128], sk[128], tk[128], sv[128], tv[128];
            layer_name(sq, &s, l, "q_proj");
            layer_name(tq, &t, l, "q_proj");
            layer_name(sk, &s, l, "k_proj");
            layer_name(tk, &t, l, "k_proj");
            layer_name(sv, &s, l, "v_proj");
            layer_name(tv, &t, l, "v_proj");
            for (int h = 0; h < 2; h++) { // the first half of each head's q/k rows
                ck_assert_mem_eq(rows_of(&s, sq, h * hk), rows_of(&t, tq, h * hd), hk * row);
                ck_assert_mem_eq(rows_of(&s, sk, h * hk), rows_of(&t, tk, 0), hk * row);
                ck_assert_mem_eq(rows_of(&s, sv, h * hd), rows_of(&t, tv, 0), hd * row);
            }
            expect_same(&s, layer_name(a, &s, l, "o_proj"), &t, layer_name(b, &t, l, "o_proj"));
            const char *fresh_names[] = {"g_proj", "gk_proj.0", "gk_proj.1", "g_norm_swish_gate"};
            for (int i = 0; i < 4; i++)
                expect_same(&s, layer_name(a, &s, l, fresh_names[i]), &fresh, a);
            snprintf(a, sizeof a, "model.layers.%d.attn.gk_proj.1.bias", l);
            expect_same(&s, a, &fresh, a);
        } else { // softmax: the teacher's own layer
            const char *all[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
            for (int i = 0; i < 4; i++)
                expect_same(&s, layer_name(a, &s, l, all[i]), &t, layer_name(b, &t, l, all[i]));
        }
    }
    model_free(&fresh);
    model_free(&s);
    model_free(&t);
}

START_TEST(test_init_lightning) {
    check_init("lightning", FAMILY_LLAMA);
}
END_TEST
START_TEST(test_init_gla) {
    check_init("gla", FAMILY_GLA);
}
END_TEST
START_TEST(test_init_hybrid) {
    check_init("lightning,softmax", FAMILY_LLAMA);
    check_init("gla,softmax", FAMILY_GLA);
}
END_TEST

// The stage-2 loss of one batch, for finite differences.
typedef struct KdCase {
    DistillPair *pair;
    int tokens[2 * 12], targets[2 * 12];
} KdCase;

static double kd_case_loss(void *ctx) {
    KdCase *k = ctx;
    return distill_finetune_loss(k->pair, k->tokens, k->targets, 2, 12);
}

// The stage-2 gradient (CE and T^2 KL, and KL alone) of every tensor kind against central
// differences of the forward-only loss.
static void check_kd_gradient(const char *pattern, float ce_weight) {
    Model t, s;
    make_teacher(&t, 23);
    make_student(&s, &t, pattern);
    spread_weights(&s, 7); // a student far from its teacher: a KL well above noise
    model_refresh_compute_weights(&s);
    DistillPair pair;
    distill_pair_init(&pair, &t, &s, 24);
    pair.ce_weight = ce_weight;
    pair.kd_weight = 0.7f;
    pair.temperature = 2.0f;
    KdCase k = {.pair = &pair};
    Rng rng = rng_seeded(4);
    random_tokens(&rng, k.tokens, k.targets, 24, 23);
    model_zero_grad(&s);
    distill_zero_sums(&pair);
    distill_finetune_step(&pair, k.tokens, k.targets, 2, 12, 1.0f);
    float *analytic = copy_tensor(s.grads, (long)s.n_weights);
    // As tests/test_model.c: fp32 central differences through a network carry ~1e-4 of
    // noise in a derivative at eps 2e-3; a wrong gradient misses by O(1).
    const float eps = 2e-3f;
    const int samples = 6;
    for (int i = 0; i < s.n_params; i++) {
        const ParamInfo *p = &s.params[i];
        double diff = 0, norm = 0;
        for (int n = 0; n < samples; n++) {
            size_t j = p->offset + rng_next(&rng) % p->numel;
            float saved = s.weights[j];
            s.weights[j] = saved + eps;
            double up = kd_case_loss(&k);
            s.weights[j] = saved - eps;
            double down = kd_case_loss(&k);
            s.weights[j] = saved;
            double numeric = (up - down) / (2.0 * eps);
            diff += (numeric - analytic[j]) * (numeric - analytic[j]);
            norm += numeric * numeric;
        }
        ck_assert_msg(sqrt(diff) <= 0.05 * sqrt(norm) + 2e-4 * sqrt(samples),
                      "%s (%s, ce_weight %g): |numeric - analytic| %.3g, |numeric| %.3g", p->name,
                      pattern, ce_weight, sqrt(diff), sqrt(norm));
    }
    free(analytic);
    distill_pair_free(&pair);
    model_free(&s);
    model_free(&t);
}

START_TEST(test_kd_gradient_lightning) {
    check_kd_gradient("lightning", 0.5f);
    check_kd_gradient("lightning", 0.0f);
}
END_TEST
START_TEST(test_kd_gradient_gla) {
    check_kd_gradient("gla", 0.5f);
    check_kd_gradient("gla", 0.0f);
}
END_TEST

// A student that differs from the teacher in vocab is refused naming the setting.
START_TEST(test_mismatch_named) {
    Model t;
    make_teacher(&t, 23);
    ModelConfig c;
    distill_student_config(&t.cfg, "gla", &c);
    c.vocab_size = 30;
    char *dir = new_dir(), *err = path_in(dir, "stderr.txt");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ck_assert_ptr_nonnull(freopen(err, "w", stderr));
        distill_check_match(&t.cfg, &c, "student ckpt");
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    size_t len;
    char *text = read_file(err, &len);
    ck_assert_msg(strstr(text, "student ckpt: vocab_size 30 does not match the teacher's "
                               "vocab_size 23"),
                  "message: %s", text);
    free(text);
    model_free(&t);
}
END_TEST

// ---- the command, end to end, on the word corpus --------------------------------------

static char *workdir;

// A Llama teacher trained briefly on the corpus (GQA: 2 heads, 1 key/value head).
static void train_teacher(void) {
    workdir = write_word_corpus();
    Args a = {0};
    args_add(&a, "--model=llama");
    args_add(&a, "--train_data=%s/c_train_*.bin", workdir);
    args_add(&a, "--val_data=%s/c_val_*.bin", workdir);
    args_add(&a, "--out_dir=%s/teacher", workdir);
    args_add(&a, "--steps=30");
    args_add(&a, "--dim=32");
    args_add(&a, "--n_layers=2");
    args_add(&a, "--n_heads=2");
    args_add(&a, "--n_kv_heads=1");
    args_add(&a, "--lr=1e-2");
    ck_assert_int_eq(train_main(a.n, args_argv(&a)), 0);
}

// Run bolt distill in-process into workdir/out with up to 3 extra options.
static int run_distill(const char *out, const char *mixer, int s1, int s2, const char *x1,
                       const char *x2, const char *x3) {
    Args a = {0};
    args_add(&a, "--teacher=%s/teacher", workdir);
    args_add(&a, "--student_mixer=%s", mixer);
    args_add(&a, "--train_data=%s/c_train_*.bin", workdir);
    args_add(&a, "--val_data=%s/c_val_*.bin", workdir);
    args_add(&a, "--out_dir=%s/%s", workdir, out);
    args_add(&a, "--stage1_steps=%d", s1);
    args_add(&a, "--stage2_steps=%d", s2);
    args_add(&a, "--batch_size=4");
    args_add(&a, "--seq_len=32");
    args_add(&a, "--val_batches=2");
    args_add(&a, "--lr_new=1e-2");
    args_add(&a, "--log_every=100");
    const char *extra[] = {x1, x2, x3};
    for (int i = 0; i < 3; i++)
        if (extra[i]) args_add(&a, "%s", extra[i]);
    return distill_main(a.n, args_argv(&a));
}

// A number from the metrics records of run `out`: the first or last value of `key`.
static double metric(const char *out, const char *key, bool last) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", workdir, out);
    FILE *f = xfopen(path, "r");
    char line[2048];
    double value = NAN;
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *v = cJSON_GetObjectItem(j, key);
        if (v && (last || isnan(value))) value = v->valuedouble;
        cJSON_Delete(j);
    }
    fclose(f);
    return value;
}

// Stage 1 only: the transfer loss falls; everything but the new tensors of the linear
// mixers (the u rows of qkvu_proj included) is bit for bit the initial student, the new
// ones moved; the teacher's files are untouched.
START_TEST(test_stage1_frozen_and_falls) {
    train_teacher();
    char teacher_file[700];
    snprintf(teacher_file, sizeof teacher_file, "%s/teacher/step_00000030/model.safetensors",
             workdir);
    size_t tlen;
    char *teacher_before = read_file(teacher_file, &tlen);
    ck_assert_int_eq(run_distill("s1", "lightning", 12, 0, NULL, NULL, NULL), 0);
    double first = metric("s1", "mse", false), last = metric("s1", "mse", true);
    ck_assert_msg(last < 0.7 * first, "stage-1 loss %g -> %g", first, last);
    Model t, s, trained;
    char dir[700], tok[64];
    snprintf(dir, sizeof dir, "%s/teacher/step_00000030", workdir);
    model_load(&t, dir, cpu_backend(), tok, sizeof tok);
    ModelConfig c;
    distill_student_config(&t.cfg, "lightning", &c);
    model_create(&s, &c, cpu_backend());
    distill_init_student(&s, &t, 1337); // the config's default seed
    snprintf(dir, sizeof dir, "%s/s1/step_00000012", workdir);
    model_load(&trained, dir, cpu_backend(), tok, sizeof tok);
    Segment *seg;
    int n = distill_segments(&s, &seg), moved = 0;
    for (int i = 0; i < n; i++) {
        bool same = memcmp(s.weights + seg[i].offset, trained.weights + seg[i].offset,
                           seg[i].count * sizeof(float)) == 0;
        bool trains = seg[i].is_new && seg[i].linear_mixer;
        ck_assert_msg(same != trains, "%s (offset %zu): %s", s.params[seg[i].param].name,
                      seg[i].offset, trains ? "did not train" : "changed while frozen");
        moved += trains;
    }
    ck_assert_int_gt(moved, 0);
    size_t tlen2;
    char *teacher_after = read_file(teacher_file, &tlen2);
    ck_assert(tlen == tlen2 && memcmp(teacher_before, teacher_after, tlen) == 0);
    free(seg);
    free(teacher_before);
    free(teacher_after);
    model_free(&s);
    model_free(&t);
    model_free(&trained);
}
END_TEST

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = read_file(a, &na), *y = read_file(b, &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

// 3 + 3 steps saving every 2; resumed from step 2 (stage 1) and from step 4 (stage 2),
// step 6 matches byte for byte.
static void check_resume(const char *mixer) {
    train_teacher();
    ck_assert_int_eq(run_distill("a", mixer, 3, 3, "--save_every=2", "--keep_checkpoints=0", NULL),
                     0);
    const char *from[] = {"b", "c"};
    const char *drop[] = {"step_00000004 %s/b/step_00000006", "step_00000006"};
    for (int r = 0; r < 2; r++) {
        char cmd[2000], dropped[700];
        snprintf(dropped, sizeof dropped, drop[r], workdir);
        snprintf(cmd, sizeof cmd, "cp -r %s/a %s/%s && rm -rf %s/%s/%s", workdir, workdir, from[r],
                 workdir, from[r], dropped);
        ck_assert_int_eq(system(cmd), 0);
        ck_assert_int_eq(run_distill(from[r], mixer, 3, 3, "--save_every=2", "--keep_checkpoints=0",
                                     "--resume=1"),
                         0);
        const char *files[] = {"model.safetensors", "train_state.safetensors"};
        for (int i = 0; i < 2; i++) {
            char pa[700], pb[700];
            snprintf(pa, sizeof pa, "%s/a/step_00000006/%s", workdir, files[i]);
            snprintf(pb, sizeof pb, "%s/%s/step_00000006/%s", workdir, from[r], files[i]);
            ck_assert_msg(same_file(pa, pb), "%s resumed from %s: %s differs", mixer,
                          r ? "stage 2" : "stage 1", files[i]);
        }
    }
}

START_TEST(test_resume_lightning) {
    check_resume("lightning");
}
END_TEST
START_TEST(test_resume_gla) {
    check_resume("gla");
}
END_TEST

// `bolt eval CKPT --data=VAL` in this process with stdout sent to a file (a forked
// child cannot use OpenMP after the parent did); returns the loss it prints.
static double eval_loss(const char *ckpt) {
    char *out = path_in(new_dir(), "eval.txt");
    Args a = {0};
    args_add(&a, "%s", ckpt);
    args_add(&a, "--data=%s/c_val_*.bin", workdir);
    args_add(&a, "--batch_size=4");
    args_add(&a, "--seq_len=32");
    args_add(&a, "--batches=2");
    fflush(stdout);
    int saved = dup(1);
    FILE *f = xfopen(out, "w");
    dup2(fileno(f), 1);
    int rc = eval_main(a.n, args_argv(&a));
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    fclose(f);
    ck_assert_int_eq(rc, 0);
    size_t len;
    char *text = read_file(out, &len);
    char *at = strstr(text, "| loss ");
    ck_assert_msg(at != NULL, "eval printed: %s", text);
    double loss = atof(at + 7);
    free(text);
    return loss;
}

// The teacher's and the student's validation losses that distill logs are those `bolt
// eval` computes from their checkpoints on the same shards (the student's lightning layer
// with lightning_qk = rope, which its checkpoint must carry to eval).
START_TEST(test_losses_agree_with_eval) {
    train_teacher();
    ck_assert_int_eq(
        run_distill("e", "lightning*1,softmax", 2, 2, "--lightning_qk=rope", NULL, NULL), 0);
    char ckpt[700];
    snprintf(ckpt, sizeof ckpt, "%s/teacher/step_00000030", workdir);
    double teacher = eval_loss(ckpt), logged = metric("e", "teacher_val_loss", false);
    ck_assert_msg(fabs(teacher - logged) < 1e-5 * fabs(teacher), "teacher %g vs %g", teacher,
                  logged);
    snprintf(ckpt, sizeof ckpt, "%s/e/step_00000004", workdir);
    double student = eval_loss(ckpt);
    logged = metric("e", "val_loss", true);
    ck_assert_msg(fabs(student - logged) < 1e-5 * fabs(student), "student %g vs %g", student,
                  logged);
}
END_TEST

// Resuming with another student_mixer than the checkpoint's is refused.
START_TEST(test_resume_other_mixer) {
    train_teacher();
    ck_assert_int_eq(run_distill("m", "lightning", 2, 0, NULL, NULL, NULL), 0);
    run_distill("m", "gla", 2, 2, "--resume=1", NULL, NULL);
}
END_TEST

// Resuming with another lightning_qk than the checkpoint's is refused.
START_TEST(test_resume_other_qk) {
    train_teacher();
    ck_assert_int_eq(run_distill("q", "lightning", 2, 0, "--lightning_qk=rope", NULL, NULL), 0);
    run_distill("q", "lightning", 2, 2, "--resume=1", "--lightning_qk=silu", NULL);
}
END_TEST

// A teacher that is not a softmax Llama model is refused.
START_TEST(test_teacher_not_softmax) {
    train_teacher();
    char from[700];
    snprintf(from, sizeof from, "%s/s", workdir);
    ck_assert_int_eq(run_distill("s", "lightning", 2, 0, NULL, NULL, NULL), 0);
    snprintf(from, sizeof from, "--teacher=%s/s", workdir);
    run_distill("s2", "gla", 2, 0, from, NULL, NULL);
}
END_TEST

int main(void) {
    make_scratch_root("distill");
    Suite *s = suite_create("distill");
    TCase *tc = tcase_create("distill");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_init_lightning);
    tcase_add_test(tc, test_init_gla);
    tcase_add_test(tc, test_init_hybrid);
    tcase_add_test(tc, test_kd_gradient_lightning);
    tcase_add_test(tc, test_kd_gradient_gla);
    tcase_add_test(tc, test_mismatch_named);
    tcase_add_test(tc, test_stage1_frozen_and_falls);
    tcase_add_test(tc, test_resume_lightning);
    tcase_add_test(tc, test_resume_gla);
    tcase_add_test(tc, test_losses_agree_with_eval);
    tcase_add_exit_test(tc, test_resume_other_mixer, 1);
    tcase_add_exit_test(tc, test_resume_other_qk, 1);
    tcase_add_exit_test(tc, test_teacher_not_softmax, 1);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
