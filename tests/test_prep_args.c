// tests/test_prep_args.c: `bolt prep` arguments and inputs that stop it at once with a
// clear error (exit 1): bad JSON, a missing text field, an empty text file, an unknown
// flag, bad values, a missing input.
#include "../train/commands.h"
#include "testing.h"

// Run prep on one input file NAME holding CONTENT, with BAD_ARG (may be NULL) added.
static void prep_dies(const char *bad_arg, const char *name, const char *content) {
    const char *dir = new_dir();
    char *input = path_in(dir, name);
    write_bytes(input, content, strlen(content));
    char out_flag[320];
    snprintf(out_flag, sizeof out_flag, "--out=%s/o", dir);
    const char *argv[] = {"--tokenizer=byte", out_flag, input, bad_arg};
    prep_main(bad_arg ? 4 : 3, (char **)argv);
}

START_TEST(test_prep_bad_json) {
    prep_dies(NULL, "in.jsonl", "{\"text\": \"a\"}\nnot json\n");
}
END_TEST
START_TEST(test_prep_missing_field) {
    prep_dies(NULL, "in.jsonl", "{\"txt\": \"a\"}\n");
}
END_TEST
// An empty text file is no document (it used to become a shard holding one EOT).
START_TEST(test_prep_empty_text) {
    prep_dies(NULL, "empty.txt", "");
}
END_TEST
START_TEST(test_prep_unknown_flag) {
    prep_dies("--shards=3", "in.txt", "text");
}
END_TEST
START_TEST(test_prep_bad_value) {
    prep_dies("--val_fraction=1.5", "in.txt", "text");
}
END_TEST
START_TEST(test_prep_bad_threads) {
    prep_dies("--threads=-1", "in.txt", "text");
}
END_TEST
START_TEST(test_prep_missing_input) {
    prep_dies("/nonexistent/file.txt", "in.txt", "text");
}
END_TEST

int main(void) {
    make_scratch_root("prep_args");
    Suite *s = suite_create("prep_args");
    TCase *tc = tcase_create("prep_args");
    tcase_add_exit_test(tc, test_prep_bad_json, 1);
    tcase_add_exit_test(tc, test_prep_missing_field, 1);
    tcase_add_exit_test(tc, test_prep_empty_text, 1);
    tcase_add_exit_test(tc, test_prep_unknown_flag, 1);
    tcase_add_exit_test(tc, test_prep_bad_value, 1);
    tcase_add_exit_test(tc, test_prep_bad_threads, 1);
    tcase_add_exit_test(tc, test_prep_missing_input, 1);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
