"""The data writers' command lines (console scripts pixelwise-sample-images, pixelwise-hpatches-offline)."""

from __future__ import annotations

import cv2

from pixelwise.data import hpatches_offline, sample_images


def test_sample_images_main_writes_the_crops_it_is_asked_for(tmp_path, capsys):
    written = sample_images.main(
        [str(tmp_path), "--split", "camera,coins", "--per-image", "2", "--size", "24", "32"]
    )
    assert sorted(p.name for p in written) == [
        "camera_000.png",
        "camera_001.png",
        "coins_000.png",
        "coins_001.png",
    ]
    assert cv2.imread(str(written[0]), cv2.IMREAD_GRAYSCALE).shape == (24, 32)
    assert "wrote 4 crops" in capsys.readouterr().out


def test_hpatches_offline_main_writes_the_sequences(tmp_path, capsys):
    out = hpatches_offline.main(
        [
            str(tmp_path),
            "--photos",
            "camera",
            "--illumination",
            "1",
            "--viewpoint",
            "1",
            "--size",
            "48",
            "64",
        ]
    )
    sequences = sorted(p.name for p in out.iterdir())
    assert len(sequences) == 2 and sequences[0].startswith("i_") and sequences[1].startswith("v_")
    assert sorted(p.name for p in (out / sequences[1]).iterdir())[:2] == ["1.ppm", "2.ppm"]
    assert "wrote 2 sequences" in capsys.readouterr().out
