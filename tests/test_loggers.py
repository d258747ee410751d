"""pixelwise.loggers.WandbLogger: Lightning's, without the deprecated anonymous=None init key."""

from pixelwise.loggers import WandbLogger


def test_anonymous_none_is_not_passed_to_wandb(tmp_path):
    logger = WandbLogger(project="p", save_dir=str(tmp_path), offline=True)
    assert "anonymous" not in logger._wandb_init
    assert logger._wandb_init["resume"] == "allow"


def test_explicit_anonymous_is_kept(tmp_path):
    logger = WandbLogger(project="p", save_dir=str(tmp_path), offline=True, anonymous=True)
    assert logger._wandb_init["anonymous"] == "allow"
