#include "connectors/file_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "connectors/format/csv.h"
#include "connectors/format/json.h"
#include "connectors/io_queue.h"
#include "connectors/options.h"
#include "engine/core/log.h"

namespace df::connectors {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// Encoded bytes are handed to the I/O strand in pieces of about this size.
constexpr size_t kFlushBytes = 1u << 20;

struct FileSinkConfig {
  std::string path;
  Format format = Format::kJson;
  CsvOptions csv;
  uint64_t max_rows = 0;   // 0 = no limit
  uint64_t max_bytes = 0;  // 0 = no limit
  Delivery delivery = Delivery::kAtLeastOnce;
  SchemaPtr schema;  // the input's
};

// --- Part file names --------------------------------------------------------
// Committed: part-<subtask>-<seq><ext>; in progress: .part-<subtask>-<seq>.inprogress

std::string committed_prefix(int subtask) { return "part-" + std::to_string(subtask) + "-"; }
std::string inprogress_prefix(int subtask) { return ".part-" + std::to_string(subtask) + "-"; }

std::string inprogress_name(int subtask, uint64_t seq) {
  return inprogress_prefix(subtask) + std::to_string(seq) + ".inprogress";
}

// The seq of `name` when it is `prefix` + digits + a rest that `rest_ok` accepts.
template <typename RestOk>
std::optional<uint64_t> parse_seq(std::string_view name, std::string_view prefix, RestOk rest_ok) {
  if (!name.starts_with(prefix)) return std::nullopt;
  const char* begin = name.data() + prefix.size();
  const char* end = name.data() + name.size();
  uint64_t seq = 0;
  auto [p, err] = std::from_chars(begin, end, seq);
  if (err != std::errc() || p == begin) return std::nullopt;
  if (!rest_ok(std::string_view(p, static_cast<size_t>(end - p)))) return std::nullopt;
  return seq;
}

std::optional<uint64_t> committed_seq(std::string_view name, int subtask) {
  return parse_seq(name, committed_prefix(subtask),
                   [](std::string_view rest) { return rest.starts_with('.'); });
}

std::optional<uint64_t> inprogress_seq(std::string_view name, int subtask) {
  return parse_seq(name, inprogress_prefix(subtask),
                   [](std::string_view rest) { return rest == ".inprogress"; });
}

// Makes renames and removals in `dir` durable.
Status sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::io_error("cannot open directory " + dir + ": " + std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::io_error("cannot sync directory " + dir + ": " + std::strerror(err));
  return Status::OK();
}

// `_part-<subtask>.next-seq`: sink metadata, not output (a leading '_'),
// never matches a part name; holds the first seq not used yet when a restore
// deleted in-progress parts.
std::string seq_marker_name(int subtask) {
  return "_part-" + std::to_string(subtask) + ".next-seq";
}

Result<uint64_t> read_seq_marker(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::io_error("cannot open " + path + ": " + std::strerror(errno));
  char buf[32];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  uint64_t seq = 0;
  if (n <= 0 || std::from_chars(buf, buf + n, seq).ec != std::errc()) {
    return Status::io_error("cannot read a sequence number from " + path);
  }
  return seq;
}

// Durably: a temp file, fsync, rename over the marker, fsync the directory.
Status write_seq_marker(const std::string& dir, const std::string& marker, uint64_t seq) {
  std::string tmp = (fs::path(dir) / (marker + ".tmp")).string();
  std::string path = (fs::path(dir) / marker).string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::io_error("cannot create " + tmp + ": " + std::strerror(errno));
  Status s = write_all(fd, std::to_string(seq), tmp);
  if (s.ok() && ::fsync(fd) != 0) {
    s = Status::io_error("cannot sync " + tmp + ": " + std::strerror(errno));
  }
  ::close(fd);
  DF_RETURN_IF_ERROR(s);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::io_error("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  }
  return sync_dir(dir);
}

// Renames a pending part to its committed name. Idempotent: a part already
// committed (in-progress gone, committed there) is fine. `missing` says what
// happens when neither exists.
enum class Missing { kError, kWarn };
Status commit_pending(const std::string& dir, int subtask, const std::string& committed,
                      Missing missing) {
  auto seq = committed_seq(committed, subtask);
  if (!seq)
    return Status::internal("not a part file name of subtask " + std::to_string(subtask) + ": '" +
                            committed + "'");
  std::string from = (fs::path(dir) / inprogress_name(subtask, *seq)).string();
  std::string to = (fs::path(dir) / committed).string();
  if (::rename(from.c_str(), to.c_str()) == 0) return Status::OK();
  int err = errno;
  std::error_code ec;
  if (err == ENOENT && fs::exists(to, ec)) return Status::OK();  // committed before
  if (err == ENOENT) {
    std::string m = "pending part file " + from + " is missing (neither it nor " + to +
                    " exists): its rows are lost";
    if (missing == Missing::kError) return Status::io_error(std::move(m));
    log_warn("file-sink", m);
    return Status::OK();
  }
  return Status::io_error("cannot rename " + from + " to " + to + ": " + std::strerror(err));
}

// One checkpoint's pre-committed parts (exactly-once).
struct Pending {
  uint64_t checkpoint = 0;
  std::vector<std::string> files;  // committed names, e.g. part-0-3.jsonl
};

// What a restored snapshot of this sink recorded.
struct SinkMeta {
  uint64_t next_seq = 0;
  std::vector<Pending> pending;
};

Result<SinkMeta> parse_meta(const std::string& text, int subtask) {
  SinkMeta m;
  try {
    Json j = Json::parse(text);
    if (!j.is_object()) return Status::invalid("expected a JSON object");
    if (j.contains("next_seq")) m.next_seq = j.at("next_seq").get<uint64_t>();
    if (j.contains("pending")) {
      for (const Json& p : j.at("pending")) {
        Pending entry;
        entry.checkpoint = p.at("checkpoint").get<uint64_t>();
        for (const Json& f : p.at("files")) {
          std::string name = f.get<std::string>();
          if (name.find('/') != std::string::npos || !committed_seq(name, subtask)) {
            return Status::invalid("'" + name + "' is not a part file of subtask " +
                                   std::to_string(subtask));
          }
          entry.files.push_back(std::move(name));
        }
        m.pending.push_back(std::move(entry));
      }
    }
  } catch (const Json::exception& e) {
    return Status::invalid(e.what());
  }
  return m;
}

// Prepares the directory when the subtask opens: creates it, and on a resumed
// run commits the pending parts of the restored checkpoint and deletes every
// other in-progress part of this subtask (rows the failed attempt wrote after
// the checkpoint; they are produced again). Returns the first seq to use: past
// every committed or in-progress part of this subtask and the meta's next_seq,
// so a name is never reused, not even across crashes. `two_phase` without
// `restored` (exactly-once, first checkpointed run) also deletes this
// subtask's in-progress parts: earlier attempts that never completed a
// checkpoint left them, and their rows are produced again.
Result<uint64_t> prepare_dir(const std::string& dir, int subtask, const SinkMeta* restored,
                             bool two_phase) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::io_error("cannot create directory " + dir + ": " + ec.message());
  uint64_t next = restored ? restored->next_seq : 0;
  if (restored) {
    for (const Pending& p : restored->pending) {
      for (const std::string& f : p.files) {
        DF_RETURN_IF_ERROR(commit_pending(dir, subtask, f, Missing::kWarn));
      }
    }
  }
  std::vector<fs::path> stale;
  const std::string marker = seq_marker_name(subtask);
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (auto seq = committed_seq(name, subtask)) {
      next = std::max(next, *seq + 1);
    } else if (auto seq2 = inprogress_seq(name, subtask)) {
      next = std::max(next, *seq2 + 1);
      stale.push_back(entry.path());
    } else if (name == marker) {
      DF_ASSIGN_OR_RETURN(uint64_t marked, read_seq_marker(entry.path().string()));
      next = std::max(next, marked);
    }
  }
  if (ec) return Status::io_error("cannot list directory " + dir + ": " + ec.message());
  if ((restored || two_phase) && !stale.empty()) {
    // The deleted parts' seqs must stay used: a later restore from an older
    // or newer checkpoint must never find a reused name.
    DF_RETURN_IF_ERROR(write_seq_marker(dir, marker, next));
    for (const fs::path& p : stale) {
      if (!fs::remove(p, ec) && ec) {
        return Status::io_error("cannot remove " + p.string() + ": " + ec.message());
      }
    }
    DF_RETURN_IF_ERROR(sync_dir(dir));
  }
  return next;
}

