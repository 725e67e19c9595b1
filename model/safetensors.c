// model/safetensors.c: the safetensors reader (single file or sharded, every size,
// offset and shape checked before use) and writer (F32 or BF16, atomic).
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/util.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads and writes little-endian data in place"
#endif

enum { HEADER_CAP = 100 << 20, CONVERT_CHUNK = 1 << 20 };
#define MAX_JSON_INT 9007199254740992.0 // 2^53: above it doubles skip integers

// One open file of a (possibly sharded) checkpoint.
typedef struct StFile {
    char *path;
    int fd;
    int64_t size;
    int64_t data_start; // 8 + header length
} StFile;

struct SafeTensors {
    StFile *files;
    int n_files;
    StTensor *tensors; // sorted by name once all files are read
    int n_tensors;
    char **meta_keys, **meta_values;
    int n_meta;
};

static const char *dtype_names[] = {"F32", "F16", "BF16"};

const char *st_dtype_name(StDtype d) {
    return dtype_names[d];
}
int st_dtype_size(StDtype d) {
    return d == ST_F32 ? 4 : 2;
}

uint16_t st_f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u); // round to nearest, ties to even
    return (uint16_t)(u >> 16);
}

float st_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        // Zero or subnormal: mant * 2^-24, exact in fp32.
        float x = (float)mant * (1.0f / 16777216.0f);
        memcpy(&u, &x, 4);
        u |= sign;
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13); // inf / NaN
    } else {
        u = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float x;
    memcpy(&x, &u, 4);
    return x;
}

// Read exactly `bytes` at byte offset `off` of an open file, or die naming the tensor.
static void read_at(const StFile *f, void *dst, int64_t bytes, int64_t off, const char *what) {
    char *p = dst;
    while (bytes > 0) {
        size_t want = bytes > (1 << 30) ? (size_t)1 << 30 : (size_t)bytes;
        ssize_t got = pread(f->fd, p, want, (off_t)off);
        check(got >= 0, "%s: read of %s failed (%s)", f->path, what, strerror(errno));
        check(got > 0, "%s: truncated while reading %s", f->path, what);
        p += got;
        off += got;
        bytes -= got;
    }
}

// A JSON number that is a non-negative integer a double holds exactly.
static bool json_uint(const cJSON *item, int64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= MAX_JSON_INT) || v != (double)(int64_t)v) return false;
    *out = (int64_t)v;
    return true;
}

