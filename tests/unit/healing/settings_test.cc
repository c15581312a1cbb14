#include "engine/healing/settings.h"

#include <gtest/gtest.h>

#include "config/yaml_loader.h"

namespace df::healing {
namespace {

struct Parsed {
  HealingSettings settings;
  Diagnostics diags;
};

Parsed parse(const std::string& yaml) {
  auto doc = config::parse_yaml(yaml, "p.yaml");
  EXPECT_TRUE(doc.ok()) << doc.status().to_string();
  Parsed p;
  p.settings = read_healing_settings(doc->find("healing"), HealingSettings{}, p.diags);
  return p;
}

std::string messages(const Diagnostics& d) { return d.to_status().message(); }

TEST(HealingSettingsTest, DefaultsWhenAbsent) {
  auto p = parse("name: x\n");
  EXPECT_TRUE(p.diags.empty());
  EXPECT_EQ(p.settings.restart.strategy, RestartSettings::Strategy::kExponentialDelay);
  EXPECT_EQ(p.settings.retry.max_attempts, 5);
}

TEST(HealingSettingsTest, ReadsEveryStrategyAndRetry) {
  auto p = parse(
      "healing:\n"
      "  retry: {max_attempts: 7, initial_backoff: 50ms, max_backoff: 2s}\n"
      "  restart: {fixed_delay: {attempts: 4, delay: 250ms}}\n"
      "  resource: {pause: 1s, max_attempts: 2}\n");
  ASSERT_TRUE(p.diags.empty()) << messages(p.diags);
  EXPECT_EQ(p.settings.retry.max_attempts, 7);
  EXPECT_EQ(p.settings.retry.initial_backoff, Millis(50));
  EXPECT_EQ(p.settings.retry.max_backoff, Millis(2000));
  EXPECT_EQ(p.settings.restart.strategy, RestartSettings::Strategy::kFixedDelay);
  EXPECT_EQ(p.settings.restart.attempts, 4);
  EXPECT_EQ(p.settings.restart.delay, Millis(250));
  EXPECT_EQ(p.settings.resource.pause, Millis(1000));
  EXPECT_EQ(p.settings.resource.max_attempts, 2);

  auto e = parse(
      "healing:\n  restart:\n    exponential_delay: {initial: 2s, max: 1m, multiplier: 3, "
      "reset_after: 10m, max_attempts: 9}\n");
  ASSERT_TRUE(e.diags.empty()) << messages(e.diags);
  EXPECT_EQ(e.settings.restart.initial, Millis(2000));
  EXPECT_EQ(e.settings.restart.max, Millis(60000));
  EXPECT_EQ(e.settings.restart.multiplier, 3.0);
  EXPECT_EQ(e.settings.restart.reset_after, Millis(600000));
  EXPECT_EQ(e.settings.restart.max_attempts, 9);

  auto f =
      parse("healing: {restart: {failure_rate: {max_failures: 2, interval: 1m, delay: 1s}}}\n");
  ASSERT_TRUE(f.diags.empty()) << messages(f.diags);
  EXPECT_EQ(f.settings.restart.strategy, RestartSettings::Strategy::kFailureRate);
  EXPECT_EQ(f.settings.restart.max_failures, 2);
  EXPECT_EQ(f.settings.restart.interval, Millis(60000));

  auto n = parse("healing: {restart: none}\n");
  ASSERT_TRUE(n.diags.empty()) << messages(n.diags);
  EXPECT_EQ(n.settings.restart.strategy, RestartSettings::Strategy::kNone);
}

TEST(HealingSettingsTest, ReportsEveryProblemWithItsLocation) {
  auto p = parse(
      "healing:\n"
      "  retry: {max_attempts: 0, initial_backoff: soon}\n"
      "  restart: {fixed_delay: {attempts: 3, delya: 1s}}\n"
      "  recover: true\n");
  const std::string m = messages(p.diags);
  EXPECT_NE(m.find("p.yaml:2:"), std::string::npos) << m;
  EXPECT_NE(m.find("max_attempts must be between 1 and 1000000"), std::string::npos) << m;
  EXPECT_NE(m.find("unknown option 'delya' for restart fixed_delay"), std::string::npos) << m;
  EXPECT_NE(m.find("unknown option 'recover' for healing"), std::string::npos) << m;
  EXPECT_GE(p.diags.size(), 4u) << m;

  auto two = parse("healing: {restart: {fixed_delay: {}, failure_rate: {}}}\n");
  EXPECT_NE(messages(two.diags).find("restart must name one strategy"), std::string::npos);
  auto bad = parse("healing: {restart: forever}\n");
  EXPECT_NE(messages(bad.diags).find("not 'forever'"), std::string::npos);
  auto mult = parse("healing: {restart: {exponential_delay: {multiplier: 0.5}}}\n");
  EXPECT_NE(messages(mult.diags).find("multiplier must be between 1 and 100"), std::string::npos);
}

TEST(HealingSettingsTest, PipelineOverridesServerDefaults) {
  HealingSettings base;
  base.retry.max_attempts = 9;
  base.restart.strategy = RestartSettings::Strategy::kFixedDelay;
  base.restart.attempts = 5;
  auto doc = config::parse_yaml("healing: {retry: {max_backoff: 30s}}\n", "p.yaml");
  ASSERT_TRUE(doc.ok());
  Diagnostics d;
  auto s = read_healing_settings(doc->find("healing"), base, d);
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(s.retry.max_attempts, 9);  // from the server
  EXPECT_EQ(s.retry.max_backoff, Millis(30000));
  EXPECT_EQ(s.restart.strategy, RestartSettings::Strategy::kFixedDelay);
  EXPECT_EQ(s.restart.attempts, 5);
}

}  // namespace
}  // namespace df::healing
