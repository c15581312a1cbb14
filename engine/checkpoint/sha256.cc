// sha256_hex and sha256_file (manifest.h) with OpenSSL EVP.
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "engine/checkpoint/manifest.h"

namespace df::checkpoint {

namespace {

struct CtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_MD_CTX, CtxFree>;

Ctx new_ctx() {
  Ctx ctx(EVP_MD_CTX_new());
  if (ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) ctx.reset();
  return ctx;
}

std::string finish_hex(EVP_MD_CTX* ctx) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, md, &len) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * len, '0');
  for (unsigned i = 0; i < len; ++i) {
    out[2 * i] = kHex[md[i] >> 4];
    out[2 * i + 1] = kHex[md[i] & 15];
  }
  return out;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  Ctx ctx = new_ctx();
  // Only allocation failure can get here; an empty digest never matches.
  if (!ctx || EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1) return {};
  return finish_hex(ctx.get());
}

Result<std::string> sha256_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    std::string msg = "cannot open " + path + " to checksum it: " + errno_text(e);
    return e == ENOENT ? Status::not_found(msg) : Status::io_error(msg);
  }
  Ctx ctx = new_ctx();
  if (!ctx) {
    ::close(fd);
    return Status::internal("cannot initialize SHA-256 (OpenSSL)");
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::vector<char> buf(1u << 20);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return Status::io_error("cannot read " + path + " to checksum it: " + errno_text(e));
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  std::string hex = finish_hex(ctx.get());
  if (hex.empty()) return Status::internal("SHA-256 of " + path + " failed (OpenSSL)");
  return hex;
}

}  // namespace df::checkpoint
