// Internal to operators/: the factories of the keyed operators (key_by,
// dedupe, join) and the helpers they share for key fields.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/batch.h"
#include "engine/core/config_value.h"
#include "engine/runtime/node_factory.h"

namespace df::operators {

std::unique_ptr<runtime::NodeFactory> make_key_by_factory();
std::unique_ptr<runtime::NodeFactory> make_dedupe_factory();
std::unique_ptr<runtime::NodeFactory> make_join_factory();

// Resolves a list of field names (one scalar or a sequence of scalars) at
// `node` against `schema`. Each unknown name is reported at its own location
// as "<what>: unknown field 'x' (fields: {...})". Returns nullopt after any
// error (including an empty list).
std::optional<std::vector<size_t>> resolve_key_fields(const ConfigValue& node, const Schema& schema,
                                                      const std::string& what, Diagnostics& diags);

// Appends the order-preserving encoding (state/codec.h) of the fields
// `fields` of physical row `row` to `out`, so equal keys give equal bytes
// (-0.0 is folded into 0.0). Returns false when any key field is null; the
// null is encoded all the same.
bool encode_row_key(const Batch& batch, const std::vector<size_t>& fields, size_t row,
                    std::string& out);

// Keyed operators implement this next to runtime::Operator so that metrics
// and tests can observe how much state they hold. Called from the thread
// that drives the operator.
class StateStats {
 public:
  virtual ~StateStats() = default;
  // Entries (rows or keys) currently held in keyed state.
  virtual size_t state_entries() const = 0;
};

}  // namespace df::operators