// The open part file of one subtask. Touched only by I/O jobs, which run one
// at a time on the subtask's strand; the sink shares it with them by
// shared_ptr.
class PartWriter {
 public:
  explicit PartWriter(std::string dir) : dir_(std::move(dir)) {}
  PartWriter(const PartWriter&) = delete;
  PartWriter& operator=(const PartWriter&) = delete;
  ~PartWriter() {
    if (fd_ >= 0) ::close(fd_);  // an aborted run leaves its hidden in-progress file
  }

  const std::string& dir() const { return dir_; }

  Status open_part(const std::string& inprogress, const std::string& committed) {
    inprogress_ = (fs::path(dir_) / inprogress).string();
    committed_ = (fs::path(dir_) / committed).string();
    fd_ = ::open(inprogress_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0)
      return Status::io_error("cannot create " + inprogress_ + ": " + std::strerror(errno));
    return Status::OK();
  }

  Status write(std::string_view data) { return write_all(fd_, data, inprogress_); }

  // fsync and close: the part is complete and durable, still hidden.
  Status seal() {
    int fd = fd_;
    fd_ = -1;
    if (::fsync(fd) != 0) {
      int err = errno;
      ::close(fd);
      return Status::io_error("cannot sync " + inprogress_ + ": " + std::strerror(err));
    }
    if (::close(fd) != 0) {
      return Status::io_error("cannot close " + inprogress_ + ": " + std::strerror(errno));
    }
    return Status::OK();
  }

