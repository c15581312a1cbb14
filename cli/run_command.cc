// `dataflow run --config F`: the server (DESIGN §8). Loads config.yaml,
// opens the pipeline manager (which resumes the pipelines a previous server
// left running), serves the REST API, /metrics and /health* on their ports,
// and on SIGTERM/SIGINT shuts down within server.shutdown_grace_period:
// stop accepting, finish in-flight requests, final checkpoint of every
// running pipeline, exit 0 (3 when something had to be cut). SIGHUP
// re-reads the config and applies its logging section, and reloads the TLS
// certificate and key (keeping the old ones when the new files are bad).
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include "cli/commands.h"
#include "config/pipeline_compiler.h"
#include "config/server_config.h"
#include "engine/core/log.h"
#include "engine/core/metrics.h"
#include "engine/core/time.h"
#include "engine/server/api.h"
#include "engine/server/auth.h"
#include "engine/server/disaster_recovery.h"
#include "engine/server/console.h"
#include "engine/server/health.h"
#include "engine/server/http.h"
#include "engine/server/metrics_history.h"
#include "engine/server/pipeline_manager.h"
#include "engine/server/server_metrics.h"
#include "engine/server/tls.h"
#include "engine/state/state_backend.h"

#ifndef DATAFLOW_VERSION
#define DATAFLOW_VERSION "0.0.0"
#endif

namespace df::cli {

void add_run_command(CLI::App& app, std::shared_ptr<RunArgs> args) {
  auto* cmd = app.add_subcommand("run", "Run the DataFlow server (REST API, metrics, health).");
  cmd->add_option("--config", args->config, "Server config file (YAML)")->required();
  cmd->add_flag("--check", args->check,
                "Validate the config, print the effective config (secrets masked), and exit");
}

namespace {

using Clock = std::chrono::steady_clock;

// One router per distinct host:port: endpoints configured on the same port
// share a listener.
class Listeners {
 public:
  server::Router& at(const std::string& host, uint16_t port) {
    auto& r = routers_[{host, port}];
    if (!r) r = std::make_shared<server::Router>();
    return *r;
  }
  std::vector<server::HttpListener> listeners() const {
    std::vector<server::HttpListener> out;
    for (const auto& [address, router] : routers_) {
      out.push_back({address.first, address.second, router});
    }
    return out;
  }

 private:
  std::map<std::pair<std::string, uint16_t>, std::shared_ptr<server::Router>> routers_;
};

// Pipeline bodies become plans with the server's defaults: batch size,
// healing (runtime.retry / runtime.restart) and Kafka connector defaults.
server::PipelineCompiler make_compiler(const server::ServerConfig& cfg) {
  auto registry = std::make_shared<const runtime::NodeRegistry>(
      plan::make_registry(cfg.sources.kafka, cfg.sinks.kafka));
  plan::PlanOptions plan_options;
  plan_options.batch_size = static_cast<size_t>(cfg.performance.batch_size);
  healing::HealingSettings healing_defaults;
  healing_defaults.retry = cfg.runtime.retry;
  healing_defaults.restart = cfg.runtime.restart;
  return [registry, plan_options, healing_defaults](const std::string& text,
                                                    const std::string& source) {
    config::CompileOutcome compiled =
        config::compile_pipeline(text, source, plan_options, healing_defaults, *registry);
    server::CompileResult result;
    result.errors = std::move(compiled.problems);
    if (compiled.pipeline) {
      server::CompiledPipeline p;
      p.name = compiled.pipeline->plan->settings.name;
      p.plan = std::move(compiled.pipeline->plan);
      p.healing = std::move(compiled.pipeline->healing);
      p.restart_set = compiled.pipeline->restart_set;
      result.pipeline = std::move(p);
    }
    return result;
  };
}

server::ManagerOptions manager_options(const server::ServerConfig& cfg) {
  server::ManagerOptions options;
  options.data_dir = cfg.server.data_dir;
  options.checkpoint_storage = cfg.runtime.checkpoint_storage;
  options.checkpoint_interval = cfg.runtime.checkpoint_interval;
  runtime::RunOptions& run = options.run_options;
  run.workers = cfg.runtime.workers > 0
                    ? cfg.runtime.workers
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  run.batch_size = static_cast<size_t>(cfg.performance.batch_size);
  run.buffer_size = static_cast<size_t>(cfg.performance.buffer_size);
  run.backpressure_threshold = cfg.performance.backpressure_threshold;
  run.state_memory_budget = cfg.runtime.state_memory;
  return options;
}

// runtime.disaster_recovery: the backup thread, or nullptr when it is off.
// A pipeline's checkpoints are where its newest version's file puts them,
// else in runtime.checkpoint_storage.
std::unique_ptr<server::BackupService> start_backups(const server::ServerConfig& cfg,
                                                     const server::PipelineManager& manager) {
  const auto& dr = cfg.disaster_recovery;
  if (!dr.enabled) return nullptr;
  server::BackupOptions options;
  options.location = dr.backup_storage;
  options.interval = dr.backup_interval;
  options.retention_days = dr.retention_days;
  options.metadata_dir = manager.store().dir();
  options.work_dir = (std::filesystem::path(cfg.server.data_dir) / "backup-work").string();
  options.default_checkpoint_storage = cfg.runtime.checkpoint_storage;
  options.checkpoint_storage_of =
      [&manager, compiler = make_compiler(cfg),
       fallback = cfg.runtime.checkpoint_storage](const std::string& name) -> Result<std::string> {
    DF_ASSIGN_OR_RETURN(server::PipelineRecord record, manager.store().pipeline(name));
    DF_ASSIGN_OR_RETURN(server::VersionRecord version,
                        manager.store().version(name, record.version));
    server::CompileResult compiled = compiler(version.spec, name);
    if (!compiled.pipeline) return Status::invalid("its newest version does not compile");
    const std::string& own = compiled.pipeline->plan->settings.checkpoint_storage;
    return own.empty() ? fallback : own;
  };
  auto service = std::make_unique<server::BackupService>(std::move(options), manager.store());
  service->start();
  log_info("server", "disaster recovery: a backup to " + dr.backup_storage + " every " +
                         format_duration(dr.backup_interval));
  return service;
}

// Waits for SIGTERM/SIGINT (returns it); SIGHUP calls `on_hup` and waits on.
int wait_for_stop_signal(const sigset_t& signals, const std::function<void()>& on_hup) {
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      on_hup();
      continue;
    }
    return sig;
  }
}

}  // namespace

