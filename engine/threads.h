// The engine's own threads: their names, as `top -H`, `ps -L`, perf and gdb
// show them ("pagefs-commit", "pagefs-ckpt", ...; at most 15 characters,
// longer ones are cut), and their CPU priority.
//
// Thread-safety: each function acts on the calling thread only.
#pragma once

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pagefs {

inline void name_this_thread(const char* name) {
  char cut[16];
  std::strncpy(cut, name, sizeof cut - 1);
  cut[sizeof cut - 1] = '\0';
  (void)pthread_setname_np(pthread_self(), cut);
}

// Sets the calling thread's nice value (Linux keeps one per thread); returns
// 0, or the errno: a value below the current one needs root or CAP_SYS_NICE.
inline int set_this_thread_nice(int nice) {
  return setpriority(PRIO_PROCESS, id_t(gettid()), nice) == 0 ? 0 : errno;
}

}  // namespace pagefs
