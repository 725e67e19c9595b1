// tests/test_loader.c: the loader: targets, shuffle, ranks, tell/seek/reset, batches per
// epoch, broken and lying shards, the vocabulary check.
#include <sys/wait.h>
#include <unistd.h>

#include "../data/loader.h"
#include "shard_testing.h"

// Shards hold a counter (token i of the data set = i + 1, uint32), so the first
// token of a row names its window and shard uniquely.

typedef struct Data {
    int nshards;
    int64_t sizes[8];
    int64_t base[8]; // counter value of each shard's first token
    char *dir;
    char glob[300];
} Data;

static Data counter_shards(const int64_t *sizes, int n, bool zstd_odd) {
    Data d = {.nshards = n, .dir = new_dir()};
    snprintf(d.glob, sizeof d.glob, "%s/d_*.bin*", d.dir);
    int64_t next = 1;
    for (int s = 0; s < n; s++) {
        d.sizes[s] = sizes[s];
        d.base[s] = next;
        uint32_t *tok = xmalloc((size_t)sizes[s] * sizeof(uint32_t) + 4);
        for (int64_t i = 0; i < sizes[s]; i++) tok[i] = (uint32_t)(next + i);
        next += sizes[s];
        char name[64];
        bool zstd = zstd_odd && s % 2 == 1;
        snprintf(name, sizeof name, "d_%03d.bin%s", s, zstd ? ".zst" : "");
        char *path = path_in(d.dir, name);
        shard_write(path, tok, sizes[s], true, zstd);
        free(path);
        free(tok);
    }
    return d;
}

// Number of windows of T+1 tokens over all shards, and their first tokens in `firsts`.
static int64_t all_windows(const Data *d, int T, int64_t *firsts) {
    int64_t k = 0;
    for (int s = 0; s < d->nshards; s++)
        for (int64_t w = 0; w < (d->sizes[s] - 1) / T; w++) {
            if (firsts) firsts[k] = d->base[s] + w * T;
            k++;
        }
    return k;
}

// Every row is a window: consecutive tokens, targets shifted by one, starting at a window
// boundary of some shard. Returns the first tokens of the rows in firsts[0..B).
static void check_batch(const Data *d, int B, int T, const int *tok, const int *tgt,
                        int64_t *firsts) {
    for (int b = 0; b < B; b++) {
        int64_t first = tok[b * T];
        for (int t = 0; t < T; t++) {
            ck_assert_int_eq(tok[b * T + t], first + t);
            ck_assert_int_eq(tgt[b * T + t], first + t + 1);
        }
        bool boundary = false;
        for (int s = 0; s < d->nshards; s++) {
            int64_t off = first - d->base[s];
            if (off >= 0 && off + T < d->sizes[s] && off % T == 0) boundary = true;
        }
        ck_assert_msg(boundary, "row %d starts at %lld: not a window", b, (long long)first);
        if (firsts) firsts[b] = first;
    }
}

static int compare_int64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static const int64_t SIZES[4] = {161, 97, 130, 81}; // T=16: 10, 6, 8, 5 windows (29)

START_TEST(test_loader_sequential) {
    Data d = counter_shards(SIZES, 4, true);
    int B = 3, T = 16;
    int64_t max_token = 161 + 97 + 130 + 81; // the counter's last value
    Loader *l = loader_open(d.glob, B, T, 0, 1, 1, false, (int)max_token + 1);
    ck_assert_int_eq(loader_nfiles(l), 4);
    int64_t nwin = all_windows(&d, T, NULL);
    int64_t *expect = xmalloc((size_t)nwin * 2 * sizeof(int64_t));
    all_windows(&d, T, expect);
    all_windows(&d, T, expect + nwin); // the second epoch repeats the first in order
    ck_assert_int_eq(loader_total_tokens(l), 161 + 97 + 130 + 81);
    ck_assert_int_eq(loader_batches_per_epoch(l), nwin / B);
    int *tok = xmalloc((size_t)B * T * sizeof(int)), *tgt = xmalloc((size_t)B * T * sizeof(int));
    int64_t firsts[3];
    for (int64_t k = 0; k + B <= 2 * nwin; k += B) {
        loader_next(l, tok, tgt);
        check_batch(&d, B, T, tok, tgt, firsts);
        for (int b = 0; b < B; b++) ck_assert_int_eq(firsts[b], expect[k + b]);
    }
    loader_close(l);
    free(expect);
    free(tok);
    free(tgt);
}
END_TEST

