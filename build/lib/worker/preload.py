"""What the forkserver imports before it forks workers.

``gc.freeze()`` moves every object imported so far (all of ccxt) out of the collector's
reach. Without it, a worker's first full collection writes to the header of each inherited
object, and the kernel copies every shared page it touches: about 34 MB per worker.
"""

import gc

import worker.process  # noqa: F401  (imported for its side effect: loading ccxt and the worker)

gc.freeze()
