#include "fsck/report.h"

#include <unistd.h>

#include <cstdarg>

namespace pagefs::fsck {

Report::Report(FILE* out, FILE* progress)
    : out_(out), progress_(progress != nullptr && isatty(fileno(progress)) ? progress : nullptr) {}

void Report::error(const char* fmt, ...) {
  count_++;
  if (printed_ >= kMaxPrintedErrors) return;
  printed_++;
  va_list ap;
  va_start(ap, fmt);
  fputs("fsck.pagefs: ", out_);
  vfprintf(out_, fmt, ap);
  fputc('\n', out_);
  va_end(ap);
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

void Report::finish() {
  if (count_ > printed_) {
    fprintf(out_, "fsck.pagefs: ... and %llu more\n",
            static_cast<unsigned long long>(count_ - printed_));
  }
  fflush(out_);
}

}  // namespace pagefs::fsck
