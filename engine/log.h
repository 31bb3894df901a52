// Logging for the engine: one line per event, to a sink the program chooses.
//
// The default sink writes to stderr; the mount program switches to syslog
// when it daemonizes. Thread-safe: the sink is called with a complete line.
#pragma once

namespace pagefs {

enum class LogLevel { kError, kWarning, kInfo, kDebug };

using LogSink = void (*)(LogLevel level, const char* line);

void set_log_sink(LogSink sink);
void set_log_verbose(bool verbose);  // enables kDebug lines
void log_line(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace pagefs

#define PAGEFS_LOG_ERROR(...) ::pagefs::log_line(::pagefs::LogLevel::kError, __VA_ARGS__)
#define PAGEFS_LOG_WARN(...) ::pagefs::log_line(::pagefs::LogLevel::kWarning, __VA_ARGS__)
#define PAGEFS_LOG_INFO(...) ::pagefs::log_line(::pagefs::LogLevel::kInfo, __VA_ARGS__)
#define PAGEFS_LOG_DEBUG(...) ::pagefs::log_line(::pagefs::LogLevel::kDebug, __VA_ARGS__)