static int compare_by_begin(const void *a, const void *b) {
    const StTensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int compare_by_name(const void *a, const void *b) {
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

// Parse one header entry into t (offset still relative to the data start).
static void parse_entry(const char *path, const cJSON *e, StTensor *t) {
    const char *name = e->string;
    check(cJSON_IsObject(e), "%s: tensor '%s': entry is not an object", path, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    check(cJSON_IsString(dtype), "%s: tensor '%s': missing or non-string dtype", path, name);
    int d = -1;
    for (int i = 0; i < 3; i++) {
        if (strcmp(dtype->valuestring, dtype_names[i]) == 0) d = i;
    }
    check(d >= 0, "%s: tensor '%s': unsupported dtype '%s' (supported: F32, F16, BF16)", path, name,
          dtype->valuestring);
    t->dtype = (StDtype)d;
    check(cJSON_IsArray(shape), "%s: tensor '%s': shape is not an array", path, name);
    int ndim = cJSON_GetArraySize(shape);
    check(ndim <= ST_MAX_DIMS, "%s: tensor '%s': %d dimensions (at most %d)", path, name, ndim,
          ST_MAX_DIMS);
    t->ndim = ndim;
    t->numel = 1;
    int i = 0;
    for (const cJSON *dim = shape->child; dim; dim = dim->next, i++) {
        check(json_uint(dim, &t->shape[i]),
              "%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, i);
        check(!__builtin_mul_overflow(t->numel, t->shape[i], &t->numel),
              "%s: tensor '%s': shape too large", path, name);
    }
    int64_t size = st_dtype_size(t->dtype);
    check(!__builtin_mul_overflow(t->numel, size, &t->nbytes), "%s: tensor '%s': shape too large",
          path, name);
    int64_t begin = 0, end = 0;
    check(cJSON_IsArray(offs) && cJSON_GetArraySize(offs) == 2 &&
              json_uint(cJSON_GetArrayItem(offs, 0), &begin) &&
              json_uint(cJSON_GetArrayItem(offs, 1), &end),
          "%s: tensor '%s': data_offsets is not [begin, end] of non-negative integers", path, name);
    check(end >= begin, "%s: tensor '%s': data_offsets end %lld < begin %lld", path, name,
          (long long)end, (long long)begin);
    check(end - begin == t->nbytes,
          "%s: tensor '%s': data_offsets span %lld bytes but shape x %s needs %lld", path, name,
          (long long)(end - begin), dtype_names[d], (long long)t->nbytes);
    t->offset = begin;
}

// Check that the tensors t[0..n) (offsets relative to the data start) exactly tile a data
// section of data_size bytes: sorted, contiguous, no overlap, no gap, no tail.
static void check_coverage(const char *path, StTensor *t, int n, int64_t data_size) {
    qsort(t, (size_t)n, sizeof *t, compare_by_begin);
    int64_t pos = 0;
    for (int i = 0; i < n; i++) {
        check(t[i].offset >= pos, "%s: tensor '%s': data_offsets [%lld, %lld) overlap '%s'", path,
              t[i].name, (long long)t[i].offset, (long long)(t[i].offset + t[i].nbytes),
              i > 0 ? t[i - 1].name : ""); // check() evaluates its arguments even when ok
        check(t[i].offset == pos, "%s: tensor '%s': gap of %lld bytes before its data", path,
              t[i].name, (long long)(t[i].offset - pos));
        pos += t[i].nbytes;
    }
    check(pos == data_size,
          "%s: tensor data covers %lld bytes but the data section has %lld (truncated or "
          "trailing bytes)",
          path, (long long)pos, (long long)data_size);
}

// Open one .safetensors file, validate it, and append its tensors and metadata to st.
static void open_file(SafeTensors *st, const char *path) {
    int fd = open(path, O_RDONLY);
    check(fd >= 0, "%s: cannot open (%s)", path, strerror(errno));
    struct stat sb;
    check(fstat(fd, &sb) == 0, "%s: cannot stat (%s)", path, strerror(errno));
    st->files = xrealloc(st->files, (size_t)(st->n_files + 1) * sizeof *st->files);
    int index = st->n_files++;
    StFile *f = &st->files[index];
    f->path = xstrdup(path);
    f->fd = fd;
    f->size = (int64_t)sb.st_size;
    check(f->size >= 8, "%s: file of %lld bytes is too short for a safetensors header", path,
          (long long)f->size);
    unsigned char len8[8];
    read_at(f, len8, 8, 0, "the header length");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | len8[i];
    check(hlen <= (uint64_t)HEADER_CAP, "%s: header length %llu exceeds the %d MiB cap", path,
          (unsigned long long)hlen, HEADER_CAP >> 20);
    check(hlen <= (uint64_t)(f->size - 8),
          "%s: header length %llu runs past the end of the file (%lld bytes)", path,
          (unsigned long long)hlen, (long long)f->size);
    f->data_start = 8 + (int64_t)hlen;

    char *text = xmalloc(hlen + 1);
    read_at(f, text, (int64_t)hlen, 8, "the header");
    text[hlen] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, hlen, &end, false);
    check(root != NULL, "%s: header is not valid JSON (error near byte %ld)", path,
          end ? (long)(end - text) : -1L);
    for (const char *p = end; p < text + hlen; p++) {
        check(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r',
              "%s: unexpected bytes after the header JSON (byte %ld)", path, (long)(p - text));
    }
    check(cJSON_IsObject(root), "%s: header is not a JSON object", path);

    int first = st->n_tensors, n = cJSON_GetArraySize(root);
    st->tensors = xrealloc(st->tensors, (size_t)(st->n_tensors + n) * sizeof *st->tensors);
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            check(cJSON_IsObject(e), "%s: __metadata__ is not an object", path);
            for (const cJSON *kv = e->child; kv; kv = kv->next) {
                check(cJSON_IsString(kv), "%s: __metadata__ '%s' is not a string", path,
                      kv->string);
                st->meta_keys = xrealloc(st->meta_keys, (size_t)(st->n_meta + 1) * sizeof(char *));
                st->meta_values =
                    xrealloc(st->meta_values, (size_t)(st->n_meta + 1) * sizeof(char *));
                st->meta_keys[st->n_meta] = xstrdup(kv->string);
                st->meta_values[st->n_meta++] = xstrdup(kv->valuestring);
            }
            continue;
        }
        StTensor *t = &st->tensors[st->n_tensors];
        memset(t, 0, sizeof *t);
        parse_entry(path, e, t);
        t->name = xstrdup(e->string);
        t->file = index;
        st->n_tensors++;
    }
    cJSON_Delete(root);
    free(text);
    check_coverage(path, st->tensors + first, st->n_tensors - first, f->size - f->data_start);
    for (int i = first; i < st->n_tensors; i++) st->tensors[i].offset += f->data_start;
}

// Sort all tensors by name and reject a name that appears twice.
static void sort_and_check_names(SafeTensors *st) {
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, compare_by_name);
    for (int i = 1; i < st->n_tensors; i++) {
        const StTensor *a = &st->tensors[i - 1], *b = &st->tensors[i];
        if (strcmp(a->name, b->name) != 0) continue;
        if (a->file == b->file)
            die("%s: tensor '%s' appears twice", st->files[a->file].path, a->name);
        die("%s: tensor '%s' appears in two shards (also in %s)", st->files[b->file].path, b->name,
            st->files[a->file].path);
    }
}

