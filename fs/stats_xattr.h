// The name of the virtual attribute on a pagefs mount's root directory that
// reports the engine's counters (see fs/fuse_xattr_ops.cc). Shared by the FUSE
// handler that serves it and `pagefs --stats`, which reads it.
#pragma once

#include <string_view>

namespace pagefs {

inline constexpr std::string_view kStatsXattrName = "user.pagefs.stats";

}  // namespace pagefs
