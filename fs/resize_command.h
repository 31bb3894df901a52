// `pagefs resize DEVICE [SIZE]`: grows an unmounted pagefs (engine/resize.h).
//
// A regular file is first extended to SIZE (preallocated with fallocate, as
// mkfs does); without SIZE the filesystem grows to the whole file or block
// device, e.g. after `truncate -s` or `lvextend`. The device's lock is taken
// before anything is changed, so a mounted filesystem is refused untouched.
//
// Exit codes: 0 grown (or already that size), 1 refused or failed (one line
// on stderr), 2 usage error.
#pragma once

namespace pagefs {

// argv[0] is "resize".
int resize_command(int argc, char** argv);

}  // namespace pagefs
