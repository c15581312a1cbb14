// CheckpointStorage on S3 via libcurl (storage.h).
//
// Requests are path-style (<endpoint>/<bucket>/<key>) and signed by libcurl's
// SigV4 (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3") with an unsigned payload
// (x-amz-content-sha256: UNSIGNED-PAYLOAD), so bodies stream from files in
// constant memory. Files above multipart_threshold go as a multipart upload
// (aborted on failure). Every request is retried on transport errors, 5xx and
// 429 with exponential backoff and full jitter (base 100 ms, cap 5 s) up to
// max_attempts; other 4xx are final at once. Easy handles are pooled so that
// consecutive and parallel requests reuse their connections.
//
// Note on libcurl 7.88's SigV4: it signs the query string as given, so every
// query here is built already canonical (parameters sorted, RFC 3986 encoded,
// "name=" for empty values).
#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "engine/checkpoint/s3_xml.h"
#include "engine/checkpoint/storage.h"
#include "engine/core/backoff.h"

namespace df::checkpoint {

namespace s3 {

namespace {

// Offset of "<name" followed by '>', '/', or whitespace, at or after from.
size_t find_open(std::string_view xml, std::string_view name, size_t from, size_t* content_start,
                 bool* self_closing) {
  while (true) {
    size_t p = xml.find('<', from);
    if (p == std::string_view::npos) return p;
    size_t q = p + 1;
    if (xml.substr(q, name.size()) == name && q + name.size() < xml.size()) {
      char c = xml[q + name.size()];
      if (c == '>' || c == '/' || c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        size_t gt = xml.find('>', q + name.size());
        if (gt == std::string_view::npos) return std::string_view::npos;
        *self_closing = xml[gt - 1] == '/';
        *content_start = gt + 1;
        return p;
      }
    }
    from = p + 1;
  }
}

// Raw inner text of the first <name> at or after from.
std::optional<std::string_view> raw_element(std::string_view xml, std::string_view name,
                                            size_t from, size_t* end) {
  size_t start = 0;
  bool self_closing = false;
  size_t p = find_open(xml, name, from, &start, &self_closing);
  if (p == std::string_view::npos) return std::nullopt;
  if (self_closing) {
    if (end) *end = start;
    return std::string_view();
  }
  std::string close = "</" + std::string(name) + ">";
  size_t c = xml.find(close, start);
  if (c == std::string_view::npos) return std::nullopt;
  if (end) *end = c + close.size();
  return xml.substr(start, c - start);
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string xml_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12) {
      out += s[i];
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out += '&';
    } else if (ent == "lt") {
      out += '<';
    } else if (ent == "gt") {
      out += '>';
    } else if (ent == "quot") {
      out += '"';
    } else if (ent == "apos") {
      out += '\'';
    } else if (ent.size() > 1 && ent[0] == '#') {
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      std::string_view digits = ent.substr(hex ? 2 : 1);
      uint32_t cp = 0;
      auto [ptr, ec] =
          std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
      if (ec != std::errc() || ptr != digits.data() + digits.size() || digits.empty() ||
          cp > 0x10FFFF) {
        out += s[i];
        continue;
      }
      append_utf8(out, cp);
    } else {
      out += s[i];
      continue;
    }
    i = semi;
  }
  return out;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::optional<std::string> xml_element(std::string_view xml, std::string_view name, size_t from,
                                       size_t* end) {
  auto raw = raw_element(xml, name, from, end);
  if (!raw) return std::nullopt;
  return xml_unescape(*raw);
}

std::vector<std::string_view> xml_elements_raw(std::string_view xml, std::string_view name) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (true) {
    size_t end = 0;
    auto raw = raw_element(xml, name, pos, &end);
    if (!raw) break;
    out.push_back(*raw);
    pos = end;
  }
  return out;
}

std::optional<ListPage> parse_list_objects_v2(std::string_view xml) {
  if (xml.find("<ListBucketResult") == std::string_view::npos) return std::nullopt;
  ListPage page;
  for (std::string_view contents : xml_elements_raw(xml, "Contents")) {
    auto key = xml_element(contents, "Key");
    if (!key) return std::nullopt;
    ListPage::Item item{std::move(*key), 0};
    if (auto size = xml_element(contents, "Size")) {
      std::string_view s = trim(*size);
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), item.size);
      if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
    }
    page.items.push_back(std::move(item));
  }
  // IsTruncated and NextContinuationToken of the result, not of an entry.
  size_t tail = xml.rfind("</Contents>");
  tail = tail == std::string_view::npos ? 0 : tail;
  size_t head_end = xml.find("<Contents");
  std::string_view head = xml.substr(0, head_end);
  std::string_view rest = xml.substr(tail);
  auto truncated = xml_element(head, "IsTruncated");
  if (!truncated) truncated = xml_element(rest, "IsTruncated");
  page.truncated = truncated && trim(*truncated) == "true";
  auto token = xml_element(head, "NextContinuationToken");
  if (!token) token = xml_element(rest, "NextContinuationToken");
  if (token) page.next_token = std::string(trim(*token));
  if (page.truncated && page.next_token.empty()) return std::nullopt;
  return page;
}

