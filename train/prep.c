// train/prep.c: `bolt prep`: tokenize text files and jsonl (plain or zstd-compressed) into
// llm.c shards, with the last documents held out as a validation split.
//
// Every text file is one document; every non-blank line of a .jsonl or .jsonl.zst file is
// one document (the string in field --text_field). Like llm.c, an EOT token goes before
// each document. The inputs are read twice: a scan pass counts (and validates) the
// documents, so a missing, unreadable or non-regular input, a bad jsonl line or corrupt
// zstd data stops the run before any shard is written, and the split point is known; the
// encode pass tokenizes and streams tokens into shards of at most --shard_tokens tokens.
// A ".zst" input is decompressed while streaming, never held whole
// (data/doc_reader.c reads the inputs and turns jsonl lines into text).
//
// Both passes run as a pipeline: a reader thread cuts the inputs into batches of documents
// (about 1 MiB each), --threads worker threads parse and tokenize batches, and the main
// thread takes the batches strictly in order (shards, counts, progress), so the output is
// byte-identical for every thread count. --threads=1 runs the same steps inline.
//
// SIGINT/SIGTERM remove the temp file of the shard being written before the process dies;
// every file under a final name is complete (written as NAME.tmp, then renamed).
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/util.h"
#include "../data/doc_reader.h"
#include "../data/shard.h"
#include "../data/tokenizer.h"
#include "commands.h"
#include "options.h"

enum {
    BATCH_BYTES = 1 << 20, // a batch is cut after this many bytes of documents...
    BATCH_DOCS = 1 << 14,  // ...or this many documents
    MAX_THREADS = 128,
};

typedef struct PrepArgs {
    const char *tokenizer;
    const char *out;
    const char *name; // "": basename of the first input without extension
    double val_fraction;
    int64_t shard_tokens;
    bool zstd;
    const char *text_field;
    int threads;  // worker threads that parse and tokenize (0: the free cores)
    int progress; // PROGRESS_OFF, PROGRESS_ON or PROGRESS_AUTO (on when stderr is a terminal)
    int ninputs;
    char **inputs;
} PrepArgs;

enum { PROGRESS_OFF, PROGRESS_ON, PROGRESS_AUTO }; // the order of --progress's choices

static const Option PREP_OPTIONS[] = {
    {"tokenizer", OPT_STRING, offsetof(PrepArgs, tokenizer), 0, 0, 0, NULL, NULL,
     "byte (vocab 256, EOT 0), a tokenizer.json (or a directory holding one) or a .tiktoken "
     "ranks file"},
    {"out", OPT_STRING, offsetof(PrepArgs, out), 0, 0, 0, NULL, NULL,
     "output directory (created if missing); required"},
    {"name", OPT_STRING, offsetof(PrepArgs, name), 0, 0, 0, NULL, NULL,
     "shard name prefix; empty: the first input's basename without extension"},
    {"val_fraction", OPT_DOUBLE, offsetof(PrepArgs, val_fraction), 0, 0, 0.999999, NULL, NULL,
     "fraction of the documents for validation, in [0, 1) (at least 1 document when > 0 and "
     "there are 2 or more)"},
    {"shard_tokens", OPT_INT64, offsetof(PrepArgs, shard_tokens), 0, 1, (double)INT64_MAX, NULL,
     NULL, "at most this many tokens per shard"},
    {"zstd", OPT_BOOL, offsetof(PrepArgs, zstd), 0, 0, 0, NULL, NULL,
     "write zstd-compressed shards (.bin.zst); a bare --zstd means 1"},
    {"text_field", OPT_STRING, offsetof(PrepArgs, text_field), 0, 0, 0, NULL, NULL,
     "jsonl field holding the text"},
    {"threads", OPT_INT, offsetof(PrepArgs, threads), 0, 0, MAX_THREADS, NULL, NULL,
     "tokenizer threads; 0: the cores not busy with other work"},
    {"progress", OPT_INDEX, offsetof(PrepArgs, progress), 0, 0, 0, "0|1|auto", NULL,
     "progress bar on stderr (auto: when it is a terminal)"},
};

