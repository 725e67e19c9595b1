// train/main.c: the `bolt` binary: dispatch to a subcommand.
#include <stdio.h>
#include <string.h>

#include "commands.h"

static void usage(void) {
    printf("bolt: train linear-attention language models (TNL/Lightning, GLA, hybrids)\n\n"
           "usage: bolt COMMAND [args]   (bolt COMMAND --help for each)\n\n"
           "  train CONFIG [--key=value ...]  pretrain or continue training a model\n"
           "  sample CKPT [--prompt=...]       generate text with the recurrent form\n"
           "  eval CKPT --data=GLOB | --tokens=IDS [--logits_out=FILE]  loss / logits\n"
           "  prep --tokenizer=... --out=DIR FILES...  tokenize text/jsonl into shards\n"
           "  import HF_DIR OUT [--dtype=f32|bf16]  Hugging Face checkpoint -> bolt\n"
           "  export CKPT HF_DIR [--dtype=f32|bf16] bolt checkpoint -> Hugging Face\n"
           "  plot RUN [RUN ...] [--out=FILE.png|.svg]  loss, lr, norm, tokens/s figure\n"
           "  bench tokenizer TOKENIZER FILE   tokenizer encode speed\n"
           "  bench loader GLOB [--batch_size=B] [--seq_len=T] [--batches=N]  loader tokens/s\n"
           "  bench attn [--kind=...] [--lengths=...]  token-mixing ops, fwd and fwd+bwd\n"
           "  bench train CONFIG [--key=value ...]     training step: tok/s, MFU, memory\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "train") == 0) return train_main(argc - 2, argv + 2);
    if (strcmp(cmd, "sample") == 0) return sample_main(argc - 2, argv + 2);
    if (strcmp(cmd, "prep") == 0) return prep_main(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0) return eval_main(argc - 2, argv + 2);
    if (strcmp(cmd, "import") == 0) return import_main(argc - 2, argv + 2);
    if (strcmp(cmd, "export") == 0) return export_main(argc - 2, argv + 2);
    if (strcmp(cmd, "plot") == 0) return plot_main(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0) {
        const char *what = argc > 2 ? argv[2] : "";
        if (strcmp(what, "loader") == 0) return bench_loader_main(argc - 3, argv + 3);
        if (strcmp(what, "tokenizer") == 0) return bench_tokenizer_main(argc - 3, argv + 3);
        if (strcmp(what, "attn") == 0) return bench_attn_main(argc - 3, argv + 3);
        if (strcmp(what, "train") == 0) return bench_train_main(argc - 3, argv + 3);
        fprintf(stderr,
                "bolt: error: bench '%s': unknown benchmark (valid: tokenizer, loader, attn, "
                "train)\n",
                what);
        return 2;
    }
    fprintf(stderr, "bolt: error: unknown command '%s' (see bolt --help)\n", cmd);
    return 2;
}
