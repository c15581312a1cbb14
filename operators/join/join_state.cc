// The joins' StateSerde: stored entries (join.h layout) <-> readable JSON.
// Both directions check every part and name the first one that does not fit.
#include <limits>

#include "engine/state/codec.h"
#include "operators/join/join.h"
#include "operators/state_json.h"
#include "operators/stateful.h"

namespace df::operators::join {

namespace {

using nlohmann::json;

std::vector<Field> key_fields(const JoinConfig& config, bool left) {
  std::vector<Field> out;
  const Schema& schema = left ? *config.left : *config.right;
  for (size_t k : left ? config.left_keys : config.right_keys) out.push_back(schema.field(k));
  return out;
}

Status bad(std::string_view message) {
  return Status::data_error("join state: " + std::string(message));
}

Result<bool> side_of(char c) {
  if (c == kLeft) return true;
  if (c == kRight) return false;
  return bad("an unknown side byte");
}

const char* side_name(bool left) { return left ? "left" : "right"; }

json time_json(int64_t ms) { return value_to_json(Value::timestamp(ms), TypeId::kTimestamp); }

// Reads the key fields of `left`'s side at the front of `in`.
Result<json> read_key(const JoinConfig& config, bool left, std::string_view& in) {
  auto key = key_to_json(in, key_fields(config, left));
  if (!key.ok()) return key.status().with_context("join state key");
  return key;
}

// "ts seq" at the end of a buffer key: exactly 16 bytes left in `in`.
Status read_time_seq(std::string_view in, json& entry, const char* time_name) {
  if (in.size() != 16) return bad("a buffer key does not end with time and sequence number");
  DF_ASSIGN_OR_RETURN(int64_t ts, state::read_ordered_i64(in));
  DF_ASSIGN_OR_RETURN(uint64_t seq, state::read_u64(in));
  entry[time_name] = time_json(ts);
  entry["seq"] = seq;
  return Status::OK();
}

// Interval buffer key "side key ts seq" -> side/key/event_time/seq members.
Result<bool> read_buffer_key(const JoinConfig& config, std::string_view k, json& entry) {
  if (k.empty()) return bad("an empty key");
  DF_ASSIGN_OR_RETURN(bool left, side_of(k[0]));
  k.remove_prefix(1);
  entry["side"] = side_name(left);
  DF_ASSIGN_OR_RETURN(entry["key"], read_key(config, left, k));
  DF_RETURN_IF_ERROR(read_time_seq(k, entry, "event_time"));
  return left;
}

Result<json> row_json(const Schema& schema, std::string_view in) {
  auto row = row_to_json(in, schema.fields());
  if (!row.ok()) return row.status().with_context("join state row");
  if (!in.empty()) return bad("trailing bytes after a row");
  return row;
}

// ---- JSON -> bytes ---------------------------------------------------------

Result<bool> side_from_json(const json& entry, std::string_view what) {
  const json& side = entry.at("side");
  if (side == "left") return true;
  if (side == "right") return false;
  return Status::invalid(std::string(what) + "'s 'side' must be \"left\" or \"right\", not " +
                         side.dump(-1, ' ', false, json::error_handler_t::replace));
}

Result<int64_t> time_from_json(const json& entry, const char* name, std::string_view what) {
  const std::string where = std::string(what) + "'s '" + name + "'";
  if (entry.at(name).is_null()) return Status::invalid(where + " must be a timestamp, not null");
  DF_ASSIGN_OR_RETURN(Value v, value_from_json(entry.at(name), TypeId::kTimestamp, where));
  return v.as_int64();
}

Result<uint64_t> seq_from_json(const json& j, std::string_view what, const char* name) {
  if (!j.is_number_unsigned()) {
    return Status::invalid(std::string(what) + "'s '" + name + "' must be a non-negative integer");
  }
  return j.get<uint64_t>();
}

// Appends "key ts seq" (the part after the side byte of a buffer key).
Status buffer_key_from_json(const JoinConfig& config, bool left, const json& entry,
                            std::string_view what, std::string& out) {
  DF_RETURN_IF_ERROR(key_from_json(entry.at("key"), key_fields(config, left),
                                   std::string(what) + "'s 'key'", out));
  DF_ASSIGN_OR_RETURN(int64_t ts, time_from_json(entry, "event_time", what));
  DF_ASSIGN_OR_RETURN(uint64_t seq, seq_from_json(entry.at("seq"), what, "seq"));
  state::append_ordered_i64(ts, out);
  state::append_u64(seq, out);
  return Status::OK();
}

Status row_bytes(const JoinConfig& config, bool left, const json& entry, std::string_view what,
                 std::string& out) {
  return row_from_json(entry.at("row"), (left ? config.left : config.right)->fields(),
                       std::string(what) + "'s 'row'", out);
}

}  // namespace

Result<json> state_entry_to_json(const JoinConfig& config, std::string_view key,
                                 std::string_view value) {
  if (key.empty()) return bad("an empty key");
  const bool windowed = config.kind == JoinConfig::Kind::kWindowed;
  if (key == kRowSequenceKey) {
    std::string_view in = value;
    auto next = state::read_u64(in);
    if (!next.ok() || !in.empty()) return bad("the sequence entry is not 8 bytes");
    return json{{"next_seq", *next}};
  }
  json entry = json::object();
  if (windowed) {
    // 'W' start key side seq -> row
    if (key[0] != kWindow) return bad("an entry outside the windowed join's key space");
    std::string_view k = key.substr(1);
    DF_ASSIGN_OR_RETURN(int64_t start, state::read_ordered_i64(k));
    const std::string_view key_start = k;
    DF_RETURN_IF_ERROR(read_key(config, true, k).status());  // both sides have the same types
    if (k.size() != 1 + 8) return bad("a window key does not end with side and sequence number");
    DF_ASSIGN_OR_RETURN(bool left, side_of(k[0]));
    std::string_view key_part = key_start;
    DF_ASSIGN_OR_RETURN(json key_json, read_key(config, left, key_part));
    k.remove_prefix(1);
    DF_ASSIGN_OR_RETURN(uint64_t seq, state::read_u64(k));
    DF_ASSIGN_OR_RETURN(json row, row_json(left ? *config.left : *config.right, value));
    entry["window_start"] = time_json(start);
    entry["window_end"] = time_json(start + config.window_size_ms);
    entry["side"] = side_name(left);
    entry["key"] = std::move(key_json);
    entry["seq"] = seq;
    entry["row"] = std::move(row);
    return entry;
  }
  if (key[0] == kIndex) {
    // 'X' side expiry side key ts seq -> ""
    if (key.size() < 2 + 8) return bad("a short expiry index key");
    std::string_view k = key.substr(2);
    DF_ASSIGN_OR_RETURN(int64_t expires, state::read_ordered_i64(k));
    if (k.empty() || k[0] != key[1]) return bad("an expiry index entry names two sides");
    json index = json::object();
    DF_RETURN_IF_ERROR(read_buffer_key(config, k, index).status());
    index["expires"] = time_json(expires);
    if (!value.empty()) return bad("an expiry index entry with a value");
    return json{{"expiry_index", std::move(index)}};
  }
  // side key ts seq -> [matched] row
  DF_ASSIGN_OR_RETURN(bool left, read_buffer_key(config, key, entry));
  if (left) {
    if (value.empty() || (value[0] != '\0' && value[0] != '\1')) {
      return bad("a left row without its matched flag");
    }
    entry["matched"] = value[0] == '\1';
    value.remove_prefix(1);
  }
  DF_ASSIGN_OR_RETURN(entry["row"], row_json(left ? *config.left : *config.right, value));
  return entry;
}

Status state_entry_from_json(const JoinConfig& config, const json& entry, std::string& key,
                             std::string& value) {
  const bool windowed = config.kind == JoinConfig::Kind::kWindowed;
  const std::string what =
      windowed ? "a windowed join state entry" : "an interval join state entry";
  if (!entry.is_object()) {
    return Status::invalid(what + " must be a JSON object, not " + std::string(entry.type_name()));
  }
  std::string k;
  std::string v;
  if (entry.contains("next_seq")) {
    DF_RETURN_IF_ERROR(check_object(entry, "the join's sequence entry", {"next_seq"}));
    DF_ASSIGN_OR_RETURN(uint64_t next, seq_from_json(entry.at("next_seq"),
                                                     "the join's sequence entry", "next_seq"));
    k = kRowSequenceKey;
    state::append_u64(next, v);
  } else if (windowed) {
    DF_RETURN_IF_ERROR(
        check_object(entry, what, {"window_start", "window_end", "side", "key", "seq", "row"}));
    DF_ASSIGN_OR_RETURN(bool left, side_from_json(entry, what));
    DF_ASSIGN_OR_RETURN(int64_t start, time_from_json(entry, "window_start", what));
    DF_ASSIGN_OR_RETURN(int64_t end, time_from_json(entry, "window_end", what));
    const int64_t size = config.window_size_ms;
    if (floor_div(start, size) * size != start) {
      return Status::invalid(what + "'s 'window_start' is not the start of a window of " +
                             std::to_string(size) + " ms");
    }
    if (start > std::numeric_limits<int64_t>::max() - size || end != start + size) {
      return Status::invalid(what +
                             "'s 'window_end' must be 'window_start' plus the window size (" +
                             std::to_string(size) + " ms)");
    }
    k.push_back(kWindow);
    state::append_ordered_i64(start, k);
    DF_RETURN_IF_ERROR(
        key_from_json(entry.at("key"), key_fields(config, left), what + "'s 'key'", k));
    k.push_back(left ? kLeft : kRight);
    DF_ASSIGN_OR_RETURN(uint64_t seq, seq_from_json(entry.at("seq"), what, "seq"));
    state::append_u64(seq, k);
    DF_RETURN_IF_ERROR(row_bytes(config, left, entry, what, v));
  } else if (entry.contains("expiry_index")) {
    DF_RETURN_IF_ERROR(check_object(entry, what, {"expiry_index"}));
    const json& index = entry.at("expiry_index");
    const std::string iwhat = "an expiry index entry";
    DF_RETURN_IF_ERROR(check_object(index, iwhat, {"side", "expires", "key", "event_time", "seq"}));
    DF_ASSIGN_OR_RETURN(bool left, side_from_json(index, iwhat));
    DF_ASSIGN_OR_RETURN(int64_t expires, time_from_json(index, "expires", iwhat));
    const char side = left ? kLeft : kRight;
    k = {kIndex, side};
    state::append_ordered_i64(expires, k);
    k.push_back(side);
    DF_RETURN_IF_ERROR(buffer_key_from_json(config, left, index, iwhat, k));
  } else {
    if (!entry.contains("side")) return Status::invalid(what + " is missing 'side'");
    DF_ASSIGN_OR_RETURN(bool left, side_from_json(entry, what));
    if (left) {
      DF_RETURN_IF_ERROR(
          check_object(entry, what, {"side", "key", "event_time", "seq", "matched", "row"}));
      if (!entry.at("matched").is_boolean()) {
        return Status::invalid(what + "'s 'matched' must be true or false");
      }
      v.push_back(entry.at("matched").get<bool>() ? '\1' : '\0');
    } else {
      DF_RETURN_IF_ERROR(
          check_object(entry, what + " (right side)", {"side", "key", "event_time", "seq", "row"}));
    }
    k.push_back(left ? kLeft : kRight);
    DF_RETURN_IF_ERROR(buffer_key_from_json(config, left, entry, what, k));
    DF_RETURN_IF_ERROR(row_bytes(config, left, entry, what, v));
  }
  key = std::move(k);
  value = std::move(v);
  return Status::OK();
}

Status check_state_meta(const JoinConfig& config, const json& meta) {
  const std::string what = "join meta";
  if (config.kind == JoinConfig::Kind::kWindowed) {
    DF_RETURN_IF_ERROR(check_object(meta, what, {"watermark", "entries"}));
  } else {
    DF_RETURN_IF_ERROR(
        check_object(meta, what, {"watermark", "output_watermark", "output_idle", "entries"}));
    DF_RETURN_IF_ERROR(time_from_meta(meta, "output_watermark", what).status());
    DF_RETURN_IF_ERROR(bool_from_meta(meta, "output_idle", what).status());
  }
  DF_RETURN_IF_ERROR(time_from_meta(meta, "watermark", what).status());
  return count_from_meta(meta, "entries", what).status();
}

}  // namespace df::operators::join
