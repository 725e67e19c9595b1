// model/model_config.c: family defaults, the per-layer mixer pattern, and validation.
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "../core/util.h"
#include "mixer.h"

static const char *family_names[] = {"tnl", "gla", "llama"};

const char *family_name(Family f) {
    return family_names[f];
}
const char *mixer_name(MixerKind m) {
    return mixer_table[m]->name;
}
const char *lightning_qk_name(LightningQk qk) {
    return qk == LIGHTNING_QK_ROPE ? "rope" : "silu";
}

bool family_from_name(const char *name, Family *out) {
    for (int i = 0; i < 3; i++) {
        if (strcmp(name, family_names[i]) == 0) {
            *out = (Family)i;
            return true;
        }
    }
    return false;
}

MixerKind family_mixer(Family f) {
    return f == FAMILY_TNL ? MIXER_LIGHTNING : f == FAMILY_GLA ? MIXER_GLA : MIXER_SOFTMAX;
}

// Parse "lightning*7,softmax" into kinds[]; returns the pattern length. Dies on bad items.
static int parse_mixer_pattern(const char *pattern, MixerKind *kinds) {
    char buf[4096];
    check(strlen(pattern) < sizeof buf, "mixers: pattern longer than %zu characters",
          sizeof buf - 1);
    snprintf(buf, sizeof buf, "%s", pattern);
    int n = 0;
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ') item++;
        int count = 1;
        char *star = strchr(item, '*');
        if (star) {
            *star = '\0';
            char *end;
            long c = strtol(star + 1, &end, 10);
            check(end != star + 1 && *end == '\0' && c >= 1 && c <= MAX_LAYERS,
                  "mixers: bad repeat count in '%s*%s'", item, star + 1);
            count = (int)c;
        }
        char *tail = item + strlen(item);
        while (tail > item && tail[-1] == ' ') *--tail = '\0';
        int kind = -1;
        char valid[256] = "";
        for (int i = 0; i < N_MIXER_KINDS; i++) {
            if (strcmp(item, mixer_table[i]->name) == 0) kind = i;
            snprintf(valid + strlen(valid), sizeof valid - strlen(valid), "%s%s", i ? ", " : "",
                     mixer_table[i]->name);
        }
        check(kind >= 0, "mixers: unknown mixer '%s' (valid: %s)", item, valid);
        check(n + count <= MAX_LAYERS, "mixers: pattern longer than %d layers", MAX_LAYERS);
        for (int i = 0; i < count; i++) kinds[n++] = (MixerKind)kind;
    }
    check(n > 0, "mixers: empty pattern");
    return n;
}

int default_mlp_dim(int dim, int hidden_ratio) {
    int hidden = (int)((double)dim * hidden_ratio * 2.0 / 3.0);
    return 256 * ((hidden + 255) / 256);
}

// The sizes every other check divides by.
static void check_sizes(const ModelConfig *c) {
    check(c->vocab_size >= 2, "vocab_size must be >= 2 (got %d)", c->vocab_size);
    check(c->dim >= 1 && c->n_layers >= 1 && c->n_heads >= 1,
          "dim, n_layers and n_heads must be >= 1 (got %d, %d, %d)", c->dim, c->n_layers,
          c->n_heads);
    check(c->n_layers <= MAX_LAYERS, "n_layers: at most %d (got %d)", MAX_LAYERS, c->n_layers);
}

void model_config_finalize(ModelConfig *c, const char *mixers) {
    check_sizes(c);
    if (mixers && mixers[0]) {
        MixerKind pattern[MAX_LAYERS];
        int n = parse_mixer_pattern(mixers, pattern);
        check(c->n_layers % n == 0, "mixers: pattern of %d layers does not tile n_layers = %d", n,
              c->n_layers);
        for (int l = 0; l < c->n_layers; l++) c->mixer[l] = pattern[l % n];
    } else {
        for (int l = 0; l < c->n_layers; l++) c->mixer[l] = family_mixer(c->family);
    }
    model_config_check(c);
}