ErrorInfo parse_error(std::string_view xml) {
  ErrorInfo info;
  size_t err = xml.find("<Error");
  if (err == std::string_view::npos) return info;
  std::string_view body = xml.substr(err);
  if (auto code = xml_element(body, "Code")) info.code = std::string(trim(*code));
  if (auto msg = xml_element(body, "Message")) info.message = std::string(trim(*msg));
  return info;
}

std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace s3

namespace {

using namespace std::chrono_literals;
using s3::uri_encode;

std::string env_or(const std::string& value, std::initializer_list<const char*> names,
                   const std::string& fallback = {}) {
  if (!value.empty()) return value;
  for (const char* n : names) {
    const char* v = std::getenv(n);
    if (v != nullptr && *v != '\0') return v;
  }
  return fallback;
}

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Easy handles kept for reuse: each keeps its connections alive.
class HandlePool {
 public:
  ~HandlePool() {
    for (CURL* h : free_) curl_easy_cleanup(h);
  }
  CURL* acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        CURL* h = free_.back();
        free_.pop_back();
        curl_easy_reset(h);  // keeps live connections and caches
        return h;
      }
    }
    return curl_easy_init();
  }
  void release(CURL* h) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < kMaxIdle) {
      free_.push_back(h);
      return;
    }
    curl_easy_cleanup(h);
  }

 private:
  static constexpr size_t kMaxIdle = 16;
  std::mutex mu_;
  std::vector<CURL*> free_;
};

struct Request {
  const char* method = "GET";
  std::string key;    // full object key (with the prefix); empty: the bucket
  std::string query;  // canonical query string, without '?'
  // Request body: memory, or a range of a file.
  std::string_view body;
  int in_fd = -1;
  uint64_t in_offset = 0;
  uint64_t in_length = 0;
  bool has_body = false;
  // Response body of a 2xx answer: memory, or a file (rewritten per attempt).
  int out_fd = -1;
};

struct Response {
  long status = 0;
  std::string body;  // the 2xx body when no out_fd, else the error body
  std::string etag;
};

// State one transfer's callbacks share.
struct Transfer {
  const Request* req = nullptr;
  Response* resp = nullptr;
  CURL* handle = nullptr;
  uint64_t read_pos = 0;  // within the request body
  uint64_t written = 0;   // to out_fd
  int local_errno = 0;    // a local read/write failed (not retryable)
  std::string local_error;
};

size_t read_cb(char* buf, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const Request& r = *t->req;
  size_t cap = size * n;
  uint64_t total = r.in_fd >= 0 ? r.in_length : r.body.size();
  size_t want = static_cast<size_t>(std::min<uint64_t>(cap, total - t->read_pos));
  if (want == 0) return 0;
  if (r.in_fd < 0) {
    std::memcpy(buf, r.body.data() + t->read_pos, want);
    t->read_pos += want;
    return want;
  }
  for (;;) {
    ssize_t got = ::pread(r.in_fd, buf, want, static_cast<off_t>(r.in_offset + t->read_pos));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      t->local_errno = got < 0 ? errno : EIO;
      t->local_error = got < 0 ? "read failed" : "the file shrank while being uploaded";
      return CURL_READFUNC_ABORT;
    }
    t->read_pos += static_cast<uint64_t>(got);
    return static_cast<size_t>(got);
  }
}

