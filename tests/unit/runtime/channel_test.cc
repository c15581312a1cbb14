#include "engine/runtime/channel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/unit/runtime/test_ops.h"

namespace df::runtime {
namespace {

struct CountingWake final : Wakeable {
  std::atomic<int> wakes{0};
  void wake() override { wakes.fetch_add(1); }
};

TEST(ChannelTest, CountsRowsAndReportsFullAboveTheThreshold) {
  Channel ch(1000, 0.8);
  EXPECT_EQ(ch.threshold_rows(), 800u);
  EXPECT_TRUE(ch.empty());
  ch.push(testing::make_rows(0, 500));
  ch.push(Watermark{7});  // control elements weigh nothing
  EXPECT_EQ(ch.rows(), 500u);
  EXPECT_FALSE(ch.full());
  ch.push(testing::make_rows(0, 300));
  EXPECT_FALSE(ch.full());  // exactly at the threshold is not above it
  ch.push(testing::make_rows(0, 1));
  EXPECT_TRUE(ch.full());
  ch.push(testing::make_rows(0, 600));  // a push always succeeds
  EXPECT_EQ(ch.rows(), 1401u);
  EXPECT_EQ(ch.high_water_rows(), 1401u);
}

TEST(ChannelTest, PushWakesConsumerAndCrossingBelowThresholdWakesProducer) {
  Channel ch(100, 0.5);
  CountingWake producer, consumer;
  ch.connect(&producer, &consumer);
  ch.push(testing::make_rows(0, 30));
  ch.push(testing::make_rows(0, 30));
  EXPECT_EQ(consumer.wakes.load(), 2);
  EXPECT_TRUE(ch.full());  // 60 > 50
  StreamElement e;
  ASSERT_TRUE(ch.pop(e));  // 60 -> 30: crosses below
  EXPECT_EQ(producer.wakes.load(), 1);
  ASSERT_TRUE(ch.pop(e));  // 30 -> 0: was not full, no wake
  EXPECT_EQ(producer.wakes.load(), 1);
  EXPECT_FALSE(ch.pop(e));
  EXPECT_TRUE(ch.empty());
}

TEST(ChannelTest, PreservesOrderAcrossThreads) {
  Channel ch(1 << 20, 1.0);
  constexpr int kN = 20000;
  std::thread producer([&] {
    for (int i = 0; i < kN; ++i) ch.push(Watermark{i});
    ch.push(EndOfStream{});
  });
  int64_t expect = 0;
  bool ended = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!ended && std::chrono::steady_clock::now() < deadline) {
    StreamElement e;
    if (!ch.pop(e)) {
      std::this_thread::yield();
      continue;
    }
    if (auto* wm = std::get_if<Watermark>(&e)) {
      ASSERT_EQ(wm->timestamp_ms, expect);
      ++expect;
    } else {
      ended = std::holds_alternative<EndOfStream>(e);
    }
  }
  producer.join();
  EXPECT_TRUE(ended);
  EXPECT_EQ(expect, kN);
}

}  // namespace
}  // namespace df::runtime
