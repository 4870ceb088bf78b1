"""CPython's multiprocessing.shared_memory in the same loop shape as the C floor.
Usage: cpython_shm.py ROUNDS ITERATIONS SIZE -> JSON of median ns per operation."""
import json
import statistics
import sys
import time
from multiprocessing import resource_tracker, shared_memory

rounds, iters, size = (int(a) for a in sys.argv[1:4])


def create_close_unlink():
    shm = shared_memory.SharedMemory(create=True, size=size)
    shm.close()
    shm.unlink()


name = f"shmkit_bench_py_{__import__('os').getpid()}"
seed = shared_memory.SharedMemory(name=name, create=True, size=size)


def open_close():
    shm = shared_memory.SharedMemory(name=name)
    shm.close()


def median_round(op):
    per_op = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(iters):
            op()
        per_op.append((time.perf_counter_ns() - t0) / iters)
    return statistics.median(per_op)


result = {"create": median_round(create_close_unlink), "open": median_round(open_close)}
seed.close()
seed.unlink()
print(json.dumps({**result, "version": sys.version.split()[0]}))
