#include "connectors/format/json.h"

#include <simdjson.h>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_map>

#include "engine/core/digits.h"
#include "engine/core/log.h"
#include "engine/core/time.h"

namespace df::connectors {

namespace {

// One decoded field, held until the whole record is known to be good so that a
// bad record appends nothing.
struct Slot {
  bool set = false;  // false: null (missing or JSON null)
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string_view s;  // points into the parser's string buffer
};

Status type_mismatch(const Field& f, std::string_view got) {
  return Status::data_error("field '" + f.name + "': expected " + std::string(type_name(f.type)) +
                            ", got " + std::string(got));
}

std::string_view json_kind(simdjson::dom::element_type t) {
  using T = simdjson::dom::element_type;
  switch (t) {
    case T::ARRAY:
      return "an array";
    case T::OBJECT:
      return "an object";
    case T::INT64:
    case T::UINT64:
      return "an integer";
    case T::DOUBLE:
      return "a number";
    case T::STRING:
      return "a string";
    case T::BOOL:
      return "a boolean";
    case T::NULL_VALUE:
      return "null";
  }
  return "a value";
}

// A double with no fraction that fits an int64 (2^63 itself does not).
bool integral_double(double d, int64_t& out) {
  if (!std::isfinite(d) || d != std::trunc(d)) return false;
  if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) return false;
  out = static_cast<int64_t>(d);
  return true;
}

Status read_integer(const Field& f, simdjson::dom::element v, int64_t& out) {
  using T = simdjson::dom::element_type;
  switch (v.type()) {
    case T::INT64:
      out = v.get_int64().value_unsafe();
      return Status::OK();
    case T::UINT64:
      return Status::data_error("field '" + f.name + "': integer out of range");
    case T::DOUBLE: {
      double d = v.get_double().value_unsafe();
      if (integral_double(d, out)) return Status::OK();
      std::string text;
      append_double(d, text);
      return type_mismatch(f, text);
    }
    default:
      return type_mismatch(f, json_kind(v.type()));
  }
}

Status read_field(const Field& f, simdjson::dom::element v, Slot& slot) {
  using T = simdjson::dom::element_type;
  T t = v.type();
  if (t == T::NULL_VALUE) {
    slot.set = false;
    return Status::OK();
  }
  switch (f.type) {
    case TypeId::kBool:
      if (t != T::BOOL) return type_mismatch(f, json_kind(t));
      slot.b = v.get_bool().value_unsafe();
      break;
    case TypeId::kInt64:
      DF_RETURN_IF_ERROR(read_integer(f, v, slot.i));
      break;
    case TypeId::kDouble:
      if (t == T::INT64) {
        slot.d = static_cast<double>(v.get_int64().value_unsafe());
      } else if (t == T::UINT64) {
        slot.d = static_cast<double>(v.get_uint64().value_unsafe());
      } else if (t == T::DOUBLE) {
        slot.d = v.get_double().value_unsafe();
      } else {
        return type_mismatch(f, json_kind(t));
      }
      break;
    case TypeId::kString:
      if (t != T::STRING) return type_mismatch(f, json_kind(t));
      slot.s = v.get_string().value_unsafe();
      break;
    case TypeId::kTimestamp:
      if (t == T::STRING) {
        auto ts = parse_timestamp(v.get_string().value_unsafe());
        if (!ts.ok()) return Status::data_error("field '" + f.name + "': " + ts.status().message());
        slot.i = *ts;
      } else if (t == T::INT64 || t == T::UINT64 || t == T::DOUBLE) {
        DF_RETURN_IF_ERROR(read_integer(f, v, slot.i));
      } else {
        return type_mismatch(f, json_kind(t));
      }
      break;
  }
  slot.set = true;
  return Status::OK();
}

}  // namespace

struct JsonRowDecoder::Impl {
  simdjson::dom::parser parser;
  simdjson::error_code setup = simdjson::SUCCESS;  // of the initial allocation
  // The record is copied here with SIMDJSON_PADDING spare bytes, so callers
  // may pass any string_view (file chunks, Kafka payloads).
  std::unique_ptr<char[]> scratch;
  size_t scratch_cap = 0;
  std::unordered_map<std::string_view, size_t> index;  // field name -> position
  std::vector<Slot> slots;
};

JsonRowDecoder::JsonRowDecoder(SchemaPtr schema, JsonDecodeLimits limits)
    : schema_(std::move(schema)), limits_(limits), impl_(std::make_unique<Impl>()) {
  // The depth given here stays when the parser grows for a longer record.
  impl_->setup = impl_->parser.allocate(4096, std::max<size_t>(1, limits_.max_depth));
  for (size_t i = 0; i < schema_->size(); ++i) impl_->index.emplace(schema_->field(i).name, i);
  impl_->slots.resize(schema_->size());
}

JsonRowDecoder::~JsonRowDecoder() = default;

