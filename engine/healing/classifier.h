// FailureClassifier: maps an error to one of the five failure classes of
// DESIGN §5 by a table that reads top to bottom, first match wins:
//
//   1. a class the raising code already knows (Failure::known_class);
//   2. the error's low-level cause (ErrorCause: errno, HTTP status,
//      librdkafka error code, exception kind), e.g. ENOSPC -> resource,
//      HTTP 503 -> transient, UNKNOWN_TOPIC_OR_PART -> fatal;
//   3. the Status code, e.g. DataError -> data, InvalidArgument -> fatal;
//   4. anything else -> task.
//
// Extending it: add_rule() puts a rule in front of the built-in ones; rules()
// lists the whole table (for docs and `dataflow validate`-style listings).
//
// Thread-safety: const methods are safe to call concurrently; add_rule() is
// for setup, before the classifier is shared.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/core/error_cause.h"
#include "engine/core/status.h"
#include "engine/healing/failure.h"

namespace df::healing {

struct ClassifierRule {
  // Matches an error whose cause is in `domain` with a code among `codes`
  // (any code when empty), or — when domain is kNone — whose Status code is
  // `status_code`.
  ErrorCause::Domain domain = ErrorCause::Domain::kNone;
  std::vector<int> codes;
  std::optional<StatusCode> status_code;
  FailureClass result = FailureClass::kTask;
  std::string why;  // one phrase for the table, e.g. "disk full"
};

class FailureClassifier {
 public:
  // The built-in table.
  FailureClassifier();

  FailureClass classify(const Failure& failure) const;
  FailureClass classify(const Status& status, const ErrorCause& cause = {}) const;

  void add_rule(ClassifierRule rule);
  const std::vector<ClassifierRule>& rules() const { return rules_; }

 private:
  std::vector<ClassifierRule> rules_;
};

}  // namespace df::healing
