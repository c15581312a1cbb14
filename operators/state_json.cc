#include "operators/state_json.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <new>
#include <string>

#include "engine/core/digits.h"
#include "engine/core/time.h"
#include "engine/state/codec.h"
#include "operators/stateful.h"

namespace df::operators {

namespace {

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong encodings, surrogates and values past U+10FFFF are invalid.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string to_hex(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xF]);
  }
  return out;
}

Status wrong(std::string_view what, std::string_view expected, const nlohmann::json& j) {
  return Status::invalid(std::string(what) + " must be " + std::string(expected) + ", not " +
                         j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace

nlohmann::json double_to_json(double d) {
  if (std::isnan(d)) {
    const auto bits = std::bit_cast<uint64_t>(d);
    if (bits == std::bit_cast<uint64_t>(std::numeric_limits<double>::quiet_NaN())) return "NaN";
    char buf[32];
    std::snprintf(buf, sizeof buf, "NaN(0x%016llx)", static_cast<unsigned long long>(bits));
    return std::string(buf);
  }
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return d;
}

nlohmann::json string_to_json(std::string_view s) {
  if (valid_utf8(s)) return std::string(s);
  return nlohmann::json{{"hex", to_hex(s)}};
}

nlohmann::json timestamp_to_json(int64_t epoch_ms) {
  // RFC 3339 spells years 0000..9999 only; other times stay integers.
  constexpr int64_t kYear0 = -62'167'219'200'000;      // 0000-01-01T00:00:00.000Z
  constexpr int64_t kYear10000 = 253'402'300'800'000;  // 10000-01-01T00:00:00.000Z
  if (epoch_ms < kYear0 || epoch_ms >= kYear10000) return epoch_ms;
  return format_timestamp(epoch_ms);
}

Result<int64_t> int_from_json(const nlohmann::json& j, std::string_view what) {
  if (j.is_number_integer() && !j.is_number_unsigned()) return j.get<int64_t>();
  if (j.is_number_unsigned()) {
    auto u = j.get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(u);
    }
    return wrong(what, "an int64 (it is out of range)", j);
  }
  return wrong(what, "an integer", j);
}

Result<uint64_t> uint_from_json(const nlohmann::json& j, std::string_view what) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer()) {
    return Status::invalid(std::string(what) + " must not be negative (it is " + j.dump() + ")");
  }
  return wrong(what, "a non-negative integer", j);
}

Result<double> double_from_json(const nlohmann::json& j, std::string_view what) {
  if (j.is_number_float()) return j.get<double>();
  if (j.is_number_unsigned()) return static_cast<double>(j.get<uint64_t>());
  if (j.is_number_integer()) return static_cast<double>(j.get<int64_t>());
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (s == "Infinity") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
    if (s.size() == 23 && s.starts_with("NaN(0x") && s.back() == ')') {
      uint64_t bits = 0;
      auto [p, ec] = std::from_chars(s.data() + 6, s.data() + 22, bits, 16);
      double d = std::bit_cast<double>(bits);
      if (ec == std::errc() && p == s.data() + 22 && std::isnan(d)) return d;
    }
  }
  return wrong(what, "a number, \"NaN\", \"Infinity\" or \"-Infinity\"", j);
}

Result<std::string> string_from_json(const nlohmann::json& j, std::string_view what) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.size() == 1 && j.contains("hex") && j["hex"].is_string()) {
    const auto& h = j["hex"].get_ref<const std::string&>();
    if (h.size() % 2 != 0) return wrong(what, "a string or {\"hex\": even-length hex}", j);
    std::string out;
    out.reserve(h.size() / 2);
    for (size_t i = 0; i < h.size(); i += 2) {
      int hi = hex_digit_value(h[i]);
      int lo = hex_digit_value(h[i + 1]);
      if (hi < 0 || lo < 0) return wrong(what, "a string or {\"hex\": hex digits}", j);
      out.push_back(static_cast<char>((hi << 4) | lo));
    }
    return out;
  }
  return wrong(what, "a string", j);
}

