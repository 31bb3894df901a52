#include "tests/mount/image_pages.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "engine/buffer_pool.h"
#include "engine/node.h"

namespace pagefs::test {
namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

std::unique_ptr<std::byte, FreeDeleter> aligned_page() {
  return std::unique_ptr<std::byte, FreeDeleter>(
      static_cast<std::byte*>(std::aligned_alloc(4096, ImagePages::kPageBytes)));
}

}  // namespace

ImagePages::ImagePages(const std::string& image) {
  fd_ = open(image.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  if (fd_ < 0) ADD_FAILURE() << "open " << image << ": " << std::strerror(errno);
}

ImagePages::~ImagePages() {
  if (fd_ >= 0) close(fd_);
}

std::vector<std::byte> ImagePages::read(uint64_t page) const {
  auto buf = aligned_page();
  ssize_t n = pread(fd_, buf.get(), kPageBytes, off_t(page * kPageBytes));
  EXPECT_EQ(n, ssize_t(kPageBytes)) << "read page " << page;
  return std::vector<std::byte>(buf.get(), buf.get() + kPageBytes);
}

void ImagePages::write(uint64_t page, const std::vector<std::byte>& bytes) const {
  auto buf = aligned_page();
  std::memcpy(buf.get(), bytes.data(), kPageBytes);
  ssize_t n = pwrite(fd_, buf.get(), kPageBytes, off_t(page * kPageBytes));
  EXPECT_EQ(n, ssize_t(kPageBytes)) << "write page " << page;
}

void ImagePages::restamp(std::vector<std::byte>& page) {
  stamp_meta_page(page.data(), kPageBytes);
}

Superblock ImagePages::superblock() const {
  Superblock sb;
  std::vector<std::byte> page = read(0);
  std::memcpy(&sb, page.data(), sizeof sb);
  return sb;
}

uint64_t ImagePages::leaf_of(const Key& key) const {
  uint64_t page = superblock().tree_root;
  for (int depth = 0; depth < 32; depth++) {
    std::vector<std::byte> bytes = read(page);
    Node node(bytes.data(), kPageBytes);
    if (node.is_leaf()) return page;
    page = node.child_at(node.child_index(key));
  }
  ADD_FAILURE() << "tree deeper than 32 levels";
  return 0;
}

ExtentValue ImagePages::extent(uint64_t ino, uint64_t file_page) const {
  const Key key = Key::of(ino, KeyKind::kExtent, file_page);
  std::vector<std::byte> bytes = read(leaf_of(key));
  Node node(bytes.data(), kPageBytes);
  ExtentValue ev{};
  uint16_t i = node.lower_bound(key);
  if (i < node.count() && node.key_at(i) == key) {
    std::memcpy(&ev, node.value_at(i).data(), sizeof ev);
  }
  return ev;
}

void ImagePages::break_page(uint64_t page) const {
  std::vector<std::byte> bytes = read(page);
  bytes[kPageBytes - 100] ^= std::byte{0x5a};
  write(page, bytes);
}

}  // namespace pagefs::test
