"""``temporal_init``: where the temporal stream's weights start. "imagenet" (the default) keeps
every key and run folder; "spatial" makes the temporal stream read the same split's spatial
stream (built first, its key in the temporal key) and start from its best checkpoint, conv1
averaged across modalities, the classifier fresh."""

from __future__ import annotations

import pytest
import torch

from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.models.streams import cross_modality_conv, load_stream
from twostream.pipeline import graph as stages
from twostream.train import stream_trainer

SPATIAL, TEMPORAL = stages.stream_node("spatial", 1), stages.stream_node("temporal", 1)


def test_imagenet_keeps_every_key_and_the_smoke_run_folders():
    smoke = StudyConfig.from_yaml("params/smoke.yaml")
    assert smoke.temporal_init == "imagenet"
    # the run folders results/smoke was made from (its executed notebooks name them)
    assert stages.output(smoke, SPATIAL).name == "spatial-split1-4e42d53d"
    assert stages.output(smoke, TEMPORAL).name == "temporal-split1-5e3cbcc1"
    assert stages.key(smoke, stages.head_node(1, "conv3_x", "concat", 1, 3)) == "86e91dda"
    assert stages.needs(TEMPORAL, smoke) == (stages.Node("rawframes"),)
    with pytest.raises(UserError, match="temporal_init must be one of imagenet, spatial"):
        smoke.replace(temporal_init="kinetics")


def test_spatial_makes_the_temporal_stream_need_the_spatial_one(monkeypatch):
    cfg = StudyConfig()
    warm = cfg.replace(temporal_init="spatial")
    assert stages.needs(TEMPORAL, warm) == (stages.Node("rawframes"), SPATIAL)
    assert stages.needs(SPATIAL, warm) == (stages.Node("rawframes"),)  # the spatial one as before
    assert stages.key(warm, SPATIAL) == stages.key(cfg, SPATIAL)
    assert stages.key(warm, TEMPORAL) != stages.key(cfg, TEMPORAL)
    # downstream of it, the temporal features and every head move with it
    head = stages.head_node(1, "conv5_x", "sum", 1, 3)
    assert stages.key(warm, head) != stages.key(cfg, head)

    # the spatial stream's key is in the temporal key: another spatial key, another temporal
    real = stages.key.__wrapped__  # the uncached function; its recursion looks `key` up

    def other_spatial(c, node):
        return "0ther5pa" if node == SPATIAL else real(c, node)

    before = {c.temporal_init: stages.key(c, TEMPORAL) for c in (cfg, warm)}
    monkeypatch.setattr(stages, "key", other_spatial)
    assert other_spatial(warm, TEMPORAL) != before["spatial"]
    assert other_spatial(cfg, TEMPORAL) == before["imagenet"]  # imagenet: not read


@pytest.mark.slow
def test_the_temporal_stream_starts_from_the_spatial_checkpoint(tmp_path, monkeypatch):
    """A tiny study: the spatial stream is trained first, and the temporal model handed to
    training holds its body, conv1 averaged across modalities, a fresh classifier."""
    cfg = StudyConfig(
        data_root=str(tmp_path / "data"), synth_classes=3, synth_clips_per_class=8,
        synth_groups=4, synth_frames=10, synth_width=48, synth_height=40, crop_size=32,
        input_size=32, num_segments=2, flow_length=2, stream_epochs=1, stream_batch_size=8,
        samples_per_video=1, val_fraction=0.34, prep_workers=1, device="cpu",
        splits=(1,), temporal_init="spatial",
    )  # fmt: skip
    built = {}
    real_build = stream_trainer.build_stream

    def spy(**kw):
        net = real_build(**kw)
        built[kw["modality"]] = ({k: v.clone() for k, v in net.state_dict().items()},
                                 kw["pretrained"])  # fmt: skip
        return net

    monkeypatch.setattr(stream_trainer, "build_stream", spy)
    runs = stages.streams(cfg, 1)
    start, pretrained = built["flow"]
    spatial_ckpt = runs["spatial"].best_checkpoint
    assert pretrained == str(spatial_ckpt)
    spatial = load_stream(spatial_ckpt).state_dict()
    body = [k for k in spatial if k.startswith("body.") and k != "body.conv1.weight"]
    assert body and all(torch.equal(start[k], spatial[k]) for k in body)
    conv1 = torch.nn.Conv2d(3, spatial["body.conv1.weight"].shape[0], 7, bias=False)
    conv1.weight.data.copy_(spatial["body.conv1.weight"])
    expected = cross_modality_conv(conv1, 2 * cfg.flow_length).weight
    assert torch.equal(start["body.conv1.weight"], expected.detach())  # (O, 4, 7, 7)
    assert not torch.equal(start["classifier.weight"], spatial["classifier.weight"])
    # the default starts from `pretrained` (none here): not the spatial stream's weights
    assert built["rgb"][1] == "none"
    results = stream_trainer.load_stream_run(runs["temporal"])
    assert results["weights"] == f"spatial stream {runs['spatial'].path.name}"
