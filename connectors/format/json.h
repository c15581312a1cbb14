// JSON lines: decoding one JSON object into one row, and encoding rows as
// JSON objects (DESIGN.md §6). Shared by the file connectors and, later, Kafka.
//
// Threading: a decoder or encoder belongs to one task (it keeps scratch
// buffers); make one per subtask. Both are cheap to construct.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/batch.h"
#include "engine/core/schema.h"
#include "engine/core/status.h"
#include "engine/core/time.h"

namespace df::connectors {

// Decodes JSON objects into rows of a fixed schema. Only the schema's fields
// are taken; a missing field or a JSON null is null; extra fields are ignored.
// Conversions: int64 from JSON integers (or a double with no fraction), double
// from any number, bool from true/false, string from JSON strings, timestamp
// from integer milliseconds or an RFC 3339 string. Anything else is a data
// error for the whole record.
//
// Records come from outside (files, Kafka), so decoding is bounded: a record
// longer than max_record_bytes or nesting deeper than max_depth is a data
// error, decided before (size) or while (depth) parsing, never a crash or an
// unbounded allocation.
struct JsonDecodeLimits {
  size_t max_record_bytes = 16u << 20;
  size_t max_depth = 64;  // objects and arrays, the record's own object included
};

class JsonRowDecoder {
 public:
  explicit JsonRowDecoder(SchemaPtr schema, JsonDecodeLimits limits = {});
  ~JsonRowDecoder();
  JsonRowDecoder(const JsonRowDecoder&) = delete;
  JsonRowDecoder& operator=(const JsonRowDecoder&) = delete;

  const SchemaPtr& schema() const { return schema_; }

  // Appends one row decoded from `text` (one JSON object, surrounding
  // whitespace allowed) to `out`, whose schema must be this decoder's. On
  // error nothing is appended and a DataError says why (no location: the
  // caller knows the file and line or the partition and offset).
  Status decode(std::string_view text, BatchBuilder& out);

 private:
  struct Impl;
  SchemaPtr schema_;
  JsonDecodeLimits limits_;
  std::unique_ptr<Impl> impl_;
};

// Encodes rows as JSON objects, fields in schema order: timestamps as RFC 3339
// UTC with milliseconds, doubles in shortest round-trip form (NaN and
// infinities as null), strings escaped, nulls as null. Not thread-safe (it
// remembers each timestamp column's last text): one per sink.
class JsonRowEncoder {
 public:
  explicit JsonRowEncoder(SchemaPtr schema);

  // Appends physical row `row` of `batch` as one object, without a newline.
  void append_row(const Batch& batch, size_t row, std::string& out);
  // Appends every alive row of `batch`, one object per line ("...}\n").
  void append_batch(const Batch& batch, std::string& out);

 private:
  // The most bytes a non-string cell takes: a timestamp (kMaxTimestampChars,
  // with its quotes), an int64 (20) or a double (kMaxDoubleChars).
  static constexpr size_t kMaxScalarChars = kMaxTimestampChars + 2;

  SchemaPtr schema_;
  std::vector<std::string> keys_;  // `"name":` per field, pre-escaped
  size_t row_chars_ = 1;           // '{', and per key the key and a comma or the '}'
  // A timestamp column's last value and its text: a window's output rows
  // share their window's start and end, so most rows repeat the row before's.
  struct LastTimestamp {
    int64_t value = 0;
    size_t size = 0;  // 0: none yet
    char text[kMaxTimestampChars];
  };
  std::vector<LastTimestamp> last_timestamps_;  // per field
};

}  // namespace df::connectors
