"""Events: from the kernel's ring buffer (or a program's own perf or ring buffer) to a pandas DataFrame.

Every record layout is defined once, as a numpy dtype with its DataFrame
conversion; the ring buffer is read through its own mmap and decoded in
batches into a fixed-size window that an EventStream keeps filled from a
polling thread. docs/ARCHITECTURE.md maps the files.
"""

from labkit.events.stream import EventStream

__all__ = ["EventStream"]