// The first `count` window starts a loader gives (B = 1).
static int64_t *first_windows(const char *glob, int T, int rank, int world, uint64_t seed,
                              bool shuffle, int64_t count, const Data *d) {
    Loader *l = loader_open(glob, 1, T, rank, world, seed, shuffle, 1 << 20);
    int64_t *out = xmalloc((size_t)(count > 0 ? count : 1) * sizeof(int64_t));
    int *tok = xmalloc((size_t)T * sizeof(int)), *tgt = xmalloc((size_t)T * sizeof(int));
    for (int64_t k = 0; k < count; k++) {
        loader_next(l, tok, tgt);
        check_batch(d, 1, T, tok, tgt, &out[k]);
    }
    free(tok);
    free(tgt);
    loader_close(l);
    return out;
}

START_TEST(test_loader_shuffle) {
    Data d = counter_shards(SIZES, 4, false);
    int T = 16;
    int64_t nwin = all_windows(&d, T, NULL);
    int64_t *all = xmalloc((size_t)nwin * sizeof(int64_t));
    all_windows(&d, T, all);
    int64_t *a = first_windows(d.glob, T, 0, 1, 42, true, 2 * nwin, &d);
    int64_t *b = first_windows(d.glob, T, 0, 1, 42, true, 2 * nwin, &d);
    int64_t *c = first_windows(d.glob, T, 0, 1, 43, true, 2 * nwin, &d);
    ck_assert(memcmp(a, b, (size_t)(2 * nwin) * sizeof(int64_t)) == 0);
    ck_assert(memcmp(a, c, (size_t)nwin * sizeof(int64_t)) != 0);
    ck_assert(memcmp(a, all, (size_t)nwin * sizeof(int64_t)) != 0);      // not in order
    ck_assert(memcmp(a, a + nwin, (size_t)nwin * sizeof(int64_t)) != 0); // epochs differ
    for (int epoch = 0; epoch < 2; epoch++) { // each epoch is a permutation of all windows
        qsort(a + epoch * nwin, (size_t)nwin, sizeof(int64_t), compare_int64);
        ck_assert(memcmp(a + epoch * nwin, all, (size_t)nwin * sizeof(int64_t)) == 0);
    }
    free(a);
    free(b);
    free(c);
    free(all);
}
END_TEST

// Ranks are disjoint and together cover every window of an epoch, with shard window
// counts that do not divide by the world size.
START_TEST(test_loader_ranks) {
    Data d = counter_shards(SIZES, 4, true);
    int T = 16;
    int64_t nwin = all_windows(&d, T, NULL); // 29
    int64_t *all = xmalloc((size_t)nwin * sizeof(int64_t));
    all_windows(&d, T, all);
    for (int world = 2; world <= 3; world++) {
        int64_t *got = xmalloc((size_t)nwin * sizeof(int64_t));
        int64_t k = 0;
        for (int r = 0; r < world; r++) {
            int64_t count = (nwin - r + world - 1) / world; // stream indices r, r+world, ...
            int64_t *w = first_windows(d.glob, T, r, world, 7, true, count, &d);
            memcpy(got + k, w, (size_t)count * sizeof(int64_t));
            k += count;
            free(w);
        }
        ck_assert_int_eq(k, nwin);
        qsort(got, (size_t)nwin, sizeof(int64_t), compare_int64);
        ck_assert(memcmp(got, all, (size_t)nwin * sizeof(int64_t)) == 0);
        free(got);
    }
    free(all);
}
END_TEST

