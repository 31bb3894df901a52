#include "engine/fs_lock.h"

#include <cerrno>
#include <cstdlib>

#include "engine/log.h"

namespace pagefs {
namespace {

// A lock call that fails means the lock itself is broken (EDEADLK, EINVAL):
// our own logic, not the device's, so it stops the process.
void check(int rc, const char* what) {
  if (rc == 0) return;
  PAGEFS_LOG_ERROR("filesystem lock: %s failed (%d)", what, rc);
  std::abort();
}

}  // namespace

FsLock::FsLock(FsLockStats& stats) : stats_(stats) {
  pthread_rwlockattr_t attr;
  check(pthread_rwlockattr_init(&attr), "pthread_rwlockattr_init");
  check(pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP),
        "pthread_rwlockattr_setkind_np");
  check(pthread_rwlock_init(&rw_, &attr), "pthread_rwlock_init");
  pthread_rwlockattr_destroy(&attr);
}

FsLock::~FsLock() {
  pthread_rwlock_destroy(&rw_);
}

void FsLock::lock() {
  if (pthread_rwlock_trywrlock(&rw_) == 0) {
    held_since_ = Clock::now();
    stats_.exclusive_wait_ns.record(0);
    return;
  }
  const Clock::time_point asked = Clock::now();
  check(pthread_rwlock_wrlock(&rw_), "pthread_rwlock_wrlock");
  held_since_ = Clock::now();
  stats_.exclusive_wait_ns.record(ns_between(asked, held_since_));
}

bool FsLock::try_lock() {
  if (pthread_rwlock_trywrlock(&rw_) != 0) return false;
  held_since_ = Clock::now();
  stats_.exclusive_wait_ns.record(0);
  return true;
}

void FsLock::unlock() {
  stats_.exclusive_hold_ns.record(ns_between(held_since_, Clock::now()));
  check(pthread_rwlock_unlock(&rw_), "pthread_rwlock_unlock");
}

void FsLock::lock_shared() {
  if (pthread_rwlock_tryrdlock(&rw_) == 0) {
    stats_.shared_wait_ns.record(0);
    return;
  }
  const Clock::time_point asked = Clock::now();
  check(pthread_rwlock_rdlock(&rw_), "pthread_rwlock_rdlock");
  stats_.shared_wait_ns.record(ns_between(asked, Clock::now()));
}

bool FsLock::try_lock_shared() {
  if (pthread_rwlock_tryrdlock(&rw_) != 0) return false;
  stats_.shared_wait_ns.record(0);
  return true;
}

void FsLock::unlock_shared() {
  check(pthread_rwlock_unlock(&rw_), "pthread_rwlock_unlock");
}

}  // namespace pagefs
