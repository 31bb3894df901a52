// The online scrub on a real mount: damage is written into the image file
// underneath the running daemon (O_DIRECT, as the daemon reads), and
// `pagefs scrub` must find it, name what owns it, repair metadata from a copy
// when it can, and report through its exit code, --status and --stats.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "tests/mount/image_pages.h"
#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

class Scrub : public MountTest {
 protected:
  // Files /d/file.bin and /many/fNNN, written home by a remount, so that the
  // daemon starts with a cold cache and the device holds everything.
  void populate(int many = 0) {
    ASSERT_TRUE(fs_.start(64 * kMiB, "cache_size=8M"));
    ASSERT_EQ(mkdir(fs_.path("d").c_str(), 0755), 0);
    ASSERT_TRUE(write_file(fs_.path("d/file.bin"), data_));
    ASSERT_EQ(mkdir(fs_.path("many").c_str(), 0755), 0);
    for (int i = 0; i < many; i++) {
      ASSERT_TRUE(write_file(fs_.path("many/f" + std::to_string(i)), pattern(i, 0, 3000)));
    }
    ASSERT_TRUE(fs_.remount("cache_size=8M"));
  }
  uint64_t ino_of(const std::string& rel) {
    struct stat st;
    EXPECT_EQ(stat(fs_.path(rel).c_str(), &st), 0) << rel;
    return st.st_ino;
  }
  CommandResult scrub(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {PAGEFS_BIN, "scrub"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(fs_.mountpoint());
    return run_command(argv);
  }
  // `pagefs --stats` (the same as `pagefs stats`), and the raw counters it reads.
  std::string stats() { return run_command({PAGEFS_BIN, "--stats", fs_.mountpoint()}).out; }
  std::string raw_stats() {
    std::string text(256 * 1024, '\0');
    ssize_t n = getxattr(fs_.mountpoint().c_str(), "user.pagefs.stats", text.data(), text.size());
    EXPECT_GT(n, 0) << strerror(errno);
    text.resize(n > 0 ? size_t(n) : 0);
    return text;
  }

  const std::string data_ = pattern(11, 0, 300 * 1024);
};

TEST_F(Scrub, CleanFilesystemExits0AndShowsInStats) {
  populate();
  CommandResult r = scrub({});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("scrub done"), std::string::npos) << r.out;
  const std::string raw = raw_stats();
  EXPECT_NE(raw.find("scrub_state: done\n"), std::string::npos) << raw;
  EXPECT_NE(raw.find("scrub_errors: 0\n"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("scrub_pages_checked: 0\n"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("scrub_finished: 0\n"), std::string::npos) << raw;
  const std::string s = stats();
  EXPECT_NE(s.find("\nscrub       done "), std::string::npos) << s;
  EXPECT_NE(s.find(", 0 damaged, 0 repaired\n"), std::string::npos) << s;
  const std::string json = run_command({PAGEFS_BIN, "stats", fs_.mountpoint(), "--json"}).out;
  EXPECT_NE(json.find("\"scrub\":{\"state\":\"done\""), std::string::npos) << json;
  unmount_and_check();
}

TEST_F(Scrub, DamagedDataIsFoundAndNamedWithItsOffset) {
  populate();
  const uint64_t ino = ino_of("d/file.bin");
  {
    ImagePages image(fs_.image());
    image.break_page(image.extent(ino, 0).phys + 2);
  }
  CommandResult r = scrub({});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_NE(r.out.find("data damaged /d/file.bin offset 8192: checksum mismatch"),
            std::string::npos)
      << r.out;
  const std::string raw = raw_stats();
  EXPECT_NE(raw.find("scrub_errors: 1\n"), std::string::npos) << raw;
  const std::string s = stats();
  EXPECT_NE(s.find(", 1 damaged, 0 repaired\n"), std::string::npos) << s;
  CommandResult status = scrub({"--status"});
  EXPECT_EQ(status.exit_code, 4) << status.out;
  EXPECT_NE(status.out.find("/d/file.bin offset 8192"), std::string::npos) << status.out;
  ASSERT_EQ(fs_.unmount(), 0);
  EXPECT_EQ(fs_.fsck({"-n"}), 4) << "the data stays damaged: fsck reports it too";
}

// A tree page rotted on the device is restored from its image in the
// journal: the transactions that wrote it are still in the region.
TEST_F(Scrub, DamagedTreePageIsRestoredFromTheJournal) {
  populate(300);
  const uint64_t ino = ino_of("many/f250");
  ASSERT_TRUE(fs_.remount("cache_size=8M"));  // the leaf is not cached
  uint64_t leaf = 0;
  {
    ImagePages image(fs_.image());
    leaf = image.leaf_of(Key::of(ino, KeyKind::kInode, 0));
    ASSERT_NE(leaf, image.superblock().tree_root);
    image.break_page(leaf);
  }
  CommandResult r = scrub({});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err << fs_.log_tail();
  EXPECT_NE(r.out.find("page " + std::to_string(leaf) + " metadata repaired tree node"),
            std::string::npos)
      << r.out;
  EXPECT_NE(fs_.log_tail().find("repaired from its copy in the journal"), std::string::npos)
      << fs_.log_tail();
  EXPECT_EQ(read_file(fs_.path("many/f250")), pattern(250, 0, 3000));
  unmount_and_check();
}

// A page the cache holds clean is what the device should hold: it is
// written back over the damaged copy.
TEST_F(Scrub, DamagedTreePageTheCacheHoldsIsRewrittenFromIt) {
  populate(300);
  const uint64_t ino = ino_of("many/f100");  // reads the leaf into the cache
  {
    ImagePages image(fs_.image());
    image.break_page(image.leaf_of(Key::of(ino, KeyKind::kInode, 0)));
  }
  CommandResult r = scrub({});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(fs_.log_tail().find("repaired from the cache"), std::string::npos) << fs_.log_tail();
  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(read_file(fs_.path("many/f100")), pattern(100, 0, 3000));
  unmount_and_check();
}

// Pages change under the scrub all the time (written, rewritten, freed and
// reused); none of that may be taken for damage.
TEST_F(Scrub, ChangesDuringTheScrubAreNotDamage) {
  populate(100);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t round = 0; !stop; round++) {
      const std::string path = fs_.path("many/f" + std::to_string(round % 100));
      if (!write_file(path, pattern(round, 0, 1000 + round % 7 * 5000))) return;
      if (round % 5 == 0) unlink(fs_.path("many/f" + std::to_string((round + 50) % 100)).c_str());
      if (round % 13 == 0) {
        int fd = open(path.c_str(), O_RDONLY);
        if (fd >= 0) fsync(fd), close(fd);
      }
    }
  });
  for (int i = 0; i < 5; i++) {
    CommandResult r = scrub({"--rate", "1000"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << fs_.log_tail();
  }
  stop = true;
  writer.join();
  unmount_and_check();
}

TEST_F(Scrub, StatusCancelAndBusy) {
  populate(200);
  const std::string name = "user.pagefs.scrub";
  const std::string start = "start rate=1";  // 1 MB/s: long enough to watch
  ASSERT_EQ(setxattr(fs_.mountpoint().c_str(), name.c_str(), start.data(), start.size(), 0), 0);
  CommandResult again = scrub({});
  EXPECT_EQ(again.exit_code, 8) << again.out << again.err;
  EXPECT_NE(again.err.find("already running"), std::string::npos) << again.err;
  CommandResult status = scrub({"--status"});
  EXPECT_EQ(status.exit_code, 0) << status.out;
  EXPECT_NE(status.out.find("scrub running"), std::string::npos) << status.out;
  CommandResult cancel = scrub({"--cancel"});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  for (int i = 0; i < 100 && scrub({"--status"}).out.find("running") != std::string::npos; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  status = scrub({"--status"});
  EXPECT_EQ(status.exit_code, 8) << status.out;
  EXPECT_NE(status.out.find("scrub cancelled"), std::string::npos) << status.out;
  EXPECT_EQ(scrub({"--rate", "fast"}).exit_code, 16);
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
