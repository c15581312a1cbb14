#include "engine/healing/classifier.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <cerrno>

namespace df::healing {
namespace {

TEST(FailureClassifierTest, StatusCodesMapToTheFiveClasses) {
  FailureClassifier c;
  EXPECT_EQ(c.classify(Status::data_error("bad row")), FailureClass::kData);
  EXPECT_EQ(c.classify(Status::unavailable("broker down")), FailureClass::kTransient);
  EXPECT_EQ(c.classify(Status::resource_exhausted("disk full")), FailureClass::kResource);
  EXPECT_EQ(c.classify(Status::invalid("bad config")), FailureClass::kFatal);
  EXPECT_EQ(c.classify(Status::not_found("no such topic")), FailureClass::kFatal);
  EXPECT_EQ(c.classify(Status::internal("bug")), FailureClass::kTask);
  EXPECT_EQ(c.classify(Status::io_error("write failed")), FailureClass::kTask);
}

TEST(FailureClassifierTest, CausesWinOverStatusCodes) {
  FailureClassifier c;
  // An IoError alone is a task failure; its errno says more.
  EXPECT_EQ(c.classify(Status::io_error("write"), ErrorCause::from_errno(ENOSPC)),
            FailureClass::kResource);
  EXPECT_EQ(c.classify(Status::io_error("connect"), ErrorCause::from_errno(ECONNRESET)),
            FailureClass::kTransient);
  EXPECT_EQ(c.classify(Status::io_error("open"), ErrorCause::from_errno(EACCES)),
            FailureClass::kFatal);
  EXPECT_EQ(c.classify(Status::io_error("PUT"), ErrorCause::http(503)), FailureClass::kTransient);
  EXPECT_EQ(c.classify(Status::io_error("PUT"), ErrorCause::http(429)), FailureClass::kTransient);
  EXPECT_EQ(c.classify(Status::io_error("PUT"), ErrorCause::http(403)), FailureClass::kFatal);
  EXPECT_EQ(c.classify(Status::internal("oom"), ErrorCause::exception(ErrorCause::kBadAlloc)),
            FailureClass::kResource);
  EXPECT_EQ(
      c.classify(Status::internal("threw"), ErrorCause::exception(ErrorCause::kOtherException)),
      FailureClass::kTask);
  EXPECT_EQ(c.classify(Status::io_error("k"), ErrorCause::kafka(RD_KAFKA_RESP_ERR__TRANSPORT)),
            FailureClass::kTransient);
  EXPECT_EQ(
      c.classify(Status::io_error("k"), ErrorCause::kafka(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)),
      FailureClass::kFatal);
  EXPECT_EQ(c.classify(Status::io_error("k"),
                       ErrorCause::kafka(RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED)),
            FailureClass::kFatal);
  EXPECT_EQ(
      c.classify(Status::io_error("k"), ErrorCause::kafka(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)),
      FailureClass::kData);
}

TEST(FailureClassifierTest, UnknownCausesFallBackToTheStatusCodeThenTask) {
  FailureClassifier c;
  // An errno the table does not list: the Status code decides.
  EXPECT_EQ(c.classify(Status::unavailable("x"), ErrorCause::from_errno(EXDEV)),
            FailureClass::kTransient);
  EXPECT_EQ(c.classify(Status::io_error("x"), ErrorCause::http(418)), FailureClass::kTask);
}

TEST(FailureClassifierTest, AKnownClassIsKeptAndAddedRulesComeFirst) {
  FailureClassifier c;
  Failure f;
  f.status = Status::invalid("would be fatal");
  f.known_class = FailureClass::kTask;
  EXPECT_EQ(c.classify(f), FailureClass::kTask);

  c.add_rule({ErrorCause::Domain::kHttp, {503}, std::nullopt, FailureClass::kFatal, "test"});
  EXPECT_EQ(c.classify(Status::io_error("PUT"), ErrorCause::http(503)), FailureClass::kFatal);
  EXPECT_EQ(c.rules().front().why, "test");
}

TEST(FailureClassifierTest, NamesRoundTrip) {
  for (auto k : {FailureClass::kTransient, FailureClass::kData, FailureClass::kResource,
                 FailureClass::kTask, FailureClass::kFatal}) {
    EXPECT_EQ(parse_failure_class(failure_class_name(k)), k);
  }
  EXPECT_FALSE(parse_failure_class("sometimes"));
  EXPECT_EQ(action_name(Action::kDeadLetter), "dead_letter");
}

}  // namespace
}  // namespace df::healing
