// Runner: the check of one image in a forked child, with a watchdog, so that
// an abort, a sanitizer report or a hang in one image is reported with its
// index and seed while the run goes on.
//
// The child's stdout and stderr (fsck reports, engine log, assertion and
// sanitizer messages) go to a private in-memory file the parent reads when
// the child is done; its Channel is a pipe. The child arms alarm(timeout_s);
// the parent also kills it (SIGKILL) if the pipe stays open past
// timeout_s + kGraceSeconds. Outside sanitizer builds the child prints a
// backtrace when it dies of a signal, so a crash has a place even there.
//
// The parent must have no other threads when it forks (base images are built,
// and their filesystems unmounted, first).
#pragma once

#include <functional>
#include <string>

#include "tests/fuzz/channel.h"

namespace pagefs::fuzz {

struct ChildResult {
  ChannelLog log;
  std::string output;     // the child's stdout and stderr
  bool finished = false;  // it sent "done" and exited 0
  bool timed_out = false;
  int signal = 0;     // the signal that ended it, or 0
  int exit_code = 0;  // its exit status when it exited
};

ChildResult run_in_child(const std::function<void(Channel&)>& body, int timeout_s);

// For a child that did not finish: a short name of what went wrong that is
// the same for every image hitting the same defect (the assertion, the
// sanitizer's report and first engine frame, the uncaught exception, or the
// signal and first engine frame), without addresses or build paths.
std::string crash_signature(const ChildResult& r);

// The lines of the child's output worth showing with a failure: the first
// error report and its nearest frames, or the last lines.
std::string output_excerpt(const std::string& output);

}  // namespace pagefs::fuzz
