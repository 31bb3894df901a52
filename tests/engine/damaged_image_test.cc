// A mounted filesystem over images damaged behind its back: metadata whose
// checksum matches but whose contents are impossible (as a bug, a misdirected
// write or a crafted image leaves them). Every such value is EIO for the
// operation that meets it, one count in metadata_errors and one log line
// naming the page; never an abort, a hang, or wrong bytes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/log.h"
#include "engine/mem_device.h"
#include "tests/engine/corrupt.h"

namespace pagefs {
namespace {

using test::leaf_of;
using test::restamp;
using test::value_of;

std::mutex g_log_mu;
std::vector<std::string> g_log;

void keep_line(LogLevel, const char* line) {
  std::lock_guard lock(g_log_mu);
  g_log.push_back(line);
}

class DamagedImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string msg;
    ASSERT_TRUE(format_device(dev_, FormatOptions{}, &msg).ok()) << msg;
    mount();
    set_log_sink(keep_line);
  }
  void TearDown() override {
    fs_.reset();
    set_log_sink(nullptr);
    g_log.clear();
  }

  void mount() {
    std::string msg;
    auto r = FileSystem::mount(std::make_unique<MemDeviceRef>(dev_), MountOptions{8 << 20}, &msg);
    ASSERT_TRUE(r.ok()) << msg;
    fs_ = std::move(r).value();
  }
  void unmount() {
    ASSERT_TRUE(fs_->unmount().ok());
    fs_.reset();
  }
  InodeNo create(const std::string& name, const std::string& data = "") {
    auto a = fs_->mknod(kRootInode, name, S_IFREG | 0644, 0, Caller{});
    EXPECT_TRUE(a.ok()) << name;
    if (!a.ok()) return InodeNo{};
    if (!data.empty()) {
      EXPECT_TRUE(fs_->write(InodeNo{a->ino}, 0, data.data(), data.size()).ok());
    }
    return InodeNo{a->ino};
  }
  // Files f0..f(n-1): enough of them make the tree two levels deep.
  void create_many(int n) {
    for (int i = 0; i < n; i++) create("f" + std::to_string(i));
  }
  // Log lines that mention `text`.
  size_t lines_with(const std::string& text) {
    std::lock_guard lock(g_log_mu);
    size_t n = 0;
    for (const std::string& l : g_log) n += l.find(text) != std::string::npos;
    return n;
  }

  // A Device that forwards to the test's MemDevice without owning it.
  class MemDeviceRef : public Device {
   public:
    explicit MemDeviceRef(MemDevice& d) : d_(d) {}
    Status read(std::span<const IoRequest> b) override { return d_.read(b); }
    Status write(std::span<const IoRequest> b) override { return d_.write(b); }
    Status flush() override { return d_.flush(); }
    uint64_t size_bytes() const override { return d_.size_bytes(); }
    uint32_t block_size() const override { return d_.block_size(); }
    bool read_only() const override { return d_.read_only(); }

   private:
    MemDevice& d_;
  };

  MemDevice dev_{64 << 20};
  std::unique_ptr<FileSystem> fs_;
};

TEST_F(DamagedImageTest, MalformedNodeIsCountedAsMetadataErrorAndNamed) {
  create_many(200);
  InodeNo last{201};
  unmount();
  Key key = Key::of(last.value, KeyKind::kInode, 0);
  uint64_t leaf = leaf_of(dev_, key);
  ASSERT_NE(leaf, test::superblock(dev_).tree_root);
  // Two slots for one cell: the node is impossible, its checksum fine.
  Node node = test::node_at(dev_, leaf);
  ASSERT_GE(node.count(), 2);
  auto* slots = reinterpret_cast<uint16_t*>(test::page_at(dev_, leaf) + kSlotsOffset);
  slots[1] = slots[0];
  restamp(dev_, leaf);
  mount();
  EXPECT_EQ(fs_->getattr(last).error(), EIO);
  EXPECT_EQ(fs_->stats().metadata_errors, 1u);
  EXPECT_EQ(fs_->stats().checksum_errors, 0u);
  EXPECT_EQ(lines_with("page " + std::to_string(leaf)), 1u);
}

}  // namespace
}  // namespace pagefs
