#include "tests/support/s3_server.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace df::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string S3Server::node_path() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/node";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

S3Server::S3Server(std::string bucket) : bucket_(std::move(bucket)) {
  const fs::path root = DF_S3RVER_DIR;
  std::string node = node_path();
  if (node.empty()) {
    error_ = skip_reason();
    return;
  }
  if (!fs::exists(root / "node_modules" / "@20minutes" / "s3rver" / "package.json")) {
    error_ = "s3rver is not installed: run " + (root / "install.sh").string();
    return;
  }
  fs::create_directories(dir_.path() / "data");
  std::string err_path = dir_.file("s3rver.err");
  // s3rver encrypts ListObjectsV2 continuation tokens with DES, which
  // OpenSSL 3 only offers through its legacy provider.
  child_ = std::make_unique<Child>(
      std::vector<std::string>{node, "--openssl-legacy-provider", (root / "s3rver.js").string(),
                               "0", dir_.file("data"), bucket_},
      root.string(), err_path);
  // Bounded wait for "listening on PORT\n".
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto before = std::chrono::steady_clock::now();
    size_t got = child_->read_for(200ms, 4096, &out);
    bool eof = got == 0 && std::chrono::steady_clock::now() - before < 150ms;  // stdout closed
    size_t at = out.find("listening on ");
    size_t nl = at == std::string::npos ? at : out.find('\n', at);
    if (nl != std::string::npos) {
      port_ = std::atoi(out.c_str() + at + 13);
      break;
    }
    if (eof) break;  // the child exited
  }
  if (port_ <= 0) {
    port_ = 0;
    auto result = child_->wait(2s);
    error_ = "s3rver did not start within 20 s (exit " + std::to_string(result.exit_code) +
             "): " + read_file(err_path) + out;
    child_.reset();
  }
}

S3Server::~S3Server() {
  if (child_) {
    child_->send_signal(SIGTERM);
    child_->wait(5s);
  }
}

}  // namespace df::test
