#include "connectors/kafka/client.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "connectors/options.h"
#include "engine/core/log.h"

namespace df::connectors::kafka {

namespace {

// librdkafka's syslog levels (0 emerg .. 7 debug) onto ours.
LogLevel log_level_of(int level) {
  if (level <= 3) return LogLevel::kError;
  if (level == 4) return LogLevel::kWarn;
  if (level <= 6) return LogLevel::kInfo;
  return LogLevel::kDebug;
}

void log_line(LogLevel level, const rd_kafka_t* rk, const char* fac, const char* buf) {
  std::string line = rd_kafka_name(rk);
  line += " ";
  line += fac;
  line += ": ";
  line += buf;
  log(level, "kafka", line);
}

// librdkafka's threads call these. A client whose `debug` property names
// contexts logs their lines at info, not debug: the node asked for them,
// and `dataflow exec` (like a server at its default level) drops debug.
void log_callback(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  log_line(log_level_of(level), rk, fac, buf);
}
void debugging_log_callback(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  const LogLevel ours = log_level_of(level);
  log_line(ours == LogLevel::kDebug ? LogLevel::kInfo : ours, rk, fac, buf);
}

// Whether `properties` turn librdkafka's debug contexts on (the last
// `debug` wins, as in make_conf; an empty one turns them off).
bool debugging(const std::vector<std::pair<std::string, std::string>>& properties) {
  auto last = std::find_if(properties.rbegin(), properties.rend(),
                           [](const auto& p) { return p.first == "debug"; });
  return last != properties.rend() && !last->second.empty();
}

// A scalar option value as librdkafka property text; reports a list or map.
std::optional<std::string> property_text(OptionReader& opts, const ConfigValue& value,
                                         const std::string& what) {
  if (value.is_scalar()) return value.scalar_text();
  opts.diags().error(value.location(), opts.what() + " " + what +
                                           ": expected a single value, got " +
                                           std::string(value.kind_name()));
  return std::nullopt;
}

}  // namespace

const ConfigValue* option_or_default(OptionReader& opts, const ConfigValue& defaults,
                                     std::string_view key) {
  if (const ConfigValue* own = opts.get(key)) return own;
  return defaults.find(key);
}

std::optional<ClientOptions> read_client_options(OptionReader& opts, const ConfigValue& defaults,
                                                 std::span<const TuningKey> tuning) {
  const size_t errors_before = opts.diags().size();
  ClientOptions out;
  if (const ConfigValue* brokers = option_or_default(opts, defaults, "brokers")) {
    // "host:port,host:port" or a list of "host:port".
    auto list = brokers->as_string_list();
    if (!list.ok()) {
      opts.diags().error(brokers->location(),
                         opts.what() + " option 'brokers': " + list.status().message());
    } else {
      for (const std::string& b : *list) {
        if (!out.brokers.empty()) out.brokers += ",";
        out.brokers += b;
      }
      if (out.brokers.empty()) {
        opts.diags().error(brokers->location(),
                           opts.what() + " option 'brokers': must name at least one host:port");
      }
    }
  } else {
    report_option(opts, "brokers",
                  "required (host:port,...), unless the server config gives a default");
  }
  for (const TuningKey& key : tuning) {
    const ConfigValue* value = option_or_default(opts, defaults, key.option);
    if (!value) continue;
    if (auto text = property_text(opts, *value, "option '" + std::string(key.option) + "'")) {
      out.properties.emplace_back(std::string(key.property), *text);
    }
  }
  // Server-wide properties first, the node's after: a later set wins.
  for (const ConfigValue* props : {defaults.find("properties"), opts.get("properties")}) {
    if (!props) continue;
    if (!props->is_map()) {
      opts.diags().error(props->location(),
                         opts.what() +
                             " option 'properties': expected a map of librdkafka "
                             "properties, got " +
                             std::string(props->kind_name()));
      continue;
    }
    for (const auto& [name, value] : props->entries()) {
      if (auto text = property_text(opts, value, "property '" + name + "'")) {
        out.properties.emplace_back(name, *text);
      }
    }
  }
  if (opts.diags().size() != errors_before) return std::nullopt;
  return out;
}

Result<ConfPtr> make_conf(const ClientOptions& options) {
  ConfPtr conf(rd_kafka_conf_new());
  char err[512];
  auto set = [&](const std::string& name, const std::string& value) -> Status {
    if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), err, sizeof err) !=
        RD_KAFKA_CONF_OK) {
      return Status::invalid("kafka property '" + name + "': " + err);
    }
    return Status::OK();
  };
  DF_RETURN_IF_ERROR(set("bootstrap.servers", options.brokers));
  for (const auto& [name, value] : options.properties) DF_RETURN_IF_ERROR(set(name, value));
  rd_kafka_conf_set_log_cb(conf.get(),
                           debugging(options.properties) ? debugging_log_callback : log_callback);
  return conf;
}

BrokerWatch::Report BrokerWatch::on_stats(std::string_view json) {
  // Only "brokers" is read: skip the (per partition) rest without building it.
  const nlohmann::json::parser_callback_t only_brokers =
      [](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        return !(depth == 1 && event == nlohmann::json::parse_event_t::key && parsed != "brokers");
      };
  const nlohmann::json stats = nlohmann::json::parse(json, only_brokers, false);
  // Bootstrap and logical brokers (node id -1) are the same connections again.
  std::set<int64_t> up;
  if (stats.is_object() && stats.contains("brokers") && stats["brokers"].is_object()) {
    for (const auto& [name, broker] : stats["brokers"].items()) {
      if (!broker.is_object()) continue;
      const int64_t id = broker.value("nodeid", int64_t{-1});
      if (id >= 0 && broker.value("state", std::string()) == "UP") up.insert(id);
    }
  }
  Report report;
  report.up = static_cast<int>(up.size());
  std::lock_guard lock(mu_);
  if (report.up > 0) {
    last_error_.clear();
  } else {
    report.problem = last_error_.empty() ? "no broker is connected" : last_error_;
  }
  return report;
}

std::optional<BrokerWatch::Report> BrokerWatch::on_error(rd_kafka_resp_err_t err,
                                                         std::string_view reason) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
      break;
    default:
      return std::nullopt;
  }
  std::lock_guard lock(mu_);
  last_error_ = reason.empty() ? rd_kafka_err2str(err) : std::string(reason);
  if (err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) return std::nullopt;
  return Report{0, last_error_};
}

Result<HandlePtr> make_handle(rd_kafka_type_t type, ConfPtr conf, std::string_view what) {
  char err[512];
  // rd_kafka_new owns the configuration only when it succeeds.
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof err);
  if (!rk) return Status::invalid(std::string(what) + ": cannot create the Kafka client: " + err);
  (void)conf.release();
  return HandlePtr(rk);
}

Status kafka_status(rd_kafka_resp_err_t err, std::string_view what, std::string_view reason) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::OK();
  std::string message(what);
  message += ": ";
  message += reason.empty() ? std::string_view(rd_kafka_err2str(err)) : reason;
  switch (err) {
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return Status::not_found(std::move(message));
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__INVALID_TYPE:
      return Status::invalid(std::move(message));
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
      return Status::unavailable(std::move(message));
    default:
      return Status::io_error(std::move(message));
  }
}

Status kafka_status(rd_kafka_error_t* error, std::string_view what) {
  if (!error) return Status::OK();
  Status s = kafka_status(rd_kafka_error_code(error), what, rd_kafka_error_string(error));
  rd_kafka_error_destroy(error);
  return s;
}

}  // namespace df::connectors::kafka
