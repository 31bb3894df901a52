#include "engine/log.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>

namespace pagefs {
namespace {

void stderr_sink(LogLevel level, const char* line) {
  const char* prefix = level == LogLevel::kError     ? "error: "
                       : level == LogLevel::kWarning ? "warning: "
                                                     : "";
  std::fprintf(stderr, "pagefs: %s%s\n", prefix, line);
}

std::atomic<LogSink> g_sink{stderr_sink};
std::atomic<bool> g_verbose{false};

}  // namespace

void set_log_sink(LogSink sink) {
  g_sink.store(sink ? sink : stderr_sink);
}
void set_log_verbose(bool verbose) {
  g_verbose.store(verbose);
}

void log_line(LogLevel level, const char* fmt, ...) {
  if (level == LogLevel::kDebug && !g_verbose.load()) return;
  char line[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(line, sizeof line, fmt, args);
  va_end(args);
  g_sink.load()(level, line);
}

}  // namespace pagefs
