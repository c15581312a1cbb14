// S3 CheckpointStorage against a real S3 server (s3rver, started per test on
// 127.0.0.1) and, for retries, against a scripted HTTP server in a thread.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/s3_xml.h"
#include "engine/checkpoint/storage.h"
#include "tests/support/s3_server.h"
#include "tests/support/temp_dir.h"

namespace df::checkpoint {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using df::test::S3Server;
using df::test::TempDir;
using Clock = std::chrono::steady_clock;

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::vector<std::string> keys_of(const std::vector<ObjectInfo>& v) {
  std::vector<std::string> out;
  for (const auto& o : v) out.push_back(o.key);
  return out;
}

// ---- XML and encoding helpers (no server) ----

TEST(S3Xml, ParsesListObjectsV2) {
  std::string xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>p/a&amp;b &lt;1&gt;</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>
    <ETag>&quot;abc&quot;</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents>
    <Key>p/caf&#xE9;&#33;</Key>
    <Size> 0 </Size>
  </Contents>
  <NextContinuationToken>tok+/=</NextContinuationToken>
</ListBucketResult>)";
  auto page = s3::parse_list_objects_v2(xml);
  ASSERT_TRUE(page.has_value());
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[0].key, "p/a&b <1>");
  EXPECT_EQ(page->items[0].size, 12u);
  EXPECT_EQ(page->items[1].key, "p/caf\xc3\xa9!");
  EXPECT_EQ(page->items[1].size, 0u);
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ(page->next_token, "tok+/=");

  auto empty = s3::parse_list_objects_v2(
      "<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated><Prefix/></"
      "ListBucketResult>");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->items.empty());
  EXPECT_FALSE(empty->truncated);
  EXPECT_FALSE(s3::parse_list_objects_v2("<Error><Code>X</Code></Error>").has_value());
  EXPECT_FALSE(s3::parse_list_objects_v2("<ListBucketResult><Contents><Size>1</Size></Contents>")
                   .has_value());
  EXPECT_FALSE(s3::parse_list_objects_v2(
                   "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>")
                   .has_value());
}

TEST(S3Xml, ParsesErrorsAndEncodes) {
  auto e = s3::parse_error(
      "<?xml version=\"1.0\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not "
      "exist.</Message><Key>a</Key></Error>");
  EXPECT_EQ(e.code, "NoSuchKey");
  EXPECT_EQ(e.message, "The specified key does not exist.");
  EXPECT_EQ(s3::parse_error("").code, "");
  EXPECT_EQ(s3::parse_error("<html>bad gateway</html>").code, "");
  EXPECT_EQ(s3::uri_encode("p/shared/a b+c~_.-é", true), "p/shared/a%20b%2Bc~_.-%C3%A9");
  EXPECT_EQ(s3::uri_encode("p/x=", false), "p%2Fx%3D");
  EXPECT_EQ(s3::xml_escape("\"e\"&<>"), "&quot;e&quot;&amp;&lt;&gt;");
  EXPECT_EQ(s3::xml_unescape("&unknown; & &#xZZ;"), "&unknown; & &#xZZ;");
}

// ---- Against s3rver ----

class S3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!S3Server::node_available()) GTEST_SKIP() << S3Server::skip_reason();
    server_ = std::make_unique<S3Server>();
    ASSERT_TRUE(server_->ok()) << server_->error();
  }

  S3Options options() const {
    S3Options o;
    o.endpoint = server_->endpoint();
    o.region = S3Server::kRegion;
    o.access_key_id = S3Server::kAccessKey;
    o.secret_access_key = S3Server::kSecretKey;
    return o;
  }

  std::unique_ptr<CheckpointStorage> open(const std::string& prefix = "", S3Options o = {}) {
    if (o.endpoint.empty()) o = options();
    auto s = open_s3_storage(server_->bucket(), prefix, o);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    return std::move(s).value();
  }

  std::unique_ptr<S3Server> server_;
};

