// Reading and damaging the pages of an image file from a test, while it is
// unmounted or, for the scrub tests, underneath a running daemon.
//
// Writes go straight to the file with O_DIRECT (so that the daemon, which
// reads with O_DIRECT too, sees them at once); metadata pages can be
// restamped so that damage reaches the code that parses them.
//
// Thread-safety: none; one test at a time.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/format.h"
#include "engine/key.h"

namespace pagefs::test {

class ImagePages {
 public:
  static constexpr uint32_t kPageBytes = 4096;

  explicit ImagePages(const std::string& image);
  ~ImagePages();
  ImagePages(const ImagePages&) = delete;
  ImagePages& operator=(const ImagePages&) = delete;

  std::vector<std::byte> read(uint64_t page) const;
  void write(uint64_t page, const std::vector<std::byte>& bytes) const;
  // Recomputes a metadata page's checksum after a change.
  static void restamp(std::vector<std::byte>& page);

  Superblock superblock() const;
  // The leaf that holds (or would hold) `key`.
  uint64_t leaf_of(const Key& key) const;
  // The extent value of (ino, kExtent, file_page); pages == 0 if absent.
  ExtentValue extent(uint64_t ino, uint64_t file_page) const;
  // Flips a byte near the end of a page: a checksum failure.
  void break_page(uint64_t page) const;

 private:
  int fd_ = -1;
};

}  // namespace pagefs::test
