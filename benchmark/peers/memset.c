/* First-touch write bandwidth floor: map the segment NAME (SIZE bytes) and memset it.
 * Usage: memset NAME SIZE -> prints GB/s of the memset alone. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  size_t size = strtoull(argv[2], NULL, 10);
  char name[300];
  snprintf(name, sizeof name, "/%s", argv[1]);
  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0) { perror("shm_open"); return 1; }
  unsigned char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) { perror("mmap"); return 1; }
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  memset(p, 7, size);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
  printf("%.3f\n", size / s / 1e9);
  return 0;
}
