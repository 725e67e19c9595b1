// train/tensorboard.c: TensorBoard event files, written by hand.
//
// An event file is a sequence of TFRecords, each
//     uint64 length (little-endian), uint32 masked CRC-32C of those 8 bytes,
//     length bytes of data, uint32 masked CRC-32C of the data,
// where the mask is ((crc >> 15) | (crc << 17)) + 0xa282ead8, and each record's data is
// one serialized tensorflow.Event (tensorflow/core/util/event.proto):
//     Event   { double wall_time = 1; int64 step = 2;
//               oneof what { string file_version = 3; Summary summary = 5; } }
//     Summary { repeated Value value = 1; }
//     Value   { string tag = 1; float simple_value = 2; }
// The first event carries file_version "brain.Event:2"; each later one a step's scalars.
//
// Why not protobuf-c: it would need protoc-c to generate C from event.proto and
// summary.proto (which import tensor, resource-handle, types and histogram protos), the
// generated files in the tree and a runtime library, for five fields of three messages.
// In the protobuf wire format those five fields are a key byte each, varint lengths and
// little-endian fixed-width numbers: the encoder below is about fifty lines, and the
// TFRecord framing around it (with CRC-32C) is not part of protobuf anyway.
#include "tensorboard.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/util.h"

// A growing message: the bytes of one protobuf message being encoded.
typedef struct Bytes {
    uint8_t *data;
    size_t n, cap;
} Bytes;

static void put_raw(Bytes *b, const void *p, size_t n) {
    if (n == 0) return;
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n) + 64;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->n, p, n);
    b->n += n;
}

// Base-128 varint, least significant group first.
static void put_varint(Bytes *b, uint64_t v) {
    uint8_t buf[10];
    size_t n = 0;
    do {
        buf[n] = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) buf[n] |= 0x80;
        n++;
    } while (v);
    put_raw(b, buf, n);
}

// Little-endian fixed-width integer of `bytes` bytes.
static void put_le(Bytes *b, uint64_t v, int bytes) {
    uint8_t buf[8];
    for (int i = 0; i < bytes; i++) buf[i] = (uint8_t)(v >> (8 * i));
    put_raw(b, buf, (size_t)bytes);
}

// The key of a field: its number and wire type (0 varint, 1 fixed64, 2 length-delimited,
// 5 fixed32).
static void put_key(Bytes *b, int field, int wire_type) {
    put_varint(b, (uint64_t)(field << 3 | wire_type));
}

// A length-delimited field: a string, or an embedded message's bytes.
static void put_length_delimited(Bytes *b, int field, const void *p, size_t n) {
    put_key(b, field, 2);
    put_varint(b, n);
    put_raw(b, p, n);
}

static void put_double(Bytes *b, int field, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_key(b, field, 1);
    put_le(b, bits, 8);
}

static void put_float(Bytes *b, int field, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    put_key(b, field, 5);
    put_le(b, bits, 4);
}

uint32_t tb_crc32c(const void *data, size_t n) {
    const uint8_t *p = data;
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

uint32_t tb_mask_crc(uint32_t crc) {
    return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

// Seconds since the epoch, as TensorFlow's wall_time.
static double wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// One TFRecord holding an Event's bytes; flushed at once.
static void write_record(TbWriter *w, const Bytes *event) {
    Bytes rec = {0};
    put_le(&rec, event->n, 8);
    put_le(&rec, tb_mask_crc(tb_crc32c(rec.data, 8)), 4);
    put_raw(&rec, event->data, event->n);
    put_le(&rec, tb_mask_crc(tb_crc32c(event->data, event->n)), 4);
    xfwrite(rec.data, rec.n, w->f, w->path);
    check(fflush(w->f) == 0, "%s: cannot write the TensorBoard events", w->path);
    free(rec.data);
}

void tb_open(TbWriter *w, const char *dir) {
    char host[256] = "localhost", name[512];
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    double now = wall_time();
    snprintf(name, sizeof name, "events.out.tfevents.%lld.%s.%d", (long long)now, host,
             (int)getpid());
    path_join(w->path, sizeof w->path, dir, name);
    w->f = xfopen(w->path, "wb");
    Bytes event = {0};
    put_double(&event, 1, now); // step 0 is protobuf's default: left out, as TensorFlow does
    put_length_delimited(&event, 3, "brain.Event:2", strlen("brain.Event:2"));
    write_record(w, &event);
    free(event.data);
}

void tb_write_scalars(TbWriter *w, int64_t step, const TbScalar *scalars, int n) {
    Bytes summary = {0}, value = {0}, event = {0};
    for (int i = 0; i < n; i++) {
        value.n = 0;
        put_length_delimited(&value, 1, scalars[i].tag, strlen(scalars[i].tag));
        put_float(&value, 2, scalars[i].value);
        put_length_delimited(&summary, 1, value.data, value.n);
    }
    put_double(&event, 1, wall_time());
    put_key(&event, 2, 0);
    put_varint(&event, (uint64_t)step);
    put_length_delimited(&event, 5, summary.data, summary.n);
    write_record(w, &event);
    free(summary.data);
    free(value.data);
    free(event.data);
}

void tb_close(TbWriter *w) {
    if (!w->f) return;
    check(fclose(w->f) == 0, "%s: cannot write the TensorBoard events", w->path);
    w->f = NULL;
}
