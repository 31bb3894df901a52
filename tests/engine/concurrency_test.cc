// Many threads at once: each creates, writes, overwrites in place,
// truncates, renames and deletes files in a directory of its own (checked byte for byte against
// what it wrote) and in one shared directory (where names come and go under
// it), with fsyncs between. Then the filesystem must be consistent: every
// private file as its thread left it, before and after a remount, and fsck
// clean. A small cache and journal make commits, checkpoints and evictions
// happen in the middle of it all.
//
// PAGEFS_STRESS_THREADS (default 8) and PAGEFS_STRESS_OPS (operations per
// thread, default 400) size it; PAGEFS_SEED picks the operations.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/fs_impl.h"
#include "engine/mem_device.h"
#include "tests/engine/crash_harness.h"
#include "tests/test_env.h"

namespace pagefs {
namespace {

const Caller kUser{1000, 1000};

struct Worker {
  int id = 0;
  InodeNo dir;
  InodeNo shared;
  std::mt19937_64 rng;
  std::map<std::string, std::string> files;  // name -> contents
  std::string failure;                       // first unexpected result
};

class ConcurrencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dev_ = std::make_unique<MemDevice>(256ull << 20);
    std::string msg;
    ASSERT_TRUE(format_device(*dev_, FormatOptions{.journal_bytes = 2 << 20}, &msg).ok()) << msg;
    mount();
  }

  void mount() {
    std::string msg;
    auto fs = FileSystem::mount(std::make_unique<FaultDevice>(*dev_, 1),
                                MountOptions{.cache_bytes = 8 << 20, .commit_interval_s = 1}, &msg);
    ASSERT_TRUE(fs.ok()) << msg;
    fs_ = std::move(fs).value();
  }

  static void expect(Worker& w, bool ok, const std::string& what) {
    if (!ok && w.failure.empty()) w.failure = "thread " + std::to_string(w.id) + ": " + what;
  }

  InodeNo lookup(InodeNo dir, const std::string& name) {
    auto a = fs_->lookup(dir, name);
    return InodeNo{a.ok() ? a->ino : 0};
  }

  // One operation on the thread's own directory; the oracle follows it.
  void private_op(Worker& w) {
    std::string name = "f" + std::to_string(w.rng() % 12);
    bool exists = w.files.count(name) != 0;
    switch (w.rng() % 8) {
      case 0: {  // whole pages the file has, rewritten (in place, engine/file_overwrite.cc)
        if (!exists || w.files[name].size() < 4096) return;
        std::string& want = w.files[name];
        const size_t pages = want.size() / 4096, n = 1 + w.rng() % std::min<size_t>(pages, 40);
        const size_t off = 4096 * (w.rng() % (pages - n + 1));
        std::string data = test::crash::pattern(w.rng(), n * 4096);
        auto wrote = fs_->write(lookup(w.dir, name), off, data.data(), data.size());
        expect(w, wrote.ok() && *wrote == data.size(), "overwrite " + name);
        want.replace(off, data.size(), data);
        return;
      }
      case 1:
      case 2: {  // write (creating the file if needed)
        InodeNo ino = lookup(w.dir, name);
        if (!exists) {
          auto a = fs_->mknod(w.dir, name, S_IFREG | 0644, 0, kUser);
          expect(w, a.ok(), "create " + name);
          if (!a.ok()) return;
          ino = InodeNo{a->ino};
          w.files[name];
        }
        std::string& want = w.files[name];
        uint64_t off = w.rng() % (want.size() + 8192);
        std::string data = test::crash::pattern(w.rng(), 1 + w.rng() % 70000);
        auto n = fs_->write(ino, off, data.data(), data.size());
        expect(w, n.ok() && *n == data.size(), "write " + name);
        if (want.size() < off + data.size()) want.resize(off + data.size(), '\0');
        want.replace(off, data.size(), data);
        return;
      }
      case 3: {  // truncate
        if (!exists) return;
        SetAttr c;
        c.set_size = true;
        c.size = w.rng() % (w.files[name].size() + 10000);
        expect(w, fs_->setattr(lookup(w.dir, name), c).ok(), "truncate " + name);
        w.files[name].resize(c.size, '\0');
        return;
      }
      case 4: {  // rename over another name
        if (!exists) return;
        std::string to = "f" + std::to_string(w.rng() % 12);
        if (to == name) return;
        InodeNo victim = w.files.count(to) ? lookup(w.dir, to) : InodeNo{};
        expect(w, fs_->rename(w.dir, name, w.dir, to, 0, kUser).ok(), "rename " + name);
        if (victim.value != 0) expect(w, fs_->release_inode(victim).ok(), "release " + to);
        w.files[to] = std::move(w.files[name]);
        w.files.erase(name);
        return;
      }
      case 5: {  // unlink
        if (!exists) return;
        InodeNo ino = lookup(w.dir, name);
        expect(w, fs_->unlink(w.dir, name, kUser).ok(), "unlink " + name);
        expect(w, fs_->release_inode(ino).ok(), "release " + name);
        w.files.erase(name);
        return;
      }
      case 6: {  // read back
        if (!exists) return;
        const std::string& want = w.files[name];
        std::string got(want.size(), '\0');
        auto n = fs_->read(lookup(w.dir, name), 0, got.size(), got.data());
        expect(w, n.ok() && *n == want.size() && got == want, "read back " + name);
        return;
      }
      default:
        expect(w, fs_->fsync(w.dir, w.rng() % 2).ok(), "fsync");
    }
  }

