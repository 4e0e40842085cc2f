"""Fine-tuning and evaluating DensePose R-CNN on DenseSynth renders (and DensePose-COCO).

`python -m densepose_train train|evaluate|predict`. The package imports neither `bpy` nor
the renderer: a training machine needs only the dataset folders (with their `charts.npz`).
"""