  // Durable first, visible second: a committed name always holds complete data.
  Status commit() {
    DF_RETURN_IF_ERROR(seal());
    if (::rename(inprogress_.c_str(), committed_.c_str()) != 0) {
      return Status::io_error("cannot rename " + inprogress_ + " to " + committed_ + ": " +
                              std::strerror(errno));
    }
    return Status::OK();
  }

 private:
  std::string dir_;
  int fd_ = -1;
  std::string inprogress_;
  std::string committed_;
};

class FileSink final : public runtime::Operator {
 public:
  FileSink(std::shared_ptr<const FileSinkConfig> cfg, int subtask)
      : cfg_(std::move(cfg)),
        subtask_(subtask),
        json_(cfg_->schema),
        csv_(cfg_->schema, cfg_->csv) {}

  Status open(runtime::OperatorContext& ctx) override {
    io_.open(ctx);
    two_phase_ = ctx.checkpointing() && cfg_->delivery == Delivery::kExactlyOnce;
    std::optional<SinkMeta> restored;
    if (const std::string* meta = ctx.restored_meta()) {
      auto m = parse_meta(*meta, subtask_);
      if (!m.ok()) {
        return Status::invalid("file sink '" + ctx.node_id() + "' subtask " +
                               std::to_string(subtask_) +
                               ": cannot read the checkpoint's meta: " + m.status().message());
      }
      restored = std::move(m).value();
    }
    // One-time startup I/O on the task thread (like opening a state store):
    // the names of later parts and the snapshot meta depend on it.
    DF_ASSIGN_OR_RETURN(
        next_seq_, prepare_dir(cfg_->path, subtask_, restored ? &*restored : nullptr, two_phase_));
    writer_ = std::make_shared<PartWriter>(cfg_->path);
    return Status::OK();
  }

  Status process(size_t input, const BatchPtr& batch, runtime::Output& out) override {
    (void)input;
    (void)out;
    DF_RETURN_IF_ERROR(io_.error());
    const Batch& b = *batch;
    b.for_each_row([&](size_t r) { write_row(b, r); });
    flush();
    return Status::OK();
  }

  // Without checkpoints, and at-least-once: the last part is committed. With
  // exactly-once checkpoints it is only sealed; the final snapshot records it
  // as pending and checkpoint_complete(kFinalCheckpoint) commits it.
  Status finish(runtime::Output& out) override {
    (void)out;
    if (part_open_) end_part();
    flush();
    io_.set_finishing();
    return io_.error();
  }

