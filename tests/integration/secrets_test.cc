// Secrets over the real binary (`dataflow run`): the file provider
// (secrets.provider: file) gives config.yaml an API key and a pipeline a
// Kafka SASL password through `${secret:path#key}`; the key works, the
// pipeline's GET returns the reference text, and neither value appears in
// the server's log, in `run --check`, or in any API response (the pipeline,
// its runs and events, its state export). A world-readable secret file
// stops the start in one sentence.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli/http_client.h"
#include "tests/support/server_client.h"
#include "tests/support/server_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using nlohmann::json;
using namespace std::chrono_literals;

namespace df::test {
namespace {

constexpr const char* kApiKey = "api-key-from-file-Tg58Rw";
constexpr const char* kKafkaPassword = "kafka-pw-from-file-Nc71Ls";

std::string write_secret(const TempDir& dir, const std::string& name, const std::string& text,
                         mode_t mode) {
  const std::string path = dir.write(name, text);
  ::chmod(path.c_str(), mode);
  return path;
}

std::string secrets_config(const TempDir& secrets) {
  return "security:\n"
         "  auth:\n"
         "    enabled: true\n"
         "    api_keys: [{name: admin-key, key: \"${secret:api#key}\", role: admin}]\n"
         "secrets: {provider: file, path: " +
         secrets.str() + "}\n";
}

TEST(Secrets, FileProviderValuesWorkAndAppearNowhere) {
  TempDir secrets;
  write_secret(secrets, "api", std::string("key: ") + kApiKey + "\n", 0600);
  write_secret(secrets, "kafka/sasl.json",
               std::string(R"({"username": "svc", "password": ")") + kKafkaPassword + "\"}", 0640);
  TempDir dir;
  ServerProcess server(DATAFLOW_BIN, dir, secrets_config(secrets));
  ASSERT_TRUE(server.ready()) << server.log();

  auto url = cli::parse_server_url(server.url());
  cli::HttpClientOptions with_key;
  with_key.connect_timeout = Millis{2000};
  with_key.io_timeout = Millis{10000};
  with_key.bearer_token = kApiKey;
  cli::HttpClient api(*url, with_key);
  cli::HttpClientOptions anonymous = with_key;
  anonymous.bearer_token.clear();
  auto refused = cli::HttpClient(*url, anonymous).request("GET", "/api/v1/pipelines");
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 401);

  // A Kafka pipeline whose SASL password is a reference (brokers nobody
  // runs: librdkafka tries, fails and logs while the run is up).
  const std::string reference = "${secret:kafka/sasl.json#password}";
  const std::string pipeline =
      "name: sasl\n"
      "sources:\n"
      "  - id: in\n"
      "    type: kafka\n"
      "    brokers: 127.0.0.1:1\n"
      "    topic: in\n"
      "    group_id: g\n"
      "    format: json\n"
      "    schema: {id: int64}\n"
      "    properties: {security.protocol: SASL_PLAINTEXT, sasl.mechanism: PLAIN,\n"
      "                 sasl.username: \"${secret:kafka/sasl.json#username}\",\n"
      "                 sasl.password: \"" +
      reference +
      "\", reconnect.backoff.max.ms: 200}\n"
      "sinks:\n"
      "  - {id: out, type: file, input: in, path: " +
      dir.file("out") + ", format: json}\n";
  auto created = api.request("POST", "/api/v1/pipelines?start=true", pipeline, "application/yaml");
  ASSERT_TRUE(created.ok()) << created.status().to_string();
  ASSERT_EQ(created->status, 201) << created->body;

  std::vector<std::string> bodies = {created->body};
  auto get = [&](const std::string& path) {
    auto r = api.request("GET", path);
    EXPECT_TRUE(r.ok()) << path;
    if (!r.ok()) return std::string();
    bodies.push_back(r->body);
    return r->body;
  };
  // The pipeline's text is the reference, not the value.
  const json view = json::parse(get("/api/v1/pipelines/sasl"), nullptr, false);
  ASSERT_TRUE(view.is_object());
  EXPECT_NE(view.value("spec", "").find(reference), std::string::npos) << view.dump();
  // Let the run try the brokers for a while (its log lines are checked below).
  EXPECT_TRUE(eventually(
      [&] { return get("/api/v1/pipelines/sasl/runs").find("\"id\"") != std::string::npos; }, 10s))
      << server.log();
  std::this_thread::sleep_for(1500ms);
  get("/api/v1/pipelines");
  const json runs = json::parse(get("/api/v1/pipelines/sasl/runs"), nullptr, false);
  if (runs.is_object() && runs.contains("runs") && !runs["runs"].empty()) {
    get("/api/v1/runs/" + runs["runs"][0].value("id", "") + "/events");
  }
  auto stopped = api.request("POST", "/api/v1/pipelines/sasl/stop");
  ASSERT_TRUE(stopped.ok());
  bodies.push_back(stopped->body);
  get("/api/v1/pipelines/sasl/state");
  get("/api/v1/openapi.json");

  const ProcessResult check =
      run_process({DATAFLOW_BIN, "run", "--config", server.config_path(), "--check"}, "", 30s);
  EXPECT_EQ(check.exit_code, 0) << check.err;
  EXPECT_NE(check.out.find("provider: file"), std::string::npos) << check.out;

  const std::string log = server.log();
  for (const char* secret : {kApiKey, kKafkaPassword}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << "in the server log: " << secret;
    EXPECT_EQ((check.out + check.err).find(secret), std::string::npos) << "in --check: " << secret;
    for (const std::string& body : bodies) {
      EXPECT_EQ(body.find(secret), std::string::npos) << "in an API response: " << body;
    }
  }
  // The data directory (metadata store, checkpoints) holds references only.
  const ProcessResult grep = run_process(
      {"/usr/bin/grep", "-rl", "-e", kApiKey, "-e", kKafkaPassword, dir.str()}, "", 30s);
  EXPECT_EQ(grep.out, "") << "files holding a secret";
}

TEST(Secrets, WorldReadableSecretFileStopsTheStartInOneSentence) {
  TempDir secrets;
  write_secret(secrets, "api", std::string("key: ") + kApiKey + "\n", 0644);
  TempDir dir;
  const std::string config =
      dir.write("config.yaml", "server: {host: 127.0.0.1, port: 0, data_dir: " + dir.file("data") +
                                   "}\n" + secrets_config(secrets));
  const ProcessResult r = run_process({DATAFLOW_BIN, "run", "--config", config}, "", 30s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("secret file " + secrets.file("api") +
                       " is readable by every user; chmod o-rwx it"),
            std::string::npos)
      << r.err;
  EXPECT_EQ((r.out + r.err).find(kApiKey), std::string::npos);
}

}  // namespace
}  // namespace df::test
