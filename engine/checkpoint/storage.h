// CheckpointStorage: where checkpoints live (DESIGN §4), a local directory or
// an S3 bucket, addressed by '/'-separated keys relative to the storage root:
//   <pipeline>/checkpoints/<id>/manifest.json
//   <pipeline>/shared/<file>
//   <pipeline>/_CURRENT
//
// Every put is atomic: a reader sees the whole object or none (local: write
// to a temporary name, fsync, rename, fsync the directory; S3: a PUT or a
// completed multipart upload). Transient failures (S3 5xx, throttling,
// connection resets) are retried inside with exponential backoff and full
// jitter; what is returned is final.
//
// Threading: every method is thread-safe; uploads of several files may run in
// parallel on the coordinator's I/O threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/status.h"

namespace df::checkpoint {

struct ObjectInfo {
  std::string key;  // relative to the storage root
  uint64_t size = 0;
};

class CheckpointStorage {
 public:
  virtual ~CheckpointStorage() = default;
  // "file:///var/lib/dataflow/checkpoints" or "s3://bucket/prefix", for messages.
  virtual std::string describe() const = 0;
  virtual Status put_bytes(const std::string& key, std::string_view data) = 0;
  // Uploads the local file `path` (large files: multipart on S3).
  virtual Status put_file(const std::string& key, const std::string& path) = 0;
  // kNotFound when the key does not exist.
  virtual Result<std::string> get_bytes(const std::string& key) = 0;
  // Writes the object to local `path` (replacing it; temp name + rename).
  // Local storage may hard-link instead of copying when `path` is on the
  // same filesystem (objects are never modified in place). kNotFound when
  // the key does not exist.
  virtual Status get_file(const std::string& key, const std::string& path) = 0;
  // Keys under `prefix` (a "directory" ending in '/'), in byte order.
  virtual Result<std::vector<ObjectInfo>> list(const std::string& prefix) = 0;
  // Removing a missing key is OK.
  virtual Status remove(const std::string& key) = 0;
};

// S3 connection settings. Empty fields fall back to AWS_ENDPOINT_URL,
// AWS_REGION (then AWS_DEFAULT_REGION, then us-east-1), AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
struct S3Options {
  std::string endpoint;  // "http://127.0.0.1:4569"; empty: https://s3.<region>.amazonaws.com
  std::string region;
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  uint64_t multipart_threshold = 16u << 20;  // files above this go in parts
  uint64_t part_size = 8u << 20;
  int max_attempts = 5;
  // Keys asked for per ListObjectsV2 request (S3 caps it at 1000).
  int list_page_size = 1000;
};

// "s3://bucket/prefix" -> S3 (path-style requests); a plain path or
// "file:///abs/path" -> a local directory (created if missing).
Result<std::unique_ptr<CheckpointStorage>> open_storage(const std::string& url,
                                                        const S3Options& s3 = {});

// A local directory (created if missing; `dir` made absolute). Temporary files
// of puts in progress are named ".df-tmp-*" and never listed.
Result<std::unique_ptr<CheckpointStorage>> open_local_storage(const std::string& dir);

// An S3 bucket; `prefix` (no leading or trailing '/', may be empty) is put in
// front of every key as "<prefix>/<key>".
Result<std::unique_ptr<CheckpointStorage>> open_s3_storage(const std::string& bucket,
                                                           const std::string& prefix,
                                                           const S3Options& s3 = {});

// kInvalidArgument unless `key` is a relative '/'-separated path: not empty,
// no leading or trailing '/', no empty, "." or ".." segments, no NUL, and no
// segment starting with ".df-tmp-" (reserved for temporary files).
Status validate_key(std::string_view key);

}  // namespace df::checkpoint
