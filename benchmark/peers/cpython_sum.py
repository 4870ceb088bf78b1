"""The CPython side of "64 MiB of Float64 to a child": attach by name, sum, print."""
import sys
from multiprocessing import resource_tracker, shared_memory

shm = shared_memory.SharedMemory(name=sys.argv[1])
resource_tracker.unregister(shm._name, "shared_memory")
view = shm.buf.cast("d")
print(sum(view))
view.release()
shm.close()