  Status snapshot(runtime::SnapshotContext& ctx) override {
    if (part_open_) end_part();
    flush();
    if (two_phase_) {
      if (!sealed_.empty()) pending_.push_back({ctx.checkpoint_id(), std::move(sealed_)});
      sealed_.clear();
    } else if (renamed_since_sync_) {
      // At-least-once: the parts are committed; make their names durable
      // before the checkpoint counts on them.
      io_.post(0, [dir = cfg_->path] { return sync_dir(dir); });
      renamed_since_sync_ = false;
    }
    io_.post_completion(ctx.defer());
    io_.wake_when_idle();
    ctx.set_meta(meta_json());
    return io_.error();
  }

  Status checkpoint_complete(uint64_t id) override {
    if (!two_phase_) return io_.error();
    std::vector<std::string> files;
    auto it = std::stable_partition(pending_.begin(), pending_.end(),
                                    [id](const Pending& p) { return p.checkpoint > id; });
    for (auto p = it; p != pending_.end(); ++p) {
      for (auto& f : p->files) files.push_back(std::move(f));
    }
    pending_.erase(it, pending_.end());
    if (!files.empty()) {
      io_.post(0, [dir = cfg_->path, subtask = subtask_, files = std::move(files)] {
        for (const std::string& f : files) {
          DF_RETURN_IF_ERROR(commit_pending(dir, subtask, f, Missing::kError));
        }
        return sync_dir(dir);
      });
      io_.wake_when_idle();
    }
    return io_.error();
  }

  // An error must reach process()/close(), so a failed queue accepts.
  bool can_accept() const override { return !io_.over_limit() || !io_.error().ok(); }
  bool drained() const override { return io_.idle(); }
  // Never commits: an in-progress part left here (abort, or exactly-once
  // parts whose checkpoint never completed) is settled by the next run.
  Status close() override { return io_.close(); }

 private:
  std::string committed_name(uint64_t seq) const {
    return committed_prefix(subtask_) + std::to_string(seq) +
           std::string(format_extension(cfg_->format));
  }

  std::string meta_json() const {
    Json pending = Json::array();
    for (const Pending& p : pending_) {
      pending.push_back({{"checkpoint", p.checkpoint}, {"files", p.files}});
    }
    Json j = {{"delivery", delivery_name(cfg_->delivery)},
              {"next_seq", next_seq_},
              {"pending", std::move(pending)}};
    return j.dump();
  }

  void encode(const Batch& b, size_t r) {
    if (cfg_->format == Format::kJson) {
      json_.append_row(b, r, pending_bytes_);
      pending_bytes_ += '\n';
    } else {
      csv_.append_row(b, r, pending_bytes_);
    }
  }

  void start_part() {
    flush();
    cur_seq_ = next_seq_++;
    io_.post(0, [w = writer_, in = inprogress_name(subtask_, cur_seq_),
                 out = committed_name(cur_seq_)] { return w->open_part(in, out); });
    part_open_ = true;
    rows_in_part_ = 0;
    bytes_in_part_ = 0;
    if (cfg_->format == Format::kCsv && cfg_->csv.header) {
      size_t before = pending_bytes_.size();
      csv_.append_header(pending_bytes_);
      bytes_in_part_ = pending_bytes_.size() - before;
    }
  }

  // Exactly-once with checkpoints: seal (fsync) and keep for the next
  // snapshot's pending list. Otherwise commit (fsync, rename) now.
  void end_part() {
    flush();
    if (two_phase_) {
      io_.post(0, [w = writer_] { return w->seal(); });
      sealed_.push_back(committed_name(cur_seq_));
    } else {
      io_.post(0, [w = writer_] { return w->commit(); });
      renamed_since_sync_ = true;
    }
    part_open_ = false;
  }

  void write_row(const Batch& b, size_t r) {
    if (!part_open_) start_part();
    size_t before = pending_bytes_.size();
    encode(b, r);
    size_t len = pending_bytes_.size() - before;
    if (cfg_->max_bytes && rows_in_part_ > 0 && bytes_in_part_ + len > cfg_->max_bytes) {
      // The row would push the part over max_bytes: it opens the next part.
      std::string row = pending_bytes_.substr(before);
      pending_bytes_.resize(before);
      end_part();
      start_part();
      pending_bytes_ += row;
    }
    ++rows_in_part_;
    bytes_in_part_ += len;
    if (cfg_->max_rows && rows_in_part_ >= cfg_->max_rows) end_part();
    if (pending_bytes_.size() >= kFlushBytes) flush();
  }

