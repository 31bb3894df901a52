// `pagefs scrub`: starts, follows, queries or cancels the online scrub of a
// mounted pagefs through its control attribute (fs/scrub_xattr.h).
//
//   pagefs scrub [--rate MB/s] MOUNTPOINT   start a scrub and follow it: progress
//                                           (a bar on a terminal), each damaged
//                                           page as it is found; Ctrl-C cancels
//   pagefs scrub --status MOUNTPOINT        the running or last scrub
//   pagefs scrub --cancel MOUNTPOINT        stop a running scrub
//
// Exit codes, as fsck's: 0 no damage, 1 damage found and all of it repaired,
// 4 damage left, 8 operational error (not a pagefs mount, the scrub failed
// or was cancelled), 16 usage error.
#pragma once

namespace pagefs {

// argv[0] is "scrub".
int run_scrub_command(int argc, char** argv);

// The lines `pagefs --help` adds for it.
const char* scrub_usage_text();

}  // namespace pagefs
