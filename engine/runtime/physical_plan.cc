#include "engine/runtime/physical_plan.h"

namespace df::runtime {

std::string PhysicalVertex::name() const {
  std::string out;
  for (size_t i = 0; i < chain.size(); ++i) {
    if (i > 0) out += " -> ";
    out += chain[i].id;
  }
  return out;
}

}  // namespace df::runtime
