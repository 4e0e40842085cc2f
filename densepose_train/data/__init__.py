"""Training data: COCO-DensePose reading and validation, targets, flips with chart symmetry,
and weighted mixing of several `--data` sources.

Entry points: `sources.parse_data_arg`, `sources.build_training_set` (dataset + sampler),
`sources.load_source` (one source, also for evaluation with train=False), `dataset.collate`.
"""
