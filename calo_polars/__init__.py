"""calo-polars: audit wallet balances reconstructed from balance-sync Lambda logs."""

import os

__version__ = "0.1.0"

# Polars' allocator (jemalloc) keeps freed pages for 10 s by default; an audit frees a batch's
# working set (hundreds of MB) every second, so the process held GBs it no longer used.
# Returning them after 250 ms kept the peak of a 1 GB audit ~300 MB lower at no measured cost.
# Read when the Polars runtime loads: it applies when calo_polars is imported first (the CLI).
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:250,muzzy_decay_ms:0")
