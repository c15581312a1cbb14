#include "cli/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/http.hpp>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <ostream>

namespace df::cli {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "5 s", "1.5 s", "250 ms": how long a timeout was, for messages.
std::string seconds_text(Millis d) {
  if (d.count() < 1000) return std::to_string(d.count()) + " ms";
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

// Why a connect failed, as the end of "cannot reach the DataFlow server at URL: ...".
std::string connect_failure(const error_code& ec, Millis timeout) {
  if (ec == beast::error::timeout || ec == asio::error::operation_aborted)
    return "no answer within " + seconds_text(timeout);
  if (ec == asio::error::connection_refused) return "connection refused";
  if (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again)
    return "unknown host";
  if (ec == asio::error::network_unreachable) return "network unreachable";
  if (ec == asio::error::host_unreachable) return "host unreachable";
  return lower(ec.message());
}

}  // namespace

std::string ServerUrl::text() const {
  std::string out = "http://";
  if (host.find(':') != std::string::npos) {
    out += "[" + host + "]";
  } else {
    out += host;
  }
  out += ":" + std::to_string(port) + prefix;
  return out;
}

Result<ServerUrl> parse_server_url(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return Status::invalid("--server '" + std::string(url) + "' is not a server URL: " +
                           std::string(why) + "; give http://host:port.");
  };
  if (url.empty()) return Status::invalid("--server is empty; give http://host:port.");
  std::string_view rest = url;
  if (size_t scheme_end = rest.find("://"); scheme_end != std::string_view::npos) {
    std::string scheme = lower(rest.substr(0, scheme_end));
    if (scheme == "https") {
      return Status::invalid("--server '" + std::string(url) +
                             "': this client speaks only http; give an http:// URL.");
    }
    if (scheme != "http") return bad("the scheme must be http");
    rest.remove_prefix(scheme_end + 3);
  }
  const size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view path =
      authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) return bad("user info is not supported");
  if (path.find_first_of("?#") != std::string_view::npos) {
    return bad("it must not have a query or a fragment");
  }

  ServerUrl out;
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("an IPv6 address needs its closing ']'");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("expected ':' and a port after ']'");
      port_text = after.substr(1);
      has_port = true;
    }
  } else {
    const size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      if (authority.find(':') != colon) return bad("an IPv6 address must be in brackets");
      port_text = authority.substr(colon + 1);
      has_port = true;
      authority = authority.substr(0, colon);
    }
    out.host = std::string(authority);
  }
  if (out.host.empty()) return bad("it names no host");
  if (has_port) {
    uint32_t port = 0;
    bool digits = !port_text.empty() && port_text.size() <= 5;
    for (char c : port_text) {
      if (c < '0' || c > '9') digits = false;
      if (digits) port = port * 10 + static_cast<uint32_t>(c - '0');
    }
    if (!digits || port == 0 || port > 65535)
      return bad("the port must be a number from 1 to 65535");
    out.port = static_cast<uint16_t>(port);
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  out.prefix = std::string(path);
  return out;
}

std::string default_server_url() {
  const char* env = std::getenv("DATAFLOW_SERVER");
  if (env != nullptr && *env != '\0') return env;
  return "http://127.0.0.1:8080";
}

std::string encode_path_segment(std::string_view segment) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(segment.size());
  for (char ch : segment) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

HttpClient::HttpClient(ServerUrl server, HttpClientOptions options)
    : server_(std::move(server)), options_(options) {}

Result<HttpClientResponse> HttpClient::request(std::string_view method,
                                               std::string_view path_and_query,
                                               std::string_view body,
                                               std::string_view content_type) const {
  return send(nullptr, method, path_and_query, body, content_type);
}

Result<HttpClientResponse> HttpClient::request_to(std::ostream& sink, std::string_view method,
                                                  std::string_view path_and_query,
                                                  std::string_view body,
                                                  std::string_view content_type) const {
  return send(&sink, method, path_and_query, body, content_type);
}

