// AllocStreams: an allocation cursor for each file being written
// sequentially, so that files written at the same time each stay contiguous.
//
// A file grows in place while the device page after its last extent is free
// (FileSystem::Impl::map_page). With one writer it always is. With several,
// the writers take turns, a chunk each, and each takes the pages right after
// the last writer's chunk, so four files written side by side came out in
// pieces of one chunk (128 KiB), interleaved on the device: a hundred pieces
// for each 16 MiB file.
//
// Each file past kMinFilePage gets a window: a range of device pages ahead of
// its last one, at least kMinWindow pages and as many as the file has (up to
// kMaxWindow), in the manner of XFS's speculative preallocation, and a new
// window opens past every window in use (the frontier). Nothing is reserved
// on disk: a window is where its file looks first and where every other
// allocation looks last (SpaceMap::allocate skips it unless there is no other
// free page), so no page is lost to it, and nothing here needs a transaction
// or survives a remount. Small files, and the first pages of any file,
// allocate as before, next to each other.
//
// Memory: kStreams cursors; the least recently used gives way to a new one.
// Thread-safety: none; the caller serializes (the filesystem lock, held
// exclusively by allocating writes).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace pagefs {

class AllocStreams {
 public:
  static constexpr uint64_t kMinFilePage = 64;  // files below this many pages have no stream
  static constexpr uint64_t kMinWindow = 256;
  static constexpr uint64_t kMaxWindow = 4096;
  static constexpr size_t kStreams = 32;

  // Where to look for the device page of file page `fp` of `ino`, given
  // `file_hint`, the page after the file's extent before it (0: none).
  uint64_t hint(uint64_t ino, uint64_t fp, uint64_t file_hint) const;
  // The stream a page for file page `fp` of `ino` is allocated for: `ino`
  // once the file is large enough to have one, else 0.
  static uint64_t stream_of(uint64_t ino, uint64_t fp) { return fp < kMinFilePage ? 0 : ino; }
  // Records that file page `fp` of `ino` went to device page `page`.
  void allocated(uint64_t ino, uint64_t fp, uint64_t page);
  // The file is gone (its inode freed): its cursor is dropped.
  void forget(uint64_t ino);
  // If `page` lies in the window of a stream other than `owner`'s (0: no
  // stream's), the end of that window; else 0.
  uint64_t foreign_window_end(uint64_t page, uint64_t owner) const;

 private:
  struct Stream {
    uint64_t ino = 0;   // 0: unused
    uint64_t next = 0;  // the page after the stream's last one
    uint64_t end = 0;   // the end of its window
    uint64_t used = 0;  // tick of its last allocation, for LRU
  };
  // The index of `ino`'s cursor, or kStreams.
  size_t find(uint64_t ino) const;
  uint64_t frontier() const;

  std::array<Stream, kStreams> streams_{};
  uint64_t tick_ = 0;
};

}  // namespace pagefs
