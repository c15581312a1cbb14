// The `tls:` and `network:` keys that guard the API port: TLS client
// verification and the header timeout and connection cap.
#include <gtest/gtest.h>

#include <string>

#include "config/server_config.h"

namespace df::config {
namespace {

TEST(TlsNetworkConfig, DefaultsAndExplicitValues) {
  auto defaults = parse_server_config("", "config.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status().to_string();
  EXPECT_FALSE(defaults->tls.verify_client);
  EXPECT_EQ(defaults->network.header_timeout, Millis(10000));
  EXPECT_EQ(defaults->network.max_connections, 1024);

  auto r = parse_server_config(
      "network: {header_timeout: 2s, max_connections: 50}\n"
      "tls: {enabled: true, cert_file: /c.pem, key_file: /k.pem, ca_file: /ca.pem, "
      "verify_client: true}\n",
      "config.yaml");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->network.header_timeout, Millis(2000));
  EXPECT_EQ(r->network.max_connections, 50);
  EXPECT_TRUE(r->tls.verify_client);
  EXPECT_EQ(r->tls.ca_file, "/ca.pem");
  // The printed config carries the new keys (and reads back the same).
  const std::string printed = describe_server_config(*r);
  EXPECT_NE(printed.find("verify_client: true"), std::string::npos) << printed;
  EXPECT_NE(printed.find("max_connections: 50"), std::string::npos) << printed;
}

TEST(TlsNetworkConfig, VerifyClientNeedsACaFileAndLimitsArePositive) {
  auto no_ca = parse_server_config("tls: {verify_client: true}\n", "config.yaml");
  ASSERT_FALSE(no_ca.ok());
  EXPECT_NE(no_ca.status().message().find("config.yaml:1:"), std::string::npos)
      << no_ca.status().message();
  EXPECT_NE(no_ca.status().message().find("tls.verify_client needs tls.ca_file"),
            std::string::npos)
      << no_ca.status().message();
  auto zero = parse_server_config("network: {max_connections: 0}\n", "config.yaml");
  EXPECT_FALSE(zero.ok());
  auto no_time = parse_server_config("network: {header_timeout: 0s}\n", "config.yaml");
  EXPECT_FALSE(no_time.ok());
}

}  // namespace
}  // namespace df::config
