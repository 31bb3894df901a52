#include "fs/request_rewrite.h"

#include <linux/fuse.h>

#include <cstring>

namespace pagefs {

bool rewrite_request(void* buf, size_t len) {
  fuse_in_header in;
  if (len < sizeof in + sizeof(fuse_create_in)) return false;
  std::memcpy(&in, buf, sizeof in);
  if (in.opcode != FUSE_TMPFILE) return false;
  in.opcode = FUSE_CREATE;
  std::memcpy(buf, &in, sizeof in);
  return true;
}

}  // namespace pagefs
