// Fuzzes config.yaml: text -> server::ServerConfig (config/server_config,
// through the YAML loader), and the printed form of what it accepts.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/server_config.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  df::fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = df::config::parse_server_config(text, "config.yaml");
  if (config.ok()) (void)df::config::describe_server_config(*config);
  return 0;
}
