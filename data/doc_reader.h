// data/doc_reader.h: documents from input files, in order, for `bolt prep`. Every text file
// is one document; every non-blank line of a .jsonl or .jsonl.zst file is one document
// (a JSON object holding the text in a string field). A ".zst" input is decompressed while
// streaming, never held whole; a line is cut from a buffer that only grows to the longest
// line. Unreadable, corrupt or truncated input dies naming the file.
//
// Reading and parsing are split on purpose: doc_reader_next hands out a .jsonl line raw
// (cheap, one thread), and doc_text parses it later (reentrant, so prep's worker threads
// parse in parallel).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct DocReader DocReader;

// Where a document came from.
typedef struct DocOrigin {
    int file;     // index into the paths given to doc_reader_open
    int64_t line; // 1-based line of a .jsonl input; 0 for a whole text file
} DocOrigin;

// Check an input before any pass: dies "PATH: input file not found", "PATH: not a regular
// file (a directory)" or "PATH: cannot read the input file (...)"; returns its size.
int64_t doc_input_check(const char *path);

// Read the inputs paths[0..npaths) in order (the array must outlive the reader). Files are
// opened one at a time, as they are reached. load_text=false (a counting pass): a text
// file is still one document but nothing is appended for it; a plain one is only sized (a
// missing one dies "PATH: input file not found"), a .zst one is decompressed to its end
// and discarded, so corrupt or truncated data dies in this pass.
DocReader *doc_reader_open(char *const *paths, int npaths, bool load_text);
// Append the next document's raw bytes (a whole text file, or one .jsonl line without its
// '\n') to (*text)[*len..], growing *text with xrealloc (*len and *cap updated), and say
// where it came from; false when every input is done.
bool doc_reader_next(DocReader *r, char **text, size_t *len, size_t *cap, DocOrigin *origin);
// Input file bytes read since the last call (compressed bytes for a .zst file; the file's
// size for a text file in a counting pass): progress against the inputs' total size.
int64_t doc_reader_take_input_bytes(DocReader *r);
void doc_reader_close(DocReader *r);

// A document's text: raw[0..len) as it is for a text file (line 0), else the string field
// `field` of the JSON object on that .jsonl line. Dies "PATH:LINE: not valid JSON" or
// "PATH:LINE: no string field "FIELD"". Reentrant. Release with doc_text_free.
typedef struct DocText {
    const char *text;
    size_t len;
    struct cJSON *json; // the parsed line that owns text; NULL for a text file
} DocText;
DocText doc_text(const char *raw, size_t len, const char *path, int64_t line, const char *field);
void doc_text_free(DocText *t);
