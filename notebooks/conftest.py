"""nbval runs every notebook of this folder as a test (``make test``), on the test preset.

Under pytest-xdist (``make test``: ``--dist loadfile``) each notebook runs in order on one
worker, and two notebooks may run at once: they share the ``data/test`` caches, which is
safe because every stage is built under a lock on its output (``utils.stage_lock``): the
second notebook that needs, say, the split-1 streams waits and reuses them. Each worker keeps
to cores / workers threads, and the notebook kernels it starts inherit that limit
(``twostream.core.threads``).
"""

from __future__ import annotations

import os

from twostream.core import threads

threads.configure_process(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