  void flush() {
    if (pending_bytes_.empty()) return;
    size_t n = pending_bytes_.size();
    io_.post(n, [w = writer_, data = std::move(pending_bytes_)] { return w->write(data); });
    pending_bytes_ = std::string();
  }

  std::shared_ptr<const FileSinkConfig> cfg_;
  int subtask_;
  JsonRowEncoder json_;
  CsvRowEncoder csv_;
  IoQueue io_;
  std::shared_ptr<PartWriter> writer_;
  std::string pending_bytes_;  // encoded, not yet posted
  bool two_phase_ = false;     // exactly-once and checkpointing
  uint64_t next_seq_ = 0;
  uint64_t cur_seq_ = 0;  // of the open part
  bool part_open_ = false;
  uint64_t rows_in_part_ = 0;
  uint64_t bytes_in_part_ = 0;
  bool renamed_since_sync_ = false;
  std::vector<std::string> sealed_;  // two-phase: sealed since the last snapshot
  std::vector<Pending> pending_;     // two-phase: per checkpoint, awaiting completion
};

class PreparedFileSink final : public runtime::PreparedNode {
 public:
  explicit PreparedFileSink(std::shared_ptr<const FileSinkConfig> cfg) : cfg_(std::move(cfg)) {}
  SchemaPtr output_schema() const override { return nullptr; }
  std::unique_ptr<runtime::Operator> make_operator(int subtask, int parallelism) const override {
    (void)parallelism;
    return std::make_unique<FileSink>(cfg_, subtask);
  }
  std::string describe() const override {
    std::string d = "file " + cfg_->path + " (" + std::string(format_name(cfg_->format));
    if (cfg_->max_rows) d += ", roll every " + std::to_string(cfg_->max_rows) + " rows";
    if (cfg_->max_bytes) d += ", roll at " + std::to_string(cfg_->max_bytes) + " bytes";
    if (cfg_->delivery == Delivery::kExactlyOnce) d += ", exactly once";
    return d + ")";
  }

 private:
  std::shared_ptr<const FileSinkConfig> cfg_;
};

}  // namespace

runtime::PreparedNodePtr FileSinkFactory::prepare(const runtime::NodeSpec& spec,
                                                  const std::vector<SchemaPtr>& inputs,
                                                  OptionReader& opts) const {
  size_t errors_before = opts.diags().size();
  auto cfg = std::make_shared<FileSinkConfig>();
  auto path = opts.string("path", true);
  if (path && path->empty()) report_option(opts, "path", "must not be empty");
  auto format = read_format(opts, Format::kJson);
  auto csv = read_csv_options(opts);
  if (const ConfigValue* rolling = opts.get("rolling")) {
    OptionReader roll(*rolling, opts.what() + " option 'rolling'", opts.diags());
    if (auto rows = roll.int64("max_rows")) {
      if (*rows <= 0) {
        report_option(roll, "max_rows", "must be positive");
      } else {
        cfg->max_rows = static_cast<uint64_t>(*rows);
      }
    }
    if (const ConfigValue* bytes = roll.get("max_bytes")) {
      Result<uint64_t> n = bytes->is_scalar()
                               ? parse_byte_size(bytes->scalar_text())
                               : Result<uint64_t>(Status::invalid("expected a size, got " +
                                                                  std::string(bytes->kind_name())));
      if (!n.ok()) {
        report_option(roll, "max_bytes", n.status().message());
      } else if (*n == 0) {
        report_option(roll, "max_bytes", "must be positive");
      } else {
        cfg->max_bytes = *n;
      }
    }
    roll.finish();
  }
  if (auto mode = read_delivery(opts, spec.delivery)) cfg->delivery = *mode;
  if (inputs.size() != 1 || !inputs[0]) {
    opts.diags().error(opts.node().location(), opts.what() + " needs exactly one input");
  }
  if (opts.diags().size() != errors_before || !path || !format || !csv) return nullptr;
  cfg->path = *path;
  cfg->format = *format;
  cfg->csv = *csv;
  cfg->schema = inputs[0];
  return std::make_shared<PreparedFileSink>(std::move(cfg));
}

}  // namespace df::connectors
