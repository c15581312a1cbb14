#include "engine/state/keyed_state.h"

namespace df::state {

std::string state_prefix(std::string_view name) {
  std::string p;
  append_key_string(name, p);
  return p;
}

// ---- codecs -------------------------------------------------------------------

Status RowCodec::encode(const Row& row, std::string& out) const {
  if (row.size() != types_.size()) {
    return Status::invalid("state row has " + std::to_string(row.size()) + " fields, expected " +
                           std::to_string(types_.size()));
  }
  for (size_t i = 0; i < row.size(); ++i) {
    const Value& v = row[i];
    if (!v.is_null() && v.type() != types_[i]) {
      return Status::invalid("state row field " + std::to_string(i) + " is " +
                             std::string(type_name(v.type())) + ", expected " +
                             std::string(type_name(types_[i])));
    }
    encode_value(v, out);
  }
  return Status::OK();
}

Status RowCodec::decode(std::string_view in, Row& out) const {
  out.resize(types_.size());
  for (size_t i = 0; i < types_.size(); ++i) {
    DF_ASSIGN_OR_RETURN(out[i], decode_value(in, types_[i]));
  }
  if (!in.empty()) return Status::data_error("trailing bytes after a state row");
  return Status::OK();
}

size_t RowCodec::heap_bytes(const Row& row) const {
  size_t n = row.capacity() * sizeof(Value);
  for (const Value& v : row) {
    if (!v.is_null() && v.type() == TypeId::kString && v.as_string().capacity() > 15) {
      n += v.as_string().capacity() + 1;
    }
  }
  return n;
}

Status Int64Codec::encode(const int64_t& v, std::string& out) const {
  auto u = static_cast<uint64_t>(v);
  char b[8];
  for (char& c : b) {
    c = static_cast<char>(u & 0xFF);
    u >>= 8;
  }
  out.append(b, 8);
  return Status::OK();
}

Status Int64Codec::decode(std::string_view in, int64_t& out) const {
  if (in.size() != 8) return Status::data_error("state int64 value is not 8 bytes");
  uint64_t u = 0;
  for (int i = 7; i >= 0; --i) u = (u << 8) | static_cast<uint8_t>(in[i]);
  out = static_cast<int64_t>(u);
  return Status::OK();
}

// ---- ValueState ------------------------------------------------------------------

ValueState::ValueState(KvStore& store, std::string_view name, std::vector<TypeId> types)
    : ValueState(store, name, std::move(types), Options()) {}

ValueState::ValueState(KvStore& store, std::string_view name, std::vector<TypeId> types,
                       Options options)
    : store_(store), prefix_(state_prefix(name)), codec_(std::move(types)), options_(options) {
  if (options_.max_pending == 0) options_.max_pending = 1;
}

const std::string& ValueState::full_key(std::string_view key) {
  key_buf_.assign(prefix_);
  key_buf_.append(key.data(), key.size());
  return key_buf_;
}

Result<bool> ValueState::decode_stored(std::string_view stored, Row& out, int64_t now_ms) const {
  if (options_.ttl_ms > 0) {
    DF_ASSIGN_OR_RETURN(int64_t expiry, read_ordered_i64(stored));
    if (expiry <= now_ms) return false;
  }
  DF_RETURN_IF_ERROR(codec_.decode(stored, out));
  return true;
}

Status ValueState::stage(std::string_view key, std::optional<std::string> stored) {
  auto it = pending_.find(key);
  if (it != pending_.end()) {
    it->second = std::move(stored);
  } else {
    pending_.emplace(std::string(key), std::move(stored));
  }
  if (pending_.size() >= options_.max_pending) return flush();
  return Status::OK();
}

Result<bool> ValueState::get(std::string_view key, Row& out, int64_t now_ms) {
  const std::string& fk = full_key(key);
  auto it = pending_.find(fk);
  if (it != pending_.end()) {
    if (!it->second) return false;
    return decode_stored(*it->second, out, now_ms);
  }
  DF_ASSIGN_OR_RETURN(std::optional<std::string> stored, store_.get(fk));
  if (!stored) return false;
  DF_ASSIGN_OR_RETURN(bool live, decode_stored(*stored, out, now_ms));
  if (!live) DF_RETURN_IF_ERROR(stage(fk, std::nullopt));  // drop the expired entry
  return live;
}

Result<std::optional<Row>> ValueState::get(std::string_view key, int64_t now_ms) {
  Row row;
  DF_ASSIGN_OR_RETURN(bool found, get(key, row, now_ms));
  if (!found) return std::optional<Row>();
  return std::optional<Row>(std::move(row));
}

Status ValueState::put(std::string_view key, const Row& row, int64_t now_ms) {
  value_buf_.clear();
  if (options_.ttl_ms > 0) {
    // Saturate: an expiry past the end of time never expires.
    int64_t expiry;
    if (__builtin_add_overflow(now_ms, options_.ttl_ms, &expiry)) expiry = INT64_MAX;
    append_ordered_i64(expiry, value_buf_);
  }
  DF_RETURN_IF_ERROR(codec_.encode(row, value_buf_));
  return stage(full_key(key), value_buf_);
}

Status ValueState::remove(std::string_view key) { return stage(full_key(key), std::nullopt); }

Status ValueState::get_many(const std::vector<std::string_view>& keys,
                            std::vector<std::optional<Row>>& out, int64_t now_ms) {
  out.clear();
  out.resize(keys.size());
  std::vector<std::string> full(keys.size());
  std::vector<std::string_view> to_read;
  std::vector<size_t> read_index;
  for (size_t i = 0; i < keys.size(); ++i) {
    full[i] = prefix_;
    full[i].append(keys[i].data(), keys[i].size());
    auto it = pending_.find(full[i]);
    if (it == pending_.end()) {
      to_read.push_back(full[i]);
      read_index.push_back(i);
      continue;
    }
    if (!it->second) continue;
    Row row;
    DF_ASSIGN_OR_RETURN(bool live, decode_stored(*it->second, row, now_ms));
    if (live) out[i] = std::move(row);
  }
  if (to_read.empty()) return Status::OK();
  std::vector<std::optional<std::string>> stored;
  DF_RETURN_IF_ERROR(store_.multi_get(to_read, stored));
  std::vector<size_t> expired;
  for (size_t j = 0; j < to_read.size(); ++j) {
    if (!stored[j]) continue;
    Row row;
    DF_ASSIGN_OR_RETURN(bool live, decode_stored(*stored[j], row, now_ms));
    if (live) {
      out[read_index[j]] = std::move(row);
    } else {
      expired.push_back(read_index[j]);
    }
  }
  for (size_t i : expired) DF_RETURN_IF_ERROR(stage(full[i], std::nullopt));
  return Status::OK();
}

Status ValueState::flush() {
  if (pending_.empty()) return Status::OK();
  WriteBatch batch;
  for (const auto& [key, stored] : pending_) {
    if (stored) {
      batch.put(key, *stored);
    } else {
      batch.remove(key);
    }
  }
  DF_RETURN_IF_ERROR(store_.write(batch));
  pending_.clear();
  return Status::OK();
}

Result<size_t> ValueState::purge_expired(int64_t now_ms) {
  DF_RETURN_IF_ERROR(flush());
  if (options_.ttl_ms <= 0) return size_t{0};
  // Removes in chunks so a large state never builds one huge batch; each
  // round resumes after the last key it saw, so the loop ends at the prefix end.
  constexpr size_t kChunk = 4096;
  const std::string end = prefix_end(prefix_);
  std::string resume = prefix_;
  size_t removed = 0;
  for (;;) {
    WriteBatch batch;
    Status decode_status;
    size_t seen = 0;
    std::string last;
    DF_RETURN_IF_ERROR(store_.scan(resume, end, [&](std::string_view k, std::string_view v) {
      auto expiry = read_ordered_i64(v);
      if (!expiry.ok()) {
        decode_status = expiry.status();
        return false;
      }
      if (*expiry <= now_ms) batch.remove(k);
      last.assign(k.data(), k.size());
      return ++seen < kChunk;
    }));
    DF_RETURN_IF_ERROR(decode_status);
    DF_RETURN_IF_ERROR(store_.write(batch));
    removed += batch.size();
    if (seen < kChunk) break;
    resume = std::move(last);
    resume.push_back('\0');  // the smallest key after `last`
  }
  return removed;
}

// ---- MapState ----------------------------------------------------------------------

MapState::MapState(KvStore& store, std::string_view name, std::vector<TypeId> types)
    : store_(store), prefix_(state_prefix(name)), codec_(std::move(types)) {}

const std::string& MapState::full_key(std::string_view key, std::string_view user_key) {
  key_buf_.assign(prefix_);
  key_buf_.append(key.data(), key.size());
  key_buf_.append(user_key.data(), user_key.size());
  return key_buf_;
}

Result<bool> MapState::get(std::string_view key, std::string_view user_key, Row& out) {
  DF_ASSIGN_OR_RETURN(std::optional<std::string> stored, store_.get(full_key(key, user_key)));
  if (!stored) return false;
  DF_RETURN_IF_ERROR(codec_.decode(*stored, out));
  return true;
}

Status MapState::put(std::string_view key, std::string_view user_key, const Row& row) {
  value_buf_.clear();
  DF_RETURN_IF_ERROR(codec_.encode(row, value_buf_));
  return store_.put(full_key(key, user_key), value_buf_);
}

Status MapState::remove(std::string_view key, std::string_view user_key) {
  return store_.remove(full_key(key, user_key));
}

Status MapState::for_each(
    std::string_view key,
    const std::function<bool(std::string_view user_key, const Row& row)>& fn) {
  const std::string begin = full_key(key, {});
  const std::string end = prefix_end(begin);
  Status decode_status;
  DF_RETURN_IF_ERROR(store_.scan(begin, end, [&](std::string_view k, std::string_view v) {
    decode_status = codec_.decode(v, row_buf_);
    if (!decode_status.ok()) return false;
    return fn(k.substr(begin.size()), row_buf_);
  }));
  return decode_status;
}

Status MapState::clear(std::string_view key) {
  const std::string begin = full_key(key, {});
  return store_.remove_range(begin, prefix_end(begin));
}

}  // namespace df::state