int run_server(const RunArgs& args) {
  // Signals are taken by this thread: block them before any other thread
  // exists so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto loaded = config::load_server_config(args.config);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().message().c_str());
    print_error(args.config + " is not a valid server config.");
    return kExitInvalidInput;
  }
  const server::ServerConfig cfg = std::move(*loaded);
  if (args.check) {
    std::fputs(config::describe_server_config(cfg).c_str(), stdout);
    std::printf("# %s is valid.\n", args.config.c_str());
    return kExitOk;
  }
  if (Status s = configure_logging(cfg.monitoring.logging); !s.ok()) {
    print_error(s.message());
    return kExitInvalidInput;
  }
  std::error_code ec;
  std::filesystem::create_directories(cfg.server.data_dir, ec);
  if (ec) {
    print_error("cannot create the data directory " + cfg.server.data_dir + ": " + ec.message() +
                ".");
    return kExitRuntimeFailure;
  }
  state::set_block_cache_bytes(cfg.runtime.state_cache);

  std::shared_ptr<server::TlsContext> tls;
  if (cfg.tls.enabled) {
    auto created = server::TlsContext::create({.cert_file = cfg.tls.cert_file,
                                               .key_file = cfg.tls.key_file,
                                               .ca_file = cfg.tls.ca_file,
                                               .verify_client = cfg.tls.verify_client});
    if (!created.ok()) {
      print_error(created.status().message() + ".");
      return kExitInvalidInput;
    }
    tls = std::move(*created);
  }

  const auto started = Clock::now();
  log_info("server", "dataflow " DATAFLOW_VERSION " starting with " + args.config);
  auto opened = server::PipelineManager::open(manager_options(cfg), make_compiler(cfg));
  if (!opened.ok()) {
    print_error(opened.status().message());
    return exit_code_for(opened.status());
  }
  std::unique_ptr<server::PipelineManager> manager = std::move(*opened);

  metrics::Registry registry;
  metrics::add_process_collector(registry);
  server::add_server_collector(registry, *manager);
  std::unique_ptr<server::BackupService> backups = start_backups(cfg, *manager);
  server::add_backup_collector(registry, backups.get());

  server::HealthService health(DATAFLOW_VERSION);
  health.add_check("metadata_store", [&] {
    return manager->ready() ? server::HealthCheckResult::healthy()
                            : server::HealthCheckResult::unhealthy(R"({"open": false})");
  });
  health.add_check("pipelines", [&] { return server::pipelines_health(*manager); });

  // Authentication and authorization (security.*): the users file and the
  // JWT key are read now, so a bad one stops the start.
  auto access = server::AccessControl::create(cfg.security);
  if (!access.ok()) {
    print_error(access.status().message());
    manager->shutdown(cfg.server.shutdown_grace_period);
    return kExitInvalidInput;
  }
  Listeners listeners;
  server::add_api_routes(listeners.at(cfg.server.host, cfg.server.port), *manager, *access);
  server::MetricsHistory history(*manager);  // the console's charts; stopped before the manager
  history.start();
  server::add_console_routes(listeners.at(cfg.server.host, cfg.server.port), *manager, history,
                             *access);
  if (cfg.monitoring.metrics.enabled) {
    const auto& m = cfg.monitoring.metrics;
    server::Handler metrics = [&registry](const server::HttpRequest&) {
      return server::HttpResponse::text(200, registry.render(),
                                        "text/plain; version=0.0.4; charset=utf-8");
    };
    if ((*access)->protect_metrics()) {
      metrics = (*access)->guard(server::Action::kMetricsRead, std::move(metrics));
    }
    listeners.at(m.host, m.port).add("GET", m.path, std::move(metrics));
  }
  if (cfg.monitoring.health.enabled) {
    const auto& h = cfg.monitoring.health;
    if ((*access)->protect_health()) {
      auto health_routes = std::make_shared<server::Router>();
      health.add_routes(*health_routes, h.path);
      (*access)->mount(listeners.at(h.host, h.port), health_routes, server::Action::kHealthRead);
    } else {
      health.add_routes(listeners.at(h.host, h.port), h.path);
    }
  }
  server::HttpServerOptions http_options;
  http_options.listeners = listeners.listeners();
  // TLS is for the API's port (metrics and health may share it).
  for (auto& listener : http_options.listeners) {
    if (listener.host == cfg.server.host && listener.port == cfg.server.port) listener.tls = tls;
  }
  http_options.max_body_size = cfg.server.max_body_size;
  http_options.threads = cfg.server.api_threads;
  http_options.idle_timeout = cfg.network.request_timeout;
  http_options.request_timeout = cfg.network.request_timeout;
  http_options.header_timeout = cfg.network.header_timeout;
  http_options.max_connections = static_cast<size_t>(cfg.network.max_connections);
  server::HttpServer http(std::move(http_options));
  if (Status s = http.start(); !s.ok()) {
    print_error(s.message());
    manager->shutdown(cfg.server.shutdown_grace_period);
    return kExitRuntimeFailure;
  }
  health.set_ready(manager->ready());
  log_info("server", "serving the API on " + cfg.server.host + ":" +
                         std::to_string(cfg.server.port) + " (started in " +
                         format_duration(std::chrono::duration_cast<Millis>(Clock::now() - started)) +
                         ")");

  const int sig = wait_for_stop_signal(signals, [&] {
    // SIGHUP: new connections get the certificate and key as the files are
    // now (cert-manager and certbot replace them in place).
    if (tls) {
      if (Status s = tls->reload(); !s.ok()) {
        log_error("server", "SIGHUP: keeping the current TLS certificate: " + s.message());
      } else {
        log_info("server", "SIGHUP: TLS certificate reloaded from " + cfg.tls.cert_file);
      }
    }
    // SIGHUP: apply the logging section of the config as it is now (and
    // reopen the log file, which logrotate may have moved).
    auto reread = config::load_server_config(args.config);
    if (!reread.ok()) {
      log_error("server", "SIGHUP: keeping the running config: " + reread.status().message());
      return;
    }
    if (Status s = configure_logging(reread->monitoring.logging); !s.ok()) {
      log_error("server", "SIGHUP: " + s.message());
      return;
    }
    log_info("server", "SIGHUP: logging settings reloaded; other changes need a restart");
  });

  // Graceful shutdown within the grace period: the API first (no new
  // requests, in-flight ones finish), then every pipeline with a final
  // checkpoint.
  const auto deadline = Clock::now() + cfg.server.shutdown_grace_period;
  log_info("server", std::string(sig == SIGTERM ? "SIGTERM" : "SIGINT") +
                         ": shutting down within " +
                         format_duration(cfg.server.shutdown_grace_period));
  health.set_ready(false);
  auto remaining = [&] {
    return std::max(Millis{0}, std::chrono::duration_cast<Millis>(deadline - Clock::now()));
  };
  const size_t cut_requests = http.stop(remaining() / 4);
  const size_t cut_runs = manager->shutdown(remaining());
  if (backups) backups->stop();  // before the store it reads closes
  history.stop();
  manager.reset();
  if (cut_requests + cut_runs > 0) {
    print_error("shutdown passed the grace period of " +
                format_duration(cfg.server.shutdown_grace_period) + ": cut " +
                std::to_string(cut_runs) + (cut_runs == 1 ? " run" : " runs") + " and " +
                std::to_string(cut_requests) + (cut_requests == 1 ? " request." : " requests."));
    return kExitRuntimeFailure;
  }
  log_info("server", "stopped cleanly");
  return kExitOk;
}

}  // namespace df::cli
