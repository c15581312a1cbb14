// What the integration tests of the server do again and again: talk to its
// API, poll until something holds, and read what a file sink committed.
// Functions only; thread-safe as far as cli::HttpClient is.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "cli/http_client.h"

namespace df::test {

// A client of http://127.0.0.1:<port> (2 s to connect, 10 s per request).
cli::HttpClient client_for(uint16_t port);

// The body of GET `path` whatever its status; empty when the request failed.
std::string get_body(const cli::HttpClient& http, const std::string& path);

// The JSON body of GET `path` when it answers 200; else an empty object.
nlohmann::json get_json(const cli::HttpClient& http, const std::string& path);

// Calls `probe` every 100 ms until it returns true (true) or `budget` passed
// (false, after one last call).
bool eventually(const std::function<bool()>& probe, std::chrono::milliseconds budget);

// The "id" of every row of committed_rows(dir) (temp_dir.h): what a file
// sink committed, as JSON lines.
std::multiset<int64_t> committed_ids(const std::string& dir);

}  // namespace df::test
