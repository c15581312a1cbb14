// open_storage(url) and key validation (storage.h).
#include <string>

#include "engine/checkpoint/storage.h"

namespace df::checkpoint {

Status validate_key(std::string_view key) {
  auto bad = [&](std::string_view why) {
    return Status::invalid("storage key '" + std::string(key) +
                           "' is invalid: " + std::string(why));
  };
  if (key.empty()) return bad("it is empty");
  if (key.find('\0') != std::string_view::npos) return bad("it contains a NUL byte");
  if (key.front() == '/') return bad("it starts with '/'");
  if (key.back() == '/') return bad("it ends with '/'");
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view seg = key.substr(start, end - start);
    if (seg.empty()) return bad("it contains an empty segment ('//')");
    if (seg == "." || seg == "..") return bad("it contains a '.' or '..' segment");
    if (seg.starts_with(".df-tmp-"))
      return bad("'.df-tmp-' names are reserved for temporary files");
    start = end + 1;
  }
  return Status::OK();
}

Result<std::unique_ptr<CheckpointStorage>> open_storage(const std::string& url,
                                                        const S3Options& s3) {
  std::string_view u = url;
  if (u.starts_with("s3://")) {
    std::string_view rest = u.substr(5);
    size_t slash = rest.find('/');
    std::string bucket(rest.substr(0, slash));
    std::string prefix(slash == std::string_view::npos ? std::string_view()
                                                       : rest.substr(slash + 1));
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (bucket.empty())
      return Status::invalid("checkpoint storage URL " + url + " names no bucket");
    if (!prefix.empty()) {
      Status st = validate_key(prefix);
      if (!st.ok())
        return Status::invalid("checkpoint storage URL " + url + " has an invalid prefix");
    }
    return open_s3_storage(bucket, prefix, s3);
  }
  if (u.starts_with("file://")) {
    std::string_view rest = u.substr(7);
    if (rest.starts_with("localhost/")) rest.remove_prefix(9);
    if (!rest.starts_with("/")) {
      return Status::invalid("checkpoint storage URL " + url +
                             " must be file:///absolute/path (a host is not supported)");
    }
    return open_local_storage(std::string(rest));
  }
  size_t scheme = u.find("://");
  if (scheme != std::string_view::npos) {
    return Status::invalid(
        "checkpoint storage URL " + url +
        " has an unsupported scheme; use s3://bucket/prefix, file:///path or a path");
  }
  return open_local_storage(url);
}

}  // namespace df::checkpoint