// Open a sharded checkpoint: the index's weight_map names each tensor's shard file (in
// the index's directory); every shard is opened and must hold exactly its mapped tensors.
static void open_index(SafeTensors *st, const char *index_path) {
    char *text = read_file(index_path, NULL);
    cJSON *root = cJSON_Parse(text);
    check(root != NULL && cJSON_IsObject(root), "%s: not a JSON object", index_path);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    check(cJSON_IsObject(map), "%s: missing \"weight_map\" object", index_path);
    char dir[4096];
    const char *slash = strrchr(index_path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - index_path) : 1,
             slash ? index_path : ".");
    // Open each distinct shard once, in order of first mention.
    char **shards = NULL;
    int n_shards = 0;
    for (const cJSON *e = map->child; e; e = e->next) {
        check(cJSON_IsString(e), "%s: weight_map['%s'] is not a string", index_path, e->string);
        const char *file = e->valuestring;
        check(file[0] && !strchr(file, '/') && strcmp(file, "..") != 0 && strcmp(file, ".") != 0,
              "%s: weight_map['%s'] = '%s' is not a plain file name", index_path, e->string, file);
        bool seen = false;
        for (int i = 0; i < n_shards; i++) seen = seen || strcmp(shards[i], file) == 0;
        if (seen) continue;
        shards = xrealloc(shards, (size_t)(n_shards + 1) * sizeof(char *));
        shards[n_shards++] = (char *)file;
        char path[8192];
        check(snprintf(path, sizeof path, "%s/%s", dir, file) < (int)sizeof path,
              "%s: shard path too long", index_path);
        open_file(st, path);
    }
    check(n_shards > 0, "%s: weight_map is empty", index_path);
    sort_and_check_names(st);
    // Every mapped tensor is in its shard, once; every shard tensor is mapped.
    bool *listed = xcalloc((size_t)st->n_tensors + 1, sizeof(bool));
    for (const cJSON *e = map->child; e; e = e->next) {
        const StTensor *t = st_find(st, e->string);
        check(t != NULL, "%s: tensor '%s' is mapped to %s, which does not contain it", index_path,
              e->string, e->valuestring);
        const char *in = strrchr(st->files[t->file].path, '/') + 1;
        check(strcmp(in, e->valuestring) == 0, "%s: tensor '%s' is mapped to %s but is in %s",
              index_path, e->string, e->valuestring, in);
        check(!listed[t - st->tensors], "%s: tensor '%s' is listed twice", index_path, e->string);
        listed[t - st->tensors] = true;
    }
    for (int i = 0; i < st->n_tensors; i++) {
        check(listed[i], "%s: tensor '%s' in %s is not listed in the index", index_path,
              st->tensors[i].name, st->files[st->tensors[i].file].path);
    }
    free(listed);
    free(shards);
    cJSON_Delete(root);
    free(text);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

SafeTensors *st_open(const char *path) {
    SafeTensors *st = xcalloc(1, sizeof *st);
    struct stat sb;
    check(stat(path, &sb) == 0, "%s: cannot open (%s)", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        char index[8192], single[8192];
        snprintf(index, sizeof index, "%s/model.safetensors.index.json", path);
        snprintf(single, sizeof single, "%s/model.safetensors", path);
        if (file_size(index) >= 0) {
            open_index(st, index);
        } else {
            check(file_size(single) >= 0,
                  "%s: no model.safetensors or model.safetensors.index.json in this directory",
                  path);
            open_file(st, single);
            sort_and_check_names(st);
        }
    } else if (ends_with(path, ".index.json")) {
        open_index(st, path);
    } else {
        open_file(st, path);
        sort_and_check_names(st);
    }
    return st;
}

void st_close(SafeTensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n_files; i++) {
        close(st->files[i].fd);
        free(st->files[i].path);
    }
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->files);
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_values);
    free(st);
}

