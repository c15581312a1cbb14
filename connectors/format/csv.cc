#include "connectors/format/csv.h"

#include <cctype>
#include <charconv>
#include <cmath>

#include "connectors/format/json.h"
#include "engine/core/digits.h"
#include "engine/core/time.h"

namespace df::connectors {

CsvRecordParser::Outcome CsvRecordParser::next(std::string_view data, bool eof, CsvRecord& rec,
                                               size_t& consumed) const {
  rec.chars_.clear();
  rec.spans_.clear();
  rec.malformed_.clear();
  rec.newlines_ = 0;
  if (data.empty()) return eof ? Outcome::kEnd : Outcome::kNeedMore;

  const size_t n = data.size();
  size_t i = 0;
  while (true) {
    // Until we see the first byte of a field we cannot tell whether it is quoted.
    if (i >= n && !eof) return Outcome::kNeedMore;
    const size_t begin = rec.chars_.size();
    bool quoted = false;
    if (i < n && data[i] == '"') {
      quoted = true;
      ++i;
      while (true) {
        if (i >= n) {
          if (!eof) return Outcome::kNeedMore;
          rec.malformed_ = "unterminated quoted field";
          break;
        }
        char c = data[i];
        if (c == '"') {
          // A quote at the end of the data may be the first half of "".
          if (i + 1 >= n && !eof) return Outcome::kNeedMore;
          if (i + 1 < n && data[i + 1] == '"') {
            rec.chars_ += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        if (c == '\n') ++rec.newlines_;
        rec.chars_ += c;
        ++i;
      }
    }
    // The unquoted field, or what follows a closing quote (only a terminator should).
    while (i < n && data[i] != delim_ && data[i] != '\n') {
      if (data[i] == '\r') {
        if (i + 1 >= n) {
          if (!eof) return Outcome::kNeedMore;
          break;  // a final CR ends the record
        }
        if (data[i + 1] == '\n') break;
      }
      if (quoted && rec.malformed_.empty()) {
        rec.malformed_ = "unexpected text after a closing quote";
      }
      rec.chars_ += data[i];
      ++i;
    }
    if (i >= n && !eof) return Outcome::kNeedMore;
    rec.spans_.push_back({begin, rec.chars_.size() - begin, quoted});
    if (i < n && data[i] == delim_) {
      ++i;
      continue;
    }
    if (i < n && data[i] == '\r') ++i;
    if (i < n && data[i] == '\n') {
      ++i;
      ++rec.newlines_;
    }
    consumed = i;
    return Outcome::kRecord;
  }
}

namespace {

bool parse_int(std::string_view s, int64_t& out) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

bool parse_double(std::string_view s, double& out) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
  }
  return true;
}

Status convert(const Field& f, std::string_view text, CsvRowDecoder::Slot& out) {
  auto bad = [&] {
    return Status::data_error("field '" + f.name + "': expected " + std::string(type_name(f.type)) +
                              ", got '" + std::string(text) + "'");
  };
  switch (f.type) {
    case TypeId::kBool:
      if (iequals(text, "true") || text == "1") {
        out.b = true;
      } else if (iequals(text, "false") || text == "0") {
        out.b = false;
      } else {
        return bad();
      }
      return Status::OK();
    case TypeId::kInt64: {
      int64_t v;
      double d;
      if (parse_int(text, v)) {
        out.i = v;
      } else if (parse_double(text, d) && std::isfinite(d) && d == std::trunc(d) &&
                 d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
        out.i = static_cast<int64_t>(d);
      } else {
        return bad();
      }
      return Status::OK();
    }
    case TypeId::kDouble: {
      double d;
      if (!parse_double(text, d)) return bad();
      out.d = d;
      return Status::OK();
    }
    case TypeId::kString:
      out.s = text;
      return Status::OK();
    case TypeId::kTimestamp: {
      int64_t v;
      if (parse_int(text, v)) {
        out.i = v;
        return Status::OK();
      }
      auto ts = parse_timestamp(text);
      if (!ts.ok()) return Status::data_error("field '" + f.name + "': " + ts.status().message());
      out.i = *ts;
      return Status::OK();
    }
  }
  return bad();
}

}  // namespace

CsvRowDecoder::CsvRowDecoder(SchemaPtr schema, CsvOptions options)
    : schema_(std::move(schema)), options_(options), width_(schema_->size()) {
  position_.resize(schema_->size());
  for (size_t i = 0; i < schema_->size(); ++i) position_[i] = i;
  slots_.resize(schema_->size());
}

Status CsvRowDecoder::set_header(const CsvRecord& header) {
  width_ = header.size();
  for (size_t f = 0; f < schema_->size(); ++f) {
    position_[f].reset();
    for (size_t c = 0; c < header.size(); ++c) {
      if (header.field(c) == schema_->field(f).name) {
        position_[f] = c;
        break;
      }
    }
  }
  if (!header.malformed().empty()) return Status::data_error("header: " + header.malformed());
  return Status::OK();
}

Status CsvRowDecoder::decode(const CsvRecord& rec, BatchBuilder& out) {
  if (!rec.malformed().empty()) return Status::data_error(rec.malformed());
  if (rec.size() != width_) {
    return Status::data_error("expected " + std::to_string(width_) + " fields, got " +
                              std::to_string(rec.size()));
  }
  for (size_t f = 0; f < schema_->size(); ++f) {
    const Field& field = schema_->field(f);
    Slot& slot = slots_[f];
    slot.set = false;
    if (!position_[f]) continue;
    size_t c = *position_[f];
    std::string_view text = rec.field(c);
    // Only a quoted "" is an empty string; an empty field is null for every type.
    if (text.empty() && !(rec.quoted(c) && field.type == TypeId::kString)) continue;
    DF_RETURN_IF_ERROR(convert(field, text, slot));
    slot.set = true;
  }
  // Every field converted: only now append, so a bad record leaves no trace.
  for (size_t f = 0; f < schema_->size(); ++f) {
    const Slot& slot = slots_[f];
    ColumnBuilder& col = out.column(f);
    if (!slot.set) {
      col.append_null();
      continue;
    }
    switch (schema_->field(f).type) {
      case TypeId::kBool:
        col.append_bool(slot.b);
        break;
      case TypeId::kInt64:
      case TypeId::kTimestamp:
        col.append_int64(slot.i);
        break;
      case TypeId::kDouble:
        col.append_double(slot.d);
        break;
      case TypeId::kString:
        col.append_string(slot.s);
        break;
    }
  }
  out.finish_row();
  return Status::OK();
}

CsvRowEncoder::CsvRowEncoder(SchemaPtr schema, CsvOptions options)
    : schema_(std::move(schema)), options_(options) {}

void CsvRowEncoder::append_text(std::string_view s, std::string& out) const {
  bool quote = s.empty() || s.find_first_of(std::string{options_.delimiter, '"', '\n', '\r'}) !=
                                std::string_view::npos;
  if (!quote) {
    out += s;
    return;
  }
  out += '"';
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

void CsvRowEncoder::append_header(std::string& out) const {
  for (size_t c = 0; c < schema_->size(); ++c) {
    if (c) out += options_.delimiter;
    append_text(schema_->field(c).name, out);
  }
  out += '\n';
}

void CsvRowEncoder::append_row(const Batch& batch, size_t row, std::string& out) const {
  for (size_t c = 0; c < schema_->size(); ++c) {
    if (c) out += options_.delimiter;
    const Column& col = *batch.column(c);
    if (col.is_null(row)) continue;
    switch (col.type()) {
      case TypeId::kBool:
        out += col.bool_at(row) ? "true" : "false";
        break;
      case TypeId::kInt64:
        out += std::to_string(col.int64_at(row));
        break;
      case TypeId::kDouble:
        if (std::isfinite(col.double_at(row))) append_double(col.double_at(row), out);
        break;
      case TypeId::kString:
        append_text(col.string_at(row), out);
        break;
      case TypeId::kTimestamp:
        append_timestamp(col.int64_at(row), out);
        break;
    }
  }
  out += '\n';
}

void CsvRowEncoder::append_batch(const Batch& batch, std::string& out) const {
  batch.for_each_row([&](size_t r) { append_row(batch, r, out); });
}

}  // namespace df::connectors
