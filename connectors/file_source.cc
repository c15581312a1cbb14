#include "connectors/file_source.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "connectors/format/csv.h"
#include "connectors/format/json.h"
#include "connectors/options.h"
#include "engine/core/log.h"

namespace df::connectors {

namespace {

constexpr size_t kChunkBytes = 1u << 20;
// produce() reads at most this many chunks, so one call stays bounded even when
// lines are long or most of them are bad.
constexpr int kMaxReadsPerProduce = 2;
// A record longer than this is skipped rather than buffered.
constexpr size_t kMaxRecordBytes = 64u << 20;

bool is_glob(std::string_view path) { return path.find_first_of("*?[") != std::string_view::npos; }

// Sorted regular files matching `pattern`.
std::vector<std::string> expand_glob(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      struct stat st {};
      if (::stat(g.gl_pathv[i], &st) == 0 && S_ISREG(st.st_mode)) out.emplace_back(g.gl_pathv[i]);
    }
  }
  ::globfree(&g);
  // Byte order, not the locale's, so every subtask and every host agree.
  std::sort(out.begin(), out.end());
  return out;
}

// A file read in chunks; the unconsumed bytes stay contiguous, and offset()
// is the byte offset in the file of the first unconsumed byte.
class ChunkedFile {
 public:
  ChunkedFile() = default;
  ChunkedFile(const ChunkedFile&) = delete;
  ChunkedFile& operator=(const ChunkedFile&) = delete;
  ~ChunkedFile() { close(); }

  // Opens `path` positioned at byte `offset`. A file shorter than `offset`
  // (truncated or replaced since a checkpoint) is an error.
  Status open(const std::string& path, uint64_t offset = 0) {
    close();
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return Status::io_error("cannot open " + path + ": " + std::strerror(errno));
    path_ = path;
    buf_.clear();
    pos_ = 0;
    start_ = 0;
    eof_ = false;
    if (offset > 0) {
      struct stat st {};
      if (::fstat(fd_, &st) != 0) {
        Status s = Status::io_error("cannot stat " + path + ": " + std::strerror(errno));
        close();
        return s;
      }
      if (static_cast<uint64_t>(st.st_size) < offset) {
        close();
        return Status::invalid("cannot resume reading " + path + " at byte " +
                               std::to_string(offset) + ": the file has only " +
                               std::to_string(st.st_size) +
                               " bytes now (it was truncated or replaced since the checkpoint)");
      }
      if (::lseek(fd_, static_cast<off_t>(offset), SEEK_SET) < 0) {
        Status s = Status::io_error("cannot seek in " + path + ": " + std::strerror(errno));
        close();
        return s;
      }
      start_ = offset;
    }
    return Status::OK();
  }
  bool is_open() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::string_view data() const { return std::string_view(buf_).substr(pos_); }
  void consume(size_t n) { pos_ += n; }
  bool eof() const { return eof_; }
  uint64_t offset() const { return start_ + pos_; }

  // Appends up to one chunk; sets eof() at the end of the file.
  Status fill() {
    if (pos_ > 0) {
      buf_.erase(0, pos_);
      start_ += pos_;
      pos_ = 0;
    }
    size_t old = buf_.size();
    buf_.resize(old + kChunkBytes);
    ssize_t n;
    do {
      n = ::read(fd_, buf_.data() + old, kChunkBytes);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      buf_.resize(old);
      return Status::io_error("cannot read " + path_ + ": " + std::strerror(errno));
    }
    buf_.resize(old + static_cast<size_t>(n));
    if (n == 0) eof_ = true;
    return Status::OK();
  }

 private:
  int fd_ = -1;
  std::string path_;
  std::string buf_;
  size_t pos_ = 0;
  uint64_t start_ = 0;  // file offset of buf_[0]
  bool eof_ = false;
};

struct FileSourceConfig {
  std::string path;                // as written in the pipeline
  std::vector<std::string> files;  // what to read, sorted
  Format format = Format::kJson;
  CsvOptions csv;
  SchemaPtr schema;
};

// Where a subtask stands in one of its files.
struct FilePosition {
  std::string path;
  uint64_t offset = 0;       // byte offset of the next record (a record boundary)
  uint64_t line = 1;         // line number at offset, for messages
  bool done = false;         // read to the end
  bool header_read = false;  // csv.header: the header record lies before offset
  bool skipping = false;     // json: offset is inside an over-long line being skipped
};