// tell/seek: from every position of an uninterrupted run (crossing shard and epoch
// boundaries, batches straddling them), a seek reproduces the next batches exactly, for
// each rank; all ranks report the same position after the same number of batches.
START_TEST(test_loader_tell_seek) {
    Data d = counter_shards(SIZES, 4, true);
    int B = 2, T = 16, world = 2, steps = 40; // 29 windows: an epoch is 7.25 steps
    size_t bt = (size_t)B * T;
    for (int rank = 0; rank < world; rank++) {
        Loader *a = loader_open(d.glob, B, T, rank, world, 99, true, 0);
        Loader *other = loader_open(d.glob, B, T, 1 - rank, world, 99, true, 0);
        LoaderPos *pos = xmalloc((size_t)steps * sizeof(LoaderPos));
        int *tok = xmalloc((size_t)steps * bt * sizeof(int));
        int *tgt = xmalloc((size_t)steps * bt * sizeof(int));
        int *scratch = xmalloc(2 * bt * sizeof(int));
        bool saw_epoch = false, saw_shard = false;
        for (int k = 0; k < steps; k++) {
            pos[k] = loader_tell(a);
            LoaderPos p = loader_tell(other);
            ck_assert(p.epoch == pos[k].epoch && p.shard == pos[k].shard &&
                      p.window == pos[k].window);
            if (pos[k].epoch > 0) saw_epoch = true;
            if (pos[k].shard > 0) saw_shard = true;
            loader_next(a, tok + k * bt, tgt + k * bt);
            loader_next(other, scratch, scratch + bt);
        }
        ck_assert(saw_epoch && saw_shard);
        Loader *b = loader_open(d.glob, B, T, rank, world, 99, true, 0);
        for (int k = 0; k < steps; k++) {
            loader_seek(b, pos[k]);
            for (int j = k; j < steps && j < k + 3; j++) {
                loader_next(b, scratch, scratch + bt);
                ck_assert(memcmp(scratch, tok + j * bt, bt * sizeof(int)) == 0);
                ck_assert(memcmp(scratch + bt, tgt + j * bt, bt * sizeof(int)) == 0);
            }
        }
        loader_reset(b); // reset = the first batch again
        loader_next(b, scratch, scratch + bt);
        ck_assert(memcmp(scratch, tok, bt * sizeof(int)) == 0);
        loader_close(a);
        loader_close(b);
        loader_close(other);
        free(pos);
        free(tok);
        free(tgt);
        free(scratch);
    }
}
END_TEST

START_TEST(test_loader_no_match) {
    const char *dir = new_dir();
    char *glob = path_in(dir, "nothing_*.bin");
    loader_open(glob, 1, 8, 0, 1, 0, false, 0);
}
END_TEST

START_TEST(test_loader_too_few_windows) {
    const int64_t sizes[1] = {20}; // one window of 16+1
    Data d = counter_shards(sizes, 1, false);
    loader_open(d.glob, 1, 16, 1, 2, 0, false, 0);
}
END_TEST

START_TEST(test_loader_bad_shard) {
    Data d = counter_shards(SIZES, 2, false);
    char *path = path_in(d.dir, "d_001.bin");
    edit_file(path, append_byte);
    loader_open(d.glob, 1, 16, 0, 1, 0, false, 0);
}
END_TEST

static void open_loader(const char *glob) {
    loader_open(glob, 1, 16, 0, 1, 0, false, 0);
}

// Five .zst shards whose headers each claim ~2^61 tokens (the most a header may): their
// sum would overflow int64, so opening them must die naming a shard.
START_TEST(test_loader_claimed_tokens_overflow) {
    const char *dir = new_dir();
    char *plain = good_shard(dir, "p.bin", false);
    size_t len;
    char *bytes = test_read_file(plain, &len);
    const uint64_t claimed = ((uint64_t)INT64_MAX - 1024) / 4; // the most shard.c accepts
    for (int i = 0; i < 8; i++) bytes[8 + i] = (char)((claimed >> (8 * i)) & 0xFF);
    for (int s = 0; s < 5; s++) {
        char name[32];
        snprintf(name, sizeof name, "o_%d.bin.zst", s);
        char *packed = path_in(dir, name);
        write_two_frames(packed, bytes, len);
        free(packed);
    }
    char glob[600], msg[1024];
    snprintf(glob, sizeof glob, "%s/o_*.bin.zst", dir);
    int status = capture_stderr(open_loader, glob, msg, sizeof msg);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    ck_assert_msg(strstr(msg, "add up") && strstr(msg, ".bin.zst"), "got: %s", msg);
    free(bytes);
    free(plain);
}
END_TEST

