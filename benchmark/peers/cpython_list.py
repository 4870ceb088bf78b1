"""CPython's ShareableList in the same loop shape as shmkit's: get/set of an int and of a short
str, and list() of a 600-item mixed list. Usage: cpython_list.py ROUNDS ITERATIONS -> JSON of
median ns per operation."""
import json
import statistics
import sys
import time
from multiprocessing import shared_memory

rounds, iters = int(sys.argv[1]), int(sys.argv[2])


def mixed(n):
    kinds = [lambda i: i, lambda i: i + 0.5, lambda i: i % 2 == 0, lambda i: None, lambda i: f"item{i}", lambda i: b"raw%d" % i]
    return [kinds[i % len(kinds)](i) for i in range(n)]


def median_round(op, iterations):
    per_op = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(iterations):
            op()
        per_op.append((time.perf_counter_ns() - t0) / iterations)
    return statistics.median(per_op)


sl = shared_memory.ShareableList([12345, "short"])
big = shared_memory.ShareableList(mixed(600))
try:
    result = {
        "getInt": median_round(lambda: sl[0], iters),
        "getStr": median_round(lambda: sl[1], iters),
        "setInt": median_round(lambda: sl.__setitem__(0, 54321), iters),
        "setStr": median_round(lambda: sl.__setitem__(1, "other"), iters),
        "toArray600": median_round(lambda: list(big), max(1, iters // 100)),
        "forOf600": median_round(lambda: [item for item in big], max(1, iters // 100)),
        "count600": median_round(lambda: big.count(599), max(1, iters // 100)),
        "index600": median_round(lambda: big.index("item598"), max(1, iters // 100)),
        "version": sys.version.split()[0],
    }
finally:
    for s in (sl, big):
        s.shm.close()
        s.shm.unlink()
print(json.dumps(result))
