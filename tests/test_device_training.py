"""The stream trainer on the device input pipeline (``input_pipeline: device``), on the CPU:
the same numbers as the host pipeline bit for bit, per-epoch validation on the centre view
only, evaluation items that are JPEG bytes (small, uint8), and a corrupt frame refused
naming its file, whether the host check or the decoder finds it."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from twostream.core.config import StudyConfig
from twostream.data import device_pipeline as dp
from twostream.data.datasets import TrainSteps, VideoSteps
from twostream.data.layout import CorruptFrameError, check_jpeg_bytes, video_folder
from twostream.data.splits import split_records
from twostream.data.transforms import eval_transform, train_transform
from twostream.train import evaluate as evaluate_mod
from twostream.train import stream_trainer as streams

TIMINGS = ["seconds", "data_s", "compute_s", "samples_per_s"]


def write_dataset(root: Path, *, classes=3, groups=4, frames=9, h=20, w=24, seed=0):
    """UCF101-format split files and random-texture rawframes (group ``groups`` is the test set)."""
    rng = np.random.default_rng(seed)
    d = root / "synthetic"
    (d / "splits").mkdir(parents=True)
    (d / "splits" / "classInd.txt").write_text("".join(f"{c + 1} C{c}\r\n" for c in range(classes)))
    train, test = [], []
    for c in range(classes):
        for g in range(1, groups + 1):
            rel = f"C{c}/v_C{c}_g{g:02d}_c01.avi"
            (test if g == groups else train).append((rel, c))
            folder = d / "rawframes" / f"C{c}" / f"v_C{c}_g{g:02d}_c01"
            folder.mkdir(parents=True)
            for k in range(1, frames + 1):
                img = rng.integers(0, 256, (h, w, 3), np.uint8)
                img[:, :, c] //= 2  # a little class signal
                cv2.imwrite(str(folder / f"img_{k:05d}.jpg"), img)
                if k < frames:
                    for comp in "xy":
                        cv2.imwrite(str(folder / f"flow_{comp}_{k:05d}.jpg"),
                                    rng.integers(0, 256, (h, w), np.uint8))  # fmt: skip
    (d / "splits" / "trainlist01.txt").write_text("".join(f"{p} {c + 1}\r\n" for p, c in train))
    (d / "splits" / "testlist01.txt").write_text("".join(f"{p}\r\n" for p, _ in test))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("devdata")
    write_dataset(r)
    return r


def config(root: Path, **kw) -> StudyConfig:
    # crop 20 > input 16 (antialiased downscale), scale down to 3/4 (windows larger than the
    # 20-pixel frames: padding), flips and jitter on both streams: every path of the augmentation
    base = dict(data_root=str(root), device="cpu", val_fraction=0.34, seed=5, flow_length=2,
                num_segments=3, crop_size=20, input_size=16, hflip=True, color_jitter=0.3,
                jitter_stream="both", stream_epochs=2, stream_batch_size=4, samples_per_video=2,
                lr_spatial=0.02, lr_temporal=0.02, plateau_patience=0)  # fmt: skip
    return StudyConfig(**{**base, **kw})


def train(root: Path, run: Path, stream: str, **kw):
    torch.set_num_threads(1)
    return streams.train_stream(config(root, **kw), stream=stream, split=1, run=run)


@pytest.mark.parametrize("stream", ["spatial", "temporal"])
def test_device_pipeline_trains_like_the_host_bit_for_bit(root, tmp_path, stream):
    host = train(root, tmp_path / "host", stream, input_pipeline="host")
    dev = train(root, tmp_path / "dev", stream, input_pipeline="device")
    cols = [c for c in host["history"].columns if c not in TIMINGS]
    assert len(host["history"]) == 2
    pd.testing.assert_frame_equal(host["history"][cols], dev["history"][cols], check_exact=True)
    for part in ("val", "test"):
        assert np.array_equal(host[part]["scores"], dev[part]["scores"]), part
        assert np.array_equal(host[part]["labels"], dev[part]["labels"])
    w_host = torch.load(tmp_path / "host" / "checkpoint_last.pt", weights_only=False)["model"]
    w_dev = torch.load(tmp_path / "dev" / "checkpoint_last.pt", weights_only=False)["model"]
    assert all(torch.equal(w_host[k], w_dev[k]) for k in w_host)


@pytest.fixture(scope="module")
def dev_ten_crop(root, tmp_path_factory):
    """A device-pipeline temporal run with the ten-crop final evaluation, and the
    (crops, loader batch) of every evaluate_stream call it made."""
    seen = []
    real = streams.evaluate_stream

    def spy(model, loader, **kw):
        views = kw.get("views")
        seen.append((views.crops if views else None, loader.batch_size))
        return real(model, loader, **kw)

    path = tmp_path_factory.mktemp("dev10") / "dev"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(streams, "evaluate_stream", spy)
        dev = train(root, path, "temporal", input_pipeline="device", test_crops=10,
                    stream_epochs=1)  # fmt: skip
    return path, dev, seen


def test_per_epoch_validation_scores_one_view_and_the_final_ten(root, tmp_path, dev_ten_crop):
    _, dev, seen = dev_ten_crop
    # per epoch: val on the centre view, batches of 2 x 4 views // 3 steps = 2 videos;
    # final val + test: 10 views, 1 video (30 views) per batch, scored 8 views at a time
    assert seen == [(1, 2), (10, 1), (10, 1)]
    host = train(root, tmp_path / "host", "temporal", input_pipeline="host", test_crops=10,
                 stream_epochs=1)  # fmt: skip
    # one epoch, so the same weights; the final 10-crop scores agree (bit for bit on the
    # CPUs tried; the forward passes group the views differently, 60 host views vs 8 device
    # views per batch, which a BLAS may sum in another order)
    for part in ("val", "test"):
        np.testing.assert_allclose(host[part]["scores"], dev[part]["scores"], rtol=0, atol=1e-6)
    assert host["top1"] == dev["top1"] and host["val_top1"] == dev["val_top1"]
    # the per-epoch validation differs: the host scored 10 views per step, the device one
    assert dev["history"]["val_n"].tolist() == host["history"]["val_n"].tolist()
    assert dev["history"]["val_loss"].tolist() != host["history"]["val_loss"].tolist()


def test_evaluate_uses_the_runs_device_pipeline_and_gives_its_scores(
    dev_ten_crop, tmp_path, monkeypatch
):
    """`twostream evaluate` of a device-pipeline run: JPEG bytes out of the loader, the ten
    views made on the device (never the host path's float32 ten-crop stacks), and the
    run's own final scores again."""
    run, dev, _ = dev_ten_crop
    seen = []
    real = evaluate_mod.evaluate_stream

    def spy(model, loader, **kw):
        views = kw.get("views")
        seen.append(views.crops if views else None)
        return real(model, loader, **kw)

    monkeypatch.setattr(evaluate_mod, "evaluate_stream", spy)
    res = evaluate_mod.evaluate_run(run, device="cpu", out=tmp_path / "again")
    assert seen == [10, 10]  # val and test, ten views made on the device
    again = np.load(tmp_path / "again" / "scores_test.npz")["scores"]
    np.testing.assert_allclose(again, dev["test"]["scores"], rtol=0, atol=1e-6)
    assert res["run_status"] == "finished"


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_eval_items_are_jpeg_bytes_and_small(root, modality):
    cfg = config(root, test_crops=10)
    recs = split_records(cfg, 1)["test"]
    common = dict(modality=modality, num_segments=cfg.num_segments, flow_length=cfg.flow_length)
    enc = VideoSteps(recs, cfg.rawframes_dir, **common, encoded=True)
    ten = VideoSteps(recs, cfg.rawframes_dir, **common,
                     transform=eval_transform(cfg, modality, crops=10))  # fmt: skip
    x, params, label = enc[0]
    ref, ref_label = ten[0]
    assert isinstance(x, dp.EncodedFrames) and x.data.dtype == torch.uint8 and params is None
    assert label == ref_label and x.planes.shape == (3, 3 if modality == "rgb" else 4)
    assert len(set(x.paths)) == len(x.paths)  # each file read once
    # 10 float32 views of 3 steps: 30 x C x 16 x 16 x 4 bytes (92 kB rgb, 123 kB flow); the
    # item: its JPEGs (4.2 kB rgb, 11 kB flow here: 20 x 24 noise, the worst case for JPEG;
    # at UCF101's scale 9 MB instead of 2.2 GB a video, benchmarks/input_pipeline.py)
    assert ref.numel() * ref.element_size() > 10 * x.nbytes, (x.nbytes, ref.nbytes)
    # decoded and cropped on the "device", the same 30 views, in the same order
    batch = dp.collate([enc[0], enc[1]])
    views = dp.eval_from_config(cfg, modality, crops=10)(batch.stacks(device="cpu"))
    assert torch.equal(views[:30], ref) and torch.equal(views[30:], ten[1][0])


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_train_items_draw_the_host_parameters(root, modality):
    cfg = config(root)
    recs = split_records(cfg, 1)["train"]
    common = dict(modality=modality, flow_length=cfg.flow_length, samples_per_video=2, seed=5)
    host = TrainSteps(recs, cfg.rawframes_dir, **common, transform=train_transform(cfg, modality))
    aug = dp.augment_from_config(cfg, modality, method="loop")
    dev = TrainSteps(recs, cfg.rawframes_dir, **common, device_augment=aug)
    kept = 0
    for epoch in range(3):  # windows resized up, down, padded, and kept at their size
        for ds in (host, dev):
            ds.set_epoch(epoch)
        items = [dev[i] for i in range(len(dev))]
        batch = dp.collate(items)
        assert batch.params.shape == (len(dev), 6) and batch.x.data.dtype == torch.uint8
        out = aug(batch.stacks(device="cpu"), batch.params)
        ref = torch.stack([host[i][0] for i in range(len(host))])
        assert torch.equal(out, ref)
        assert batch.labels.tolist() == [host[i][1] for i in range(len(host))]
        kept += int((batch.params[:, 2] == cfg.input_size).sum())
    assert kept > 0  # a strided window (once summed in another order by the jitter's mean)


def _corrupt_copy(root: Path, tmp_path: Path, how: str) -> tuple[Path, list[Path]]:
    """A copy of the data set whose first training video has every RGB frame damaged."""
    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    cfg = config(copy)
    folder = video_folder(cfg.rawframes_dir, split_records(cfg, 1)["train"][0].path)
    files = sorted(folder.glob("img_*.jpg"))
    for f in files:
        b = bytearray(f.read_bytes())
        if how == "truncated":
            b = b[: len(b) // 2]
        else:  # the Huffman table zeroed: the file looks whole, only the decoder sees it
            dht = b.index(b"\xff\xc4")
            b[dht + 5 : dht + 21] = bytes(16)
            check_jpeg_bytes(bytes(b), f)  # passes the host's header check
        f.write_bytes(bytes(b))
    return copy, files


@pytest.mark.parametrize("how", ["truncated", "undecodable"])
def test_a_corrupt_frame_is_refused_naming_the_file(root, tmp_path, how):
    copy, files = _corrupt_copy(root, tmp_path, how)
    with pytest.raises(CorruptFrameError) as err:
        train(copy, tmp_path / "run", "spatial", input_pipeline="device", stream_epochs=1)
    assert err.value.path in {str(f) for f in files}
    assert "corrupt JPEG" in str(err.value) and "twostream prepare" in str(err.value)
