#include "fsck/report.h"

#include <unistd.h>

#include <cstdarg>

namespace pagefs::fsck {
namespace {

std::string vformat(const char* fmt, va_list ap) {
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
  return buf;
}

}  // namespace

Report::Report(FILE* out, FILE* progress)
    : out_(out), progress_(progress != nullptr && isatty(fileno(progress)) ? progress : nullptr) {}

void Report::inode(Fix fix, uint64_t ino, std::string action, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  add(Problem{fix, ino, "", "", vformat(fmt, ap), std::move(action)});
  va_end(ap);
}

void Report::entry(Fix fix, uint64_t dir, std::string name, std::string action, const char* fmt,
                   ...) {
  va_list ap;
  va_start(ap, fmt);
  add(Problem{fix, dir, std::move(name), "", vformat(fmt, ap), std::move(action)});
  va_end(ap);
}

void Report::at(Fix fix, std::string where, std::string action, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  add(Problem{fix, 0, "", std::move(where), vformat(fmt, ap), std::move(action)});
  va_end(ap);
}

// Only the problems that will be printed are kept: memory stays bounded
// however damaged the filesystem is.
void Report::add(Problem problem) {
  count_++;
  by_fix_[size_t(problem.fix)]++;
  if (printed_ + pending_.size() < kMaxPrintedErrors) pending_.push_back(std::move(problem));
}

void Report::info(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(out_, fmt, ap);
  fputc('\n', out_);
  va_end(ap);
}

void Report::pass(const char* what) {
  if (progress_ == nullptr) return;
  fprintf(progress_, "%s\n", what);
  fflush(progress_);
}

void Report::flush(const PathOf& path_of, Fix applied_up_to) {
  for (const Problem& p : pending_) {
    std::string subject = p.ino != 0 ? path_of(p.ino, p.entry) : p.where;
    std::string line = subject + (subject.empty() ? "" : ": ") + p.what;
    printed_++;  // or printed by an earlier round
    if (already_ != nullptr && !already_->insert(line).second) continue;
    fprintf(out_, "fsck.pagefs: %s", line.c_str());
    if (!p.action.empty()) {
      const bool applied = p.fix != Fix::kNone && p.fix <= applied_up_to;
      fprintf(out_, "; %s? %s", p.action.c_str(), applied ? "yes" : "no");
    }
    fputc('\n', out_);
  }
  pending_.clear();
  fflush(out_);
}

void Report::finish() {
  if (count_ > printed_) {
    fprintf(out_, "fsck.pagefs: ... and %llu more\n",
            static_cast<unsigned long long>(count_ - printed_));
  }
  fflush(out_);
}

}  // namespace pagefs::fsck
