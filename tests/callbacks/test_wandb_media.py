"""log_media sends to the W&B loggers only, at the global step; first_val_batch_media_due says when to draw."""

from types import SimpleNamespace
from unittest.mock import MagicMock

from lightning.pytorch.loggers import CSVLogger, WandbLogger

from pixelwise.callbacks.wandb_media import first_val_batch_media_due, log_media


def test_log_media_goes_to_each_wandb_logger_at_the_global_step():
    first, second = MagicMock(spec=WandbLogger), MagicMock(spec=WandbLogger)
    other = MagicMock(spec=CSVLogger)
    trainer = SimpleNamespace(loggers=[first, other, second], global_step=7)
    log_media(trainer, {"val/pictures": ["a", "b"]})
    for logger in (first, second):
        logger.log_metrics.assert_called_once_with({"val/pictures": ["a", "b"]}, step=7)
    other.log_metrics.assert_not_called()


def test_log_media_without_wandb_loggers_logs_nothing():
    csv = MagicMock(spec=CSVLogger)
    log_media(SimpleNamespace(loggers=[csv], global_step=0), {"val/pictures": []})
    assert csv.method_calls == []


def test_first_val_batch_media_due_only_for_the_first_val_batch_of_a_due_epoch_on_rank_0():
    wandb = MagicMock(spec=WandbLogger)

    def trainer(epoch=4, rank0=True, loggers=(wandb,)):
        return SimpleNamespace(current_epoch=epoch, is_global_zero=rank0, loggers=list(loggers))

    assert first_val_batch_media_due(trainer(), "val", 0, every_n_epochs=2)
    assert not first_val_batch_media_due(trainer(epoch=3), "val", 0, every_n_epochs=2)
    assert not first_val_batch_media_due(trainer(), "val", 1, every_n_epochs=2)
    assert not first_val_batch_media_due(trainer(), "test", 0, every_n_epochs=2)
    assert not first_val_batch_media_due(trainer(rank0=False), "val", 0, every_n_epochs=2)
    assert not first_val_batch_media_due(trainer(loggers=()), "val", 0, every_n_epochs=2)
