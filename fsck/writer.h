// Writer: how fsck.pagefs changes a filesystem so that stopping at any point
// (a crash, a power cut, a killed fsck) never leaves it worse than it was.
//
// Two kinds of writes, both through the Device (O_DIRECT, like the engine's):
//
//   1. write_ahead(): pages that nothing on the device references yet (a new
//      tree being built in free pages, copies of shared data) or whose old
//      contents are lost anyway (a data page that failed its checksum being
//      zeroed). Written directly; if fsck stops, nothing points at them.
//   2. commit(): pages the filesystem uses (bitmap pages) and the superblock,
//      as one transaction of the engine's journal (engine/journal.h): the
//      record and its commit, flushed after the write_ahead pages, then the
//      pages home, a flush, and a checkpoint that moves the journal tail past
//      the transaction in both superblock copies (page 0, flush, page 1,
//      flush). If fsck stops before the commit record is durable, nothing
//      changed; after it, the next mount or fsck replays the transaction.
//
// So a repair builds what it needs in free pages first and then switches to
// it with one commit: the superblock names the new tree root in the same
// transaction as the bitmap that marks its pages in use.
//
// Thread-safety: none; fsck is single-threaded.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/device.h"
#include "engine/format.h"
#include "engine/journal.h"
#include "engine/result.h"
#include "fsck/aligned_buffer.h"

namespace pagefs::fsck {

// A page's new contents.
struct PageImage {
  uint64_t page = 0;
  std::unique_ptr<AlignedBuffer> bytes;  // page_size bytes
};

class Writer {
 public:
  // The journal must be empty (recovery has run): its tail and sequence are
  // the superblock's.
  static Result<std::unique_ptr<Writer>> open(Device& device, const Superblock& sb);

  uint32_t page_size() const { return sb_.page_size; }
  const Superblock& superblock() const { return sb_; }
  // A zeroed page-sized buffer aligned for the device.
  std::unique_ptr<AlignedBuffer> new_page() const;

  // Writes pages that nothing references; no flush (commit() flushes first).
  Status write_ahead(std::vector<PageImage>& pages);
  // The LSN of the next commit's record: pages it makes reachable carry it.
  uint64_t next_lsn() const { return journal_->head(); }
  // Metadata images one commit always takes, besides the superblock.
  size_t max_images() const { return journal_->max_images() - 1; }
  // Commits metadata images (at most max_images(); their headers are filled
  // in and stamped here) and the superblock `sb` as one transaction, writes
  // them home and checkpoints. `sb` becomes superblock().
  Status commit(std::vector<PageImage>& images, const Superblock& sb);

 private:
  Writer(Device& device, const Superblock& sb, std::unique_ptr<Journal> journal)
      : device_(device), sb_(sb), journal_(std::move(journal)) {}
  PageImage superblock_image(Superblock sb, uint64_t copy) const;
  Status write_home(std::vector<PageImage>& pages);
  Status checkpoint();

  Device& device_;
  Superblock sb_;
  std::unique_ptr<Journal> journal_;
};

}  // namespace pagefs::fsck