  // One operation on the shared directory, whose names other threads change
  // too: only the errors that such races explain are allowed.
  void shared_op(Worker& w) {
    std::string name = "s" + std::to_string(w.rng() % 20);
    auto allowed = [](const Status& st, std::initializer_list<int> errors) {
      if (st.ok()) return true;
      for (int e : errors) {
        if (st.error() == e) return true;
      }
      return false;
    };
    switch (w.rng() % 5) {
      case 0: {
        auto a = fs_->mknod(w.shared, name, S_IFREG | 0644, 0, kUser);
        Status st = a.ok() ? ok_status() : Status(Err{a.error()});
        expect(w, allowed(st, {EEXIST}), "shared create " + name);
        if (a.ok()) {
          std::string data = test::crash::pattern(w.rng(), 5000);
          auto n = fs_->write(InodeNo{a->ino}, 0, data.data(), data.size());
          expect(w, n.ok() || n.error() == ENOENT, "shared write " + name);
        }
        return;
      }
      case 1: {
        std::string to = "s" + std::to_string(w.rng() % 20);
        expect(w,
               allowed(fs_->rename(w.shared, name, w.shared, to, 0, kUser),
                       {ENOENT, EISDIR, ENOTDIR, ENOTEMPTY}),
               "shared rename " + name);
        return;
      }
      case 2:
        expect(w, allowed(fs_->unlink(w.shared, name, kUser), {ENOENT, EISDIR}), "shared unlink");
        return;
      case 3: {
        auto a = fs_->mkdir(w.shared, name, 0755, kUser);
        expect(w, a.ok() || a.error() == EEXIST, "shared mkdir " + name);
        return;
      }
      default:
        expect(w, allowed(fs_->rmdir(w.shared, name, kUser), {ENOENT, ENOTDIR, ENOTEMPTY}),
               "shared rmdir " + name);
    }
  }

  void check_private(Worker& w, const std::string& when) {
    for (const auto& [name, want] : w.files) {
      auto a = fs_->lookup(w.dir, name);
      ASSERT_TRUE(a.ok()) << when << ": thread " << w.id << " lost " << name;
      std::string got(want.size(), '\0');
      auto n = fs_->read(InodeNo{a->ino}, 0, got.size(), got.data());
      ASSERT_TRUE(n.ok() && *n == want.size() && got == want)
          << when << ": thread " << w.id << ", " << name << " differs";
    }
  }

  std::unique_ptr<MemDevice> dev_;
  std::unique_ptr<FileSystem> fs_;
};