static const OptionTable PREP_TABLE = {
    .command = "prep",
    .args = "INPUTS...",
    .min_args = 1,
    .max_args = INT32_MAX,
    .about = "Tokenizes documents into llm.c token shards: DIR/NAME_train_000000.bin, ... and\n"
             "DIR/NAME_val_000000.bin. Each text file is one document; each line of a .jsonl or\n"
             ".jsonl.zst file is one JSON object holding a document. An end-of-text token is\n"
             "written before every document. The last documents form the validation split.\n"
             "Shards hold uint16 tokens when the vocabulary fits, uint32 otherwise. The output\n"
             "is identical for every --threads.",
    .options = PREP_OPTIONS,
    .count = sizeof PREP_OPTIONS / sizeof PREP_OPTIONS[0],
};

// Fill `a` from argv (the arguments after "prep"); false if --help was asked for.
static bool parse_args(int argc, char **argv, PrepArgs *a) {
    *a = (PrepArgs){.tokenizer = "",
                    .out = "",
                    .name = "",
                    .val_fraction = 0.01,
                    .shard_tokens = 100000000,
                    .text_field = "text",
                    .progress = PROGRESS_AUTO};
    a->inputs = xmalloc((size_t)(argc > 0 ? argc : 1) * sizeof(char *));
    a->ninputs = options_parse(&PREP_TABLE, a, argc, argv, a->inputs);
    if (a->ninputs < 0) return false;
    check(a->tokenizer[0] != '\0',
          "prep: --tokenizer=byte|FILE is required (see bolt prep --help)");
    check(a->out[0] != '\0', "prep: --out=DIR is required");
    check(a->text_field[0] != '\0', "prep: --text_field must not be empty");
    check(!strchr(a->name, '/'), "prep: --name must be a file name without '/'");
    if (a->threads == 0)
        a->threads = default_threads() < MAX_THREADS ? default_threads() : MAX_THREADS;
    return true;
}

// "dir/corpus.txt" or "dir/corpus.jsonl.zst" -> "corpus" (written into out).
static void default_name(const char *path, char *out, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, cap, "%s", base);
    size_t n = strlen(out);
    if (n > 4 && strcmp(out + n - 4, ".zst") == 0) out[n - 4] = '\0';
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = '\0';
    if (out[0] == '\0') snprintf(out, cap, "data");
}

// ---------------------------------------------------------------------------------------
// Batches of documents

enum { SLOT_FREE, SLOT_READ, SLOT_BUSY, SLOT_DONE };

// One document of a batch: its raw bytes end at text_end and its ids at ids_end (each
// starts where the previous document's end); the input it came from and its line there
// (0: a whole text file).
typedef struct DocRef {
    size_t text_end, ids_end;
    DocOrigin origin;
} DocRef;

// Documents read from the inputs (raw jsonl lines or whole text files, back to back) and,
// once encoded, their token ids (EOT first in each).
typedef struct Batch {
    int64_t seq; // position in the stream of batches
    int state;   // SLOT_*, under the pipeline's lock
    char *text;
    size_t ntext, captext;
    DocRef *docs; // [BATCH_DOCS]
    int ndocs;
    int64_t in_bytes;   // input file bytes this batch accounts for (progress)
    int64_t text_bytes; // bytes of document text (after JSON decoding)
    uint32_t *ids;
    size_t nids, capids;
} Batch;

static void batch_clear(Batch *b) {
    b->ntext = 0;
    b->ndocs = 0;
    b->in_bytes = 0;
    b->text_bytes = 0;
    b->nids = 0;
    if (!b->docs) b->docs = xmalloc(BATCH_DOCS * sizeof(DocRef));
}

static void batch_free(Batch *b) {
    free(b->text);
    free(b->docs);
    free(b->ids);
}

// The text appended since the last document is one more document (reader_fill keeps
// ndocs < BATCH_DOCS before each call).
static void batch_end_doc(Batch *b, DocOrigin origin) {
    b->docs[b->ndocs++] = (DocRef){.text_end = b->ntext, .origin = origin};
}

// Fill b with the next documents; false when the inputs are exhausted.
static bool reader_fill(DocReader *r, Batch *b) {
    batch_clear(b);
    DocOrigin origin;
    while (b->ntext < BATCH_BYTES && b->ndocs < BATCH_DOCS &&
           doc_reader_next(r, &b->text, &b->ntext, &b->captext, &origin))
        batch_end_doc(b, origin);
    b->in_bytes = doc_reader_take_input_bytes(r);
    return b->ndocs > 0 || b->in_bytes > 0;
}

