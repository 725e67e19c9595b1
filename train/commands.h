// train/commands.h: the entry points of bolt's subcommands (train/main.c dispatches).
// Each takes the arguments after the subcommand name and returns the exit status.
#pragma once

int train_main(int argc, char **argv);           // train/train.c
int distill_main(int argc, char **argv);         // train/distill.c
int sample_main(int argc, char **argv);          // train/sample.c
int prep_main(int argc, char **argv);            // train/prep.c
int bench_tokenizer_main(int argc, char **argv); // train/bench_tokenizer.c
int bench_loader_main(int argc, char **argv);    // train/bench_loader.c
int bench_attn_main(int argc, char **argv);      // train/bench_attn.c
int bench_train_main(int argc, char **argv);     // train/bench_train.c
int import_main(int argc, char **argv);          // train/interop.c
int export_main(int argc, char **argv);          // train/interop.c
int eval_main(int argc, char **argv);            // train/eval.c
int plot_main(int argc, char **argv);            // train/plot.c

const char *bolt_version(void); // "0.1.0" (train/version.c)
const char *bolt_commit(void);  // the git commit it was built from, or "unknown"
