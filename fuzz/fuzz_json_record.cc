// Fuzzes the JSON record decoder (connectors/format/json.h) the file and
// Kafka sources use: one input is one record, decoded against a schema of
// every type, once with the default limits and once with small ones (so the
// size and depth limits are reached often).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "connectors/format/json.h"
#include "engine/core/batch.h"
#include "fuzz/fuzz_common.h"

namespace {

df::SchemaPtr record_schema() {
  using df::TypeId;
  static const df::SchemaPtr schema = df::make_schema({{"b", TypeId::kBool},
                                                       {"i", TypeId::kInt64},
                                                       {"d", TypeId::kDouble},
                                                       {"s", TypeId::kString},
                                                       {"ts", TypeId::kTimestamp}});
  return schema;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  df::fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // Decoders keep scratch buffers between records, as a source's does.
  static df::connectors::JsonRowDecoder decoder(record_schema());
  static df::connectors::JsonRowDecoder small_decoder(
      record_schema(), df::connectors::JsonDecodeLimits{.max_record_bytes = 512, .max_depth = 4});
  df::BatchBuilder rows(record_schema());
  (void)decoder.decode(text, rows);
  (void)small_decoder.decode(text, rows);
  df::BatchPtr batch = rows.finish();
  // What was decoded encodes back (the sink's path over the same rows).
  std::string out;
  df::connectors::JsonRowEncoder(record_schema()).append_batch(*batch, out);
  return 0;
}
