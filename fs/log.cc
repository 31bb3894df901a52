#include "fs/log.h"

#include <syslog.h>

#include "engine/log.h"

namespace pagefs {
namespace {

int syslog_priority(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return LOG_ERR;
    case LogLevel::kWarning:
      return LOG_WARNING;
    case LogLevel::kInfo:
      return LOG_INFO;
    case LogLevel::kDebug:
      return LOG_DEBUG;
  }
  return LOG_NOTICE;
}

void syslog_sink(LogLevel level, const char* line) {
  syslog(syslog_priority(level), "%s", line);
}

}  // namespace

void log_to_syslog() {
  openlog("pagefs", LOG_PID, LOG_DAEMON);
  set_log_sink(syslog_sink);
}

void log_debug_lines(bool enabled) {
  set_log_verbose(enabled);
}

}  // namespace pagefs
