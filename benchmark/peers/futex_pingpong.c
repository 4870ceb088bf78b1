// The C floor for cross-process wake-up latency: two processes share one anonymous
// MAP_SHARED page and ping-pong on a shared (non-private) futex. Before each FUTEX_WAKE the
// mover stamps CLOCK_MONOTONIC into the page; the woken side subtracts it: one-way latency.
// Usage: futex_pingpong ROUNDS  -> {"p50Ns":..,"p99Ns":..,"samples":..}
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct page { _Atomic uint32_t turn; uint32_t pad; _Atomic int64_t stamp; };

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void play(struct page *p, int parity, int rounds, int64_t *samples, int *count) {
  for (int r = 0; r < rounds; r++) {
    uint32_t seen;
    int slept = 0;
    while (((seen = p->turn) & 1) != (uint32_t)parity) {
      syscall(SYS_futex, &p->turn, FUTEX_WAIT, seen, NULL, NULL, 0);
      slept = 1;
    }
    if (slept && r > 0) samples[(*count)++] = now_ns() - p->stamp;
    p->stamp = now_ns();
    p->turn = seen + 1;
    syscall(SYS_futex, &p->turn, FUTEX_WAKE, 1, NULL, NULL, 0);
  }
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 10000;
  struct page *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  int64_t *shared = mmap(NULL, sizeof(int64_t) * (size_t)rounds + 64, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED || shared == MAP_FAILED) return 1;
  pid_t child = fork();
  int64_t *samples = malloc(sizeof(int64_t) * (size_t)rounds);
  int count = 0;
  if (child == 0) {
    play(p, 1, rounds, samples, &count);
    shared[0] = count;
    for (int i = 0; i < count; i++) shared[1 + i] = samples[i];
    _exit(0);
  }
  play(p, 0, rounds, samples, &count);
  waitpid(child, NULL, 0);
  int theirs = (int)shared[0];
  samples = realloc(samples, sizeof(int64_t) * (size_t)(count + theirs));
  for (int i = 0; i < theirs; i++) samples[count + i] = shared[1 + i];
  count += theirs;
  qsort(samples, (size_t)count, sizeof(int64_t), cmp);
  printf("{\"p50Ns\":%lld,\"p99Ns\":%lld,\"samples\":%d}\n", (long long)samples[count / 2],
         (long long)samples[(int)(count * 0.99)], count);
  return 0;
}
