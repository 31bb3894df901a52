// Recovery: reading the superblock, replaying the journal at mount and in
// fsck, and a read-only view of a device as recovery would leave it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/format.h"
#include "engine/journal.h"
#include "engine/result.h"
#include "engine/superblock.h"

namespace pagefs {

// Reads both superblock copies and returns the newest valid one: a copy
// counts only if its checksum matches and superblock_valid() accepts it; one
// that does not is ignored with a warning. Refuses a device that is not pagefs
// (EINVAL), a filesystem larger than the device (EINVAL), a newest copy of
// another version or with unknown incompatible features (EPROTONOSUPPORT),
// and a pair of which neither copy is valid (EIO). `message` gets one line
// for users.
Status load_superblock(Device& device, Superblock* out, std::string* message);

// Writes `sb` with its generation incremented to page 0, flushes, then to
// page 1, flushes: whatever a crash interrupts, one copy is whole, and the
// newer one wins at the next load_superblock().
Status write_superblock_copies(Device& device, Superblock sb);

// Loads the superblock and replays the journal. When transactions were
// replayed, both superblock copies are rewritten with the journal emptied
// (tail = head), so the replay is not repeated; a crash during recovery just
// recovers again. `sb` receives the superblock as recovery left it. On a
// read-only device a journal that needs replay is refused (EROFS).
Status recover_device(Device& device, Superblock* sb, RecoveryResult* result, std::string* message);

// A read-only device that shows `inner` as if the journal had been replayed:
// reads of journaled pages return their newest committed image. Used by
// fsck -n, which must not write. Memory: one page per distinct page in the
// journal.
class OverlayDevice : public Device {
 public:
  static Result<std::unique_ptr<OverlayDevice>> open(Device& inner, RecoveryResult* result,
                                                     std::string* message);
  // The same, with the superblock load_superblock() returned for `inner`.
  static Result<std::unique_ptr<OverlayDevice>> open(Device& inner, const Superblock& sb,
                                                     RecoveryResult* result, std::string* message);

  Status read(std::span<const IoRequest> batch) override;
  Status write(std::span<const IoRequest>) override { return Err{EROFS}; }
  Status flush() override { return ok_status(); }
  uint64_t size_bytes() const override { return inner_.size_bytes(); }
  uint32_t block_size() const override { return inner_.block_size(); }
  bool read_only() const override { return true; }

 private:
  OverlayDevice(Device& inner, uint32_t page_size) : inner_(inner), page_size_(page_size) {}
  void patch(uint64_t offset, std::byte* buf, size_t len) const;

  Device& inner_;
  uint32_t page_size_;
  std::map<uint64_t, std::vector<std::byte>> images_;  // page -> newest image
};

}  // namespace pagefs
