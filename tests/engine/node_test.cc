// Node tests: the structure check that every tree page read from the device
// passes before the tree uses it.
#include "engine/node.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace pagefs {
namespace {

constexpr uint32_t kPage = 4096;

class NodeTest : public ::testing::Test {
 protected:
  void SetUp() override { node_.init(100, 0); }

  static std::span<const std::byte> bytes(const std::string& s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
  }
  void add(uint64_t ino, const std::string& value) {
    node_.insert_at(node_.count(), Key::of(ino, KeyKind::kInode, 0), bytes(value));
  }
  void add_child(const Key& key, uint64_t child) {
    std::span<const std::byte> v(reinterpret_cast<const std::byte*>(&child), sizeof child);
    node_.insert_at(node_.count(), key, v);
  }
  NodeHeader* header() { return reinterpret_cast<NodeHeader*>(page_ + kNodeHeaderOffset); }
  uint16_t* slots() { return reinterpret_cast<uint16_t*>(page_ + kSlotsOffset); }
  void set_value_len(uint16_t i, uint16_t len) {
    std::memcpy(page_ + slots()[i] + sizeof(DiskKey), &len, sizeof len);
  }
  // The reason check() gives, or "" if it accepts the node.
  std::string refusal() {
    const char* why = nullptr;
    return node_.check(&why) ? "" : why;
  }

  alignas(4096) std::byte page_[kPage];
  Node node_{page_, kPage};
};

TEST_F(NodeTest, AcceptsWhatInsertsBuild) {
  for (uint64_t i = 1; i <= 20; i++) add(i, std::string(i * 3, 'v'));
  node_.erase_at(4);
  node_.erase_at(10);
  EXPECT_EQ(refusal(), "");
  node_.compact();
  EXPECT_EQ(refusal(), "");
}

TEST_F(NodeTest, RefusesOverlappingCells) {
  add(1, std::string(40, 'a'));
  add(2, std::string(40, 'b'));
  // Cell 1 was placed below cell 0: growing its value makes it run into cell 0,
  // while every cell stays inside the page and the keys stay in order.
  set_value_len(1, 60);
  EXPECT_NE(refusal(), "");
}

TEST_F(NodeTest, RefusesTwoSlotsSharingACell) {
  add(1, std::string(40, 'a'));
  add(2, std::string(40, 'b'));
  add(3, std::string(40, 'c'));
  // Slot 2 points into the middle of cell 0, where the bytes read as a key
  // above the others: bounds and key order alone accept it.
  uint16_t at = slots()[0] + kCellOverhead + 4;
  Key::of(9, KeyKind::kInode, 0).store(page_ + at);
  uint16_t len = 2;
  std::memcpy(page_ + at + sizeof(DiskKey), &len, sizeof len);
  slots()[2] = at;
  EXPECT_NE(refusal(), "");
}

TEST_F(NodeTest, RefusesCellStartPastThePage) {
  // An empty node whose cell_start lies past the end of the page: an insert
  // would place the new cell outside it.
  header()->cell_start = 0xfff0;
  EXPECT_NE(refusal(), "");
}

TEST_F(NodeTest, RefusesALeafValueLargerThanTheFormatAllows) {
  add(1, std::string(max_value_size(kPage) + 1, 'x'));
  EXPECT_NE(refusal(), "");
}

TEST_F(NodeTest, RefusesUnknownKeyKindsInLeaves) {
  node_.insert_at(0, Key{7, 6, 0}, bytes("x"));
  EXPECT_NE(refusal(), "");
  node_.init(100, 0);
  node_.insert_at(0, Key{7, 0, 0}, bytes("x"));
  EXPECT_NE(refusal(), "");
}

TEST_F(NodeTest, RefusesAnInternalNodeWithoutChildren) {
  node_.init(100, 1);
  EXPECT_NE(refusal(), "");
}

TEST_F(NodeTest, RefusesAChildPointerThatIsNotEightBytes) {
  node_.init(100, 1);
  add_child(Key::min(), 2000);
  node_.insert_at(1, Key::of(5, KeyKind::kInode, 0), bytes("123456789"));
  EXPECT_NE(refusal(), "");
}

TEST_F(NodeTest, RefusesALevelPastTheLargestTreeHeight) {
  node_.init(100, 1);
  add_child(Key::min(), 2000);
  EXPECT_EQ(refusal(), "");
  header()->level = 40;
  EXPECT_NE(refusal(), "");
}

TEST_F(NodeTest, RefusesKeysOutOfOrder) {
  add(2, "b");
  add(1, "a");
  EXPECT_NE(refusal(), "");
}

}  // namespace
}  // namespace pagefs