class FileSource final : public runtime::SourceOperator {
 public:
  FileSource(std::shared_ptr<const FileSourceConfig> cfg, int subtask, int parallelism)
      : cfg_(std::move(cfg)),
        subtask_(subtask),
        parallelism_(parallelism),
        builder_(cfg_->schema),
        csv_parser_(cfg_->csv.delimiter) {
    for (size_t i = static_cast<size_t>(subtask); i < cfg_->files.size();
         i += static_cast<size_t>(parallelism)) {
      files_.push_back(FilePosition{cfg_->files[i]});
    }
    known_ = cfg_->files;
    if (cfg_->format == Format::kJson) {
      json_.emplace(cfg_->schema);
    } else {
      csv_.emplace(cfg_->schema, cfg_->csv);
    }
  }

  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    batch_size_ = std::max<size_t>(1, ctx.batch_size());
    if (const std::string* meta = ctx.restored_meta()) {
      Status s = restore(*meta);
      if (!s.ok()) {
        return Status(s.code(), "file source '" + ctx.node_id() + "' subtask " +
                                    std::to_string(subtask_) + ": cannot resume: " + s.message());
      }
    }
    return Status::OK();
  }

  Result<runtime::SourceProgress> produce(runtime::Output& out) override {
    if (ctx_->stop_requested()) {
      emit(out);
      save_position();  // a snapshot after the stop still knows where we are
      file_.close();
      return runtime::SourceProgress::exhausted();
    }
    int reads = 0;
    while (builder_.num_rows() < batch_size_) {
      if (!file_.is_open()) {
        while (next_file_ < files_.size() && files_[next_file_].done) ++next_file_;
        if (next_file_ >= files_.size()) break;
        DF_RETURN_IF_ERROR(open_current());
      }
      Step step = csv_ ? next_csv_record() : next_json_line();
      if (step == Step::kNeedData) {
        if (reads == kMaxReadsPerProduce) {
          // Emit what was decoded: a snapshot between two produce() calls
          // records the reader's position, so no decoded row may wait.
          emit(out);
          return runtime::SourceProgress::more();
        }
        DF_RETURN_IF_ERROR(file_.fill());
        ++reads;
      } else if (step == Step::kFileDone) {
        FilePosition& f = files_[next_file_];
        f.offset = file_.offset();
        f.done = true;
        f.skipping = false;
        file_.close();
        ++next_file_;
      }
    }
    emit(out);
    if (!file_.is_open() && next_file_ >= files_.size()) {
      return runtime::SourceProgress::exhausted();
    }
    return runtime::SourceProgress::more();
  }

  Status close() override {
    file_.close();
    return Status::OK();
  }

  // Meta: {"parallelism": N, "known": [every file of the glob this run
  // started from], "files": [{"path", "offset", "line", "done",
  // "header_read"?, "skipping"?}, ...]} for this subtask's files, in reading
  // order. Every row produce() emitted lies before the recorded offsets.
  Status snapshot(runtime::SnapshotContext& ctx) override {
    save_position();
    nlohmann::json files = nlohmann::json::array();
    for (const FilePosition& f : files_) {
      nlohmann::json e = {
          {"path", f.path}, {"offset", f.offset}, {"line", f.line}, {"done", f.done}};
      if (f.header_read) e["header_read"] = true;
      if (f.skipping) e["skipping"] = true;
      files.push_back(std::move(e));
    }
    nlohmann::json j = {
        {"parallelism", parallelism_}, {"known", known_}, {"files", std::move(files)}};
    ctx.set_meta(j.dump());
    return Status::OK();
  }

 private:
  enum class Step { kProgress, kNeedData, kFileDone };

  // Rebuilds this subtask's files from a snapshot's meta and the glob's
  // matches now: the snapshot's files continue at their offsets; files that
  // no longer match are skipped (with a warning) unless already read; files
  // the snapshot's run did not know are new and split over the subtasks like
  // a fresh glob (the k-th new file, in sorted order, to subtask k % N).
  Status restore(const std::string& text) {
    std::vector<FilePosition> restored;
    std::vector<std::string> known;
    try {
      nlohmann::json j = nlohmann::json::parse(text);
      int par = j.at("parallelism").get<int>();
      if (par != parallelism_) {
        return Status::invalid("the checkpoint was taken with parallelism " + std::to_string(par) +
                               ", this run has " + std::to_string(parallelism_) +
                               " (a file source cannot be rescaled)");
      }
      known = j.at("known").get<std::vector<std::string>>();
      for (const auto& e : j.at("files")) {
        FilePosition f;
        f.path = e.at("path").get<std::string>();
        f.offset = e.at("offset").get<uint64_t>();
        f.line = e.value("line", uint64_t{1});
        f.done = e.at("done").get<bool>();
        f.header_read = e.value("header_read", false);
        f.skipping = e.value("skipping", false);
        restored.push_back(std::move(f));
      }
    } catch (const nlohmann::json::exception& e) {
      return Status::invalid(std::string("bad checkpoint meta: ") + e.what());
    }
    std::set<std::string> now(cfg_->files.begin(), cfg_->files.end());
    std::set<std::string> before(known.begin(), known.end());
    files_.clear();
    for (FilePosition& f : restored) {
      if (!f.done && !now.contains(f.path)) {
        log_warn("file-source", "file source '" + ctx_->node_id() + "': " + f.path +
                                    " was being read at the checkpoint but is gone now (no "
                                    "longer matches '" +
                                    cfg_->path + "'); skipped from byte " +
                                    std::to_string(f.offset));
        f.done = true;
      }
      files_.push_back(std::move(f));
    }
    size_t k = 0;
    for (const std::string& path : cfg_->files) {  // sorted
      if (before.contains(path)) continue;
      if (k++ % static_cast<size_t>(parallelism_) == static_cast<size_t>(subtask_)) {
        files_.push_back(FilePosition{path});
      }
    }
    before.insert(now.begin(), now.end());
    known_.assign(before.begin(), before.end());
    next_file_ = 0;
    return Status::OK();
  }

  Status open_current() {
    FilePosition& f = files_[next_file_];
    header_pending_ = csv_ && cfg_->csv.header && !f.header_read;
    if (csv_ && cfg_->csv.header && f.header_read) {
      // Resuming after the header: read it again for the column mapping.
      DF_RETURN_IF_ERROR(reread_csv_header(f.path));
    }
    DF_RETURN_IF_ERROR(file_.open(f.path, f.offset));
    line_ = f.line;
    skipping_ = f.skipping;
    return Status::OK();
  }

  Status reread_csv_header(const std::string& path) {
    DF_RETURN_IF_ERROR(file_.open(path));
    while (true) {
      std::string_view data = file_.data();
      size_t consumed = 0;
      auto outcome = csv_parser_.next(data, file_.eof(), record_, consumed);
      if (outcome == CsvRecordParser::Outcome::kRecord) {
        file_.consume(consumed);
        if (record_.blank()) continue;
        // A bad header was reported when it was first read.
        csv_->set_header(record_).ignore();
        file_.close();
        return Status::OK();
      }
      if (outcome == CsvRecordParser::Outcome::kEnd || data.size() > kMaxRecordBytes) break;
      DF_RETURN_IF_ERROR(file_.fill());
    }
    file_.close();
    return Status::invalid(
        "cannot resume reading " + path +
        ": its header line is gone (the file was replaced since the checkpoint)");
  }

  // Copies the open file's reader state into its FilePosition.
  void save_position() {
    if (!file_.is_open()) return;
    FilePosition& f = files_[next_file_];
    f.offset = file_.offset();
    f.line = line_;
    f.header_read = csv_ && cfg_->csv.header && !header_pending_;
    f.skipping = skipping_;
  }

  const std::string& current() const { return files_[next_file_].path; }

  // A record that does not decode: skipped, and dead-lettered with its text
  // (when known) and position "path:line".
  void data_error(size_t line, const std::string& why, std::string_view record = {}) {
    const std::string position = current() + ":" + std::to_string(line);
    while (!record.empty() && (record.back() == '\n' || record.back() == '\r')) {
      record.remove_suffix(1);
    }
    ctx_->report_bad_record(position + ": " + why, record, position);
  }

  void emit(runtime::Output& out) {
    if (builder_.num_rows() > 0) out.emit(builder_.finish());
  }

  Step next_json_line() {
    std::string_view data = file_.data();
    size_t nl = data.find('\n');
    if (skipping_) {  // the rest of an over-long line
      file_.consume(nl == std::string_view::npos ? data.size() : nl + 1);
      if (nl == std::string_view::npos) return file_.eof() ? Step::kFileDone : Step::kNeedData;
      skipping_ = false;
      ++line_;
      return Step::kProgress;
    }
    if (nl == std::string_view::npos) {
      if (!file_.eof()) {
        if (data.size() <= kMaxRecordBytes) return Step::kNeedData;
        data_error(line_, "line longer than " + std::to_string(kMaxRecordBytes) + " bytes");
        file_.consume(data.size());
        skipping_ = true;
        return Step::kNeedData;
      }
      if (data.empty()) return Step::kFileDone;
      nl = data.size();  // the last line has no newline
    }
    std::string_view line = data.substr(0, nl);
    file_.consume(std::min(nl + 1, data.size()));
    size_t lineno = line_++;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return Step::kProgress;
    Status s = json_->decode(line, builder_);
    if (!s.ok()) data_error(lineno, s.message(), line);
    return Step::kProgress;
  }

  Step next_csv_record() {
    std::string_view data = file_.data();
    size_t consumed = 0;
    auto outcome = csv_parser_.next(data, file_.eof(), record_, consumed);
    if (outcome == CsvRecordParser::Outcome::kEnd) return Step::kFileDone;
    if (outcome == CsvRecordParser::Outcome::kNeedMore) {
      if (data.size() <= kMaxRecordBytes) return Step::kNeedData;
      // Without a line structure to resynchronise on, skip the rest of the file.
      data_error(line_, "record longer than " + std::to_string(kMaxRecordBytes) +
                            " bytes; the rest of the file is skipped");
      return Step::kFileDone;
    }
    // The record's text stays readable until the next fill().
    const std::string_view raw = data.substr(0, consumed);
    file_.consume(consumed);
    size_t lineno = line_;
    line_ += record_.newlines();
    if (record_.blank()) return Step::kProgress;
    if (header_pending_) {
      header_pending_ = false;
      Status s = csv_->set_header(record_);
      if (!s.ok()) data_error(lineno, s.message());
      return Step::kProgress;
    }
    Status s = csv_->decode(record_, builder_);
    if (!s.ok()) data_error(lineno, s.message(), raw);
    return Step::kProgress;
  }

  std::shared_ptr<const FileSourceConfig> cfg_;
  const int subtask_;
  const int parallelism_;
  std::vector<FilePosition> files_;  // this subtask's share, in reading order
  std::vector<std::string> known_;   // every file this run knows of (sorted)
  runtime::OperatorContext* ctx_ = nullptr;
  size_t batch_size_ = 1024;
  BatchBuilder builder_;
  std::optional<JsonRowDecoder> json_;
  std::optional<CsvRowDecoder> csv_;
  CsvRecordParser csv_parser_;
  CsvRecord record_;
  ChunkedFile file_;
  size_t next_file_ = 0;  // the file being read, or the next to open
  size_t line_ = 1;
  bool skipping_ = false;
  bool header_pending_ = false;
};

