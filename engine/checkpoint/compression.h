// zstd (level 3, with the frame checksum) for checkpoint files that are not
// SSTs (DESIGN §4: `checkpoint_compression`).
//
// Files are streamed through fixed buffers (ZSTD_CStreamInSize and friends):
// memory does not grow with the file. `out` is written under a temporary name
// in its directory and renamed over `out` when complete (not fsynced: the
// caller uploads or opens it next). Corrupt, truncated or non-zstd input is
// kDataError with one sentence naming the input.
//
// Threading: free functions without shared state; callable from any thread.
#pragma once

#include <string>
#include <string_view>

#include "engine/core/status.h"

namespace df::checkpoint {

Status compress_file(const std::string& in, const std::string& out);
Status decompress_file(const std::string& in, const std::string& out);

Result<std::string> compress_bytes(std::string_view data);
Result<std::string> decompress_bytes(std::string_view data);

}  // namespace df::checkpoint
