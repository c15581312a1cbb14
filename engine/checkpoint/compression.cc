// zstd streaming compression of checkpoint files and bytes (compression.h).
#include "engine/checkpoint/compression.h"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <atomic>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace df::checkpoint {

namespace {

constexpr int kLevel = 3;

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};
using CCtx = std::unique_ptr<ZSTD_CCtx, CCtxFree>;
using DCtx = std::unique_ptr<ZSTD_DCtx, DCtxFree>;

Result<CCtx> make_cctx() {
  CCtx c(ZSTD_createCCtx());
  if (!c || ZSTD_isError(ZSTD_CCtx_setParameter(c.get(), ZSTD_c_compressionLevel, kLevel)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(c.get(), ZSTD_c_checksumFlag, 1))) {
    return Status::resource_exhausted("cannot create a zstd compression context");
  }
  return c;
}

Result<DCtx> make_dctx() {
  DCtx d(ZSTD_createDCtx());
  if (!d) return Status::resource_exhausted("cannot create a zstd decompression context");
  return d;
}

Status corrupt(const std::string& what, size_t code) {
  return Status::data_error(what + " is not valid zstd data (" + ZSTD_getErrorName(code) + ")");
}

Status truncated(const std::string& what) {
  return Status::data_error(what + " is truncated: its zstd stream ends in the middle of a frame");
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release_close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

Status write_all(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::io_error("cannot write " + path + ": " + errno_text(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::OK();
}

// Opens `in`, creates a temporary next to `out`, runs `body(in_fd, tmp_fd,
// tmp)`, and renames the temporary over `out` when body succeeds.
template <typename Body>
Status transform_file(const std::string& in, const std::string& out, Body body) {
  Fd src(::open(in.c_str(), O_RDONLY | O_CLOEXEC));
  if (src.get() < 0) {
    int e = errno;
    std::string msg = "cannot open " + in + ": " + errno_text(e);
    return e == ENOENT ? Status::not_found(msg) : Status::io_error(msg);
  }
  static std::atomic<uint64_t> counter{0};
  std::string tmp = out + ".df-tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  Fd dst(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (dst.get() < 0) return Status::io_error("cannot create " + tmp + ": " + errno_text(errno));
  Status st = body(src.get(), dst.get(), tmp);
  if (dst.release_close() != 0 && st.ok())
    st = Status::io_error("cannot close " + tmp + ": " + errno_text(errno));
  if (st.ok() && ::rename(tmp.c_str(), out.c_str()) != 0) {
    st = Status::io_error("cannot rename " + tmp + " to " + out + ": " + errno_text(errno));
  }
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

Result<size_t> read_some(int fd, char* buf, size_t cap, const std::string& path) {
  for (;;) {
    ssize_t n = ::read(fd, buf, cap);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::io_error("cannot read " + path + ": " + errno_text(errno));
    return static_cast<size_t>(n);
  }
}

}  // namespace

Status compress_file(const std::string& in, const std::string& out) {
  return transform_file(in, out, [&](int src, int dst, const std::string& tmp) -> Status {
    DF_ASSIGN_OR_RETURN(CCtx cctx, make_cctx());
    std::vector<char> ibuf(ZSTD_CStreamInSize());
    std::vector<char> obuf(ZSTD_CStreamOutSize());
    for (;;) {
      DF_ASSIGN_OR_RETURN(size_t n, read_some(src, ibuf.data(), ibuf.size(), in));
      ZSTD_EndDirective mode = n == 0 ? ZSTD_e_end : ZSTD_e_continue;
      ZSTD_inBuffer input{ibuf.data(), n, 0};
      bool done = false;
      while (!done) {
        ZSTD_outBuffer output{obuf.data(), obuf.size(), 0};
        size_t rem = ZSTD_compressStream2(cctx.get(), &output, &input, mode);
        if (ZSTD_isError(rem)) {
          return Status::internal(std::string("zstd compression of ") + in +
                                  " failed: " + ZSTD_getErrorName(rem));
        }
        DF_RETURN_IF_ERROR(write_all(dst, obuf.data(), output.pos, tmp));
        done = mode == ZSTD_e_end ? rem == 0 : input.pos == input.size;
      }
      if (n == 0) return Status::OK();
    }
  });
}

Status decompress_file(const std::string& in, const std::string& out) {
  return transform_file(in, out, [&](int src, int dst, const std::string& tmp) -> Status {
    DF_ASSIGN_OR_RETURN(DCtx dctx, make_dctx());
    std::vector<char> ibuf(ZSTD_DStreamInSize());
    std::vector<char> obuf(ZSTD_DStreamOutSize());
    size_t last = 1;  // 0 once a frame is complete; nonzero before any input
    bool any = false;
    for (;;) {
      DF_ASSIGN_OR_RETURN(size_t n, read_some(src, ibuf.data(), ibuf.size(), in));
      if (n == 0) break;
      any = true;
      ZSTD_inBuffer input{ibuf.data(), n, 0};
      while (input.pos < input.size) {
        ZSTD_outBuffer output{obuf.data(), obuf.size(), 0};
        last = ZSTD_decompressStream(dctx.get(), &output, &input);
        if (ZSTD_isError(last)) return corrupt(in, last);
        DF_RETURN_IF_ERROR(write_all(dst, obuf.data(), output.pos, tmp));
      }
    }
    // Flush what the decoder still holds for a complete input.
    while (last != 0 && any) {
      ZSTD_inBuffer input{nullptr, 0, 0};
      ZSTD_outBuffer output{obuf.data(), obuf.size(), 0};
      last = ZSTD_decompressStream(dctx.get(), &output, &input);
      if (ZSTD_isError(last)) return corrupt(in, last);
      DF_RETURN_IF_ERROR(write_all(dst, obuf.data(), output.pos, tmp));
      if (output.pos == 0) break;  // needs more input that will never come
    }
    if (last != 0) return truncated(in);
    return Status::OK();
  });
}

Result<std::string> compress_bytes(std::string_view data) {
  DF_ASSIGN_OR_RETURN(CCtx cctx, make_cctx());
  std::string out(ZSTD_compressBound(data.size()), '\0');
  ZSTD_inBuffer input{data.data(), data.size(), 0};
  ZSTD_outBuffer output{out.data(), out.size(), 0};
  size_t rem = ZSTD_compressStream2(cctx.get(), &output, &input, ZSTD_e_end);
  // With an output of compressBound bytes one call finishes the frame.
  if (ZSTD_isError(rem) || rem != 0) {
    return Status::internal(std::string("zstd compression failed: ") +
                            (ZSTD_isError(rem) ? ZSTD_getErrorName(rem) : "frame not finished"));
  }
  out.resize(output.pos);
  return out;
}

Result<std::string> decompress_bytes(std::string_view data) {
  DF_ASSIGN_OR_RETURN(DCtx dctx, make_dctx());
  std::string out;
  std::vector<char> obuf(ZSTD_DStreamOutSize());
  ZSTD_inBuffer input{data.data(), data.size(), 0};
  size_t last = 1;
  for (;;) {
    size_t in_before = input.pos;
    ZSTD_outBuffer output{obuf.data(), obuf.size(), 0};
    last = ZSTD_decompressStream(dctx.get(), &output, &input);
    if (ZSTD_isError(last)) return corrupt("the compressed data", last);
    out.append(obuf.data(), output.pos);
    // Done when every frame is complete and flushed; stuck when nothing moves.
    if (input.pos == input.size && last == 0) break;
    if (input.pos == in_before && output.pos == 0) break;
  }
  if (last != 0) return truncated("the compressed data");
  return out;
}

}  // namespace df::checkpoint