TEST_F(S3Test, PutGetBytesRoundTrip) {
  auto s = open();
  ASSERT_TRUE(s->put_bytes("p/_CURRENT", "7").ok());
  auto got = s->get_bytes("p/_CURRENT");
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(*got, "7");
  std::string binary = random_bytes(300000, 1);
  ASSERT_TRUE(s->put_bytes("p/_CURRENT", binary).ok());  // overwrite
  EXPECT_EQ(*s->get_bytes("p/_CURRENT"), binary);
  ASSERT_TRUE(s->put_bytes("p/empty", "").ok());
  EXPECT_EQ(*s->get_bytes("p/empty"), "");
  // Keys needing URI encoding are signed and stored correctly.
  ASSERT_TRUE(s->put_bytes("p/odd name+(1)=%.json", "odd").ok());
  EXPECT_EQ(*s->get_bytes("p/odd name+(1)=%.json"), "odd");
  EXPECT_EQ(keys_of(*s->list("p/")),
            (std::vector<std::string>{"p/_CURRENT", "p/empty", "p/odd name+(1)=%.json"}));
}

TEST_F(S3Test, PutGetFileSingleAndMultipart) {
  S3Options o = options();
  o.multipart_threshold = 1 << 20;
  o.part_size = 256 << 10;
  auto s = open("", o);
  TempDir tmp;
  std::string small = random_bytes(500000, 2);
  std::string big = random_bytes((1 << 20) + 300001, 3);  // 5 parts, the last one short
  ASSERT_TRUE(s->put_file("p/shared/small.sst", tmp.write("small", small)).ok());
  Status st = s->put_file("p/shared/big.sst", tmp.write("big", big));
  ASSERT_TRUE(st.ok()) << st.to_string();

  ASSERT_TRUE(s->get_file("p/shared/small.sst", tmp.file("restore/small")).ok());
  ASSERT_TRUE(s->get_file("p/shared/big.sst", tmp.file("restore/big")).ok());
  EXPECT_EQ(df::test::read_file(tmp.file("restore/small")), small);
  EXPECT_EQ(*sha256_file(tmp.file("restore/big")), sha256_hex(big));
  // get_file replaces an existing file and leaves no temporary behind.
  tmp.write("restore/small", "stale");
  ASSERT_TRUE(s->get_file("p/shared/small.sst", tmp.file("restore/small")).ok());
  EXPECT_EQ(df::test::read_file(tmp.file("restore/small")), small);
  EXPECT_EQ(df::test::list_dir(tmp.file("restore")), (std::vector<std::string>{"big", "small"}));

  auto listed = s->list("p/shared/");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].key, "p/shared/big.sst");
  EXPECT_EQ((*listed)[0].size, big.size());
  EXPECT_EQ((*listed)[1].size, small.size());
  EXPECT_EQ(s->put_file("p/x", tmp.file("missing")).code(), StatusCode::kNotFound);
}

TEST_F(S3Test, ListPaginatesInByteOrder) {
  S3Options o = options();
  o.list_page_size = 3;
  auto s = open("", o);
  std::vector<std::string> keys;
  for (int i = 0; i < 11; ++i)
    keys.push_back("p/checkpoints/" + std::to_string(i) + "/manifest.json");
  keys.push_back("p/_CURRENT");
  keys.push_back("p/shared/B");
  keys.push_back("p/shared/a");
  for (size_t i = 0; i < keys.size(); ++i)
    ASSERT_TRUE(s->put_bytes(keys[i], std::string(i, 'x')).ok());
  ASSERT_TRUE(s->put_bytes("q/_CURRENT", "other pipeline").ok());
  ASSERT_TRUE(s->put_bytes("pp", "prefix sibling").ok());

  auto listed = s->list("p/");
  ASSERT_TRUE(listed.ok()) << listed.status().to_string();
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(keys_of(*listed), sorted);
  for (const auto& obj : *listed) {
    EXPECT_EQ(obj.size,
              static_cast<uint64_t>(std::find(keys.begin(), keys.end(), obj.key) - keys.begin()));
  }
  EXPECT_EQ(s->list("").value().size(), keys.size() + 2);
  EXPECT_TRUE(s->list("nothing/").value().empty());
}