Result<int64_t> timestamp_from_json(const nlohmann::json& j, std::string_view what) {
  if (j.is_string()) {
    auto ms = parse_timestamp(j.get_ref<const std::string&>());
    if (!ms.ok()) return wrong(what, "an RFC 3339 timestamp", j);
    return *ms;
  }
  if (j.is_number_integer()) {
    auto ms = int_from_json(j, what);
    if (ms.ok()) return ms;
  }
  return wrong(what, "an RFC 3339 timestamp string or integer milliseconds", j);
}

nlohmann::json value_to_json(const Value& v, TypeId type) {
  if (v.is_null()) return nullptr;
  switch (type) {
    case TypeId::kBool:
      return v.as_bool();
    case TypeId::kInt64:
      return v.as_int64();
    case TypeId::kDouble:
      return double_to_json(v.as_double());
    case TypeId::kString:
      return string_to_json(v.as_string());
    case TypeId::kTimestamp:
      return timestamp_to_json(v.as_int64());
  }
  return nullptr;
}

Result<Value> value_from_json(const nlohmann::json& j, TypeId type, std::string_view what) {
  if (j.is_null()) return Value::null(type);
  switch (type) {
    case TypeId::kBool:
      if (!j.is_boolean()) return wrong(what, "true, false or null", j);
      return Value::boolean(j.get<bool>());
    case TypeId::kInt64: {
      DF_ASSIGN_OR_RETURN(int64_t i, int_from_json(j, what));
      return Value::int64(i);
    }
    case TypeId::kDouble: {
      DF_ASSIGN_OR_RETURN(double d, double_from_json(j, what));
      return Value::float64(d);
    }
    case TypeId::kString: {
      DF_ASSIGN_OR_RETURN(std::string s, string_from_json(j, what));
      return Value::string(std::move(s));
    }
    case TypeId::kTimestamp: {
      DF_ASSIGN_OR_RETURN(int64_t ms, timestamp_from_json(j, what));
      return Value::timestamp(ms);
    }
  }
  return Status::internal("unknown type for " + std::string(what));
}

Status check_object(const nlohmann::json& j, std::string_view what,
                    std::initializer_list<std::string_view> required,
                    std::initializer_list<std::string_view> optional) {
  if (!j.is_object()) {
    return Status::invalid(std::string(what) + " must be a JSON object, not " +
                           std::string(j.type_name()));
  }
  for (const auto& [name, value] : j.items()) {
    bool known = false;
    for (std::string_view r : required) known = known || r == name;
    for (std::string_view o : optional) known = known || o == name;
    if (!known) {
      return Status::invalid(std::string(what) + " has an unknown field '" + name + "'");
    }
  }
  for (std::string_view r : required) {
    if (!j.contains(r)) {
      return Status::invalid(std::string(what) + " is missing '" + std::string(r) + "'");
    }
  }
  return Status::OK();
}

namespace {

// `j` must be an object with exactly the names of `fields`.
Status check_fields(const nlohmann::json& j, const std::vector<Field>& fields,
                    std::string_view what) {
  if (!j.is_object()) {
    return Status::invalid(std::string(what) + " must be a JSON object, not " +
                           std::string(j.type_name()));
  }
  for (const auto& [name, value] : j.items()) {
    bool known = false;
    for (const Field& f : fields) known = known || f.name == name;
    if (!known) {
      std::string names;
      for (const Field& f : fields) names += (names.empty() ? "" : ", ") + f.name;
      return Status::invalid(std::string(what) + " has an unknown field '" + name + "' (expected " +
                             names + ")");
    }
  }
  for (const Field& f : fields) {
    if (!j.contains(f.name)) {
      return Status::invalid(std::string(what) + " is missing field '" + f.name + "'");
    }
  }
  return Status::OK();
}

}  // namespace

