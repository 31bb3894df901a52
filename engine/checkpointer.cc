#include "engine/checkpointer.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "engine/format.h"
#include "engine/log.h"
#include "engine/threads.h"

namespace pagefs {
namespace {

// How long an operation waits for room before the journal counts as stuck.
constexpr auto kRoomTimeout = std::chrono::seconds(60);
// How often the thread looks at the journal without being asked.
constexpr auto kIdleCheck = std::chrono::seconds(5);

}  // namespace

Checkpointer::Checkpointer(BufferPool& pool, Journal& journal, Committer& committer, Device& device,
                           uint32_t page_size, FailureHandler on_failure, Histogram* checkpoint_ns)
    : pool_(pool),
      journal_(journal),
      committer_(committer),
      device_(device),
      page_size_(page_size),
      on_failure_(std::move(on_failure)),
      buffer_(static_cast<std::byte*>(std::aligned_alloc(4096, page_size)), &std::free),
      checkpoint_ns_(checkpoint_ns) {
  thread_ = std::thread([this] {
    name_this_thread("pagefs-ckpt");
    loop();
  });
}

Checkpointer::~Checkpointer() {
  stop();
}

void Checkpointer::kick() {
  {
    std::lock_guard lock(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

void Checkpointer::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Checkpointer::note_full_checkpoint(uint64_t txn) {
  if (txn > retired_.load()) retired_.store(txn);
}

// Checkpoints cost flushes that fsyncs then wait behind, so the thread runs
// only when asked (the journal is half full, or someone waits for room) or,
// every few seconds, when a quarter of the journal is in use.
void Checkpointer::loop() {
  std::unique_lock lock(mu_);
  while (!stop_ && !failed_) {
    bool kicked = cv_.wait_for(lock, kIdleCheck, [&] { return stop_ || kicked_; });
    if (stop_) break;
    kicked_ = false;
    uint64_t used = journal_.capacity_bytes() - journal_.free_bytes();
    if (!kicked && used < journal_.capacity_bytes() / 4) continue;
    if (used == 0) continue;  // nothing to retire
    lock.unlock();
    Result<bool> moved = run();
    lock.lock();
    if (!moved.ok()) failed_ = true;
    runs_++;
    cv_.notify_all();
  }
}

// Steps 1-4 of the class comment.
Result<bool> Checkpointer::run() {
  std::lock_guard run_lock(run_mu_);
  std::optional<LatencyTimer> timer;
  if (checkpoint_ns_ != nullptr) timer.emplace(*checkpoint_ns_);
  Status st = pool_.write_home(committer_.durable_txn());
  // In this order: every transaction up to `last` has pinned its pages (the
  // committer pins, then notes), so `oldest` covers them; one that commits
  // meanwhile is left for the next checkpoint.
  const uint64_t last = journal_.last_noted_txn();
  const uint64_t oldest = pool_.oldest_pinned_txn();
  if (st.ok()) st = device_.flush();
  Journal::TailMove move;
  if (st.ok() && journal_.tail_move(oldest, last, &move, buffer_.get())) {
    // The n-th move since transaction L's commit writes L's image with
    // generation L - kGenerationStep + n (format.h): newer than every copy
    // written before, older than L's own image, and unique. Once the values
    // are used up, the tail waits for the next commit.
    const uint64_t image = reinterpret_cast<const Superblock*>(buffer_.get())->generation;
    if (image != image_generation_) {
      image_generation_ = image;
      image_moves_ = 0;
    }
    if (image_moves_ + 1 >= kGenerationStep || image < kGenerationStep) return false;
    image_moves_++;
    st = write_superblocks(buffer_.get(), image - kGenerationStep + image_moves_, move.lsn,
                           move.sequence);
    if (st.ok()) {
      journal_.set_tail(move.lsn, move.sequence);
      note_full_checkpoint(move.retired);
      return true;
    }
  }
  if (!st.ok()) {
    on_failure_("checkpoint", st.error());
    return Err{st.error()};
  }
  return false;
}

// Page 0, flush, page 1, flush: a crash leaves at least one whole copy, and
// both describe the state of a durable transaction L. Their `generation`
// (run() picks it) lies between the commit before L's and L's: newer than
// every copy written before, and older than L's own image in the journal, so
// when recovery replays from the new tail, the page 0 it leaves is never
// older than page 1 (the checker expects page 1 to be the one that lags).
Status Checkpointer::write_superblocks(std::byte* image, uint64_t generation, uint64_t tail,
                                       uint64_t sequence) {
  auto* sb = reinterpret_cast<Superblock*>(image);
  sb->journal_tail = tail;
  sb->journal_sequence = sequence;
  sb->generation = generation;
  for (uint64_t copy = 0; copy < 2; copy++) {
    sb->header.page_no = copy;
    stamp_meta_page(image, page_size_);
    PAGEFS_TRY(device_.write_at(copy * page_size_, image, page_size_));
    PAGEFS_TRY(device_.flush());
  }
  return ok_status();
}

Status Checkpointer::wait_for_room(uint64_t bytes) {
  auto deadline = std::chrono::steady_clock::now() + kRoomTimeout;
  std::unique_lock lock(mu_);
  while (journal_.available_bytes() < bytes) {
    if (failed_) return Err{EIO};
    if (std::chrono::steady_clock::now() > deadline) {
      PAGEFS_LOG_ERROR("the journal stays full: %llu bytes wanted, %llu available",
                       (unsigned long long)bytes, (unsigned long long)journal_.available_bytes());
      return Err{EIO};
    }
    kicked_ = true;
    cv_.notify_all();
    uint64_t runs = runs_;
    cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return failed_ || runs_ > runs; });
  }
  return ok_status();
}

}  // namespace pagefs
