// Shared by the fuzz targets: quiet logging, set once before the first input.
#pragma once

#include "engine/core/log.h"

namespace df::fuzz {

// Only errors reach stderr: libFuzzer's own output stays readable and the
// runs are not slowed by per-input log lines.
inline void quiet_logs() { set_log_level(LogLevel::kError); }

}  // namespace df::fuzz