Result<nlohmann::json> key_to_json(std::string_view& in, const std::vector<Field>& fields) {
  nlohmann::json out = nlohmann::json::object();
  for (const Field& f : fields) {
    DF_ASSIGN_OR_RETURN(Value v, state::decode_key_value(in, f.type));
    out[f.name] = value_to_json(v, f.type);
  }
  return out;
}

Status key_from_json(const nlohmann::json& j, const std::vector<Field>& fields,
                     std::string_view what, std::string& out) {
  DF_RETURN_IF_ERROR(check_fields(j, fields, what));
  for (const Field& f : fields) {
    DF_ASSIGN_OR_RETURN(Value v, value_from_json(j.at(f.name), f.type,
                                                 std::string(what) + " field '" + f.name + "'"));
    state::encode_key_value(v, out);
  }
  return Status::OK();
}

Result<nlohmann::json> row_to_json(std::string_view& in, const std::vector<Field>& fields) {
  nlohmann::json out = nlohmann::json::object();
  for (const Field& f : fields) {
    DF_ASSIGN_OR_RETURN(Value v, state::decode_value(in, f.type));
    out[f.name] = value_to_json(v, f.type);
  }
  return out;
}

Status row_from_json(const nlohmann::json& j, const std::vector<Field>& fields,
                     std::string_view what, std::string& out) {
  DF_RETURN_IF_ERROR(check_fields(j, fields, what));
  for (const Field& f : fields) {
    DF_ASSIGN_OR_RETURN(Value v, value_from_json(j.at(f.name), f.type,
                                                 std::string(what) + " field '" + f.name + "'"));
    state::encode_value(v, out);
  }
  return Status::OK();
}

// ---- checkpoint helpers (stateful.h) ------------------------------------------

Status snapshot_store(state::KvStore& store, runtime::SnapshotContext& ctx,
                      const nlohmann::json& meta, std::string_view what) {
  Status s = store.checkpoint_to(ctx.files_dir());
  if (s.code() == StatusCode::kUnimplemented) {
    return Status::unimplemented(std::string(what) +
                                 " cannot take a checkpoint: its state is kept in memory "
                                 "(no state directory)");
  }
  if (!s.ok()) return s.with_context(std::string(what) + ": checkpoint of its state store");
  ctx.set_meta(meta.dump());
  return Status::OK();
}

void add_to_snapshot_async(runtime::OperatorContext& ctx, runtime::SnapshotContext& sctx,
                           std::function<Status(state::CheckpointEntries&)> build,
                           std::string what) {
  ctx.io().post(ctx.io_strand(), [dir = sctx.files_dir(), build = std::move(build),
                                  what = std::move(what), done = sctx.defer()]() {
    Status s;
    try {
      state::CheckpointEntries entries;
      s = build(entries);
      if (s.ok()) s = state::add_to_checkpoint(dir, entries);
    } catch (const std::bad_alloc&) {
      s = Status::resource_exhausted("out of memory");
    }
    if (!s.ok()) s = s.with_context(what + ": adding its in-memory state to the checkpoint");
    done(std::move(s));
  });
}

EmptyStoreImage::EmptyStoreImage(const std::string& state_dir)
    : dir_(state_dir + "/empty-store-image") {}

Status EmptyStoreImage::copy_to(const std::string& to) {
  namespace fs = std::filesystem;
  if (!made_) {
    DF_RETURN_IF_ERROR(make());
    made_ = true;
  }
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec) return Status::io_error("cannot create " + to + ": " + ec.message());
  for (const fs::directory_entry& e : fs::directory_iterator(dir_, ec)) {
    fs::copy_file(e.path(), fs::path(to) / e.path().filename(), ec);
    if (ec) return Status::io_error("cannot copy " + e.path().string() + ": " + ec.message());
  }
  if (ec) return Status::io_error("cannot list " + dir_ + ": " + ec.message());
  return Status::OK();
}