TEST_F(S3Test, PrefixIsPrependedToEveryKey) {
  auto url = "s3://" + server_->bucket() + "/clusters/eu";
  auto prefixed = open_storage(url, options());
  ASSERT_TRUE(prefixed.ok()) << prefixed.status().to_string();
  EXPECT_EQ((*prefixed)->describe(), url);
  ASSERT_TRUE((*prefixed)->put_bytes("p/_CURRENT", "3").ok());
  auto root = open();
  EXPECT_EQ(*root->get_bytes("clusters/eu/p/_CURRENT"), "3");
  ASSERT_TRUE(root->put_bytes("clusters/euro/p/_CURRENT", "not ours").ok());
  EXPECT_EQ(keys_of(*(*prefixed)->list("")), (std::vector<std::string>{"p/_CURRENT"}));
  ASSERT_TRUE((*prefixed)->remove("p/_CURRENT").ok());
  EXPECT_EQ(root->get_bytes("clusters/eu/p/_CURRENT").status().code(), StatusCode::kNotFound);
}

TEST_F(S3Test, RemoveAndNotFound) {
  auto s = open();
  TempDir tmp;
  ASSERT_TRUE(s->put_bytes("p/checkpoints/1/manifest.json", "m").ok());
  ASSERT_TRUE(s->remove("p/checkpoints/1/manifest.json").ok());
  EXPECT_TRUE(s->remove("p/checkpoints/1/manifest.json").ok()) << "removing a missing key is OK";
  auto got = s->get_bytes("p/checkpoints/1/manifest.json");
  EXPECT_EQ(got.status().code(), StatusCode::kNotFound);
  EXPECT_NE(got.status().message().find("p/checkpoints/1/manifest.json"), std::string::npos)
      << got.status().message();
  EXPECT_EQ(s->get_file("p/nope", tmp.file("out")).code(), StatusCode::kNotFound);
  EXPECT_TRUE(fs::is_empty(tmp.path())) << "no temporary left by a failed get_file";
  EXPECT_TRUE(s->list("p/").value().empty());
  EXPECT_EQ(s->put_bytes("../x", "v").code(), StatusCode::kInvalidArgument);
}

TEST_F(S3Test, MissingBucketIsAConfigurationError) {
  auto s = open_s3_storage("no-such-bucket", "", options());
  ASSERT_TRUE(s.ok());
  auto got = (*s)->get_bytes("p/_CURRENT");
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << got.status().to_string();
  EXPECT_NE(got.status().message().find("no-such-bucket"), std::string::npos)
      << got.status().message();
}

