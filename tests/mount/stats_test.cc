// `pagefs stats` against a real mount: the live view reports rates of the
// interval, --json parses, read-ahead's hits are counted apart, --prometheus
// passes promtool (or, without it, the Python client's parser), and a
// non-pagefs path is refused.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

class MountStats : public MountTest {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.start(64 * kMiB)); }

  // Writes `bytes` to a new file and fsyncs it.
  void write_file(const std::string& name, size_t bytes) {
    int fd = open(fs_.path(name).c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    std::string data(bytes, 'x');
    ASSERT_EQ(write(fd, data.data(), data.size()), ssize_t(data.size()));
    ASSERT_EQ(fsync(fd), 0);
    close(fd);
  }
};

TEST_F(MountStats, LiveViewShowsTheIntervalsRates) {
  std::thread writer([this] {
    usleep(100 * 1000);
    write_file("a", 4 << 20);
  });
  CommandResult r = run_command({PAGEFS_BIN, "stats", fs_.mountpoint(), "-i", "0.5", "-c", "2"});
  writer.join();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("every 0.5 s"), r.out.find(fs_.mountpoint()) + fs_.mountpoint().size() + 2)
      << r.out;
  EXPECT_NE(r.out.find("every 0.5 s", r.out.find("every 0.5 s") + 1), std::string::npos) << r.out;
  for (const char* row :
       {"requests", "app ", "device", "cache", "journal", "fsync", "write-back"}) {
    EXPECT_NE(r.out.find(row), std::string::npos) << row << " in\n" << r.out;
  }
  EXPECT_NE(r.out.find("write "), std::string::npos) << r.out;
}

TEST_F(MountStats, JsonCarriesTheCountsOfTheMount) {
  write_file("a", 1 << 20);
  CommandResult r = run_command({PAGEFS_BIN, "stats", fs_.mountpoint(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string json = fs_.dir() + "/stats.json";
  std::ofstream(json) << r.out;
  CommandResult check = run_command({"/usr/bin/python3", "-c",
                                     "import json, sys; d = json.load(open(sys.argv[1])); "
                                     "assert d['since_mount'] and d['fsync']['count'] >= 1, d; "
                                     "assert d['requests']['write']['count'] >= 1, d; "
                                     "assert d['journal']['commit']['count'] >= 1, d; "
                                     "assert d['fs_lock']['exclusive_hold']['count'] >= 1, d",
                                     json});
  EXPECT_EQ(check.exit_code, 0) << check.err << r.out;
}

// A cold sequential read is served by read-ahead: nearly every lookup hits,
// and the stats say which of those hits read-ahead made.
TEST_F(MountStats, ReadAheadHitsAreCountedApart) {
  write_file("a", 16 << 20);
  ASSERT_TRUE(fs_.remount());
  std::string buf(1 << 20, '\0');
  int fd = open(fs_.path("a").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  size_t total = 0;
  for (ssize_t n; (n = read(fd, buf.data(), buf.size())) > 0;) total += size_t(n);
  close(fd);
  ASSERT_EQ(total, size_t(16) << 20);
  CommandResult r = run_command({PAGEFS_BIN, "stats", fs_.mountpoint(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string json = fs_.dir() + "/stats.json";
  std::ofstream(json) << r.out;
  CommandResult check =
      run_command({"/usr/bin/python3", "-c",
                   "import json, sys; c = json.load(open(sys.argv[1]))['cache']; "
                   "assert c['readahead_pages_per_s'] > 0 and c['readahead_share'] > 0.5, c",
                   json});
  EXPECT_EQ(check.exit_code, 0) << check.err << r.out;
  CommandResult text = run_command({PAGEFS_BIN, "stats", fs_.mountpoint()});
  EXPECT_NE(text.out.find("% read ahead)"), std::string::npos) << text.out;
}

TEST_F(MountStats, PrometheusOutputParses) {
  write_file("a", 1 << 20);
  const std::string prom = fs_.dir() + "/pagefs.prom";
  CommandResult r =
      run_command({PAGEFS_BIN, "stats", fs_.mountpoint(), "--prometheus", "-o", prom});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  CommandResult check;
  if (access("/usr/bin/promtool", X_OK) == 0) {
    check = run_command({"/bin/sh", "-c", "promtool check metrics < " + prom});
  } else {
    check = run_command(
        {"/usr/bin/python3", "-c",
         "import sys; from prometheus_client.parser import text_string_to_metric_families as f; "
         "n = sum(len(m.samples) for m in f(open(sys.argv[1]).read())); assert n > 100, n",
         prom});
  }
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

TEST_F(MountStats, RefusesAPathThatIsNotAPagefsRoot) {
  CommandResult r = run_command({PAGEFS_BIN, "stats", fs_.dir()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is not the root of a pagefs mount"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pagefs::test
