/* The floor for shmkit's create and open: the same syscalls in a plain C loop.
 * Usage: shm_loop ROUNDS ITERATIONS SIZE
 * Prints one JSON object: median nanoseconds per operation for each case. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void fail(const char *what) {
  perror(what);
  exit(1);
}

static void create_close_unlink(const char *name, size_t size, int reserve) {
  int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) fail("shm_open");
  if (ftruncate(fd, size) != 0) fail("ftruncate");
  if (reserve && fallocate(fd, 0, 0, size) != 0) fail("fallocate");
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) fail("mmap");
  close(fd);
  munmap(p, size);
  if (shm_unlink(name) != 0) fail("shm_unlink");
}

static void open_close(const char *name) {
  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0) fail("shm_open");
  struct stat st;
  if (fstat(fd, &st) != 0) fail("fstat");
  void *p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) fail("mmap");
  close(fd);
  munmap(p, st.st_size);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef void (*op_fn)(const char *, size_t, int);

/* Every create uses a fresh name, as shmkit and CPython do (a random one each time). */
static double median_round(int rounds, int iters, const char *name, size_t size, int which) {
  double *per_op = malloc(sizeof(double) * rounds);
  char fresh[96];
  unsigned long counter = 0;
  for (int r = 0; r < rounds; r++) {
    double t0 = now_ns();
    for (int i = 0; i < iters; i++) {
      if (which < 2) snprintf(fresh, sizeof fresh, "%s_%016lx", name, counter++ * 0x9E3779B97F4A7C15UL);
      if (which == 0) create_close_unlink(fresh, size, 1);
      else if (which == 1) create_close_unlink(fresh, size, 0);
      else open_close(name);
    }
    per_op[r] = (now_ns() - t0) / iters;
  }
  qsort(per_op, rounds, sizeof(double), cmp);
  double m = per_op[rounds / 2];
  free(per_op);
  return m;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s ROUNDS ITERATIONS SIZE\n", argv[0]);
    return 2;
  }
  int rounds = atoi(argv[1]), iters = atoi(argv[2]);
  size_t size = strtoull(argv[3], NULL, 10);
  char name[64];
  snprintf(name, sizeof name, "/shmkit_bench_c_%d", (int)getpid());
  double create = median_round(rounds, iters, name, size, 0);
  double create_sparse = median_round(rounds, iters, name, size, 1);
  int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0 || ftruncate(fd, size) != 0) fail("setup");
  close(fd);
  double open = median_round(rounds, iters, name, size, 2);
  shm_unlink(name);
  printf("{\"create\": %.1f, \"createSparse\": %.1f, \"open\": %.1f}\n", create, create_sparse, open);
  return 0;
}
