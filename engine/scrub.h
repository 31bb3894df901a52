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
//   - every written data page against the CRC32C its extent holds, and
//     every page of an xattr value kept in pages against its item's.
//
// The walk reads the tree as it is on the device while the filesystem keeps
// changing (operations, and the committer, checkpointer and write-back
// threads, which write without the filesystem lock), so a page that fails is
// checked again under the filesystem lock, shared, before it counts as
// damage: a page the cache holds changed (on its way home), a page freed
// since, a node its parent no longer points at, or an extent that moved is
// not damage, and neither is a page the device returns intact now. What
// remains is confirmed once more with the lock held exclusively, and repaired
// when that is certain:
//
//   - a superblock copy by a full checkpoint, which writes both from the
//     superblock in memory;
//   - a bitmap page or tree node from the cache's clean copy, else from the
//     journal region's image of the very version the damaged page names (its
//     header intact, with that LSN): transactions stay there after they are
//     written home, until the journal wraps around. The good bytes become a
//     change of the running transaction, as any operation's change, so the
//     commit pipeline journals them and a checkpoint writes them home;
//   - a data page (or xattr value page) from the cache's clean copy or a
//     journal image with the CRC its extent (or item) records, written home
//     directly (nothing the filesystem states changes).
//
// Each damaged page is reported with what owns it: the path and offset of a
// file (and the xattr's name, for a value's page), or the tree and the
// inodes whose items it holds. A running scrub's status lists a damaged page
// once that, and whether it was repaired, are known: a page repaired from
// the cache or the superblock at once; the others when the walk is through,
// after the journal has been searched for copies and a last walk of the
// directories has named the files.
//
// Pacing: reads go in batches of kBatchPages; with a rate limit (MB/s) the
// thread sleeps to keep to it, otherwise it sleeps three times as long as
// each batch took, so that the scrub takes about a quarter of the device.
// The filesystem lock is taken shared to see what the cache holds of a batch
// (without waiting for I/O on it) and to re-check a failed page, and
// exclusively only to confirm and repair damage; never across a batch of
// reads. The journal region (searched for copies of damaged pages) is read
// without it, paced the same way.
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
  // Guarded by mu_: whether status_.damage[i] is settled (Walk::report).
  // While a scrub runs, status() lists damage up to the first that is not.
  std::vector<bool> settled_;
};

}  // namespace pagefs
