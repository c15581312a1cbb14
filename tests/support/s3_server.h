// A real S3 server for tests: @20minutes/s3rver (tests/support/s3, installed
// by tests/support/s3/install.sh) run by node as a child process on
// 127.0.0.1, on a free port, with its own data directory and one bucket.
//
//   if (!S3Server::node_available()) GTEST_SKIP() << S3Server::skip_reason();
//   S3Server s3;
//   ASSERT_TRUE(s3.ok()) << s3.error();
//   opts.endpoint = s3.endpoint(); ... s3.bucket()
//
// s3rver checks SigV4 signatures against the fixed key pair below.
#pragma once

#include <memory>
#include <string>

#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace df::test {

class S3Server {
 public:
  static constexpr const char* kAccessKey = "S3RVER";
  static constexpr const char* kSecretKey = "S3RVER";
  static constexpr const char* kRegion = "us-east-1";

  // The absolute path of `node` on PATH, or "".
  static std::string node_path();
  static bool node_available() { return !node_path().empty(); }
  static std::string skip_reason() {
    return "node is not installed: the S3 tests need node and s3rver";
  }

  // Starts the server and waits (at most 20 s) until it listens.
  explicit S3Server(std::string bucket = "df-test");
  ~S3Server();  // stops it
  S3Server(const S3Server&) = delete;
  S3Server& operator=(const S3Server&) = delete;

  bool ok() const { return port_ > 0; }
  const std::string& error() const { return error_; }
  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& bucket() const { return bucket_; }
  // The node process's pid (to SIGSTOP it, say), or -1 when it did not start.
  pid_t pid() const { return child_ ? child_->pid() : -1; }

 private:
  std::string bucket_;
  TempDir dir_;
  std::unique_ptr<Child> child_;
  int port_ = 0;
  std::string error_;
};

}  // namespace df::test
