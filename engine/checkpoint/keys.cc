// Storage keys of DESIGN §4.
#include <string>

#include "engine/checkpoint/manifest.h"

namespace df::checkpoint {

std::string current_key(const std::string& pipeline) { return pipeline + "/_CURRENT"; }

std::string manifest_key(const std::string& pipeline, uint64_t id) {
  return pipeline + "/checkpoints/" + std::to_string(id) + "/manifest.json";
}

std::string shared_prefix(const std::string& pipeline) { return pipeline + "/shared/"; }

}  // namespace df::checkpoint
