// Shared memory maps on the default mount (cache=private, direct I/O): what a
// process writes through a map, another reads with read(2), and the other way
// round; data written through a map survives msync, munmap and a remount; and
// SQLite in WAL mode, which maps its -shm file shared, works across processes.
//
// These need a kernel that offers FUSE_DIRECT_IO_ALLOW_MMAP (Linux >= 6.6).
// On an older one the daemon says in its log that shared maps stay refused,
// and the tests check that instead.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "tests/mount/mount_helper.h"

namespace pagefs::test {
namespace {

constexpr size_t kMapBytes = 64 * kKiB;

class MountMmap : public MountTest {
 protected:
  // Whether the daemon said the kernel lets no shared map of a direct-I/O file.
  bool shared_maps_refused() const {
    return fs_.log_tail().find("FUSE_DIRECT_IO_ALLOW_MMAP") != std::string::npos;
  }
};

// One byte over a pipe, to take turns with a child process.
bool signal_peer(int fd) {
  char c = 1;
  return write(fd, &c, 1) == 1;
}
bool wait_peer(int fd) {
  char c;
  return read(fd, &c, 1) == 1;
}

// The child's side: maps `path` shared, writes `from_map` at kFromMapAt and
// waits; then expects `from_write` at kFromWriteAt through the map, writes the
// tail through the map, msyncs and unmaps. Returns its exit code.
constexpr size_t kFromMapAt = 4096 + 100;
constexpr size_t kFromWriteAt = 3 * 4096 + 5;
constexpr size_t kTailAt = kMapBytes - 10;
const std::string kFromMap = "written through the map";
const std::string kFromWrite = "written with pwrite";
const std::string kTail = "tail bytes";

int map_side(const std::string& path, int to_parent, int from_parent) {
  int fd = open(path.c_str(), O_RDWR);
  if (fd < 0) return 10;
  auto* map =
      static_cast<char*>(mmap(nullptr, kMapBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  close(fd);  // the map keeps the file open
  if (map == MAP_FAILED) return 11;
  std::memcpy(map + kFromMapAt, kFromMap.data(), kFromMap.size());
  if (!signal_peer(to_parent) || !wait_peer(from_parent)) return 12;
  if (std::memcmp(map + kFromWriteAt, kFromWrite.data(), kFromWrite.size()) != 0) return 13;
  std::memcpy(map + kTailAt, kTail.data(), kTail.size());
  if (msync(map, kMapBytes, MS_SYNC) != 0) return 14;
  return munmap(map, kMapBytes) == 0 ? 0 : 15;
}

TEST_F(MountMmap, MapWritesAndReadWriteCallsSeeEachOtherAcrossProcesses) {
  ASSERT_TRUE(fs_.start(64 * kMiB));
  const std::string f = fs_.path("f");
  std::string data = pattern(7, 0, kMapBytes);
  ASSERT_TRUE(write_file(f, data));
  if (shared_maps_refused()) {
    int fd = open(f.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(mmap(nullptr, kMapBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
    EXPECT_EQ(errno, ENODEV);
    close(fd);
    unmount_and_check();
    GTEST_SKIP() << "the kernel offers no FUSE_DIRECT_IO_ALLOW_MMAP";
  }
  int to_parent[2], from_parent[2];
  ASSERT_EQ(pipe(to_parent), 0);
  ASSERT_EQ(pipe(from_parent), 0);
  pid_t child = fork();
  if (child == 0) _exit(map_side(f, to_parent[1], from_parent[0]));
  // Only the child keeps its ends: a child that fails ends our waits.
  close(to_parent[1]);
  close(from_parent[0]);
  ASSERT_GT(child, 0);
  // The child's store, not yet msync'ed, is what read(2) returns; and the
  // child sees our write through its map.
  bool stored = wait_peer(to_parent[0]);
  EXPECT_TRUE(stored) << "the child could not write through its map";
  if (stored) {
    int fd = open(f.c_str(), O_RDWR);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    std::string got(kFromMap.size(), '\0');
    EXPECT_EQ(pread(fd, got.data(), got.size(), kFromMapAt), ssize_t(got.size()));
    EXPECT_EQ(got, kFromMap);
    EXPECT_EQ(pwrite(fd, kFromWrite.data(), kFromWrite.size(), kFromWriteAt),
              ssize_t(kFromWrite.size()));
    close(fd);
    EXPECT_TRUE(signal_peer(from_parent[1]));
  }
  close(to_parent[0]);
  close(from_parent[1]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  data.replace(kFromMapAt, kFromMap.size(), kFromMap);
  data.replace(kFromWriteAt, kFromWrite.size(), kFromWrite);
  data.replace(kTailAt, kTail.size(), kTail);
  EXPECT_EQ(read_file(f), data);
  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(read_file(f), data);
  unmount_and_check();
}

TEST_F(MountMmap, MapGrownByFtruncateKeepsItsDataAfterMunmapWithoutMsync) {
  ASSERT_TRUE(fs_.start(64 * kMiB));
  if (shared_maps_refused()) GTEST_SKIP() << "the kernel offers no FUSE_DIRECT_IO_ALLOW_MMAP";
  const std::string f = fs_.path("grown");
  const std::string data = pattern(8, 0, 3 * 4096 + 123);
  int fd = open(f.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, off_t(data.size())), 0);
  void* map = mmap(nullptr, data.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int map_error = errno;
  close(fd);
  ASSERT_NE(map, MAP_FAILED) << std::strerror(map_error);
  std::memcpy(map, data.data(), data.size());
  ASSERT_EQ(munmap(map, data.size()), 0);  // munmap writes the dirty pages back
  EXPECT_EQ(read_file(f), data);
  ASSERT_TRUE(fs_.remount());
  EXPECT_EQ(read_file(f), data);
  unmount_and_check();
}

// Two processes share a WAL database: one commits rows in small transactions
// while the other reads, checking that every snapshot is whole; then a
// checkpoint and an integrity check, and again after a remount.
const char* const kSqliteScript = R"(
import os, sqlite3, sys
db, mode = sys.argv[1], sys.argv[2]
ROWS, BATCH = 2000, 10

def squares(n):
    return (n - 1) * n * (2 * n - 1) // 6

def check(con):
    n, s = con.execute('SELECT count(*), coalesce(sum(sq), 0) FROM t').fetchone()
    if s != squares(n):
        sys.exit('snapshot of %d rows is not whole' % n)
    return n

def reader():
    con = sqlite3.connect(db, timeout=60)
    last = 0
    while last < ROWS:
        n = check(con)
        if n < last:
            sys.exit('rows went back from %d to %d' % (last, n))
        last = n

def writer():
    con = sqlite3.connect(db, timeout=60)
    for i in range(0, ROWS, BATCH):
        with con:
            con.executemany('INSERT INTO t VALUES (?, ?, ?)',
                            [(j, 'x' * (j % 300), j * j) for j in range(i, i + BATCH)])
    con.close()

def final_check():
    con = sqlite3.connect(db)
    if con.execute('PRAGMA journal_mode').fetchone()[0] != 'wal':
        sys.exit('not in WAL mode')
    busy = con.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()[0]
    if busy != 0:
        sys.exit('checkpoint was blocked')
    result = con.execute('PRAGMA integrity_check').fetchone()[0]
    if result != 'ok':
        sys.exit('integrity_check: ' + result)
    if check(con) != ROWS:
        sys.exit('rows missing')

if mode == 'run':
    con = sqlite3.connect(db)
    if con.execute('PRAGMA journal_mode=WAL').fetchone()[0] != 'wal':
        sys.exit('cannot switch to WAL mode')
    con.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, pad TEXT, sq INTEGER)')
    con.commit()
    con.close()
    pid = os.fork()
    if pid == 0:
        try:
            reader()
        except BaseException as e:
            print('reader:', e, file=sys.stderr)
            os._exit(1)
        os._exit(0)
    writer()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        sys.exit('the reader failed')
final_check()
print('ok')
)";

TEST_F(MountMmap, SqliteInWalModeWithAWriterAndAReaderProcess) {
  ASSERT_TRUE(fs_.start(128 * kMiB));
  if (shared_maps_refused()) GTEST_SKIP() << "the kernel offers no FUSE_DIRECT_IO_ALLOW_MMAP";
  const std::string db = fs_.path("wal.db");
  CommandResult r = run_command({"python3", "-c", kSqliteScript, db, "run"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << fs_.log_tail();
  EXPECT_EQ(r.out, "ok\n");
  ASSERT_TRUE(fs_.remount());
  r = run_command({"python3", "-c", kSqliteScript, db, "check"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  unmount_and_check();
}

}  // namespace
}  // namespace pagefs::test