int seek_cb(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
  t->read_pos = static_cast<uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

size_t write_cb(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  long code = 0;
  curl_easy_getinfo(t->handle, CURLINFO_RESPONSE_CODE, &code);
  bool success = code >= 200 && code < 300;
  if (!success || t->req->out_fd < 0) {
    if (!success && t->resp->body.size() > (64u << 10)) return len;  // error bodies are small
    t->resp->body.append(data, len);
    return len;
  }
  size_t done = 0;
  while (done < len) {
    ssize_t w = ::pwrite(t->req->out_fd, data + done, len - done, static_cast<off_t>(t->written));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      t->local_errno = errno;
      t->local_error = "write failed";
      return 0;  // aborts the transfer
    }
    done += static_cast<size_t>(w);
    t->written += static_cast<uint64_t>(w);
  }
  return len;
}

size_t header_cb(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  std::string_view line(data, len);
  if (line.starts_with("HTTP/")) {
    t->resp->etag.clear();  // a new response (after 100 Continue, say)
  } else if (line.size() > 5 && strncasecmp(line.data(), "etag:", 5) == 0) {
    std::string_view v = line.substr(5);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' '))
      v.remove_suffix(1);
    t->resp->etag = std::string(v);
  }
  return len;
}

bool transient_curl(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

class S3Storage final : public CheckpointStorage {
 public:
  S3Storage(std::string bucket, std::string prefix, const S3Options& o)
      : bucket_(std::move(bucket)), prefix_(std::move(prefix)), opts_(o) {
    curl_init_once();
    opts_.region = env_or(o.region, {"AWS_REGION", "AWS_DEFAULT_REGION"}, "us-east-1");
    opts_.endpoint =
        env_or(o.endpoint, {"AWS_ENDPOINT_URL"}, "https://s3." + opts_.region + ".amazonaws.com");
    while (!opts_.endpoint.empty() && opts_.endpoint.back() == '/') opts_.endpoint.pop_back();
    if (o.access_key_id.empty()) {
      // Keys and token come together from the environment.
      opts_.access_key_id = env_or({}, {"AWS_ACCESS_KEY_ID"});
      opts_.secret_access_key = env_or({}, {"AWS_SECRET_ACCESS_KEY"});
      opts_.session_token = env_or({}, {"AWS_SESSION_TOKEN"});
    }
    opts_.max_attempts = std::max(1, o.max_attempts);
    opts_.list_page_size = std::clamp(o.list_page_size, 1, 1000);
    if (opts_.part_size == 0) opts_.part_size = 8u << 20;
    sigv4_ = "aws:amz:" + opts_.region + ":s3";
  }

  std::string describe() const override {
    return "s3://" + bucket_ + (prefix_.empty() ? "" : "/" + prefix_);
  }

  Status put_bytes(const std::string& key, std::string_view data) override {
    DF_RETURN_IF_ERROR(validate_key(key));
    Request r;
    r.method = "PUT";
    r.key = full_key(key);
    r.body = data;
    r.has_body = true;
    Response resp;
    return perform(r, resp, key);
  }

  Status put_file(const std::string& key, const std::string& path) override {
    DF_RETURN_IF_ERROR(validate_key(key));
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      std::string msg = "cannot open " + path + " to upload it as " + key + ": " + errno_text(e);
      return e == ENOENT ? Status::not_found(msg) : Status::io_error(msg);
    }
    struct stat st {};
    Status s;
    if (::fstat(fd, &st) != 0) {
      s = Status::io_error("cannot stat " + path + ": " + errno_text(errno));
    } else if (static_cast<uint64_t>(st.st_size) > opts_.multipart_threshold) {
      s = multipart(key, fd, static_cast<uint64_t>(st.st_size), path);
    } else {
      Request r;
      r.method = "PUT";
      r.key = full_key(key);
      r.in_fd = fd;
      r.in_length = static_cast<uint64_t>(st.st_size);
      r.has_body = true;
      Response resp;
      s = perform(r, resp, key);
    }
    ::close(fd);
    return s;
  }

  Result<std::string> get_bytes(const std::string& key) override {
    DF_RETURN_IF_ERROR(validate_key(key));
    Request r;
    r.key = full_key(key);
    Response resp;
    DF_RETURN_IF_ERROR(perform(r, resp, key));
    return std::move(resp.body);
  }

  Status get_file(const std::string& key, const std::string& path) override {
    DF_RETURN_IF_ERROR(validate_key(key));
    std::filesystem::path dst = std::filesystem::absolute(path);
    std::error_code ec;
    std::filesystem::create_directories(dst.parent_path(), ec);
    if (ec)
      return Status::io_error("cannot create directory " + dst.parent_path().string() + ": " +
                              ec.message());
    static std::atomic<uint64_t> counter{0};
    std::string tmp =
        (dst.parent_path() / (".df-tmp-" + std::to_string(::getpid()) + "-" +
                              std::to_string(counter++) + "-" + dst.filename().string()))
            .string();
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Status::io_error("cannot create " + tmp + ": " + errno_text(errno));
    Request r;
    r.key = full_key(key);
    r.out_fd = fd;
    Response resp;
    Status s = perform(r, resp, key);
    if (s.ok() && ::fsync(fd) != 0)
      s = Status::io_error("cannot fsync " + tmp + ": " + errno_text(errno));
    if (::close(fd) != 0 && s.ok())
      s = Status::io_error("cannot close " + tmp + ": " + errno_text(errno));
    if (s.ok() && ::rename(tmp.c_str(), dst.c_str()) != 0) {
      s = Status::io_error("cannot rename " + tmp + " to " + dst.string() + ": " +
                           errno_text(errno));
    }
    if (!s.ok()) ::unlink(tmp.c_str());
    return s;
  }

  Result<std::vector<ObjectInfo>> list(const std::string& prefix) override {
    std::string full_prefix = prefix_.empty() ? prefix : prefix_ + "/" + prefix;
    std::vector<ObjectInfo> out;
    std::string token;
    // Bounded: S3 never returns an empty truncated page, but a broken server could.
    for (int page_no = 0; page_no < 1000000; ++page_no) {
      // Parameters in canonical (sorted) order.
      Request r;
      if (!token.empty()) r.query = "continuation-token=" + uri_encode(token, false) + "&";
      r.query += "list-type=2&max-keys=" + std::to_string(opts_.list_page_size) +
                 "&prefix=" + uri_encode(full_prefix, false);
      Response resp;
      DF_RETURN_IF_ERROR(perform(r, resp, prefix.empty() ? "(all keys)" : prefix + "*"));
      auto page = s3::parse_list_objects_v2(resp.body);
      if (!page) {
        return Status::io_error("listing " + prefix + " in " + describe() +
                                " returned a response that is not a ListObjectsV2 result");
      }
      for (auto& item : page->items) {
        std::string_view k = item.key;
        if (!prefix_.empty()) {
          if (!k.starts_with(prefix_ + "/")) continue;
          k.remove_prefix(prefix_.size() + 1);
        }
        out.push_back({std::string(k), item.size});
      }
      if (!page->truncated) break;
      if (page->next_token == token) {
        return Status::io_error("listing " + prefix + " in " + describe() + " did not advance");
      }
      token = std::move(page->next_token);
    }
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return out;
  }

  Status remove(const std::string& key) override {
    DF_RETURN_IF_ERROR(validate_key(key));
    Request r;
    r.method = "DELETE";
    r.key = full_key(key);
    Response resp;
    Status s = perform(r, resp, key);
    if (s.code() == StatusCode::kNotFound && resp.status == 404) {
      auto err = s3::parse_error(resp.body);
      if (err.code != "NoSuchBucket") return Status::OK();
    }
    return s;
  }

 private:
  std::string full_key(const std::string& key) const {
    return prefix_.empty() ? key : prefix_ + "/" + key;
  }

  Status multipart(const std::string& key, int fd, uint64_t size, const std::string& path) {
    // At most 10000 parts: grow the part size for huge files.
    uint64_t part = std::max<uint64_t>(opts_.part_size, (size + 9999) / 10000);
    Request create;
    create.method = "POST";
    create.key = full_key(key);
    create.query = "uploads=";
    create.has_body = true;
    Response cresp;
    DF_RETURN_IF_ERROR(perform(create, cresp, key));
    auto upload_id = s3::xml_element(cresp.body, "UploadId");
    if (!upload_id || upload_id->empty()) {
      return Status::io_error("S3 did not return an upload id for the multipart upload of " + key +
                              " to " + describe());
    }
    std::string id_q = "uploadId=" + uri_encode(*upload_id, false);
    std::string complete = "<CompleteMultipartUpload>";
    Status s;
    int number = 1;
    for (uint64_t off = 0; off < size; off += part, ++number) {
      Request r;
      r.method = "PUT";
      r.key = full_key(key);
      r.query = "partNumber=" + std::to_string(number) + "&" + id_q;
      r.in_fd = fd;
      r.in_offset = off;
      r.in_length = std::min(part, size - off);
      r.has_body = true;
      Response resp;
      s = perform(r, resp, key + " (part " + std::to_string(number) + ")");
      if (!s.ok()) break;
      if (resp.etag.empty()) {
        s = Status::io_error("S3 returned no ETag for part " + std::to_string(number) + " of " +
                             key);
        break;
      }
      complete += "<Part><PartNumber>" + std::to_string(number) + "</PartNumber><ETag>" +
                  s3::xml_escape(resp.etag) + "</ETag></Part>";
    }
    if (s.ok()) {
      complete += "</CompleteMultipartUpload>";
      Request r;
      r.method = "POST";
      r.key = full_key(key);
      r.query = id_q;
      r.body = complete;
      r.has_body = true;
      Response resp;
      s = perform(r, resp, key);
      if (s.ok()) return s;
    }
    // Best effort: a failed abort leaves parts a bucket lifecycle rule removes.
    Request abort;
    abort.method = "DELETE";
    abort.key = full_key(key);
    abort.query = id_q;
    Response aresp;
    perform(abort, aresp, key).ignore();
    return s.with_context("multipart upload of " + path);
  }

  // One attempt. Returns the curl code; fills resp.
  CURLcode attempt(CURL* h, const Request& r, Response& resp, Transfer& t, char* errbuf) {
    t = Transfer{&r, &resp, h, 0, 0, 0, {}};
    resp = Response{};
    if (r.out_fd >= 0 && ::ftruncate(r.out_fd, 0) != 0) {
      t.local_errno = errno;
      t.local_error = "truncate failed";
      return CURLE_WRITE_ERROR;
    }
    std::string url = opts_.endpoint + "/" + bucket_;
    if (!r.key.empty()) url += "/" + uri_encode(r.key, true);
    if (!r.query.empty()) url += "?" + r.query;

    curl_slist* headers = curl_slist_append(nullptr, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (!opts_.session_token.empty()) {
      headers =
          curl_slist_append(headers, ("x-amz-security-token: " + opts_.session_token).c_str());
    }
    if (std::strcmp(r.method, "POST") == 0)
      headers = curl_slist_append(headers, "Content-Type: application/xml");

    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    // A stalled transfer (under 1 byte/s for 60 s) fails as a timeout.
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (!opts_.access_key_id.empty()) {
      curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4_.c_str());
      curl_easy_setopt(h, CURLOPT_USERNAME, opts_.access_key_id.c_str());
      curl_easy_setopt(h, CURLOPT_PASSWORD, opts_.secret_access_key.c_str());
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    if (r.has_body) {
      curl_off_t len = static_cast<curl_off_t>(r.in_fd >= 0 ? r.in_length : r.body.size());
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, len);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
      curl_easy_setopt(h, CURLOPT_READDATA, &t);
      curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
      curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
    }
    if (std::strcmp(r.method, "GET") != 0 && std::strcmp(r.method, "PUT") != 0) {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r.method);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
    curl_slist_free_all(headers);
    return rc;
  }

  // Runs `r` with retries; maps the outcome to a Status naming `what`.
  Status perform(const Request& r, Response& resp, const std::string& what) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::string last_problem;
    for (int attempt_no = 1; attempt_no <= opts_.max_attempts; ++attempt_no) {
      CURL* h = pool_.acquire();
      if (h == nullptr) return Status::resource_exhausted("cannot create a libcurl handle");
      char errbuf[CURL_ERROR_SIZE] = {0};
      Transfer t;
      CURLcode rc = attempt(h, r, resp, t, errbuf);
      pool_.release(h);

      if (t.local_errno != 0) {
        return Status::io_error("S3 " + std::string(r.method) + " of " + what + " in " +
                                describe() + " failed locally: " + t.local_error + ": " +
                                errno_text(t.local_errno));
      }
      if (rc != CURLE_OK) {
        std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
        if (!transient_curl(rc)) {
          return Status::io_error("S3 " + std::string(r.method) + " of " + what + " in " +
                                  describe() + " failed: " + detail);
        }
        last_problem = detail;
      } else if (resp.status >= 200 && resp.status < 300) {
        // CompleteMultipartUpload may answer 200 with an error inside.
        if (std::strcmp(r.method, "POST") != 0 || resp.body.find("<Error>") == std::string::npos) {
          return Status::OK();
        }
        auto err = s3::parse_error(resp.body);
        last_problem = "HTTP 200 with error " + err.code;
      } else if (resp.status >= 500 || resp.status == 429) {
        auto err = s3::parse_error(resp.body);
        last_problem =
            "HTTP " + std::to_string(resp.status) + (err.code.empty() ? "" : " " + err.code);
      } else {
        return final_error(r, resp, what);
      }
      if (attempt_no < opts_.max_attempts) {
        // Full jitter: uniform in [0, min(5 s, 100 ms * 2^(attempt-1))].
        static constexpr Backoff kBackoff{Millis(100), Millis(5000), 2.0};
        std::this_thread::sleep_for(kBackoff.full_jitter(attempt_no, rng));
      }
    }
    return Status::unavailable("S3 " + std::string(r.method) + " of " + what + " in " + describe() +
                               " failed after " + std::to_string(opts_.max_attempts) +
                               " attempts; last: " + last_problem);
  }

  Status final_error(const Request& r, const Response& resp, const std::string& what) const {
    auto err = s3::parse_error(resp.body);
    std::string status =
        "HTTP " + std::to_string(resp.status) + (err.code.empty() ? "" : " " + err.code);
    std::string where = what + " in " + describe();
    if (err.code == "NoSuchBucket") {
      return Status::invalid("S3 bucket " + bucket_ + " does not exist (" + status + " for " +
                             what + ")");
    }
    if (resp.status == 404)
      return Status::not_found("checkpoint object " + where + " does not exist (" + status + ")");
    if (resp.status == 401 || resp.status == 403) {
      return Status::invalid("S3 refused " + std::string(r.method) + " of " + where + " (" +
                             status + "): check the access key, secret key and region");
    }
    return Status::io_error("S3 " + std::string(r.method) + " of " + where + " failed (" + status +
                            (err.message.empty() ? "" : ": " + err.message) + ")");
  }

  std::string bucket_;
  std::string prefix_;
  S3Options opts_;
  std::string sigv4_;
  HandlePool pool_;
};

}  // namespace

Result<std::unique_ptr<CheckpointStorage>> open_s3_storage(const std::string& bucket,
                                                           const std::string& prefix,
                                                           const S3Options& s3) {
  if (bucket.empty() || bucket.find('/') != std::string::npos) {
    return Status::invalid("S3 bucket name '" + bucket + "' is invalid");
  }
  if (!prefix.empty()) DF_RETURN_IF_ERROR(validate_key(prefix));
  auto storage = std::make_unique<S3Storage>(bucket, prefix, s3);
  return std::unique_ptr<CheckpointStorage>(std::move(storage));
}

}  // namespace df::checkpoint