// Whole batches per epoch are the floor of windows / (B * world), 0 included; with 0 the
// loader still hands out batches (wrapping into the next epoch).
START_TEST(test_loader_batches_per_epoch) {
    Data d = counter_shards(SIZES, 4, true);
    int T = 16;
    int64_t nwin = all_windows(&d, T, NULL); // 29
    Rng rng = rng_seeded(31);
    for (int trial = 0; trial < 8; trial++) {
        int world = 1 + (int)(rng_next(&rng) % 3);
        int B = 1 + (int)(rng_next(&rng) % 40);
        int rank = (int)(rng_next(&rng) % (uint64_t)world);
        Loader *l = loader_open(d.glob, B, T, rank, world, 5, trial % 2 == 0, 0);
        int64_t want = 0; // count whole batches by hand
        while ((want + 1) * B * world <= nwin) want++;
        ck_assert_int_eq(loader_batches_per_epoch(l), want);
        int *tok = xmalloc((size_t)B * T * sizeof(int)),
            *tgt = xmalloc((size_t)B * T * sizeof(int));
        loader_next(l, tok, tgt);
        check_batch(&d, B, T, tok, tgt, NULL);
        free(tok);
        free(tgt);
        loader_close(l);
    }
    Loader *l = loader_open(d.glob, 30, T, 0, 1, 5, false, 0); // 29 windows < one batch
    ck_assert_int_eq(loader_batches_per_epoch(l), 0);
    loader_close(l);
}
END_TEST

// A counter data set whose largest token equals the vocabulary size: reading every shard
// (two epochs, so the last shard is read in the foreground or by the read-ahead thread)
// must die.
START_TEST(test_loader_token_outside_vocab) {
    Data d = counter_shards(SIZES, 4, true);
    int64_t max_token = 161 + 97 + 130 + 81;
    Loader *l = loader_open(d.glob, 2, 16, 0, 1, 3, true, (int)max_token);
    int tok[32], tgt[32];
    for (int k = 0; k < 40; k++) loader_next(l, tok, tgt);
    loader_close(l);
}
END_TEST

// The message names the shard, the id and its position, and the vocabulary.
START_TEST(test_loader_token_outside_vocab_message) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(33);
    int vocab = 300 + (int)(rng_next(&rng) % 1000);
    int64_t n = 5000, at = (int64_t)(rng_next(&rng) % (uint64_t)n);
    uint32_t *tok = random_tokens(&rng, n, (uint32_t)vocab);
    tok[at] = (uint32_t)vocab + (uint32_t)(rng_next(&rng) % 50);
    char *path = path_in(dir, "v.bin"), *err = path_in(dir, "err.txt");
    shard_write(path, tok, n, false, false);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen(err, "w", stderr)) _exit(3);
        Loader *l = loader_open(path, 4, 32, 0, 1, 0, false, vocab);
        int b[128], t[128];
        loader_next(l, b, t);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
    char *msg = test_read_file(err, NULL), want[700];
    snprintf(want, sizeof want,
             "%s: token id %u at position %lld is outside the vocabulary [0, %d)", path, tok[at],
             (long long)at, vocab);
    ck_assert_msg(strstr(msg, want) != NULL, "'%s' lacks '%s'", msg, want);
    free(msg);
    free(tok);
    free(path);
    free(err);
}
END_TEST

static Suite *loader_suite(void) {
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("loader");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_loader_sequential);
    tcase_add_test(tc, test_loader_shuffle);
    tcase_add_test(tc, test_loader_ranks);
    tcase_add_test(tc, test_loader_tell_seek);
    tcase_add_exit_test(tc, test_loader_no_match, 1);
    tcase_add_exit_test(tc, test_loader_too_few_windows, 1);
    tcase_add_exit_test(tc, test_loader_bad_shard, 1);
    tcase_add_test(tc, test_loader_claimed_tokens_overflow);
    tcase_add_test(tc, test_loader_batches_per_epoch);
    tcase_add_exit_test(tc, test_loader_token_outside_vocab, 1);
    tcase_add_test(tc, test_loader_token_outside_vocab_message);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    make_scratch_root("loader");
    return run_suite(loader_suite());
}