Status JsonRowDecoder::decode(std::string_view text, BatchBuilder& out) {
  Impl& m = *impl_;
  if (m.setup != simdjson::SUCCESS) {
    return Status::data_error(std::string("cannot set up the JSON parser: ") +
                              simdjson::error_message(m.setup));
  }
  if (text.size() > limits_.max_record_bytes) {
    return Status::data_error("the record is " + std::to_string(text.size()) +
                              " bytes, over the limit of " +
                              std::to_string(limits_.max_record_bytes));
  }
  if (text.size() + simdjson::SIMDJSON_PADDING > m.scratch_cap) {
    m.scratch_cap = std::max<size_t>(4096, (text.size() + simdjson::SIMDJSON_PADDING) * 2);
    m.scratch = std::make_unique<char[]>(m.scratch_cap);
  }
  std::memcpy(m.scratch.get(), text.data(), text.size());
  std::memset(m.scratch.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);

  simdjson::dom::element doc;
  if (auto err = m.parser.parse(m.scratch.get(), text.size(), false).get(doc)) {
    if (err == simdjson::DEPTH_ERROR) {
      return Status::data_error("the record nests deeper than " +
                                std::to_string(limits_.max_depth) + " levels");
    }
    return Status::data_error(std::string("invalid JSON: ") + simdjson::error_message(err));
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) {
    return Status::data_error("expected a JSON object, got " + std::string(json_kind(doc.type())));
  }
  for (Slot& s : m.slots) s.set = false;
  // Records usually list the fields in schema order: try the field after
  // the previous one before hashing the key.
  size_t expected = 0;
  for (simdjson::dom::key_value_pair kv : obj) {
    size_t pos;
    if (expected < m.slots.size() && kv.key == schema_->field(expected).name) {
      pos = expected;
    } else {
      auto it = m.index.find(kv.key);
      if (it == m.index.end()) continue;
      pos = it->second;
    }
    expected = pos + 1;
    DF_RETURN_IF_ERROR(read_field(schema_->field(pos), kv.value, m.slots[pos]));
  }
  for (size_t i = 0; i < m.slots.size(); ++i) {
    const Slot& s = m.slots[i];
    ColumnBuilder& col = out.column(i);
    if (!s.set) {
      col.append_null();
      continue;
    }
    switch (schema_->field(i).type) {
      case TypeId::kBool:
        col.append_bool(s.b);
        break;
      case TypeId::kInt64:
      case TypeId::kTimestamp:
        col.append_int64(s.i);
        break;
      case TypeId::kDouble:
        col.append_double(s.d);
        break;
      case TypeId::kString:
        col.append_string(s.s);
        break;
    }
  }
  out.finish_row();
  return Status::OK();
}

JsonRowEncoder::JsonRowEncoder(SchemaPtr schema) : schema_(std::move(schema)) {
  for (const Field& f : schema_->fields()) {
    std::string key;
    append_json_string(f.name, key);
    key += ':';
    row_chars_ += key.size() + 1;  // and its comma, or the closing brace
    keys_.push_back(std::move(key));
  }
  last_timestamps_.resize(keys_.size());
}

void JsonRowEncoder::append_row(const Batch& batch, size_t row, std::string& out) {
  // Written through a pointer into room made for the row's longest spelling
  // (a sink encodes every row of every batch, and appending piece by piece
  // cost more than the digits and escapes themselves).
  static_assert(kMaxScalarChars >= kMaxDoubleChars && kMaxScalarChars >= 20);
  size_t room = row_chars_;
  for (size_t c = 0; c < keys_.size(); ++c) {
    const Column& col = *batch.column(c);
    room += col.type() == TypeId::kString && !col.is_null(row)
                ? max_json_string_chars(col.string_at(row))
                : kMaxScalarChars;
  }
  const size_t at = out.size();
  out.resize(at + room);
  char* p = out.data() + at;
  auto put = [&p](std::string_view text) {
    std::memcpy(p, text.data(), text.size());
    p += text.size();
  };
  *p++ = '{';
  for (size_t c = 0; c < keys_.size(); ++c) {
    if (c) *p++ = ',';
    put(keys_[c]);
    const Column& col = *batch.column(c);
    if (col.is_null(row)) {
      put("null");
      continue;
    }
    switch (col.type()) {
      case TypeId::kBool:
        put(col.bool_at(row) ? "true" : "false");
        break;
      case TypeId::kInt64:
        p = std::to_chars(p, p + kMaxScalarChars, col.int64_at(row)).ptr;
        break;
      case TypeId::kDouble: {
        const double d = col.double_at(row);
        if (std::isfinite(d)) {
          p = write_double(p, d);
        } else {
          put("null");
        }
        break;
      }
      case TypeId::kString:
        p = write_json_string(p, col.string_at(row));
        break;
      case TypeId::kTimestamp: {
        LastTimestamp& last = last_timestamps_[c];
        const int64_t ts = col.int64_at(row);
        if (last.size == 0 || last.value != ts) {
          last.value = ts;
          last.size = static_cast<size_t>(write_timestamp(last.text, ts) - last.text);
        }
        *p++ = '"';
        put(std::string_view(last.text, last.size));
        *p++ = '"';
        break;
      }
    }
  }
  *p++ = '}';
  assert(p <= out.data() + at + room);
  out.resize(static_cast<size_t>(p - out.data()));
}

void JsonRowEncoder::append_batch(const Batch& batch, std::string& out) {
  batch.for_each_row([&](size_t r) {
    append_row(batch, r, out);
    out += '\n';
  });
}

}  // namespace df::connectors
