"""The generation engine behind ``distill-lab generate``: limits, retries, shards, cost, filters, progress."""
