// The REST client commands: `dataflow submit`, `pipelines ...` and
// `runs ...` (DESIGN §7), each one or two calls to a DataFlow server's
// /api/v1 (docs/rest-api.md), printed as aligned tables or, with
// `--output json`, as the server's JSON.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "cli/commands.h"
#include "cli/http_client.h"
#include "config/yaml_loader.h"
#include "engine/core/time.h"

namespace df::cli {

namespace {

using json = nlohmann::ordered_json;  // keeps the server's key order when printed

// A 4xx the user's input caused (DESIGN §7 exit 1); any other failure is 3.
bool is_input_error(int status) {
  switch (status) {
    case 400:  // malformed body, invalid pipeline, bad parameter
    case 401:  // missing or wrong credentials
    case 403:  // not allowed
    case 404:  // unknown pipeline or run
    case 409:  // conflicts with the pipeline's state
    case 412:  // stale If-Match
    case 413:  // body over the server's limit
    case 415:  // neither YAML nor JSON
      return true;
    default:
      return false;
  }
}

std::string sentence(std::string m) {
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  if (!m.empty() && m.back() != '.' && m.back() != '?' && m.back() != '!') m += '.';
  return m;
}

// Prints a non-2xx answer: its details lines, then its error sentence.
int report_failure(const HttpClientResponse& r) {
  std::string message;
  json doc = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_object()) {
    if (auto d = doc.find("details"); d != doc.end() && d->is_array()) {
      for (const auto& line : *d) {
        std::fprintf(stderr, "%s\n",
                     line.is_string() ? line.get<std::string>().c_str() : line.dump().c_str());
      }
    }
    if (auto e = doc.find("error"); e != doc.end() && e->is_string())
      message = e->get<std::string>();
  }
  if (message.empty()) {
    message = "the DataFlow server answered HTTP " + std::to_string(r.status);
  }
  print_error(sentence(message));
  return is_input_error(r.status) ? kExitInvalidInput : kExitRuntimeFailure;
}

// The JSON of a 2xx body; a body that is not JSON is the server's fault.
bool parse_body(const HttpClientResponse& r, json& out) {
  out = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) {
    print_error("the server's answer is not JSON (" +
                (r.content_type.empty() ? std::string("no content type") : r.content_type) + ").");
    return false;
  }
  return true;
}

// A field for a table cell or a "key: value" line: strings as they are,
// null or absent as "-", anything else as compact JSON.
std::string field(const json& obj, const char* key) {
  if (!obj.is_object()) return "-";
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return "-";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

bool color_stdout() {
  static const bool enabled = isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr;
  return enabled;
}

// The ANSI colour of a pipeline or run status, or "" for none.
const char* status_color(const std::string& status) {
  if (status == "running" || status == "succeeded") return "\033[32m";
  if (status == "failed") return "\033[31m";
  if (status == "pending" || status == "cancelled") return "\033[33m";
  return "";
}

// Columns of text, each as wide as its widest cell, two spaces apart; the
// last column is not padded. Colour only on a terminal.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }

  void print() const {
    std::vector<size_t> widths(header_.size(), 0);
    auto measure = [&](const std::vector<std::string>& row) {
      for (size_t i = 0; i < row.size() && i < widths.size(); ++i)
        widths[i] = std::max(widths[i], display_width(row[i]));
    };
    measure(header_);
    for (const auto& row : rows_) measure(row);
    const bool color = color_stdout();
    print_row(header_, widths, color ? "\033[1m" : nullptr, /*status_column=*/-1);
    int status_column = -1;
    for (size_t i = 0; i < header_.size(); ++i)
      if (header_[i] == "STATUS") status_column = static_cast<int>(i);
    for (const auto& row : rows_) print_row(row, widths, nullptr, color ? status_column : -1);
  }

 private:
  // Code points, not bytes: names and messages may be UTF-8.
  static size_t display_width(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  }

  static void print_row(const std::vector<std::string>& row, const std::vector<size_t>& widths,
                        const char* row_style, int status_column) {
    std::string line;
    if (row_style) line += row_style;
    for (size_t i = 0; i < row.size(); ++i) {
      const char* color = static_cast<int>(i) == status_column ? status_color(row[i]) : "";
      if (*color) line += color;
      line += row[i];
      if (*color) line += "\033[0m";
      if (i + 1 < row.size()) line.append(widths[i] - display_width(row[i]) + 2, ' ');
    }
    if (row_style) line += "\033[0m";
    std::printf("%s\n", line.c_str());
  }

  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// "key:   value" lines, values aligned.
void print_fields(const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [k, v] : fields) width = std::max(width, k.size());
  for (const auto& [k, v] : fields) {
    std::printf("%s:%*s%s\n", k.c_str(), static_cast<int>(width - k.size() + 1), "", v.c_str());
  }
}