static void push_id(Batch *b, uint32_t id) {
    if (b->nids == b->capids) {
        b->capids = b->capids ? 2 * b->capids : 1 << 16;
        b->ids = xrealloc(b->ids, b->capids * sizeof(uint32_t));
    }
    b->ids[b->nids++] = id;
}

// Parse the jsonl documents of a batch (dying on a bad line) and, when encoding, tokenize
// every document (EOT, then its ids) and add the ids to the worker's `counts`. Runs on a
// worker thread; touches only the batch and that worker's counts.
static void encode_batch(const PrepArgs *a, const Tokenizer *tok, Batch *b, bool encode,
                         uint64_t *counts) {
    b->nids = 0;
    b->text_bytes = 0;
    for (int d = 0; d < b->ndocs; d++) {
        size_t start = d > 0 ? b->docs[d - 1].text_end : 0;
        DocOrigin origin = b->docs[d].origin;
        // A counting pass over text files appends no bytes: b->text may still be NULL.
        const char *raw = b->text ? b->text + start : "";
        DocText doc = doc_text(raw, b->docs[d].text_end - start, a->inputs[origin.file],
                               origin.line, a->text_field);
        b->text_bytes += (int64_t)doc.len;
        if (encode) {
            push_id(b, (uint32_t)tok->eot);
            tokenizer_encode(tok, doc.text, doc.len, &b->ids, &b->nids, &b->capids);
        }
        b->docs[d].ids_end = b->nids;
        doc_text_free(&doc);
    }
    if (!encode) return;
    uint32_t vocab = (uint32_t)tok->vocab_size;
    for (size_t i = 0; i < b->nids; i++) {
        if (b->ids[i] >= vocab)
            die("prep: the tokenizer produced id %u, outside its vocabulary of %u", b->ids[i],
                vocab);
        counts[b->ids[i]]++;
    }
}

// ---------------------------------------------------------------------------------------
// The consumer: shards, counts and progress, fed batches in order

typedef struct Prep {
    const PrepArgs *args;
    const char *name;
    Tokenizer tok;
    bool force_wide;       // vocab > 65536: uint32 shards for every file, never a mix
    bool encode;           // the pass: false scan, true encode
    int64_t ndocs, ntrain; // documents in all (counted by the scan); in the train split
    int64_t doc;           // documents written so far
    int split;             // 0 train, 1 val
    int shard_index;       // next shard number of the split
    uint32_t *buf;         // tokens of the shard being filled
    int64_t nbuf, capbuf;
    int64_t text_bytes;
    int64_t split_tokens[2];
    int files;
    uint64_t *counts; // [threads][vocab] occurrences of each id, counted per worker
    // progress of the current pass
    bool show_progress;
    double pass_start, last_draw;
    int64_t total_bytes, done_bytes, pass_docs, pass_tokens;
} Prep;

static const char *split_names[2] = {"train", "val"};

