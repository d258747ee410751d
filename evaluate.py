"""Evaluate a checkpoint: `python evaluate.py task=segmentation ckpt_path=PATH`."""

from pixelwise.cli import evaluate_main

if __name__ == "__main__":
    evaluate_main()