TEST_F(ConcurrencyTest, ThreadsInPrivateAndSharedDirectoriesLeaveAConsistentFilesystem) {
  const int threads = int(testenv::env_u64("PAGEFS_STRESS_THREADS", 8));
  const uint64_t ops = testenv::env_u64("PAGEFS_STRESS_OPS", 400);
  const uint64_t seed = testenv::seed_from_env();
  auto shared = fs_->mkdir(kRootInode, "shared", 0777, kUser);
  ASSERT_TRUE(shared.ok());
  std::vector<Worker> workers(threads);
  for (int t = 0; t < threads; t++) {
    auto dir = fs_->mkdir(kRootInode, "p" + std::to_string(t), 0755, kUser);
    ASSERT_TRUE(dir.ok());
    workers[t] = Worker{
        t, InodeNo{dir->ino}, InodeNo{shared->ino}, std::mt19937_64(test::crash::mix(seed, t)), {},
        {}};
  }
  std::vector<std::thread> running;
  for (Worker& w : workers) {
    running.emplace_back([&, &w = w] {
      for (uint64_t i = 0; i < ops && w.failure.empty(); i++) {
        if (w.rng() % 4 == 0) {
          shared_op(w);
        } else {
          private_op(w);
        }
      }
    });
  }
  for (std::thread& t : running) t.join();
  for (const Worker& w : workers)
    ASSERT_TRUE(w.failure.empty()) << w.failure << " (PAGEFS_SEED=" << seed << ")";
  for (Worker& w : workers) ASSERT_NO_FATAL_FAILURE(check_private(w, "after the run"));
  EXPECT_FALSE(fs_->internals_for_testing().failed_);
  ASSERT_TRUE(fs_->unmount().ok());
  fs_.reset();
  test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(*dev_);
  ASSERT_EQ(fsck.code, 0) << fsck.text;
  mount();
  for (Worker& w : workers) ASSERT_NO_FATAL_FAILURE(check_private(w, "after a remount"));
  ASSERT_TRUE(fs_->unmount().ok());
  fs_.reset();
}

// A read replies from the pages it pinned without the filesystem lock. A
// commit closing the transaction those pages are dirty in only reads them,
// and a full checkpoint waits for the reader to let go before it writes them
// home: neither fails, and the reply gets the bytes that were written.
TEST_F(ConcurrencyTest, CommitsAndFullCheckpointsLetReadersReplyFromTheirPages) {
  auto a = fs_->mknod(kRootInode, "a", S_IFREG | 0644, 0, kUser);
  auto b = fs_->mknod(kRootInode, "b", S_IFREG | 0644, 0, kUser);
  ASSERT_TRUE(a.ok() && b.ok());
  std::atomic<bool> stop{false};
  std::thread other([&] {
    const std::string data(8192, 'b');
    FileSystem::Impl& impl = fs_->internals_for_testing();
    for (int round = 0; !stop; round++) {
      (void)fs_->write(InodeNo{b->ino}, 0, data.data(), data.size());
      if (round % 4 != 3) {
        (void)fs_->fsync(InodeNo{b->ino}, false);
        continue;
      }
      std::unique_lock lock(impl.mu_);
      EXPECT_TRUE(impl.checkpoint_locked().ok());
    }
  });
  for (int i = 0; i < 200; i++) {
    const std::string data(8192, char('a' + i % 26));
    ASSERT_TRUE(fs_->write(InodeNo{a->ino}, 0, data.data(), data.size()).ok());
    if (i % 2 == 1) {
      ASSERT_TRUE(fs_->fsync(InodeNo{a->ino}, false).ok());  // committed, not home
    }
    std::string got;
    auto n = fs_->read_in_place(InodeNo{a->ino}, 0, 4096, [&](std::span<const iovec> iov) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a slow reply
      for (const iovec& v : iov) got.append(static_cast<const char*>(v.iov_base), v.iov_len);
    });
    ASSERT_TRUE(n.ok());
    ASSERT_EQ(got, data.substr(0, 4096));
  }
  stop = true;
  other.join();
  EXPECT_FALSE(fs_->internals_for_testing().failed_);
  ASSERT_TRUE(fs_->unmount().ok());
  fs_.reset();
}

}  // namespace
}  // namespace pagefs