void print_json(const json& doc) { std::printf("%s\n", doc.dump(2).c_str()); }

bool json_output(const ClientArgs& args) { return args.output == "json"; }

std::string pipeline_path(const std::string& name) {
  return "/pipelines/" + encode_path_segment(name);
}
std::string run_path(const std::string& id) { return "/runs/" + encode_path_segment(id); }

// --token and --user, shared by every client command (and by call_server's
// other callers, e.g. `state export --server`).
struct Credentials {
  std::string token;  // --token
  std::string user;   // --user
};
Credentials& credentials() {
  static Credentials c;
  return c;
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The credentials to send: --token, else $DATAFLOW_TOKEN, else
// $DATAFLOW_API_KEY (a JWT or an API key, as a bearer token); or --user /
// $DATAFLOW_USER with $DATAFLOW_PASSWORD (Basic). The password is read from
// the environment only, so it never shows in argv (`ps`).
Status set_credentials(HttpClientOptions& options) {
  const Credentials& c = credentials();
  options.bearer_token = !c.token.empty() ? c.token : env_or_empty("DATAFLOW_TOKEN");
  if (options.bearer_token.empty()) options.bearer_token = env_or_empty("DATAFLOW_API_KEY");
  const std::string user = !c.user.empty() ? c.user : env_or_empty("DATAFLOW_USER");
  if (user.empty()) return Status::OK();
  if (!c.token.empty() || !env_or_empty("DATAFLOW_TOKEN").empty()) {
    return Status::invalid(
        "give a token (--token, $DATAFLOW_TOKEN) or a user (--user, "
        "$DATAFLOW_USER), not both.");
  }
  const std::string password = env_or_empty("DATAFLOW_PASSWORD");
  if (password.empty()) {
    return Status::invalid("user '" + user +
                           "' needs $DATAFLOW_PASSWORD (the password is read "
                           "from the environment only).");
  }
  options.bearer_token.clear();
  options.basic_user = user;
  options.basic_password = password;
  return Status::OK();
}

// One exchange with the server: kExitOk with `response` set, whatever its
// HTTP status, or the exit code after printing why the server could not be
// asked (2: a bad --server, 3: unreachable).
int exchange(const std::string& server, int64_t timeout_ms, const std::string& method,
             const std::string& path, const std::string& body, const std::string& content_type,
             std::ostream* sink, HttpClientResponse& response) {
  auto url = parse_server_url(server.empty() ? default_server_url() : server);
  if (!url.ok()) {
    print_error(url.status().message());
    return kExitUsage;
  }
  HttpClientOptions options;
  options.io_timeout = Millis(timeout_ms);
  options.connect_timeout = std::min(options.connect_timeout, options.io_timeout);
  if (Status s = set_credentials(options); !s.ok()) {
    print_error(s.message());
    return kExitUsage;
  }
  HttpClient client(*url, options);
  const std::string target = "/api/v1" + path;
  auto result = sink ? client.request_to(*sink, method, target, body, content_type)
                     : client.request(method, target, body, content_type);
  if (!result.ok()) {
    print_error(sentence(result.status().message()));
    return kExitRuntimeFailure;
  }
  response = std::move(result).value();
  return kExitOk;
}

// --timeout in milliseconds; 0 after printing why it is not a duration.
int64_t parse_timeout(const ClientArgs& args) {
  auto d = parse_duration(args.timeout);
  if (!d.ok() || d->count() <= 0) {
    print_error("--timeout '" + args.timeout + "' is not a positive duration such as 30s or 2m.");
    return 0;
  }
  return d->count();
}

// One call with the client's --server and --timeout; a 2xx body as JSON in
// `out` (null when empty).
int call_json(const ClientArgs& args, const std::string& method, const std::string& path,
              json& out) {
  const int64_t timeout = parse_timeout(args);
  if (timeout == 0) return kExitUsage;
  HttpClientResponse response;
  int code = call_server(args.server, method, path, response, {}, {}, nullptr, timeout);
  if (code != kExitOk) return code;
  out = nullptr;
  if (response.body.empty()) return kExitOk;
  return parse_body(response, out) ? kExitOk : kExitRuntimeFailure;
}

// ---- submit ----

// The `name:` inside a pipeline file (for PUT /pipelines/{name}); empty when unreadable.
std::string pipeline_name(const std::string& text, const std::string& file) {
  config::LoadOptions options;
  options.substitute_env = false;  // the server substitutes from its own environment
  auto doc = config::parse_yaml(text, file, options);
  if (!doc.ok()) return {};
  const ConfigValue* name = doc->find("name");
  if (name == nullptr || !name->is_scalar()) return {};
  return name->scalar_text();
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int run_submit(const ClientArgs& args) {
  std::ifstream in(args.file, std::ios::binary);
  if (!in) {
    print_error("cannot read " + args.file + ": " + errno_text(errno) + ".");
    return kExitInvalidInput;
  }
  std::ostringstream read;
  read << in.rdbuf();
  const std::string text = read.str();
  const std::string content_type =
      ends_with(args.file, ".json") ? "application/json" : "application/yaml";
  const int64_t timeout = parse_timeout(args);
  if (timeout == 0) return kExitUsage;

  HttpClientResponse response;
  int code = exchange(args.server, timeout, "POST",
                      std::string("/pipelines") + (args.start ? "?start=true" : ""), text,
                      content_type, nullptr, response);
  if (code != kExitOk) return code;
  std::string verb = "created";
  if (response.status == 409 && args.update) {
    // It exists: store the file as its next version.
    const std::string name = pipeline_name(text, args.file);
    if (name.empty()) return report_failure(response);
    code = exchange(args.server, timeout, "PUT",
                    pipeline_path(name) + (args.allow_state_loss ? "?allow_state_loss=true" : ""),
                    text, content_type, nullptr, response);
    if (code != kExitOk) return code;
    verb = "updated";
  } else if (response.status == 409) {
    const std::string name = pipeline_name(text, args.file);
    if (name.empty()) return report_failure(response);
    print_error("pipeline '" + name +
                "' exists already; give --update to store the file as its next version.");
    return kExitInvalidInput;
  }
  if (response.status / 100 != 2) return report_failure(response);
  json doc;
  if (!parse_body(response, doc)) return kExitRuntimeFailure;

  // An updated pipeline that was not running starts only when asked.
  json run;
  if (args.start && verb == "updated" && field(doc, "status") != "running") {
    code = call_json(args, "POST", pipeline_path(field(doc, "name")) + "/start", run);
    if (code != kExitOk) return code;
  }
  if (json_output(args)) {
    print_json(doc);
    return kExitOk;
  }
  std::printf("pipeline %s version %s %s\n", field(doc, "name").c_str(),
              field(doc, "version").c_str(), verb.c_str());
  if (!run.is_null()) {
    std::printf("run %s started\n", field(run, "id").c_str());
  } else if (args.start && verb == "updated") {
    // The server stops the running run with a final checkpoint and starts a new one on it.
    std::printf("pipeline %s restarts on version %s\n", field(doc, "name").c_str(),
                field(doc, "version").c_str());
  } else if (args.start) {
    std::printf("run %s started\n", field(doc, "current_run").c_str());
  }
  return kExitOk;
}

// ---- pipelines ----

int pipelines_list(const ClientArgs& args) {
  json doc;
  if (int code = call_json(args, "GET", "/pipelines", doc); code != kExitOk) return code;
  if (json_output(args)) {
    print_json(doc);
    return kExitOk;
  }
  Table table({"NAME", "VERSION", "STATUS", "RUN", "UPDATED"});
  if (doc.is_object() && doc.contains("pipelines") && doc["pipelines"].is_array()) {
    for (const auto& p : doc["pipelines"]) {
      table.add({field(p, "name"), field(p, "version"), field(p, "status"), field(p, "current_run"),
                 field(p, "updated")});
    }
  }
  if (table.empty()) {
    std::printf("no pipelines; store one with `dataflow submit PIPELINE.yaml`\n");
    return kExitOk;
  }
  table.print();
  return kExitOk;
}

int pipelines_get(const ClientArgs& args) {
  json doc;
  if (int code = call_json(args, "GET", pipeline_path(args.name), doc); code != kExitOk)
    return code;
  if (args.spec) {
    std::string spec = field(doc, "spec");
    if (!spec.empty() && spec.back() != '\n') spec += '\n';
    std::fputs(spec.c_str(), stdout);
    return kExitOk;
  }
  if (json_output(args)) {
    print_json(doc);
    return kExitOk;
  }
  print_fields({{"name", field(doc, "name")},
                {"version", field(doc, "version")},
                {"status", field(doc, "status")},
                {"run", field(doc, "current_run")},
                {"created", field(doc, "created")},
                {"updated", field(doc, "updated")},
                {"format", field(doc, "format")}});
  return kExitOk;
}

// start and stop: both answer with the run.
int pipelines_start_stop(const ClientArgs& args, bool start) {
  json run;
  if (int code =
          call_json(args, "POST", pipeline_path(args.name) + (start ? "/start" : "/stop"), run);
      code != kExitOk)
    return code;
  if (json_output(args)) {
    print_json(run);
  } else if (start) {
    std::printf("pipeline %s started: run %s\n", args.name.c_str(), field(run, "id").c_str());
  } else {
    std::printf("pipeline %s stopping: run %s takes a final checkpoint, then ends\n",
                args.name.c_str(), field(run, "id").c_str());
  }
  return kExitOk;
}

int pipelines_delete(const ClientArgs& args) {
  json none;
  if (int code = call_json(args, "DELETE", pipeline_path(args.name), none); code != kExitOk)
    return code;
  if (json_output(args)) {
    print_json(json{{"deleted", args.name}});
  } else {
    std::printf("pipeline %s deleted\n", args.name.c_str());
  }
  return kExitOk;
}

// ---- runs ----

void print_run(const json& run) {
  print_fields({{"id", field(run, "id")},
                {"pipeline", field(run, "pipeline")},
                {"version", field(run, "version")},
                {"status", field(run, "status")},
                {"started", field(run, "started")},
                {"ended", field(run, "ended")},
                {"restarts", field(run, "restarts")},
                {"checkpoints", field(run, "checkpoints")},
                {"last checkpoint", field(run, "last_checkpoint")},
                {"error", field(run, "error")}});
}

int runs_list(const ClientArgs& args) {
  json doc;
  if (int code = call_json(args, "GET", pipeline_path(args.name) + "/runs", doc); code != kExitOk)
    return code;
  if (json_output(args)) {
    print_json(doc);
    return kExitOk;
  }
  Table table(
      {"ID", "PIPELINE", "VERSION", "STATUS", "STARTED", "ENDED", "RESTARTS", "CHECKPOINTS"});
  if (doc.is_object() && doc.contains("runs") && doc["runs"].is_array()) {
    for (const auto& r : doc["runs"]) {
      table.add({field(r, "id"), field(r, "pipeline"), field(r, "version"), field(r, "status"),
                 field(r, "started"), field(r, "ended"), field(r, "restarts"),
                 field(r, "checkpoints")});
    }
  }
  if (table.empty()) {
    std::printf("pipeline %s has no runs; start it with `dataflow pipelines start %s`\n",
                args.name.c_str(), args.name.c_str());
    return kExitOk;
  }
  table.print();
  return kExitOk;
}

int runs_get(const ClientArgs& args) {
  json run;
  if (int code = call_json(args, "GET", run_path(args.run_id), run); code != kExitOk) return code;
  if (json_output(args)) {
    print_json(run);
  } else {
    print_run(run);
  }
  return kExitOk;
}

int runs_cancel(const ClientArgs& args) {
  json run;
  if (int code = call_json(args, "POST", run_path(args.run_id) + "/cancel", run); code != kExitOk)
    return code;
  if (json_output(args)) {
    print_json(run);
  } else {
    std::printf("run %s cancelling: it stops at its next safe point (status now %s)\n",
                args.run_id.c_str(), field(run, "status").c_str());
  }
  return kExitOk;
}

int runs_events(const ClientArgs& args) {
  json doc;
  if (int code = call_json(args, "GET", run_path(args.run_id) + "/events", doc); code != kExitOk)
    return code;
  if (json_output(args)) {
    print_json(doc);
    return kExitOk;
  }
  Table table({"TIME", "CLASS", "ACTION", "NODE", "ATTEMPT", "MESSAGE"});
  if (doc.is_object() && doc.contains("events") && doc["events"].is_array()) {
    for (const auto& e : doc["events"]) {
      table.add({field(e, "time"), field(e, "class"), field(e, "action"), field(e, "node"),
                 field(e, "attempt"), field(e, "message")});
    }
  }
  if (table.empty()) {
    std::printf("run %s has no events\n", args.run_id.c_str());
    return kExitOk;
  }
  table.print();
  return kExitOk;
}

}  // namespace

int call_server(const std::string& server, const std::string& method, const std::string& path,
                HttpClientResponse& response, const std::string& body,
                const std::string& content_type, std::ostream* sink, int64_t timeout_ms) {
  int code = exchange(server, timeout_ms, method, path, body, content_type, sink, response);
  if (code != kExitOk) return code;
  if (response.status / 100 == 2) return kExitOk;
  return report_failure(response);
}

void add_client_commands(CLI::App& app, std::shared_ptr<ClientArgs> args) {
  // --server and --timeout on every client command; --output on those that print.
  auto connection = [args](CLI::App* cmd, bool output) {
    cmd->add_option("--server", args->server,
                    "DataFlow server, http://host:port[/prefix] "
                    "(default: $DATAFLOW_SERVER, else http://127.0.0.1:8080)");
    cmd->add_option("--token", credentials().token,
                    "Bearer token (JWT or API key) for a server that requires authentication "
                    "(default: $DATAFLOW_TOKEN, else $DATAFLOW_API_KEY; prefer the variables: "
                    "argv shows in ps)");
    cmd->add_option("--user", credentials().user,
                    "User for HTTP Basic authentication (default: $DATAFLOW_USER); the password "
                    "comes from $DATAFLOW_PASSWORD");
    cmd->add_option("--timeout", args->timeout,
                    "Give up when connecting, sending or each read takes longer (default 60s)");
    if (output) {
      cmd->add_option("--output,-o", args->output, "table (default) or json: the server's JSON")
          ->check(CLI::IsMember({"table", "json"}));
    }
  };
  auto chosen = [args](const char* command) {
    return [args, command] { args->command = command; };
  };

  auto* submit = app.add_subcommand(
      "submit", "Store a pipeline file on a DataFlow server; exit 1 listing every problem.");
  submit->add_option("pipeline", args->file, "Pipeline file (YAML, or JSON when it ends in .json)")
      ->required();
  submit->add_flag("--start", args->start, "Start it once stored");
  auto* update = submit->add_flag("--update", args->update,
                                  "When the pipeline exists, store the file as its next version");
  submit
      ->add_flag("--allow-state-loss", args->allow_state_loss,
                 "With --update: accept a new version that drops operator state")
      ->needs(update);
  connection(submit, true);
  submit->parse_complete_callback(chosen("submit"));

  auto* pipelines =
      app.add_subcommand("pipelines", "List, show, start, stop or delete a server's pipelines.");
  pipelines->require_subcommand(1);
  auto* list = pipelines->add_subcommand("list", "List the pipelines: name, version, status, run.");
  connection(list, true);
  list->parse_complete_callback(chosen("pipelines list"));
  auto* get = pipelines->add_subcommand("get", "Show one pipeline.");
  get->add_option("name", args->name, "Pipeline name")->required();
  get->add_flag("--spec", args->spec, "Print the stored pipeline file instead");
  connection(get, true);
  get->parse_complete_callback(chosen("pipelines get"));
  struct Action {
    const char* name;
    const char* help;
    const char* command;
  };
  for (const Action& a :
       {Action{"start", "Start a pipeline (resuming from its last checkpoint).", "pipelines start"},
        Action{"stop", "Stop a pipeline after a final checkpoint.", "pipelines stop"},
        Action{"delete", "Delete a stopped pipeline and its versions.", "pipelines delete"}}) {
    auto* cmd = pipelines->add_subcommand(a.name, a.help);
    cmd->add_option("name", args->name, "Pipeline name")->required();
    connection(cmd, true);
    cmd->parse_complete_callback(chosen(a.command));
  }

  auto* runs = app.add_subcommand("runs", "List, show or cancel a server's pipeline runs.");
  runs->require_subcommand(1);
  auto* runs_list_cmd = runs->add_subcommand("list", "List a pipeline's runs, newest first.");
  runs_list_cmd->add_option("--pipeline", args->name, "Pipeline name")->required();
  connection(runs_list_cmd, true);
  runs_list_cmd->parse_complete_callback(chosen("runs list"));
  for (const Action& a : {Action{"get", "Show one run.", "runs get"},
                          Action{"cancel", "Cancel a run at its next safe point.", "runs cancel"},
                          Action{"events", "List a run's self-healing events.", "runs events"}}) {
    auto* cmd = runs->add_subcommand(a.name, a.help);
    cmd->add_option("id", args->run_id, "Run id")->required();
    connection(cmd, true);
    cmd->parse_complete_callback(chosen(a.command));
  }
}

int run_client(const ClientArgs& args) {
  const std::string& c = args.command;
  if (c == "submit") return run_submit(args);
  if (c == "pipelines list") return pipelines_list(args);
  if (c == "pipelines get") return pipelines_get(args);
  if (c == "pipelines start") return pipelines_start_stop(args, true);
  if (c == "pipelines stop") return pipelines_start_stop(args, false);
  if (c == "pipelines delete") return pipelines_delete(args);
  if (c == "runs list") return runs_list(args);
  if (c == "runs get") return runs_get(args);
  if (c == "runs cancel") return runs_cancel(args);
  if (c == "runs events") return runs_events(args);
  return kExitUsage;
}

}  // namespace df::cli
