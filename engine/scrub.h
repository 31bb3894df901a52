// Scrubber: the online verification of a mounted filesystem (`pagefs scrub`).
//
// A background thread reads every page in use from the device through the
// engine's own O_DIRECT I/O, never through the buffer pool (so the cache keeps
// what the workload needs), and verifies it:
//
//   - both superblock copies and the bitmap pages: header and checksum;
//   - the tree, level by level as fsck walks it: each node's header,
//     checksum and layout (Node::check), its level and its keys against the
//     range its parent gives it;
//   - every written data page against the CRC32C its extent holds.
//
// The walk reads the tree as it is on the device while the filesystem keeps
// changing, so a page that fails is checked again under the filesystem lock
// before it counts as damage: a page the cache holds dirty, a page freed
// since, or an extent that moved is not damage. What remains is damage, and
// is repaired when that is certain: from the cache's clean copy of the page
// when it holds one, else from the newest image of the page in the journal
// region if it is at least as new as the damaged page (a metadata page whose
// header still names its LSN; a data page whose image has the extent's CRC).
// Each damaged page is reported with what owns it: the path and offset of a
// file, or the tree and the inodes whose items it holds.
//
// Pacing: reads go in batches of kBatchPages; with a rate limit (MB/s) the
// thread sleeps to keep to it, otherwise it sleeps three times as long as
// each batch took, so that the scrub takes about a quarter of the device.
// The filesystem lock is taken only to re-check a failed page, to repair it
// and to name owners, never across a batch of reads.
//
// Thread-safety: start(), cancel() and status() may be called from any
// thread; one scrub runs at a time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/filesystem.h"
#include "engine/result.h"

namespace pagefs {

class Scrubber {
 public:
  static constexpr size_t kBatchPages = 256;
  static constexpr size_t kMaxReported = 1000;  // damage entries kept for status()

  explicit Scrubber(FileSystem::Impl& fs);
  ~Scrubber();  // cancels a running scrub and waits for it
  Scrubber(const Scrubber&) = delete;
  Scrubber& operator=(const Scrubber&) = delete;

  // Starts a scrub; EBUSY if one is running.
  Status start(const ScrubOptions& options);
  // Asks a running scrub to stop; it ends as kCancelled.
  void cancel();
  ScrubStatus status() const;

 private:
  class Walk;
  friend class Walk;

  void run(ScrubOptions options);

  FileSystem::Impl& fs_;
  std::thread thread_;
  std::atomic<bool> cancel_{false};
  // Lock order: after the filesystem lock (status() is called under none).
  mutable std::mutex mu_;
  ScrubStatus status_;  // guarded by mu_
};

}  // namespace pagefs
