"""Fine-tuning DensePose R-CNN on DenseSynth data (training package; see its issue).

Datasets written by `farm/render.py` are COCO-DensePose files (`DIR/annotations.json` with
images under `DIR/images`) that detectron2's DensePose loader reads as they are.
"""
