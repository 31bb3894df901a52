// metabench: one metadata phase over N empty files, for scripts/bench.sh.
//
//   metabench create|stat|readdir|unlink DIR NFILES NDIRS
//
// NDIRS == 1: the files are DIR/f000000 ... in DIR itself.
// NDIRS  > 1: the files are spread round-robin over DIR/d000 ... DIR/d<NDIRS-1>
//             (create makes those directories, unlink removes them).
// Phases:  create  open(O_CREAT|O_EXCL|O_WRONLY) + close of every file
//          stat    stat() of every file by path
//          readdir opendir/readdir/closedir of every directory, counting the files
//          unlink  unlink() of every file (then rmdir of the subdirectories)
// With METABENCH_DROP_EVERY=K (needs root) the kernel's dentry and inode caches are
// dropped (echo 2 > /proc/sys/vm/drop_caches) after every K files, with the clock
// stopped: a FUSE daemon such as passthrough_ll keeps a descriptor open for every inode
// the kernel holds, and 20,000 of them exceed a 20,000 descriptor limit.
// Prints "<seconds> <files>" on stdout: the wall time of the phase (CLOCK_MONOTONIC)
// and the number of files it handled. Exits non-zero on the first error.
//
// Built by bench.sh with: cc -O2 -Wall -Wextra -o metabench metabench.c
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *dir;
static long nfiles, ndirs;

static void die(const char *what, const char *path) {
  fprintf(stderr, "metabench: %s %s: %s\n", what, path, strerror(errno));
  exit(1);
}

static void file_path(char *buf, size_t len, long i) {
  if (ndirs == 1)
    snprintf(buf, len, "%s/f%06ld", dir, i);
  else
    snprintf(buf, len, "%s/d%03ld/f%06ld", dir, i % ndirs, i);
}

static void dir_path(char *buf, size_t len, long d) {
  if (ndirs == 1)
    snprintf(buf, len, "%s", dir);
  else
    snprintf(buf, len, "%s/d%03ld", dir, d);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long drop_every;
static double paused;  // seconds spent dropping caches, left out of the result

static void maybe_drop(long done) {
  if (drop_every <= 0 || done == 0 || done % drop_every != 0) return;
  double t0 = now();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, "2\n", 2) != 2) die("drop caches", "/proc/sys/vm/drop_caches");
  close(fd);
  paused += now() - t0;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: metabench create|stat|readdir|unlink DIR NFILES NDIRS\n");
    return 2;
  }
  const char *phase = argv[1];
  dir = argv[2];
  nfiles = strtol(argv[3], NULL, 10);
  ndirs = strtol(argv[4], NULL, 10);
  if (nfiles <= 0 || ndirs <= 0 || ndirs > 1000) {
    fprintf(stderr, "metabench: bad NFILES or NDIRS\n");
    return 2;
  }
  const char *env = getenv("METABENCH_DROP_EVERY");
  drop_every = env ? strtol(env, NULL, 10) : 0;
  char path[4096];
  long done = 0;
  double start = now();

  if (strcmp(phase, "create") == 0) {
    if (ndirs > 1)
      for (long d = 0; d < ndirs; d++) {
        dir_path(path, sizeof path, d);
        if (mkdir(path, 0755) != 0) die("mkdir", path);
      }
    for (long i = 0; i < nfiles; i++) {
      file_path(path, sizeof path, i);
      int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) die("create", path);
      if (close(fd) != 0) die("close", path);
      done++;
      maybe_drop(done);
    }
  } else if (strcmp(phase, "stat") == 0) {
    struct stat st;
    for (long i = 0; i < nfiles; i++) {
      file_path(path, sizeof path, i);
      if (stat(path, &st) != 0) die("stat", path);
      done++;
      maybe_drop(done);
    }
  } else if (strcmp(phase, "readdir") == 0) {
    for (long d = 0; d < ndirs; d++) {
      dir_path(path, sizeof path, d);
      DIR *dp = opendir(path);
      if (!dp) die("opendir", path);
      struct dirent *de;
      errno = 0;
      while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] == 'f') done++;
        errno = 0;
      }
      if (errno != 0) die("readdir", path);
      closedir(dp);
    }
    if (done != nfiles) {
      fprintf(stderr, "metabench: readdir found %ld files, expected %ld\n", done, nfiles);
      return 1;
    }
  } else if (strcmp(phase, "unlink") == 0) {
    for (long i = 0; i < nfiles; i++) {
      file_path(path, sizeof path, i);
      if (unlink(path) != 0) die("unlink", path);
      done++;
      maybe_drop(done);
    }
    if (ndirs > 1)
      for (long d = 0; d < ndirs; d++) {
        dir_path(path, sizeof path, d);
        if (rmdir(path) != 0) die("rmdir", path);
      }
  } else {
    fprintf(stderr, "metabench: unknown phase %s\n", phase);
    return 2;
  }
  printf("%.6f %ld\n", now() - start - paused, done);
  return 0;
}
