"""log_media: every W&B logger gets the media at the trainer's global step; other loggers none."""

from types import SimpleNamespace
from unittest.mock import MagicMock

from lightning.pytorch.loggers import CSVLogger, WandbLogger

from pixelwise.callbacks.wandb_media import log_media


def test_log_media_goes_to_each_wandb_logger_at_the_global_step():
    first, second = MagicMock(spec=WandbLogger), MagicMock(spec=WandbLogger)
    other = MagicMock(spec=CSVLogger)
    trainer = SimpleNamespace(loggers=[first, other, second], global_step=7)
    log_media(trainer, {"val/pictures": ["a", "b"]})
    for logger in (first, second):
        logger.log_metrics.assert_called_once_with({"val/pictures": ["a", "b"]}, step=7)
    other.log_metrics.assert_not_called()


def test_log_media_without_wandb_loggers_does_nothing():
    log_media(SimpleNamespace(loggers=[], global_step=0), {"val/pictures": []})
