// CSV (RFC 4180): an incremental record parser, a record-to-row decoder and a
// row encoder. Shared by the file connectors and, later, Kafka.
//
// Conventions, both directions: an unquoted empty field is null; a quoted
// empty field ("") is the empty string; records end with LF or CRLF (the
// encoder writes LF); quoted fields may hold delimiters, quotes ("") and
// line breaks.
//
// Threading: every class here belongs to one task; make one per subtask.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/batch.h"
#include "engine/core/schema.h"
#include "engine/core/status.h"

namespace df::connectors {

struct CsvOptions {
  bool header = true;    // first record names the columns (decode) / is written (encode)
  char delimiter = ',';  // any single byte except '"', CR and LF
};

// One parsed record. The parser reuses it; copy what must outlive the next call.
class CsvRecord {
 public:
  size_t size() const { return spans_.size(); }
  std::string_view field(size_t i) const {
    return std::string_view(chars_).substr(spans_[i].begin, spans_[i].len);
  }
  bool quoted(size_t i) const { return spans_[i].quoted; }
  // An empty line: one unquoted empty field.
  bool blank() const { return spans_.size() == 1 && spans_[0].len == 0 && !spans_[0].quoted; }
  // Non-empty when the record breaks RFC 4180 (text after a closing quote, an
  // unterminated quote); the fields are still split as well as possible.
  const std::string& malformed() const { return malformed_; }
  // Line breaks the record consumed, its terminator included.
  size_t newlines() const { return newlines_; }

 private:
  friend class CsvRecordParser;
  struct Span {
    size_t begin, len;
    bool quoted;
  };
  std::string chars_;  // unescaped field texts, back to back
  std::vector<Span> spans_;
  std::string malformed_;
  size_t newlines_ = 0;
};

// Splits a byte stream into records, one call per record, without copying the
// stream: the caller keeps a buffer, passes its unconsumed part, and drops
// `consumed` bytes after each record.
class CsvRecordParser {
 public:
  explicit CsvRecordParser(char delimiter) : delim_(delimiter) {}

  enum class Outcome {
    kRecord,    // `record` holds the next record; drop `consumed` bytes
    kNeedMore,  // `data` ends inside a record: call again with more bytes
    kEnd,       // eof and no bytes left
  };
  // `eof`: no bytes will follow `data`.
  Outcome next(std::string_view data, bool eof, CsvRecord& record, size_t& consumed) const;

 private:
  char delim_;
};

// Turns records into rows of a schema: with a header, columns map to schema
// fields by name (schema fields the header lacks are null, extra columns are
// ignored); without, by position. A record whose field count differs from the
// header's (or the schema's) is a data error, as is a field that does not
// convert: int64 and double as numbers, bool as true/false/1/0, timestamp as
// integer milliseconds or RFC 3339, string as is.
class CsvRowDecoder {
 public:
  CsvRowDecoder(SchemaPtr schema, CsvOptions options);

  const CsvOptions& options() const { return options_; }

  // One converted field of the record being decoded (s points into it).
  struct Slot {
    bool set = false;  // false: null
    bool b = false;
    int64_t i = 0;
    double d = 0;
    std::string_view s;
  };
  // With options().header: call with the first record of each file/stream.
  Status set_header(const CsvRecord& header);
  // Appends one row to `out`, or nothing and a DataError saying why.
  Status decode(const CsvRecord& record, BatchBuilder& out);

 private:
  SchemaPtr schema_;
  CsvOptions options_;
  size_t width_;                                 // fields a record must have
  std::vector<std::optional<size_t>> position_;  // schema field -> record column
  std::vector<Slot> slots_;                      // scratch: one decoded row
};

// Writes rows as CSV lines (LF), values quoted only when needed; nulls empty,
// timestamps RFC 3339 with milliseconds, doubles shortest round-trip (NaN and
// infinities empty, like null).
class CsvRowEncoder {
 public:
  CsvRowEncoder(SchemaPtr schema, CsvOptions options);

  // The header line (field names), with its newline.
  void append_header(std::string& out) const;
  // Physical row `row` of `batch`, with its newline.
  void append_row(const Batch& batch, size_t row, std::string& out) const;
  void append_batch(const Batch& batch, std::string& out) const;

 private:
  void append_text(std::string_view s, std::string& out) const;

  SchemaPtr schema_;
  CsvOptions options_;
};

}  // namespace df::connectors