void model_config_check(ModelConfig *c) {
    check_sizes(c);
    check(c->n_kv_heads >= 0 && c->head_dim >= 0 && c->mlp_dim >= 0 && c->gate_low_rank >= 0 &&
              c->attn_block >= 0,
          "n_kv_heads, head_dim, mlp_dim, gate_low_rank and attn_block must be >= 0 (0: default)");
    check(c->norm_eps >= 0 && c->rope_theta >= 0 && c->gate_normalizer >= 0,
          "norm_eps, rope_theta and gate_normalizer must be >= 0 (0: default)");
    if (c->n_kv_heads == 0) c->n_kv_heads = c->n_heads;
    if (c->head_dim == 0) {
        check(c->dim % c->n_heads == 0, "dim %d is not a multiple of n_heads %d", c->dim,
              c->n_heads);
        c->head_dim = c->dim / c->n_heads;
    }
    check(c->n_heads % c->n_kv_heads == 0, "n_heads %d is not a multiple of n_kv_heads %d",
          c->n_heads, c->n_kv_heads);
    if (c->mlp_dim == 0) c->mlp_dim = default_mlp_dim(c->dim, 4);
    if (c->norm_eps == 0) c->norm_eps = c->family == FAMILY_LLAMA ? 1e-5f : 1e-6f;
    if (c->rope_theta == 0) c->rope_theta = 10000.0f;
    if (c->gate_low_rank == 0) c->gate_low_rank = 16;
    if (c->gate_normalizer == 0) c->gate_normalizer = 16.0f;
    if (c->attn_block == 0) c->attn_block = 64;
    check(c->eot_token >= 0 && c->eot_token < c->vocab_size,
          "eot_token %d is outside the vocabulary [0, %d)", c->eot_token, c->vocab_size);
    for (int l = 0; l < c->n_layers; l++) {
        check(c->mixer[l] >= 0 && c->mixer[l] < N_MIXER_KINDS, "layer %d: unknown mixer %d", l,
              c->mixer[l]);
        mixer_table[c->mixer[l]]->check(c);
    }
}

void model_config_print(const ModelConfig *c, FILE *f) {
    fprintf(f, "model %s: dim %d, layers %d, heads %d (kv %d, head_dim %d), mlp %d, vocab %d\n",
            family_name(c->family), c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
            c->mlp_dim, c->vocab_size);
    fprintf(f, "mixers:");
    bool lightning = false;
    for (int l = 0; l < c->n_layers; l++) {
        fprintf(f, " %s", mixer_name(c->mixer[l]));
        lightning |= c->mixer[l] == MIXER_LIGHTNING;
    }
    if (lightning && c->lightning_qk == LIGHTNING_QK_ROPE) fprintf(f, " (lightning q, k: rope)");
    fprintf(f, "\n");
}

// ALiBi slopes for a power-of-two head count: 2^(-8(h+1)/n).
static double alibi_pow2_slope(int n, int h) {
    return pow(2.0, -8.0 * (h + 1) / n);
}

// Per-head slope s_h: ALiBi's (interpolated for H not a power of two, as ALiBi does: the
// slopes of the nearest lower power of two, then every other slope of twice that) or the
// MiniMax variant (2^(-8/H))^(h+1).
static double decay_slope(DecayKind kind, int H, int h) {
    if (kind == DECAY_MINIMAX) return pow(pow(2.0, -8.0 / H), h + 1);
    int p = 1;
    while (p * 2 <= H) p *= 2;
    if (h < p) return alibi_pow2_slope(p, h);
    return alibi_pow2_slope(2 * p, 2 * (h - p));
}

void lightning_log_decays(const ModelConfig *c, int layer, float *log_decay) {
    double depth = c->n_layers > 1 ? (double)layer / (c->n_layers - 1) : 0.0;
    for (int h = 0; h < c->n_heads; h++) {
        double s = decay_slope(c->decay, c->n_heads, h);
        log_decay[h] = (float)(-s * (1.0 - depth + 1e-5));
    }
}
