// CheckpointStorage on a local directory (storage.h).
//
// put: write a ".df-tmp-*" file in the key's directory, fsync it, rename it
// over the key, fsync the directory: a reader (or a restart after a crash)
// sees the whole object or nothing, and leftover temporaries are never listed.
// Files are copied with copy_file_range (falling back to sendfile, then
// read/write), so bytes never pass through user space when the kernel can
// avoid it. get_file hard-links when it can: objects are never modified.
#include <dirent.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "engine/checkpoint/storage.h"

namespace df::checkpoint {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kTmpPrefix = ".df-tmp-";

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Closes and reports the error of close() (it can report a failed write).
  int close_checked() {
    int rc = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

std::string temp_path(const std::string& dir) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%d-%llu-%08llx", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(counter.fetch_add(1)),
                static_cast<unsigned long long>(rng() & 0xffffffffu));
  return dir + "/" + std::string(kTmpPrefix) + buf;
}

Status fsync_dir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0)
    return Status::io_error("cannot open directory " + dir + ": " + errno_text(errno));
  if (::fsync(fd.get()) != 0) {
    return Status::io_error("cannot fsync directory " + dir + ": " + errno_text(errno));
  }
  return Status::OK();
}

Status write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::io_error("cannot write " + path + ": " + errno_text(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

// Copies everything from `in` (at its offset 0) to `out`: copy_file_range,
// else sendfile, else read/write.
Status copy_fd(int in, int out, const std::string& from, const std::string& to) {
  constexpr size_t kChunk = 64u << 20;
  enum { kCopyRange, kSendfile, kReadWrite } mode = kCopyRange;
  off_t done = 0;
  for (;;) {
    ssize_t n;
    if (mode == kCopyRange) {
      n = ::copy_file_range(in, nullptr, out, nullptr, kChunk, 0);
      if (n < 0 && done == 0 &&
          (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
           errno == EPERM)) {
        mode = kSendfile;
        continue;
      }
    } else if (mode == kSendfile) {
      n = ::sendfile(out, in, nullptr, kChunk);
      if (n < 0 && done == 0 && (errno == EINVAL || errno == ENOSYS)) {
        mode = kReadWrite;
        continue;
      }
    } else {
      static constexpr size_t kBuf = 1u << 20;
      std::vector<char> buf(kBuf);
      for (;;) {
        ssize_t r = ::read(in, buf.data(), buf.size());
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return Status::io_error("cannot read " + from + ": " + errno_text(errno));
        if (r == 0) return Status::OK();
        DF_RETURN_IF_ERROR(
            write_all(out, std::string_view(buf.data(), static_cast<size_t>(r)), to));
      }
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::io_error("cannot copy " + from + " to " + to + ": " + errno_text(errno));
    }
    if (n == 0) return Status::OK();
    done += n;
  }
}

// Creates a temporary file in `dir` (creating `dir` if needed; retried
// because a concurrent remove may delete an empty directory meanwhile).
Result<int> create_temp(const std::string& dir, std::string* tmp) {
  for (int attempt = 0;; ++attempt) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Status::io_error("cannot create directory " + dir + ": " + ec.message());
    *tmp = temp_path(dir);
    int fd = ::open(tmp->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return fd;
    if (errno == ENOENT && attempt < 5) continue;
    return Status::io_error("cannot create " + *tmp + ": " + errno_text(errno));
  }
}

class LocalStorage final : public CheckpointStorage {
 public:
  explicit LocalStorage(std::string root) : root_(std::move(root)) {}

  std::string describe() const override { return "file://" + root_; }

  Status put_bytes(const std::string& key, std::string_view data) override {
    DF_RETURN_IF_ERROR(validate_key(key));
    return put(key, [&](int fd, const std::string& tmp) { return write_all(fd, data, tmp); });
  }

  Status put_file(const std::string& key, const std::string& path) override {
    DF_RETURN_IF_ERROR(validate_key(key));
    Fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.get() < 0) {
      int e = errno;
      std::string msg = "cannot open " + path + " to store it as " + key + ": " + errno_text(e);
      return e == ENOENT ? Status::not_found(msg) : Status::io_error(msg);
    }
    return put(key,
               [&](int fd, const std::string& tmp) { return copy_fd(in.get(), fd, path, tmp); });
  }

  Result<std::string> get_bytes(const std::string& key) override {
    DF_RETURN_IF_ERROR(validate_key(key));
    std::string path = path_of(key);
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return open_error(key, path, errno);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
      return Status::io_error("cannot stat " + path + ": " + errno_text(errno));
    std::string out;
    out.reserve(static_cast<size_t>(st.st_size));
    char buf[1 << 16];
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::io_error("cannot read " + path + ": " + errno_text(errno));
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  Status get_file(const std::string& key, const std::string& path) override {
    DF_RETURN_IF_ERROR(validate_key(key));
    std::string src = path_of(key);
    Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.get() < 0) return open_error(key, src, errno);
    fs::path dst = fs::absolute(path);
    std::string dir = dst.parent_path().string();
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Status::io_error("cannot create directory " + dir + ": " + ec.message());

    std::string tmp = temp_path(dir);
    if (::link(src.c_str(), tmp.c_str()) == 0) return rename_into(tmp, dst.string());
    int e = errno;
    if (e != EXDEV && e != EPERM && e != EMLINK && e != EOPNOTSUPP && e != EACCES) {
      return Status::io_error("cannot link " + src + " to " + tmp + ": " + errno_text(e));
    }
    Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (out.get() < 0) return Status::io_error("cannot create " + tmp + ": " + errno_text(errno));
    Status st = copy_fd(in.get(), out.get(), src, tmp);
    if (st.ok() && ::fsync(out.get()) != 0)
      st = Status::io_error("cannot fsync " + tmp + ": " + errno_text(errno));
    if (out.close_checked() != 0 && st.ok())
      st = Status::io_error("cannot close " + tmp + ": " + errno_text(errno));
    if (!st.ok()) {
      ::unlink(tmp.c_str());
      return st;
    }
    return rename_into(tmp, dst.string());
  }

  Result<std::vector<ObjectInfo>> list(const std::string& prefix) override {
    if (prefix.find('\0') != std::string::npos || (!prefix.empty() && prefix.front() == '/')) {
      return Status::invalid("storage list prefix '" + prefix + "' must be relative");
    }
    // Walk only the directory the prefix names; filter by the full prefix.
    std::string dir_part =
        prefix.substr(0, prefix.rfind('/') == std::string::npos ? 0 : prefix.rfind('/') + 1);
    std::vector<ObjectInfo> out;
    DF_RETURN_IF_ERROR(walk(dir_part, prefix, out));
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return out;
  }

  Status remove(const std::string& key) override {
    DF_RETURN_IF_ERROR(validate_key(key));
    std::string path = path_of(key);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Status::io_error("cannot remove " + path + ": " + errno_text(errno));
    }
    // Drop directories left empty (checkpoints/<id>/), never the root.
    std::string rel = key;
    for (size_t slash = rel.rfind('/'); slash != std::string::npos && slash > 0;
         slash = rel.rfind('/')) {
      rel.resize(slash);
      if (::rmdir(path_of(rel).c_str()) != 0) break;
    }
    return Status::OK();
  }

 private:
  std::string path_of(const std::string& key) const { return root_ + "/" + key; }

  Status open_error(const std::string& key, const std::string& path, int e) const {
    if (e == ENOENT || e == ENOTDIR) {
      return Status::not_found("checkpoint object " + key + " does not exist in " + describe());
    }
    return Status::io_error("cannot open " + path + ": " + errno_text(e));
  }

  template <typename Fill>
  Status put(const std::string& key, Fill fill) {
    std::string path = path_of(key);
    std::string dir = path.substr(0, path.rfind('/'));
    std::string tmp;
    DF_ASSIGN_OR_RETURN(int raw_fd, create_temp(dir, &tmp));
    Fd fd(raw_fd);
    Status st = fill(fd.get(), tmp);
    if (st.ok() && ::fsync(fd.get()) != 0)
      st = Status::io_error("cannot fsync " + tmp + ": " + errno_text(errno));
    if (fd.close_checked() != 0 && st.ok())
      st = Status::io_error("cannot close " + tmp + ": " + errno_text(errno));
    if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
      st = Status::io_error("cannot rename " + tmp + " to " + path + ": " + errno_text(errno));
    }
    if (!st.ok()) {
      ::unlink(tmp.c_str());
      return st.with_context("storing " + key + " in " + describe());
    }
    return fsync_dir(dir);
  }

  // rename(2) does nothing when both names are links to the same file (the
  // destination is already this object): remove the temporary then.
  static Status rename_into(const std::string& tmp, const std::string& dst) {
    if (::rename(tmp.c_str(), dst.c_str()) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      return Status::io_error("cannot rename " + tmp + " to " + dst + ": " + errno_text(e));
    }
    struct stat st {};
    if (::lstat(tmp.c_str(), &st) == 0) ::unlink(tmp.c_str());
    return Status::OK();
  }

  // Appends regular files under root_/rel_dir whose key starts with prefix.
  Status walk(const std::string& rel_dir, const std::string& prefix,
              std::vector<ObjectInfo>& out) const {
    std::string dir = rel_dir.empty() ? root_ : root_ + "/" + rel_dir.substr(0, rel_dir.size() - 1);
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      if (errno == ENOENT || errno == ENOTDIR) return Status::OK();  // nothing stored there
      return Status::io_error("cannot list " + dir + ": " + errno_text(errno));
    }
    std::vector<std::pair<std::string, bool>> entries;  // name, is_dir
    Status st;
    for (;;) {
      errno = 0;
      dirent* e = ::readdir(d);
      if (e == nullptr) {
        if (errno != 0) st = Status::io_error("cannot list " + dir + ": " + errno_text(errno));
        break;
      }
      std::string_view name = e->d_name;
      if (name == "." || name == ".." || name.starts_with(kTmpPrefix)) continue;
      struct stat s {};
      if (::fstatat(::dirfd(d), e->d_name, &s, AT_SYMLINK_NOFOLLOW) != 0)
        continue;  // removed meanwhile
      std::string key = rel_dir + std::string(name);
      if (S_ISDIR(s.st_mode)) {
        // Descend only where keys can still match the prefix.
        std::string sub = key + "/";
        if (sub.starts_with(prefix) || prefix.starts_with(sub)) entries.emplace_back(sub, true);
      } else if (S_ISREG(s.st_mode) && key.starts_with(prefix)) {
        out.push_back({std::move(key), static_cast<uint64_t>(s.st_size)});
      }
    }
    ::closedir(d);
    DF_RETURN_IF_ERROR(st);
    for (const auto& [sub, is_dir] : entries) DF_RETURN_IF_ERROR(walk(sub, prefix, out));
    return Status::OK();
  }

  std::string root_;
};

}  // namespace

Result<std::unique_ptr<CheckpointStorage>> open_local_storage(const std::string& dir) {
  if (dir.empty()) return Status::invalid("the checkpoint directory is empty");
  std::error_code ec;
  fs::path root = fs::absolute(dir, ec);
  if (ec)
    return Status::invalid("checkpoint directory " + dir + " is not a valid path: " + ec.message());
  root = root.lexically_normal();
  std::string s = root.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  fs::create_directories(s, ec);
  if (ec) return Status::io_error("cannot create checkpoint directory " + s + ": " + ec.message());
  if (!fs::is_directory(s, ec))
    return Status::invalid("checkpoint storage " + s + " is not a directory");
  return std::unique_ptr<CheckpointStorage>(std::make_unique<LocalStorage>(std::move(s)));
}

}  // namespace df::checkpoint
