#include "engine/alloc_streams.h"

#include <algorithm>

namespace pagefs {

size_t AllocStreams::find(uint64_t ino) const {
  size_t i = 0;
  while (i < kStreams && (streams_[i].ino != ino || ino == 0)) i++;
  return i;
}

uint64_t AllocStreams::frontier() const {
  uint64_t end = 0;
  for (const Stream& s : streams_) {
    if (s.ino != 0) end = std::max(end, s.end);
  }
  return end;
}

uint64_t AllocStreams::hint(uint64_t ino, uint64_t fp, uint64_t file_hint) const {
  if (fp < kMinFilePage) return file_hint;
  const size_t i = find(ino);
  if (i < kStreams && streams_[i].next < streams_[i].end) return streams_[i].next;
  // A new window, past the others. Alone, a file's own window is the
  // frontier, and it goes on where it ended.
  const uint64_t past = frontier();
  return past != 0 ? past : file_hint;
}

void AllocStreams::allocated(uint64_t ino, uint64_t fp, uint64_t page) {
  if (fp < kMinFilePage || ino == 0) return;
  tick_++;
  const size_t i = find(ino);
  Stream* s = i < kStreams ? &streams_[i] : nullptr;
  if (s != nullptr && page >= s->next && page < s->end) {
    s->next = page + 1;
    s->used = tick_;
    return;
  }
  if (s == nullptr) {  // the least recently used gives way
    s = &*std::min_element(streams_.begin(), streams_.end(),
                           [](const Stream& a, const Stream& b) { return a.used < b.used; });
  }
  s->ino = ino;
  s->next = page + 1;
  s->end = page + std::clamp(fp, kMinWindow, kMaxWindow);
  s->used = tick_;
}

uint64_t AllocStreams::foreign_window_end(uint64_t page, uint64_t owner) const {
  for (const Stream& s : streams_) {
    if (s.ino != 0 && s.ino != owner && page >= s.next && page < s.end) return s.end;
  }
  return 0;
}

void AllocStreams::forget(uint64_t ino) {
  for (Stream& s : streams_) {
    if (s.ino == ino) s = Stream{};
  }
}

}  // namespace pagefs
