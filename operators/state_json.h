// Typed Values <-> nlohmann::json, for `dataflow state export|import`
// (StateSerde implementations of window, dedupe and join share it).
//
// Layout, per column type (null is JSON null for every type):
//   bool      -> true / false
//   int64     -> JSON integer
//   double    -> JSON number, written with nlohmann's shortest round-trip
//                formatting, so the exact double comes back (-0.0 stays -0.0,
//                1e300 stays 1e300); NaN and infinities, which JSON cannot
//                spell, are the strings "NaN", "Infinity", "-Infinity". A NaN
//                other than the default quiet NaN (e.g. x86's -NaN from 0/0)
//                is "NaN(0x<16 hex digits of its bits>)" so its bits survive.
//                Reading also accepts a JSON integer.
//   string    -> JSON string when the bytes are valid UTF-8; otherwise
//                {"hex": "<lowercase hex of the bytes>"} so any byte string
//                round-trips exactly.
//   timestamp -> RFC 3339 UTC string with milliseconds
//                ("2026-11-21T10:00:00.000Z"); a timestamp whose year is not
//                in 0000..9999 (which RFC 3339 cannot spell) is a JSON
//                integer of milliseconds since the epoch. Reading accepts
//                either, and any offset RFC 3339 allows.
// value_from_json(value_to_json(v, t), t) == v for every v of type t.
//
// Threading: pure functions; callable from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/core/schema.h"
#include "engine/core/status.h"
#include "engine/core/types.h"
#include "engine/core/value.h"

namespace df::operators {

// `v` must be of type `type` or null.
nlohmann::json value_to_json(const Value& v, TypeId type);

// kInvalidArgument with one sentence naming `what` (e.g. "key field
// 'auction'") when `j` is not a `type` in the layout above.
Result<Value> value_from_json(const nlohmann::json& j, TypeId type, std::string_view what);

// --- The typed primitives value_to_json/value_from_json are made of, for
// state kept outside Values (e.g. the window's accumulators). Same layout. ---

nlohmann::json double_to_json(double d);
nlohmann::json string_to_json(std::string_view s);
nlohmann::json timestamp_to_json(int64_t epoch_ms);

// Each fails with kInvalidArgument and one sentence starting with `what`;
// none accepts null.
Result<int64_t> int_from_json(const nlohmann::json& j, std::string_view what);
// A non-negative integer.
Result<uint64_t> uint_from_json(const nlohmann::json& j, std::string_view what);
Result<double> double_from_json(const nlohmann::json& j, std::string_view what);
Result<std::string> string_from_json(const nlohmann::json& j, std::string_view what);
Result<int64_t> timestamp_from_json(const nlohmann::json& j, std::string_view what);

// --- Helpers for StateSerde implementations. ---

// Reads the order-preserving key encodings (state/codec.h encode_key_*) of
// `fields` from the front of `in`, advancing it, as {"<name>": value, ...}.
// kDataError when the bytes do not decode.
Result<nlohmann::json> key_to_json(std::string_view& in, const std::vector<Field>& fields);
// The inverse: appends the key encodings of the object's fields in `fields`
// order. The object must have exactly those names (kInvalidArgument naming
// the unknown or missing field, or the bad value, otherwise).
Status key_from_json(const nlohmann::json& j, const std::vector<Field>& fields,
                     std::string_view what, std::string& out);

// Reads a row in state::RowCodec bytes (encode_value per field) of `fields`
// from the front of `in`, advancing it, as {"<name>": value, ...}.
Result<nlohmann::json> row_to_json(std::string_view& in, const std::vector<Field>& fields);
// The inverse; exactly the names of `fields`, like key_from_json.
Status row_from_json(const nlohmann::json& j, const std::vector<Field>& fields,
                     std::string_view what, std::string& out);

// Checks that `j` is an object whose members are all in `required` or
// `optional` and that every `required` one is there; kInvalidArgument with one
// sentence ("<what> has an unknown field 'x'", "<what> is missing 'y'").
Status check_object(const nlohmann::json& j, std::string_view what,
                    std::initializer_list<std::string_view> required,
                    std::initializer_list<std::string_view> optional = {});

}  // namespace df::operators
