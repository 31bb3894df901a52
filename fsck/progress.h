// Progress: how far fsck.pagefs has come, as e2fsck's -C option shows it.
//
//   -C 0   on stdout: a bar redrawn in place when stdout is a terminal,
//          otherwise one line per pass and per tenth of it ("Pass 3: 40%")
//   -C N   (N > 0) on file descriptor N, e2fsck's machine-readable lines
//          "pass current max device", which fsck front ends (systemd-fsck)
//          turn into their own display
//
// Passes are numbered as the checker's (1 superblock .. 5 space); `max` is an
// estimate of the units of work in the pass (pages, inodes) and current
// never passes it.
//
// Thread-safety: none; fsck is single-threaded.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace pagefs::fsck {

class Progress {
 public:
  // fd as given to -C; the device name goes into machine-readable lines.
  Progress(int fd, std::string device);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void start(int pass, const char* label, uint64_t max);
  void advance(uint64_t units);
  // Ends the bar's line, so that what follows starts on a new one.
  void finish();

 private:
  void draw(bool force);

  FILE* out_ = nullptr;
  bool own_out_ = false;  // out_ was opened here (fdopen of a dup)
  bool machine_ = false;
  bool bar_ = false;
  std::string device_;
  int pass_ = 0;
  const char* label_ = "";
  uint64_t current_ = 0, max_ = 1;
  int last_tenth_ = -1;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace pagefs::fsck
