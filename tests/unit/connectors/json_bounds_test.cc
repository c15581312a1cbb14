// The JSON record decoder against hostile records: too deep or too large is
// a data error for that record, and the decoder goes on with the next one.
#include <gtest/gtest.h>

#include <string>

#include "connectors/format/json.h"

namespace df::connectors {
namespace {

SchemaPtr schema() { return make_schema({{"i", TypeId::kInt64}, {"s", TypeId::kString}}); }

TEST(JsonBounds, DeepNestingIsADataErrorNotACrash) {
  JsonRowDecoder dec(schema());
  BatchBuilder bb(schema());
  const std::string deep = "{\"x\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  const Status s = dec.decode(deep, bb);
  EXPECT_EQ(s.code(), StatusCode::kDataError);
  EXPECT_EQ(s.message(), "the record nests deeper than 64 levels");
  // Nesting within the limit is fine (extra fields are ignored).
  const std::string ok = "{\"i\":1,\"x\":" + std::string(60, '[') + std::string(60, ']') + "}";
  EXPECT_TRUE(dec.decode(ok, bb).ok());
  EXPECT_EQ(bb.num_rows(), 1u);
}

TEST(JsonBounds, OversizedRecordIsADataErrorAndTheNextRecordDecodes) {
  JsonRowDecoder dec(schema(), JsonDecodeLimits{.max_record_bytes = 1024, .max_depth = 8});
  BatchBuilder bb(schema());
  const std::string big = "{\"s\":\"" + std::string(2000, 'a') + "\"}";
  const Status s = dec.decode(big, bb);
  EXPECT_EQ(s.code(), StatusCode::kDataError);
  EXPECT_EQ(s.message(), "the record is 2008 bytes, over the limit of 1024");
  EXPECT_EQ(bb.num_rows(), 0u);
  EXPECT_TRUE(dec.decode("{\"i\":2,\"s\":\"" + std::string(1000, 'b') + "\"}", bb).ok());
  EXPECT_EQ(dec.decode("{\"i\":[[[[[[[[[1]]]]]]]]]}", bb).message(),
            "the record nests deeper than 8 levels");
  EXPECT_EQ(bb.num_rows(), 1u);
}

}  // namespace
}  // namespace df::connectors