// 1234567 -> "1.23M" (into out).
static void human_count(double v, char *out, size_t cap) {
    if (v >= 1e9)
        snprintf(out, cap, "%.2fB", v / 1e9);
    else if (v >= 1e6)
        snprintf(out, cap, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(out, cap, "%.1fk", v / 1e3);
    else
        snprintf(out, cap, "%.0f", v);
}

// Redraw the progress line (at most ~4 times a second unless `now`).
static void progress_draw(Prep *p, bool now) {
    double t = now_seconds();
    if (!p->show_progress || (!now && t - p->last_draw < 0.25)) return;
    p->last_draw = t;
    double elapsed = t - p->pass_start;
    double rate = elapsed > 0 ? (double)p->done_bytes / elapsed : 0;
    double left = rate > 0 ? (double)(p->total_bytes - p->done_bytes) / rate : 0;
    if (left < 0) left = 0;
    char docs[32], tokens[48] = "";
    human_count((double)p->pass_docs, docs, sizeof docs);
    if (p->encode) {
        char n[32];
        human_count((double)p->pass_tokens, n, sizeof n);
        snprintf(tokens, sizeof tokens, "  %s tokens", n);
    }
    double pct = p->total_bytes > 0 ? 100.0 * (double)p->done_bytes / (double)p->total_bytes : 100;
    fprintf(stderr, "\rprep %-6s %.1f/%.1f MB %3.0f%%  %s docs%s  %.1f MB/s  ETA %d:%02d\033[K",
            p->encode ? "encode" : "scan", (double)p->done_bytes / 1e6,
            (double)p->total_bytes / 1e6, pct, docs, tokens, rate / 1e6, (int)(left / 60),
            (int)fmod(left, 60));
    fflush(stderr);
}

// Write the buffered tokens as the split's next shard.
static void flush_shard(Prep *p) {
    if (p->nbuf == 0) return;
    char file[1200], path[4096];
    snprintf(file, sizeof file, "%s_%s_%06d.bin%s", p->name, split_names[p->split], p->shard_index,
             p->args->zstd ? ".zst" : "");
    path_join(path, sizeof path, p->args->out, file);
    shard_write(path, p->buf, p->nbuf, p->force_wide, p->args->zstd);
    if (p->show_progress) fputs("\r\033[K", stderr);
    printf("prep: wrote %s (%lld tokens)\n", path, (long long)p->nbuf);
    if (p->show_progress) fflush(stdout);
    p->split_tokens[p->split] += p->nbuf;
    p->shard_index++;
    p->files++;
    p->nbuf = 0;
}

// Append tokens to the current split, starting a new shard whenever one is full.
static void push_tokens(Prep *p, const uint32_t *ids, size_t n) {
    for (size_t i = 0; i < n;) {
        if (p->nbuf == p->args->shard_tokens) flush_shard(p);
        if (p->nbuf == p->capbuf) {
            int64_t cap = p->capbuf ? 2 * p->capbuf : 1 << 16;
            if (cap > p->args->shard_tokens) cap = p->args->shard_tokens;
            p->buf = xrealloc(p->buf, (size_t)cap * sizeof(uint32_t));
            p->capbuf = cap;
        }
        int64_t room = p->capbuf - p->nbuf;
        int64_t m = (int64_t)(n - i) < room ? (int64_t)(n - i) : room;
        memcpy(p->buf + p->nbuf, ids + i, (size_t)m * sizeof(uint32_t));
        p->nbuf += m;
        i += (size_t)m;
    }
}

// Take the next batch in order: count it (scan), or append its documents to the shards,
// switching to the val split at the first validation document (encode).
static void consume_batch(Prep *p, const Batch *b) {
    if (p->encode) {
        for (int d = 0; d < b->ndocs; d++) {
            if (p->doc == p->ntrain && p->split == 0) {
                flush_shard(p);
                p->split = 1;
                p->shard_index = 0;
            }
            size_t start = d > 0 ? b->docs[d - 1].ids_end : 0;
            push_tokens(p, b->ids + start, b->docs[d].ids_end - start);
            p->doc++;
        }
        p->text_bytes += b->text_bytes;
        p->pass_tokens += (int64_t)b->nids;
    } else {
        p->ndocs += b->ndocs;
    }
    p->pass_docs += b->ndocs;
    p->done_bytes += b->in_bytes;
    progress_draw(p, false);
}

// ---------------------------------------------------------------------------------------
// The pipeline: reader thread -> worker threads -> consumer (the calling thread)

typedef struct Pipeline {
    Prep *prep;
    DocReader *reader;
    Batch *slots; // batch seq lives in slots[seq % nslots]
    int nslots;
    pthread_mutex_t mu;
    pthread_cond_t changed; // broadcast on every state change
    int64_t nread;          // batches the reader has filled
    int64_t ntaken;         // batches workers have taken
    bool read_all;          // the reader is done: nread is the total
} Pipeline;

static void *reader_thread(void *arg) {
    Pipeline *pl = arg;
    for (int64_t seq = 0;; seq++) {
        Batch *b = &pl->slots[seq % pl->nslots];
        pthread_mutex_lock(&pl->mu);
        while (b->state != SLOT_FREE) pthread_cond_wait(&pl->changed, &pl->mu);
        pthread_mutex_unlock(&pl->mu);
        bool more = reader_fill(pl->reader, b);
        pthread_mutex_lock(&pl->mu);
        if (more) {
            b->seq = seq;
            b->state = SLOT_READ;
            pl->nread++;
        } else {
            pl->read_all = true;
        }
        pthread_cond_broadcast(&pl->changed);
        pthread_mutex_unlock(&pl->mu);
        if (!more) return NULL;
    }
}

// A worker thread and the row of token counts it owns.
typedef struct Worker {
    Pipeline *pl;
    uint64_t *counts;
    pthread_t id;
} Worker;

static void *worker_thread(void *arg) {
    Worker *w = arg;
    Pipeline *pl = w->pl;
    for (;;) {
        pthread_mutex_lock(&pl->mu);
        while (pl->ntaken == pl->nread && !pl->read_all) pthread_cond_wait(&pl->changed, &pl->mu);
        if (pl->ntaken == pl->nread) {
            pthread_mutex_unlock(&pl->mu);
            return NULL;
        }
        Batch *b = &pl->slots[pl->ntaken % pl->nslots];
        pl->ntaken++;
        b->state = SLOT_BUSY;
        pthread_mutex_unlock(&pl->mu);
        encode_batch(pl->prep->args, &pl->prep->tok, b, pl->prep->encode, w->counts);
        pthread_mutex_lock(&pl->mu);
        b->state = SLOT_DONE;
        pthread_cond_broadcast(&pl->changed);
        pthread_mutex_unlock(&pl->mu);
    }
}

// One pass over all inputs (p->encode says which).
static void run_pass(Prep *p) {
    const PrepArgs *a = p->args;
    DocReader *reader = doc_reader_open(a->inputs, a->ninputs, p->encode);
    p->pass_start = now_seconds();
    p->last_draw = p->pass_start;
    p->done_bytes = p->pass_docs = p->pass_tokens = 0;
    if (a->threads == 1) {
        Batch b = {0};
        while (reader_fill(reader, &b)) {
            encode_batch(a, &p->tok, &b, p->encode, p->counts);
            consume_batch(p, &b);
        }
        batch_free(&b);
    } else {
        Pipeline pl = {.prep = p, .reader = reader, .nslots = 2 * a->threads + 2};
        pl.slots = xcalloc((size_t)pl.nslots, sizeof(Batch));
        pthread_mutex_init(&pl.mu, NULL);
        pthread_cond_init(&pl.changed, NULL);
        pthread_t reader_id;
        check(pthread_create(&reader_id, NULL, reader_thread, &pl) == 0,
              "prep: cannot start the reader thread");
        Worker *workers = xmalloc((size_t)a->threads * sizeof(Worker));
        for (int i = 0; i < a->threads; i++) {
            // The scan pass counts nothing (p->counts is NULL until the encode pass).
            uint64_t *counts = p->counts ? p->counts + (size_t)i * p->tok.vocab_size : NULL;
            workers[i] = (Worker){.pl = &pl, .counts = counts};
            check(pthread_create(&workers[i].id, NULL, worker_thread, &workers[i]) == 0,
                  "prep: cannot start worker thread %d of %d", i + 1, a->threads);
        }
        for (int64_t seq = 0;; seq++) {
            Batch *b = &pl.slots[seq % pl.nslots];
            pthread_mutex_lock(&pl.mu);
            while (!(b->state == SLOT_DONE && b->seq == seq) && !(pl.read_all && seq == pl.nread))
                pthread_cond_wait(&pl.changed, &pl.mu);
            bool finished = !(b->state == SLOT_DONE && b->seq == seq);
            pthread_mutex_unlock(&pl.mu);
            if (finished) break;
            consume_batch(p, b);
            pthread_mutex_lock(&pl.mu);
            b->state = SLOT_FREE;
            pthread_cond_broadcast(&pl.changed);
            pthread_mutex_unlock(&pl.mu);
        }
        pthread_join(reader_id, NULL);
        for (int i = 0; i < a->threads; i++) pthread_join(workers[i].id, NULL);
        for (int i = 0; i < pl.nslots; i++) batch_free(&pl.slots[i]);
        free(pl.slots);
        free(workers);
        pthread_mutex_destroy(&pl.mu);
        pthread_cond_destroy(&pl.changed);
    }
    doc_reader_close(reader);
    if (p->show_progress) {
        progress_draw(p, true);
        fputc('\n', stderr);
    }
}

// -sum p log p over the token frequencies, in nats; *distinct gets the ids that occur.
static double unigram_entropy(const uint64_t *counts, int vocab, int64_t total, int *distinct) {
    double h = 0;
    *distinct = 0;
    for (int i = 0; i < vocab; i++) {
        if (counts[i] == 0) continue;
        double q = (double)counts[i] / (double)total;
        h -= q * log(q);
        (*distinct)++;
    }
    return h;
}

int prep_main(int argc, char **argv) {
    PrepArgs a;
    if (!parse_args(argc, argv, &a)) {
        free(a.inputs);
        return 0;
    }
    double t0 = now_seconds();
    char name[1024];
    if (a.name[0])
        snprintf(name, sizeof name, "%s", a.name);
    else
        default_name(a.inputs[0], name, sizeof name);

    Prep p = {.args = &a, .name = name};
    // Every input must be a regular file we can read before anything else happens; the
    // scan pass then reads all of them (a .zst one to its end) before any shard is written.
    for (int i = 0; i < a.ninputs; i++) p.total_bytes += doc_input_check(a.inputs[i]);
    p.show_progress =
        a.progress == PROGRESS_ON || (a.progress == PROGRESS_AUTO && isatty(STDERR_FILENO));
    p.tok = tokenizer_load(a.tokenizer);
    p.force_wide = p.tok.vocab_size > 65536;

    remove_temp_files_on_signal(); // an interrupt removes the shard being written

    double t_scan = now_seconds();
    p.encode = false;
    run_pass(&p);
    t_scan = now_seconds() - t_scan;
    check(p.ndocs > 0, "prep: the inputs hold no documents");
    int64_t nval = 0;
    if (a.val_fraction > 0 && p.ndocs >= 2) {
        nval = (int64_t)(a.val_fraction * (double)p.ndocs + 0.5);
        if (nval < 1) nval = 1;
        if (nval > p.ndocs - 1) nval = p.ndocs - 1;
    }
    p.ntrain = p.ndocs - nval;

    make_dirs(a.out);
    p.counts = xcalloc((size_t)a.threads * (size_t)p.tok.vocab_size, sizeof(uint64_t));
    double t_encode = now_seconds();
    p.encode = true;
    run_pass(&p);
    flush_shard(&p);
    t_encode = now_seconds() - t_encode;
    check(p.doc == p.ndocs, "prep: the inputs changed during the run (%lld documents, then %lld)",
          (long long)p.ndocs, (long long)p.doc);

    double seconds = now_seconds() - t0;
    int64_t tokens = p.split_tokens[0] + p.split_tokens[1];
    for (int i = 1; i < a.threads; i++) // the workers' counts, summed into row 0
        for (int k = 0; k < p.tok.vocab_size; k++)
            p.counts[k] += p.counts[(size_t)i * p.tok.vocab_size + k];
    int distinct;
    double entropy = unigram_entropy(p.counts, p.tok.vocab_size, tokens, &distinct);
    printf("prep: %lld documents (%lld train, %lld val), %lld bytes of text from %lld input "
           "bytes -> %lld tokens (train %lld, val %lld)\n",
           (long long)p.ndocs, (long long)p.ntrain, (long long)nval, (long long)p.text_bytes,
           (long long)p.total_bytes, (long long)tokens, (long long)p.split_tokens[0],
           (long long)p.split_tokens[1]);
    double mbps = seconds > 0 ? 1e-6 / seconds : 0;
    printf("prep: %d files in %s (%s tokens%s), %.2f s (scan %.2f s, encode %.2f s) with %d "
           "thread%s: %.1f MB/s of input, %.1f MB/s of text\n",
           p.files, a.out, p.force_wide ? "uint32" : "uint16", a.zstd ? ", zstd" : "", seconds,
           t_scan, t_encode, a.threads, a.threads == 1 ? "" : "s", (double)p.total_bytes * mbps,
           (double)p.text_bytes * mbps);
    printf("prep: unigram entropy %.4f nats/token (%d distinct ids of vocab %d)\n", entropy,
           distinct, p.tok.vocab_size);
    if (a.val_fraction > 0 && nval == 0)
        printf("prep: note: a single document, so no validation split was written\n");
    tokenizer_free(&p.tok);
    free(p.counts);
    free(p.buf);
    free(a.inputs);
    return 0;
}
