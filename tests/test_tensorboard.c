// tests/test_tensorboard.c: TensorBoard event files, read back by a reader written here
// from the format's specification (TFRecord framing: uint64 length, masked CRC-32C of the
// length, data, masked CRC-32C of the data; each data a tensorflow.Event in protobuf wire
// format), with its own table-driven CRC-32C checked against the standard check value.
// Checks: the file name, the version event first, every CRC, each event's wall time,
// step, tags and values; a corrupted byte is caught; a training run with tensorboard = 1
// logs the same losses as its metrics.jsonl.
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/util.h"
#include "../train/commands.h"
#include "../train/tensorboard.h"
#include "testing.h"
#include "train_testing.h"

// ---- CRC-32C, written independently of tensorboard.c's bitwise one -------------------

static uint32_t test_crc32c(const uint8_t *p, size_t n) {
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

// TFRecord's mask: rotate right by 15 bits and add a constant.
static uint32_t test_mask(uint32_t crc) {
    return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

static uint64_t le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

// ---- A protobuf wire-format reader for the Event fields ------------------------------

// What one Event holds (the fields bolt writes).
typedef struct Event {
    double wall_time;
    int64_t step;
    char file_version[64];
    int n_values;
    char tags[8][256];
    float values[8];
} Event;

// A varint at *pos (advanced past it); false if it runs past end.
static bool read_varint(const uint8_t *p, size_t end, size_t *pos, uint64_t *v) {
    *v = 0;
    for (int shift = 0; *pos < end && shift < 64; shift += 7) {
        uint8_t b = p[(*pos)++];
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

// One field of a message in p[*pos, end): its number, wire type, and where its payload
// is (a varint's value in *v; length-delimited: *start and *len). false when malformed.
static bool read_field(const uint8_t *p, size_t end, size_t *pos, int *field, int *type,
                       uint64_t *v, size_t *start, size_t *len) {
    uint64_t key;
    if (!read_varint(p, end, pos, &key)) return false;
    *field = (int)(key >> 3), *type = (int)(key & 7);
    *start = *pos;
    if (*type == 0) return read_varint(p, end, pos, v);
    if (*type == 1 || *type == 5) {
        *len = *type == 1 ? 8 : 4;
        if (*pos + *len > end) return false;
        *v = le(p + *pos, (int)*len);
        *pos += *len;
        return true;
    }
    if (*type != 2 || !read_varint(p, end, pos, v) || *pos + *v > end) return false;
    *start = *pos, *len = (size_t)*v;
    *pos += *len;
    return true;
}

// Summary.Value { tag = 1; simple_value = 2 } into e's next value.
static const char *decode_value(const uint8_t *p, size_t end, size_t pos, Event *e) {
    if (e->n_values == 8) return "too many values";
    int k = e->n_values++, field, type;
    uint64_t v;
    size_t start, len;
    while (pos < end) {
        if (!read_field(p, end, &pos, &field, &type, &v, &start, &len)) return "bad Value";
        if (field == 1 && type == 2)
            snprintf(e->tags[k], sizeof e->tags[k], "%.*s", (int)len, (const char *)p + start);
        else if (field == 2 && type == 5)
            memcpy(&e->values[k], &(uint32_t){(uint32_t)v}, 4);
        else
            return "unexpected field in Value";
    }
    return NULL;
}

// An Event's bytes into e: wall_time (1, double), step (2, varint), file_version (3,
// string) or summary (5: repeated Value, field 1). Returns NULL or what is wrong.
static const char *decode_event(const uint8_t *p, size_t n, Event *e) {
    memset(e, 0, sizeof *e);
    size_t pos = 0, start, len;
    int field, type;
    uint64_t v;
    while (pos < n) {
        if (!read_field(p, n, &pos, &field, &type, &v, &start, &len)) return "bad Event field";
        if (field == 1 && type == 1) {
            memcpy(&e->wall_time, &v, 8);
        } else if (field == 2 && type == 0) {
            e->step = (int64_t)v;
        } else if (field == 3 && type == 2) {
            snprintf(e->file_version, 64, "%.*s", (int)len, (const char *)p + start);
        } else if (field == 5 && type == 2) {
            size_t sp = start, s_end = start + len, vs, vl;
            while (sp < s_end) {
                if (!read_field(p, s_end, &sp, &field, &type, &v, &vs, &vl) || field != 1 ||
                    type != 2)
                    return "bad Summary";
                const char *err = decode_value(p, vs + vl, vs, e);
                if (err) return err;
            }
        } else {
            return "unexpected field in Event";
        }
    }
    return NULL;
}

// Read a whole event file: every record's framing and CRCs, every Event. Returns NULL or
// what is wrong; events[0..*n) get the decoded events.
static const char *read_events(const char *path, Event *events, int cap, int *n) {
    size_t size;
    uint8_t *buf = (uint8_t *)test_read_file(path, &size);
    const char *err = NULL;
    *n = 0;
    for (size_t pos = 0; pos < size && !err;) {
        if (pos + 12 > size) {
            err = "truncated record header";
        } else if (le(buf + pos + 8, 4) != test_mask(test_crc32c(buf + pos, 8))) {
            err = "bad length CRC";
        } else {
            uint64_t len = le(buf + pos, 8);
            const uint8_t *data = buf + pos + 12;
            if (pos + 16 + len > size)
                err = "record runs past the end";
            else if (le(data + len, 4) != test_mask(test_crc32c(data, len)))
                err = "bad data CRC";
            else if (*n == cap)
                err = "too many events";
            else
                err = decode_event(data, len, &events[(*n)++]);
            pos += 16 + len;
        }
    }
    free(buf);
    return err;
}

// The one events.out.tfevents.* file in dir (NULL if none; fails if several).
static char *find_event_file(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    char *found = NULL;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, "events.out.tfevents.", 20) != 0) continue;
        ck_assert_msg(found == NULL, "%s: several event files", dir);
        found = path_in(dir, e->d_name);
    }
    closedir(d);
    return found;
}

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---- Tests -----------------------------------------------------------------------------

START_TEST(test_crc32c_check_values) {
    const char *check_string = "123456789";
    ck_assert_uint_eq(test_crc32c((const uint8_t *)check_string, 9), 0xE3069283u);
    ck_assert_uint_eq(tb_crc32c(check_string, 9), 0xE3069283u);
    uint8_t zeros[32] = {0};
    ck_assert_uint_eq(test_crc32c(zeros, 32), 0x8A9136AAu); // RFC 3720 B.4
    ck_assert_uint_eq(tb_crc32c(zeros, 32), 0x8A9136AAu);
    ck_assert_uint_eq(tb_mask_crc(0xE3069283u), test_mask(0xE3069283u));
}
END_TEST

// The writer's file read back: version event, then each step's scalars as written.
START_TEST(test_write_and_read_back) {
    char *dir = new_dir();
    double before = wall_now();
    TbWriter w;
    tb_open(&w, dir);
    TbScalar a[3] = {{"train/loss", 5.25f}, {"train/lr", 3e-4f}, {"train/grad_norm", 1.5f}};
    tb_write_scalars(&w, 1, a, 3);
    TbScalar b[1] = {{"val/loss", -0.0625f}};
    tb_write_scalars(&w, 300, b, 1);
    TbScalar c[1] = {{"a/long_tag_name_that_needs_more_than_one_varint_byte_of_length_to_hold_it_"
                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                      1e30f}};
    tb_write_scalars(&w, 1LL << 40, c, 1);
    tb_close(&w);
    double after = wall_now();

    char *path = find_event_file(dir);
    ck_assert_ptr_nonnull(path);
    Event ev[8];
    int n;
    const char *err = read_events(path, ev, 8, &n);
    ck_assert_msg(err == NULL, "%s: %s", path, err);
    ck_assert_int_eq(n, 4);
    ck_assert_str_eq(ev[0].file_version, "brain.Event:2");
    ck_assert_int_eq(ev[0].n_values, 0);
    for (int i = 0; i < n; i++)
        ck_assert_msg(ev[i].wall_time >= before - 1 && ev[i].wall_time <= after + 1,
                      "event %d wall time %f", i, ev[i].wall_time);
    ck_assert_int_eq(ev[1].step, 1);
    ck_assert_int_eq(ev[1].n_values, 3);
    for (int k = 0; k < 3; k++) {
        ck_assert_str_eq(ev[1].tags[k], a[k].tag);
        ck_assert(ev[1].values[k] == a[k].value);
    }
    ck_assert_int_eq(ev[2].step, 300);
    ck_assert_str_eq(ev[2].tags[0], "val/loss");
    ck_assert(ev[2].values[0] == -0.0625f);
    ck_assert(ev[3].step == 1LL << 40);
    ck_assert_str_eq(ev[3].tags[0], c[0].tag);
    ck_assert(ev[3].values[0] == 1e30f);
}
END_TEST

// One flipped byte anywhere is caught by a CRC (or breaks the framing).
START_TEST(test_corruption_caught) {
    char *dir = new_dir();
    TbWriter w;
    tb_open(&w, dir);
    TbScalar a[2] = {{"train/loss", 2.5f}, {"train/lr", 1e-3f}};
    tb_write_scalars(&w, 7, a, 2);
    tb_close(&w);
    char *path = find_event_file(dir);
    size_t size;
    uint8_t *orig = (uint8_t *)test_read_file(path, &size);
    Event ev[4];
    int n;
    for (size_t i = 0; i < size; i++) {
        uint8_t *copy = malloc(size);
        memcpy(copy, orig, size);
        copy[i] ^= 0x10;
        write_bytes(path, copy, size);
        ck_assert_msg(read_events(path, ev, 4, &n) != NULL, "flipped byte %zu not caught", i);
        free(copy);
    }
    free(orig);
}
END_TEST

// A training run with tensorboard = 1: one event per step with loss, lr, grad norm and
// tokens/s (no MFU on the CPU), one per validation; the losses match metrics.jsonl.
START_TEST(test_training_run) {
    char *corpus = write_word_corpus(), *out = path_in(corpus, "run");
    Args a = {0};
    args_add(&a, "--train_data=%s/c_train_*.bin", corpus);
    args_add(&a, "--val_data=%s/c_val_*.bin", corpus);
    args_add(&a, "--out_dir=%s", out);
    args_add(&a, "--steps=4");
    args_add(&a, "--val_every=2");
    args_add(&a, "--val_batches=1");
    args_add(&a, "--dim=32");
    args_add(&a, "--n_layers=1");
    args_add(&a, "--batch_size=2");
    args_add(&a, "--seq_len=32");
    args_add(&a, "--device=cpu");
    args_add(&a, "--threads=1");
    args_add(&a, "--tensorboard=1");
    ck_assert_int_eq(train_main(a.n, args_argv(&a)), 0);

    char *path = find_event_file(out);
    ck_assert_ptr_nonnull(path);
    Event ev[16];
    int count;
    const char *err = read_events(path, ev, 16, &count);
    ck_assert_msg(err == NULL, "%s: %s", path, err);
    ck_assert_int_eq(count, 1 + 4 + 2);
    ck_assert_str_eq(ev[0].file_version, "brain.Event:2");
    // Steps 1, 2, val 2, 3, 4, val 4.
    int64_t steps[6] = {1, 2, 2, 3, 4, 4};
    const char *train_tags[4] = {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s"};
    char *metrics = test_read_file(path_in(out, "metrics.jsonl"), NULL);
    for (int i = 0; i < 6; i++) {
        const Event *e = &ev[1 + i];
        ck_assert_int_eq(e->step, steps[i]);
        bool val = i == 2 || i == 5;
        ck_assert_int_eq(e->n_values, val ? 1 : 4);
        for (int k = 0; k < e->n_values; k++) {
            ck_assert_str_eq(e->tags[k], val ? "val/loss" : train_tags[k]);
            ck_assert(isfinite(e->values[k]));
        }
        char want[128]; // the same value as metrics.jsonl has, to its 6 decimals
        snprintf(want, sizeof want, "{\"step\": %lld, \"%s\": %.6f", (long long)e->step,
                 val ? "val_loss" : "loss", e->values[0]);
        ck_assert_msg(strstr(metrics, want) != NULL, "metrics.jsonl lacks '%s'", want);
    }
    free(metrics);
}
END_TEST

static Suite *tensorboard_suite(void) {
    Suite *s = suite_create("tensorboard");
    TCase *tc = tcase_create("events");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_crc32c_check_values);
    tcase_add_test(tc, test_write_and_read_back);
    tcase_add_test(tc, test_corruption_caught);
    tcase_add_test(tc, test_training_run);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    make_scratch_root("tensorboard");
    return run_suite(tensorboard_suite());
}
