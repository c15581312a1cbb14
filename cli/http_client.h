// HttpClient: the small synchronous HTTP/1.1 client the `dataflow` REST
// commands use to talk to a DataFlow server (docs/rest-api.md), on
// Boost.Beast. One request per connection (Connection: close): a command
// makes one or two calls, so keep-alive would buy nothing.
//
// Every step (resolve + connect, write, each read) is bounded by a timeout,
// so a hung server never hangs the CLI. Failures are one sentence naming the
// server URL ("cannot reach the DataFlow server at http://...: connection
// refused.").
//
// Threading: an HttpClient is a value; each request runs its own io_context
// on the calling thread. Use one object per thread.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>

#include "engine/core/status.h"
#include "engine/core/time.h"

namespace df::cli {

// Where the server is: http://host[:port][/prefix]. The REST API lives at
// <prefix>/api/v1 (the prefix is for servers behind a path-routing proxy).
struct ServerUrl {
  std::string host;    // name or address; IPv6 without brackets
  uint16_t port = 80;  // the URL's, else 80
  std::string prefix;  // "" or "/a/b": no trailing slash

  // "http://host:port/prefix" (IPv6 in brackets), as shown in messages.
  std::string text() const;
};

// Parses --server. The scheme may be left out ("127.0.0.1:8080"); https,
// user info, queries and fragments are refused with a sentence naming the URL.
Result<ServerUrl> parse_server_url(std::string_view url);

// --server's default: $DATAFLOW_SERVER when set and not empty, else
// http://127.0.0.1:8080.
std::string default_server_url();

// `segment` percent-encoded for use as one path segment (RFC 3986
// unreserved characters are kept): pipeline names, run ids.
std::string encode_path_segment(std::string_view segment);

struct HttpClientOptions {
  Millis connect_timeout{5000};  // resolve + TCP connect
  Millis io_timeout{60000};      // sending the request; then each read of the response
  std::string bearer_token;      // sent as `Authorization: Bearer` when not empty
  // Sent as `Authorization: Basic` when basic_user is not empty (and no
  // bearer_token is set).
  std::string basic_user;
  std::string basic_password;
};

struct HttpClientResponse {
  int status = 0;
  std::string content_type;
  std::string body;  // empty when a 2xx body went to a sink
};

class HttpClient {
 public:
  explicit HttpClient(ServerUrl server, HttpClientOptions options = {});

  const ServerUrl& server() const { return server_; }

  // Sends `method` to the server's prefix + `path_and_query` (e.g.
  // "/api/v1/pipelines?start=true") with `body` as `content_type` (no body
  // when empty) and reads the whole response. Any HTTP status is a result;
  // only transport failures are errors (kUnavailable, one sentence).
  Result<HttpClientResponse> request(std::string_view method, std::string_view path_and_query,
                                     std::string_view body = {},
                                     std::string_view content_type = {}) const;

  // As request(), but a 2xx body is written to `sink` as it arrives instead
  // of being kept (a large state export stays out of memory); any other
  // status's body is returned as usual.
  Result<HttpClientResponse> request_to(std::ostream& sink, std::string_view method,
                                        std::string_view path_and_query, std::string_view body = {},
                                        std::string_view content_type = {}) const;

 private:
  Result<HttpClientResponse> send(std::ostream* sink, std::string_view method,
                                  std::string_view path_and_query, std::string_view body,
                                  std::string_view content_type) const;

  ServerUrl server_;
  HttpClientOptions options_;
};

}  // namespace df::cli
