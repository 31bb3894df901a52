#include "fsck/progress.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

namespace pagefs::fsck {
namespace {

constexpr int kBarWidth = 40;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

}  // namespace

Progress::Progress(int fd, std::string device) : device_(std::move(device)) {
  if (fd == 0) {
    out_ = stdout;
    bar_ = isatty(STDOUT_FILENO);
  } else if (fd > 0) {
    int copy = dup(fd);
    out_ = copy >= 0 ? fdopen(copy, "w") : nullptr;
    own_out_ = out_ != nullptr;
    machine_ = true;
  }
}

Progress::~Progress() {
  finish();
  if (own_out_) fclose(out_);
}

void Progress::start(int pass, const char* label, uint64_t max) {
  finish();
  pass_ = pass;
  label_ = label;
  current_ = 0;
  max_ = std::max<uint64_t>(max, 1);
  last_tenth_ = -1;
  draw(true);
}

void Progress::advance(uint64_t units) {
  current_ = std::min(max_, current_ + units);
  draw(false);
}

void Progress::finish() {
  if (out_ == nullptr || pass_ == 0) return;
  current_ = max_;
  draw(true);
  if (bar_ && drawn_) fputc('\n', out_);
  fflush(out_);
  drawn_ = false;
  pass_ = 0;
}

void Progress::draw(bool force) {
  if (out_ == nullptr) return;
  const auto now = std::chrono::steady_clock::now();
  const double fraction = double(current_) / double(max_);
  if (machine_) {
    if (!force && now - last_draw_ < kRedrawInterval) return;
    fprintf(out_, "%d %llu %llu %s\n", pass_, (unsigned long long)current_,
            (unsigned long long)max_, device_.c_str());
  } else if (bar_) {
    if (!force && now - last_draw_ < kRedrawInterval) return;
    const int filled = int(fraction * kBarWidth);
    fprintf(out_, "\rPass %d: %-34s |%.*s%*s| %5.1f%%", pass_, label_, filled,
            "========================================", kBarWidth - filled, "", fraction * 100);
    drawn_ = true;
  } else {
    const int tenth = int(fraction * 10);
    if (tenth == last_tenth_) return;
    last_tenth_ = tenth;
    fprintf(out_, "Pass %d: %s: %d%%\n", pass_, label_, tenth * 10);
  }
  last_draw_ = now;
  fflush(out_);
}

}  // namespace pagefs::fsck
