// Where the mount program's log lines go.
//
// The engine and the FUSE adapter both log through engine/log.h. In the
// foreground (-f, -d) lines go to stderr, where the default sink already sends
// them; once the daemon detaches from the terminal they go to syslog instead
// (ident "pagefs", facility LOG_DAEMON). Thread-safe: the engine's sink pointer
// is atomic and syslog(3) is thread-safe.
#pragma once

namespace pagefs {

// Switches every later log line to syslog. Call after daemonizing.
void log_to_syslog();

// Enables debug lines (the -d option).
void log_debug_lines(bool enabled);

}  // namespace pagefs