class PreparedFileSource final : public runtime::PreparedNode {
 public:
  explicit PreparedFileSource(std::shared_ptr<const FileSourceConfig> cfg) : cfg_(std::move(cfg)) {}
  SchemaPtr output_schema() const override { return cfg_->schema; }
  std::unique_ptr<runtime::SourceOperator> make_source(int subtask,
                                                       int parallelism) const override {
    return std::make_unique<FileSource>(cfg_, subtask, std::max(1, parallelism));
  }
  std::string describe() const override {
    return "file " + cfg_->path + " (" + std::string(format_name(cfg_->format)) + ")";
  }

 private:
  std::shared_ptr<const FileSourceConfig> cfg_;
};

}  // namespace

runtime::PreparedNodePtr FileSourceFactory::prepare(const runtime::NodeSpec& spec,
                                                    const std::vector<SchemaPtr>& inputs,
                                                    OptionReader& opts) const {
  (void)spec;
  (void)inputs;
  size_t errors_before = opts.diags().size();
  auto cfg = std::make_shared<FileSourceConfig>();
  auto path = opts.string("path", true);
  Format fallback = path && path->ends_with(".csv") ? Format::kCsv : Format::kJson;
  auto format = read_format(opts, fallback);
  auto csv = read_csv_options(opts);
  cfg->schema = read_schema(opts, true);
  if (auto follow = opts.boolean("follow"); follow && *follow) {
    report_option(opts, "follow", "only false is supported: the file source is bounded");
  }
  if (path) {
    if (path->empty()) {
      report_option(opts, "path", "must not be empty");
    } else if (is_glob(*path)) {
      cfg->files = expand_glob(*path);
      if (cfg->files.empty()) report_option(opts, "path", "no file matches '" + *path + "'");
    } else {
      // Opened (and reported if missing) when the run starts: the file may be
      // written between validation and the run.
      cfg->files.push_back(*path);
    }
  }
  if (opts.diags().size() != errors_before || !path || !format || !csv || !cfg->schema) {
    return nullptr;
  }
  cfg->path = *path;
  cfg->format = *format;
  cfg->csv = *csv;
  return std::make_shared<PreparedFileSource>(std::move(cfg));
}

}  // namespace df::connectors
