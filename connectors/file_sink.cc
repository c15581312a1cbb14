#include "connectors/file_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <optional>

#include "connectors/format/csv.h"
#include "connectors/format/json.h"
#include "connectors/io_queue.h"
#include "connectors/options.h"

namespace df::connectors {

namespace {

namespace fs = std::filesystem;

// Encoded bytes are handed to the I/O strand in pieces of about this size.
constexpr size_t kFlushBytes = 1u << 20;

struct FileSinkConfig {
  std::string path;
  Format format = Format::kJson;
  CsvOptions csv;
  uint64_t max_rows = 0;   // 0 = no limit
  uint64_t max_bytes = 0;  // 0 = no limit
  SchemaPtr schema;        // the input's
};

// The part files of one subtask. Touched only by I/O jobs, which run one at a
// time on the subtask's strand; the sink shares it with them by shared_ptr.
class PartWriter {
 public:
  PartWriter(std::string dir, int subtask, Format format)
      : dir_(std::move(dir)),
        prefix_("part-" + std::to_string(subtask) + "-"),
        ext_(format_extension(format)) {}
  PartWriter(const PartWriter&) = delete;
  PartWriter& operator=(const PartWriter&) = delete;
  ~PartWriter() {
    if (fd_ >= 0) ::close(fd_);  // an aborted run leaves its hidden in-progress file
  }

  Status init() {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) return Status::io_error("cannot create directory " + dir_ + ": " + ec.message());
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
      std::string name = entry.path().filename().string();
      if (!name.starts_with(prefix_)) continue;
      uint64_t seq = 0;
      const char* begin = name.data() + prefix_.size();
      auto [p, err] = std::from_chars(begin, name.data() + name.size(), seq);
      if (err == std::errc() && p != begin && *p == '.') next_seq_ = std::max(next_seq_, seq + 1);
    }
    if (ec) return Status::io_error("cannot list directory " + dir_ + ": " + ec.message());
    return Status::OK();
  }

  Status open_part() {
    std::string name = prefix_ + std::to_string(next_seq_++);
    inprogress_ = (fs::path(dir_) / ("." + name + ".inprogress")).string();
    committed_ = (fs::path(dir_) / (name + ext_)).string();
    fd_ = ::open(inprogress_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0)
      return Status::io_error("cannot create " + inprogress_ + ": " + std::strerror(errno));
    return Status::OK();
  }

  Status write(std::string_view data) { return write_all(fd_, data, inprogress_); }

  // Durable first, visible second: a committed name always holds complete data.
  Status commit() {
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
    if (::rename(inprogress_.c_str(), committed_.c_str()) != 0) {
      return Status::io_error("cannot rename " + inprogress_ + " to " + committed_ + ": " +
                              std::strerror(errno));
    }
    return Status::OK();
  }

 private:
  std::string dir_;
  std::string prefix_;
  std::string ext_;
  uint64_t next_seq_ = 0;
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
    writer_ = std::make_shared<PartWriter>(cfg_->path, subtask_, cfg_->format);
    io_.post(0, [w = writer_] { return w->init(); });
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

  Status finish(runtime::Output& out) override {
    (void)out;
    if (part_open_) end_part();
    flush();
    io_.set_finishing();
    return io_.error();
  }

  // An error must reach process()/close(), so a failed queue accepts.
  bool can_accept() const override { return !io_.over_limit() || !io_.error().ok(); }
  bool drained() const override { return io_.idle(); }
  Status close() override { return io_.close(); }

 private:
  void encode(const Batch& b, size_t r) {
    if (cfg_->format == Format::kJson) {
      json_.append_row(b, r, pending_);
      pending_ += '\n';
    } else {
      csv_.append_row(b, r, pending_);
    }
  }

  void start_part() {
    flush();
    io_.post(0, [w = writer_] { return w->open_part(); });
    part_open_ = true;
    rows_in_part_ = 0;
    bytes_in_part_ = 0;
    if (cfg_->format == Format::kCsv && cfg_->csv.header) {
      size_t before = pending_.size();
      csv_.append_header(pending_);
      bytes_in_part_ = pending_.size() - before;
    }
  }

  void end_part() {
    flush();
    io_.post(0, [w = writer_] { return w->commit(); });
    part_open_ = false;
  }

  void write_row(const Batch& b, size_t r) {
    if (!part_open_) start_part();
    size_t before = pending_.size();
    encode(b, r);
    size_t len = pending_.size() - before;
    if (cfg_->max_bytes && rows_in_part_ > 0 && bytes_in_part_ + len > cfg_->max_bytes) {
      // The row would push the part over max_bytes: it opens the next part.
      std::string row = pending_.substr(before);
      pending_.resize(before);
      end_part();
      start_part();
      pending_ += row;
    }
    ++rows_in_part_;
    bytes_in_part_ += len;
    if (cfg_->max_rows && rows_in_part_ >= cfg_->max_rows) end_part();
    if (pending_.size() >= kFlushBytes) flush();
  }

  void flush() {
    if (pending_.empty()) return;
    size_t n = pending_.size();
    io_.post(n, [w = writer_, data = std::move(pending_)] { return w->write(data); });
    pending_ = std::string();
  }

  std::shared_ptr<const FileSinkConfig> cfg_;
  int subtask_;
  JsonRowEncoder json_;
  CsvRowEncoder csv_;
  IoQueue io_;
  std::shared_ptr<PartWriter> writer_;
  std::string pending_;  // encoded, not yet posted
  bool part_open_ = false;
  uint64_t rows_in_part_ = 0;
  uint64_t bytes_in_part_ = 0;
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
    return d + ")";
  }

 private:
  std::shared_ptr<const FileSinkConfig> cfg_;
};

}  // namespace

runtime::PreparedNodePtr FileSinkFactory::prepare(const runtime::NodeSpec& spec,
                                                  const std::vector<SchemaPtr>& inputs,
                                                  OptionReader& opts) const {
  (void)spec;
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