int st_count(const SafeTensors *st) {
    return st->n_tensors;
}

const StTensor *st_tensor(const SafeTensors *st, int i) {
    check(i >= 0 && i < st->n_tensors, "st_tensor: index %d out of range [0, %d)", i,
          st->n_tensors);
    return &st->tensors[i];
}

const StTensor *st_find(const SafeTensors *st, const char *name) {
    int lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

void st_read_f32(const SafeTensors *st, const StTensor *t, float *dst) {
    const StFile *f = &st->files[t->file];
    char what[256];
    snprintf(what, sizeof what, "tensor '%s'", t->name);
    if (t->dtype == ST_F32) {
        read_at(f, dst, t->nbytes, t->offset, what);
        return;
    }
    int64_t chunk = t->numel < CONVERT_CHUNK ? t->numel : CONVERT_CHUNK;
    uint16_t *buf = xmalloc((size_t)(chunk ? chunk : 1) * sizeof(uint16_t));
    for (int64_t i = 0; i < t->numel; i += chunk) {
        int64_t n = t->numel - i < chunk ? t->numel - i : chunk;
        read_at(f, buf, n * 2, t->offset + i * 2, what);
        if (t->dtype == ST_BF16) {
            for (int64_t j = 0; j < n; j++) dst[i + j] = st_bf16_to_f32(buf[j]);
        } else {
            for (int64_t j = 0; j < n; j++) dst[i + j] = st_f16_to_f32(buf[j]);
        }
    }
    free(buf);
}

const char *st_metadata(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++) {
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    }
    return NULL;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void st_write(const char *path, const StWriteTensor *tensors, int n, const char *const *meta_keys,
              const char *const *meta_values, int n_meta) {
    // Header: metadata first, then the tensors in table order with contiguous offsets.
    cJSON *root = cJSON_CreateObject();
    if (n_meta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < n_meta; i++)
            cJSON_AddStringToObject(meta, meta_keys[i], meta_values[i]);
    }
    const char **names = xmalloc((size_t)(n ? n : 1) * sizeof(char *));
    int64_t pos = 0;
    for (int i = 0; i < n; i++) {
        const StWriteTensor *t = &tensors[i];
        check(t->dtype == ST_F32 || t->dtype == ST_BF16,
              "%s: tensor '%s': can only write F32 or BF16", path, t->name);
        check(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "%s: tensor '%s': bad ndim %d", path, t->name,
              t->ndim);
        check(strcmp(t->name, "__metadata__") != 0, "%s: '__metadata__' is not a tensor name",
              path);
        names[i] = t->name;
        int64_t numel = 1;
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(e, "dtype", dtype_names[t->dtype]);
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++) {
            check(t->shape[d] >= 0, "%s: tensor '%s': negative shape", path, t->name);
            numel *= t->shape[d];
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        }
        int64_t bytes = numel * st_dtype_size(t->dtype);
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)pos));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(pos + bytes)));
        pos += bytes;
    }
    check(pos < (int64_t)1e15, "%s: %lld bytes of tensor data is too much", path, (long long)pos);
    qsort(names, (size_t)n, sizeof(char *), compare_strings);
    for (int i = 1; i < n; i++) {
        check(strcmp(names[i - 1], names[i]) != 0, "%s: tensor '%s' given twice", path, names[i]);
    }
    free(names);
    char *json = cJSON_PrintUnformatted(root);
    check(json != NULL, "%s: cannot format the header", path);
    cJSON_Delete(root);
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;

    AtomicFile af = atomic_open(path);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    xfwrite(len8, 8, af.f, af.tmp_path);
    xfwrite(json, len, af.f, af.tmp_path);
    for (size_t i = len; i < padded; i++) xfwrite(" ", 1, af.f, af.tmp_path);
    free(json);
    uint16_t *buf = xmalloc(CONVERT_CHUNK * sizeof(uint16_t));
    for (int i = 0; i < n; i++) {
        const StWriteTensor *t = &tensors[i];
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
        if (t->dtype == ST_F32) {
            xfwrite(t->data, (size_t)numel * sizeof(float), af.f, af.tmp_path);
            continue;
        }
        for (int64_t j = 0; j < numel; j += CONVERT_CHUNK) {
            int64_t m = numel - j < CONVERT_CHUNK ? numel - j : CONVERT_CHUNK;
            for (int64_t k = 0; k < m; k++) buf[k] = st_f32_to_bf16(t->data[j + k]);
            xfwrite(buf, (size_t)m * sizeof(uint16_t), af.f, af.tmp_path);
        }
    }
    free(buf);
    atomic_commit(&af);
}
