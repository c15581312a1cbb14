// StateSerde: how `dataflow state export|import` turns one stateful
// operator's stored entries into readable JSON and back.
//
// Implemented by the PreparedNode of every operator that keeps keyed state in
// a KvStore (window, dedupe, join), next to runtime::PreparedNode; the export
// and import code finds it with dynamic_cast<const StateSerde*>. Operators
// without a KvStore (sinks, sources) have only their JSON meta, which is
// exported as it is.
//
// Threading: const and stateless; callable from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "engine/core/status.h"

namespace df::checkpoint {

class StateSerde {
 public:
  virtual ~StateSerde() = default;
  // Version of this operator's entry layout; an export records it and an
  // import of another version is refused.
  virtual int state_format_version() const { return 1; }
  // One stored entry (key and value bytes as the operator wrote them) as a
  // readable JSON object, e.g. a window partial:
  //   {"key": {"auction": 7}, "window_start": "...", "window_end": "...",
  //    "aggregates": {"bids": 3, "top": 12.5}}
  // kDataError when the bytes are not this operator's layout.
  virtual Result<nlohmann::json> entry_to_json(std::string_view key,
                                               std::string_view value) const = 0;
  // The inverse, exactly (export then import gives the same bytes).
  // kInvalidArgument with one sentence naming the bad field when `entry`
  // does not fit this operator (unknown field, wrong type, missing part).
  virtual Status entry_from_json(const nlohmann::json& entry, std::string& key,
                                 std::string& value) const = 0;
  // Checks a meta document (as given to SnapshotContext::set_meta) before
  // an import writes it; kInvalidArgument with the reason otherwise.
  virtual Status check_meta(const nlohmann::json& meta) const {
    (void)meta;
    return Status::OK();
  }
};

}  // namespace df::checkpoint
