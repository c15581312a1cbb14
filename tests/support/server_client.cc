#include "tests/support/server_client.h"

#include <thread>

#include "tests/support/temp_dir.h"

namespace df::test {

cli::HttpClient client_for(uint16_t port) {
  auto url = cli::parse_server_url("http://127.0.0.1:" + std::to_string(port));
  cli::HttpClientOptions options;
  options.connect_timeout = Millis{2000};
  options.io_timeout = Millis{10000};
  return cli::HttpClient(*url, options);
}

std::string get_body(const cli::HttpClient& http, const std::string& path) {
  auto r = http.request("GET", path);
  return r.ok() ? r->body : std::string();
}

nlohmann::json get_json(const cli::HttpClient& http, const std::string& path) {
  auto r = http.request("GET", path);
  if (!r.ok() || r->status != 200) return nlohmann::json::object();
  nlohmann::json doc = nlohmann::json::parse(r->body, nullptr, false);
  return doc.is_discarded() ? nlohmann::json::object() : doc;
}

bool eventually(const std::function<bool()>& probe, std::chrono::milliseconds budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (std::chrono::steady_clock::now() < deadline) {
    if (probe()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return probe();
}

std::multiset<int64_t> committed_ids(const std::string& dir) {
  std::multiset<int64_t> ids;
  for (const std::string& line : committed_rows(dir)) {
    nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
    if (row.is_object() && row.contains("id")) ids.insert(row["id"].get<int64_t>());
  }
  return ids;
}

}  // namespace df::test
