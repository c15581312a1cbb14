#include "tests/support/pki.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "tests/support/subprocess.h"

namespace df::test {
namespace {

ProcessResult run(const std::vector<std::string>& argv) {
  return run_process(argv, "", std::chrono::seconds(30));
}

// Runs `argv`, failing the test (with its stderr) when it does not exit 0.
void must_run(const std::vector<std::string>& argv) {
  const ProcessResult r = run(argv);
  EXPECT_EQ(r.exit_code, 0) << argv[0] << " " << argv[1] << ": " << r.err;
}

}  // namespace

Pki::Pki() {
  must_run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path("ca.key"), "-out",
            path("ca.crt"), "-days", "2", "-subj", "/CN=DataFlow Test CA"});
}

void Pki::issue(const std::string& name, const std::string& subject, const std::string& san,
                const std::string& usage) {
  const std::string ext =
      dir_.write(name + ".ext", "subjectAltName=" + san + "\nextendedKeyUsage=" + usage + "\n");
  must_run({"/usr/bin/openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", path(name + ".key"), "-out", path(name + ".csr"), "-subj",
            subject});
  must_run({"/usr/bin/openssl", "x509", "-req", "-in", path(name + ".csr"), "-CA", path("ca.crt"),
            "-CAkey", path("ca.key"), "-CAcreateserial", "-out", path(name + ".crt"), "-days", "2",
            "-extfile", ext});
}

void Pki::server_cert(const std::string& name) {
  issue(name, "/CN=localhost", "DNS:localhost,IP:127.0.0.1", "serverAuth");
}

std::string Pki::fingerprint(const std::string& cert_file) const {
  const ProcessResult r =
      run({"/usr/bin/openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", cert_file});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

std::string served_fingerprint(uint16_t port) {
  return run({"/bin/sh", "-c",
              "openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                  " </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"})
      .out;
}

}  // namespace df::test
