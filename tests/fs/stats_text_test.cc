// fs/stats_text.h and fs/stats_prometheus.h: the statistics text reads back
// as written, and the Prometheus rendering follows the exposition format.
#include "fs/stats_text.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "fs/stats_prometheus.h"

namespace pagefs {
namespace {

StatsReport sample_report() {
  StatsReport r;
  r.page_size = 4096;
  r.total_pages = 1000;
  r.free_pages = 900;
  r.cache_hits = 42;
  r.dirty_pages = 7;
  Histogram h;
  for (uint64_t v : {0ull, 900ull, 1500ull, 1500ull, 70000000000ull}) h.record(v);
  r.commit_ns = h.snapshot();
  r.scrub_state = "done";
  r.scrub_finished = 1795000000;
  r.scrub_pages_checked = 27012;
  r.scrub_errors = 2;
  r.scrub_repaired = 1;
  return r;
}

TEST(StatsTextTest, ReadsBackWhatItWrote) {
  RequestStats requests;
  const std::string text = format_stats(sample_report(), requests, DaemonInfo{123, "/img", 5000});
  StatsSample s;
  ASSERT_TRUE(parse_stats(text, &s)) << text;
  EXPECT_EQ(s.value("page_size"), 4096u);
  EXPECT_EQ(s.value("cache_hits"), 42u);
  EXPECT_EQ(s.value("dirty_pages"), 7u);
  EXPECT_EQ(s.value("pid"), 123u);
  EXPECT_EQ(s.value("uptime_ms"), 5000u);
  EXPECT_EQ(s.strings.at("device"), "/img");
  EXPECT_EQ(s.strings.at("scrub_state"), "done");
  EXPECT_EQ(s.value("scrub_finished"), 1795000000u);
  EXPECT_EQ(s.value("scrub_pages_checked"), 27012u);
  EXPECT_EQ(s.value("scrub_errors"), 2u);
  EXPECT_EQ(s.value("scrub_repaired"), 1u);
  const HistogramSnapshot commit = s.histogram("commit_ns");
  EXPECT_EQ(commit.count(), 5u);
  EXPECT_EQ(commit.sum, sample_report().commit_ns.sum);
  EXPECT_EQ(commit.counts, sample_report().commit_ns.counts);
}

TEST(StatsTextTest, KeepsTheLinesEarlierVersionsPrinted) {
  RequestStats requests;
  const std::string text = format_stats(sample_report(), requests, DaemonInfo{});
  EXPECT_EQ(text.rfind("page_size: 4096\ntotal_pages: 1000\nfree_pages: 900\n", 0), 0u) << text;
}

TEST(StatsTextTest, RefusesAHistogramWhoseCountDisagrees) {
  StatsSample s;
  EXPECT_FALSE(parse_stats("commit_ns: hist 3 10 4:1\n", &s));
  EXPECT_FALSE(parse_stats("commit_ns: hist 1 10 99:1\n", &s));
  EXPECT_FALSE(parse_stats("nothing here\n", &s));
  EXPECT_TRUE(parse_stats("commit_ns: hist 2 10 4:1 5:1\nnew_item: 3\n", &s));
}

// Each line is a comment or `name{labels} value`; every metric has HELP and
// TYPE before its samples; histogram buckets are cumulative and end in +Inf.
TEST(StatsPrometheusTest, FollowsTheExpositionFormat) {
  RequestStats requests;
  StatsSample s;
  ASSERT_TRUE(parse_stats(format_stats(sample_report(), requests, DaemonInfo{1, "/d", 1000}), &s));
  const std::string text = render_prometheus(s, "/mnt/a \"b\"");
  const std::string labels = "{mountpoint=\"/mnt/a \\\"b\\\"\"";
  std::istringstream lines(text);
  std::string line, typed;
  double last_bucket = -1;
  int infs = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      typed = line.substr(7, line.find(' ', 7) - 7);
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) continue;
    // name{mountpoint="..."[,label="..."]} value
    const size_t brace = line.find('{'), close = line.rfind("} ");
    ASSERT_TRUE(brace != std::string::npos && close != std::string::npos) << line;
    EXPECT_EQ(line.compare(brace, labels.size(), labels), 0) << line;
    EXPECT_EQ(line.rfind(typed, 0), 0u) << line << " after TYPE " << typed;
    const std::string value = line.substr(close + 2);
    EXPECT_EQ(value.find_first_not_of("0123456789.e+-"), std::string::npos) << line;
    if (line.rfind("pagefs_commit_duration_seconds_bucket", 0) == 0) {
      double v = std::stod(value);
      EXPECT_GE(v, last_bucket) << line;
      last_bucket = v;
      infs += line.find("le=\"+Inf\"") != std::string::npos;
    }
  }
  EXPECT_EQ(infs, 1);
  EXPECT_EQ(last_bucket, 5);
  EXPECT_NE(text.find("pagefs_cache_hits_total{mountpoint=\"/mnt/a \\\"b\\\"\"} 42\n"),
            std::string::npos);
  EXPECT_NE(text.find("pagefs_scrub_errors{mountpoint=\"/mnt/a \\\"b\\\"\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("pagefs_scrub_running{mountpoint=\"/mnt/a \\\"b\\\"\"} 0\n"),
            std::string::npos);
}

}  // namespace
}  // namespace pagefs
