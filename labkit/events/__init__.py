"""Events: from the kernel's ring buffer to a pandas DataFrame.

    schemas.py  every record layout (numpy dtype) and its DataFrame conversion, once
    ringbuf.py  the ring buffer read through its own mmap, records decoded in batches
    window.py   a fixed-size window that keeps the newest records
    stream.py   EventStream: a polling thread, the window, listeners, to_dataframe()
"""

from labkit.events.stream import EventStream

__all__ = ["EventStream"]
