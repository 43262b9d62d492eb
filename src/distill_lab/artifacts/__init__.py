"""What crosses a stage boundary, as typed and versioned records on disk: dataset rows, the dataset
manifest, eval metrics and the per-stage manifest. Stages meet only through these."""