TEST_F(S3Test, WrongSecretIsAClearAuthError) {
  S3Options o = options();
  o.secret_access_key = "wrong";
  auto s = open("", o);
  auto t0 = Clock::now();
  Status st = s->put_bytes("p/_CURRENT", "1");
  EXPECT_LT(Clock::now() - t0, 2s) << "an auth failure must not be retried";
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("HTTP 403 SignatureDoesNotMatch"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("p/_CURRENT"), std::string::npos) << st.message();
  o.access_key_id = "unknown";
  EXPECT_EQ(open("", o)->get_bytes("p/_CURRENT").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(S3Test, CredentialsFromEnvironment) {
  ::setenv("AWS_ACCESS_KEY_ID", S3Server::kAccessKey, 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", S3Server::kSecretKey, 1);
  ::setenv("AWS_ENDPOINT_URL", server_->endpoint().c_str(), 1);
  ::setenv("AWS_REGION", S3Server::kRegion, 1);
  auto s = open_storage("s3://" + server_->bucket() + "/env");
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("AWS_ENDPOINT_URL");
  ::unsetenv("AWS_REGION");
  ASSERT_TRUE(s.ok());
  Status st = (*s)->put_bytes("k", "v");
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(*open()->get_bytes("env/k"), "v");
}

TEST_F(S3Test, ParallelUploadsShareTheStorage) {
  auto s = open();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        std::string key = "p/shared/" + std::to_string(t) + "-" + std::to_string(i);
        if (!s->put_bytes(key, key).ok()) ++failures;
        auto got = s->get_bytes(key);
        if (!got.ok() || *got != key) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(s->list("p/shared/").value().size(), 60u);
}

// ---- Retries, against a scripted HTTP server ----

// Answers each request with the next scripted response (the last repeats),
// on 127.0.0.1, one connection per request; counts requests.
class ScriptedServer {
 public:
  struct Reply {
    int status;
    std::string body;
  };
  explicit ScriptedServer(std::vector<Reply> script) : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_.load(); }
  std::string first_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_;
  }
  // "METHOD /path?query" of every request, in order.
  std::vector<std::string> request_lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  void run() {
    auto deadline = Clock::now() + 30s;  // bounded even if a test hangs
    while (!stop_ && Clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      serve(c);
      ::close(c);
    }
  }

  void serve(int c) {
    timeval tv{2, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string req;
    char buf[8192];
    size_t header_end = std::string::npos;
    while ((header_end = req.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
    }
    std::string lower = req.substr(0, header_end);
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (lower.find("expect: 100-continue") != std::string::npos) {
      const char* cont = "HTTP/1.1 100 Continue\r\n\r\n";
      ::send(c, cont, std::strlen(cont), MSG_NOSIGNAL);
    }
    size_t length = 0;
    if (size_t at = lower.find("content-length:"); at != std::string::npos) {
      length = std::stoul(lower.substr(at + 15));
    }
    while (req.size() < header_end + 4 + length) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
    }
    int index = requests_++;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (index == 0) first_ = req;
      lines_.push_back(req.substr(0, req.find(" HTTP/1.1")));
    }
    const Reply& r = script_[std::min<size_t>(index, script_.size() - 1)];
    std::string resp = "HTTP/1.1 " + std::to_string(r.status) +
                       " X\r\nContent-Length: " + std::to_string(r.body.size()) +
                       "\r\nETag: \"e\"\r\nConnection: close\r\n\r\n" + r.body;
    ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
  }

  std::vector<Reply> script_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::mutex mu_;
  std::string first_;
  std::vector<std::string> lines_;
  std::thread thread_;
};

S3Options scripted_options(const ScriptedServer& server, int attempts) {
  S3Options o;
  o.endpoint = server.endpoint();
  o.region = "eu-west-3";
  o.access_key_id = "AKIDEXAMPLE";
  o.secret_access_key = "secret";
  o.session_token = "session-token";
  o.max_attempts = attempts;
  return o;
}

std::string s3_error(const std::string& code) {
  return "<?xml version=\"1.0\"?><Error><Code>" + code + "</Code><Message>m</Message></Error>";
}

TEST(S3Retry, RetriesSlowDownAndServerErrorsThenSucceeds) {
  ScriptedServer server(
      {{503, s3_error("SlowDown")}, {500, s3_error("InternalError")}, {429, ""}, {200, ""}});
  auto s = open_s3_storage("bkt", "pre", scripted_options(server, 5));
  ASSERT_TRUE(s.ok());
  Status st = (*s)->put_bytes("p/_CURRENT", "12");
  EXPECT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(server.requests(), 4);
  // Path-style, signed, unsigned payload, session token.
  std::string req = server.first_request();
  EXPECT_EQ(req.rfind("PUT /bkt/pre/p/_CURRENT HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("x-amz-content-sha256: UNSIGNED-PAYLOAD"), std::string::npos) << req;
  EXPECT_NE(req.find("x-amz-security-token: session-token"), std::string::npos) << req;
  EXPECT_NE(req.find("Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), std::string::npos)
      << req;
  EXPECT_NE(req.find("/eu-west-3/s3/aws4_request"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\n\r\n12"), std::string::npos) << req;
}

TEST(S3Retry, ExhaustedRetriesAreUnavailable) {
  ScriptedServer server({{503, s3_error("SlowDown")}});
  auto s = open_s3_storage("bkt", "", scripted_options(server, 3));
  auto t0 = Clock::now();
  auto got = (*s)->get_bytes("p/_CURRENT");
  EXPECT_LT(Clock::now() - t0, 3s);  // backoff: at most 100 + 200 ms
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << got.status().to_string();
  EXPECT_NE(got.status().message().find("after 3 attempts"), std::string::npos)
      << got.status().message();
  EXPECT_NE(got.status().message().find("HTTP 503 SlowDown"), std::string::npos)
      << got.status().message();
  EXPECT_EQ(server.requests(), 3);
}

TEST(S3Retry, ClientErrorsAreFinal) {
  ScriptedServer server({{403, s3_error("AccessDenied")}, {200, ""}});
  auto s = open_s3_storage("bkt", "", scripted_options(server, 5));
  Status st = (*s)->put_bytes("p/_CURRENT", "1");
  EXPECT_EQ(server.requests(), 1);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("HTTP 403 AccessDenied"), std::string::npos) << st.message();

  ScriptedServer bad({{400, s3_error("InvalidArgument")}, {200, ""}});
  auto s2 = open_s3_storage("bkt", "", scripted_options(bad, 5));
  Status st2 = (*s2)->remove("p/x");
  EXPECT_EQ(bad.requests(), 1);
  EXPECT_EQ(st2.code(), StatusCode::kIoError);
  EXPECT_NE(st2.message().find("HTTP 400 InvalidArgument"), std::string::npos) << st2.message();
  EXPECT_NE(st2.message().find("p/x"), std::string::npos) << st2.message();
}

TEST(S3Retry, GetFileRetriesAndKeepsOnlyTheGoodBody) {
  ScriptedServer server({{500, s3_error("InternalError")}, {200, "the payload"}});
  auto s = open_s3_storage("bkt", "", scripted_options(server, 3));
  TempDir tmp;
  Status st = (*s)->get_file("p/shared/1.sst", tmp.file("1.sst"));
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(df::test::read_file(tmp.file("1.sst")), "the payload");
  EXPECT_EQ(df::test::list_dir(tmp.path()), (std::vector<std::string>{"1.sst"}));
  EXPECT_EQ(server.requests(), 2);
}

TEST(S3Retry, FailedMultipartUploadIsAborted) {
  ScriptedServer server(
      {{200,
        "<InitiateMultipartUploadResult><Bucket>bkt</Bucket><Key>k</Key><UploadId>u+1</UploadId>"
        "</InitiateMultipartUploadResult>"},
       {200, ""},
       {400, s3_error("InvalidPart")},
       {204, ""}});
  S3Options o = scripted_options(server, 3);
  o.multipart_threshold = 1000;
  o.part_size = 1000;
  TempDir tmp;
  Status st =
      (*open_s3_storage("bkt", "", o))->put_file("p/big", tmp.write("big", std::string(2500, 'b')));
  EXPECT_EQ(st.code(), StatusCode::kIoError) << st.to_string();
  EXPECT_NE(st.message().find("HTTP 400 InvalidPart"), std::string::npos) << st.message();
  EXPECT_EQ(server.request_lines(),
            (std::vector<std::string>{
                "POST /bkt/p/big?uploads=", "PUT /bkt/p/big?partNumber=1&uploadId=u%2B1",
                "PUT /bkt/p/big?partNumber=2&uploadId=u%2B1", "DELETE /bkt/p/big?uploadId=u%2B1"}));
}

TEST(S3Retry, ConnectionRefusedIsRetriedThenUnavailable) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);  // nothing listens there now
  S3Options o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  o.access_key_id = "a";
  o.secret_access_key = "b";
  o.max_attempts = 3;
  auto s = open_s3_storage("bkt", "", o);
  auto t0 = Clock::now();
  Status st = (*s)->put_bytes("k", "v");
  EXPECT_LT(Clock::now() - t0, 3s);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.to_string();
  EXPECT_NE(st.message().find("after 3 attempts"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace df::checkpoint
