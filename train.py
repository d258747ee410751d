"""Train a pixelwise task: `python train.py task=edges model=hed trainer.devices=4`."""

from pixelwise.cli import train_main

if __name__ == "__main__":
    train_main()