Result<HttpClientResponse> HttpClient::send(std::ostream* sink, std::string_view method,
                                            std::string_view path_and_query, std::string_view body,
                                            std::string_view content_type) const {
  const std::string where = server_.text();
  auto unreachable = [&](const std::string& why) {
    return Status::unavailable("cannot reach the DataFlow server at " + where + ": " + why + ".");
  };
  auto broken = [&](const error_code& ec) {
    if (ec == beast::error::timeout) {
      return Status::unavailable("the DataFlow server at " + where + " did not answer within " +
                                 seconds_text(options_.io_timeout) + ".");
    }
    return Status::unavailable("lost the connection to the DataFlow server at " + where + ": " +
                               lower(ec.message()) + ".");
  };

  // Each step is one asynchronous operation run to completion on this
  // thread: Beast's stream timeouts apply to asynchronous operations only.
  asio::io_context ioc;
  error_code ec;
  auto run = [&ioc] {
    ioc.restart();
    ioc.run();
  };

  // Resolve, bounded by a timer (tcp_stream's expiry does not cover it).
  tcp::resolver resolver(ioc);
  tcp::resolver::results_type endpoints;
  asio::steady_timer resolve_deadline(ioc, options_.connect_timeout);
  resolve_deadline.async_wait([&resolver](const error_code& e) {
    if (!e) resolver.cancel();
  });
  resolver.async_resolve(server_.host, std::to_string(server_.port),
                         [&](const error_code& e, tcp::resolver::results_type results) {
                           ec = e;
                           endpoints = std::move(results);
                           resolve_deadline.cancel();
                         });
  run();
  if (ec) return unreachable(connect_failure(ec, options_.connect_timeout));

  beast::tcp_stream stream(ioc);
  stream.expires_after(options_.connect_timeout);
  stream.async_connect(endpoints, [&](const error_code& e, const tcp::endpoint&) { ec = e; });
  run();
  if (ec) return unreachable(connect_failure(ec, options_.connect_timeout));

  http::request<http::string_body> req;
  req.method_string(beast::string_view(method.data(), method.size()));
  req.target(server_.prefix + std::string(path_and_query));
  req.version(11);
  req.set(http::field::host, server_.host.find(':') != std::string::npos
                                 ? "[" + server_.host + "]:" + std::to_string(server_.port)
                                 : server_.host + ":" + std::to_string(server_.port));
  req.set(http::field::user_agent, "dataflow-cli");
  req.set(http::field::accept, "application/json");
  req.keep_alive(false);
  if (!options_.bearer_token.empty()) {
    req.set(http::field::authorization, "Bearer " + options_.bearer_token);
  } else if (!options_.basic_user.empty()) {
    const std::string plain = options_.basic_user + ":" + options_.basic_password;
    std::string encoded(beast::detail::base64::encoded_size(plain.size()), '\0');
    encoded.resize(beast::detail::base64::encode(encoded.data(), plain.data(), plain.size()));
    req.set(http::field::authorization, "Basic " + encoded);
  }
  if (!body.empty() || method == "POST" || method == "PUT") {
    if (!content_type.empty()) {
      req.set(http::field::content_type,
              beast::string_view(content_type.data(), content_type.size()));
    }
    req.body() = std::string(body);
    req.prepare_payload();
  }

  stream.expires_after(options_.io_timeout);
  http::async_write(stream, req, [&](const error_code& e, size_t) { ec = e; });
  run();
  // A server may answer before reading the whole body (413) and close: its
  // answer is still worth reading, so a failed write fails only if no
  // answer follows.
  const error_code write_error = ec;

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  // No limit (a state export can be large). Not boost::none: Beast 1.74
  // compares the length against the optional and then rejects every body.
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  stream.expires_after(options_.io_timeout);
  http::async_read_header(stream, buffer, parser, [&](const error_code& e, size_t) { ec = e; });
  run();
  if (ec) return broken(write_error ? write_error : ec);

  HttpClientResponse response;
  response.status = static_cast<int>(parser.get().result_int());
  response.content_type = std::string(parser.get()[http::field::content_type]);
  std::ostream* to = response.status / 100 == 2 ? sink : nullptr;
  char chunk[64 * 1024];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    stream.expires_after(options_.io_timeout);
    http::async_read(stream, buffer, parser, [&](const error_code& e, size_t) { ec = e; });
    run();
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return broken(ec);
    const size_t got = sizeof chunk - parser.get().body().size;
    if (to != nullptr) {
      to->write(chunk, static_cast<std::streamsize>(got));
      if (!*to) return Status::io_error("cannot write the server's answer");
    } else {
      response.body.append(chunk, got);
    }
  }
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return response;
}

}  // namespace df::cli