void snapshot_without_store(runtime::OperatorContext& ctx, runtime::SnapshotContext& sctx,
                            const std::string& state_dir, std::shared_ptr<EmptyStoreImage>& image,
                            std::string meta,
                            std::function<Status(state::CheckpointEntries&)> build,
                            std::string what) {
  sctx.set_meta(std::move(meta));
  if (!build) return;  // no files: a resumed run starts with an empty store
  if (!image) image = std::make_shared<EmptyStoreImage>(state_dir);
  add_to_snapshot_async(
      ctx, sctx,
      [build = std::move(build), image, dir = sctx.files_dir()](state::CheckpointEntries& out) {
        DF_RETURN_IF_ERROR(image->copy_to(dir));
        return build(out);
      },
      std::move(what));
}

Status EmptyStoreImage::make() {
  namespace fs = std::filesystem;
  const std::string db = dir_ + ".db";
  std::error_code ec;
  fs::remove_all(dir_, ec);
  fs::remove_all(db, ec);
  {
    DF_ASSIGN_OR_RETURN(std::unique_ptr<state::KvStore> empty, state::open_store(db));
    DF_RETURN_IF_ERROR(empty->checkpoint_to(dir_));
  }
  fs::remove_all(db, ec);
  return Status::OK();
}

Result<nlohmann::json> parse_restored_meta(const runtime::OperatorContext& ctx,
                                           std::string_view what) {
  const std::string* text = ctx.restored_meta();
  if (text == nullptr) return nlohmann::json();
  nlohmann::json meta = nlohmann::json::parse(*text, nullptr, false);
  if (!meta.is_object()) {
    return Status::data_error(std::string(what) +
                              ": the checkpoint's meta is not a JSON object: " + *text);
  }
  return meta;
}

nlohmann::json time_to_meta(int64_t ms) {
  if (ms == std::numeric_limits<int64_t>::min()) return nullptr;
  return value_to_json(Value::timestamp(ms), TypeId::kTimestamp);
}

namespace {

Result<const nlohmann::json*> meta_member(const nlohmann::json& meta, std::string_view name,
                                          std::string_view what) {
  if (!meta.is_object()) return Status::invalid(std::string(what) + ": meta must be an object");
  auto it = meta.find(name);
  if (it == meta.end()) {
    return Status::invalid(std::string(what) + ": meta is missing '" + std::string(name) + "'");
  }
  return &*it;
}

}  // namespace

Result<int64_t> time_from_meta(const nlohmann::json& meta, std::string_view name,
                               std::string_view what) {
  DF_ASSIGN_OR_RETURN(const nlohmann::json* j, meta_member(meta, name, what));
  if (j->is_null()) return std::numeric_limits<int64_t>::min();
  DF_ASSIGN_OR_RETURN(Value v,
                      value_from_json(*j, TypeId::kTimestamp,
                                      std::string(what) + ": meta '" + std::string(name) + "'"));
  return v.as_int64();
}

Result<uint64_t> count_from_meta(const nlohmann::json& meta, std::string_view name,
                                 std::string_view what) {
  DF_ASSIGN_OR_RETURN(const nlohmann::json* j, meta_member(meta, name, what));
  if (!j->is_number_unsigned()) {
    return Status::invalid(std::string(what) + ": meta '" + std::string(name) +
                           "' must be a non-negative integer");
  }
  return j->get<uint64_t>();
}

Result<bool> bool_from_meta(const nlohmann::json& meta, std::string_view name,
                            std::string_view what) {
  DF_ASSIGN_OR_RETURN(const nlohmann::json* j, meta_member(meta, name, what));
  if (!j->is_boolean()) {
    return Status::invalid(std::string(what) + ": meta '" + std::string(name) +
                           "' must be true or false");
  }
  return j->get<bool>();
}

}  // namespace df::operators
