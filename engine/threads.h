// The engine's own threads: their names, as `top -H`, `ps -L`, perf and gdb
// show them ("pagefs-commit", "pagefs-ckpt", ...; at most 15 characters,
// longer ones are cut).
//
// Thread-safety: each function acts on the calling thread only.
#pragma once

#include <pthread.h>

#include <cstring>

namespace pagefs {

inline void name_this_thread(const char* name) {
  char cut[16];
  std::strncpy(cut, name, sizeof cut - 1);
  cut[sizeof cut - 1] = '\0';
  (void)pthread_setname_np(pthread_self(), cut);
}

}  // namespace pagefs
