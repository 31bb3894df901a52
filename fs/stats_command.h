// `pagefs stats MOUNTPOINT [-i SECONDS [-c COUNT]] [--json | --prometheus] [-o FILE]`:
// reads user.pagefs.stats from a mounted pagefs (fs/stats_text.h) and shows it.
//
//   (no -i)       averages and latency percentiles since the mount
//   -i SECONDS    a live view: every SECONDS, the rates and percentiles of
//                 that interval (COUNT reports with -c, else until interrupted)
//   --json        one JSON object per report (one per line with -i)
//   --prometheus  the text exposition format (counters, gauges, histograms
//                 in seconds), for node_exporter's textfile collector
//   -o FILE       write each report to FILE instead (replaced atomically)
//
// `pagefs --stats MOUNTPOINT` is the same as `pagefs stats MOUNTPOINT`.
// Exit codes: 0, 1 when the statistics cannot be read, 2 usage error.
#pragma once

namespace pagefs {

// argv[0] is "stats".
int stats_command(int argc, char** argv);

}  // namespace pagefs
